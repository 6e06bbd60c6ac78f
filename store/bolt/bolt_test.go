package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/parapheur/parapheur/store"
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
		k := chunkKey(meta.Upload, 1)
		b := append([]byte(nil), get(tx, chunks, k)...)
		if len(b) == 0 {
			return errors.New("no second chunk")
		}
		b[len(b)/2] ^= 1
		return put(tx, chunks, k, b)
	})
}

// StoredChunks implements storetest.Hooks.
func (s *Store) StoredChunks(ctx context.Context) (n int, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(chunks).Stats().KeyN
		return nil
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
		upload := newUploadID()
		for i := range 3 {
			if err := put(tx, chunks, chunkKey(upload, i), []byte("partial")); err != nil {
				return err
			}
		}
		return put(tx, uploads, []byte(upload), present)
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
