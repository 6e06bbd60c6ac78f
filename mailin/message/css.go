package message

import (
	"math"
	"strconv"
	"strings"

	"golang.org/x/image/colornames"
)

// The CSS a mail's HTML carries, read as far as it decides whether text is visible
// (CSS 2.1 and CSS Color Level 4 syntax): display, visibility, opacity, font-size,
// color and background. Anything else, and any value not understood, is ignored, as a
// browser ignores an invalid declaration.

// declaration is one "property: value" of a style attribute or rule.
type declaration struct {
	property, value string
	important       bool
}

// parseDeclarations reads a declaration block ("color: red; display: none"), in order.
// Comments are dropped and escapes decoded first, so that "disp\6cay" or "none/**/" read
// as a browser reads them.
func parseDeclarations(block string) []declaration {
	var decls []declaration
	for _, part := range strings.Split(unescapeCSS(stripComments(block)), ";") {
		property, value, ok := strings.Cut(part, ":")
		if !ok {
			continue
		}
		property = strings.ToLower(strings.TrimSpace(property))
		value = strings.ToLower(strings.TrimSpace(value))
		important := false
		if v, ok := strings.CutSuffix(value, "important"); ok {
			if v, ok := strings.CutSuffix(strings.TrimSpace(v), "!"); ok {
				value, important = strings.TrimSpace(v), true
			}
		}
		if property != "" && value != "" {
			decls = append(decls, declaration{property, value, important})
		}
	}
	return decls
}

// stripComments replaces each /* comment */ by a space; an unclosed one runs to the end.
func stripComments(s string) string {
	if !strings.Contains(s, "/*") {
		return s
	}
	var b strings.Builder
	for {
		before, after, ok := strings.Cut(s, "/*")
		b.WriteString(before)
		if !ok {
			return b.String()
		}
		b.WriteByte(' ')
		_, s, ok = strings.Cut(after, "*/")
		if !ok {
			return b.String()
		}
	}
}

// unescapeCSS decodes the escapes of CSS Syntax §4.3.7: a backslash and up to six hex
// digits (and one white space after them), or a backslash and any other character.
func unescapeCSS(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		j := i + 1
		for j < len(s) && j < i+7 && isHex(s[j]) {
			j++
		}
		if j == i+1 {
			b.WriteByte(s[j])
			i = j
			continue
		}
		n, _ := strconv.ParseUint(s[i+1:j], 16, 32)
		if n == 0 || n > 0x10ffff || n >= 0xd800 && n <= 0xdfff {
			n = 0xfffd
		}
		b.WriteRune(rune(n))
		if j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n') {
			j++
		}
		i = j - 1
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// rgba is a colour, each component from 0 to 1, alpha not premultiplied.
type rgba struct{ r, g, b, a float64 }

var (
	white = rgba{1, 1, 1, 1}
	black = rgba{0, 0, 0, 1}
)

// over is c painted over the opaque colour below.
func (c rgba) over(below rgba) rgba {
	mix := func(x, y float64) float64 { return c.a*x + (1-c.a)*y }
	return rgba{mix(c.r, below.r), mix(c.g, below.g), mix(c.b, below.b), 1}
}

// luminance is the relative luminance of an opaque colour (WCAG 2.x).
func (c rgba) luminance() float64 {
	linear := func(v float64) float64 {
		if v <= 0.04045 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	return 0.2126*linear(c.r) + 0.7152*linear(c.g) + 0.0722*linear(c.b)
}

// contrast is the WCAG 2.x contrast ratio of two opaque colours, from 1 to 21.
func contrast(x, y rgba) float64 {
	lx, ly := x.luminance(), y.luminance()
	return (max(lx, ly) + 0.05) / (min(lx, ly) + 0.05)
}

// parseColor reads a CSS colour: #rgb, #rgba, #rrggbb, #rrggbbaa, rgb()/rgba(), hsl()/hsla(),
// a named colour, transparent, or the system colours Canvas and CanvasText. ok is false for
// anything else (currentcolor, var(), lab()…), whose colour is then unknown.
func parseColor(v string) (c rgba, ok bool) {
	v = strings.TrimSpace(v)
	switch {
	case strings.HasPrefix(v, "#"):
		return parseHexColor(v[1:])
	case v == "transparent":
		return rgba{}, true
	case v == "canvas":
		return white, true
	case v == "canvastext":
		return black, true
	}
	if fn, args, ok := strings.Cut(v, "("); ok && strings.HasSuffix(args, ")") {
		return parseColorFunction(fn, strings.TrimSuffix(args, ")"))
	}
	if named, ok := colornames.Map[v]; ok {
		return rgba{float64(named.R) / 255, float64(named.G) / 255, float64(named.B) / 255, 1}, true
	}
	return rgba{}, false
}

func parseHexColor(hex string) (rgba, bool) {
	for i := 0; i < len(hex); i++ {
		if !isHex(hex[i]) {
			return rgba{}, false
		}
	}
	digit := func(i, width int) float64 {
		n, _ := strconv.ParseUint(hex[i*width:(i+1)*width], 16, 8)
		if width == 1 {
			n *= 17
		}
		return float64(n) / 255
	}
	switch len(hex) {
	case 3, 4:
		c := rgba{digit(0, 1), digit(1, 1), digit(2, 1), 1}
		if len(hex) == 4 {
			c.a = digit(3, 1)
		}
		return c, true
	case 6, 8:
		c := rgba{digit(0, 2), digit(1, 2), digit(2, 2), 1}
		if len(hex) == 8 {
			c.a = digit(3, 2)
		}
		return c, true
	}
	return rgba{}, false
}

// parseColorFunction reads rgb(), rgba(), hsl() and hsla(), with commas or in the
// space-separated form with "/ alpha".
func parseColorFunction(fn, args string) (rgba, bool) {
	fields := strings.FieldsFunc(args, func(r rune) bool { return r == ',' || r == ' ' || r == '/' || r == '\t' })
	if len(fields) != 3 && len(fields) != 4 {
		return rgba{}, false
	}
	alpha := 1.0
	if len(fields) == 4 {
		a, ok := parseNumberOrPercent(fields[3], 1)
		if !ok {
			return rgba{}, false
		}
		alpha = clamp(a)
	}
	switch strings.TrimSpace(fn) {
	case "rgb", "rgba":
		var c [3]float64
		for i := range c {
			v, ok := parseNumberOrPercent(fields[i], 255)
			if !ok {
				return rgba{}, false
			}
			c[i] = clamp(v / 255)
		}
		return rgba{c[0], c[1], c[2], alpha}, true
	case "hsl", "hsla":
		h, err := strconv.ParseFloat(strings.TrimSuffix(fields[0], "deg"), 64)
		s, sok := parseNumberOrPercent(fields[1], 100)
		l, lok := parseNumberOrPercent(fields[2], 100)
		if err != nil || !sok || !lok {
			return rgba{}, false
		}
		r, g, b := hslToRGB(h, clamp(s/100), clamp(l/100))
		return rgba{r, g, b, alpha}, true
	}
	return rgba{}, false
}

// parseNumberOrPercent reads a number, or a percentage of full.
func parseNumberOrPercent(s string, full float64) (float64, bool) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		return v / 100 * full, err == nil && !math.IsNaN(v)
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil && !math.IsNaN(v)
}

func clamp(v float64) float64 { return min(max(v, 0), 1) }

// hslToRGB is CSS Color 4 §7.1's conversion; h in degrees.
func hslToRGB(h, s, l float64) (r, g, b float64) {
	h = math.Mod(h, 360)
	if h < 0 {
		h += 360
	}
	f := func(n float64) float64 {
		k := math.Mod(n+h/30, 12)
		a := s * min(l, 1-l)
		return l - a*max(-1, min(k-3, 9-k, 1))
	}
	return f(0), f(8), f(4)
}

// fontSizeKeywords are the absolute font-size keywords in px (CSS Fonts 3 §3.5, medium 16px).
var fontSizeKeywords = map[string]float64{
	"xx-small": 9, "x-small": 10, "small": 13, "medium": 16, "large": 18, "x-large": 24,
	"xx-large": 32, "xxx-large": 48,
}

// parseFontSize reads a font-size relative to the parent's, in px: px, pt, pc, in, cm, mm,
// q, em, rem, ex, ch, %, a keyword, or a unitless 0. ok is false for what it cannot judge
// (calc(), viewport units…), which leaves the parent's size.
func parseFontSize(v string, parent float64) (px float64, ok bool) {
	if px, ok := fontSizeKeywords[v]; ok {
		return px, true
	}
	switch v {
	case "smaller":
		return parent / 1.2, true
	case "larger":
		return parent * 1.2, true
	case "inherit", "unset":
		return parent, true
	case "initial":
		return 16, true
	}
	units := []struct {
		suffix string
		px     float64
	}{
		{"px", 1}, {"pt", 4.0 / 3}, {"pc", 16}, {"in", 96}, {"cm", 96 / 2.54}, {"mm", 96 / 25.4},
		{"q", 96 / 101.6}, {"rem", 16}, {"em", parent}, {"ex", parent / 2}, {"ch", parent / 2}, {"%", parent / 100},
	}
	for _, u := range units {
		if n, found := strings.CutSuffix(v, u.suffix); found {
			f, err := strconv.ParseFloat(n, 64)
			if err != nil || f < 0 || math.IsNaN(f) {
				return 0, false
			}
			return f * u.px, true
		}
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f == 0 {
		return 0, true
	}
	return 0, false
}

// fontShorthandSize finds the size in a font shorthand ("bold 1px/2 Arial"): the first
// word that is a size, before an optional "/line-height".
func fontShorthandSize(v string, parent float64) (float64, bool) {
	for _, word := range strings.Fields(v) {
		size, _, _ := strings.Cut(word, "/")
		if px, ok := parseFontSize(size, parent); ok && size != "inherit" && size != "initial" && size != "unset" {
			return px, true
		}
	}
	return 0, false
}

// backgroundColor finds the colour in a background shorthand; ok is false when there is
// none (an image alone, or a value not understood).
func backgroundColor(v string) (rgba, bool) {
	if c, ok := parseColor(v); ok {
		return c, true
	}
	depth, start := 0, 0
	for i := 0; i <= len(v); i++ {
		switch {
		case i < len(v) && v[i] == '(':
			depth++
		case i < len(v) && v[i] == ')':
			depth--
		case depth == 0 && (i == len(v) || v[i] == ' ' || v[i] == '\t'):
			if c, ok := parseColor(v[start:i]); ok {
				return c, true
			}
			start = i + 1
		}
	}
	return rgba{}, false
}

// isZeroLength says whether a length is zero (0, 0px, 0em…).
func isZeroLength(v string) bool {
	n := strings.TrimRight(v, "abcdefghijklmnopqrstuvwxyz%")
	f, err := strconv.ParseFloat(n, 64)
	return err == nil && f == 0
}
