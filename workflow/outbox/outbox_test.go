package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox/outboxtest"
)

// fixture is a bbolt store, an engine and the mail queue over them.
type fixture struct {
	st  store.Store
	eng *engine.Engine
	at  time.Time // the test's clock
	q   *Queue
}

// sealer opens the jobs every fixture's engine seals: they share its key.
var sealer = &engine.Engine{CodeKey: bytes.Repeat([]byte{7}, 32)}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, at: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	f.eng = &engine.Engine{Store: st, CodeKey: sealer.CodeKey, Clock: f.now}
	f.q = &Queue{Store: st, Engine: f.eng, Name: engine.MailQueue, Now: f.now}
	return f
}

func (f *fixture) now() time.Time { return f.at }

// envelope creates an envelope from agent@org.example with one signer,
// which queues the acknowledgement and the invitation.
func (f *fixture) envelope(t *testing.T) *workflow.Envelope {
	t.Helper()
	env, err := f.eng.Create(context.Background(), workflow.Draft{
		ID: "E1", Title: "Convention", Sender: workflow.Party{Email: "agent@org.example"},
		Documents: []workflow.Document{{Name: "convention.pdf", Pages: 1, Original: strings.Repeat("ab", 32), Size: 1000}},
		Steps:     []workflow.DraftStep{{Role: workflow.Signer, Parties: []workflow.Party{{Email: "marie@partner.example"}}}},
		Deadline:  f.now().Add(30 * 24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// trail returns the envelope's audit records of type typ.
func (f *fixture) trail(t *testing.T, envelopeID string, typ audit.Type) []audit.Record {
	t.Helper()
	recs, err := f.st.AuditTrail(context.Background(), envelopeID)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for _, r := range recs {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// jobs returns the jobs of the mail items due at the fixture's time, by
// "notice/to", leaving them in the queue.
func (f *fixture) jobs(t *testing.T) map[string]engine.Job {
	t.Helper()
	out := map[string]engine.Job{}
	var held []*store.Item
	for {
		it, err := f.st.Claim(context.Background(), engine.MailQueue, "inspector", f.now(), time.Minute)
		if errors.Is(err, store.ErrEmpty) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, it)
		job, _, err := DecodeJob(sealer, it)
		if err != nil {
			t.Fatal(err)
		}
		out[string(job.Notice)+"/"+job.To] = job
	}
	for _, it := range held {
		if err := f.st.Retry(context.Background(), it, it.NotBefore, ""); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// mailTask reads the envelope of a mail job through its store, as the
// mail composer does, and delivers whatever it prepared with Outcome.
type mailTask struct {
	st       store.Store
	outcome  workflow.Outcome
	prepared []string // the items prepared, in order
}

func (m *mailTask) Prepare(ctx context.Context, it *store.Item) (Delivery, error) {
	job, d, err := DecodeJob(sealer, it)
	if err != nil {
		return d, err
	}
	env, err := m.st.Get(ctx, job.EnvelopeID)
	if err != nil {
		return d, StoreError(err)
	}
	if job.To != engine.SenderAddressee && env.Recipient(job.To) == nil {
		return d, fmt.Errorf("envelope %s has no recipient %q", env.ID, job.To)
	}
	if job.Notice == workflow.Reminder && job.Token == "" {
		return d, errors.New("a reminder job without its token")
	}
	m.prepared = append(m.prepared, it.ID)
	return d, nil
}

func (m *mailTask) Attempt(context.Context) Attempt {
	return Attempt{Outcome: m.outcome, Answer: "250 2.0.0 Ok"}
}

// step runs one Step and fails the test on an error or an empty queue.
func (f *fixture) step(t *testing.T, task Task) {
	t.Helper()
	worked, err := f.q.Step(context.Background(), "worker", task)
	if err != nil {
		t.Fatal(err)
	}
	if !worked {
		t.Fatal("no item was due")
	}
}

func (f *fixture) buried(t *testing.T) []store.Item {
	t.Helper()
	b, err := f.st.Buried(context.Background(), engine.MailQueue)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A store that fails to read the envelope while an item is prepared
// defers the item with the backoff: the mail goes out once the store
// answers again, and nothing is buried.
func TestTransientStoreErrorRetries(t *testing.T) {
	f := newFixture(t)
	env := f.envelope(t)
	flaky := outboxtest.NewFailingGets(f.st, 2)
	task := &mailTask{st: flaky, outcome: workflow.OutcomeDelivered}
	f.step(t, task) // the first item: Get fails
	f.step(t, task) // the second: Get fails
	if len(task.prepared) != 0 || len(f.buried(t)) != 0 {
		t.Fatalf("prepared %v, buried %v: want both items deferred", task.prepared, f.buried(t))
	}
	if worked, err := f.q.Step(context.Background(), "worker", task); worked || err != nil {
		t.Fatalf("an item deferred by a store error was due at once (%v, %v)", worked, err)
	}
	f.at = f.at.Add(DefaultFirstBackoff)
	f.step(t, task)
	f.step(t, task)
	if len(task.prepared) != 2 || len(f.buried(t)) != 0 {
		t.Fatalf("after the backoff: prepared %v, buried %v; want both sent", task.prepared, f.buried(t))
	}
	if n := len(f.trail(t, env.ID, audit.DeliveryAttempt)); n != 2 {
		t.Errorf("%d delivery attempts recorded, want 2 (a failed read is no attempt)", n)
	}
}

// recordMeetsOutage delivers, and makes the next reads of the envelope
// fail as the attempt ends: the record of the delivery meets a store that
// is restarting.
type recordMeetsOutage struct {
	mailTask
	f     *fixture
	fails int
}

func (r *recordMeetsOutage) Attempt(ctx context.Context) Attempt {
	r.f.eng.Store = outboxtest.NewFailingGets(r.f.st, r.fails)
	return r.mailTask.Attempt(ctx)
}

// A delivery whose record meets a store outage of a moment is recorded
// once the store answers, not acknowledged without its record.
func TestDeliveryRecordedAfterStoreOutage(t *testing.T) {
	f := newFixture(t)
	env := f.envelope(t)
	f.step(t, &recordMeetsOutage{mailTask: mailTask{st: f.st, outcome: workflow.OutcomeDelivered}, f: f, fails: 2})
	recs := f.trail(t, env.ID, audit.DeliveryAttempt)
	if len(recs) != 1 || recs[0].Details["outcome"] != string(workflow.OutcomeDelivered) {
		t.Fatalf("delivery records %+v, want the delivery once", recs)
	}
	if len(f.buried(t)) != 0 || len(f.jobs(t)) != 1 {
		t.Errorf("buried %v, queued %v: want the delivered item acknowledged, the other left", f.buried(t), f.jobs(t))
	}
}

// A store that stays down past the backoff's limit buries the item, and
// the failure is recorded and told as any other.
func TestTransientStoreErrorGivesUp(t *testing.T) {
	f := newFixture(t)
	f.q.Backoff = Backoff{First: time.Minute, Limit: 3 * time.Minute}
	env := f.envelope(t)
	flaky := outboxtest.NewFailingGets(f.st, 1000)
	task := &mailTask{st: flaky, outcome: workflow.OutcomeDelivered}
	// Attempts 1 and 2 wait 1 and 2 minutes; attempt 3, 3 minutes after
	// the items were due, gives up.
	for _, wait := range []time.Duration{time.Minute, 2 * time.Minute, 0} {
		for {
			worked, err := f.q.Step(context.Background(), "worker", task)
			if err != nil {
				t.Fatal(err)
			}
			if !worked {
				break
			}
		}
		f.at = f.at.Add(wait)
	}
	buried := f.buried(t)
	if len(buried) != 2 {
		t.Fatalf("buried %+v, want the acknowledgement and the invitation", buried)
	}
	for _, it := range buried {
		if !strings.Contains(it.LastError, outboxtest.ErrUnavailable.Error()) || !strings.Contains(it.LastError, "gave up after 3 attempts") {
			t.Errorf("item %s buried for %q", it.ID, it.LastError)
		}
	}
	if n := len(f.trail(t, env.ID, audit.DeliveryAttempt)); n != 2 {
		t.Errorf("%d failures recorded, want 2", n)
	}
}

// An item that cannot be prepared for good is buried at once; its failure
// is in the audit trail and the sender is told by a delivery-failure
// notice. A notice to the sender that fails in turn is buried and
// recorded without another notice.
func TestRejectRecordsAndTellsSender(t *testing.T) {
	f := newFixture(t)
	env := f.envelope(t)
	// A reminder without the link it must carry.
	if err := f.st.Enqueue(context.Background(), store.Item{ID: "E1/bad", Queue: engine.MailQueue, EnvelopeID: env.ID,
		Payload: []byte(`{"notice":"reminder","envelope_id":"E1","to":"r1"}`), NotBefore: f.now().Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	ok := &mailTask{st: f.st, outcome: workflow.OutcomeDelivered}
	f.step(t, ok) // acknowledgement
	f.step(t, ok) // invitation
	f.at = f.at.Add(time.Second)
	f.step(t, ok) // the reminder
	buried := f.buried(t)
	if len(buried) != 1 || !strings.Contains(buried[0].LastError, "without its token") {
		t.Fatalf("buried %+v, want the reminder", buried)
	}
	failed := f.trail(t, env.ID, audit.DeliveryAttempt)
	if last := failed[len(failed)-1]; last.Details["outcome"] != "failed" || last.Details["mail"] != "reminder" ||
		last.RecipientID != "r1" || !strings.Contains(last.Details["answer"], "without its token") {
		t.Errorf("last attempt recorded %v, want the failed reminder", last.Details)
	}
	jobs := f.jobs(t)
	notice, told := jobs["delivery_failure/sender"]
	if !told || notice.About != "r1" || !strings.Contains(notice.Reason, "without its token") || len(jobs) != 1 {
		t.Fatalf("queued %v, want one delivery-failure notice to the sender", jobs)
	}

	// The notice itself fails: recorded, buried, and no further notice.
	failing := &mailTask{st: f.st, outcome: workflow.OutcomeFailed}
	f.step(t, failing)
	if b := f.buried(t); len(b) != 2 {
		t.Fatalf("buried %d items, want the notice too", len(b))
	}
	if jobs := f.jobs(t); len(jobs) != 0 {
		t.Errorf("a failed notice to the sender queued %v: notices would loop", jobs)
	}
	if last := f.trail(t, env.ID, audit.DeliveryAttempt); last[len(last)-1].Details["mail"] != string(workflow.BounceNotice) {
		t.Errorf("the failed notice is not in the audit trail: %v", last[len(last)-1].Details)
	}
}

// An item whose payload is no job is buried with the reason.
func TestUnreadablePayloadBuried(t *testing.T) {
	f := newFixture(t)
	if err := f.st.Enqueue(context.Background(), store.Item{ID: "x", Queue: engine.MailQueue,
		Payload: []byte(`"not a job"`), NotBefore: f.now()}); err != nil {
		t.Fatal(err)
	}
	f.step(t, &mailTask{st: f.st, outcome: workflow.OutcomeDelivered})
	if b := f.buried(t); len(b) != 1 || !strings.Contains(b[0].LastError, "payload is not a job") {
		t.Fatalf("buried %+v", b)
	}
}
