package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
)

// timerLease is how long a worker holds a timer it is firing; a worker that
// dies loses it to another after that.
const timerLease = time.Minute

// timerRetry is the pause after a failure that may pass (the store was down).
const timerRetry = time.Minute

// FireDueTimers fires every due envelope timer (expiry, reminders) and
// returns how many it handled. Timers are at-least-once: one that fires
// twice, late or after its envelope ended is answered by the machine
// without effect.
func (e *Engine) FireDueTimers(ctx context.Context, holder string) (int, error) {
	fired := 0
	for {
		it, err := e.Store.Claim(ctx, TimerQueue, holder, e.Now(), timerLease)
		if errors.Is(err, store.ErrEmpty) {
			return fired, nil
		}
		if err != nil {
			return fired, err
		}
		if err := e.fire(ctx, it); err != nil {
			return fired, err
		}
		fired++
	}
}

// fire applies one timer and settles its item: ack when done or moot,
// retry when early or when the store failed, bury when unreadable.
func (e *Engine) fire(ctx context.Context, it *store.Item) error {
	var t Timer
	if err := json.Unmarshal(it.Payload, &t); err != nil {
		return e.Store.Bury(ctx, it, fmt.Sprintf("unreadable timer payload: %v", err))
	}
	var ev workflow.Event
	meta := workflow.Meta{At: e.Now()}
	switch t.Kind {
	case workflow.ExpiryTimer:
		ev = workflow.Expired{Meta: meta}
	case workflow.ReminderTimer:
		ev = workflow.ReminderDue{Meta: meta, Due: t.At}
	default:
		return e.Store.Bury(ctx, it, fmt.Sprintf("unknown timer kind %q", t.Kind))
	}
	env, err := e.Event(ctx, t.EnvelopeID, ev)
	var refused *workflow.Error
	switch {
	case err == nil:
		return e.Store.Ack(ctx, it)
	case errors.Is(err, workflow.ErrNotDue):
		return e.Store.Retry(ctx, it, env.Deadline, err.Error())
	case errors.As(err, &refused):
		return e.Store.Ack(ctx, it) // nothing left for this timer to do
	case errors.Is(err, store.ErrNotFound):
		return e.Store.Bury(ctx, it, err.Error())
	default:
		return e.Store.Retry(ctx, it, e.Now().Add(timerRetry), err.Error())
	}
}
