package storetest

import (
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
)

func claim(t *testing.T, s store.Store, queue, holder string, now time.Time, lease time.Duration) *store.Item {
	t.Helper()
	it, err := s.Claim(t.Context(), queue, holder, now, lease)
	ok(t, err, "Claim "+queue+" by "+holder)
	if it.Holder != holder || !it.LeaseUntil.Equal(now.Add(lease)) {
		t.Fatalf("Claim by %s: holder %q until %v, want until %v", holder, it.Holder, it.LeaseUntil, now.Add(lease))
	}
	return it
}

var outboxCases = []testCase{
	{"ClaimAck", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		want := itemAt("refusal-1", "mail", t0)
		ok(t, s.Enqueue(ctx, want), "Enqueue")
		it := claim(t, s, "mail", "w1", t0, time.Minute)
		sameItem(t, it, want, "Claim")
		if it.Attempts != 1 {
			t.Fatalf("first claim: Attempts %d, want 1", it.Attempts)
		}
		queueEmpty(t, s, "mail", t0.Add(30*time.Second))
		ok(t, s.Ack(ctx, it), "Ack")
		queueEmpty(t, s, "mail", t0.Add(time.Hour))
		wantErr(t, s.Ack(ctx, it), store.ErrLeaseLost, "second Ack")
	}},
	{"IdempotentEnqueue", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		first := itemAt("same", "mail", t0)
		second := first
		second.Payload = []byte("another payload")
		ok(t, s.Enqueue(ctx, first), "Enqueue")
		ok(t, s.Enqueue(ctx, second, first), "Enqueue again")
		it := claim(t, s, "mail", "w", t0, time.Minute)
		sameItem(t, it, first, "Claim")
		queueEmpty(t, s, "mail", t0)
		ok(t, s.Enqueue(ctx, second), "Enqueue of a held ID")
		queueEmpty(t, s, "mail", t0)
	}},
	{"DueOrder", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("c", "mail", t0.Add(3*time.Second)), itemAt("a", "mail", t0.Add(time.Second))), "Enqueue")
		ok(t, s.Enqueue(ctx, itemAt("b", "mail", t0.Add(2*time.Second)), itemAt("s", "sms", t0)), "Enqueue")
		for _, id := range []string{"a", "b", "c"} {
			it := claim(t, s, "mail", "w", t0.Add(time.Minute), time.Hour)
			if it.ID != id {
				t.Fatalf("claimed %s, want %s (oldest due first)", it.ID, id)
			}
		}
		queueEmpty(t, s, "mail", t0.Add(time.Minute))
		if it := claim(t, s, "sms", "w", t0, time.Hour); it.ID != "s" {
			t.Fatalf("claimed %s from queue sms", it.ID)
		}
	}},
	{"NotBefore", func(t *testing.T, s store.Store) {
		ok(t, s.Enqueue(t.Context(), itemAt("later", "timer", t0.Add(time.Hour))), "Enqueue")
		queueEmpty(t, s, "timer", t0)
		queueEmpty(t, s, "timer", t0.Add(time.Hour-time.Millisecond))
		if it := claim(t, s, "timer", "w", t0.Add(time.Hour), time.Minute); it.ID != "later" {
			t.Fatalf("claimed %s", it.ID)
		}
	}},
	{"Retry", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("m", "mail", t0)), "Enqueue")
		it := claim(t, s, "mail", "w1", t0, time.Minute)
		ok(t, s.Retry(ctx, it, t0.Add(5*time.Minute), "451 try later"), "Retry")
		queueEmpty(t, s, "mail", t0.Add(4*time.Minute))
		again := claim(t, s, "mail", "w2", t0.Add(5*time.Minute), time.Minute)
		if again.Attempts != 2 || again.LastError != "451 try later" || !again.NotBefore.Equal(t0.Add(5*time.Minute)) {
			t.Fatalf("retried item came back as %+v", again)
		}
		wantErr(t, s.Retry(ctx, it, t0, "stale"), store.ErrLeaseLost, "Retry by the first holder")
		ok(t, s.Ack(ctx, again), "Ack")
	}},
	{"Bury", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("x1", "mail", t0), itemAt("x2", "mail", t0.Add(time.Second)), itemAt("x3", "mail", t0.Add(2*time.Second))), "Enqueue")
		dead, err := s.Buried(ctx, "mail")
		ok(t, err, "Buried")
		if len(dead) != 0 {
			t.Fatalf("Buried before any burial: %v", dead)
		}
		for _, reason := range []string{"550 no such user", "554 rejected"} {
			it := claim(t, s, "mail", "w", t0.Add(time.Minute), time.Minute)
			ok(t, s.Bury(ctx, it, reason), "Bury")
			wantErr(t, s.Ack(ctx, it), store.ErrLeaseLost, "Ack of a buried item")
			time.Sleep(2 * time.Millisecond) // burials are ordered by the store's clock
		}
		dead, err = s.Buried(ctx, "mail")
		ok(t, err, "Buried")
		if len(dead) != 2 || dead[0].ID != "x1" || dead[1].ID != "x2" || dead[0].LastError != "550 no such user" || dead[1].LastError != "554 rejected" || dead[0].Holder != "" {
			t.Fatalf("Buried = %+v", dead)
		}
		it := claim(t, s, "mail", "w", t0.Add(time.Hour), time.Minute)
		if it.ID != "x3" {
			t.Fatalf("claimed %s, want x3: a buried item came back", it.ID)
		}
		ok(t, s.Ack(ctx, it), "Ack")
		queueEmpty(t, s, "mail", t0.Add(24*time.Hour))
		ok(t, s.Enqueue(ctx, itemAt("x1", "mail", t0)), "Enqueue of a buried ID")
		queueEmpty(t, s, "mail", t0.Add(24*time.Hour))
		other, err := s.Buried(ctx, "sms")
		ok(t, err, "Buried sms")
		if len(other) != 0 {
			t.Fatalf("Buried sms = %v", other)
		}
	}},
	{"LeaseExpiry", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("m", "mail", t0)), "Enqueue")
		dead := claim(t, s, "mail", "w1", t0, time.Minute)
		queueEmpty(t, s, "mail", t0.Add(59*time.Second))
		taken := claim(t, s, "mail", "w2", t0.Add(time.Minute), time.Minute)
		if taken.ID != "m" || taken.Attempts != 2 {
			t.Fatalf("after the lease expired: claimed %+v", taken)
		}
		wantErr(t, s.Ack(ctx, dead), store.ErrLeaseLost, "Ack by the holder whose lease expired")
		wantErr(t, s.Bury(ctx, dead, "x"), store.ErrLeaseLost, "Bury by the holder whose lease expired")
		ok(t, s.Ack(ctx, taken), "Ack by the new holder")
		queueEmpty(t, s, "mail", t0.Add(time.Hour))
	}},
	{"SameHolderReclaims", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("m", "mail", t0)), "Enqueue")
		first := claim(t, s, "mail", "w1", t0, time.Minute)
		second := claim(t, s, "mail", "w1", t0.Add(2*time.Minute), time.Minute)
		wantErr(t, s.Ack(ctx, first), store.ErrLeaseLost, "Ack of the earlier claim by the same holder")
		ok(t, s.Ack(ctx, second), "Ack of the later claim")
	}},
	{"AckAfterExpiryUnclaimed", func(t *testing.T, s store.Store) {
		// A slow worker whose lease ran out, but whose item nobody took
		// since, still finishes it.
		ctx := t.Context()
		ok(t, s.Enqueue(ctx, itemAt("m", "mail", t0)), "Enqueue")
		it := claim(t, s, "mail", "w1", t0, time.Second)
		ok(t, s.Ack(ctx, it), "Ack after the lease ended")
		queueEmpty(t, s, "mail", t0.Add(time.Hour))
	}},
	{"EnvelopeItems", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		a := itemAt("reply", "mail", t0)
		a.EnvelopeID = "E1"
		ok(t, s.Enqueue(ctx, a), "Enqueue of an item naming an envelope")
		b := itemAt("reply", "mail", t0.Add(time.Second))
		ok(t, s.Enqueue(ctx, b), "Enqueue of the same ID without the envelope")
		sameItem(t, claim(t, s, "mail", "w", t0.Add(time.Minute), time.Minute), a, "first claim")
		sameItem(t, claim(t, s, "mail", "w", t0.Add(time.Minute), time.Minute), b, "second claim")
	}},
	{"Invalid", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		wantErr(t, s.Enqueue(ctx, store.Item{Queue: "mail"}), store.ErrInvalid, "Enqueue without ID")
		wantErr(t, s.Enqueue(ctx, itemAt("ok", "mail", t0), store.Item{ID: "x"}), store.ErrInvalid, "Enqueue without queue")
		queueEmpty(t, s, "mail", t0.Add(time.Hour))
		_, err := s.Claim(ctx, "mail", "", t0, time.Minute)
		wantErr(t, err, store.ErrInvalid, "Claim without holder")
		_, err = s.Claim(ctx, "mail", "w", t0, 0)
		wantErr(t, err, store.ErrInvalid, "Claim with no lease")
		it := itemAt("m", "mail", t0)
		wantErr(t, s.Ack(ctx, &it), store.ErrInvalid, "Ack of an item never claimed")
	}},
}

var leaseCases = []testCase{
	{"OneHolder", func(t *testing.T, s store.Store) {
		acquire(t, s, "poller", "a", t0, true)
		acquire(t, s, "poller", "b", t0.Add(time.Second), false)
		acquire(t, s, "other", "b", t0.Add(time.Second), true)
	}},
	{"Renew", func(t *testing.T, s store.Store) {
		acquire(t, s, "poller", "a", t0, true)
		acquire(t, s, "poller", "a", t0.Add(50*time.Second), true)
		acquire(t, s, "poller", "b", t0.Add(90*time.Second), false) // a renewed until 110 s
		acquire(t, s, "poller", "b", t0.Add(110*time.Second), true)
	}},
	{"MovesOnExpiry", func(t *testing.T, s store.Store) {
		acquire(t, s, "poller", "a", t0, true)
		acquire(t, s, "poller", "b", t0.Add(time.Minute), true)
		acquire(t, s, "poller", "a", t0.Add(time.Minute+time.Second), false)
	}},
	{"Release", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		acquire(t, s, "poller", "a", t0, true)
		ok(t, s.ReleaseLease(ctx, "poller", "b"), "ReleaseLease by a non-holder")
		acquire(t, s, "poller", "b", t0.Add(time.Second), false)
		ok(t, s.ReleaseLease(ctx, "poller", "a"), "ReleaseLease")
		acquire(t, s, "poller", "b", t0.Add(time.Second), true)
		ok(t, s.ReleaseLease(ctx, "never", "a"), "ReleaseLease of an unknown lease")
		_, err := s.AcquireLease(ctx, "poller", "", t0, time.Minute)
		wantErr(t, err, store.ErrInvalid, "AcquireLease without holder")
	}},
}

func acquire(t *testing.T, s store.Store, name, holder string, now time.Time, want bool) {
	t.Helper()
	got, err := s.AcquireLease(t.Context(), name, holder, now, time.Minute)
	ok(t, err, "AcquireLease")
	if got != want {
		t.Fatalf("AcquireLease(%s, %s, t0+%v) = %v, want %v", name, holder, now.Sub(t0), got, want)
	}
}

var cursorCases = []testCase{
	{"SetGet", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		v, err := s.Cursor(ctx, "imap")
		ok(t, err, "Cursor")
		if v != nil {
			t.Fatalf("Cursor never set = %q, want nil", v)
		}
		ok(t, s.SetCursor(ctx, "imap", []byte("1700000000/42")), "SetCursor")
		ok(t, s.SetCursor(ctx, "other", []byte("x")), "SetCursor")
		ok(t, s.SetCursor(ctx, "imap", []byte("1700000000/43")), "SetCursor")
		v, err = s.Cursor(ctx, "imap")
		ok(t, err, "Cursor")
		if string(v) != "1700000000/43" {
			t.Fatalf("Cursor = %q", v)
		}
		ok(t, s.SetCursor(ctx, "imap", []byte{}), "SetCursor empty")
		v, err = s.Cursor(ctx, "imap")
		ok(t, err, "Cursor")
		if v == nil || len(v) != 0 {
			t.Fatalf("Cursor set to empty = %#v, want empty and not nil", v)
		}
	}},
}
