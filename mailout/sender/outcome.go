package sender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// Backoff spaces the retries of a deferred item. The zero value means one
// minute doubling to one hour, for 48 hours.
type Backoff struct {
	// First is the wait after the first deferred attempt.
	First time.Duration
	// Max caps the doubling wait.
	Max time.Duration
	// Limit is how long an item is retried: once the waits before its
	// attempts add up to Limit, a deferred attempt counts as failed.
	Limit time.Duration
}

// Default backoff values, used for zero fields.
const (
	// DefaultFirstBackoff is the first wait: long enough for a greylisting
	// MTA to accept the retry.
	DefaultFirstBackoff = time.Minute
	// DefaultMaxBackoff caps the doubling.
	DefaultMaxBackoff = time.Hour
	// DefaultRetryLimit is how long a deferred item is retried, as long as
	// MTAs commonly keep a message before bouncing it.
	DefaultRetryLimit = 48 * time.Hour
)

func (b Backoff) withDefaults() Backoff {
	if b.First <= 0 {
		b.First = DefaultFirstBackoff
	}
	if b.Max <= 0 {
		b.Max = DefaultMaxBackoff
	}
	if b.Max < b.First {
		b.Max = b.First
	}
	if b.Limit <= 0 {
		b.Limit = DefaultRetryLimit
	}
	return b
}

// Next returns the wait after the attempts-th attempt of an item was
// deferred, or false when the item has been retried for Limit already. It
// reads nothing but attempts (store.Item.Attempts), so the schedule holds
// across restarts without a clock of the item.
func (b Backoff) Next(attempts int) (time.Duration, bool) {
	b = b.withDefaults()
	wait, waited := b.First, time.Duration(0)
	for i := 1; i < attempts; i++ {
		waited += wait
		if waited >= b.Limit {
			return 0, false
		}
		wait = min(2*wait, b.Max)
	}
	return wait, true
}

// Attempt is how one try to deliver an item ended.
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

// Outbox is one queue of the store's outbox as a delivery worker sees it:
// it claims items and records and settles their attempts. The mail and the
// SMS workers share it, so both follow one outcome policy.
type Outbox struct {
	// Store holds the outbox.
	Store store.Store
	// Engine records DeliveryAttempted events on envelopes.
	Engine *engine.Engine
	// Queue is the queue worked on, engine.MailQueue or engine.SMSQueue.
	Queue string
	// Lease is how long a claimed item is held; it must exceed the longest
	// attempt, or another worker sends the item again meanwhile. Zero
	// means DefaultLease.
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

func (s *Outbox) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Outbox) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// Settle records attempt a of item it, which carries job, and acknowledges,
// retries or buries the item. A deferred attempt past the backoff's limit
// becomes a failure. The store writes do not obey ctx's cancellation: an
// attempt that reached the server is recorded even while the worker stops.
func (s *Outbox) Settle(ctx context.Context, it *store.Item, job engine.Job, a Attempt) error {
	ctx = context.WithoutCancel(ctx)
	var wait time.Duration
	if a.Outcome == workflow.OutcomeDeferred {
		var ok bool
		if wait, ok = s.Backoff.Next(it.Attempts); !ok {
			a.Outcome = workflow.OutcomeFailed
			a.Answer = fmt.Sprintf("%s (gave up after %d attempts)", a.Answer, it.Attempts)
		}
	}
	s.Metrics.observe(a)
	recordErr := s.record(ctx, it, job, a)
	log := s.log().With("item", it.ID, "queue", it.Queue, "attempt", it.Attempts, "outcome", a.Outcome, "answer", a.Answer)
	if recordErr != nil {
		log.Error("recording a delivery attempt", "err", recordErr)
	}
	var err error
	switch a.Outcome {
	case workflow.OutcomeDelivered:
		// The message left: sending it again to get the audit record
		// right would be worse than the missing record, which is logged.
		err = s.Store.Ack(ctx, it)
	case workflow.OutcomeDeferred:
		log.Info("delivery deferred", "retry_in", wait)
		err = s.Store.Retry(ctx, it, s.now().Add(wait), a.Answer)
	default:
		// The failure must reach the audit trail, which tells the sender:
		// if recording it failed, the item is tried again while the
		// backoff lasts rather than buried unheard.
		if recordErr != nil {
			if wait, ok := s.Backoff.Next(it.Attempts); ok {
				log.Warn("delivery failed; retrying since it could not be recorded", "retry_in", wait)
				err = s.Store.Retry(ctx, it, s.now().Add(wait), a.Answer)
				break
			}
		}
		log.Warn("delivery failed")
		err = s.Store.Bury(ctx, it, a.Answer)
	}
	if err != nil {
		return fmt.Errorf("sender: settling item %s (%s): %w", it.ID, a.Outcome, err)
	}
	return nil
}

// Release gives an item back, due now, when the worker stops before it
// could attempt it: stopping is no fault of the item.
func (s *Outbox) Release(ctx context.Context, it *store.Item, why string) error {
	if err := s.Store.Retry(context.WithoutCancel(ctx), it, s.now(), why); err != nil {
		return fmt.Errorf("sender: releasing item %s: %w", it.ID, err)
	}
	return nil
}

// Reject buries an item that cannot be attempted at all (a payload that is
// no Job, a message that cannot be composed), with the reason.
func (s *Outbox) Reject(ctx context.Context, it *store.Item, reason error) error {
	s.log().Error("outbox item cannot be sent; buried", "item", it.ID, "queue", it.Queue, "err", reason)
	s.Metrics.reject()
	if err := s.Store.Bury(context.WithoutCancel(ctx), it, reason.Error()); err != nil {
		return fmt.Errorf("sender: burying item %s: %w", it.ID, err)
	}
	return nil
}

// record applies the DeliveryAttempted event of a to the item's envelope.
func (s *Outbox) record(ctx context.Context, it *store.Item, job engine.Job, a Attempt) error {
	if it.EnvelopeID == "" {
		return nil
	}
	to := job.To
	if to == engine.SenderAddressee {
		to = ""
	}
	_, err := s.Engine.Event(ctx, it.EnvelopeID, workflow.DeliveryAttempted{
		Meta: workflow.Meta{At: s.now()}, Notice: job.Notice, To: to, Outcome: a.Outcome, Answer: a.Answer,
	})
	return err
}

// Metrics counts delivery attempts for /metrics.
type Metrics struct {
	attempts *prometheus.CounterVec
	latency  prometheus.Histogram
	rejected prometheus.Counter
}

// NewMetrics registers the metrics of one channel with reg, their names
// starting with prefix: "parapheur_mail" or "parapheur_sms".
func NewMetrics(reg prometheus.Registerer, prefix string) *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "_attempts_total",
			Help: "Delivery attempts by outcome: delivered, deferred (retried later) or failed (given up, sender told).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    prefix + "_attempt_duration_seconds",
			Help:    "Time from the start of a delivery attempt to the server's final answer.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: prefix + "_rejected_total",
			Help: "Outbox items buried without an attempt: unreadable payload or a message that could not be composed.",
		}),
	}
	// Pre-create the outcomes, so that a dashboard sees zeros, not gaps.
	for _, o := range []workflow.Outcome{workflow.OutcomeDelivered, workflow.OutcomeDeferred, workflow.OutcomeFailed} {
		m.attempts.WithLabelValues(string(o))
	}
	reg.MustRegister(m.attempts, m.latency, m.rejected)
	return m
}

// The methods accept a nil *Metrics, so that workers without metrics need
// no checks.

func (m *Metrics) observe(a Attempt) {
	if m != nil {
		m.attempts.WithLabelValues(string(a.Outcome)).Inc()
		m.latency.Observe(a.Took.Seconds())
	}
}

func (m *Metrics) reject() {
	if m != nil {
		m.rejected.Inc()
	}
}

// Loop calls step until ctx is cancelled: again at once after a step that
// found work, after poll otherwise, calling idle (if not nil) when the
// queue was found empty. Errors of step are logged, not fatal: the store
// may come back.
func Loop(ctx context.Context, log *slog.Logger, poll time.Duration, step func(context.Context) (bool, error), idle func()) {
	if log == nil {
		log = slog.Default()
	}
	for ctx.Err() == nil {
		worked, err := step(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error("outbox worker", "err", err)
		}
		if worked && err == nil {
			continue
		}
		if idle != nil {
			idle()
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// DefaultLease is the lease of a claimed item when Outbox.Lease is zero.
const DefaultLease = 15 * time.Minute

// Claim takes the next due item for holder with its Job, or returns a nil
// item when none is due. An item whose payload is no Job is buried and
// the next one taken.
func (s *Outbox) Claim(ctx context.Context, holder string) (*store.Item, engine.Job, error) {
	lease := s.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	for {
		it, err := s.Store.Claim(ctx, s.Queue, holder, s.now(), lease)
		if errors.Is(err, store.ErrEmpty) {
			return nil, engine.Job{}, nil
		}
		if err != nil {
			return nil, engine.Job{}, err
		}
		var job engine.Job
		if err = json.Unmarshal(it.Payload, &job); err != nil {
			err = fmt.Errorf("payload is not a job: %w", err)
		} else if job.Notice == "" {
			err = errors.New("payload is not a job: no notice")
		}
		if err == nil {
			return it, job, nil
		}
		if err := s.Reject(ctx, it, err); err != nil {
			return nil, engine.Job{}, err
		}
	}
}
