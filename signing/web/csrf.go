package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// Cross-site request forgery (CSRF) protection of the page forms: each
// browser gets a random cookie on its first page, and each form carries a
// token that is the HMAC, under the gateway's secret key, of that cookie
// and of the link the page is about. Another site can make a browser post
// a form, but it can neither read the cookie nor compute the token, and a
// token taken from one link's page does not work on another's. The cookie
// is also SameSite=Strict, so a cross-site post does not even carry it.

// csrfCookieBytes is the size of the per-browser random value.
const csrfCookieBytes = 32

// csrfField is the name of the hidden form field that carries the token.
const csrfField = "csrf"

// csrfCookie is the cookie's name: with the __Host- prefix when it is
// Secure, so that no sibling domain can set it (RFC 6265bis §4.1.3.2).
func (s *Server) csrfCookie() string {
	if s.secure {
		return "__Host-csrf"
	}
	return "csrf"
}

// csrfSeed returns the browser's random value, setting a new cookie when it
// has none (or one that is not ours).
func (s *Server) csrfSeed(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(s.csrfCookie()); err == nil && validSeed(c.Value) {
		return c.Value
	}
	b := make([]byte, csrfCookieBytes)
	rand.Read(b)
	seed := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: s.csrfCookie(), Value: seed, Path: "/", HttpOnly: true,
		Secure: s.secure, SameSite: http.SameSiteStrictMode})
	return seed
}

func validSeed(v string) bool {
	b, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil && len(b) == csrfCookieBytes
}

// csrfToken is the form token of the browser's seed for the link token.
func (s *Server) csrfToken(seed, link string) string {
	m := hmac.New(sha256.New, s.cfg.SecretKey)
	m.Write([]byte("parapheur csrf\x00"))
	m.Write([]byte(seed))
	m.Write([]byte{0})
	m.Write([]byte(link))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfValid tells whether the posted form of r carries the token of the
// browser's cookie for the link token. r.PostForm must be parsed.
func (s *Server) csrfValid(r *http.Request, link string) bool {
	return s.csrfTokenValid(r, r.PostForm.Get(csrfField), link)
}

// csrfTokenValid tells whether token is the token of the browser's
// cookie for link.
func (s *Server) csrfTokenValid(r *http.Request, token, link string) bool {
	c, err := r.Cookie(s.csrfCookie())
	if err != nil || !validSeed(c.Value) {
		return false
	}
	return hmac.Equal([]byte(token), []byte(s.csrfToken(c.Value, link)))
}
