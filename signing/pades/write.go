package pades

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// byteRangeWidth is the room reserved for the /ByteRange array: "[0 a b
// c]" with ten-digit numbers.
const byteRangeWidth = 36

// written is an object of the update.
type written struct {
	ref types.IndirectRef
	obj types.Object
}

// newObject adds o to the update under a fresh object number, above every
// number the document uses: reusing a free one would need its generation
// bumped, which some readers get wrong.
func (d *document) newObject(o types.Object) types.IndirectRef {
	ref := *types.NewIndirectRef(d.size, 0)
	d.size++
	d.objs = append(d.objs, written{ref, o})
	return ref
}

// update puts o in the update as the new version of the object ref points
// to.
func (d *document) update(ref types.IndirectRef, o types.Object) {
	for i, w := range d.objs {
		if w.ref.ObjectNumber == ref.ObjectNumber {
			d.objs[i].obj = o
			return
		}
	}
	d.objs = append(d.objs, written{ref, o})
}

// updateCatalog puts the (modified) catalog in the update.
func (d *document) updateCatalog() {
	d.update(*d.f.Ctx.Root, d.catalog())
}

// write returns the bytes that follow the original ones: the separator,
// then the update (ISO 32000-2 §7.5.6): its objects, then a
// cross-reference section of the source's kind whose /Prev is the last
// startxref, then the trailer. It records where the signature's /ByteRange
// and /Contents placeholders are, as offsets in the whole file.
func (d *document) write(base int64) []byte {
	var b bytes.Buffer
	b.Grow(2*d.sigSize + 8<<10) // the placeholder, and room for the rest
	b.Write(d.sep)              // counted by b.Len() in the offsets below
	offsets := make(map[int]int64, len(d.objs)+1)
	for _, w := range d.objs {
		nr := w.ref.ObjectNumber.Value()
		offsets[nr] = base + int64(b.Len())
		fmt.Fprintf(&b, "%d %d obj\n", nr, w.ref.GenerationNumber.Value())
		switch o := w.obj.(type) {
		case types.StreamDict:
			o.Dict["Length"] = types.Integer(len(o.Raw))
			b.WriteString(o.Dict.PDFString())
			b.WriteString("\nstream\n")
			b.Write(o.Raw)
			b.WriteString("\nendstream")
		case types.Dict:
			if nr == d.sigNr {
				d.writeSignature(&b, base, o)
			} else {
				b.WriteString(o.PDFString())
			}
		case nil:
			b.WriteString("null")
		default:
			b.WriteString(o.PDFString())
		}
		b.WriteString("\nendobj\n")
	}

	ctx := d.f.Ctx
	trailer := types.Dict{"Root": *ctx.Root, "Prev": types.Integer(*ctx.Write.OffsetPrevXRef)}
	if ctx.Info != nil {
		trailer["Info"] = *ctx.Info
	}
	if ctx.ID != nil {
		trailer["ID"] = ctx.ID
	}
	if d.xrefStream {
		d.writeXRefStream(&b, base, offsets, trailer)
	} else {
		d.writeXRefTable(&b, base, offsets, trailer)
	}
	return b.Bytes()
}

// writeSignature writes the signature dictionary v with placeholders for
// /ByteRange and /Contents first, so that they sit at known offsets.
func (d *document) writeSignature(b *bytes.Buffer, base int64, v types.Dict) {
	b.WriteString("<</ByteRange")
	d.byteRangeAt = base + int64(b.Len())
	b.WriteString("[]")
	b.Write(bytes.Repeat([]byte(" "), byteRangeWidth-2))
	b.WriteString("/Contents")
	d.contentsAt = base + int64(b.Len())
	b.WriteByte('<')
	b.Write(bytes.Repeat([]byte("0"), 2*d.sigSize))
	b.WriteByte('>')
	b.WriteString(strings.TrimPrefix(v.PDFString(), "<<"))
}

// xrefSubsections returns the object numbers of offsets, sorted, split in
// runs of consecutive numbers.
func xrefSubsections(offsets map[int]int64) [][]int {
	nrs := make([]int, 0, len(offsets))
	for nr := range offsets {
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs)
	var runs [][]int
	for i, nr := range nrs {
		if i == 0 || nr != nrs[i-1]+1 {
			runs = append(runs, nil)
		}
		runs[len(runs)-1] = append(runs[len(runs)-1], nr)
	}
	return runs
}

// gen returns the generation number of the object written as nr.
func (d *document) gen(nr int) int {
	for _, w := range d.objs {
		if w.ref.ObjectNumber.Value() == nr {
			return w.ref.GenerationNumber.Value()
		}
	}
	return 0
}

// writeXRefTable writes a cross-reference table (ISO 32000-2 §7.5.4) and
// its trailer.
func (d *document) writeXRefTable(b *bytes.Buffer, base int64, offsets map[int]int64, trailer types.Dict) {
	xrefAt := base + int64(b.Len())
	b.WriteString("xref\n")
	for _, run := range xrefSubsections(offsets) {
		fmt.Fprintf(b, "%d %d\n", run[0], len(run))
		for _, nr := range run {
			fmt.Fprintf(b, "%010d %05d n\r\n", offsets[nr], d.gen(nr))
		}
	}
	trailer["Size"] = types.Integer(d.size)
	b.WriteString("trailer\n")
	b.WriteString(trailer.PDFString())
	fmt.Fprintf(b, "\nstartxref\n%d\n%%%%EOF\n", xrefAt)
}

// writeXRefStream writes a cross-reference stream (ISO 32000-2 §7.5.8),
// which is also the trailer. It is left unfiltered: it holds a handful of
// entries, not worth a compressor's set-up.
func (d *document) writeXRefStream(b *bytes.Buffer, base int64, offsets map[int]int64, trailer types.Dict) {
	nr := d.size
	d.size++
	xrefAt := base + int64(b.Len())
	offsets[nr] = xrefAt
	// Offsets take as many bytes as the largest needs.
	w2 := 1
	for xrefAt>>(8*w2) > 0 {
		w2++
	}
	var data []byte
	var index types.Array
	for _, run := range xrefSubsections(offsets) {
		index = append(index, types.Integer(run[0]), types.Integer(len(run)))
		for _, n := range run {
			data = append(data, 1)
			for i := w2 - 1; i >= 0; i-- {
				data = append(data, byte(offsets[n]>>(8*i)))
			}
			g := d.gen(n)
			data = append(data, byte(g>>8), byte(g))
		}
	}
	trailer["Type"] = types.Name("XRef")
	trailer["Size"] = types.Integer(d.size)
	trailer["W"] = types.Array{types.Integer(1), types.Integer(w2), types.Integer(2)}
	trailer["Index"] = index
	trailer["Length"] = types.Integer(len(data))
	b.WriteString(strconv.Itoa(nr) + " 0 obj\n")
	b.WriteString(trailer.PDFString())
	b.WriteString("\nstream\n")
	b.Write(data)
	fmt.Fprintf(b, "\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n", xrefAt)
}
