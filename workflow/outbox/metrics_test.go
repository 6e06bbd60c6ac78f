package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow/engine"
)

// The collector reports each queue's items by state and the age of its
// oldest due item, read from the store at scrape time.
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
	want := map[string]float64{
		"parapheur_outbox_items queue=mail state=waiting":    1,
		"parapheur_outbox_items queue=mail state=due":        1,
		"parapheur_outbox_items queue=mail state=held":       1,
		"parapheur_outbox_items queue=mail state=buried":     1,
		"parapheur_outbox_oldest_due_age_seconds queue=mail": 3600,
		"parapheur_outbox_items queue=sms state=waiting":     0,
		"parapheur_outbox_items queue=sms state=due":         0,
		"parapheur_outbox_items queue=sms state=held":        0,
		"parapheur_outbox_items queue=sms state=buried":      0,
		"parapheur_outbox_oldest_due_age_seconds queue=sms":  0,
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
