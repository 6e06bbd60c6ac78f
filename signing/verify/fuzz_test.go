package verify_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/verify"
	"github.com/parapheur/parapheur/workflow/audit"
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
	f.Add(sign(f, ca, attachTrail(f, encodeTrail(f, testTrail())), "Fuzz Seal", nil))
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

// FuzzReadTrail feeds arbitrary bytes to the audit trail reader: it must
// refuse them with an error or return records whose check names a broken
// event only when there is one, never panic.
func FuzzReadTrail(f *testing.F) {
	recs := testTrail()
	intact := encodeTrail(f, recs)
	f.Add(intact)
	f.Add(encodeTrail(f, []audit.Record{recs[0], recs[2], recs[1], recs[3]}))
	f.Add(bytes.Replace(intact, []byte("marie@"), []byte("marc@"), 1))
	f.Add(intact[:len(intact)/2])
	f.Add([]byte(`[{"seq":1,"details":{"a":"b"},"time":"2026-06-01T09:00:00Z"}] []`))
	f.Add([]byte(`[null]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := verify.ReadTrail(data)
		if err != nil {
			if len(recs) != 0 {
				t.Fatalf("error %v with %d records", err, len(recs))
			}
			return
		}
		tr := verify.CheckTrail("fuzz", recs, nil)
		if tr.Intact() != (audit.Verify(recs) == nil) || (tr.Broken == nil) != tr.Intact() {
			t.Fatalf("check %+v disagrees with audit.Verify: %v", tr, audit.Verify(recs))
		}
		var text bytes.Buffer
		tr.WriteText(&text)
	})
}
