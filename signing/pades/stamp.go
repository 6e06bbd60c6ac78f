package pades

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"

	"github.com/pdfcpu/pdfcpu/pkg/font"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/unicode/norm"
)

// stampFont is the mark's font: a standard font every reader has, in
// WinAnsiEncoding (Windows-1252), so the mark embeds no font file.
const stampFont = "Helvetica"

// winAnsi writes s in Windows-1252 for the mark's font. A letter the
// encoding lacks is written as its base letter (ư as u, ż as z, Ł as L),
// so that a name is never shown with letters missing; anything else it
// lacks becomes "?". The signature's own entries and certificate keep the
// exact name.
func winAnsi(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if b, ok := charmap.Windows1252.EncodeRune(r); ok {
			out = append(out, b)
			continue
		}
		base := '?'
		if folded, ok := unfolded[r]; ok {
			base = folded
		} else if d := []rune(norm.NFD.String(string(r))); len(d) > 1 && !unicode.Is(unicode.Mn, d[0]) {
			base = d[0]
		}
		if b, ok := charmap.Windows1252.EncodeRune(base); ok {
			out = append(out, b)
		} else {
			out = append(out, '?')
		}
	}
	return out
}

// unfolded are the Latin letters with a stroke or another mark that
// Unicode does not decompose, by their base letter.
var unfolded = map[rune]rune{
	'Ł': 'L', 'ł': 'l', 'Đ': 'D', 'đ': 'd', 'Ħ': 'H', 'ħ': 'h', 'ı': 'i',
	'Ŧ': 'T', 'ŧ': 't', 'Ɨ': 'I', 'ɨ': 'i', 'Ƶ': 'Z', 'ƶ': 'z',
}

// textWidth is the width of WinAnsi text in the mark's font at size 1.
func textWidth(b []byte) float64 {
	w, err := font.TextWidthFloat(string(b), stampFont, 1)
	if err != nil { // a standard font's metrics are built in
		panic(fmt.Sprintf("pades: %s metrics: %v", stampFont, err))
	}
	return w
}

// appearance returns the normal appearance stream (a form XObject) of a
// visible signature placed at p: a framed box with one line per non-empty
// field of st, turned against the page's /Rotate so that it reads upright.
func appearance(st Stamp, p placement) (*types.StreamDict, error) {
	w, h := p.w, p.h
	var lines [][]byte
	for _, l := range []string{st.Name, st.Role, st.Date.UTC().Format("2006-01-02 15:04 UTC"), st.Reason} {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, winAnsi(l))
		}
	}
	const pad = 4.0
	size := min(12, (h-2*pad)/(float64(len(lines))*1.25))
	widest := 0.0
	for _, l := range lines {
		widest = max(widest, textWidth(l))
	}
	size = min(size, (w-2*pad)/widest)
	size = max(size, 0.5)

	var c bytes.Buffer
	fmt.Fprintf(&c, "q 0.96 0.97 1 rg 0 0 %.2f %.2f re f 0.1 0.2 0.5 RG 1 w 0.5 0.5 %.2f %.2f re S Q\n", w, h, w-1, h-1)
	fmt.Fprintf(&c, "BT 0.05 0.1 0.35 rg /F1 %.2f Tf %.2f TL %.2f %.2f Td\n", size, size*1.25, pad, h-pad-size)
	for i, l := range lines {
		e, _ := types.Escape(string(l))
		if i > 0 {
			c.WriteString("T* ")
		}
		fmt.Fprintf(&c, "(%s) Tj\n", *e)
	}
	c.WriteString("ET\n")

	font := types.Dict{
		"Type":     types.Name("Font"),
		"Subtype":  types.Name("Type1"),
		"BaseFont": types.Name(stampFont),
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
