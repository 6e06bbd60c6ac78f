package reply

import (
	"net/mail"
	"strings"
	"testing"

	"github.com/parapheur/parapheur/mailin/message"
	"github.com/parapheur/parapheur/workflow"
)

// FuzzParse reads reply commands from arbitrary reply texts: it must never
// panic, a decline always has a reason, a delegation always a readable
// address, and a command always names who sent it.
func FuzzParse(f *testing.F) {
	for _, body := range []string{
		"REFUSER: le montant est faux\r\n\r\nLe lundi 2 novembre, Parapheur a écrit :\r\n> Pour refuser, répondez REFUSER: raison",
		"ANNULER\r\n",
		"decline:   \r\n",
		"Cancel: replaced by v2\r\n> REFUSER: not this one\r\n",
		"Réfuser : accents\r\n",
		"DÉLÉGUER: Louise Martin <louise@partner.example>\r\n",
		"delegate: louise@partner.example\r\n> DECLINE: not this one\r\n",
		"Déléguer : Louise <louise@>\r\n",
		"DELEGATE: =?utf-8?q?Ren=C3=A9e?= <\"r e\"@partner.example>\r\n",
		"refuser le document n'est pas le bon\r\n",
		"REFUSER : x\r\nDÉLÉGUER : Paul <paul@partner.example>\r\n",
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
		// A near miss is looked for only where no command was found; it
		// always says how to write the command, in both languages.
		if near, isNear := NearMiss(m); isNear && (near.EN == "" || near.FR == "") {
			t.Fatalf("near miss %+v from body %q", near, body)
		}
		cmd, ok, err := Parse(m)
		if !ok || err != nil {
			return
		}
		if cmd.From == "" || cmd.Verb == Decline && strings.TrimSpace(cmd.Reason) == "" {
			t.Fatalf("command %+v from body %q", cmd, body)
		}
		// A delegate is always an address net/mail writes and reads back
		// the same (a quoted local part stays quoted).
		if cmd.Verb == Delegate {
			a, err := mail.ParseAddress((&mail.Address{Address: cmd.To.Email}).String())
			if err != nil || a.Address != cmd.To.Email {
				t.Fatalf("delegate %+v from body %q: %v", cmd.To, body, err)
			}
		} else if cmd.To != (workflow.Party{}) {
			t.Fatalf("a %s names a delegate %+v", cmd.Verb, cmd.To)
		}
	})
}
