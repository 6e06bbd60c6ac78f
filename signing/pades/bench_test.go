package pades_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"os"
	"testing"
	"time"

	"github.com/digitorus/pdf"
	pdfsign "github.com/digitorus/pdfsign/sign"
	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
)

type benchKey struct {
	name  string
	key   crypto.Signer
	chain []*x509.Certificate
}

func benchKeys(b *testing.B) []benchKey {
	b.Helper()
	ca, err := pki.NewCA(pkix.Name{CommonName: "Bench CA"}, 24*time.Hour, false)
	if err != nil {
		b.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	var keys []benchKey
	for _, k := range []struct {
		name string
		key  crypto.Signer
	}{{"rsa2048", rsaKey}, {"ecdsa-p256", ecKey}} {
		cert, err := ca.Issue(pkix.Name{CommonName: "Bench signer"}, nil, k.key.Public(), time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		keys = append(keys, benchKey{k.name, k.key, []*x509.Certificate{cert, ca.Cert}})
	}
	return keys
}

// BenchmarkSign measures one signature on a 1 MB and a 21 MB PDF next to
// its floor (hashing the file and making one raw signature, which any
// signer must do) and to digitorus/pdfsign signing the same file.
func BenchmarkSign(b *testing.B) {
	keys := benchKeys(b)
	for _, size := range []string{"1MB", "21MB"} {
		data, err := os.ReadFile(pdftest.BenchmarkPDFs(b)[size])
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range keys {
			b.Run(size+"/"+k.name+"/floor", func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					h := sha256.Sum256(data)
					if _, err := k.key.Sign(rand.Reader, h[:], crypto.SHA256); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(size+"/"+k.name+"/parapheur", func(b *testing.B) {
				opts := pades.Options{Signer: pades.Signer{Key: k.key, Chain: k.chain}, MaxInput: 64 << 20}
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					if err := pades.Sign(context.Background(), data, io.Discard, opts); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(size+"/"+k.name+"/pdfsign", func(b *testing.B) {
				sd := pdfsign.SignData{
					Signature:         pdfsign.SignDataSignature{CertType: pdfsign.ApprovalSignature, Info: pdfsign.SignDataSignatureInfo{Name: "Bench", Date: time.Now()}},
					Signer:            k.key,
					DigestAlgorithm:   crypto.SHA256,
					Certificate:       k.chain[0],
					CertificateChains: [][]*x509.Certificate{k.chain},
				}
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					r := bytes.NewReader(data)
					rdr, err := pdf.NewReader(r, int64(len(data)))
					if err != nil {
						b.Fatal(err)
					}
					if err := pdfsign.Sign(r, io.Discard, rdr, int64(len(data)), sd); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
