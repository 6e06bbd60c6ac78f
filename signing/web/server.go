// Package web is the gateway's HTTP door for people and programs holding a
// link: the signer's page (PUBLIC_URL/s/TOKEN), the sender's status page
// (PUBLIC_URL/e/TOKEN) and the JSON API that mirrors them
// (/api/v1/sign/TOKEN…, described by /api/v1/openapi.json), as SPEC §3
// describes them, the download page of the final mails (PUBLIC_URL/d/TOKEN,
// SPEC §5) and the verification page (PUBLIC_URL/verify, SPEC §6).
//
// Every handler is a thin translation between HTTP and package ceremony,
// which holds the operations; the workflow's rules are the state machine's,
// and a refusal is shown in the reader's language with the stable code of
// its kind. Pages are server-rendered (html/template, assets embedded) and
// work without JavaScript.
package web

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/parapheur/parapheur/signing/ceremony"
	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/problem"
)

// Config configures the web door.
type Config struct {
	// PublicURL is the base of the links, e.g. "https://sign.org.example"
	// (no trailing slash). Cookies are Secure when it is https, and a
	// state-changing request whose Origin is not it is refused.
	PublicURL string
	// Language is the default language ("fr" or "en") of pages whose
	// envelope did not choose one and whose reader's browser says nothing.
	Language string
	// Location is the time zone times are shown in; nil means UTC.
	Location *time.Location
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed; a request from elsewhere is its connection's address.
	TrustedProxies []netip.Prefix
	// SecretKey keys the CSRF tokens of the forms (at least 32 bytes, the
	// same on every replica).
	SecretKey []byte
	// Limits are the rate limits of the links; zero means DefaultLimits.
	Limits Limits
	// CACert is the gateway's CA certificate: the verification page tells
	// whether it issued a signature's certificate. Nil: not told.
	CACert *x509.Certificate
	// MaxUpload bounds the bytes of one upload to the verification page;
	// zero means DefaultMaxUpload.
	MaxUpload int64
}

// Server serves the pages and the API.
type Server struct {
	cfg    Config
	cer    *ceremony.Ceremony
	log    *slog.Logger
	origin string // scheme://host of PublicURL
	secure bool   // PublicURL is https
	guards *guards
	pages  *pages
	// checker reports on the files of the verification page.
	checker *verdict.Checker
}

// New checks cfg and returns a Server.
func New(cfg Config, c *ceremony.Ceremony, log *slog.Logger) (*Server, error) {
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("web: public URL %q is not an absolute http(s) URL", cfg.PublicURL)
	}
	if len(cfg.SecretKey) < 32 {
		return nil, errors.New("web: the secret key must have at least 32 bytes")
	}
	if cfg.Language == "" {
		cfg.Language = "fr"
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = DefaultMaxUpload
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	s := &Server{cfg: cfg, cer: c, log: log, origin: u.Scheme + "://" + u.Host, secure: u.Scheme == "https",
		checker: &verdict.Checker{CA: cfg.CACert, Location: cfg.Location, Log: log}}
	if c != nil {
		s.checker.Finder = c
	}
	if s.pages, err = newPages(); err != nil {
		return nil, err
	}
	s.guards = newGuards(cfg.Limits)
	return s, nil
}

// Handler returns the routes of the pages and the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.pageRoutes(mux)
	s.verifyRoutes(mux)
	s.downloadRoutes(mux)
	s.apiRoutes(mux)
	return s.headers(mux)
}

// route registers h for pattern behind the guards (rate limits, origin
// checks) that apply to every request of a link.
func (s *Server) route(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	mux.Handle(pattern, s.guard(h))
}

// client is who sent r: the connection's address, or, when that is a
// trusted proxy, the address the proxies saw (the right-most address of
// X-Forwarded-For that is not itself a trusted proxy).
func (s *Server) client(r *http.Request) workflow.Client {
	return workflow.Client{IP: s.clientIP(r).String(), UserAgent: workflow.Clip(r.UserAgent(), 512)}
}

func (s *Server) clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.IPv4Unspecified()
	}
	addr = addr.Unmap()
	if !s.trusted(addr) {
		return addr
	}
	hops := r.Header.Values("X-Forwarded-For")
	var all []string
	for _, h := range hops {
		all = append(all, strings.Split(h, ",")...)
	}
	for i := len(all) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(all[i]))
		if err != nil {
			return addr // a hop we cannot read: stop at the last one we trust
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a
		}
		addr = a
	}
	return addr
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// failure is how an error is told to a person or a program: an HTTP
// status, a stable code and a sentence in both languages.
type failure struct {
	status int
	code   string
	text   problem.Text
	// retryAfter, when positive, is sent as Retry-After (seconds).
	retryAfter int
}

// unavailableRetry is the Retry-After, in seconds, of a request that met
// a part of the gateway that did not answer.
const unavailableRetry = 10

// unavailable reports whether err is a part of the gateway not answering
// (the store's server, the time-stamp authority): a network error or a
// deadline, which passes, not a fault of the request or of the gateway.
func unavailable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)
}

// failureOf classifies err; an unexpected error is logged and told as an
// internal error, without its details.
func (s *Server) failureOf(r *http.Request, err error) failure {
	var refusal *workflow.Error
	switch {
	case errors.Is(err, ceremony.ErrNoLink):
		return failure{http.StatusNotFound, "link_not_found", problem.Text{
			EN: "this link is not valid: check that it was copied whole from the mail",
			FR: "ce lien n'est pas valable : vérifiez qu'il a été copié en entier depuis le message"}, 0}
	case errors.Is(err, ceremony.ErrBusy):
		return failure{http.StatusConflict, "busy", problem.Text{EN: ceremony.ErrBusy.Error(),
			FR: "une autre signature de ce document est en cours : réessayez dans un instant"}, 2}
	case errors.Is(err, ceremony.ErrConsent):
		return failure{http.StatusBadRequest, "consent_required", problem.Text{EN: ceremony.ErrConsent.Error(),
			FR: "cochez la case de consentement pour signer ou approuver"}, 0}
	case errors.Is(err, ceremony.ErrCancelReason):
		return failure{http.StatusBadRequest, workflow.ErrReasonRequired.Code, problem.Text{EN: ceremony.ErrCancelReason.Error(),
			FR: "donnez le motif de l'annulation : les personnes qui ont déjà agi le recevront"}, 0}
	case errors.Is(err, ceremony.ErrNoDocument):
		return failure{http.StatusNotFound, "document_not_found", problem.Text{EN: "there is no such document in this envelope",
			FR: "cette demande n'a pas de tel document"}, 0}
	case errors.As(err, &refusal):
		return failure{statusOf(refusal.Code), refusal.Code, problem.From(err), 0}
	case unavailable(err):
		s.log.Warn("web: a part the gateway needs did not answer", "method", r.Method, "route", r.Pattern, "err", err)
		return failure{http.StatusServiceUnavailable, "unavailable", problem.Text{
			EN: "a part the gateway needs did not answer just now; nothing was done: try again in a moment",
			FR: "un élément dont le parapheur a besoin n'a pas répondu pour l'instant ; rien n'a été fait : réessayez dans un moment"}, unavailableRetry}
	}
	s.log.Error("web: request failed", "method", r.Method, "route", r.Pattern, "err", err)
	return failure{http.StatusInternalServerError, "internal", problem.Text{
		EN: "the gateway could not do this just now; try again in a moment",
		FR: "le parapheur n'a pas pu le faire pour l'instant ; réessayez dans un moment"}, 0}
}

// statusOf is the HTTP status of a workflow refusal kind.
func statusOf(code string) int {
	switch code {
	case workflow.ErrUnknownRecipient.Code:
		return http.StatusNotFound
	case workflow.ErrWrongRole.Code, workflow.ErrNoDelegation.Code,
		workflow.ErrWrongCode.Code, workflow.ErrCodeExpired.Code, workflow.ErrNoCode.Code, workflow.ErrNotVerified.Code:
		return http.StatusForbidden
	case workflow.ErrTooManyCodes.Code, workflow.ErrReminderTooSoon.Code:
		return http.StatusTooManyRequests
	case workflow.ErrReasonRequired.Code, workflow.ErrBadDelegate.Code, workflow.ErrInvalidDraft.Code, workflow.ErrMalformedCode.Code:
		return http.StatusBadRequest
	}
	// ended, deadline passed, completing, not your turn, already acted,
	// document changed: the request is right but the envelope is not in a
	// state to accept it.
	return http.StatusConflict
}

// lang is the language of a page or an API message for r about env: the
// reader's explicit choice (?lang=, or the cookie the switch sets), the
// envelope's language when its sender chose it, the reader's browser
// (Accept-Language), the envelope's language, the configured default.
func (s *Server) lang(r *http.Request, env *workflow.Envelope) string {
	if l := r.URL.Query().Get("lang"); l == "fr" || l == "en" {
		return l
	}
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == "fr" || c.Value == "en") {
		return c.Value
	}
	if env != nil && env.LanguageGiven {
		return env.Language
	}
	if l := acceptLanguage(r.Header.Get("Accept-Language")); l != "" {
		return l
	}
	if env != nil && env.Language != "" {
		return env.Language
	}
	return s.cfg.Language
}

// langCookie keeps the reader's choice of language.
const langCookie = "lang"

// acceptLanguage picks fr or en from an Accept-Language header (RFC 9110
// §12.5.4), by quality then order; "" when neither is acceptable.
func acceptLanguage(h string) string {
	best, bestQ := "", 0.0
	for _, part := range strings.Split(h, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if _, err := fmt.Sscanf(v, "%g", &q); err != nil {
				continue
			}
		}
		primary, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if (primary == "fr" || primary == "en") && q > bestQ {
			best, bestQ = primary, q
		}
	}
	return best
}
