package dsn

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func FuzzDSN(f *testing.F) {
	files, err := filepath.Glob("../testdata/*.eml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed corpus in ../testdata: %v", err)
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
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
