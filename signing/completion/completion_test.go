package completion_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/completion"
	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/verify"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox"
)

// TestComplete completes a signed envelope of two documents with a
// time-stamp authority: each final PDF keeps the signer's signature and
// adds the seal at B-LTA, for every independent validator; the
// certificate is sealed the same way and carries the audit trail, whose
// chain verifies and which records each seal; the envelope is completed
// and one final mail is queued to each party.
func TestComplete(t *testing.T) {
	r := newRig(t, true, nil)
	corpus := pdftest.Corpus(t)
	r.signed(t, "E1", corpus["qpdf-classic"], corpus["pdfcpu-form"])
	r.work(t)
	env := r.completedOnce(t, "E1")

	for i, d := range env.Documents {
		path := r.blobFile(t, d.Current, fmt.Sprintf("final-%d.pdf", i+1))
		// The signer's signature, the seal, the document time-stamp.
		pdftest.Validate(t, path, pdftest.Expect{Signatures: 3, DocTimestamps: 1, CAFile: r.caFile})
		rep := r.verified(t, path)
		if len(rep.Signatures) != 3 || !rep.HasDSS {
			t.Fatalf("document %d:\n%s", i+1, rep.Text(true))
		}
		s := rep.Signatures[1]
		if s.Signer != "Mairie de Test seal" || s.Level != verify.LevelBLTA || !s.IssuedByCA || !strings.Contains(s.Reason, "E1") {
			t.Errorf("document %d: the seal is %+v", i+1, s)
		}
		if rep.Signatures[0].Signer != "Alice Martin" {
			t.Errorf("document %d: the first signature is %s's; want Alice Martin's", i+1, rep.Signatures[0].Signer)
		}
	}

	trail, _ := r.trail(t, "E1")
	for _, rec := range trail {
		if rec.Type == audit.Sealed && (rec.Details["level"] != "B-LTA" || rec.Details["serial"] != pki.SerialHex(r.seal.Chain[0])) {
			t.Errorf("sealed event: %v", rec.Details)
		}
	}

	cert := r.blobFile(t, env.Certificate, "certificate.pdf")
	pdftest.Validate(t, cert, pdftest.Expect{Signatures: 2, DocTimestamps: 1, CAFile: r.caFile})
	rep := r.verified(t, cert)
	if len(rep.Signatures) != 2 || rep.Signatures[0].Level != verify.LevelBLTA || rep.Signatures[0].Signer != "Mairie de Test seal" {
		t.Errorf("certificate:\n%s", rep.Text(true))
	}
	// The certificate was made before Completed: its trail ends with the
	// last seal.
	if len(rep.Trails) != 1 || !rep.Trails[0].Intact() || rep.Trails[0].Records != len(trail)-1 {
		t.Fatalf("certificate's embedded trails: %+v; want one, intact, of %d events", rep.Trails, len(trail)-1)
	}
	if rep.Trails[0].Head.Hash != trail[len(trail)-2].Hash {
		t.Errorf("the certificate's trail ends at %s; want the last seal's %s", rep.Trails[0].Head.Hash, trail[len(trail)-2].Hash)
	}
	text := pdftest.Run(t, "pdftotext", "-layout", cert, "-")
	for _, want := range []string{"Certificat de réalisation", "Mairie de Test", "E1", env.Documents[0].Current, "Cachet",
		"https://parapheur.example/verify"} {
		if !strings.Contains(text, want) {
			t.Errorf("the certificate does not say %q", want)
		}
	}
	r.completions(t, 1, 0)

	// Nothing more to do: a second completion item (a replayed effect)
	// is acknowledged without a second seal.
	if err := r.st.Enqueue(context.Background(), store.Item{ID: "E1/replay", Queue: engine.CompletionQueue, EnvelopeID: "E1",
		Payload: []byte(`{"envelope_id":"E1"}`), NotBefore: r.clock.now()}); err != nil {
		t.Fatal(err)
	}
	r.work(t)
	r.completedOnce(t, "E1")
}

// crash is the panic of a test's CrashAfter hook.
type crash struct{ step string }

// TestCrashAfterEachStep stops the worker after each recorded step in
// turn, as a crash would (the item stays leased, nothing is cleaned up),
// then runs it again once the lease ran out: each document is sealed
// once, the envelope completed once, and each party gets one final mail.
func TestCrashAfterEachStep(t *testing.T) {
	for _, tc := range []struct {
		step string
		nth  int // crash at the nth time the step is reached
	}{
		{completion.StepSealed, 1},
		{completion.StepSealed, 2},
		{completion.StepCertificate, 1},
		{completion.StepCompleted, 1},
	} {
		t.Run(fmt.Sprintf("%s-%d", tc.step, tc.nth), func(t *testing.T) {
			r := newRig(t, false, nil)
			corpus := pdftest.Corpus(t)
			r.signed(t, "E1", corpus["qpdf-classic"], corpus["qpdf-objstm"])
			var reached atomic.Int32
			r.worker.CrashAfter = func(step string) {
				if step == tc.step && int(reached.Add(1)) == tc.nth {
					panic(crash{step})
				}
			}
			func() {
				defer func() {
					if c, ok := recover().(crash); !ok || c.step != tc.step {
						t.Fatalf("the worker did not stop after %s: %v", tc.step, c)
					}
				}()
				r.worker.Step(context.Background())
			}()
			// The crashed worker's item waits for its lease to run out
			// (DefaultLease), and no longer.
			for _, wait := range []time.Duration{0, completion.DefaultLease - time.Second} {
				r.clock.advance(wait)
				if worked, err := r.worker.Step(context.Background()); worked || err != nil {
					t.Fatalf("a step %v after the crash, while the crashed worker's lease lasts: worked %v, %v", wait, worked, err)
				}
			}
			r.clock.advance(2 * time.Second)
			r.worker.CrashAfter = nil
			r.work(t)
			env := r.completedOnce(t, "E1")
			for i, d := range env.Documents {
				rep := r.verified(t, r.blobFile(t, d.Current, fmt.Sprintf("final-%d.pdf", i+1)))
				if len(rep.Signatures) != 2 || rep.Signatures[1].Signer != "Mairie de Test seal" {
					t.Errorf("document %d:\n%s", i+1, rep.Text(true))
				}
			}
			r.verified(t, r.blobFile(t, env.Certificate, "certificate.pdf"))
		})
	}
}

// TestLeaseRunsOut: a worker stalls after its first seal until its lease
// runs out, and another worker completes the envelope meanwhile. When the
// first goes on, the machine refuses its seal of the second document:
// each document is sealed once, the envelope completed once, and the
// item settled by the second worker alone.
func TestLeaseRunsOut(t *testing.T) {
	r := newRig(t, false, nil)
	corpus := pdftest.Corpus(t)
	r.signed(t, "E1", corpus["qpdf-classic"], corpus["pdfcpu-form"])
	other := *r.worker
	other.Holder, other.CrashAfter = "other", nil
	var stalled bool
	r.worker.CrashAfter = func(step string) {
		if step != completion.StepSealed || stalled {
			return
		}
		stalled = true
		r.clock.advance(2 * outbox.DefaultLease)
		if worked, err := other.Step(context.Background()); !worked || err != nil {
			t.Errorf("the other worker, once the lease ran out: worked %v, %v", worked, err)
		}
	}
	r.work(t)
	if !stalled {
		t.Fatal("the first worker never sealed a document")
	}
	env := r.completedOnce(t, "E1")
	// The certificate is the other worker's: the first one made none.
	_, n := r.trail(t, "E1")
	if n[audit.Completed] != 1 || env.Certificate == "" {
		t.Fatalf("completed %d times, certificate %q", n[audit.Completed], env.Certificate)
	}
	r.completions(t, 1, 0)
}

// TestTSAFailing: while the time-stamp authority answers 500 the
// completion is retried with a growing backoff, its failure recorded for
// envelope list --stuck; once it answers, the envelope is completed.
func TestTSAFailing(t *testing.T) {
	r := newRig(t, true, nil)
	r.signed(t, "E1", pdftest.Corpus(t)["qpdf-classic"])
	r.tsaDown.Store(true)
	r.work(t)
	p, ok, err := completion.ReadProgress(context.Background(), r.st, "E1")
	if err != nil || !ok || p.Attempts != 1 || !strings.Contains(p.LastError, "500") {
		t.Fatalf("progress after a failure: %+v, %v, %v", p, ok, err)
	}
	first := p.NextAttempt.Sub(p.At)
	if r.envelope(t, "E1").State != workflow.StateInProgress {
		t.Fatal("completed without a time-stamp")
	}
	// Not due again before the backoff.
	if worked, err := r.worker.Step(context.Background()); worked || err != nil {
		t.Fatalf("a step during the backoff: worked %v, %v", worked, err)
	}
	r.clock.advance(first)
	r.work(t)
	p, _, _ = completion.ReadProgress(context.Background(), r.st, "E1")
	if p.Attempts != 2 || p.NextAttempt.Sub(p.At) != 2*first {
		t.Fatalf("progress after the second failure: %+v; want attempt 2 and a wait of %v", p, 2*first)
	}
	r.tsaDown.Store(false)
	r.clock.advance(2 * first)
	r.work(t)
	env := r.completedOnce(t, "E1")
	rep := r.verified(t, r.blobFile(t, env.Documents[0].Current, "final.pdf"))
	if rep.Signatures[1].Level != verify.LevelBLTA {
		t.Errorf("final document:\n%s", rep.Text(true))
	}
	r.completions(t, 1, 2)
}

// TestDelayNotice: a completion that keeps failing tells the sender once,
// when it has failed for DelayNoticeAfter since the last step was done.
func TestDelayNotice(t *testing.T) {
	r := newRig(t, true, nil)
	r.signed(t, "E1", pdftest.Corpus(t)["qpdf-classic"])
	r.tsaDown.Store(true)
	for range 8 { // 10 s, 20 s, … then 15 min waits: past the hour
		r.work(t)
		r.retryDue()
	}
	r.work(t)
	if n := r.mails(t, "E1", workflow.CompletionDelayedNotice); n[engine.SenderAddressee] != 1 || len(n) != 1 {
		t.Fatalf("delay notices by addressee: %v; want one to the sender", n)
	}
	_, n := r.trail(t, "E1")
	env := r.envelope(t, "E1")
	if n[audit.CompletionDelay] != 1 || env.DelayNoticeAt.Sub(env.StepsDoneAt) < completion.DefaultDelayNoticeAfter {
		t.Fatalf("%d completion_delayed events, told at %v for steps done at %v", n[audit.CompletionDelay], env.DelayNoticeAt, env.StepsDoneAt)
	}
	// The metrics show the envelope being retried, and since when.
	age := r.clock.now().Sub(env.StepsDoneAt).Seconds()
	if got := r.metric(t, "parapheur_completion_oldest_retrying_age_seconds")[""]; got != age {
		t.Errorf("oldest retrying age: %v; want %v", got, age)
	}
	if got := r.metric(t, "parapheur_completion_retrying_envelopes")[""]; got != 1 {
		t.Errorf("retrying envelopes: %v; want 1", got)
	}
	r.tsaDown.Store(false)
	r.retryDue()
	r.work(t)
	r.completedOnce(t, "E1")
	r.completions(t, 1, 9)
	if got := r.metric(t, "parapheur_completion_retrying_envelopes")[""]; got != 0 {
		t.Errorf("retrying envelopes once completed: %v; want 0", got)
	}
	if got := r.metric(t, "parapheur_completion_step_duration_seconds"); got["seal"] != 1 || got["certificate"] != 1 || got["completion"] != 1 {
		t.Errorf("step durations observed: %v; want one seal, one certificate, one completion", got)
	}
}

// flaky is a real store that fails every call while down is set, as a
// store that stopped answering; goDownAt, when set, puts it down at the
// start of the nth PutBlob (from 1).
type flaky struct {
	store.Store
	down     atomic.Bool
	puts     atomic.Int32
	goDownAt int32
}

var errDown = errors.New("dial tcp 192.0.2.1:6379: connect: connection refused")

func (f *flaky) fail() error {
	if f.down.Load() {
		return errDown
	}
	return nil
}

func (f *flaky) Get(ctx context.Context, id string) (*workflow.Envelope, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.Get(ctx, id)
}

func (f *flaky) Update(ctx context.Context, env *workflow.Envelope, w store.Writes) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Update(ctx, env, w)
}

func (f *flaky) AuditTrail(ctx context.Context, id string) ([]audit.Record, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.AuditTrail(ctx, id)
}

func (f *flaky) PutBlob(ctx context.Context, r io.Reader) (store.Blob, error) {
	if f.puts.Add(1) == f.goDownAt {
		f.down.Store(true)
	}
	if err := f.fail(); err != nil {
		return store.Blob{}, err
	}
	return f.Store.PutBlob(ctx, r)
}

func (f *flaky) OpenBlob(ctx context.Context, sum string) (io.ReadCloser, store.Blob, error) {
	if err := f.fail(); err != nil {
		return nil, store.Blob{}, err
	}
	return f.Store.OpenBlob(ctx, sum)
}

func (f *flaky) Claim(ctx context.Context, queue, holder string, now time.Time, lease time.Duration) (*store.Item, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.Claim(ctx, queue, holder, now, lease)
}

func (f *flaky) Ack(ctx context.Context, it *store.Item) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Ack(ctx, it)
}

func (f *flaky) Retry(ctx context.Context, it *store.Item, at time.Time, lastError string) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Retry(ctx, it, at, lastError)
}

func (f *flaky) Extend(ctx context.Context, it *store.Item, now time.Time, lease time.Duration) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Extend(ctx, it, now, lease)
}

func (f *flaky) SetCursor(ctx context.Context, name string, value []byte) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.SetCursor(ctx, name, value)
}

// TestStoreUnavailable: the store stops answering in the middle of a
// completion, after the first document's seal was made (before it is
// stored), so that even the retry cannot be recorded: the item waits for
// its lease to run out, and once the store is back the completion is
// done, with each document sealed once.
func TestStoreUnavailable(t *testing.T) {
	var f *flaky
	r := newRig(t, false, func(st store.Store) store.Store {
		f = &flaky{Store: st}
		return f
	})
	corpus := pdftest.Corpus(t)
	r.signed(t, "E1", corpus["qpdf-classic"], corpus["pdfcpu-form"])
	f.goDownAt = f.puts.Load() + 2 // the second document's seal
	if _, err := r.worker.Step(context.Background()); !errors.Is(err, errDown) {
		t.Fatalf("a step while the store is down: %v; want the store's error", err)
	}
	if worked, err := r.worker.Step(context.Background()); worked || !errors.Is(err, errDown) {
		t.Fatalf("a step while the store is down: worked %v, %v", worked, err)
	}
	f.down.Store(false)
	if env := r.envelope(t, "E1"); !env.Documents[0].Sealed || env.Documents[1].Sealed {
		t.Fatalf("before the outage the first document should be sealed, the second not: %+v", env.Documents)
	}
	r.clock.advance(2 * outbox.DefaultLease)
	r.work(t)
	r.completedOnce(t, "E1")
}

// TestStoreWriteFails: the store refuses the write that records the
// completion once (a failover): the failure is recorded, the completion
// retried with the backoff and then done, with one certificate named.
func TestStoreWriteFails(t *testing.T) {
	var f *writeOnce
	r := newRig(t, false, func(st store.Store) store.Store {
		f = &writeOnce{Store: st}
		return f
	})
	r.signed(t, "E1", pdftest.Corpus(t)["qpdf-classic"])
	f.armed.Store(true)
	r.work(t)
	p, ok, err := completion.ReadProgress(context.Background(), r.st, "E1")
	if err != nil || !ok || p.Attempts != 1 || !strings.Contains(p.LastError, "READONLY") {
		t.Fatalf("progress after the failed write: %+v, %v, %v", p, ok, err)
	}
	if env := r.envelope(t, "E1"); env.State != workflow.StateInProgress || !env.Documents[0].Sealed {
		t.Fatalf("after the failed write: %s, sealed %v", env.State, env.Documents[0].Sealed)
	}
	r.retryDue()
	r.work(t)
	r.completedOnce(t, "E1")
}

// writeOnce fails the Update that would record Completed, once.
type writeOnce struct {
	store.Store
	armed atomic.Bool
}

func (s *writeOnce) Update(ctx context.Context, env *workflow.Envelope, w store.Writes) error {
	if env.State == workflow.StateCompleted && s.armed.CompareAndSwap(true, false) {
		return errors.New("READONLY You can't write against a read only replica")
	}
	return s.Store.Update(ctx, env, w)
}

// TestEnded: the completion item of an envelope that ended otherwise (a
// replayed effect), or that is gone, is acknowledged and nothing is
// sealed.
func TestEnded(t *testing.T) {
	r := newRig(t, false, nil)
	r.create(t, "E1", pdftest.Corpus(t)["qpdf-classic"])
	ctx := context.Background()
	if _, err := r.eng.Event(ctx, "E1", workflow.Cancelled{Meta: workflow.Meta{At: r.clock.now()}, By: "operator", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"E1", "NOPE"} {
		if err := r.st.Enqueue(ctx, store.Item{ID: id + "/complete", Queue: engine.CompletionQueue, EnvelopeID: id,
			Payload: []byte(`{"envelope_id":"` + id + `"}`), NotBefore: r.clock.now()}); err != nil {
			t.Fatal(err)
		}
	}
	r.work(t)
	env := r.envelope(t, "E1")
	if _, n := r.trail(t, "E1"); env.State != workflow.StateCancelled || n[audit.Sealed] != 0 || env.Certificate != "" {
		t.Fatalf("cancelled envelope: %s, %d seals, certificate %q", env.State, n[audit.Sealed], env.Certificate)
	}
	stats, err := r.st.QueueStats(ctx, engine.CompletionQueue, r.clock.now())
	if err != nil || stats.Waiting+stats.Held+stats.Buried != 0 {
		t.Fatalf("completion queue: %+v, %v; want empty", stats, err)
	}
}
