package pdftest

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// builder assembles a PDF file object by object (ISO 32000-2 §7.5), for
// the hostile files no tool would write.
type builder struct {
	buf bytes.Buffer
	// offs are the offsets of the objects stored directly, by number.
	offs map[int]int
	// inStm are the objects stored in an object stream: the stream's
	// number and the object's index in it.
	inStm map[int][2]int
}

func newBuilder() *builder {
	b := &builder{offs: map[int]int{}, inStm: map[int][2]int{}}
	b.buf.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	return b
}

// object writes object nr with body, a direct object.
func (b *builder) object(nr int, body string) {
	b.offs[nr] = b.buf.Len()
	fmt.Fprintf(&b.buf, "%d 0 obj\n%s\nendobj\n", nr, body)
}

// stream writes stream object nr: dict's entries, /Length added, and data.
func (b *builder) stream(nr int, dict string, data []byte) {
	b.offs[nr] = b.buf.Len()
	fmt.Fprintf(&b.buf, "%d 0 obj\n<<%s/Length %d>>stream\n", nr, dict, len(data))
	b.buf.Write(data)
	b.buf.WriteString("\nendstream\nendobj\n")
}

// objectStream writes object stream nr holding bodies, numbered from
// first, with pad spaces before the first of them, its data compressed.
func (b *builder) objectStream(nr, first int, bodies []string, pad int64) {
	var header, objs strings.Builder
	for i, body := range bodies {
		fmt.Fprintf(&header, "%d %d ", first+i, pad+int64(objs.Len()))
		objs.WriteString(body + "\n")
		b.inStm[first+i] = [2]int{nr, i}
	}
	data := zlibFill([]byte(header.String()), ' ', pad, []byte(objs.String()))
	b.stream(nr, fmt.Sprintf("/Type/ObjStm/N %d/First %d/Filter/FlateDecode", len(bodies), header.Len()), data)
}

// table ends the file with a cross-reference table and a trailer naming
// object 1 the catalog.
func (b *builder) table() []byte {
	size := b.size()
	at := b.buf.Len()
	fmt.Fprintf(&b.buf, "xref\n0 %d\n0000000000 65535 f \n", size)
	for nr := 1; nr < size; nr++ {
		if off, ok := b.offs[nr]; ok {
			fmt.Fprintf(&b.buf, "%010d 00000 n \n", off)
		} else {
			b.buf.WriteString("0000000000 00000 f \n")
		}
	}
	fmt.Fprintf(&b.buf, "trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n", size, at)
	return b.buf.Bytes()
}

// xrefEntryLen is the width of the cross-reference stream entries
// written: type, offset or object stream, generation or index.
const xrefEntryLen = 1 + 4 + 4

// xrefStream ends the file with a cross-reference stream (ISO 32000-2
// §7.5.8) naming object 1 the catalog, whose data, compressed, is the
// entries followed by pad bytes of zeros: free entries, or, with a PNG
// predictor, rows that predict zero entries.
func (b *builder) xrefStream(pad int64, predictor bool) []byte {
	nr := b.size()
	b.offs[nr] = b.buf.Len()
	var entries bytes.Buffer
	for i := 0; i <= nr; i++ {
		if predictor {
			entries.WriteByte(0) // PNG "None" row filter
		}
		var e [xrefEntryLen]byte
		if off, ok := b.offs[i]; ok {
			e[0] = 1
			binary.BigEndian.PutUint32(e[1:5], uint32(off))
		} else if s, ok := b.inStm[i]; ok {
			e[0] = 2
			binary.BigEndian.PutUint32(e[1:5], uint32(s[0]))
			binary.BigEndian.PutUint32(e[5:], uint32(s[1]))
		} else if i == 0 {
			binary.BigEndian.PutUint32(e[5:], 65535)
		}
		entries.Write(e[:])
	}
	dict := fmt.Sprintf("/Type/XRef/Size %d/W[1 4 4]/Root 1 0 R/Filter/FlateDecode", nr+1)
	row := int64(xrefEntryLen)
	if predictor {
		dict += fmt.Sprintf("/DecodeParms<</Predictor 12/Columns %d>>", xrefEntryLen)
		row++
	}
	// Whole rows, as a valid stream has.
	b.stream(nr, dict, zlibFill(entries.Bytes(), 0, pad/row*row, nil))
	fmt.Fprintf(&b.buf, "startxref\n%d\n%%%%EOF\n", b.offs[nr])
	return b.buf.Bytes()
}

// size is one more than the highest object number used.
func (b *builder) size() int {
	size := 1
	for nr := range b.offs {
		size = max(size, nr+1)
	}
	for nr := range b.inStm {
		size = max(size, nr+1)
	}
	return size
}

// zlibFill returns zlib data (RFC 1950) that inflate to prefix, n bytes
// of fill, then suffix. Compressing 400 MiB takes seconds; deflate (RFC
// 1951) lets this take milliseconds instead: once the window holds fill,
// the block that encodes a chunk of fill, ended by a flush on a byte
// boundary, is the same every time, so it is computed once and repeated.
func zlibFill(prefix []byte, fill byte, n int64, suffix []byte) []byte {
	const chunk = 1 << 20
	out := bytes.NewBuffer([]byte{0x78, 0xda})
	fw, _ := flate.NewWriter(out, flate.BestCompression)
	fw.Write(prefix)
	// The first writes fill the window; then come the repeated chunks.
	repeats := max(0, n/chunk-2)
	fw.Write(bytes.Repeat([]byte{fill}, int(n-repeats*chunk)))
	fw.Flush()
	if repeats > 0 {
		at := out.Len()
		fw.Write(bytes.Repeat([]byte{fill}, chunk))
		fw.Flush()
		block := bytes.Clone(out.Bytes()[at:])
		for range repeats - 1 {
			out.Write(block)
		}
	}
	// The suffix and the final block, from a writer with no history.
	fw, _ = flate.NewWriter(out, flate.BestCompression)
	fw.Write(suffix)
	fw.Close()
	a, b := adler32(1, 0, prefix)
	a, b = adler32Fill(a, b, fill, n)
	a, b = adler32(a, b, suffix)
	return binary.BigEndian.AppendUint32(out.Bytes(), b<<16|a)
}

// adlerMod is the modulus of Adler-32 (RFC 1950 §8.2).
const adlerMod = 65521

// adler32 continues the Adler-32 sums a and b over data.
func adler32(a, b uint32, data []byte) (uint32, uint32) {
	for _, c := range data {
		a = (a + uint32(c)) % adlerMod
		b = (b + a) % adlerMod
	}
	return a, b
}

// adler32Fill continues the Adler-32 sums a and b over n bytes of fill,
// in closed form: a grows by n·fill, b by n·a + fill·n(n+1)/2.
func adler32Fill(a, b uint32, fill byte, n int64) (uint32, uint32) {
	m := uint64(n)
	tri := (m * (m + 1) / 2) % adlerMod
	b = uint32((uint64(b) + m%adlerMod*uint64(a) + uint64(fill)*tri) % adlerMod)
	a = uint32((uint64(a) + m%adlerMod*uint64(fill)) % adlerMod)
	return a, b
}

// Classic returns a PDF file whose objects, numbered from 1 (the
// catalog), have the given bodies, with a cross-reference table.
func Classic(bodies ...string) []byte {
	b := newBuilder()
	for i, body := range bodies {
		b.object(i+1, body)
	}
	return b.table()
}

// Compressed returns the same file as Classic, but with every object in
// an object stream indexed by a cross-reference stream, as qpdf
// --object-streams=generate and Acrobat save files.
func Compressed(bodies ...string) []byte {
	b := newBuilder()
	b.objectStream(len(bodies)+1, 1, bodies, 0)
	return b.xrefStream(0, false)
}

// onePage is a one-page document: catalog, page tree, page.
var onePage = []string{
	"<</Type/Catalog/Pages 2 0 R>>",
	"<</Type/Pages/Kids[3 0 R]/Count 1>>",
	"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
}

// Bomb returns a one-page PDF file of less than a megabyte, one of whose
// streams inflates to about inflated bytes (ISO 32000-2 §7.4.4,
// FlateDecode): its cross-reference stream ("xref"), the same with a PNG
// predictor as most producers use ("xref-predictor"), or the object
// stream holding its catalog ("objstm"); or two of them do, the object
// streams holding the catalog and the page ("objstms").
func Bomb(t testing.TB, inflated int64, where string) []byte {
	t.Helper()
	b := newBuilder()
	switch where {
	case "xref", "xref-predictor":
		for i, body := range onePage {
			b.object(i+1, body)
		}
		return b.xrefStream(inflated, where == "xref-predictor")
	case "objstm":
		b.objectStream(4, 1, onePage, inflated)
		return b.xrefStream(0, false)
	case "objstms":
		b.objectStream(4, 1, onePage[:2], inflated)
		b.objectStream(5, 3, onePage[2:], inflated)
		return b.xrefStream(0, false)
	}
	t.Fatalf("pdftest: no bomb in %q", where)
	return nil
}

// Hostile returns hand-made PDF files, by name, that attack a reader with
// a page tree no reader can walk (a loop in /Kids, in a node reached only
// after page 1, 1000 levels deep), a /Count that lies (the root's, or a
// node's, leading a descent by /Count to another page or none), or arrays
// nested 100 000 deep (in the catalog, in page 2, in an object nobody
// needs), each also with its objects in an object stream ("-objstm"). The
// page count of each, when it has one, is in HostilePages.
func Hostile() map[string][]byte {
	deepArray := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	files := map[string][]string{
		"one-page": onePage,
		// Node 2 is its own grandchild.
		"kids-loop": {
			"<</Type/Catalog/Pages 2 0 R>>",
			"<</Type/Pages/Kids[3 0 R]/Count 1>>",
			"<</Type/Pages/Parent 2 0 R/Kids[2 0 R]/Count 1>>",
		},
		// Page 1 is fine; the second kid of the root is the root.
		"kids-loop-after-page-1": {
			"<</Type/Catalog/Pages 2 0 R>>",
			"<</Type/Pages/Kids[3 0 R 2 0 R]/Count 2>>",
			"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
		},
		"count-2147483647": {
			"<</Type/Catalog/Pages 2 0 R>>",
			"<</Type/Pages/Kids[3 0 R]/Count 2147483647>>",
			"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
		},
		"count-0": {
			"<</Type/Catalog/Pages 2 0 R>>",
			"<</Type/Pages/Kids[3 0 R 4 0 R]/Count 0>>",
			"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
			"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
		},
		// Node 3 says it has no page: a descent by /Count skips it and
		// finds page 5 first, which is page 2.
		"count-misleads": {
			"<</Type/Catalog/Pages 2 0 R>>",
			"<</Type/Pages/Kids[3 0 R 5 0 R]/Count 2>>",
			"<</Type/Pages/Parent 2 0 R/Kids[4 0 R]/Count 0>>",
			"<</Type/Page/Parent 3 0 R/MediaBox[0 0 595 842]>>",
			"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
		},
		// Node 3 claims 2147483647 pages and has one, the last: a
		// descent by /Count finds each page where it is.
		"count-2147483647-in-last-node": {
			"<</Type/Catalog/Pages 2 0 R>>",
			"<</Type/Pages/Kids[4 0 R 3 0 R]/Count 2>>",
			"<</Type/Pages/Parent 2 0 R/Kids[5 0 R]/Count 2147483647>>",
			"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
			"<</Type/Page/Parent 3 0 R/MediaBox[0 0 595 842]>>",
		},
		// Node 3 claims 2147483647 pages and comes first: a descent by
		// /Count looks for page 2 in it.
		"count-2147483647-in-first-node": {
			"<</Type/Catalog/Pages 2 0 R>>",
			"<</Type/Pages/Kids[3 0 R 5 0 R]/Count 2>>",
			"<</Type/Pages/Parent 2 0 R/Kids[4 0 R]/Count 2147483647>>",
			"<</Type/Page/Parent 3 0 R/MediaBox[0 0 595 842]>>",
			"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
		},
		"deep-array-in-catalog": {
			"<</Type/Catalog/Pages 2 0 R/Nested " + deepArray + ">>",
			"<</Type/Pages/Kids[3 0 R]/Count 1>>",
			"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
		},
		"deep-array-in-page-2": {
			"<</Type/Catalog/Pages 2 0 R>>",
			"<</Type/Pages/Kids[3 0 R 4 0 R]/Count 2>>",
			"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
			"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Nested " + deepArray + ">>",
		},
		"deep-array-unused": {
			"<</Type/Catalog/Pages 2 0 R>>",
			"<</Type/Pages/Kids[3 0 R]/Count 1>>",
			"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
			deepArray,
		},
	}
	// A page tree 1000 levels deep: each node the only kid of the one
	// before, the page at the bottom.
	const levels = 1000
	deep := []string{"<</Type/Catalog/Pages 2 0 R>>"}
	for i := range levels {
		deep = append(deep, fmt.Sprintf("<</Type/Pages/Kids[%d 0 R]/Count 1>>", i+3))
	}
	files["deep-page-tree"] = append(deep, "<</Type/Page/MediaBox[0 0 595 842]>>")

	out := map[string][]byte{}
	for name, bodies := range files {
		out[name] = Classic(bodies...)
		out[name+"-objstm"] = Compressed(bodies...)
	}
	return out
}

// HostilePages is the page count of the Hostile files a signer can take,
// by name, with or without "-objstm": their page tree can be walked
// whole, and a descent by its /Count entries finds each page where the
// walk does, whatever the root's /Count says. (The catalog of
// "deep-array-in-catalog" and page 2 of "deep-array-in-page-2" cannot be
// read.)
var HostilePages = map[string]int{
	"one-page": 1, "count-2147483647": 1, "count-0": 2, "count-2147483647-in-last-node": 2,
	"deep-array-unused": 1,
}
