package pades

import (
	"math"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// Size of a visible signature mark and its spacing, in points, before it
// shrinks to fit a small page: marks of StampWidth × StampHeight in rows
// from the bottom-left corner of the page as a reader shows it, stampMargin
// from its edges and stampGap apart.
const (
	StampWidth, StampHeight = 170.0, 58.0
	stampMargin             = 28.0
	stampGap                = 6.0
)

// letter is the media box a page without a usable one is shown with (US
// Letter), as pdf.js and mupdf do.
var letter = [4]float64{0, 0, 612, 792}

// pageView is how a reader shows a page: its visible region in default
// user space (the crop box clipped to the media box, ISO 32000-2
// §14.11.2) and the angle the page is turned by for display, clockwise
// (/Rotate, a multiple of 90, ISO 32000-2 §7.7.3.3).
type pageView struct {
	box    [4]float64
	rotate int
}

// view reads how page is shown. /MediaBox, /CropBox and /Rotate are
// inheritable (ISO 32000-2 §7.7.3.4): a page without its own takes its
// nearest ancestor's, found by /Parent as readers find it. Values that
// readers cannot use are replaced as they replace them: a missing or
// unusable media box by US Letter, a crop box by the media box, and a
// rotation that is not a multiple of 90 by none (as pdf.js does; mupdf
// rounds it to one). Only objects that cannot
// be read are errors (malformed, keeping a *pdfread.StructureError for
// withDocument), so that Inspect, which reads the view of every page,
// refuses what Sign would stumble on.
func (d *document) view(page types.Dict) (pageView, error) {
	attrs, err := d.inherited(page, "MediaBox", "CropBox", "Rotate")
	if err != nil {
		return pageView{}, err
	}
	media, ok, err := d.rect(attrs["MediaBox"])
	if err != nil {
		return pageView{}, malformed(err, "page /MediaBox")
	}
	if !ok {
		media = letter
	}
	v := pageView{box: media}
	if crop, ok, err := d.rect(attrs["CropBox"]); err != nil {
		return pageView{}, malformed(err, "page /CropBox")
	} else if ok {
		clipped := [4]float64{max(crop[0], media[0]), max(crop[1], media[1]), min(crop[2], media[2]), min(crop[3], media[3])}
		if clipped[0] < clipped[2] && clipped[1] < clipped[3] {
			v.box = clipped
		}
	}
	rot, err := d.f.Resolve(attrs["Rotate"])
	if err != nil {
		return pageView{}, malformed(err, "page /Rotate")
	}
	if n, ok := number(rot); ok && n == math.Trunc(n) && math.Mod(n, 90) == 0 && math.Abs(n) < 1<<31 {
		v.rotate = (int(n)%360 + 360) % 360
	}
	return v, nil
}

// inherited returns the values of keys for page: its own, else its
// nearest ancestor's by /Parent (unresolved). The climb stops at a
// missing or unusable /Parent, at a loop, and after as many levels as a
// page tree may have.
func (d *document) inherited(page types.Dict, keys ...string) (map[string]types.Object, error) {
	found := map[string]types.Object{}
	seen := map[int]bool{}
	node := page
	for range maxPageTreeDepth + 1 {
		for _, k := range keys {
			if _, done := found[k]; !done {
				if o, ok := node.Find(k); ok && o != nil {
					found[k] = o
				}
			}
		}
		ref, ok := node["Parent"].(types.IndirectRef)
		if !ok || len(found) == len(keys) || seen[ref.ObjectNumber.Value()] {
			break
		}
		seen[ref.ObjectNumber.Value()] = true
		o, err := d.f.Resolve(ref)
		if err != nil {
			return nil, malformed(err, "page tree node %d", ref.ObjectNumber.Value())
		}
		if node, ok = o.(types.Dict); !ok {
			break
		}
	}
	return found, nil
}

// maxPageTreeDepth bounds the climb from a page to its tree's root, as
// internal/pdfread bounds the descent.
const maxPageTreeDepth = 64

// rect resolves o as a rectangle (ISO 32000-2 §7.9.5): four numbers, any
// two opposite corners, returned lower-left first. ok is false for a
// missing value, one that is not four numbers, or an empty rectangle.
func (d *document) rect(o types.Object) (r [4]float64, ok bool, err error) {
	o, err = d.f.Resolve(o)
	if err != nil {
		return r, false, err
	}
	arr, isArray := o.(types.Array)
	if !isArray || len(arr) != 4 {
		return r, false, nil
	}
	for i, e := range arr {
		e, err := d.f.Resolve(e)
		if err != nil {
			return r, false, err
		}
		n, isNumber := number(e)
		if !isNumber || math.IsInf(n, 0) || math.IsNaN(n) {
			return r, false, nil
		}
		r[i] = n
	}
	r = [4]float64{min(r[0], r[2]), min(r[1], r[3]), max(r[0], r[2]), max(r[1], r[3])}
	return r, r[0] < r[2] && r[1] < r[3], nil
}

// number returns the value of an integer or real object.
func number(o types.Object) (float64, bool) {
	switch n := o.(type) {
	case types.Integer:
		return float64(n), true
	case types.Float:
		return float64(n), true
	}
	return 0, false
}

// placement is where a mark goes: its widget's /Rect in default user
// space, the size of its appearance as shown (width along the reader's
// horizontal), and the turn that shows it upright.
type placement struct {
	rect   [4]float64
	w, h   float64
	rotate int
}

// place lays out the mark of slot on the page: slot 0 at the bottom-left
// corner of the page as shown, then rightwards while marks fit, then row
// after row upwards; once the page is full, slots start again from the
// bottom. On a page too small for two rows of two marks with their
// margins, marks, margins and gaps shrink alike until four fit.
func (v pageView) place(slot int) placement {
	W, H := v.box[2]-v.box[0], v.box[3]-v.box[1]
	if v.rotate == 90 || v.rotate == 270 {
		W, H = H, W
	}
	s := min(1, W/(2*StampWidth+stampGap+2*stampMargin), H/(2*StampHeight+stampGap+2*stampMargin))
	w, h, m, g := StampWidth*s, StampHeight*s, stampMargin*s, stampGap*s
	cols := max(1, int((W-2*m+g)/(w+g)))
	rows := max(1, int((H-2*m+g)/(h+g)))
	slot = max(slot, 0) % (cols * rows)
	u0, v0 := m+float64(slot%cols)*(w+g), m+float64(slot/cols)*(h+g)
	u1, v1 := u0+w, v0+h
	// From the shown page (u rightwards, v upwards from its bottom-left
	// corner) to user space, for each turn.
	x0, y0, x1, y1 := v.box[0], v.box[1], v.box[2], v.box[3]
	var r [4]float64
	switch v.rotate {
	case 90:
		r = [4]float64{x1 - v1, y0 + u0, x1 - v0, y0 + u1}
	case 180:
		r = [4]float64{x1 - u1, y1 - v1, x1 - u0, y1 - v0}
	case 270:
		r = [4]float64{x0 + v0, y1 - u1, x0 + v1, y1 - u0}
	default:
		r = [4]float64{x0 + u0, y0 + v0, x0 + u1, y0 + v1}
	}
	return placement{rect: r, w: w, h: h, rotate: v.rotate}
}
