// Package mailid makes and reads the identifiers the gateway writes into the
// mails it sends, so that what comes back (a bounce, a reply) finds its
// envelope and recipient again without a lookup table:
//
//   - VERP return paths, the reverse-path of the SMTP MAIL FROM command
//     (RFC 5321 §4.1.2), such as
//     parapheur+bounce-ENVELOPE=RECIPIENT.TAG@org.example: a delivery status
//     notification (RFC 3464) is sent to that address, so its envelope
//     recipient alone names who could not be reached. TAG is a MAC of the
//     envelope and recipient IDs under the gateway's key, so that only a
//     return path the gateway made is believed: the envelope ID is in every
//     mail the gateway sends, and a report anyone can write to a return path
//     anyone can guess would let them mark any recipient unreachable;
//   - thread roots, msg-id values (RFC 5322 §3.6.4) such as
//     thread.ENVELOPE.RECIPIENT@org.example that every mail to one recipient
//     refers to in In-Reply-To and References, so each recipient sees one
//     thread per envelope and a reply names its envelope and recipient;
//   - mail IDs, the Message-ID of each mail about an envelope, such as
//     mail.ENVELOPE.RECIPIENT.UNIQUE@org.example: a reply that cites only
//     the mail it answers (Outlook's In-Reply-To and References hold that
//     one msg-id, not the thread) still names its envelope and recipient.
//
// Envelope IDs may hold ASCII letters, digits, '_' and '-'; recipient IDs
// ASCII letters, digits and '_'. Those characters are atext (RFC 5322 §3.2.3)
// and the separators ('=' and '.') are outside them, so parsing is exact.
package mailid

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// maxLocalPart is the longest local part RFC 5321 §4.5.3.1.1 obliges a
// server to accept; a longer return path may be refused by a strict MTA.
const maxLocalPart = 64

// bounceTag follows the '+' of the gateway's local part in a return path.
const bounceTag = "bounce-"

// threadTag starts the id-left of a thread root.
const threadTag = "thread."

// mailTag starts the id-left of a mail ID.
const mailTag = "mail."

// KeySize is the least length in bytes of the key of return path tags.
const KeySize = 32

// macBytes is the length of a return path's MAC: 64 bits, which a forger
// must guess with one mail per try, in 13 characters of the 64 of the
// local part (RFC 5321 §4.5.3.1.1). With the 21-character envelope IDs of
// the gateway, a recipient ID of up to four characters and the separators,
// it leaves 16 characters for the gateway's own local part.
const macBytes = 8

// tagEncoding writes the MAC in lower-case base32 (RFC 4648 §6), which
// survives an MTA that folds the case of local parts.
var tagEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrBadTag is returned (wrapped) by ParseReturnPath for an address shaped
// like a return path of the gateway whose tag is missing or was not made
// with the key: a forgery, or a return path of another installation.
var ErrBadTag = errors.New("the return path's tag does not verify")

// ReturnPath returns the VERP return path for a mail of envelope envelopeID
// to recipient recipientID (an empty recipientID stands for the envelope's
// sender) sent by the gateway whose address is gateway, tagged with key
// (at least KeySize bytes), e.g. "parapheur+bounce-ENV=r2.TAG@org.example"
// where TAG is 13 characters of base32. The gateway's MTA
// must deliver gateway+anything to the gateway's mailbox
// (recipient_delimiter "+" in Postfix), which is also how circuits are
// selected.
func ReturnPath(key []byte, gateway, envelopeID, recipientID string) (string, error) {
	local, domain, err := splitGateway(gateway)
	if err != nil {
		return "", err
	}
	if err := checkIDs(envelopeID, recipientID); err != nil {
		return "", fmt.Errorf("mailid: %w", err)
	}
	if len(key) < KeySize {
		return "", fmt.Errorf("mailid: the return path key has %d bytes; at least %d are needed", len(key), KeySize)
	}
	lp := local + "+" + bounceTag + envelopeID
	if recipientID != "" {
		lp += "=" + recipientID
	}
	lp += "." + tag(key, envelopeID, recipientID)
	if len(lp) > maxLocalPart {
		return "", fmt.Errorf("mailid: return path local part %q is %d bytes, more than the %d of RFC 5321", lp, len(lp), maxLocalPart)
	}
	return lp + "@" + domain, nil
}

// ParseReturnPath returns the envelope and recipient IDs that ReturnPath put
// in addr, a return path of the gateway whose address is gateway, after
// checking its tag against key: an address with the shape of a return path
// and a missing or wrong tag gives an error wrapping ErrBadTag. The
// gateway's local part, the "bounce-" marker, the tag and the domain are
// matched without regard to case, since some MTAs fold them; the IDs are
// returned as written.
func ParseReturnPath(key []byte, gateway, addr string) (envelopeID, recipientID string, err error) {
	local, domain, err := splitGateway(gateway)
	if err != nil {
		return "", "", err
	}
	addr = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(addr), "<"), ">")
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", "", fmt.Errorf("mailid: return path %q has no @", addr)
	}
	if !strings.EqualFold(addr[at+1:], domain) {
		return "", "", fmt.Errorf("mailid: return path %q is not on the gateway's domain %s", addr, domain)
	}
	prefix := local + "+" + bounceTag
	lp := addr[:at]
	if len(lp) < len(prefix) || !strings.EqualFold(lp[:len(prefix)], prefix) {
		return "", "", fmt.Errorf("mailid: return path %q does not start with %s", addr, prefix)
	}
	ids, mac, tagged := cutLast(lp[len(prefix):], '.')
	envelopeID, recipientID, sep := strings.Cut(ids, "=")
	if err := checkParsedIDs(envelopeID, recipientID, sep); err != nil {
		return "", "", fmt.Errorf("mailid: return path %q: %w", addr, err)
	}
	if !tagged || len(key) < KeySize ||
		!hmac.Equal([]byte(strings.ToLower(mac)), []byte(tag(key, envelopeID, recipientID))) {
		return "", "", fmt.Errorf("mailid: return path %q: %w", addr, ErrBadTag)
	}
	return envelopeID, recipientID, nil
}

// tag is the MAC of a return path: HMAC-SHA-256 (RFC 2104) under key of the
// envelope and recipient IDs, which cannot hold the '=' between them,
// truncated to macBytes (RFC 2104 §5).
func tag(key []byte, envelopeID, recipientID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(envelopeID + "=" + recipientID))
	return tagEncoding.EncodeToString(m.Sum(nil)[:macBytes])
}

// cutLast slices s around the last sep.
func cutLast(s string, sep byte) (before, after string, found bool) {
	if i := strings.LastIndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// ThreadRoot returns the msg-id, without angle brackets, that mails to
// recipientID about envelopeID refer to, on the gateway's Message-ID domain,
// e.g. "thread.ENV.r2@org.example". An empty recipientID stands for the
// sender, whose thread normally hangs off their own submission instead.
func ThreadRoot(domain, envelopeID, recipientID string) (string, error) {
	if err := checkDomain(domain); err != nil {
		return "", err
	}
	if err := checkIDs(envelopeID, recipientID); err != nil {
		return "", fmt.Errorf("mailid: %w", err)
	}
	left := threadTag + envelopeID
	if recipientID != "" {
		left += "." + recipientID
	}
	return left + "@" + domain, nil
}

// MailID returns the Message-ID, without angle brackets, of one mail to
// recipientID ("" for the sender) about envelopeID, on the gateway's
// Message-ID domain: "mail.ENV.r2.UNIQUE@org.example", or
// "mail.ENV.UNIQUE@org.example" for the sender. unique, ASCII letters and
// digits, tells the mails of one thread apart.
func MailID(domain, envelopeID, recipientID, unique string) (string, error) {
	if err := checkDomain(domain); err != nil {
		return "", err
	}
	if err := checkIDs(envelopeID, recipientID); err != nil {
		return "", fmt.Errorf("mailid: %w", err)
	}
	if err := checkUnique(unique); err != nil {
		return "", fmt.Errorf("mailid: %w", err)
	}
	left := mailTag + envelopeID
	if recipientID != "" {
		left += "." + recipientID
	}
	return left + "." + unique + "@" + domain, nil
}

// ParseThread returns the envelope and recipient IDs that msgID names: a
// thread root made by ThreadRoot or a mail ID made by MailID, on domain,
// possibly enclosed in angle brackets as in an In-Reply-To or References
// field. For a mail ID it also returns its unique part.
func ParseThread(domain, msgID string) (envelopeID, recipientID, unique string, err error) {
	id := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(msgID), "<"), ">")
	left, right, ok := strings.Cut(id, "@")
	if !ok {
		return "", "", "", fmt.Errorf("mailid: message ID %q has no @", msgID)
	}
	if !strings.EqualFold(right, domain) {
		return "", "", "", fmt.Errorf("mailid: message ID %q is not on the gateway's domain %s", msgID, domain)
	}
	var sep bool
	switch {
	case strings.HasPrefix(left, threadTag):
		envelopeID, recipientID, sep = strings.Cut(left[len(threadTag):], ".")
	case strings.HasPrefix(left, mailTag):
		rest, last, ok := cutLast(left[len(mailTag):], '.')
		if !ok {
			return "", "", "", fmt.Errorf("mailid: message ID %q has no unique part", msgID)
		}
		if err := checkUnique(last); err != nil {
			return "", "", "", fmt.Errorf("mailid: message ID %q: %w", msgID, err)
		}
		unique = last
		envelopeID, recipientID, sep = strings.Cut(rest, ".")
	default:
		return "", "", "", fmt.Errorf("mailid: message ID %q is neither a thread root nor a mail ID of the gateway", msgID)
	}
	if err := checkParsedIDs(envelopeID, recipientID, sep); err != nil {
		return "", "", "", fmt.Errorf("mailid: message ID %q: %w", msgID, err)
	}
	return envelopeID, recipientID, unique, nil
}

// checkUnique accepts the unique part of a mail ID.
func checkUnique(unique string) error {
	if unique == "" {
		return fmt.Errorf("empty unique part")
	}
	for _, c := range unique {
		if !isAlnum(c) {
			return fmt.Errorf("unique part %q holds %q; only ASCII letters and digits may appear", unique, c)
		}
	}
	return nil
}

// splitGateway splits the gateway's bare address into local part and domain.
func splitGateway(gateway string) (local, domain string, err error) {
	local, domain, ok := strings.Cut(gateway, "@")
	if !ok || local == "" || strings.ContainsAny(local, "+@\"\\ ") {
		return "", "", fmt.Errorf("mailid: gateway address %q is not a bare local@domain address without '+'", gateway)
	}
	if err := checkDomain(domain); err != nil {
		return "", "", err
	}
	return local, domain, nil
}

// checkDomain accepts a dot-atom domain, enough for a gateway's own domain.
func checkDomain(domain string) error {
	if domain == "" {
		return fmt.Errorf("mailid: empty domain")
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" {
			return fmt.Errorf("mailid: domain %q has an empty label", domain)
		}
		for _, c := range label {
			if !isAlnum(c) && c != '-' {
				return fmt.Errorf("mailid: domain %q holds %q", domain, c)
			}
		}
	}
	return nil
}

// checkParsedIDs is checkIDs for IDs read back, where a separator followed
// by nothing was not written by this package.
func checkParsedIDs(envelopeID, recipientID string, sep bool) error {
	if sep && recipientID == "" {
		return fmt.Errorf("empty recipient ID after the separator")
	}
	return checkIDs(envelopeID, recipientID)
}

// checkIDs enforces the ID alphabets the package doc promises.
func checkIDs(envelopeID, recipientID string) error {
	if envelopeID == "" {
		return fmt.Errorf("empty envelope ID")
	}
	for _, c := range envelopeID {
		if !isAlnum(c) && c != '_' && c != '-' {
			return fmt.Errorf("envelope ID %q holds %q; only ASCII letters, digits, '_' and '-' may appear", envelopeID, c)
		}
	}
	for _, c := range recipientID {
		if !isAlnum(c) && c != '_' {
			return fmt.Errorf("recipient ID %q holds %q; only ASCII letters, digits and '_' may appear", recipientID, c)
		}
	}
	return nil
}

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
