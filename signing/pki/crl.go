package pki

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxCRL bounds a downloaded CRL.
const maxCRL = 8 << 20

// FetchCRLs downloads, over HTTP, the CRLs that certs name in their CRL
// distribution points, keeping those signed by the certificate's issuer
// (found among certs). It returns the DER CRLs it could get and an error
// listing the ones it could not, so a caller can go on without them.
func FetchCRLs(ctx context.Context, client *http.Client, certs []*x509.Certificate) ([][]byte, error) {
	var crls [][]byte
	var problems []string
	seen := map[string]bool{}
	for _, c := range certs {
		issuer := issuerOf(c, certs)
		for _, url := range c.CRLDistributionPoints {
			if seen[url] || !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
				continue
			}
			seen[url] = true
			der, err := fetchCRL(ctx, client, url, issuer)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			crls = append(crls, der)
		}
	}
	if len(problems) > 0 {
		return crls, fmt.Errorf("pki: %s", strings.Join(problems, "; "))
	}
	return crls, nil
}

func fetchCRL(ctx context.Context, client *http.Client, url string, issuer *x509.Certificate) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("CRL %s: %v", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("CRL %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("CRL %s: %s", url, resp.Status)
	}
	der, err := io.ReadAll(io.LimitReader(resp.Body, maxCRL+1))
	if err != nil || len(der) > maxCRL {
		return nil, fmt.Errorf("CRL %s: unreadable or over 8 MiB", url)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("CRL %s: %v", url, err)
	}
	if issuer == nil || crl.CheckSignatureFrom(issuer) != nil {
		return nil, fmt.Errorf("CRL %s: not signed by the certificate's issuer", url)
	}
	return der, nil
}

func issuerOf(c *x509.Certificate, certs []*x509.Certificate) *x509.Certificate {
	for _, i := range certs {
		if c.CheckSignatureFrom(i) == nil {
			return i
		}
	}
	return nil
}
