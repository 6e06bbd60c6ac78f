// Package outbox runs the workers of the store's outbox queues (the
// transactional-outbox pattern: the engine writes items together with the
// envelope change that causes them; workers carry them out afterwards).
// The mail sender (mailout/sender) and the SMS sender (mailout/sms) are
// Tasks run by this package, as the workers of other queues can be; the
// timers use its Loop.
//
// A worker claims an item under a short lease (DefaultLease, a minute), has
// its Task prepare the attempt (decode the payload, read the envelope,
// compose the message), and carries it out while it renews the lease every
// third of it, so that a worker that dies loses its item to another within
// a minute, and a long attempt keeps its item. Every attempt of an item
// that belongs to an envelope is recorded in the envelope's audit trail
// twice: as a workflow.DeliveryStarted event before it starts (so that an
// attempt cut short by a crash leaves a trace and the resend shows as the
// next attempt), and as a workflow.DeliveryAttempted event when it ended,
// whose outcome settles the item:
//
//   - delivered: the item is acknowledged;
//   - deferred: the item is retried after a backoff that doubles from
//     Backoff.First up to Backoff.Max, bounded by the item's age and by
//     its attempts (neither an attempt a crash cut short nor a wait in a
//     backlog lengthens it: see Backoff.Next), until it has been pending
//     for Backoff.Limit (48 hours by default): then it fails;
//   - failed: the item is buried (moved to the queue's dead letters).
//
// An item that cannot be prepared for good (an unreadable payload, an
// envelope that is gone, a message that cannot be composed) is buried too,
// and its failure recorded the same way; a preparation that may succeed
// later (the store did not answer: see Transient) is retried with the
// backoff. A buried item is thus always in the audit trail, and the
// workflow tells the envelope's sender (see workflow.DeliveryAttempted).
//
// Delivery is at least once: an item leaves the outbox only after it was
// carried out, so a crash (or a lost lease) between the attempt and its
// record makes another worker carry it out again; that worker logs the
// resend at Warn. An attempt whose lease was lost meanwhile is logged and
// left to the item's new holder, never settled. A final outcome (delivered
// or failed) is recorded with an idempotency key naming the item (see
// engine.EventOnce): a crash between that record and the settlement makes
// the next holder settle the item as recorded, without another attempt,
// so that a refused mail tells the envelope's sender once.
//
// Workers wait for work on the store's wake-ups (store.Store.Wakeups: an
// item was queued, here or by another replica) and, as a safety net, on a
// poll timer. NewCollector reports the queues' depth for /metrics.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// Delivery is what an item delivers for an envelope, as the audit trail
// names it.
type Delivery struct {
	// Notice is the kind of mail or message.
	Notice workflow.Notice
	// To is the recipient ID it is for, "" for the envelope's sender.
	To string
}

// DeliveryOf is the Delivery of a mail or SMS job.
func DeliveryOf(job engine.Job) Delivery {
	d := Delivery{Notice: job.Notice, To: job.To}
	if d.To == engine.SenderAddressee {
		d.To = ""
	}
	return d
}

// Attempt is how one try to carry out an item ended.
type Attempt struct {
	// Outcome is delivered, deferred or failed.
	Outcome workflow.Outcome
	// Answer is the server's reply ("250 2.0.0 Ok: queued as 4Xy") or what
	// went wrong; it goes to the audit trail and, for a failure, to the
	// envelope's sender.
	Answer string
	// Took is how long the attempt took, for the latency histogram.
	Took time.Duration
}

// Task carries out the items of one queue, one at a time: a worker calls
// Prepare and, when it succeeds, Attempt for each item it claims. A Task
// may keep what Prepare made (a spooled message) for Attempt.
type Task interface {
	// Prepare readies the attempt of a claimed item: it decodes the
	// payload and reads or builds what the attempt sends. It returns what
	// the item delivers, as far as it found out. An error buries the item,
	// unless it is Transient.
	Prepare(ctx context.Context, it *store.Item) (Delivery, error)
	// Attempt carries out the item prepared last.
	Attempt(ctx context.Context) Attempt
}

// Transient marks an error of Task.Prepare that may pass, such as a store
// that did not answer: the item is retried with the backoff instead of
// buried.
func Transient(err error) error { return &transientError{err} }

type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// StoreError marks an error of a store read as Transient, unless it says
// the record is missing or corrupt, which no retry mends.
func StoreError(err error) error {
	if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrCorrupt) {
		return err
	}
	return Transient(err)
}

// DecodeJob reads the Job of a mail or SMS item and what it delivers; an
// item that carries no job cannot be sent.
func DecodeJob(e *engine.Engine, it *store.Item) (engine.Job, Delivery, error) {
	job, err := e.OpenJob(it)
	if err != nil {
		return job, Delivery{}, err
	}
	if job.Notice == "" {
		return job, Delivery{}, errors.New("payload is not a job: no notice")
	}
	return job, DeliveryOf(job), nil
}

// Queue is one queue of the store's outbox as its workers see it: it
// claims items and records and settles their attempts, so that every
// worker follows one outcome policy.
type Queue struct {
	// Store holds the outbox.
	Store store.Store
	// Engine records the attempts on envelopes.
	Engine *engine.Engine
	// Name is the queue worked on, e.g. engine.MailQueue.
	Name string
	// Lease is how long a claimed item is held without renewal: the
	// worker renews it every third of it while an attempt runs, so it
	// bounds how long the item of a worker that died waits. Zero means
	// DefaultLease.
	Lease time.Duration
	// Backoff spaces the retries of deferred items.
	Backoff Backoff
	// Metrics counts attempts; nil counts nothing.
	Metrics *Metrics
	// Log receives what an operator must see; nil means slog.Default().
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultLease is the lease of a claimed item when Queue.Lease is zero:
// how long an item of a worker that died waits for another worker. The
// lease is renewed every third of it while an attempt runs.
const DefaultLease = time.Minute

func (q *Queue) lease() time.Duration {
	if q.Lease <= 0 {
		return DefaultLease
	}
	return q.Lease
}

// age is how long it has been pending: since it was first due.
func (q *Queue) age(it *store.Item) time.Duration {
	since := it.Since
	if since.IsZero() {
		since = it.NotBefore
	}
	return q.now().Sub(since)
}

func (q *Queue) now() time.Time {
	if q.Now == nil {
		return time.Now()
	}
	return q.Now()
}

func (q *Queue) log() *slog.Logger {
	if q.Log == nil {
		return slog.Default()
	}
	return q.Log
}

// DefaultPoll is how often a worker looks at its queue when no wake-up
// came: a safety net for wake-ups that were lost.
const DefaultPoll = 5 * time.Second

// Work runs task as holder until ctx is cancelled: it steps whenever the
// store signals an item of the queue, or after poll, as Loop does.
func (q *Queue) Work(ctx context.Context, holder string, task Task, poll time.Duration, idle func()) {
	step := func(ctx context.Context) (bool, error) { return q.Step(ctx, holder, task) }
	Loop(ctx, q.Log, poll, q.Store.Wakeups(ctx, q.Name), step, idle)
}

// Step claims the next due item of the queue for holder and carries it out
// with task. It reports false when no item was due.
func (q *Queue) Step(ctx context.Context, holder string, task Task) (bool, error) {
	it, err := q.claim(ctx, holder)
	if err != nil || it == nil {
		return false, err
	}
	if q.resumed(it) {
		if settled, err := q.settleRecorded(ctx, it); settled || err != nil {
			return true, err
		}
		q.log().Warn("resending an item whose holder stopped during the last attempt: its lease expired",
			"item", it.ID, "queue", it.Queue, "attempt", it.Attempts, "last_error", it.LastError)
	}
	d, err := task.Prepare(ctx, it)
	if err != nil {
		return true, q.unprepared(ctx, it, d, err)
	}
	if err := q.started(ctx, it, d); err != nil {
		if mayPass(err) {
			err = Transient(err)
		}
		return true, q.unprepared(ctx, it, d, fmt.Errorf("recording the start of the attempt: %w", err))
	}
	a, lost := q.attempt(ctx, it, task)
	if lost != nil {
		q.log().Warn("lease lost during the attempt; its outcome is left to the item's new holder",
			"item", it.ID, "queue", it.Queue, "attempt", it.Attempts, "outcome", a.Outcome, "answer", a.Answer, "err", lost)
		return true, nil
	}
	return true, q.Settle(ctx, it, d, a)
}

// claim takes the next due item for holder, or returns a nil item when
// none is due.
func (q *Queue) claim(ctx context.Context, holder string) (*store.Item, error) {
	it, err := q.Store.Claim(ctx, q.Name, holder, q.now(), q.lease())
	if errors.Is(err, store.ErrEmpty) {
		return nil, nil
	}
	return it, err
}

// resumed reports whether the item's last holder stopped before it
// settled its attempt. Every settlement but a burial writes the attempt's
// number into the item's LastError (see retry): an item claimed again
// without it was held by a worker that stopped.
func (q *Queue) resumed(it *store.Item) bool {
	return it.Attempts > 1 && !strings.HasPrefix(it.LastError, attemptPrefix(it.Attempts-1))
}

// settleRecorded settles, without another attempt, a resumed item whose
// last holder recorded a final outcome before it stopped: acknowledged
// when delivered, buried when failed. It reports false when no final
// outcome was recorded.
func (q *Queue) settleRecorded(ctx context.Context, it *store.Item) (bool, error) {
	if it.EnvelopeID == "" {
		return false, nil
	}
	for _, outcome := range []workflow.Outcome{workflow.OutcomeDelivered, workflow.OutcomeFailed} {
		recorded, err := q.Store.HasKey(ctx, it.EnvelopeID, outcomeKey(it, outcome))
		if errors.Is(err, store.ErrNotFound) {
			return false, nil // the envelope is gone: Prepare says so
		}
		if err != nil {
			// The item stays held until its lease ends, then is
			// claimed again.
			return false, fmt.Errorf("outbox: item %s: reading whether its outcome was recorded: %w", it.ID, err)
		}
		if !recorded {
			continue
		}
		q.log().Warn("settling an item whose holder stopped after it recorded the outcome: not sent again",
			"item", it.ID, "queue", it.Queue, "attempt", it.Attempts-1, "outcome", outcome)
		if outcome == workflow.OutcomeDelivered {
			err = q.Store.Ack(ctx, it)
		} else {
			err = q.Store.Bury(ctx, it, "its failure was recorded by its last holder, which stopped before burying it")
		}
		if err != nil {
			return true, fmt.Errorf("outbox: settling item %s (%s, recorded before): %w", it.ID, outcome, err)
		}
		return true, nil
	}
	return false, nil
}

// outcomeKey is the idempotency key recorded with the final outcome of
// the item's attempts.
func outcomeKey(it *store.Item, outcome workflow.Outcome) string {
	return "outbox " + it.Queue + " " + it.ID + " " + string(outcome)
}

// attemptPrefix starts the LastError an attempt's settlement writes.
func attemptPrefix(attempt int) string { return fmt.Sprintf("attempt %d: ", attempt) }

// started records the start of the attempt of it in the envelope's audit
// trail.
func (q *Queue) started(ctx context.Context, it *store.Item, d Delivery) error {
	if it.EnvelopeID == "" {
		return nil
	}
	_, err := q.Engine.Event(ctx, it.EnvelopeID, workflow.DeliveryStarted{
		Meta: workflow.Meta{At: q.now()}, Notice: d.Notice, To: d.To, Attempt: it.Attempts,
	})
	return err
}

// attempt runs task.Attempt while the item's lease is renewed. It returns
// the attempt and, when the lease was lost meanwhile, why: the item may
// be with another worker already.
func (q *Queue) attempt(ctx context.Context, it *store.Item, task Task) (a Attempt, lost error) {
	lost = q.WhileHeld(ctx, it, func() { a = task.Attempt(ctx) })
	return a, lost
}

// WhileHeld runs work while the lease of it, claimed from the queue, is
// renewed every third of the lease, so that a long piece of work keeps its
// item and a worker that dies loses it within a lease. It returns, when
// the lease was lost meanwhile, why (store.ErrLeaseLost): the item may be
// with another worker already, who must be left to settle it.
func (q *Queue) WhileHeld(ctx context.Context, it *store.Item, work func()) (lost error) {
	stop := make(chan struct{})
	renewed := make(chan error, 1)
	held := *it // Extend writes its LeaseUntil while the work may read it
	go func() { renewed <- q.renew(ctx, &held, stop) }()
	defer func() {
		close(stop)
		lost = <-renewed
	}()
	work()
	return nil
}

// renew extends the lease of it every third of the lease until stop is
// closed, and returns store.ErrLeaseLost if the item was lost meanwhile.
// A renewal that fails otherwise (the store did not answer) is logged and
// tried again at the next tick, while the lease lasts.
func (q *Queue) renew(ctx context.Context, it *store.Item, stop <-chan struct{}) error {
	lease := q.lease()
	tick := time.NewTicker(lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
		// The attempt goes on when the worker is stopped; so does its lease.
		err := q.Store.Extend(context.WithoutCancel(ctx), it, q.now(), lease)
		if errors.Is(err, store.ErrLeaseLost) {
			return err
		}
		if err != nil {
			q.log().Warn("renewing the lease of an item being attempted", "item", it.ID, "queue", it.Queue, "err", err)
		}
	}
}

// unprepared settles an item whose preparation failed with err: released
// when the worker stops, retried when err is Transient and the backoff
// lasts, buried otherwise.
func (q *Queue) unprepared(ctx context.Context, it *store.Item, d Delivery, err error) error {
	var transient *transientError
	switch {
	case ctx.Err() != nil:
		return q.Release(ctx, it, "the worker stopped while preparing the item")
	case errors.As(err, &transient):
		wait, ok := q.Backoff.Next(q.age(it), it.Attempts)
		if ok {
			q.log().Info("outbox item could not be prepared; retrying", "item", it.ID, "queue", it.Queue,
				"attempt", it.Attempts, "retry_in", wait, "err", err)
			return q.retry(ctx, it, wait, err.Error())
		}
		err = fmt.Errorf("%w (gave up after %d attempts)", err, it.Attempts)
	}
	return q.Reject(ctx, it, d, err)
}

// Settle records attempt a of item it, which delivers d, and acknowledges,
// retries or buries the item. A deferred attempt past the backoff's limit
// becomes a failure. The store writes do not obey ctx's cancellation: an
// attempt that reached the server is recorded even while the worker stops.
func (q *Queue) Settle(ctx context.Context, it *store.Item, d Delivery, a Attempt) error {
	var wait time.Duration
	if a.Outcome == workflow.OutcomeDeferred {
		var ok bool
		if wait, ok = q.Backoff.Next(q.age(it), it.Attempts); !ok {
			a.Outcome = workflow.OutcomeFailed
			a.Answer = fmt.Sprintf("%s (gave up after %d attempts)", a.Answer, it.Attempts)
		}
	}
	q.Metrics.observe(d, a)
	return q.settle(ctx, it, d, a, wait, "delivery failed; item buried")
}

// Reject buries an item that cannot be attempted at all (a payload that is
// no Job, a message that cannot be composed), with the reason, which is
// recorded as a failed attempt.
func (q *Queue) Reject(ctx context.Context, it *store.Item, d Delivery, reason error) error {
	q.Metrics.reject(d)
	a := Attempt{Outcome: workflow.OutcomeFailed, Answer: reason.Error()}
	return q.settle(ctx, it, d, a, 0, "outbox item cannot be carried out; buried")
}

// settle records a and settles the item; wait is the backoff of a deferred
// attempt, failed says what a failure is in the log.
func (q *Queue) settle(ctx context.Context, it *store.Item, d Delivery, a Attempt, wait time.Duration, failed string) error {
	ctx = context.WithoutCancel(ctx)
	recordErr := q.record(ctx, it, d, a)
	// A store restarting (Redis loading its data) refuses writes for a
	// moment: the record is tried again, a few seconds at most, rather
	// than lost for good (a delivered mail's) or turned into a retry (a
	// failure's).
	for pause := recordPause; mayPass(recordErr) && pause <= maxRecordPause; pause *= 2 {
		<-time.After(pause)
		recordErr = q.record(ctx, it, d, a)
	}
	log := q.log().With("item", it.ID, "queue", it.Queue, "attempt", it.Attempts, "outcome", a.Outcome, "answer", a.Answer)
	if recordErr != nil {
		log.Error("recording a delivery attempt", "err", recordErr)
	}
	var err error
	switch a.Outcome {
	case workflow.OutcomeDelivered:
		// The message left: sending it again to get the audit record
		// right would be worse than the missing record, which is logged.
		log.Debug("delivered")
		err = q.Store.Ack(ctx, it)
	case workflow.OutcomeDeferred:
		log.Info("delivery deferred", "retry_in", wait)
		return q.retry(ctx, it, wait, a.Answer)
	default:
		// The failure must reach the audit trail, which tells the sender:
		// if recording it failed for a reason that may pass, the item is
		// tried again while the backoff lasts rather than buried unheard.
		if mayPass(recordErr) {
			if wait, ok := q.Backoff.Next(q.age(it), it.Attempts); ok {
				log.Warn("delivery failed; retrying since it could not be recorded", "retry_in", wait)
				return q.retry(ctx, it, wait, a.Answer)
			}
		}
		log.Warn(failed)
		err = q.Store.Bury(ctx, it, a.Answer)
	}
	if err != nil {
		return fmt.Errorf("outbox: settling item %s (%s): %w", it.ID, a.Outcome, err)
	}
	return nil
}

// recordPause is the first wait before an attempt's record that failed
// is tried again; the waits double up to maxRecordPause (6.3 s in all).
const (
	recordPause    = 100 * time.Millisecond
	maxRecordPause = 3200 * time.Millisecond
)

// mayPass reports whether recording an attempt that failed with err may
// succeed later: not when the envelope is gone or corrupt, nor when the
// workflow refused the event.
func mayPass(err error) bool {
	var refused *workflow.Error
	return err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrCorrupt) && !errors.As(err, &refused)
}

// retry gives the item back to be claimed again after wait, with why
// and the attempt's number as its LastError.
func (q *Queue) retry(ctx context.Context, it *store.Item, wait time.Duration, why string) error {
	if err := q.Store.Retry(context.WithoutCancel(ctx), it, q.now().Add(wait), attemptPrefix(it.Attempts)+why); err != nil {
		return fmt.Errorf("outbox: retrying item %s: %w", it.ID, err)
	}
	return nil
}

// Release gives an item back, due now, when the worker stops before it
// could attempt it: stopping is no fault of the item.
func (q *Queue) Release(ctx context.Context, it *store.Item, why string) error {
	return q.retry(ctx, it, 0, why)
}

// record applies the DeliveryAttempted event of a to the item's envelope;
// a final outcome, once only.
func (q *Queue) record(ctx context.Context, it *store.Item, d Delivery, a Attempt) error {
	if it.EnvelopeID == "" {
		return nil
	}
	ev := workflow.DeliveryAttempted{
		Meta: workflow.Meta{At: q.now()}, Notice: d.Notice, To: d.To, Outcome: a.Outcome, Answer: a.Answer,
	}
	var err error
	if a.Outcome == workflow.OutcomeDeferred {
		_, err = q.Engine.Event(ctx, it.EnvelopeID, ev)
	} else {
		_, err = q.Engine.EventOnce(ctx, it.EnvelopeID, outcomeKey(it, a.Outcome), ev)
	}
	return err
}
