package pdfread

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// xrefEntry is one cross-reference entry (ISO 32000-2 §7.5.4, §7.5.8.3).
type xrefEntry struct {
	free bool
	// stream is the number of the object stream holding the object, 0
	// for an object stored directly in the file.
	stream int
	// off is the object's byte offset, or its index in its object stream.
	off int64
	gen int
}

// section is a cross-reference section whose entries are decoded when
// looked up: their fixed size (ISO 32000-2 §7.5.4, §7.5.8.3) makes that a
// matter of arithmetic, far cheaper than decoding every entry of a large
// file for the few objects an update reads.
type section struct {
	// data holds the entries: the file itself for a table, the decoded
	// data of a stream.
	data []byte
	// w are the field widths of a stream's entries, all zero for a table.
	w    [3]int
	subs []subsection
	// stm is the /XRefStm stream of a hybrid file's table (ISO 32000-2
	// §7.5.8.4), which holds the objects the table omits or lists as free.
	stm *section
}

// subsection is a run of count entries for the objects numbered from
// first, starting at offset at of the section's data.
type subsection struct {
	first, count, at int
}

// tableEntryLen is the length of a cross-reference table entry, end of
// line included (ISO 32000-2 §7.5.4).
const tableEntryLen = 20

// find returns the section's entry for object nr, if it has one.
func (s *section) find(nr int) (e xrefEntry, found bool, err error) {
	for _, sub := range s.subs {
		if nr < sub.first || nr-sub.first >= sub.count {
			continue
		}
		if s.w == [3]int{} {
			at := sub.at + (nr-sub.first)*tableEntryLen
			e, ok := tableEntry(s.data[at:])
			if !ok {
				return e, false, structural("bad cross-reference entry for object %d", nr)
			}
			return e, true, nil
		}
		width := s.w[0] + s.w[1] + s.w[2]
		b := s.data[sub.at+(nr-sub.first)*width:]
		typ := int64(1) // the default when /W gives the type no bytes
		if s.w[0] > 0 {
			typ = field(b[:s.w[0]])
		}
		f2, f3 := field(b[s.w[0]:s.w[0]+s.w[1]]), field(b[s.w[0]+s.w[1]:width])
		switch typ {
		case 0:
			return xrefEntry{free: true}, true, nil
		case 1:
			return xrefEntry{off: f2, gen: int(f3)}, true, nil
		case 2:
			return xrefEntry{stream: int(f2), off: f3}, true, nil
		}
		// Other types are reserved and mean the null object.
		return xrefEntry{free: true}, true, nil
	}
	return e, false, nil
}

// tableEntry decodes a table entry: "oooooooooo ggggg n" or "... f", then
// a two-character end of line. The end of line must be white space, as
// pdfcpu (and so the verifier) requires: an entry it cannot read would
// make the signed file unreadable to it.
func tableEntry(b []byte) (xrefEntry, bool) {
	if len(b) < tableEntryLen || b[10] != ' ' || b[16] != ' ' || b[17] != 'n' && b[17] != 'f' ||
		!entryEOL(b[18]) || !entryEOL(b[19]) {
		return xrefEntry{}, false
	}
	off, gen := digits(b[:10]), digits(b[11:16])
	return xrefEntry{free: b[17] == 'f', off: off, gen: int(gen)}, off >= 0 && gen >= 0
}

// entryEOL tells whether c may end a table entry: ISO 32000-2 §7.5.4 asks
// for SP CR, SP LF or CR LF; writers that use other white space are read
// as pdfcpu reads them.
func entryEOL(c byte) bool {
	return c == ' ' || c == '\r' || c == '\n' || c == '\t' || c == '\f'
}

// digits decodes a run of decimal digits, -1 if there is anything else.
func digits(b []byte) int64 {
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// lookup returns the newest entry for object nr.
func (f *File) lookup(nr int) (e xrefEntry, found bool, err error) {
	for _, s := range f.sections {
		if e, found, err = s.find(nr); err != nil || found && !e.free {
			return e, found, err
		}
		if s.stm != nil {
			if e2, found2, err := s.stm.find(nr); err != nil || found2 {
				return e2, found2, err
			}
		}
		if found {
			return e, found, nil
		}
	}
	return e, false, nil
}

// checkHeader checks the "%PDF-x.y" header line (ISO 32000-2 §7.5.2) as
// strictly as pdfcpu's full parse does: a version it knows, and an end of
// line within its first hundred bytes. Documents signed here must stay
// readable by pdfcpu, which verify uses.
func checkHeader(in []byte) error {
	const h = "%PDF-"
	if len(in) < len(h)+3 || string(in[:len(h)]) != h {
		return errors.New("no %PDF- header at the start of the file")
	}
	if _, err := model.PDFVersion(string(in[len(h) : len(h)+3])); err != nil {
		return fmt.Errorf("unknown PDF header version %q", in[len(h):len(h)+3])
	}
	if bytes.IndexAny(in[len(h)+3:min(len(in), 100)], "\r\n") < 0 {
		return errors.New("no end of line after the PDF header")
	}
	return nil
}

// readXRef reads the chain of cross-reference sections starting at start
// and fills in Ctx as pdfcpu's reader would.
func (f *File) readXRef(start int64) error {
	ctx := f.Ctx
	seen := map[int64]bool{}
	for off := start; ; {
		if seen[off] {
			return structural("cross-reference sections loop at offset %d", off)
		}
		seen[off] = true
		if off <= 0 || off >= int64(len(f.in)) {
			return structural("cross-reference section offset %d out of the file", off)
		}
		var trailer types.Dict
		var sec *section
		var err error
		if bytes.HasPrefix(bytes.TrimLeft(f.in[off:min(int64(len(f.in)), off+64)], " \t\r\n\f\x00"), []byte("xref")) {
			trailer, sec, err = f.readTable(off)
			if err == nil {
				if stm, found := trailer.Find("XRefStm"); found {
					at, ok := stm.(types.Integer)
					if !ok {
						return structural("/XRefStm %v is not an offset", stm)
					}
					_, sec.stm, err = f.readStream(int64(at))
					ctx.Read.Hybrid = true
					ctx.Read.UsingXRefStreams = true
				}
			}
		} else {
			trailer, sec, err = f.readStream(off)
			ctx.Read.UsingXRefStreams = true
		}
		if err != nil {
			return err
		}
		if _, found := trailer.Find("Encrypt"); found {
			return ErrEncrypted
		}
		f.sections = append(f.sections, sec)
		if err := f.takeTrailer(trailer); err != nil {
			return err
		}
		prev, found := trailer.Find("Prev")
		if !found {
			break
		}
		p, ok := prev.(types.Integer)
		if !ok {
			return structural("/Prev %v is not an offset", prev)
		}
		off = int64(p)
	}
	// New objects get numbers above both /Size and every number in use:
	// some producers write a /Size too small.
	size := *ctx.Size
	for _, s := range f.sections {
		for _, s := range []*section{s, s.stm} {
			if s == nil {
				continue
			}
			for _, sub := range s.subs {
				size = max(size, sub.first+sub.count)
			}
		}
	}
	ctx.Size = &size
	ctx.Write.OffsetPrevXRef = &start
	return nil
}

// takeTrailer keeps the entries of trailer that newer sections did not
// set, as strictly as pdfcpu's full parse: a file it cannot read must not
// be signed.
func (f *File) takeTrailer(trailer types.Dict) error {
	x := f.Ctx.XRefTable
	if x.Size == nil {
		if x.Size = trailer.IntEntry("Size"); x.Size == nil {
			return structural("trailer without /Size")
		}
	}
	if x.Root == nil {
		if x.Root = trailer.IndirectRefEntry("Root"); x.Root == nil {
			return structural("trailer without /Root")
		}
	}
	if x.Info == nil {
		x.Info = trailer.IndirectRefEntry("Info")
	}
	if id := trailer.ArrayEntry("ID"); x.ID == nil && id != nil {
		if len(id) != 1 && len(id) != 2 {
			return structural("trailer /ID of %d elements", len(id))
		}
		x.ID = id
	}
	return nil
}

// readTable reads a cross-reference table and its trailer (ISO 32000-2
// §7.5.4, §7.5.5).
func (f *File) readTable(off int64) (types.Dict, *section, error) {
	sec := &section{data: f.in}
	s := scanner{b: f.in, i: int(off)}
	s.skipSpace()
	s.i += len("xref")
	for {
		s.skipSpace()
		if bytes.HasPrefix(f.in[s.i:], []byte("trailer")) {
			s.i += len("trailer")
			break
		}
		first, ok1 := s.int()
		count, ok2 := s.int()
		s.skipSpace()
		if !ok1 || !ok2 || count > (len(f.in)-s.i)/tableEntryLen {
			return nil, nil, structural("bad cross-reference subsection header at offset %d", s.i)
		}
		// Entries are decoded when looked up, but all are checked here,
		// as pdfcpu's full parse does: a file whose table it cannot read
		// must not be signed. This also catches entries that are not 20
		// bytes long.
		for k := range count {
			if _, ok := tableEntry(f.in[s.i+k*tableEntryLen:]); !ok {
				return nil, nil, structural("cross-reference subsection at offset %d: bad entry for object %d", s.i, first+k)
			}
		}
		sec.subs = append(sec.subs, subsection{first: first, count: count, at: s.i})
		s.i += count * tableEntryLen
	}
	// The trailer dictionary ends before startxref; a trailer that does
	// not fit in maxTrailer is not worth reading without pdfcpu's repairs.
	const maxTrailer = 64 << 10
	tail := f.in[s.i:min(len(f.in), s.i+maxTrailer)]
	end := bytes.Index(tail, []byte("startxref"))
	if end < 0 {
		end = len(tail)
	}
	line := string(f.in[s.i : s.i+end])
	o, err := model.ParseObjectContext(f.c, &line, 0)
	trailer, ok := o.(types.Dict)
	if err != nil || !ok {
		return nil, nil, structural("bad trailer after the cross-reference table at offset %d: %v", off, err)
	}
	return trailer, sec, nil
}

// readStream reads a cross-reference stream (ISO 32000-2 §7.5.8), which is
// also the trailer of its section.
func (f *File) readStream(off int64) (types.Dict, *section, error) {
	nr, gen, _, err := f.objectHeader(off)
	if err != nil {
		return nil, nil, err
	}
	sd, err := f.stream(nr, gen, off)
	if err != nil {
		return nil, nil, err
	}
	if err := f.decode(nr, sd); err != nil {
		return nil, nil, err
	}
	if t := sd.Type(); t == nil || *t != "XRef" {
		return nil, nil, structural("object %d at offset %d is not a cross-reference stream", nr, off)
	}
	var w [3]int
	wa := sd.ArrayEntry("W")
	if len(wa) != 3 {
		return nil, nil, structural("cross-reference stream %d: bad /W", nr)
	}
	for i, o := range wa {
		n, ok := o.(types.Integer)
		if !ok || n < 0 || n > 8 {
			return nil, nil, structural("cross-reference stream %d: bad /W", nr)
		}
		w[i] = int(n)
	}
	width := w[0] + w[1] + w[2]
	if width == 0 {
		return nil, nil, structural("cross-reference stream %d: empty /W", nr)
	}
	index := sd.ArrayEntry("Index")
	if index == nil {
		size := sd.IntEntry("Size")
		if size == nil {
			return nil, nil, structural("cross-reference stream %d: no /Size", nr)
		}
		index = types.Array{types.Integer(0), types.Integer(*size)}
	}
	sec := &section{data: sd.Content, w: w}
	at := 0
	for i := 0; i+1 < len(index); i += 2 {
		first, ok1 := index[i].(types.Integer)
		count, ok2 := index[i+1].(types.Integer)
		if !ok1 || !ok2 || first < 0 || count < 0 || int(count) > (len(sec.data)-at)/width {
			return nil, nil, structural("cross-reference stream %d: bad /Index", nr)
		}
		sec.subs = append(sec.subs, subsection{first: int(first), count: int(count), at: at})
		at += int(count) * width
	}
	return sd.Dict, sec, nil
}

// field decodes a big-endian cross-reference stream field.
func field(b []byte) int64 {
	var n int64
	for _, c := range b {
		n = n<<8 | int64(c)
	}
	return n
}

// scanner reads the whitespace-separated integers of cross-reference
// tables and object stream headers.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) skipSpace() {
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case isSpace(c):
			s.i++
		case c == '%': // a comment runs to the end of the line
			for s.i < len(s.b) && s.b[s.i] != '\n' && s.b[s.i] != '\r' {
				s.i++
			}
		default:
			return
		}
	}
}

// int reads a non-negative integer.
func (s *scanner) int() (int, bool) {
	s.skipSpace()
	j := s.i
	n := 0
	for j < len(s.b) && j-s.i < 18 && s.b[j] >= '0' && s.b[j] <= '9' {
		n = n*10 + int(s.b[j]-'0')
		j++
	}
	ok := j > s.i
	s.i = j
	return n, ok
}
