// Package store is the gateway's persistence contract: one narrow interface,
// several backends (store/bolt, embedded and the default; store/redis, for
// production and several replicas), one behaviour, checked by the
// conformance suite in store/storetest that every backend runs.
//
// What is kept: envelopes under optimistic concurrency, their append-only
// audit trails, documents as content-addressed blobs, the outbox (mails,
// SMS and timers waiting to be carried out), idempotency keys, named leases
// and small named cursors (the mailbox poller's UIDVALIDITY and last UID).
// Workers take outbox items under short leases that they extend while they
// work, learn of new work from Wakeups rather than by polling fast, and
// report on their queues with QueueStats.
//
// Atomicity: Create and Update write the envelope together with its Writes
// (audit records, outbox items, idempotency keys) in one atomic step, so a
// state change and the mails it causes are never separated (the
// transactional-outbox pattern). Everything else is one atomic step per call.
// Backends keep the records of one envelope together (on Redis Cluster, in
// one hash slot) so that this holds on every deployment.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

// Store is implemented by every backend. All methods are safe for
// concurrent use, also by several processes sharing one database.
type Store interface {
	// Create stores a new envelope with Version 0, stored as Version 1
	// (env.Version is set to 1 on success), together with w. It fails with
	// ErrExists when the ID is taken: ingestion derives the envelope ID from
	// the submission's Message-ID, so a second ingestion of the same mail
	// fails here instead of creating a duplicate.
	Create(ctx context.Context, env *workflow.Envelope, w Writes) error
	// Get returns the stored envelope, or ErrNotFound, or ErrCorrupt.
	Get(ctx context.Context, id string) (*workflow.Envelope, error)
	// Update stores env if the stored version equals env.Version, together
	// with w, and increments env.Version; otherwise it fails with
	// ErrConflict and writes nothing (the caller reloads and reapplies).
	Update(ctx context.Context, env *workflow.Envelope, w Writes) error
	// List returns envelopes newest first, filtered and paged by q.
	List(ctx context.Context, q ListQuery) (Page, error)
	// ByToken finds the envelope and recipient holding a signing-link token
	// by the token's SHA-256 (see workflow.Recipient.TokenHashes), or
	// ErrNotFound; recipientID is workflow.SenderID for a sender's
	// status-page token (workflow.Envelope.SenderTokenHashes) and
	// workflow.DownloadID for a final mail's download link
	// (workflow.Envelope.DownloadTokens). Tokens are indexed whenever an
	// envelope is written.
	ByToken(ctx context.Context, tokenHash []byte) (envelopeID, recipientID string, err error)
	// AuditTrail returns an envelope's audit records in order.
	AuditTrail(ctx context.Context, envelopeID string) ([]audit.Record, error)
	// HasKey reports whether the idempotency key was recorded with a write
	// of the envelope (Writes.Keys), e.g. the Message-ID of a reply command
	// or a DSN already handled.
	HasKey(ctx context.Context, envelopeID, key string) (bool, error)

	// PutBlob stores the stream's bytes under their SHA-256 and returns it.
	// It fails with ErrTooLarge, storing nothing, past Options.MaxBlobBytes.
	// Storing the same bytes twice keeps one copy.
	PutBlob(ctx context.Context, r io.Reader) (Blob, error)
	// OpenBlob streams a blob by its hex SHA-256, or fails with ErrNotFound.
	OpenBlob(ctx context.Context, sha256 string) (io.ReadCloser, Blob, error)

	// Enqueue adds items that belong to no envelope write (e.g. a refusal
	// reply). An item whose ID exists already (queued, held or buried) is
	// left as it is, so enqueueing is idempotent.
	Enqueue(ctx context.Context, items ...Item) error
	// Claim takes the oldest due item of queue (NotBefore <= now, not held
	// by a live lease), leases it to holder until now+lease, increments its
	// Attempts and returns it; or ErrEmpty. An item whose lease expired is
	// due again: a worker that died loses its items to the others.
	Claim(ctx context.Context, queue, holder string, now time.Time, lease time.Duration) (*Item, error)
	// Ack removes an item its holder has carried out. ErrLeaseLost when
	// the lease expired and another holder claimed the item since.
	Ack(ctx context.Context, it *Item) error
	// Retry releases an item to be claimed again at `at`, keeping lastError.
	// ErrLeaseLost as for Ack.
	Retry(ctx context.Context, it *Item, at time.Time, lastError string) error
	// Bury moves an item to the queue's dead letters with the reason it
	// failed for good. ErrLeaseLost as for Ack.
	Bury(ctx context.Context, it *Item, reason string) error
	// Buried lists a queue's dead letters, oldest first.
	Buried(ctx context.Context, queue string) ([]Item, error)
	// Extend renews the lease of an item its holder still holds (it.Holder,
	// as returned by Claim), until now+lease, and sets it.LeaseUntil.
	// ErrLeaseLost when the item is no longer held by it.Holder (expired and
	// claimed by another, acked, buried, retried). A worker calls it while a
	// long attempt runs, so that a short lease (a minute) does not make
	// another worker send the item again meanwhile.
	Extend(ctx context.Context, it *Item, now time.Time, lease time.Duration) error
	// QueueStats describes a queue at now, for metrics and operators.
	QueueStats(ctx context.Context, queue string, now time.Time) (QueueStats, error)
	// Wakeups returns a channel that receives a value soon after items of
	// queue may have become due now — enqueued by Enqueue, Create or Update
	// (Writes.Items) with NotBefore <= now, or given back by Retry with
	// at <= now — by this process or, on a shared backend such as Redis, by
	// any process sharing the store. Values are coalesced (the channel has
	// a buffer of one and sends never block) and may be lost (a dropped
	// subscription), so workers still poll, only less often. The channel is
	// closed when ctx ends.
	Wakeups(ctx context.Context, queue string) <-chan struct{}

	// AcquireLease makes holder the holder of the named lease until now+ttl
	// if it is free, expired or already held by holder (a renewal), and
	// reports whether holder holds it.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
	// ReleaseLease frees the named lease if holder holds it.
	ReleaseLease(ctx context.Context, name, holder string) error

	// Cursor returns the value of a named cursor, or nil if never set.
	Cursor(ctx context.Context, name string) ([]byte, error)
	// SetCursor sets a named cursor.
	SetCursor(ctx context.Context, name string, value []byte) error

	// Close releases the backend's resources.
	Close() error
}

// Writes are stored atomically with an envelope by Create and Update.
type Writes struct {
	// Audit records to append; they must continue the stored trail
	// (audit.Chain from the envelope's previous Audit head).
	Audit []audit.Record
	// Items to enqueue; each must have EnvelopeID equal to the envelope's.
	// An item whose ID exists already is left as it is.
	Items []Item
	// Keys are idempotency keys to record for the envelope (see HasKey).
	Keys []string
}

// Item is an outbox entry: a mail or SMS to send, or a timer to fire.
type Item struct {
	// ID identifies the item; writers derive it from what the item is
	// (envelope, effect, recipient, time) so that a replay enqueues nothing
	// new. At most 200 bytes.
	ID string `json:"id"`
	// Queue is the item's queue, e.g. "mail", "sms", "timer".
	Queue string `json:"queue"`
	// EnvelopeID is the envelope the item belongs to, "" for none.
	EnvelopeID string `json:"envelope_id,omitempty"`
	// Payload is the worker's description of the work; opaque to the store.
	Payload []byte `json:"payload"`
	// NotBefore is when the item is due. Retry moves it to the next
	// attempt's time.
	NotBefore time.Time `json:"not_before"`
	// Since is when the item was first due, kept across retries so that
	// an item retried with backoff keeps its age (QueueStats.OldestPending).
	// A writer may set it (e.g. to carry the age of the work an item
	// continues); left zero, the store sets it to NotBefore when it first
	// stores the item (Create, Update, Enqueue). Claim, Retry and Extend
	// never change it, and enqueueing an ID that exists already leaves the
	// stored item's as it is. An item stored by a version of the gateway
	// without Since reads with Since equal to its NotBefore then: the best
	// the store knows, its latest retry time (see OldestPending).
	Since time.Time `json:"since,omitzero"`
	// Attempts counts claims of the item.
	Attempts int `json:"attempts"`
	// LastError is the error of the last failed attempt, or the reason it
	// was buried.
	LastError string `json:"last_error,omitempty"`
	// Holder is who holds the item's lease ("" when not held).
	Holder string `json:"holder,omitempty"`
	// LeaseUntil is when the holder's lease ends.
	LeaseUntil time.Time `json:"lease_until,omitzero"`
}

// QueueStats counts the items of one queue.
type QueueStats struct {
	// Waiting counts items not buried and not held by a live lease (due or
	// not).
	Waiting int
	// Due counts the waiting items whose NotBefore has come.
	Due int
	// Held counts items held by a live lease (being worked on).
	Held int
	// Buried counts dead letters.
	Buried int
	// OldestDue is the NotBefore of the oldest item that is due or held,
	// zero when none: now minus it is how long the oldest piece of work has
	// waited since it last became due. A retry moves an item's NotBefore
	// into the future, so an item that keeps failing is not counted here
	// between its attempts.
	OldestDue time.Time
	// OldestPending is the smallest Since among the items not buried whose
	// Since is not after now (a timer set for next week is not pending
	// yet), zero when none: now minus it is how long the oldest piece of
	// work has been pending, retries included, whether it is due, held or
	// waiting for its next attempt. An item stored by a version without
	// Since is counted from its first claim by a version with it, with
	// the Since it reads with (see Item.Since).
	OldestPending time.Time
}

// Blob describes a stored document.
type Blob struct {
	// SHA256 is the hex SHA-256 of the bytes, the blob's key.
	SHA256 string
	// Size is the byte count.
	Size int64
}

// ListQuery filters and pages List.
type ListQuery struct {
	// State keeps only envelopes in that state; "" keeps all.
	State workflow.State
	// After is the Next of the previous page; "" starts from the newest.
	After string
	// Limit is the page size; 0 means 50.
	Limit int
}

// Page is one page of List.
type Page struct {
	// Envelopes of the page, newest first.
	Envelopes []*workflow.Envelope
	// Next is the After of the next page, "" on the last page.
	Next string
}

// Options are common to all backends.
type Options struct {
	// MaxBlobBytes is the largest blob PutBlob accepts; 0 means 64 MiB.
	MaxBlobBytes int64
}

// DefaultMaxBlobBytes is the blob limit when Options.MaxBlobBytes is 0.
const DefaultMaxBlobBytes = 64 << 20

// Limit returns the effective blob limit.
func (o Options) Limit() int64 {
	if o.MaxBlobBytes <= 0 {
		return DefaultMaxBlobBytes
	}
	return o.MaxBlobBytes
}

// Holder names this process as the holder of leases and outbox items:
// host name and process ID, unique among the replicas sharing a store.
func Holder() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// Errors shared by every backend; compare with errors.Is. Backends wrap
// them with what was concerned (the envelope ID, the size…).
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrConflict  = errors.New("stale version: the envelope changed since it was read")
	ErrTooLarge  = errors.New("too large")
	ErrEmpty     = errors.New("no item is due")
	ErrLeaseLost = errors.New("lease lost: the item is held by another holder")
	ErrCorrupt   = errors.New("corrupt stored record")
	ErrInvalid   = errors.New("invalid argument")
)

// CorruptError is the ErrCorrupt of one record, naming it.
type CorruptError struct {
	// Key names the record, e.g. "envelope E123".
	Key string
	// Err is the decoding error.
	Err error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt stored record %s: %v", e.Key, e.Err)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the decoding error.
func (e *CorruptError) Unwrap() error { return e.Err }
