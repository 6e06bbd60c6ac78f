package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/internal/check"
	"github.com/parapheur/parapheur/store/internal/chunked"
)

// uploadTTL is how long the chunks of an unfinished upload live: an upload
// cut short by a crash cleans up after itself.
const uploadTTL = 24 * time.Hour

func blobKey(sha256 string) string { return prefix + "blob:" + sha256 }

// chunkKey names chunk i of an upload; the upload's chunks share a slot, so
// that one DEL removes them.
func chunkKey(upload string, i int) string {
	return prefix + "chunk:{" + upload + "}:" + strconv.Itoa(i)
}

// blobMeta links a blob's SHA-256 to the upload that holds its chunks.
type blobMeta struct {
	Upload string `json:"upload"`
	Size   int64  `json:"size"`
	Chunks int    `json:"chunks"`
}

// PutBlob implements store.Store.
func (s *Store) PutBlob(ctx context.Context, r io.Reader) (store.Blob, error) {
	b := make([]byte, 16)
	rand.Read(b)
	upload := hex.EncodeToString(b)
	written := 0
	blob, n, err := chunked.Write(ctx, r, s.opts.Limit(), func(i int, chunk []byte, whole *store.Blob) error {
		written++
		if whole == nil {
			return s.c.Set(ctx, chunkKey(upload, i), chunk, uploadTTL).Err()
		}
		return s.persistChunks(ctx, upload, i, chunk)
	})
	if err != nil {
		return store.Blob{}, errors.Join(err, s.dropChunks(ctx, upload, written))
	}
	meta, err := json.Marshal(blobMeta{Upload: upload, Size: blob.Size, Chunks: n})
	if err != nil {
		return store.Blob{}, err
	}
	linked, err := s.c.SetNX(ctx, blobKey(blob.SHA256), meta, 0).Result()
	if err != nil {
		return store.Blob{}, errors.Join(err, s.dropChunks(ctx, upload, n))
	}
	if !linked { // the same bytes are stored already
		if err := s.dropChunks(ctx, upload, n); err != nil {
			return store.Blob{}, err
		}
	}
	return blob, nil
}

// persistChunks stores chunk last of an upload for good and makes the chunks
// before it, stored with an expiry, permanent too, in one round trip (the
// chunks of an upload share a slot): a linked blob must never lose a chunk to
// the expiry, so this comes before the link.
func (s *Store) persistChunks(ctx context.Context, upload string, last int, chunk []byte) error {
	pipe := s.c.Pipeline()
	pipe.Set(ctx, chunkKey(upload, last), chunk, 0)
	persisted := make([]*redis.BoolCmd, last)
	for i := range persisted {
		persisted[i] = pipe.Persist(ctx, chunkKey(upload, i))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	for i, p := range persisted {
		if !p.Val() {
			return fmt.Errorf("redis store: blob chunk %d expired before the upload ended (after %v)", i, uploadTTL)
		}
	}
	return nil
}

// dropChunks deletes the first n chunks of an upload, even once ctx is
// cancelled: a cancelled upload must not leave its chunks until they expire.
func (s *Store) dropChunks(ctx context.Context, upload string, n int) error {
	ctx = context.WithoutCancel(ctx)
	const batch = 64
	for from := 0; from < n; from += batch {
		keys := make([]string, 0, batch)
		for i := from; i < min(n, from+batch); i++ {
			keys = append(keys, chunkKey(upload, i))
		}
		if err := s.c.Del(ctx, keys...).Err(); err != nil {
			return fmt.Errorf("redis store: deleting chunks of upload %s: %w", upload, err)
		}
	}
	return nil
}

// OpenBlob implements store.Store.
func (s *Store) OpenBlob(ctx context.Context, sha256 string) (io.ReadCloser, store.Blob, error) {
	sha256, err := check.SHA256(sha256)
	if err != nil {
		return nil, store.Blob{}, err
	}
	data, err := s.c.Get(ctx, blobKey(sha256)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.Blob{}, fmt.Errorf("blob %s: %w", sha256, store.ErrNotFound)
	}
	if err != nil {
		return nil, store.Blob{}, corruptReply(err, "blob "+sha256)
	}
	var meta blobMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, store.Blob{}, &store.CorruptError{Key: "blob " + sha256, Err: err}
	}
	blob := store.Blob{SHA256: sha256, Size: meta.Size}
	return chunked.NewReader(blob, meta.Chunks, func(i int) ([]byte, error) {
		b, err := s.c.Get(ctx, chunkKey(meta.Upload, i)).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		return b, err
	}), blob, nil
}
