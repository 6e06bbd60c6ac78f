// Package bolt is the embedded store backend, the default: the whole store
// in one bbolt file (go.etcd.io/bbolt, a copy-on-write B+tree with ACID
// transactions), with no server to run.
//
// Every call is atomic, and bbolt fsyncs the file on every commit, so a
// call that returned is on disk and a crash loses nothing it acknowledged;
// Create and Update put the envelope, its audit records, outbox items,
// idempotency keys and token index entries in one transaction. Concurrent
// writes share a commit (group commit): a lone write commits at once, and
// the writes that come while a commit is under way all share the next one,
// one fsync for them all instead of one each. (bbolt's own DB.Batch closes a
// batch after a fixed delay whether or not the file is free: on a disk whose
// fsync takes milliseconds, the writes that come during one commit would
// queue as many commits.) The one call that is not atomic is PutBlob, which
// commits each 1 MiB chunk on its own (so that a slow upload never holds the
// single writer lock for long) under a temporary upload ID, and links the
// blob under its SHA-256 with the last one; an upload cut short by a crash
// leaves chunks that the next Open deletes. A document of one chunk, as most
// are, takes one commit. Each chunk is a bucket of its own (see putChunk);
// files written by versions before 7 December 2026, which kept chunks as
// plain values, are read as they are, but those versions cannot read the
// documents stored since.
//
// bbolt locks the file for one process: a second process opening it waits
// then fails. The embedded store therefore serves a single gateway; several
// replicas share a store/redis store instead.
package bolt

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/internal/check"
	"github.com/parapheur/parapheur/store/internal/chunked"
	"github.com/parapheur/parapheur/store/internal/record"
	"github.com/parapheur/parapheur/store/internal/wake"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

// The buckets. Keys made of several strings are joined with compose, so
// that one envelope's (or queue's) keys share a prefix no other has.
var (
	envelopes = []byte("envelopes") // envelope ID → record.EncodeEnvelope
	listIndex = []byte("list")      // record.ListKey → envelope state
	audits    = []byte("audit")     // compose(envelope ID) + seq → record.EncodeAudit
	idemKeys  = []byte("keys")      // compose(envelope ID, key) → empty
	tokens    = []byte("tokens")    // token hash → record.EncodeToken
	items     = []byte("items")     // itemKey → storedItem
	ready     = []byte("ready")     // compose(queue) + timeKey(due) + itemKey → empty
	held      = []byte("held")      // heldKey of a claimed item → timeKey(lease end)
	buried    = []byte("buried")    // compose(queue) + timeKey(buried at) + itemKey → empty
	pending   = []byte("pending")   // pendingKey of an item not buried → empty
	leases    = []byte("leases")    // name → lease
	cursors   = []byte("cursors")   // name → value
	blobs     = []byte("blobs")     // hex SHA-256 → blobMeta
	chunks    = []byte("chunks")    // chunkKey → a bucket holding the chunk's bytes under chunkValue (see putChunk)
	uploads   = []byte("uploads")   // upload ID of an upload under way → empty
)

// present is the value of keys whose presence is the information: bbolt
// reads a nil value back as absent within the writing transaction.
var present = []byte{1}

// Store is the bbolt store. It is safe for concurrent use.
type Store struct {
	db    *bbolt.DB
	opts  store.Options
	owned bool // Close closes db
	wake  *wake.Hub

	mu sync.Mutex // guards the group commit's state
	// queue holds the writes waiting for the next commit.
	queue []*queuedWrite
	// committing is set while a goroutine commits the queued writes.
	committing bool
}

var _ store.Store = (*Store)(nil)

// lockTimeout is how long Open waits for another process to release the file.
const lockTimeout = 2 * time.Second

// ErrInUse is the error of Open when another process holds the file (bbolt
// locks it for the process that has it open), so that a command can tell
// the operator what to do.
var ErrInUse = errors.New("the file is in use by another process")

// Open opens or creates the store file at path. A file another process has
// open makes it fail after a short wait.
func Open(path string, opts store.Options) (*Store, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("bolt store %s: %w (the embedded store serves one process; use Redis for several replicas)", path, ErrInUse)
		}
		return nil, fmt.Errorf("bolt store %s: %w", path, err)
	}
	s, err := newStore(db, opts, true)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt store %s: %w", path, err)
	}
	// Only the process's first handle may drop unfinished uploads: no
	// upload can be under way yet.
	if err := s.dropUploads(); err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt store %s: deleting unfinished uploads: %w", path, err)
	}
	return s, nil
}

// newStore makes the buckets of db and returns a Store over it.
func newStore(db *bbolt.DB, opts store.Options, owned bool) (*Store, error) {
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{envelopes, listIndex, audits, idemKeys, tokens, items, ready, held, buried, pending, leases, cursors, blobs, chunks, uploads} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Store{db: db, opts: opts, owned: owned, wake: &wake.Hub{}}, nil
}

// Close closes the file.
func (s *Store) Close() error {
	if !s.owned {
		return nil
	}
	return s.db.Close()
}

// update runs f in a write transaction, if ctx is still live.
func (s *Store) update(ctx context.Context, f func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.write(f)
}

// write runs f in a write transaction and commits it: at once when no
// commit is under way, else in the next commit, which the writes that came
// meanwhile share (group commit: one fsync for them all, whatever a commit
// takes). The writer that finds no commit under way commits; the writes
// queued while it did are committed by another goroutine, so that it
// returns as soon as its own write is on disk. f may run more than once
// (see commitGroup), so it must have no effect outside tx but assignments
// that every run makes afresh.
func (s *Store) write(f func(tx *bbolt.Tx) error) error {
	w := &queuedWrite{f: f, done: make(chan error, 1)}
	s.mu.Lock()
	s.queue = append(s.queue, w)
	if s.committing {
		s.mu.Unlock()
		return <-w.done
	}
	s.committing = true
	s.mu.Unlock()
	s.commitQueued()
	if s.more() {
		go s.drain()
	}
	return <-w.done
}

// queuedWrite is a write waiting for its commit, and its outcome.
type queuedWrite struct {
	f    func(tx *bbolt.Tx) error
	done chan error
}

// maxGroup bounds the writes of one commit, as bbolt's DB.MaxBatchSize does.
const maxGroup = 1000

// commitQueued commits the writes queued so far, at most maxGroup, as one
// group.
func (s *Store) commitQueued() {
	s.mu.Lock()
	n := min(len(s.queue), maxGroup)
	group := s.queue[:n:n]
	s.queue = slices.Clone(s.queue[n:])
	s.mu.Unlock()
	s.commitGroup(group)
}

// more reports whether writes are queued, and ends the committing when none is.
func (s *Store) more() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		s.committing = false
		return false
	}
	return true
}

// drain commits the queued writes, a group at a time, until none is left.
func (s *Store) drain() {
	for {
		s.commitQueued()
		if !s.more() {
			return
		}
	}
}

// commitGroup runs the writes of group in one transaction. A write that fails
// is taken out and the transaction run again without it, since some of its
// puts may be in it; it then runs alone, once the others have committed, so
// that the error it returns is the one it meets on its own.
func (s *Store) commitGroup(group []*queuedWrite) {
	var alone []*queuedWrite
	for len(group) > 0 {
		failed := -1
		err := s.db.Update(func(tx *bbolt.Tx) error {
			for i, w := range group {
				if err := w.run(tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 && len(group) > 1 {
			alone = append(alone, group[failed])
			group = slices.Delete(group, failed, failed+1)
			continue
		}
		for _, w := range group {
			w.done <- err
		}
		break
	}
	for _, w := range alone {
		w.done <- s.db.Update(w.run)
	}
}

// run runs the write's f in tx. A panic is its error: it may happen on
// another writer's goroutine, which it must not bring down.
func (w *queuedWrite) run(tx *bbolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bolt store: a write panicked: %v", p)
		}
	}()
	return w.f(tx)
}

// view runs f in a read transaction, if ctx is still live.
func (s *Store) view(ctx context.Context, f func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(f)
}

// compose joins strings into a key, each preceded by its length, so that
// compose(a) is a prefix of compose(a, b) and of no compose(c) with c != a.
func compose(parts ...string) []byte {
	var k []byte
	for _, p := range parts {
		k = binary.AppendUvarint(k, uint64(len(p)))
		k = append(k, p...)
	}
	return k
}

// timeKey encodes t so that keys sort as times: seconds with the sign bit
// flipped, then nanoseconds, big-endian.
func timeKey(t time.Time) []byte {
	k := binary.BigEndian.AppendUint64(nil, uint64(t.Unix())^1<<63)
	return binary.BigEndian.AppendUint32(k, uint32(t.Nanosecond()))
}

const timeKeyLen = 12

func parseTimeKey(k []byte) time.Time {
	sec := int64(binary.BigEndian.Uint64(k) ^ 1<<63)
	return time.Unix(sec, int64(binary.BigEndian.Uint32(k[8:]))).UTC()
}

func put(tx *bbolt.Tx, bucket, k, v []byte) error {
	return tx.Bucket(bucket).Put(k, v)
}

func get(tx *bbolt.Tx, bucket, k []byte) []byte {
	return tx.Bucket(bucket).Get(k)
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, env *workflow.Envelope, w store.Writes) error {
	if err := check.Create(env, w); err != nil {
		return err
	}
	data, err := record.EncodeEnvelope(env, 1)
	if err != nil {
		return err
	}
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		if get(tx, envelopes, []byte(env.ID)) != nil {
			return fmt.Errorf("envelope %s: %w", env.ID, store.ErrExists)
		}
		if err := put(tx, listIndex, []byte(record.ListKey(env.CreatedAt, env.ID)), []byte(env.State)); err != nil {
			return err
		}
		return writeEnvelope(tx, env, data, w)
	})
	if err != nil {
		return err
	}
	env.Version = 1
	s.wake.Signal(wake.DueQueues(w.Items, time.Now())...)
	return nil
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, env *workflow.Envelope, w store.Writes) error {
	prev, err := check.Writes(env, w)
	if err != nil {
		return err
	}
	data, err := record.EncodeEnvelope(env, env.Version+1)
	if err != nil {
		return err
	}
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		old := get(tx, envelopes, []byte(env.ID))
		if old == nil {
			return fmt.Errorf("envelope %s: %w", env.ID, store.ErrNotFound)
		}
		stored, err := record.DecodeStamp(env.ID, old)
		if err != nil {
			return err
		}
		if stored.Version != env.Version {
			return fmt.Errorf("envelope %s: stored version %d, written version %d: %w", env.ID, stored.Version, env.Version, store.ErrConflict)
		}
		if head := check.NormalHead(stored.Audit); head != prev {
			return fmt.Errorf("%w: envelope %s: the audit records continue seq %d, but the stored trail ends at seq %d", store.ErrInvalid, env.ID, prev.Seq, head.Seq)
		}
		if err := put(tx, listIndex, []byte(record.ListKey(stored.CreatedAt, env.ID)), []byte(env.State)); err != nil {
			return err
		}
		return writeEnvelope(tx, env, data, w)
	})
	if err != nil {
		return err
	}
	env.Version++
	s.wake.Signal(wake.DueQueues(w.Items, time.Now())...)
	return nil
}

// writeEnvelope writes what Create and Update write but the list entry.
func writeEnvelope(tx *bbolt.Tx, env *workflow.Envelope, data []byte, w store.Writes) error {
	if err := put(tx, envelopes, []byte(env.ID), data); err != nil {
		return err
	}
	prefix := compose(env.ID)
	for _, r := range w.Audit {
		b, err := record.EncodeAudit(r)
		if err != nil {
			return err
		}
		if err := put(tx, audits, binary.BigEndian.AppendUint64(prefix, r.Seq), b); err != nil {
			return err
		}
	}
	for _, k := range w.Keys {
		if err := put(tx, idemKeys, compose(env.ID, k), present); err != nil {
			return err
		}
	}
	var err error
	record.Tokens(env, func(hash []byte, recipientID string) {
		if err == nil {
			err = put(tx, tokens, hash, record.EncodeToken(env.ID, recipientID))
		}
	})
	if err != nil {
		return err
	}
	return enqueue(tx, w.Items)
}

func getEnvelope(tx *bbolt.Tx, id string) (*workflow.Envelope, error) {
	data := get(tx, envelopes, []byte(id))
	if data == nil {
		return nil, fmt.Errorf("envelope %s: %w", id, store.ErrNotFound)
	}
	return record.DecodeEnvelope(id, data)
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (env *workflow.Envelope, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		env, err = getEnvelope(tx, id)
		return err
	})
	return env, err
}

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
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(listIndex).Cursor()
		k, state := c.First()
		if q.After != "" {
			k, state = c.Seek([]byte(q.After))
			if k != nil && string(k) == q.After {
				k, state = c.Next()
			}
		}
		var last string
		for ; k != nil; k, state = c.Next() {
			if q.State != "" && workflow.State(state) != q.State {
				continue
			}
			if len(page.Envelopes) == limit {
				page.Next = last
				break
			}
			env, err := getEnvelope(tx, record.ListKeyID(string(k)))
			if err != nil {
				return err
			}
			page.Envelopes = append(page.Envelopes, env)
			last = string(k)
		}
		return nil
	})
	if err != nil {
		return store.Page{}, err
	}
	return page, nil
}

// ByToken implements store.Store.
func (s *Store) ByToken(ctx context.Context, tokenHash []byte) (envelopeID, recipientID string, err error) {
	if err := check.TokenHash(tokenHash); err != nil {
		return "", "", err
	}
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		data := get(tx, tokens, tokenHash)
		if data == nil {
			return fmt.Errorf("token: %w", store.ErrNotFound)
		}
		t, err := record.DecodeToken(tokenHash, data)
		if err != nil {
			return err
		}
		env, err := getEnvelope(tx, t.Envelope)
		if err != nil {
			return err
		}
		if !record.HoldsToken(env, t.Recipient, tokenHash) {
			return fmt.Errorf("token: %w", store.ErrNotFound)
		}
		envelopeID, recipientID = t.Envelope, t.Recipient
		return nil
	})
	return envelopeID, recipientID, err
}

// AuditTrail implements store.Store.
func (s *Store) AuditTrail(ctx context.Context, envelopeID string) (recs []audit.Record, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		if get(tx, envelopes, []byte(envelopeID)) == nil {
			return fmt.Errorf("envelope %s: %w", envelopeID, store.ErrNotFound)
		}
		prefix := compose(envelopeID)
		c := tx.Bucket(audits).Cursor()
		for k, v := c.Seek(prefix); k != nil && len(k) == len(prefix)+8 && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
			r, err := record.DecodeAudit(envelopeID, len(recs)+1, v)
			if err != nil {
				return err
			}
			recs = append(recs, r)
		}
		return nil
	})
	return recs, err
}

// HasKey implements store.Store.
func (s *Store) HasKey(ctx context.Context, envelopeID, key string) (found bool, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		if get(tx, envelopes, []byte(envelopeID)) == nil {
			return fmt.Errorf("envelope %s: %w", envelopeID, store.ErrNotFound)
		}
		found = get(tx, idemKeys, compose(envelopeID, key)) != nil
		return nil
	})
	return found, err
}

// blobMeta links a blob's SHA-256 to the upload that holds its chunks.
type blobMeta struct {
	Upload string `json:"upload"`
	Size   int64  `json:"size"`
	Chunks int    `json:"chunks"`
}

func chunkKey(upload string, i int) []byte {
	return binary.BigEndian.AppendUint32([]byte(upload), uint32(i))
}

// chunkValue is the key of a chunk's bytes in its bucket.
var chunkValue = []byte{0}

// putChunk stores chunk i of upload in a bucket of its own. bbolt puts at
// least two values in a leaf page and rewrites a leaf whole when a key is
// added to it, so chunks stored as values side by side made each new chunk
// rewrite one or two of its neighbours with it: at ingest, four times the
// documents' bytes written at each commit (parapheur-bench ingest, bbolt's
// TxStats.PageAlloc). A bucket of its own has leaf pages of its own, and
// the chunks bucket's leaf gains a bucket header, some fifty bytes.
func putChunk(tx *bbolt.Tx, upload string, i int, chunk []byte) error {
	b, err := tx.Bucket(chunks).CreateBucket(chunkKey(upload, i))
	if err != nil {
		return err
	}
	return b.Put(chunkValue, chunk)
}

// getChunk returns chunk i of upload, or nil if it is missing. Files written
// by versions before 7 December 2026 hold chunks as plain values of the chunks bucket,
// which it reads too.
func getChunk(tx *bbolt.Tx, upload string, i int) []byte {
	k := chunkKey(upload, i)
	if b := tx.Bucket(chunks).Bucket(k); b != nil {
		return b.Get(chunkValue)
	}
	return get(tx, chunks, k)
}

// PutBlob implements store.Store.
func (s *Store) PutBlob(ctx context.Context, r io.Reader) (store.Blob, error) {
	upload := newUploadID()
	blob, n, err := chunked.Write(ctx, r, s.opts.Limit(), func(i int, chunk []byte, whole *store.Blob) error {
		return s.write(func(tx *bbolt.Tx) error {
			if whole != nil && get(tx, blobs, []byte(whole.SHA256)) != nil {
				return dropUpload(tx, upload) // the same bytes are stored already
			}
			if i == 0 && whole == nil { // the under-way mark comes with the first of several chunks, in its commit
				if err := put(tx, uploads, []byte(upload), present); err != nil {
					return err
				}
			}
			if err := putChunk(tx, upload, i, chunk); err != nil {
				return err
			}
			if whole == nil {
				return nil
			}
			return linkBlob(tx, *whole, upload, i+1) // with the last chunk, in its commit
		})
	})
	if err != nil {
		return store.Blob{}, errors.Join(err, s.write(func(tx *bbolt.Tx) error { return dropUpload(tx, upload) }))
	}
	if n == 0 { // no chunk to link the empty blob with
		err = s.write(func(tx *bbolt.Tx) error {
			if get(tx, blobs, []byte(blob.SHA256)) != nil {
				return nil
			}
			return linkBlob(tx, blob, upload, 0)
		})
		if err != nil {
			return store.Blob{}, err
		}
	}
	return blob, nil
}

// linkBlob records blob as stored in the chunks of upload, which is done.
func linkBlob(tx *bbolt.Tx, blob store.Blob, upload string, chunks int) error {
	meta, err := json.Marshal(blobMeta{Upload: upload, Size: blob.Size, Chunks: chunks})
	if err != nil {
		return err
	}
	if err := put(tx, blobs, []byte(blob.SHA256), meta); err != nil {
		return err
	}
	return tx.Bucket(uploads).Delete([]byte(upload))
}

func newUploadID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// dropUpload deletes an upload's chunks, in their buckets or (written by
// versions before 7 December 2026) plain values, and its under-way mark.
func dropUpload(tx *bbolt.Tx, upload string) error {
	b := tx.Bucket(chunks)
	c := b.Cursor()
	for k, v := c.Seek([]byte(upload)); k != nil && len(k) == len(upload)+4 && string(k[:len(upload)]) == upload; k, v = c.Seek([]byte(upload)) {
		var err error
		if v == nil {
			err = b.DeleteBucket(slices.Clone(k))
		} else {
			err = c.Delete()
		}
		if err != nil {
			return err
		}
	}
	return tx.Bucket(uploads).Delete([]byte(upload))
}

// dropUploads deletes the chunks of uploads a crash interrupted.
func (s *Store) dropUploads() error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		var ids []string
		err := tx.Bucket(uploads).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := dropUpload(tx, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// OpenBlob implements store.Store.
func (s *Store) OpenBlob(ctx context.Context, sha256 string) (io.ReadCloser, store.Blob, error) {
	sha256, err := check.SHA256(sha256)
	if err != nil {
		return nil, store.Blob{}, err
	}
	var meta blobMeta
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		data := get(tx, blobs, []byte(sha256))
		if data == nil {
			return fmt.Errorf("blob %s: %w", sha256, store.ErrNotFound)
		}
		if err := json.Unmarshal(data, &meta); err != nil {
			return &store.CorruptError{Key: "blob " + sha256, Err: err}
		}
		return nil
	})
	if err != nil {
		return nil, store.Blob{}, err
	}
	blob := store.Blob{SHA256: sha256, Size: meta.Size}
	return chunked.NewReader(blob, meta.Chunks, func(i int) (chunk []byte, err error) {
		err = s.db.View(func(tx *bbolt.Tx) error {
			if b := getChunk(tx, meta.Upload, i); b != nil {
				chunk = append([]byte(nil), b...) // b lives only as long as tx
			}
			return nil
		})
		return chunk, err
	}), blob, nil
}
