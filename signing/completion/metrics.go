package completion

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts a worker's completions for /metrics:
//
//   - parapheur_completions_total{outcome}: attempts that completed an
//     envelope, and attempts that failed and will be retried;
//   - parapheur_completion_step_duration_seconds{step}: the time to seal
//     one document ("seal"), to make and seal the certificate
//     ("certificate"), and a whole successful attempt ("completion");
//   - parapheur_completion_retrying_envelopes and
//     parapheur_completion_oldest_retrying_age_seconds: the envelopes whose
//     completion this process tried and failed and that are not completed
//     yet, and the time since the oldest one's last step was done. The
//     queue's depth is parapheur_outbox_items{queue="completion"}.
type Metrics struct {
	completions *prometheus.CounterVec
	steps       *prometheus.HistogramVec

	now func() time.Time
	mu  sync.Mutex
	// since holds, by envelope, when the last step of an envelope whose
	// completion failed was done.
	since map[string]time.Time
}

// NewMetrics registers a worker's metrics with reg; now is the clock of
// the ages.
func NewMetrics(reg prometheus.Registerer, now func() time.Time) *Metrics {
	m := &Metrics{
		completions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parapheur_completions_total",
			Help: "Completion attempts by outcome: completed (documents and certificate sealed, final mails queued) or retried (failed, tried again later).",
		}, []string{"outcome"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parapheur_completion_step_duration_seconds",
			Help:    "Time to seal one document (seal), to make and seal the certificate (certificate), and of a whole completion (completion).",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 10),
		}, []string{"step"}),
		now:   now,
		since: map[string]time.Time{},
	}
	for _, o := range []string{"completed", "retried"} {
		m.completions.WithLabelValues(o)
	}
	reg.MustRegister(m.completions, m.steps,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parapheur_completion_retrying_envelopes",
			Help: "Envelopes whose completion failed in this process and is being retried.",
		}, func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return float64(len(m.since))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parapheur_completion_oldest_retrying_age_seconds",
			Help: "Time since the last step was done of the oldest envelope whose completion is being retried, 0 when none.",
		}, m.oldestAge))
	return m
}

func (m *Metrics) oldestAge() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var oldest time.Time
	for _, t := range m.since {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return m.now().Sub(oldest).Seconds()
}

// The methods accept a nil *Metrics, so that a worker without metrics
// needs no checks.

func (m *Metrics) step(name string, took time.Duration) {
	if m != nil {
		m.steps.WithLabelValues(name).Observe(took.Seconds())
	}
}

func (m *Metrics) completed(id string, took time.Duration) {
	if m != nil {
		m.completions.WithLabelValues("completed").Inc()
		m.step("completion", took)
		m.forget(id)
	}
}

func (m *Metrics) retried() {
	if m != nil {
		m.completions.WithLabelValues("retried").Inc()
	}
}

// failing notes that envelope id's completion, begun at since, failed.
func (m *Metrics) failing(id string, since time.Time) {
	if m != nil && !since.IsZero() {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.since[id] = since
	}
}

// forget notes that envelope id needs no completion any more.
func (m *Metrics) forget(id string) {
	if m != nil {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.since, id)
	}
}
