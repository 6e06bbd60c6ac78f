package message

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/parapheur/parapheur/workflow/problem"
)

func crlf(s string) string { return strings.ReplaceAll(strings.TrimPrefix(s, "\n"), "\n", "\r\n") }

func TestStripPrefixes(t *testing.T) {
	for in, want := range map[string]string{
		"Re: Convention":                   "Convention",
		"RE : TR: Fwd: Convention":         "Convention",
		"TR\u00a0: Convention":             "Convention",
		"Fw: FW:Convention":                "Convention",
		"Re[2]: AW: WG: Convention":        "Convention",
		"Re(3) : Convention":               "Convention",
		"  re:re:  Convention  ":           "Convention",
		"Convention: annexe 2":             "Convention: annexe 2",
		"Réponse automatique : Invitation": "Réponse automatique : Invitation",
		"Re[x]: Convention":                "Re[x]: Convention",
		"Re:":                              "",
		"RE: [EXT] TR: Convention":         "[EXT] Convention",
		"[EXT] RE: [EXT] TR: Convention":   "[EXT] Convention",
		"[EXT] [SPAM] Fwd: Convention":     "[EXT] [SPAM] Convention",
		"[Projet A] Convention":            "[Projet A] Convention",
		"Re: [Projet A] Convention":        "[Projet A] Convention",
		"[EXT] Re:":                        "[EXT]",
		"[non fermé Re: x":                 "[non fermé Re: x",
		"":                                 "",
	} {
		if got := StripPrefixes(in); got != want {
			t.Errorf("StripPrefixes(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHTMLText(t *testing.T) {
	for _, tt := range []struct{ name, html, want string }{
		{"paragraphs and entities", "<p>Signataire&nbsp;: Marie &lt;m@x&gt;</p><p>A &amp; B</p>", "Signataire : Marie <m@x>\nA & B"},
		{"br and inline tags", "Visa: <b>a@x</b><br>Signataire: <a href='mailto:b@x'>b@x</a>", "Visa: a@x\nSignataire: b@x"},
		{"hidden content", "<html><head><title>T</title><style>p{}</style></head><body><script>x()</script>Hi</body></html>", "Hi"},
		{"white space collapsed", "<div>  a \n  b  </div>\n\n<div>c</div>", "a b\nc"},
		{"empty paragraphs dropped", "<p>a</p><p>&nbsp;</p><p></p><p>b</p>", "a\nb"},
		{"double br leaves a blank line", "a<br><br><br>b<br>c", "a\n\nb\nc"},
		{"blockquote marked as quoted", "<p>mine</p><blockquote><p>theirs</p><blockquote>older</blockquote></blockquote><p>after</p>", "mine\n> theirs\n> > older\nafter"},
		{"pre keeps lines", "<pre>a  b\nc</pre>", "a  b\nc"},
		{"table cells", "<table><tr><td>De :</td><td>Marie</td></tr></table>", "De : Marie"},
		{"unbalanced", "</blockquote></div>text<p>", "text"},
		// The slash means nothing on an HTML element: <title/> opens a title, as in a browser.
		{"self-closing title", "<p>shown</p><title/>not shown", "shown"},
		// An address book's entry: the name linked to its address.
		{"name linked to its address", `<p>Signataire&nbsp;: <a href="mailto:marie@partner.example">Marie Curie</a></p>`, "Signataire : Marie Curie <marie@partner.example>"},
		{"address linked to itself", `<a href="mailto:marie@partner.example">marie@partner.example</a>`, "marie@partner.example"},
		{"mailto with a subject", `DELEGATE: <a href="MAILTO:adjoint@demo.example?subject=x"><b>Pierre</b> Adjoint</a>`, "DELEGATE: Pierre Adjoint <adjoint@demo.example>"},
		{"web link", `<a href="https://org.example">Site</a>`, "Site"},
		{"mailto of two addresses", `<a href="mailto:a@x.example,b@x.example">Équipe</a>`, "Équipe"},
	} {
		if got := HTMLText(tt.html); got != tt.want {
			t.Errorf("%s: HTMLText = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ name, raw, want string }{
		{"no From", "To: a@b.example\n\nhi", "the message has no From header"},
		{"bad From", "From: marie@\n\nhi", `From header "marie@": mail: `},
		{"bad base64", crlf(`
From: a@b.example
Content-Type: multipart/mixed; boundary=x

--x
Content-Type: application/pdf; name=a.pdf
Content-Transfer-Encoding: base64

%%%%notbase64
--x--
`), `part 1 (application/pdf): decoding the content: illegal base64 data`},
		{"truncated", "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx",
			"part 1 (text/plain): decoding the content: the message ends before the closing MIME boundary (unexpected EOF)"},
		// A base64 part cut short is bad base64 in a whole message, not a
		// truncated message.
		{"base64 cut short", "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBE\r\nRg\r\n--x--\r\n",
			"part 1 (application/pdf): decoding the content: illegal base64 data at input byte 6"},
		{"no boundary found", "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\nno parts",
			"the message (multipart/mixed): reading its part 1: the message ends before the closing MIME boundary (multipart: NextPart: EOF)"},
		{"no boundary parameter", "From: a@b.example\r\nContent-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n--b--",
			"the message (multipart/mixed): reading its part 1: multipart: boundary is empty"},
		{"bad header", "From a@b.example\n\nhi", "reading the header: "},
		{"nesting", "From: a@b.example\nContent-Type: message/rfc822\n\n" + strings.Repeat("Content-Type: message/rfc822\n\n", MaxDepth+2), "parts nest deeper than 32 levels"},
		{"too many parts", "From: a@b.example\nContent-Type: multipart/mixed; boundary=b\n\n" + strings.Repeat("--b\n\nx\n", MaxParts) + "--b--\n",
			"the message has more than 1000 MIME parts"},
	} {
		_, err := Parse(strings.NewReader(tt.raw), 1<<20)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Parse error = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

// A header is bounded on its own, as go-message bounds it, within a
// message under the limit.
func TestParseHeaderTooLarge(t *testing.T) {
	raw := "From: a@b.example\r\nX-Pad: " + strings.Repeat("x", maxHeaderBytes) + "\r\n\r\nhi"
	_, err := Parse(strings.NewReader(raw), 2*maxHeaderBytes)
	if err == nil || err.Error() != "reading the header: the header is over the limit of 1048576 bytes" {
		t.Errorf("Parse error = %v, want the header's limit", err)
	}
}

func TestParseTooLarge(t *testing.T) {
	raw := "From: a@b.example\n\n" + strings.Repeat("x", 100)
	if _, err := Parse(strings.NewReader(raw), int64(len(raw))); err != nil {
		t.Errorf("a message of exactly the limit: %v", err)
	}
	_, err := Parse(strings.NewReader(raw), int64(len(raw)-1))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "over the limit of 118 bytes") {
		t.Errorf("over the limit: %v", err)
	}
}

func TestParseParts(t *testing.T) {
	raw := crlf(`
From: a@b.example
Delivered-To: someone@else.example
Delivered-To: <Parapheur+RH@ORG.example>
Message-ID: not-a-msg-id
References: <a@x> broken <b@x>
Content-Type: multipart/mixed; boundary=x

--x
Content-Type: multipart/alternative; boundary=y

--y
Content-Type: text/html; charset=utf-8

<p>html body</p>
--y--
--x
Content-Type: text/plain; name=notes.txt

not the body: it has a name
--x
Content-Type: application/octet-stream;
 name*0*=iso-8859-1''Proc%E8s-;
 name*1*=verbal%20sign%E9.PDF

%PDF-1.4 fake
--x
Content-Type: application/x-download
Content-Disposition: attachment; filename="C:\Users\marie\scan.bin"

%PDF-1.7 sniffed
--x
Content-Type: image/jpeg

nameless inline image
--x--
`)
	m, err := Parse(strings.NewReader(raw), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if m.Text != "html body" {
		t.Errorf("Text = %q", m.Text)
	}
	if m.MessageID != "not-a-msg-id" || strings.Join(m.References, " ") != "a@x broken b@x" {
		t.Errorf("MessageID %q References %q", m.MessageID, m.References)
	}
	if got := m.Detail("parapheur@org.example"); got != "RH" {
		t.Errorf("Detail = %q", got)
	}
	if got := m.Detail("other@org.example"); got != "" {
		t.Errorf("Detail of another gateway = %q", got)
	}
	var docs []string
	for _, d := range m.Documents {
		docs = append(docs, d.Name+"|"+d.ContentType+"|"+string(d.Data))
	}
	if want := "Procès-verbal signé.PDF|application/octet-stream|%PDF-1.4 fake\nscan.bin|application/x-download|%PDF-1.7 sniffed"; strings.Join(docs, "\n") != want {
		t.Errorf("documents = %q, want %q", docs, want)
	}
	if len(m.Ignored) != 1 || m.Ignored[0] != (Attachment{Name: "notes.txt", ContentType: "text/plain", Size: 27}) {
		t.Errorf("ignored = %+v", m.Ignored)
	}
}

func TestParseUnknownCharset(t *testing.T) {
	raw := "From: a@b.example\nSubject: =?x-unknown?Q?caf=E9?=\nContent-Type: text/plain; charset=x-unknown\n\nSignataire: a@b.example\n"
	m, err := Parse(strings.NewReader(raw), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if m.Text != "Signataire: a@b.example" || m.Subject != "=?x-unknown?Q?caf=E9?=" {
		t.Errorf("Text %q Subject %q", m.Text, m.Subject)
	}
}

func TestUnflow(t *testing.T) {
	for _, tt := range []struct {
		in    string
		delsp bool
		want  string
	}{
		{"Signataires: a@b.example, \r\nc@d.example\r\nMerci", false, "Signataires: a@b.example, c@d.example\nMerci"},
		{"Signataires: a@b.example,  \nc@d.example", true, "Signataires: a@b.example, c@d.example"},
		{" From here\n  indented", false, "From here\n indented"},
		{"> quoted \n> more\n>> deeper \nplain", false, "> quoted more\n>> deeper \nplain"},
		{"-- \nsignature", false, "-- \nsignature"},
	} {
		if got := unflow(tt.in, tt.delsp); got != tt.want {
			t.Errorf("unflow(%q, %v) = %q, want %q", tt.in, tt.delsp, got, tt.want)
		}
	}
}

// A mail that cannot be read says why in French too, without the
// decoder's English words, and still in English with them.
func TestParseErrorsInFrench(t *testing.T) {
	for _, tt := range []struct{ name, raw, fr string }{
		{"truncated", "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx",
			"la partie 1 (text/plain) : le contenu ne peut pas être décodé : le message se termine avant la fin de ses parties MIME (il est tronqué)"},
		{"no boundary found", "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\nno parts",
			"le message (multipart/mixed) : sa partie 1 est illisible : le message se termine avant la fin de ses parties MIME (il est tronqué)"},
		{"bad base64", "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n%%%%\r\n--x--\r\n",
			"la partie 1 (application/pdf) : le contenu ne peut pas être décodé"},
		{"base64 cut short", "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBE\r\nRg\r\n--x--\r\n",
			"la partie 1 (application/pdf) : le contenu ne peut pas être décodé"},
		{"no From", "Subject: x\r\n\r\nhi", "le message n'a pas de champ From (l'adresse de son auteur)"},
		{"two authors", "From: a@b.example, c@d.example\r\n\r\nhi", "le champ From nomme 2 adresses (a@b.example, c@d.example) : un message au parapheur doit avoir un seul auteur"},
		{"bad header", "From a@b.example\n\nhi", "l'en-tête du message est illisible"},
	} {
		_, err := Parse(strings.NewReader(tt.raw), 1<<20)
		if got := problem.From(err); got.FR != tt.fr || got.EN != err.Error() {
			t.Errorf("%s: %+v, want French %q and the English error", tt.name, got, tt.fr)
		}
	}
}

// TextOnly reads the sender's text and leaves the attachments undecoded:
// a part that cannot be decoded is no error.
func TestReadBodyTextOnly(t *testing.T) {
	raw := []byte("From: a@b.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nSignataire: m@x.example\r\n" +
		"--x\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n%%%%\r\n--x--\r\n")
	m, err := ReadHeader(raw, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ReadBody(TextOnly); err != nil || m.Text != "Signataire: m@x.example" || len(m.Documents) != 0 {
		t.Fatalf("TextOnly: %v, text %q, %d documents", err, m.Text, len(m.Documents))
	}
	if err := m.ReadBody(AllParts); err == nil {
		t.Error("a second ReadBody did not fail")
	}
	m, _ = ReadHeader(raw, 1<<20)
	if err := m.ReadBody(AllParts); err == nil || !strings.Contains(err.Error(), "decoding the content") {
		t.Errorf("AllParts decodes the attachment: %v", err)
	}
}

// Base64 parts decode as go-message decodes them: lines broken anywhere,
// continuation indents tolerated, a text's charset decoded after the
// transfer encoding, a forwarded message read from its decoded bytes.
func TestParseBase64Parts(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	forwarded := "From: m@x.example\r\nContent-Type: application/pdf; name=in.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64([]byte("%PDF-inner")) + "\r\n"
	raw := crlf(`
From: a@b.example
Content-Type: multipart/mixed; boundary=x

--x
Content-Type: text/plain; charset=windows-1252
Content-Transfer-Encoding: base64

` + b64([]byte("Signataire : Am\xe9lie")) + `
--x
Content-Type: application/pdf; name=a.pdf
Content-Transfer-Encoding: BASE64

JVBE
 Ri0x
	Ljc=
--x
Content-Type: message/rfc822
Content-Transfer-Encoding: base64

` + b64([]byte(forwarded)) + `
--x--
`)
	m, err := Parse(strings.NewReader(raw), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if m.Text != "Signataire : Amélie" {
		t.Errorf("text %q, want the windows-1252 text in UTF-8", m.Text)
	}
	want := []Document{{Name: "a.pdf", ContentType: "application/pdf", Data: []byte("%PDF-1.7")}, {Name: "in.pdf", ContentType: "application/pdf", Data: []byte("%PDF-inner")}}
	if len(m.Documents) != len(want) {
		t.Fatalf("documents %+v, want %+v", m.Documents, want)
	}
	for i, d := range m.Documents {
		if d.Name != want[i].Name || d.ContentType != want[i].ContentType || !bytes.Equal(d.Data, want[i].Data) {
			t.Errorf("document %d: %s %s %q, want %+v", i+1, d.Name, d.ContentType, d.Data, want[i])
		}
	}
}

func TestAncestors(t *testing.T) {
	var long []string
	for i := range MaxAncestors + 5 {
		long = append(long, fmt.Sprintf("m%d@x", i))
	}
	tests := []struct {
		name       string
		references []string
		inReplyTo  []string
		want       []string
	}{
		{"References", []string{"a@x", "b@x"}, []string{"b@x"}, []string{"a@x", "b@x"}},
		{"In-Reply-To alone", nil, []string{"b@x"}, []string{"b@x"}},
		// RFC 5322 §3.6.4: an In-Reply-To of several IDs says nothing of
		// which one is the parent.
		{"In-Reply-To of two", nil, []string{"a@x", "b@x"}, nil},
		{"neither", nil, nil, nil},
		{"long thread: the root and the newest", long, nil, append([]string{"m0@x"}, long[len(long)-MaxAncestors+1:]...)},
	}
	for _, tt := range tests {
		m := &Message{References: tt.references, InReplyTo: tt.inReplyTo}
		got := m.Ancestors()
		if !slices.Equal(got, tt.want) || len(got) > MaxAncestors {
			t.Errorf("%s: Ancestors() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// The text is the first text part's, or the HTML's when the text part has
// nothing in it, as some webmails and phones send.
func TestTextPartOrHTML(t *testing.T) {
	for _, tt := range []struct{ name, plain, want string }{
		{"text part", "Signataire : a@x", "Signataire : a@x"},
		{"a space", " ", "Signataire : b@x"},
		{"blank lines", "\r\n\r\n", "Signataire : b@x"},
	} {
		raw := crlf("From: a@b.example\nContent-Type: multipart/alternative; boundary=y\n\n--y\nContent-Type: text/plain; charset=utf-8\n\n" +
			tt.plain + "\n--y\nContent-Type: text/html; charset=utf-8\n\n<p>Signataire&nbsp;: b@x</p>\n--y--\n")
		m, err := Parse(strings.NewReader(raw), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if m.Text != tt.want {
			t.Errorf("%s: Text = %q, want %q", tt.name, m.Text, tt.want)
		}
	}
}

// TestFileNameOneLine checks that a document's name is one line whatever
// its encoding carried: line breaks (RFC 2231 %0D%0A, an RFC 2047 word)
// would add lines of the sender's choosing to every mail listing the
// document, and a right-to-left override makes "fdp.exe" read "exe.pdf".
func TestFileNameOneLine(t *testing.T) {
	for _, c := range []struct{ param, want string }{
		{`filename*=utf-8''x.pdf%0D%0A%0D%0AURGENT%3A%20log%20in%20at%20evil.example%0D%0A%0D%0AFICHIER%202%20%3A%20y.pdf`,
			"x.pdf URGENT: log in at evil.example FICHIER 2 : y.pdf"},
		{`filename="=?utf-8?q?evil=0D=0ABcc=3A_injected=40evil.example=0D=0A1.pdf?="`, "evil Bcc: injected@evil.example 1.pdf"},
		{`filename*=utf-8''%E2%80%AEfdp.exe`, "fdp.exe"},
		{`filename*=utf-8''a%09%0Bb%E2%80%A8c.pdf`, "a b c.pdf"},
	} {
		raw := crlf("From: a@b.example\nContent-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\nbody\n--x\n" +
			"Content-Type: application/pdf\nContent-Disposition: attachment; " + c.param + "\n\n%PDF-1.4 fake\n--x--\n")
		m, err := Parse(strings.NewReader(raw), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Documents) != 1 || m.Documents[0].Name != c.want {
			t.Errorf("%s: documents %+v, want one named %q", c.param, m.Documents, c.want)
		}
	}
}
