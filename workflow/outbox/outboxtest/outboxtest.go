// Package outboxtest holds what the tests of outbox workers share: a store
// whose reads fail for a while, as a store that lost its connection does,
// and the reading of the mails a test's envelopes queued.
package outboxtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// Deliver claims every item of queue (engine.MailQueue or SMSQueue) of
// e's store due at now and acknowledges it, as a sender that delivered it
// would, and returns their jobs in the order claimed, opened by e: the
// links and codes they carry are what the recipients would read.
func Deliver(t testing.TB, e *engine.Engine, queue string, now time.Time) []engine.Job {
	t.Helper()
	ctx := context.Background()
	st := e.Store
	var jobs []engine.Job
	for {
		it, err := st.Claim(ctx, queue, "outboxtest", now, time.Minute)
		if errors.Is(err, store.ErrEmpty) {
			return jobs
		}
		if err != nil {
			t.Fatal(err)
		}
		job, err := e.OpenJob(it)
		if err != nil {
			t.Fatalf("item %s: %v", it.ID, err)
		}
		jobs = append(jobs, job)
		if err := st.Ack(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
}

// ErrUnavailable is the error of a failing Get: not one of the store's
// errors that say a record is missing or corrupt, so it may pass.
var ErrUnavailable = errors.New("outboxtest: connection refused")

// FailingGets is a store whose next calls of Get fail with
// ErrUnavailable; every other call goes to the wrapped store.
type FailingGets struct {
	store.Store
	mu    sync.Mutex
	fails int
}

// NewFailingGets wraps st so that its next n calls of Get fail.
func NewFailingGets(st store.Store, n int) *FailingGets {
	return &FailingGets{Store: st, fails: n}
}

// Get fails while failures are left, then reads the envelope.
func (s *FailingGets) Get(ctx context.Context, id string) (*workflow.Envelope, error) {
	s.mu.Lock()
	fail := s.fails > 0
	if fail {
		s.fails--
	}
	s.mu.Unlock()
	if fail {
		return nil, ErrUnavailable
	}
	return s.Store.Get(ctx, id)
}
