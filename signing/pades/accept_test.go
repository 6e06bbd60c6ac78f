package pades_test

import (
	"bytes"
	"context"
	"encoding/json"
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
// documents) and the hostile ones. Whatever Inspect accepts, Sign signs
// with a stamp on the first page as on the last (Sign finds a page by
// the page tree's /Count entries, Inspect by walking it), or envelopes get
// created that nobody can sign; and a stamp one page further is refused.
// Of the real documents, whatever Sign signs, Inspect accepts: none that
// could be signed is refused at the door. The hostile files are refused,
// or accepted with their real page count (pdftest.HostilePages); and the
// page count Inspect gives is the one qpdf counts.
func TestInspectAgreesWithSign(t *testing.T) {
	signer := oneTimeSigner(t, "Agreement")
	sign := func(in []byte, page int) ([]byte, error) {
		var out bytes.Buffer
		err := pades.Sign(context.Background(), in, &out, pades.Options{
			Signer: signer,
			Stamp:  &pades.Stamp{Page: page, Name: "Agreement"},
		})
		return out.Bytes(), err
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
			hostile, isHostile := strings.CutPrefix(name, "hostile/")
			want, known := pdftest.HostilePages[strings.TrimSuffix(hostile, "-objstm")]
			pages, inspectErr := pades.Inspect(context.Background(), in, 0)
			if inspectErr != nil {
				_, signErr := sign(in, 1)
				switch {
				case isHostile && known:
					t.Fatalf("Inspect refuses a hostile file of %d pages a signer can take: %v", want, inspectErr)
				case !isHostile && signErr == nil:
					t.Fatalf("Inspect refuses a document Sign signs (stamp on page 1): %v", inspectErr)
				}
				t.Logf("refused by Inspect: %v; Sign, stamp on page 1: %v", inspectErr, signErr)
				return
			}
			if isHostile && !known {
				t.Fatalf("a hostile file accepted, with %d pages", pages)
			}
			if _, err := sign(in, 1); err != nil {
				t.Errorf("Inspect accepts %d pages, Sign cannot stamp the first: %v", pages, err)
			}
			if out, err := sign(in, pages); err != nil {
				t.Errorf("Inspect accepts %d pages, Sign cannot stamp the last: %v", pages, err)
			} else if n, err := pades.Inspect(context.Background(), out, 0); err != nil || n != pages {
				t.Errorf("signed on its last page, %d pages (%v), was %d", n, err, pages)
			}
			if _, err := sign(in, pages+1); !errors.Is(err, pades.ErrNoSuchPage) {
				t.Errorf("Inspect accepts %d pages, Sign with a stamp on page %d: %v, want ErrNoSuchPage", pages, pages+1, err)
			}
			if known && pages != want {
				t.Errorf("Inspect counts %d pages, the hostile file has %d", pages, want)
			}
			// qpdf --show-npages gives the root's /Count, which only the
			// hostile files make lie.
			walked, counted := qpdfPages(t, path)
			if pages != walked || !isHostile && pages != counted {
				t.Errorf("Inspect counts %d pages, qpdf %d walking the page tree and %d by --show-npages", pages, walked, counted)
			}
		})
	}
}

// TestSignReadsOnlyItsPage checks that Sign reads of the page tree only
// the path to the page its stamp goes on, found by the /Count entries:
// the cost of a signature does not grow with the document's page count.
// Page 1 of these files can be signed though what lies beyond cannot be
// read (Inspect, which walks the whole tree, refuses them), and the
// page count the root's /Count claims does not matter.
func TestSignReadsOnlyItsPage(t *testing.T) {
	signer := oneTimeSigner(t, "Path")
	hostile := pdftest.Hostile()
	for _, name := range []string{"kids-loop-after-page-1", "deep-array-in-page-2", "count-2147483647"} {
		for _, name := range []string{name, name + "-objstm"} {
			err := pades.Sign(context.Background(), hostile[name], new(bytes.Buffer), pades.Options{
				Signer: signer,
				Stamp:  &pades.Stamp{Page: 1, Name: "Path"},
			})
			if err != nil {
				t.Errorf("%s: stamp on page 1: %v", name, err)
			}
		}
	}
}

// qpdfPages returns the pages qpdf finds in the PDF at path: those it
// lists walking the page tree (--json's "pages", repaired where it must),
// and the count --show-npages gives, which is the root's /Count.
func qpdfPages(t *testing.T, path string) (walked, counted int) {
	t.Helper()
	pdftest.Need(t, "qpdf")
	qpdf := func(args ...string) []byte {
		out, err := exec.Command("qpdf", append(args, path)...).Output()
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) { // 3: warnings
			t.Fatalf("qpdf %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	var doc struct{ Pages []json.RawMessage }
	if err := json.Unmarshal(qpdf("--json", "--json-key=pages"), &doc); err != nil {
		t.Fatalf("qpdf --json: %v", err)
	}
	out := qpdf("--show-npages")
	counted, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("qpdf --show-npages: %q", out)
	}
	return len(doc.Pages), counted
}
