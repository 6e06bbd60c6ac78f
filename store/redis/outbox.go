package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/internal/check"
)

// pendingItem is an item about to be written, with the stamp of its pointer.
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
		out[i] = pendingItem{key: itemKey(it.EnvelopeID, it.ID), stamp: newStamp(), item: it, data: data}
	}
	return out, nil
}

func (p pendingItem) member() string { return member(p.key, p.stamp) }

// index adds the items' due-time pointers.
func (s *Store) index(ctx context.Context, pipe redis.Pipeliner, items []pendingItem) {
	for _, p := range items {
		pipe.ZAdd(ctx, readyKey(p.item.Queue), redis.Z{Score: float64(p.item.NotBefore.UnixMicro()), Member: p.member()})
	}
}

// unindex removes the pointers of items that were not written.
func (s *Store) unindex(ctx context.Context, pipe redis.Pipeliner, items []pendingItem) {
	for _, p := range items {
		pipe.ZRem(ctx, readyKey(p.item.Queue), p.member())
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
		args = append(args, p.stamp, micros(p.item.NotBefore), p.item.NotBefore.Format(time.RFC3339Nano), p.data)
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
				// Due again when the lease ends, should the holder die.
				s.c.ZAddXX(ctx, index, redis.Z{Score: float64(until.UnixMicro()), Member: m})
				return decodeItem(key, res[1])
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
	return it, nil
}

// release runs the release script for op and returns the item's stamp and
// queue.
func (s *Store) release(ctx context.Context, it *store.Item, op string, args ...any) (stamp, queue string, err error) {
	if err := check.Held(it); err != nil {
		return "", "", err
	}
	key := itemKey(it.EnvelopeID, it.ID)
	args = append([]any{it.Holder, it.Attempts, op}, args...)
	res, err := releaseScript.Run(ctx, s.c, []string{key}, args...).Slice()
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
	stamp, queue, err := s.release(ctx, it, "ack")
	if err != nil {
		return err
	}
	s.c.ZRem(ctx, readyKey(queue), member(itemKey(it.EnvelopeID, it.ID), stamp)) // else removed by a claimer
	return nil
}

// Retry implements store.Store.
func (s *Store) Retry(ctx context.Context, it *store.Item, at time.Time, lastError string) error {
	stamp, queue, err := s.release(ctx, it, "retry", micros(at), at.Format(time.RFC3339Nano), lastError)
	if err != nil {
		return err
	}
	return s.c.ZAdd(ctx, readyKey(queue), redis.Z{Score: float64(at.UnixMicro()), Member: member(itemKey(it.EnvelopeID, it.ID), stamp)}).Err()
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
	stamp, queue, err := s.release(ctx, it, "bury", deadStamp, reason)
	if err != nil {
		s.c.ZRem(ctx, buriedKey(it.Queue), dead)
		return err
	}
	s.c.ZRem(ctx, readyKey(queue), member(key, stamp))
	return nil
}

// Buried implements store.Store.
func (s *Store) Buried(ctx context.Context, queue string) ([]store.Item, error) {
	index := buriedKey(queue)
	members, err := s.c.ZRange(ctx, index, 0, -1).Result()
	if err != nil {
		return nil, err
	}
	pipe := s.c.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(members))
	for i, m := range members {
		key, _, _ := splitMember(m)
		cmds[i] = pipe.HGetAll(ctx, key)
	}
	if len(members) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	var dead []store.Item
	for i, m := range members {
		key, stamp, _ := splitMember(m)
		f := cmds[i].Val()
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
