package pades

import (
	"bytes"
	"fmt"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
)

// helveticaAvgWidth approximates Helvetica's advance width per character
// (in text space units per unit of font size) to fit lines in the box.
const helveticaAvgWidth = 0.56

// appearance returns the normal appearance stream (a form XObject) of a
// visible signature placed at p: a framed box with one line per non-empty
// field of st, turned against the page's /Rotate so that it reads upright.
func appearance(st Stamp, p placement) (*types.StreamDict, error) {
	w, h := p.w, p.h
	var lines []string
	for _, l := range []string{st.Name, st.Role, st.Date.UTC().Format("2006-01-02 15:04 UTC"), st.Reason} {
		if l != "" {
			lines = append(lines, l)
		}
	}
	const pad = 4.0
	size := min(12, (h-2*pad)/(float64(len(lines))*1.25))
	longest := 0
	for _, l := range lines {
		longest = max(longest, len([]rune(l)))
	}
	size = min(size, (w-2*pad)/(helveticaAvgWidth*float64(longest)))
	size = max(size, 0.5)

	var c bytes.Buffer
	fmt.Fprintf(&c, "q 0.96 0.97 1 rg 0 0 %.2f %.2f re f 0.1 0.2 0.5 RG 1 w 0.5 0.5 %.2f %.2f re S Q\n", w, h, w-1, h-1)
	fmt.Fprintf(&c, "BT 0.05 0.1 0.35 rg /F1 %.2f Tf %.2f TL %.2f %.2f Td\n", size, size*1.25, pad, h-pad-size)
	enc := encoding.ReplaceUnsupported(charmap.Windows1252.NewEncoder())
	for i, l := range lines {
		b, err := enc.Bytes([]byte(l))
		if err != nil {
			return nil, fmt.Errorf("pades: stamp text: %w", err)
		}
		e, _ := types.Escape(string(b))
		if i > 0 {
			c.WriteString("T* ")
		}
		fmt.Fprintf(&c, "(%s) Tj\n", *e)
	}
	c.WriteString("ET\n")

	font := types.Dict{
		"Type":     types.Name("Font"),
		"Subtype":  types.Name("Type1"),
		"BaseFont": types.Name("Helvetica"),
		"Encoding": types.Name("WinAnsiEncoding"),
	}
	sd := types.StreamDict{
		Dict: types.Dict{
			"Type":      types.Name("XObject"),
			"Subtype":   types.Name("Form"),
			"BBox":      types.NewNumberArray(0, 0, w, h),
			"Resources": types.Dict{"Font": types.Dict{"F1": font}, "ProcSet": types.Array{types.Name("PDF"), types.Name("Text")}},
			"Filter":    types.Name("FlateDecode"),
		},
		Content:        c.Bytes(),
		FilterPipeline: []types.PDFFilter{{Name: "FlateDecode"}},
	}
	// The form's box, turned by /Matrix, is fitted to the widget's
	// /Rect (ISO 32000-2 §12.5.5): the turn opposite the page's.
	switch p.rotate {
	case 90:
		sd.Dict["Matrix"] = types.NewNumberArray(0, 1, -1, 0, h, 0)
	case 180:
		sd.Dict["Matrix"] = types.NewNumberArray(-1, 0, 0, -1, w, h)
	case 270:
		sd.Dict["Matrix"] = types.NewNumberArray(0, -1, 1, 0, 0, w)
	}
	if err := sd.Encode(); err != nil {
		return nil, fmt.Errorf("pades: stamp stream: %w", err)
	}
	return &sd, nil
}
