// Package pkitest runs, for tests, an RFC 3161 time-stamp authority, an
// RFC 5280 CRL distribution point and an RFC 6960 OCSP responder on
// loopback, all backed by a test CA.
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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/parapheur/parapheur/signing/pki"
	"golang.org/x/crypto/ocsp"
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
	if ca.OCSPURL != "" {
		tmpl.OCSPServer = []string{ca.OCSPURL}
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
	// CA signs the CRL; until it is set, the server answers 503, which
	// lets a test start the server before `ca init` makes the CA whose
	// certificates must point to URL.
	CA atomic.Pointer[pki.CA]
	// Fetched counts CRL downloads.
	Fetched atomic.Int64
	revocations
}

// StartCRL starts a CRL distribution point; it stops with the test.
func StartCRL(t testing.TB) *CRLServer {
	t.Helper()
	s := &CRLServer{}
	s.URL = serve(t, &s.CA, "application/pkix-crl", func(ca *pki.CA, _ []byte) ([]byte, error) {
		var revoked []x509.RevocationListEntry
		s.mu.Lock()
		for serial, at := range s.revoked {
			n, _ := new(big.Int).SetString(serial, 10)
			revoked = append(revoked, x509.RevocationListEntry{SerialNumber: n, RevocationTime: at})
		}
		s.mu.Unlock()
		crl, err := ca.CRL(1, revoked, 24*time.Hour)
		if err == nil {
			s.Fetched.Add(1)
		}
		return crl, err
	}) + "/ca.crl"
	return s
}

// OCSPResponder is a running OCSP responder whose answers the CA signs
// itself.
type OCSPResponder struct {
	// URL is where requests are POSTed.
	URL string
	// CA answers; until it is set, the responder answers 503.
	CA atomic.Pointer[pki.CA]
	// Asked counts the requests answered.
	Asked atomic.Int64
	revocations
}

// StartOCSP starts an OCSP responder; it stops with the test.
func StartOCSP(t testing.TB) *OCSPResponder {
	t.Helper()
	s := &OCSPResponder{}
	s.URL = serve(t, &s.CA, "application/ocsp-response", func(ca *pki.CA, body []byte) ([]byte, error) {
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
		s.mu.Lock()
		if at, ok := s.revoked[req.SerialNumber.String()]; ok {
			tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, at, ocsp.KeyCompromise
		}
		s.mu.Unlock()
		resp, err := ocsp.CreateResponse(ca.Cert, ca.Cert, tmpl, ca.Key)
		if err == nil {
			s.Asked.Add(1)
		}
		return resp, err
	}) + "/ocsp"
	return s
}

// serve starts a server, stopped with the test, that answers with what
// answer makes of the request body and the CA ca holds, or 503 while ca
// holds none, and returns its URL.
func serve(t testing.TB, ca *atomic.Pointer[pki.CA], contentType string, answer func(ca *pki.CA, body []byte) ([]byte, error)) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := ca.Load()
		if c == nil {
			http.Error(w, "no CA yet", http.StatusServiceUnavailable)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err == nil {
			body, err = answer(c, body)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// revocations are the certificates a server declares revoked.
type revocations struct {
	mu      sync.Mutex
	revoked map[string]time.Time // by decimal serial number
}

// Revoke makes the server declare cert revoked from now on.
func (r *revocations) Revoke(cert *x509.Certificate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.revoked == nil {
		r.revoked = map[string]time.Time{}
	}
	r.revoked[cert.SerialNumber.String()] = time.Now().Add(-time.Minute).Truncate(time.Second)
}
