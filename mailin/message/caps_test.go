package message

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parapheur/parapheur/workflow"
)

// TestSubjectIsCapped checks that a huge subject (900 KB: a header of
// more than 1 MB is refused) and the sender's name, which every reply and
// the envelope's mails quote, are clipped at the door.
func TestSubjectIsCapped(t *testing.T) {
	subject := "TR: " + strings.Repeat("é", 900_000/2)
	raw := "From: =?utf-8?q?" + strings.Repeat("Agn=C3=A8s_", 10_000) + "?= <a@org.example>\r\nSubject: " + subject + "\r\n\r\nhi\r\n"
	m, err := Parse(strings.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if n := utf8.RuneCountInString(m.Subject); n != workflow.MaxTitleRunes || !strings.HasPrefix(m.Subject, "TR: éé") || !strings.HasSuffix(m.Subject, "é…") {
		t.Errorf("subject of %d runes %.20q…; want %d runes", n, m.Subject, workflow.MaxTitleRunes)
	}
	if n := utf8.RuneCountInString(m.Title); n > workflow.MaxTitleRunes || !strings.HasPrefix(m.Title, "éé") {
		t.Errorf("title of %d runes %.20q…; want at most %d", n, m.Title, workflow.MaxTitleRunes)
	}
	if n := utf8.RuneCountInString(m.From.Name); n != workflow.MaxNameRunes || !strings.HasPrefix(m.From.Name, "Agnès Agnès") || m.From.Address != "a@org.example" {
		t.Errorf("From %.40q… of %d runes, %s; want the name in %d runes", m.From.Name, n, m.From.Address, workflow.MaxNameRunes)
	}
}
