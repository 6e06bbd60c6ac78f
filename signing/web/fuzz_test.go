package web

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// FuzzReadJSON checks that any body and content type is either taken or
// refused with a bodyError of a client-error status; nothing panics.
func FuzzReadJSON(f *testing.F) {
	f.Add("application/json", `{"code": "123456", "consent": true}`)
	f.Add("application/json; charset=utf-8", `{"reason": "non", "name": "Luc", "email": "luc@partner.example"}`)
	f.Add("application/json", `{"code": 1}`)
	f.Add("application/json", `{} {}`)
	f.Add("application/json", `{"consent": true}]`)
	f.Add("text/plain", `{}`)
	f.Add("", ``)
	f.Add("application/x-www-form-urlencoded", `code=1`)
	f.Fuzz(func(t *testing.T, contentType, body string) {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/sign/t/sign", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		var req actRequest
		ok, err := readJSON(httptest.NewRecorder(), r, &req)
		var be *bodyError
		switch {
		case err == nil:
			if ok == (body == "") {
				t.Fatalf("readJSON(%q) = %v without error", body, ok)
			}
		case !errors.As(err, &be) || be.status < 400 || be.status > 499 || be.code == "" || be.msg == "":
			t.Fatalf("readJSON(%q, %q): %#v", contentType, body, err)
		}
	})
}

// FuzzAcceptLanguage reads any Accept-Language header: never a panic, and
// only a language the pages speak, or none.
func FuzzAcceptLanguage(f *testing.F) {
	for _, h := range []string{"fr-FR,fr;q=0.9,en;q=0.8", "en-GB", "de, en;q=0.1", "*", "fr;q=abc, en;q=0.5", ";;;,", "FR-ca;q=1.0"} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if l := acceptLanguage(h); l != "" && l != "fr" && l != "en" {
			t.Fatalf("acceptLanguage(%q) = %q", h, l)
		}
	})
}

// FuzzClientIP reads any X-Forwarded-For behind a trusted proxy: the
// address found is always a valid one, and it is the proxy's own only when
// no hop could be read as an address outside the trusted range.
func FuzzClientIP(f *testing.F) {
	for _, h := range []string{"203.0.113.9", "203.0.113.9, 10.0.0.2", "garbage, 10.0.0.2", "::ffff:192.0.2.1", "", " , ,", "2001:db8::1, 10.0.0.3"} {
		f.Add(h)
	}
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "10.0.0.1:4321"
		r.Header.Set("X-Forwarded-For", h)
		a := s.clientIP(r)
		if !a.IsValid() {
			t.Fatalf("X-Forwarded-For %q gave no valid address", h)
		}
		last := strings.Split(h, ",")
		hop, err := netip.ParseAddr(strings.TrimSpace(last[len(last)-1]))
		if err == nil && !s.trusted(hop.Unmap()) && a != hop.Unmap() {
			t.Fatalf("X-Forwarded-For %q: the nearest untrusted hop is %s, got %s", h, hop, a)
		}
	})
}
