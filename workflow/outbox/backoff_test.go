package outbox

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := Backoff{}
	var waits []time.Duration
	total := time.Duration(0)
	for n := 1; ; n++ {
		w, ok := b.Next(n)
		if !ok {
			break
		}
		waits = append(waits, w)
		total += w
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
			t.Errorf("wait after attempt %d = %v, want %v", i+1, waits[i], w)
		}
	}
	// The retries stop once the waits before the last attempt reach 48 h.
	if before := total - waits[len(waits)-1]; before >= DefaultRetryLimit || total < DefaultRetryLimit {
		t.Errorf("waits add up to %v (%v before the last): want the last attempt after %v", total, before, DefaultRetryLimit)
	}
	if _, ok := (Backoff{First: time.Minute, Limit: 3 * time.Minute}).Next(3); ok {
		t.Error("attempt 3 after 1+2 minutes of a 3-minute limit: want no retry")
	}
	if w, ok := (Backoff{First: time.Minute, Limit: 3 * time.Minute}).Next(2); !ok || w != 2*time.Minute {
		t.Errorf("attempt 2: %v, %v; want 2m, true", w, ok)
	}
}
