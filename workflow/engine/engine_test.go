package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

func newEngine(t *testing.T) (*Engine, *clock) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "parapheur.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{now: t0}
	return &Engine{Store: st, CodeKey: []byte("0123456789abcdef0123456789abcdef"), Clock: c.Now}, c
}

func draft() workflow.Draft {
	return workflow.Draft{
		ID: EnvelopeID("<abc@org.example>"), Title: "Convention", Language: "fr",
		Sender:    workflow.Party{Email: "agent@org.example"},
		Documents: []workflow.Document{{Name: "c.pdf", Pages: 1, Original: "aa"}},
		Steps: []workflow.DraftStep{
			{Role: workflow.Signer, Parties: []workflow.Party{{Email: "marie@partner.example"}}},
			{Role: workflow.Signer, Parties: []workflow.Party{{Email: "paul@partner.example", Phone: "+33612345678"}}},
		},
		Deadline:      t0.Add(10 * 24 * time.Hour),
		ReminderEvery: 3 * 24 * time.Hour,
	}
}

// drain claims every due item of queue at the clock's time and acks it.
func drain(t *testing.T, e *Engine, queue string) []store.Item {
	t.Helper()
	var items []store.Item
	for {
		it, err := e.Store.Claim(context.Background(), queue, "test", e.Now(), time.Minute)
		if errors.Is(err, store.ErrEmpty) {
			return items
		}
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, *it)
		if err := e.Store.Ack(context.Background(), it); err != nil {
			t.Fatal(err)
		}
	}
}

// jobs decodes item payloads, their secrets opened by e, in notice order
// (items due at the same time come in no particular order).
func jobs(t *testing.T, e *Engine, items []store.Item) []Job {
	t.Helper()
	var out []Job
	for _, it := range items {
		j, err := e.OpenJob(&it)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b Job) int { return strings.Compare(string(a.Notice)+a.To, string(b.Notice)+b.To) })
	return out
}

func TestCreateQueuesAcknowledgementInvitationAndTimers(t *testing.T) {
	e, _ := newEngine(t)
	ctx := context.Background()
	env, err := e.Create(ctx, draft())
	if err != nil {
		t.Fatal(err)
	}
	mails := jobs(t, e, drain(t, e, MailQueue))
	if len(mails) != 2 || mails[0].Notice != workflow.Acknowledgement || mails[0].To != SenderAddressee ||
		mails[1].Notice != workflow.Invitation || mails[1].To != "r1" || len(mails[1].Token) < 40 {
		t.Fatalf("mails = %+v", mails)
	}
	envID, rid, err := e.Store.ByToken(ctx, HashToken(mails[1].Token))
	if err != nil || envID != env.ID || rid != "r1" {
		t.Fatalf("ByToken = %q %q %v", envID, rid, err)
	}
	if timers := drain(t, e, TimerQueue); len(timers) != 0 {
		t.Fatalf("timers due before their time: %+v", timers)
	}

	// The same submission again: refused as a duplicate, nothing queued.
	again, err := e.Create(ctx, draft())
	if !errors.Is(err, store.ErrExists) || again == nil || again.ID != env.ID {
		t.Fatalf("second Create = %v, %v", again, err)
	}
	if mails := drain(t, e, MailQueue); len(mails) != 0 {
		t.Fatalf("a duplicate submission queued mails: %+v", mails)
	}
}

// TestJobSecretsSealed: the outbox holds a mail's link token and one-time
// code sealed, never in clear (SPEC §3: only their hashes are stored); the
// engine opens them for the item they were sealed for only, and still
// reads the clear fields of items queued before the sealing.
func TestJobSecretsSealed(t *testing.T) {
	e, _ := newEngine(t)
	ctx := context.Background()
	env, err := e.Create(ctx, draft())
	if err != nil {
		t.Fatal(err)
	}
	invitations := drain(t, e, MailQueue)
	if _, err := e.SendCode(ctx, env.ID, "r1", workflow.Client{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	items := append(invitations, drain(t, e, MailQueue)...)
	var secrets int
	for i := range items {
		it := &items[i]
		j, err := e.OpenJob(it)
		if err != nil {
			t.Fatalf("%s: %v", it.ID, err)
		}
		for _, secret := range []string{j.Token, j.Code} {
			if secret == "" {
				continue
			}
			secrets++
			if bytes.Contains(it.Payload, []byte(secret)) {
				t.Errorf("%s: the stored payload shows the secret %q:\n%s", it.ID, secret, it.Payload)
			}
		}
		if moved := (store.Item{ID: items[(i+1)%len(items)].ID, Payload: it.Payload}); j.Token != "" {
			if _, err := e.OpenJob(&moved); err == nil {
				t.Errorf("%s's sealed secrets open on item %s", it.ID, moved.ID)
			}
		}
	}
	if secrets != 3 { // the status link, the signing link, the code
		t.Fatalf("%d secrets in %d mails, want 3", secrets, len(items))
	}
	legacy := store.Item{ID: "E1/1/2/invitation/r1", Payload: []byte(`{"notice":"invitation","envelope_id":"E1","to":"r1","token":"tok"}`)}
	if j, err := e.OpenJob(&legacy); err != nil || j.Token != "tok" {
		t.Errorf("an item queued before the sealing: %+v, %v", j, err)
	}
	other := &Engine{CodeKey: []byte("another key, another gateway....")}
	if _, err := other.OpenJob(&items[0]); err == nil || !strings.Contains(err.Error(), "keys.dir") {
		t.Errorf("opened with another key: %v, want an error naming keys.dir", err)
	}
}

func TestCodesSignatureAndCompletion(t *testing.T) {
	e, c := newEngine(t)
	ctx := context.Background()
	env, err := e.Create(ctx, draft())
	if err != nil {
		t.Fatal(err)
	}
	drain(t, e, MailQueue)
	client := workflow.Client{IP: "192.0.2.1", UserAgent: "test"}

	if _, err := e.SendCode(ctx, env.ID, "r1", client); err != nil {
		t.Fatal(err)
	}
	codeMails := jobs(t, e, drain(t, e, MailQueue))
	if len(codeMails) != 1 || codeMails[0].Notice != NoticeCode || len(codeMails[0].Code) != 6 {
		t.Fatalf("code mails = %+v", codeMails)
	}
	code := codeMails[0].Code
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if _, err := e.VerifyCode(ctx, env.ID, "r1", wrong, client); !errors.Is(err, workflow.ErrWrongCode) {
		t.Fatalf("wrong code: %v", err)
	}
	stored, _ := e.Store.Get(ctx, env.ID)
	if stored.Recipient("r1").Code.Failures != 1 {
		t.Fatalf("the failure was not stored: %+v", stored.Recipient("r1").Code)
	}
	if _, err := e.VerifyCode(ctx, env.ID, "r1", " "+code+" ", client); err != nil {
		t.Fatalf("right code: %v", err)
	}
	sig := workflow.Signature{CertSerial: "01", Documents: []workflow.DocumentVersion{{Index: 0, Previous: "aa", SHA256: "bb", Size: 10}}}
	if _, err := e.Event(ctx, env.ID, workflow.Signed{Meta: workflow.Meta{At: c.Now(), Client: client}, RecipientID: "r1", Signature: sig}); err != nil {
		t.Fatal(err)
	}
	invites := jobs(t, e, drain(t, e, MailQueue))
	if len(invites) != 1 || invites[0].Notice != workflow.Invitation || invites[0].To != "r2" {
		t.Fatalf("second step invitations = %+v", invites)
	}

	// r2 gave a mobile number: the code goes by SMS.
	if _, err := e.SendCode(ctx, env.ID, "r2", client); err != nil {
		t.Fatal(err)
	}
	sms := jobs(t, e, drain(t, e, SMSQueue))
	if len(sms) != 1 || sms[0].To != "r2" {
		t.Fatalf("sms = %+v", sms)
	}
	if _, err := e.VerifyCode(ctx, env.ID, "r2", sms[0].Code, client); err != nil {
		t.Fatal(err)
	}
	// A signature made on the first version would drop r1's: refused.
	if _, err := e.Event(ctx, env.ID, workflow.Signed{Meta: workflow.Meta{At: c.Now()}, RecipientID: "r2", Signature: sig}); !errors.Is(err, workflow.ErrStaleDocument) {
		t.Fatalf("a signature on a superseded version: %v, want %v", err, workflow.ErrStaleDocument)
	}
	sig2 := workflow.Signature{CertSerial: "02", Documents: []workflow.DocumentVersion{{Index: 0, Previous: "bb", SHA256: "cc", Size: 12}}}
	if _, err := e.Event(ctx, env.ID, workflow.Signed{Meta: workflow.Meta{At: c.Now()}, RecipientID: "r2", Signature: sig2}); err != nil {
		t.Fatal(err)
	}
	if done := drain(t, e, CompletionQueue); len(done) != 1 {
		t.Fatalf("completion items = %+v", done)
	}
	trail, err := e.Store.AuditTrail(ctx, env.ID)
	if err != nil {
		t.Fatal(err)
	}
	final, _ := e.Store.Get(ctx, env.ID)
	if err := audit.VerifyEnd(trail, final.Audit); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentEventsLoseNothing(t *testing.T) {
	e, _ := newEngine(t)
	ctx := context.Background()
	env, err := e.Create(ctx, draft())
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		// Each view from its own client, or the machine would take them
		// for one reload.
		client := workflow.Client{IP: fmt.Sprintf("192.0.2.%d", i+1)}
		go func() {
			defer wg.Done()
			_, err := e.Event(ctx, env.ID, workflow.Viewed{Meta: workflow.Meta{At: t0, Client: client}, RecipientID: "r1"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	trail, err := e.Store.AuditTrail(ctx, env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(trail) != n+1 {
		t.Fatalf("trail has %d records, want %d", len(trail), n+1)
	}
	if err := audit.Verify(trail); err != nil {
		t.Fatal(err)
	}
}

// EventOnce applies its event once per key, even when several callers
// race with the same key: each failure with its key is one record and
// one notice to the sender; another key is another event.
func TestEventOnceAppliesOncePerKey(t *testing.T) {
	e, _ := newEngine(t)
	ctx := context.Background()
	env, err := e.Create(ctx, draft())
	if err != nil {
		t.Fatal(err)
	}
	drain(t, e, MailQueue)
	failed := workflow.DeliveryAttempted{Meta: workflow.Meta{At: t0}, Notice: workflow.Invitation, To: "r1",
		Outcome: workflow.OutcomeFailed, Answer: "550 5.1.1 no such user"}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := e.EventOnce(ctx, env.ID, "item-1 failed", failed); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := e.EventOnce(ctx, env.ID, "item-2 failed", failed); err != nil {
		t.Fatal(err)
	}
	trail, err := e.Store.AuditTrail(ctx, env.ID)
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	for _, r := range trail {
		if r.Type == audit.DeliveryAttempt {
			records++
		}
	}
	if records != 2 {
		t.Errorf("%d delivery_attempt records, want 2 (one per key)", records)
	}
	notices := 0
	for _, j := range jobs(t, e, drain(t, e, MailQueue)) {
		if j.Notice == workflow.BounceNotice {
			notices++
		}
	}
	if notices != 2 {
		t.Errorf("%d notices of the failure queued, want 2 (one per key)", notices)
	}
	for _, key := range []string{"item-1 failed", "item-2 failed"} {
		if ok, err := e.Store.HasKey(ctx, env.ID, key); err != nil || !ok {
			t.Errorf("HasKey(%q) = %v, %v; want true", key, ok, err)
		}
	}
	if _, err := e.EventOnce(ctx, env.ID, "", failed); err == nil {
		t.Error("EventOnce without a key: no error")
	}
}

func TestTimersFireRemindersAndExpiry(t *testing.T) {
	e, c := newEngine(t)
	ctx := context.Background()
	env, err := e.Create(ctx, draft())
	if err != nil {
		t.Fatal(err)
	}
	drain(t, e, MailQueue)

	c.set(t0.Add(3 * 24 * time.Hour))
	if n, err := e.FireDueTimers(ctx, "test"); err != nil || n != 1 {
		t.Fatalf("first reminder: fired %d, %v", n, err)
	}
	reminders := jobs(t, e, drain(t, e, MailQueue))
	if len(reminders) != 1 || reminders[0].Notice != workflow.Reminder || reminders[0].Token == "" {
		t.Fatalf("reminders = %+v", reminders)
	}
	// The reminder carries a new link; the first one keeps working too.
	if _, rid, err := e.Store.ByToken(ctx, HashToken(reminders[0].Token)); err != nil || rid != "r1" {
		t.Fatalf("reminder token: %q %v", rid, err)
	}

	c.set(t0.Add(11 * 24 * time.Hour))
	if n, err := e.FireDueTimers(ctx, "test"); err != nil || n != 2 {
		// the reminder of day 6, moot past the deadline, and the expiry
		t.Fatalf("fired %d, %v", n, err)
	}
	got, _ := e.Store.Get(ctx, env.ID)
	if got.State != workflow.StateExpired {
		t.Fatalf("state = %s", got.State)
	}
	notices := jobs(t, e, drain(t, e, MailQueue))
	var expiry int
	for _, j := range notices {
		if j.Notice == workflow.ExpiryNotice {
			expiry++
		}
	}
	if expiry != 1 {
		t.Fatalf("expiry notices = %d in %+v", expiry, notices)
	}
	if n, err := e.FireDueTimers(ctx, "test"); err != nil || n != 0 {
		t.Fatalf("timers left after expiry: %d, %v", n, err)
	}
}

func TestEnvelopeIDIsStableAndShort(t *testing.T) {
	a, b := EnvelopeID("<x@y>"), EnvelopeID("<x@y>")
	if a != b || len(a) != 21 || EnvelopeID("<z@y>") == a {
		t.Fatalf("EnvelopeID: %q %q", a, b)
	}
}

// TestCompletionMailsCarryDownloadLinks: completion queues one final mail
// per party, each with its own download-link token, recorded for that
// party with the engine's DownloadTTL; each token finds the envelope as a
// download link, and none is a signing or status token.
func TestCompletionMailsCarryDownloadLinks(t *testing.T) {
	e, c := newEngine(t)
	e.DownloadTTL = 7 * 24 * time.Hour
	ctx := context.Background()
	d := draft()
	d.Steps = d.Steps[:1]
	d.Archivists = []workflow.Party{{Email: "archives@org.example"}}
	env, err := e.Create(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	drain(t, e, MailQueue)
	if _, err := e.SendCode(ctx, env.ID, "r1", workflow.Client{}); err != nil {
		t.Fatal(err)
	}
	code := jobs(t, e, drain(t, e, MailQueue))[0].Code
	if _, err := e.VerifyCode(ctx, env.ID, "r1", code, workflow.Client{}); err != nil {
		t.Fatal(err)
	}
	sig := workflow.Signature{CertSerial: "01", Documents: []workflow.DocumentVersion{{Index: 0, Previous: "aa", SHA256: "bb", Size: 10}}}
	if _, err := e.Event(ctx, env.ID, workflow.Signed{Meta: workflow.Meta{At: c.Now()}, RecipientID: "r1", Signature: sig}); err != nil {
		t.Fatal(err)
	}
	c.set(t0.Add(time.Hour))
	final, err := e.Event(ctx, env.ID, workflow.Completed{Meta: workflow.Meta{At: c.Now()}, Certificate: "cc"})
	if err != nil {
		t.Fatal(err)
	}
	mails := jobs(t, e, drain(t, e, MailQueue))
	parties := map[string]string{} // party → token
	for _, j := range mails {
		if j.Notice != workflow.CompletionMail {
			t.Fatalf("unexpected mail %+v", j)
		}
		party := j.To
		if party == SenderAddressee {
			party = workflow.SenderID
		}
		if len(j.Token) < 40 {
			t.Fatalf("final mail to %s has token %q", j.To, j.Token)
		}
		parties[party] = j.Token
		envID, holder, err := e.Store.ByToken(ctx, HashToken(j.Token))
		if err != nil || envID != env.ID || holder != workflow.DownloadID {
			t.Errorf("the token of %s finds %q %q, %v; want %s as a download link", j.To, envID, holder, err, env.ID)
		}
		dl := final.DownloadToken(HashToken(j.Token))
		if dl == nil || dl.For != party || !dl.Expires.Equal(t0.Add(time.Hour+7*24*time.Hour)) {
			t.Errorf("the token of %s is recorded as %+v, want for %s until %v", j.To, dl, party, t0.Add(time.Hour+7*24*time.Hour))
		}
	}
	if len(parties) != 3 || parties[workflow.SenderID] == "" || parties["r1"] == "" || parties["r2"] == "" {
		t.Fatalf("final mails to %v, want the sender, the signer and the archivist", parties)
	}
	if parties[workflow.SenderID] == parties["r1"] || parties["r1"] == parties["r2"] || parties[workflow.SenderID] == parties["r2"] {
		t.Error("two parties share a download token")
	}
	if len(final.DownloadTokens) != 3 {
		t.Errorf("%d download tokens recorded, want 3", len(final.DownloadTokens))
	}
}

// The metrics count each envelope's changes of state once (a creation
// replayed is not one) and the codes by channel, without reading the store.
func TestMetricsCountTransitionsAndCodes(t *testing.T) {
	e, c := newEngine(t)
	reg := prometheus.NewRegistry()
	e.Metrics = NewMetrics(reg)
	ctx := context.Background()
	env, err := e.Create(ctx, draft())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Create(ctx, draft()); !errors.Is(err, store.ErrExists) {
		t.Fatalf("the same draft again: %v", err)
	}
	if _, err := e.SendCode(ctx, env.ID, "r1", workflow.Client{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SendCode(ctx, env.ID, "r2", workflow.Client{}); err == nil {
		t.Fatal("a code for the signer of a later step was made")
	}
	cancel := workflow.Cancelled{Meta: workflow.Meta{At: c.Now()}, By: "agent@org.example", Reason: "test"}
	for range 2 {
		if _, err := e.Event(ctx, env.ID, cancel); err != nil && !errors.Is(err, workflow.ErrEnded) {
			t.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"in_progress": 1, "completed": 0, "declined": 0, "cancelled": 1, "expired": 0, "email": 1, "sms": 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("metrics = %v, want %v", got, want)
	}
}

// TestStateChangesAreLogged: an envelope that ends says so in the log,
// once, with its id, and without the reason the user wrote.
func TestStateChangesAreLogged(t *testing.T) {
	e, c := newEngine(t)
	var logs bytes.Buffer
	e.Log = slog.New(slog.NewTextHandler(&logs, nil))
	ctx := context.Background()
	env, err := e.Create(ctx, draft())
	if err != nil {
		t.Fatal(err)
	}
	cancel := workflow.Cancelled{Meta: workflow.Meta{At: c.Now()}, By: "agent@org.example", Reason: "secret reason"}
	for range 2 {
		if _, err := e.Event(ctx, env.ID, cancel); err != nil && !errors.Is(err, workflow.ErrEnded) {
			t.Fatal(err)
		}
	}
	want := `msg="engine: envelope cancelled" envelope=` + env.ID + ` was=in_progress`
	if got := logs.String(); strings.Count(got, want) != 1 || strings.Count(got, "\n") != 1 || strings.Contains(got, "secret") {
		t.Fatalf("log:\n%s\nwant one line with %s and no reason", got, want)
	}
}
