package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/internal/chunked"
	"github.com/parapheur/parapheur/store/storetest"
)

// The storetest hooks, on *Store in test builds only.

// CorruptEnvelope implements storetest.Hooks.
func (s *Store) CorruptEnvelope(ctx context.Context, id string) error {
	return s.c.HSet(ctx, envKey(id), "d", "\xff{not json").Err()
}

// CorruptAudit implements storetest.Hooks.
func (s *Store) CorruptAudit(ctx context.Context, envelopeID string) error {
	return s.c.LSet(ctx, auditKey(envelopeID), 0, `{"seq":`).Err()
}

// CorruptBlob implements storetest.Hooks.
func (s *Store) CorruptBlob(ctx context.Context, sha256 string) error {
	data, err := s.c.Get(ctx, blobKey(sha256)).Bytes()
	if err != nil {
		return err
	}
	var meta blobMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		return err
	}
	b, err := s.c.Get(ctx, chunkKey(meta.Upload, 1)).Bytes()
	if err != nil {
		return err
	}
	b[len(b)/2] ^= 1
	return s.c.Set(ctx, chunkKey(meta.Upload, 1), b, 0).Err()
}

// StoredChunks implements storetest.Hooks.
func (s *Store) StoredChunks(ctx context.Context) (int, error) {
	count := func(ctx context.Context, c *redis.Client) (int, error) {
		n := 0
		iter := c.Scan(ctx, 0, prefix+"chunk:*", 1000).Iterator()
		for iter.Next(ctx) {
			n++
		}
		return n, iter.Err()
	}
	return onEachMaster(ctx, s.c, count)
}

// onEachMaster runs f on the server, or on every master of a cluster, and
// adds up the counts.
func onEachMaster(ctx context.Context, c redis.UniversalClient, f func(ctx context.Context, c *redis.Client) (int, error)) (int, error) {
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return f(ctx, c.(*redis.Client))
	}
	counts := make(chan int, 16)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := f(ctx, c)
		counts <- n
		return err
	})
	close(counts)
	total := 0
	for n := range counts {
		total += n
	}
	return total, err
}

// Share implements storetest.Hooks with a new client on the same database.
func (s *Store) Share(t *testing.T) store.Store {
	return connect(t, s.url, false)
}

// connect opens a Store on url, emptying the database first if flush is
// set, and closes it when tb ends.
func connect(tb testing.TB, url string, flush bool) *Store {
	tb.Helper()
	s, err := Open(context.Background(), url, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	if flush {
		_, err := onEachMaster(context.Background(), s.c, func(ctx context.Context, c *redis.Client) (int, error) {
			return 0, c.FlushAll(ctx).Err()
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

// clusterURL is the cluster's URL in this package's form.
func clusterURL(c *testrig.RedisClusterNodes) string {
	return "redis-cluster" + strings.TrimPrefix(c.URL(), "redis")
}

func TestStandalone(t *testing.T) {
	srv := testrig.Redis(t)
	storetest.Run(t, func(t *testing.T) store.Store { return connect(t, srv.URL(), true) })
}

func TestCluster(t *testing.T) {
	c := testrig.RedisCluster(t, 3)
	storetest.Run(t, func(t *testing.T) store.Store { return connect(t, clusterURL(c), true) })
}

// TestSentinel runs the suite through a sentinel, as a Sentinel deployment
// connects: go-redis asks the sentinel for the master, for commands and for
// the wake-up subscriptions alike.
func TestSentinel(t *testing.T) {
	master := testrig.Redis(t)
	sentinel := testrig.RedisSentinel(t, master)
	url := "redis-sentinel://" + sentinel.Addr() + "/0?master_name=" + testrig.SentinelMaster
	storetest.Run(t, func(t *testing.T) store.Store { return connect(t, url, true) })
}

func TestDurable(t *testing.T) {
	srv := testrig.Redis(t)
	s := connect(t, srv.URL(), true)
	storetest.Durable(t, s, func(t *testing.T) store.Store {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		return connect(t, srv.URL(), false)
	})
}

// TestStalePointers plants due-time pointers to items that do not exist, as
// a writer that died between its index write and its atomic write leaves
// them: Claim skips them, removes the old one and keeps the recent one,
// whose writer may still be on its way.
func TestStalePointers(t *testing.T) {
	srv := testrig.Redis(t)
	s := connect(t, srv.URL(), true)
	ctx := t.Context()
	old := member(itemKey("E1", "lost"), "1-00")
	recent := member(itemKey("E1", "coming"), newStamp())
	for _, m := range []string{old, recent} {
		if err := s.c.ZAdd(ctx, readyKey("mail"), redis.Z{Score: 0, Member: m}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	if err := s.Enqueue(ctx, store.Item{ID: "real", Queue: "mail", NotBefore: at}); err != nil {
		t.Fatal(err)
	}
	it, err := s.Claim(ctx, "mail", "w", at, time.Minute)
	if err != nil || it.ID != "real" {
		t.Fatalf("Claim = %+v, %v; want the real item", it, err)
	}
	members, err := s.c.ZRange(ctx, readyKey("mail"), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 2 || members[0] != recent || !strings.HasPrefix(members[1], itemKey("", "real")+"|") {
		t.Fatalf("ready index after Claim: %q; want the recent pointer, then the real item's", members)
	}
}

// TestWakeupsReconnect drops the subscriber's connection, as a network
// failure or a failover does: the channel receives a value once go-redis
// has subscribed again (what was published meanwhile is lost), and later
// writes wake it again.
func TestWakeupsReconnect(t *testing.T) {
	srv := testrig.Redis(t)
	s := connect(t, srv.URL(), true)
	ctx := t.Context()
	ch := s.Wakeups(ctx, "mail")
	if err := s.c.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	storetest.Woken(t, ch, "resubscription")
	if err := s.Enqueue(ctx, store.Item{ID: "m", Queue: "mail", NotBefore: time.Now()}); err != nil {
		t.Fatal(err)
	}
	storetest.Woken(t, ch, "Enqueue after the resubscription")
}

// deadAndLive returns a store on a new server whose queue "mail" holds a
// buried item "dead", due at the returned time, and a live item "live",
// due a second later.
func deadAndLive(t *testing.T) (*Store, time.Time) {
	t.Helper()
	srv := testrig.Redis(t)
	s := connect(t, srv.URL(), true)
	ctx := t.Context()
	at := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	if err := s.Enqueue(ctx, store.Item{ID: "dead", Queue: "mail", NotBefore: at}, store.Item{ID: "live", Queue: "mail", NotBefore: at.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	dead, err := s.Claim(ctx, "mail", "w", at, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Bury(ctx, dead, "550 no such user"); err != nil {
		t.Fatal(err)
	}
	return s, at
}

// TestHeldLeftovers plants held-index entries such as a client that died
// after an Ack or Bury script leaves: QueueStats does not count them and
// removes them.
func TestHeldLeftovers(t *testing.T) {
	s, at := deadAndLive(t)
	ctx := t.Context()
	live, err := s.Claim(ctx, "mail", "w", at.Add(time.Second), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	deadMember, err := s.c.ZRange(ctx, buriedKey("mail"), 0, 0).Result()
	if err != nil || len(deadMember) != 1 {
		t.Fatalf("dead letters: %q, %v", deadMember, err)
	}
	liveMember, err := s.c.ZRange(ctx, heldKey("mail"), 0, -1).Result()
	if err != nil || len(liveMember) != 1 {
		t.Fatalf("held index: %q, %v", liveMember, err)
	}
	key, _, _ := splitMember(deadMember[0])
	var stamp string
	if stamp, err = s.c.HGet(ctx, key, "g").Result(); err != nil {
		t.Fatal(err)
	}
	gone := member(itemKey("", "acked"), newStamp())
	buried := member(key, stamp)
	for _, m := range []string{gone, buried} {
		if err := s.c.ZAdd(ctx, heldKey("mail"), redis.Z{Score: 0, Member: m}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	stats, err := s.QueueStats(ctx, "mail", at.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if stats.Held != 1 || stats.Waiting != 0 || stats.Buried != 1 || !stats.OldestDue.Equal(live.NotBefore) {
		t.Fatalf("QueueStats = %+v, want only the live item held, since %v", stats, live.NotBefore)
	}
	members, err := s.c.ZRange(ctx, heldKey("mail"), 0, -1).Result()
	if err != nil || len(members) != 1 || members[0] != liveMember[0] {
		t.Fatalf("held index after QueueStats: %q, %v; want only %q", members, err, liveMember[0])
	}
}

func TestURLs(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"mysql://db/x", `scheme "mysql"`},
		{"redis://:s3cret@host:6379/zero", "invalid database number"},
		{"redis://host/0?pool_sise=3", "pool_sise"},
		{"redis-sentinel://:s3cret@host:26379/0", "master_name"},
		{"redis-cluster://host:1/?bogus=1", "bogus"},
		{"redis://host:6379/%zz", "invalid URL escape"},
	} {
		_, err := newClient(c.url)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("newClient(%s) = %v, want an error naming %q", c.url, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("newClient(%s) error shows the password: %v", c.url, err)
		}
	}
	for _, url := range []string{
		"redis://127.0.0.1:6379/2", "rediss://u:p@host:6380/0",
		"redis-sentinel://host:26379/0?master_name=mymaster&addr=host2:26379",
		"redis-cluster://host:7000?addr=host:7001&addr=host:7002",
	} {
		c, err := newClient(url)
		if err != nil {
			t.Errorf("newClient(%s): %v", url, err)
			continue
		}
		c.Close()
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := Open(ctx, "redis://127.0.0.1:1/0?max_retries=-1&dial_timeout=1s", store.Options{})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("Open of a closed port: %v", err)
	}
}

func BenchmarkStandalone(b *testing.B) {
	srv := testrig.Redis(b)
	storetest.Bench(b, func(b *testing.B) store.Store { return connect(b, srv.URL(), true) })
}

func BenchmarkCluster(b *testing.B) {
	c := testrig.RedisCluster(b, 3)
	storetest.Bench(b, func(b *testing.B) store.Store { return connect(b, clusterURL(c), true) })
}

// TestQueueStatsManyHeld holds more items than QueueStats reads of the held
// index at a time, with leftovers of items gone among them.
func TestQueueStatsManyHeld(t *testing.T) {
	srv := testrig.Redis(t)
	s := connect(t, srv.URL(), true)
	ctx := t.Context()
	at := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	const n, gone = 2*heldScan + 10, heldScan / 2
	items := make([]store.Item, n)
	for i := range items {
		items[i] = store.Item{ID: fmt.Sprint(i), Queue: "mail", NotBefore: at.Add(time.Duration(i) * time.Millisecond)}
	}
	if err := s.Enqueue(ctx, items...); err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := s.Claim(ctx, "mail", "w", at.Add(time.Second), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for i := range gone {
		m := member(itemKey("", fmt.Sprint("acked", i)), newStamp())
		if err := s.c.ZAdd(ctx, heldKey("mail"), redis.Z{Score: float64(i), Member: m}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	stats, err := s.QueueStats(ctx, "mail", at.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if stats.Held != n || stats.Waiting != 0 || stats.Due != 0 || !stats.OldestDue.Equal(at) {
		t.Fatalf("QueueStats = %+v, want %d held since %v", stats, n, at)
	}
	if left, err := s.c.ZCard(ctx, heldKey("mail")).Result(); err != nil || left != n {
		t.Fatalf("held index after QueueStats: %d entries (%v), want %d", left, err, n)
	}
}

// TestItemsWithoutSince plants outbox items as a version without
// Item.Since stored them (no st field, no pending entry): one queued, for
// storetest.ItemWithoutSince, and one held by that version's worker, which
// a retry gives the Since it read with before the retry.
func TestItemsWithoutSince(t *testing.T) {
	srv := testrig.Redis(t)
	s := connect(t, srv.URL(), true)
	ctx := t.Context()
	at := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	lease := at.Add(time.Minute)
	for _, it := range []struct {
		id     string
		fields []any
	}{
		{"old", nil},
		{"held", []any{"a", "1", "h", "w0", "lu", micros(lease), "lut", lease.Format(time.RFC3339Nano)}},
	} {
		key, stamp := itemKey("", it.id), newStamp()
		d := fmt.Sprintf(`{"id":%q,"queue":"mail","payload":null}`, it.id)
		fields := append([]any{"g", stamp, "nb", micros(at), "nbt", at.Format(time.RFC3339Nano), "d", d, "a", "0"}, it.fields...)
		if err := s.c.HSet(ctx, key, fields...).Err(); err != nil {
			t.Fatal(err)
		}
		due := at
		if it.fields != nil {
			due = lease
		}
		if err := s.c.ZAdd(ctx, readyKey("mail"), redis.Z{Score: float64(due.UnixMicro()), Member: member(key, stamp)}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// The held item is given back first, due after what the suite does.
	held := &store.Item{ID: "held", Queue: "mail", Holder: "w0", Attempts: 1}
	if err := s.Retry(ctx, held, at.Add(2*time.Hour), "451 later"); err != nil {
		t.Fatal(err)
	}
	storetest.ItemWithoutSince(t, s, at)
	it, err := s.Claim(ctx, "mail", "w", at.Add(2*time.Hour), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if it.ID != "held" || !it.Since.Equal(at) {
		t.Fatalf("Claim after the Retry of the held item: %s Since %v, want held Since %v", it.ID, it.Since, at)
	}
}

// TestPendingLeftovers plants pending-index entries such as a client that
// died leaves them: pointers to nothing (stale and recent, more than a
// page of them) and to a buried item, all scored before the live item.
// QueueStats counts none of them, reads past them to the live item, and
// removes the stale pointers only.
func TestPendingLeftovers(t *testing.T) {
	s, at := deadAndLive(t)
	ctx := t.Context()
	stamp, err := s.c.HGet(ctx, itemKey("", "dead"), "g").Result()
	if err != nil {
		t.Fatal(err)
	}
	stalePointer := member(itemKey("", "lost"), "1-00")
	planted := []string{member(itemKey("", "dead"), stamp), stalePointer}
	for i := range claimBatch {
		planted = append(planted, member(itemKey("", fmt.Sprint("coming", i)), newStamp()))
	}
	for i, m := range planted {
		if err := s.c.ZAdd(ctx, pendingKey("mail"), redis.Z{Score: float64(at.UnixMicro() + int64(i)), Member: m}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	stats, err := s.QueueStats(ctx, "mail", at.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !stats.OldestPending.Equal(at.Add(time.Second)) || stats.Buried != 1 {
		t.Fatalf("QueueStats = %+v, want only the live item pending, since %v", stats, at.Add(time.Second))
	}
	members, err := s.c.ZRange(ctx, pendingKey("mail"), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	// All planted but the stale pointer (the buried item's is fresh: its
	// stamp is its enqueue's), and the live item's.
	if want := len(planted); len(members) != want || slices.Contains(members, stalePointer) {
		t.Fatalf("pending index after QueueStats: %d entries %q; want %d, the stale pointer removed", len(members), members, want)
	}
}

// roundTrips counts the commands and pipelines a client sends, but for the
// handshake of its new connections.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "hello" { // a new connection's handshake
			r.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if cmds[0].Name() != "client" { // a new connection's handshake (CLIENT SETINFO)
			r.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// TestPutBlobRoundTrips checks that a blob of one chunk costs two round trips
// (the chunk, stored for good, then the link) and one of two chunks three
// (the first chunk, with an expiry; the last, with the first made permanent;
// the link), and that no chunk of a linked blob keeps an expiry.
func TestPutBlobRoundTrips(t *testing.T) {
	s := connect(t, testrig.Redis(t).URL(), true)
	var trips roundTrips
	s.c.AddHook(&trips)
	for _, b := range []struct {
		data  string
		trips int64
	}{{"one chunk", 2}, {strings.Repeat("x", chunked.Size+1), 3}} {
		before := trips.n.Load()
		blob, err := s.PutBlob(t.Context(), strings.NewReader(b.data))
		if err != nil {
			t.Fatal(err)
		}
		if n := trips.n.Load() - before; n != b.trips {
			t.Errorf("PutBlob of %d bytes made %d round trips, want %d", len(b.data), n, b.trips)
		}
		data, err := s.c.Get(t.Context(), blobKey(blob.SHA256)).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		var meta blobMeta
		if err := json.Unmarshal(data, &meta); err != nil {
			t.Fatal(err)
		}
		for i := range meta.Chunks {
			if ttl, err := s.c.TTL(t.Context(), chunkKey(meta.Upload, i)).Result(); err != nil || ttl != -1 {
				t.Errorf("chunk %d of the blob of %d bytes: TTL %v, %v; want none (-1)", i, len(b.data), ttl, err)
			}
		}
	}
}
