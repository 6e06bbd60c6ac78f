package ingest

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/mailin/poller"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow/engine"
)

// The package's Dovecot, started once in TestMain.
var (
	rig     *testrig.Mail
	boxes   []string
	nextBox atomic.Int32
)

func TestMain(m *testing.M) {
	for i := 1; i <= 40; i++ {
		boxes = append(boxes, fmt.Sprintf("in%d", i))
	}
	// The gateway's own mailbox and the people of the delegation test.
	users := append(slices.Clone(boxes), "parapheur", "agent", "marie", "louise")
	os.Exit(testrig.RunWithMail(m, testrig.MailOptions{Users: users}, &rig))
}

// freshBox returns the login of an empty mailbox of the rig.
func freshBox(tb testing.TB) string {
	tb.Helper()
	n := int(nextBox.Add(1))
	if n > len(boxes) {
		tb.Fatalf("more than %d mailboxes asked of the rig", len(boxes))
	}
	return boxes[n-1]
}

func appendAll(tb testing.TB, user string, msgs [][]byte) {
	tb.Helper()
	c, err := imapclient.DialInsecure(rig.IMAPAddr(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, rig.Password()).Wait(); err != nil {
		tb.Fatal(err)
	}
	for _, msg := range msgs {
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		if _, err := cmd.Write(msg); err != nil {
			tb.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			tb.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			tb.Fatal(err)
		}
	}
}

// counting wraps a handler and signals each message it handled.
type counting struct {
	poller.Handler
	done chan poller.Destination
}

func (c counting) Handle(ctx context.Context, m poller.Message) (poller.Destination, string, error) {
	d, reason, err := c.Handler.Handle(ctx, m)
	if err == nil {
		c.done <- d
	}
	return d, reason, err
}

// run starts a poller on user's inbox with handler h until the test ends.
func run(tb testing.TB, user string, st store.Store, h poller.Handler) {
	tb.Helper()
	p, err := poller.New(poller.Config{URL: fmt.Sprintf("imap://%s@%s/INBOX", user, rig.IMAPAddr()), Password: rig.Password(),
		BatchSize: 100, MaxMessageBytes: 1 << 20, Holder: "test"}, st, h, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx) })
	tb.Cleanup(func() { cancel(); wg.Wait() })
}

func waitFor(tb testing.TB, done chan poller.Destination, n int) []poller.Destination {
	tb.Helper()
	var got []poller.Destination
	timeout := time.After(2 * time.Minute)
	for len(got) < n {
		select {
		case d := <-done:
			got = append(got, d)
		case <-timeout:
			tb.Fatalf("%d of %d messages handled in 2 minutes", len(got), n)
		}
	}
	return got
}

// TestDovecotOutlookForward is the proof: a forwarded Outlook mail
// with a French subject, delivered to a real mailbox, makes the right
// envelope; a mail without PDF is refused and quarantined.
func TestDovecotOutlookForward(t *testing.T) {
	f := newFixture(t)
	user := freshBox(t)
	appendAll(t, user, [][]byte{corpus(t, "outlook-fr-forward.eml"), rawMail("agent@org.example", "Sans pièce jointe", "", "Signataire: marie@partner.example")})
	done := make(chan poller.Destination, 10)
	run(t, user, f.e.Store, counting{f.h, done})
	got := waitFor(t, done, 2)
	slices.Sort(got)
	if fmt.Sprint(got) != fmt.Sprint([]poller.Destination{poller.Processed, poller.Quarantine}) {
		t.Fatalf("destinations = %v", got)
	}
	env, err := f.e.Store.Get(context.Background(), engine.EnvelopeID("<pr3p193mb0891a1b2c3d4e5f6@pr3p193mb0891.eurp193.prod.outlook.com>"))
	if err != nil {
		t.Fatal(err)
	}
	if env.Title != "Convention de partenariat – été 2026" || len(env.Steps) != 3 || env.Documents[0].Pages != 1 {
		t.Fatalf("envelope = %q, %d steps, %+v", env.Title, len(env.Steps), env.Documents)
	}
	jobs := notices(f.queued(t))
	for _, want := range []string{"acknowledgement:sender", "invitation:r1", "refusal:"} {
		if !strings.Contains(jobs, want) {
			t.Errorf("queued %q, missing %q", jobs, want)
		}
	}
}

// pdf100k makes a one-page PDF of about 100 KB with mutool.
func pdf100k(tb testing.TB) []byte {
	tb.Helper()
	if _, err := exec.LookPath("mutool"); err != nil {
		tb.Fatal("mutool not found: run  apt-get install -y mupdf-tools")
	}
	r := rand.New(rand.NewPCG(1, 2))
	var page strings.Builder
	page.WriteString("%%MediaBox 0 0 595 842\n")
	for page.Len() < 100_000 {
		fmt.Fprintf(&page, "%d %d m %d %d l S\n", r.IntN(595), r.IntN(842), r.IntN(595), r.IntN(842))
	}
	dir := tb.TempDir()
	src, out := filepath.Join(dir, "page.txt"), filepath.Join(dir, "big.pdf")
	if err := os.WriteFile(src, []byte(page.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	if b, err := exec.Command("mutool", "create", "-O", "compress=no", "-o", out, src).CombinedOutput(); err != nil {
		tb.Fatalf("mutool create: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// submissions makes n distinct submissions, each with the same 100 KB PDF.
func submissions(tb testing.TB, n int) [][]byte {
	pdf := base64.StdEncoding.EncodeToString(pdf100k(tb))
	var lines strings.Builder
	for len(pdf) > 76 {
		lines.WriteString(pdf[:76] + "\r\n")
		pdf = pdf[76:]
	}
	lines.WriteString(pdf + "\r\n")
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = []byte(fmt.Sprintf("From: agent@org.example\r\nTo: parapheur@org.example\r\nSubject: Convention %d\r\n"+
			"Message-ID: <bench-%d-%d@org.example>\r\nAuthentication-Results: mx.org.example; dmarc=pass header.from=org.example\r\n"+
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"+
			"Signataire: marie@partner.example\r\n--b\r\nContent-Type: application/pdf; name=c.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n%s--b--\r\n",
			i, time.Now().UnixNano(), i, lines.String()))
	}
	return msgs
}

// BenchmarkIngestDovecot measures envelopes created per second from a
// Dovecot inbox of b.N submissions (run with -benchtime 1000x), each with
// its outbox mails, against the bare fetch + batched MOVE loop.
func BenchmarkIngestDovecot(b *testing.B) {
	for _, bare := range []bool{false, true} {
		name := "envelopes"
		if bare {
			name = "bare-fetch-move"
		}
		b.Run(name, func(b *testing.B) {
			f := newFixture(b)
			user := freshBox(b)
			appendAll(b, user, submissions(b, b.N))
			var h poller.Handler = f.h
			if bare {
				h = handlerFunc(func(context.Context, poller.Message) (poller.Destination, string, error) {
					return poller.Processed, "", nil
				})
			}
			done := make(chan poller.Destination, b.N)
			b.ResetTimer()
			run(b, user, f.e.Store, counting{h, done})
			got := waitFor(b, done, b.N)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if !bare && slices.Contains(got, poller.Quarantine) {
				b.Fatal("a submission was refused")
			}
		})
	}
}

type handlerFunc func(context.Context, poller.Message) (poller.Destination, string, error)

func (f handlerFunc) Handle(ctx context.Context, m poller.Message) (poller.Destination, string, error) {
	return f(ctx, m)
}

// BenchmarkAppendToEnvelope measures the latency from an IMAP APPEND to the
// envelope being created, with the poller waiting in IDLE (run with
// -benchtime 30x); it reports the median.
func BenchmarkAppendToEnvelope(b *testing.B) {
	f := newFixture(b)
	user := freshBox(b)
	done := make(chan poller.Destination, 1)
	run(b, user, f.e.Store, counting{f.h, done})
	msgs := submissions(b, b.N+1)
	// A first mail handled proves the poller's session open and its first
	// scan done; from then on a new mail is announced by the server, in
	// IDLE or in answer to the IDLE command itself if it comes just before.
	appendAll(b, user, msgs[:1])
	waitFor(b, done, 1)
	msgs = msgs[1:]
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		appendAll(b, user, msgs[i:i+1])
		waitFor(b, done, 1)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*9/10].Milliseconds()), "p90-ms")
}
