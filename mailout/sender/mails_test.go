package sender

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/parapheur/parapheur/mailout/compose"
	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// withMails makes a fixture compose with package compose.
func withMails(t testing.TB) func(*Config) {
	return func(c *Config) { c.Composer = newMails(t, c.Outbox.Store) }
}

// newMails is the gateway's composer over st.
func newMails(t testing.TB, st store.Store) *Mails {
	cc, err := compose.New(compose.Config{Address: gateway, PublicURL: "https://sign.org.example", ReturnPathKey: returnPathKey})
	if err != nil {
		t.Fatal(err)
	}
	return &Mails{Composer: cc, Store: st, Domain: domain, PublicURL: "https://sign.org.example"}
}

// parts reads a message's header and its text/plain part.
func parts(t testing.TB, raw []byte) (*mail.Header, string) {
	t.Helper()
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var text string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h, ok := p.Header.(*mail.InlineHeader); ok {
			if ct, _, _ := h.ContentType(); ct == "text/plain" {
				b, _ := io.ReadAll(p.Body)
				text = string(b)
			}
		}
	}
	return &mr.Header, text
}

var linkIn = regexp.MustCompile(`https://sign\.org\.example/s/([A-Za-z0-9_-]+)`)

// The gateway's real mails, composed by package compose from the outbox
// jobs, reach the mailboxes through Postfix and Dovecot and read back: the
// French subject, the signing link whose token the envelope knows, the
// acknowledgement's status link, the VERP return path.
func TestComposedMailsArrive(t *testing.T) {
	f := newFixture(t, withMails(t))
	env, err := f.eng.Create(context.Background(), workflow.Draft{
		ID: engine.EnvelopeID(fmt.Sprint("composed ", time.Now().UnixNano())), Title: "Convention été 2026", Language: "fr",
		Sender:    workflow.Party{Name: "Bob Agent", Email: "bob@example.com"},
		MessageID: "<submission.1@mail.example.com>",
		Documents: []workflow.Document{{Name: "convention.pdf", Pages: 3, Original: strings.Repeat("ab", 32), Size: 1000}},
		Ignored:   []workflow.Attachment{{Name: "budget.xlsx", ContentType: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}},
		Steps:     []workflow.DraftStep{{Role: workflow.Signer, Parties: []workflow.Party{{Name: "Alice Martin", Email: "alice@example.com"}}}},
		Deadline:  f.clock.now().Add(30 * 24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.drain(t); n != 2 {
		t.Fatalf("%d items, want 2", n)
	}
	if buried, _ := f.st.Buried(context.Background(), engine.MailQueue); len(buried) != 0 {
		t.Fatalf("buried: %+v", buried)
	}

	h, text := parts(t, fetchBy(t, "alice", "X-Parapheur-Envelope", env.ID))
	if s, _ := h.Subject(); s != "À signer : Convention été 2026" {
		t.Errorf("invitation subject %q", s)
	}
	if verp, _ := mailid.ReturnPath(returnPathKey, gateway, env.ID, "r1"); h.Get("Return-Path") != "<"+verp+">" {
		t.Errorf("Return-Path %q, want <%s>", h.Get("Return-Path"), verp)
	}
	if id, _ := h.MessageID(); !strings.HasSuffix(id, "@"+domain) || h.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("Message-ID %q, Auto-Submitted %q", id, h.Get("Auto-Submitted"))
	}
	m := linkIn.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no signing link in the invitation:\n%s", text)
	}
	stored, err := f.st.Get(context.Background(), env.ID)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(m[1]))
	if eid, rid, err := f.st.ByToken(context.Background(), sum[:]); err != nil || eid != env.ID || rid != "r1" {
		t.Errorf("the link's token finds %q %q, %v; want %s r1", eid, rid, err, env.ID)
	}
	if stored.Recipient("r1").SentAt.IsZero() {
		t.Error("invitation not recorded as sent")
	}

	h, text = parts(t, fetchBy(t, "bob", "X-Parapheur-Envelope", env.ID))
	if irt := h.Get("In-Reply-To"); irt != "<submission.1@mail.example.com>" {
		t.Errorf("acknowledgement In-Reply-To %q, want the submission", irt)
	}
	status := regexp.MustCompile(`https://sign\.org\.example/e/([A-Za-z0-9_-]+)`).FindStringSubmatch(text)
	if status == nil {
		t.Fatalf("no status link in the acknowledgement:\n%s", text)
	}
	sum = sha256.Sum256([]byte(status[1]))
	if eid, who, err := f.st.ByToken(context.Background(), sum[:]); err != nil || eid != env.ID || who != workflow.SenderID {
		t.Errorf("the status link's token finds %q %q, %v; want %s %s", eid, who, err, env.ID, workflow.SenderID)
	}
	if !strings.Contains(text, "budget.xlsx") {
		t.Errorf("the acknowledgement does not list the ignored attachment:\n%s", text)
	}
}

// A delegation by reply reaches the delegate as an invitation naming who
// delegated, and the sender as a delegated mail; five wrong codes of the
// delegate reach the sender as a code_locked mail. All through Postfix and
// Dovecot.
func TestComposedDelegationAndCodeLock(t *testing.T) {
	f := newFixture(t, withMails(t))
	ctx := context.Background()
	// English and an ASCII title: the subjects are plain, and IMAP SEARCH
	// finds each mail by its subject.
	title := fmt.Sprint("Agreement ", time.Now().UnixNano())
	env, err := f.eng.Create(ctx, workflow.Draft{
		ID: engine.EnvelopeID(title), Title: title, Language: "en",
		Sender:    workflow.Party{Name: "Bob Agent", Email: "bob@example.com"},
		Documents: []workflow.Document{{Name: "agreement.pdf", Pages: 3, Original: strings.Repeat("ab", 32), Size: 1000}},
		Steps:     []workflow.DraftStep{{Role: workflow.Signer, Parties: []workflow.Party{{Name: "Alice Martin", Email: "alice@example.com"}}}},
		Deadline:  f.clock.now().Add(30 * 24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.drain(t); n != 2 {
		t.Fatalf("%d items, want the acknowledgement and the invitation", n)
	}
	if _, err := f.eng.Event(ctx, env.ID, workflow.Delegated{Meta: workflow.Meta{At: f.clock.now()}, RecipientID: "r1",
		To: workflow.Party{Name: "Records Office", Email: "archives@example.com"}, Reason: "On leave until Monday", ByMail: true}); err != nil {
		t.Fatal(err)
	}
	if n := f.drain(t); n != 3 {
		t.Fatalf("%d items, want the delegate's invitation, the sender's notice and Alice's confirmation", n)
	}

	h, text := parts(t, fetchBy(t, "archives", "X-Parapheur-Envelope", env.ID))
	if s, _ := h.Subject(); s != "Please sign: "+title {
		t.Errorf("delegate's invitation subject %q", s)
	}
	for _, want := range []string{"Alice Martin <alice@example.com> handed their signature to you, saying:", "On leave until Monday", "DELEGATE:"} {
		if !strings.Contains(text, want) {
			t.Errorf("the delegate's invitation does not say %q:\n%s", want, text)
		}
	}
	m := linkIn.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no signing link in the delegate's invitation:\n%s", text)
	}
	sum := sha256.Sum256([]byte(m[1]))
	if eid, rid, err := f.st.ByToken(ctx, sum[:]); err != nil || eid != env.ID || rid != "r2" {
		t.Errorf("the delegate's link finds %q %q, %v; want %s r2", eid, rid, err, env.ID)
	}

	_, text = parts(t, fetchBy(t, "bob", "Subject", "Delegated: "+title))
	for _, want := range []string{"Alice Martin <alice@example.com> handed their signature", "Records Office <archives@example.com>", "On leave until Monday"} {
		if !strings.Contains(text, want) {
			t.Errorf("the sender's delegated mail does not say %q:\n%s", want, text)
		}
	}
	// Alice delegated by mail and sees no page: the notice confirms it.
	_, text = parts(t, fetchBy(t, "alice", "Subject", "Delegated: "+title))
	for _, want := range []string{"You handed your signature", "Records Office <archives@example.com>", "in your place", "nothing more to do"} {
		if !strings.Contains(text, want) {
			t.Errorf("Alice's confirmation does not say %q:\n%s", want, text)
		}
	}

	if _, err := f.eng.SendCode(ctx, env.ID, "r2", workflow.Client{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	for i := range workflow.MaxCodeFailures {
		if _, err := f.eng.VerifyCode(ctx, env.ID, "r2", "wrong", workflow.Client{IP: "192.0.2.1"}); !errors.Is(err, workflow.ErrWrongCode) {
			t.Fatalf("wrong code %d: %v", i+1, err)
		}
	}
	if n := f.drain(t); n != 2 {
		t.Fatalf("%d items, want the code and the sender's code_locked notice", n)
	}
	_, text = parts(t, fetchBy(t, "bob", "Subject", "Code locked: "+title))
	for _, want := range []string{"entered 5 times", "Records Office <archives@example.com>", "ask for a new code"} {
		if !strings.Contains(text, want) {
			t.Errorf("the sender's code_locked mail does not say %q:\n%s", want, text)
		}
	}
}

// send queues the mail job payload, of an item ID starting with prefix,
// and sends it: it must not be buried.
func (f *fixture) send(t *testing.T, prefix string, payload []byte) {
	t.Helper()
	if err := f.st.Enqueue(context.Background(), store.Item{ID: fmt.Sprint(prefix, time.Now().UnixNano()), Queue: engine.MailQueue, Payload: payload, NotBefore: f.clock.now()}); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	if buried, _ := f.st.Buried(context.Background(), engine.MailQueue); len(buried) != 0 {
		t.Fatalf("buried: %+v", buried)
	}
}

// A refusal job (no envelope) gets the null reverse-path and the usage
// help; a job for a missing envelope is buried.
func TestComposedRefusal(t *testing.T) {
	f := newFixture(t, withMails(t))
	job := fmt.Sprintf(`{"notice":"refusal","envelope_id":"","to":"","refusal":{"to":{"email":"bob@example.com"},"subject":"Convention","message_id":"<r.%d@example.com>","problems":["Le message ne contient aucun PDF."],"usage":"Comment écrire les instructions","language":"fr"}}`, time.Now().UnixNano())
	f.send(t, "refusal/", []byte(job))
	h, text := parts(t, fetchBy(t, "bob", "Subject", "Non enregistré"))
	if rp := h.Get("Return-Path"); rp != "<>" {
		t.Errorf("Return-Path %q, want the null path", rp)
	}
	if !strings.Contains(text, "Le message ne contient aucun PDF.") || !strings.Contains(text, "Comment écrire les instructions") {
		t.Errorf("problem or usage not stated:\n%s", text)
	}
}

// A verification job (no envelope) goes through its JSON payload to a
// threaded reply with the null reverse-path, the report of each file and
// the way to use the verification address.
func TestComposedVerification(t *testing.T) {
	f := newFixture(t, withMails(t))
	asked := fmt.Sprintf("v.%d@example.com", time.Now().UnixNano())
	job, err := json.Marshal(engine.Job{Notice: engine.NoticeVerification, Verification: &engine.Verification{
		To: workflow.Party{Email: "bob@example.com"}, Subject: "Contrat signé", MessageID: asked, References: []string{"root@example.com"},
		Address: "parapheur+verifier@org.example", Language: "fr", Ignored: []workflow.Attachment{{Name: "notes.docx", ContentType: "application/msword"}},
		Files: []verdict.File{{Name: "contrat.pdf", Size: "48 ko", SHA256: strings.Repeat("ab", 32), Verdict: "Valide : la signature est intacte.", Valid: true,
			Envelope: "Demande E123 (en cours).", Signatures: []verdict.Signature{{Signer: "Marie Curie", Level: "B-B", Verdict: "Signature intacte.", Intact: true}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.send(t, "verification/", job)
	h, text := parts(t, fetchBy(t, "bob", "Subject", "Re: Contrat signé"))
	if rp := h.Get("Return-Path"); rp != "<>" {
		t.Errorf("Return-Path %q, want the null path", rp)
	}
	if irt := h.Get("In-Reply-To"); irt != "<"+asked+">" {
		t.Errorf("In-Reply-To %q, want <%s>", irt, asked)
	}
	if refs := h.Get("References"); refs != "<root@example.com> <"+asked+">" {
		t.Errorf("References %q, want the asking mail's, then it", refs)
	}
	for _, want := range []string{"notes.docx (application/msword)", "contrat.pdf", "Valide : la signature est intacte.", "Demande E123 (en cours).", "Marie Curie", "parapheur+verifier@org.example"} {
		if !strings.Contains(text, want) {
			t.Errorf("the reply does not say %q:\n%s", want, text)
		}
	}
}

// A recipient whose local part needs quotes ("a@b"@example.com, which
// net/mail hands over unquoted) or whose domain is internationalised is
// routed in the form SMTP takes: quotes kept, A-labels.
func TestComposeRoutesTheSMTPForm(t *testing.T) {
	f := newFixture(t, nil)
	env, err := f.eng.Create(context.Background(), workflow.Draft{
		ID: engine.EnvelopeID(fmt.Sprint("routes ", time.Now().UnixNano())), Title: "Convention", Language: "fr",
		Sender:    workflow.Party{Name: "Bob Agent", Email: "bob@example.com"},
		Documents: []workflow.Document{{Name: "convention.pdf", Pages: 1, Original: strings.Repeat("ab", 32), Size: 1000}},
		Steps: []workflow.DraftStep{{Role: workflow.Signer, Parties: []workflow.Party{
			{Name: "Quoted", Email: "a@b@example.com"}, {Name: "Zoé", Email: "zoe@Société.example"}}}},
		Deadline: f.clock.now().Add(30 * 24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	mails := newMails(t, f.st)
	for rid, want := range map[string]string{"r1": `"a@b"@example.com`, "r2": "zoe@xn--socit-esab.example"} {
		var b bytes.Buffer
		route, err := mails.Compose(context.Background(), &store.Item{ID: env.ID + "/x/" + rid, NotBefore: f.clock.now()},
			engine.Job{Notice: workflow.Invitation, EnvelopeID: env.ID, To: rid, Token: "t"}, &b)
		if err != nil || len(route.To) != 1 || route.To[0] != want {
			t.Errorf("%s: route %+v, %v; want To %s", rid, route, err, want)
		}
		if h, _ := parts(t, b.Bytes()); !strings.Contains(h.Get("To"), want) {
			t.Errorf("%s: To header %q, want it to show %s", rid, h.Get("To"), want)
		}
	}
}
