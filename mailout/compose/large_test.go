package compose

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
)

// bigSize is the attachment size of the large-mail test and benchmarks.
const bigSize = 20 << 20

// patternReader yields n bytes of a fixed pattern, so a 20 MB attachment
// exists nowhere in memory.
type patternReader struct{ n, off int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n-r.off)]
	for i := range p {
		x := r.off + int64(i)
		p[i] = byte(x ^ x>>8 ^ x>>16)
	}
	r.off += int64(len(p))
	return len(p), nil
}

func (r *patternReader) Close() error { return nil }

// bigFile is a streamed attachment of size bytes.
func bigFile(tb testing.TB, size int64) Attachment {
	tb.Helper()
	sum := sha256.New()
	if _, err := io.Copy(sum, &patternReader{n: size}); err != nil {
		tb.Fatal(err)
	}
	return Attachment{
		Name: "Dossier complet signé.pdf", ContentType: "application/pdf", Size: size,
		SHA256: hex.EncodeToString(sum.Sum(nil)),
		Open:   func() (io.ReadCloser, error) { return &patternReader{n: size}, nil },
	}
}

// bigMessage is a completion mail carrying one attachment of size bytes.
func bigMessage(tb testing.TB, size int64) *Message {
	m := samples("fr")[11].msg
	d := m.Data.(Completion)
	d.Files = []Attachment{bigFile(tb, size)}
	m.Data = d
	return m
}

// measure runs f and returns the bytes it allocated and the peak of the
// heap (live objects and garbage not yet swept), sampled every millisecond,
// above the heap before f.
func measure(f func()) (allocated, peak uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	var before, after runtime.MemStats
	runtime.GC()
	base := heap()
	runtime.ReadMemStats(&before)
	done, peaked := make(chan struct{}), make(chan uint64)
	go func() {
		top := base
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				peaked <- top - base
				return
			case <-tick.C:
				top = max(top, heap())
			}
		}
	}()
	f()
	close(done)
	peak = <-peaked
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, peak
}

// TestLargeAttachment composes a 20 MB completion, plain and DKIM-signed,
// checks that composing allocates a small fraction of the attachment, and
// reads the attachment back, intact, with go-message and Python.
func TestLargeAttachment(t *testing.T) {
	cfg := testConfig()
	cfg.AttachmentLimit = 1 << 30
	plain := newComposer(t, cfg)
	cfg.DKIM = testDKIM(t)
	signed := newComposer(t, cfg)
	m := bigMessage(t, bigSize)
	want := m.Data.(Completion).Files[0].SHA256
	dir := t.TempDir()
	for name, c := range map[string]*Composer{"plain": plain, "dkim": signed} {
		var err error
		allocated, peak := measure(func() { err = c.Compose(io.Discard, m) })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: a %d-byte attachment: %d bytes allocated, heap peak %d bytes above the start", name, bigSize, allocated, peak)
		// Holding the attachment would take at least its 20 MB (27 MB in
		// base64); streaming needs buffers of kilobytes. go-msgauth's
		// relaxed body canonicalizer allocates a fresh buffer per write,
		// so the DKIM path allocates several times the message in total,
		// all of it short-lived garbage (and -race adds allocations of
		// its own): the peak tells, the benchmarks report B/op.
		if peak > 12<<20 {
			t.Errorf("%s: the heap grew by %d bytes while composing a %d-byte attachment", name, peak, bigSize)
		}

		path := filepath.Join(dir, name+".eml")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Compose(f, m); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if got := streamedSum(t, f); got != want {
			t.Errorf("%s: go-message reads an attachment with SHA-256 %s, want %s", name, got, want)
		}
		f.Close()
	}
	for name, pm := range pythonParse(t, dir) {
		if len(pm.Attachments) != 1 || pm.Attachments[0].SHA256 != want || pm.Attachments[0].Size != bigSize {
			t.Errorf("%s: Python reads attachments %+v", name, pm.Attachments)
		}
		if len(pm.Defects) > 0 {
			t.Errorf("%s: Python found defects %v", name, pm.Defects)
		}
	}
}

// streamedSum returns the SHA-256 of the only attachment of the message r,
// hashing it as it is decoded.
func streamedSum(t *testing.T, r io.Reader) string {
	t.Helper()
	mr, err := mail.CreateReader(r)
	if err != nil {
		t.Fatal(err)
	}
	sum := ""
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return sum
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.Header.(*mail.AttachmentHeader); ok {
			h := sha256.New()
			if _, err := io.Copy(h, p.Body); err != nil {
				t.Fatal(err)
			}
			sum = hex.EncodeToString(h.Sum(nil))
		}
	}
}

// BenchmarkCompose20MB measures composing a completion mail with a 20 MB
// attachment; B/op shows that the attachment is streamed, not held.
func BenchmarkCompose20MB(b *testing.B) {
	cfg := testConfig()
	cfg.AttachmentLimit = 1 << 30
	benchmarkBig(b, cfg)
}

// BenchmarkCompose20MBDKIM is BenchmarkCompose20MB with DKIM signing, which
// composes the message twice.
func BenchmarkCompose20MBDKIM(b *testing.B) {
	cfg := testConfig()
	cfg.AttachmentLimit = 1 << 30
	cfg.DKIM = testDKIM(b)
	benchmarkBig(b, cfg)
}

func benchmarkBig(b *testing.B, cfg Config) {
	c := newComposer(b, cfg)
	m := bigMessage(b, bigSize)
	b.SetBytes(bigSize)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Compose(io.Discard, m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkComposeInvitation measures a typical small mail.
func BenchmarkComposeInvitation(b *testing.B) {
	c := newComposer(b, testConfig())
	m := samples("fr")[2].msg
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Compose(io.Discard, m); err != nil {
			b.Fatal(err)
		}
	}
}
