// Package mailcorpus gives the tests of mailin's packages the corpus of
// mails shaped like real clients' (mailin/testdata), whatever the package's
// depth, so each fuzz target seeds from the same mails.
package mailcorpus

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Mails returns every mail of the corpus, by file name; it fails tb when
// the corpus is missing.
func Mails(tb testing.TB) map[string][]byte {
	tb.Helper()
	_, here, _, _ := runtime.Caller(0)
	files, err := filepath.Glob(filepath.Join(filepath.Dir(here), "..", "..", "testdata", "*.eml"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no mail corpus in mailin/testdata: %v", err)
	}
	mails := map[string][]byte{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		mails[filepath.Base(f)] = raw
	}
	return mails
}
