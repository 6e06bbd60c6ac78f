package storetest

import (
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow/audit"
)

// pendingCases check Item.Since and QueueStats.OldestPending: how long the
// oldest piece of work of a queue has been pending, an item retried with
// backoff keeping its age.
var pendingCases = []testCase{
	{"SetWhenStored", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("refusal", "mail", t0)), "Enqueue")
		env, recs := newEnvelope("E1", t0)
		invite := itemAt("invite", "mail", t0.Add(time.Second))
		invite.EnvelopeID = env.ID
		ok(t, s.Create(ctx, env, store.Writes{Audit: recs, Items: []store.Item{invite}}), "Create")
		reminder := itemAt("reminder", "mail", t0.Add(2*time.Second))
		reminder.EnvelopeID = env.ID
		ok(t, s.Update(ctx, env, store.Writes{Audit: record(env, audit.InvitationSent, "system"), Items: []store.Item{reminder}}), "Update")
		for _, want := range []time.Time{t0, t0.Add(time.Second), t0.Add(2 * time.Second)} {
			it := claim(t, s, "mail", "w", t0.Add(time.Minute), time.Minute)
			wantSince(t, it, want, "Claim of "+it.ID)
		}
	}},
	{"KeptByRetry", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("m", "completion", t0)), "Enqueue")
		it := claim(t, s, "completion", "w1", t0, time.Minute)
		ok(t, s.Retry(ctx, it, t0.Add(5*time.Minute), "TSA unreachable"), "Retry")
		// Neither due nor held, but pending since t0.
		stats(t, s, "completion", t0.Add(time.Minute), store.QueueStats{Waiting: 1, OldestPending: t0})
		again := claim(t, s, "completion", "w2", t0.Add(5*time.Minute), time.Minute)
		wantSince(t, again, t0, "Claim after Retry")
		ok(t, s.Retry(ctx, again, t0.Add(time.Hour), "TSA unreachable"), "second Retry")
		stats(t, s, "completion", t0.Add(30*time.Minute), store.QueueStats{Waiting: 1, OldestPending: t0})
		third := claim(t, s, "completion", "w1", t0.Add(time.Hour), time.Minute)
		wantSince(t, third, t0, "Claim after the second Retry")
		if !third.NotBefore.Equal(t0.Add(time.Hour)) {
			t.Fatalf("Claim after the second Retry: NotBefore t0+%v, want t0+1h", third.NotBefore.Sub(t0))
		}
	}},
	{"KeptByClaimAndExtend", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("m", "mail", t0)), "Enqueue")
		it := claim(t, s, "mail", "w", t0.Add(time.Hour), time.Minute)
		wantSince(t, it, t0, "Claim an hour after NotBefore")
		stats(t, s, "mail", t0.Add(time.Hour), store.QueueStats{Held: 1, OldestDue: t0, OldestPending: t0})
		ok(t, s.Extend(ctx, it, t0.Add(time.Hour+50*time.Second), time.Minute), "Extend")
		wantSince(t, it, t0, "Extend")
		stats(t, s, "mail", t0.Add(time.Hour+time.Minute), store.QueueStats{Held: 1, OldestDue: t0, OldestPending: t0})
		// The lease runs out: another worker takes the item, still pending since t0.
		taken := claim(t, s, "mail", "w2", t0.Add(2*time.Hour), time.Minute)
		wantSince(t, taken, t0, "Claim after the lease ended")
	}},
	{"RemovedByAckAndBury", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("a", "mail", t0), itemAt("b", "mail", t0.Add(time.Second)), itemAt("c", "mail", t0.Add(2*time.Second))), "Enqueue")
		now := t0.Add(time.Minute)
		a := claim(t, s, "mail", "w", now, time.Minute)
		ok(t, s.Bury(ctx, a, "550 no such user"), "Bury")
		stats(t, s, "mail", now, store.QueueStats{Waiting: 2, Due: 2, Buried: 1, OldestDue: t0.Add(time.Second), OldestPending: t0.Add(time.Second)})
		b := claim(t, s, "mail", "w", now, time.Minute)
		ok(t, s.Ack(ctx, b), "Ack")
		stats(t, s, "mail", now, store.QueueStats{Waiting: 1, Due: 1, Buried: 1, OldestDue: t0.Add(2 * time.Second), OldestPending: t0.Add(2 * time.Second)})
		c := claim(t, s, "mail", "w", now, time.Minute)
		ok(t, s.Ack(ctx, c), "Ack")
		stats(t, s, "mail", now, store.QueueStats{Buried: 1})
	}},
	{"FutureNotCounted", func(t *testing.T, s store.Store) {
		// A timer set for next week is not pending work until its time.
		week := t0.Add(7 * 24 * time.Hour)
		ok(t, s.Enqueue(t.Context(), itemAt("expiry", "timer", week)), "Enqueue")
		stats(t, s, "timer", t0, store.QueueStats{Waiting: 1})
		stats(t, s, "timer", week.Add(-time.Millisecond), store.QueueStats{Waiting: 1})
		stats(t, s, "timer", week, store.QueueStats{Waiting: 1, Due: 1, OldestDue: week, OldestPending: week})
	}},
	{"SetByWriter", func(t *testing.T, s store.Store) {
		// A writer carries the age of the work an item continues: a later
		// step of a completion pending since t0-1h, due in an hour.
		ctx := t.Context()
		step := itemAt("seal/2", "completion", t0.Add(time.Hour))
		step.Since = t0.Add(-time.Hour)
		env, recs := newEnvelope("E1", t0)
		step.EnvelopeID = env.ID
		ok(t, s.Create(ctx, env, store.Writes{Audit: recs, Items: []store.Item{step}}), "Create")
		refusal := itemAt("refusal", "completion", t0)
		refusal.Since = t0.Add(-2 * time.Hour)
		ok(t, s.Enqueue(ctx, refusal), "Enqueue")
		stats(t, s, "completion", t0, store.QueueStats{Waiting: 2, Due: 1, OldestDue: t0, OldestPending: t0.Add(-2 * time.Hour)})
		first := claim(t, s, "completion", "w", t0.Add(time.Hour), time.Minute)
		sameItem(t, first, refusal, "first Claim")
		ok(t, s.Ack(ctx, first), "Ack")
		stats(t, s, "completion", t0, store.QueueStats{Waiting: 1, OldestPending: t0.Add(-time.Hour)})
		sameItem(t, claim(t, s, "completion", "w", t0.Add(time.Hour), time.Minute), step, "second Claim")
	}},
	{"KeptByEnqueueAgain", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("m", "mail", t0)), "Enqueue")
		again := itemAt("m", "mail", t0.Add(-time.Hour))
		again.Since = t0.Add(-2 * time.Hour)
		ok(t, s.Enqueue(ctx, again), "Enqueue of the same ID, older")
		stats(t, s, "mail", t0, store.QueueStats{Waiting: 1, Due: 1, OldestDue: t0, OldestPending: t0})
		wantSince(t, claim(t, s, "mail", "w", t0, time.Minute), t0, "Claim")
	}},
	{"QueuesApart", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("m", "mail", t0), itemAt("s", "sms", t0.Add(-time.Hour))), "Enqueue")
		stats(t, s, "mail", t0, store.QueueStats{Waiting: 1, Due: 1, OldestDue: t0, OldestPending: t0})
		stats(t, s, "sms", t0, store.QueueStats{Waiting: 1, Due: 1, OldestDue: t0.Add(-time.Hour), OldestPending: t0.Add(-time.Hour)})
		sms := claim(t, s, "sms", "w", t0, time.Minute)
		ok(t, s.Ack(ctx, sms), "Ack")
		stats(t, s, "sms", t0, store.QueueStats{})
		stats(t, s, "mail", t0, store.QueueStats{Waiting: 1, Due: 1, OldestDue: t0, OldestPending: t0})
	}},
}

// wantSince fails t unless it.Since is want.
func wantSince(t *testing.T, it *store.Item, want time.Time, what string) {
	t.Helper()
	if !it.Since.Equal(want) {
		t.Fatalf("%s: item %s Since %s, want %s", what, it.ID, sinceT0(it.Since), sinceT0(want))
	}
}

// ItemWithoutSince checks how s reads an outbox item stored by a version
// without store.Item.Since, which the backend's test has planted in its
// own format: ID "old" in queue "mail", due at at, no Since, no entry in
// the index that QueueStats.OldestPending reads, and nothing else of
// "mail" pending. Until its first claim OldestPending misses the item (the
// gap store.QueueStats.OldestPending documents); from then on it is pending
// since the NotBefore it had at that claim, a retry keeping that, and its
// Ack ends it.
func ItemWithoutSince(t *testing.T, s store.Store, at time.Time) {
	t.Helper()
	ctx := t.Context()
	pendingSince := func(now, want time.Time, what string) {
		t.Helper()
		got, err := s.QueueStats(ctx, "mail", now)
		ok(t, err, "QueueStats")
		if !got.OldestPending.Equal(want) {
			t.Fatalf("%s: OldestPending %v, want %v", what, got.OldestPending, want)
		}
	}
	claimed := func(now time.Time, what string) *store.Item {
		t.Helper()
		it, err := s.Claim(ctx, "mail", "w", now, time.Minute)
		ok(t, err, "Claim "+what)
		if it.ID != "old" || !it.Since.Equal(at) {
			t.Fatalf("Claim %s: item %s Since %v, want item old Since %v", what, it.ID, it.Since, at)
		}
		return it
	}
	pendingSince(at.Add(time.Minute), time.Time{}, "before the first claim")
	it := claimed(at.Add(time.Minute), "of the item")
	pendingSince(at.Add(time.Minute), at, "held")
	ok(t, s.Retry(ctx, it, at.Add(time.Hour), "451 later"), "Retry")
	pendingSince(at.Add(2*time.Minute), at, "retried")
	it = claimed(at.Add(time.Hour), "after the Retry")
	ok(t, s.Ack(ctx, it), "Ack")
	pendingSince(at.Add(time.Hour), time.Time{}, "acked")
}
