package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow/audit"
)

// extendCases check Store.Extend: a worker renewing a short lease while a
// long attempt runs.
var extendCases = []testCase{
	{"KeepsTheItem", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("m", "mail", t0)), "Enqueue")
		it := claim(t, s, "mail", "w1", t0, time.Minute)
		ok(t, s.Extend(ctx, it, t0.Add(50*time.Second), time.Minute), "Extend")
		if !it.LeaseUntil.Equal(t0.Add(110 * time.Second)) {
			t.Fatalf("Extend at t0+50s by 1m: LeaseUntil t0+%v, want t0+110s", it.LeaseUntil.Sub(t0))
		}
		queueEmpty(t, s, "mail", t0.Add(100*time.Second)) // after the first lease ended
		ok(t, s.Extend(ctx, it, t0.Add(100*time.Second), time.Minute), "second Extend")
		queueEmpty(t, s, "mail", t0.Add(159*time.Second))
		ok(t, s.Ack(ctx, it), "Ack after Extend")
		queueEmpty(t, s, "mail", t0.Add(time.Hour))
	}},
	{"ExpiresAtTheNewEnd", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("m", "mail", t0)), "Enqueue")
		it := claim(t, s, "mail", "w1", t0, time.Minute)
		ok(t, s.Extend(ctx, it, t0.Add(30*time.Second), time.Minute), "Extend")
		queueEmpty(t, s, "mail", t0.Add(89*time.Second))
		taken := claim(t, s, "mail", "w2", t0.Add(90*time.Second), time.Minute)
		if taken.ID != "m" || taken.Attempts != 2 {
			t.Fatalf("after the extended lease ended: claimed %+v", taken)
		}
		wantErr(t, s.Extend(ctx, it, t0.Add(91*time.Second), time.Minute), store.ErrLeaseLost, "Extend by the holder whose lease was taken")
		wantErr(t, s.Ack(ctx, it), store.ErrLeaseLost, "Ack by the holder whose lease was taken")
		ok(t, s.Extend(ctx, taken, t0.Add(91*time.Second), time.Minute), "Extend by the new holder")
		ok(t, s.Ack(ctx, taken), "Ack by the new holder")
	}},
	{"AfterExpiryUnclaimed", func(t *testing.T, s store.Store) {
		// As for Ack: a lease that ran out but that nobody took is still
		// the holder's.
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("m", "mail", t0)), "Enqueue")
		it := claim(t, s, "mail", "w1", t0, time.Minute)
		ok(t, s.Extend(ctx, it, t0.Add(2*time.Minute), time.Minute), "Extend after the lease ended")
		queueEmpty(t, s, "mail", t0.Add(2*time.Minute+59*time.Second))
		ok(t, s.Ack(ctx, it), "Ack")
	}},
	{"LostAfterRelease", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("acked", "mail", t0), itemAt("retried", "mail", t0.Add(time.Second)), itemAt("buried", "mail", t0.Add(2*time.Second))), "Enqueue")
		for _, release := range []func(it *store.Item) error{
			func(it *store.Item) error { return s.Ack(ctx, it) },
			func(it *store.Item) error { return s.Retry(ctx, it, t0.Add(time.Hour), "451 later") },
			func(it *store.Item) error { return s.Bury(ctx, it, "550 no such user") },
		} {
			it := claim(t, s, "mail", "w1", t0.Add(time.Minute), time.Minute)
			ok(t, release(it), "release of "+it.ID)
			wantErr(t, s.Extend(ctx, it, t0.Add(time.Minute), time.Minute), store.ErrLeaseLost, "Extend of the "+it.ID+" item")
		}
		queueEmpty(t, s, "mail", t0.Add(59*time.Minute))
	}},
	{"Invalid", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("m", "mail", t0)), "Enqueue")
		it := itemAt("m", "mail", t0)
		wantErr(t, s.Extend(ctx, &it, t0, time.Minute), store.ErrInvalid, "Extend of an item never claimed")
		held := claim(t, s, "mail", "w1", t0, time.Minute)
		wantErr(t, s.Extend(ctx, held, t0, 0), store.ErrInvalid, "Extend by no time")
		wantErr(t, s.Extend(ctx, nil, t0, time.Minute), store.ErrInvalid, "Extend of nil")
	}},
}

// statsCases check Store.QueueStats.
var statsCases = []testCase{
	{"States", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx,
			itemAt("dead", "mail", t0.Add(-10*time.Second)),
			itemAt("a", "mail", t0), itemAt("b", "mail", t0.Add(time.Second)), itemAt("c", "mail", t0.Add(2*time.Second)),
			itemAt("later", "mail", t0.Add(time.Hour)),
			itemAt("s", "sms", t0.Add(-time.Hour))), "Enqueue")
		stats(t, s, "mail", t0.Add(time.Second), store.QueueStats{Waiting: 5, Due: 3, OldestDue: t0.Add(-10 * time.Second), OldestPending: t0.Add(-10 * time.Second)})

		dead := claim(t, s, "mail", "w", t0.Add(5*time.Second), time.Minute)
		ok(t, s.Bury(ctx, dead, "550 no such user"), "Bury")
		a := claim(t, s, "mail", "w", t0.Add(5*time.Second), time.Minute)    // until t0+65s
		b := claim(t, s, "mail", "w", t0.Add(5*time.Second), 10*time.Second) // until t0+15s
		if a.ID != "a" || b.ID != "b" {
			t.Fatalf("claimed %s and %s, want a and b", a.ID, b.ID)
		}
		// At t0+30s: a held, b's lease expired (due again), c due, later
		// not due. The oldest piece of work is a, held.
		stats(t, s, "mail", t0.Add(30*time.Second), store.QueueStats{Waiting: 3, Due: 2, Held: 1, Buried: 1, OldestDue: t0, OldestPending: t0})
		ok(t, s.Ack(ctx, a), "Ack")
		// Now b, whose expired lease ends after c's NotBefore.
		stats(t, s, "mail", t0.Add(30*time.Second), store.QueueStats{Waiting: 3, Due: 2, Buried: 1, OldestDue: t0.Add(time.Second), OldestPending: t0.Add(time.Second)})
		ok(t, s.Extend(ctx, b, t0.Add(30*time.Second), time.Minute), "Extend")
		stats(t, s, "mail", t0.Add(31*time.Second), store.QueueStats{Waiting: 2, Due: 1, Held: 1, Buried: 1, OldestDue: t0.Add(time.Second), OldestPending: t0.Add(time.Second)})
		ok(t, s.Retry(ctx, b, t0.Add(40*time.Second), "451 later"), "Retry")
		// b, retried, is no longer due but still pending since t0+1s.
		stats(t, s, "mail", t0.Add(31*time.Second), store.QueueStats{Waiting: 3, Due: 1, Buried: 1, OldestDue: t0.Add(2 * time.Second), OldestPending: t0.Add(time.Second)})
		stats(t, s, "mail", t0.Add(2*time.Hour), store.QueueStats{Waiting: 3, Due: 3, Buried: 1, OldestDue: t0.Add(2 * time.Second), OldestPending: t0.Add(time.Second)})
		stats(t, s, "sms", t0, store.QueueStats{Waiting: 1, Due: 1, OldestDue: t0.Add(-time.Hour), OldestPending: t0.Add(-time.Hour)})
		stats(t, s, "timer", t0, store.QueueStats{})
		_, err := s.QueueStats(ctx, "", t0)
		wantErr(t, err, store.ErrInvalid, "QueueStats without a queue")
	}},
	{"EnvelopeItems", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		env, recs := newEnvelope("E1", t0)
		it := itemAt("invite", "mail", t0)
		it.EnvelopeID = env.ID
		ok(t, s.Create(ctx, env, store.Writes{Audit: recs, Items: []store.Item{it}}), "Create")
		ok(t, s.Enqueue(ctx, itemAt("refusal", "mail", t0.Add(time.Second))), "Enqueue")
		stats(t, s, "mail", t0.Add(time.Minute), store.QueueStats{Waiting: 2, Due: 2, OldestDue: t0, OldestPending: t0})
		claim(t, s, "mail", "w", t0.Add(time.Minute), time.Minute)
		stats(t, s, "mail", t0.Add(time.Minute), store.QueueStats{Waiting: 1, Due: 1, Held: 1, OldestDue: t0, OldestPending: t0})
	}},
}

func stats(t *testing.T, s store.Store, queue string, now time.Time, want store.QueueStats) {
	t.Helper()
	got, err := s.QueueStats(t.Context(), queue, now)
	ok(t, err, "QueueStats "+queue)
	if got.Waiting != want.Waiting || got.Due != want.Due || got.Held != want.Held || got.Buried != want.Buried ||
		!got.OldestDue.Equal(want.OldestDue) || !got.OldestPending.Equal(want.OldestPending) {
		t.Fatalf("QueueStats(%s, t0+%v) = %s, want %s", queue, now.Sub(t0), statsString(got), statsString(want))
	}
}

func statsString(q store.QueueStats) string {
	return fmt.Sprintf("{Waiting %d, Due %d, Held %d, Buried %d, OldestDue %s, OldestPending %s}",
		q.Waiting, q.Due, q.Held, q.Buried, sinceT0(q.OldestDue), sinceT0(q.OldestPending))
}

// sinceT0 writes a time of the suite's clock as t0+d, or "zero".
func sinceT0(at time.Time) string {
	if at.IsZero() {
		return "zero"
	}
	return "t0+" + at.Sub(t0).String()
}

// wakeTimeout is how long a test waits for a wake-up before failing: far
// longer than any delivery, so that only a missing one fails.
const wakeTimeout = 10 * time.Second

// Woken waits for a value on ch, a channel of Store.Wakeups, and fails t
// if none comes within 10 seconds or ch is closed.
func Woken(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, open := <-ch:
		if !open {
			t.Fatalf("%s: the wake-up channel closed", what)
		}
	case <-time.After(wakeTimeout):
		t.Fatalf("%s: no wake-up within %v", what, wakeTimeout)
	}
}

// wakeupCases check Store.Wakeups. The suite's items are due at t0, in the
// past, so every write here makes items due now.
var wakeupCases = []testCase{
	{"Enqueue", func(t *testing.T, s store.Store) {
		ch := s.Wakeups(t.Context(), "mail")
		ok(t, s.Enqueue(t.Context(), itemAt("m", "mail", t0)), "Enqueue")
		Woken(t, ch, "Enqueue")
	}},
	{"EnvelopeWrites", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ch := s.Wakeups(ctx, "mail")
		env, recs := newEnvelope("E1", t0)
		it := itemAt("invite", "mail", t0)
		it.EnvelopeID = env.ID
		ok(t, s.Create(ctx, env, store.Writes{Audit: recs, Items: []store.Item{it}}), "Create")
		Woken(t, ch, "Create")
		it.ID = "reminder"
		ok(t, s.Update(ctx, env, store.Writes{Audit: record(env, audit.InvitationSent, "system"), Items: []store.Item{it}}), "Update")
		Woken(t, ch, "Update")
	}},
	{"Retry", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ch := s.Wakeups(ctx, "mail")
		ok(t, s.Enqueue(ctx, itemAt("m", "mail", t0)), "Enqueue")
		Woken(t, ch, "Enqueue")
		it := claim(t, s, "mail", "w", t0, time.Minute)
		ok(t, s.Retry(ctx, it, t0.Add(time.Second), "451 later"), "Retry")
		Woken(t, ch, "Retry")
	}},
	{"EverySubscriber", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		first, second := s.Wakeups(ctx, "mail"), s.Wakeups(ctx, "mail")
		sms := s.Wakeups(ctx, "sms")
		ok(t, s.Enqueue(ctx, itemAt("m", "mail", t0), itemAt("s", "sms", t0)), "Enqueue")
		Woken(t, first, "first subscriber")
		Woken(t, second, "second subscriber")
		Woken(t, sms, "subscriber of the other queue")
	}},
	{"OtherHandle", func(t *testing.T, s store.Store) {
		// A replica's write wakes this one's workers.
		other := s.(Hooks).Share(t)
		ch := other.Wakeups(t.Context(), "mail")
		ok(t, s.Enqueue(t.Context(), itemAt("m", "mail", t0)), "Enqueue on the first handle")
		Woken(t, ch, "Enqueue on the other handle")
	}},
	{"ClosedWithContext", func(t *testing.T, s store.Store) {
		ctx, cancel := context.WithCancel(t.Context())
		ch := s.Wakeups(ctx, "mail")
		cancel()
		deadline := time.After(wakeTimeout)
		for {
			select {
			case _, open := <-ch:
				if !open {
					return
				}
			case <-deadline:
				t.Fatalf("the wake-up channel is still open %v after its context ended", wakeTimeout)
			}
		}
	}},
}
