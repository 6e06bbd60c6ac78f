package mailin_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/parapheur/parapheur/mailin/dsn"
	"github.com/parapheur/parapheur/mailin/instructions"
	"github.com/parapheur/parapheur/mailin/loop"
	"github.com/parapheur/parapheur/mailin/message"
	"github.com/parapheur/parapheur/mailin/policy"
	"github.com/parapheur/parapheur/mailin/quote"
	"github.com/parapheur/parapheur/mailin/reply"
	"github.com/parapheur/parapheur/workflow"
)

const gateway = "parapheur@org.example"

// doc is an expected document: its name, declared type and the testdata
// PDF it must be byte for byte.
type doc struct{ name, contentType, file string }

// expectation is everything the poller will learn from one mail of the
// corpus, in the order it asks.
type expectation struct {
	automatic  string // loop.Automatic's reason, "" for a person's mail
	from       string
	messageID  string
	inReplyTo  []string
	references []string
	subject    string
	title      string
	detail     string // plus-address detail for the gateway
	docs       []doc
	ignored    []message.Attachment
	own        string // quote.Own of the text
	in         instructions.Instructions
	auth       string // sender decision summary with the trusted mx.org.example
	report     *dsn.Report
	command    *reply.Command
}

func party(name, email, phone string) workflow.Party {
	return workflow.Party{Name: name, Email: email, Phone: phone}
}

func step(role workflow.Role, parties ...workflow.Party) workflow.DraftStep {
	return workflow.DraftStep{Role: role, Parties: parties}
}

var corpus = map[string]expectation{
	"outlook-fr-forward.eml": {
		from:       "jean.dupont@org.example",
		messageID:  "PR3P193MB0891A1B2C3D4E5F6@PR3P193MB0891.EURP193.PROD.OUTLOOK.COM",
		inReplyTo:  []string{"CAF9x2kq8sX@mail.partenaire.example"},
		references: []string{"CAF9x2kq8sX@mail.partenaire.example"},
		subject:    "TR : Convention de partenariat – été 2026",
		title:      "Convention de partenariat – été 2026",
		docs:       []doc{{"Convention partenariat été 2026.pdf", "application/pdf", "doc1.pdf"}},
		ignored:    []message.Attachment{{Name: "image001.png", ContentType: "image/png", Size: 68}},
		own: "Bonjour,\n\nVisa : Paul Martin <paul.martin@org.example>\n" +
			"Signataire : Marie Curie <marie.curie@partenaire.example> 06 12 34 56 78\n" +
			"Signataires : direction@org.example; Sophie Durand <sophie.durand@org.example>\n" +
			"Copie : compta@org.example\nÉchéance : 15/07/2026\nRappel : 3 jours\n" +
			"Message : Merci de signer la convention avant les congés d’été.\n\nCordialement,\nJean Dupont\nService des partenariats",
		in: instructions.Instructions{
			Steps: []workflow.DraftStep{
				step(workflow.Approver, party("Paul Martin", "paul.martin@org.example", "")),
				step(workflow.Signer, party("Marie Curie", "marie.curie@partenaire.example", "+33612345678")),
				step(workflow.Signer, party("", "direction@org.example", ""), party("Sophie Durand", "sophie.durand@org.example", "")),
			},
			Copies:       []workflow.Party{party("", "compta@org.example", "")},
			Deadline:     workflow.Day{Year: 2026, Month: time.July, Day: 15},
			ReminderDays: 3,
			Message:      "Merci de signer la convention avant les congés d’été.",
		},
		auth: "sender jean.dupont@org.example allowed by @org.example; dmarc=pass header.from=org.example (authserv-id mx.org.example)",
	},
	"gmail-forward.eml": {
		from:       "agent@org.example",
		messageID:  "CAHx7Yq3Zb9WnLt=kX0uR1J9f+5sE@mail.gmail.com",
		inReplyTo:  []string{"CAKr8sT0m2v9xP@mail.gmail.com"},
		references: []string{"CAKr8sT0m2v9xP@mail.gmail.com"},
		subject:    "Fwd: Quote 2026",
		title:      "Quote 2026",
		detail:     "achats",
		docs:       []doc{{"Quote 2026.pdf", "application/pdf", "doc1.pdf"}},
		own:        "Signer: Marie Curie <marie@partner.example> +33612345678\nApprover: boss@org.example\nLanguage: en\nDeadline: 2026-12-31",
		in: instructions.Instructions{
			Steps: []workflow.DraftStep{
				step(workflow.Signer, party("Marie Curie", "marie@partner.example", "+33612345678")),
				step(workflow.Approver, party("", "boss@org.example", "")),
			},
			Deadline: workflow.Day{Year: 2026, Month: time.December, Day: 31},
			Language: "en",
		},
		// Gmail's own Authentication-Results (mx.google.com) are not trusted here.
		auth: "sender agent@org.example refused: no DMARC or DKIM result (authserv-id mx.org.example)",
	},
	"apple-mail-forward.eml": {
		from:      "agent@org.example",
		messageID: "8E6B9C1D-2F3A-4B5C-8D7E-9F0A1B2C3D4E@org.example",
		subject:   "Fwd: Contrat de prestation",
		title:     "Contrat de prestation",
		docs:      []doc{{"Contrat.pdf", "application/pdf", "doc2.pdf"}},
		own:       "Signataire : marie@partner.example\nVisas : a.martin@org.example, b.leroy@org.example",
		in: instructions.Instructions{Steps: []workflow.DraftStep{
			step(workflow.Signer, party("", "marie@partner.example", "")),
			step(workflow.Approver, party("", "a.martin@org.example", ""), party("", "b.leroy@org.example", "")),
		}},
	},
	"thunderbird-forward.eml": {
		from:      "agent@org.example",
		messageID: "5b2f9a4e-1c3d-4e5f-a6b7-c8d9e0f1a2b3@org.example",
		subject:   "Fwd: Avenant n°2",
		title:     "Avenant n°2",
		docs:      []doc{{"Avenant n°2 été.pdf", "application/pdf", "doc1.pdf"}},
		ignored: []message.Attachment{{Name: "Budget.xlsx",
			ContentType: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", Size: 30}},
		// format=flowed: the long Signataire line was wrapped by the client.
		own: "Signataire: Marie Curie <marie@partner.example>, Jean-Baptiste Poquelin <jb.poquelin@partner.example>\n" +
			"Archive: archives@org.example\nÉchéance: 2026-12-31\nLangue: fr\nCircuit: direction",
		in: instructions.Instructions{
			Steps: []workflow.DraftStep{step(workflow.Signer, party("Marie Curie", "marie@partner.example", ""),
				party("Jean-Baptiste Poquelin", "jb.poquelin@partner.example", ""))},
			Archivists: []workflow.Party{party("", "archives@org.example", "")},
			Deadline:   workflow.Day{Year: 2026, Month: time.December, Day: 31},
			Language:   "fr",
			Circuit:    "direction",
		},
	},
	"forward-of-forward.eml": {
		from:      "agent@org.example",
		messageID: "DB9PR01MB0001@DB9PR01MB0001.eurprd01.prod.outlook.com",
		subject:   "FW: Fwd: RE: Budget 2027",
		title:     "Budget 2027",
		docs:      []doc{{"budget-2027.pdf", "application/pdf", "doc2.pdf"}},
		own:       "Signer: cfo@org.example\nApprover: controller@org.example",
		in: instructions.Instructions{Steps: []workflow.DraftStep{
			step(workflow.Signer, party("", "cfo@org.example", "")),
			step(workflow.Approver, party("", "controller@org.example", "")),
		}},
	},
	"latin1-reply.eml": {
		from:      "elise.andre@mairie.example",
		messageID: "20261102140000.12345@mairie.example",
		subject:   "RE : Re: Déclaration préalable",
		title:     "Déclaration préalable",
		docs:      []doc{{"DP-2026-118.pdf", "application/pdf", "doc1.pdf"}},
		own: "Bonjour,\n\nÉCHÉANCE : 31/12/2026\nsignataire : Élodie Fèvre <elodie.fevre@mairie.example>\n" +
			"visa : secretariat@mairie.example\nMessage : Déclaration préalable de travaux, à signer.",
		in: instructions.Instructions{
			Steps: []workflow.DraftStep{
				step(workflow.Signer, party("Élodie Fèvre", "elodie.fevre@mairie.example", "")),
				step(workflow.Approver, party("", "secretariat@mairie.example", "")),
			},
			Deadline: workflow.Day{Year: 2026, Month: time.December, Day: 31},
			Message:  "Déclaration préalable de travaux, à signer.",
		},
	},
	"cp1252-octet-stream.eml": {
		from:      "agent@org.example",
		messageID: "cp1252@org.example",
		subject:   "TR: Reçu – 1 200 €",
		title:     "Reçu – 1 200 €",
		docs: []doc{
			{"Reçu signé.pdf", "application/octet-stream", "doc1.pdf"},
			{"document-2.pdf", "application/octet-stream", "doc2.pdf"},
		},
		own: "Signataire : comptable@org.example\nMessage : Reçu de 1 200 € – merci d’avance.",
		in: instructions.Instructions{
			Steps:   []workflow.DraftStep{step(workflow.Signer, party("", "comptable@org.example", ""))},
			Message: "Reçu de 1 200 € – merci d’avance.",
		},
	},
	"html-only.eml": {
		from:      "agent@org.example",
		messageID: "html-only@org.example",
		subject:   "TR: Contrat",
		title:     "Contrat",
		docs:      []doc{{"Contrat.pdf", "application/pdf", "doc2.pdf"}},
		own:       "Bonjour,\nSignataire : Marie Curie <marie@partner.example>\nCopie : assistante@org.example\nMessage : Contrat & annexes\nBien cordialement",
		in: instructions.Instructions{
			Steps:   []workflow.DraftStep{step(workflow.Signer, party("Marie Curie", "marie@partner.example", ""))},
			Copies:  []workflow.Party{party("", "assistante@org.example", "")},
			Message: "Contrat & annexes",
		},
	},
	"auto-reply.eml": {
		automatic:  "Auto-Submitted: auto-replied",
		from:       "marie@partner.example",
		messageID:  "AM0PR01MB0002@AM0PR01MB0002.eurprd01.prod.outlook.com",
		inReplyTo:  []string{"inv-r2.env-7f3a@org.example"},
		references: []string{"inv-r2.env-7f3a@org.example"},
		subject:    "Réponse automatique : Invitation à signer",
		title:      "Réponse automatique : Invitation à signer",
		own:        "Je suis absente jusqu’au 16 novembre.\nSignataire : nobody@partner.example",
		in:         instructions.Instructions{Steps: []workflow.DraftStep{step(workflow.Signer, party("", "nobody@partner.example", ""))}},
	},
	"postfix-dsn.eml": {
		automatic: "Auto-Submitted: auto-replied",
		from:      "MAILER-DAEMON@mx.org.example",
		messageID: "4Xk3B12Cd9z9sWf@mx.org.example",
		subject:   "Undelivered Mail Returned to Sender",
		title:     "Undelivered Mail Returned to Sender",
		own: "This is the mail system at host mx.org.example.\n\nI'm sorry to have to inform you that your message could not\n" +
			"be delivered to one or more recipients. It's attached below.\n\n                   The mail system\n\n" +
			"<marie@partner.example>: host mx.partner.example[198.51.100.7] said: 550 5.1.1\n" +
			"    <marie@partner.example>: Recipient address rejected: User unknown in\n" +
			"    virtual mailbox table (in reply to RCPT TO command)",
		report: &dsn.Report{
			ReportingMTA: "dns; mx.org.example",
			Recipients: []dsn.Recipient{{
				FinalRecipient: "marie@partner.example", OriginalRecipient: "marie@partner.example",
				Action: "failed", Status: "5.1.1", RemoteMTA: "dns; mx.partner.example",
				DiagnosticCode: "smtp; 550 5.1.1 <marie@partner.example>: Recipient address rejected: User unknown in virtual mailbox table",
			}},
			OriginalMessageID: "inv-r2.env-7f3a@org.example",
			OriginalEnvelope:  "env-7f3a",
			Text: "This is the mail system at host mx.org.example.\n\nI'm sorry to have to inform you that your message could not\n" +
				"be delivered to one or more recipients. It's attached below.\n\n                   The mail system\n\n" +
				"<marie@partner.example>: host mx.partner.example[198.51.100.7] said: 550 5.1.1\n" +
				"    <marie@partner.example>: Recipient address rejected: User unknown in\n" +
				"    virtual mailbox table (in reply to RCPT TO command)",
		},
	},
	"exchange-dsn.eml": {
		automatic:  "Auto-Submitted: auto-replied",
		from:       "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@partner.example",
		messageID:  "b7c9d0e1-f2a3-4b5c-8d6e-9f0a1b2c3d4e@AM0PR01MB0003.eurprd01.prod.outlook.com",
		inReplyTo:  []string{"inv-r3.env-7f3a@org.example"},
		references: []string{"inv-r3.env-7f3a@org.example"},
		subject:    "Undeliverable: Invitation to sign: Convention",
		title:      "Undeliverable: Invitation to sign: Convention",
		own:        "Your message to paul.dupont@partner.example couldn't be delivered.\npaul.dupont wasn't found at partner.example.",
		report: &dsn.Report{
			ReportingMTA: "dns;AM0PR01MB0003.eurprd01.prod.outlook.com",
			Recipients: []dsn.Recipient{{
				FinalRecipient: "paul.dupont@partner.example", Action: "failed", Status: "5.1.10",
				DiagnosticCode: "smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
			}, {
				FinalRecipient: "team@partner.example", Action: "delayed", Status: "4.4.7",
			}},
			OriginalMessageID: "inv-r3.env-7f3a@org.example",
			OriginalEnvelope:  "env-7f3a",
			Text:              "Your message to paul.dupont@partner.example couldn't be delivered.\npaul.dupont wasn't found at partner.example.",
		},
	},
	"reply-decline.eml": {
		from:       "marie@partner.example",
		messageID:  "AM0PR01MB0004@AM0PR01MB0004.eurprd01.prod.outlook.com",
		inReplyTo:  []string{"inv-r2.env-7f3a@org.example"},
		references: []string{"ack.env-7f3a@org.example", "inv-r2.env-7f3a@org.example"},
		subject:    "RE : Invitation à signer : Convention",
		title:      "Invitation à signer : Convention",
		own:        "Refuser : le montant de l’article 4 est faux.\n\nMarie",
		command: &reply.Command{Verb: reply.Decline, Reason: "le montant de l’article 4 est faux.", From: "marie@partner.example",
			Thread: []string{"inv-r2.env-7f3a@org.example", "ack.env-7f3a@org.example"}},
	},
	"reply-cancel.eml": {
		from:       "agent@org.example",
		messageID:  "CAHx7Yq3Zb9WnLt=cancel@mail.gmail.com",
		inReplyTo:  []string{"ack.env-7f3a@org.example"},
		references: []string{"CAHx7Yq3Zb9WnLt=kX0uR1J9f+5sE@mail.gmail.com", "ack.env-7f3a@org.example"},
		subject:    "Re: Accusé de réception : Convention",
		title:      "Accusé de réception : Convention",
		own:        "ANNULER",
		command: &reply.Command{Verb: reply.Cancel, From: "agent@org.example",
			Thread: []string{"ack.env-7f3a@org.example", "CAHx7Yq3Zb9WnLt=kX0uR1J9f+5sE@mail.gmail.com"}},
	},
}

// TestCorpus runs every mail of testdata/ through the parsers the poller
// calls and compares everything they return.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(corpus) {
		t.Errorf("testdata has %d mails, the table %d", len(files), len(corpus))
	}
	policy, err := policy.NewPolicy([]string{"@org.example", "@partner.example"}, true, "mx.org.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			want, ok := corpus[name]
			if !ok {
				t.Fatalf("no expectation for %s", name)
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			m, err := message.Parse(bytes.NewReader(raw), 1<<20)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}

			if reason, automatic := loop.Automatic(m.Header, gateway); reason != want.automatic || automatic != (want.automatic != "") {
				t.Errorf("Automatic = %q, %v; want %q", reason, automatic, want.automatic)
			}
			check(t, "From", m.From.Address, want.from)
			check(t, "MessageID", m.MessageID, want.messageID)
			check(t, "InReplyTo", m.InReplyTo, want.inReplyTo)
			check(t, "References", m.References, want.references)
			check(t, "Subject", m.Subject, want.subject)
			check(t, "Title", m.Title, want.title)
			check(t, "Detail", m.Detail(gateway), want.detail)
			check(t, "Ignored", m.Ignored, want.ignored)
			if len(m.Documents) != len(want.docs) {
				t.Errorf("%d documents, want %d", len(m.Documents), len(want.docs))
			}
			for i := range min(len(m.Documents), len(want.docs)) {
				got, w := m.Documents[i], want.docs[i]
				pdf, err := os.ReadFile(filepath.Join("testdata", w.file))
				if err != nil {
					t.Fatal(err)
				}
				if got.Name != w.name || got.ContentType != w.contentType || sha(got.Data) != sha(pdf) {
					t.Errorf("document %d = %q %s sha256 %s; want %q %s %s (%s)", i, got.Name, got.ContentType, sha(got.Data), w.name, w.contentType, sha(pdf), w.file)
				}
			}
			check(t, "own text", quote.Own(m.Text), want.own)
			check(t, "instructions", *instructions.Parse(m.Text), want.in)

			if want.auth != "" {
				check(t, "sender summary", policy.Check(m.From.Address, m.Header.Values("Authentication-Results")).Summary, want.auth)
			}

			report, err := dsn.Parse(bytes.NewReader(raw))
			switch {
			case want.report == nil && !errors.Is(err, dsn.ErrNotDSN):
				t.Errorf("dsn.Parse = %+v, %v; want ErrNotDSN", report, err)
			case want.report != nil && err != nil:
				t.Errorf("dsn.Parse: %v", err)
			case want.report != nil:
				check(t, "report", *report, *want.report)
			}

			cmd, found, err := reply.Parse(m)
			if err != nil {
				t.Errorf("reply.Parse: %v", err)
			}
			if found != (want.command != nil) || found && !reflect.DeepEqual(cmd, *want.command) {
				t.Errorf("reply.Parse = %+v, %v; want %+v", cmd, found, want.command)
			}
		})
	}
}

func check[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %#v\nwant %#v", what, got, want)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
