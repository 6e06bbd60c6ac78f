package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync/atomic"
	"time"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/mailout/compose"
	mailsender "github.com/parapheur/parapheur/mailout/sender"
	"github.com/parapheur/parapheur/signing/completion"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox"
)

// completions measures the completion of o.n envelopes of one signer each
// on pdf, in this process as serve runs it: the signing door over HTTP, the
// completion worker (seal, certificate of completion, Completed) and the
// mail sender, which hands every mail to a private Postfix. Signers sign at
// so.rate a second (so.workers at most at once); then, from each
// envelope's audit trail, the time from its last signature to the last of
// its final mails accepted by Postfix (the delivery_attempt record with
// outcome delivered): p50, p99 and max.
func completions(o options, pdfPath string, so signersOptions) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ws, err := newWorkspace(ctx, o.store, pdfPath, "completion")
	if err != nil {
		return err
	}
	defer ws.close()
	pdf, pages, dir, st := ws.pdf, ws.pages, ws.dir, ws.st
	rig, err := testrig.StartMail(filepath.Join(dir, "mail"), testrig.MailOptions{Users: []string{"parapheur"}})
	if err != nil {
		return err
	}
	defer rig.Stop()
	keys := filepath.Join(dir, "keys")
	if err := pki.InitCA(keys, pki.InitOptions{Organisation: "Bench", Passphrase: "bench"}); err != nil {
		return err
	}
	ca, err := pki.LoadCA(keys, "bench")
	if err != nil {
		return err
	}
	seal, err := pki.LoadSeal(keys, "bench")
	if err != nil {
		return err
	}

	eng, base, stopDoor, err := startDoor(st, ca, dir)
	if err != nil {
		return err
	}
	defer stopDoor()
	eng.DownloadTTL = 30 * 24 * time.Hour
	post := newPostman(eng)
	returnPathKey := make([]byte, 32)
	rand.Read(returnPathKey)
	composer, err := compose.New(compose.Config{Address: "parapheur@org.example", PublicURL: base,
		AttachmentLimit: so.attachLimit, ReturnPathKey: returnPathKey})
	if err != nil {
		return err
	}
	log := slog.New(slog.DiscardHandler) // -v: the worker's and the sender's logs
	if o.verbose {
		log = slog.Default()
	}
	mails := &mailsender.Mails{Composer: composer, Store: st, Domain: "org.example", PublicURL: base}
	sender, err := mailsender.New(mailsender.Config{Relay: mailsender.Relay{URL: "smtp://" + rig.SMTPAddr()},
		Composer: &tap{Composer: mails, post: post}, Holder: "bench", TempDir: dir,
		Outbox: outbox.Queue{Store: st, Engine: eng, Name: engine.MailQueue, Log: log}})
	if err != nil {
		return err
	}
	worker := &completion.Worker{Engine: eng, Seal: seal, PublicURL: base, TempDir: dir, Holder: "bench",
		MaxDocumentBytes: 64 << 20, Log: log}
	go sender.Run(ctx)
	if !so.memory {
		go worker.Run(ctx, outbox.DefaultPoll)
	}

	start := time.Now()
	links, err := createEnvelopes(ctx, eng, post, pdf, pages, o.n)
	if err != nil {
		return err
	}
	fmt.Printf("completion: %d envelopes of one signer on %s (%d bytes, %d pages), store %s, made in %.1f s\n",
		len(links), filepath.Base(pdfPath), len(pdf), pages, o.store, time.Since(start).Seconds())
	b := bench{base: base, client: newClient(so.workers), post: post, links: links}
	signs, took, err := b.signs(ctx, so.workers, len(links), so.rate)
	if err != nil {
		return err
	}
	fmt.Printf("  %d signatures over HTTP in %.1f s (%g started a second, %d workers at most)\n", len(signs), took.Seconds(), so.rate, so.workers)

	if so.memory {
		return completionMemory(ctx, st, worker, links, len(pdf))
	}
	lat, err := completionLatencies(ctx, st, links)
	if err != nil {
		return err
	}
	fmt.Printf("  last signature -> last final mail accepted by Postfix (seal B-B, certificate, 2 final mails each): p50 %.0f ms  p99 %.0f ms  max %.0f ms\n",
		ms(quantile(lat, 0.5)), ms(quantile(lat, 0.99)), ms(lat[len(lat)-1]))
	return nil
}

// completionMemory runs worker on the envelopes of links, all signed, and
// reports how much memory their completion and final mails took beyond
// what the process held before: the peaks of the live Go heap and of the
// resident set, both sampled every millisecond, against the document's
// size. The heap is the figure to read: the resident set counts the pages
// of bbolt's mapped file that the completion reads, and does not grow
// where the runtime reuses pages the signatures freed.
func completionMemory(ctx context.Context, st store.Store, worker *completion.Worker, links []link, docSize int) error {
	runtime.GC()
	heap0, rss0 := heapObjects(), residentSet()
	var heapPeak, rssPeak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			heapPeak.Store(max(heapPeak.Load(), heapObjects()))
			rssPeak.Store(max(rssPeak.Load(), residentSet()))
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	wctx, stop := context.WithCancel(ctx)
	go worker.Run(wctx, outbox.DefaultPoll)
	start := time.Now()
	_, err := completionLatencies(ctx, st, links)
	stop()
	close(done)
	<-sampled
	if err != nil {
		return err
	}
	heap, rss := heapPeak.Load()-min(heap0, heapPeak.Load()), rssPeak.Load()-min(rss0, rssPeak.Load())
	fmt.Printf("  %d completion(s) and final mails in %.1f s; beyond a live heap of %d bytes and a resident set of %d bytes before:\n",
		len(links), time.Since(start).Seconds(), heap0, rss0)
	fmt.Printf("    live heap peak     +%d bytes = %.2f x the document (%d bytes)\n", heap, float64(heap)/float64(docSize), docSize)
	fmt.Printf("    resident set peak  +%d bytes = %.2f x the document\n", rss, float64(rss)/float64(docSize))
	return nil
}

// heapObjects is the live Go heap now.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// residentSet is the process's resident set now, from /proc/self/statm
// (0 where there is none).
func residentSet() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, pages uint64
	if _, err := fmt.Sscan(string(b), &size, &pages); err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// tap is the gateway's composer, which also hands the links and codes of
// the mails it writes to the signers waiting for them, as their mailboxes
// would.
type tap struct {
	mailsender.Composer
	post *postman
}

func (t *tap) Compose(ctx context.Context, it *store.Item, job engine.Job, w io.Writer) (mailsender.Route, error) {
	t.post.take(job)
	return t.Composer.Compose(ctx, it, job, w)
}

// finalMails is how many final mails an envelope of the scenario sends:
// to its sender and to its signer.
const finalMails = 2

// completionLatencies waits until every envelope of links is completed
// and its final mails delivered, and returns, sorted, the time from each
// one's last signature to its last final mail delivered, as its audit
// trail records them.
func completionLatencies(ctx context.Context, st store.Store, links []link) ([]time.Duration, error) {
	deadline := time.Now().Add(10 * time.Minute)
	lat := make([]time.Duration, 0, len(links))
	for _, l := range links {
		for {
			trail, err := st.AuditTrail(ctx, l.envelopeID)
			if err != nil {
				return nil, err
			}
			if d, ok := signedToDelivered(trail); ok {
				lat = append(lat, d)
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("envelope %s: its final mails are not all delivered after 10 minutes: %w", l.envelopeID, errTimeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	slices.Sort(lat)
	return lat, nil
}

// signedToDelivered is the time from the last signature of trail to the
// delivery of the last of its finalMails final mails; ok is false until
// they are all delivered.
func signedToDelivered(trail []audit.Record) (d time.Duration, ok bool) {
	var signed, delivered time.Time
	n := 0
	for _, r := range trail {
		switch {
		case r.Type == audit.Signed:
			signed = r.Time
		case r.Type == audit.DeliveryAttempt && r.Details["mail"] == string(workflow.CompletionMail) &&
			r.Details["outcome"] == string(workflow.OutcomeDelivered):
			delivered = r.Time
			n++
		}
	}
	return delivered.Sub(signed), n == finalMails && !signed.IsZero()
}
