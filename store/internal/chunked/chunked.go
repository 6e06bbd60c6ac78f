// Package chunked moves blobs in and out of a backend in fixed-size chunks,
// hashing (SHA-256, FIPS 180-4) as the bytes pass, so that no backend holds a
// whole document in memory, a blob past the size limit is refused before its
// excess is stored, and a blob whose stored bytes no longer match their hash
// is reported rather than served.
package chunked

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/parapheur/parapheur/store"
)

// Size is the chunk size: large enough that a 64 MiB document is 64 writes,
// small enough that reading one costs one mebibyte of memory.
const Size = 1 << 20

// buffers holds chunk buffers between writes: a fresh mebibyte for each
// document, cleared by the runtime, would cost more than hashing a small one.
var buffers = sync.Pool{New: func() any { return new([Size]byte) }}

// chunkBuffer returns the buffer a write of r reads its chunks into, and
// what to call when the write is done with it. A reader that says how many
// bytes it holds (bytes.Reader, strings.Reader, bytes.Buffer), fewer than a
// chunk, gets a buffer of that size and one byte more (which meets the end
// at once, and keeps a buffer never empty, so that every read moves on): the
// writer holds its buffer until the chunk is committed, and a mebibyte held
// for each of the many small documents waiting on one commit (a batch of
// mail) would fill the heap.
func chunkBuffer(r io.Reader) ([]byte, func()) {
	if l, ok := r.(interface{ Len() int }); ok && l.Len() < Size {
		return make([]byte, l.Len()+1), func() {}
	}
	buf := buffers.Get().(*[Size]byte)
	return buf[:], func() { buffers.Put(buf) }
}

// Write reads r to its end and hands put the bytes chunk by chunk (index from
// 0; put must be done with the slice when it returns: it is reused), the last
// chunk with the whole blob, so that a backend can link the blob in the same
// step as its last chunk (a blob of one chunk in one write). It returns the
// blob and its chunk count; an empty stream hands put nothing. Past limit
// bytes it stops with store.ErrTooLarge before handing over the chunk that
// crosses the limit; the caller deletes what put stored.
func Write(ctx context.Context, r io.Reader, limit int64, put func(i int, chunk []byte, whole *store.Blob) error) (store.Blob, int, error) {
	h := sha256.New()
	buf, done := chunkBuffer(r)
	defer done()
	// One byte read ahead tells whether a full chunk is the last one.
	in := bufio.NewReaderSize(r, 16)
	var size int64
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return store.Blob{}, 0, err
		}
		k, err := io.ReadFull(in, buf)
		if err == nil {
			if _, perr := in.Peek(1); errors.Is(perr, io.EOF) {
				err = io.EOF
			}
		}
		last := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !last {
			return store.Blob{}, 0, fmt.Errorf("reading blob: %w", err)
		}
		if k > 0 {
			if size+int64(k) > limit {
				return store.Blob{}, 0, fmt.Errorf("%w: blob larger than the limit of %d bytes", store.ErrTooLarge, limit)
			}
			size += int64(k)
			h.Write(buf[:k])
			var whole *store.Blob
			if last {
				whole = &store.Blob{SHA256: hex.EncodeToString(h.Sum(nil)), Size: size}
			}
			if err := put(n, buf[:k], whole); err != nil {
				return store.Blob{}, 0, err
			}
			n++
		}
		if last {
			return store.Blob{SHA256: hex.EncodeToString(h.Sum(nil)), Size: size}, n, nil
		}
	}
}

// Reader streams a stored blob chunk by chunk and checks, at the end, that
// the bytes are the blob's: a changed or missing chunk ends the stream with a
// *store.CorruptError instead of io.EOF.
type Reader struct {
	blob   store.Blob
	chunks int
	get    func(i int) ([]byte, error)
	next   int
	buf    []byte
	read   int64
	h      hash.Hash
	err    error
}

// NewReader returns a Reader of blob, stored as chunks chunks; get returns
// chunk i, or nil if it is missing.
func NewReader(blob store.Blob, chunks int, get func(i int) ([]byte, error)) *Reader {
	return &Reader{blob: blob, chunks: chunks, get: get, h: sha256.New()}
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.next == r.chunks {
			r.err = r.verify()
			return 0, r.err
		}
		b, err := r.get(r.next)
		if err != nil {
			return 0, err
		}
		if b == nil {
			r.err = r.corrupt(fmt.Errorf("chunk %d of %d is missing", r.next+1, r.chunks))
			return 0, r.err
		}
		r.next++
		r.h.Write(b)
		r.read += int64(len(b))
		r.buf = b
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *Reader) verify() error {
	if r.read != r.blob.Size {
		return r.corrupt(fmt.Errorf("%d bytes stored, %d recorded", r.read, r.blob.Size))
	}
	if sum := hex.EncodeToString(r.h.Sum(nil)); sum != r.blob.SHA256 {
		return r.corrupt(fmt.Errorf("stored bytes hash to %s", sum))
	}
	return io.EOF
}

func (r *Reader) corrupt(err error) error {
	return &store.CorruptError{Key: "blob " + r.blob.SHA256, Err: err}
}

// Close implements io.Closer; a Reader holds nothing between reads.
func (r *Reader) Close() error { return nil }
