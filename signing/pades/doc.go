// Package pades signs PDF files with PAdES baseline signatures (ETSI EN
// 319 142-1; ISO 32000-2 §12.8), each appended as an incremental update so
// that the original bytes, and with them every earlier signature, stay
// untouched.
//
// Sign adds a signature (ETSI.CAdES.detached, level B-B, or B-T with a
// time-stamp authority), AddDSS adds the validation data that make it B-LT
// (a /DSS dictionary), and DocTimestamp adds a document time-stamp
// (ETSI.RFC3161) that makes it B-LTA. Documents are parsed with pdfcpu and
// increments are written with its incremental writer; the new objects
// always get fresh object numbers, and the cross-reference section has the
// same kind (table or stream) as the source's.
package pades

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/parapheur/parapheur/signing/internal/pdfread"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// DefaultMaxInput is the input size limit used when none is given.
const DefaultMaxInput = 64 << 20

// Errors for input that cannot be signed. Returned errors wrap one of these
// with details, so callers test them with errors.Is.
var (
	ErrNotPDF     = errors.New("pades: not a PDF file")
	ErrTooLarge   = errors.New("pades: PDF file over the size limit")
	ErrTruncated  = errors.New("pades: truncated PDF file (no %%EOF in its last kilobyte)")
	ErrMalformed  = errors.New("pades: malformed PDF file")
	ErrEncrypted  = errors.New("pades: encrypted PDF files cannot be signed")
	ErrNoSuchPage = errors.New("pades: no such page")
	ErrLocked     = errors.New("pades: the document is certified with no changes allowed")
)

// document is a parsed PDF being extended by one incremental update.
type document struct {
	ctx *model.Context
	// sep separates the original bytes from the increment when the
	// original does not end with an end-of-line.
	sep []byte
}

// open checks and parses in, and prepares an incremental update.
func open(c context.Context, in []byte, maxInput int64) (*document, error) {
	if maxInput <= 0 {
		maxInput = DefaultMaxInput
	}
	if int64(len(in)) > maxInput {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(in), maxInput)
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
	ctx, err := pdfread.Read(c, in)
	if err != nil {
		if bytes.Contains(in, []byte("/Encrypt")) {
			return nil, fmt.Errorf("%w: %v", ErrEncrypted, err)
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
	if ctx.Root == nil {
		return nil, fmt.Errorf("%w: no document catalog", ErrMalformed)
	}
	if _, err := ctx.Catalog(); err != nil {
		return nil, fmt.Errorf("%w: document catalog: %v", ErrMalformed, err)
	}
	if err := guard(ctx.EnsurePageCount); err != nil {
		if errors.Is(err, ErrMalformed) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: page tree: %v", ErrMalformed, err)
	}
	if ctx.PageCount < 1 {
		return nil, fmt.Errorf("%w: no pages", ErrMalformed)
	}
	if err := guard(func() error { return checkCertification(ctx) }); err != nil {
		return nil, err
	}
	d := &document{ctx: ctx}
	if last := in[len(in)-1]; last != '\n' && last != '\r' {
		d.sep = []byte("\n")
	}
	ctx.Write.Increment = true
	ctx.Write.Offset = int64(len(in) + len(d.sep))
	// Object streams would hide the signature dictionary inside a
	// compressed stream; the cross-reference kind follows the source.
	ctx.WriteObjectStream = false
	ctx.WriteXRefStream = ctx.Read.UsingXRefStreams
	return d, nil
}

// checkCertification refuses documents whose certification signature
// (ISO 32000-2 §12.8.2.2, DocMDP) allows no change at all: any update,
// even another signature, would invalidate it. The signature is looked
// for under /Perms /DocMDP and, since some signers omit that entry, among
// the signature fields.
func checkCertification(ctx *model.Context) error {
	root := ctx.RootDict
	var sigs []types.Object
	if perms, err := ctx.DereferenceDict(root["Perms"]); err == nil && perms != nil {
		sigs = append(sigs, perms["DocMDP"])
	}
	if form, err := ctx.DereferenceDict(root["AcroForm"]); err == nil && form != nil {
		if fields, err := ctx.DereferenceArray(form["Fields"]); err == nil {
			for _, f := range fields {
				if fd, err := ctx.DereferenceDict(f); err == nil && fd != nil {
					sigs = append(sigs, fd["V"])
				}
			}
		}
	}
	for _, o := range sigs {
		if sig, err := ctx.DereferenceDict(o); err == nil && sig != nil && docMDPP(ctx, sig) == 1 {
			return ErrLocked
		}
	}
	return nil
}

// docMDPP returns the /P of sig's DocMDP reference, 0 if it has none.
func docMDPP(ctx *model.Context, sig types.Dict) int {
	refs, err := ctx.DereferenceArray(sig["Reference"])
	if err != nil {
		return 0
	}
	for _, o := range refs {
		ref, err := ctx.DereferenceDict(o)
		if err != nil || ref == nil || ref.NameEntry("TransformMethod") == nil || *ref.NameEntry("TransformMethod") != "DocMDP" {
			continue
		}
		params, err := ctx.DereferenceDict(ref["TransformParams"])
		if err != nil || params == nil {
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
	root, _ := d.ctx.Catalog()
	return root
}

// newObject adds o under a fresh object number. pdfcpu's
// IndRefForNewObject may recycle a free number, which an incremental update
// must not do without bumping its generation.
func (d *document) newObject(o types.Object) types.IndirectRef {
	nr, _ := d.ctx.InsertObject(o)
	d.ctx.Write.IncrementWithObjNr(nr)
	return *types.NewIndirectRef(nr, 0)
}

// update replaces the object ref points to with o in the increment.
func (d *document) update(ref types.IndirectRef, o types.Object) {
	nr := ref.ObjectNumber.Value()
	if e, ok := d.ctx.FindTableEntryLight(nr); ok {
		e.Object = o
	}
	d.ctx.Write.IncrementWithObjNr(nr)
}

// updateCatalog puts the (modified) catalog in the increment.
func (d *document) updateCatalog() {
	d.update(*d.ctx.Root, d.catalog())
}

// write returns the bytes that follow the original ones: the separator,
// then the increment.
func (d *document) write() (tail []byte, err error) {
	// The xref stream writer takes its own object number from the free
	// list; hide the list so it gets a fresh one too.
	if head, ok := d.ctx.FindTableEntryLight(0); ok && head.Free && head.Offset != nil && *head.Offset != 0 {
		saved := *head.Offset
		*head.Offset = 0
		defer func() { *head.Offset = saved }()
	}
	var buf bytes.Buffer
	buf.Write(d.sep)
	if err := guard(func() error { return writeIncrement(d.ctx, &buf) }); err != nil {
		return nil, fmt.Errorf("%w: writing the update: %v", ErrMalformed, err)
	}
	return buf.Bytes(), nil
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
