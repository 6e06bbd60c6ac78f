package poller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
)

// mailbox is an IMAP account the poller watches in a test: in-process
// (imapmemserver) or a real Dovecot.
type mailbox struct {
	addr, user, password string
	// idling, for the in-process server, is told when a session starts IDLE.
	idling <-chan struct{}
	// wholeFetches, for the in-process server, counts the fetches of whole
	// messages.
	wholeFetches *atomic.Int32
}

func (m mailbox) url() string { return fmt.Sprintf("imap://%s@%s/INBOX", m.user, m.addr) }

func (m mailbox) client(t testing.TB) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(m.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(m.user, m.password).Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (m mailbox) append(t testing.TB, msgs ...string) {
	t.Helper()
	c := m.client(t)
	for _, msg := range msgs {
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		if _, err := cmd.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

// count returns how many messages each folder holds, and whether any
// message in the inbox has \Seen.
func (m mailbox) count(t testing.TB, folders ...string) (map[string]int, bool) {
	t.Helper()
	c := m.client(t)
	counts := map[string]int{}
	seen := false
	for _, f := range folders {
		d, err := c.Select(f, nil).Wait()
		if err != nil {
			counts[f] = -1
			continue
		}
		counts[f] = int(d.NumMessages)
		if f == "INBOX" && d.NumMessages > 0 {
			msgs, err := c.Fetch(imap.SeqSetNum(seqs(d.NumMessages)...), &imap.FetchOptions{Flags: true}).Collect()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				for _, fl := range m.Flags {
					seen = seen || fl == imap.FlagSeen
				}
			}
		}
	}
	return counts, seen
}

func seqs(n uint32) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(i + 1)
	}
	return out
}

func memMailbox(t *testing.T) mailbox {
	t.Helper()
	return memServer(t, imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIdle: {}, imap.CapMove: {}, imap.CapUIDPlus: {}})
}

// memServer is an in-process IMAP server with the given capabilities.
func memServer(t *testing.T, caps imap.CapSet) mailbox {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("parapheur", "secret")
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	idling := make(chan struct{}, 1)
	wholeFetches := &atomic.Int32{}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return testSession{mem.NewSession().(imapserver.SessionIMAP4rev2), idling, wholeFetches}, nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
		Logger:       slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return mailbox{addr: ln.Addr().String(), user: "parapheur", password: "secret", idling: idling, wholeFetches: wholeFetches}
}

// testSession is imapmemserver's session made to start IDLE as Dovecot does: by reporting
// the changes made since the last command (imapmemserver keeps them until the next
// change), and telling idling that it idles. It counts the fetches of whole messages in
// wholeFetches.
type testSession struct {
	imapserver.SessionIMAP4rev2 // with MOVE
	idling                      chan<- struct{}
	wholeFetches                *atomic.Int32
}

func (s testSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if err := s.Poll(w, true); err != nil {
		return err
	}
	select {
	case s.idling <- struct{}{}:
	default:
	}
	return s.SessionIMAP4rev2.Idle(w, stop)
}

func (s testSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	for _, section := range options.BodySection {
		if section.Specifier == imap.PartSpecifierNone && len(section.Part) == 0 {
			s.wholeFetches.Add(1)
			break
		}
	}
	return s.SessionIMAP4rev2.Fetch(w, numSet, options)
}

// handlerFunc is a Handler function.
type handlerFunc func(ctx context.Context, m Message) (Destination, string, error)

func (f handlerFunc) Handle(ctx context.Context, m Message) (Destination, string, error) {
	return f(ctx, m)
}

func testMessage(id, subject string) string {
	return fmt.Sprintf("From: agent@org.example\r\nTo: parapheur@org.example\r\nSubject: %s\r\nMessage-ID: <%s@org.example>\r\n\r\nSignataire: marie@partner.example\r\n", subject, id)
}

// recorder is a Handler that remembers what it saw. Subjects decide the
// outcome: "refuse" quarantines, "flaky" fails the first time.
type recorder struct {
	mu      sync.Mutex
	handled map[string]int
	full    map[string]bool
	failed  map[string]bool
	crash   func(id string) bool
	notify  chan string // the messages handled
	failure chan string // the messages whose handling failed
}

func newRecorder() *recorder {
	return &recorder{handled: map[string]int{}, full: map[string]bool{}, failed: map[string]bool{},
		notify: make(chan string, 2000), failure: make(chan string, 2000)}
}

func (r *recorder) Handle(ctx context.Context, m Message) (Destination, string, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		return Quarantine, "unreadable", nil
	}
	id := msg.Header.Get("Message-ID")
	subject := msg.Header.Get("Subject")
	r.mu.Lock()
	defer r.mu.Unlock()
	if strings.Contains(subject, "flaky") && !r.failed[id] {
		r.failed[id] = true
		r.failure <- id
		return 0, "", fmt.Errorf("store unavailable")
	}
	r.handled[id]++
	r.full[id] = !m.TooLarge
	r.notify <- id
	if r.crash != nil && r.crash(id) {
		return 0, "", context.Canceled
	}
	if strings.Contains(subject, "refuse") || m.TooLarge {
		return Quarantine, "refused for the test", nil
	}
	return Processed, "", nil
}

func (r *recorder) times(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.handled[id]
}

func (r *recorder) wait(t testing.TB, n int) {
	t.Helper()
	r.waitWithin(t, n, 30*time.Second)
}

// waitWithin waits until n more messages were handled, at most d.
func (r *recorder) waitWithin(t testing.TB, n int, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for i := 0; i < n; i++ {
		select {
		case <-r.notify:
		case <-deadline:
			t.Fatalf("only %d of %d messages were handled in %v", i, n, d)
		}
	}
}

// waitFailure waits until a handling failed.
func (r *recorder) waitFailure(t testing.TB) {
	t.Helper()
	select {
	case <-r.failure:
	case <-time.After(30 * time.Second):
		t.Fatal("no handling failed in 30 s")
	}
}

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "parapheur.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

type running struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
}

func (r running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the poller did not stop within 10 s")
	}
}

func start(t testing.TB, mb mailbox, st store.Store, h Handler, tune func(*Config)) running {
	t.Helper()
	return startMetered(t, mb, st, h, tune, nil)
}

// startMetered is start with the poller's metrics counted in m.
func startMetered(t testing.TB, mb mailbox, st store.Store, h Handler, tune func(*Config), m *Metrics) running {
	t.Helper()
	cfg := Config{URL: mb.url(), Password: mb.password, SafetyScan: time.Hour, IdleRestart: time.Minute,
		LeaseTTL: 3 * time.Second, Holder: "test", MaxMessageBytes: 4096}
	if tune != nil {
		tune(&cfg)
	}
	p, err := New(cfg, st, h, slog.New(slog.DiscardHandler), m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	r := running{cancel, done}
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// waitCounts polls the folders until they hold want.
func waitCounts(t testing.TB, mb mailbox, want map[string]int) {
	t.Helper()
	var got map[string]int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got, _ = mb.count(t, "INBOX", "Processed", "Quarantine")
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
	}
	t.Fatalf("folders = %v, want %v", got, want)
}

// suite runs the poller's behaviour against one kind of server.
func suite(t *testing.T, newMailbox func(t *testing.T) mailbox) {
	t.Run("existing mail is handled and moved", func(t *testing.T) {
		mb := newMailbox(t)
		mb.append(t, testMessage("a", "Convention"), testMessage("b", "please refuse"), testMessage("c", "Avenant"))
		rec := newRecorder()
		start(t, mb, openStore(t), rec, nil)
		rec.wait(t, 3)
		waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": 2, "Quarantine": 1})
	})

	t.Run("IDLE wakes the poller for new mail", func(t *testing.T) {
		mb := newMailbox(t)
		mb.append(t, testMessage("first", "Convention"))
		rec := newRecorder()
		// Neither a safety scan nor the re-issuing of IDLE within the test: only the
		// server's notification can bring the second mail in time.
		start(t, mb, openStore(t), rec, func(c *Config) { c.IdleRestart, c.SafetyScan = time.Hour, time.Hour })
		rec.wait(t, 1) // the session is up and has scanned the inbox
		if mb.idling != nil {
			<-mb.idling // the mail arrives during IDLE, not before it
		}
		mb.append(t, testMessage("idle", "Convention"))
		rec.wait(t, 1)
		waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": 2, "Quarantine": 0})
	})

	t.Run("a failure that may pass leaves the mail in the inbox, unseen, until the next scan", func(t *testing.T) {
		mb := newMailbox(t)
		mb.append(t, testMessage("flaky", "flaky convention"), testMessage("ok", "Convention"))
		rec := newRecorder()
		start(t, mb, openStore(t), rec, func(c *Config) { c.SafetyScan = 500 * time.Millisecond })
		rec.wait(t, 2) // "ok", then "flaky" on its second try
		waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": 2, "Quarantine": 0})
		if n := rec.times("<flaky@org.example>"); n != 1 {
			t.Fatalf("flaky handled %d times after its failure, want 1", n)
		}
	})

	t.Run("the inbox keeps no \\Seen flag on mail left behind", func(t *testing.T) {
		mb := newMailbox(t)
		mb.append(t, testMessage("flaky2", "flaky one"))
		rec := newRecorder()
		r := start(t, mb, openStore(t), rec, nil)
		rec.waitFailure(t)
		r.stop(t)
		counts, seen := mb.count(t, "INBOX")
		if counts["INBOX"] != 1 || seen {
			t.Fatalf("inbox = %v, seen = %v: the failed mail must stay unread in the inbox", counts, seen)
		}
	})

	t.Run("a message too large is handed over as its header only", func(t *testing.T) {
		mb := newMailbox(t)
		mb.append(t, testMessage("big", "Convention")+strings.Repeat("x", 5000)+"\r\n")
		rec := newRecorder()
		start(t, mb, openStore(t), rec, nil)
		rec.wait(t, 1)
		if rec.full["<big@org.example>"] {
			t.Fatal("a message over MaxMessageBytes was fetched whole")
		}
		waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": 0, "Quarantine": 1})
	})

	t.Run("a crash between handling and the move hands the mail over again", func(t *testing.T) {
		mb := newMailbox(t)
		mb.append(t, testMessage("crash", "Convention"))
		st := openStore(t)
		rec := newRecorder()
		var once sync.Once
		crashed := make(chan struct{})
		var r running
		rec.crash = func(string) bool {
			hit := false
			once.Do(func() { hit = true; close(crashed) })
			return hit
		}
		r = start(t, mb, st, rec, func(c *Config) { c.LeaseTTL = time.Second })
		<-crashed
		r.stop(t)
		counts, _ := mb.count(t, "INBOX")
		if counts["INBOX"] != 1 {
			t.Fatalf("after the crash the mail must still be in the inbox: %v", counts)
		}
		start(t, mb, st, rec, func(c *Config) { c.LeaseTTL = time.Second })
		waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": 1, "Quarantine": 0})
		if n := rec.times("<crash@org.example>"); n != 2 {
			t.Fatalf("handled %d times, want 2 (before and after the crash)", n)
		}
	})

	t.Run("only the lease holder polls", func(t *testing.T) {
		mb := newMailbox(t)
		st := openStore(t)
		if ok, err := st.AcquireLease(context.Background(), LeaseName, "other-replica", time.Now(), time.Hour); err != nil || !ok {
			t.Fatalf("lease: %v %v", ok, err)
		}
		mb.append(t, testMessage("lease", "Convention"))
		rec := newRecorder()
		watched := &leaseStore{Store: st, refused: make(chan struct{}, 100)}
		start(t, mb, watched, rec, nil)
		for range 2 { // asked twice, refused twice: it had time to poll if it would
			select {
			case <-watched.refused:
			case <-time.After(30 * time.Second):
				t.Fatal("the poller did not ask for the lease in 30 s")
			}
		}
		if n := rec.times("<lease@org.example>"); n != 0 {
			t.Fatal("a replica without the lease polled the mailbox")
		}
		if err := st.ReleaseLease(context.Background(), LeaseName, "other-replica"); err != nil {
			t.Fatal(err)
		}
		rec.wait(t, 1)
	})
}

func TestPollerMemServer(t *testing.T) {
	suite(t, memMailbox)
}

// A server without IDLE (nor MOVE) is polled, and mail still moves out of
// the inbox (MOVE falls back to COPY + EXPUNGE in the client).
func TestPollingWithoutIdle(t *testing.T) {
	mb := memServer(t, imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}})
	mb.append(t, testMessage("first", "Convention"))
	rec := newRecorder()
	start(t, mb, openStore(t), rec, func(c *Config) { c.PollInterval = 200 * time.Millisecond })
	rec.wait(t, 1) // the session is up and has scanned the inbox
	mb.append(t, testMessage("polled", "Convention"))
	rec.wait(t, 1)
	waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": 2, "Quarantine": 0})
}

func TestNewRefusesBadURLs(t *testing.T) {
	for url, want := range map[string]string{
		"http://u@host/INBOX": "scheme must be imaps",
		"imaps://host/INBOX":  "no user name",
		"imap://u@[::1/INBOX": "imap url",
		"pop3://u@host/":      "scheme must be imaps",
	} {
		_, err := New(Config{URL: url}, nil, nil, nil, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%q) = %v, want an error saying %q", url, err, want)
		}
	}
}

// leaseStore is a store whose lease a test watches and breaks.
type leaseStore struct {
	store.Store
	// killed: ReleaseLease does nothing, as for a process killed with kill -9.
	killed bool
	// cut: AcquireLease fails, as when the store is out of reach.
	cut atomic.Bool
	// refused, if not nil, is told of every AcquireLease that found the lease held by another.
	refused chan struct{}
	// taken, if not nil, is called when AcquireLease gives the lease.
	taken func()
}

func (s *leaseStore) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	if s.cut.Load() {
		return false, errors.New("store out of reach")
	}
	held, err := s.Store.AcquireLease(ctx, name, holder, now, ttl)
	switch {
	case err == nil && held && s.taken != nil:
		s.taken()
	case err == nil && !held && s.refused != nil:
		s.refused <- struct{}{}
	}
	return held, err
}

func (s *leaseStore) ReleaseLease(ctx context.Context, name, holder string) error {
	if s.killed {
		return nil
	}
	return s.Store.ReleaseLease(ctx, name, holder)
}

// TestTakeoverAfterKill kills the polling process without its releasing the lease (kill -9)
// and starts another, as a restarted single instance or a second replica: it takes the
// lease as soon as it expires, and mail sent meanwhile is handled within the 10 s that
// issue 9 asks, whatever the moment of the kill (6 s of lease, then a try every 2 s).
func TestTakeoverAfterKill(t *testing.T) {
	mb := memMailbox(t)
	st := openStore(t)
	mb.append(t, testMessage("before", "Convention"))
	rec := newRecorder()
	defaultLease := func(c *Config) { c.LeaseTTL = 0 }
	first := start(t, mb, &leaseStore{Store: st, killed: true}, rec, func(c *Config) { defaultLease(c); c.Holder = "host/1" })
	rec.wait(t, 1) // it holds the lease and polls
	first.stop(t)
	if held, err := st.AcquireLease(context.Background(), LeaseName, "probe", time.Now(), time.Second); err != nil || held {
		t.Fatalf("the killed poller's lease is free (%v, %v): the kill was not simulated", held, err)
	}

	mb.append(t, testMessage("after", "Convention"))
	start(t, mb, st, rec, func(c *Config) { defaultLease(c); c.Holder = "host/2" })
	rec.waitWithin(t, 1, 20*time.Second)
	waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": 2, "Quarantine": 0})
}

// TestLostLeaseStopsPolling cuts the polling replica off the store: it stops polling
// before its lease expires, so that the replica that takes the lease over never polls
// at the same time.
func TestLostLeaseStopsPolling(t *testing.T) {
	mb := memMailbox(t)
	st := openStore(t)
	mb.append(t, testMessage("before", "Convention"))
	rec := newRecorder()

	var mu sync.Mutex
	var events []string
	stopped := make(chan struct{}, 10)
	record := func(e string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}
	cutOff := &leaseStore{Store: st}
	cfg := Config{URL: mb.url(), Password: mb.password, SafetyScan: time.Hour, IdleRestart: time.Hour, Holder: "host/1"}
	log := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) {
		if bytes.Contains(b, []byte("session ended")) && bytes.Contains(b, []byte(errLeaseLost.Error())) {
			record("first stopped polling")
			stopped <- struct{}{}
		}
	}), nil))
	p, err := New(cfg, cutOff, rec, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	rec.wait(t, 1) // it holds the lease and polls

	cutOff.cut.Store(true)
	second := &leaseStore{Store: st, taken: func() { record("second took the lease") }}
	start(t, mb, second, rec, func(c *Config) { c.LeaseTTL = 0; c.Holder = "host/2" })
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the replica cut off the store still polls after 30 s")
	}
	mb.append(t, testMessage("after", "Convention"))
	rec.wait(t, 1) // the second replica polls
	mu.Lock()
	defer mu.Unlock()
	if len(events) < 2 || events[0] != "first stopped polling" || events[1] != "second took the lease" {
		t.Fatalf("events %q, want the first replica to stop polling before the second takes the lease", events)
	}
}

// writerFunc is an io.Writer calling a function with each write.
type writerFunc func([]byte)

func (w writerFunc) Write(b []byte) (int, error) {
	w(b)
	return len(b), nil
}

// TestBatchBoundedByBytes sends many large mails at once: the poller holds at most
// MaxMessageBytes of them at once from their arrival to the end of their handling (issue 9
// §2.3: twenty 52 MB mails arriving together reached 2.3 GB), while fetching a batch's
// messages in one command, and still hands every one over. Each handler waits a little, so
// that without the bound all would be in the handlers together.
func TestBatchBoundedByBytes(t *testing.T) {
	const limit = 64 << 10
	mb := memMailbox(t)
	var msgs []string
	for i := range 30 {
		size := (1 + i%7) * 8 << 10 // 8 to 56 KiB
		msgs = append(msgs, testMessage(fmt.Sprintf("big%d", i), "Convention")+strings.Repeat("x", size)+"\r\n")
	}
	msgs = append(msgs, testMessage("over", "Convention")+strings.Repeat("x", 2*limit)+"\r\n") // header only
	mb.append(t, msgs...)
	rec := newRecorder()
	var mu sync.Mutex
	held, peak, together, in := 0, 0, 0, 0
	handler := handlerFunc(func(ctx context.Context, m Message) (Destination, string, error) {
		mu.Lock()
		held, in = held+len(m.Raw), in+1
		peak, together = max(peak, held), max(together, in)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		held, in = held-len(m.Raw), in-1
		mu.Unlock()
		return rec.Handle(ctx, m)
	})
	start(t, mb, openStore(t), handler, func(c *Config) { c.MaxMessageBytes = limit; c.BatchSize = 8 })
	rec.wait(t, len(msgs))
	waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": len(msgs) - 1, "Quarantine": 1})

	mu.Lock()
	defer mu.Unlock()
	if peak > limit {
		t.Errorf("the handlers held %d bytes of mail at once, more than MaxMessageBytes %d", peak, limit)
	}
	if together < 2 {
		t.Errorf("at most %d message(s) handled at once: messages that fit together are not handled together", together)
	}
	if fetches, batches := int(mb.wholeFetches.Load()), (len(msgs)+7)/8; fetches > batches {
		t.Errorf("%d fetches of whole messages for %d batches: messages of a batch are not fetched together", fetches, batches)
	}
}

// TestBatchesOverlap checks that the next batch is fetched and its handling
// started while the last one is still being handled: the first message's
// handler waits for the third's, in the next batch of two.
func TestBatchesOverlap(t *testing.T) {
	mb := memMailbox(t)
	var msgs []string
	for i := range 4 {
		msgs = append(msgs, testMessage(fmt.Sprintf("o%d", i), "Convention"))
	}
	mb.append(t, msgs...)
	third := make(chan struct{})
	var waited atomic.Bool
	h := handlerFunc(func(ctx context.Context, m Message) (Destination, string, error) {
		switch {
		case bytes.Contains(m.Raw, []byte("<o2@org.example>")):
			close(third)
		case bytes.Contains(m.Raw, []byte("<o0@org.example>")):
			select {
			case <-third:
				waited.Store(true)
			case <-time.After(5 * time.Second):
			}
		}
		return Processed, "", nil
	})
	start(t, mb, openStore(t), h, func(c *Config) { c.BatchSize = 2 })
	waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": len(msgs), "Quarantine": 0})
	if !waited.Load() {
		t.Error("the next batch was not handled while the first one was: batches do not overlap")
	}
}

// A mail to the verification address goes to the processed folder and is
// counted with an outcome of its own.
func TestVerifiedGoesToProcessedCountedApart(t *testing.T) {
	mb := memMailbox(t)
	mb.append(t, testMessage("v", "Vérification"), testMessage("s", "Convention"))
	reg := prometheus.NewRegistry()
	h := handlerFunc(func(ctx context.Context, m Message) (Destination, string, error) {
		if bytes.Contains(m.Raw, []byte("<v@org.example>")) {
			return Verified, "", nil
		}
		return Processed, "", nil
	})
	r := startMetered(t, mb, openStore(t), h, nil, NewMetrics(reg))
	waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": 2, "Quarantine": 0})
	got := map[string]float64{}
	var lagged uint64
	held := -1.0
	gather := func() {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			switch f.GetName() {
			case "parapheur_imap_messages_total":
				for _, m := range f.GetMetric() {
					got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
				}
			case "parapheur_imap_lag_seconds":
				lagged = f.GetMetric()[0].GetHistogram().GetSampleCount()
			case "parapheur_imap_lease_held":
				held = f.GetMetric()[0].GetGauge().GetValue()
			}
		}
	}
	gather()
	if got["verification"] != 1 || got["processed"] != 1 || len(got) != 2 {
		t.Fatalf("messages by outcome: %v", got)
	}
	if lagged != 2 || held != 1 {
		t.Fatalf("%d lags observed, lease held %v: want 2 and 1", lagged, held)
	}
	r.cancel()
	<-r.done
	gather()
	if held != 0 {
		t.Fatalf("lease held %v after the poller stopped, want 0", held)
	}
}

// TestBatchHandledConcurrently checks that the messages of a batch are handled
// Workers at once, no more, and all moved once handled: each handler waits
// until Workers handlers are in at once (or gives up after a while, as
// handlers run one by one would have to).
func TestBatchHandledConcurrently(t *testing.T) {
	const workers, messages = 4, 12
	mb := memMailbox(t)
	var msgs []string
	for i := range messages {
		msgs = append(msgs, testMessage(fmt.Sprintf("c%d", i), "Convention"))
	}
	mb.append(t, msgs...)
	var active, peak atomic.Int32
	full := make(chan struct{})
	var once sync.Once
	h := handlerFunc(func(ctx context.Context, m Message) (Destination, string, error) {
		n := active.Add(1)
		defer active.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if n == workers {
			once.Do(func() { close(full) })
		}
		select {
		case <-full:
		case <-time.After(2 * time.Second):
		}
		return Processed, "", nil
	})
	start(t, mb, openStore(t), h, func(c *Config) { c.Workers = workers })
	waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": messages, "Quarantine": 0})
	if p := peak.Load(); p != workers {
		t.Errorf("at most %d messages were handled at once, want Workers = %d", p, workers)
	}
}
