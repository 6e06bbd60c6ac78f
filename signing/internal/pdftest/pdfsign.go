package pdftest

import (
	"crypto"
	"crypto/x509"
	"testing"
	"time"

	"github.com/digitorus/pdfsign/sign"

	"github.com/parapheur/parapheur/signing/pki"
)

// SignWithPdfsign signs the PDF in into out with digitorus/pdfsign, an
// implementation other than ours, as "Prior Signer" with a certificate
// of ca: a document someone signed before it reached the gateway.
func SignWithPdfsign(t testing.TB, ca *pki.CA, in, out string) {
	t.Helper()
	kp, err := ca.IssueOneTime("Prior Signer", "prior@example.org", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	err = sign.SignFile(in, out, sign.SignData{
		Signature: sign.SignDataSignature{
			CertType: sign.ApprovalSignature,
			Info:     sign.SignDataSignatureInfo{Name: "Prior Signer", Reason: "Earlier approval", Date: time.Now()},
		},
		Signer:            kp.Key,
		DigestAlgorithm:   crypto.SHA256,
		Certificate:       kp.Chain[0],
		CertificateChains: [][]*x509.Certificate{kp.Chain},
	})
	if err != nil {
		t.Fatalf("pdfsign: %v", err)
	}
}
