package compose

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
	"time"

	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/workflow"
)

// paris is the zone the fixtures show dates in.
var paris = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		return time.FixedZone("CET", 3600)
	}
	return loc
}()

func testConfig() Config {
	return Config{
		Address:         "parapheur@org.example",
		Name:            "Parapheur de l'Organisation",
		PublicURL:       "https://sign.org.example",
		AttachmentLimit: 10 << 20,
		Location:        paris,
		ReturnPathKey:   returnPathKey,
	}
}

// returnPathKey is the return path key of the tests.
var returnPathKey = bytes.Repeat([]byte{0x42}, mailid.KeySize)

func newComposer(t testing.TB, cfg Config) *Composer {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// envelope is an envelope in its second step: a visa done, two signers in
// parallel, a copy and an archivist.
func envelope(title string) *workflow.Envelope {
	created := time.Date(2026, 11, 20, 9, 30, 0, 0, paris)
	e := &workflow.Envelope{
		ID:            "ENV-7F3K2Q",
		Title:         title,
		Sender:        workflow.Party{Name: "Agnès Dupont", Email: "agnes.dupont@org.example"},
		MessageID:     "<CAF1x-submission.42@mail.org.example>",
		References:    []string{"partner.7@partner.example", "<CAF1x-forward.41@mail.org.example>"},
		Message:       "Bonjour,\nmerci de signer la convention avant le conseil.\nCordialement",
		Language:      "fr",
		State:         workflow.StateInProgress,
		CreatedAt:     created,
		Deadline:      time.Date(2026, 12, 15, 23, 59, 59, 0, paris),
		ReminderEvery: 3 * 24 * time.Hour,
		Documents: []workflow.Document{
			{Name: "Convention été 2026.pdf", Pages: 12, Original: hexSum([]byte("convention")), Current: hexSum([]byte("convention")), Size: 10},
			{Name: "Annexe financière.pdf", Pages: 1, Original: hexSum([]byte("annexe")), Current: hexSum([]byte("annexe")), Size: 6},
		},
		Steps: []workflow.Step{
			{Role: workflow.Approver, Recipients: []string{"r1"}},
			{Role: workflow.Signer, Recipients: []string{"r2", "r3"}},
		},
		CurrentStep: 1,
		Recipients: []workflow.Recipient{
			{Party: workflow.Party{Name: "Chef de service", Email: "chef@org.example"}, ID: "r1", Role: workflow.Approver, Step: 0, State: workflow.HasApproved},
			{Party: workflow.Party{Name: "Marie Curie", Email: "marie@partner.example", Phone: "+33612345678"}, ID: "r2", Role: workflow.Signer, Step: 1, State: workflow.Pending},
			{Party: workflow.Party{Name: "John Smith", Email: "john@partner.example"}, ID: "r3", Role: workflow.Signer, Step: 1, State: workflow.Pending},
			{Party: workflow.Party{Email: "copie@org.example"}, ID: "r4", Role: workflow.Copy, Step: -1, State: workflow.Waiting},
			{Party: workflow.Party{Name: "Archives", Email: "archives@org.example"}, ID: "r5", Role: workflow.Archivist, Step: -1, State: workflow.Waiting},
		},
	}
	return e
}

// delegate makes the fixture envelope's r2 hand her signature to a new
// recipient r6, who takes her place in step 2.
func delegate(e *workflow.Envelope) *workflow.Envelope {
	r2 := e.Recipient("r2")
	r2.State, r2.DelegatedTo, r2.Reason = workflow.HasDelegated, "r6", "En congés jusqu'au 20 décembre.\nLouise suit le dossier."
	e.Recipients = append(e.Recipients, workflow.Recipient{Party: workflow.Party{Name: "Louise Martin", Email: "louise@partner.example"},
		ID: "r6", Role: workflow.Signer, Step: 1, State: workflow.Pending, DelegatedFrom: "r2"})
	e.Steps[1].Recipients = []string{"r6", "r3"}
	return e
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// file is an in-memory attachment.
func file(name, contentType string, content []byte) Attachment {
	return Attachment{
		Name: name, ContentType: contentType, Size: int64(len(content)), SHA256: hexSum(content),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content)), nil },
	}
}

// completion is the completion data of the fixture envelope.
func completion() Completion {
	return Completion{
		Files: []Attachment{
			file("Convention été 2026.pdf", "application/pdf", []byte("%PDF-1.7 signed convention\n%%EOF\n")),
			file("Annexe financière.pdf", "application/pdf", []byte("%PDF-1.7 signed annexe\n%%EOF\n")),
			file("Certificat de réalisation ENV-7F3K2Q.pdf", "application/pdf", []byte("%PDF-1.7 certificate\n%%EOF\n")),
		},
		DownloadURL:   "https://sign.org.example/d/DOWNLOADTOKEN",
		DownloadUntil: time.Date(2027, 1, 5, 10, 0, 0, 0, time.UTC),
		Audit:         ptr(file("audit.json", "application/json", []byte(`{"events":[{"type":"created"}]}`))),
	}
}

func ptr[T any](v T) *T { return &v }

// sample is one message of the catalogue every test walks.
type sample struct {
	name string
	msg  *Message
	// subject is the expected subject in French; "" to skip the check.
	subject string
	// files are the expected attachment names.
	files []string
}

// samples returns a message of every kind, to the sender or a recipient,
// in lang.
func samples(lang string) []sample {
	title := "Convention de partenariat été 2026 — Université"
	date := time.Date(2026, 11, 22, 10, 0, 0, 0, paris)
	msg := func(id, rid string, d Data) *Message {
		e := envelope(title)
		if _, ok := d.(answer); ok {
			e = nil
		}
		return &Message{ID: id + "@org.example", Date: date, Language: lang, Envelope: e, RecipientID: rid, Data: d}
	}
	delegated := func(m *Message) *Message {
		delegate(m.Envelope)
		return m
	}
	ended := func(m *Message, s workflow.State) *Message {
		m.Envelope.State = s
		return m
	}
	// stepsDone makes the envelope's signers sign: its completion began.
	stepsDone := func(m *Message) *Message {
		e := m.Envelope
		for _, id := range []string{"r2", "r3"} {
			e.Recipient(id).State = workflow.HasSigned
		}
		e.CurrentStep, e.StepsDoneAt = len(e.Steps), time.Date(2026, 11, 24, 16, 5, 0, 0, time.UTC)
		return m
	}
	c := completion()
	fr := lang == "fr"
	pick := func(f, e string) string {
		if fr {
			return f
		}
		return e
	}
	usage := pick("Écrivez en tête de votre message, une ligne par étape :\n  Visa : chef@org.example\n  Signataire : Marie Curie <marie@partner.example>",
		"Write at the top of your message, one line per step:\n  Approver: chef@org.example\n  Signer: Marie Curie <marie@partner.example>")
	return []sample{
		{name: "acknowledgement", msg: msg("ack", "", Acknowledgement{
			StatusURL: "https://sign.org.example/e/STATUSTOKEN",
			Ignored:   []IgnoredAttachment{{Name: "logo.png", ContentType: "image/png"}, {ContentType: "text/calendar"}},
		}), subject: "Enregistré : " + title},
		{name: "refusal", msg: msg("refusal", "", Refusal{
			To: workflow.Party{Name: "Agnès Dupont", Email: "agnes.dupont@org.example"}, InReplyTo: "<refused.1@mail.org.example>",
			References: []string{"thread.0@mail.org.example", "not an id", "refused.1@mail.org.example"},
			Subject:    "Convention été",
			Problems:   []string{pick("Le message ne contient aucun PDF.", "The message holds no PDF."), pick("Aucun signataire n'est indiqué.", "No signer is named.")},
			Usage:      usage,
		}), subject: "Non enregistré : Convention été"},
		{name: "invitation", msg: msg("inv", "r2", Invitation{Link: "https://sign.org.example/s/TOKEN-r2"}), subject: "À signer : " + title},
		{name: "invitation-approver", msg: msg("inv-appr", "r1", Invitation{Link: "https://sign.org.example/s/TOKEN-r1"}), subject: "À viser : " + title},
		{name: "code", msg: msg("code", "r3", OneTimeCode{Code: "482913", Valid: workflow.CodeTTL}), subject: "Votre code de confirmation – " + title},
		{name: "reminder", msg: msg("rem", "r3", Reminder{Link: "https://sign.org.example/s/TOKEN-r3b"}), subject: "Rappel – à signer : " + title},
		{name: "declined", msg: ended(msg("dec", "", Declined{By: "r2", Reason: "Le montant de l'article 4 est erroné.\nMerci de corriger."}), workflow.StateDeclined), subject: "Refusé : " + title},
		{name: "declined-to-recipient", msg: ended(msg("dec-r1", "r1", Declined{By: "r2", Reason: "Montant erroné."}), workflow.StateDeclined)},
		{name: "cancelled", msg: ended(msg("can", "r2", Cancelled{Reason: "Convention remplacée par la version 2."}), workflow.StateCancelled), subject: "Annulé : " + title},
		{name: "expired", msg: ended(msg("exp", "", Expired{}), workflow.StateExpired), subject: "Expiré : " + title},
		{name: "delivery_failure", msg: msg("dsn", "", DeliveryFailure{Address: "john@partner.example", Answer: "550 5.1.1 <john@partner.example>: Recipient address rejected: User unknown"}), subject: "Non distribué à john@partner.example : " + title},
		{name: "completion", msg: ended(msg("done", "", c), workflow.StateCompleted), subject: "Terminé : " + title,
			files: []string{"Convention été 2026.pdf", "Annexe financière.pdf", "Certificat de réalisation ENV-7F3K2Q.pdf"}},
		{name: "completion-archivist", msg: ended(msg("done-r5", "r5", c), workflow.StateCompleted),
			files: []string{"Convention été 2026.pdf", "Annexe financière.pdf", "Certificat de réalisation ENV-7F3K2Q.pdf", "audit-ENV-7F3K2Q.json"}},
		{name: "delegated", msg: delegated(msg("deleg", "", Delegated{By: "r2"})), subject: "Délégation : " + title},
		{name: "invitation-delegate", msg: delegated(msg("inv-r6", "r6", Invitation{Link: "https://sign.org.example/s/TOKEN-r6"})), subject: "À signer : " + title},
		{name: "code_locked", msg: msg("locked", "", CodeLocked{By: "r3"}), subject: "Code bloqué : " + title},
		{name: "verification", msg: msg("verif", "", verification(lang)), subject: "Re: Convention signée"},
		{name: "verification-no-pdf", msg: msg("verif-none", "", Verification{
			To: workflow.Party{Email: "quelquun@ailleurs.example"}, InReplyTo: "<asked.2@ailleurs.example>", Address: "parapheur+verifier@org.example",
			Problem: pick("le message n'a aucune pièce jointe PDF", "the message has no PDF attachment"),
		}), subject: "Vérification de vos documents"},
		{name: "delivery_failure-to-recipient", msg: msg("dsn-r1", "r1", DeliveryFailure{Address: "john@partner.example", Answer: "550 5.1.1 user unknown"}),
			subject: "Non distribué à john@partner.example : " + title},
		{name: "delivery_failure-completed", msg: ended(stepsDone(msg("dsn-done", "", DeliveryFailure{Address: "copie@org.example", Answer: "552 5.3.4 message too big"})), workflow.StateCompleted)},
		{name: "delivery_failure-declined", msg: ended(msg("dsn-dec", "", DeliveryFailure{Address: "chef@org.example", Answer: "550 5.1.1 user unknown"}), workflow.StateDeclined)},
		{name: "completion_delayed", msg: stepsDone(msg("delayed", "", CompletionDelayed{Reason: "time-stamp authority https://tsa.example: 503 Service Unavailable"})),
			subject: "Finalisation retardée : " + title},
		{name: "declined-to-decliner", msg: ended(msg("dec-r2", "r2", Declined{By: "r2", Reason: "Montant erroné."}), workflow.StateDeclined)},
		{name: "delegated-to-delegator", msg: delegated(msg("deleg-r2", "r2", Delegated{By: "r2"}))},
	}
}

// verification is the report on three files of a mail to the
// verification address, in lang: the final version of an envelope's
// document, a copy with a broken signature, and a file that is no PDF; and
// two more PDFs were past the cap.
func verification(lang string) Verification {
	say := func(key string, args ...any) string { return verdict.Say(lang, key, args...) }
	signedAt := verdict.LongTime(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), paris, lang)
	sig := verdict.Signature{Signer: "Marie Curie", Email: "marie@partner.example", When: signedAt, TimeStamped: true, Level: "B-T",
		Reason: "Signature électronique, demande ENV-7F3K2Q", Verdict: say("verify intact"), Intact: true,
		Issuer: say("verify issuer ours"), Issued: true, Changes: say("verify covers"), Covers: true}
	broken := sig
	broken.Verdict, broken.Intact, broken.Problem = say("verify broken"), false, "message digest mismatch"
	return Verification{
		To: workflow.Party{Name: "Agnès Dupont", Email: "agnes.dupont@org.example"}, InReplyTo: "<asked.1@mail.org.example>",
		Subject: "Convention signée", Address: "parapheur+verifier@org.example",
		Files: []verdict.File{
			{Name: "Convention été 2026.pdf", Size: verdict.ByteSize(48_213, lang), SHA256: hexSum([]byte("convention")),
				Verdict: say("verify valid one"), Valid: true, Signatures: []verdict.Signature{sig},
				Trails:    []verdict.Trail{{Name: "audit-ENV-7F3K2Q.json", Verdict: say("verify trail intact", 12), Intact: true}},
				Envelope:  say("verify envelope", "ENV-7F3K2Q", verdict.EnvelopeState(workflow.StateCompleted, lang)),
				Placement: say("verify final", 1, "Convention été 2026.pdf"), Final: true},
			{Name: "copie.pdf", Size: verdict.ByteSize(48_213, lang), SHA256: hexSum([]byte("copie")),
				Verdict: say("verify invalid"), Signatures: []verdict.Signature{broken}},
			{Name: "notes.pdf", Size: verdict.ByteSize(17, lang), SHA256: hexSum([]byte("notes")), Unreadable: say("verify unreadable")},
		},
		Omitted: 2,
	}
}
