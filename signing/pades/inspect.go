package pades

import (
	"context"
)

// Inspect returns the page count of in after reading it as Sign does, up
// to what a signature with a stamp on any of its pages reads: the gateway
// refuses at submission exactly what it could not sign later (not a PDF,
// truncated, malformed, encrypted, locked by a certification, a page
// tree that cannot be walked, streams that decompress to more than
// maxInput), and the pages counted are the page tree's leaves, not what
// its /Count claims.
func Inspect(ctx context.Context, in []byte, maxInput int64) (pages int, err error) {
	d, err := withDocument(ctx, in, maxInput, (*document).checkSignable)
	if d != nil {
		d.f.Release()
	}
	if err != nil {
		return 0, err
	}
	return d.pages, nil
}
