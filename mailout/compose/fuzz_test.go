package compose

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parapheur/parapheur/workflow"
)

// FuzzComposeUserText feeds arbitrary user text (the title, the sender's
// name, a file name, a decline reason) to Compose: it must return an error
// or a message that go-message reads back with the same subject, addressee
// name, file name and reason, and whose header is ASCII.
func FuzzComposeUserText(f *testing.F) {
	for _, s := range [][4]string{
		{"Convention été", "Agnès Dupont", "Annexe financière.pdf", "Montant erroné"},
		{"<script>alert(1)</script>", "Eve \"<b>\"", "../../x.pdf", "line\r\nBcc: victim@example.com"},
		{"=?utf-8?q?=41?=", "=?iso-8859-1?q?caf=E9?=", "a\x00b.pdf", ""},
		{strings.Repeat("très long titre ", 30), strings.Repeat("n", 200), strings.Repeat("é", 300) + ".pdf", "\xff\xfe"},
		{"Re: TR: Fwd:", "", "", "\t"},
		// Past the 998-octet line limit, in one word.
		{strings.Repeat("x", 3000), "\x1d" + strings.Repeat("4", 3000) + "\\", strings.Repeat("y", 3000), strings.Repeat("z", 3000)},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	c, err := New(testConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, title, name, fname, reason string) {
		valid := utf8.ValidString(title) && utf8.ValidString(name) && utf8.ValidString(fname) && utf8.ValidString(reason)

		m := samples("fr")[11].msg // a completion, with attachments
		m.Envelope.Title, m.Envelope.Sender.Name = title, name
		d := m.Data.(Completion)
		d.Files[0].Name = fname
		m.Data = d
		var b bytes.Buffer
		err := c.Compose(&b, m)
		if fname == "" {
			if err == nil || !strings.Contains(err.Error(), "no name") {
				t.Fatalf("an attachment without a name: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		p := parseASCIIHeader(t, b.Bytes())
		if valid {
			want := workflow.Clip(workflow.OneLine("Terminé : "+title), maxSubjectRunes)
			if s, err := p.header.Subject(); err != nil || s != want {
				t.Errorf("subject %q, %v; want %q", s, err, want)
			}
			to, err := p.header.AddressList("To")
			if want := workflow.Clip(workflow.OneLine(name), maxNameRunes); err != nil || len(to) != 1 || to[0].Address != m.Envelope.Sender.Email || to[0].Name != want {
				t.Errorf("To %v, %v; want name %q", to, err, want)
			}
			if len(p.attachments) != 3 || p.attachments[0].Name != fileName(fname) {
				t.Errorf("attachments %+v; want first %q", p.attachments, fileName(fname))
			}
		}

		// A decline and a delegation to the sender quote the reason; the
		// invitation to the delegate quotes it too.
		decline := samples("fr")[6].msg
		decline.Data = Declined{By: "r2", Reason: reason}
		delegation := samples("fr")[13].msg
		delegation.Data = Delegated{By: "r2", Reason: reason}
		invitation := samples("fr")[14].msg
		invitation.Envelope.Recipient("r2").Reason = reason
		for _, m := range []*Message{decline, delegation, invitation} {
			m.Envelope.Title = title
			m.Envelope.Recipient("r2").Name = name
			b.Reset()
			if err := c.Compose(&b, m); err != nil {
				t.Fatalf("Compose %s: %v", m.Data.Kind(), err)
			}
			p = parseASCIIHeader(t, b.Bytes())
			if valid && strings.TrimSpace(reason) != "" {
				for _, line := range strings.Split(lineBreaks.Replace(strings.TrimSpace(reason)), "\n") {
					if !strings.Contains(p.text, strings.TrimRight(line, " \t\r")) {
						t.Errorf("%s: the text does not quote %q:\n%s", m.Data.Kind(), line, p.text)
					}
				}
			}
		}
	})
}

// parseASCIIHeader checks that the header is ASCII and parses the message.
func parseASCIIHeader(t *testing.T, raw []byte) parsed {
	t.Helper()
	header, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for _, c := range header {
		if c >= 0x80 || c == 0 {
			t.Fatalf("byte %#x in the header:\n%s", c, header)
		}
	}
	return parse(t, raw)
}
