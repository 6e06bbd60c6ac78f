package testrig

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// OAuth2 is a small OAuth 2.0 authorization server for the mail rig's oauth2 passdb
// (see [MailOptions.OAuth2Introspection]). Its token endpoint (RFC 6749 §3.2) knows the
// client-credentials grant (a secret or an RS256 client assertion, RFC 7523 §2.2), the
// refresh-token grant, which rotates the refresh token, the JWT bearer grant of a
// Google service account (RFC 7523 §2.1) and the device authorization grant (RFC 8628),
// whose sign-in the test does with Approve; its introspection endpoint (RFC 7662) is what
// Dovecot asks. Tests expire and revoke the tokens it issued.
type OAuth2 struct {
	srv *httptest.Server

	mu       sync.Mutex
	clients  map[string]oauth2Client
	refresh  map[string]string // refresh token → user
	tokens   map[string]*issued
	revoked  map[string]bool    // users whose grants are refused
	devices  map[string]*device // by device code
	expires  time.Duration
	serial   int
	requests int
}

type oauth2Client struct {
	secret string
	key    *rsa.PublicKey // of a client assertion or a service account
	user   string         // the mailbox of an app-only client
}

// device is a pending device authorization.
type device struct {
	userCode string
	user     string // who signed in; "" while pending
}

type issued struct {
	user   string
	active bool
}

// StartOAuth2 starts the server on loopback; tokens last an hour. Stop it with Close.
func StartOAuth2() *OAuth2 {
	s := &OAuth2{clients: map[string]oauth2Client{}, refresh: map[string]string{}, tokens: map[string]*issued{},
		revoked: map[string]bool{}, devices: map[string]*device{}, expires: time.Hour}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /introspect", s.introspect)
	mux.HandleFunc("POST /devicecode", s.deviceCode)
	// set before it serves: the device endpoint reads the URL
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.Start()
	return s
}

// Close stops the server.
func (s *OAuth2) Close() { s.srv.Close() }

// TokenURL is the token endpoint.
func (s *OAuth2) TokenURL() string { return s.srv.URL + "/token" }

// DeviceURL is the device authorization endpoint.
func (s *OAuth2) DeviceURL() string { return s.srv.URL + "/devicecode" }

// Approve signs in as user for the device login that showed userCode, as the user would
// in a browser; it reports whether such a login is pending.
func (s *OAuth2) Approve(userCode, user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if d.userCode == userCode && d.user == "" {
			d.user = user
			return true
		}
	}
	return false
}

func (s *OAuth2) deviceCode(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.serial++
	code := fmt.Sprintf("device-%d", s.serial)
	d := &device{userCode: fmt.Sprintf("CODE%d", s.serial)}
	s.devices[code] = d
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"device_code": code, "user_code": d.userCode,
		"verification_uri": s.srv.URL + "/device", "expires_in": 600, "interval": 1})
}

// IntrospectionURL is the endpoint for [MailOptions.OAuth2Introspection].
func (s *OAuth2) IntrospectionURL() string { return s.srv.URL + "/introspect" }

// AddClient registers an app-only client for user's mailbox, authenticated by secret.
func (s *OAuth2) AddClient(id, secret, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[id] = oauth2Client{secret: secret, user: user}
}

// AddCertificateClient registers an app-only client for user's mailbox, authenticated by
// client assertions that key signs.
func (s *OAuth2) AddCertificateClient(id string, key *rsa.PublicKey, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[id] = oauth2Client{key: key, user: user}
}

// AddServiceAccount registers a service account that may act as any user.
func (s *OAuth2) AddServiceAccount(email string, key *rsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[email] = oauth2Client{key: key}
}

// AddRefreshToken makes token a refresh token of user's.
func (s *OAuth2) AddRefreshToken(token, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh[token] = user
}

// Expire ends every access token issued so far, as time would: Dovecot refuses them,
// while the client still believes them valid.
func (s *OAuth2) Expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		t.active = false
	}
}

// Revoke ends user's access tokens and refuses every grant for user from now on.
func (s *OAuth2) Revoke(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[user] = true
	for _, t := range s.tokens {
		if t.user == user {
			t.active = false
		}
	}
}

// Issued is how many access tokens the token endpoint issued.
func (s *OAuth2) Issued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serial
}

func oauth2Error(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

func (s *OAuth2) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauth2Error(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var user string
	newRefresh := false
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
		c, ok := s.clients[r.PostForm.Get("client_id")]
		switch {
		case !ok:
			oauth2Error(w, http.StatusBadRequest, "unauthorized_client", "application "+r.PostForm.Get("client_id")+" not found")
			return
		case c.secret != "" && c.secret != r.PostForm.Get("client_secret"):
			oauth2Error(w, http.StatusUnauthorized, "invalid_client", "Invalid client secret provided.")
			return
		case c.key != nil:
			if _, err := verifyJWT(r.PostForm.Get("client_assertion"), c.key); err != nil {
				oauth2Error(w, http.StatusUnauthorized, "invalid_client", "client assertion: "+err.Error())
				return
			}
		}
		user = c.user
	case "refresh_token":
		old := r.PostForm.Get("refresh_token")
		if user = s.refresh[old]; user == "" {
			oauth2Error(w, http.StatusBadRequest, "invalid_grant", "The refresh token is unknown or expired.")
			return
		}
		delete(s.refresh, old)
		newRefresh = true
	case "urn:ietf:params:oauth:grant-type:device_code":
		d := s.devices[r.PostForm.Get("device_code")]
		switch {
		case d == nil:
			oauth2Error(w, http.StatusBadRequest, "expired_token", "The device code is unknown or expired.")
			return
		case d.user == "":
			oauth2Error(w, http.StatusBadRequest, "authorization_pending", "The user has not signed in yet.")
			return
		}
		delete(s.devices, r.PostForm.Get("device_code"))
		user, newRefresh = d.user, true
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		var claims struct{ Iss, Sub string }
		payload, err := jwtPayload(r.PostForm.Get("assertion"))
		if err == nil {
			err = json.Unmarshal(payload, &claims)
		}
		c, ok := s.clients[claims.Iss]
		if err == nil && (!ok || c.key == nil) {
			err = fmt.Errorf("no service account %q", claims.Iss)
		}
		if err == nil {
			_, err = verifyJWT(r.PostForm.Get("assertion"), c.key)
		}
		if err != nil {
			oauth2Error(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT: "+err.Error())
			return
		}
		user = claims.Sub
	default:
		oauth2Error(w, http.StatusBadRequest, "unsupported_grant_type", r.PostForm.Get("grant_type"))
		return
	}
	if s.revoked[user] {
		oauth2Error(w, http.StatusBadRequest, "invalid_grant", "Access to "+user+" has been revoked.")
		return
	}
	s.serial++
	access := fmt.Sprintf("access-%d", s.serial)
	s.tokens[access] = &issued{user: user, active: true}
	answer := map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": int(s.expires.Seconds())}
	if newRefresh {
		s.serial++
		rotated := fmt.Sprintf("refresh-%d", s.serial)
		s.refresh[rotated] = user
		answer["refresh_token"] = rotated
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(answer)
}

func (s *OAuth2) introspect(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	s.mu.Lock()
	t := s.tokens[r.PostForm.Get("token")]
	answer := map[string]any{"active": t != nil && t.active}
	if t != nil {
		answer["username"] = t.user
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(answer)
}

func jwtPayload(jwt string) ([]byte, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWS compact serialization")
	}
	return base64.RawURLEncoding.DecodeString(parts[1])
}

// verifyJWT checks an RS256 JWT's signature and returns its payload.
func verifyJWT(jwt string, key *rsa.PublicKey) ([]byte, error) {
	payload, err := jwtPayload(jwt)
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(jwt, '.')
	sig, err := base64.RawURLEncoding.DecodeString(jwt[i+1:])
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256([]byte(jwt[:i]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
		return nil, errors.New("bad signature")
	}
	return payload, nil
}
