package pdfread_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parapheur/parapheur/signing/internal/pdfread"
	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pdftest.Cleanup()
	os.Exit(code)
}

// TestLazyMatchesFull checks that the lazy reader sees what pdfcpu's full
// parse sees: the same trailer data, page count, pages and objects,
// wherever they are kept, and no object number below /Size to reuse. The
// tool-made corpus must be read lazily; documents that only the full
// parse can read (it repairs) are listed.
func TestLazyMatchesFull(t *testing.T) {
	files := map[string]bool{} // path: must be read lazily
	for _, path := range pdftest.Corpus(t) {
		files[path] = true
	}
	td := pdftest.PdfcpuTestdata(t)
	more, _ := filepath.Glob(filepath.Join(td, "*.pdf"))
	pdf20, _ := filepath.Glob(filepath.Join(td, "pdf20", "*.pdf"))
	for _, path := range append(more, pdf20...) {
		files[path] = false
	}
	lazy := 0
	for path, must := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			full, err := pdfread.Read(context.Background(), in, 0)
			if err != nil {
				// Nothing to compare with: the lazy reader must not take
				// what the full parse cannot read.
				if _, lerr := pdfread.Open(context.Background(), in, 0); lerr == nil {
					t.Errorf("the lazy reader accepts a file the full parse refuses: %v", err)
				}
				return
			}
			f, err := pdfread.Open(context.Background(), in, 0)
			var se *pdfread.StructureError
			if errors.As(err, &se) && !must {
				t.Logf("needs the full parse: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if *f.Ctx.Root != *full.Root {
				t.Errorf("root %v, full parse %v", *f.Ctx.Root, *full.Root)
			}
			if *f.Ctx.Size < *full.Size {
				t.Errorf("size %d, full parse %d: new objects would reuse numbers", *f.Ctx.Size, *full.Size)
			}
			if f.Ctx.Read.UsingXRefStreams != full.Read.UsingXRefStreams {
				t.Errorf("xref streams %v, full parse %v", f.Ctx.Read.UsingXRefStreams, full.Read.UsingXRefStreams)
			}
			if *f.Ctx.Write.OffsetPrevXRef != *full.Write.OffsetPrevXRef {
				t.Errorf("last xref at %d, full parse %d", *f.Ctx.Write.OffsetPrevXRef, *full.Write.OffsetPrevXRef)
			}
			root, err := f.Catalog()
			if err != nil {
				t.Fatalf("catalog: %v", err)
			}
			fullRoot, _ := full.Catalog()
			if root.PDFString() != fullRoot.PDFString() {
				t.Errorf("catalog\n%s\nfull parse\n%s", root.PDFString(), fullRoot.PDFString())
			}
			pages, err := f.Pages()
			if err != nil {
				t.Fatalf("pages: %v", err)
			}
			n := len(pages)
			if err := full.EnsurePageCount(); err != nil || n != full.PageCount {
				t.Fatalf("%d pages, full parse %d (%v)", n, full.PageCount, err)
			}
			for p := 1; p <= n; p++ {
				d, ref, err := f.Page(p)
				if err != nil {
					t.Fatalf("page %d: %v", p, err)
				}
				fd, fref, _, err := full.PageDict(p, false)
				if err != nil {
					t.Fatalf("full parse, page %d: %v", p, err)
				}
				if ref != *fref || ref != pages[p-1] || d.PDFString() != fd.PDFString() {
					t.Errorf("page %d is %v %s, full parse %v %s", p, ref, d.PDFString(), *fref, fd.PDFString())
				}
			}
			if _, _, err := f.Page(n + 1); !errors.Is(err, pdfread.ErrNoPage) {
				t.Errorf("page %d of %d: %v, want ErrNoPage", n+1, n, err)
			}
			// Read over the full parse, objects left in object streams
			// included, the pages are the same.
			ff := pdfread.Full(context.Background(), full, 0)
			if fpages, err := ff.Pages(); err != nil || len(fpages) != n {
				t.Fatalf("over the full parse: %d pages (%v), read lazily %d", len(fpages), err, n)
			}
			for _, p := range []int{1, n} {
				d, ref, _ := f.Page(p) // read above
				fd, fref, ferr := ff.Page(p)
				if ferr != nil || fref != ref || fd.PDFString() != d.PDFString() {
					t.Errorf("over the full parse, page %d is %v %v (%v), read lazily %v %v", p, fref, fd, ferr, ref, d)
				}
			}
			// Every object reads the same (stream data aside), wherever
			// it is kept.
			compressed := 0
			for nr, e := range full.Table {
				if e.Free || e.Object == nil {
					continue
				}
				want := e.Object
				if sd, ok := want.(types.StreamDict); ok {
					o, err := f.Resolve(*types.NewIndirectRef(nr, *e.Generation))
					if got, ok := o.(types.StreamDict); err != nil || !ok || got.Dict.PDFString() != sd.Dict.PDFString() {
						t.Errorf("stream %d: %v, %v; full parse %v", nr, o, err, sd.Dict)
					}
					continue
				}
				if e.ObjectStream == nil {
					o, err := f.Resolve(*types.NewIndirectRef(nr, *e.Generation))
					if err != nil || o == nil || o.PDFString() != want.PDFString() {
						t.Errorf("object %d: %v, %v; full parse %v", nr, o, err, want)
					}
					continue
				}
				compressed++
				if l, ok := want.(types.LazyObjectStreamObject); ok {
					// pdfcpu leaves some objects undecoded.
					if want, err = l.DecodedObject(context.Background()); err != nil {
						t.Fatalf("full parse, object %d: %v", nr, err)
					}
				}
				o, err := f.Resolve(*types.NewIndirectRef(nr, 0))
				if err != nil || o == nil || o.PDFString() != want.PDFString() {
					t.Errorf("object %d in object stream %d: %v, %v; full parse %v", nr, *e.ObjectStream, o, err, want)
				}
			}
			t.Logf("%d objects from object streams compared", compressed)
			lazy++
		})
	}
	t.Logf("%d of %d files read lazily", lazy, len(files))
}

// TestRelease checks that objects resolved from a File stay intact once
// its buffers, given back by Release, are reused by other Files, and that
// a released File refuses to resolve more.
func TestRelease(t *testing.T) {
	td := pdftest.PdfcpuTestdata(t)
	paths := []string{pdftest.Corpus(t)["qpdf-objstm"], filepath.Join(td, "itu-t81.pdf"), filepath.Join(td, "gobook.0.pdf")}
	type resolved struct {
		obj  types.Object
		text string
	}
	var kept [][]resolved
	for round := range 3 {
		for _, path := range paths {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := pdfread.Open(context.Background(), in, 0)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			var objs []resolved
			for nr := 1; nr < *f.Ctx.Size; nr++ {
				o, err := f.Resolve(*types.NewIndirectRef(nr, 0))
				if err == nil && o != nil {
					objs = append(objs, resolved{o, o.PDFString()})
				}
			}
			if len(objs) == 0 {
				t.Fatalf("%s: no object resolved", path)
			}
			f.Release()
			if _, err := f.Resolve(*types.NewIndirectRef(1, 0)); err == nil {
				t.Errorf("%s: a released File still resolves objects", path)
			}
			if round == 0 {
				kept = append(kept, objs)
			}
		}
	}
	for i, objs := range kept {
		for _, r := range objs {
			if got := r.obj.PDFString(); got != r.text {
				t.Fatalf("%s: an object changed after Release: %.80s, was %.80s", paths[i], got, r.text)
			}
		}
	}
}

// TestPageTree checks that the pages are the page tree's leaves, whatever
// its root's /Count says, that Page, which descends by the /Count of the
// nodes below the root, finds each of them and no page past the last, and
// that a tree that cannot be walked (a loop, 1000 levels) or whose /Count
// entries lead Page elsewhere is an error, read lazily or over the full
// parse.
func TestPageTree(t *testing.T) {
	for name, data := range pdftest.Hostile() {
		if !strings.Contains(name, "count-") && !strings.Contains(name, "loop") && !strings.Contains(name, "deep-page-tree") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			lazy, err := pdfread.Open(context.Background(), data, 0)
			if err != nil {
				t.Fatal(err)
			}
			files := map[string]*pdfread.File{"lazily": lazy}
			if ctx, err := pdfread.Read(context.Background(), data, 0); err == nil {
				files["over the full parse"] = pdfread.Full(context.Background(), ctx, 0)
			} else {
				t.Logf("the full parse fails: %v", err)
			}
			for how, f := range files {
				pages, err := f.Pages()
				n := len(pages)
				want, ok := pdftest.HostilePages[strings.TrimSuffix(name, "-objstm")]
				switch {
				case !ok && err == nil:
					t.Errorf("read %s: %d pages, want an error", how, n)
				case ok && (err != nil || n != want):
					t.Errorf("read %s: %d pages (%v), want %d", how, n, err, want)
				case ok:
					for p := 1; p <= n; p++ {
						if _, ref, err := f.Page(p); err != nil || ref != pages[p-1] {
							t.Errorf("read %s: page %d is %v (%v), the walk's %v", how, p, ref, err, pages[p-1])
						}
					}
					if _, _, err := f.Page(n + 1); !errors.Is(err, pdfread.ErrNoPage) {
						t.Errorf("read %s: page %d of %d: %v, want ErrNoPage", how, n+1, n, err)
					}
				}
				t.Logf("read %s: %d pages, %v", how, n, err)
			}
		})
	}
	// Where Page's descent and the walk part, Pages says so.
	f, err := pdfread.Open(context.Background(), pdftest.Hostile()["count-misleads"], 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Pages(); !errors.Is(err, pdfread.ErrPageCounts) {
		t.Errorf("count-misleads: %v, want ErrPageCounts", err)
	}
}

// TestDecodeLimit checks that the streams a File decodes may decompress
// to the limit given in all, not each: two object streams of 600 KB each
// pass a 1 MB limit alone and not together, read lazily or over the full
// parse.
func TestDecodeLimit(t *testing.T) {
	const limit = 1 << 20
	for _, tc := range []struct {
		inflated int64
		ok       bool
	}{{300 << 10, true}, {600 << 10, false}} {
		data := pdftest.Bomb(t, tc.inflated, "objstms")
		lazy, err := pdfread.Open(context.Background(), data, limit)
		if err != nil {
			t.Fatal(err)
		}
		ctx, err := pdfread.Read(context.Background(), data, limit)
		if err != nil {
			t.Fatal(err)
		}
		for how, f := range map[string]*pdfread.File{"lazily": lazy, "over the full parse": pdfread.Full(context.Background(), ctx, limit)} {
			_, err := f.Pages()
			var le *pdfread.DecodeLimitError
			if tc.ok && err != nil || !tc.ok && !errors.As(err, &le) {
				t.Errorf("two object streams of %d bytes, read %s: %v", tc.inflated, how, err)
			}
		}
	}
	// Alone, a stream over the limit: the cross-reference stream.
	_, err := pdfread.Open(context.Background(), pdftest.Bomb(t, 2*limit, "xref"), limit)
	if le := (*pdfread.DecodeLimitError)(nil); !errors.As(err, &le) || le.Limit != limit {
		t.Errorf("a cross-reference stream of 2 MB: %v", err)
	}
}
