package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/internal/check"
	"github.com/parapheur/parapheur/store/internal/wake"
)

// pendingItem is an item about to be written, with the stamp of its
// pointers and its Since set.
type pendingItem struct {
	key, stamp string
	item       store.Item
	data       []byte // the immutable part
}

// itemData is the part of an item no claim changes.
type itemData struct {
	ID         string `json:"id"`
	Queue      string `json:"queue"`
	EnvelopeID string `json:"envelope_id,omitempty"`
	Payload    []byte `json:"payload"`
}

func pending(items []store.Item) ([]pendingItem, error) {
	out := make([]pendingItem, len(items))
	for i, it := range items {
		data, err := json.Marshal(itemData{it.ID, it.Queue, it.EnvelopeID, it.Payload})
		if err != nil {
			return nil, fmt.Errorf("encoding outbox item %s: %w", it.ID, err)
		}
		if it.Since.IsZero() {
			it.Since = it.NotBefore
		}
		out[i] = pendingItem{key: itemKey(it.EnvelopeID, it.ID), stamp: newStamp(), item: it, data: data}
	}
	return out, nil
}

func (p pendingItem) member() string { return member(p.key, p.stamp) }

// index adds the items' due-time and pending pointers.
func (s *Store) index(ctx context.Context, pipe redis.Pipeliner, items []pendingItem) {
	for _, p := range items {
		pipe.ZAdd(ctx, readyKey(p.item.Queue), redis.Z{Score: float64(p.item.NotBefore.UnixMicro()), Member: p.member()})
		pipe.ZAdd(ctx, pendingKey(p.item.Queue), redis.Z{Score: float64(p.item.Since.UnixMicro()), Member: p.member()})
	}
}

// unindex removes the pointers of items that were not written.
func (s *Store) unindex(ctx context.Context, pipe redis.Pipeliner, items []pendingItem) {
	for _, p := range items {
		pipe.ZRem(ctx, readyKey(p.item.Queue), p.member())
		pipe.ZRem(ctx, pendingKey(p.item.Queue), p.member())
	}
}

// unindexExisting removes the pointers of the items the script found
// stored already (their indexes in reply): the stored item keeps its own.
func (s *Store) unindexExisting(ctx context.Context, items []pendingItem, reply any) {
	existed, _ := reply.([]any)
	var drop []pendingItem
	for _, x := range existed {
		if i, ok := x.(int64); ok && int(i) < len(items) {
			drop = append(drop, items[i])
		}
	}
	if len(drop) > 0 {
		pipe := s.c.Pipeline()
		s.unindex(ctx, pipe, drop)
		_, _ = pipe.Exec(ctx) // a pointer left behind is removed by a claimer
	}
}

// appendItems adds the items' keys and arguments for putItemsLua.
func appendItems(keys []string, args []any, items []pendingItem) ([]string, []any) {
	for _, p := range items {
		keys = append(keys, p.key)
		args = append(args, p.stamp, micros(p.item.NotBefore), p.item.NotBefore.Format(time.RFC3339Nano), p.data, p.item.Since.Format(time.RFC3339Nano))
	}
	return keys, args
}

// Enqueue implements store.Store. Items are written one by one, each in its
// own slot; each is stored or not, whole.
func (s *Store) Enqueue(ctx context.Context, add ...store.Item) error {
	for _, it := range add {
		if err := check.Item(it); err != nil {
			return err
		}
	}
	items, err := pending(add)
	if err != nil {
		return err
	}
	pipe := s.c.Pipeline()
	s.index(ctx, pipe, items)
	if len(items) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("redis store: indexing outbox items: %w", err)
		}
	}
	for i, p := range items {
		keys, args := appendItems(nil, nil, items[i:i+1])
		res, err := enqueueScript.Run(ctx, s.c, keys, args...).Slice()
		if err != nil {
			return corruptReply(fmt.Errorf("redis store: enqueueing %s: %w", p.item.ID, err), "outbox item "+p.item.ID)
		}
		s.unindexExisting(ctx, items[i:i+1], res)
	}
	s.publishDue(ctx, add)
	return nil
}

// claimBatch is how many due pointers Claim reads at a time.
const claimBatch = 16

// Claim implements store.Store.
func (s *Store) Claim(ctx context.Context, queue, holder string, now time.Time, lease time.Duration) (*store.Item, error) {
	if err := check.Claim(queue, holder, lease); err != nil {
		return nil, err
	}
	until := now.Add(lease)
	index := readyKey(queue)
	for offset := 0; ; offset += claimBatch {
		members, err := s.c.ZRangeByScore(ctx, index, &redis.ZRangeBy{Min: "-inf", Max: micros(now), Offset: int64(offset), Count: claimBatch}).Result()
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			key, stamp, ok := splitMember(m)
			if !ok {
				s.c.ZRem(ctx, index, m)
				continue
			}
			res, err := claimScript.Run(ctx, s.c, []string{key}, stamp, micros(now), holder, micros(until), until.Format(time.RFC3339Nano)).Slice()
			if err != nil {
				return nil, corruptReply(err, "outbox item "+key)
			}
			switch res[0] {
			case "ok":
				it, err := decodeItem(key, res[1])
				pipe := s.c.Pipeline()
				// Due again when the lease ends, should the holder die.
				pipe.ZAddXX(ctx, index, redis.Z{Score: float64(until.UnixMicro()), Member: m})
				if err == nil {
					pipe.ZAdd(ctx, heldKey(queue), redis.Z{Score: float64(it.NotBefore.UnixMicro()), Member: m})
					// Unchanged but for an item stored without Since or
					// whose entry a crash lost (package doc).
					pipe.ZAdd(ctx, pendingKey(queue), redis.Z{Score: float64(it.Since.UnixMicro()), Member: m})
				}
				_, _ = pipe.Exec(ctx) // see the crash windows in the package doc
				return it, err
			case "buried":
				s.c.ZRem(ctx, index, m)
			case "missing", "stale":
				if stale(stamp) {
					s.c.ZRem(ctx, index, m)
				}
			case "corrupt":
				return nil, &store.CorruptError{Key: "outbox item " + key, Err: fmt.Errorf("%v", res[1])}
			}
		}
		if len(members) < claimBatch {
			return nil, fmt.Errorf("queue %s: %w", queue, store.ErrEmpty)
		}
	}
}

// decodeItem decodes an item hash, given as a flat field/value list or a map.
func decodeItem(key string, reply any) (*store.Item, error) {
	f := map[string]string{}
	switch r := reply.(type) {
	case []any:
		for i := 0; i+1 < len(r); i += 2 {
			k, _ := r[i].(string)
			v, _ := r[i+1].(string)
			f[k] = v
		}
	case map[string]string:
		f = r
	}
	bad := func(err error) (*store.Item, error) {
		return nil, &store.CorruptError{Key: "outbox item " + key, Err: err}
	}
	var d itemData
	if err := json.Unmarshal([]byte(f["d"]), &d); err != nil {
		return bad(err)
	}
	it := &store.Item{ID: d.ID, Queue: d.Queue, EnvelopeID: d.EnvelopeID, Payload: d.Payload, Holder: f["h"], LastError: f["e"]}
	var err error
	if it.Attempts, err = strconv.Atoi(f["a"]); err != nil {
		return bad(err)
	}
	if it.NotBefore, err = time.Parse(time.RFC3339Nano, f["nbt"]); err != nil {
		return bad(err)
	}
	if f["lut"] != "" {
		if it.LeaseUntil, err = time.Parse(time.RFC3339Nano, f["lut"]); err != nil {
			return bad(err)
		}
	}
	it.Since = it.NotBefore // stored by a version without Since (store.Item.Since)
	if f["st"] != "" {
		if it.Since, err = time.Parse(time.RFC3339Nano, f["st"]); err != nil {
			return bad(err)
		}
	}
	return it, nil
}

// asHolder runs the holder script for op and returns the item's stamp and
// queue.
func (s *Store) asHolder(ctx context.Context, it *store.Item, op string, args ...any) (stamp, queue string, err error) {
	key := itemKey(it.EnvelopeID, it.ID)
	args = append([]any{it.Holder, it.Attempts, op}, args...)
	res, err := holderScript.Run(ctx, s.c, []string{key}, args...).Slice()
	if err != nil {
		return "", "", corruptReply(err, "outbox item "+it.ID)
	}
	switch res[0] {
	case "ok":
		stamp, _ = res[1].(string)
		data, _ := res[2].(string)
		var d itemData
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			return "", "", &store.CorruptError{Key: "outbox item " + key, Err: err}
		}
		return stamp, d.Queue, nil
	case "gone":
		return "", "", fmt.Errorf("outbox item %s: %w (the item is gone)", it.ID, store.ErrLeaseLost)
	case "buried":
		return "", "", fmt.Errorf("outbox item %s: %w (the item is buried)", it.ID, store.ErrLeaseLost)
	case "lost":
		return "", "", fmt.Errorf("outbox item %s: %w (claim %v by %q)", it.ID, store.ErrLeaseLost, res[2], res[1])
	}
	return "", "", fmt.Errorf("redis store: outbox item %s: unexpected script reply %v", it.ID, res)
}

// Ack implements store.Store.
func (s *Store) Ack(ctx context.Context, it *store.Item) error {
	if err := check.Held(it); err != nil {
		return err
	}
	stamp, queue, err := s.asHolder(ctx, it, "ack")
	if err != nil {
		return err
	}
	m := member(itemKey(it.EnvelopeID, it.ID), stamp)
	pipe := s.c.Pipeline()
	pipe.ZRem(ctx, readyKey(queue), m)   // else removed by a claimer
	pipe.ZRem(ctx, heldKey(queue), m)    // else removed by QueueStats
	pipe.ZRem(ctx, pendingKey(queue), m) // else removed by QueueStats
	_, _ = pipe.Exec(ctx)
	return nil
}

// Retry implements store.Store.
func (s *Store) Retry(ctx context.Context, it *store.Item, at time.Time, lastError string) error {
	if err := check.Held(it); err != nil {
		return err
	}
	stamp, queue, err := s.asHolder(ctx, it, "retry", micros(at), at.Format(time.RFC3339Nano), lastError)
	if err != nil {
		return err
	}
	m := member(itemKey(it.EnvelopeID, it.ID), stamp)
	pipe := s.c.Pipeline()
	pipe.ZAdd(ctx, readyKey(queue), redis.Z{Score: float64(at.UnixMicro()), Member: m})
	pipe.ZRem(ctx, heldKey(queue), m) // else dropped at the item's next claim and release
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	if !at.After(time.Now()) {
		s.publish(ctx, queue)
	}
	return nil
}

// Bury implements store.Store.
func (s *Store) Bury(ctx context.Context, it *store.Item, reason string) error {
	if err := check.Held(it); err != nil {
		return err
	}
	key := itemKey(it.EnvelopeID, it.ID)
	dead := member(key, newStamp())
	if err := s.c.ZAdd(ctx, buriedKey(it.Queue), redis.Z{Score: float64(time.Now().UnixMicro()), Member: dead}).Err(); err != nil {
		return err
	}
	_, deadStamp, _ := splitMember(dead)
	stamp, queue, err := s.asHolder(ctx, it, "bury", deadStamp, reason)
	if err != nil {
		s.c.ZRem(ctx, buriedKey(it.Queue), dead)
		return err
	}
	pipe := s.c.Pipeline()
	pipe.ZRem(ctx, readyKey(queue), member(key, stamp))
	pipe.ZRem(ctx, heldKey(queue), member(key, stamp))
	pipe.ZRem(ctx, pendingKey(queue), member(key, stamp))
	_, _ = pipe.Exec(ctx) // else removed by a claimer and by QueueStats
	return nil
}

// Extend implements store.Store.
func (s *Store) Extend(ctx context.Context, it *store.Item, now time.Time, lease time.Duration) error {
	if err := check.Extend(it, lease); err != nil {
		return err
	}
	until := now.Add(lease)
	stamp, queue, err := s.asHolder(ctx, it, "extend", micros(until), until.Format(time.RFC3339Nano))
	if err != nil {
		return err
	}
	it.LeaseUntil = until
	// Due again when the new lease ends. Should this fail, the entry stays
	// scored at the old lease end and claimers skip the item until the new
	// one ends.
	m := member(itemKey(it.EnvelopeID, it.ID), stamp)
	s.c.ZAddXX(ctx, readyKey(queue), redis.Z{Score: float64(until.UnixMicro()), Member: m})
	return nil
}

// Buried implements store.Store.
func (s *Store) Buried(ctx context.Context, queue string) ([]store.Item, error) {
	index := buriedKey(queue)
	members, err := s.c.ZRange(ctx, index, 0, -1).Result()
	if err != nil {
		return nil, err
	}
	hashes, err := s.itemHashes(ctx, members)
	if err != nil {
		return nil, err
	}
	var dead []store.Item
	for i, m := range members {
		key, stamp, _ := splitMember(m)
		f := hashes[i]
		if f["b"] != "1" || f["bm"] != stamp {
			if stale(stamp) {
				s.c.ZRem(ctx, index, m)
			}
			continue
		}
		it, err := decodeItem(key, f)
		if err != nil {
			return nil, err
		}
		dead = append(dead, *it)
	}
	return dead, nil
}

// heldScan is how many entries of the held index QueueStats reads at a time.
const heldScan = 100

// QueueStats implements store.Store. It costs two round trips while fewer
// than heldScan items are held: one pipeline of ZCARD and ZCOUNT (O(log n))
// on the queue's indexes, that reads the first claimBatch due entries, the
// first claimBatch pending entries and the held index too; then one
// pipeline of HGETALL, one per entry read, to check each against its item.
// The held index holds the items being worked on (one per busy worker), so
// that is a bounded read; past heldScan entries it is read heldScan at a
// time. The pending entries are read further only while a page holds
// pointers to nothing (a crash's leftovers).
//
// Counts come from the indexes, so the pointers a crash leaves behind
// (package doc) are counted until a claimer removes them; QueueStats
// removes the held entries of items that are gone or buried, and the
// pending entries that point at nothing once they are stale.
func (s *Store) QueueStats(ctx context.Context, queue string, now time.Time) (store.QueueStats, error) {
	var stats store.QueueStats
	if err := check.Queue(queue); err != nil {
		return stats, err
	}
	pipe := s.c.Pipeline()
	queued := pipe.ZCard(ctx, readyKey(queue))
	due := pipe.ZCount(ctx, readyKey(queue), "-inf", micros(now))
	dead := pipe.ZCard(ctx, buriedKey(queue))
	first := pipe.ZRangeByScore(ctx, readyKey(queue), &redis.ZRangeBy{Min: "-inf", Max: micros(now), Count: claimBatch})
	firstPending := pipe.ZRangeByScore(ctx, pendingKey(queue), &redis.ZRangeBy{Min: "-inf", Max: micros(now), Count: claimBatch})
	heldPage := pipe.ZRange(ctx, heldKey(queue), 0, heldScan-1)
	if _, err := pipe.Exec(ctx); err != nil {
		return stats, err
	}
	stats.Due, stats.Buried = int(due.Val()), int(dead.Val())
	firstDue, pendingPage, held := first.Val(), firstPending.Val(), heldPage.Val()
	items, err := s.indexedItems(ctx, slices.Concat(firstDue, pendingPage, held))
	if err != nil {
		return stats, err
	}
	stats.OldestPending, err = s.oldestPending(ctx, queue, now, pendingPage, items[len(firstDue):len(firstDue)+len(pendingPage)])
	if err != nil {
		return stats, err
	}
	oldest := func(nb time.Time) {
		if stats.OldestDue.IsZero() || nb.Before(stats.OldestDue) {
			stats.OldestDue = nb
		}
	}
	// The oldest due item not held is among the first due entries, as
	// their score is the NotBefore of the items not held (the held ones
	// are in the held index).
	for _, it := range items[:len(firstDue)] {
		if it != nil && it.Holder == "" {
			oldest(it.NotBefore)
			break
		}
	}
	for offset := int64(0); ; {
		var drop []any
		for i, it := range items[len(items)-len(held):] {
			switch {
			case it == nil:
				drop = append(drop, held[i])
			case it.Holder != "":
				// Held, by a live lease or by one that expired (then due).
				oldest(it.NotBefore)
				if it.LeaseUntil.After(now) {
					stats.Held++
				}
			}
		}
		if len(drop) > 0 {
			s.c.ZRem(ctx, heldKey(queue), drop...)
		}
		if len(held) < heldScan {
			break
		}
		offset += int64(len(held) - len(drop))
		if held, err = s.c.ZRange(ctx, heldKey(queue), offset, offset+heldScan-1).Result(); err != nil {
			return stats, err
		}
		if items, err = s.indexedItems(ctx, held); err != nil {
			return stats, err
		}
	}
	stats.Waiting = int(queued.Val()) - stats.Held
	return stats, nil
}

// oldestPending returns the smallest Since not after now among the items
// of a page of the queue's pending entries (items: nil where an entry
// points at nothing or at a buried item), or zero. The entries are in Since
// order, so the first page that holds a live item has it; pages are read
// further while they hold none, and stale pointers to nothing are removed.
func (s *Store) oldestPending(ctx context.Context, queue string, now time.Time, page []string, items []*store.Item) (time.Time, error) {
	index := pendingKey(queue)
	for offset := int64(0); ; {
		var oldest time.Time
		var drop []any
		for i, it := range items {
			switch {
			case it == nil:
				if _, stamp, _ := splitMember(page[i]); stale(stamp) {
					drop = append(drop, page[i])
				}
			// Scores are in microseconds: the entry of an item pending
			// from a fraction of a microsecond after now is read too.
			case !it.Since.After(now) && (oldest.IsZero() || it.Since.Before(oldest)):
				oldest = it.Since
			}
		}
		if len(drop) > 0 {
			s.c.ZRem(ctx, index, drop...)
		}
		if !oldest.IsZero() || len(page) < claimBatch {
			return oldest, nil
		}
		offset += int64(len(page) - len(drop))
		var err error
		if page, err = s.c.ZRangeByScore(ctx, index, &redis.ZRangeBy{Min: "-inf", Max: micros(now), Offset: offset, Count: claimBatch}).Result(); err != nil {
			return time.Time{}, err
		}
		if items, err = s.indexedItems(ctx, page); err != nil {
			return time.Time{}, err
		}
	}
}

// indexedItems reads the items that index members point at: nil for a
// pointer to an item that is gone, replaced (another stamp) or buried.
// QueueStats reads the first entries of several indexes, which often name
// the same items: each member is read and decoded once, and members that
// repeat share the decoded item.
func (s *Store) indexedItems(ctx context.Context, members []string) ([]*store.Item, error) {
	distinct := slices.Compact(slices.Sorted(slices.Values(members)))
	hashes, err := s.itemHashes(ctx, distinct)
	if err != nil {
		return nil, err
	}
	byMember := make(map[string]*store.Item, len(distinct))
	for i, m := range distinct {
		key, stamp, _ := splitMember(m)
		f := hashes[i]
		if f["g"] != stamp || f["b"] == "1" {
			continue
		}
		if byMember[m], err = decodeItem(key, f); err != nil {
			return nil, err
		}
	}
	items := make([]*store.Item, len(members))
	for i, m := range members {
		items[i] = byMember[m]
	}
	return items, nil
}

// itemHashes reads, in one pipeline, the item hashes that index members
// point at: an empty map for an item that is gone.
func (s *Store) itemHashes(ctx context.Context, members []string) ([]map[string]string, error) {
	if len(members) == 0 {
		return nil, nil
	}
	pipe := s.c.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(members))
	for i, m := range members {
		key, _, _ := splitMember(m)
		cmds[i] = pipe.HGetAll(ctx, key)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	hashes := make([]map[string]string, len(members))
	for i, cmd := range cmds {
		hashes[i] = cmd.Val()
	}
	return hashes, nil
}

// wakeChannel is the pub/sub channel of a queue's wake-ups.
func wakeChannel(queue string) string { return prefix + "wake:" + esc(queue) }

// publishDue wakes the queues of the items due now.
func (s *Store) publishDue(ctx context.Context, items []store.Item) {
	for _, q := range wake.DueQueues(items, time.Now()) {
		s.publish(ctx, q)
	}
}

// publish wakes the subscribers of queue. A wake-up that fails to go out
// is only a delay: workers still poll.
func (s *Store) publish(ctx context.Context, queue string) {
	s.c.Publish(ctx, wakeChannel(queue), "")
}

// subscribeTimeout bounds the wait for Redis to confirm a subscription.
const subscribeTimeout = 5 * time.Second

// Wakeups implements store.Store with Redis pub/sub: PUBLISH reaches the
// subscribers of every process connected to the server (on a Cluster, the
// cluster bus carries it to every node). Each call holds one connection,
// subscribed to the queue's channel, until ctx ends. It returns once Redis
// confirms the subscription (or after subscribeTimeout, the subscription
// then being retried in the background), so that a write made after it
// returns wakes the channel. When go-redis resubscribes after a dropped
// connection, the channel receives a value: what was published meanwhile
// is lost.
func (s *Store) Wakeups(ctx context.Context, queue string) <-chan struct{} {
	ch := make(chan struct{}, 1)
	ps := s.c.Subscribe(ctx, wakeChannel(queue))
	confirm, cancel := context.WithTimeout(ctx, subscribeTimeout)
	_, _ = ps.ReceiveTimeout(confirm, subscribeTimeout)
	cancel()
	msgs := ps.ChannelWithSubscriptions(redis.WithChannelSize(1))
	context.AfterFunc(ctx, func() { ps.Close() })
	go func() {
		defer close(ch)
		for range msgs { // a message, or a new subscription after a reconnection
			wake.Send(ch)
		}
	}()
	return ch
}
