package outbox

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// The collector reports each queue's items by state and the ages of its
// oldest due and oldest pending items, read from the store at scrape time.
func TestCollector(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := f.now()
	item := func(id string, due time.Time) store.Item {
		return store.Item{ID: id, Queue: engine.MailQueue, Payload: []byte(`{}`), NotBefore: due}
	}
	if err := f.st.Enqueue(ctx, item("held", now.Add(-time.Hour)), item("buried", now.Add(-50*time.Minute)),
		item("due", now.Add(-10*time.Minute)), item("later", now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	for _, settle := range []func(*store.Item) error{
		func(*store.Item) error { return nil }, // held, oldest due
		func(it *store.Item) error { return f.st.Bury(ctx, it, "gone") },
	} {
		it, err := f.st.Claim(ctx, engine.MailQueue, "worker", now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := settle(it); err != nil {
			t.Fatal(err)
		}
	}
	c := NewCollector(f.st, nil, engine.MailQueue, engine.SMSQueue)
	c.now = f.now
	wantScrape(t, c, map[string]float64{
		"parapheur_outbox_items queue=mail state=waiting":        1,
		"parapheur_outbox_items queue=mail state=due":            1,
		"parapheur_outbox_items queue=mail state=held":           1,
		"parapheur_outbox_items queue=mail state=buried":         1,
		"parapheur_outbox_oldest_due_age_seconds queue=mail":     3600,
		"parapheur_outbox_oldest_pending_age_seconds queue=mail": 3600,
		"parapheur_outbox_items queue=sms state=waiting":         0,
		"parapheur_outbox_items queue=sms state=due":             0,
		"parapheur_outbox_items queue=sms state=held":            0,
		"parapheur_outbox_items queue=sms state=buried":          0,
		"parapheur_outbox_oldest_due_age_seconds queue=sms":      0,
		"parapheur_outbox_oldest_pending_age_seconds queue=sms":  0,
	})
}

// wantScrape registers c with a pedantic registry, gathers it as a scrape
// does, and fails t unless the gauges, by "name label=value…", are want.
func wantScrape(t *testing.T, c prometheus.Collector, want map[string]float64) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, fam := range families {
		for _, m := range fam.GetMetric() {
			key := fam.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
}

// An item retried into the future is not due, so the oldest due age says
// nothing of it; the pending age keeps counting from when it was first
// due: a completion whose seal keeps failing shows how long it has been
// stuck. A timer set for later is not pending.
func TestCollectorPendingAge(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := f.now()
	if err := f.st.Enqueue(ctx,
		store.Item{ID: "E1/complete", Queue: engine.CompletionQueue, Payload: []byte(`{}`), NotBefore: now.Add(-2 * time.Hour)},
		store.Item{ID: "E1/expiry", Queue: engine.TimerQueue, Payload: []byte(`{}`), NotBefore: now.Add(7 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// Two failed attempts, each retried later: at now-2h until now-1h,
	// at now-1h until now+10m.
	for _, attempt := range []struct{ at, next time.Time }{
		{now.Add(-2 * time.Hour), now.Add(-time.Hour)},
		{now.Add(-time.Hour), now.Add(10 * time.Minute)},
	} {
		it, err := f.st.Claim(ctx, engine.CompletionQueue, "worker", attempt.at, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.st.Retry(ctx, it, attempt.next, "TSA unreachable"); err != nil {
			t.Fatal(err)
		}
	}
	c := NewCollector(f.st, nil, engine.CompletionQueue, engine.TimerQueue)
	c.now = f.now
	wantScrape(t, c, map[string]float64{
		"parapheur_outbox_items queue=completion state=waiting":        1,
		"parapheur_outbox_items queue=completion state=due":            0,
		"parapheur_outbox_items queue=completion state=held":           0,
		"parapheur_outbox_items queue=completion state=buried":         0,
		"parapheur_outbox_oldest_due_age_seconds queue=completion":     0,
		"parapheur_outbox_oldest_pending_age_seconds queue=completion": 7200,
		"parapheur_outbox_items queue=timer state=waiting":             1,
		"parapheur_outbox_items queue=timer state=due":                 0,
		"parapheur_outbox_items queue=timer state=held":                0,
		"parapheur_outbox_items queue=timer state=buried":              0,
		"parapheur_outbox_oldest_due_age_seconds queue=timer":          0,
		"parapheur_outbox_oldest_pending_age_seconds queue=timer":      0,
	})
}

// Code deliveries are counted apart, by outcome, besides all the attempts.
func TestMetricsCountCodes(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg, "parapheur_sms")
	code := Delivery{Notice: engine.NoticeCode, To: "r1"}
	m.observe(code, Attempt{Outcome: workflow.OutcomeDeferred})
	m.observe(code, Attempt{Outcome: workflow.OutcomeDelivered})
	m.observe(Delivery{Notice: workflow.Invitation, To: "r1"}, Attempt{Outcome: workflow.OutcomeDelivered})
	m.reject(code)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, c := range f.GetMetric() {
			if strings.HasSuffix(f.GetName(), "_total") && len(c.GetLabel()) > 0 {
				got[f.GetName()+" "+c.GetLabel()[0].GetValue()] = c.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{
		"parapheur_sms_attempts_total delivered": 2, "parapheur_sms_attempts_total deferred": 1, "parapheur_sms_attempts_total failed": 0,
		"parapheur_sms_codes_total delivered": 1, "parapheur_sms_codes_total deferred": 1, "parapheur_sms_codes_total failed": 1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counters %v\nwant %v", got, want)
	}
}
