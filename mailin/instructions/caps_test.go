package instructions

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parapheur/parapheur/workflow"
)

// TestUserTextIsCapped checks that the sender's text that mails quote (the
// message, names, the lines and values a refusal quotes) is clipped.
func TestUserTextIsCapped(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	in := Parse("Signataire: " + strings.Repeat("Marie ", 100) + "<marie@partner.example>\n" +
		"Message: " + long + "\nMessage: second line\n" +
		"Visa: " + long + "@\n" +
		"Échéance: " + long + "\n" +
		"Circuit: " + long + "\n")
	if len(in.Steps) != 1 || utf8.RuneCountInString(in.Steps[0].Parties[0].Name) != workflow.MaxNameRunes {
		t.Errorf("steps %+v; want one signer named in %d runes", in.Steps, workflow.MaxNameRunes)
	}
	if n := utf8.RuneCountInString(in.Message); n != workflow.MaxMessageRunes {
		t.Errorf("message of %d runes; want %d", n, workflow.MaxMessageRunes)
	}
	if n := utf8.RuneCountInString(in.Circuit); n != workflow.MaxNameRunes {
		t.Errorf("circuit name of %d runes; want %d", n, workflow.MaxNameRunes)
	}
	in.Resolve(nil, "")
	if len(in.Problems) != 3 {
		t.Fatalf("problems %d; want the address, the date and the circuit", len(in.Problems))
	}
	for _, p := range in.Problems {
		for _, s := range []string{p.Sentence().EN, p.Sentence().FR} {
			if n := utf8.RuneCountInString(s); n > 1000 {
				t.Errorf("a problem of %d runes: %.80q…", n, s)
			}
		}
	}
}
