package instructions

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/problem"
)

func signer(parties ...workflow.Party) workflow.DraftStep {
	return workflow.DraftStep{Role: workflow.Signer, Parties: parties}
}

func approver(parties ...workflow.Party) workflow.DraftStep {
	return workflow.DraftStep{Role: workflow.Approver, Parties: parties}
}

func party(name, email, phone string) workflow.Party {
	return workflow.Party{Name: name, Email: email, Phone: phone}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		text string
		want Instructions
	}{{
		name: "full French block with prose and a signature",
		text: "Bonjour,\n\nVisa : Paul Martin <paul.martin@org.example>\n" +
			"SIGNATAIRE : Marie Curie <Marie.Curie@Partenaire.EXAMPLE> 06 12 34 56 78\n" +
			"signataires: direction@org.example; \"Durand, Sophie\" <sophie@org.example>, dg@org.example\n" +
			"Copies : compta@org.example\nArchive: archives@org.example\nÉchéance : 15/07/2026\n" +
			"Rappel : 3 jours\nMessage : Merci.\nMessage: Bonnes vacances.\nLangue : Français\n\nCordialement,\nJean",
		want: Instructions{
			Steps: []workflow.DraftStep{
				approver(party("Paul Martin", "paul.martin@org.example", "")),
				signer(party("Marie Curie", "Marie.Curie@partenaire.example", "+33612345678")),
				signer(party("", "direction@org.example", ""), party("Durand, Sophie", "sophie@org.example", ""), party("", "dg@org.example", "")),
			},
			Copies:       []workflow.Party{party("", "compta@org.example", "")},
			Archivists:   []workflow.Party{party("", "archives@org.example", "")},
			Deadline:     workflow.Day{Year: 2026, Month: time.July, Day: 15},
			ReminderDays: 3,
			Message:      "Merci.\nBonnes vacances.",
			Language:     "fr",
		},
	}, {
		name: "English keywords, plural, bullets, accents dropped, ISO date",
		text: "- Approvers: a@org.example\n* Signers: Bob <bob@x.example> +44 7700 900123\nEcheance: 2026-12-31\nReminders: 7 days\nLanguage: EN\nCircuit: Direction",
		want: Instructions{
			Steps:        []workflow.DraftStep{approver(party("", "a@org.example", "")), signer(party("Bob", "bob@x.example", "+447700900123"))},
			Deadline:     workflow.Day{Year: 2026, Month: time.December, Day: 31},
			ReminderDays: 7,
			Language:     "en",
			Circuit:      "Direction",
		},
	}, {
		name: "a name as a comment",
		text: "Signataire: marie@partner.example (Marie Curie) +33 6 12 34 56 78",
		want: Instructions{Steps: []workflow.DraftStep{signer(party("Marie Curie", "marie@partner.example", "+33612345678"))}},
	}, {
		name: "a display name without brackets, and a phone in 0033 form",
		text: "Signataire: Marie Curie marie@partner.example 0033 6 12 34 56 78",
		want: Instructions{Steps: []workflow.DraftStep{signer(party("Marie Curie", "marie@partner.example", "+33612345678"))}},
	}, {
		name: "lines after a quote separator are not read",
		text: "Signataire: a@org.example\n\n-----Message d'origine-----\nDe : x@y.example\nEnvoyé : lundi\nSignataire: b@evil.example",
		want: Instructions{Steps: []workflow.DraftStep{signer(party("", "a@org.example", ""))}},
	}, {
		name: "problems",
		text: "Signataire: marie@\nVisa: paul@org.example +33612345678\nLangue: de\nÉchéance: 31/02/2026\n" +
			"Rappel: trois\nRappel: 2\nSigner:\nSigner: a@b.example, a@b.example\nSigner: c@d.example 12345\nEcheance: 2026-01-01\nRappel: 0",
		want: Instructions{
			Steps: []workflow.DraftStep{signer(party("", "a@b.example", ""))},
			Problems: []Problem{
				{1, "Signataire: marie@", text(`"marie@" is not an email address`, "« marie@ » n'est pas une adresse e-mail")},
				{2, "Visa: paul@org.example +33612345678", text(`"paul@org.example +33612345678": a mobile number is only for signers (Signataire/Signer lines)`,
					"« paul@org.example +33612345678 » : un numéro de mobile n'est possible que pour un signataire (lignes Signataire/Signer)")},
				{3, "Langue: de", text(`"de" is not a known language: write fr or en`, "« de » n'est pas une langue connue : écrivez fr ou en")},
				{4, "Échéance: 31/02/2026", text(`"31/02/2026" is not a date: write it as 2026-07-14 or 14/07/2026`,
					"« 31/02/2026 » n'est pas une date : écrivez-la 14/07/2026 ou 2026-07-14")},
				{5, "Rappel: trois", text(`"trois" is not a number of days between 1 and 365 (or 0 for no reminder)`, "« trois » n'est pas un nombre de jours entre 1 et 365 (ou 0 pour aucun rappel)")},
				{6, "Rappel: 2", text("repeats line 5: give it once", "répète la ligne 5 : ne donnez cette instruction qu'une fois")},
				{7, "Signer:", text("the line gives no value", "la ligne ne donne aucune valeur")},
				{8, "Signer: a@b.example, a@b.example", text("a@b.example is named twice on the line", "a@b.example figure deux fois sur la ligne")},
				{9, "Signer: c@d.example 12345", text(`"12345" is not a mobile number: write it as +33612345678 or 06 12 34 56 78`,
					"« 12345 » n'est pas un numéro de mobile : écrivez-le +33612345678 ou 06 12 34 56 78")},
				{10, "Echeance: 2026-01-01", text("repeats line 4: give it once", "répète la ligne 4 : ne donnez cette instruction qu'une fois")},
				{11, "Rappel: 0", text("repeats line 5: give it once", "répète la ligne 5 : ne donnez cette instruction qu'une fois")},
			},
		},
	}, {
		name: "no keyword at all",
		text: "Bonjour, merci de faire signer. De : moi",
		want: Instructions{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Parse(tt.text)
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Parse:\n got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestProblemError(t *testing.T) {
	in := Parse("Bonjour\n\nSignataire: marie@")
	if len(in.Problems) != 1 {
		t.Fatalf("problems = %v, want one", in.Problems)
	}
	want := `line 3 "Signataire: marie@": "marie@" is not an email address`
	if got := in.Problems[0].Error(); got != want {
		t.Errorf("Error() = %s, want %s", got, want)
	}
	wantFR := "ligne 3 « Signataire: marie@ » : « marie@ » n'est pas une adresse e-mail"
	if got := in.Problems[0].Sentence().In("fr"); got != wantFR {
		t.Errorf("Sentence().In(fr) = %s, want %s", got, wantFR)
	}
	in = Parse("Langue: de\nRappel: x")
	if got, want := in.Err().Error(), "line 1 \"Langue: de\": \"de\" is not a known language: write fr or en\n"+
		"line 2 \"Rappel: x\": \"x\" is not a number of days between 1 and 365 (or 0 for no reminder)"; got != want {
		t.Errorf("Err() = %q, want %q", got, want)
	}
	if err := Parse("Signataire: a@b.example").Err(); err != nil {
		t.Errorf("Err() of a good block = %v", err)
	}
}

func TestPhone(t *testing.T) {
	for in, want := range map[string]string{
		"+33612345678": "+33612345678", "+33 6 12 34 56 78": "+33612345678", "06.12.34.56.78": "+33612345678",
		"07-12-34-56-78": "+33712345678", "0033612345678": "+33612345678", "+1 (415) 555-2671": "+14155552671",
	} {
		if got, err := Phone(in); err != nil || got != want {
			t.Errorf("Phone(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"01 23 45 67 89", "612345678", "+0612345678", "+33 6 12 AB", "+", "", "+12345678901234567"} {
		if got, err := Phone(in); err == nil {
			t.Errorf("Phone(%q) = %q, want an error", in, got)
		}
	}
}

func TestDateEnd(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	d := workflow.Day{Year: 2026, Month: time.July, Day: 15}
	if got, want := d.End(paris), time.Date(2026, time.July, 16, 0, 0, 0, 0, paris); !got.Equal(want) {
		t.Errorf("End = %v, want %v", got, want)
	}
	if d.String() != "2026-07-15" || d.IsZero() || !(workflow.Day{}).IsZero() {
		t.Errorf("String/IsZero wrong for %v", d)
	}
}

func TestResolve(t *testing.T) {
	circuits, err := CompileCircuits(map[string][]string{
		"Direction": {"Visa: chef@org.example", "Signataire: Directrice <dir@org.example>", "Archive: archives@org.example", "Rappel: 5", "Langue: fr"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, text, detail string
		wantSteps          []workflow.DraftStep
		wantArchivists     []workflow.Party
		wantReminder       int
		wantLanguage       string
		wantProblems       []string // in English
		wantProblemsFR     []string
	}{{
		name: "circuit line, accent and case ignored, mail steps after",
		text: "Circuit: diréction\nSignataire: x@partner.example\nLanguage: en",
		wantSteps: []workflow.DraftStep{approver(party("", "chef@org.example", "")), signer(party("Directrice", "dir@org.example", "")),
			signer(party("", "x@partner.example", ""))},
		wantArchivists: []workflow.Party{party("", "archives@org.example", "")},
		wantReminder:   5, wantLanguage: "en",
	}, {
		name: "plus-address detail",
		text: "Bonjour", detail: "direction",
		wantSteps:      []workflow.DraftStep{approver(party("", "chef@org.example", "")), signer(party("Directrice", "dir@org.example", ""))},
		wantArchivists: []workflow.Party{party("", "archives@org.example", "")},
		wantReminder:   5, wantLanguage: "fr",
	}, {
		name: "unknown circuit and no signer",
		text: "Circuit: rh",
		wantProblems: []string{`circuit "rh" is not defined; the circuits are: direction`,
			`no signer: add a line such as "Signer: Marie Curie <marie@partner.example>"`},
		wantProblemsFR: []string{"le circuit « rh » n'existe pas ; les circuits sont : direction",
			"aucun signataire : ajoutez une ligne telle que « Signataire: Marie Curie <marie@partner.example> »"},
	}, {
		name: "detail and Circuit line disagree",
		text: "Circuit: direction\nSignataire: a@b.example", detail: "rh",
		wantSteps:      []workflow.DraftStep{signer(party("", "a@b.example", ""))},
		wantProblems:   []string{`the mail was sent to the address of circuit "rh" but its Circuit line names "direction": use one`},
		wantProblemsFR: []string{"le message a été envoyé à l'adresse du circuit « rh » mais sa ligne Circuit nomme « direction » : n'en utilisez qu'un"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Parse(tt.text)
			in.Resolve(circuits, tt.detail)
			var problems, problemsFR []string
			for _, p := range in.Problems {
				problems = append(problems, p.Error())
				problemsFR = append(problemsFR, p.Sentence().In("fr"))
			}
			if !reflect.DeepEqual(problemsFR, tt.wantProblemsFR) {
				t.Errorf("problems in French:\n got %q\nwant %q", problemsFR, tt.wantProblemsFR)
			}
			if !reflect.DeepEqual(in.Steps, tt.wantSteps) || !reflect.DeepEqual(in.Archivists, tt.wantArchivists) ||
				in.ReminderDays != tt.wantReminder || in.Language != tt.wantLanguage || !reflect.DeepEqual(problems, tt.wantProblems) {
				t.Errorf("Resolve:\n got steps %v archivists %v reminder %d language %q problems %q\nwant steps %v archivists %v reminder %d language %q problems %q",
					in.Steps, in.Archivists, in.ReminderDays, in.Language, problems,
					tt.wantSteps, tt.wantArchivists, tt.wantReminder, tt.wantLanguage, tt.wantProblems)
			}
		})
	}
	// A gateway without circuits says so, and what to write instead.
	in := Parse("Circuit: rh\nSignataire: a@b.example")
	in.Resolve(nil, "")
	want := []string{"le circuit « rh » n'existe pas ; ce parapheur n'a aucun circuit : nommez les personnes qui visent et qui signent sur des lignes Visa et Signataire"}
	if len(in.Problems) != 1 || in.Problems[0].Sentence().In("fr") != want[0] {
		t.Errorf("unknown circuit without circuits: %v, want %q", in.Problems, want)
	}
	// The circuit itself must not be changed by a mail that used it.
	in = Parse("Circuit: direction")
	in.Resolve(circuits, "")
	in.Steps[0].Parties[0].Email = "changed@org.example"
	if got := circuits["direction"].Steps[0].Parties[0].Email; got != "chef@org.example" {
		t.Errorf("circuit changed through an envelope: %s", got)
	}
}

func TestCompileCircuitsErrors(t *testing.T) {
	_, err := CompileCircuits(map[string][]string{
		"a":        {"Visa: x@", "Circuit: b"},
		" ":        {"Signataire: y@org.example"},
		"Vérifier": {"Signataire: y@org.example"},
		"verify":   {"Signataire: y@org.example"},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`circuit "a": line 1 "Visa: x@": "x@" is not an email address`,
		`circuit "a": a circuit cannot name another circuit`,
		`circuit "a": the circuit has no Visa or Signataire line`,
		`circuit " ": the name is empty`,
		`circuit "Vérifier": the names verifier and verify are reserved for the verification address`,
		`circuit "verify": the names verifier and verify are reserved`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestHelpExamples checks that the examples the help text gives parse
// without problems and say what the text says, and that a gateway without
// SMS does not offer a mobile number it would refuse.
func TestHelpExamples(t *testing.T) {
	for _, lang := range []string{"fr", "en"} {
		for _, sms := range []bool{true, false} {
			help := Help(lang, sms)
			var example []string
			for _, line := range strings.Split(help, "\n") {
				if strings.HasPrefix(line, "  ") && strings.Contains(line, ":") && !strings.Contains(line, "(+33") {
					example = append(example, line)
				}
			}
			in := Parse(strings.Join(example, "\n"))
			phone := ""
			if sms {
				phone = "+33612345678"
			}
			if len(in.Problems) > 0 || len(in.Steps) != 3 || len(in.Steps[2].Parties) != 2 || in.Steps[1].Parties[0].Phone != phone ||
				len(in.Copies) != 1 || in.Deadline != (workflow.Day{Year: 2026, Month: time.July, Day: 31}) || in.ReminderDays != 3 || in.Message == "" {
				t.Errorf("help %s (sms %v) example parses to %+v", lang, sms, *in)
			}
			if strings.Contains(help, "SMS") != sms || strings.Contains(help, "{") {
				t.Errorf("help %s (sms %v):\n%s", lang, sms, help)
			}
		}
	}
	if Help("fr", true) == Help("en", true) || !strings.Contains(Help("fr", true), "Signataire") || !strings.Contains(Help("en", true), "Signer") {
		t.Error("Help does not differ by language")
	}
}

func text(en, fr string) problem.Text { return problem.Text{EN: en, FR: fr} }

// "Rappel : 0" (or a word for none) asks for no reminder at all.
func TestNoReminders(t *testing.T) {
	for _, v := range []string{"0", "0 jour", "aucun", "None", "jamais"} {
		in := Parse("Signataire: a@b.example\nRappel : " + v)
		if len(in.Problems) != 0 || in.ReminderDays != NoReminders {
			t.Errorf("Rappel : %s: ReminderDays %d, problems %v; want NoReminders", v, in.ReminderDays, in.Problems)
		}
	}
	if in := Parse("Signataire: a@b.example\nRappel : 4"); in.ReminderDays != 4 {
		t.Errorf("Rappel : 4: %d", in.ReminderDays)
	}
}
