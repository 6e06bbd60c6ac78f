package certificate

import (
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/sfnt"
)

// regularFont is the Go regular font's character map, parsed once, to
// tell which characters the certificate can draw.
var regularFont = sync.OnceValues(func() (*sfnt.Font, error) { return sfnt.Parse(goregular.TTF) })

// printable makes s drawable with the Go fonts without losing what it
// says: line breaks become "\n", tabs spaces, bytes that are not UTF-8
// U+FFFD, and a character the fonts lack (an emoji, a control character,
// CJK) its code point as [U+1F642]. fpdf draws only the Basic
// Multilingual Plane (a character above it panics in its font subsetter),
// and a missing glyph would print as an empty box.
func printable(s string) string {
	font, err := regularFont()
	if err != nil {
		panic(fmt.Sprintf("certificate: the embedded Go font does not parse: %v", err))
	}
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\r\n", "\n")
	var b strings.Builder
	var buf sfnt.Buffer
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r':
			b.WriteByte('\n')
		case r == '\t':
			b.WriteByte(' ')
		case r <= 0xFFFF && !unicode.IsControl(r) && drawable(font, &buf, r):
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, "[U+%04X]", r)
		}
	}
	return b.String()
}

func drawable(font *sfnt.Font, buf *sfnt.Buffer, r rune) bool {
	if r < utf8.RuneSelf {
		return true // the Go fonts have every printable ASCII character
	}
	i, err := font.GlyphIndex(buf, r)
	return err == nil && i != 0
}
