package pdftest

import (
	"bytes"
	"os"
	"testing"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// PageStamps is where the signature widgets of one page are, read by
// pdfcpu, independently of the code under test.
type PageStamps struct {
	// Box is the page's visible region, its crop box clipped to its media
	// box (ISO 32000-2 §14.11.2), both inherited as pdfcpu resolves them
	// (US Letter for a page without a media box, as pdf.js and mupdf show
	// it).
	Box [4]float64
	// Rotate is the page's /Rotate, inherited, in degrees.
	Rotate int
	// Rects are the /Rect of the page's signature widgets, in order.
	Rects [][4]float64
}

// Stamps reads the signature widgets of page (1-based) of the PDF at path.
func Stamps(t testing.TB, path string, page int) PageStamps {
	t.Helper()
	ctx := readContext(t, path)
	if err := ctx.EnsurePageCount(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	pageDict, _, inh, err := ctx.PageDict(page, false)
	if err != nil {
		t.Fatalf("%s: page %d: %v", path, page, err)
	}
	box := inh.MediaBox
	if box == nil {
		// pdfcpu leaves it out; pdf.js and mupdf show US Letter.
		box = types.NewRectangle(0, 0, 612, 792)
	}
	if inh.CropBox != nil {
		box = &types.Rectangle{LL: types.Point{X: max(box.LL.X, inh.CropBox.LL.X), Y: max(box.LL.Y, inh.CropBox.LL.Y)},
			UR: types.Point{X: min(box.UR.X, inh.CropBox.UR.X), Y: min(box.UR.Y, inh.CropBox.UR.Y)}}
	}
	ps := PageStamps{Box: [4]float64{box.LL.X, box.LL.Y, box.UR.X, box.UR.Y}, Rotate: inh.Rotate}
	annots, err := ctx.DereferenceArray(pageDict["Annots"])
	if err != nil {
		t.Fatalf("%s: page %d: /Annots: %v", path, page, err)
	}
	for _, o := range annots {
		a, err := ctx.DereferenceDict(o)
		if err != nil || a == nil {
			t.Fatalf("%s: page %d: annotation %v: %v", path, page, o, err)
		}
		if ft := a.NameEntry("FT"); ft == nil || *ft != "Sig" {
			continue
		}
		arr, err := ctx.DereferenceArray(a["Rect"])
		if err != nil {
			t.Fatalf("%s: page %d: widget /Rect: %v", path, page, err)
		}
		r, err := ctx.RectForArray(arr)
		if err != nil {
			t.Fatalf("%s: page %d: widget /Rect %v: %v", path, page, arr, err)
		}
		ps.Rects = append(ps.Rects, [4]float64{r.LL.X, r.LL.Y, r.UR.X, r.UR.Y})
	}
	return ps
}

// readContext reads the PDF at path with pdfcpu.
func readContext(t testing.TB, path string) *model.Context {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := api.ReadContext(bytes.NewReader(data), PdfcpuConfig(t))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ctx
}

// Inside tells whether rect r lies within box b.
func Inside(r, b [4]float64) bool {
	return r[0] >= b[0] && r[1] >= b[1] && r[2] <= b[2] && r[3] <= b[3]
}

// Overlap tells whether rects a and b share more than an edge.
func Overlap(a, b [4]float64) bool {
	return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]
}
