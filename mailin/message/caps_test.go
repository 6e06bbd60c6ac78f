package message

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parapheur/parapheur/workflow"
)

// TestSubjectIsCapped checks that a huge subject (900 KB: a header of
// more than 1 MB is refused), which every reply and the envelope's mails
// quote, is clipped at the door.
func TestSubjectIsCapped(t *testing.T) {
	subject := "TR: " + strings.Repeat("é", 900_000/2)
	raw := "From: a@org.example\r\nSubject: " + subject + "\r\n\r\nhi\r\n"
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
}
