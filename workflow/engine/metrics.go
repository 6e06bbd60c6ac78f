package engine

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parapheur/parapheur/workflow"
)

// Metrics counts what the engine changes, for /metrics, without reading
// the store at scrape time (a count of envelopes by state would scan
// them all):
//
//   - parapheur_envelope_transitions_total{state}: envelopes that entered
//     state through this process — in_progress when created, then
//     completed, declined, cancelled or expired. Summed over the replicas,
//     in_progress minus the final states is the envelopes open since the
//     counters started;
//   - parapheur_codes_issued_total{channel}: one-time codes made and
//     queued, by channel (email, sms); their delivery is counted by the
//     senders' parapheur_mail_codes_total and parapheur_sms_codes_total.
type Metrics struct {
	transitions *prometheus.CounterVec
	codes       *prometheus.CounterVec
}

// NewMetrics registers the engine's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parapheur_envelope_transitions_total",
			Help: "Envelopes that entered a state through this process: in_progress (created), completed, declined, cancelled, expired.",
		}, []string{"state"}),
		codes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parapheur_codes_issued_total",
			Help: "One-time codes made and queued for sending, by channel: email or sms.",
		}, []string{"channel"}),
	}
	for _, s := range []workflow.State{workflow.StateInProgress, workflow.StateCompleted, workflow.StateDeclined,
		workflow.StateCancelled, workflow.StateExpired} {
		m.transitions.WithLabelValues(string(s))
	}
	for _, c := range []string{"email", "sms"} {
		m.codes.WithLabelValues(c)
	}
	reg.MustRegister(m.transitions, m.codes)
	return m
}

// The methods accept a nil *Metrics, so that an engine without metrics
// needs no checks.

// entered counts an envelope that went from state from to state to.
func (m *Metrics) entered(from, to workflow.State) {
	if m != nil && from != to {
		m.transitions.WithLabelValues(string(to)).Inc()
	}
}

// issued counts a code queued on channel.
func (m *Metrics) issued(channel string) {
	if m != nil {
		m.codes.WithLabelValues(channel).Inc()
	}
}
