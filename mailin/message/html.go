package message

import (
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

// hidden are the elements whose content is not shown.
var hidden = map[string]bool{"head": true, "script": true, "style": true, "title": true, "template": true}

// HTMLText turns an HTML body into plain text: one line per block
// element, white space collapsed as a browser would, and the content of
// <blockquote> (how HTML mail clients quote) prefixed with "> " so it is
// recognised as quoted.
func HTMLText(s string) string {
	z := html.NewTokenizer(strings.NewReader(s))
	var out []string
	var line strings.Builder
	quoteDepth, hiddenDepth, preDepth := 0, 0, 0
	flush := func() {
		text := strings.TrimSpace(line.String())
		if preDepth == 0 {
			text = strings.Join(strings.Fields(text), " ")
		}
		line.Reset()
		if text != "" {
			out = append(out, strings.Repeat("> ", quoteDepth)+text)
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
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			flush()
			return strings.TrimSpace(strings.Join(out, "\n"))
		case html.TextToken:
			if hiddenDepth == 0 {
				text := strings.ReplaceAll(string(z.Text()), "\u00a0", " ")
				if preDepth > 0 {
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
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, _ := z.TagName()
			tag := string(name)
			start := tt == html.StartTagToken
			if tt == html.SelfClosingTagToken && !blocks[tag] {
				continue
			}
			switch {
			case hidden[tag]:
				hiddenDepth = adjust(hiddenDepth, start)
			case tag == "br":
				paragraph()
			case blocks[tag]:
				flush()
				switch {
				case tt == html.SelfClosingTagToken:
				case tag == "blockquote":
					quoteDepth = adjust(quoteDepth, start)
				case tag == "pre":
					preDepth = adjust(preDepth, start)
				}
			case tag == "td" || tag == "th":
				line.WriteByte(' ')
			}
		}
	}
}

// adjust counts an element's nesting depth, never below zero (HTML mail is
// often unbalanced).
func adjust(depth int, start bool) int {
	if start {
		return depth + 1
	}
	return max(depth-1, 0)
}
