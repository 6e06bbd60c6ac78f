package reply

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-message/mail"

	"github.com/parapheur/parapheur/mailin/message"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/problem"
)

func TestParse(t *testing.T) {
	from := &mail.Address{Name: "Marie", Address: "marie@partner.example"}
	thread := &message.Message{From: from, InReplyTo: []string{"inv@org.example"}, References: []string{"a@x", "inv@org.example", "b@x"}}
	for _, tt := range []struct {
		name, text string
		want       *Command
		err        string
	}{
		{"decline FR", "REFUSER: le montant est faux", &Command{Verb: Decline, Reason: "le montant est faux"}, ""},
		{"decline with French space and case", "Bonjour,\n  refuser : trop cher\nMarie", &Command{Verb: Decline, Reason: "trop cher"}, ""},
		{"decline EN", "Decline: wrong amount", &Command{Verb: Decline, Reason: "wrong amount"}, ""},
		{"cancel alone", "ANNULER\n\nLe lun. 2 nov. 2026, Parapheur a écrit :\n> REFUSER: x", &Command{Verb: Cancel}, ""},
		{"cancel with reason", "Cancel: sent by mistake", &Command{Verb: Cancel, Reason: "sent by mistake"}, ""},
		// Two commands: neither is applied, since the second would be
		// dropped unheard and the first may not be undone (a black-box run
		// declined with "REFUSER" and lost the "DÉLÉGUER" below it).
		{"two commands", "annuler\nREFUSER: x", nil, `"annuler" and "REFUSER: x": a reply carries one command`},
		{"two commands apart", "REFUSER : mauvais document\n\nDÉLÉGUER : Paul Durand <paul@partner.example>\n\nJean", nil,
			`"REFUSER : mauvais document" and "DÉLÉGUER : Paul Durand <paul@partner.example>": a reply carries one command`},
		{"decline with the reason below", "REFUSER :\nLe montant de l'article 4\nest faux.\n\nCordialement,\nMarie",
			&Command{Verb: Decline, Reason: "Le montant de l'article 4\nest faux."}, ""},
		{"decline with the reason below, up to a command", "Decline:\nwrong amount\nCANCEL", nil, `"Decline:" and "CANCEL": a reply carries one command`},
		{"decline with a blank line below", "REFUSER:\n\nle montant", nil, `"REFUSER:": give the reason for declining after the colon`},
		// A reason written below the word is the cancellation's, as a
		// decline's is (a black-box run lost "ANNULER\nLe partenaire a changé
		// d'avis."); a blank line ends it, before a signature.
		{"cancel with the reason below", "ANNULER\nLe partenaire a changé d'avis.\n\nJean",
			&Command{Verb: Cancel, Reason: "Le partenaire a changé d'avis."}, ""},
		{"cancel with a blank line below", "ANNULER\n\nJean", &Command{Verb: Cancel}, ""},
		{"decline without reason", "REFUSER", nil, `"REFUSER": give the reason for declining after the colon`},
		{"decline without reason, in French", "REFUSER", nil, "« REFUSER » : donnez la raison du refus après les deux-points"},
		{"decline with empty reason", "Refuser :  ", nil, `"Refuser :": give the reason for declining after the colon`},
		{"delegate FR", "DÉLÉGUER: Louise Martin <louise@partner.example>",
			&Command{Verb: Delegate, To: workflow.Party{Name: "Louise Martin", Email: "louise@partner.example"}}, ""},
		{"delegate without accent, lower case, French space, bare address", "Bonjour,\n  deleguer : louise@partner.example\nMarie",
			&Command{Verb: Delegate, To: workflow.Party{Email: "louise@partner.example"}}, ""},
		{"delegate EN with a quoted name", `Delegate: "Martin, Louise" <louise@partner.example>`,
			&Command{Verb: Delegate, To: workflow.Party{Name: "Martin, Louise", Email: "louise@partner.example"}}, ""},
		{"delegate with an encoded name", "DELEGATE: =?utf-8?q?Ren=C3=A9e?= <renee@partner.example>",
			&Command{Verb: Delegate, To: workflow.Party{Name: "Renée", Email: "renee@partner.example"}}, ""},
		{"delegate with a reason after the address", "DÉLÉGUER: Louise Martin <louise@partner.example> – je suis en congé\nMarie",
			&Command{Verb: Delegate, To: workflow.Party{Name: "Louise Martin", Email: "louise@partner.example"}, Reason: "je suis en congé"}, ""},
		{"delegate on the line below", "DELEGATE:\n  Louise Martin <louise@partner.example>, on leave\nMarie",
			&Command{Verb: Delegate, To: workflow.Party{Name: "Louise Martin", Email: "louise@partner.example"}, Reason: "on leave"}, ""},
		{"delegate without an address", "DÉLÉGUER", nil, `"DÉLÉGUER": give the name and address of the person you hand your place to`},
		{"delegate without an address, in French", "Déléguer :", nil, "« Déléguer : » : indiquez après les deux-points le nom et l'adresse"},
		{"delegate to a name only", "DELEGATE: Louise Martin", nil, `"Louise Martin" is not an email address; write it as`},
		{"delegate to a broken address, in French", "DÉLÉGUER: Louise <louise@>", nil, "« Louise <louise@> » n'est pas une adresse électronique"},
		{"delegate to two addresses", "DELEGATE: a@partner.example, b@partner.example", nil, "is not an email address"},
		{"prose is not a command", "Je vais annuler ma participation.\nPlease decline politely.", nil, ""},
		{"quoted command is not read", "Merci\n> REFUSER: x\n> ANNULER", nil, ""},
		{"command below an Outlook header block is not read", "Merci\nDe : Parapheur\nEnvoyé : lundi\nANNULER", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := *thread
			m.Text = tt.text
			got, found, err := Parse(&m)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error()+"\n"+problem.From(err).In("fr"), tt.err) || !found {
					t.Fatalf("Parse = %+v, %v, %v; want error %q", got, found, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				if found {
					t.Errorf("Parse found %+v in %q", got, tt.text)
				}
				return
			}
			tt.want.From = "marie@partner.example"
			tt.want.Thread = []string{"inv@org.example", "b@x", "a@x"}
			if !found || !reflect.DeepEqual(got, *tt.want) {
				t.Errorf("Parse = %+v, %v; want %+v", got, found, *tt.want)
			}
		})
	}
}

// TestReasonIsCapped checks that a decline reason, which the notices quote,
// is clipped like a message.
func TestReasonIsCapped(t *testing.T) {
	verb, reason, ok := command("REFUSER: " + strings.Repeat("é", 1<<20))
	if !ok || verb != Decline || utf8.RuneCountInString(reason) != workflow.MaxMessageRunes {
		t.Errorf("command = %v, %d runes, %v; want a decline of %d runes", verb, utf8.RuneCountInString(reason), ok, workflow.MaxMessageRunes)
	}
}

// TestNearMiss: a line that starts with a command word but lacks its colon
// acts on nothing; the answer says how to write it (a black-box run got
// "no command found" for "refuser le document n'est pas le bon").
func TestNearMiss(t *testing.T) {
	for _, tt := range []struct{ text, fr, en string }{
		{"refuser le document n'est pas le bon\n\nLe lun. 7 déc. 2026, Parapheur a écrit :\n> REFUSER : votre motif",
			"« refuser le document n'est pas le bon » ressemble à une commande sans ses deux-points : écrivez le mot de la commande, deux-points, puis la suite, par exemple « REFUSER : le document n'est pas le bon »", ""},
		{"Decline - wrong amount\n\nSent from my iPhone", "", `"Decline - wrong amount" reads like a command without its colon: write the command word, a colon, then the rest, e.g. "DECLINE: wrong amount"`},
		{"Déléguer à Paul Durand", "par exemple « DÉLÉGUER : Marie Curie <marie@exemple.fr> »", ""},
		{"ANNULER", "", `e.g. "CANCEL: your reason"`},
	} {
		got, ok := NearMiss(&message.Message{Text: tt.text})
		if !ok || !strings.Contains(got.FR, tt.fr) || !strings.Contains(got.EN, tt.en) {
			t.Errorf("NearMiss(%q) = %+v, %v", tt.text, got, ok)
		}
	}
	for _, text := range []string{"Merci, je regarde.", "Je vais refuser.", "> refuser le document", "Refuser : le montant"} {
		if got, ok := NearMiss(&message.Message{Text: text}); ok {
			t.Errorf("NearMiss(%q) = %+v: not a near miss", text, got)
		}
	}
}
