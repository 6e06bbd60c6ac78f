package instructions

import (
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/workflow"

	"github.com/parapheur/parapheur/mailin/internal/mailcorpus"
)

func FuzzInstructions(f *testing.F) {
	for _, s := range []string{
		Help("fr", true), Help("en", true),
		"Visa : Paul <p@org.example>\nSignataire : Marie <m@x.example> 06 12 34 56 78\nÉchéance : 15/07/2026\nRappel : 3 jours",
		"Signers: a@b.example; \"Curie, Marie\" <m@x.example>, c@d.example\nLanguage: en\nCircuit: direction",
		"Signataire: marie@\nVisa: p@x.example +33612345678\nLangue: de\nÉchéance: 31/02/2026",
		"Signataire: a@b.example\n-----Original Message-----\nSigner: evil@x.example",
		"Signataire: a@b.example\nRappel : 0",
	} {
		f.Add(s)
	}
	for _, raw := range mailcorpus.Mails(f) {
		f.Add(string(raw))
	}
	circuits, err := CompileCircuits(map[string][]string{"direction": {"Visa: chef@org.example", "Signataire: dir@org.example"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		in := Parse(text)
		lines := strings.Count(text, "\n") + strings.Count(text, "\r") + 1
		for _, p := range in.Problems {
			if p.Line < 1 || p.Line > lines || p.Reason.EN == "" || p.Reason.FR == "" {
				t.Errorf("problem %+v out of a %d-line text", p, lines)
			}
		}
		check := func(p workflow.Party, phone bool) {
			if !strings.Contains(p.Email, "@") {
				t.Errorf("party %+v has no address", p)
			}
			if p.Phone != "" {
				if got, err := Phone(p.Phone); !phone || err != nil || got != p.Phone {
					t.Errorf("party %+v has a bad phone (%v)", p, err)
				}
			}
		}
		for _, s := range in.Steps {
			if !s.Role.Acts() || len(s.Parties) == 0 {
				t.Errorf("bad step %+v", s)
			}
			for _, p := range s.Parties {
				check(p, s.Role == workflow.Signer)
			}
		}
		for _, p := range append(append([]workflow.Party(nil), in.Copies...), in.Archivists...) {
			check(p, false)
		}
		if d := in.Deadline; !d.IsZero() {
			if y, m, day := d.End(time.UTC).AddDate(0, 0, -1).Date(); (workflow.Day{Year: y, Month: m, Day: day}) != d {
				t.Errorf("deadline %v is not a calendar date", d)
			}
		}
		if in.Language != "" && in.Language != "fr" && in.Language != "en" {
			t.Errorf("language %q", in.Language)
		}
		if (in.ReminderDays < 0 && in.ReminderDays != NoReminders) || in.ReminderDays > MaxReminderDays {
			t.Errorf("reminder %d", in.ReminderDays)
		}
		steps := len(in.Steps)
		in.Resolve(circuits, "direction")
		if len(in.Steps) < steps {
			t.Errorf("Resolve lost steps")
		}
	})
}
