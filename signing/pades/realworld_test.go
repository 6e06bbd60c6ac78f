package pades_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/pades"
)

// TestPdfcpuTestdata signs every PDF of pdfcpu's test data (documents
// from many producers, none made here) with a visible stamp, and has every
// validator check the result. With -short it takes every tenth document.
func TestPdfcpuTestdata(t *testing.T) {
	ca, caFile := testCA(t)
	kp, err := ca.IssueOneTime("Sweep Signer", "sweep@example.org", 0)
	if err != nil {
		t.Fatal(err)
	}
	td := pdftest.PdfcpuTestdata(t)
	files, _ := filepath.Glob(filepath.Join(td, "*.pdf"))
	more, _ := filepath.Glob(filepath.Join(td, "pdf20", "*.pdf"))
	for i, f := range append(files, more...) {
		if testing.Short() && i%10 != 0 {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			err = pades.Sign(context.Background(), data, &buf, pades.Options{
				Signer: pades.Signer{Key: kp.Key, Chain: kp.Chain},
				Stamp:  &pades.Stamp{Page: 1, Name: "Sweep Signer", Reason: "Test"},
			})
			if filepath.Base(f) == "withOffsetStart.pdf" {
				// Junk before the header: refused, with the reason.
				if !errors.Is(err, pades.ErrMalformed) {
					t.Fatalf("got %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "signed.pdf")
			if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			e := pdftest.Expect{Signatures: 1, CAFile: caFile}
			if exec.Command("qpdf", "--check", f).Run() != nil {
				e.Unsupported = map[string]string{"qpdf": "qpdf --check already complains about the unsigned source"}
			}
			pdftest.Validate(t, out, e)
		})
	}
}

// TestPdfsignTestfiles signs pdfsign's own test documents, one padded
// after %%EOF and one already signed by another tool.
func TestPdfsignTestfiles(t *testing.T) {
	ca, caFile := testCA(t)
	for _, f := range pdftest.PdfsignTestfiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "signed.pdf")
			signFile(t, ca, f, out, "Sweep Signer", nil)
			// testfile30.pdf comes signed (adbe.pkcs7.detached) by a
			// certificate of its own, which openssl cannot chain.
			e := pdftest.Expect{Signatures: 1, CAFile: caFile}
			if filepath.Base(f) == "testfile30.pdf" {
				e.Signatures = 2
				e.Unsupported = map[string]string{"openssl": "the prior signature's issuer is not in our CA file"}
			}
			pdftest.Validate(t, out, e)
		})
	}
}
