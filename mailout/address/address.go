// Package address writes a mail address the way the gateway's relay takes
// it: the mailbox of an SMTP forward-path (RFC 5321 §4.1.2), ASCII only,
// since the gateway does not use SMTPUTF8 (RFC 6531).
//
// Addresses come from net/mail, which unquotes local parts: the signer
// written "a@b"@example.com arrives as a@b@example.com, and sent as such
// it names another mailbox or none. The local part is quoted again when it
// is not a dot-atom (RFC 5321 §4.1.2, RFC 5322 §3.4.1), and an
// internationalised domain name is written in A-labels (RFC 5890,
// IDNA2008 with UTS #46 mapping, as a resolver looks it up).
package address

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Why an address cannot be sent; SMTP's errors wrap one of them, after
// the address.
var (
	ErrSyntax   = errors.New("it is not of the form name@domain")
	ErrNotASCII = errors.New("the part before the @ is not ASCII, and the gateway's mail does not use SMTPUTF8 (RFC 6531): give an ASCII address")
	ErrDomain   = errors.New("its domain is not a valid domain name")
	ErrTooLong  = errors.New("it is longer than SMTP allows (RFC 5321: 64 characters before the @, 254 in all)")
	// ErrGateway: the gateway drops the mail of its own mailbox as its own
	// (a loop), so a person named there would never get an invitation.
	ErrGateway = errors.New("it is the gateway's own address")
)

// Deliverable checks that the gateway can send a person's mail to addr:
// SMTP can take it (see SMTP), and it is not the gateway's own mailbox,
// whatever its +detail. Every door that takes an address for someone to act
// (a submission's recipients, a delegate named by mail or on the signing
// page) asks here.
func Deliverable(addr, gateway string) error {
	if _, err := SMTP(addr); err != nil {
		return err
	}
	if gateway != "" && SameMailbox(addr, gateway) {
		return fmt.Errorf("address %q: %w", addr, ErrGateway)
	}
	return nil
}

// SameMailbox reports whether two addresses reach the same mailbox:
// compared without case and without a +detail (RFC 5233).
func SameMailbox(a, b string) bool {
	return Mailbox(a) == Mailbox(b)
}

// Mailbox is the mailbox an address reaches, in lower case and without a
// +detail (RFC 5233): a+x@d and A+y@D are both a@d.
func Mailbox(addr string) string {
	addr = strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	local, _, _ := strings.Cut(addr[:at], "+")
	return local + addr[at:]
}

// Limits of RFC 5321 §4.5.3.1.
const (
	maxLocal = 64
	maxPath  = 254 // 256 octets of path less its angle brackets
)

// SMTP returns addr, an address as net/mail gives it (local part
// unquoted), in the form of an SMTP forward-path's mailbox: the local
// part quoted when it is not a dot-atom, the domain in lower-case A-labels.
// It fails, saying why, for an address no SMTP server without SMTPUTF8 can
// take: a local part that is not ASCII, a domain that is not a valid host
// name, a part over RFC 5321's length limits.
func SMTP(addr string) (string, error) {
	local, domain, err := split(addr)
	if err != nil {
		return "", err
	}
	if !dotAtom(local) {
		local = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(local) + `"`
	}
	if s := local + "@" + domain; len(s) <= maxPath {
		return s, nil
	}
	return "", fmt.Errorf("address %q: %w", addr, ErrTooLong)
}

// ASCII returns addr with its domain as SMTP returns it and its local part
// unquoted, for a header's net/mail or go-message address, which quotes
// the local part itself. It fails as SMTP does.
func ASCII(addr string) (string, error) {
	if _, err := SMTP(addr); err != nil {
		return "", err
	}
	local, domain, _ := split(addr)
	return local + "@" + domain, nil
}

// split cuts addr at its last "@" (a quoted local part may hold others),
// checks the local part and returns the domain in A-labels.
func split(addr string) (local, domain string, err error) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return "", "", fmt.Errorf("address %q: %w", addr, ErrSyntax)
	}
	local, domain = addr[:at], addr[at+1:]
	if len(local) > maxLocal {
		return "", "", fmt.Errorf("address %q: %w", addr, ErrTooLong)
	}
	for _, r := range local {
		switch {
		case r >= 0x80:
			return "", "", fmt.Errorf("address %q: %w", addr, ErrNotASCII)
		case r < 0x20 || r == 0x7f:
			return "", "", fmt.Errorf("address %q: %w", addr, ErrSyntax)
		}
	}
	domain, err = host(domain)
	if err != nil {
		return "", "", fmt.Errorf("address %q: %w", addr, err)
	}
	return local, domain, nil
}

// host returns a domain in lower-case A-labels, or an address literal
// ([192.0.2.1], [IPv6:2001:db8::1]) as written.
func host(domain string) (string, error) {
	if lit, ok := strings.CutPrefix(domain, "["); ok {
		lit, ok = strings.CutSuffix(lit, "]")
		ip, v6 := strings.CutPrefix(lit, "IPv6:")
		a, err := netip.ParseAddr(ip)
		if !ok || err != nil || a.Is6() != v6 || a.Zone() != "" {
			return "", fmt.Errorf("%w: %q is not an address literal like [192.0.2.1] or [IPv6:2001:db8::1]", ErrDomain, domain)
		}
		return domain, nil
	}
	ascii, err := idna.Lookup.ToASCII(strings.TrimSuffix(domain, "."))
	// idna maps bytes that are not UTF-8 to U+FFFD, and then to a label.
	if err != nil || !utf8.ValidString(domain) || !dnsLabels(ascii) {
		return "", fmt.Errorf("%w (%q)", ErrDomain, domain)
	}
	return strings.ToLower(ascii), nil
}

// dnsLabels reports whether every label of an A-label domain has the
// length DNS allows (1 to 63 octets, RFC 1035 §2.3.4), which the Lookup
// profile leaves unchecked.
func dnsLabels(domain string) bool {
	for _, label := range strings.Split(domain, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
	}
	return true
}

// dotAtom reports whether s is a dot-atom (RFC 5322 §3.2.3): atoms of
// atext joined by single dots.
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && !atext(c) {
			return false
		}
	}
	return true
}

// atext reports whether c may appear in an atom (RFC 5322 §3.2.3).
func atext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}
