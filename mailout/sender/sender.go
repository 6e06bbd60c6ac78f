package sender

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox"
)

// Composer writes the message of an outbox item. The real one builds it
// from the envelope with package compose; it must give the message the
// Message-ID MessageID(item.ID, job, domain) and compose the same bytes for the
// same item, so that a resend after a crash is recognisably the same mail.
type Composer interface {
	// Compose writes the message for job, carried by item, to w (CRLF
	// line ends, no terminating dot) and returns where SMTP sends it. An
	// error buries the item, unless it is marked outbox.Transient (a
	// store that did not answer: see outbox.StoreError).
	Compose(ctx context.Context, item *store.Item, job engine.Job, w io.Writer) (Route, error)
}

// Route is the SMTP envelope of a message (RFC 5321 §2.3.1).
type Route struct {
	// From is the reverse-path of MAIL FROM: the address bounces go to,
	// possibly a VERP address (see package mailid); "" is the null
	// reverse-path, which draws no bounce.
	From string
	// To are the forward-paths of RCPT TO, at least one. The item is one
	// delivery: a refusal of any of them decides its outcome.
	To []string
}

// MessageID is the Message-ID (without angle brackets) of the message of
// the outbox item itemID, which carries job, on domain: the same item
// always gets the same ID, and different items different IDs. A mail about
// an envelope has a mail ID naming the envelope and its addressee (package
// mailid), so that a reply command citing only that mail finds them.
func MessageID(itemID string, job engine.Job, domain string) (string, error) {
	sum := sha256.Sum256([]byte("parapheur mail\x00" + itemID))
	unique := strings.ToLower(base32.StdEncoding.EncodeToString(sum[:20]))
	if job.EnvelopeID == "" {
		return unique + "@" + domain, nil
	}
	to := job.To
	if to == engine.SenderAddressee {
		to = ""
	}
	return mailid.MailID(domain, job.EnvelopeID, to, unique)
}

// Config configures a Sender.
type Config struct {
	// Relay is the server mail is handed to.
	Relay Relay
	// Composer writes each item's message.
	Composer Composer
	// Outbox claims and settles the items; its Name defaults to
	// engine.MailQueue.
	Outbox outbox.Queue
	// Workers is how many connections to the relay Run keeps, each
	// carrying one mail transaction at a time; default 4.
	Workers int
	// PerConnection is how many items each of Run's connections has in
	// hand at once; default DefaultPerConnection. While one item is in its
	// mail transaction the others are claimed, composed and settled in the
	// store, so that the connection waits on the store as little as it can.
	PerConnection int
	// Holder names this process in item leases; default host/pid. Each
	// worker adds its connection's number and its own.
	Holder string
	// Poll is how often an empty queue is looked at again when no wake-up
	// came (see outbox.Queue.Work); default DefaultPoll.
	Poll time.Duration
	// MaxMails is how many mails one connection carries before it is
	// closed and a new one opened; default DefaultMaxMails.
	MaxMails int
	// MaxAge is how long one connection is used; default DefaultMaxAge.
	MaxAge time.Duration
	// IdleTimeout closes a connection that carried nothing for that long;
	// default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// NoopAfter is the idle time after which a connection is checked with
	// NOOP before it is reused; default DefaultNoopAfter.
	NoopAfter time.Duration
	// TempDir holds the spooled messages (unlinked at once); "" means
	// os.TempDir().
	TempDir string
	// Accepted, when set, is called with the notice of each message the
	// relay accepted, before its item is settled. It is a test hook:
	// tests stop the process there, as a crash would, to check that the
	// item is sent again as the same message.
	Accepted func(notice workflow.Notice)
}

// Sender delivers the mail queue. Run it with Run, or drive Workers
// directly.
type Sender struct {
	cfg   Config
	relay *relay
}

// New checks cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	r, err := cfg.Relay.check()
	if err != nil {
		return nil, err
	}
	if cfg.Composer == nil {
		return nil, errors.New("sender: no composer")
	}
	if cfg.Outbox.Store == nil || cfg.Outbox.Engine == nil {
		return nil, errors.New("sender: the outbox needs a store and an engine")
	}
	if cfg.Outbox.Name == "" {
		cfg.Outbox.Name = engine.MailQueue
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.PerConnection <= 0 {
		cfg.PerConnection = DefaultPerConnection
	}
	if cfg.Holder == "" {
		cfg.Holder = store.Holder()
	}
	if cfg.Poll <= 0 {
		cfg.Poll = outbox.DefaultPoll
	}
	if cfg.MaxMails <= 0 {
		cfg.MaxMails = DefaultMaxMails
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.NoopAfter <= 0 {
		cfg.NoopAfter = DefaultNoopAfter
	}
	return &Sender{cfg: cfg, relay: r}, nil
}

// DefaultPerConnection is Config.PerConnection's default: two items a
// connection keep it busy while the store works on the other (with the mail
// servers on CPUs of their own, parapheur-bench ingest -serve-cpus: busy
// 94-97% of the time, the sender at 0.89-0.96x the raw client's rate). More
// only take the processor from the signers when the machine is short of it:
// flat out, eight made the sign request three times as slow and sent no
// more mail.
const DefaultPerConnection = 2

// Run sends mail over Config.Workers connections, with
// Config.PerConnection workers sharing each, until ctx is cancelled; then
// it lets each worker finish the item in hand, closes the connections and
// returns.
func (s *Sender) Run(ctx context.Context) {
	var wg sync.WaitGroup
	lines := make([]*line, s.cfg.Workers)
	for i := range lines {
		lines[i] = &line{}
		for j := range s.cfg.PerConnection {
			w := &Worker{s: s, holder: fmt.Sprintf("%s/smtp%d.%d", s.cfg.Holder, i, j), line: lines[i]}
			wg.Go(func() {
				defer w.Close()
				s.cfg.Outbox.Work(ctx, w.holder, w, s.cfg.Poll, w.idle)
			})
		}
	}
	wg.Wait()
	for _, l := range lines {
		l.drop()
	}
}

// Worker returns a worker holding items as holder, over a connection of its
// own. A Worker is not safe for concurrent use; Close it when done.
func (s *Sender) Worker(holder string) *Worker {
	return &Worker{s: s, holder: holder, line: &line{}, ownsLine: true}
}

// line is a connection to the relay that workers share: each holds it for
// its mail transaction only, and does its store work without it.
type line struct {
	mu   sync.Mutex
	conn *conn
}

// drop closes the connection, once no worker holds it.
func (l *line) drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropHeld()
}

// dropHeld closes the connection; the caller holds mu.
func (l *line) dropHeld() {
	if l.conn != nil {
		l.conn.close()
		l.conn = nil
	}
}

// Worker sends items one at a time over its line: it is the outbox.Task of
// the mail queue.
type Worker struct {
	s        *Sender
	holder   string
	line     *line
	ownsLine bool // the line is the worker's alone, closed by Close
	spool    *os.File
	buf      *bufio.Writer   // in front of spool
	route    Route           // of the message in spool
	size     int64           // of the message in spool
	notice   workflow.Notice // of the message in spool
}

// Step claims the next due item and carries it out: composes, delivers and
// settles it. It reports false when no item was due.
func (w *Worker) Step(ctx context.Context) (bool, error) {
	return w.s.cfg.Outbox.Step(ctx, w.holder, w)
}

// Prepare implements outbox.Task: it writes the item's message into the
// spool file. The spool's own failures (a full disk) may pass.
func (w *Worker) Prepare(ctx context.Context, it *store.Item) (outbox.Delivery, error) {
	job, d, err := outbox.DecodeJob(w.s.cfg.Outbox.Engine, it)
	if err != nil {
		return d, err
	}
	if err := w.rewind(); err != nil {
		return d, outbox.Transient(fmt.Errorf("spooling %s mail: %w", job.Notice, err))
	}
	route, err := w.s.cfg.Composer.Compose(ctx, it, job, w.buf)
	// A failed write to the spool sticks to buf, and may also be why
	// Compose failed: it comes first.
	spoolErr := w.buf.Flush()
	if spoolErr == nil {
		w.size, spoolErr = w.spool.Seek(0, io.SeekCurrent)
	}
	switch {
	case spoolErr != nil:
		return d, outbox.Transient(fmt.Errorf("spooling %s mail: %w", job.Notice, spoolErr))
	case err != nil:
		return d, fmt.Errorf("composing %s mail: %w", job.Notice, err)
	case len(route.To) == 0:
		return d, fmt.Errorf("composing %s mail: the composer named no recipient", job.Notice)
	}
	w.route, w.notice = route, job.Notice
	return d, nil
}

// rewind empties the spool file, creating it first if needed.
func (w *Worker) rewind() error {
	if w.spool == nil {
		f, err := os.CreateTemp(w.s.cfg.TempDir, "parapheur-mail-*")
		if err != nil {
			return err
		}
		// Unlinked at once: nothing is left behind, whatever happens.
		os.Remove(f.Name())
		w.spool = f
	}
	if err := w.spool.Truncate(0); err != nil {
		return err
	}
	if _, err := w.spool.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if w.buf == nil {
		w.buf = bufio.NewWriterSize(w.spool, 64<<10)
	}
	w.buf.Reset(w.spool)
	return nil
}

// Attempt implements outbox.Task: it sends the spooled message and judges
// the outcome. It holds the worker's line for the transaction, waiting
// while another worker of the line has it.
func (w *Worker) Attempt(ctx context.Context) outbox.Attempt {
	w.line.mu.Lock()
	defer w.line.mu.Unlock()
	start := time.Now()
	ans, err := w.transact(ctx, w.route, w.size)
	a := outbox.Attempt{Outcome: workflow.OutcomeDelivered, Answer: ans}
	if err == nil && w.s.cfg.Accepted != nil {
		w.s.cfg.Accepted(w.notice)
	}
	if err != nil {
		a.Outcome, a.Answer = workflow.OutcomeDeferred, answer(err)
		var se *smtp.SMTPError
		var te *txnError
		if errors.As(err, &te) && errors.As(err, &se) && se.Code/100 == 5 {
			a.Outcome = workflow.OutcomeFailed
		}
	}
	a.Took = time.Since(start)
	return a
}

// transact runs the mail transaction on the worker's connection, opening
// one when needed. A reused connection that fails with a network error or
// a 421 (the server closed it while it sat idle) is replaced once within
// the same attempt.
func (w *Worker) transact(ctx context.Context, route Route, size int64) (string, error) {
	for try := 0; ; try++ {
		reused, err := w.connect(ctx)
		if err != nil {
			return "", err
		}
		if _, err := w.spool.Seek(0, io.SeekStart); err != nil {
			return "", err
		}
		ans, err := w.line.conn.send(route.From, route.To, w.spool, size)
		if err == nil {
			return ans, nil
		}
		var se *smtp.SMTPError
		isSMTP := errors.As(err, &se)
		if isSMTP && se.Code != 421 && w.line.conn.reset() == nil {
			return "", err
		}
		w.line.dropHeld()
		if !reused || try > 0 || (isSMTP && se.Code != 421) {
			return "", err
		}
	}
}

// connect makes sure the worker's line has a usable connection and
// reports whether it is one that carried mail before. The caller holds the
// line.
func (w *Worker) connect(ctx context.Context) (bool, error) {
	cfg := &w.s.cfg
	if cn := w.line.conn; cn != nil {
		now := time.Now()
		switch {
		case cn.mails >= cfg.MaxMails || now.Sub(cn.born) >= cfg.MaxAge || now.Sub(cn.used) >= cfg.IdleTimeout:
			w.line.dropHeld()
		case now.Sub(cn.used) >= cfg.NoopAfter && !cn.alive():
			w.line.dropHeld()
		default:
			return true, nil
		}
	}
	// The item in hand is finished even when the worker is being stopped;
	// the relay's Timeout bounds the wait.
	cn, err := w.s.relay.dial(context.WithoutCancel(ctx))
	if err != nil {
		return false, err
	}
	w.line.conn = cn
	return false, nil
}

// idle closes the line's connection when it has been idle too long, while
// the queue is empty.
func (w *Worker) idle() {
	w.line.mu.Lock()
	defer w.line.mu.Unlock()
	if w.line.conn != nil && time.Since(w.line.conn.used) >= w.s.cfg.IdleTimeout {
		w.line.dropHeld()
	}
}

// Close frees the spool file, and quits the connection of a worker that
// has its own (see Sender.Worker).
func (w *Worker) Close() error {
	if w.ownsLine {
		w.line.drop()
	}
	if w.spool != nil {
		err := w.spool.Close()
		w.spool, w.buf = nil, nil
		return err
	}
	return nil
}
