package poller

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the poller does, for /metrics.
type Metrics struct {
	messages   *prometheus.CounterVec
	reconnects prometheus.Counter
	lag        prometheus.Histogram
	held       prometheus.Gauge
}

// NewMetrics registers the poller's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parapheur_imap_messages_total",
			Help: "Inbox messages handled, by outcome: processed, quarantine, verification (a mail to the verification address, moved to the processed folder), or retry (left in the inbox after a failure that may pass).",
		}, []string{"outcome"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parapheur_imap_reconnects_total",
			Help: "IMAP sessions that ended with an error and were reopened.",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parapheur_imap_lag_seconds",
			Help:    "Time from a message's arrival in the mailbox (its INTERNALDATE) to the end of its handling.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 12),
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parapheur_imap_lease_held",
			Help: "1 while this replica holds the poller lease and polls the mailbox, else 0: the sum over the replicas is 1.",
		}),
	}
	reg.MustRegister(m.messages, m.reconnects, m.lag, m.held)
	return m
}

// The methods accept a nil *Metrics, so a poller without metrics needs no checks.

func (m *Metrics) count(outcome string) {
	if m != nil {
		m.messages.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) reconnect() {
	if m != nil {
		m.reconnects.Inc()
	}
}

// handled notes a message that arrived at received and was handled at now.
func (m *Metrics) handled(received, now time.Time) {
	if m != nil && !received.IsZero() {
		m.lag.Observe(max(now.Sub(received).Seconds(), 0))
	}
}

// holding notes whether this replica holds the lease.
func (m *Metrics) holding(held bool) {
	if m != nil {
		v := 0.0
		if held {
			v = 1
		}
		m.held.Set(v)
	}
}
