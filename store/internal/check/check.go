// Package check refuses bad arguments to the store before any backend writes
// anything, so that every backend rejects the same input with the same
// store.ErrInvalid and a message naming what was wrong.
package check

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

// MaxItemIDBytes is the longest outbox item ID the contract allows.
const MaxItemIDBytes = 200

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", store.ErrInvalid, fmt.Sprintf(format, args...))
}

// NormalHead returns h, with the zero Head read as the head of an empty
// trail: an envelope built without audit.Start has not started its trail.
func NormalHead(h audit.Head) audit.Head {
	if h.Seq == 0 && h.Hash == "" {
		return audit.Start()
	}
	return h
}

// Create checks the arguments of Store.Create.
func Create(env *workflow.Envelope, w store.Writes) error {
	if env != nil && env.Version != 0 {
		return invalid("envelope %s: Create takes a new envelope with Version 0, not %d", env.ID, env.Version)
	}
	prev, err := Writes(env, w)
	if err != nil {
		return err
	}
	if prev != audit.Start() {
		return invalid("envelope %s: a new envelope's audit records must start the trail (seq 1, prev %s), not continue seq %d", env.ID, audit.GenesisHash, prev.Seq)
	}
	return nil
}

// Writes checks an envelope and the writes stored with it, and returns the
// audit head the stored envelope must have for w.Audit to continue its
// trail: the head before the first record, or env.Audit when w adds none.
// The records must chain among themselves and end at env.Audit, the head
// the next write will continue from.
func Writes(env *workflow.Envelope, w store.Writes) (prev audit.Head, err error) {
	if env == nil {
		return audit.Head{}, invalid("nil envelope")
	}
	if env.ID == "" {
		return audit.Head{}, invalid("envelope without an ID")
	}
	head := NormalHead(env.Audit)
	if len(w.Audit) == 0 {
		prev = head
	} else {
		first := w.Audit[0]
		if first.Seq == 0 {
			return audit.Head{}, invalid("envelope %s: audit record without a seq (chain records with audit.Chain)", env.ID)
		}
		prev = audit.Head{Seq: first.Seq - 1, Hash: first.Prev}
		at := prev
		for i, r := range w.Audit {
			if r.Seq != at.Seq+1 || r.Prev != at.Hash || r.Hash == "" {
				return audit.Head{}, invalid("envelope %s: audit record %d (seq %d) does not follow the one before (seq %d): chain records with audit.Chain", env.ID, i+1, r.Seq, at.Seq)
			}
			at = audit.Head{Seq: r.Seq, Hash: r.Hash}
		}
		if at != head {
			return audit.Head{}, invalid("envelope %s: Audit head is seq %d, but the records end at seq %d: set it to the head audit.Chain returned", env.ID, head.Seq, at.Seq)
		}
	}
	for _, it := range w.Items {
		if err := Item(it); err != nil {
			return audit.Head{}, err
		}
		if it.EnvelopeID != env.ID {
			return audit.Head{}, invalid("envelope %s: outbox item %q belongs to envelope %q", env.ID, it.ID, it.EnvelopeID)
		}
	}
	for _, k := range w.Keys {
		if k == "" {
			return audit.Head{}, invalid("envelope %s: empty idempotency key", env.ID)
		}
	}
	return prev, nil
}

// Item checks an outbox item before it is enqueued.
func Item(it store.Item) error {
	switch {
	case it.ID == "":
		return invalid("outbox item without an ID")
	case len(it.ID) > MaxItemIDBytes:
		return invalid("outbox item ID %.40q… is %d bytes, more than %d", it.ID, len(it.ID), MaxItemIDBytes)
	case it.Queue == "":
		return invalid("outbox item %q without a queue", it.ID)
	}
	return nil
}

// Held checks an item handed back by its holder (Ack, Retry, Bury, Extend).
func Held(it *store.Item) error {
	if it == nil {
		return invalid("nil outbox item")
	}
	if err := Item(*it); err != nil {
		return err
	}
	if it.Holder == "" {
		return invalid("outbox item %q is not held: only an item returned by Claim can be acked, retried, buried or extended", it.ID)
	}
	return nil
}

// Extend checks the arguments of Store.Extend.
func Extend(it *store.Item, lease time.Duration) error {
	if err := Held(it); err != nil {
		return err
	}
	if lease <= 0 {
		return invalid("extending the lease of outbox item %q by %v: want a positive duration", it.ID, lease)
	}
	return nil
}

// Queue checks the queue named to Store.QueueStats.
func Queue(queue string) error {
	if queue == "" {
		return invalid("queue statistics without a queue")
	}
	return nil
}

// Claim checks the arguments of Store.Claim.
func Claim(queue, holder string, lease time.Duration) error {
	switch {
	case queue == "":
		return invalid("claim without a queue")
	case holder == "":
		return invalid("claim of queue %q without a holder", queue)
	case lease <= 0:
		return invalid("claim of queue %q with lease %v: want a positive duration", queue, lease)
	}
	return nil
}

// Lease checks the arguments of Store.AcquireLease.
func Lease(name, holder string, ttl time.Duration) error {
	switch {
	case name == "":
		return invalid("lease without a name")
	case holder == "":
		return invalid("lease %q without a holder", name)
	case ttl <= 0:
		return invalid("lease %q with ttl %v: want a positive duration", name, ttl)
	}
	return nil
}

// Name checks the name of a lease or cursor.
func Name(kind, name string) error {
	if name == "" {
		return invalid("%s without a name", kind)
	}
	return nil
}

// TokenHash checks a token hash given to ByToken.
func TokenHash(h []byte) error {
	if len(h) != 32 {
		return invalid("token hash of %d bytes: want a SHA-256, 32 bytes", len(h))
	}
	return nil
}

// SHA256 checks a hex SHA-256 given to OpenBlob and returns it in lower case.
func SHA256(s string) (string, error) {
	s = strings.ToLower(s)
	if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
		return "", invalid("blob key %.80q: want the 64 hex digits of a SHA-256", s)
	}
	return s, nil
}

// Limit returns the page size of a ListQuery.
func Limit(q store.ListQuery) (int, error) {
	switch {
	case q.Limit < 0:
		return 0, invalid("list limit %d: want 0 (the default, 50) or more", q.Limit)
	case q.Limit == 0:
		return 50, nil
	}
	return q.Limit, nil
}
