package sender

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// enqueue puts n mails to alice in the queue, without envelopes (no audit
// records: the benchmark measures the outbox and SMTP).
func enqueue(b *testing.B, f *fixture, n int) {
	b.Helper()
	job, _ := json.Marshal(engine.Job{Notice: workflow.Acknowledgement, To: "alice@example.com"})
	items := make([]store.Item, 0, 500)
	for i := range n {
		items = append(items, store.Item{ID: fmt.Sprintf("bench/%d/%d", time.Now().UnixNano(), i), Queue: engine.MailQueue, Payload: job, NotBefore: f.clock.now()})
		if len(items) == cap(items) || i == n-1 {
			if err := f.st.Enqueue(context.Background(), items...); err != nil {
				b.Fatal(err)
			}
			items = items[:0]
		}
	}
}

// work runs workers Workers until the queue is empty.
func work(b *testing.B, f *fixture, workers int) {
	b.Helper()
	var wg sync.WaitGroup
	var failed atomic.Value
	for i := range workers {
		w := f.s.Worker(fmt.Sprintf("bench%d", i))
		wg.Go(func() {
			defer w.Close()
			for {
				worked, err := w.Step(context.Background())
				if err != nil {
					failed.Store(err)
					return
				}
				if !worked {
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
}

// 2 KB mails to the rig's Postfix, claimed from and acknowledged in a bbolt
// outbox, with connection reuse; reports mails/s.
func BenchmarkSend2KB(b *testing.B) {
	for _, workers := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			f := newFixture(b, func(c *Config) { c.Composer = &testComposer{body: 2000} })
			enqueue(b, f, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			work(b, f, workers)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "mails/s")
			b.ReportMetric(float64(f.dials.Load()), "connections")
		})
	}
}

// The same with an envelope per two mails (acknowledgement and
// invitation): each attempt is also an audit record, an envelope write.
// BenchmarkSend2KBSink is BenchmarkSend2KB against an in-process SMTP
// server that keeps the mail in memory: the sender's own ceiling, when the
// MTA of this machine is slower than the goal.
func BenchmarkSend2KBSink(b *testing.B) {
	for _, workers := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			sink := startFakeMTA(b, nil, false)
			f := newFixture(b, func(c *Config) {
				c.Composer = &testComposer{body: 2000}
				toFake(sink, "smtp://ADDR")(c)
			})
			enqueue(b, f, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			work(b, f, workers)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "mails/s")
			if got := len(sink.messages()); got != b.N {
				b.Fatalf("the sink received %d of %d mails", got, b.N)
			}
		})
	}
}

func BenchmarkSend2KBAudited(b *testing.B) {
	f := newFixture(b, func(c *Config) { c.Composer = &testComposer{st: nil, body: 2000} })
	f.s.cfg.Composer.(*testComposer).st = f.st
	for range (b.N + 1) / 2 {
		f.envelope(b, "alice@example.com")
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	work(b, f, 4)
	b.ReportMetric(float64((b.N+1)/2*2)/time.Since(start).Seconds(), "mails/s")
}

// peakHeap samples the live heap while f runs and returns its peak.
func peakHeap(f func()) uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	f()
	close(done)
	wg.Wait()
	return peak.Load()
}

// Ten completion-sized mails (a 20 MB attachment each) per operation, to
// the rig's Postfix by two workers: B/op and the peak live heap show that
// memory does not grow with the message.
func BenchmarkSendTen20MB(b *testing.B) {
	f := newFixture(b, func(c *Config) { c.Composer = &testComposer{attach: 20 << 20} })
	var peak uint64
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		enqueue(b, f, 10)
		b.StartTimer()
		peak = max(peak, peakHeap(func() { work(b, f, 2) }))
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	// The process's peak resident size, rig clients included: meaningful
	// when this benchmark runs alone.
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			var kb float64
			if _, err := fmt.Sscanf(line, "VmHWM: %f kB", &kb); err == nil {
				b.ReportMetric(kb/1024, "peak-RSS-MB")
			}
		}
	}
}

// The ceiling the machine allows: the same 2 KB mails over the same
// connections straight from memory, without outbox, composer or spool.
func BenchmarkPostfixOnly(b *testing.B) {
	r, err := Relay{URL: "smtp://" + rig.SMTPAddr()}.check()
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte("From: parapheur@org.example\r\nTo: alice@example.com\r\nSubject: ceiling\r\n\r\n" + strings.Repeat("Bonjour, ceci est un test.\r\n", 72))
	for _, workers := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range workers {
				wg.Go(func() {
					var cn *conn
					for next.Add(1) <= int64(b.N) {
						if cn == nil || cn.mails >= DefaultMaxMails {
							if cn != nil {
								cn.close()
							}
							var err error
							if cn, err = r.dial(context.Background()); err != nil {
								b.Error(err)
								return
							}
						}
						if _, err := cn.send("parapheur@org.example", []string{"alice@example.com"}, bytes.NewReader(msg), int64(len(msg))); err != nil {
							b.Error(err)
							return
						}
					}
					if cn != nil {
						cn.close()
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "mails/s")
		})
	}
}
