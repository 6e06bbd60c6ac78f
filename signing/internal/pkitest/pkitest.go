// Package pkitest runs, for tests, an RFC 3161 time-stamp authority and an
// RFC 5280 CRL distribution point on loopback, both backed by a test CA.
package pkitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/parapheur/parapheur/signing/pki"
)

var (
	oidExtKeyUsage     = asn1.ObjectIdentifier{2, 5, 29, 37}
	ekuTimeStamping, _ = asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
)

// TSA is a running time-stamp authority.
type TSA struct {
	// URL is its HTTP endpoint.
	URL string
	// Cert is its certificate, issued by the test CA.
	Cert *x509.Certificate
	// Requests counts the tokens issued.
	Requests atomic.Int64
	// Tamper, when set, alters each token before it is signed, to test
	// clients against a misbehaving TSA.
	Tamper atomic.Pointer[func(*timestamp.Timestamp)]
}

// StartTSA starts a TSA whose certificate ca issues; it stops with the
// test.
func StartTSA(t testing.TB, ca *pki.CA) *TSA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "Test TSA", Organization: []string{"Parapheur test"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// RFC 3161 §2.3: the time-stamping extended key usage, critical,
		// which Go only writes as non-critical from ExtKeyUsage.
		ExtraExtensions: []pkix.Extension{{Id: oidExtKeyUsage, Critical: true, Value: ekuTimeStamping}},
	}
	if ca.CRLURL != "" {
		tmpl.CRLDistributionPoints = []string{ca.CRLURL}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	tsa := &TSA{Cert: cert}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, err := timestamp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ts := timestamp.Timestamp{
			HashAlgorithm:     req.HashAlgorithm,
			HashedMessage:     req.HashedMessage,
			Time:              time.Now().UTC().Truncate(time.Second),
			Nonce:             req.Nonce,
			Policy:            asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1},
			AddTSACertificate: true,
		}
		if tamper := tsa.Tamper.Load(); tamper != nil {
			(*tamper)(&ts)
		}
		resp, err := ts.CreateResponseWithOpts(cert, key, crypto.SHA256)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		tsa.Requests.Add(1)
		w.Header().Set("Content-Type", "application/timestamp-reply")
		w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	tsa.URL = srv.URL
	return tsa
}

// CRLServer is a running CRL distribution point.
type CRLServer struct {
	// URL is where the CRL is served.
	URL string
	// CA signs the CRL (nothing revoked); until it is set, the server
	// answers 503, which lets a test start the server before `ca init`
	// makes the CA whose certificates must point to URL.
	CA atomic.Pointer[pki.CA]
	// Fetched counts CRL downloads.
	Fetched atomic.Int64
}

// StartCRL starts a CRL distribution point; it stops with the test.
func StartCRL(t testing.TB) *CRLServer {
	t.Helper()
	s := &CRLServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ca := s.CA.Load()
		if ca == nil {
			http.Error(w, "no CA yet", http.StatusServiceUnavailable)
			return
		}
		crl, err := ca.CRL(1, nil, 24*time.Hour)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.Fetched.Add(1)
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(crl)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/ca.crl"
	return s
}
