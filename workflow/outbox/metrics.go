package outbox

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// Metrics counts the attempts of one queue's workers for /metrics.
type Metrics struct {
	attempts *prometheus.CounterVec
	latency  prometheus.Histogram
	rejected prometheus.Counter
	codes    *prometheus.CounterVec
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
		codes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "_codes_total",
			Help: "Attempts to deliver a one-time code by outcome: delivered, deferred (retried later) or failed (given up, or the message could not be made).",
		}, []string{"outcome"}),
	}
	// Pre-create the outcomes, so that a dashboard sees zeros, not gaps.
	for _, o := range []workflow.Outcome{workflow.OutcomeDelivered, workflow.OutcomeDeferred, workflow.OutcomeFailed} {
		m.attempts.WithLabelValues(string(o))
		m.codes.WithLabelValues(string(o))
	}
	reg.MustRegister(m.attempts, m.latency, m.rejected, m.codes)
	return m
}

// The methods accept a nil *Metrics, so that workers without metrics need
// no checks.

func (m *Metrics) observe(d Delivery, a Attempt) {
	if m != nil {
		m.attempts.WithLabelValues(string(a.Outcome)).Inc()
		m.latency.Observe(a.Took.Seconds())
		m.code(d, a.Outcome)
	}
}

func (m *Metrics) reject(d Delivery) {
	if m != nil {
		m.rejected.Inc()
		m.code(d, workflow.OutcomeFailed)
	}
}

// code counts the outcome of delivering d when it carries a one-time code.
func (m *Metrics) code(d Delivery, o workflow.Outcome) {
	if d.Notice == engine.NoticeCode {
		m.codes.WithLabelValues(string(o)).Inc()
	}
}

// Collector reports the depth of outbox queues at scrape time, from
// store.Store.QueueStats: parapheur_outbox_items{queue,state} counts the
// items waiting (not yet due), due, held (being worked on) and buried;
// parapheur_outbox_oldest_due_age_seconds{queue} is how long the oldest
// due or held item has waited since it last became due, 0 when none;
// parapheur_outbox_oldest_pending_age_seconds{queue} is how long the
// oldest item not buried has been pending, retries included (an item
// retried with backoff is not due between its attempts but keeps its age:
// store.QueueStats.OldestPending), 0 when none. On the completion queue,
// that is how long the oldest unfinished completion has been stuck.
type Collector struct {
	store   store.Store
	queues  []string
	log     *slog.Logger
	now     func() time.Time
	items   *prometheus.Desc
	age     *prometheus.Desc
	pending *prometheus.Desc
}

// scrapeTimeout bounds the store reads of one scrape.
const scrapeTimeout = 5 * time.Second

// NewCollector returns a Collector of queues; log receives the store's
// failures (nil means slog.Default()).
func NewCollector(st store.Store, log *slog.Logger, queues ...string) *Collector {
	if log == nil {
		log = slog.Default()
	}
	return &Collector{
		store: st, queues: queues, log: log, now: time.Now,
		items: prometheus.NewDesc("parapheur_outbox_items",
			"Outbox items by queue and state: waiting (not yet due), due, held (being worked on), buried (given up).",
			[]string{"queue", "state"}, nil),
		age: prometheus.NewDesc("parapheur_outbox_oldest_due_age_seconds",
			"How long the oldest due or held item of the queue has been due; 0 when none.",
			[]string{"queue"}, nil),
		pending: prometheus.NewDesc("parapheur_outbox_oldest_pending_age_seconds",
			"How long the oldest item of the queue not buried has been pending, retries with backoff included; 0 when none.",
			[]string{"queue"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.items
	ch <- c.age
	ch <- c.pending
}

// Collect implements prometheus.Collector. A queue the store cannot
// describe is left out of the scrape and logged, so that the other
// metrics still reach the dashboard.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	now := c.now()
	for _, q := range c.queues {
		st, err := c.store.QueueStats(ctx, q, now)
		if err != nil {
			c.log.Warn("outbox metrics: reading the queue", "queue", q, "err", err)
			continue
		}
		for state, n := range map[string]int{"waiting": st.Waiting - st.Due, "due": st.Due, "held": st.Held, "buried": st.Buried} {
			ch <- prometheus.MustNewConstMetric(c.items, prometheus.GaugeValue, float64(n), q, state)
		}
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, ageAt(now, st.OldestDue), q)
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, ageAt(now, st.OldestPending), q)
	}
}

// ageAt is how many seconds before now since was, 0 for a zero since.
func ageAt(now, since time.Time) float64 {
	if since.IsZero() {
		return 0
	}
	return max(now.Sub(since).Seconds(), 0)
}
