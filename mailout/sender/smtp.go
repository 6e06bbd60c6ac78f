package sender

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/parapheur/parapheur/mailout/oauth"
)

// Relay says how to reach the mail server that relays the gateway's mail.
type Relay struct {
	// URL is smtps://host[:port] (implicit TLS, default port 465) or
	// smtp://host[:port] (STARTTLS, required, default port 587). To a
	// loopback host, smtp:// runs without TLS: the traffic never leaves
	// the machine, and a local MTA rarely has a certificate for 127.0.0.1.
	URL string
	// Username, when set, authenticates with AUTH (RFC 4954); always over
	// TLS except to a loopback host.
	Username string
	// Password is Username's password.
	Password string
	// OAuth2, when set, authenticates Username with a bearer token from it
	// rather than with Password; a refused token is renewed and tried again
	// at once.
	OAuth2 *oauth.Source
	// AuthMechanism is "PLAIN" or "LOGIN"; empty means PLAIN when the
	// server offers it, else LOGIN. With OAuth2 it is "XOAUTH2" (the
	// default) or "OAUTHBEARER".
	AuthMechanism string
	// TLS is the TLS configuration (roots, minimum version, client
	// certificate); nil means Go's defaults. ServerName defaults to the
	// URL's host.
	TLS *tls.Config
	// LocalName is the name given in EHLO; default the host name.
	LocalName string
	// Timeout bounds the dial and each command's answer; default 1 minute.
	Timeout time.Duration
	// DataTimeout bounds the wait for the answer to the end of DATA;
	// default 10 minutes (RFC 5321 §4.5.3.2.6).
	DataTimeout time.Duration
	// Dial opens the TCP connection; nil means a net.Dialer with Timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Connection reuse defaults, used for zero fields of Config.
const (
	// DefaultMaxMails is the mails per connection: many MTAs close a
	// session after 100 transactions.
	DefaultMaxMails = 100
	// DefaultMaxAge spreads load over a relay's addresses after DNS changes.
	DefaultMaxAge = 5 * time.Minute
	// DefaultIdleTimeout stays under the idle timeouts MTAs apply (Postfix:
	// 300 s) so that the server seldom hangs up first.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultNoopAfter is how long a session may sit idle before it is
	// checked before reuse.
	DefaultNoopAfter = 5 * time.Second
)

// relay is a checked Relay.
type relay struct {
	Relay
	addr     string
	host     string
	implicit bool // TLS from the start
	plain    bool // no TLS (loopback smtp://)
}

func (r Relay) check() (*relay, error) {
	u, err := url.Parse(r.URL)
	if err != nil {
		return nil, fmt.Errorf("sender: relay URL %q: %w", r.URL, err)
	}
	c := &relay{Relay: r, host: u.Hostname()}
	port := u.Port()
	switch u.Scheme {
	case "smtps":
		c.implicit = true
		if port == "" {
			port = "465"
		}
	case "smtp":
		if port == "" {
			port = "587"
		}
		c.plain = isLoopback(c.host)
	default:
		return nil, fmt.Errorf("sender: relay URL %q: the scheme must be smtps or smtp", r.URL)
	}
	if c.host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("sender: relay URL %q: want smtps://host[:port] or smtp://host[:port] (user name and password are separate settings)", r.URL)
	}
	c.addr = net.JoinHostPort(c.host, port)
	switch mech := strings.ToUpper(r.AuthMechanism); {
	case r.OAuth2 != nil && mech == "":
		c.AuthMechanism = oauth.XOAUTH2
	case r.OAuth2 != nil && (mech == oauth.XOAUTH2 || mech == oauth.OAUTHBEARER):
		c.AuthMechanism = mech
	case r.OAuth2 != nil:
		return nil, fmt.Errorf("sender: AUTH mechanism %q: want %s or %s with OAuth2", r.AuthMechanism, oauth.XOAUTH2, oauth.OAUTHBEARER)
	case mech != "" && mech != sasl.Plain && mech != sasl.Login:
		return nil, fmt.Errorf("sender: AUTH mechanism %q: want PLAIN or LOGIN", r.AuthMechanism)
	}
	if c.LocalName == "" {
		c.LocalName = "localhost"
		if h, err := os.Hostname(); err == nil && h != "" {
			c.LocalName = h
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Minute
	}
	if c.DataTimeout <= 0 {
		c.DataTimeout = 10 * time.Minute
	}
	if c.Dial == nil {
		d := &net.Dialer{Timeout: c.Timeout}
		c.Dial = d.DialContext
	}
	return c, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsConfig is the configured TLS config naming the relay's host.
func (r *relay) tlsConfig() *tls.Config {
	cfg := &tls.Config{}
	if r.TLS != nil {
		cfg = r.TLS.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = r.host
	}
	return cfg
}

// conn is an open SMTP session, ready for a mail transaction.
type conn struct {
	c     *smtp.Client
	born  time.Time
	used  time.Time // end of the last command
	mails int       // transactions completed
}

// dial opens a session: TCP, TLS as configured, EHLO and AUTH. Any error
// here is the relay's or the configuration's, never the recipient's.
func (r *relay) dial(ctx context.Context) (*conn, error) {
	cn, err := r.dialOnce(ctx)
	// go-smtp ends the session after a refused AUTH: the new token goes on a new one.
	if errors.Is(err, oauth.ErrRefused) {
		cn, err = r.dialOnce(ctx)
	}
	return cn, err
}

func (r *relay) dialOnce(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	nc, err := r.Dial(ctx, "tcp", r.addr)
	if err != nil {
		return nil, err
	}
	// The handshake and greeting obey ctx through the deadline.
	if d, ok := ctx.Deadline(); ok {
		nc.SetDeadline(d)
	}
	c, err := r.session(ctx, nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	now := time.Now()
	return &conn{c: c, born: now, used: now}, nil
}

func (r *relay) session(ctx context.Context, nc net.Conn) (*smtp.Client, error) {
	var c *smtp.Client
	switch {
	case r.implicit:
		tc := tls.Client(nc, r.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS with %s: %w", r.addr, err)
		}
		c = smtp.NewClient(tc)
	case r.plain:
		c = smtp.NewClient(nc)
	default:
		// go-smtp says EHLO localhost before STARTTLS; our name follows
		// in the EHLO that TLS makes necessary (RFC 3207 §4.2).
		var err error
		if c, err = smtp.NewClientStartTLS(nc, r.tlsConfig()); err != nil {
			return nil, fmt.Errorf("STARTTLS with %s: %w", r.addr, err)
		}
	}
	c.CommandTimeout, c.SubmissionTimeout = r.Timeout, r.DataTimeout
	if err := c.Hello(r.LocalName); err != nil {
		return nil, fmt.Errorf("EHLO to %s: %w", r.addr, err)
	}
	if r.Username != "" && r.OAuth2 != nil {
		if err := r.OAuth2.AuthenticateOnce(ctx, r.AuthMechanism, r.Username, c.Auth); err != nil {
			return nil, fmt.Errorf("AUTH %s as %s at %s: %w", r.AuthMechanism, r.Username, r.addr, err)
		}
	} else if r.Username != "" {
		if err := c.Auth(r.auth(c)); err != nil {
			return nil, fmt.Errorf("AUTH as %s at %s: %w", r.Username, r.addr, err)
		}
	}
	return c, nil
}

func (r *relay) auth(c *smtp.Client) sasl.Client {
	mech := strings.ToUpper(r.AuthMechanism)
	if mech == "" && !c.SupportsAuth(sasl.Plain) && c.SupportsAuth(sasl.Login) {
		mech = sasl.Login
	}
	if mech == sasl.Login {
		return sasl.NewLoginClient(r.Username, r.Password)
	}
	return sasl.NewPlainClient("", r.Username, r.Password)
}

// txnError is an error of the mail transaction (MAIL, RCPT, DATA), whose
// 5xx answers concern the message or its recipient.
type txnError struct{ err error }

func (e *txnError) Error() string { return e.err.Error() }
func (e *txnError) Unwrap() error { return e.err }

// send runs one mail transaction: MAIL, RCPT for each address, DATA with
// size bytes of msg. It returns the server's final answer.
func (cn *conn) send(from string, to []string, msg io.Reader, size int64) (string, error) {
	defer func() { cn.used = time.Now() }()
	if err := cn.c.Mail(from, &smtp.MailOptions{Size: size}); err != nil {
		return "", &txnError{err}
	}
	for _, rcpt := range to {
		if err := cn.c.Rcpt(rcpt, nil); err != nil {
			return "", &txnError{err}
		}
	}
	w, err := cn.c.Data()
	if err != nil {
		return "", &txnError{err}
	}
	if _, err := io.Copy(w, msg); err != nil {
		w.Close()
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", &txnError{err}
	}
	cn.mails++
	return "250 " + resp.StatusText, nil
}

// reset ends a refused transaction so that the session can carry the next.
func (cn *conn) reset() error {
	defer func() { cn.used = time.Now() }()
	return cn.c.Reset()
}

// alive checks with NOOP a session that sat idle.
func (cn *conn) alive() bool {
	defer func() { cn.used = time.Now() }()
	return cn.c.Noop() == nil
}

// close says QUIT, or just closes when the session is broken.
func (cn *conn) close() {
	if cn.c.Quit() != nil {
		cn.c.Close()
	}
}

// answer is the server's reply in an error, as an SMTP client would print
// it ("451 4.7.1 Try again later"), or the error itself.
func answer(err error) string {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return err.Error()
	}
	s := fmt.Sprint(se.Code)
	if e := se.EnhancedCode; e != smtp.EnhancedCodeNotSet && e != smtp.NoEnhancedCode {
		s += fmt.Sprintf(" %d.%d.%d", e[0], e[1], e[2])
	}
	return s + " " + strings.ReplaceAll(se.Message, "\n", " ")
}
