package cms_test

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/cms"
	"github.com/parapheur/parapheur/signing/pki"
)

// FuzzParse feeds arbitrary DER to the parser and verifier: errors are
// fine, panics are not.
func FuzzParse(f *testing.F) {
	for _, rsaKey := range []bool{false, true} {
		ca, err := pki.NewCA(pkix.Name{CommonName: "Fuzz"}, time.Hour, rsaKey)
		if err != nil {
			f.Fatal(err)
		}
		d := sha256.Sum256([]byte("x"))
		sd, err := cms.Sign(d[:], ca.Key, []*x509.Certificate{ca.Cert}, cms.Options{})
		if err != nil {
			f.Fatal(err)
		}
		sd.SetTimestamp([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
		der, err := sd.Bytes()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
		f.Add(der[:len(der)/2])
	}
	f.Add([]byte{0x30, 0x80})
	f.Fuzz(func(t *testing.T, der []byte) {
		p, err := cms.Parse(der)
		if err != nil {
			return
		}
		d := sha256.Sum256(der)
		_ = p.Verify(d[:])
		_ = p.Signature()
	})
}
