package verify

import (
	"context"
	"fmt"
	"slices"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"

	"github.com/parapheur/parapheur/signing/internal/pdfread"
)

// maxDSSObjects bounds the walk of the validation data, which a hostile
// file could make a long chain.
const maxDSSObjects = 100_000

// unsignedTail reports whether the bytes after end, where the last signed
// range ends, change the document: whether an object defined there is
// neither validation data (ISO 32000-2 §12.8.4.3: the DSS dictionary and
// what it holds, a catalog that differs from the signed one by its /DSS
// alone) nor the streams that carry the update's objects and
// cross-references. A reader adding validation data for long-term checks
// (PAdES B-LT) after the last signature leaves the document as signed; a
// changed page, annotation or document information does not, and no
// signature vouches for it.
func unsignedTail(data []byte, ctx *model.Context, end int64) (bool, error) {
	if end >= int64(len(data)) {
		return false, nil
	}
	dss := validationData(ctx)
	rootNr := -1
	if ctx.Root != nil {
		rootNr = ctx.Root.ObjectNumber.Value()
	}
	catalogChanged := false
	for nr, e := range ctx.Table {
		if e == nil || e.Free || nr == 0 {
			continue
		}
		if off, ok := definedAt(ctx, e); !ok || off < end || dss[nr] {
			continue
		}
		if nr == rootNr {
			catalogChanged = true
			continue
		}
		switch o := e.Object.(type) {
		case types.XRefStreamDict, types.ObjectStreamDict:
			continue
		case types.StreamDict:
			if t := o.Type(); t != nil && (*t == "ObjStm" || *t == "XRef") {
				continue
			}
		}
		return true, nil
	}
	if !catalogChanged {
		return false, nil
	}
	signed, err := pdfread.Read(context.Background(), data[:end], 0)
	if err != nil {
		return false, fmt.Errorf("the signed revision: %w", err)
	}
	before, err := signed.Catalog()
	if err != nil {
		return false, fmt.Errorf("the signed revision's catalog: %w", err)
	}
	after, err := ctx.Catalog()
	if err != nil {
		return false, err
	}
	return !sameBut(before, after, "DSS"), nil
}

// definedAt is the offset of the bytes that define e's object: its own, or
// its object stream's.
func definedAt(ctx *model.Context, e *model.XRefTableEntry) (int64, bool) {
	if e.Compressed {
		if e.ObjectStream == nil {
			return 0, false
		}
		stm, ok := ctx.Table[*e.ObjectStream]
		if !ok || stm == nil || stm.Offset == nil {
			return 0, false
		}
		return *stm.Offset, true
	}
	if e.Offset == nil {
		return 0, false
	}
	return *e.Offset, true
}

// validationData returns the numbers of the objects the catalog's /DSS
// reaches, the DSS dictionary's own included.
func validationData(ctx *model.Context) map[int]bool {
	seen := map[int]bool{}
	root, err := ctx.Catalog()
	if err != nil {
		return seen
	}
	queue := []types.Object{root["DSS"]}
	for len(queue) > 0 && len(seen) < maxDSSObjects {
		o := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if ref, ok := o.(types.IndirectRef); ok {
			nr := ref.ObjectNumber.Value()
			if seen[nr] {
				continue
			}
			seen[nr] = true
			if o, err = ctx.Dereference(ref); err != nil {
				continue
			}
		}
		switch o := o.(type) {
		case types.Dict:
			for _, v := range o {
				queue = append(queue, v)
			}
		case types.Array:
			queue = append(queue, o...)
		case types.StreamDict:
			for _, v := range o.Dict {
				queue = append(queue, v)
			}
		}
	}
	return seen
}

// sameBut reports whether a and b hold the same entries, leaving out the
// keys except.
func sameBut(a, b types.Dict, except ...string) bool {
	keys := func(d types.Dict) []string {
		var ks []string
		for k := range d {
			if !slices.Contains(except, k) {
				ks = append(ks, k)
			}
		}
		slices.Sort(ks)
		return ks
	}
	ka, kb := keys(a), keys(b)
	if !slices.Equal(ka, kb) {
		return false
	}
	for _, k := range ka {
		if a[k] == nil || b[k] == nil {
			if a[k] != b[k] {
				return false
			}
			continue
		}
		if a[k].PDFString() != b[k].PDFString() {
			return false
		}
	}
	return true
}
