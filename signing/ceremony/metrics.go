package ceremony

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts the signatures a ceremony makes, for /metrics:
// parapheur_signatures_total{outcome} the signatures made ("signed") and
// those asked for that could not be ("failed": the envelope busy with
// another signature, a timestamp authority that did not answer, the
// store), and parapheur_signature_duration_seconds the time to make one,
// from the envelope's signing lease to the recorded signature, all its
// documents included.
type Metrics struct {
	signatures *prometheus.CounterVec
	duration   prometheus.Histogram
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		signatures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parapheur_signatures_total",
			Help: "Signatures asked for with a verified code, by outcome: signed, or failed (envelope busy, timestamp authority or store unavailable).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parapheur_signature_duration_seconds",
			Help:    "Time to make and record one signature on every document of the envelope.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}),
	}
	m.signatures.WithLabelValues("signed")
	m.signatures.WithLabelValues("failed")
	reg.MustRegister(m.signatures, m.duration)
	return m
}

// signature counts a signature that took took and ended with err. It
// accepts a nil *Metrics, so that a ceremony without metrics needs no
// checks.
func (m *Metrics) signature(err error, took time.Duration) {
	switch {
	case m == nil:
	case err != nil:
		m.signatures.WithLabelValues("failed").Inc()
	default:
		m.signatures.WithLabelValues("signed").Inc()
		m.duration.Observe(took.Seconds())
	}
}
