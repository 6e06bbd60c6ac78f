package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/signtest"
)

// With public_url, ca init writes PUBLIC_URL/ca.crl into the seal
// certificate as its CRL distribution point; without it, none, and says so.
func TestCAInitCRLDistributionPoint(t *testing.T) {
	for _, c := range []struct {
		name, publicURL, want, says string
	}{
		{"with public_url", "https://sign.org.example/", "https://sign.org.example/ca.crl", "names the CRL that serve publishes at https://sign.org.example/ca.crl"},
		{"without public_url", "", "", "names no CRL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			env := []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_KEYS_DIR=" + dir, "PARAPHEUR_KEYS_PASSPHRASE=test"}
			if c.publicURL != "" {
				env = append(env, "PARAPHEUR_PUBLIC_URL="+c.publicURL)
			}
			r := parapheur(t, env, "ca", "init", "--organisation", "Mairie de Test")
			if r.code != exitOK || !strings.Contains(r.stdout, c.says) {
				t.Fatalf("ca init: exit %d, want 0 and %q\n%s%s", r.code, c.says, r.stdout, r.stderr)
			}
			certs, err := pki.ReadCertificates(filepath.Join(dir, pki.SealCertFile))
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			if c.want != "" {
				want = []string{c.want}
			}
			if got := certs[0].CRLDistributionPoints; !slices.Equal(got, want) {
				t.Errorf("seal certificate's CRL distribution points: %q, want %q", got, want)
			}
		})
	}
	// A public_url that cannot be one is refused before any key is made.
	dir := t.TempDir()
	r := parapheur(t, []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_KEYS_DIR=" + dir, "PARAPHEUR_KEYS_PASSPHRASE=test",
		"PARAPHEUR_PUBLIC_URL=ftp://sign.org.example"}, "ca", "init", "--organisation", "Mairie de Test")
	if r.code != exitFailure || !strings.Contains(r.stderr, "public_url") {
		t.Fatalf("ca init with an ftp public_url: exit %d, want %d and the problem named\n%s%s", r.code, exitFailure, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, pki.SealCertFile)); !os.IsNotExist(err) {
		t.Errorf("ca init with a bad public_url wrote the seal certificate (%v)", err)
	}
}

// A running gateway publishes its CA's CRL at PUBLIC_URL/ca.crl, which the
// seal certificate and every one-time certificate name, so that openssl
// and the final seal's CRL fetching accept their chains, and a document a
// signer signed validates.
func TestServeCRL(t *testing.T) {
	dir := t.TempDir()
	listen := freeAddr(t)
	publicURL := "http://" + listen
	keys := dir + "/keys"
	if r := parapheur(t, []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_KEYS_DIR=" + keys, "PARAPHEUR_KEYS_PASSPHRASE=test", "PARAPHEUR_PUBLIC_URL=" + publicURL},
		"ca", "init", "--organisation", "Mairie de Test"); r.code != exitOK {
		t.Fatalf("ca init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	g := runGateway(t, keys, listen, publicURL)
	eventually(t, 10*time.Second, "the gateway answering", func() bool {
		resp, err := http.Get(publicURL + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})

	caFile := filepath.Join(keys, pki.CACertFile)
	caCert, err := pki.LoadCACert(keys)
	if err != nil {
		t.Fatal(err)
	}
	resp, der := getResponse(t, publicURL+"/ca.crl")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET /ca.crl: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("GET /ca.crl: %v", err)
	}
	if err := crl.CheckSignatureFrom(caCert); err != nil {
		t.Errorf("the CRL is not signed by the CA: %v", err)
	}
	if crl.Number.Sign() <= 0 || len(crl.RevokedCertificateEntries) != 0 || crl.NextUpdate.Sub(crl.ThisUpdate) < crlValidity {
		t.Errorf("CRL number %v, %d revoked, valid from %v to %v; want a positive number, none revoked, %v of validity",
			crl.Number, len(crl.RevokedCertificateEntries), crl.ThisUpdate, crl.NextUpdate, crlValidity)
	}
	if _, again := getResponse(t, publicURL+"/ca.crl"); !bytes.Equal(again, der) {
		t.Error("a second GET /ca.crl answered another CRL: it is signed on every request")
	}
	crlFile := filepath.Join(dir, "ca.crl")
	if err := os.WriteFile(crlFile, der, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("openssl", "crl", "-inform", "DER", "-in", crlFile, "-CAfile", caFile, "-noout").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "verify OK") {
		t.Errorf("openssl crl does not verify the CRL: %v\n%s", err, out)
	}
	crlPEM := filepath.Join(dir, "crl.pem")
	if err := os.WriteFile(crlPEM, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}

	seal, err := pki.LoadSeal(keys, "test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := g.ca.IssueOneTime("Alice Martin", "alice@example.com", 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, chain := range map[string][]*x509.Certificate{"seal": seal.Chain, "one-time": signer.Chain} {
		if got, want := chain[0].CRLDistributionPoints, []string{publicURL + "/ca.crl"}; !slices.Equal(got, want) {
			t.Errorf("%s certificate's CRL distribution points: %q, want %q", name, got, want)
		}
		// What the final seal does to gather the validation data.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		crls, err := pki.FetchCRLs(ctx, http.DefaultClient, chain)
		cancel()
		if err != nil || len(crls) != 1 {
			t.Errorf("fetching the %s certificate's CRL: %d CRL(s), %v", name, len(crls), err)
		}
		certFile := filepath.Join(dir, name+".pem")
		if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain[0].Raw}), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("openssl", "verify", "-crl_check", "-CAfile", caFile, "-CRLfile", crlPEM, certFile).CombinedOutput(); err != nil {
			t.Errorf("openssl verify -crl_check of the %s certificate: %v\n%s", name, err, out)
		}
	}

	pdf, err := os.ReadFile(samplePDF)
	if err != nil {
		t.Fatal(err)
	}
	var signed bytes.Buffer
	if err := pades.Sign(t.Context(), pdf, &signed, pades.Options{Signer: pades.Signer{Key: signer.Key, Chain: signer.Chain}, Name: "Alice Martin"}); err != nil {
		t.Fatal(err)
	}
	signedFile := filepath.Join(dir, "signed.pdf")
	if err := os.WriteFile(signedFile, signed.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(signtest.Cleanup)
	signtest.Validate(t, signedFile, signtest.Expect{Signatures: 1, CAFile: caFile})
}

// The CRL is kept until crlRenewal, then signed anew with a larger number.
func TestCRLRenewal(t *testing.T) {
	ca, err := pki.LoadCA(initKeys(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	p, err := newCRLPublisher(ca, slog.New(slog.DiscardHandler), func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	parse := func() (*x509.RevocationList, []byte) {
		t.Helper()
		der, _, err := p.current()
		if err != nil {
			t.Fatal(err)
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		return crl, der
	}
	first, firstDER := parse()
	clock = clock.Add(crlRenewal - time.Minute)
	if _, der := parse(); !bytes.Equal(der, firstDER) {
		t.Errorf("a new CRL before %v", crlRenewal)
	}
	clock = clock.Add(2 * time.Minute)
	second, der := parse()
	if bytes.Equal(der, firstDER) {
		t.Fatalf("no new CRL after %v", crlRenewal)
	}
	if second.Number.Cmp(first.Number) <= 0 {
		t.Errorf("CRL number %v after %v: it must grow", second.Number, first.Number)
	}
	// A clock that steps back still gives a larger number; the kept CRL
	// is made due, as it is after a day of running on the stepped clock.
	clock = clock.Add(-2 * crlRenewal)
	p.signed = clock.Add(-crlRenewal)
	if third, _ := parse(); third.Number.Cmp(second.Number) <= 0 {
		t.Errorf("CRL number %v after %v with the clock stepped back: it must grow", third.Number, second.Number)
	}
}
