package pdfread

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/pdfcpu/pdfcpu/pkg/filter"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// objStm is a decoded object stream (ISO 32000-2 §7.5.7).
type objStm struct {
	// data are the objects, after the header.
	data []byte
	// nrs and offs are the object numbers and the offsets of the objects
	// in data.
	nrs, offs []int
}

// objectHeader reads the "nr gen obj" at off and returns where the
// object's body starts.
func (f *File) objectHeader(off int64) (nr, gen, body int, err error) {
	if off <= 0 || off >= int64(len(f.in)) {
		return 0, 0, 0, structural("object offset %d out of the file", off)
	}
	s := scanner{b: f.in, i: int(off)}
	nr, ok1 := s.int()
	gen, ok2 := s.int()
	s.skipSpace()
	if !ok1 || !ok2 || !bytes.HasPrefix(f.in[s.i:], []byte("obj")) {
		return 0, 0, 0, structural("no object at offset %d", off)
	}
	return nr, gen, s.i + len("obj"), nil
}

// direct parses object nr stored at off, checking that it is there: a
// wrong offset is a broken table that pdfcpu's full parse may repair. A
// stream comes back as a types.StreamDict whose data is not read yet.
func (f *File) direct(nr, gen int, off int64) (types.Object, error) {
	n, g, body, err := f.objectHeader(off)
	if err != nil {
		return nil, err
	}
	if n != nr || g != gen {
		return nil, structural("object %d %d expected at offset %d, found %d %d", nr, gen, off, n, g)
	}
	// The object ends at endobj or, for a stream, at the stream keyword.
	// Either word inside a string would cut it short and fail the parse,
	// leaving the object to the full parse.
	rest := f.in[body:]
	window := rest[:min(len(rest), f.scanBudget)]
	end := bytes.Index(window, []byte("endobj"))
	if end < 0 {
		if len(window) < len(rest) {
			return nil, structural("object %d: too much to scan for the ends of objects", nr)
		}
		end = len(rest)
	}
	f.scanBudget -= end
	kw := streamKeyword(rest[:end])
	if kw >= 0 {
		end = kw
	}
	line := string(rest[:end])
	if len(bytes.TrimSpace(rest[:end])) == 0 {
		return nil, nil // the null object
	}
	o, err := model.ParseObjectContext(f.c, &line, 0)
	if err != nil {
		return nil, &StructureError{Err: fmt.Errorf("object %d: %w", nr, err)}
	}
	if kw < 0 {
		return o, nil
	}
	d, ok := o.(types.Dict)
	if !ok {
		return nil, structural("object %d: stream without a dictionary", nr)
	}
	// The keyword ends with CRLF or LF (ISO 32000-2 §7.3.8.1); some
	// writers put a lone CR.
	at := body + kw + len("stream")
	if at < len(f.in) && f.in[at] == '\r' {
		at++
	}
	if at < len(f.in) && f.in[at] == '\n' {
		at++
	}
	filters, err := filterPipeline(d)
	if err != nil {
		return nil, structural("object %d: %v", nr, err)
	}
	length, lengthRef := d.Length()
	return types.NewStreamDict(d, int64(at), length, lengthRef, filters), nil
}

// streamKeyword returns where the stream keyword starts in an object's
// body b, -1 if it has none. The keyword follows the dictionary's closing
// ">>": the word in a comment, a string or "endstream" does not count.
func streamKeyword(b []byte) int {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte("stream"))
		if j < 0 {
			return -1
		}
		j += i
		k := j
		for k > 0 && isSpace(b[k-1]) {
			k--
		}
		if k >= 2 && b[k-2] == '>' && b[k-1] == '>' {
			return j
		}
		i = j + len("stream")
	}
}

// isSpace tells whether c is PDF white space (ISO 32000-2 §7.2.3).
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '\f', 0:
		return true
	}
	return false
}

// filterPipeline returns the filters of stream dictionary d with their
// parameters (ISO 32000-2 §7.3.8.2).
func filterPipeline(d types.Dict) ([]types.PDFFilter, error) {
	var names, parms types.Array
	switch o := d["Filter"].(type) {
	case nil:
		return nil, nil
	case types.Name:
		names = types.Array{o}
	case types.Array:
		names = o
	default:
		return nil, errors.New("bad /Filter")
	}
	switch o := d["DecodeParms"].(type) {
	case nil:
	case types.Dict:
		parms = types.Array{o}
	case types.Array:
		parms = o
	default:
		return nil, errors.New("bad /DecodeParms")
	}
	var filters []types.PDFFilter
	for i, o := range names {
		name, ok := o.(types.Name)
		if !ok {
			return nil, errors.New("bad /Filter")
		}
		var p types.Dict
		if i < len(parms) {
			p, _ = parms[i].(types.Dict)
		}
		filters = append(filters, types.PDFFilter{Name: string(name), DecodeParms: p})
	}
	return filters, nil
}

// stream parses the stream object nr at off, with its raw data.
func (f *File) stream(nr, gen int, off int64) (*types.StreamDict, error) {
	o, err := f.direct(nr, gen, off)
	if err != nil {
		return nil, err
	}
	sd, ok := o.(types.StreamDict)
	if !ok {
		return nil, structural("object %d is not a stream", nr)
	}
	var length int64
	if sd.StreamLength != nil {
		length = *sd.StreamLength
	} else if sd.StreamLengthObjNr != nil {
		lo, err := f.object(*sd.StreamLengthObjNr)
		if err != nil {
			return nil, err
		}
		l, ok := lo.(types.Integer)
		if !ok {
			return nil, structural("stream %d: bad /Length", nr)
		}
		length = int64(l)
	} else {
		return nil, structural("stream %d: no /Length", nr)
	}
	if length < 0 || sd.StreamOffset+length > int64(len(f.in)) {
		return nil, structural("stream %d: data beyond the end of the file", nr)
	}
	sd.Raw = f.in[sd.StreamOffset : sd.StreamOffset+length]
	return &sd, nil
}

// decode decodes sd's data into sd.Content, within what is left of the
// File's decoding budget. Flate alone or with a PNG predictor, the forms
// of object and cross-reference streams, is inflated here with recycled
// readers into a recycled buffer that the File holds until Release, and
// unpredicted in place; other filters are left to pdfcpu, whose buffers
// grow by doubling.
func (f *File) decode(nr int, sd *types.StreamDict) error {
	if f.decodeErr != nil {
		return f.decodeErr
	}
	var err error
	if rowLen, bpp, ok := flatePNG(sd.FilterPipeline); ok {
		buf := inflateBuffers.Get().(*[]byte)
		var content []byte
		if content, err = inflate((*buf)[:0], sd.Raw, f.decodeBudget); err == nil {
			// A stream that did not fit the recycled buffer comes back
			// in a new one, which takes its place.
			*buf = content
			f.buffers = append(f.buffers, buf)
			if rowLen > 0 {
				content, err = unpredictPNG(content, rowLen, bpp)
			}
			sd.Content = content
		}
	} else if f.decodeBudget > 0 { // pdfcpu takes 0 for its own limit
		err = sd.DecodeWithLimit(f.decodeBudget)
	} else {
		err = filter.ErrDecodeLimitExceeded
	}
	if errors.Is(err, errInflateLimit) || errors.Is(err, filter.ErrDecodeLimitExceeded) {
		// Final: the full parse would decode the same streams.
		sd.Content = nil
		f.decodeErr = &DecodeLimitError{Limit: f.maxDecoded}
		return f.decodeErr
	}
	if err != nil {
		return &StructureError{Err: fmt.Errorf("stream %d: %w", nr, err)}
	}
	f.decodeBudget -= int64(len(sd.Content))
	return nil
}

// flatePNG tells whether filters are FlateDecode alone, and with a PNG
// predictor (ISO 32000-2 §7.4.4.4, Predictor 10 to 15) the length of its
// rows, tag byte excluded, and of its pixels, or 0 and 0 without.
func flatePNG(filters []types.PDFFilter) (rowLen, bpp int, ok bool) {
	if len(filters) != 1 || filters[0].Name != filter.Flate {
		return 0, 0, false
	}
	parms := filters[0].DecodeParms
	param := func(key string, def int) int {
		if o, found := parms.Find(key); found {
			if n, isInt := o.(types.Integer); isInt {
				return int(n)
			}
			return -1
		}
		return def
	}
	predictor, colors, bpc, columns := param("Predictor", 1), param("Colors", 1), param("BitsPerComponent", 8), param("Columns", 1)
	switch {
	case predictor == 1:
		return 0, 0, true
	case predictor < 10 || predictor > 15 || colors < 1 || colors > 32 || columns < 1 || columns > 1<<24:
		return 0, 0, false // TIFF, or what pdfcpu will refuse
	}
	switch bpc {
	case 1, 2, 4, 8, 16:
		return (colors*bpc*columns + 7) / 8, (colors*bpc + 7) / 8, true
	}
	return 0, 0, false
}

// unpredictPNG reverses the PNG row filters (RFC 2083 §6) of data, rows
// of a tag byte then rowLen bytes, in place, and returns the rows without
// their tags. Each row is written before where it was read from.
func unpredictPNG(data []byte, rowLen, bpp int) ([]byte, error) {
	if len(data)%(rowLen+1) != 0 {
		return nil, errors.New("PNG predictor: the data are not whole rows")
	}
	var prev []byte
	for r := range len(data) / (rowLen + 1) {
		tag := data[r*(rowLen+1)]
		in := data[r*(rowLen+1)+1 : (r+1)*(rowLen+1)]
		out := data[r*rowLen : (r+1)*rowLen]
		for i := range rowLen {
			var left, up, upLeft byte
			if i >= bpp {
				left = out[i-bpp]
			}
			if prev != nil {
				up = prev[i]
				if i >= bpp {
					upLeft = prev[i-bpp]
				}
			}
			x := in[i]
			switch tag {
			case 0: // None
			case 1: // Sub
				x += left
			case 2: // Up
				x += up
			case 3: // Average
				x += byte((int(left) + int(up)) / 2)
			case 4: // Paeth
				x += paeth(left, up, upLeft)
			default:
				return nil, fmt.Errorf("PNG predictor: unknown row filter %d", tag)
			}
			out[i] = x
		}
		prev = out
	}
	return data[:len(data)/(rowLen+1)*rowLen], nil
}

// paeth is the PNG Paeth predictor: of a, b and c, the nearest to
// a + b - c, in that order of preference.
func paeth(a, b, c byte) byte {
	p := int(a) + int(b) - int(c)
	pa, pb, pc := abs(p-int(a)), abs(p-int(b)), abs(p-int(c))
	switch {
	case pa <= pb && pa <= pc:
		return a
	case pb <= pc:
		return b
	}
	return c
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// Release gives back the buffers decoded streams were read into, for the
// next File to reuse; f must not be used afterwards. Objects already
// resolved stay valid: they never share those buffers. A File that is
// not released is simply left to the garbage collector: recycling the
// buffers matters because the garbage they would be slows the hashing
// that goes on alongside signing (see pades).
func (f *File) Release() {
	for _, buf := range f.buffers {
		if cap(*buf) <= maxPooledBuffer {
			inflateBuffers.Put(buf)
		}
	}
	f.buffers, f.objStms, f.sections, f.released = nil, nil, nil, true
}

// zlibReaders recycles zlib readers: each holds a 32 KB window, whose
// allocation costs more than inflating the small streams read here.
var zlibReaders sync.Pool

// inflateBuffers recycles the buffers streams are inflated into.
var inflateBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuffer bounds the buffers kept for reuse, so that one large
// stream does not pin its memory.
const maxPooledBuffer = 1 << 20

// errInflateLimit reports Flate data that inflate more than allowed.
var errInflateLimit = errors.New("inflated data over the limit")

// inflate decodes Flate data (RFC 1950) into dst's room, failing with
// errInflateLimit past limit bytes. Most streams fit the recycled dst;
// the rest of a larger one is read into chunks, so that a stream over the
// limit costs no more than the limit before it is refused, and one under
// it twice its size, while the chunks are copied into one piece (a
// growing buffer would cost up to three times, and leave more garbage).
func inflate(dst, raw []byte, limit int64) ([]byte, error) {
	var zr io.ReadCloser
	var err error
	if r, ok := zlibReaders.Get().(io.ReadCloser); ok {
		zr, err = r, r.(zlib.Resetter).Reset(bytes.NewReader(raw), nil)
	} else {
		zr, err = zlib.NewReader(bytes.NewReader(raw))
	}
	if err != nil {
		return dst, err
	}
	defer zlibReaders.Put(zr)
	// One byte past the limit tells a stream over it.
	n, err := fill(zr, dst[:min(int64(cap(dst)), limit+1)])
	dst = dst[:n]
	total := int64(n)
	var chunks [][]byte
	for err == nil {
		size := min(max(minInflateChunk, total/4), limit+1-total)
		if size <= 0 {
			return dst, errInflateLimit
		}
		chunk := make([]byte, size)
		n, err = fill(zr, chunk)
		chunks = append(chunks, chunk[:n])
		total += int64(n)
	}
	if err != io.EOF {
		return dst, err
	}
	if total > limit {
		return dst, errInflateLimit
	}
	if chunks == nil {
		return dst, nil
	}
	out := make([]byte, 0, total)
	out = append(out, dst...)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out, nil
}

// minInflateChunk is the smallest chunk inflate reads a large stream into.
const minInflateChunk = 32 << 10

// fill reads r into b until b is full (nil error) or r ends (io.EOF) or
// fails, and returns how many bytes it read.
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// compressed parses object nr, stored at index i of object stream stm.
func (f *File) compressed(nr, stm, i int) (types.Object, error) {
	s, err := f.objStm(stm)
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= len(s.nrs) || s.nrs[i] != nr {
		return nil, structural("object %d is not at index %d of object stream %d", nr, i, stm)
	}
	start, end := s.offs[i], len(s.data) // the last object runs to the end
	if i+1 < len(s.offs) {
		end = s.offs[i+1]
	}
	if end > len(s.data) || start > end {
		return nil, structural("object %d is beyond the end of object stream %d", nr, stm)
	}
	line := string(s.data[start:end])
	o, err := model.ParseObjectContext(f.c, &line, 0)
	if err != nil {
		return nil, &StructureError{Err: fmt.Errorf("object %d in object stream %d: %w", nr, stm, err)}
	}
	return o, nil
}

// objStmStream returns object stream nr, its data not decoded yet.
func (f *File) objStmStream(nr int) (*types.StreamDict, error) {
	if f.sections == nil { // parsed in full
		e, ok := f.Ctx.Table[nr]
		if !ok || e.Object == nil {
			return nil, fmt.Errorf("object stream %d cannot be read", nr)
		}
		osd, ok := e.Object.(types.ObjectStreamDict)
		if !ok {
			return nil, fmt.Errorf("object %d is not an object stream", nr)
		}
		sd := osd.StreamDict
		sd.Content = nil
		return &sd, nil
	}
	x, ok, err := f.lookup(nr)
	if err != nil {
		return nil, err
	}
	if !ok || x.free || x.stream != 0 {
		return nil, structural("object stream %d cannot be read", nr)
	}
	return f.stream(nr, x.gen, x.off)
}

// objStm returns object stream nr, decoded.
func (f *File) objStm(nr int) (*objStm, error) {
	if s, ok := f.objStms[nr]; ok {
		return s, nil
	}
	if f.loading[nr] {
		return nil, structural("object stream %d cannot be read", nr)
	}
	f.loading[nr] = true
	defer delete(f.loading, nr)
	sd, err := f.objStmStream(nr)
	if err != nil {
		return nil, err
	}
	// ISO 32000-2 §7.5.7 requires the type, and pdfcpu's full parse, which
	// readers and verify use, refuses a stream without it: reading its
	// objects anyway would sign what nobody can read back.
	if t := sd.Type(); t == nil || *t != "ObjStm" {
		return nil, structural("object stream %d: its /Type is not /ObjStm", nr)
	}
	n, first := sd.IntEntry("N"), sd.IntEntry("First")
	if n == nil || first == nil || *n < 0 || *first < 0 {
		return nil, structural("object stream %d: bad /N or /First", nr)
	}
	if err := f.decode(nr, sd); err != nil {
		return nil, err
	}
	if *first > len(sd.Content) {
		return nil, structural("object stream %d: bad /First", nr)
	}
	s := &objStm{data: sd.Content[*first:]}
	sc := scanner{b: sd.Content[:*first]}
	// Each pair takes at least four bytes ("1 0 "): a hostile /N does not
	// size the slices.
	s.nrs, s.offs = make([]int, 0, min(*n, *first/4+1)), make([]int, 0, min(*n, *first/4+1))
	for range *n {
		objNr, ok1 := sc.int()
		off, ok2 := sc.int()
		if !ok1 || !ok2 || len(s.offs) > 0 && off < s.offs[len(s.offs)-1] {
			return nil, structural("object stream %d: bad header", nr)
		}
		s.nrs = append(s.nrs, objNr)
		s.offs = append(s.offs, off)
	}
	f.objStms[nr] = s
	return s, nil
}
