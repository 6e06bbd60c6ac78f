package ingest

import (
	"bytes"
	"context"
	"encoding/base64"
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

	"github.com/prometheus/client_golang/prometheus"

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
	at   *time.Time
	logs *logBuffer
	// metrics holds the handler's Metrics.
	metrics *prometheus.Registry
}

// logBuffer keeps the handler's JSON log lines. The Dovecot tests' poller
// writes them on its goroutine, in Handle, before the handled message is
// signalled; the tests read them after.
type logBuffer struct{ bytes.Buffer }

// returnPathKey is the return path key of the tests' gateway.
var returnPathKey = bytes.Repeat([]byte{0x42}, mailid.KeySize)

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
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	h := New(Config{
		Metrics: NewMetrics(reg),
		Gateway: "parapheur@org.example", Senders: policy, Circuits: circuits,
		DeadlineDays: 30, ReminderDays: 3, Language: "fr", MaxMessageBytes: 1 << 20, Location: paris, AllowDelegation: true, SMS: true,
		Inspect:       func(b []byte) (int, error) { return pades.Inspect(context.Background(), b, 0) },
		ReturnPathKey: returnPathKey,
	}, e, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return fixture{h, e, at, logs, reg}
}

// take returns the lines logged since the last take, decoded.
func (l *logBuffer) take(t testing.TB) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(l.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, m)
	}
	l.Reset()
	return lines
}

// logged returns the lines with message msg that hold every attribute of
// want, of the lines logged since the last take.
func (f fixture) logged(t testing.TB, msg string, want map[string]any) []map[string]any {
	t.Helper()
	var found []map[string]any
	for _, line := range f.logs.take(t) {
		if line["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range want {
			ok = ok && line[k] == v
		}
		if ok {
			found = append(found, line)
		}
	}
	return found
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
		j, err := f.e.OpenJob(it)
		if err != nil {
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

// Each outcome of a submission is counted once: an envelope (its
// duplicate is not), a refusal with a reply, a quarantine without one.
func TestOutcomesCounted(t *testing.T) {
	f := newFixture(t)
	raw := corpus(t, "outlook-fr-forward.eml")
	f.handle(t, raw)
	f.handle(t, raw)
	if dest, _ := f.handle(t, rawMail("agent@org.example", "Convention", "", "Signataire: marie@partner.example")); dest != poller.Quarantine {
		t.Fatal("a mail without PDF was not refused")
	}
	forged := strings.Replace(string(rawMail("agent@org.example", "Convention", "", "Signataire: marie@partner.example")), "dmarc=pass", "dmarc=fail", 1)
	if dest, _ := f.handle(t, []byte(forged)); dest != poller.Quarantine {
		t.Fatal("a mail failing DMARC was not refused")
	}
	if jobs := f.queued(t); len(jobs) != 3 { // acknowledgement, invitation, one refusal
		t.Fatalf("queued %s, want an acknowledgement, an invitation and one refusal", notices(jobs))
	}
	families, err := f.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, fam := range families {
		for _, m := range fam.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if want := map[string]float64{"envelope": 1, "refused": 1, "quarantined": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("parapheur_ingest_mails_total = %v, want %v", got, want)
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

// rawMail is a mail from the address from, which the trusted server
// authenticated (dmarc=pass for its domain) unless extraHeaders has its own
// Authentication-Results.
func rawMail(from, subject, extraHeaders, body string) []byte {
	if !strings.Contains(extraHeaders, "Authentication-Results:") {
		domain := strings.TrimRight(from[strings.LastIndexByte(from, '@')+1:], "> ")
		extraHeaders = "Authentication-Results: mx.org.example; dmarc=pass header.from=" + domain + "\r\n" + extraHeaders
	}
	return []byte(fmt.Sprintf("From: %s\r\nTo: parapheur@org.example\r\nSubject: %s\r\nMessage-ID: <%d.%s@org.example>\r\n%s\r\n%s\r\n",
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
	return withPDFTitled(from, "Convention", instructions, pdf)
}

// withPDFTitled is a submission of pdf in base64: raw binary would not
// survive an IMAP APPEND unchanged.
func withPDFTitled(from, subject, instructions string, pdf []byte) []byte {
	body := "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + instructions + "\r\n--b\r\n" +
		"Content-Type: application/pdf; name=convention.pdf\r\nContent-Disposition: attachment; filename=convention.pdf\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(pdf) + "\r\n--b--"
	return rawMail(from, subject, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n", body)
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

	// A bounce at the return path of paul's mail (not yet sent, but the
	// tag is all that counts) is recorded and the sender told.
	paul := returnPath(t, returnPathKey, env.ID, "r2")
	if dest, reason := f.handle(t, delivered(paul, report(paul, env.ID, "paul@partner.example", ""))); dest != poller.Processed {
		t.Fatalf("DSN: %v %s", dest, reason)
	}
	got, _ := f.e.Store.Get(ctx, env.ID)
	if r := got.Recipient("r2"); !strings.Contains(r.DeliveryFailure, "5.1.1") {
		t.Fatalf("bounce not recorded: %+v", r)
	}
	if got := notices(f.queued(t)); got != "delivery_failure:sender" {
		t.Fatalf("after the bounce, queued %s", got)
	}
	if lines := f.logged(t, "ingest: bounce recorded", map[string]any{"level": "INFO", "envelope": env.ID, "recipient": "r2", "status": "5.1.1"}); len(lines) != 1 {
		t.Errorf("the bounce was logged %d times at Info with its envelope, recipient and status", len(lines))
	}

	// Marie's mail was forwarded: the report names where it went, and her
	// address, as the gateway sent it, as the original recipient.
	marie := returnPath(t, returnPathKey, env.ID, "r1")
	if dest, reason := f.handle(t, delivered(marie, report(marie, env.ID, "marie@elsewhere.example", "Marie@partner.example"))); dest != poller.Processed {
		t.Fatalf("DSN of a forwarded mail: %v %s", dest, reason)
	}
	got, _ = f.e.Store.Get(ctx, env.ID)
	if r := got.Recipient("r1"); !strings.Contains(r.DeliveryFailure, "5.1.1") {
		t.Fatalf("bounce of the forwarded mail not recorded: %+v", r)
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
	} else if r := jobs[0].Refusal; !r.Command || !strings.Contains(r.Usage, "REFUSER : votre motif") || strings.Contains(r.Usage, "Signataire") {
		t.Errorf("forged decline: the refusal is told as a submission's (command %v), or does not say how to reply:\n%s", r.Command, r.Usage)
	}
	// The invited address, but the trusted server says its domain failed
	// DMARC: forged, not applied, not answered.
	forged := rawMail("marie@partner.example", "RE: Invitation", "Authentication-Results: mx.org.example; dmarc=fail header.from=partner.example\r\n"+
		"In-Reply-To: "+root+"\r\nReferences: "+root+"\r\n", "REFUSER: faux refus\r\n")
	if dest, reason := f.handle(t, forged); dest != poller.Quarantine || !strings.Contains(reason, "failed DMARC") {
		t.Fatalf("decline failing DMARC: %v %s", dest, reason)
	}
	if jobs := f.queued(t); len(jobs) != 0 {
		t.Fatalf("decline failing DMARC: queued %+v, want no reply", jobs)
	}
	if got, _ := f.e.Store.Get(ctx, env.ID); got.State != workflow.StateInProgress {
		t.Fatalf("a decline failing DMARC acted: %s", got.State)
	}
	// The invited address, with no result of the trusted server (only one
	// the sender wrote): under senders.require_auth, not applied, and the
	// refusal says to use the link.
	unauthenticated := rawMail("marie@partner.example", "RE: Invitation", "Authentication-Results: evil.example; dmarc=pass header.from=partner.example\r\n"+
		"In-Reply-To: "+root+"\r\nReferences: "+root+"\r\n", "REFUSER: refus non authentifié\r\n")
	if dest, reason := f.handle(t, unauthenticated); dest != poller.Quarantine || !strings.Contains(reason, "did not authenticate the reply command's sender") {
		t.Fatalf("unauthenticated decline: %v %s", dest, reason)
	}
	if jobs := f.queued(t); len(jobs) != 1 || jobs[0].Refusal == nil || !strings.Contains(strings.Join(jobs[0].Refusal.Problems, " "), "utilisez plutôt le lien") {
		t.Fatalf("unauthenticated decline: queued %+v, want a refusal pointing to the link", jobs)
	}
	if got, _ := f.e.Store.Get(ctx, env.ID); got.State != workflow.StateInProgress {
		t.Fatalf("an unauthenticated decline acted: %s", got.State)
	}
	*f.at = f.at.Add(25 * time.Hour) // past the one refusal a day Marie's address may get
	if dest, reason := f.handle(t, decline("marie@partner.example")); dest != poller.Processed {
		t.Fatalf("decline: %v %s", dest, reason)
	}
	got, _ = f.e.Store.Get(ctx, env.ID)
	if got.State != workflow.StateDeclined || got.Reason != "le montant est faux" {
		t.Fatalf("after the decline: %s %q", got.State, got.Reason)
	}
	f.queued(t)
	if lines := f.logged(t, "ingest: reply command applied", map[string]any{"level": "INFO", "envelope": env.ID, "recipient": "r1", "command": "decline"}); len(lines) != 1 {
		t.Errorf("the decline was logged %d times at Info with its envelope, recipient and command", len(lines))
	}

	// A second decline is refused by the engine, in the envelope's language.
	if dest, reason := f.handle(t, decline("marie@partner.example")); dest != poller.Quarantine || !strings.Contains(reason, "has already declined") {
		t.Fatalf("second decline: %v %s", dest, reason)
	}
	if jobs := f.queued(t); len(jobs) != 1 || jobs[0].Refusal == nil ||
		!slices.Equal(jobs[0].Refusal.Problems, []string{"vous avez déjà répondu à cette demande"}) {
		t.Fatalf("second decline: queued %+v, want a refusal in French", jobs)
	}
}

// A command that is not believed is refused in the language of the
// envelope whose thread it replies on, as every other refusal of a
// command is, not in the gateway's default.
func TestUnbelievedCommandRefusedInTheEnvelopeLanguage(t *testing.T) {
	f := newFixture(t)
	if dest, reason := f.handle(t, withPDF("agent@org.example", "Signer: Marie <marie@partner.example>\nLanguage: en", corpus(t, "doc1.pdf"))); dest != poller.Processed {
		t.Fatalf("submission refused: %s", reason)
	}
	f.queued(t)
	env := f.onlyEnvelope(t)
	root, _ := mailid.ThreadRoot("org.example", env.ID, "r1")
	// Only a result the sender wrote, not the trusted server's.
	raw := rawMail("marie@partner.example", "RE: Please sign", "Authentication-Results: evil.example; dmarc=pass header.from=partner.example\r\n"+
		"In-Reply-To: "+root+"\r\nReferences: "+root+"\r\n", "DECLINE: not our text\r\n")
	if dest, reason := f.handle(t, raw); dest != poller.Quarantine {
		t.Fatalf("unauthenticated decline: %v %s, want quarantine", dest, reason)
	}
	want := "the receiving mail server did not authenticate the reply command's sender"
	if jobs := f.queued(t); len(jobs) != 1 || jobs[0].Refusal == nil || !strings.Contains(strings.Join(jobs[0].Refusal.Problems, " "), want) {
		t.Fatalf("unauthenticated decline: queued %+v, want a refusal in English saying %q", jobs, want)
	}
}

// A mail with no subject, or only a reply prefix, is titled by its
// document's file name rather than left untitled.
func TestUntitledMailTakesTheDocumentName(t *testing.T) {
	for _, subject := range []string{"", "RE: Fwd:"} {
		f := newFixture(t)
		if dest, reason := f.handle(t, withPDFTitled("agent@org.example", subject, "Signataire: marie@partner.example", corpus(t, "doc1.pdf"))); dest != poller.Processed {
			t.Fatalf("subject %q: refused: %s", subject, reason)
		}
		f.queued(t)
		if env := f.onlyEnvelope(t); env.Title != "convention.pdf" {
			t.Errorf("subject %q: title %q, want the document's name", subject, env.Title)
		}
	}
}

// The mails answering a submission name its thread (RFC 5322 §3.6.4): the
// envelope keeps the submission's References for the acknowledgement and
// the sender's later mails, a refusal job carries them; a mail with only
// In-Reply-To stands for its References.
func TestSubmissionThreadKept(t *testing.T) {
	threaded := func(raw []byte, headers string) []byte {
		return bytes.Replace(raw, []byte("MIME-Version: 1.0\r\n"), []byte(headers+"MIME-Version: 1.0\r\n"), 1)
	}
	f := newFixture(t)
	raw := threaded(withPDFTitled("agent@org.example", "TR: Convention", "Signataire: marie@partner.example", corpus(t, "doc1.pdf")),
		"In-Reply-To: <b@partner.example>\r\nReferences: <a@partner.example> <b@partner.example>\r\n")
	if dest, reason := f.handle(t, raw); dest != poller.Processed {
		t.Fatalf("refused: %s", reason)
	}
	f.queued(t)
	if env := f.onlyEnvelope(t); !slices.Equal(env.References, []string{"a@partner.example", "b@partner.example"}) {
		t.Errorf("envelope References %v", env.References)
	}
	raw = threaded(withPDFTitled("agent@org.example", "TR: Convention", "Signataire:", corpus(t, "doc1.pdf")), "In-Reply-To: <c@partner.example>\r\n")
	if dest, _ := f.handle(t, raw); dest != poller.Quarantine {
		t.Fatal("a mail without a signer was not refused")
	}
	jobs := f.queued(t)
	if len(jobs) != 1 || jobs[0].Refusal == nil || !slices.Equal(jobs[0].Refusal.References, []string{"c@partner.example"}) {
		t.Errorf("refusal jobs %+v, want one naming c@partner.example", jobs)
	}
}

// A reply on the thread of an invitation with no command ("Thanks", a
// question for the sender) is told that no one read it and how to act;
// a command badly written is answered as a command. Both in the
// envelope's language, with the commands' help, not a submission's.
func TestRepliesWithoutACommand(t *testing.T) {
	for _, lang := range []string{"fr", "en"} {
		f := newFixture(t)
		if dest, reason := f.handle(t, withPDF("agent@org.example", "Signataire: Marie <marie@partner.example>\nLangue: "+lang, corpus(t, "doc1.pdf"))); dest != poller.Processed {
			t.Fatalf("submission refused: %s", reason)
		}
		f.queued(t)
		env := f.onlyEnvelope(t)
		root, _ := mailid.ThreadRoot("org.example", env.ID, "r1")
		for _, tt := range []struct{ name, body, wantFR, wantEN string }{
			{"a question", "Bonjour, pouvez-vous me rappeler ?", "personne ne l'a lue", "no person read it"},
			{"a decline without its reason", "REFUSER :", "donnez la raison du refus", "give the reason for declining"},
			{"a decline without its colon", "refuser le montant est faux", "ressemble à une commande sans ses deux-points", "reads like a command without its colon"},
			{"two commands", "REFUSER : mauvais document\r\nDÉLÉGUER : Paul <paul@partner.example>", "une réponse porte une seule commande", "a reply carries one command"},
		} {
			*f.at = f.at.Add(25 * time.Hour) // past the one refusal a day Marie's address may get
			raw := rawMail("Marie <marie@partner.example>", "RE: Invitation", "In-Reply-To: "+root+"\r\nReferences: "+root+"\r\n", tt.body+"\r\n\r\n> À signer\r\n")
			if dest, reason := f.handle(t, raw); dest != poller.Quarantine {
				t.Fatalf("%s, %s: %v %s, want quarantine", lang, tt.name, dest, reason)
			}
			want := map[string]string{"fr": tt.wantFR, "en": tt.wantEN}[lang]
			jobs := f.queued(t)
			if len(jobs) != 1 || jobs[0].Refusal == nil || !strings.Contains(strings.Join(jobs[0].Refusal.Problems, " "), want) {
				t.Fatalf("%s, %s: queued %+v, want a refusal saying %q", lang, tt.name, jobs, want)
			}
			if r := jobs[0].Refusal; !r.Command || r.Language != lang {
				t.Errorf("%s, %s: refusal told as a command %v, in %q", lang, tt.name, r.Command, r.Language)
			}
		}
		if got, _ := f.e.Store.Get(context.Background(), env.ID); got.State != workflow.StateInProgress || got.Recipient("r1").State != workflow.Pending {
			t.Fatalf("%s: the replies changed the envelope: %s", lang, got.State)
		}
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

// onlyEnvelope returns the one envelope of the fixture's store.
func (f fixture) onlyEnvelope(t *testing.T) *workflow.Envelope {
	t.Helper()
	page, err := f.e.Store.List(context.Background(), store.ListQuery{})
	if err != nil || len(page.Envelopes) != 1 {
		t.Fatalf("envelopes: %v %v", page, err)
	}
	return page.Envelopes[0]
}

// The envelope keeps whether the submission chose its language, and whether
// the configuration allowed delegation when it was made.
func TestDraftLanguageAndDelegation(t *testing.T) {
	pdf := corpus(t, "doc1.pdf")
	for _, tt := range []struct {
		name, instructions string
		allowDelegation    bool
		wantLanguage       string
		wantGiven          bool
	}{
		{"default language, delegation allowed", "Signataire: marie@partner.example", true, "fr", false},
		{"language given", "Langue: en\nSignataire: marie@partner.example", true, "en", true},
		{"the default language written out", "Language: fr\nSigner: marie@partner.example", true, "fr", true},
		{"delegation not allowed", "Signataire: marie@partner.example", false, "fr", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.h.cfg.AllowDelegation = tt.allowDelegation
			if dest, reason := f.handle(t, withPDF("agent@org.example", tt.instructions, pdf)); dest != poller.Processed {
				t.Fatalf("submission refused: %s", reason)
			}
			env := f.onlyEnvelope(t)
			if env.Language != tt.wantLanguage || env.LanguageGiven != tt.wantGiven || env.NoDelegation == tt.allowDelegation {
				t.Errorf("language %q given %v, no delegation %v; want %q, %v, %v",
					env.Language, env.LanguageGiven, env.NoDelegation, tt.wantLanguage, tt.wantGiven, !tt.allowDelegation)
			}
		})
	}
}

func TestReplyDelegation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if dest, reason := f.handle(t, withPDF("agent@org.example", "Signataire: Marie <marie@partner.example>\nSignataire: paul@partner.example", corpus(t, "doc1.pdf"))); dest != poller.Processed {
		t.Fatalf("submission refused: %s", reason)
	}
	f.queued(t)
	env := f.onlyEnvelope(t)
	root, _ := mailid.ThreadRoot("org.example", env.ID, "r1")
	delegate := func(from, command string) []byte {
		return rawMail(from, "RE: Invitation", "In-Reply-To: "+root+"\r\nReferences: "+root+"\r\n", command+"\r\n\r\n> À signer\r\n")
	}
	// Each refused command is answered, in the envelope's language (French);
	// the clock moves a day between them, past the one refusal a day an
	// address outside the senders' domains may get.
	for _, tt := range []struct{ name, from, command, want, wantFR string }{
		{"from another address", "mallory@org.example", "DELEGATE: Mallory <mallory@org.example>",
			"only from the address", "une délégation n'est acceptée que de l'adresse à laquelle l'invitation a été envoyée"},
		{"without an address", "marie@partner.example", "DÉLÉGUER :",
			"give the name and address", "indiquez après les deux-points le nom et l'adresse"},
		{"to a name only", "marie@partner.example", "Déléguer: Louise Martin",
			`"Louise Martin" is not an email address`, "« Louise Martin » n'est pas une adresse électronique"},
		{"to an address the gateway cannot reach", "marie@partner.example", "DÉLÉGUER: Hélène <hélène@partner.example>",
			"the gateway cannot send mail to hélène@partner.example", "le parapheur ne peut pas envoyer de message à « hélène@partner.example »"},
		{"to the gateway", "marie@partner.example", "DELEGATE: Parapheur <Parapheur@org.example>",
			"cannot be a delegate", "l'adresse du parapheur, parapheur@org.example, ne peut pas recevoir la délégation"},
		{"to oneself", "marie@partner.example", "DELEGATE: MARIE@partner.example",
			"cannot delegate to their own address", "ne peut pas se déléguer à sa propre adresse"},
		{"to someone of another step", "marie@partner.example", "DELEGATE: Paul@partner.example",
			"already has a place at step 2 of this envelope", "paul@partner.example a déjà une place à l'étape 2 de cette demande"},
	} {
		*f.at = f.at.Add(25 * time.Hour)
		dest, reason := f.handle(t, delegate(tt.from, tt.command))
		if dest != poller.Quarantine || !strings.Contains(reason, tt.want) {
			t.Fatalf("%s: %v %q; want quarantine saying %q", tt.name, dest, reason, tt.want)
		}
		if jobs := f.queued(t); len(jobs) != 1 || jobs[0].Refusal == nil || !strings.Contains(strings.Join(jobs[0].Refusal.Problems, " "), tt.wantFR) {
			t.Fatalf("%s: queued %+v, want a refusal saying %q", tt.name, jobs, tt.wantFR)
		}
	}
	if got, _ := f.e.Store.Get(ctx, env.ID); got.Recipient("r1").State != workflow.Pending || len(got.Recipients) != 2 {
		t.Fatalf("a refused delegation changed the envelope: %+v", got.Recipients)
	}

	// From the invited address, without a code, it delegates: the delegate
	// is invited and the sender told; a reason after the address is kept.
	if dest, reason := f.handle(t, delegate("Marie <Marie@partner.example>", "Déléguer : Louise Martin <louise@partner.example> – en congé")); dest != poller.Processed {
		t.Fatalf("delegation: %v %s", dest, reason)
	}
	got, _ := f.e.Store.Get(ctx, env.ID)
	r1, r3 := got.Recipient("r1"), got.Recipient("r3")
	if r1.State != workflow.HasDelegated || r3 == nil || r3.Email != "louise@partner.example" || r3.Name != "Louise Martin" || r3.DelegatedFrom != "r1" || r3.State != workflow.Pending {
		t.Fatalf("after the delegation: r1 %+v, r3 %+v", r1, r3)
	}
	if got := notices(f.queued(t)); got != "delegated:r1 invitation:r3 delegated:sender" {
		t.Fatalf("after the delegation, queued %s", got)
	}
	if lines := f.logged(t, "ingest: reply command applied", map[string]any{"level": "INFO", "envelope": env.ID, "recipient": "r1", "command": "delegate"}); len(lines) != 1 {
		t.Errorf("the delegation was logged %d times at Info with its envelope, recipient and command", len(lines))
	}
	trail, err := f.e.Store.AuditTrail(ctx, env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := trail[len(trail)-1]; last.Type != "delegated" || last.Details["authenticated_by"] != "reply mail" || last.Details["to_email"] != "louise@partner.example" || last.Details["reason"] != "en congé" {
		t.Errorf("last audit record %+v, want the delegation by reply mail", last)
	}

	// Marie has handed her place on: a second delegation is refused.
	*f.at = f.at.Add(25 * time.Hour)
	if dest, reason := f.handle(t, delegate("marie@partner.example", "DELEGATE: jean@partner.example")); dest != poller.Quarantine || !strings.Contains(reason, "has already delegated") {
		t.Fatalf("second delegation: %v %s", dest, reason)
	}
	f.queued(t)

	// In an envelope made while delegation was off, it is refused.
	f.h.cfg.AllowDelegation = false
	if dest, reason := f.handle(t, withPDF("agent@org.example", "Signataire: jean@partner.example", corpus(t, "doc1.pdf"))); dest != poller.Processed {
		t.Fatalf("submission refused: %s", reason)
	}
	f.queued(t)
	page, err := f.e.Store.List(ctx, store.ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range page.Envelopes {
		if other.ID == env.ID {
			continue
		}
		root, _ := mailid.ThreadRoot("org.example", other.ID, "r1")
		raw := rawMail("jean@partner.example", "RE: Invitation", "In-Reply-To: "+root+"\r\n", "DELEGATE: louise@partner.example\r\n")
		if dest, reason := f.handle(t, raw); dest != poller.Quarantine || !strings.Contains(reason, "delegation is not allowed") {
			t.Fatalf("delegation where it is off: %v %s", dest, reason)
		}
		if jobs := f.queued(t); len(jobs) != 1 || jobs[0].Refusal == nil || !strings.Contains(strings.Join(jobs[0].Refusal.Problems, " "), "la délégation n'est pas permise") {
			t.Fatalf("delegation where it is off: queued %+v", jobs)
		}
		return
	}
	t.Fatal("the second envelope was not made")
}

// A mail with no PDF is told what it has instead, and what winmail.dat
// means; nameless inline images are not named.
func TestNoPDFNamesWhatItHas(t *testing.T) {
	f := newFixture(t)
	part := func(name, ctype string) string {
		disposition := ""
		if name != "" {
			disposition = "Content-Disposition: attachment; filename=" + name + "\r\n"
		}
		return "--b\r\nContent-Type: " + ctype + "\r\n" + disposition + "Content-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n"
	}
	for _, tt := range []struct {
		name, parts, want, wantFR string
	}{
		{"a Word file", part("contrat.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document") + part("", "image/png"),
			"(it has contrat.docx, which is not a PDF file)", "(il contient contrat.docx, qui n'est pas un PDF)"},
		{"winmail.dat", part("winmail.dat", "application/ms-tnef") + part("logo.png", "image/png"),
			"(it has winmail.dat, logo.png, which are not PDF files); winmail.dat means that Outlook sent the mail in its own format",
			"(il contient winmail.dat, logo.png, qui ne sont pas des PDF) ; winmail.dat signifie qu'Outlook"},
	} {
		*f.at = f.at.Add(2 * time.Hour) // past the hourly cap of refusals
		body := "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSignataire: marie@partner.example\r\n" + tt.parts + "--b--"
		dest, reason := f.handle(t, rawMail("agent@org.example", "Convention", "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n", body))
		if dest != poller.Quarantine || !strings.Contains(reason, tt.want) {
			t.Fatalf("%s: %v %q; want quarantine saying %q", tt.name, dest, reason, tt.want)
		}
		if jobs := f.queued(t); len(jobs) != 1 || jobs[0].Refusal == nil || !strings.Contains(strings.Join(jobs[0].Refusal.Problems, " "), tt.wantFR) {
			t.Fatalf("%s: queued %+v, want a refusal saying %q", tt.name, jobs, tt.wantFR)
		}
	}
}

// "Rappel : 0" makes an envelope without reminders, whatever the default;
// no line keeps the default; a number sets the interval.
func TestReminderLine(t *testing.T) {
	pdf := corpus(t, "doc1.pdf")
	for _, tt := range []struct {
		line string
		want time.Duration
	}{{"", 3 * 24 * time.Hour}, {"Rappel : 0\n", 0}, {"Reminder: 5\n", 5 * 24 * time.Hour}} {
		f := newFixture(t)
		f.h.cfg.ReminderDays = 3
		if dest, reason := f.handle(t, withPDF("agent@org.example", tt.line+"Signataire: marie@partner.example", pdf)); dest != poller.Processed {
			t.Fatalf("%q: refused: %s", tt.line, reason)
		}
		if env := f.onlyEnvelope(t); env.ReminderEvery != tt.want || (tt.want == 0) != env.NextReminder.IsZero() {
			t.Errorf("%q: reminders every %v (next %v), want %v", tt.line, env.ReminderEvery, env.NextReminder, tt.want)
		}
	}
}
