package pades

import "context"

// Inspect runs the checks Sign makes of its input and returns the page
// count: the gateway refuses at submission what it could not sign later
// (not a PDF, truncated, malformed, encrypted, locked by a certification).
func Inspect(ctx context.Context, in []byte, maxInput int64) (pages int, err error) {
	d, err := open(ctx, in, maxInput)
	if err != nil {
		return 0, err
	}
	return d.ctx.PageCount, nil
}
