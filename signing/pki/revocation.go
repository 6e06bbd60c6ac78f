package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"
)

// Size limits of what revocation servers send back.
const (
	maxCRL  = 8 << 20
	maxOCSP = 1 << 20
)

// RevokedError reports a certificate that its issuer's CRL or OCSP
// responder declares revoked: a signature made with it, or time-stamped
// by it, will not validate.
type RevokedError struct {
	// Subject names the certificate, Serial is its serial number.
	Subject string
	Serial  *big.Int
	// At is when it was revoked; Source is the CRL or OCSP URL that says so.
	At     time.Time
	Source string
}

func (e *RevokedError) Error() string {
	return fmt.Sprintf("certificate %q (serial %x) was revoked on %s, says %s", e.Subject, e.Serial, e.At.UTC().Format(time.RFC3339), e.Source)
}

// FetchCRLs downloads, over HTTP, the CRLs (RFC 5280) that certs name in
// their CRL distribution points, keeping those signed by the
// certificate's issuer (found among certs). It returns the DER CRLs it
// could get and an error joining the problems met, so a caller can go on
// without the missing ones; a certificate a CRL lists as revoked is a
// *RevokedError among them.
func FetchCRLs(ctx context.Context, client *http.Client, certs []*x509.Certificate) ([][]byte, error) {
	var crls [][]byte
	var problems []error
	fetched := map[string]*x509.RevocationList{} // by URL, nil when unusable
	for _, c := range certs {
		issuer := issuerOf(c, certs)
		for _, url := range c.CRLDistributionPoints {
			if !isHTTP(url) {
				continue
			}
			crl, seen := fetched[url]
			if !seen {
				der, parsed, err := fetchCRL(ctx, client, url, issuer)
				if err != nil {
					problems = append(problems, err)
				} else {
					crls = append(crls, der)
				}
				fetched[url], crl = parsed, parsed
			}
			if crl == nil || issuer == nil || !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
				continue
			}
			for _, e := range crl.RevokedCertificateEntries {
				if e.SerialNumber.Cmp(c.SerialNumber) == 0 {
					problems = append(problems, &RevokedError{Subject: c.Subject.CommonName, Serial: c.SerialNumber, At: e.RevocationTime, Source: url})
				}
			}
		}
	}
	return crls, joinProblems(problems)
}

func fetchCRL(ctx context.Context, client *http.Client, url string, issuer *x509.Certificate) ([]byte, *x509.RevocationList, error) {
	der, err := fetch(ctx, client, http.MethodGet, url, "", nil, maxCRL)
	if err != nil {
		return nil, nil, fmt.Errorf("CRL %s: %w", url, err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, nil, fmt.Errorf("CRL %s: %v", url, err)
	}
	if issuer == nil || crl.CheckSignatureFrom(issuer) != nil {
		return nil, nil, fmt.Errorf("CRL %s: not signed by the certificate's issuer", url)
	}
	return der, crl, nil
}

// FetchOCSP asks the OCSP responders (RFC 6960) that certs name in their
// authority information access for their status, for each certificate
// whose issuer is among certs. It returns the DER responses of those
// found good and an error joining the problems met; a certificate a
// responder declares revoked is a *RevokedError among them.
func FetchOCSP(ctx context.Context, client *http.Client, certs []*x509.Certificate) ([][]byte, error) {
	var answers [][]byte
	var problems []error
	for _, c := range certs {
		issuer := issuerOf(c, certs)
		if issuer == nil || issuer == c {
			continue // a root is not checked by OCSP
		}
		for _, url := range c.OCSPServer {
			if !isHTTP(url) {
				continue
			}
			der, err := askOCSP(ctx, client, url, c, issuer)
			if err != nil {
				problems = append(problems, err)
				continue
			}
			answers = append(answers, der)
			break // one good answer per certificate is enough
		}
	}
	return answers, joinProblems(problems)
}

func askOCSP(ctx context.Context, client *http.Client, url string, c, issuer *x509.Certificate) ([]byte, error) {
	// The default CertID hash, SHA-1, is the one every responder knows.
	req, err := ocsp.CreateRequest(c, issuer, nil)
	if err != nil {
		return nil, fmt.Errorf("OCSP %s: %v", url, err)
	}
	der, err := fetch(ctx, client, http.MethodPost, url, "application/ocsp-request", req, maxOCSP)
	if err != nil {
		return nil, fmt.Errorf("OCSP %s: %w", url, err)
	}
	// This checks the responder's signature: the issuer's, or that of a
	// responder certificate the issuer delegated OCSP signing to.
	resp, err := ocsp.ParseResponseForCert(der, c, issuer)
	if err != nil {
		return nil, fmt.Errorf("OCSP %s: %v", url, err)
	}
	switch resp.Status {
	case ocsp.Good:
		return der, nil
	case ocsp.Revoked:
		return nil, &RevokedError{Subject: c.Subject.CommonName, Serial: c.SerialNumber, At: resp.RevokedAt, Source: url}
	}
	return nil, fmt.Errorf("OCSP %s: status of %q unknown to the responder", url, c.Subject.CommonName)
}

// fetch sends an HTTP request and returns the body of a 200 answer, of at
// most limit bytes.
func fetch(ctx context.Context, client *http.Client, method, url, contentType string, body []byte, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("answer over %d bytes", limit)
	}
	return data, nil
}

func isHTTP(url string) bool {
	return strings.HasPrefix(url, "http://") || strings.HasPrefix(url, "https://")
}

// joinProblems wraps problems, nil when there are none.
func joinProblems(problems []error) error {
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

func issuerOf(c *x509.Certificate, certs []*x509.Certificate) *x509.Certificate {
	for _, i := range certs {
		if c.CheckSignatureFrom(i) == nil {
			return i
		}
	}
	return nil
}
