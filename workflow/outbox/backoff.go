package outbox

import "time"

// Backoff spaces the retries of a deferred item. The zero value means one
// minute doubling to one hour, for 48 hours.
type Backoff struct {
	// First is the wait after an attempt made as soon as the item was due.
	First time.Duration
	// Max caps the doubling wait.
	Max time.Duration
	// Limit is how long an item is retried: a deferred attempt of an item
	// pending for Limit already counts as failed.
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

// Next returns the wait before the next attempt of an item deferred at
// its attempt-th attempt (store.Item.Attempts) when it has been pending
// for age (since store.Item.Since), or false when age reached Limit. The
// wait is the item's age plus First, at most First doubled for each
// attempt before this one, at most Max: an item retried each time after
// that wait waits First, 2×First, 4×First…, doubling.
//
// Both bounds are needed. The age alone would make an item that waited
// long in the queue before its first attempt (a backlog) wait as long
// again after a first 4xx, plus First. The attempts alone would let an
// attempt a crash cut short (a claim that never reached the server)
// double the next wait, and a few restarts would turn a one-minute
// greylisting into a wait of many minutes.
func (b Backoff) Next(age time.Duration, attempt int) (time.Duration, bool) {
	b = b.withDefaults()
	if age >= b.Limit {
		return 0, false
	}
	doubled := b.First // First doubled attempt-1 times, short of Max
	for i := 1; i < attempt && doubled < b.Max; i++ {
		doubled *= 2
	}
	return min(max(age, 0)+b.First, doubled, b.Max), true
}
