package pki_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/pki"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pdftest.Cleanup()
	os.Exit(code)
}

func TestInitAndLoad(t *testing.T) {
	dir := t.TempDir()
	opts := pki.InitOptions{Organisation: "Commune d'Exemple", Country: "FR", Passphrase: "s3cret passphrase"}
	if err := pki.InitCA(dir, opts); err != nil {
		t.Fatal(err)
	}
	if err := pki.InitCA(dir, opts); err == nil {
		t.Error("a second ca init overwrote the files")
	}
	for _, name := range []string{pki.CAKeyFile, pki.SealKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	if _, err := pki.LoadCA(dir, "wrong"); !errors.Is(err, pki.ErrBadPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
	ca, err := pki.LoadCA(dir, opts.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	seal, err := pki.LoadSeal(dir, opts.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := pki.LoadCACert(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !caCert.Equal(ca.Cert) || !ca.Cert.IsCA || len(seal.Chain) != 2 || !seal.Chain[1].Equal(ca.Cert) {
		t.Fatal("ca.crt, ca.p12 and seal.p12 do not match")
	}
	if !pki.IssuedBy(seal.Chain[0], ca.Cert) || seal.Chain[0].Subject.CommonName != "Commune d'Exemple seal" {
		t.Errorf("seal certificate: %v", seal.Chain[0].Subject)
	}
	pemChain, err := pki.ReadCertificates(filepath.Join(dir, pki.SealCertFile))
	if err != nil || len(pemChain) != 2 || !pemChain[0].Equal(seal.Chain[0]) {
		t.Errorf("seal.crt: %v", err)
	}
	if _, err := pki.LoadCA(t.TempDir(), "x"); err == nil {
		t.Error("loading a CA from an empty directory worked")
	}
}

func TestIssueOneTime(t *testing.T) {
	ca, err := pki.NewCA(pkix.Name{CommonName: "CA", Organization: []string{"Org"}}, 24*time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.IssueOneTime("Jeanne Roux", "jeanne@example.org", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ca.IssueOneTime("Jeanne Roux", "jeanne@example.org", 0)
	if err != nil {
		t.Fatal(err)
	}
	c := a.Chain[0]
	if c.Subject.CommonName != "Jeanne Roux" || len(c.EmailAddresses) != 1 || c.EmailAddresses[0] != "jeanne@example.org" {
		t.Errorf("subject %v, emails %v", c.Subject, c.EmailAddresses)
	}
	if v := c.NotAfter.Sub(c.NotBefore); v > pki.DefaultOneTimeValidity+10*time.Minute {
		t.Errorf("validity %v, want about %v", v, pki.DefaultOneTimeValidity)
	}
	if c.KeyUsage&x509.KeyUsageContentCommitment == 0 || !pki.IssuedBy(c, ca.Cert) {
		t.Errorf("key usage %v or issuer wrong", c.KeyUsage)
	}
	if a.Key.Public().(*ecdsa.PublicKey).Equal(b.Key.Public()) || c.SerialNumber.Cmp(b.Chain[0].SerialNumber) == 0 {
		t.Error("two one-time certificates share a key or serial")
	}
	if _, err := ca.IssueOneTime("", "x@example.org", 0); err == nil {
		t.Error("no name accepted")
	}
	if _, err := ca.IssueOneTime("X", "not an address", 0); err == nil {
		t.Error("bad email accepted")
	}
}

func TestLoadPEM(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA(pkix.Name{CommonName: "PEM CA"}, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(pkix.Name{CommonName: "PEM signer"}, nil, key.Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, certFile := filepath.Join(dir, "key.pem"), filepath.Join(dir, "chain.pem")
	writePEM(t, keyFile, "PRIVATE KEY", der)
	writePEM(t, certFile, "CERTIFICATE", cert.Raw, ca.Cert.Raw)
	kp, err := pki.LoadPEM(keyFile, certFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(kp.Chain) != 2 || !kp.Chain[0].Equal(cert) {
		t.Errorf("chain of %d", len(kp.Chain))
	}
	other := filepath.Join(dir, "other.pem")
	writePEM(t, other, "CERTIFICATE", ca.Cert.Raw)
	if _, err := pki.LoadPEM(keyFile, other); err == nil {
		t.Error("a certificate of another key was accepted")
	}
}

func writePEM(t *testing.T, path, typ string, ders ...[]byte) {
	t.Helper()
	var b bytes.Buffer
	for _, d := range ders {
		pem.Encode(&b, &pem.Block{Type: typ, Bytes: d})
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSerialHex: the serial is written as the signature panel of a PDF
// reader and openssl show it, with the leading zero of its first byte.
func TestSerialHex(t *testing.T) {
	for _, c := range []struct {
		serial string
		want   string
	}{
		{"3441892e5975e451982d25cecb0f511", "03441892e5975e451982d25cecb0f511"},
		{"6fbcdb030f459368a8bb6af56a4fd2d1", "6fbcdb030f459368a8bb6af56a4fd2d1"},
		{"a1", "00a1"}, // DER adds a zero byte before a high first bit
		{"0", "00"},
	} {
		n, _ := new(big.Int).SetString(c.serial, 16)
		if got := pki.SerialHex(&x509.Certificate{SerialNumber: n}); got != c.want {
			t.Errorf("SerialHex(%s) = %s, want %s", c.serial, got, c.want)
		}
	}
}
