package bolt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/internal/chunked"
	"github.com/parapheur/parapheur/store/storetest"
)

// The storetest hooks, on *Store in test builds only.

// CorruptEnvelope implements storetest.Hooks.
func (s *Store) CorruptEnvelope(ctx context.Context, id string) error {
	return s.db.Update(func(tx *bbolt.Tx) error { return put(tx, envelopes, []byte(id), []byte("\xff{not json")) })
}

// CorruptAudit implements storetest.Hooks.
func (s *Store) CorruptAudit(ctx context.Context, envelopeID string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket(audits).Cursor().Seek(compose(envelopeID))
		if k == nil {
			return errors.New("no audit record")
		}
		return put(tx, audits, append([]byte(nil), k...), []byte("{\"seq\":"))
	})
}

// CorruptBlob implements storetest.Hooks.
func (s *Store) CorruptBlob(ctx context.Context, sha256 string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		var meta struct{ Upload string }
		if err := json.Unmarshal(get(tx, blobs, []byte(sha256)), &meta); err != nil {
			return err
		}
		b := append([]byte(nil), getChunk(tx, meta.Upload, 1)...)
		if len(b) == 0 {
			return errors.New("no second chunk")
		}
		b[len(b)/2] ^= 1
		return tx.Bucket(chunks).Bucket(chunkKey(meta.Upload, 1)).Put(chunkValue, b)
	})
}

// StoredChunks implements storetest.Hooks.
func (s *Store) StoredChunks(ctx context.Context) (n int, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		// A chunk is a bucket, or a plain value in files written before
		// 7 December 2026: either is one key of the chunks bucket.
		return tx.Bucket(chunks).ForEach(func(_, _ []byte) error {
			n++
			return nil
		})
	})
	return n, err
}

// Share returns a second Store over the same bbolt handle, and the same
// wake-ups: bbolt locks the file for one process, so that is how one
// process shares it.
func (s *Store) Share(t *testing.T) store.Store {
	o, err := newStore(s.db, s.opts, false)
	if err != nil {
		t.Fatal(err)
	}
	o.wake = s.wake
	return o
}

func open(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(path, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "parapheur.db"))
	})
}

func TestDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parapheur.db")
	s := open(t, path)
	storetest.Durable(t, s, func(t *testing.T) store.Store {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return open(t, path)
	})
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		return open(b, filepath.Join(b.TempDir(), "parapheur.db"))
	})
}

// TestInUse opens the file twice: bbolt's lock makes the second Open fail
// with an error that says why, instead of waiting for ever.
func TestInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parapheur.db")
	open(t, path)
	if s, err := Open(path, store.Options{}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("second Open = %v, want an error saying the file is in use", err)
	}
}

// TestUnfinishedUpload leaves the chunks of an upload that a crash cut
// short, and checks that the next Open deletes them.
func TestUnfinishedUpload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parapheur.db")
	s := open(t, path)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		// One upload as this version writes it, one as files written
		// before 7 December 2026 hold it.
		upload, flat := newUploadID(), newUploadID()
		for i := range 3 {
			if err := putChunk(tx, upload, i, []byte("partial")); err != nil {
				return err
			}
			if err := put(tx, chunks, chunkKey(flat, i), []byte("partial")); err != nil {
				return err
			}
		}
		return errors.Join(put(tx, uploads, []byte(upload), present), put(tx, uploads, []byte(flat), present))
	})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := s.PutBlob(t.Context(), strings.NewReader("a finished blob stays"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	if n, err := s.StoredChunks(t.Context()); err != nil || n != 1 {
		t.Fatalf("after reopening: %d chunks (%v), want only the finished blob's one", n, err)
	}
	r, _, err := s.OpenBlob(t.Context(), kept.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || string(b) != "a finished blob stays" {
		t.Fatalf("finished blob after reopening: %q, %v", b, err)
	}
}

// commits is the ID of the last committed transaction: each commit adds 1.
func commits(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bbolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// concurrently runs writes at once, while another write is under way, and
// lets that write commit only once all of them are queued: they then share
// the next commit.
func concurrently(t *testing.T, s *Store, writes ...func()) {
	t.Helper()
	entered, release := make(chan struct{}), make(chan struct{})
	blocker := make(chan error)
	go func() {
		blocker <- s.update(t.Context(), func(*bbolt.Tx) error {
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	var wg sync.WaitGroup
	for _, w := range writes {
		wg.Go(w)
	}
	queued := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.queue)
	}
	for deadline := time.Now().Add(10 * time.Second); queued() != len(writes); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", queued(), len(writes))
		}
	}
	close(release)
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

// TestGroupCommit checks that concurrent writes share one commit (one
// fsync) instead of committing one by one.
func TestGroupCommit(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "parapheur.db"))
	const writers = 8
	writes := make([]func(), writers)
	for i := range writes {
		writes[i] = func() {
			if err := s.SetCursor(t.Context(), fmt.Sprint("cursor", i), []byte{byte(i)}); err != nil {
				t.Error(err)
			}
		}
	}
	before := commits(t, s)
	concurrently(t, s, writes...)
	if n := commits(t, s) - before; n != 2 {
		t.Errorf("a write and %d concurrent ones made %d commits, want 2", writers, n)
	}
	for i := range writers {
		if v, err := s.Cursor(t.Context(), fmt.Sprint("cursor", i)); err != nil || !bytes.Equal(v, []byte{byte(i)}) {
			t.Errorf("cursor%d = %v, %v; want [%d]", i, v, err, i)
		}
	}
}

// TestGroupCommitFailure puts a write that fails in a shared transaction:
// it fails alone, with its own error, and the others' writes and results
// stand although they ran twice.
func TestGroupCommitFailure(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "parapheur.db"))
	ctx := t.Context()
	now := time.Now()
	var (
		heldA, heldB       bool
		errA, errB, errBad error
		errCursor          error
	)
	concurrently(t, s,
		func() { heldA, errA = s.AcquireLease(ctx, "lease-a", "me", now, time.Minute) },
		func() { heldB, errB = s.AcquireLease(ctx, "lease-b", "me", now, time.Minute) },
		func() { errCursor = s.SetCursor(ctx, "cursor", []byte("value")) },
		func() {
			errBad = s.update(ctx, func(tx *bbolt.Tx) error {
				if err := put(tx, cursors, []byte("written by a failed write"), present); err != nil {
					return err
				}
				return errors.New("this write fails")
			})
		})
	if errA != nil || errB != nil || errCursor != nil || !heldA || !heldB {
		t.Fatalf("the writes beside the failing one: lease a %v, %v; lease b %v, %v; cursor %v", heldA, errA, heldB, errB, errCursor)
	}
	if errBad == nil || errBad.Error() != "this write fails" {
		t.Errorf("failing write returned %v, want its own error", errBad)
	}
	if v, err := s.Cursor(ctx, "written by a failed write"); err != nil || v != nil {
		t.Errorf("the failed write's put was kept: %v, %v", v, err)
	}
	if v, err := s.Cursor(ctx, "cursor"); err != nil || string(v) != "value" {
		t.Errorf("cursor = %q, %v; want \"value\"", v, err)
	}
	if held, err := s.AcquireLease(ctx, "lease-a", "another", now, time.Minute); err != nil || held {
		t.Errorf("lease a taken by another holder: %v, %v; want it still held", held, err)
	}
}

// TestPutBlobCommits checks that a blob of one chunk costs one commit (the
// chunk with its link), and one of two chunks two (the first chunk with the
// under-way mark, the second with the link).
func TestPutBlobCommits(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "parapheur.db"))
	for _, b := range []struct {
		data    string
		commits int
	}{{"one chunk", 1}, {strings.Repeat("x", chunked.Size), 1}, {strings.Repeat("y", chunked.Size+1), 2}} {
		before := commits(t, s)
		blob, err := s.PutBlob(t.Context(), strings.NewReader(b.data))
		if err != nil {
			t.Fatal(err)
		}
		if n := commits(t, s) - before; n != b.commits {
			t.Errorf("PutBlob of %d bytes made %d commits, want %d", len(b.data), n, b.commits)
		}
		r, _, err := s.OpenBlob(t.Context(), blob.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(r); err != nil || string(got) != b.data {
			t.Errorf("blob of %d bytes reads back as %d bytes, %v", len(b.data), len(got), err)
		}
	}
	var marks int
	err := s.db.View(func(tx *bbolt.Tx) error {
		marks = tx.Bucket(uploads).Stats().KeyN
		return nil
	})
	left, cerr := s.StoredChunks(t.Context())
	err = errors.Join(err, cerr)
	if err != nil || marks != 0 || left != 4 {
		t.Errorf("after the uploads: %d under-way marks and %d chunks (%v), want 0 and 4", marks, left, err)
	}
}

// TestItemWithoutSince plants an outbox item as a version without
// Item.Since stored it (no since field, no pending-index entry) for
// storetest.ItemWithoutSince; its Ack leaves no pending-index entry.
func TestItemWithoutSince(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "parapheur.db"))
	at := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	old := &storedItem{Item: store.Item{ID: "old", Queue: "mail", NotBefore: at}}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		data := fmt.Sprintf(`{"id":"old","queue":"mail","payload":null,"not_before":%q,"attempts":0}`, at.Format(time.RFC3339Nano))
		if err := put(tx, items, itemKey("", "old"), []byte(data)); err != nil {
			return err
		}
		return put(tx, ready, readyKey(old), present)
	})
	if err != nil {
		t.Fatal(err)
	}
	storetest.ItemWithoutSince(t, s, at)
	err = s.db.View(func(tx *bbolt.Tx) error {
		if n := tx.Bucket(pending).Stats().KeyN; n != 0 {
			return fmt.Errorf("%d pending-index entries left after the Ack", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitPanic: a write that panics in a shared transaction, which
// another writer's goroutine commits, fails with an error instead of
// bringing the process down, and the others' writes stand.
func TestGroupCommitPanic(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "parapheur.db"))
	ctx := t.Context()
	var errPanic, errCursor error
	concurrently(t, s,
		func() { errCursor = s.SetCursor(ctx, "cursor", []byte("value")) },
		func() { errPanic = s.update(ctx, func(*bbolt.Tx) error { panic("a bug") }) })
	if errPanic == nil || !strings.Contains(errPanic.Error(), "a bug") {
		t.Errorf("the panicking write returned %v, want an error naming the panic", errPanic)
	}
	if v, err := s.Cursor(ctx, "cursor"); errCursor != nil || err != nil || string(v) != "value" {
		t.Errorf("the write beside it: %v; cursor = %q, %v", errCursor, v, err)
	}
}

// TestFlatChunks reads a blob whose chunks are plain values of the chunks
// bucket, as files written before 7 December 2026 hold them.
func TestFlatChunks(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "parapheur.db"))
	data := strings.Repeat("an older document ", chunked.Size/9) // two chunks
	sum := sha256.Sum256([]byte(data))
	blob := store.Blob{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		upload := newUploadID()
		for i := 0; i*chunked.Size < len(data); i++ {
			if err := put(tx, chunks, chunkKey(upload, i), []byte(data[i*chunked.Size:min(len(data), (i+1)*chunked.Size)])); err != nil {
				return err
			}
		}
		return linkBlob(tx, blob, upload, 2)
	})
	if err != nil {
		t.Fatal(err)
	}
	r, got, err := s.OpenBlob(t.Context(), blob.SHA256)
	if err != nil || got != blob {
		t.Fatalf("OpenBlob of a blob in plain values: %+v, %v", got, err)
	}
	if b, err := io.ReadAll(r); err != nil || string(b) != data {
		t.Fatalf("blob in plain values reads back as %d bytes, %v; want %d", len(b), err, len(data))
	}
}

// TestChunkWritesAlone stores documents the size of a submission's, each
// in a commit of its own as the ingest of a slow mailbox does, and checks
// that a commit writes about the document's bytes: stored side by side, each
// new chunk rewrote its neighbours' leaf with it, twice to four times as much.
func TestChunkWritesAlone(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "parapheur.db"))
	const n, size = 40, 100 << 10
	st := s.db.Stats()
	before := st.TxStats.GetPageAlloc()
	for i := range n {
		doc := bytes.Repeat([]byte{byte(i), byte(i >> 8), 'x'}, size/3)
		if _, err := s.PutBlob(t.Context(), bytes.NewReader(doc)); err != nil {
			t.Fatal(err)
		}
	}
	st = s.db.Stats()
	written := st.TxStats.GetPageAlloc() - before
	if limit := int64(n * size * 3 / 2); written > limit {
		t.Errorf("%d documents of %d KiB made bbolt write %d KiB of pages, more than %d KiB", n, size>>10, written>>10, limit>>10)
	}
}
