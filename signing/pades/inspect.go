package pades

import (
	"context"
	"errors"
	"fmt"

	"github.com/parapheur/parapheur/signing/internal/pdfread"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// Inspect returns the page count of in after reading it as Sign does,
// whichever page the stamp goes on: the gateway refuses at submission what
// it could not sign later (not a PDF, truncated, malformed, encrypted,
// locked by a certification, streams that decompress to more than
// maxInput). The pages counted are the page tree's leaves, not what its
// root's /Count claims; a tree that cannot be walked whole (a loop,
// too deep, a null kid) is refused, and so is one whose /Count entries
// would lead Sign, which descends by them, to another page than the
// walk's, or to none.
func Inspect(ctx context.Context, in []byte, maxInput int64) (pages int, err error) {
	d, err := withDocument(ctx, in, maxInput, func(d *document) (err error) {
		pages, err = d.checkSignable()
		return err
	})
	if d != nil {
		d.f.Release()
	}
	if err != nil {
		return 0, err
	}
	return pages, nil
}

// checkSignable walks the page tree, reads of each page what Sign reads
// to put a stamp there, and adds a signature, invisible, to a document
// that is then thrown away; it returns the page count. Sign finds a page
// by descending the tree by its /Count entries, which the walk checks
// lead to each page it lists: what Sign reads of any page is then what
// was read here.
func (d *document) checkSignable() (int, error) {
	pages, err := d.f.Pages()
	if errors.Is(err, pdfread.ErrPageCounts) {
		return 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err != nil {
		return 0, malformed(err, "page tree")
	}
	if len(pages) == 0 {
		return 0, malformed(nil, "no pages")
	}
	for i, ref := range pages {
		page, _ := d.f.Dict(ref) // read by the walk
		if _, err := d.checkPage(i+1, page); err != nil {
			return 0, err
		}
	}
	return len(pages), d.addSignature(types.Dict{}, 0, 1, nil)
}
