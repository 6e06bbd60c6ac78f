package sender

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/outbox"
)

// fakeMTA is an in-process go-smtp server for what Postfix cannot be made
// to do on cue: answer 451 once and accept after, speak TLS.
type fakeMTA struct {
	addr string
	mu   sync.Mutex
	// tempfailOnce are addresses answered 451 at their first RCPT.
	tempfailOnce map[string]bool
	rcpts        map[string]int
	received     []received
	sessions     []*smtp.Conn
	// hold, when set, keeps the first message's DATA unanswered until it
	// is closed; holding is closed when that DATA has come.
	hold, holding chan struct{}
}

// received is one accepted message and how it came.
type received struct {
	from string
	to   []string
	data []byte
	tls  bool
	user string
}

// startFakeMTA listens on loopback; with cert, it offers STARTTLS, or,
// implicit set, speaks TLS from the start, and accepts AUTH PLAIN as
// "gw"/"pw" over TLS.
func startFakeMTA(t testing.TB, cert *tls.Certificate, implicit bool) *fakeMTA {
	t.Helper()
	m := &fakeMTA{tempfailOnce: map[string]bool{}, rcpts: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		m.mu.Lock()
		m.sessions = append(m.sessions, c)
		m.mu.Unlock()
		return &fakeSession{m: m, c: c}, nil
	}))
	srv.Domain = "mail.test"
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
		if implicit {
			l = tls.NewListener(l, srv.TLSConfig)
		}
	}
	m.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return m
}

// hangUp closes every session from the server's side, as an MTA does with
// idle clients.
func (m *fakeMTA) hangUp() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.sessions {
		c.Close()
	}
}

func (m *fakeMTA) messages() []received {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]received(nil), m.received...)
}

type fakeSession struct {
	m    *fakeMTA
	c    *smtp.Conn
	user string
	from string
	to   []string
}

func (s *fakeSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *fakeSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != "gw" || password != "pw" {
			return smtp.ErrAuthFailed
		}
		s.user = username
		return nil
	}), nil
}

func (s *fakeSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *fakeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.rcpts[to]++
	if s.m.tempfailOnce[to] && s.m.rcpts[to] == 1 {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *fakeSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	first := len(s.m.received) == 0
	s.m.mu.Unlock()
	if first && s.m.hold != nil {
		close(s.m.holding)
		<-s.m.hold
	}
	_, isTLS := s.c.TLSConnectionState()
	s.m.mu.Lock()
	s.m.received = append(s.m.received, received{from: s.from, to: s.to, data: b, tls: isTLS, user: s.user})
	s.m.mu.Unlock()
	return nil
}

func (s *fakeSession) Reset()        { s.from, s.to = "", nil }
func (s *fakeSession) Logout() error { return nil }

// selfSigned makes a certificate for mail.test and a pool trusting it.
func selfSigned(t *testing.T) (*tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mail.test"}, DNSNames: []string{"mail.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// toFake points a fixture's relay at m, under the name mail.test (not a
// loopback name, so TLS is required) unless url names the address itself.
func toFake(m *fakeMTA, url string) func(*Config) {
	return func(c *Config) {
		c.Relay.URL = strings.ReplaceAll(url, "ADDR", m.addr)
		dial := c.Relay.Dial
		c.Relay.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dial(ctx, network, m.addr)
		}
	}
}

// 451 at the first try, accepted at the retry: the same message (same
// Message-ID) arrives, over the same connection after RSET.
func TestTempfailThenAccepted(t *testing.T) {
	m := startFakeMTA(t, nil, false)
	m.tempfailOnce["alice@example.com"] = true
	reg := prometheus.NewPedanticRegistry()
	f := newFixture(t, func(c *Config) {
		toFake(m, "smtp://ADDR")(c)
		c.Outbox.Metrics = outbox.NewMetrics(reg, "parapheur_mail")
	})
	env := f.envelope(t, "alice@example.com")
	if n := f.drain(t); n != 2 {
		t.Fatalf("%d items, want 2", n)
	}
	if got := len(m.messages()); got != 1 {
		t.Fatalf("%d messages after the first pass, want the acknowledgement only", got)
	}
	f.clock.add(time.Minute)
	if n := f.drain(t); n != 1 {
		t.Fatalf("%d items retried, want 1", n)
	}
	msgs := m.messages()
	if len(msgs) != 2 || len(msgs[1].to) != 1 || msgs[1].to[0] != "alice@example.com" {
		t.Fatalf("received %+v, want the invitation to alice second", msgs)
	}
	h, err := mail.CreateReader(bytes.NewReader(msgs[1].data))
	if err != nil {
		t.Fatal(err)
	}
	want := f.messageID(t, "invitation/r1")
	if id, _ := h.Header.MessageID(); id != want {
		t.Errorf("Message-ID %q, want %q", id, want)
	}
	var got []string
	for _, r := range f.attempts(t, env.ID) {
		if r.RecipientID == "r1" {
			got = append(got, r.Details["outcome"]+": "+r.Details["answer"])
		}
	}
	if len(got) != 2 || got[0] != "deferred: 451 4.3.0 Try again later" || !strings.HasPrefix(got[1], "delivered: 250 2.0.0 ") {
		t.Errorf("invitation attempts %q, want deferred with the 451 answer then delivered with the 250", got)
	}
	if d := f.dials.Load(); d != 1 {
		t.Errorf("%d connections, want 1: a 451 must not cost the connection", d)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "parapheur_mail_attempts_total":
				counts[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			case "parapheur_mail_attempt_duration_seconds":
				counts["observed"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for key, want := range map[string]float64{"delivered": 2, "deferred": 1, "failed": 0, "observed": 3} {
		if counts[key] != want {
			t.Errorf("metrics %v: %s = %v, want %v", counts, key, counts[key], want)
		}
	}
}

// A connection the server closed while idle is replaced without an
// attempt being spent on it.
func TestReconnectAfterHangUp(t *testing.T) {
	m := startFakeMTA(t, nil, false)
	f := newFixture(t, toFake(m, "smtp://ADDR"))
	f.envelope(t, "alice@example.com")
	f.drain(t)
	m.hangUp()
	env := f.envelope(t, "bob@example.com")
	if n := f.drain(t); n != 2 {
		t.Fatalf("%d items, want 2", n)
	}
	for _, r := range f.attempts(t, env.ID) {
		if r.Details["outcome"] != string(workflow.OutcomeDelivered) {
			t.Errorf("attempt after the hang-up: %+v, want delivered", r.Details)
		}
	}
	if d := f.dials.Load(); d != 2 {
		t.Errorf("%d connections, want 2", d)
	}
	if n := len(m.messages()); n != 4 {
		t.Errorf("%d messages received, want 4", n)
	}
}

// STARTTLS to a named host, then AUTH PLAIN over TLS; implicit TLS too.
func TestTLSAndAuth(t *testing.T) {
	cert, pool := selfSigned(t)
	for _, tc := range []struct {
		name, url string
		implicit  bool
	}{{"STARTTLS", "smtp://mail.test:25", false}, {"implicit TLS", "smtps://mail.test", true}} {
		t.Run(tc.name, func(t *testing.T) {
			m := startFakeMTA(t, cert, tc.implicit)
			f := newFixture(t, func(c *Config) {
				toFake(m, tc.url)(c)
				c.Relay.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
				c.Relay.Username, c.Relay.Password = "gw", "pw"
			})
			f.envelope(t, "alice@example.com")
			if n := f.drain(t); n != 2 {
				t.Fatalf("%d items, want 2", n)
			}
			msgs := m.messages()
			if len(msgs) != 2 {
				t.Fatalf("%d messages received, want 2", len(msgs))
			}
			for _, r := range msgs {
				if !r.tls || r.user != "gw" {
					t.Errorf("message over TLS %v as %q, want TLS as gw", r.tls, r.user)
				}
			}
		})
	}
}

// TLS is not optional towards a host that is not loopback: a server
// without STARTTLS, or with a certificate the TLS configuration does not
// trust, defers the mail and receives nothing.
func TestTLSRequired(t *testing.T) {
	cert, _ := selfSigned(t)
	for _, tc := range []struct {
		name string
		cert *tls.Certificate
		want string
	}{{"no STARTTLS", nil, "STARTTLS"}, {"untrusted certificate", cert, "certificate"}} {
		t.Run(tc.name, func(t *testing.T) {
			m := startFakeMTA(t, tc.cert, false)
			f := newFixture(t, toFake(m, "smtp://mail.test"))
			env := f.envelope(t, "alice@example.com")
			f.drain(t)
			recs := f.attempts(t, env.ID)
			if len(recs) != 2 {
				t.Fatalf("%d attempts, want 2", len(recs))
			}
			for _, r := range recs {
				if r.Details["outcome"] != string(workflow.OutcomeDeferred) || !strings.Contains(r.Details["answer"], tc.want) {
					t.Errorf("attempt %+v: want deferred, mentioning %s", r.Details, tc.want)
				}
			}
			if n := len(m.messages()); n != 0 {
				t.Errorf("%d messages went through", n)
			}
		})
	}
}

func TestRelayURL(t *testing.T) {
	for _, tc := range []struct {
		url, addr   string
		implicit    bool
		plain       bool
		errContains string
	}{
		{url: "smtps://mail.example", addr: "mail.example:465", implicit: true},
		{url: "smtp://mail.example", addr: "mail.example:587"},
		{url: "smtp://127.0.0.1:25", addr: "127.0.0.1:25", plain: true},
		{url: "smtp://[::1]:2525", addr: "[::1]:2525", plain: true},
		{url: "smtp://localhost", addr: "localhost:587", plain: true},
		{url: "http://mail.example", errContains: "scheme"},
		{url: "smtp://user:pw@mail.example", errContains: "separate settings"},
		{url: "smtp://", errContains: "want smtps://host"},
		{url: "smtp://mail.example/x", errContains: "want smtps://host"},
		{url: "smtp://mail example", errContains: "relay URL"},
	} {
		r, err := Relay{URL: tc.url}.check()
		switch {
		case tc.errContains != "":
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Errorf("%s: error %v, want one mentioning %q", tc.url, err, tc.errContains)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.url, err)
		case r.addr != tc.addr || r.implicit != tc.implicit || r.plain != tc.plain:
			t.Errorf("%s: addr %s implicit %v plain %v; want %s %v %v", tc.url, r.addr, r.implicit, r.plain, tc.addr, tc.implicit, tc.plain)
		}
	}
	if _, err := (Relay{URL: "smtp://mail.example", AuthMechanism: "CRAM-MD5"}).check(); err == nil {
		t.Error("CRAM-MD5 accepted")
	}
}

func TestAnswer(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such\nuser"}, "550 5.1.1 no such user"},
		{&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "later"}, "451 later"},
		{&txnError{&smtp.SMTPError{Code: 552, EnhancedCode: smtp.NoEnhancedCode, Message: "too big"}}, "552 too big"},
		{errors.New("dial tcp: connection refused"), "dial tcp: connection refused"},
	} {
		if got := answer(tc.err); got != tc.want {
			t.Errorf("answer(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// The workers of one connection share it: while one mail's DATA waits on
// the relay, the other worker has already claimed, composed and recorded
// the start of the next mail; they take turns on the one connection.
func TestWorkersShareAConnection(t *testing.T) {
	m := startFakeMTA(t, nil, false)
	m.hold, m.holding = make(chan struct{}), make(chan struct{})
	f := newFixture(t, func(c *Config) {
		toFake(m, "smtp://ADDR")(c)
		c.Workers, c.PerConnection = 1, 2
	})
	env := f.envelope(t, "alice@example.com")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.s.Run(ctx); close(done) }()
	defer func() {
		cancel()
		<-done
	}()
	<-m.holding
	started := func() int {
		trail, err := f.st.AuditTrail(context.Background(), env.ID)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range trail {
			if r.Type == audit.DeliveryStart {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); started() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second mail was not started while the first one's DATA was held")
		}
	}
	if got := len(m.messages()); got != 0 {
		t.Fatalf("%d messages received while the first DATA was held", got)
	}
	close(m.hold)
	for deadline := time.Now().Add(10 * time.Second); len(f.attempts(t, env.ID)) < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the two mails were not delivered")
		}
	}
	if got, dials := len(m.messages()), f.dials.Load(); got != 2 || dials != 1 {
		t.Errorf("%d messages over %d connections, want 2 over 1", got, dials)
	}
}
