package ingest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parapheur/parapheur/mailin/poller"
)

// Metrics counts what becomes of the submissions, for /metrics:
// parapheur_ingest_mails_total{outcome} counts the mails that made an
// envelope ("envelope"), those refused with a reply that says why
// ("refused"), and those quarantined without a reply ("quarantined": an
// unreadable mail without an author, a From domain that failed DMARC, a
// sender whose quota of refusals is spent). The other mails of the inbox
// (reply commands, bounces, verifications) are counted by the poller's
// parapheur_imap_messages_total.
type Metrics struct {
	mails *prometheus.CounterVec
}

// Outcomes of parapheur_ingest_mails_total.
const (
	outcomeEnvelope    = "envelope"
	outcomeRefused     = "refused"
	outcomeQuarantined = "quarantined"
)

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{mails: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parapheur_ingest_mails_total",
		Help: "Submissions by outcome: envelope (an envelope made), refused (quarantined, the sender told why), quarantined (without a reply).",
	}, []string{"outcome"})}
	for _, o := range []string{outcomeEnvelope, outcomeRefused, outcomeQuarantined} {
		m.mails.WithLabelValues(o)
	}
	reg.MustRegister(m.mails)
	return m
}

// count accepts a nil *Metrics, so that a handler without metrics needs no
// checks.
func (m *Metrics) count(outcome string) {
	if m != nil {
		m.mails.WithLabelValues(outcome).Inc()
	}
}

// quarantine counts a refused mail, told of the refusal (replied) or not,
// and sends it to quarantine for reason.
func (h *Handler) quarantine(reason string, replied bool) (poller.Destination, string, error) {
	if replied {
		h.cfg.Metrics.count(outcomeRefused)
	} else {
		h.cfg.Metrics.count(outcomeQuarantined)
	}
	return poller.Quarantine, reason, nil
}
