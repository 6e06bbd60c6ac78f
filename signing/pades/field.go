package pades

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"unicode/utf16"

	"github.com/parapheur/parapheur/signing/internal/pdfread"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// Widget annotation flags (ISO 32000-2 §12.5.3): printed, and locked so
// readers do not let users move the signature.
const widgetFlags = 4 | 128

// AcroForm /SigFlags (ISO 32000-2 §12.7.3): SignaturesExist | AppendOnly.
const sigFlags = 3

// addSignature adds a signature field whose value is a new signature
// dictionary v, with a /Contents placeholder of size bytes, and whose
// widget is on page, showing st (nil for an invisible signature).
func (d *document) addSignature(v types.Dict, size int, page int, st *Stamp) error {
	pageDict, pageRef, view, err := d.widgetPage(page)
	if err != nil {
		return err
	}
	var rect [4]float64
	var ap *types.StreamDict
	if st != nil {
		p := view.place(st.Slot)
		if ap, err = appearance(*st, p); err != nil {
			return err
		}
		rect = p.rect
	}

	// write adds the /ByteRange and /Contents placeholders to v, and
	// records where.
	vRef := d.newObject(v)
	d.sigNr, d.sigSize = vRef.ObjectNumber.Value(), size

	widget := types.Dict{
		"Type":    types.Name("Annot"),
		"Subtype": types.Name("Widget"),
		"FT":      types.Name("Sig"),
		"F":       types.Integer(widgetFlags),
		"Rect":    types.NewNumberArray(rect[0], rect[1], rect[2], rect[3]),
		"V":       vRef,
		"P":       pageRef,
	}
	if ap != nil {
		widget["AP"] = types.Dict{"N": d.newObject(*ap)}
		if view.rotate != 0 {
			// The turn of the appearance, for forms software that
			// redraws it (ISO 32000-2 §12.5.6.19).
			widget["MK"] = types.Dict{"R": types.Integer(view.rotate)}
		}
	}
	widgetRef := d.newObject(widget)
	widget["T"] = types.StringLiteral(fmt.Sprintf("Signature%d", widgetRef.ObjectNumber.Value()))

	// /Annots is not inherited (ISO 32000-2 §7.7.3.4): it is the page's own.
	if inDict, err := d.appendToArray(pageDict, "Annots", widgetRef); err != nil {
		return err
	} else if inDict {
		d.update(pageRef, pageDict)
	}
	return d.addFormField(widgetRef)
}

// widgetPage returns page, found as Page finds it, and how it is shown,
// after reading what addSignature reads of it to put a widget there.
func (d *document) widgetPage(page int) (types.Dict, types.IndirectRef, pageView, error) {
	pageDict, pageRef, err := d.f.Page(page)
	if errors.Is(err, pdfread.ErrNoPage) {
		return nil, pageRef, pageView{}, fmt.Errorf("%w: the page tree has no page %d", ErrNoSuchPage, page)
	} else if err != nil {
		return nil, pageRef, pageView{}, fmt.Errorf("%w: page %d: page tree: %w", ErrMalformed, page, err)
	}
	view, err := d.checkPage(page, pageDict)
	return pageDict, pageRef, view, err
}

// checkPage reads what addSignature reads of page, whose dictionary is
// pageDict, to put a widget there, and returns how the page is shown.
func (d *document) checkPage(page int, pageDict types.Dict) (pageView, error) {
	if pageDict.Type() != nil && *pageDict.Type() != "Page" {
		return pageView{}, fmt.Errorf("%w: page %d is not a page dictionary", ErrMalformed, page)
	}
	if _, _, err := d.array(pageDict, "Annots"); err != nil {
		return pageView{}, err
	}
	view, err := d.view(pageDict)
	if err != nil {
		return pageView{}, fmt.Errorf("page %d: %w", page, err)
	}
	return view, nil
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
	form, err := d.f.Dict(obj)
	if err != nil || form == nil {
		return malformed(err, "/AcroForm is not a dictionary")
	}
	form["SigFlags"] = types.Integer(sigFlags)
	if _, err := d.appendToArray(form, "Fields", field); err != nil {
		return err
	}
	if ref, ok := obj.(types.IndirectRef); ok {
		d.update(ref, form)
	} else {
		d.updateCatalog() // a direct AcroForm lives in the catalog
	}
	return nil
}

// appendToArray appends item to the array at key of dict, creating it if
// missing. An indirect array is updated in place; otherwise dict changes,
// and inDict tells the caller to put dict's owner in the update.
func (d *document) appendToArray(dict types.Dict, key string, item types.Object) (inDict bool, err error) {
	arr, ref, err := d.array(dict, key)
	if err != nil {
		return false, err
	}
	if ref != nil {
		d.update(*ref, append(arr, item))
		return false, nil
	}
	dict[key] = append(arr, item)
	return true, nil
}

// array returns the array at key of dict, nil if there is none, and its
// reference when it is an indirect object.
func (d *document) array(dict types.Dict, key string) (types.Array, *types.IndirectRef, error) {
	obj, found := dict.Find(key)
	if ref, ok := obj.(types.IndirectRef); found && ok {
		arr, err := d.f.Array(ref)
		if err != nil {
			return nil, nil, malformed(err, "/%s is not an array", key)
		}
		return arr, &ref, nil
	}
	if !found || obj == nil {
		return nil, nil, nil
	}
	arr, ok := obj.(types.Array)
	if !ok {
		return nil, nil, fmt.Errorf("%w: /%s is not an array", ErrMalformed, key)
	}
	return arr, nil, nil
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
