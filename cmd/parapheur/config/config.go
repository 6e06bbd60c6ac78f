// Package config reads the gateway's configuration: one TOML file (TOML v1.0.0) plus
// environment overrides, as SPEC §7 describes.
//
// A key a.b_c of the file is the variable PARAPHEUR_A_B_C of the environment, which wins
// over the file. Every key K also exists as K_file: the value is then read from that file,
// without its trailing newline, so that secrets can live in files (Docker and systemd
// credentials) rather than in the configuration or the environment. Setting both K and
// K_file is an error.
//
// Load checks everything it can without the network and reports every problem at once, each
// naming the key concerned, so that an operator fixes a configuration in one pass.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"
)

// EnvPrefix starts every environment variable that overrides a key.
const EnvPrefix = "PARAPHEUR_"

// EnvConfig names the configuration file in the environment. It is read by the command,
// not by Load, and is therefore never taken for a key.
const EnvConfig = EnvPrefix + "CONFIG"

// DefaultPath is the file a command reads when none is named; the systemd unit and the
// container put it there. It is a variable only so that tests can point it elsewhere
// (go build -ldflags "-X ...config.DefaultPath=FILE"); users name a file with --config.
var DefaultPath = "/etc/parapheur/parapheur.toml"

// DefaultFile is the file a command reads when --config does not name one: the file named
// by PARAPHEUR_CONFIG in environ when that is set (empty: the environment alone), else
// DefaultPath when there is a file there, else "" — the environment alone, as in a container
// configured by PARAPHEUR_* variables. A DefaultPath that exists but cannot be read is kept,
// so that Load says what is wrong with it instead of ignoring it.
func DefaultFile(environ []string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if path, ok := strings.CutPrefix(environ[i], EnvConfig+"="); ok {
			return path
		}
	}
	if _, err := os.Stat(DefaultPath); errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	return DefaultPath
}

// Config is the whole configuration of a gateway. Load returns it with defaults applied and
// validated; the fields tagged `toml:"-"` are derived from the others by Load.
type Config struct {
	// Address is the gateway's own mailbox, where submissions and reply commands arrive and
	// from which the gateway writes. It is a bare address; Address with "+NAME" inserted
	// before the "@" selects circuit NAME, and with "+verifier" or "+verify" it is the
	// verification address (SPEC §6).
	Address string `toml:"address"`
	// PublicURL is the base of every link in the mails, without a trailing slash. It must be
	// https except to a loopback host, because the links carry signing tokens.
	PublicURL string `toml:"public_url"`
	// Listen is the HTTP listen address, host:port (host may be empty for all interfaces).
	Listen string `toml:"listen"`
	// Language is the default language of mails and pages, "fr" or "en", used when a
	// submission does not choose one.
	Language string `toml:"language"`
	// Timezone is the IANA time zone (e.g. "Europe/Paris") whose days deadlines are, and in
	// which mails show times; empty means the system's local zone.
	Timezone string `toml:"timezone"`
	// Location is Timezone loaded.
	Location *time.Location `toml:"-"`

	// Store is where envelopes, documents and the outbox are kept.
	Store Store `toml:"store"`
	// IMAP is the mailbox the gateway polls for submissions.
	IMAP IMAP `toml:"imap"`
	// SMTP is the server the gateway sends all its mail through.
	SMTP SMTP `toml:"smtp"`
	// OAuth2 is where the tokens of imap.auth = "oauth2" and smtp.auth = "oauth2" come from.
	OAuth2 OAuth2 `toml:"oauth2"`
	// Keys locates the signing CA and the seal made by "parapheur ca init".
	Keys Keys `toml:"keys"`
	// TSA is the optional RFC 3161 timestamp authority.
	TSA TSA `toml:"tsa"`
	// SMS is the optional gateway that sends one-time codes by text message.
	SMS SMS `toml:"sms"`
	// Senders says who may submit documents.
	Senders Senders `toml:"senders"`
	// Envelopes holds the defaults of an envelope that its submission can override.
	Envelopes Envelopes `toml:"envelopes"`
	// Limits bounds what the gateway accepts.
	Limits Limits `toml:"limits"`
	// Mail tunes the mails the gateway sends.
	Mail Mail `toml:"mail"`
	// HTTP configures the web server of the signing pages and the API.
	HTTP HTTP `toml:"http"`
	// Log says how the gateway writes its log on standard error.
	Log Log `toml:"log"`
	// Circuits are the predefined sequences of steps, by name (lower case), that a
	// submission selects with a "Circuit:" line or with plus-addressing. "verifier" and
	// "verify" name the verification address and cannot name a circuit.
	Circuits map[string]Circuit `toml:"circuits"`
}

// Store configures persistence.
type Store struct {
	// URL selects the backend: bolt:///abs/path.db (the embedded single-file store), or
	// Redis as redis:// or rediss:// (standalone), redis-sentinel:// or rediss-sentinel://
	// (Sentinel, ?master_name= required, more sentinels with &addr=), redis-cluster:// or
	// rediss-cluster:// (Cluster, more seed nodes with ?addr=). The query parameters are
	// those of go-redis. It may hold a password, hence never printed unredacted.
	URL string `toml:"url"`
}

// IMAP configures the mailbox that receives submissions.
type IMAP struct {
	// URL is imaps://user@host[:port]/MAILBOX (implicit TLS, port 993) or
	// imap://user@host[:port]/MAILBOX (STARTTLS, port 143; plain text to a loopback host).
	// MAILBOX defaults to INBOX. The
	// password does not belong in the URL but in Password.
	URL string `toml:"url"`
	// Auth is how the user logs in: "password" (the default) or "oauth2", a token from
	// the [oauth2] table.
	Auth string `toml:"auth"`
	// Password is the IMAP login password of the user in URL.
	Password Secret `toml:"password"`
	// ProcessedFolder receives every mail once handled, so that nothing is lost or handled
	// twice; created when missing.
	ProcessedFolder string `toml:"processed_folder"`
	// QuarantineFolder receives the mails the gateway refused; created when missing.
	QuarantineFolder string `toml:"quarantine_folder"`

	// Server is where and how to connect, from URL.
	Server Server `toml:"-"`
	// Mailbox is the folder polled for new mail, from URL's path.
	Mailbox string `toml:"-"`
}

// SMTP configures the server that relays the gateway's mail.
type SMTP struct {
	// URL is smtps://[user@]host[:port] (implicit TLS, port 465) or
	// smtp://[user@]host[:port] (STARTTLS, port 587; plain text to a loopback host). With a
	// user, the gateway authenticates.
	URL string `toml:"url"`
	// Auth is how the user logs in: "password" (the default) or "oauth2", a token from
	// the [oauth2] table.
	Auth string `toml:"auth"`
	// Password is the SMTP AUTH password of the user in URL.
	Password Secret `toml:"password"`

	// Server is where and how to connect, from URL.
	Server Server `toml:"-"`
}

// OAuth2 configures the access tokens of Microsoft 365 and Google Workspace mailboxes. Its
// secrets come only from their _file keys or the environment, never from the file itself.
type OAuth2 struct {
	// Provider is "microsoft" (client credentials), "google" (a service account with
	// domain-wide delegation) or "refresh_token" (stored by "parapheur oauth2 login").
	Provider string `toml:"provider"`
	// Mechanism is the SASL mechanism: "xoauth2" (the default; the only one of Exchange
	// Online) or "oauthbearer" (RFC 7628).
	Mechanism string `toml:"mechanism"`
	// Tenant is the Microsoft Entra tenant ID or domain.
	Tenant string `toml:"tenant"`
	// ClientID is the application (client) ID of the Microsoft app registration.
	ClientID string `toml:"client_id"`
	// ClientSecret is the app's client secret (client_secret_file).
	ClientSecret Secret `toml:"client_secret" secret:"no-file"`
	// ClientCertificate is the PEM certificate and private key the app registration
	// holds the certificate of, instead of a secret (client_certificate_file).
	ClientCertificate Secret `toml:"client_certificate" secret:"no-file"`
	// ServiceAccount is the JSON key of a Google service account (service_account_file).
	ServiceAccount Secret `toml:"service_account" secret:"no-file"`
	// TokenFile is where "parapheur oauth2 login" stored the refresh token; the gateway
	// writes renewed refresh tokens back there.
	TokenFile string `toml:"token_file"`
	// TokenURL replaces the provider's token endpoint (sovereign clouds, tests).
	TokenURL string `toml:"token_url"`
	// DeviceURL replaces the device authorization endpoint of "parapheur oauth2 login".
	DeviceURL string `toml:"device_url"`
	// Scopes replace the provider's scopes. In the file, a list or a space-separated string.
	Scopes []string `toml:"scopes" sep:" "`
}

// Keys configures the gateway's own keys and certificates.
type Keys struct {
	// Dir holds the signing CA and the seal key and certificate (PEM or PKCS#12) that
	// "parapheur ca init" writes.
	Dir string `toml:"dir"`
	// Passphrase decrypts the private keys in Dir; empty when they are not encrypted.
	Passphrase Secret `toml:"passphrase"`
}

// TSA configures timestamping.
type TSA struct {
	// URL is an RFC 3161 timestamp authority (http or https). Empty: signatures are PAdES
	// B-B, without timestamps.
	URL string `toml:"url"`
}

// SMS configures the text-message gateway used for one-time codes to mobile numbers.
type SMS struct {
	// URL receives a POST of {"to": "+33…", "message": "…"}; any 2xx answer means accepted.
	// https is required except to a loopback host, since the body carries a code. Empty:
	// codes always go by mail.
	URL string `toml:"url"`
	// Authorization is sent as the Authorization header of every request, when set.
	Authorization Secret `toml:"authorization"`
}

// Senders configures who may submit.
type Senders struct {
	// Allowed lists the addresses (agent@org.example) and domains (@org.example) that may
	// submit, in lower case. In the file, a list or a comma-separated string.
	Allowed []string `toml:"allowed" sep:","`
	// RequireAuth also requires that an Authentication-Results header from AuthservID shows
	// dmarc=pass or a dkim=pass aligned with the From domain, since From alone is forgeable.
	RequireAuth bool `toml:"require_auth"`
	// AuthservID is the only authserv-id whose Authentication-Results are trusted: that of
	// the receiving MTA. Anyone can add such a header with another id.
	AuthservID string `toml:"authserv_id"`
}

// Envelopes holds envelope defaults.
type Envelopes struct {
	// DefaultDeadlineDays is how many days an envelope stays open when its submission
	// names no deadline.
	DefaultDeadlineDays int `toml:"default_deadline_days"`
	// ReminderDays is how often pending recipients are reminded, in days, when the
	// submission says nothing; 0 sends no reminders.
	ReminderDays int `toml:"reminder_days"`
	// AllowDelegation lets a signer or approver hand their place to someone else, on the
	// signing page or by replying DÉLÉGUER:/DELEGATE: (SPEC §3).
	AllowDelegation bool `toml:"allow_delegation"`
}

// HTTP configures the web server.
type HTTP struct {
	// TrustedProxies are the addresses or CIDR prefixes of the reverse proxies in front of
	// the gateway; only their X-Forwarded-For is believed for the client address recorded
	// in the audit trail and used by the rate limits. In the file, a list or a
	// comma-separated string.
	TrustedProxies []string `toml:"trusted_proxies" sep:","`
	// TLSCert is the PEM certificate chain the gateway serves HTTPS with (usually set as
	// tls_cert_file = "/path/fullchain.pem"); with TLSKey. Empty: plain HTTP, for a
	// gateway behind a reverse proxy that terminates TLS.
	TLSCert string `toml:"tls_cert"`
	// TLSKey is the PEM private key of TLSCert (tls_key_file = "/path/privkey.pem").
	TLSKey Secret `toml:"tls_key"`

	// Proxies are TrustedProxies parsed.
	Proxies []netip.Prefix `toml:"-"`
	// Certificate is TLSCert and TLSKey loaded, nil without TLS.
	Certificate *tls.Certificate `toml:"-"`
}

// Log configures the log of serve (log/slog).
type Log struct {
	// Format is "json" (one object a line, for a log collector) or "text" (key=value
	// pairs, for a terminal or journald).
	Format string `toml:"format"`
	// Level is the least severe level written: "debug", "info", "warn" or "error".
	Level string `toml:"level"`

	// Leveled is Level parsed.
	Leveled slog.Level `toml:"-"`
}

// Limits bounds the input, so that one mail cannot exhaust memory or disk.
type Limits struct {
	// MaxMessageBytes is the largest submission mail accepted; larger ones are refused.
	MaxMessageBytes int64 `toml:"max_message_bytes"`
	// MaxDocumentBytes is the largest PDF accepted in a submission.
	MaxDocumentBytes int64 `toml:"max_document_bytes"`
	// MaxRecipients is the most signers, approvers, copies and archivists one
	// envelope may name; a submission naming more is refused.
	MaxRecipients int `toml:"max_recipients"`
}

// Mail tunes outgoing mail.
type Mail struct {
	// AttachmentLimitBytes is the largest total of attachments in a completion mail; above
	// it the mail carries a download link instead, since many servers refuse big mails.
	AttachmentLimitBytes int64 `toml:"attachment_limit_bytes"`
	// DownloadLinkDays is how many days the download link of a completion mail
	// (PUBLIC_URL/d/TOKEN) works; every completion mail carries one.
	DownloadLinkDays int `toml:"download_link_days"`
	// Paused stops the mail sender of this process: the gateway still takes mail in, serves
	// its pages and completes envelopes, and the mails this causes wait in the outbox until
	// a serve without it sends them, for a relay under maintenance. /readyz then leaves the
	// SMTP relay out.
	Paused bool `toml:"paused"`
}

// Circuit is a predefined sequence of steps, placed before the steps a submission names.
type Circuit struct {
	// Steps are lines in the syntax of the mail instruction block (package
	// mailin/instructions reads both): "Visa: Chef <chef@org.example>",
	// "Signataire: dg@org.example, daf@org.example" (a parallel step); Copie/Cc and Archive
	// lines add recipients of the final copy. In the file, a list, or a string with one line
	// per step.
	Steps []string `toml:"steps"`
}

// TLSMode is how a mail connection is protected.
type TLSMode int

// The TLS modes, from the URL's scheme and host.
const (
	// TLSImplicit starts TLS before the protocol (imaps, smtps).
	TLSImplicit TLSMode = iota
	// TLSStartTLS requires STARTTLS; the connection fails when the server lacks it.
	TLSStartTLS
	// TLSNone never uses TLS: imap:// and smtp:// to a loopback host.
	TLSNone
)

func (m TLSMode) String() string {
	switch m {
	case TLSImplicit:
		return "implicit TLS"
	case TLSStartTLS:
		return "STARTTLS"
	case TLSNone:
		return "no TLS"
	}
	return fmt.Sprintf("TLSMode(%d)", int(m))
}

// Server is a mail server to connect to, derived from an imap.url or smtp.url.
type Server struct {
	// Host is the host name or IP address, also the name the TLS certificate must show.
	Host string
	// Port is the TCP port, the scheme's default when the URL has none.
	Port string
	// Username is the login, empty for an SMTP relay without authentication.
	Username string
	// TLS is how the connection is protected.
	TLS TLSMode
}

// Addr is Host:Port, ready to dial.
func (s Server) Addr() string { return net.JoinHostPort(s.Host, s.Port) }

// Secret is a configuration value that must never appear in logs or messages: every
// printing of it shows "[redacted]". Convert it with string(s) where it is used.
type Secret string

const redacted = "[redacted]"

// String hides the secret from fmt's %v and %s.
func (s Secret) String() string { return redacted }

// GoString hides the secret from fmt's %#v.
func (s Secret) GoString() string { return redacted }

// LogValue hides the secret from log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// Allows reports whether the bare address addr may submit: it is listed, or its domain is.
// Comparison ignores case.
func (s Senders) Allows(addr string) bool {
	addr = strings.ToLower(addr)
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	for _, a := range s.Allowed {
		if a == addr || a == addr[at:] {
			return true
		}
	}
	return false
}

// Problem is one thing wrong in a configuration.
type Problem struct {
	// Key is the dotted key concerned ("smtp.url"), or the environment variable when it
	// names no key.
	Key string
	// Source is where the value came from: "" for the file or a default, else the
	// environment variable that set it.
	Source string
	// Reason says what is wrong and, where it helps, what would be right.
	Reason string
}

func (p Problem) String() string {
	if p.Source != "" && p.Source != p.Key {
		return fmt.Sprintf("%s (%s): %s", p.Key, p.Source, p.Reason)
	}
	return p.Key + ": " + p.Reason
}

// Error is a configuration that cannot be used, with every problem found in it.
type Error struct {
	// Path is the configuration file, empty when there was none.
	Path string
	// Problems are sorted by key, never empty.
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	fmt.Fprintf(&b, "%d configuration problem(s):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n" + p.String())
	}
	return b.String()
}
