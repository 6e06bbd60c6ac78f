package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parapheur/parapheur/mailin/instructions"
)

// validator checks a decoded Config and fills its derived fields.
type validator struct {
	c        *Config
	problems []Problem
}

func (v *validator) problem(key, format string, args ...any) {
	v.problems = append(v.problems, Problem{Key: key, Reason: fmt.Sprintf(format, args...)})
}

func (v *validator) validate() {
	c := v.c
	v.address()
	v.publicURL()
	if err := checkListen(c.Listen); err != nil {
		v.problem("listen", "%v", err)
	}
	v.http()
	v.log()
	if c.Language != "fr" && c.Language != "en" {
		v.problem("language", `want "fr" or "en", got %q`, c.Language)
	}
	c.Location = time.Local
	if c.Timezone != "" {
		loc, err := time.LoadLocation(c.Timezone)
		if err != nil {
			v.problem("timezone", `want an IANA time zone such as "Europe/Paris", got %q`, c.Timezone)
		} else {
			c.Location = loc
		}
	}
	if err := checkStoreURL(c.Store.URL); err != nil {
		v.problem("store.url", "%v", err)
	}
	v.imap()
	v.smtp()
	v.oauth2()
	if c.Keys.Dir == "" {
		v.problem("keys.dir", "required: the directory of the signing CA and seal made by \"parapheur ca init\"")
	}
	if c.TSA.URL != "" {
		if _, err := checkHTTPURL(c.TSA.URL, false); err != nil {
			v.problem("tsa.url", "%v", err)
		}
	}
	switch {
	case c.SMS.URL != "":
		if _, err := checkHTTPURL(c.SMS.URL, true); err != nil {
			v.problem("sms.url", "%v", err)
		}
	case c.SMS.Authorization != "":
		v.problem("sms.authorization", "set, but sms.url is not: there is no SMS gateway to send it to")
	}
	v.senders()
	v.envelopes()
	for name, circuit := range c.Circuits {
		key := "circuits." + name + ".steps"
		if len(circuit.Steps) == 0 {
			v.problem(key, `required: a list of step lines, e.g. steps = ["Visa: chef@org.example", "Signataire: dg@org.example"]`)
			continue
		}
		if _, err := instructions.CompileCircuits(map[string][]string{name: circuit.Steps}); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				v.problem(key, "%s", strings.TrimPrefix(line, fmt.Sprintf("circuit %q: ", name)))
			}
		}
	}
}

func (v *validator) log() {
	c := &v.c.Log
	if c.Format != "json" && c.Format != "text" {
		v.problem("log.format", `want "json" or "text", got %q`, c.Format)
	}
	if err := c.Leveled.UnmarshalText([]byte(c.Level)); err != nil {
		v.problem("log.level", `want "debug", "info", "warn" or "error", got %q`, c.Level)
	}
}

func (v *validator) address() {
	c := v.c
	if c.Address == "" {
		v.problem("address", "required: the gateway's mailbox address, e.g. parapheur@org.example")
		return
	}
	email, err := bareAddress(c.Address)
	if err != nil {
		v.problem("address", "%v", err)
		return
	}
	if local := email[:strings.LastIndexByte(email, '@')]; strings.Contains(local, "+") {
		v.problem("address", "%q must not contain \"+\": address+NAME selects circuit NAME", email)
		return
	}
	c.Address = email
}

func (v *validator) publicURL() {
	c := v.c
	if c.PublicURL == "" {
		v.problem("public_url", "required: the base of the links in mails, e.g. https://sign.org.example")
		return
	}
	u, err := checkHTTPURL(c.PublicURL, true)
	if err != nil {
		v.problem("public_url", "%v", err)
		return
	}
	if u.RawQuery != "" || u.Fragment != "" {
		v.problem("public_url", "want a base URL without ?query or #fragment")
		return
	}
	c.PublicURL = strings.TrimRight(u.String(), "/")
}

func (v *validator) imap() {
	c := &v.c.IMAP
	server, u, err := mailServer(c.URL, "imaps", "993", "imap", "143")
	switch {
	case c.URL == "":
		v.problem("imap.url", "required: the mailbox to poll, e.g. imaps://parapheur@imap.org.example/INBOX")
	case err != nil:
		v.problem("imap.url", "%v", err)
	default:
		c.Server = server
		c.Mailbox = strings.TrimPrefix(u.Path, "/")
		if c.Mailbox == "" {
			c.Mailbox = "INBOX"
		}
		if server.Username == "" {
			v.problem("imap.url", "names no user to log in as: want %s://USER@%s/%s", u.Scheme, u.Host, c.Mailbox)
		} else if v.auth("imap", c.Auth, c.Password) && c.Password == "" {
			v.problem("imap.password", "required to log in as %s (or imap.password_file)", server.Username)
		}
	}
	folders := map[string]string{}
	if c.Mailbox != "" {
		folders[strings.ToLower(c.Mailbox)] = "the polled mailbox (imap.url)"
	}
	for _, f := range []struct{ key, name string }{
		{"imap.processed_folder", c.ProcessedFolder},
		{"imap.quarantine_folder", c.QuarantineFolder},
	} {
		if f.name == "" {
			v.problem(f.key, "required: a folder name")
			continue
		}
		if other, ok := folders[strings.ToLower(f.name)]; ok {
			v.problem(f.key, "%q is already %s: mail would be handled again", f.name, other)
			continue
		}
		folders[strings.ToLower(f.name)] = f.key
	}
}

func (v *validator) smtp() {
	c := &v.c.SMTP
	server, u, err := mailServer(c.URL, "smtps", "465", "smtp", "587")
	switch {
	case c.URL == "":
		v.problem("smtp.url", "required: the server that sends the gateway's mail, e.g. smtp://parapheur@smtp.org.example:587")
	case err != nil:
		v.problem("smtp.url", "%v", err)
	case u.Path != "" && u.Path != "/":
		v.problem("smtp.url", "want no path, got %q", u.Path)
	default:
		c.Server = server
		if v.auth("smtp", c.Auth, c.Password) && server.Username != "" && c.Password == "" {
			v.problem("smtp.password", "required to log in as %s (or smtp.password_file)", server.Username)
		}
		if c.Auth == "oauth2" && server.Username == "" {
			v.problem("smtp.url", "names no user to log in as with OAuth2: want %s://USER@%s", u.Scheme, u.Host)
		}
		if server.Username == "" && c.Password != "" {
			v.problem("smtp.password", "set, but smtp.url names no user to log in as (smtp://USER@host)")
		}
	}
}

// auth checks table's auth key and reports whether it asks for a password.
func (v *validator) auth(table, auth string, password Secret) bool {
	switch auth {
	case "", "password":
		return true
	case "oauth2":
		if password != "" {
			v.problem(table+".password", "set, but %s.auth is oauth2: remove it", table)
		}
	default:
		v.problem(table+".auth", `want "password" or "oauth2", got %q`, auth)
	}
	return false
}

// oauth2 checks the [oauth2] table when imap.auth or smtp.auth uses it; whether its
// keys hold what the provider needs is for oauth.New, which config check runs.
func (v *validator) oauth2() {
	c := &v.c.OAuth2
	if v.c.IMAP.Auth != "oauth2" && v.c.SMTP.Auth != "oauth2" {
		if c.Provider != "" {
			v.problem("oauth2.provider", `set, but neither imap.auth nor smtp.auth is "oauth2"`)
		}
		return
	}
	switch c.Provider {
	case "microsoft", "google", "refresh_token":
	case "":
		v.problem("oauth2.provider", `required by imap.auth or smtp.auth = "oauth2": "microsoft", "google" or "refresh_token"`)
	default:
		v.problem("oauth2.provider", `want "microsoft", "google" or "refresh_token", got %q`, c.Provider)
	}
	switch c.Mechanism = strings.ToUpper(c.Mechanism); c.Mechanism {
	case "":
		c.Mechanism = "XOAUTH2"
	case "XOAUTH2", "OAUTHBEARER":
	default:
		v.problem("oauth2.mechanism", `want "xoauth2" or "oauthbearer", got %q`, c.Mechanism)
	}
	for _, u := range []struct{ key, url string }{{"oauth2.token_url", c.TokenURL}, {"oauth2.device_url", c.DeviceURL}} {
		if u.url == "" {
			continue
		}
		if _, err := checkHTTPURL(u.url, true); err != nil {
			v.problem(u.key, "%v", err)
		}
	}
}

func (v *validator) senders() {
	c := &v.c.Senders
	if len(c.Allowed) == 0 {
		v.problem("senders.allowed", "required: nobody could submit; list addresses and @domains, e.g. \"agent@org.example, @org.example\"")
	}
	for i, entry := range c.Allowed {
		if domain, ok := strings.CutPrefix(entry, "@"); ok {
			if !validDomain(domain) {
				v.problem("senders.allowed", "%q is not a domain: want @org.example", entry)
			}
			c.Allowed[i] = strings.ToLower(entry)
			continue
		}
		email, err := bareAddress(entry)
		if err != nil {
			v.problem("senders.allowed", "%v (a domain is written @org.example)", err)
			continue
		}
		c.Allowed[i] = strings.ToLower(email)
	}
	if c.RequireAuth && c.AuthservID == "" {
		v.problem("senders.authserv_id", "required when senders.require_auth is true: the authserv-id your receiving MTA writes in Authentication-Results, e.g. mx.org.example")
	}
}

func (v *validator) envelopes() {
	c := v.c
	if d := c.Envelopes.DefaultDeadlineDays; d < 1 || d > 3650 {
		v.problem("envelopes.default_deadline_days", "want 1 to 3650 days, got %d", d)
	}
	if d := c.Envelopes.ReminderDays; d < 0 || d > 365 {
		v.problem("envelopes.reminder_days", "want 0 (no reminders) to 365 days, got %d", d)
	}
	if n := c.Limits.MaxMessageBytes; n < 1 {
		v.problem("limits.max_message_bytes", "want a positive number of bytes, got %d", n)
	}
	switch n := c.Limits.MaxDocumentBytes; {
	case n < 1:
		v.problem("limits.max_document_bytes", "want a positive number of bytes, got %d", n)
	case n > c.Limits.MaxMessageBytes:
		v.problem("limits.max_document_bytes", "%d is more than limits.max_message_bytes (%d): no mail could carry such a document", n, c.Limits.MaxMessageBytes)
	}
	if n := c.Limits.MaxRecipients; n < 1 {
		v.problem("limits.max_recipients", "want a positive number of recipients per envelope, got %d", n)
	}
	if n := c.Mail.AttachmentLimitBytes; n < 0 {
		v.problem("mail.attachment_limit_bytes", "want 0 (always a link) or more bytes, got %d", n)
	}
	if d := c.Mail.DownloadLinkDays; d < 1 || d > 3650 {
		v.problem("mail.download_link_days", "want 1 to 3650 days, got %d", d)
	}
}

// bareAddress parses s as user@host without a display name.
func bareAddress(s string) (string, error) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return "", fmt.Errorf("address %q: %v", s, err)
	}
	if a.Name != "" || strings.ContainsAny(s, "<>") {
		return "", fmt.Errorf("%q: want a bare address like %s, without a display name", s, a.Address)
	}
	return a.Address, nil
}

func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// parseURL parses s and hides the URL from its error, which could hold a password.
func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("not a URL: %v", err)
	}
	return u, nil
}

// isLoopback reports whether host is reached without leaving the machine: localhost or a
// loopback IP address. Other names are not resolved: what they point to can change.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkHTTPURL checks an absolute http or https URL; needTLS refuses http except to a
// loopback host, for URLs that carry tokens, codes or credentials.
func checkHTTPURL(s string, needTLS bool) (*url.URL, error) {
	u, err := parseURL(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("want an http:// or https:// URL, got scheme %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("want a host in the URL, e.g. %s://host.example/", u.Scheme)
	}
	if u.User != nil {
		return nil, fmt.Errorf("no user or password in this URL")
	}
	if needTLS && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("scheme http to non-loopback host %s: want https, as what goes over it must stay private", u.Hostname())
	}
	return u, nil
}

// mailServer checks an IMAP or SMTP URL: tlsScheme (implicit TLS on tlsPort) or
// startScheme (STARTTLS on startPort), STARTTLS optional only to a loopback host.
func mailServer(s, tlsScheme, tlsPort, startScheme, startPort string) (Server, *url.URL, error) {
	if s == "" {
		return Server{}, nil, nil
	}
	u, err := parseURL(s)
	if err != nil {
		return Server{}, nil, err
	}
	var server Server
	switch u.Scheme {
	case tlsScheme:
		server.TLS, server.Port = TLSImplicit, tlsPort
	case startScheme:
		server.TLS, server.Port = TLSStartTLS, startPort
	default:
		return Server{}, nil, fmt.Errorf("want scheme %s (implicit TLS) or %s (STARTTLS), got %q", tlsScheme, startScheme, u.Scheme)
	}
	server.Host = u.Hostname()
	if server.Host == "" {
		return Server{}, nil, fmt.Errorf("want a host, e.g. %s://user@host.example", u.Scheme)
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return Server{}, nil, fmt.Errorf("port %q: want a number from 1 to 65535", p)
		}
		server.Port = p
	}
	if u.Scheme == startScheme && server.Port == tlsPort {
		return Server{}, nil, fmt.Errorf("port %s is implicit TLS: want %s://%s", tlsPort, tlsScheme, u.Host)
	}
	if u.Scheme == tlsScheme && server.Port == startPort {
		return Server{}, nil, fmt.Errorf("port %s is STARTTLS: want %s://%s", startPort, startScheme, u.Host)
	}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			return Server{}, nil, fmt.Errorf("holds a password: put it in %s.password or %s.password_file, where it is kept secret", startScheme, startScheme)
		}
		server.Username = u.User.Username()
	}
	// The poller and the sender speak plain text to a loopback host (a
	// local relay or a test server); anywhere else TLS is required.
	if u.Scheme == startScheme && isLoopback(server.Host) {
		server.TLS = TLSNone
	}
	if len(u.Query()) > 0 {
		return Server{}, nil, fmt.Errorf("unknown parameter %q: the URL takes none", sortedKeys(u.Query())[0])
	}
	return server, u, nil
}

// checkStoreURL checks a store.url as far as possible without connecting. The Redis forms
// are parsed by go-redis, which the store opens them with.
func checkStoreURL(s string) error {
	u, err := parseURL(s)
	if err != nil {
		return err
	}
	redisURL := *u
	switch u.Scheme {
	case "bolt":
		if u.Host != "" || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") || strings.HasSuffix(u.Path, "/") {
			return fmt.Errorf("want bolt:///absolute/path/parapheur.db (three slashes, then an absolute file path)")
		}
		if u.RawQuery != "" {
			return fmt.Errorf("bolt URL takes no parameters")
		}
		return nil
	case "redis", "rediss":
		_, err = redis.ParseURL(redisURL.String())
	case "redis-sentinel", "rediss-sentinel":
		redisURL.Scheme = strings.TrimSuffix(u.Scheme, "-sentinel")
		if u.Query().Get("master_name") == "" {
			return fmt.Errorf("%s needs ?master_name=NAME, the master the sentinels watch", u.Scheme)
		}
		_, err = redis.ParseFailoverURL(redisURL.String())
	case "redis-cluster", "rediss-cluster":
		redisURL.Scheme = strings.TrimSuffix(u.Scheme, "-cluster")
		_, err = redis.ParseClusterURL(redisURL.String())
	default:
		return fmt.Errorf("unknown scheme %q: want bolt, redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", u.Scheme)
	}
	if err != nil {
		return fmt.Errorf("%s URL: %v", u.Scheme, err)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("want a host, e.g. %s://redis.example:6379", u.Scheme)
	}
	return nil
}

// checkListen checks a host:port listen address.
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port or :port, e.g. \":8080\", got %q", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q: want a number from 0 to 65535", port)
	}
	return nil
}

// http checks the web server's keys: the proxies' prefixes and the TLS pair.
func (v *validator) http() {
	h := &v.c.HTTP
	h.Proxies = nil
	for _, p := range h.TrustedProxies {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				v.problem("http.trusted_proxies", "%q is neither an IP address nor a CIDR prefix such as 10.0.0.0/8", p)
				continue
			}
			prefix = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		}
		h.Proxies = append(h.Proxies, prefix.Masked())
	}
	h.Certificate = nil
	switch {
	case h.TLSCert == "" && h.TLSKey == "":
	case h.TLSCert == "":
		v.problem("http.tls_cert", "required with http.tls_key: the PEM certificate chain (set http.tls_cert_file to its path)")
	case h.TLSKey == "":
		v.problem("http.tls_key", "required with http.tls_cert: the PEM private key (set http.tls_key_file to its path)")
	default:
		cert, err := tls.X509KeyPair([]byte(h.TLSCert), []byte(h.TLSKey))
		if err != nil {
			v.problem("http.tls_cert", "the certificate and key do not make a TLS key pair: %v", err)
			break
		}
		h.Certificate = &cert
	}
}
