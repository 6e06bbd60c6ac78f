package reply

import (
	"strings"
	"testing"

	"github.com/parapheur/parapheur/mailin/message"
)

// FuzzParse reads reply commands from arbitrary reply texts: it must never
// panic, a decline always has a reason, and a command always names who
// sent it.
func FuzzParse(f *testing.F) {
	for _, body := range []string{
		"REFUSER: le montant est faux\r\n\r\nLe lundi 2 novembre, Parapheur a écrit :\r\n> Pour refuser, répondez REFUSER: raison",
		"ANNULER\r\n",
		"decline:   \r\n",
		"Cancel: replaced by v2\r\n> REFUSER: not this one\r\n",
		"Réfuser : accents\r\n",
		"",
	} {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		raw := "From: Marie <marie@partner.example>\r\nTo: parapheur@org.example\r\nSubject: RE: Invitation\r\n" +
			"In-Reply-To: <thread.E1.r1@org.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body
		m, err := message.Parse(strings.NewReader(raw), 1<<20)
		if err != nil {
			return
		}
		cmd, ok, err := Parse(m)
		if !ok || err != nil {
			return
		}
		if cmd.From == "" || cmd.Verb == Decline && strings.TrimSpace(cmd.Reason) == "" {
			t.Fatalf("command %+v from body %q", cmd, body)
		}
	})
}
