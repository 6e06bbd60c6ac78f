// Package pades signs PDF files with PAdES baseline signatures (ETSI EN
// 319 142-1; ISO 32000-2 §12.8), each appended as an incremental update so
// that the original bytes, and with them every earlier signature, stay
// untouched.
//
// Sign adds a signature (ETSI.CAdES.detached, level B-B, or B-T with a
// time-stamp authority), AddDSS adds the validation data that make it B-LT
// (a /DSS dictionary), and DocTimestamp adds a document time-stamp
// (ETSI.RFC3161) that makes it B-LTA. They take the document in memory;
// SignFile, AddDSSFile and DocTimestampFile stream it from a file instead,
// so that memory use does not grow with the document.
//
// An update only needs the cross-reference data, the catalog, the form
// and the page its widget goes on, found by descending the page tree by
// its /Count entries, with the ancestors it inherits its boxes and turn
// from (a visible mark goes on the page as readers show it), so documents
// are read lazily (see internal/pdfread),
// falling back to pdfcpu's full parse, which repairs broken files, when
// the lazy reader meets one. Inspect, once per document, reads what Sign
// reads for a stamp on any page: it walks the whole page tree for the real
// page count and refuses a tree whose /Count entries would lead Sign to
// another page than the walk's, so that every document the gateway
// accepts can be signed, whichever page the stamp goes on. The update is written
// here: the new objects always get fresh object numbers, the
// cross-reference section has the same kind (table or stream) as the
// source's, and the original bytes go to the output unchanged.
package pades

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/parapheur/parapheur/signing/internal/pdfread"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// DefaultMaxInput is the input size limit used when none is given.
const DefaultMaxInput = 64 << 20

// Errors for input that cannot be signed. Returned errors wrap one of these
// with details, so callers test them with errors.Is.
var (
	ErrNotPDF     = errors.New("pades: not a PDF file")
	ErrTooLarge   = errors.New("pades: PDF file over the size limit")
	ErrTruncated  = errors.New("pades: truncated PDF file (no %EOF in its last kilobyte)")
	ErrMalformed  = errors.New("pades: malformed PDF file")
	ErrEncrypted  = errors.New("pades: encrypted PDF files cannot be signed")
	ErrNoSuchPage = errors.New("pades: no such page")
	ErrLocked     = errors.New("pades: the document is certified with no changes allowed")
)

// document is a PDF being extended by one incremental update.
type document struct {
	f *pdfread.File
	// size is the next fresh object number.
	size int
	// objs are the new and changed objects, in writing order.
	objs []written
	// sigNr is the object number of the signature dictionary (0 for
	// none), whose /Contents placeholder holds sigSize bytes, and
	// byteRangeAt and contentsAt are where write put the placeholders.
	sigNr, sigSize          int
	byteRangeAt, contentsAt int64
	// xrefStream makes the update end with a cross-reference stream, as
	// the source does, rather than a table.
	xrefStream bool
	// sep separates the original bytes from the increment when the
	// original does not end with an end-of-line.
	sep []byte
}

// withDocument opens in and lets build prepare the update. It first reads
// lazily, only the cross-reference sections and the objects the update
// touches, which is what makes signing a large file cheap; when an object
// cannot be read that way (not at its offset, not parseable alone), it
// starts over on pdfcpu's full parse, which repairs what can be, with the
// same checks. Broken cross-reference sections are refused by open.
//
// Streams that decompress to more than maxInput in all are refused
// (ErrMalformed), whichever reading meets them.
func withDocument(c context.Context, in []byte, maxInput int64, build func(*document) error) (*document, error) {
	d, err := open(c, in, maxInput, true)
	if err == nil {
		err = guard(func() error { return build(d) })
	}
	var se *pdfread.StructureError
	if !errors.As(err, &se) {
		return d, decodeLimit(err)
	}
	if d != nil {
		d.f.Release()
	}
	d, err = open(c, in, maxInput, false)
	if err == nil {
		err = guard(func() error { return build(d) })
	}
	return d, decodeLimit(err)
}

// decodeLimit makes streams that decompress past the limit ErrMalformed,
// with the reader's words, where they were not reported as such already.
func decodeLimit(err error) error {
	var le *pdfread.DecodeLimitError
	if errors.As(err, &le) && !errors.Is(err, ErrMalformed) {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return err
}

// open checks in, reads it lazily or in full, and prepares an incremental
// update.
func open(c context.Context, in []byte, maxInput int64, lazy bool) (*document, error) {
	if maxInput <= 0 {
		maxInput = DefaultMaxInput
	}
	if err := checkSize(in, maxInput); err != nil {
		return nil, err
	}
	head := in[:min(len(in), 1024)]
	if i := bytes.Index(head, []byte("%PDF-")); i < 0 {
		return nil, fmt.Errorf("%w: no %%PDF- header", ErrNotPDF)
	} else if i > 0 {
		// Such files count offsets from the header, /ByteRange from the
		// start of the file: a signature would confuse readers.
		return nil, fmt.Errorf("%w: %d bytes before the %%PDF- header (qpdf can rewrite the file)", ErrMalformed, i)
	}
	// As readers do, look for the end marker in the last kilobyte only:
	// some producers pad files after it.
	if !bytes.Contains(in[max(0, len(in)-1024):], []byte("%%EOF")) {
		return nil, ErrTruncated
	}
	if err := pdfread.CheckStartXRef(in); err != nil {
		return nil, fmt.Errorf("%w: %v (qpdf can repair the file)", ErrMalformed, err)
	}
	var f *pdfread.File
	if lazy {
		var err error
		var le *pdfread.DecodeLimitError
		if f, err = pdfread.Open(c, in, maxInput); errors.Is(err, pdfread.ErrEncrypted) {
			return nil, ErrEncrypted
		} else if errors.As(err, &le) {
			return nil, err // no repair helps
		} else if err != nil {
			if bytes.Contains(in, []byte("/Encrypt")) {
				return nil, encrypted(err)
			}
			// The update chains to these sections: they must read as the
			// standard lays them out, not as a repair guesses them, so
			// this is final (%v drops the *pdfread.StructureError).
			return nil, fmt.Errorf("%w: %v (qpdf can repair the file)", ErrMalformed, err)
		}
	} else {
		ctx, err := pdfread.Read(c, in, maxInput)
		if err != nil {
			if bytes.Contains(in, []byte("/Encrypt")) {
				return nil, encrypted(err)
			}
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if ctx.Encrypt != nil {
			return nil, ErrEncrypted
		}
		// pdfcpu rebuilds a missing or broken cross-reference section by
		// scanning, and then reports it at offset 0; an update chained to a
		// guessed structure would not be read back the same way by others.
		if ctx.Write.OffsetPrevXRef == nil || *ctx.Write.OffsetPrevXRef == 0 {
			return nil, fmt.Errorf("%w: no valid cross-reference section (qpdf can repair the file)", ErrMalformed)
		}
		f = pdfread.Full(c, ctx, maxInput)
	}
	if _, err := f.Catalog(); err != nil {
		return nil, fmt.Errorf("%w: document catalog: %w", ErrMalformed, err)
	}
	d := &document{f: f, size: *f.Ctx.Size, xrefStream: f.Ctx.Read.UsingXRefStreams}
	if err := d.checkCertification(); err != nil {
		return nil, err
	}
	if last := in[len(in)-1]; last != '\n' && last != '\r' {
		d.sep = []byte("\n")
	}
	return d, nil
}

// encrypted reports a document that could not be read and mentions
// /Encrypt: encrypted files often fail to read before their /Encrypt
// entry is found, and saying so helps more than the reading error.
func encrypted(err error) error {
	return fmt.Errorf("%w: %v", ErrEncrypted, err)
}

// checkSize refuses input over the size limit (see sizeLimit).
func checkSize(in []byte, maxInput int64) error {
	return checkLength(int64(len(in)), maxInput)
}

// checkLength is checkSize for input of n bytes not read yet.
func checkLength(n, maxInput int64) error {
	if limit := sizeLimit(maxInput); n > limit {
		return &SizeError{Size: n, Limit: limit}
	}
	return nil
}

// SizeError is the error of input over the size limit: it is ErrTooLarge
// (errors.Is), and tells both sizes, so that a refusal can say the limit.
type SizeError struct {
	Size, Limit int64 // bytes
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("%v: %d bytes, limit %d", ErrTooLarge, e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrTooLarge) hold.
func (e *SizeError) Is(target error) bool { return target == ErrTooLarge }

// sizeLimit is maxInput or, when that is not positive, DefaultMaxInput.
func sizeLimit(maxInput int64) int64 {
	if maxInput <= 0 {
		return DefaultMaxInput
	}
	return maxInput
}

// checkCertification refuses documents whose certification signature
// (ISO 32000-2 §12.8.2.2, DocMDP) allows no change at all: any update,
// even another signature, would invalidate it. The signature is looked
// for under /Perms /DocMDP and, since some signers omit that entry, among
// the signature fields. Malformed entries are skipped, as readers do, but
// a structure the lazy reader could not read (see withDocument), or
// streams that decompress past the limit, are reported: they may hide the
// certification.
func (d *document) checkCertification() error {
	var unread error
	ok := func(err error) bool {
		var se *pdfread.StructureError
		var le *pdfread.DecodeLimitError
		if (errors.As(err, &se) || errors.As(err, &le)) && unread == nil {
			unread = err
		}
		return err == nil
	}
	root := d.catalog()
	var sigs []types.Object
	if perms, err := d.f.Dict(root["Perms"]); ok(err) && perms != nil {
		sigs = append(sigs, perms["DocMDP"])
	}
	if form, err := d.f.Dict(root["AcroForm"]); ok(err) && form != nil {
		if fields, err := d.f.Array(form["Fields"]); ok(err) {
			for _, f := range fields {
				if fd, err := d.f.Dict(f); ok(err) && fd != nil {
					sigs = append(sigs, fd["V"])
				}
			}
		}
	}
	for _, o := range sigs {
		if sig, err := d.f.Dict(o); ok(err) && sig != nil && d.docMDPP(sig, ok) == 1 {
			return ErrLocked
		}
	}
	return unread
}

// docMDPP returns the /P of sig's DocMDP reference, 0 if it has none; ok
// tells whether an entry could be read.
func (d *document) docMDPP(sig types.Dict, ok func(error) bool) int {
	refs, err := d.f.Array(sig["Reference"])
	if !ok(err) {
		return 0
	}
	for _, o := range refs {
		ref, err := d.f.Dict(o)
		if !ok(err) || ref == nil || ref.NameEntry("TransformMethod") == nil || *ref.NameEntry("TransformMethod") != "DocMDP" {
			continue
		}
		params, err := d.f.Dict(ref["TransformParams"])
		if !ok(err) || params == nil {
			return 2 // the default
		}
		if p := params.IntEntry("P"); p != nil {
			return *p
		}
		return 2
	}
	return 0
}

// catalog returns the document catalog, which open checked exists.
func (d *document) catalog() types.Dict {
	root, _ := d.f.Catalog()
	return root
}

// malformed reports a malformed document, keeping err, which may be a
// *pdfread.StructureError that calls for a full parse (see withDocument).
func malformed(err error, format string, args ...any) error {
	if err == nil {
		return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
	return fmt.Errorf("%w: %s: %w", ErrMalformed, fmt.Sprintf(format, args...), err)
}

// guard runs f, turning a pdfcpu panic into an ErrMalformed error.
func guard(f func() error) error {
	err := pdfread.Guard(f)
	var pe *pdfread.PanicError
	if errors.As(err, &pe) {
		return fmt.Errorf("%w: %v", ErrMalformed, pe)
	}
	return err
}
