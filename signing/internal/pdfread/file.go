package pdfread

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/pdfcpu/pdfcpu/pkg/filter"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// ErrEncrypted reports a document with an /Encrypt entry in a trailer.
var ErrEncrypted = errors.New("the document is encrypted")

// StructureError reports a part of the file that the lazy reader could not
// read (a cross-reference section, an object not where the section says).
// pdfcpu's full parse repairs many of those, so callers may retry with
// Read.
type StructureError struct {
	// Err says what was wrong.
	Err error
}

func (e *StructureError) Error() string { return e.Err.Error() }

func (e *StructureError) Unwrap() error { return e.Err }

// DecodeLimitError reports streams that decompress to more than the
// bound given to Open, Read or Full.
type DecodeLimitError struct {
	// Limit is the bound, in bytes.
	Limit int64
}

func (e *DecodeLimitError) Error() string {
	return fmt.Sprintf("the compressed data of the PDF expand to more than %s, the limit for a document", megabytes(e.Limit))
}

// megabytes writes n bytes in megabytes (MiB, as max_document_bytes
// counts them), rounded up.
func megabytes(n int64) string {
	return fmt.Sprintf("%d MB", (n+1<<20-1)>>20)
}

// structural returns a *StructureError for a message.
func structural(format string, args ...any) error {
	return &StructureError{Err: fmt.Errorf(format, args...)}
}

// File is a PDF file (ISO 32000-2 §7.5) whose objects are read when first
// resolved. An incremental update touches a handful of objects (catalog,
// form, one page), so parsing every object, as pdfcpu's reader does, is
// most of the cost of signing a large file.
type File struct {
	// Ctx holds what the trailers say (/Root, /Info, /ID, /Size), the
	// offset and kind of the last cross-reference section, and in its
	// table the objects resolved so far, or all of them when the file was
	// parsed in full.
	Ctx *model.Context
	in  []byte
	c   context.Context
	// sections are the cross-reference sections, newest first; nil when
	// Ctx was parsed in full.
	sections []*section
	// objStms caches the decoded object streams.
	objStms map[int]*objStm
	// loading guards against an object stream whose reading needs itself.
	loading map[int]bool
	// scanBudget is what is left of the bytes direct may scan for the
	// ends of objects: without it, a file missing its endobj keywords
	// would cost a scan of the rest of the file per object read.
	scanBudget int
	// buffers hold the decoded streams, given back by Release.
	buffers []*[]byte
	// decodeBudget is what is left of the bytes streams may decode to,
	// out of maxDecoded, and decodeErr the error that exhausted it.
	decodeBudget, maxDecoded int64
	decodeErr                error
	// released tells that Release was called.
	released bool
}

// Full wraps a context parsed in full by Read with maxDecoded. Objects
// that pdfcpu left in their object streams are read as Open reads them,
// with the same bound on what their streams decompress to.
func Full(c context.Context, ctx *model.Context, maxDecoded int64) *File {
	return newFile(c, ctx, nil, maxDecoded)
}

func newFile(c context.Context, ctx *model.Context, in []byte, maxDecoded int64) *File {
	if maxDecoded <= 0 {
		maxDecoded = filter.DefaultMaxDecodeBytes
	}
	return &File{Ctx: ctx, in: in, c: c, objStms: map[int]*objStm{}, loading: map[int]bool{},
		scanBudget: 4*len(in) + 1<<20, decodeBudget: maxDecoded, maxDecoded: maxDecoded}
}

// Open reads the cross-reference sections of in (tables, streams, hybrid
// files, following /Prev) and its trailer, and nothing else. The file must
// start with its header: offsets count from the first byte. The streams
// the File decodes (cross-reference and object streams) may decompress to
// maxDecoded bytes in all, pdfcpu's limit when it is not positive: a
// megabyte of Flate data can inflate to a gigabyte.
func Open(c context.Context, in []byte, maxDecoded int64) (f *File, err error) {
	if err := checkHeader(in); err != nil {
		return nil, &StructureError{Err: err}
	}
	start, err := StartXRef(in)
	if err != nil {
		return nil, &StructureError{Err: err}
	}
	ctx, err := model.NewContext(bytes.NewReader(in), Config(maxDecoded))
	if err != nil {
		return nil, &StructureError{Err: err}
	}
	f = newFile(c, ctx, in, maxDecoded)
	err = Guard(func() error { return f.readXRef(start) })
	var pe *PanicError
	if errors.As(err, &pe) {
		err = &StructureError{Err: pe}
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Resolve returns the object o refers to, reading it if needed, or o
// itself when it is not a reference. A reference to a free object
// resolves to nil, the null object (ISO 32000-2 §7.3.10), and so does one
// to a missing object in a file parsed in full; read lazily, that is a
// *StructureError (see object).
func (f *File) Resolve(o types.Object) (types.Object, error) {
	ref, ok := o.(types.IndirectRef)
	if !ok {
		return o, nil
	}
	var obj types.Object
	err := Guard(func() (err error) {
		obj, err = f.object(ref.ObjectNumber.Value())
		return err
	})
	var pe *PanicError
	if errors.As(err, &pe) {
		err = &StructureError{Err: pe}
	}
	return obj, err
}

// object returns object nr, reading it if needed.
func (f *File) object(nr int) (types.Object, error) {
	if f.released {
		return nil, errors.New("pdfread: File used after Release")
	}
	e, ok := f.Ctx.Table[nr]
	if f.sections == nil { // parsed in full
		if !ok {
			return nil, nil
		}
		if _, inStm := e.Object.(types.LazyObjectStreamObject); inStm && e.ObjectStream != nil && e.ObjectStreamInd != nil {
			// pdfcpu decodes these when dereferenced, each object
			// stream up to its own limit: decoded here, they count
			// against the File's.
			o, err := f.compressed(nr, *e.ObjectStream, *e.ObjectStreamInd)
			if err != nil {
				return nil, err
			}
			e.Object = o
		}
		return e.Object, nil
	}
	if ok && (e.Object != nil || e.Free) {
		return e.Object, nil
	}
	x, ok, err := f.lookup(nr)
	if err != nil {
		return nil, err
	}
	if !ok {
		// Null, says the standard, but the objects an update reads are
		// never meant to be missing: this is a broken table that pdfcpu's
		// full parse may repair by scanning the file.
		return nil, structural("object %d is in no cross-reference section", nr)
	}
	if x.free {
		return nil, nil
	}
	var o types.Object
	if x.stream != 0 {
		o, err = f.compressed(nr, x.stream, int(x.off))
	} else {
		o, err = f.direct(nr, x.gen, x.off)
	}
	if err != nil {
		return nil, err
	}
	// Cached where the full parse puts objects, as an uncompressed one:
	// once changed, it is written to the update in the clear.
	off, gen := x.off, x.gen
	f.Ctx.Table[nr] = &model.XRefTableEntry{Offset: &off, Generation: &gen, Object: o, RefCount: 1}
	return o, nil
}
