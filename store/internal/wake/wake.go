// Package wake carries the wake-ups of Store.Wakeups within one process: a
// Hub hands out one channel per subscriber and queue and signals them after
// a write that made items of the queue due.
package wake

import (
	"context"
	"sync"
	"time"

	"github.com/parapheur/parapheur/store"
)

// Hub holds the subscribers of each queue. The zero Hub is ready to use.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

// Subscribe returns a channel that receives a value after each Signal of
// queue, coalesced in a buffer of one, and is closed when ctx ends.
func (h *Hub) Subscribe(ctx context.Context, queue string) <-chan struct{} {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[string]map[chan struct{}]struct{}{}
	}
	if h.subs[queue] == nil {
		h.subs[queue] = map[chan struct{}]struct{}{}
	}
	h.subs[queue][ch] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		// Under the lock, so that Signal never sends on a closed channel.
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs[queue], ch)
		if len(h.subs[queue]) == 0 {
			delete(h.subs, queue)
		}
		close(ch)
	})
	return ch
}

// Signal wakes every subscriber of the queues, without blocking: a
// subscriber that has not taken the last value yet gets no second one.
func (h *Hub) Signal(queues ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, q := range queues {
		for ch := range h.subs[q] {
			Send(ch)
		}
	}
}

// Send puts a value in ch, a channel with a buffer of one, unless one is
// waiting there already.
func Send(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// DueQueues returns the queues, each once, of the items due at now.
func DueQueues(items []store.Item, now time.Time) []string {
	var queues []string
	seen := map[string]bool{}
	for _, it := range items {
		if !it.NotBefore.After(now) && !seen[it.Queue] {
			seen[it.Queue] = true
			queues = append(queues, it.Queue)
		}
	}
	return queues
}
