package pdfread

import (
	"bytes"
	"compress/zlib"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/pdfcpu/pdfcpu/pkg/filter"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// TestUnpredictPNG checks the PNG predictor decoding done in place
// against pdfcpu's, on random rows with every row filter, for the widths
// cross-reference streams use and pixels of several sizes.
func TestUnpredictPNG(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range []struct{ colors, bpc, columns int }{{1, 8, 5}, {1, 8, 7}, {1, 8, 1}, {3, 8, 4}, {2, 16, 3}, {1, 4, 9}, {4, 1, 3}} {
		parms := types.Dict{"Predictor": types.Integer(12), "Colors": types.Integer(p.colors), "BitsPerComponent": types.Integer(p.bpc), "Columns": types.Integer(p.columns)}
		rowLen, bpp, ok := flatePNG([]types.PDFFilter{{Name: filter.Flate, DecodeParms: parms}})
		if !ok || rowLen == 0 {
			t.Fatalf("%+v: not taken as a PNG predictor", p)
		}
		data := make([]byte, 50*(rowLen+1))
		for r := range 50 {
			data[r*(rowLen+1)] = byte(r % 5)
			for i := 1; i <= rowLen; i++ {
				data[r*(rowLen+1)+i] = byte(rng.IntN(256))
			}
		}
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write(data)
		zw.Close()
		fl, err := filter.NewFilter(filter.Flate, map[string]int{"Predictor": 12, "Colors": p.colors, "BitsPerComponent": p.bpc, "Columns": p.columns})
		if err != nil {
			t.Fatal(err)
		}
		r, err := fl.Decode(bytes.NewReader(z.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(r)
		got, err := unpredictPNG(bytes.Clone(data), rowLen, bpp)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%+v: %v\ngot  %x\nwant %x", p, err, got, want)
		}
	}
	if _, err := unpredictPNG(make([]byte, 9), 7, 1); err == nil {
		t.Error("a partial row taken")
	}
	if _, err := unpredictPNG([]byte{5, 1, 2}, 2, 1); err == nil {
		t.Error("row filter 5 taken")
	}
}
