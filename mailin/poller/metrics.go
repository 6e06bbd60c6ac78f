package poller

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the poller does, for /metrics.
type Metrics struct {
	messages   *prometheus.CounterVec
	reconnects prometheus.Counter
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
	}
	reg.MustRegister(m.messages, m.reconnects)
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
