package wake

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
)

func TestCoalesced(t *testing.T) {
	var h Hub
	ch := h.Subscribe(t.Context(), "mail")
	h.Signal("mail")
	h.Signal("mail", "sms") // does not block on the full buffer
	<-ch
	select {
	case <-ch:
		t.Fatal("two values for signals the subscriber had not taken yet")
	default:
	}
	h.Signal("sms")
	select {
	case <-ch:
		t.Fatal("woken by another queue's signal")
	default:
	}
}

func TestClosed(t *testing.T) {
	var h Hub
	ctx, cancel := context.WithCancel(t.Context())
	ch := h.Subscribe(ctx, "mail")
	cancel()
	for range ch { // ends once closed; at most one value before
	}
	h.Signal("mail") // sends on no closed channel
	if len(h.subs) != 0 {
		t.Fatalf("subscribers left after their contexts ended: %v", h.subs)
	}
}

func TestDueQueues(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	items := []store.Item{
		{Queue: "timer", NotBefore: now.Add(time.Hour)},
		{Queue: "mail", NotBefore: now.Add(-time.Second)},
		{Queue: "sms", NotBefore: now},
		{Queue: "mail", NotBefore: now},
	}
	if got := DueQueues(items, now); !slices.Equal(got, []string{"mail", "sms"}) {
		t.Fatalf("DueQueues = %q, want mail and sms", got)
	}
}
