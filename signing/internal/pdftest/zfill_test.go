package pdftest

import (
	"bytes"
	"compress/zlib"
	"io"
	"testing"
)

// TestZlibFill inflates what zlibFill makes, which the bombs are made of,
// and compares it with what it stands for, checksum included.
func TestZlibFill(t *testing.T) {
	for _, n := range []int64{0, 5, 1<<20 - 1, 1 << 20, 2<<20 + 7, 4<<20 + 12345} {
		for _, fill := range []byte{0, ' '} {
			z := zlibFill([]byte("head "), fill, n, []byte(" tail"))
			r, err := zlib.NewReader(bytes.NewReader(z))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("%d bytes of %q: %v", n, fill, err)
			}
			want := append(append([]byte("head "), bytes.Repeat([]byte{fill}, int(n))...), " tail"...)
			if !bytes.Equal(got, want) {
				t.Errorf("%d bytes of %q: inflated to %d bytes, not the %d expected", n, fill, len(got), len(want))
			}
		}
	}
}
