package pades_test

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/verify"
)

// FuzzSign feeds arbitrary bytes to the signing path: it must either sign
// (appending only, with a signature our verifier accepts) or return one of
// the documented input errors, never panic; and what Inspect accepts, it
// must sign with a stamp on the last page Inspect counts.
func FuzzSign(f *testing.F) {
	for _, name := range []string{"mutool", "qpdf-classic", "qpdf-objstm", "qpdf-pdf20", "ps2pdf", "pdfcpu-incremental"} {
		data, err := os.ReadFile(pdftest.Corpus(f)[name])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)*3/4])
	}
	for _, data := range pdftest.Hostile() {
		if len(data) < 64<<10 {
			f.Add(data)
		}
	}
	// Pages that inherit their boxes and turn, hold them in indirect
	// objects, or climb to a /Parent that loops or is no dictionary.
	f.Add(pdftest.Classic("<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [100 200 700 1000] /Rotate -90 >>",
		"<< /Type /Page /Parent 2 0 R /CropBox [150 260 650 900] >>"))
	f.Add(pdftest.Classic("<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 3 0 R /MediaBox 4 0 R /Rotate 5 0 R >>",
		"[0 0 5 0 R 842]", "180"))
	f.Add(pdftest.Classic("<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 4 0 R /CropBox [10 10 20] >>", "42"))
	f.Add([]byte("%PDF-1.4\n%%EOF\n"))
	f.Add([]byte("%PDF-1.7\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF"))

	ca, err := pki.NewCA(pkix.Name{CommonName: "Fuzz CA"}, 24*time.Hour, false)
	if err != nil {
		f.Fatal(err)
	}
	kp, err := ca.IssueOneTime("Fuzz Signer", "fuzz@example.org", 24*time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	inputErrors := []error{pades.ErrNotPDF, pades.ErrTooLarge, pades.ErrTruncated, pades.ErrMalformed, pades.ErrEncrypted, pades.ErrNoSuchPage}
	sign := func(in []byte, out *bytes.Buffer, page int) error {
		return pades.Sign(context.Background(), in, out, pades.Options{
			Signer:   pades.Signer{Key: kp.Key, Chain: kp.Chain},
			Stamp:    &pades.Stamp{Page: page, Name: "Fuzz Signer"},
			MaxInput: 1 << 20,
		})
	}
	documented := func(err error) bool {
		return slices.ContainsFunc(inputErrors, func(e error) bool { return errors.Is(err, e) })
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// The seal reads the signatures already there.
		if _, err := pades.SignatureCertificates(context.Background(), in, 1<<20); err != nil && !documented(err) {
			t.Fatalf("SignatureCertificates: error of no documented kind: %v", err)
		}
		if pages, err := pades.Inspect(context.Background(), in, 1<<20); err == nil {
			if err := sign(in, new(bytes.Buffer), pages); err != nil {
				t.Fatalf("Inspect accepts %d pages, Sign refuses a stamp on the last: %v", pages, err)
			}
		}
		var out bytes.Buffer
		err := sign(in, &out, 1)
		if err != nil {
			for _, e := range inputErrors {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("error of no documented kind: %v", err)
		}
		if !bytes.HasPrefix(out.Bytes(), in) {
			t.Fatal("the original bytes were not kept")
		}
		r, err := verify.Verify(out.Bytes(), ca.Cert)
		if err != nil {
			t.Fatalf("signed output unreadable: %v", err)
		}
		if len(r.Signatures) == 0 {
			t.Fatal("signed output has no signature")
		}
		last := r.Signatures[len(r.Signatures)-1]
		if !last.Intact || !last.IssuedByCA || !last.CoversWholeFile {
			t.Fatalf("new signature not valid:\n%s", r.Text(true))
		}
		certs, err := pades.SignatureCertificates(context.Background(), out.Bytes(), 2<<20)
		if err != nil || !slices.ContainsFunc(certs, kp.Chain[0].Equal) {
			t.Fatalf("SignatureCertificates of the signed output: %d certificates, %v; want the signer's", len(certs), err)
		}
	})
}
