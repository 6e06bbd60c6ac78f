package storetest

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow/audit"
)

// Durable writes one of everything the store keeps through s, calls restart
// (which closes s, restarts the database if it has a server, and opens a
// new handle on it) and checks that everything is there.
func Durable(t *testing.T, s store.Store, restart func(t *testing.T) store.Store) {
	ctx := t.Context()
	env := create(t, s, "E1", t0)
	ok(t, env.AddToken("r2", tokenHash("E1/r2/2")), "AddToken")
	queued := itemAt("queued", "mail", t0)
	queued.EnvelopeID = "E1"
	ok(t, s.Update(ctx, env, store.Writes{Audit: record(env, audit.Viewed, "paul@partner.example"), Items: []store.Item{queued}, Keys: []string{"k1"}}), "Update")
	ok(t, s.Enqueue(ctx, itemAt("held", "timer", t0), itemAt("dead", "sms", t0)), "Enqueue")
	held := claim(t, s, "timer", "w1", t0, time.Hour)
	ok(t, s.Bury(ctx, claim(t, s, "sms", "w1", t0, time.Hour), "no route"), "Bury")
	blob := putGen(t, s, 2<<20+3, 11)
	acquire(t, s, "poller", "replica1", t0, true)
	ok(t, s.SetCursor(ctx, "imap", []byte("7/42")), "SetCursor")

	s = restart(t)

	got, err := s.Get(ctx, "E1")
	ok(t, err, "Get after restart")
	sameEnvelope(t, got, env, "envelope after restart")
	trail(t, s, "E1", 2)
	hasKey(t, s, "E1", "k1", true)
	byToken(t, s, "E1/r2/2", "E1", "r2")
	page, err := s.List(ctx, store.ListQuery{})
	ok(t, err, "List")
	if len(page.Envelopes) != 1 {
		t.Fatalf("List after restart: %d envelopes", len(page.Envelopes))
	}
	sameItem(t, claim(t, s, "mail", "w2", t0, time.Hour), queued, "queued item after restart")
	queueEmpty(t, s, "timer", t0.Add(59*time.Minute))
	ok(t, s.Ack(ctx, held), "Ack of an item held across the restart")
	dead, err := s.Buried(ctx, "sms")
	ok(t, err, "Buried")
	if len(dead) != 1 || dead[0].ID != "dead" || dead[0].LastError != "no route" {
		t.Fatalf("Buried after restart: %+v", dead)
	}
	readBack(t, s, blob)
	acquire(t, s, "poller", "replica2", t0.Add(time.Second), false)
	v, err := s.Cursor(ctx, "imap")
	ok(t, err, "Cursor")
	if string(v) != "7/42" {
		t.Fatalf("Cursor after restart = %q", v)
	}
}

// Bench measures, as ops/s, what the gateway does most: read-modify-write of
// an envelope, appending one audit record, an outbox round trip (enqueue,
// claim, ack) and a signing-link lookup. open returns a new, empty store
// with the default options and closes it when b ends.
func Bench(b *testing.B, open func(b *testing.B) store.Store) {
	b.Run("EnvelopeReadModifyWrite", func(b *testing.B) {
		s := open(b)
		create(b, s, "E1", t0)
		for i := 0; b.Loop(); i++ {
			env, err := s.Get(b.Context(), "E1")
			ok(b, err, "Get")
			env.Message = fmt.Sprint(i)
			ok(b, s.Update(b.Context(), env, store.Writes{}), "Update")
		}
		opsPerSecond(b)
	})
	b.Run("AuditAppend", func(b *testing.B) {
		s := open(b)
		env := create(b, s, "E1", t0)
		for b.Loop() {
			ok(b, s.Update(b.Context(), env, store.Writes{Audit: record(env, audit.Viewed, "marie@partner.example")}), "Update")
		}
		opsPerSecond(b)
	})
	b.Run("OutboxEnqueueClaimAck", func(b *testing.B) {
		s := open(b)
		for i := 0; b.Loop(); i++ {
			ok(b, s.Enqueue(b.Context(), itemAt(fmt.Sprint(i), "mail", t0)), "Enqueue")
			it, err := s.Claim(b.Context(), "mail", "w", t0, time.Minute)
			ok(b, err, "Claim")
			ok(b, s.Ack(b.Context(), it), "Ack")
		}
		opsPerSecond(b)
	})
	b.Run("TokenLookup", func(b *testing.B) {
		s := open(b)
		const envelopes = 100
		for i := range envelopes {
			create(b, s, fmt.Sprint("E", i), t0)
		}
		for b.Loop() {
			i := rand.IntN(envelopes)
			e, _, err := s.ByToken(b.Context(), tokenHash(fmt.Sprintf("E%d/r1/1", i)))
			ok(b, err, "ByToken")
			if e != fmt.Sprint("E", i) {
				b.Fatalf("ByToken found %s, want E%d", e, i)
			}
		}
		opsPerSecond(b)
	})
	b.Run("QueueStats", func(b *testing.B) {
		// A backlog of 10 000 items, half of them due, 8 being worked on.
		s := open(b)
		const queued, batch, workers = 10000, 500, 8
		for i := 0; i < queued; i += batch {
			items := make([]store.Item, batch)
			for j := range items {
				items[j] = itemAt(fmt.Sprint(i+j), "mail", t0.Add(time.Duration(i+j-queued/2)*time.Second))
			}
			ok(b, s.Enqueue(b.Context(), items...), "Enqueue")
		}
		for range workers {
			_, err := s.Claim(b.Context(), "mail", "w", t0, time.Hour)
			ok(b, err, "Claim")
		}
		for b.Loop() {
			st, err := s.QueueStats(b.Context(), "mail", t0)
			ok(b, err, "QueueStats")
			if st.Held != workers || st.Waiting != queued-workers {
				b.Fatalf("QueueStats = %+v", st)
			}
		}
	})
	b.Run("EnqueueWakeup", func(b *testing.B) {
		// An Enqueue and its wake-up reaching a subscriber.
		s := open(b)
		ch := s.Wakeups(b.Context(), "mail")
		for i := 0; b.Loop(); i++ {
			ok(b, s.Enqueue(b.Context(), itemAt(fmt.Sprint(i), "mail", t0)), "Enqueue")
			<-ch
		}
	})
}

func opsPerSecond(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
