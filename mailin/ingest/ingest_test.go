package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/mailin/instructions"
	"github.com/parapheur/parapheur/mailin/policy"
	"github.com/parapheur/parapheur/mailin/poller"
	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// now is before the deadline the Outlook corpus mail names (15/07/2026).
var now = time.Date(2026, 6, 2, 11, 0, 0, 0, time.UTC)

type fixture struct {
	h *Handler
	e *engine.Engine
	// at is the engine's clock, which tests move.
	at *time.Time
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "p.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	policy, err := policy.NewPolicy([]string{"@org.example"}, true, "mx.org.example")
	if err != nil {
		t.Fatal(err)
	}
	circuits, err := instructions.CompileCircuits(map[string][]string{"direction": {"Visa: Chef <chef@org.example>"}})
	if err != nil {
		t.Fatal(err)
	}
	at := new(time.Time)
	*at = now
	e := &engine.Engine{Store: st, CodeKey: []byte("0123456789abcdef0123456789abcdef"), Clock: func() time.Time { return *at }}
	paris, _ := time.LoadLocation("Europe/Paris")
	h := New(Config{
		Gateway: "parapheur@org.example", Senders: policy, Circuits: circuits,
		DeadlineDays: 30, ReminderDays: 3, Language: "fr", MaxMessageBytes: 1 << 20, Location: paris,
		Inspect: func(b []byte) (int, error) { return pades.Inspect(context.Background(), b, 0) },
	}, e, slog.New(slog.DiscardHandler))
	return fixture{h, e, at}
}

func corpus(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f fixture) handle(t *testing.T, raw []byte) (poller.Destination, string) {
	t.Helper()
	dest, reason, err := f.h.Handle(context.Background(), poller.Message{Raw: raw, Size: int64(len(raw))})
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	return dest, reason
}

// queued drains the mail queue and returns its jobs.
func (f fixture) queued(t testing.TB) []engine.Job {
	t.Helper()
	var jobs []engine.Job
	for {
		it, err := f.e.Store.Claim(context.Background(), engine.MailQueue, "t", *f.at, time.Minute)
		if errors.Is(err, store.ErrEmpty) {
			return jobs
		}
		if err != nil {
			t.Fatal(err)
		}
		var j engine.Job
		if err := json.Unmarshal(it.Payload, &j); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
		if err := f.e.Store.Ack(context.Background(), it); err != nil {
			t.Fatal(err)
		}
	}
}

func notices(jobs []engine.Job) string {
	var s []string
	for _, j := range jobs {
		s = append(s, string(j.Notice)+":"+j.To)
	}
	return strings.Join(s, " ")
}

func TestOutlookForwardMakesTheEnvelope(t *testing.T) {
	f := newFixture(t)
	raw := corpus(t, "outlook-fr-forward.eml")
	if dest, reason := f.handle(t, raw); dest != poller.Processed {
		t.Fatalf("quarantined: %s", reason)
	}
	id := engine.EnvelopeID("<pr3p193mb0891a1b2c3d4e5f6@pr3p193mb0891.eurp193.prod.outlook.com>")
	env, err := f.e.Store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if env.Title != "Convention de partenariat – été 2026" {
		t.Errorf("title = %q", env.Title)
	}
	if env.Sender.Email != "jean.dupont@org.example" || !strings.Contains(env.SenderAuth, "dmarc=pass") {
		t.Errorf("sender = %+v, auth %q", env.Sender, env.SenderAuth)
	}
	var steps []string
	for _, s := range env.Steps {
		var who []string
		for _, rid := range s.Recipients {
			r := env.Recipient(rid)
			who = append(who, r.Email+r.Phone)
		}
		steps = append(steps, string(s.Role)+"="+strings.Join(who, ","))
	}
	want := "approver=paul.martin@org.example | signer=marie.curie@partenaire.example+33612345678 | signer=direction@org.example,sophie.durand@org.example"
	if got := strings.Join(steps, " | "); got != want {
		t.Errorf("steps = %s\nwant   %s", got, want)
	}
	if len(env.Documents) != 1 || env.Documents[0].Pages != 1 || len(env.Documents[0].Original) != 64 {
		t.Errorf("documents = %+v", env.Documents)
	}
	if len(env.Ignored) != 1 || env.Ignored[0].Name != "image001.png" {
		t.Errorf("ignored = %+v, want the signature image", env.Ignored)
	}
	if env.ReminderEvery != 3*24*time.Hour || env.Language != "fr" {
		t.Errorf("reminder %v, language %s", env.ReminderEvery, env.Language)
	}
	if got := notices(f.queued(t)); got != "acknowledgement:sender invitation:r1" && got != "invitation:r1 acknowledgement:sender" {
		t.Errorf("queued = %s", got)
	}

	// The same mail again (a crash before the move): no second envelope, no mail.
	if dest, _ := f.handle(t, raw); dest != poller.Processed {
		t.Fatal("the duplicate was not processed")
	}
	if got := f.queued(t); len(got) != 0 {
		t.Errorf("the duplicate queued %s", notices(got))
	}
}

func TestAutomaticMailGetsNoReply(t *testing.T) {
	f := newFixture(t)
	if dest, _ := f.handle(t, corpus(t, "auto-reply.eml")); dest != poller.Processed {
		t.Fatal("an auto-reply must end in Processed")
	}
	if got := f.queued(t); len(got) != 0 {
		t.Fatalf("an auto-reply got %s", notices(got))
	}
}

func rawMail(from, subject, extraHeaders, body string) []byte {
	return []byte(fmt.Sprintf("From: %s\r\nTo: parapheur@org.example\r\nSubject: %s\r\nMessage-ID: <%d.%s@org.example>\r\n"+
		"Authentication-Results: mx.org.example; dmarc=pass header.from=org.example\r\n%s\r\n%s\r\n",
		from, subject, time.Now().UnixNano(), strings.ReplaceAll(subject, " ", ""), extraHeaders, body))
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	pdf := corpus(t, "doc1.pdf")
	encrypted := qpdfEncrypt(t, pdf)
	tests := []struct {
		name, from, instructions string
		pdf                      []byte // nil for a mail without attachment
		want, wantFR             string
	}{
		{"no PDF", "agent@org.example", "Signataire: marie@partner.example", nil,
			"no PDF attachment", "le message n'a aucune pièce jointe PDF"},
		{"no signer", "agent2@org.example", "Visa: chef@org.example", pdf,
			"no signer", "aucun signataire : ajoutez une ligne"},
		{"sender not allowed", "someone@elsewhere.example", "Signataire: marie@partner.example", pdf,
			"someone@elsewhere.example may not submit documents", "l'adresse someone@elsewhere.example n'est pas autorisée"},
		{"bad address", "agent3@org.example", "Signataire: marie@", pdf,
			`"marie@" is not an email address`, "« Signataire: marie@ » : « marie@ » n'est pas une adresse e-mail"},
		{"unknown circuit", "agent4@org.example", "Circuit: nowhere\nSignataire: marie@partner.example", pdf,
			`circuit "nowhere" is not defined`, "le circuit « nowhere » n'existe pas"},
		{"encrypted PDF", "agent5@org.example", "Signataire: marie@partner.example", encrypted,
			`document "convention.pdf" cannot be signed: the PDF file is encrypted`, "le document « convention.pdf » ne peut pas être signé : le fichier PDF est chiffré"},
		{"past deadline", "agent7@org.example", "Signataire: marie@partner.example\nÉchéance: 01/05/2026", pdf,
			"the deadline 2026-05-01 has already passed", "l'échéance du 01/05/2026 est déjà passée"},
		{"not a PDF", "agent6@org.example", "Signataire: marie@partner.example", []byte("%PDF-1.4 garbage"),
			"cannot be signed", "ne peut pas être signé"},
	}
	for _, tt := range tests {
		// The default language is French; a Language line asks for English.
		for _, lang := range []string{"fr", "en"} {
			t.Run(tt.name+" "+lang, func(t *testing.T) {
				from, text, want := tt.from, tt.instructions, tt.wantFR
				if lang == "en" {
					from, text, want = "en-"+from, "Language: en\n"+text, tt.want
				}
				raw := withPDF(from, text, tt.pdf)
				if tt.pdf == nil {
					raw = rawMail(from, "Convention", "", text)
				}
				dest, reason := f.handle(t, raw)
				if dest != poller.Quarantine || !strings.Contains(reason, tt.want) {
					t.Fatalf("dest %v, reason %q; want quarantine saying %q in English", dest, reason, tt.want)
				}
				jobs := f.queued(t)
				if len(jobs) != 1 || jobs[0].Notice != engine.NoticeRefusal || jobs[0].Refusal == nil {
					t.Fatalf("queued %+v, want one refusal", jobs)
				}
				if r := jobs[0].Refusal; r.Language != lang || !strings.Contains(strings.Join(r.Problems, " "), want) {
					t.Fatalf("refusal in %q with problems %q; want %s saying %q", r.Language, r.Problems, lang, want)
				}
			})
		}
	}
}

func withPDF(from, instructions string, pdf []byte) []byte {
	body := "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + instructions + "\r\n--b\r\n" +
		"Content-Type: application/pdf; name=convention.pdf\r\nContent-Disposition: attachment; filename=convention.pdf\r\n\r\n" +
		string(pdf) + "\r\n--b--"
	return rawMail(from, "Convention", "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n", body)
}

func qpdfEncrypt(t *testing.T, pdf []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath("qpdf"); err != nil {
		t.Fatal("qpdf not found: run  apt-get install -y qpdf")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.pdf"), filepath.Join(dir, "out.pdf")
	if err := os.WriteFile(in, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("qpdf", "--encrypt", "user", "owner", "256", "--", in, out).CombinedOutput(); err != nil {
		t.Fatalf("qpdf: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReplyCommandsAndBounces(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pdf := corpus(t, "doc1.pdf")
	if dest, reason := f.handle(t, withPDF("agent@org.example", "Signataire: Marie <marie@partner.example>\nSignataire: paul@partner.example", pdf)); dest != poller.Processed {
		t.Fatalf("submission refused: %s", reason)
	}
	f.queued(t)
	page, err := f.e.Store.List(ctx, store.ListQuery{})
	if err != nil || len(page.Envelopes) != 1 {
		t.Fatalf("envelopes: %v %v", page, err)
	}
	env := page.Envelopes[0]
	root, _ := mailid.ThreadRoot("org.example", env.ID, "r1")

	// A bounce for paul (not yet invited, but named) is recorded and the sender told.
	dsnMail := []byte("From: MAILER-DAEMON@mx.org.example\r\nTo: parapheur+bounce@org.example\r\nSubject: Undelivered Mail Returned to Sender\r\n" +
		"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n" +
		"--r\r\nContent-Type: text/plain\r\n\r\nI'm sorry.\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.org.example\r\n\r\n" +
		"Final-Recipient: rfc822; paul@partner.example\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n" +
		"--r\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <x@org.example>\r\nX-Parapheur-Envelope: " + env.ID + "\r\n\r\n--r--\r\n")
	if dest, reason := f.handle(t, dsnMail); dest != poller.Processed {
		t.Fatalf("DSN: %v %s", dest, reason)
	}
	got, _ := f.e.Store.Get(ctx, env.ID)
	if r := got.Recipient("r2"); !strings.Contains(r.DeliveryFailure, "5.1.1") {
		t.Fatalf("bounce not recorded: %+v", r)
	}
	if got := notices(f.queued(t)); got != "delivery_failure:sender" {
		t.Fatalf("after the bounce, queued %s", got)
	}

	// A report that does not quote the original header is matched by the VERP address it came to.
	verp, err := mailid.ReturnPath("parapheur@org.example", env.ID, "r1")
	if err != nil {
		t.Fatal(err)
	}
	bare := strings.Replace(string(dsnMail), "X-Parapheur-Envelope: "+env.ID+"\r\n", "", 1)
	bare = strings.Replace(bare, "paul@partner.example", "Marie@partner.example", 1)
	bare = "Delivered-To: " + verp + "\r\n" + bare
	if dest, reason := f.handle(t, []byte(bare)); dest != poller.Processed {
		t.Fatalf("DSN by VERP: %v %s", dest, reason)
	}
	got, _ = f.e.Store.Get(ctx, env.ID)
	if r := got.Recipient("r1"); !strings.Contains(r.DeliveryFailure, "5.1.1") {
		t.Fatalf("bounce by VERP not recorded: %+v", r)
	}
	f.queued(t)

	// A decline from another address is refused; from the invited one it ends the envelope.
	decline := func(from string) []byte {
		return rawMail(from, "RE: Invitation", "In-Reply-To: "+root+"\r\nReferences: "+root+"\r\n", "REFUSER: le montant est faux\r\n")
	}
	if dest, reason := f.handle(t, decline("mallory@org.example")); dest != poller.Quarantine || !strings.Contains(reason, "only from the address") {
		t.Fatalf("forged decline: %v %s", dest, reason)
	}
	if jobs := f.queued(t); len(jobs) != 1 || jobs[0].Refusal == nil ||
		!strings.Contains(strings.Join(jobs[0].Refusal.Problems, " "), "un refus n'est accepté que de l'adresse") {
		t.Fatalf("forged decline: queued %+v, want a refusal in the envelope's language (French)", jobs)
	}
	if dest, reason := f.handle(t, decline("marie@partner.example")); dest != poller.Processed {
		t.Fatalf("decline: %v %s", dest, reason)
	}
	got, _ = f.e.Store.Get(ctx, env.ID)
	if got.State != workflow.StateDeclined || got.Reason != "le montant est faux" {
		t.Fatalf("after the decline: %s %q", got.State, got.Reason)
	}
	f.queued(t)

	// A second decline is refused by the engine, in the envelope's language.
	if dest, reason := f.handle(t, decline("marie@partner.example")); dest != poller.Quarantine || !strings.Contains(reason, "has already declined") {
		t.Fatalf("second decline: %v %s", dest, reason)
	}
	if jobs := f.queued(t); len(jobs) != 1 || jobs[0].Refusal == nil ||
		!slices.Equal(jobs[0].Refusal.Problems, []string{"vous avez déjà répondu à cette demande"}) {
		t.Fatalf("second decline: queued %+v, want a refusal in French", jobs)
	}
}

func TestProblemsOfOtherPackages(t *testing.T) {
	locked := unsignable("a.pdf", fmt.Errorf("inspect: %w", pades.ErrLocked))
	if !strings.Contains(locked.EN, `document "a.pdf" cannot be signed: the document is certified`) ||
		!strings.Contains(locked.FR, "le document « a.pdf » ne peut pas être signé : le document est certifié") {
		t.Errorf("locked: %+v", locked)
	}
	unknown := unsignable("b.pdf", errors.New("pdf: something new"))
	if !strings.HasSuffix(unknown.EN, ": pdf: something new") || unknown.FR != "le document « b.pdf » ne peut pas être signé : le fichier PDF ne peut pas être lu" {
		t.Errorf("an unknown error must keep its text in English and read in French: %+v", unknown)
	}
}

func TestTooLargeIsRefusedInTheDefaultLanguage(t *testing.T) {
	f := newFixture(t)
	raw := rawMail("big@org.example", "Gros fichier", "", "Signataire: marie@partner.example")
	dest, reason, err := f.h.Handle(context.Background(), poller.Message{Raw: raw, Size: 2_500_000, TooLarge: true})
	if err != nil || dest != poller.Quarantine || reason != "the message is 2.5 MB; the gateway accepts at most 1.0 MB" {
		t.Fatalf("Handle = %v, %q, %v", dest, reason, err)
	}
	jobs := f.queued(t)
	if len(jobs) != 1 || jobs[0].Refusal == nil ||
		!slices.Equal(jobs[0].Refusal.Problems, []string{"le message fait 2,5 Mo ; le parapheur accepte au plus 1,0 Mo"}) {
		t.Fatalf("queued %+v, want a refusal in French", jobs)
	}
}
