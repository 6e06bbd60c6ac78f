package pki_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/internal/pkitest"
	"github.com/parapheur/parapheur/signing/pki"
	"golang.org/x/crypto/ocsp"
)

// TestFetchOCSP asks a loopback responder about a certificate: a good
// answer comes back as DER for the /DSS; an answer the issuer did not
// sign, a responder that fails, and a revoked certificate are problems,
// only the last a *RevokedError.
func TestFetchOCSP(t *testing.T) {
	responder := pkitest.StartOCSP(t)
	ca, err := pki.NewCA(pkix.Name{CommonName: "OCSP test CA"}, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	ca.OCSPURL = responder.URL
	kp, err := ca.IssueOneTime("Alice Martin", "alice@example.org", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func() ([][]byte, error) {
		return pki.FetchOCSP(context.Background(), http.DefaultClient, kp.Chain)
	}

	if answers, err := fetch(); len(answers) != 0 || err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("responder not ready: %d answers, %v", len(answers), err)
	}

	responder.CA.Store(ca)
	answers, err := fetch()
	if err != nil || len(answers) != 1 {
		t.Fatalf("good certificate: %d answers, %v", len(answers), err)
	}
	resp, err := ocsp.ParseResponseForCert(answers[0], kp.Chain[0], ca.Cert)
	if err != nil || resp.Status != ocsp.Good {
		t.Errorf("answer kept for the /DSS: %v, %v", resp, err)
	}

	other, err := pki.NewCA(pkix.Name{CommonName: "OCSP test CA"}, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	responder.CA.Store(other) // same name, other key
	var revoked *pki.RevokedError
	if answers, err := fetch(); len(answers) != 0 || err == nil || errors.As(err, &revoked) {
		t.Errorf("answer signed by another key: %d answers, %v", len(answers), err)
	}

	responder.CA.Store(ca)
	responder.Revoke(kp.Chain[0])
	answers, err = fetch()
	if len(answers) != 0 || !errors.As(err, &revoked) || revoked.Subject != "Alice Martin" || revoked.Source != responder.URL {
		t.Errorf("revoked certificate: %d answers, %v", len(answers), err)
	}
}

// TestFetchCRLsRevoked checks that a certificate listed in its issuer's
// CRL is reported revoked, and that the CRL is still returned.
func TestFetchCRLsRevoked(t *testing.T) {
	crl := pkitest.StartCRL(t)
	ca, err := pki.NewCA(pkix.Name{CommonName: "CRL test CA"}, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	ca.CRLURL = crl.URL
	crl.CA.Store(ca)
	kp, err := ca.IssueOneTime("Alice Martin", "alice@example.org", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certs := []*x509.Certificate{kp.Chain[0], ca.Cert}
	if crls, err := pki.FetchCRLs(context.Background(), http.DefaultClient, certs); len(crls) != 1 || err != nil {
		t.Fatalf("good certificate: %d CRLs, %v", len(crls), err)
	}
	crl.Revoke(kp.Chain[0])
	crls, err := pki.FetchCRLs(context.Background(), http.DefaultClient, certs)
	var revoked *pki.RevokedError
	if len(crls) != 1 || !errors.As(err, &revoked) || revoked.Serial.Cmp(kp.Chain[0].SerialNumber) != 0 {
		t.Errorf("revoked certificate: %d CRLs, %v", len(crls), err)
	}
}
