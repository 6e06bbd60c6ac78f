package completion_test

import (
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
)

// TestCompletionStreams expects a completion not to hold its document in
// memory: it streams from the store through temporary files (package
// spool) and back. The live heap, sampled every millisecond while a 21 MB
// envelope is completed, must stay under three times the document's size
// (the goal of issue 11; holding the document, its sealed copy and the
// bytes stored would pass it).
func TestCompletionStreams(t *testing.T) {
	r := newRig(t, false, nil)
	in := pdftest.BenchmarkPDFs(t)["21MB"]
	info, err := os.Stat(in)
	if err != nil {
		t.Fatal(err)
	}
	r.signed(t, "E1", in)
	runtime.GC()
	peak := watchHeap()
	peak.on.Store(true)
	r.work(t)
	peak.sample()
	top := peak.stop()
	r.completedOnce(t, "E1")
	if top > 3*uint64(info.Size()) {
		t.Errorf("completing an envelope of a %d-byte document: the heap reached %d bytes; want under three times the document", info.Size(), top)
	}
	t.Logf("completing an envelope of a %d-byte document: the heap reached %d bytes", info.Size(), top)
}

// BenchmarkComplete measures one completion (seal of the document, the
// certificate, its seal, Completed) of an envelope of one document signed
// once, without a time-stamp authority, on a bbolt store. The 21MB case
// also reports the peak of the live heap during the completions
// (peak-heap-B) against the document's size (doc-B): the goal is at most
// three times the document.
func BenchmarkComplete(b *testing.B) {
	for _, size := range []string{"1MB", "21MB"} {
		b.Run(size, func(b *testing.B) {
			r := newRig(b, false, nil)
			in := pdftest.BenchmarkPDFs(b)[size]
			info, err := os.Stat(in)
			if err != nil {
				b.Fatal(err)
			}
			peak := watchHeap()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				id := fmt.Sprintf("E%d", i)
				r.signed(b, id, in)
				runtime.GC()
				peak.on.Store(true)
				b.StartTimer()
				r.work(b)
				b.StopTimer()
				peak.sample()
				peak.on.Store(false)
				r.completedOnce(b, id)
			}
			b.ReportMetric(float64(peak.stop()), "peak-heap-B")
			b.ReportMetric(float64(info.Size()), "doc-B")
		})
	}
}

// heapWatch samples the live heap every millisecond while it is on and
// keeps the highest value seen.
type heapWatch struct {
	on   atomic.Bool
	mu   sync.Mutex
	max  uint64
	done chan struct{}
	wg   sync.WaitGroup
}

func watchHeap() *heapWatch {
	h := &heapWatch{done: make(chan struct{})}
	h.wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-h.done:
				return
			case <-tick.C:
				if h.on.Load() {
					h.sample()
				}
			}
		}
	})
	return h
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

func (h *heapWatch) sample() {
	h.mu.Lock()
	defer h.mu.Unlock()
	metrics.Read(heapSample)
	h.max = max(h.max, heapSample[0].Value.Uint64())
}

// stop ends the sampling and returns the peak.
func (h *heapWatch) stop() uint64 {
	close(h.done)
	h.wg.Wait()
	return h.max
}
