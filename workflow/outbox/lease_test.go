package outbox

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
)

// hookTask prepares any job item, keeps it, and attempts it with attempt.
type hookTask struct {
	item    *store.Item
	attempt func(ctx context.Context, it *store.Item) Attempt
}

func (h *hookTask) Prepare(_ context.Context, it *store.Item) (Delivery, error) {
	_, d, err := DecodeJob(sealer, it)
	h.item = it
	return d, err
}

func (h *hookTask) Attempt(ctx context.Context) Attempt { return h.attempt(ctx, h.item) }

// leaseFixture is a fixture whose queue runs on the real clock with a
// short lease, and whose only item is a reminder to r1 of envelope E1.
func leaseFixture(t *testing.T, lease time.Duration) (*fixture, *workflow.Envelope) {
	t.Helper()
	f := newFixture(t)
	env := f.envelope(t)
	for range 2 { // the acknowledgement and the invitation leave first
		f.step(t, &mailTask{st: f.st, outcome: workflow.OutcomeDelivered})
	}
	if err := f.st.Enqueue(context.Background(), store.Item{ID: "E1/reminder", Queue: engine.MailQueue, EnvelopeID: env.ID,
		Payload: []byte(`{"notice":"reminder","envelope_id":"E1","to":"r1","token":"t"}`), NotBefore: time.Now()}); err != nil {
		t.Fatal(err)
	}
	f.q.Now, f.q.Lease = nil, lease
	return f, env
}

// started returns the attempt numbers of the envelope's delivery_started
// records of reminders.
func (f *fixture) started(t *testing.T, envelopeID string) []string {
	t.Helper()
	var out []string
	for _, r := range f.trail(t, envelopeID, audit.DeliveryStart) {
		if r.Details["mail"] == string(workflow.Reminder) {
			out = append(out, r.Details["attempt"])
		}
	}
	return out
}

// An attempt that lasts several leases keeps its item: no other worker
// can claim it meanwhile. The attempt is in the audit trail before it
// starts. The lease is short, but not so short that a renewal (a store
// write, every third of it) held up on a loaded machine under the race
// detector lets the item go: 300 ms left it to a 200 ms stall.
func TestLeaseRenewedDuringLongAttempt(t *testing.T) {
	const lease = 2 * time.Second
	f, env := leaseFixture(t, lease)
	var startedBefore []string
	task := &hookTask{attempt: func(ctx context.Context, it *store.Item) Attempt {
		startedBefore = f.started(t, env.ID)
		tick := time.NewTicker(lease / 10)
		defer tick.Stop()
		for end := time.Now().Add(3 * lease); time.Now().Before(end); <-tick.C {
			other, err := f.st.Claim(ctx, engine.MailQueue, "intruder", time.Now(), lease)
			if !errors.Is(err, store.ErrEmpty) {
				t.Errorf("claimed by another worker during the attempt: %+v, %v", other, err)
				break
			}
		}
		return Attempt{Outcome: workflow.OutcomeDelivered, Answer: "250 2.0.0 Ok"}
	}}
	f.step(t, task)
	if len(startedBefore) != 1 || startedBefore[0] != "1" {
		t.Errorf("delivery_started records before the send: %v, want attempt 1", startedBefore)
	}
	if _, err := f.st.Claim(context.Background(), engine.MailQueue, "inspector", time.Now().Add(time.Hour), lease); !errors.Is(err, store.ErrEmpty) {
		t.Errorf("after the attempt: %v, want the item acknowledged", err)
	}
}

// extendWatch reports the result of every Extend.
type extendWatch struct {
	store.Store
	results chan error
}

func (s extendWatch) Extend(ctx context.Context, it *store.Item, now time.Time, lease time.Duration) error {
	err := s.Store.Extend(ctx, it, now, lease)
	s.results <- err
	return err
}

// An attempt whose lease is lost meanwhile (the item was given back and
// claimed by another worker) is not settled: the item stays with its new
// holder, and no outcome is recorded in the old holder's name.
func TestLeaseLostNotSettled(t *testing.T) {
	const lease = 300 * time.Millisecond
	f, env := leaseFixture(t, lease)
	watch := extendWatch{Store: f.st, results: make(chan error, 100)}
	f.q.Store = watch
	var taken *store.Item
	task := &hookTask{attempt: func(ctx context.Context, it *store.Item) Attempt {
		stolen := *it
		if err := f.st.Retry(ctx, &stolen, time.Now(), "taken away"); err != nil {
			t.Fatal(err)
		}
		var err error
		if taken, err = f.st.Claim(ctx, engine.MailQueue, "intruder", time.Now(), time.Hour); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
		for {
			select {
			case err := <-watch.results:
				if errors.Is(err, store.ErrLeaseLost) {
					return Attempt{Outcome: workflow.OutcomeDelivered, Answer: "250 2.0.0 Ok"}
				}
			case <-deadline:
				t.Fatal("the renewal never found the lease lost")
			}
		}
	}}
	f.step(t, task)
	if err := f.st.Ack(context.Background(), taken); err != nil {
		t.Errorf("the new holder lost the item: %v", err)
	}
	for _, r := range f.trail(t, env.ID, audit.DeliveryAttempt) {
		if r.Details["mail"] == string(workflow.Reminder) {
			t.Errorf("the attempt of a lost lease was recorded: %v", r.Details)
		}
	}
}

// A worker that dies during an attempt (here: its task panics) leaves the
// start of the attempt in the audit trail; once its short lease expired,
// another worker sends the item again, logs the resend at Warn, and the
// trail shows it as the second attempt.
func TestCrashedAttemptResent(t *testing.T) {
	const lease = 300 * time.Millisecond
	f, env := leaseFixture(t, lease)
	dies := &hookTask{attempt: func(context.Context, *store.Item) Attempt { panic("killed") }}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the task did not die")
			}
		}()
		f.q.Step(context.Background(), "dead", dies)
	}()
	if got := f.started(t, env.ID); len(got) != 1 || got[0] != "1" {
		t.Fatalf("delivery_started after the crash: %v, want attempt 1", got)
	}

	var logged syncBuffer
	next := *f.q
	next.Log = slog.New(slog.NewTextHandler(&logged, nil))
	next.Now = func() time.Time { return time.Now().Add(lease) } // the dead worker's lease has ended
	f.q = &next
	f.step(t, &hookTask{attempt: func(context.Context, *store.Item) Attempt {
		return Attempt{Outcome: workflow.OutcomeDelivered, Answer: "250 2.0.0 Ok"}
	}})
	if got := f.started(t, env.ID); len(got) != 2 || got[1] != "2" {
		t.Errorf("delivery_started: %v, want attempts 1 and 2", got)
	}
	if out := logged.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "resending") || !strings.Contains(out, "item=E1/reminder") {
		t.Errorf("the resend was not logged at Warn:\n%s", out)
	}

	// A resend after a deferral is an ordinary retry, not a crash.
	logged.Reset()
	if err := f.st.Enqueue(context.Background(), store.Item{ID: "E1/reminder2", Queue: engine.MailQueue, EnvelopeID: env.ID,
		Payload: []byte(`{"notice":"reminder","envelope_id":"E1","to":"r1","token":"u"}`), NotBefore: time.Now()}); err != nil {
		t.Fatal(err)
	}
	outcomes := []workflow.Outcome{workflow.OutcomeDeferred, workflow.OutcomeDelivered}
	for _, o := range outcomes {
		f.step(t, &hookTask{attempt: func(context.Context, *store.Item) Attempt { return Attempt{Outcome: o, Answer: "451 4.3.0 later"} }})
		next.Now = func() time.Time { return time.Now().Add(time.Hour) }
	}
	if out := logged.String(); strings.Contains(out, "resending") {
		t.Errorf("a retry after a deferral was logged as a resend:\n%s", out)
	}
}

// killedBeforeSettling is a store whose process dies right after an
// attempt's outcome was recorded, before the item is acknowledged or
// buried.
type killedBeforeSettling struct{ store.Store }

func (killedBeforeSettling) Ack(context.Context, *store.Item) error { panic("killed") }
func (killedBeforeSettling) Bury(context.Context, *store.Item, string) error {
	panic("killed")
}

// A worker that dies after it recorded a final outcome and before it
// settled the item leaves the record; the next worker settles the item as
// recorded, without sending it again and without a second record: a
// refused mail's notice to the sender goes once, a delivered mail is not
// delivered twice.
func TestRecordedOutcomeNotSentAgain(t *testing.T) {
	for _, outcome := range []workflow.Outcome{workflow.OutcomeDelivered, workflow.OutcomeFailed} {
		t.Run(string(outcome), func(t *testing.T) {
			const lease = 300 * time.Millisecond
			f, env := leaseFixture(t, lease)
			dying := *f.q
			dying.Store = killedBeforeSettling{f.st}
			func() {
				defer func() {
					if recover() == nil {
						t.Fatal("the worker did not die")
					}
				}()
				dying.Step(context.Background(), "dead", &hookTask{attempt: func(context.Context, *store.Item) Attempt {
					return Attempt{Outcome: outcome, Answer: "550 5.1.1 no such user"}
				}})
			}()

			// The next worker, once the dead one's lease ended, carries
			// out everything due: the sender's notice of the failure, and
			// the reminder, which it must not send.
			var logged syncBuffer
			next := *f.q
			next.Log = slog.New(slog.NewTextHandler(&logged, nil))
			next.Now = func() time.Time { return time.Now().Add(lease) }
			f.q = &next
			for {
				worked, err := next.Step(context.Background(), "worker", &hookTask{attempt: func(_ context.Context, it *store.Item) Attempt {
					if it.ID == "E1/reminder" {
						t.Error("the reminder was sent again although its outcome was recorded")
						return Attempt{Outcome: outcome, Answer: "550 5.1.1 no such user"}
					}
					return Attempt{Outcome: workflow.OutcomeDelivered, Answer: "250 2.0.0 Ok"}
				}})
				if err != nil {
					t.Fatal(err)
				}
				if !worked {
					break
				}
			}

			attempts := map[workflow.Notice][]string{}
			for _, r := range f.trail(t, env.ID, audit.DeliveryAttempt) {
				n := workflow.Notice(r.Details["mail"])
				attempts[n] = append(attempts[n], r.Details["outcome"])
			}
			if got := attempts[workflow.Reminder]; len(got) != 1 || got[0] != string(outcome) {
				t.Errorf("the reminder's delivery_attempt records: %v, want one %s", got, outcome)
			}
			if got := f.started(t, env.ID); len(got) != 1 {
				t.Errorf("delivery_started of the reminder: attempts %v, want the first only", got)
			}
			wantNotices := map[workflow.Outcome]int{workflow.OutcomeFailed: 1}[outcome]
			if got := attempts[workflow.BounceNotice]; len(got) != wantNotices {
				t.Errorf("the sender's failure notices delivered: %v, want %d", got, wantNotices)
			}
			buried := f.buried(t)
			switch {
			case outcome == workflow.OutcomeFailed && (len(buried) != 1 || buried[0].ID != "E1/reminder"):
				t.Errorf("buried after the recorded failure: %v, want the reminder", buried)
			case outcome == workflow.OutcomeDelivered && len(buried) != 0:
				t.Errorf("buried after the recorded delivery: %v, want none", buried)
			}
			if out := logged.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "not sent again") || strings.Contains(out, "resending") {
				t.Errorf("the settlement of the recorded outcome was not logged at Warn as such:\n%s", out)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}
