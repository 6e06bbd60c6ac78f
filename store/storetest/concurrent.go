package storetest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow/audit"
)

var concurrentCases = []testCase{
	{"ReadModifyWrite", func(t *testing.T, s store.Store) {
		// Writers on two handles increment a counter in the envelope and
		// append an audit record and a key each time, retrying on
		// ErrConflict: every increment must land, the trail must stay one
		// chain.
		ctx := t.Context()
		handles := []store.Store{s, s.(Hooks).Share(t)}
		create(t, s, "E1", t0)
		const writers, each = 8, 12
		var conflicts atomic.Int64
		var wg sync.WaitGroup
		for w := range writers {
			h := handles[w%2]
			wg.Go(func() {
				for i := range each {
					for {
						env, err := h.Get(ctx, "E1")
						if err != nil {
							t.Errorf("writer %d: Get: %v", w, err)
							return
						}
						n, _ := strconv.Atoi(env.Message)
						env.Message = strconv.Itoa(n + 1)
						recs := record(env, audit.Viewed, fmt.Sprintf("writer%d@example", w))
						err = h.Update(ctx, env, store.Writes{Audit: recs, Keys: []string{fmt.Sprintf("w%d-%d", w, i)}})
						if errors.Is(err, store.ErrConflict) {
							conflicts.Add(1)
							continue
						}
						if err != nil {
							t.Errorf("writer %d: Update: %v", w, err)
							return
						}
						break
					}
				}
			})
		}
		wg.Wait()
		t.Logf("%d updates, %d conflicts retried", writers*each, conflicts.Load())
		env, err := s.Get(ctx, "E1")
		ok(t, err, "Get")
		if env.Message != strconv.Itoa(writers*each) || env.Version != writers*each+1 {
			t.Fatalf("after %d updates: counter %s, version %d", writers*each, env.Message, env.Version)
		}
		trail(t, s, "E1", writers*each+1)
		for w := range writers {
			for i := range each {
				hasKey(t, handles[1], "E1", fmt.Sprintf("w%d-%d", w, i), true)
			}
		}
	}},
	{"Claim", func(t *testing.T, s store.Store) {
		// Workers on two handles drain one queue: no item is held by two at
		// once, every item is acked once.
		ctx := t.Context()
		handles := []store.Store{s, s.(Hooks).Share(t)}
		const n, workers = 48, 6
		for i := range n {
			ok(t, s.Enqueue(ctx, itemAt(fmt.Sprintf("m%02d", i), "mail", t0.Add(time.Duration(i%5)*time.Millisecond))), "Enqueue")
		}
		var mu sync.Mutex
		held := map[string]string{}
		acked := map[string]int{}
		var wg sync.WaitGroup
		for w := range workers {
			h := handles[w%2]
			holder := fmt.Sprintf("worker%d", w)
			wg.Go(func() {
				for {
					it, err := h.Claim(ctx, "mail", holder, t0.Add(time.Second), time.Hour)
					if errors.Is(err, store.ErrEmpty) {
						return
					}
					if err != nil {
						t.Errorf("%s: Claim: %v", holder, err)
						return
					}
					mu.Lock()
					if other, dup := held[it.ID]; dup {
						t.Errorf("%s claimed %s, held by %s", holder, it.ID, other)
					}
					held[it.ID] = holder
					mu.Unlock()
					err = h.Ack(ctx, it)
					mu.Lock()
					delete(held, it.ID)
					acked[it.ID]++
					mu.Unlock()
					if err != nil {
						t.Errorf("%s: Ack %s: %v", holder, it.ID, err)
					}
				}
			})
		}
		wg.Wait()
		for i := range n {
			if id := fmt.Sprintf("m%02d", i); acked[id] != 1 {
				t.Errorf("item %s acked %d times", id, acked[id])
			}
		}
		queueEmpty(t, s, "mail", t0.Add(48*time.Hour))
	}},
	{"Lease", func(t *testing.T, s store.Store) {
		// Contenders on two handles race for a lease that expires between
		// rounds: each round has exactly one winner.
		ctx := t.Context()
		handles := []store.Store{s, s.(Hooks).Share(t)}
		const rounds, contenders = 10, 6
		for r := range rounds {
			now := t0.Add(time.Duration(r) * 2 * time.Minute)
			var mu sync.Mutex
			var winners []int
			var wg sync.WaitGroup
			for c := range contenders {
				wg.Go(func() {
					got, err := handles[c%2].AcquireLease(ctx, "poller", fmt.Sprintf("replica%d", c), now, time.Minute)
					if err != nil {
						t.Errorf("AcquireLease: %v", err)
						return
					}
					if got {
						mu.Lock()
						winners = append(winners, c)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(winners) != 1 {
				t.Fatalf("round %d: holders %v, want exactly one", r, winners)
			}
		}
	}},
}
