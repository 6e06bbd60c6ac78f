// Package pdftest gives the signing tests a corpus of PDF files made by
// real tools (qpdf, ghostscript, mutool, pdfcpu's test data, pdfsign) and
// runs the independent validators (pdfsig, qpdf, mutool, openssl, pdfcpu,
// pdfsign) on signed output.
package pdftest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// packages maps each external tool to the Debian package providing it.
var packages = map[string]string{
	"pdfsig":        "poppler-utils",
	"pdftotext":     "poppler-utils",
	"pdfdetach":     "poppler-utils",
	"pdfinfo":       "poppler-utils",
	"pdftoppm":      "poppler-utils",
	"qpdf":          "qpdf",
	"mutool":        "mupdf-tools",
	"ps2pdf":        "ghostscript",
	"openssl":       "openssl",
	"softhsm2-util": "softhsm2",
}

// Need fails the test when tool is missing, naming the package to install.
func Need(t testing.TB, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		pkg := packages[tool]
		if pkg == "" {
			pkg = tool
		}
		t.Fatalf("%s not found: apt-get install -y %s", tool, pkg)
	}
}

// Run runs a tool and fails the test if it cannot start or exits non-zero.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	Need(t, name)
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// PdfcpuTestdata is the directory of pdfcpu's own test PDFs in the module
// cache.
func PdfcpuTestdata(t testing.TB) string {
	t.Helper()
	return filepath.Join(moduleDir(t, "github.com/pdfcpu/pdfcpu"), "pkg", "testdata")
}

// PdfsignTestfiles are pdfsign's own test PDFs in the module cache, among
// them one padded after %%EOF and one already signed by another tool.
func PdfsignTestfiles(t testing.TB) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(moduleDir(t, "github.com/digitorus/pdfsign"), "testfiles", "*.pdf"))
	if len(files) < 5 {
		t.Fatalf("%d pdfsign test files", len(files))
	}
	return files
}

// moduleDir is the directory of module in the module cache.
func moduleDir(t testing.TB, module string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		t.Fatalf("locating module %s: %v", module, err)
	}
	return strings.TrimSpace(string(out))
}

var (
	corpusOnce sync.Once
	corpusDir  string
	corpus     map[string]string
)

// Corpus returns unsigned PDFs by name, made once per test binary in a
// temporary directory:
//
//   - mutool: made by `mutool create` (classic xref table);
//   - qpdf-objstm: rewritten by qpdf with object and xref streams;
//   - qpdf-classic: rewritten by qpdf without object streams;
//   - qpdf-pdf20: qpdf output declaring PDF 2.0;
//   - qpdf-linearized: linearized ("fast web view") by qpdf;
//   - ps2pdf: made by ghostscript from PostScript;
//   - pdfcpu-form: made by pdfcpu from its form test data: fields, /DR, /DA;
//   - pdfcpu-hybrid: pdfcpu's Hybrid-PDF.pdf (xref table plus /XRefStm);
//   - pdfcpu-incremental: PDF 2.0 that already has an incremental update.
func Corpus(t testing.TB) map[string]string {
	t.Helper()
	corpusOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pdftest-corpus-")
		if err != nil {
			t.Fatalf("corpus dir: %v", err)
		}
		corpusDir = dir
		corpus = buildCorpus(t, dir)
	})
	if corpus == nil {
		t.Fatal("corpus could not be built (see the first failure)")
	}
	return corpus
}

// Cleanup removes the corpus and pdfcpu's configuration; call it from TestMain after m.Run.
func Cleanup() {
	for _, dir := range []string{corpusDir, pdfcpuConfigDir} {
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
}

func buildCorpus(t testing.TB, dir string) map[string]string {
	p := func(name string) string { return filepath.Join(dir, name+".pdf") }
	page := filepath.Join(dir, "page.txt")
	write(t, page, "%%MediaBox 0 0 595 842\n%%Font Helv Helvetica\nBT /Helv 24 Tf 72 760 Td (Contrat de prestation) Tj ET\nBT /Helv 12 Tf 72 720 Td (Article 1. Objet.) Tj ET\n")
	Run(t, "mutool", "create", "-o", p("mutool"), page, page)
	Run(t, "qpdf", "--object-streams=generate", p("mutool"), p("qpdf-objstm"))
	Run(t, "qpdf", "--object-streams=disable", p("mutool"), p("qpdf-classic"))
	Run(t, "qpdf", "--force-version=2.0", "--object-streams=generate", p("mutool"), p("qpdf-pdf20"))
	Run(t, "qpdf", "--linearize", p("mutool"), p("qpdf-linearized"))

	ps := filepath.Join(dir, "doc.ps")
	write(t, ps, "%!PS\n/Helvetica findfont 20 scalefont setfont\n72 720 moveto (Bon pour accord) show\nshowpage\n72 720 moveto (Page 2) show\nshowpage\n")
	Run(t, "ps2pdf", ps, p("ps2pdf"))

	td := PdfcpuTestdata(t)
	if err := api.CreateFile("", filepath.Join(td, "json", "form", "demoSinglePage", "english.json"), p("pdfcpu-form"), PdfcpuConfig(t)); err != nil {
		t.Fatalf("corpus: pdfcpu form: %v", err)
	}
	addDefaultAppearance(t, p("pdfcpu-form"))
	copyFile(t, filepath.Join(td, "Hybrid-PDF.pdf"), p("pdfcpu-hybrid"))
	copyFile(t, filepath.Join(td, "pdf20", "viaIncrementalSave.pdf"), p("pdfcpu-incremental"))

	m := map[string]string{}
	for _, name := range []string{"mutool", "qpdf-objstm", "qpdf-classic", "qpdf-pdf20", "qpdf-linearized", "ps2pdf", "pdfcpu-form", "pdfcpu-hybrid", "pdfcpu-incremental"} {
		m[name] = p(name)
	}
	return m
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// addDefaultAppearance gives the AcroForm of the PDF at path a document-wide
// /DA, which pdfcpu's form creator leaves out, rewriting it with pdfcpu.
func addDefaultAppearance(t testing.TB, path string) {
	t.Helper()
	ctx := readContext(t, path)
	root, err := ctx.Catalog()
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	form, err := ctx.DereferenceDict(root["AcroForm"])
	if err != nil || form == nil {
		t.Fatalf("corpus: pdfcpu form has no AcroForm: %v", err)
	}
	form["DA"] = types.StringLiteral("/F0 10 Tf 0 g")
	var buf bytes.Buffer
	if err := api.WriteContext(ctx, &buf); err != nil {
		t.Fatalf("corpus: %v", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

var (
	benchOnce  sync.Once
	benchFiles map[string]string
)

// BenchmarkPDFs returns real-world PDFs of about 1 MB (pdfcpu's itu-t81.pdf,
// the JPEG standard) and about 21 MB (twelve of pdfcpu's test documents
// merged by qpdf), by name ("1MB", "21MB").
func BenchmarkPDFs(tb testing.TB) map[string]string {
	tb.Helper()
	Corpus(tb)
	benchOnce.Do(func() {
		td := PdfcpuTestdata(tb)
		big := filepath.Join(corpusDir, "21MB.pdf")
		args := []string{"--empty", "--pages"}
		for _, f := range []string{"WaldenFull.pdf", "FOSDEM14_HPC_devroom_14_GoCUDA.pdf", "gobook.0.pdf", "CenterOfWhy.pdf", "mountain.pdf", "ECSTR11-01.pdf", "HL1396.pdf", "BuildingWebappsWithGo.pdf", "VectorApple.pdf", "itu-t81.pdf", "TheGoProgrammingLanguageCh1.pdf", "GoForOptimization.pdf"} {
			args = append(args, filepath.Join(td, f))
		}
		Run(tb, "qpdf", append(args, "--", big)...)
		benchFiles = map[string]string{"1MB": filepath.Join(td, "itu-t81.pdf"), "21MB": big}
	})
	return benchFiles
}
