package sender

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox"
)

// rig is the package's Postfix and Dovecot, started once: they are slow to
// stop. Its oauth2 passdb asks tokens.
var (
	rig    *testrig.Mail
	tokens *testrig.OAuth2
)

func TestMain(m *testing.M) {
	os.Exit(testrig.RunWithOAuth2Mail(m, testrig.MailOptions{}, &rig, &tokens))
}

const (
	gateway = "parapheur@org.example"
	domain  = "org.example"
)

// returnPathKey tags the return paths of the tests' mails.
var returnPathKey = bytes.Repeat([]byte{3}, mailid.KeySize)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is a store, an engine and a sender to the rig's Postfix.
type fixture struct {
	st    store.Store
	eng   *engine.Engine
	clock *clock
	dials atomic.Int64
	s     *Sender
	w     *Worker
}

// newFixture opens a bbolt store and a sender; edit applies changes to the
// configuration before New.
func newFixture(t testing.TB, edit func(*Config)) *fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, clock: &clock{t: time.Now()}}
	f.eng = &engine.Engine{Store: st, CodeKey: bytes.Repeat([]byte{7}, 32), Clock: f.clock.now}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	cfg := Config{
		Relay: Relay{
			URL: "smtp://" + rig.SMTPAddr(), LocalName: "gateway.org.example", Timeout: 10 * time.Second,
			Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				f.dials.Add(1)
				return dialer.DialContext(ctx, network, addr)
			},
		},
		Composer: &testComposer{st: st},
		Outbox:   outbox.Queue{Store: st, Engine: f.eng, Now: f.clock.now},
		Workers:  1,
		TempDir:  t.TempDir(),
		Poll:     10 * time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	if f.s, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	f.w = f.s.Worker("test")
	t.Cleanup(func() { f.w.Close() })
	return f
}

// envelope creates an envelope from agent@org.example whose one signer is
// signer; its creation queues the acknowledgement and the invitation.
func (f *fixture) envelope(t testing.TB, signer string) *workflow.Envelope {
	t.Helper()
	env, err := f.eng.Create(context.Background(), workflow.Draft{
		ID: engine.EnvelopeID(fmt.Sprintf("%s %d", signer, time.Now().UnixNano())), Title: "Convention de partenariat",
		Sender:    workflow.Party{Name: "Agent", Email: "agent@org.example"},
		Documents: []workflow.Document{{Name: "convention.pdf", Pages: 1, Original: strings.Repeat("ab", 32), Size: 1000}},
		Steps:     []workflow.DraftStep{{Role: workflow.Signer, Parties: []workflow.Party{{Name: "Signer", Email: signer}}}},
		Deadline:  f.clock.now().Add(30 * 24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// drain steps the worker until no item is due.
func (f *fixture) drain(t testing.TB) int {
	t.Helper()
	n := 0
	for {
		worked, err := f.w.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !worked {
			return n
		}
		n++
	}
}

// queued takes every item of the mail queue that is due by at (leaving
// them claimed by a holder nobody uses) and returns them by notice and
// addressee ("invitation/r1").
func (f *fixture) queued(t testing.TB, at time.Time) map[string]*store.Item {
	t.Helper()
	items := map[string]*store.Item{}
	for {
		it, err := f.st.Claim(context.Background(), engine.MailQueue, "inspector", at, time.Hour)
		if errors.Is(err, store.ErrEmpty) {
			return items
		}
		if err != nil {
			t.Fatal(err)
		}
		job, err := f.eng.OpenJob(it)
		if err != nil {
			t.Fatal(err)
		}
		items[string(job.Notice)+"/"+job.To] = it
	}
}

// attempts returns the envelope's delivery-attempt audit records.
func (f *fixture) attempts(t testing.TB, envelopeID string) []audit.Record {
	t.Helper()
	trail, err := f.st.AuditTrail(context.Background(), envelopeID)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for _, r := range trail {
		if r.Type == audit.DeliveryAttempt {
			out = append(out, r)
		}
	}
	return out
}

// testComposer writes a small plain message, or one with an attachment of
// Attach bytes streamed from a generator, with the Message-ID of the item.
// Items without an envelope carry the address in Job.To (benchmarks).
// It stands in for the compose package in this package's tests.
type testComposer struct {
	st       store.Store
	mu       sync.Mutex
	ids      map[string]string     // "notice/to" of the job → item ID
	jobs     map[string]engine.Job // "notice/to" of the job → the job
	attempts map[string]int        // "notice/to" of the job → the item's Attempts
	body     int                   // bytes of text; default 200
	attach   int64                 // bytes of attachment; 0 for none
}

func (c *testComposer) Compose(ctx context.Context, it *store.Item, job engine.Job, w io.Writer) (Route, error) {
	c.mu.Lock()
	if c.ids == nil {
		c.ids, c.jobs, c.attempts = map[string]string{}, map[string]engine.Job{}, map[string]int{}
	}
	key := string(job.Notice) + "/" + job.To
	c.ids[key], c.jobs[key], c.attempts[key] = it.ID, job, it.Attempts
	c.mu.Unlock()
	id, err := MessageID(it.ID, job, domain)
	if err != nil {
		return Route{}, err
	}
	to, from := job.To, gateway
	if it.EnvelopeID != "" {
		env, err := c.st.Get(ctx, it.EnvelopeID)
		if err != nil {
			return Route{}, err
		}
		rid := ""
		if job.To == engine.SenderAddressee {
			to = env.Sender.Email
		} else if r := env.Recipient(job.To); r != nil {
			to, rid = r.Email, r.ID
		} else {
			return Route{}, fmt.Errorf("no recipient %q", job.To)
		}
		if from, err = mailid.ReturnPath(returnPathKey, gateway, env.ID, rid); err != nil {
			return Route{}, err
		}
	}
	var h mail.Header
	h.SetAddressList("From", []*mail.Address{{Name: "Parapheur", Address: gateway}})
	h.SetAddressList("To", []*mail.Address{{Address: to}})
	h.SetSubject("Test " + string(job.Notice))
	h.SetMessageID(id)
	h.SetDate(time.Unix(1700000000, 0))
	text := strings.Repeat("Bonjour, ceci est un test.\r\n", max(c.body, 200)/28+1)
	if c.attach == 0 {
		h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
		body, err := mail.CreateSingleInlineWriter(w, h)
		if err != nil {
			return Route{}, err
		}
		if _, err := io.WriteString(body, text); err != nil {
			return Route{}, err
		}
		return Route{From: from, To: []string{to}}, body.Close()
	}
	mw, err := mail.CreateWriter(w, h)
	if err != nil {
		return Route{}, err
	}
	var th mail.InlineHeader
	th.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	tw, err := mw.CreateSingleInline(th)
	if err != nil {
		return Route{}, err
	}
	io.WriteString(tw, text)
	tw.Close()
	var ah mail.AttachmentHeader
	ah.SetContentType("application/pdf", nil)
	ah.SetFilename("signed.pdf")
	aw, err := mw.CreateAttachment(ah)
	if err != nil {
		return Route{}, err
	}
	if _, err := io.Copy(aw, attachment(c.attach)); err != nil {
		return Route{}, err
	}
	if err := aw.Close(); err != nil {
		return Route{}, err
	}
	return Route{From: from, To: []string{to}}, mw.Close()
}

// attachment streams n pseudo-random-looking bytes without holding them.
func attachment(n int64) io.Reader {
	return io.LimitReader(&counterReader{}, n)
}

type counterReader struct{ i uint64 }

func (r *counterReader) Read(p []byte) (int, error) {
	for k := range p {
		r.i = r.i*6364136223846793005 + 1442695040888963407
		p[k] = byte(r.i >> 56)
	}
	return len(p), nil
}

func sha(r io.Reader) string {
	h := sha256.New()
	io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil))
}

// fetch waits until the message with Message-ID id is in user's INBOX and
// returns it.
func fetch(t testing.TB, user, id string) []byte {
	t.Helper()
	return fetchBy(t, user, "Message-ID", id)
}

// fetchBy waits until the message whose field is value is in user's INBOX
// and returns it.
func fetchBy(t testing.TB, user, field, id string) []byte {
	t.Helper()
	raw, err := rig.WaitMessage(user, field, id, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// messageID is the Message-ID of the mail composed for key, "notice/to".
func (f *fixture) messageID(t testing.TB, key string) string {
	t.Helper()
	c := f.s.cfg.Composer.(*testComposer)
	c.mu.Lock()
	itemID, ok := c.ids[key]
	job := c.jobs[key]
	c.mu.Unlock()
	if !ok {
		t.Fatalf("no %s mail was composed", key)
	}
	id, err := MessageID(itemID, job, domain)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
