package pdftest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
)

// Update appends to pdf an incremental update (ISO 32000-2 §7.5.6) that
// writes the objects, numbered from the file's /Size on, a new /Info
// when info is one of them (its index), and, when catalog is not empty,
// the document catalog again with catalog's entries added to its own
// (where NEW names the first of objs).
func Update(t *testing.T, pdf []byte, objs []string, info int, catalog string) []byte {
	t.Helper()
	ctx, err := api.ReadContext(bytes.NewReader(pdf), model.NewDefaultConfiguration())
	if err != nil {
		t.Fatal(err)
	}
	prev := bytes.LastIndex(pdf, []byte("startxref"))
	prevXRef, err := strconv.Atoi(strings.Fields(string(pdf[prev+len("startxref"):]))[0])
	if err != nil {
		t.Fatal(err)
	}
	out := append(bytes.Clone(pdf), '\n')
	size := *ctx.Size
	var entries []string
	for i, o := range objs {
		entries = append(entries, fmt.Sprintf("%d 1\n%010d 00000 n \n", size+i, len(out)))
		out = fmt.Appendf(out, "%d 0 obj\n%s\nendobj\n", size+i, o)
	}
	trailer := fmt.Sprintf("/Size %d /Root %d 0 R /Prev %d", size+len(objs), ctx.Root.ObjectNumber.Value(), prevXRef)
	if info >= 0 {
		trailer += fmt.Sprintf(" /Info %d 0 R", size+info)
	}
	if catalog != "" {
		root, err := ctx.Catalog()
		if err != nil {
			t.Fatal(err)
		}
		nr := ctx.Root.ObjectNumber.Value()
		entries = append(entries, fmt.Sprintf("%d 1\n%010d 00000 n \n", nr, len(out)))
		d := root.PDFString()
		catalog = strings.ReplaceAll(catalog, "NEW", fmt.Sprint(size))
		out = fmt.Appendf(out, "%d 0 obj\n%s %s>>\nendobj\n", nr, d[:len(d)-2], catalog)
	}
	xref := len(out)
	out = fmt.Appendf(out, "xref\n0 1\n0000000000 65535 f \n%strailer\n<<%s>>\nstartxref\n%d\n%%%%EOF\n", strings.Join(entries, ""), trailer, xref)
	return out
}
