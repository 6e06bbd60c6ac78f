package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
)

// With http.tls_cert_file and http.tls_key_file, the gateway serves its
// pages over HTTPS with that certificate, and plain HTTP is refused.
func TestServeHTTPS(t *testing.T) {
	keys := initKeys(t)
	dir := t.TempDir()
	listen := freeAddr(t)
	certPEM, keyPEM := selfSigned(t)
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	runGateway(t, keys, listen, "https://"+listen,
		"PARAPHEUR_HTTP_TLS_CERT_FILE="+certFile, "PARAPHEUR_HTTP_TLS_KEY_FILE="+keyFile)

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	var body string
	eventually(t, 10*time.Second, "healthz over HTTPS", func() bool {
		resp, err := client.Get("https://" + listen + "/healthz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK
	})
	if strings.TrimSpace(body) != "ok" {
		t.Errorf("healthz answered %q", body)
	}
	resp, err := http.Get("http://" + listen + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP was served next to HTTPS")
		}
	}
}

// runGateway runs, in the test's process until its end, a gateway on the
// keys in keys, listening on listen, with the public URL publicURL and
// the PARAPHEUR_* settings of extra. Its mail servers are unreachable: its
// pages do not need them.
func runGateway(t *testing.T, keys, listen, publicURL string, extra ...string) *gateway {
	t.Helper()
	cfg, err := config.Load("", append([]string{
		"PARAPHEUR_ADDRESS=parapheur@org.example", "PARAPHEUR_PUBLIC_URL=" + publicURL,
		"PARAPHEUR_LISTEN=" + listen, "PARAPHEUR_STORE_URL=bolt://" + filepath.Join(t.TempDir(), "p.db"),
		"PARAPHEUR_IMAP_URL=imap://parapheur@127.0.0.1:1/INBOX", "PARAPHEUR_IMAP_PASSWORD=x",
		"PARAPHEUR_SMTP_URL=smtp://127.0.0.1:1", "PARAPHEUR_SENDERS_ALLOWED=bob@example.com",
		"PARAPHEUR_KEYS_DIR=" + keys, "PARAPHEUR_KEYS_PASSPHRASE=test",
	}, extra...))
	if err != nil {
		t.Fatal(err)
	}
	g, err := newGateway(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.run(t.Context()) }()
	t.Cleanup(func() {
		// t.Context is cancelled before cleanups run: run returns.
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return g
}

// selfSigned makes a certificate for 127.0.0.1 and its key, in PEM.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}
