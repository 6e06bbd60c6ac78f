package outbox

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parapheur/parapheur/workflow"
)

// Metrics counts the attempts of one queue's workers for /metrics.
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
