package pades_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/pades"
)

// TestInspectAgreesWithSign runs Inspect and Sign over every PDF the
// signing tests know (the tool-made corpus, pdfcpu's and pdfsign's test
// documents) and the hostile ones: Inspect must accept exactly what Sign
// signs, with a stamp on the first page as on the last, or envelopes get
// created that nobody can sign, or documents that could be signed get
// refused. The page count Inspect gives must be the one qpdf counts (the
// hostile files' is known), and a stamp one page further must be refused.
func TestInspectAgreesWithSign(t *testing.T) {
	signer := oneTimeSigner(t, "Agreement")
	sign := func(in []byte, page int) error {
		return pades.Sign(context.Background(), in, new(bytes.Buffer), pades.Options{
			Signer: signer,
			Stamp:  &pades.Stamp{Page: page, Rect: [4]float64{20, 20, 220, 80}, Name: "Agreement"},
		})
	}

	files := map[string]string{} // name: path
	for name, path := range pdftest.Corpus(t) {
		files[name] = path
	}
	td := pdftest.PdfcpuTestdata(t)
	more, _ := filepath.Glob(filepath.Join(td, "*.pdf"))
	pdf20, _ := filepath.Glob(filepath.Join(td, "pdf20", "*.pdf"))
	for _, path := range append(append(more, pdf20...), pdftest.PdfsignTestfiles(t)...) {
		files[strings.TrimPrefix(path, filepath.Dir(filepath.Dir(path))+"/")] = path
	}
	dir := t.TempDir()
	for name, data := range pdftest.Hostile() {
		path := filepath.Join(dir, name+".pdf")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		files["hostile/"+name] = path
	}

	for name, path := range files {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			pages, inspectErr := pades.Inspect(context.Background(), in, 0)
			signErr := sign(in, 1)
			if (inspectErr == nil) != (signErr == nil) {
				t.Fatalf("Inspect and Sign disagree:\nInspect: %d pages, %v\nSign (stamp on page 1): %v", pages, inspectErr, signErr)
			}
			if inspectErr != nil {
				t.Logf("refused by both: %v", inspectErr)
				return
			}
			if err := sign(in, pages); err != nil {
				t.Errorf("Inspect counts %d pages, Sign cannot stamp the last: %v", pages, err)
			}
			if err := sign(in, pages+1); !errors.Is(err, pades.ErrNoSuchPage) {
				t.Errorf("Inspect counts %d pages, Sign with a stamp on page %d: %v, want ErrNoSuchPage", pages, pages+1, err)
			}
			want, known := pdftest.HostilePages[strings.TrimSuffix(strings.TrimPrefix(name, "hostile/"), "-objstm")]
			if !strings.HasPrefix(name, "hostile/") {
				want, known = qpdfPages(t, path), true
			}
			if !known {
				t.Fatalf("a hostile file accepted, with %d pages", pages)
			}
			if pages != want {
				t.Errorf("Inspect counts %d pages, the document has %d", pages, want)
			}
		})
	}
}

// qpdfPages counts the pages of the PDF at path with qpdf, which walks
// the page tree (and repairs it) rather than trusting /Count.
func qpdfPages(t *testing.T, path string) int {
	t.Helper()
	pdftest.Need(t, "qpdf")
	out, err := exec.Command("qpdf", "--show-npages", path).Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) { // 3: warnings
		t.Fatalf("qpdf --show-npages: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("qpdf --show-npages: %q", out)
	}
	return n
}
