package dsn

import (
	"bytes"
	"testing"

	"github.com/parapheur/parapheur/mailin/internal/mailcorpus"
)

func FuzzDSN(f *testing.F) {
	for _, raw := range mailcorpus.Mails(f) {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		rep, err := Parse(bytes.NewReader(raw))
		if err != nil {
			if rep != nil {
				t.Fatalf("Parse returned a report with error %v", err)
			}
			return
		}
		if len(rep.Recipients) == 0 {
			t.Fatal("a report without recipients")
		}
		for _, r := range rep.Recipients {
			if r.FinalRecipient == "" || r.Action == "" || r.Status == "" {
				t.Errorf("incomplete recipient %+v", r)
			}
		}
	})
}
