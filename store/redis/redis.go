// Package redis is the store backend for production and for several gateway
// replicas: Redis (standalone, Sentinel or Cluster) through go-redis v9's
// UniversalClient, with the writes that must be atomic done by Lua scripts
// (Redis runs a script as one step: no other command sees it half done).
//
// # URLs
//
//	redis://[user:password@]host:port/db          one server (go-redis ParseURL)
//	rediss://…                                    the same over TLS
//	redis-sentinel://[user:password@]host:port/db?master_name=NAME&addr=host2:port&…
//	rediss-sentinel://…                           Sentinel (go-redis ParseFailoverURL, scheme
//	                                              without "-sentinel"): the user info is the
//	                                              sentinels' own; the master's credentials go in
//	                                              ?username=…&password=…
//	redis-cluster://[user:password@]host:port?addr=host2:port&addr=…
//	rediss-cluster://…                            Cluster (go-redis ParseClusterURL, scheme
//	                                              without "-cluster"); no database number
//
// Every other query parameter is go-redis's (dial_timeout=3s, pool_size=20…).
//
// # Layout and atomicity
//
// All keys of one envelope carry the hash tag {ID} (the envelope record
// parapheur:env:{ID}, its audit list, idempotency-key set and outbox items
// parapheur:item:{ID}:ITEM), so that on a Cluster they are in one slot and
// Create or Update writes the envelope with its audit records, items and
// keys in one script: all of it or none of it. An item of no envelope is
// keyed parapheur:qitem:{ITEM}, in its own slot. Claim, Ack, Retry, Bury and
// Extend change one item in one script; a named lease is one key changed by a
// compare-and-set script. Version checks, the audit-chain check and lease
// checks are made inside the scripts, so two replicas racing are serialised
// by Redis.
//
// Global indexes cannot share a slot with the records they point at: the
// List order (parapheur:list), token hash → recipient (parapheur:token:HASH),
// each queue's due-time index (parapheur:ready:QUEUE, members ITEMKEY|STAMP
// scored by due time in microseconds), its claimed items (parapheur:held:QUEUE,
// the same members scored by NotBefore, for QueueStats), its items not
// buried (parapheur:pending:QUEUE, the same members scored by Since, for
// QueueStats.OldestPending) and dead letters (parapheur:buried:QUEUE). They
// are written before the atomic write they index, so a crash can leave a
// pointer to a record that was never written, never a record that no index
// finds. Readers check each pointer against the record (the envelope's
// stored list key, the recipient's token hashes, the item's STAMP) and skip
// what does not match. A STAMP is the index write's
// time and a random part; the item stores the STAMP of the write that created
// it, so a pointer left by a failed or replayed write is told from the live
// one and removed, by the write itself when it learns it failed, else by a
// reader once the STAMP is older than staleAfter (10 minutes: until then a
// writer may still be between its index write and its atomic write).
//
// A claimed item's index entry is re-scored to the end of its lease (by
// Claim and Extend), so an expired lease makes the item due again without
// anyone's help. Index writes that follow an atomic write (re-scoring after
// Claim, Extend and Retry, removal after Ack and Bury, the held index) only
// ever leave an entry scored too early, pointing at nothing or at an item no
// longer held; Claim skips such entries (and removes them as above), and
// QueueStats ignores held entries of items not held and removes those of
// items gone or buried, and skips pending entries that point at nothing or
// at a buried item (removing them as Claim does). Claim writes the item's
// pending entry again, which restores one a crash lost and gives an item
// stored by a version without Item.Since its entry.
//
// # Wake-ups
//
// After a write that makes items due (Create, Update, Enqueue, Retry) the
// writer PUBLISHes to parapheur:wake:QUEUE; Wakeups subscribes to it. Plain
// pub/sub works on every deployment (standalone, Sentinel, Cluster, any
// Redis version); on a Cluster each PUBLISH is broadcast over the cluster
// bus to every node, one small message per write that queues due work.
// Messages published while a subscriber is disconnected are lost, which
// is why workers still poll.
//
// # Crash windows (a client dying between two steps; Redis itself loses
// nothing it acknowledged when run with appendonly yes, appendfsync always)
//
//   - Create/Update/Enqueue after the index writes, before the script:
//     pointers to nothing (skipped; item pointers removed after 10 minutes,
//     list and token pointers stay, skipped by every read).
//   - Claim after the script, before re-scoring: the item is held but its
//     entry is scored at its old due time; claimers skip it until the lease
//     ends, then claim it as usual. Before the held-index write: QueueStats
//     counts the item as waiting.
//   - Extend after the script, before re-scoring: the same, until the new
//     lease ends.
//   - Retry after the script, before re-scoring: the item is due at the end
//     of the lease it had instead of at the retry time if that was earlier.
//   - Claim after the script, before writing the pending entry of an item
//     stored by a version without Item.Since: QueueStats.OldestPending
//     misses the item until its next claim.
//   - Ack after the script, before removing the entries: a pointer to
//     nothing, removed by the next claimer and by QueueStats (the pending
//     entry once its STAMP is 10 minutes old).
//   - Retry after the script, before removing the held entry: an entry of
//     an item not held, ignored, and overwritten by the item's next claim.
//   - Bury before the script: a dead-letter pointer to an item still queued,
//     removed by Buried after 10 minutes; after the script, before removing
//     the due-time and pending entries: removed by the next claimer and by
//     QueueStats.
//   - PutBlob before linking: chunks are written with a 24-hour expiry and
//     vanish; between making them permanent (the last one is written
//     permanent, in the same round trip) and linking: orphan chunks (space
//     only, never a wrong blob). A write slower than 24 hours fails.
//
// A writer stalled more than 10 minutes between an item's index write and
// its script (or replica clocks more than 10 minutes apart) can have its
// pointer removed before its item is stored: that item is never claimed.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/internal/check"
	"github.com/parapheur/parapheur/store/internal/record"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

// Store is the Redis store. It is safe for concurrent use, also by several
// processes.
type Store struct {
	c    redis.UniversalClient
	url  string // as given to Open
	opts store.Options
}

var _ store.Store = (*Store)(nil)

// Open connects to the Redis named by rawURL (see the package doc) and
// checks that it answers.
func Open(ctx context.Context, rawURL string, opts store.Options) (*Store, error) {
	c, err := newClient(rawURL)
	if err != nil {
		return nil, err
	}
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis store %s: %w", redact(rawURL), err)
	}
	return &Store{c: c, url: rawURL, opts: opts}, nil
}

// newClient makes the client for the URL's scheme.
func newClient(rawURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("redis store URL: %w", err)
	}
	bad := func(err error) error { return fmt.Errorf("redis store URL %s: %w", u.Redacted(), err) }
	plain := *u
	switch u.Scheme {
	case "redis", "rediss":
		o, err := redis.ParseURL(plain.String())
		if err != nil {
			return nil, bad(err)
		}
		return redis.NewClient(o), nil
	case "redis-sentinel", "rediss-sentinel":
		plain.Scheme = strings.TrimSuffix(u.Scheme, "-sentinel")
		o, err := redis.ParseFailoverURL(plain.String())
		if err != nil {
			return nil, bad(err)
		}
		if o.MasterName == "" {
			return nil, bad(errors.New("missing ?master_name=NAME, the master the sentinels watch"))
		}
		return redis.NewFailoverClient(o), nil
	case "redis-cluster", "rediss-cluster":
		plain.Scheme = strings.TrimSuffix(u.Scheme, "-cluster")
		o, err := redis.ParseClusterURL(plain.String())
		if err != nil {
			return nil, bad(err)
		}
		return redis.NewClusterClient(o), nil
	}
	return nil, bad(fmt.Errorf("scheme %q: want redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", u.Scheme))
}

func redact(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// Close closes the client's connections.
func (s *Store) Close() error { return s.c.Close() }

// Keys. esc keeps braces out of IDs, so that the only hash tag in a key is
// the one put there, and keeps the escaping reversible, so that distinct IDs
// make distinct keys.
const prefix = "parapheur:"

var escaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

func esc(s string) string { return escaper.Replace(s) }

func envKey(id string) string   { return prefix + "env:{" + esc(id) + "}" }
func auditKey(id string) string { return prefix + "audit:{" + esc(id) + "}" }
func keysKey(id string) string  { return prefix + "keys:{" + esc(id) + "}" }

func itemKey(envelopeID, id string) string {
	if envelopeID == "" {
		return prefix + "qitem:{" + esc(id) + "}"
	}
	return prefix + "item:{" + esc(envelopeID) + "}:" + esc(id)
}

const listKey = prefix + "list"

func readyKey(queue string) string   { return prefix + "ready:" + esc(queue) }
func buriedKey(queue string) string  { return prefix + "buried:" + esc(queue) }
func heldKey(queue string) string    { return prefix + "held:" + esc(queue) }
func pendingKey(queue string) string { return prefix + "pending:" + esc(queue) }
func tokenKey(hash []byte) string    { return prefix + "token:" + hex.EncodeToString(hash) }
func leaseKey(name string) string    { return prefix + "lease:" + esc(name) }
func cursorKey(name string) string   { return prefix + "cursor:" + esc(name) }

// staleAfter is how old an index pointer to nothing must be before a reader
// removes it: longer than any writer takes from its index write to its
// atomic write.
const staleAfter = 10 * time.Minute

// newStamp returns a unique stamp for an index pointer: its time, to tell
// when it is stale, and a random part.
func newStamp() string {
	b := make([]byte, 6)
	rand.Read(b)
	return strconv.FormatInt(time.Now().UnixMicro(), 10) + "-" + hex.EncodeToString(b)
}

// stale reports whether a pointer with this stamp is old enough that its
// writer has given up.
func stale(stamp string) bool {
	at, _, _ := strings.Cut(stamp, "-")
	us, err := strconv.ParseInt(at, 10, 64)
	return err != nil || time.Since(time.UnixMicro(us)) > staleAfter
}

func member(key, stamp string) string { return key + "|" + stamp }

// splitMember splits an index member into item key and stamp.
func splitMember(m string) (key, stamp string, ok bool) {
	i := strings.LastIndexByte(m, '|')
	if i < 0 {
		return "", "", false
	}
	return m[:i], m[i+1:], true
}

func micros(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// corruptReply turns a reply of the wrong type (WRONGTYPE) into the
// CorruptError of the record.
func corruptReply(err error, what string) error {
	if err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE") {
		return &store.CorruptError{Key: what, Err: err}
	}
	return err
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, env *workflow.Envelope, w store.Writes) error {
	if err := check.Create(env, w); err != nil {
		return err
	}
	lk := record.ListKey(env.CreatedAt, env.ID)
	res, items, err := s.write(ctx, env, w, audit.Start(), lk, func(pipe redis.Pipeliner) {
		pipe.ZAdd(ctx, listKey, redis.Z{Member: lk})
	})
	if err != nil {
		return err
	}
	switch res[0] {
	case "ok":
		env.Version = 1
		s.publishDue(ctx, w.Items)
		return nil
	case "exists":
		cleanup := s.c.Pipeline()
		if stored, _ := res[1].(string); stored != lk {
			cleanup.ZRem(ctx, listKey, lk)
		}
		s.unindex(ctx, cleanup, items)
		_, _ = cleanup.Exec(ctx) // pointers left behind are skipped by readers
		return fmt.Errorf("envelope %s: %w", env.ID, store.ErrExists)
	}
	return fmt.Errorf("redis store: create %s: unexpected script reply %v", env.ID, res)
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, env *workflow.Envelope, w store.Writes) error {
	prev, err := check.Writes(env, w)
	if err != nil {
		return err
	}
	res, items, err := s.write(ctx, env, w, prev, "", nil)
	if err != nil {
		return err
	}
	if res[0] == "ok" {
		env.Version++
		s.publishDue(ctx, w.Items)
		return nil
	}
	cleanup := s.c.Pipeline()
	s.unindex(ctx, cleanup, items)
	_, _ = cleanup.Exec(ctx)
	switch res[0] {
	case "notfound":
		return fmt.Errorf("envelope %s: %w", env.ID, store.ErrNotFound)
	case "conflict":
		return fmt.Errorf("envelope %s: stored version %v, written version %d: %w", env.ID, res[1], env.Version, store.ErrConflict)
	case "audit":
		return fmt.Errorf("%w: envelope %s: the audit records continue seq %d, but the stored trail ends at seq %v", store.ErrInvalid, env.ID, prev.Seq, res[1])
	case "corrupt":
		return &store.CorruptError{Key: "envelope " + env.ID, Err: fmt.Errorf("%v", res[1])}
	}
	return fmt.Errorf("redis store: update %s: unexpected script reply %v", env.ID, res)
}

// write indexes the envelope's tokens and items (and what index adds), then
// runs the write script: Create when listKey is set, else Update. On "ok" it
// has removed the pointers of items that existed already; on any other reply
// the caller removes the items' pointers.
func (s *Store) write(ctx context.Context, env *workflow.Envelope, w store.Writes, prev audit.Head, lk string, index func(redis.Pipeliner)) ([]any, []pendingItem, error) {
	mode, version := "update", env.Version+1
	if lk != "" {
		mode, version = "create", 1
	}
	data, err := record.EncodeEnvelope(env, version)
	if err != nil {
		return nil, nil, err
	}
	items, err := pending(w.Items)
	if err != nil {
		return nil, nil, err
	}
	pipe := s.c.Pipeline()
	if index != nil {
		index(pipe)
	}
	record.Tokens(env, func(hash []byte, recipientID string) {
		pipe.Set(ctx, tokenKey(hash), record.EncodeToken(env.ID, recipientID), 0)
	})
	s.index(ctx, pipe, items)
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, nil, fmt.Errorf("redis store: indexing envelope %s: %w", env.ID, err)
		}
	}

	head := check.NormalHead(env.Audit)
	keys := []string{envKey(env.ID), auditKey(env.ID), keysKey(env.ID)}
	args := []any{mode, env.Version, version, data, lk, prev.Seq, prev.Hash, head.Seq, head.Hash, len(w.Audit), len(w.Keys)}
	for _, r := range w.Audit {
		b, err := record.EncodeAudit(r)
		if err != nil {
			return nil, nil, err
		}
		args = append(args, b)
	}
	for _, k := range w.Keys {
		args = append(args, k)
	}
	keys, args = appendItems(keys, args, items)
	res, err := writeScript.Run(ctx, s.c, keys, args...).Slice()
	if err != nil {
		return nil, nil, corruptReply(fmt.Errorf("redis store: writing envelope %s: %w", env.ID, err), "envelope "+env.ID)
	}
	if len(res) == 0 {
		return nil, nil, fmt.Errorf("redis store: writing envelope %s: empty script reply", env.ID)
	}
	if res[0] == "ok" && len(res) > 1 {
		s.unindexExisting(ctx, items, res[1])
	}
	return res, items, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (*workflow.Envelope, error) {
	f, err := s.c.HMGet(ctx, envKey(id), "v", "d").Result()
	if err != nil {
		return nil, corruptReply(err, "envelope "+id)
	}
	return decodeEnvelope(id, f[0], f[1])
}

// decodeEnvelope decodes the fields v and d of an envelope record.
func decodeEnvelope(id string, v, d any) (*workflow.Envelope, error) {
	if v == nil && d == nil {
		return nil, fmt.Errorf("envelope %s: %w", id, store.ErrNotFound)
	}
	data, _ := d.(string)
	env, err := record.DecodeEnvelope(id, []byte(data))
	if err != nil {
		return nil, err
	}
	if vs, _ := v.(string); vs != strconv.FormatUint(env.Version, 10) {
		return nil, &store.CorruptError{Key: "envelope " + id, Err: fmt.Errorf("record version %q, envelope version %d", vs, env.Version)}
	}
	return env, nil
}

// listBatch is how many list entries List reads at a time.
const listBatch = 100

// List implements store.Store.
func (s *Store) List(ctx context.Context, q store.ListQuery) (store.Page, error) {
	limit, err := check.Limit(q)
	if err != nil {
		return store.Page{}, err
	}
	if err := record.CheckAfter(q.After); err != nil {
		return store.Page{}, err
	}
	var page store.Page
	start, last := "-", ""
	if q.After != "" {
		start = "(" + q.After
	}
	for {
		members, err := s.c.ZRangeArgs(ctx, redis.ZRangeArgs{Key: listKey, Start: start, Stop: "+", ByLex: true, Count: listBatch}).Result()
		if err != nil {
			return store.Page{}, err
		}
		pipe := s.c.Pipeline()
		cmds := make([]*redis.SliceCmd, len(members))
		for i, m := range members {
			cmds[i] = pipe.HMGet(ctx, envKey(record.ListKeyID(m)), "v", "d", "ck")
		}
		if len(members) > 0 {
			if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
				return store.Page{}, err
			}
		}
		for i, m := range members {
			f, err := cmds[i].Result()
			if err != nil {
				return store.Page{}, corruptReply(err, "envelope "+record.ListKeyID(m))
			}
			if ck, _ := f[2].(string); ck != m {
				continue // the pointer of a Create that failed
			}
			env, err := decodeEnvelope(record.ListKeyID(m), f[0], f[1])
			if err != nil {
				return store.Page{}, err
			}
			if q.State != "" && env.State != q.State {
				continue
			}
			if len(page.Envelopes) == limit {
				page.Next = last
				return page, nil
			}
			page.Envelopes = append(page.Envelopes, env)
			last = m
		}
		if len(members) < listBatch {
			return page, nil
		}
		start = "(" + members[len(members)-1]
	}
}

// ByToken implements store.Store.
func (s *Store) ByToken(ctx context.Context, tokenHash []byte) (envelopeID, recipientID string, err error) {
	if err := check.TokenHash(tokenHash); err != nil {
		return "", "", err
	}
	data, err := s.c.Get(ctx, tokenKey(tokenHash)).Bytes()
	if errors.Is(err, redis.Nil) {
		return "", "", fmt.Errorf("token: %w", store.ErrNotFound)
	}
	if err != nil {
		return "", "", err
	}
	t, err := record.DecodeToken(tokenHash, data)
	if err != nil {
		return "", "", err
	}
	env, err := s.Get(ctx, t.Envelope)
	if err != nil {
		return "", "", err
	}
	if !record.HoldsToken(env, t.Recipient, tokenHash) {
		return "", "", fmt.Errorf("token: %w", store.ErrNotFound)
	}
	return t.Envelope, t.Recipient, nil
}

// AuditTrail implements store.Store.
func (s *Store) AuditTrail(ctx context.Context, envelopeID string) ([]audit.Record, error) {
	pipe := s.c.Pipeline()
	exists := pipe.Exists(ctx, envKey(envelopeID))
	list := pipe.LRange(ctx, auditKey(envelopeID), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, corruptReply(err, "audit trail of envelope "+envelopeID)
	}
	if exists.Val() == 0 {
		return nil, fmt.Errorf("envelope %s: %w", envelopeID, store.ErrNotFound)
	}
	recs := make([]audit.Record, len(list.Val()))
	for i, data := range list.Val() {
		r, err := record.DecodeAudit(envelopeID, i+1, []byte(data))
		if err != nil {
			return nil, err
		}
		recs[i] = r
	}
	return recs, nil
}

// HasKey implements store.Store.
func (s *Store) HasKey(ctx context.Context, envelopeID, key string) (bool, error) {
	pipe := s.c.Pipeline()
	exists := pipe.Exists(ctx, envKey(envelopeID))
	member := pipe.SIsMember(ctx, keysKey(envelopeID), key)
	if _, err := pipe.Exec(ctx); err != nil {
		return false, corruptReply(err, "idempotency keys of envelope "+envelopeID)
	}
	if exists.Val() == 0 {
		return false, fmt.Errorf("envelope %s: %w", envelopeID, store.ErrNotFound)
	}
	return member.Val(), nil
}

// AcquireLease implements store.Store.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	if err := check.Lease(name, holder, ttl); err != nil {
		return false, err
	}
	n, err := acquireScript.Run(ctx, s.c, []string{leaseKey(name)}, holder, micros(now), micros(now.Add(ttl))).Int()
	if err != nil {
		return false, corruptReply(err, "lease "+name)
	}
	return n == 1, nil
}

// ReleaseLease implements store.Store.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := check.Name("lease", name); err != nil {
		return err
	}
	return corruptReply(releaseLeaseScript.Run(ctx, s.c, []string{leaseKey(name)}, holder).Err(), "lease "+name)
}

// Cursor implements store.Store.
func (s *Store) Cursor(ctx context.Context, name string) ([]byte, error) {
	if err := check.Name("cursor", name); err != nil {
		return nil, err
	}
	v, err := s.c.Get(ctx, cursorKey(name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return v, corruptReply(err, "cursor "+name)
}

// SetCursor implements store.Store.
func (s *Store) SetCursor(ctx context.Context, name string, value []byte) error {
	if err := check.Name("cursor", name); err != nil {
		return err
	}
	return s.c.Set(ctx, cursorKey(name), value, 0).Err()
}
