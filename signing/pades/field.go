package pades

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// Widget annotation flags (ISO 32000-2 §12.5.3): printed, and locked so
// readers do not let users move the signature.
const widgetFlags = 4 | 128

// AcroForm /SigFlags (ISO 32000-2 §12.7.3): SignaturesExist | AppendOnly.
const sigFlags = 3

// addSignature adds a signature field whose value is a new signature
// dictionary v, with a /Contents placeholder of size bytes, and whose
// widget is on page with appearance ap (nil for an invisible signature).
func (d *document) addSignature(v types.Dict, size int, page int, rect [4]float64, ap *types.StreamDict) error {
	if err := d.ctx.EnsurePageCount(); err != nil {
		return fmt.Errorf("%w: page tree: %v", ErrMalformed, err)
	}
	if page < 1 || page > d.ctx.PageCount {
		return fmt.Errorf("%w: page %d, the document has %d", ErrNoSuchPage, page, d.ctx.PageCount)
	}
	pageDict, pageRef, _, err := d.ctx.PageDict(page, false)
	if err != nil || pageRef == nil {
		return fmt.Errorf("%w: page %d: %v", ErrMalformed, page, err)
	}
	if _, kids := pageDict.Find("Kids"); kids || pageDict.Type() != nil && *pageDict.Type() != "Page" {
		return fmt.Errorf("%w: page %d is not a page dictionary", ErrMalformed, page)
	}

	// pdfcpu writes the placeholders at fixed widths and records where.
	v["ByteRange"] = types.Array{types.Integer(0), types.Integer(0), types.Integer(0), types.Integer(0)}
	v["Contents"] = types.HexLiteral(strings.Repeat("0", 2*size))
	vRef := d.newObject(v)

	widget := types.Dict{
		"Type":    types.Name("Annot"),
		"Subtype": types.Name("Widget"),
		"FT":      types.Name("Sig"),
		"F":       types.Integer(widgetFlags),
		"Rect":    types.NewNumberArray(rect[0], rect[1], rect[2], rect[3]),
		"V":       vRef,
		"P":       *pageRef,
	}
	if ap != nil {
		widget["AP"] = types.Dict{"N": d.newObject(*ap)}
	}
	widgetRef := d.newObject(widget)
	widget["T"] = types.StringLiteral(fmt.Sprintf("Signature%d", widgetRef.ObjectNumber.Value()))

	if err := d.appendToArray(pageDict, *pageRef, "Annots", widgetRef); err != nil {
		return err
	}
	return d.addFormField(widgetRef)
}

// addFormField lists field in the AcroForm, creating the AcroForm when the
// document has none and keeping every existing entry (/Fields, /DR, /DA,
// /NeedAppearances...) otherwise.
func (d *document) addFormField(field types.IndirectRef) error {
	root := d.catalog()
	obj, found := root.Find("AcroForm")
	if !found || obj == nil {
		form := types.Dict{"Fields": types.Array{field}, "SigFlags": types.Integer(sigFlags)}
		root["AcroForm"] = d.newObject(form)
		d.updateCatalog()
		return nil
	}
	form, err := d.ctx.DereferenceDict(obj)
	if err != nil || form == nil {
		return fmt.Errorf("%w: /AcroForm is not a dictionary", ErrMalformed)
	}
	form["SigFlags"] = types.Integer(sigFlags)
	var formRef types.IndirectRef
	if ref, ok := obj.(types.IndirectRef); ok {
		formRef = ref
	} else {
		formRef = *d.ctx.Root // a direct AcroForm lives in the catalog
	}
	if err := d.appendToArray(form, formRef, "Fields", field); err != nil {
		return err
	}
	if formRef == *d.ctx.Root {
		d.updateCatalog()
	} else {
		d.update(formRef, form)
	}
	return nil
}

// appendToArray appends item to the array at key of dict (stored in object
// owner), creating it if missing; an indirect array is updated in place,
// leaving owner unchanged.
func (d *document) appendToArray(dict types.Dict, owner types.IndirectRef, key string, item types.Object) error {
	obj, found := dict.Find(key)
	if ref, ok := obj.(types.IndirectRef); found && ok {
		arr, err := d.ctx.DereferenceArray(ref)
		if err != nil {
			return fmt.Errorf("%w: /%s is not an array", ErrMalformed, key)
		}
		d.update(ref, append(arr, item))
		return nil
	}
	var arr types.Array
	if found && obj != nil {
		a, ok := obj.(types.Array)
		if !ok {
			return fmt.Errorf("%w: /%s is not an array", ErrMalformed, key)
		}
		arr = a
	}
	dict[key] = append(arr, item)
	d.update(owner, dict)
	return nil
}

// textString encodes s as a PDF text string: a literal when it is plain
// ASCII, UTF-16BE with a byte order mark otherwise.
func textString(s string) types.Object {
	ascii := true
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			ascii = false
			break
		}
	}
	if ascii {
		e, _ := types.Escape(s)
		return types.StringLiteral(*e)
	}
	var b bytes.Buffer
	b.Write([]byte{0xfe, 0xff})
	for _, u := range utf16.Encode([]rune(s)) {
		b.WriteByte(byte(u >> 8))
		b.WriteByte(byte(u))
	}
	return types.HexLiteral(hex.EncodeToString(b.Bytes()))
}

// writeIncrement writes ctx's pending increment to w.
func writeIncrement(ctx *model.Context, w *bytes.Buffer) error {
	return api.WriteIncrement(ctx, w)
}
