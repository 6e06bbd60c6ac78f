package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/parapheur/parapheur/store"
)

// Quota is how many replies of one kind one address may be sent in a
// period (SPEC §2, Refusal; §6, by mail): a runaway robot, or a forged
// sender, must not turn the gateway into a mail cannon.
type Quota struct {
	// Key names the address and its class, e.g. "submitter:a@org.example"
	// with the address folded as the caller compares addresses.
	Key string
	// Max is how many replies the address may be sent within Per.
	Max int
	// Per is the period.
	Per time.Duration
}

// Reply queues the job that reply makes, the reply to the mail of
// idempotency key key (its normalised Message-ID) that makes no envelope —
// a refusal, a verification report —, if quota allows one more, and
// reports whether it did. reply is called only then: a mail past its
// sender's quota costs no work on its reply. A second call for the same
// key queues nothing new and reports true: a mail handled again after a
// crash keeps its reply.
//
// The quota is counted with the store's leases, without a counter: Max
// leases per address, each taken for Per by the mail it answers (the
// lease's holder is key). A reply needs a free lease, so at most Max are
// held at any time and at most Max replies go out in any period of
// length Per — a sliding window whose slots free themselves. A mail that
// holds a lease already renews it, which is what makes a retry keep its
// reply. The cost is at most Max lease calls for an address at its cap.
func (e *Engine) Reply(ctx context.Context, key string, quota Quota, reply func() Job) (bool, error) {
	now := e.Now()
	granted := false
	// The address is hashed into the lease names: a From address may be
	// as long as a hostile header makes it.
	who := sha256.Sum256([]byte(quota.Key))
	for i := 0; i < quota.Max && !granted; i++ {
		name := fmt.Sprintf("reply/%s/%d", hex.EncodeToString(who[:16]), i)
		ok, err := e.Store.AcquireLease(ctx, name, key, now, quota.Per)
		if err != nil {
			return false, err
		}
		granted = ok
	}
	if !granted {
		return false, nil
	}
	job := reply()
	payload, err := json.Marshal(job)
	if err != nil {
		return false, err
	}
	// The item ID derives from the mail, so a retry enqueues nothing new;
	// hashed, since a Message-ID may be longer than an item ID may.
	id := sha256.Sum256([]byte(key))
	item := store.Item{ID: string(job.Notice) + "/" + hex.EncodeToString(id[:16]), Queue: MailQueue, Payload: payload, NotBefore: now}
	if err := e.Store.Enqueue(ctx, item); err != nil {
		return false, err
	}
	return true, nil
}
