package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"
)

// The providers, as the configuration key oauth2.provider names them.
const (
	// Microsoft is the client-credentials grant of the Microsoft identity platform.
	Microsoft = "microsoft"
	// Google is a Google service account with domain-wide delegation.
	Google = "google"
	// RefreshToken is a refresh token stored by "parapheur oauth2 login".
	RefreshToken = "refresh_token"
)

// Config says where the tokens come from. The comments name the configuration keys, which
// the errors name too.
type Config struct {
	// Provider is Microsoft, Google or RefreshToken (oauth2.provider).
	Provider string
	// Tenant is the Microsoft Entra tenant, its ID or domain (oauth2.tenant).
	Tenant string
	// ClientID is the application (client) ID of the app registration (oauth2.client_id).
	ClientID string
	// ClientSecret is the app's client secret (oauth2.client_secret_file); for Microsoft,
	// either it or ClientCertificate.
	ClientSecret string
	// ClientCertificate is the PEM certificate and RSA private key whose certificate the
	// app registration holds (oauth2.client_certificate_file).
	ClientCertificate []byte
	// ServiceAccount is a Google service account's JSON key (oauth2.service_account_file).
	ServiceAccount []byte
	// TokenFile is where "parapheur oauth2 login" stored the refresh token
	// (oauth2.token_file); a renewed refresh token is written back there.
	TokenFile string
	// User is the mailbox: the service account acts as it.
	User string
	// TokenURL replaces the provider's token endpoint (oauth2.token_url).
	TokenURL string
	// DeviceURL replaces the device authorization endpoint of the login
	// (oauth2.device_url).
	DeviceURL string
	// Scopes replace the provider's scopes (oauth2.scopes).
	Scopes []string
	// HTTPClient makes the requests to the token endpoint; nil: a client with a 30 s timeout.
	HTTPClient *http.Client
}

// renewBefore is how long before its expiry a token is replaced, so that a token never
// expires between the fetch and the login.
const renewBefore = time.Minute

// Source gets, caches and renews the access tokens of one mailbox. It is safe for
// concurrent use: the poller and every sender worker share one.
type Source struct {
	fetch func(ctx context.Context) (*oauth2.Token, error)
	hc    *http.Client
	log   *slog.Logger
	now   func() time.Time

	mu  sync.Mutex
	tok *oauth2.Token
	err error // why the last token could not be had or was refused; nil after a success
	// renewed is set when a token was refused and dropped, until an authentication
	// succeeds: a new token refused too is an error no renewal mends.
	renewed bool
}

// New checks cfg and makes a Source; it fetches nothing yet. log may be nil.
func New(cfg Config, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Source{hc: cfg.HTTPClient, log: log, now: time.Now}
	if s.hc == nil {
		s.hc = &http.Client{Timeout: 30 * time.Second}
	}
	var err error
	switch cfg.Provider {
	case Microsoft:
		s.fetch, err = microsoft(cfg, s.now)
	case Google:
		s.fetch, err = google(cfg)
	case RefreshToken:
		s.fetch, err = refreshToken(cfg)
	case "":
		err = errors.New("oauth2.provider: required: microsoft, google or refresh_token")
	default:
		err = fmt.Errorf("oauth2.provider: want microsoft, google or refresh_token, got %q", cfg.Provider)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Token returns a valid access token: the cached one, or a new one when it expires
// within a minute.
func (s *Source) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && (s.tok.Expiry.IsZero() || s.tok.Expiry.Sub(s.now()) > renewBefore) {
		return s.tok.AccessToken, nil
	}
	tok, err := s.fetch(context.WithValue(ctx, oauth2.HTTPClient, s.hc))
	if err == nil && tok.AccessToken == "" {
		err = errors.New("oauth2: the token endpoint answered without an access token")
	}
	if err != nil {
		s.tok, s.err = nil, err
		s.log.Warn("oauth2: no access token", "err", err)
		return "", err
	}
	s.tok, s.err = tok, nil
	s.log.Debug("oauth2: new access token", "expires", tok.Expiry)
	return tok.AccessToken, nil
}

// Check reports whether a token can be had, for the readiness check: the last failure
// (no token could be had, or the server refused a new one) until a login or a fetch
// succeeds again; else a token, the cached one when it is still good.
func (s *Source) Check(ctx context.Context) error {
	s.mu.Lock()
	refused := s.err
	s.mu.Unlock()
	if refused != nil {
		return refused
	}
	_, err := s.Token(ctx)
	return err
}

// ErrRefused matches the error of an authentication the server refused: the token it
// refused is dropped, so that the next authentication fetches a new one.
var ErrRefused = errors.New("the server refused the access token")

// Authenticate logs user in with mech, XOAUTH2 or OAUTHBEARER: auth runs the protocol's
// AUTHENTICATE (IMAP) with the client it is given. When the server refuses the token, a
// new one is fetched at once and tried, once: an expired or revoked token costs no lost
// round. Protocols whose session does not survive a refusal (go-smtp ends it with "*")
// use AuthenticateOnce and a new connection instead.
func (s *Source) Authenticate(ctx context.Context, mech, user string, auth func(sasl.Client) error) error {
	err := s.AuthenticateOnce(ctx, mech, user, auth)
	if !errors.Is(err, ErrRefused) {
		return err
	}
	if cerr := s.Check(ctx); cerr != nil {
		return fmt.Errorf("%w; and a new token cannot be had: %w", err, cerr)
	}
	return s.AuthenticateOnce(ctx, mech, user, auth)
}

// AuthenticateOnce is Authenticate without the second try. After a refusal it drops the
// token; a refusal of the token fetched after that is remembered for Check, since a new
// token will not help: the app lacks the permission, or the mechanism is wrong.
func (s *Source) AuthenticateOnce(ctx context.Context, mech, user string, auth func(sasl.Client) error) error {
	token, err := s.Token(ctx)
	if err != nil {
		return err
	}
	err = try(mech, user, token, auth)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.renewed, s.err = false, nil
		return nil
	case !refused(err):
		return err
	case s.renewed:
		s.err = fmt.Errorf("the server refused a new access token for %s: %w (is the app allowed to use this mailbox, and is oauth2.mechanism one the server offers?)", user, err)
		return s.err
	}
	s.log.Warn("oauth2: the server refused the access token; getting a new one", "user", user, "mechanism", mech, "err", err)
	if s.tok != nil && s.tok.AccessToken == token {
		s.tok = nil
	}
	s.renewed = true
	return err
}

// authError is a failed authentication, with the challenge the server sent if any.
type authError struct {
	err       error
	challenge *Challenge
}

// Is makes a refusal match ErrRefused.
func (e *authError) Is(target error) bool { return target == ErrRefused && refused(e) }

func (e *authError) Error() string {
	if e.challenge == nil {
		return e.err.Error()
	}
	return fmt.Sprintf("%v (%s)", e.err, e.challenge)
}

func (e *authError) Unwrap() error { return e.err }

func try(mech, user, token string, auth func(sasl.Client) error) error {
	c, err := NewClient(mech, user, token)
	if err != nil {
		return err
	}
	if err := auth(c); err != nil {
		return &authError{err: err, challenge: c.Failure}
	}
	return nil
}

// refused tells a server's refusal (an IMAP NO, an SMTP 5xx, a failure challenge) from
// a broken connection, after which a new token would not help.
func refused(err error) bool {
	var ae *authError
	if errors.As(err, &ae) && ae.challenge != nil {
		return true
	}
	// ae.err, not err: Is above calls refused with the authError itself.
	if ae != nil {
		err = ae.err
	}
	var ie *imap.Error
	var se *smtp.SMTPError
	return errors.As(err, &ie) || (errors.As(err, &se) && se.Code >= 500)
}
