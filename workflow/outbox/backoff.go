package outbox

import "time"

// Backoff spaces the retries of a deferred item. The zero value means one
// minute doubling to one hour, for 48 hours.
type Backoff struct {
	// First is the wait after the first deferred attempt.
	First time.Duration
	// Max caps the doubling wait.
	Max time.Duration
	// Limit is how long an item is retried: once the waits before its
	// attempts add up to Limit, a deferred attempt counts as failed.
	Limit time.Duration
}

// Default backoff values, used for zero fields.
const (
	// DefaultFirstBackoff is the first wait: long enough for a greylisting
	// MTA to accept the retry.
	DefaultFirstBackoff = time.Minute
	// DefaultMaxBackoff caps the doubling.
	DefaultMaxBackoff = time.Hour
	// DefaultRetryLimit is how long a deferred item is retried, as long as
	// MTAs commonly keep a message before bouncing it.
	DefaultRetryLimit = 48 * time.Hour
)

func (b Backoff) withDefaults() Backoff {
	if b.First <= 0 {
		b.First = DefaultFirstBackoff
	}
	if b.Max <= 0 {
		b.Max = DefaultMaxBackoff
	}
	if b.Max < b.First {
		b.Max = b.First
	}
	if b.Limit <= 0 {
		b.Limit = DefaultRetryLimit
	}
	return b
}

// Next returns the wait after the attempts-th attempt of an item was
// deferred, or false when the item has been retried for Limit already. It
// reads nothing but attempts (store.Item.Attempts), so the schedule holds
// across restarts without a clock of the item.
func (b Backoff) Next(attempts int) (time.Duration, bool) {
	b = b.withDefaults()
	wait, waited := b.First, time.Duration(0)
	for i := 1; i < attempts; i++ {
		waited += wait
		if waited >= b.Limit {
			return 0, false
		}
		wait = min(2*wait, b.Max)
	}
	return wait, true
}
