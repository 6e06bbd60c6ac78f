package sender

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox"
	"github.com/parapheur/parapheur/workflow/outbox/outboxtest"
)

// A mail to alice arrives in her mailbox with the item's Message-ID, and
// the envelope's audit trail shows the attempt with Postfix's answer.
func TestDeliveredToMailbox(t *testing.T) {
	f := newFixture(t, nil)
	env := f.envelope(t, "alice@example.com")
	if n := f.drain(t); n != 2 {
		t.Fatalf("%d items carried out, want 2", n)
	}
	inv := f.messageID(t, "invitation/r1")

	raw := fetch(t, "alice", inv)
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := mr.Header.MessageID(); err != nil || id != inv {
		t.Errorf("Message-ID = %q, %v; want %q", id, err, inv)
	}
	if verp, _ := mailid.ReturnPath(returnPathKey, gateway, env.ID, "r1"); mr.Header.Get("Return-Path") != "<"+verp+">" {
		t.Errorf("Return-Path = %q, want the VERP address <%s>", mr.Header.Get("Return-Path"), verp)
	}

	recs := f.attempts(t, env.ID)
	if len(recs) != 2 {
		t.Fatalf("%d delivery attempts in the audit trail, want 2: %+v", len(recs), recs)
	}
	for _, r := range recs {
		if r.Details["outcome"] != string(workflow.OutcomeDelivered) || !strings.HasPrefix(r.Details["answer"], "250 2.0.0 Ok: queued as ") {
			t.Errorf("attempt %+v: want delivered with Postfix's 250 answer", r.Details)
		}
	}
	// Each attempt's start is recorded before the send, so that a crash
	// during it leaves a trace.
	trail, err := f.st.AuditTrail(context.Background(), env.ID)
	if err != nil {
		t.Fatal(err)
	}
	order := map[string][]string{} // by mail
	for _, r := range trail {
		if r.Type == audit.DeliveryStart || r.Type == audit.DeliveryAttempt {
			order[r.Details["mail"]] = append(order[r.Details["mail"]], string(r.Type)+r.Details["attempt"])
		}
	}
	for _, m := range []string{"acknowledgement", "invitation"} {
		if got := strings.Join(order[m], " "); got != "delivery_started1 delivery_attempt" {
			t.Errorf("%s: delivery records %q, want the start of attempt 1, then the attempt", m, got)
		}
	}
	stored, err := f.st.Get(context.Background(), env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Recipient("r1").SentAt.IsZero() {
		t.Error("the delivered invitation is not recorded as sent")
	}
	if left := f.queued(t, f.clock.now().Add(100*time.Hour)); len(left) != 0 {
		t.Errorf("items left in the queue after delivery: %v", left)
	}
}

// A 550 at RCPT fails the invitation at once: buried, audited, and the
// sender told by a delivery-failure mail in the queue.
func TestRejectedFailsAndTellsSender(t *testing.T) {
	f := newFixture(t, nil)
	env := f.envelope(t, "reject@example.com")
	// Acknowledgement and invitation, and nothing more: the failure notices
	// the workflow queues are checked below, not sent (one of them goes to
	// the rejected address again).
	for range 2 {
		if worked, err := f.w.Step(context.Background()); err != nil || !worked {
			t.Fatalf("step: %v, %v", worked, err)
		}
	}
	buried, err := f.st.Buried(context.Background(), engine.MailQueue)
	if err != nil {
		t.Fatal(err)
	}
	if len(buried) != 1 || !strings.Contains(buried[0].ID, "invitation") || !strings.HasPrefix(buried[0].LastError, "550 5.1.1 <reject@example.com>: Recipient address rejected: Mailbox unavailable") {
		t.Fatalf("buried = %+v, want the invitation with the 550 answer", buried)
	}
	var failed bool
	for _, r := range f.attempts(t, env.ID) {
		if r.RecipientID == "r1" && r.Details["outcome"] == string(workflow.OutcomeFailed) && strings.HasPrefix(r.Details["answer"], "550 5.1.1 ") {
			failed = true
		}
	}
	if !failed {
		t.Errorf("no failed attempt with the 550 answer in the audit trail: %+v", f.attempts(t, env.ID))
	}
	q := f.queued(t, f.clock.now())
	notice := q[string(workflow.BounceNotice)+"/"+engine.SenderAddressee]
	if notice == nil {
		t.Fatalf("no delivery-failure notice to the sender queued; queue: %v", q)
	}
	var job engine.Job
	if err := jsonUnmarshal(notice.Payload, &job); err != nil || !strings.HasPrefix(job.Reason, "550 5.1.1") || job.About != "r1" {
		t.Errorf("notice job %+v, %v: want the 550 answer as reason, about r1", job, err)
	}
}

// A 451 at RCPT defers: the item comes back after the backoff, which
// doubles, and fails once the waits reach the limit.
func TestTempfailRetriesThenFails(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Outbox.Backoff = outbox.Backoff{First: time.Minute, Max: time.Hour, Limit: 3 * time.Minute}
	})
	env := f.envelope(t, "tempfail@example.com")
	f.drain(t) // acknowledgement delivered, invitation deferred
	// Each deferral moves the item's due time by the doubling backoff.
	for attempt, wait := range []time.Duration{time.Minute, 2 * time.Minute} {
		f.clock.add(wait - time.Second)
		if n := f.drain(t); n != 0 {
			t.Fatalf("after attempt %d: %d items due a second before the backoff of %v ended", attempt+1, n, wait)
		}
		f.clock.add(time.Second)
		// The third attempt fails, and the sender's delivery-failure
		// notice follows at once.
		if n, want := f.drain(t), 1+attempt; n != want {
			t.Fatalf("attempt %d: %d items carried out, want %d", attempt+2, n, want)
		}
		if got := f.s.cfg.Composer.(*testComposer).attempts["invitation/r1"]; got != attempt+2 {
			t.Errorf("the item's Attempts = %d, want %d", got, attempt+2)
		}
	}
	// The third attempt: the waits (1+2 minutes) reached the limit.
	buried, err := f.st.Buried(context.Background(), engine.MailQueue)
	if err != nil {
		t.Fatal(err)
	}
	if len(buried) != 1 || !strings.HasPrefix(buried[0].LastError, "451 4.7.1 ") || !strings.Contains(buried[0].LastError, "gave up after 3 attempts") {
		t.Fatalf("buried = %+v, want the invitation given up after 3 attempts", buried)
	}
	var outcomes []string
	for _, r := range f.attempts(t, env.ID) {
		if r.RecipientID == "r1" {
			outcomes = append(outcomes, r.Details["outcome"])
		}
	}
	if strings.Join(outcomes, ",") != "deferred,deferred,failed" {
		t.Errorf("invitation attempts %v, want deferred,deferred,failed", outcomes)
	}
}

// With the MTA down, the mail is deferred; once it is up, the retry
// delivers it.
func TestMTADownThenUp(t *testing.T) {
	f := newFixture(t, nil)
	env := f.envelope(t, "bob@example.com")
	if err := rig.StopMTA(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			rig.StartMTA()
		}
	}()
	if n := f.drain(t); n != 2 {
		t.Fatalf("%d items attempted, want 2", n)
	}
	for _, r := range f.attempts(t, env.ID) {
		if r.Details["outcome"] != string(workflow.OutcomeDeferred) || !strings.Contains(r.Details["answer"], "connection refused") {
			t.Errorf("attempt while down: %+v, want deferred, connection refused", r.Details)
		}
	}
	if err := rig.StartMTA(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	f.clock.add(time.Minute)
	if n := f.drain(t); n != 2 {
		t.Fatalf("%d items retried, want 2", n)
	}
	q := f.queued(t, f.clock.now().Add(100*time.Hour))
	if len(q) != 0 {
		t.Errorf("left in the queue: %v", q)
	}
	stored, err := f.st.Get(context.Background(), env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Recipient("r1").SentAt.IsZero() {
		t.Error("invitation not recorded as sent after the MTA came back")
	}
	fetch(t, "bob", f.messageID(t, "invitation/r1"))
}

// One connection carries many mails; MaxMails bounds it.
func TestConnectionReuse(t *testing.T) {
	for _, tc := range []struct {
		maxMails  int
		wantDials int64
	}{{1000, 1}, {7, 6}} {
		f := newFixture(t, func(c *Config) { c.MaxMails = tc.maxMails })
		for range 20 {
			f.envelope(t, "alice@example.com")
		}
		if n := f.drain(t); n != 40 {
			t.Fatalf("%d items, want 40", n)
		}
		if got := f.dials.Load(); got != tc.wantDials {
			t.Errorf("MaxMails %d: %d connections for 40 mails, want %d", tc.maxMails, got, tc.wantDials)
		}
		buried, _ := f.st.Buried(context.Background(), engine.MailQueue)
		if len(buried) != 0 {
			t.Errorf("buried: %+v", buried)
		}
	}
}

// A refused recipient does not cost the connection: RSET, and the next
// mail goes on the same one.
func TestRefusalKeepsConnection(t *testing.T) {
	f := newFixture(t, nil)
	f.envelope(t, "tempfail@example.com")
	f.envelope(t, "alice@example.com")
	if n := f.drain(t); n != 4 {
		t.Fatalf("%d items, want 4", n)
	}
	if got := f.dials.Load(); got != 1 {
		t.Errorf("%d connections, want 1", got)
	}
}

// AUTH PLAIN and LOGIN against Postfix (which asks Dovecot); a wrong
// password defers, since it is no fault of the recipient.
func TestAuth(t *testing.T) {
	for _, tc := range []struct {
		mech, password string
		want           workflow.Outcome
	}{{"PLAIN", rig.Password(), workflow.OutcomeDelivered}, {"LOGIN", rig.Password(), workflow.OutcomeDelivered},
		{"", "wrong", workflow.OutcomeDeferred}} {
		f := newFixture(t, func(c *Config) {
			c.Relay.Username, c.Relay.Password, c.Relay.AuthMechanism = "parapheur", tc.password, tc.mech
		})
		env := f.envelope(t, "alice@example.com")
		f.drain(t)
		for _, r := range f.attempts(t, env.ID) {
			if r.Details["outcome"] != string(tc.want) {
				t.Errorf("AUTH %q with password %q: %+v, want %s", tc.mech, tc.password, r.Details, tc.want)
			}
		}
	}
}

// A composer error buries the item with the reason, without an attempt.
func TestComposeErrorBuries(t *testing.T) {
	f := newFixture(t, nil)
	job := []byte(`{"notice":"invitation","envelope_id":"Enone","to":"r1"}`)
	if err := f.st.Enqueue(context.Background(),
		store.Item{ID: "x/1", Queue: engine.MailQueue, EnvelopeID: "Enone", Payload: job, NotBefore: f.clock.now()},
		store.Item{ID: "x/2", Queue: engine.MailQueue, Payload: []byte(`"not a job"`), NotBefore: f.clock.now()},
	); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	buried, err := f.st.Buried(context.Background(), engine.MailQueue)
	if err != nil {
		t.Fatal(err)
	}
	if len(buried) != 2 {
		t.Fatalf("buried %+v, want both items", buried)
	}
	for _, it := range buried {
		if it.ID == "x/1" && !strings.Contains(it.LastError, "composing invitation mail") ||
			it.ID == "x/2" && !strings.Contains(it.LastError, "payload is not a job") {
			t.Errorf("item %s buried for %q", it.ID, it.LastError)
		}
	}
	if f.dials.Load() != 0 {
		t.Error("a connection was opened for items that cannot be sent")
	}
}

// A store that does not answer while a mail is composed defers the mail,
// which leaves once the store is back; nothing is buried.
func TestComposeStoreErrorDefers(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		withMails(t)(c)
		c.Composer.(*Mails).Store = outboxtest.NewFailingGets(c.Outbox.Store, 2)
	})
	env := f.envelope(t, "archives@example.com")
	if n := f.drain(t); n != 2 {
		t.Fatalf("%d items, want the acknowledgement and the invitation", n)
	}
	buried, err := f.st.Buried(context.Background(), engine.MailQueue)
	if err != nil {
		t.Fatal(err)
	}
	if len(buried) != 0 || len(f.attempts(t, env.ID)) != 0 || f.dials.Load() != 0 {
		t.Fatalf("buried %+v, %d attempts: want both mails deferred unsent", buried, len(f.attempts(t, env.ID)))
	}
	f.clock.add(outbox.DefaultFirstBackoff)
	if n := f.drain(t); n != 2 {
		t.Fatalf("%d items after the backoff, want 2", n)
	}
	fetchBy(t, "archives", "X-Parapheur-Envelope", env.ID)
	for _, a := range f.attempts(t, env.ID) {
		if a.Details["outcome"] != "delivered" {
			t.Errorf("attempt %v", a.Details)
		}
	}
}

// Run delivers the queue with several workers and returns when ctx ends.
func TestRunStops(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Workers = 3 })
	envs := []*workflow.Envelope{f.envelope(t, "alice@example.com"), f.envelope(t, "bob@example.com"), f.envelope(t, "archives@example.com")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.s.Run(ctx); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for _, env := range envs {
		for len(f.attempts(t, env.ID)) < 2 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for _, env := range envs {
		if n := len(f.attempts(t, env.ID)); n != 2 {
			t.Errorf("envelope %s: %d attempts, want 2", env.ID, n)
		}
	}
}

// A 20 MB attachment goes through the spool and arrives intact.
func TestLargeAttachmentArrives(t *testing.T) {
	const size = 20 << 20
	f := newFixture(t, func(c *Config) { c.Composer = &testComposer{st: c.Outbox.Store, attach: size} })
	f.envelope(t, "alice@example.com")
	if n := f.drain(t); n != 2 {
		t.Fatalf("%d items, want 2", n)
	}
	mr, err := mail.CreateReader(bytes.NewReader(fetch(t, "alice", f.messageID(t, "invitation/r1"))))
	if err != nil {
		t.Fatal(err)
	}
	want := sha(attachment(size))
	found := false
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		if _, ok := p.Header.(*mail.AttachmentHeader); ok {
			found = true
			if got := sha(p.Body); got != want {
				t.Errorf("attachment SHA-256 %s, want %s", got, want)
			}
		}
	}
	if !found {
		t.Error("no attachment in the delivered mail")
	}
}

// The Accepted hook is told of each message the relay accepted, and of no
// refused one, while the message's item is still held: a process stopped
// there has not acknowledged the item, which is sent again.
func TestAcceptedBeforeSettled(t *testing.T) {
	var f *fixture
	var accepted []workflow.Notice
	var held []int
	f = newFixture(t, func(c *Config) {
		c.Accepted = func(n workflow.Notice) {
			st, err := f.st.QueueStats(context.Background(), engine.MailQueue, f.clock.now())
			if err != nil {
				t.Error(err)
			}
			accepted, held = append(accepted, n), append(held, st.Held)
		}
	})
	// The acknowledgement to agent@org.example is accepted; the
	// invitation to reject@example.com refused at RCPT.
	f.envelope(t, "reject@example.com")
	for range 2 {
		if worked, err := f.w.Step(context.Background()); err != nil || !worked {
			t.Fatalf("step: %v, %v", worked, err)
		}
	}
	if len(accepted) != 1 || accepted[0] != workflow.Acknowledgement || held[0] != 1 {
		t.Errorf("Accepted was told of %v with %v items held; want the acknowledgement alone, its item held", accepted, held)
	}
}

// TestMessageIDNamesItsEnvelope: the Message-ID of an envelope's mail names
// the envelope and the addressee, so that a reply citing only it (Outlook)
// finds them; each item has its own, always the same.
func TestMessageIDNamesItsEnvelope(t *testing.T) {
	for _, tt := range []struct {
		job       engine.Job
		recipient string
	}{
		{engine.Job{Notice: "invitation", EnvelopeID: "ENV-1", To: "r2"}, "r2"},
		{engine.Job{Notice: "acknowledgement", EnvelopeID: "ENV-1", To: engine.SenderAddressee}, ""},
	} {
		id, err := MessageID("item-1", tt.job, domain)
		if err != nil {
			t.Fatal(err)
		}
		env, rid, _, err := mailid.ParseThread(domain, "<"+id+">")
		if err != nil || env != "ENV-1" || rid != tt.recipient {
			t.Errorf("%s to %s: Message-ID %q reads as envelope %q, recipient %q, %v", tt.job.Notice, tt.job.To, id, env, rid, err)
		}
		if again, _ := MessageID("item-1", tt.job, domain); again != id {
			t.Errorf("%s: the same item got %q, then %q", tt.job.Notice, id, again)
		}
		if other, _ := MessageID("item-2", tt.job, domain); other == id {
			t.Errorf("%s: two items got the same Message-ID %q", tt.job.Notice, id)
		}
	}
	// A mail of no envelope (a refusal) names none.
	id, err := MessageID("item-1", engine.Job{Notice: engine.NoticeRefusal}, domain)
	if err != nil || !strings.HasSuffix(id, "@"+domain) {
		t.Fatalf("refusal Message-ID %q, %v", id, err)
	}
	if _, _, _, err := mailid.ParseThread(domain, id); err == nil {
		t.Errorf("a refusal's Message-ID %q reads as an envelope's", id)
	}
}
