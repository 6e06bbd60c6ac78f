package web

import (
	"crypto/sha256"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parapheur/parapheur/workflow/problem"
)

// Rate is a token bucket: Burst requests at once, then PerSecond.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Limits bounds how fast one client or one link may ask. A zero Rate
// takes its default (DefaultLimits); the bench on loopback, where every
// simulated signer has the same address, raises them.
type Limits struct {
	// PerClient applies to every request of a client address (an IPv6
	// client by its /64, which one household or host usually holds whole).
	PerClient Rate
	// PerLinkRead applies to the GETs of one link token.
	PerLinkRead Rate
	// PerLinkWrite applies to the POSTs of one link token: asking for a
	// code, signing, declining. It is loose enough for the machine's own
	// limits (5 codes an hour, 5 tries a code) to be the ones a person or a
	// script meets, with their own error codes; it only keeps one link from
	// flooding the gateway.
	PerLinkWrite Rate
	// MaxKeys bounds the addresses and tokens remembered by each limit;
	// past it, idle ones are forgotten first.
	MaxKeys int
}

// DefaultLimits are the limits of a zero Limits: a person reading and
// acting never meets them, a script guessing tokens or codes soon does.
var DefaultLimits = Limits{
	PerClient:    Rate{PerSecond: 20, Burst: 60},
	PerLinkRead:  Rate{PerSecond: 5, Burst: 20},
	PerLinkWrite: Rate{PerSecond: 1, Burst: 20},
	MaxKeys:      100_000,
}

func (l Limits) withDefaults() Limits {
	def := func(r *Rate, d Rate) {
		if r.PerSecond <= 0 || r.Burst <= 0 {
			*r = d
		}
	}
	def(&l.PerClient, DefaultLimits.PerClient)
	def(&l.PerLinkRead, DefaultLimits.PerLinkRead)
	def(&l.PerLinkWrite, DefaultLimits.PerLinkWrite)
	if l.MaxKeys <= 0 {
		l.MaxKeys = DefaultLimits.MaxKeys
	}
	return l
}

// guards holds the rate limits of the links.
type guards struct {
	client, read, write *limiter
	// now is the limits' clock (time.Now; tests set their own).
	now func() time.Time
}

func newGuards(l Limits) *guards {
	l = l.withDefaults()
	return &guards{
		client: newLimiter(l.PerClient, l.MaxKeys),
		read:   newLimiter(l.PerLinkRead, l.MaxKeys),
		write:  newLimiter(l.PerLinkWrite, l.MaxKeys),
		now:    time.Now,
	}
}

// key is what a limit counts by: a client's address or prefix, or the
// SHA-256 of a link token (so that no token is held in memory, and a
// long forged one takes no more room than a real one).
type key [sha256.Size]byte

func clientKey(a netip.Addr) key {
	if a.Is6() {
		p, _ := a.Prefix(64) // cannot fail: 64 fits an IPv6 address
		a = p.Addr()
	}
	return sha256.Sum256(a.AsSlice())
}

func tokenKey(token string) key { return sha256.Sum256([]byte("token\x00" + token)) }

// limiter is a set of token buckets of one Rate, by key, in memory (each
// replica counts its own: a limit is a defence against floods and
// guessing, not a quota).
type limiter struct {
	rate    Rate
	maxKeys int
	// full is how long an idle bucket takes to fill up again: after it,
	// forgetting the bucket changes nothing.
	full time.Duration

	mu        sync.Mutex
	buckets   map[key]*bucket
	lastSweep time.Time
}

// bucket is one key's count: left requests at time at.
type bucket struct {
	left float64
	at   time.Time
}

func newLimiter(r Rate, maxKeys int) *limiter {
	return &limiter{rate: r, maxKeys: maxKeys, buckets: make(map[key]*bucket),
		full: time.Duration(float64(r.Burst) / r.PerSecond * float64(time.Second))}
}

// allow takes one request from k's bucket; when the bucket is empty it
// returns false and how long until it holds one request again.
func (l *limiter) allow(k key, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil {
		l.makeRoom(now)
		b = &bucket{left: float64(l.rate.Burst), at: now}
		l.buckets[k] = b
	}
	if now.After(b.at) {
		b.left = min(float64(l.rate.Burst), b.left+now.Sub(b.at).Seconds()*l.rate.PerSecond)
		b.at = now
	}
	if b.left >= 1 {
		b.left--
		return true, 0
	}
	return false, time.Duration((1 - b.left) / l.rate.PerSecond * float64(time.Second))
}

// makeRoom forgets the buckets that filled up again, once a full period
// or when the set is at its bound; if all are busy, it forgets one at
// random (Go's map order), which costs the forgotten key its count but
// never lets memory grow past the bound.
func (l *limiter) makeRoom(now time.Time) {
	if len(l.buckets) < l.maxKeys && now.Sub(l.lastSweep) < l.full {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.at) >= l.full {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.maxKeys {
			break
		}
		delete(l.buckets, k)
	}
}

// guard wraps the handler of a link's route: the client's and the link's
// rate limits, the refusal of cross-origin POSTs, and a log line that
// names the route, never the URL (which holds the token).
func (s *Server) guard(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		s.check(rec, r, h)
		s.log.Debug("web: request", "method", r.Method, "route", r.Pattern, "status", rec.status,
			"duration", time.Since(start).Round(time.Microsecond).String())
	})
}

// check runs the guards of a request, then h if they let it through.
func (s *Server) check(w http.ResponseWriter, r *http.Request, h http.HandlerFunc) {
	now := s.guards.now()
	if ok, wait := s.guards.client.allow(clientKey(s.clientIP(r)), now); !ok {
		s.tooMany(w, r, wait)
		return
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	if write && !s.sameOrigin(r) {
		s.refuse(w, r, http.StatusForbidden, "cross_origin", problem.Text{
			EN: "this request did not come from the gateway's own pages: open the link from your mail again",
			FR: "cette demande ne vient pas des pages du parapheur : rouvrez le lien depuis votre message"}, 0)
		return
	}
	if token := r.PathValue("token"); token != "" {
		links := s.guards.read
		if write {
			links = s.guards.write
		}
		if ok, wait := links.allow(tokenKey(token), now); !ok {
			s.tooMany(w, r, wait)
			return
		}
	}
	h(w, r)
}

// sameOrigin tells whether a state-changing request may come from where
// it comes from: a browser says so with Sec-Fetch-Site (same-origin, or
// none for what the person typed) and Origin, which must then be the
// public URL's; a program sends neither. This is stricter than
// http.CrossOriginProtection, which compares Origin with the Host header
// a reverse proxy may have rewritten, and lets a sibling site through
// when the browser says same-origin.
//
// Under the pages' Referrer-Policy: no-referrer, a browser posts their
// forms with Origin: null (Fetch, "append a request Origin header"); its
// Sec-Fetch-Site: same-origin then tells that the form was the gateway's.
func (s *Server) sameOrigin(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	if site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origins := r.Header.Values("Origin")
	if len(origins) == 0 {
		return true
	}
	if len(origins) != 1 {
		return false
	}
	o := origins[0]
	if o == "null" {
		return site == "same-origin"
	}
	// The public URL's origin, or the host the request was sent to (a
	// gateway reached by another name than its public URL, as Go's
	// http.CrossOriginProtection allows).
	u, err := url.Parse(o)
	return o == s.origin || (err == nil && u.Host != "" && u.Host == r.Host)
}

func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	s.log.Debug("web: rate limited", "route", r.Pattern, "client", s.clientIP(r))
	s.refuse(w, r, http.StatusTooManyRequests, "rate_limited", problem.Text{
		EN: "too many requests: wait a moment and try again",
		FR: "trop de demandes : patientez un instant et réessayez"}, int(math.Ceil(wait.Seconds())))
}

// refuse answers a request the guards stop: the API's JSON error on
// /api/ paths, a short page of text elsewhere, in the reader's language.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, code string, text problem.Text, retryAfter int) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	msg := text.In(s.lang(r, nil))
	if strings.HasPrefix(r.URL.Path, "/api/") {
		s.writeJSON(w, status, map[string]APIError{"error": {Code: code, Message: msg}})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write([]byte(msg + "\n"))
}

// statusRecorder keeps the status of an answer for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Content-Security-Policy of every answer: nothing but the gateway's own
// style sheets and images, no script at all, no framing, forms posted only
// to the gateway.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// pdfSecurityPolicy replaces contentSecurityPolicy on a PDF shown in the
// browser: Chrome wraps an inline PDF in a page of its own that takes the
// answer's policy, and under default-src 'none' that page cannot style or
// embed its viewer, which then fills a fifth of the window or nothing
// (Chromium issue 271452). A PDF runs no page script; what the policy
// still forbids is framing it into another site.
const pdfSecurityPolicy = "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// headers sets the security headers of every answer.
func (s *Server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
		if s.secure {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}
