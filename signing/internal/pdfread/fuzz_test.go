package pdfread_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/parapheur/parapheur/signing/internal/pdfread"
	"github.com/parapheur/parapheur/signing/internal/pdftest"
)

// FuzzOpen feeds arbitrary bytes to the lazy reader: it must read them or
// return an error, never panic, whatever the cross-reference sections,
// object streams and page tree claim; and where it lists the pages, Page
// must find each of them and none past the last.
func FuzzOpen(f *testing.F) {
	for _, name := range []string{"mutool", "qpdf-classic", "qpdf-objstm", "pdfcpu-hybrid", "pdfcpu-incremental"} {
		data, err := os.ReadFile(pdftest.Corpus(f)[name])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, data := range pdftest.Hostile() {
		if len(data) < 64<<10 {
			f.Add(data)
		}
	}
	f.Add(pdftest.Bomb(f, 4<<20, "objstms"))
	f.Add([]byte("%PDF-1.7\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[2 0 R]/Count 1>>endobj\nxref\n0 3\n0000000000 65535 f \n0000000009 00000 n \n0000000053 00000 n \ntrailer<</Root 1 0 R/Size 3/Prev 107>>\nstartxref\n107\n%%EOF"))
	f.Fuzz(func(t *testing.T, in []byte) {
		file, err := pdfread.Open(context.Background(), in, 1<<20)
		if err != nil {
			return
		}
		if _, err := file.Catalog(); err != nil {
			return
		}
		pages, err := file.Pages()
		if err != nil {
			return
		}
		for p := 1; p <= len(pages); p++ {
			if d, ref, err := file.Page(p); err != nil || d == nil || ref != pages[p-1] {
				t.Fatalf("page %d: %v %v (%v), listed %v", p, ref, d, err, pages[p-1])
			}
		}
		if _, _, err := file.Page(len(pages) + 1); !errors.Is(err, pdfread.ErrNoPage) {
			t.Fatalf("page %d of %d: %v, want ErrNoPage", len(pages)+1, len(pages), err)
		}
	})
}
