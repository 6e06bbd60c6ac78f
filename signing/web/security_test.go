package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/workflow"
)

// Every answer carries the security headers: JSON, PDF, errors, the
// OpenAPI document, and what no route serves; a PDF's policy restricts
// framing only, since Chrome's PDF viewer breaks under default-src 'none'.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	f := newAPIFixture(t)
	want := map[string]string{
		"Content-Security-Policy":    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Content-Type-Options":     "nosniff",
		"Referrer-Policy":            "no-referrer",
		"X-Frame-Options":            "DENY",
		"Cross-Origin-Opener-Policy": "same-origin",
		"Permissions-Policy":         "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
		"Strict-Transport-Security":  "max-age=31536000",
	}
	link := "/api/v1/sign/" + f.links["r1"]
	for _, path := range []string{link, link + "/documents/0", link + "/documents/9", "/api/v1/sign/nope", "/api/v1/openapi.json", "/nothing/here"} {
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		for name, value := range want {
			if name == "Content-Security-Policy" && w.Code == http.StatusOK && w.Header().Get("Content-Type") == "application/pdf" {
				// A PDF shown in the browser: Chrome's viewer needs a
				// policy that leaves its own page's styles and plugin be.
				value = pdfSecurityPolicy
			}
			if got := w.Header().Get(name); got != value {
				t.Errorf("GET %s (%d): %s = %q, want %q", strings.Replace(path, f.links["r1"], "TOKEN", 1), w.Code, name, got, value)
			}
		}
	}
	// HSTS only when the public URL is https.
	plain := newAPIFixture(t, func(c *Config, _ *workflow.Draft) { c.PublicURL = "http://localhost:8080" })
	w := plain.get("/api/v1/sign/" + plain.links["r1"])
	if w.Header().Get("Strict-Transport-Security") != "" || w.Header().Get("Content-Security-Policy") == "" {
		t.Errorf("over http: %v", w.Header())
	}
}

// A link's GETs and POSTs each have their bucket; a client's requests
// have one over all links. An empty bucket answers 429 with Retry-After,
// and fills again with time.
func TestRateLimits(t *testing.T) {
	f := newAPIFixture(t, func(c *Config, _ *workflow.Draft) {
		c.Limits = Limits{PerClient: Rate{PerSecond: 100, Burst: 100}, PerLinkRead: Rate{PerSecond: 1, Burst: 3},
			PerLinkWrite: Rate{PerSecond: 0.25, Burst: 2}}
	})
	marie, jean := "/api/v1/sign/"+f.links["r1"], "/api/v1/sign/"+f.links["r2"]
	for range 3 {
		f.state(f.get(marie))
	}
	w := f.get(marie)
	f.wantError(w, http.StatusTooManyRequests, "rate_limited")
	if got := w.Header().Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1", got)
	}
	// Another link is not held back; the writes of this one neither.
	f.state(f.get(jean))
	f.sendCode(f.links["r1"])
	f.sendCode(f.links["r1"])
	w = f.post(marie+"/code", nil)
	f.wantError(w, http.StatusTooManyRequests, "rate_limited")
	if got := w.Header().Get("Retry-After"); got != "4" {
		t.Errorf("Retry-After of a write = %q, want 4", got)
	}
	if r := f.envelope().Recipient("r1"); len(r.CodesSent) != 2 {
		t.Errorf("%d codes sent, want 2: the limited request got through", len(r.CodesSent))
	}
	f.clock.advance(time.Second)
	f.state(f.get(marie))
	f.wantError(f.get(marie), http.StatusTooManyRequests, "rate_limited")
	f.clock.advance(4 * time.Second)
	f.sendCode(f.links["r1"])

}

func TestRateLimitPerClient(t *testing.T) {
	f := newAPIFixture(t, func(c *Config, _ *workflow.Draft) {
		c.Limits = Limits{PerClient: Rate{PerSecond: 1, Burst: 2}}
		c.TrustedProxies = mustPrefixes(t, "10.0.0.0/8")
	})
	from := func(remote, forwarded string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/sign/"+f.links["r1"], nil)
		r.RemoteAddr = remote
		if forwarded != "" {
			r.Header.Set("X-Forwarded-For", forwarded)
		}
		return f.request(r)
	}
	for _, c := range []struct {
		remote, forwarded string
		status            int
	}{
		{"[2001:db8:1:2::1]:4000", "", http.StatusOK},
		{"[2001:db8:1:2::ffff]:4000", "", http.StatusOK},
		// The same /64: one client.
		{"[2001:db8:1:2:aaaa::3]:4000", "", http.StatusTooManyRequests},
		{"[2001:db8:1:3::1]:4000", "", http.StatusOK},
		// Behind the proxy, each client counts alone.
		{"10.0.0.1:4000", "203.0.113.1", http.StatusOK},
		{"10.0.0.1:4000", "203.0.113.1", http.StatusOK},
		{"10.0.0.1:4000", "203.0.113.1", http.StatusTooManyRequests},
		{"10.0.0.1:4000", "203.0.113.2", http.StatusOK},
	} {
		if w := from(c.remote, c.forwarded); w.Code != c.status {
			t.Errorf("from %s for %q: %d, want %d: %s", c.remote, c.forwarded, w.Code, c.status, w.Body)
		}
	}
}

// The page of a refusal outside /api/ is text in the reader's language.
func TestGuardRefusalOutsideTheAPIIsText(t *testing.T) {
	f := newAPIFixture(t)
	mux := http.NewServeMux()
	f.server.route(mux, "POST /s/{token}/code", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a cross-site POST reached the handler")
	})
	r := httptest.NewRequest(http.MethodPost, "/s/"+f.links["r1"]+"/code", nil)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	r.Header.Set("Accept-Language", "fr-FR,fr;q=0.9")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden || w.Header().Get("Content-Type") != "text/plain; charset=utf-8" ||
		!strings.Contains(w.Body.String(), "rouvrez le lien") {
		t.Errorf("page refusal = %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
}

// A POST a browser sends from another site is refused before it does
// anything; one from the gateway's own pages, or from a program, is not.
// A gateway reached by another name than its public URL (an address on
// the LAN, localhost): its own forms carry the Origin of the host they were
// posted to, which is no other site.
func TestSameHostOriginAccepted(t *testing.T) {
	f := newAPIFixture(t)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/sign/"+f.links["r1"]+"/code", nil)
	r.Host = "10.1.2.3:8080"
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Origin", "http://10.1.2.3:8080")
	if w := f.request(r); w.Code != http.StatusOK {
		t.Errorf("same host: %d %s, want 200", w.Code, w.Body)
	}
	r = httptest.NewRequest(http.MethodPost, "/api/v1/sign/"+f.links["r1"]+"/code", nil)
	r.Host = "10.1.2.3:8080"
	r.Header.Set("Origin", "http://10.1.2.4:8080")
	f.wantError(f.request(r), http.StatusForbidden, "cross_origin")
}

func TestCrossOriginPostRefused(t *testing.T) {
	f := newAPIFixture(t)
	code := "/api/v1/sign/" + f.links["r1"] + "/code"
	for _, c := range []struct {
		site, origin string
		status       int
	}{
		{"cross-site", "https://evil.example", http.StatusForbidden},
		{"same-site", "https://other.org.example", http.StatusForbidden},
		{"", "https://evil.example", http.StatusForbidden},
		{"", "null", http.StatusForbidden},
		{"cross-site", "null", http.StatusForbidden},
		// the gateway's own form under its Referrer-Policy: no-referrer, as Chromium posts it
		{"same-origin", "null", http.StatusOK},
		{"same-origin", "https://evil.example", http.StatusForbidden},
		{"same-origin", "https://sign.org.example", http.StatusOK},
		{"", "https://sign.org.example", http.StatusOK},
		{"none", "", http.StatusOK},
		{"", "", http.StatusOK},
	} {
		r := httptest.NewRequest(http.MethodPost, code, nil)
		if c.site != "" {
			r.Header.Set("Sec-Fetch-Site", c.site)
		}
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		w := f.request(r)
		if w.Code != c.status {
			t.Errorf("Sec-Fetch-Site %q, Origin %q: %d, want %d", c.site, c.origin, w.Code, c.status)
		}
		if c.status == http.StatusForbidden {
			f.wantError(w, http.StatusForbidden, "cross_origin")
		}
	}
	if r := f.envelope().Recipient("r1"); len(r.CodesSent) != 5 {
		t.Errorf("%d codes sent, want 5 (the allowed requests only)", len(r.CodesSent))
	}
	// A GET from another site (the link in a webmail) is fine.
	r := httptest.NewRequest(http.MethodGet, "/api/v1/sign/"+f.links["r1"], nil)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	r.Header.Set("Origin", "https://mail.example")
	f.state(f.request(r))
}

// The limiter's memory stays within MaxKeys however many clients come.
func TestLimiterBounded(t *testing.T) {
	l := newLimiter(Rate{PerSecond: 1, Burst: 5}, 100)
	now := time.Now()
	for i := range 10_000 {
		if ok, _ := l.allow(clientKey(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})), now); !ok {
			t.Fatalf("a new client was refused")
		}
		if len(l.buckets) > 100 {
			t.Fatalf("%d buckets, bound 100", len(l.buckets))
		}
	}
	// When every bucket is busy, a new client takes a random one's place;
	// once the others are idle long enough to be full, they go first.
	busy := clientKey(netip.MustParseAddr("192.0.2.1"))
	l.allow(busy, now.Add(time.Second))
	if len(l.buckets) != 100 || l.buckets[busy] == nil {
		t.Fatalf("%d buckets, busy one kept %v", len(l.buckets), l.buckets[busy] != nil)
	}
	fresh := clientKey(netip.MustParseAddr("192.0.2.2"))
	l.allow(fresh, now.Add(5500*time.Millisecond))
	if len(l.buckets) != 2 || l.buckets[busy] == nil || l.buckets[fresh] == nil {
		t.Errorf("%d buckets after the idle ones filled up, want the busy and the new one", len(l.buckets))
	}
}

// No token or code the API tests used is in the logs, though every
// request is logged (by its route).
func TestLogsHoldNoSecret(t *testing.T) {
	f := newAPIFixture(t)
	link := "/api/v1/sign/" + f.links["r1"]
	f.state(f.get(link))
	code := f.sendCode(f.links["r1"])
	f.wantError(f.post(link+"/sign", map[string]any{"code": wrong(code), "consent": true}), http.StatusForbidden, "wrong_code")
	f.state(f.post(link+"/sign", map[string]any{"code": code, "consent": true}))
	f.get(link + "/documents/0")
	f.get("/api/v1/sign/" + f.links["sender"])
	if len(f.secrets) < 4 { // three links and a code
		t.Fatalf("only %d secrets seen", len(f.secrets))
	}
	routes := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var rec struct{ Msg, Route string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == "web: request" {
			routes[rec.Route] = true
		}
	}
	for _, want := range []string{"GET /api/v1/sign/{token}", "POST /api/v1/sign/{token}/code", "POST /api/v1/sign/{token}/sign",
		"GET /api/v1/sign/{token}/documents/{n}"} {
		if !routes[want] {
			t.Errorf("no request logged for %s: %v", want, routes)
		}
	}
	f.checkLogs()
}

// TestPDFPolicyLeavesTheViewerBe: a PDF's Content-Security-Policy has no
// fetch directive (default-src, style-src, object-src…), which Chrome
// applies to the page it wraps the PDF in, and still forbids framing.
func TestPDFPolicyLeavesTheViewerBe(t *testing.T) {
	f := newAPIFixture(t)
	w := f.get("/api/v1/sign/" + f.links["r1"] + "/documents/0")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/pdf" {
		t.Fatalf("GET the document: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	csp := w.Header().Get("Content-Security-Policy")
	for _, directive := range strings.Split(csp, ";") {
		name, _, _ := strings.Cut(strings.TrimSpace(directive), " ")
		if strings.HasSuffix(name, "-src") {
			t.Errorf("the PDF's policy %q restricts fetches with %s: Chrome's viewer would not show it", csp, name)
		}
	}
	if !strings.Contains(csp, "frame-ancestors 'none'") || w.Header().Get("X-Frame-Options") != "DENY" {
		t.Errorf("the PDF may be framed by another site: %q, X-Frame-Options %q", csp, w.Header().Get("X-Frame-Options"))
	}
}
