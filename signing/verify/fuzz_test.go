package verify_test

import (
	"os"
	"testing"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/verify"
)

// FuzzVerify feeds arbitrary bytes to the verifier: it must return a
// report or ErrUnreadable, never panic.
func FuzzVerify(f *testing.F) {
	ca := newCA(f, "Fuzz CA")
	for _, name := range []string{"qpdf-classic", "qpdf-objstm", "pdfcpu-form"} {
		in, err := os.ReadFile(pdftest.Corpus(f)[name])
		if err != nil {
			f.Fatal(err)
		}
		signed := sign(f, ca, in, "Fuzz Signer", nil)
		f.Add(signed)
		f.Add(signed[:len(signed)-200])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := verify.Verify(data, ca.Cert)
		if err != nil {
			return
		}
		_ = r.Text(true)
		if r.ExitCode() != verify.ExitValid && r.ExitCode() != verify.ExitInvalid {
			t.Fatalf("exit code %d", r.ExitCode())
		}
	})
}
