package message

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
	"github.com/parapheur/parapheur/mailin/internal/mailcorpus"
)

// addCorpus seeds f with the mails of mailin/testdata.
func addCorpus(f *testing.F) {
	for _, raw := range mailcorpus.Mails(f) {
		f.Add(raw)
	}
}

func FuzzParse(f *testing.F) {
	addCorpus(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(bytes.NewReader(raw), 1<<20)
		if err != nil {
			if m != nil {
				t.Fatalf("Parse returned a message with error %v", err)
			}
			return
		}
		if m.From == nil {
			t.Fatal("no From without an error")
		}
		if StripPrefixes(m.Title) != m.Title {
			t.Errorf("title %q still has a prefix", m.Title)
		}
		for _, d := range m.Documents {
			if d.Name == "" || strings.Contains(d.Name, "/") {
				t.Errorf("document name %q", d.Name)
			}
			if !isPDF(d.ContentType, d.Name, d.Data) {
				t.Errorf("document %q (%s) is not a PDF by any rule", d.Name, d.ContentType)
			}
		}
		for _, a := range m.Ignored {
			if !utf8.ValidString(a.Name) {
				t.Errorf("attachment name %q is not UTF-8", a.Name)
			}
		}
		if strings.Contains(m.Text, "\r") {
			t.Errorf("text keeps a CR: %q", m.Text)
		}
		// Skipping the attachments finds the same sender's text.
		textOnly, err := ReadHeader(raw, 1<<20)
		if err != nil {
			t.Fatalf("ReadHeader fails where Parse succeeds: %v", err)
		}
		if err := textOnly.ReadBody(TextOnly); err != nil || textOnly.Text != m.Text {
			t.Errorf("TextOnly: text %q, %v; want %q as with every part", textOnly.Text, err, m.Text)
		}
	})
}

func FuzzHTMLText(f *testing.F) {
	for _, s := range []string{
		"<p>Signataire&nbsp;: Marie &lt;m@x&gt;</p>", "<blockquote><p>x</p></blockquote>", "<pre>a\nb</pre>",
		"<html><head><title>t</title></head><body>a<br><br>b</body></html>", "</blockquote><title/>x",
		outlookMail, gmailMail,
		`<style>@media screen{.s{display:block}} .w .x{color:#000} p.h,#i{display:none!important}</style><p class="s x h" id=i style="color:#fff">x</p>`,
		`<div style="font:1px/2 a;background:#123 url(x);opacity:50%;color:hsla(0,0%,100%,.5)">x</div>`,
		`<div style="display:none"><table><tr><td></div>x</td></tr></table></div><p hidden>y<p>z`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		text := HTMLText(s)
		for _, line := range strings.Split(text, "\n") {
			if line != strings.TrimRight(line, " \t") && !strings.HasSuffix(line, "> ") {
				t.Errorf("line %q has trailing space", line)
			}
		}
	})
}

func FuzzCSS(f *testing.F) {
	for _, s := range []string{
		"color: #fff; display:\\6e one /* c */ !important", "font: bold 1px/2 Arial; font-size: .3em",
		"background: #123456 url(x.png) no-repeat; background-color: rgba(0 0 0 / 50%)",
		"color: hsl(120deg, 100%, 25%); opacity: 0", "<!-- p.MsoNormal, li.a {margin:0} @media screen {.x{color:red}} @page {size:1pt} -->",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, d := range parseDeclarations(s) {
			if d.property == "" || d.value == "" || d.property != strings.ToLower(d.property) {
				t.Errorf("declaration %+v", d)
			}
			if c, ok := parseColor(d.value); ok {
				for _, v := range []float64{c.r, c.g, c.b, c.a} {
					if !(v >= 0 && v <= 1) {
						t.Errorf("colour %q read as %+v", d.value, c)
					}
				}
				if r := contrast(c.over(white), white); !(r >= 1 && r <= 21) {
					t.Errorf("colour %q: contrast %v with white", d.value, r)
				}
			}
			if px, ok := parseFontSize(d.value, 16); ok && !(px >= 0) {
				t.Errorf("font-size %q read as %v", d.value, px)
			}
		}
		var sheet styleSheet
		sheet.parse(s)
		if len(sheet.rules) > maxStyleRules {
			t.Errorf("%d rules kept, more than %d", len(sheet.rules), maxStyleRules)
		}
	})
}

// FuzzDecodeBase64 checks decodeBase64 against go-message's streaming
// decoder, which Parse used before: it accepts nothing go-message refuses,
// decodes the same bytes, and refuses nothing go-message accepts, except
// padding before the end, which go-message lets through where one of its
// chunks happens to end.
func FuzzDecodeBase64(f *testing.F) {
	for _, s := range []string{"JVBERi0xLjc=", "JVBE\r\nRi0x\r\nLjc=\r\n", "JVBE\r\n Ri0x\r\n\tLjc=", "JVBE\nRg", "QQ==QQ==", "%%%%", "", "QQ=\r\n=", "Q Q = ="} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, encoded []byte) {
		h := gomessage.Header{}
		h.Set("Content-Transfer-Encoding", "base64")
		e, _ := gomessage.New(h, bytes.NewReader(encoded))
		want, wantErr := io.ReadAll(e.Body)
		got, err := decodeBase64(bytes.NewReader(bytes.Clone(encoded)))
		switch {
		case err == nil && wantErr != nil:
			t.Errorf("decoded %q, which go-message refuses: %v", encoded, wantErr)
		case err == nil && !bytes.Equal(got, want):
			t.Errorf("decoded %q as %q, go-message as %q", encoded, got, want)
		case err != nil && wantErr == nil && !bytes.Contains(bytes.TrimRight(encoded, "= \t\r\n"), []byte("=")):
			t.Errorf("refused %q, which go-message decodes: %v", encoded, err)
		}
	})
}
