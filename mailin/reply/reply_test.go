package reply

import (
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-message/mail"

	"github.com/parapheur/parapheur/mailin/message"
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
		{"first command wins", "annuler\nREFUSER: x", &Command{Verb: Cancel}, ""},
		{"decline without reason", "REFUSER", nil, `"REFUSER": give the reason for declining after the colon`},
		{"decline without reason, in French", "REFUSER", nil, "« REFUSER » : donnez la raison du refus après les deux-points"},
		{"decline with empty reason", "Refuser :  ", nil, `"Refuser :": give the reason for declining after the colon`},
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
