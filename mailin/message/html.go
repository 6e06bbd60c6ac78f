package message

import (
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// blocks are the elements that start a new line of text.
var blocks = map[string]bool{
	"p": true, "div": true, "br": true, "tr": true, "li": true, "ul": true, "ol": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "hr": true,
	"table": true, "blockquote": true, "pre": true, "dt": true, "dd": true, "section": true,
	"article": true, "header": true, "footer": true,
}

// unrendered are the elements whose content is never shown.
var unrendered = map[string]bool{
	"head": true, "script": true, "style": true, "title": true, "template": true,
	"iframe": true, "noembed": true, "noframes": true,
}

// void are the elements that have no content and no end tag (HTML §13.1.2).
var void = map[string]bool{
	"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true, "img": true,
	"input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true,
	"basefont": true, "bgsound": true, "frame": true, "keygen": true, "param": true,
}

// scopeBoundaries stop the search for the element an end tag closes, as in HTML's "has an
// element in scope" (§13.2.4.2): a </div> inside a table cell does not close a <div>
// around the table.
var scopeBoundaries = map[string]bool{
	"applet": true, "caption": true, "html": true, "table": true, "td": true, "th": true,
	"marquee": true, "object": true, "template": true,
}

// tableScope stops the search for the element a table's end tag closes (HTML's "has an
// element in table scope").
var tableScope = map[string]bool{"html": true, "table": true, "template": true}

// tableParts are the elements of a table below the cells.
var tableParts = map[string]bool{"tr": true, "tbody": true, "thead": true, "tfoot": true, "colgroup": true}

// implicitlyClosed are, for a start tag, the open elements it ends (HTML §13.2.6.4.7): a
// <p> ends an open <p>, a <td> an open cell, <body> the <head>.
var implicitlyClosed = map[string][]string{
	"li": {"li", "p"}, "dd": {"dd", "dt", "p"}, "dt": {"dd", "dt", "p"},
	"td": {"td", "th"}, "th": {"td", "th"}, "tr": {"tr", "td", "th"},
	"tbody": {"tbody", "thead", "tfoot", "tr", "td", "th"}, "thead": {"tbody", "thead", "tfoot", "tr", "td", "th"},
	"tfoot": {"tbody", "thead", "tfoot", "tr", "td", "th"}, "body": {"head"},
}

// closesP are the start tags that end an open <p>.
var closesP = map[string]bool{
	"address": true, "article": true, "aside": true, "blockquote": true, "center": true,
	"details": true, "dialog": true, "dir": true, "div": true, "dl": true, "fieldset": true,
	"figcaption": true, "figure": true, "footer": true, "form": true, "h1": true, "h2": true,
	"h3": true, "h4": true, "h5": true, "h6": true, "header": true, "hgroup": true, "hr": true,
	"main": true, "menu": true, "nav": true, "ol": true, "p": true, "pre": true, "section": true,
	"summary": true, "table": true, "ul": true,
}

// maxOpenElements bounds the elements HTMLText keeps open: a mail nesting deeper is
// hostile or broken, and the rest of it is not read rather than read wrong (as after
// too much style, see styleSheet).
const maxOpenElements = 512

// Text is hidden, and not read, when its contrast ratio with its background (WCAG 2.x) is
// below minContrast, or its font smaller than minFontPx. For scale: WCAG asks 4.5:1 of body
// text, and light grey #ccc on white, still read, is 1.6:1.
const (
	minContrast = 1.5
	minFontPx   = 4
)

// rendering is how an element shows its text, as far as HTMLText follows CSS.
type rendering struct {
	tag string
	// none: display:none (or the hidden attribute, or an unrendered element) here or
	// above: no text and no line breaks.
	none bool
	// invisible: visibility:hidden, inherited, and undone by visibility:visible below.
	invisible bool
	fontPx    float64
	// color is the text colour, background the opaque colour under the element. Either
	// is unknown (known false) after a value HTMLText cannot judge: text is then not
	// hidden for its colour.
	color, background           rgba
	colorKnown, backgroundKnown bool
	// opacity is the product of the element's and its ancestors': it fades the text.
	opacity              float64
	quoteDepth, preDepth int
	// unrendered: inside an element never shown (head, script…), whose text is no
	// hidden instruction.
	unrendered bool
	// mailto is the address of an <a href="mailto:…"> element, and textStart
	// where its text starts in the line: htmlText adds the address after a
	// name linked to it.
	mailto    string
	textStart int
}

// visible says whether text in r is shown.
func (r *rendering) visible() bool {
	if r.none || r.invisible || r.fontPx < minFontPx {
		return false
	}
	if r.colorKnown && r.backgroundKnown {
		c := r.color
		c.a *= r.opacity
		return contrast(c.over(r.background), r.background) >= minContrast
	}
	return true
}

// child is the rendering of an element tag with attributes attrs inside r, styled by its
// presentational attributes, the rules of the mail's style sheet and its style attribute.
func (r *rendering) child(tag string, attrs map[string]string, sheet *styleSheet) rendering {
	c := *r
	c.tag = tag
	switch tag {
	case "blockquote":
		c.quoteDepth++
	case "pre":
		c.preDepth++
	case "small", "sub", "sup":
		c.fontPx /= 1.2
	}
	if unrendered[tag] {
		c.none, c.unrendered = true, true
	}
	_, hiddenAttr := attrs["hidden"]
	// Presentational attributes come first: any CSS overrides them.
	if v, ok := attrs["bgcolor"]; ok {
		c.apply(declaration{property: "background-color", value: strings.ToLower(v)}, r)
	}
	if v, ok := attrs["color"]; ok && tag == "font" {
		c.apply(declaration{property: "color", value: strings.ToLower(v)}, r)
	}
	if v, ok := attrs["text"]; ok && tag == "body" {
		c.apply(declaration{property: "color", value: strings.ToLower(v)}, r)
	}
	var zeroBox, overflowHidden bool
	decls := sheet.declarations(tag, attrs)
	for _, d := range decls {
		if d.uncertain {
			continue
		}
		switch d.property {
		case "display":
			hiddenAttr = false // any display overrides the hidden attribute
		case "height", "max-height", "width", "max-width", "line-height":
			zeroBox = zeroBox || isZeroLength(d.value)
		case "overflow", "overflow-x", "overflow-y":
			overflowHidden = d.value == "hidden" || d.value == "clip"
		}
		c.apply(d.declaration, r)
	}
	if hiddenAttr || zeroBox && overflowHidden {
		c.none = true
	}
	for _, d := range decls {
		if !d.uncertain {
			continue
		}
		trial := c
		trial.apply(d.declaration, r)
		if c.visible() && !trial.visible() {
			c = trial
		}
	}
	return c
}

// apply sets what declaration d says of c, an element inside parent.
func (c *rendering) apply(d declaration, parent *rendering) {
	switch d.property {
	case "display":
		c.none = parent.none || c.unrendered || d.value == "none"
	case "mso-hide":
		if d.value == "all" { // Outlook's own display:none
			c.none = true
		}
	case "visibility":
		switch d.value {
		case "hidden", "collapse":
			c.invisible = true
		case "visible":
			c.invisible = false
		}
	case "opacity":
		if o, ok := parseNumberOrPercent(d.value, 1); ok {
			c.opacity = parent.opacity * clamp(o)
		}
	case "font-size":
		if px, ok := parseFontSize(d.value, parent.fontPx); ok {
			c.fontPx = px
		}
	case "font":
		if px, ok := fontShorthandSize(d.value, parent.fontPx); ok {
			c.fontPx = px
		}
	case "color":
		switch d.value {
		case "inherit", "unset":
			c.color, c.colorKnown = parent.color, parent.colorKnown
		case "initial":
			c.color, c.colorKnown = black, true
		default:
			c.color, c.colorKnown = parseColor(d.value)
		}
	case "background", "background-color":
		switch bg, ok := backgroundColor(d.value); {
		case ok:
			c.background, c.backgroundKnown = bg.over(parent.background), parent.backgroundKnown
		case d.value == "inherit" || d.value == "none" && d.property == "background":
			// no colour of its own: the parent's shows through
		default:
			c.backgroundKnown = false // an image, or a colour not understood
		}
	case "background-image":
		if d.value != "none" {
			c.backgroundKnown = false
		}
	}
}

// HTMLText turns an HTML body into plain text as a reader sees it: one line per block
// element, white space collapsed as a browser would, and the content of <blockquote> (how
// HTML mail clients quote) prefixed with "> " so it is recognised as quoted. Text a reader
// does not see is left out, so that instructions cannot hide in a mail: display:none (and
// Outlook's mso-hide:all, and the hidden attribute), visibility:hidden, a zero-size box
// with overflow:hidden, a font under 4px, and a colour too close to its background (see
// minContrast), from style attributes, <font> and bgcolor attributes, and the simple rules
// of <style> elements (see styleSheet).
func HTMLText(s string) string {
	text, _ := htmlText(s)
	return text
}

// htmlText is HTMLText, and whether any text was left out as hidden.
func htmlText(s string) (text string, hid bool) {
	z := html.NewTokenizer(strings.NewReader(s))
	var out []string
	var line strings.Builder
	root := rendering{fontPx: 16, color: black, colorKnown: true, background: white, backgroundKnown: true, opacity: 1}
	open := []rendering{root}
	top := func() *rendering { return &open[len(open)-1] }
	sheet := &styleSheet{}
	overflowed := false // more than maxOpenElements were open: the rest is not read, nor after sheet.overflow
	flush := func() {
		text := strings.TrimSpace(line.String())
		if top().preDepth == 0 {
			text = strings.Join(strings.Fields(text), " ")
		}
		line.Reset()
		if text != "" {
			out = append(out, strings.Repeat("> ", top().quoteDepth)+text)
		}
	}
	// paragraph ends the current line and, on a line already empty,
	// leaves a blank one, as <br><br> does in a browser.
	paragraph := func() {
		if strings.TrimSpace(line.String()) == "" && len(out) > 0 && out[len(out)-1] != "" {
			out = append(out, "")
		}
		flush()
	}
	// closeTo closes the innermost open tag, and every element inside it, unless a scope
	// boundary comes first; it says whether it found one.
	closeTo := func(tag string, boundaries map[string]bool) bool {
		for i := len(open) - 1; i > 0; i-- {
			switch {
			case open[i].tag == tag:
				open = open[:i]
				return true
			case boundaries[open[i].tag]:
				return false
			}
		}
		return false
	}
	for {
		tt := z.Next()
		if (overflowed || sheet.overflow) && tt != html.ErrorToken {
			continue
		}
		switch tt {
		case html.ErrorToken:
			flush()
			return strings.TrimSpace(strings.Join(out, "\n")), hid
		case html.TextToken:
			r := top()
			if r.tag == "style" {
				sheet.parse(string(z.Text()))
			}
			if !r.visible() {
				if !r.unrendered && strings.TrimSpace(string(z.Text())) != "" {
					hid = true
				}
				continue
			}
			text := strings.ReplaceAll(string(z.Text()), "\u00a0", " ")
			if r.preDepth > 0 {
				lines := strings.Split(text, "\n")
				for i, l := range lines {
					if i > 0 {
						flush()
					}
					line.WriteString(l)
				}
				continue
			}
			line.WriteString(text)
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			attrs := map[string]string{}
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				if _, dup := attrs[string(k)]; !dup { // the first of duplicates counts
					attrs[string(k)] = string(v)
				}
			}
			for _, closed := range implicitlyClosed[tag] {
				closeTo(closed, scopeBoundaries)
			}
			if closesP[tag] {
				closeTo("p", scopeBoundaries)
			}
			// The trailing slash of <div/> means nothing in HTML: it opens a div.
			if void[tag] {
				if top().child(tag, attrs, sheet).none {
					continue
				}
				if tag == "br" {
					paragraph()
				} else if blocks[tag] {
					flush()
				}
				continue
			}
			r := top().child(tag, attrs, sheet)
			if sheet.overflow {
				continue
			}
			if tag == "a" {
				r.mailto, r.textStart = mailtoAddress(attrs["href"]), line.Len()
			}
			if blocks[tag] && !r.none {
				flush()
			}
			if (tag == "td" || tag == "th") && !r.none {
				line.WriteByte(' ')
			}
			if len(open) > maxOpenElements {
				overflowed = true
				continue
			}
			open = append(open, r)
		case html.EndTagToken:
			name, _ := z.TagName()
			tag := string(name)
			if tag == "br" { // </br> is a <br> (HTML §13.2.6.4.7)
				if !top().none {
					paragraph()
				}
				continue
			}
			boundaries := scopeBoundaries
			if scopeBoundaries[tag] || tableParts[tag] {
				boundaries = tableScope
			}
			shown := !top().none
			if a := top(); tag == "a" && a.tag == "a" && a.mailto != "" && a.visible() && line.Len() >= a.textStart &&
				!strings.Contains(line.String()[a.textStart:], "@") {
				// A name linked to its address, as mail clients write an
				// address book's entry: the address is what was meant.
				line.WriteString(" <" + a.mailto + ">")
			}
			switch {
			case blocks[tag] && shown:
				flush()
			case (tag == "td" || tag == "th") && shown:
				line.WriteByte(' ')
			}
			closeTo(tag, boundaries)
		}
	}
}

// mailtoAddress is the address of a mailto: link (RFC 6068) with a single
// address, or "".
func mailtoAddress(href string) string {
	const scheme = "mailto:"
	href = strings.TrimSpace(href)
	if len(href) < len(scheme) || !strings.EqualFold(href[:len(scheme)], scheme) {
		return ""
	}
	rest, _, _ := strings.Cut(href[len(scheme):], "?")
	addr, err := url.PathUnescape(rest)
	if err != nil || strings.Count(addr, "@") != 1 || strings.ContainsAny(addr, ",;<> \t\r\n\"") {
		return ""
	}
	return addr
}
