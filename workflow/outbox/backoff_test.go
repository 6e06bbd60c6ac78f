package outbox

import (
	"testing"
	"time"
)

// TestBackoff: an item retried each time after the wait Next gives waits
// First, then twice as long each time up to Max, until it has been pending
// for Limit.
func TestBackoff(t *testing.T) {
	b := Backoff{}
	var waits []time.Duration
	age := time.Duration(0) // deferred as soon as it was due
	for n := 1; ; n++ {
		w, ok := b.Next(age, n)
		if !ok {
			break
		}
		waits = append(waits, w)
		age += w
		if n > 1000 {
			t.Fatal("retries never end")
		}
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	if len(waits) < len(want) {
		t.Fatalf("waits %v", waits)
	}
	for i, w := range want {
		if waits[i] != w {
			t.Errorf("wait after deferral %d = %v, want %v", i+1, waits[i], w)
		}
	}
	// The retries stop once the item has been pending for 48 h.
	if before := age - waits[len(waits)-1]; before >= DefaultRetryLimit || age < DefaultRetryLimit {
		t.Errorf("waits add up to %v (%v before the last): want the last attempt after %v", age, before, DefaultRetryLimit)
	}
	limited := Backoff{First: time.Minute, Limit: 3 * time.Minute}
	if _, ok := limited.Next(3*time.Minute, 2); ok {
		t.Error("pending for the whole 3-minute limit: want no retry")
	}
	if w, ok := limited.Next(time.Minute, 2); !ok || w != 2*time.Minute {
		t.Errorf("pending for a minute: %v, %v; want 2m, true", w, ok)
	}
	// Attempts a crash cut short do not double the wait: an item deferred
	// 10 s after it was due, however many claims it took, waits 1m10s.
	for _, claims := range []int{2, 3, 10, 100} {
		if w, ok := b.Next(10*time.Second, claims); !ok || w != 70*time.Second {
			t.Errorf("pending for 10 s, deferred at claim %d: %v, %v; want 1m10s, true", claims, w, ok)
		}
	}
	// Nor does a wait in the queue: an item first tried after 10 minutes
	// in a backlog, and deferred, waits First, then twice as long.
	if w, ok := b.Next(10*time.Minute, 1); !ok || w != time.Minute {
		t.Errorf("deferred at its first attempt after 10 min in the queue: %v, %v; want 1m, true", w, ok)
	}
	if w, ok := b.Next(11*time.Minute, 2); !ok || w != 2*time.Minute {
		t.Errorf("deferred again a minute later: %v, %v; want 2m, true", w, ok)
	}
}
