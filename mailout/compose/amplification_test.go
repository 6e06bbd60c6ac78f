package compose

import (
	"bytes"
	"strings"
	"testing"
)

// TestRefusalQuotesAClippedSubject checks that the refusal of a mail with a
// 10 MB subject is a mail of a few kilobytes: it once quoted the whole
// subject in the body, twice (text and HTML).
func TestRefusalQuotesAClippedSubject(t *testing.T) {
	c := newComposer(t, testConfig())
	var m *Message
	for _, s := range samples("fr") {
		if s.name == "refusal" {
			m = s.msg
		}
	}
	r := m.Data.(Refusal)
	r.Subject = "Convention " + strings.Repeat("x", 10<<20)
	m.Data = r
	var b bytes.Buffer
	if err := c.Compose(&b, m); err != nil {
		t.Fatal(err)
	}
	if b.Len() > 20_000 {
		t.Fatalf("the refusal of a 10 MB subject is %d bytes", b.Len())
	}
	if !bytes.Contains(b.Bytes(), []byte("Convention xxx")) {
		t.Fatalf("the refusal does not quote the start of the subject:\n%.2000s", b.Bytes())
	}
}
