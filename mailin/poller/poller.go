// Package poller watches the gateway's mailbox over IMAP (RFC 9051, RFC
// 3501) and hands every message to a Handler, then moves it out of the
// inbox (RFC 6851 MOVE) to the processed or quarantine folder.
//
// What it promises: a message leaves the inbox only after its handler
// finished with it, so a crash never loses one; a handler is idempotent (it
// derives the envelope ID from the Message-ID), so a message seen again
// after a crash between the handler and the MOVE is not duplicated. Bodies
// are fetched with BODY.PEEK[], so \Seen is never set on unprocessed mail.
// The messages of a batch are handled several at once (Config.Workers), each
// as soon as it has arrived, so that one message's store writes overlap
// another's parsing and concurrent writes share a commit; the batch moves
// once every one of them is handled, while the next batch is already being
// fetched and handled. However the batches overlap, the mail held at once
// (from its arrival to the end of its handling) stays within MaxMessageBytes.
//
// New mail is noticed by IDLE (RFC 2177), re-issued every IdleRestart since
// servers drop idle connections, or by plain polling when the server has no
// IDLE; a full scan of the inbox every SafetyScan catches anything a
// notification missed and retries messages whose handler failed for a
// reason that may pass (the store was down). The last UID seen and the
// mailbox's UIDVALIDITY are kept in the store: when UIDVALIDITY changes the
// whole inbox is scanned again, which the handler's idempotency makes safe.
//
// It logs in with LOGIN and a password, or, for mailboxes that refuse
// passwords (Microsoft 365, Google Workspace), with AUTHENTICATE (RFC 4959)
// XOAUTH2 or OAUTHBEARER (RFC 7628) and a token of package oauth: a
// refused token is renewed and tried again at once, in the same session.
//
// With several gateway replicas, only the holder of the store's poller
// lease polls; the others wait and take over when the lease expires. The
// lease is short (LeaseTTL, 6 s by default) and renewed at a third of it
// while the session runs, beside it, whatever the session is doing; a
// holder that cannot renew in time stops polling before its lease can
// expire, so two replicas never poll at once. A process killed without
// releasing the lease (kill -9, a crash) holds intake up only until it
// expires: the next process, or a replica, asks again every third of the
// TTL and polls within 8 s with the defaults.
package poller

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/sync/semaphore"

	"github.com/parapheur/parapheur/mailout/oauth"
	"github.com/parapheur/parapheur/store"
)

// Destination is where a handled message goes.
type Destination int

// Destinations of a handled message.
const (
	// Processed: handled (an envelope, a reply command, a bounce, an
	// automatic mail that gets no answer).
	Processed Destination = iota
	// Quarantine: refused (the refusal reply is queued by the handler).
	Quarantine
	// Verified: a mail to the verification address, answered with a
	// report on its PDFs or not at all (SPEC §6); it goes to the processed
	// folder, counted apart.
	Verified
)

// Message is one mail of the inbox.
type Message struct {
	// UID is the message's UID in the inbox.
	UID imap.UID
	// Size is the message's size as the server reports it.
	Size int64
	// Raw is the whole message, or only its header when TooLarge.
	Raw []byte
	// TooLarge is set when Size exceeds Config.MaxMessageBytes: the body
	// was not fetched, and the handler should refuse the mail.
	TooLarge bool
	// Received is the server's INTERNALDATE.
	Received time.Time
}

// Handler decides what a message is and acts on it.
type Handler interface {
	// Handle handles one message and says where it goes, with a reason for
	// the quarantine. An error means a failure that may pass: the message
	// stays in the inbox and is tried again by the next safety scan. It is
	// called for several messages of a batch at once (Config.Workers), in
	// no particular order.
	Handle(ctx context.Context, m Message) (Destination, string, error)
}

// Config says which mailbox to watch and how.
type Config struct {
	// URL is imaps://user@host[:993]/INBOX (implicit TLS) or
	// imap://user@host[:143]/INBOX (STARTTLS, or plain to a loopback
	// address only). The path names the watched mailbox, INBOX by default.
	URL string
	// Password is the IMAP password, for LOGIN; unused with OAuth2.
	Password string
	// OAuth2, when set, logs in with a bearer token from it (AUTHENTICATE, RFC 4959)
	// rather than with Password; a refused token is renewed and tried again at once.
	OAuth2 *oauth.Source
	// Mechanism is the SASL mechanism of OAuth2: oauth.XOAUTH2 (the default) or
	// oauth.OAUTHBEARER.
	Mechanism string
	// ProcessedFolder receives handled mail; created if missing.
	ProcessedFolder string
	// QuarantineFolder receives refused mail; created if missing.
	QuarantineFolder string
	// MaxMessageBytes: larger messages are not fetched whole, and the mail
	// held at once, from its arrival to the end of its handling, stays
	// within it (0: no limit).
	MaxMessageBytes int64
	// TLS configures TLS connections; nil means the system roots.
	TLS *tls.Config
	// IdleRestart is how often IDLE is re-issued (default 5 minutes).
	IdleRestart time.Duration
	// PollInterval is the polling period without IDLE (default 30 s).
	PollInterval time.Duration
	// SafetyScan is how often the whole inbox is scanned (default 2 minutes).
	SafetyScan time.Duration
	// Workers is how many messages of a batch are handled at once (default
	// DefaultWorkers): while one waits for the store, another is parsed, and
	// their store writes can share a commit.
	Workers int
	// BatchSize is how many messages are fetched and moved at once (default
	// DefaultBatchSize).
	BatchSize int
	// LeaseTTL is the poller lease's duration (default 6 s): after a crash,
	// the mailbox is polled again within 4/3 of it. It is renewed, and asked
	// for by the replicas waiting, every third of it.
	LeaseTTL time.Duration
	// Holder names this replica in the lease (default: host name and PID).
	Holder string
}

// Poller watches one mailbox.
type Poller struct {
	cfg     Config
	addr    string
	user    string
	mailbox string
	mode    connMode
	store   store.Store
	handler Handler
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
}

type connMode int

const (
	modeTLS connMode = iota
	modeStartTLS
	modePlain
)

// Defaults of Config.
const (
	// DefaultBatchSize is Config.BatchSize when not set.
	DefaultBatchSize = 100
	// DefaultWorkers is Config.Workers when not set: a whole batch at once.
	// Each message waits on two store commits (its document, its envelope),
	// and the more wait together, the more share a commit (at 32, 643–704
	// envelopes/s in parapheur-bench ingest on bbolt; at 100, 771–944). The
	// memory held stays bounded by MaxMessageBytes (see intake).
	DefaultWorkers = 100
)

// LeaseName is the store lease that elects the polling replica.
const LeaseName = "imap-poller"

// New checks the configuration and makes a poller. metrics may be nil.
func New(cfg Config, st store.Store, h Handler, log *slog.Logger, metrics *Metrics) (*Poller, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("imap url: %w", err)
	}
	p := &Poller{cfg: cfg, store: st, handler: h, log: log, metrics: metrics, now: time.Now}
	host := u.Hostname()
	switch u.Scheme {
	case "imaps":
		p.mode, p.addr = modeTLS, hostPort(u, "993")
	case "imap":
		p.mode, p.addr = modeStartTLS, hostPort(u, "143")
		if isLoopback(host) {
			p.mode = modePlain
		}
	default:
		return nil, fmt.Errorf("imap url %q: scheme must be imaps (implicit TLS) or imap (STARTTLS)", cfg.URL)
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, fmt.Errorf("imap url %q: no user name (imaps://USER@host/INBOX)", cfg.URL)
	}
	p.user = u.User.Username()
	p.mailbox = strings.TrimPrefix(u.Path, "/")
	if p.mailbox == "" {
		p.mailbox = "INBOX"
	}
	defaults := []struct {
		d   *time.Duration
		def time.Duration
	}{{&p.cfg.IdleRestart, 5 * time.Minute}, {&p.cfg.PollInterval, 30 * time.Second},
		{&p.cfg.SafetyScan, 2 * time.Minute}, {&p.cfg.LeaseTTL, 6 * time.Second}}
	for _, d := range defaults {
		if *d.d <= 0 {
			*d.d = d.def
		}
	}
	if p.cfg.Workers <= 0 {
		p.cfg.Workers = DefaultWorkers
	}
	if p.cfg.BatchSize <= 0 {
		p.cfg.BatchSize = DefaultBatchSize
	}
	if p.cfg.ProcessedFolder == "" {
		p.cfg.ProcessedFolder = "Processed"
	}
	if p.cfg.QuarantineFolder == "" {
		p.cfg.QuarantineFolder = "Quarantine"
	}
	if p.cfg.Holder == "" {
		p.cfg.Holder = store.Holder()
	}
	if p.cfg.OAuth2 != nil {
		if p.cfg.Mechanism == "" {
			p.cfg.Mechanism = oauth.XOAUTH2
		}
		if p.cfg.Mechanism != oauth.XOAUTH2 && p.cfg.Mechanism != oauth.OAUTHBEARER {
			return nil, fmt.Errorf("imap: SASL mechanism %q: want %s or %s", p.cfg.Mechanism, oauth.XOAUTH2, oauth.OAUTHBEARER)
		}
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	return p, nil
}

func hostPort(u *url.URL, port string) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), port)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run polls until ctx ends: it waits for the lease, keeps a session open,
// and reconnects with exponential backoff (1 s to 1 min) when it fails.
func (p *Poller) Run(ctx context.Context) error {
	backoff := time.Second
	for ctx.Err() == nil {
		asked := p.now()
		held, err := p.store.AcquireLease(ctx, LeaseName, p.cfg.Holder, asked, p.cfg.LeaseTTL)
		if err != nil || !held {
			if err != nil {
				p.log.Warn("imap poller: lease", "err", err)
			}
			sleep(ctx, p.renewEvery())
			continue
		}
		p.log.Info("imap poller: lease taken", "holder", p.cfg.Holder)
		p.metrics.holding(true)
		start := p.now()
		err = p.whileHeld(ctx, asked, p.session)
		p.metrics.holding(false)
		if ctx.Err() != nil {
			break
		}
		if p.now().Sub(start) > time.Minute {
			backoff = time.Second // the session had been up: start over
		}
		p.log.Warn("imap poller: session ended, reconnecting", "err", err, "in", backoff)
		p.metrics.reconnect()
		sleep(ctx, backoff)
		backoff = min(backoff*2, time.Minute)
	}
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.store.ReleaseLease(rctx, LeaseName, p.cfg.Holder)
	return ctx.Err()
}

// renewEvery is how often the lease is renewed by its holder and asked for
// by the others.
func (p *Poller) renewEvery() time.Duration { return p.cfg.LeaseTTL / 3 }

// errLeaseLost ends a session whose lease another replica took or that
// could not be renewed in time.
var errLeaseLost = errors.New("imap poller: lost the lease")

// whileHeld runs session, the lease just taken until taken+LeaseTTL, under a
// context that ends as soon as the lease is lost, renewing it meanwhile.
func (p *Poller) whileHeld(ctx context.Context, taken time.Time, session func(context.Context) error) error {
	sctx, lost := context.WithCancelCause(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		p.keepLease(sctx, taken, lost)
	}()
	err := session(sctx)
	cause := context.Cause(sctx)
	lost(nil)
	<-renewed
	if errors.Is(cause, errLeaseLost) {
		return cause
	}
	return err
}

// keepLease renews the lease, ours until confirmed+LeaseTTL, every
// renewEvery until ctx ends, and calls lost when another holder has it, or
// when it could not be renewed for so long that it may expire before the
// next try: the session then stops before another replica can take the lease.
func (p *Poller) keepLease(ctx context.Context, confirmed time.Time, lost context.CancelCauseFunc) {
	every := p.renewEvery()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := p.now()
		rctx, cancel := context.WithTimeout(ctx, every)
		held, err := p.store.AcquireLease(rctx, LeaseName, p.cfg.Holder, now, p.cfg.LeaseTTL)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && held:
			confirmed = now
		case err == nil:
			lost(fmt.Errorf("%w: another replica holds it", errLeaseLost))
			return
		case p.now().Sub(confirmed) >= p.cfg.LeaseTTL-every:
			lost(fmt.Errorf("%w: not renewed since %s: %w", errLeaseLost, confirmed.Format(time.RFC3339Nano), err))
			return
		default:
			p.log.Warn("imap poller: renewing the lease failed, trying again", "err", err, "in", every)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// session is one IMAP connection's life: select, scan, then wait for news.
func (p *Poller) session(ctx context.Context) error {
	news := make(chan struct{}, 1)
	c, err := p.dial(news)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	if err := p.login(ctx, c); err != nil {
		return fmt.Errorf("imap login as %s: %w", p.user, err)
	}
	if err := p.ensureFolders(c); err != nil {
		return err
	}
	sel, err := c.Select(p.mailbox, nil).Wait()
	if err != nil {
		return fmt.Errorf("imap select %s: %w", p.mailbox, err)
	}
	cur, err := p.loadCursor(ctx, sel.UIDValidity)
	if err != nil {
		return err
	}
	p.log.Info("imap poller: watching", "mailbox", p.mailbox, "uidvalidity", cur.UIDValidity, "last_uid", cur.LastUID)

	lastScan := time.Time{}
	for {
		full := p.now().Sub(lastScan) >= p.cfg.SafetyScan
		if full {
			lastScan = p.now()
		}
		if err := p.scan(ctx, c, &cur, full); err != nil {
			return err
		}
		if err := p.wait(ctx, c, news); err != nil {
			return err
		}
	}
}

func (p *Poller) login(ctx context.Context, c *imapclient.Client) error {
	if p.cfg.OAuth2 == nil {
		return c.Login(p.user, p.cfg.Password).Wait()
	}
	return p.cfg.OAuth2.Authenticate(ctx, p.cfg.Mechanism, p.user, c.Authenticate)
}

// wait blocks until new mail may be there, IDLE is due for re-issuing, or a
// safety scan is due: with IDLE when the server has it, else by sleeping.
func (p *Poller) wait(ctx context.Context, c *imapclient.Client, news chan struct{}) error {
	d := min(p.cfg.SafetyScan, p.cfg.IdleRestart)
	if !c.Caps().Has(imap.CapIdle) && !c.Caps().Has(imap.CapIMAP4rev2) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(d, p.cfg.PollInterval)):
			return nil
		}
	}
	idle, err := c.Idle()
	if err != nil {
		return fmt.Errorf("imap idle: %w", err)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-news:
	case <-t.C:
	case <-c.Closed():
	}
	if err := idle.Close(); err != nil {
		return fmt.Errorf("imap idle: %w", err)
	}
	if err := idle.Wait(); err != nil {
		return fmt.Errorf("imap idle: %w", err)
	}
	return ctx.Err()
}

func (p *Poller) dial(news chan struct{}) (*imapclient.Client, error) {
	opts := &imapclient.Options{
		TLSConfig: p.cfg.TLS,
		// Runs on the client's read goroutine: only signal, never block.
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case news <- struct{}{}:
					default:
					}
				}
			},
		},
	}
	var c *imapclient.Client
	var err error
	switch p.mode {
	case modeTLS:
		c, err = imapclient.DialTLS(p.addr, opts)
	case modeStartTLS:
		c, err = imapclient.DialStartTLS(p.addr, opts)
	default:
		c, err = imapclient.DialInsecure(p.addr, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("imap connect %s: %w", p.addr, err)
	}
	return c, nil
}

func (p *Poller) ensureFolders(c *imapclient.Client) error {
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		return fmt.Errorf("imap list: %w", err)
	}
	for _, name := range []string{p.cfg.ProcessedFolder, p.cfg.QuarantineFolder} {
		if slices.ContainsFunc(boxes, func(b *imap.ListData) bool { return b.Mailbox == name }) {
			continue
		}
		if err := c.Create(name, nil).Wait(); err != nil {
			return fmt.Errorf("imap create %s: %w", name, err)
		}
		p.log.Info("imap poller: created folder", "folder", name)
	}
	return nil
}

// cursor is what the store keeps of the mailbox between sessions.
type cursor struct {
	UIDValidity uint32   `json:"uidvalidity"`
	LastUID     imap.UID `json:"last_uid"`
}

func (p *Poller) cursorName() string {
	return fmt.Sprintf("imap:%s@%s/%s", p.user, p.addr, p.mailbox)
}

func (p *Poller) loadCursor(ctx context.Context, validity uint32) (cursor, error) {
	b, err := p.store.Cursor(ctx, p.cursorName())
	if err != nil {
		return cursor{}, err
	}
	var cur cursor
	if b != nil {
		if err := json.Unmarshal(b, &cur); err != nil {
			p.log.Warn("imap poller: unreadable cursor, rescanning the mailbox", "err", err)
		}
	}
	if cur.UIDValidity != validity {
		if b != nil {
			p.log.Warn("imap poller: UIDVALIDITY changed, rescanning the mailbox", "was", cur.UIDValidity, "now", validity)
		}
		cur = cursor{UIDValidity: validity}
		return cur, p.saveCursor(ctx, cur)
	}
	return cur, nil
}

func (p *Poller) saveCursor(ctx context.Context, cur cursor) error {
	b, _ := json.Marshal(cur)
	return p.store.SetCursor(ctx, p.cursorName(), b)
}

// scan handles the messages newer than the cursor, or, for a full scan,
// every message of the inbox.
func (p *Poller) scan(ctx context.Context, c *imapclient.Client, cur *cursor, full bool) error {
	from := cur.LastUID + 1
	if full {
		from = 1
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: from, Stop: 0}}}}, nil).Wait()
	if err != nil {
		return fmt.Errorf("imap uid search: %w", err)
	}
	var uids []imap.UID
	for _, uid := range data.AllUIDs() {
		// "n:*" matches the last message even when its UID is below n.
		if uid >= from {
			uids = append(uids, uid)
		}
	}
	slices.Sort(uids)
	in := p.newIntake()
	// While one batch's last messages are handled, the next one is fetched
	// and its handling starts: the connection does not wait on the store.
	var running *batch
	for len(uids) > 0 {
		n := min(len(uids), p.cfg.BatchSize)
		next, err := p.fetch(ctx, c, uids[:n], in)
		if err != nil {
			if running != nil {
				running.wg.Wait()
			}
			return err
		}
		if running != nil {
			if err := p.settle(ctx, c, cur, running); err != nil {
				next.wg.Wait()
				return err
			}
		}
		running, uids = next, uids[n:]
	}
	if running != nil {
		return p.settle(ctx, c, cur, running)
	}
	return nil
}

// intake bounds what the batches of a scan hold at once, however they
// overlap: Workers handlers, and MaxMessageBytes of mail from the moment a
// message starts to arrive until its handler has finished with it, so that
// twenty 52 MB mails arriving together are not 1 GB in memory (issue 9).
type intake struct {
	workers chan struct{}
	// bytes is nil without a MaxMessageBytes.
	bytes *semaphore.Weighted
	limit int64
}

func (p *Poller) newIntake() *intake {
	in := &intake{workers: make(chan struct{}, p.cfg.Workers), limit: p.cfg.MaxMessageBytes}
	if in.limit > 0 {
		in.bytes = semaphore.NewWeighted(in.limit)
	}
	return in
}

// take holds size bytes of the budget (a message's size, at most the limit),
// waiting for them, and returns what release must give back.
func (in *intake) take(ctx context.Context, size int64) (int64, error) {
	if in.bytes == nil {
		return 0, nil
	}
	size = min(max(size, 0), in.limit)
	if err := in.bytes.Acquire(ctx, size); err != nil {
		return 0, err
	}
	return size, nil
}

func (in *intake) release(held int64) {
	if held > 0 {
		in.bytes.Release(held)
	}
}

// batch is a fetched batch whose messages are being handled.
type batch struct {
	last  imap.UID
	wg    sync.WaitGroup
	mu    sync.Mutex // guards moves
	moves map[Destination][]imap.UID
}

// fetch fetches a batch of messages, their sizes first, then their contents,
// and hands each to a handler as soon as it has arrived, within the scan's
// intake. It returns once every message has arrived, their handlers still
// running (see settle), or, on an error, once those started have ended.
func (p *Poller) fetch(ctx context.Context, c *imapclient.Client, uids []imap.UID, in *intake) (*batch, error) {
	b := &batch{last: slices.Max(uids), moves: map[Destination][]imap.UID{}}
	sizes, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("imap fetch sizes: %w", err)
	}
	var whole, headerOnly []imap.UID
	meta := map[imap.UID]*imapclient.FetchMessageBuffer{}
	for _, m := range sizes {
		meta[m.UID] = m
		if p.cfg.MaxMessageBytes > 0 && m.RFC822Size > p.cfg.MaxMessageBytes {
			headerOnly = append(headerOnly, m.UID)
		} else {
			whole = append(whole, m.UID)
		}
	}
	wholeSection := &imap.FetchItemBodySection{Peek: true}
	headerSection := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	if p.cfg.MaxMessageBytes > 0 {
		// A header is no smaller bomb than a body: the first MaxMessageBytes of it
		// are enough to refuse the mail.
		headerSection.Partial = &imap.SectionPartial{Size: p.cfg.MaxMessageBytes}
	}
	for _, part := range []struct {
		uids    []imap.UID
		section *imap.FetchItemBodySection
	}{{whole, wholeSection}, {headerOnly, headerSection}} {
		if len(part.uids) == 0 {
			continue
		}
		if err := p.fetchContents(ctx, c, b, meta, part.uids, part.section, in); err != nil {
			b.wg.Wait()
			return nil, err
		}
	}
	return b, nil
}

// fetchContents fetches section of each of uids and starts its handler.
func (p *Poller) fetchContents(ctx context.Context, c *imapclient.Client, b *batch, meta map[imap.UID]*imapclient.FetchMessageBuffer,
	uids []imap.UID, section *imap.FetchItemBodySection, in *intake) error {
	cmd := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}})
	var err error
	for data := cmd.Next(); data != nil; data = cmd.Next() {
		uid, raw, held, found, ferr := readFetched(ctx, data, in)
		if ferr != nil {
			err = ferr
			break
		}
		info := meta[uid]
		if info == nil || !found {
			in.release(held)
			continue // expunged meanwhile
		}
		msg := Message{UID: uid, Size: info.RFC822Size, Raw: raw,
			TooLarge: section.Specifier == imap.PartSpecifierHeader, Received: info.InternalDate}
		in.workers <- struct{}{}
		b.wg.Go(func() {
			defer func() { <-in.workers; in.release(held) }()
			if dest, ok := p.handleOne(ctx, msg); ok {
				b.mu.Lock()
				b.moves[dest] = append(b.moves[dest], msg.UID)
				b.mu.Unlock()
			}
		})
	}
	if err = errors.Join(err, cmd.Close()); err != nil {
		return fmt.Errorf("imap fetch: %w", err)
	}
	return nil
}

// settle waits for b's handlers, moves its messages out of the inbox and
// records its last UID as seen.
func (p *Poller) settle(ctx context.Context, c *imapclient.Client, cur *cursor, b *batch) error {
	b.wg.Wait()
	for dest, folder := range map[Destination]string{Processed: p.cfg.ProcessedFolder, Quarantine: p.cfg.QuarantineFolder} {
		if len(b.moves[dest]) == 0 {
			continue
		}
		if _, err := c.Move(imap.UIDSetNum(b.moves[dest]...), folder).Wait(); err != nil {
			return fmt.Errorf("imap move to %s: %w", folder, err)
		}
	}
	if b.last > cur.LastUID {
		cur.LastUID = b.last
		return p.saveCursor(ctx, *cur)
	}
	return nil
}

// readFetched reads a fetched message's UID and body section, and says
// whether it had one. Before the body is read, its size (at most the limit)
// is taken from in's budget, and held is what the caller gives back once done
// with raw. The body is read into a buffer of the size the server announces
// for it when that is within the limit (or there is no limit): go-imap's
// Collect reads it with io.ReadAll, which grows a buffer from 512 bytes,
// copying it a dozen times for a 100 KB mail (a tenth of serve's processor
// time at ingest, perf record).
func readFetched(ctx context.Context, data *imapclient.FetchMessageData, in *intake) (uid imap.UID, raw []byte, held int64, found bool, err error) {
	for item := data.Next(); item != nil; item = data.Next() {
		switch item := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = item.UID
		case imapclient.FetchItemDataBodySection:
			found = true
			if item.Literal == nil {
				continue
			}
			size := item.Literal.Size()
			if held, err = in.take(ctx, size); err != nil {
				return 0, nil, 0, false, err
			}
			if in.limit <= 0 || size <= in.limit {
				raw = make([]byte, size)
				_, err = io.ReadFull(item.Literal, raw)
			} else {
				raw, err = io.ReadAll(item.Literal)
			}
			if err != nil {
				in.release(held)
				return 0, nil, 0, false, err
			}
		}
	}
	return uid, raw, held, found, nil
}

// handleOne hands m to the handler, counts the outcome and says where m goes,
// or false when it stays in the inbox (the handler failed).
func (p *Poller) handleOne(ctx context.Context, m Message) (Destination, bool) {
	dest, reason, err := p.handler.Handle(ctx, m)
	if err != nil {
		p.log.Warn("imap poller: handling failed, the message stays in the inbox", "uid", m.UID, "err", err)
		p.metrics.count("retry")
		return 0, false
	}
	p.metrics.handled(m.Received, p.now())
	switch dest {
	case Quarantine:
		p.log.Info("imap poller: quarantined", "uid", m.UID, "reason", reason)
		p.metrics.count("quarantine")
	case Verified:
		p.metrics.count("verification")
		dest = Processed
	default:
		p.metrics.count("processed")
	}
	return dest, true
}
