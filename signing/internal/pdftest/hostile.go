package pdftest

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
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
	data := deflate(strings.NewReader(header.String()), io.LimitReader(spaces{}, pad), strings.NewReader(objs.String()))
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
	b.stream(nr, dict, deflate(&entries, io.LimitReader(zeros{}, pad/row*row)))
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

// deflate returns the zlib compression (RFC 1950) of what rs read.
func deflate(rs ...io.Reader) []byte {
	var out bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&out, zlib.BestCompression)
	if _, err := io.Copy(zw, io.MultiReader(rs...)); err != nil {
		panic(err) // readers of memory do not fail
	}
	zw.Close()
	return out.Bytes()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
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
// streams inflates to more than inflated bytes (ISO 32000-2 §7.4.4,
// FlateDecode): its cross-reference stream ("xref"), the same with a PNG
// predictor as most producers use ("xref-predictor"), or the object
// stream holding its catalog ("objstm").
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
	}
	t.Fatalf("pdftest: no bomb in %q", where)
	return nil
}

// Hostile returns hand-made PDF files, by name, that attack a reader with
// a page tree no reader can walk (a loop in /Kids, in a node reached only
// after page 1, 100 000 levels deep), a /Count that lies, or arrays
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
	// A page tree 100 000 levels deep: each node the only kid of the one
	// before, the page at the bottom.
	const levels = 100_000
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

// HostilePages is the real page count of the Hostile files that have one,
// by name, with or without "-objstm".
var HostilePages = map[string]int{
	"one-page": 1, "count-2147483647": 1, "count-0": 2,
	"deep-array-in-catalog": 1, "deep-array-in-page-2": 2, "deep-array-unused": 1,
}
