// Package completion completes the envelopes whose steps are all done: it
// is the worker of the completion queue (engine.CompletionQueue), which
// the engine fills when the last step is done.
//
// Completion is a sequence of steps, each recorded in the envelope before
// the next starts, so that a crash, a store outage or a time-stamp
// authority that does not answer resumes where it stopped:
//
//  1. each document not yet sealed gets the organisation's seal (package
//     seal: PAdES, ETSI EN 319 142-1, at level B-B, or B-LTA with a
//     time-stamp authority, RFC 3161),
//     stored as a new blob and recorded by a workflow.Sealed event; the
//     machine refuses a second seal of a document, so a document is never
//     sealed twice, even by two workers;
//  2. the certificate of completion (package certificate) is built from
//     the envelope and its audit trail, sealed the same way and stored;
//  3. workflow.Completed names the certificate, ends the envelope and
//     queues the final mails, one per party, in the same store write.
//
// The queue item is acknowledged only after the last step, so a worker
// that dies loses its item to another within a lease (DefaultLease,
// renewed while it works). A certificate stored twice before Completed
// (a crash between steps 2 and 3) leaves the first as an orphan blob that
// nothing refers to: the certificate names its time of issue, so the
// second is another file, and Completed names the one that counts.
// Likewise a sealed document stored but not recorded (a crash before its
// Sealed event) is an orphan: the resumed completion seals the document
// again, and its Sealed event names the new blob.
//
// A step that fails (the store did not answer, the time-stamp authority
// answered an error, a blob is missing) makes the item retried with a
// doubling backoff capped at Backoff.Max; it is never given up, since a
// completion must never be dropped. Each failure is recorded in the store
// cursor ProgressCursor(ENVELOPE) (attempts, last error), which
// "parapheur envelope list --stuck" shows; once the completion has failed
// for DelayNoticeAfter since the last step was done, the sender is told,
// once (workflow.CompletionDelayed).
//
// Documents stream from the store through temporary files (package
// spool): memory does not grow with their size.
package completion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/parapheur/parapheur/signing/ceremony"
	"github.com/parapheur/parapheur/signing/certificate"
	"github.com/parapheur/parapheur/signing/internal/spool"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/seal"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox"
)

// The steps a Worker records, as CrashAfter names them.
const (
	// StepSealed: a document's seal was recorded (workflow.Sealed).
	StepSealed = "sealed"
	// StepCertificate: the sealed certificate was stored.
	StepCertificate = "certificate"
	// StepCompleted: workflow.Completed was applied; the queue item is
	// not acknowledged yet.
	StepCompleted = "completed"
)

// Worker completes the envelopes of the completion queue.
type Worker struct {
	// Engine applies the events; its store holds the envelopes, the
	// documents and the queue.
	Engine *engine.Engine
	// Seal is the organisation's seal key and chain.
	Seal *pki.KeyPair
	// TSAURL, when set, makes the seals B-LTA with this time-stamp
	// authority (tsa.url).
	TSAURL string
	// HTTP fetches time-stamps, CRLs and OCSP answers; nil means the
	// seal package's default client.
	HTTP *http.Client
	// PublicURL is the gateway's base URL; the certificate links to
	// PublicURL/verify.
	PublicURL string
	// Location is the configured time zone of the certificate; nil
	// means UTC.
	Location *time.Location
	// MaxDocumentBytes bounds the documents read for sealing; 0 means
	// the PAdES engine's default.
	MaxDocumentBytes int64
	// TempDir holds the documents while they are sealed; "" means the
	// system's.
	TempDir string
	// Holder names this process as the holder of queue items.
	Holder string
	// Lease is how long a claimed item is held without renewal; zero
	// means DefaultLease. It is renewed every third of it while the
	// completion runs.
	Lease time.Duration
	// Backoff spaces the retries: First (zero: DefaultFirstRetry),
	// doubling up to Max (zero: DefaultMaxRetry). Its Limit is ignored:
	// a completion is retried for ever.
	Backoff outbox.Backoff
	// DelayNoticeAfter is how long after its last step was done a
	// completion that keeps failing is told to the sender; zero means
	// DefaultDelayNoticeAfter.
	DelayNoticeAfter time.Duration
	// Metrics counts completions; nil counts nothing.
	Metrics *Metrics
	// Log receives what an operator must see; nil means slog.Default().
	Log *slog.Logger
	// CrashAfter, when set, is called after each recorded step with its
	// name (StepSealed after each document, StepCertificate,
	// StepCompleted). It is a test hook: tests stop the worker there as
	// a crash would, then run it again.
	CrashAfter func(step string)
}

// Defaults of the Worker's zero fields.
const (
	// DefaultLease is shorter than the mail queue's (outbox.DefaultLease):
	// a completion whose worker died resumes within it, and a lease that
	// runs out while its worker still lives costs no second seal or final
	// mail (the workflow refuses a second Sealed or Completed), only work
	// done again; renewing it every 5 s while a completion runs costs a
	// few store writes.
	DefaultLease            = 15 * time.Second
	DefaultFirstRetry       = 10 * time.Second
	DefaultMaxRetry         = 15 * time.Minute
	DefaultDelayNoticeAfter = time.Hour
)

// ProgressCursor names the store cursor where the failures of envelope
// id's completion are recorded.
func ProgressCursor(id string) string { return "completion/" + id }

// Progress is what the store cursor ProgressCursor holds: the last failure
// of a completion that is being retried.
type Progress struct {
	// Attempts counts the attempts so far.
	Attempts int `json:"attempts"`
	// LastError is why the last attempt failed.
	LastError string `json:"last_error"`
	// At is when it failed.
	At time.Time `json:"at"`
	// NextAttempt is when the completion is tried again.
	NextAttempt time.Time `json:"next_attempt"`
}

// ReadProgress returns the recorded failures of envelope id's completion;
// ok is false when none was recorded.
func ReadProgress(ctx context.Context, st store.Store, id string) (p Progress, ok bool, err error) {
	b, err := st.Cursor(ctx, ProgressCursor(id))
	if err != nil || b == nil {
		return p, false, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, false, &store.CorruptError{Key: "cursor " + ProgressCursor(id), Err: err}
	}
	return p, true, nil
}

// Run completes envelopes until ctx ends: whenever the store signals an
// item of the queue, or after poll (the safety net for lost wake-ups).
func (w *Worker) Run(ctx context.Context, poll time.Duration) {
	outbox.Loop(ctx, w.Log, poll, w.Engine.Store.Wakeups(ctx, engine.CompletionQueue), w.Step, nil)
}

// Step claims the next due item of the completion queue and carries out
// what is left of its envelope's completion. It reports false when no
// item was due.
func (w *Worker) Step(ctx context.Context) (bool, error) {
	q := w.queue()
	it, err := w.Engine.Store.Claim(ctx, engine.CompletionQueue, w.Holder, w.Engine.Now(), q.Lease)
	if errors.Is(err, store.ErrEmpty) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	id := envelopeOf(it)
	start := time.Now()
	var a attempt
	if lost := q.WhileHeld(ctx, it, func() { a = w.complete(ctx, id) }); lost != nil {
		w.log().Warn("completion: lease lost during the attempt; its outcome is left to the item's new holder",
			"envelope", id, "item", it.ID, "attempt", it.Attempts, "err", lost)
		return true, nil
	}
	return true, w.settle(ctx, it, id, a, time.Since(start))
}

func (w *Worker) queue() *outbox.Queue {
	lease := w.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	return &outbox.Queue{Store: w.Engine.Store, Engine: w.Engine, Name: engine.CompletionQueue, Lease: lease, Log: w.Log, Now: w.Engine.Now}
}

// envelopeOf reads the envelope ID of a completion item: its payload's,
// or the item's own when the payload does not name one.
func envelopeOf(it *store.Item) string {
	var c engine.Completion
	if json.Unmarshal(it.Payload, &c) == nil && c.EnvelopeID != "" {
		return c.EnvelopeID
	}
	return it.EnvelopeID
}

// attempt is how one try at a completion ended.
type attempt struct {
	// env is the envelope as last read, nil when it could not be read.
	env *workflow.Envelope
	// completed is set when this attempt applied Completed.
	completed bool
	// err is why the attempt failed.
	err error
}

// complete carries out what is left of envelope id's completion.
func (w *Worker) complete(ctx context.Context, id string) (a attempt) {
	if a.env, a.err = w.Engine.Envelope(ctx, id); a.err != nil {
		if errors.Is(a.err, store.ErrNotFound) {
			a.err = nil
		}
		return a
	}
	if a.env.State.Final() || a.env.CurrentStep < len(a.env.Steps) {
		return a
	}
	for i := 0; i < len(a.env.Documents); i++ {
		if a.env.Documents[i].Sealed {
			continue
		}
		env, err := w.sealDocument(ctx, a.env, i)
		if env != nil {
			a.env = env
		}
		switch {
		case errors.Is(err, workflow.ErrAlreadySealed) || errors.Is(err, workflow.ErrStaleDocument):
			// Another worker sealed it meanwhile (its lease on the item
			// ran out): go on from the envelope as it is now.
			w.log().Warn("completion: document sealed meanwhile by another worker", "envelope", id, "document", i+1)
			i--
			continue
		case errors.Is(err, workflow.ErrEnded):
			return a
		case err != nil:
			a.err = fmt.Errorf("sealing document %d (%s): %w", i+1, a.env.Documents[i].Name, err)
			return a
		}
		w.crash(StepSealed)
	}
	if a.env.State.Final() {
		return a // completed meanwhile by another worker, whose lease came after ours ran out
	}
	cert, err := w.certificate(ctx, a.env)
	if err != nil {
		a.err = fmt.Errorf("making the certificate of completion: %w", err)
		return a
	}
	w.crash(StepCertificate)
	env, err := w.Engine.Event(ctx, id, workflow.Completed{Meta: workflow.Meta{At: w.Engine.Now()}, Certificate: cert.SHA256})
	if env != nil {
		a.env = env
	}
	switch {
	case errors.Is(err, workflow.ErrEnded):
		return a
	case err != nil:
		a.err = fmt.Errorf("recording the completion: %w", err)
		return a
	}
	// Completed is a no-op on an envelope another worker completed
	// meanwhile, with another certificate.
	a.completed = a.env.Certificate == cert.SHA256
	w.crash(StepCompleted)
	return a
}

// sealDocument seals document i of env and records it; it returns the
// envelope after the event, or as it is when the event was refused.
func (w *Worker) sealDocument(ctx context.Context, env *workflow.Envelope, i int) (*workflow.Envelope, error) {
	start := time.Now()
	d := env.Documents[i]
	blob, err := spool.RewriteBlob(ctx, w.Engine.Store, w.TempDir, d.Current, w.sealer(ctx, sealReason(env)))
	if err != nil {
		return nil, err
	}
	w.Metrics.step("seal", time.Since(start))
	return w.Engine.Event(ctx, env.ID, workflow.Sealed{
		Meta:     workflow.Meta{At: w.Engine.Now()},
		Document: workflow.DocumentVersion{Index: i, Previous: d.Current, SHA256: blob.SHA256, Size: blob.Size},
		Level:    w.level(), Serial: pki.SerialHex(w.Seal.Chain[0]),
	})
}

// certificate builds the certificate of completion of env, seals it and
// stores it.
func (w *Worker) certificate(ctx context.Context, env *workflow.Envelope) (store.Blob, error) {
	start := time.Now()
	trail, err := w.Engine.Store.AuditTrail(ctx, env.ID)
	if err != nil {
		return store.Blob{}, err
	}
	// Events may have been added since env was read (a page viewed, a
	// mail delivered): the certificate tells the trail up to env's head,
	// which the records after it only continue.
	if uint64(len(trail)) > env.Audit.Seq {
		trail = trail[:env.Audit.Seq]
	}
	pdf, err := certificate.Build(certificate.Input{Envelope: env, Trail: trail, Location: w.Location,
		VerifyURL: strings.TrimSuffix(w.PublicURL, "/") + "/verify", Organisation: w.organisation(), Now: w.Engine.Now()})
	if err != nil {
		return store.Blob{}, err
	}
	blob, err := spool.Rewrite(ctx, w.Engine.Store, w.TempDir, bytes.NewReader(pdf), w.sealer(ctx, ceremony.CertificateReason(env)))
	if err != nil {
		return store.Blob{}, err
	}
	w.Metrics.step("certificate", time.Since(start))
	return blob, nil
}

// sealer seals a file with the organisation's seal and reason.
func (w *Worker) sealer(ctx context.Context, reason string) func(in *os.File, out io.Writer) error {
	opts := seal.Options{Seal: w.Seal, TSAURL: w.TSAURL, HTTP: w.HTTP, Reason: reason, MaxInput: w.MaxDocumentBytes,
		Warn: func(err error) {
			w.log().Warn("completion: the seal's validation data are incomplete", "err", err)
		}}
	return func(in *os.File, out io.Writer) error { return seal.Stream(ctx, in, out, w.TempDir, opts) }
}

// level is the PAdES level of the seals.
func (w *Worker) level() string {
	if w.TSAURL != "" {
		return "B-LTA"
	}
	return "B-B"
}

// organisation names the organisation that seals: its seal certificate's
// organisation, or its common name.
func (w *Worker) organisation() string {
	subject := w.Seal.Chain[0].Subject
	if len(subject.Organization) > 0 && subject.Organization[0] != "" {
		return subject.Organization[0]
	}
	return subject.CommonName
}

// sealReason is the /Reason of a document's seal, in the envelope's
// language. It is not the ceremony's reason of a signer's signature
// (ceremony.EnvelopeOfReason), which names the envelope of a document.
func sealReason(env *workflow.Envelope) string {
	if env.Language == "fr" {
		return "Cachet de l’organisation, demande " + env.ID + " réalisée"
	}
	return "Organisation seal, envelope " + env.ID + " completed"
}

// settle acknowledges the item of a completion that ended, or gives it
// back to be tried again. The store writes do not obey ctx's
// cancellation: the outcome of the attempt is recorded while the worker
// stops.
func (w *Worker) settle(ctx context.Context, it *store.Item, id string, a attempt, took time.Duration) error {
	stopping := ctx.Err() != nil
	ctx = context.WithoutCancel(ctx)
	log := w.log().With("envelope", id, "item", it.ID, "attempt", it.Attempts)
	switch {
	case a.err == nil:
		switch {
		case a.env == nil:
			log.Warn("completion: the envelope is gone; nothing to complete")
		case a.completed:
			log.Info("completion: envelope completed", "documents", len(a.env.Documents), "certificate", a.env.Certificate, "took", took)
			w.Metrics.completed(id, took)
		case a.env.State == workflow.StateCompleted:
			log.Debug("completion: the envelope was completed already")
			w.Metrics.forget(id)
		case a.env.State.Final():
			log.Warn("completion: the envelope ended before its completion", "state", a.env.State, "reason", a.env.Reason)
			w.Metrics.forget(id)
		default:
			log.Error("completion: the envelope has steps left; nothing to complete", "step", a.env.CurrentStep+1, "steps", len(a.env.Steps))
		}
		return w.settled(log, it, "acknowledging", w.Engine.Store.Ack(ctx, it))
	case stopping:
		// Stopping is no fault of the completion: due again at once.
		log.Info("completion: the worker stopped during the attempt; released", "err", a.err)
		return w.settled(log, it, "releasing", w.Engine.Store.Retry(ctx, it, w.Engine.Now(), "the worker stopped: "+a.err.Error()))
	}
	now := w.Engine.Now()
	since := it.Since
	if since.IsZero() {
		since = it.NotBefore
	}
	wait := w.backoff(now.Sub(since), it.Attempts)
	reason := a.err.Error()
	p, err := json.Marshal(Progress{Attempts: it.Attempts, LastError: reason, At: now, NextAttempt: now.Add(wait)})
	if err == nil {
		err = w.Engine.Store.SetCursor(ctx, ProgressCursor(id), p)
	}
	if err != nil {
		log.Warn("completion: recording the failure for envelope list --stuck", "err", err)
	}
	if a.env != nil {
		w.Metrics.failing(id, a.env.StepsDoneAt)
		w.tellSender(ctx, log, a.env, now, reason)
	}
	log.Warn("completion failed; retrying", "retry_in", wait, "err", a.err)
	w.Metrics.retried()
	return w.settled(log, it, "retrying", w.Engine.Store.Retry(ctx, it, now.Add(wait), reason))
}

// settled reports how the settlement of an item (what) ended: an item
// another worker holds now, since our lease ran out, is that worker's to
// settle.
func (w *Worker) settled(log *slog.Logger, it *store.Item, what string, err error) error {
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		log.Warn("completion: the item's lease ran out during the attempt; it is another worker's now", "err", err)
		return nil
	case err != nil:
		return fmt.Errorf("completion: %s item %s: %w", what, it.ID, err)
	}
	return nil
}

// tellSender tells env's sender, once, that the completion keeps failing
// once it has for DelayNoticeAfter.
func (w *Worker) tellSender(ctx context.Context, log *slog.Logger, env *workflow.Envelope, now time.Time, reason string) {
	after := w.DelayNoticeAfter
	if after <= 0 {
		after = DefaultDelayNoticeAfter
	}
	if env.StepsDoneAt.IsZero() || now.Sub(env.StepsDoneAt) < after || !env.DelayNoticeAt.IsZero() {
		return
	}
	if _, err := w.Engine.Event(ctx, env.ID, workflow.CompletionDelayed{Meta: workflow.Meta{At: now}, Reason: reason}); err != nil {
		log.Warn("completion: telling the sender that the completion is delayed", "err", err)
		return
	}
	log.Warn("completion: delayed for too long; the sender is told", "since", env.StepsDoneAt)
}

// backoff is the wait after the failed attempt-th attempt of an item
// pending for age: it doubles from Backoff.First up to Backoff.Max (see
// outbox.Backoff.Next), and never runs out.
func (w *Worker) backoff(age time.Duration, attempt int) time.Duration {
	b := w.Backoff
	if b.First <= 0 {
		b.First = DefaultFirstRetry
	}
	if b.Max <= 0 {
		b.Max = DefaultMaxRetry
	}
	b.Limit = math.MaxInt64
	wait, _ := b.Next(age, attempt)
	return wait
}

func (w *Worker) crash(step string) {
	if w.CrashAfter != nil {
		w.CrashAfter(step)
	}
}

func (w *Worker) log() *slog.Logger {
	if w.Log == nil {
		return slog.Default()
	}
	return w.Log
}
