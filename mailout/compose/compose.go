package compose

import (
	"crypto"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/parapheur/parapheur/mailout/mailid"
)

// Config is the gateway's identity and mail settings, fixed for a Composer.
type Config struct {
	// Address is the gateway's bare address, e.g. "parapheur@org.example":
	// From and Reply-To (reply commands come back there).
	Address string
	// Name is the display name of From and Reply-To; default "Parapheur".
	Name string
	// PublicURL is the base of every link, e.g. "https://sign.org.example";
	// links in the mail data must start with it.
	PublicURL string
	// Domain is the right-hand side of the gateway's Message-IDs and
	// thread roots; default the domain of Address.
	Domain string
	// Language is the default language, "fr" or "en"; default "fr".
	Language string
	// AttachmentLimit is the largest total size, in bytes, of the files a
	// completion mail attaches; above it the mail carries a download link.
	// 0 means always a link (mail.attachment_limit_bytes).
	AttachmentLimit int64
	// Location is the time zone dates are shown in; nil means UTC.
	Location *time.Location
	// ReturnPathKey tags the return paths (see package mailid), so that
	// only a bounce to a return path of this gateway is believed; at least
	// mailid.KeySize bytes, the same for every replica.
	ReturnPathKey []byte
	// DKIM, when set, signs every mail.
	DKIM *DKIM
}

// DKIM is a DKIM signing key (RFC 6376).
type DKIM struct {
	// Domain is the signing domain (d=), normally the domain of From so
	// that DMARC sees an aligned signature.
	Domain string
	// Selector is the selector (s=): the public key is published in TXT
	// at SELECTOR._domainkey.DOMAIN.
	Selector string
	// Signer is the private key: RSA (2048 bits or more) or Ed25519.
	Signer crypto.Signer
}

// Composer composes the gateway's mails. It is safe for concurrent use.
type Composer struct {
	cfg Config
	set *templateSet
}

// New checks cfg and returns a Composer.
func New(cfg Config) (*Composer, error) {
	if _, err := mail.ParseAddress(cfg.Address); err != nil || strings.ContainsAny(cfg.Address, "<> ") {
		return nil, fmt.Errorf("compose: gateway address %q is not a bare address like parapheur@org.example", cfg.Address)
	}
	if cfg.Name == "" {
		cfg.Name = "Parapheur"
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("compose: public URL %q is not an absolute http(s) URL", cfg.PublicURL)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.Domain == "" {
		cfg.Domain = cfg.Address[strings.LastIndexByte(cfg.Address, '@')+1:]
	}
	if cfg.Language == "" {
		cfg.Language = "fr"
	}
	set, err := templates()
	if err != nil {
		return nil, err
	}
	if _, ok := set.byLang[cfg.Language]; !ok {
		return nil, fmt.Errorf("compose: default language %q is not one of %s", cfg.Language, set.languages())
	}
	if cfg.AttachmentLimit < 0 {
		return nil, fmt.Errorf("compose: negative attachment limit %d", cfg.AttachmentLimit)
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	// A gateway address too long for the return paths would fail every
	// mail to be sent: say so now.
	if _, err := mailid.ReturnPath(cfg.ReturnPathKey, cfg.Address, longestEnvelopeID, longestRecipientID); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	if d := cfg.DKIM; d != nil {
		// NewSigner checks the options and the key type now rather than
		// at the first mail.
		if _, err := dkim.NewSigner(d.options()); err != nil {
			return nil, fmt.Errorf("compose: DKIM: %w", err)
		}
	}
	return &Composer{cfg: cfg, set: set}, nil
}

// Compose writes m to w as an Internet message (CRLF line ends, no
// terminating dot): the bytes of SMTP DATA. A DKIM-signed message starts
// with its DKIM-Signature field. An error after writing began (an
// attachment that cannot be read or does not match its SHA-256) leaves w
// with a partial message that must not be sent.
func (c *Composer) Compose(w io.Writer, m *Message) error {
	p, err := c.prepare(m)
	if err != nil {
		return err
	}
	if c.cfg.DKIM == nil {
		return p.write(w)
	}
	return c.sign(w, p)
}

// sign writes p twice: into the DKIM signer, which needs the whole body
// before it can produce the field that goes first, then to w. The two
// passes give the same bytes because composition is deterministic (fixed
// Date, boundaries from the Message-ID) and each attachment is checked
// against its SHA-256 in both.
func (c *Composer) sign(w io.Writer, p *prepared) error {
	signer, err := dkim.NewSigner(c.cfg.DKIM.options())
	if err != nil {
		return fmt.Errorf("compose: DKIM: %w", err)
	}
	if err := p.write(signer); err != nil {
		signer.Close()
		return err
	}
	if err := signer.Close(); err != nil {
		return fmt.Errorf("compose: DKIM: %w", err)
	}
	if _, err := io.WriteString(w, signer.Signature()); err != nil {
		return err
	}
	return p.write(w)
}

// options are the go-msgauth signing options: relaxed canonicalization of
// header and body, which survives the re-folding and trailing-space changes
// relays make; the default header list, every field of the message.
func (d *DKIM) options() *dkim.SignOptions {
	return &dkim.SignOptions{
		Domain:                 d.Domain,
		Selector:               d.Selector,
		Signer:                 d.Signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
	}
}

// longestEnvelopeID and longestRecipientID are as long as the IDs of the
// workflow engine get: "E" and 20 characters, "r" and the recipient's
// number.
const (
	longestEnvelopeID  = "E01234567890123456789"
	longestRecipientID = "r999"
)

// ReturnPath returns the SMTP reverse-path (MAIL FROM) for m: a VERP
// address naming m's envelope and addressee with the tag of the
// Config.ReturnPathKey (see package mailid), so that a bounce finds them and
// a forged one is known, or "" — the null reverse-path — for a refusal, which
// answers mail that may be forged and must not draw bounces back
// (RFC 3834 §3.3).
func (c *Composer) ReturnPath(m *Message) (string, error) {
	if m == nil || m.Data == nil {
		return "", fmt.Errorf("compose: no message data")
	}
	if _, ok := m.Data.(answer); ok {
		return "", nil
	}
	if m.Envelope == nil {
		return "", fmt.Errorf("compose: %s: no envelope", m.Data.Kind())
	}
	return mailid.ReturnPath(c.cfg.ReturnPathKey, c.cfg.Address, m.Envelope.ID, m.RecipientID)
}
