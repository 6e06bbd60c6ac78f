package pades

import (
	"context"
	"errors"

	"github.com/parapheur/parapheur/signing/internal/pdfread"
)

// Inspect runs the checks Sign makes of its input and returns the page
// count: the gateway refuses at submission what it could not sign later
// (not a PDF, truncated, malformed, encrypted, locked by a certification).
// Beyond what Sign reads, it parses the whole document with pdfcpu: a
// document is accepted only if every object of it can be read, by readers
// and by verify, not just the few a signature touches.
func Inspect(ctx context.Context, in []byte, maxInput int64) (pages int, err error) {
	// Sign's own reading first, for its checks of the cross-reference
	// sections; objects it cannot read alone are the full parse's to judge.
	var se *pdfread.StructureError
	if _, err := open(ctx, in, maxInput, true); err != nil && !errors.As(err, &se) {
		return 0, err
	}
	d, err := open(ctx, in, maxInput, false)
	if err != nil {
		return 0, err
	}
	return d.pages, nil
}
