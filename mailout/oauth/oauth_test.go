package oauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"

	"github.com/parapheur/parapheur/deploy/testrig"
)

var (
	rig    *testrig.Mail
	tokens *testrig.OAuth2
)

func TestMain(m *testing.M) {
	os.Exit(testrig.RunWithOAuth2Mail(m, testrig.MailOptions{}, &rig, &tokens))
}

// newSource makes a Source logging to the returned Logs, which must show no secret.
func newSource(t *testing.T, cfg Config) (*Source, *testrig.Logs) {
	t.Helper()
	l := &testrig.Logs{}
	s, err := New(cfg, l.Logger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, secret := range []string{cfg.ClientSecret, "access-", "refresh-", "PRIVATE KEY"} {
			if secret != "" && strings.Contains(l.String(), secret) {
				t.Errorf("the log shows a secret (%q):\n%s", secret, l)
			}
		}
	})
	return s, l
}

// microsoftClient registers an app-only client for user and returns its Source.
func microsoftClient(t *testing.T, user string) (*Source, *testrig.Logs) {
	id, secret := "app-"+user, "secret-"+user
	tokens.AddClient(id, secret, user)
	return newSource(t, Config{Provider: Microsoft, Tenant: "org.example", ClientID: id, ClientSecret: secret, TokenURL: tokens.TokenURL()})
}

func imapLogin(ctx context.Context, s *Source, mech, user string) error {
	c, err := imapclient.DialInsecure(rig.IMAPAddr(), nil)
	if err != nil {
		return err
	}
	defer c.Close()
	return s.Authenticate(ctx, mech, user, c.Authenticate)
}

// smtpAuth opens an SMTP session authenticated as user, on a new connection after a
// refusal, since go-smtp ends the session on one.
func smtpAuth(s *Source, mech, user string) (*smtp.Client, error) {
	for {
		c, err := smtp.Dial(rig.SMTPAddr())
		if err != nil {
			return nil, err
		}
		if err = c.Hello("gateway.test"); err == nil {
			err = s.AuthenticateOnce(context.Background(), mech, user, c.Auth)
		}
		if err == nil {
			return c, nil
		}
		c.Close()
		if !errors.Is(err, ErrRefused) || s.Check(context.Background()) != nil {
			return nil, err
		}
	}
}

// smtpSend authenticates and sends a mail to user, which must arrive.
func smtpSend(t *testing.T, s *Source, mech, user string) error {
	c, err := smtpAuth(s, mech, user)
	if err != nil {
		return err
	}
	defer c.Close()
	id := fmt.Sprintf("<%s-%d@org.example>", strings.ToLower(mech), time.Now().UnixNano())
	msg := "From: " + user + "@org.example\r\nTo: " + user + "@org.example\r\nMessage-ID: " + id + "\r\nSubject: token\r\n\r\nhello\r\n"
	if err := c.SendMail(user+"@org.example", []string{user + "@org.example"}, strings.NewReader(msg)); err != nil {
		return err
	}
	_, err = rig.WaitMessage(user, "Message-ID", id, 20*time.Second)
	return err
}

func TestLoginWithEachMechanism(t *testing.T) {
	for _, mech := range []string{XOAUTH2, OAUTHBEARER} {
		t.Run(mech, func(t *testing.T) {
			s, _ := microsoftClient(t, "alice")
			if err := imapLogin(context.Background(), s, mech, "alice"); err != nil {
				t.Fatalf("IMAP AUTHENTICATE %s: %v", mech, err)
			}
			if err := smtpSend(t, s, mech, "alice"); err != nil {
				t.Fatalf("SMTP AUTH %s: %v", mech, err)
			}
		})
	}
}

func TestTokenIsCached(t *testing.T) {
	s, _ := microsoftClient(t, "bob")
	before := tokens.Issued()
	for range 3 {
		if err := imapLogin(context.Background(), s, XOAUTH2, "bob"); err != nil {
			t.Fatal(err)
		}
	}
	if n := tokens.Issued() - before; n != 1 {
		t.Errorf("%d tokens fetched for three logins, want 1", n)
	}
}

func TestExpiredTokenRenewedAtOnce(t *testing.T) {
	for _, mech := range []string{XOAUTH2, OAUTHBEARER} {
		t.Run(mech, func(t *testing.T) {
			s, l := microsoftClient(t, "bob")
			if err := imapLogin(context.Background(), s, mech, "bob"); err != nil {
				t.Fatal(err)
			}
			tokens.Expire()
			before := tokens.Issued()
			if err := imapLogin(context.Background(), s, mech, "bob"); err != nil {
				t.Fatalf("IMAP login after the token expired: %v", err)
			}
			tokens.Expire()
			if err := smtpSend(t, s, mech, "bob"); err != nil {
				t.Fatalf("SMTP after the token expired: %v", err)
			}
			if n := tokens.Issued() - before; n != 2 {
				t.Errorf("%d tokens fetched after two expiries, want 2", n)
			}
			if !strings.Contains(l.String(), "refused the access token") {
				t.Errorf("the renewal was not logged:\n%s", l)
			}
			if err := s.Check(context.Background()); err != nil {
				t.Errorf("Check after the renewal: %v", err)
			}
		})
	}
}

func TestRevokedAccessReported(t *testing.T) {
	s, _ := microsoftClient(t, "archives")
	if err := imapLogin(context.Background(), s, XOAUTH2, "archives"); err != nil {
		t.Fatal(err)
	}
	tokens.Revoke("archives")
	err := imapLogin(context.Background(), s, XOAUTH2, "archives")
	if err == nil || !strings.Contains(err.Error(), "revoked") || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("login after the revocation: %v, want the token endpoint's invalid_grant", err)
	}
	if err := s.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("Check after the revocation: %v", err)
	}
}

func TestWrongClientSecretNamed(t *testing.T) {
	tokens.AddClient("app-wrong", "right-secret", "alice")
	s, _ := newSource(t, Config{Provider: Microsoft, Tenant: "org.example", ClientID: "app-wrong", ClientSecret: "wrong-secret", TokenURL: tokens.TokenURL()})
	err := s.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(err.Error(), "oauth2.client_secret_file") {
		t.Fatalf("a wrong secret gave %v, want invalid_client naming oauth2.client_secret_file", err)
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("the error shows the secret: %v", err)
	}
}

// rsaKey makes an RSA key and a self-signed certificate, both PEM.
func rsaKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "parapheur"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))})
	return key, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pemKey...)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestMicrosoftCertificate(t *testing.T) {
	key, pemBoth := rsaKey(t)
	tokens.AddCertificateClient("app-cert", &key.PublicKey, "alice")
	s, _ := newSource(t, Config{Provider: Microsoft, Tenant: "org.example", ClientID: "app-cert", ClientCertificate: pemBoth, TokenURL: tokens.TokenURL()})
	if err := imapLogin(context.Background(), s, XOAUTH2, "alice"); err != nil {
		t.Fatal(err)
	}
	other, _ := rsaKey(t)
	tokens.AddCertificateClient("app-cert-other", &other.PublicKey, "alice")
	s, _ = newSource(t, Config{Provider: Microsoft, Tenant: "org.example", ClientID: "app-cert-other", ClientCertificate: pemBoth, TokenURL: tokens.TokenURL()})
	if err := s.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "oauth2.client_certificate_file") {
		t.Errorf("a certificate the app does not hold gave %v", err)
	}
}

func TestGoogleServiceAccount(t *testing.T) {
	key, _ := rsaKey(t)
	email := "parapheur@project.iam.gserviceaccount.com"
	tokens.AddServiceAccount(email, &key.PublicKey)
	keyFile, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": email, "private_key_id": "k1",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))})),
		"token_uri":   tokens.TokenURL()})
	s, _ := newSource(t, Config{Provider: Google, ServiceAccount: keyFile, User: "bob"})
	if err := imapLogin(context.Background(), s, OAUTHBEARER, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := smtpSend(t, s, XOAUTH2, "bob"); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshTokenRotated(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("first-grant\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens.AddRefreshToken("first-grant", "alice")
	s, _ := newSource(t, Config{Provider: RefreshToken, ClientID: "public-app", TokenFile: file, TokenURL: tokens.TokenURL()})
	if err := imapLogin(context.Background(), s, XOAUTH2, "alice"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(data)); !strings.HasPrefix(got, "refresh-") {
		t.Errorf("the token file holds %q, want the rotated refresh token", got)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("the token file's mode is %v, want 0600", st.Mode().Perm())
	}
	// The rotated token is the one that works now.
	tokens.Expire()
	if err := imapLogin(context.Background(), s, XOAUTH2, "alice"); err != nil {
		t.Fatalf("login with the rotated refresh token: %v", err)
	}
}

func TestRenewedBeforeExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	fetched := 0
	s := &Source{log: slog.New(slog.DiscardHandler), now: func() time.Time { return now }, fetch: func(context.Context) (*oauth2.Token, error) {
		fetched++
		return &oauth2.Token{AccessToken: fmt.Sprint("t", fetched), Expiry: now.Add(10 * time.Minute)}, nil
	}}
	for _, step := range []struct {
		advance time.Duration
		want    string
	}{{0, "t1"}, {8 * time.Minute, "t1"}, {90 * time.Second, "t2"}} {
		now = now.Add(step.advance)
		got, err := s.Token(context.Background())
		if err != nil || got != step.want {
			t.Errorf("after %v: %q, %v; want %q", step.advance, got, err, step.want)
		}
	}
}

func TestProviderKeysExplained(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		keys []string
	}{
		{Config{}, []string{"oauth2.provider"}},
		{Config{Provider: "azure"}, []string{"oauth2.provider"}},
		{Config{Provider: Microsoft}, []string{"oauth2.tenant", "oauth2.client_id", "oauth2.client_secret_file"}},
		{Config{Provider: Microsoft, Tenant: "t", ClientID: "c", ClientCertificate: []byte("junk")}, []string{"oauth2.client_certificate_file"}},
		{Config{Provider: Google}, []string{"oauth2.service_account_file"}},
		{Config{Provider: Google, ServiceAccount: []byte(`{"type":"authorized_user"}`), User: "u"}, []string{"oauth2.service_account_file", "service_account"}},
		{Config{Provider: RefreshToken, ClientID: "c"}, []string{"oauth2.token_file"}},
	} {
		_, err := New(c.cfg, nil)
		for _, k := range c.keys {
			if err == nil || !strings.Contains(err.Error(), k) {
				t.Errorf("%+v: %v, want it to name %s", c.cfg, err, k)
			}
		}
	}
}

// A token the server refuses although it is new (the app has no right to this mailbox)
// is reported by Check until a login succeeds, and not fetched again and again.
func TestNewTokenRefusedReported(t *testing.T) {
	s, _ := microsoftClient(t, "alice") // alice's app, logging in as bob
	before := tokens.Issued()
	err := imapLogin(context.Background(), s, XOAUTH2, "bob")
	if err == nil || !strings.Contains(err.Error(), "refused a new access token for bob") || !strings.Contains(err.Error(), "allowed to use this mailbox") {
		t.Fatalf("login to a mailbox the app may not use: %v", err)
	}
	if err := s.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "refused a new access token") {
		t.Errorf("Check: %v", err)
	}
	if err := imapLogin(context.Background(), s, XOAUTH2, "bob"); err == nil {
		t.Fatal("a second login succeeded")
	}
	if n := tokens.Issued() - before; n != 2 {
		t.Errorf("%d tokens fetched, want 2: the first, and one new after the refusal", n)
	}
	if err := imapLogin(context.Background(), s, XOAUTH2, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(context.Background()); err != nil {
		t.Errorf("Check after a login succeeded: %v", err)
	}
}
