package outbox

import (
	"context"
	"log/slog"
	"time"
)

// Loop calls step until ctx is cancelled: again at once after a step that
// found work; otherwise when wake delivers (an item was queued) or after
// poll, whichever comes first, calling idle (if not nil) when the queue
// was found empty. A nil wake waits for poll alone; poll stays the safety
// net for wake-ups that were lost. Errors of step are logged, not fatal:
// the store may come back.
func Loop(ctx context.Context, log *slog.Logger, poll time.Duration, wake <-chan struct{}, step func(context.Context) (bool, error), idle func()) {
	if log == nil {
		log = slog.Default()
	}
	for ctx.Err() == nil {
		worked, err := step(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error("outbox worker", "err", err)
		}
		if worked && err == nil {
			continue
		}
		if idle != nil {
			idle()
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
		case <-t.C:
		case _, ok := <-wake:
			if !ok {
				wake = nil // closed: poll alone from now on
			}
		}
		t.Stop()
	}
}
