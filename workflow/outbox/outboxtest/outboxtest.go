// Package outboxtest holds what the tests of outbox workers share: a store
// whose reads fail for a while, as a store that lost its connection does.
package outboxtest

import (
	"context"
	"errors"
	"sync"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
)

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
