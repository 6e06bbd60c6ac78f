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
	"math/rand/v2"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/parapheur/parapheur/mailout/compose"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
)

// finalMails is the gateway's composer over st with an attachment limit.
func finalMails(t testing.TB, st store.Store, limit int64) *Mails {
	t.Helper()
	cc, err := compose.New(compose.Config{Address: gateway, PublicURL: "https://sign.org.example", ReturnPathKey: returnPathKey,
		AttachmentLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	return &Mails{Composer: cc, Store: st, Domain: domain, PublicURL: "https://sign.org.example"}
}

// completed is an envelope completed through the real engine, with its
// final document and certificate in the store.
type completed struct {
	env *workflow.Envelope
	// jobs are the final mails' jobs by addressee.
	jobs map[string]engine.Job
	// items are the final mails' outbox items by addressee.
	items map[string]*store.Item
}

// pseudoPDF streams n bytes of a document: a PDF header then bytes of
// every value, so that the mail must encode them; a large one exists
// nowhere in memory.
func pseudoPDF(seed uint64, n int64) io.Reader {
	r := rand.New(rand.NewPCG(seed, seed))
	return io.MultiReader(strings.NewReader("%PDF-1.7\n"), io.LimitReader(randomReader{r}, n))
}

type randomReader struct{ r *rand.Rand }

func (r randomReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.r.UintN(256))
	}
	return len(p), nil
}

// put stores a blob.
func (f *fixture) put(t testing.TB, r io.Reader) store.Blob {
	t.Helper()
	blob, err := f.st.PutBlob(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

// signed makes an envelope of title from bob@example.com, with
// archives@org.example as archivist, which alice@example.com signs: its
// completion begins. It returns the envelope's ID and the signed version
// of its document. The mails so far are taken off the queue.
func (f *fixture) signed(t testing.TB, title, lang string) (string, store.Blob) {
	t.Helper()
	ctx := context.Background()
	original := f.put(t, pseudoPDF(1, 300<<10))
	env, err := f.eng.Create(ctx, workflow.Draft{
		ID: engine.EnvelopeID(title), Title: title, Language: lang,
		Sender:     workflow.Party{Name: "Bob Agent", Email: "bob@example.com"},
		Documents:  []workflow.Document{{Name: "convention été.pdf", Pages: 3, Original: original.SHA256, Size: original.Size}},
		Steps:      []workflow.DraftStep{{Role: workflow.Signer, Parties: []workflow.Party{{Name: "Alice Martin", Email: "alice@example.com"}}}},
		Archivists: []workflow.Party{{Name: "Archives", Email: "archives@org.example"}},
		Deadline:   f.clock.now().Add(30 * 24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	client := workflow.Client{IP: "192.0.2.1", UserAgent: "test"}
	if _, err := f.eng.SendCode(ctx, env.ID, "r1", client); err != nil {
		t.Fatal(err)
	}
	code := f.takeMail(t)["code/r1"]
	if _, err := f.eng.VerifyCode(ctx, env.ID, "r1", code.Code, client); err != nil {
		t.Fatal(err)
	}
	signed := f.put(t, pseudoPDF(2, 300<<10))
	if _, err := f.eng.Event(ctx, env.ID, workflow.Signed{Meta: workflow.Meta{At: f.clock.now(), Client: client}, RecipientID: "r1",
		Signature: workflow.Signature{CertSerial: "01", Documents: []workflow.DocumentVersion{{Index: 0, Previous: original.SHA256, SHA256: signed.SHA256, Size: signed.Size}}}}); err != nil {
		t.Fatal(err)
	}
	return env.ID, signed
}

// complete makes the envelope of signed and completes it with a final
// version of its document, of size bytes, and a certificate: stored unless
// storeCertificate is false. The mails before the final ones are taken
// off the queue (claimed by nobody's worker).
func (f *fixture) complete(t testing.TB, title, lang string, storeCertificate bool, size int64) completed {
	t.Helper()
	envID, signed := f.signed(t, title, lang)
	c := completed{jobs: map[string]engine.Job{}}
	final := f.put(t, pseudoPDF(3, size))
	cert := []byte("%PDF-1.7 certificate of " + title)
	certSum := sha256.Sum256(cert)
	if storeCertificate {
		f.put(t, bytes.NewReader(cert))
	}
	var err error
	if c.env, err = f.eng.Event(context.Background(), envID, workflow.Completed{Meta: workflow.Meta{At: f.clock.now()}, Certificate: hex.EncodeToString(certSum[:]),
		Documents: []workflow.DocumentVersion{{Index: 0, Previous: signed.SHA256, SHA256: final.SHA256, Size: final.Size}}}); err != nil {
		t.Fatal(err)
	}
	c.items = map[string]*store.Item{}
	for key, job := range f.takeMail(t) {
		if job.Notice != workflow.CompletionMail {
			t.Fatalf("unexpected mail %s", key)
		}
		c.jobs[job.To] = job
	}
	for key, it := range f.queued(t, f.clock.now()) {
		c.items[c.jobs[strings.TrimPrefix(key, "completion/")].To] = it
	}
	if len(c.jobs) != 3 || len(c.items) != 3 {
		t.Fatalf("final mails to %v, want the sender, the signer and the archivist", c.jobs)
	}
	return c
}

// takeMail takes the mails due now off the queue, as if sent, and
// returns their jobs by notice and addressee ("code/r1"); the final mails
// are left for the test.
func (f *fixture) takeMail(t testing.TB) map[string]engine.Job {
	t.Helper()
	jobs := map[string]engine.Job{}
	for key, it := range f.queued(t, f.clock.now()) {
		job, err := f.eng.OpenJob(it)
		if err != nil {
			t.Fatal(err)
		}
		jobs[key] = job
		if job.Notice == workflow.CompletionMail {
			if err := f.st.Retry(context.Background(), it, f.clock.now(), ""); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := f.st.Ack(context.Background(), it); err != nil {
			t.Fatal(err)
		}
	}
	return jobs
}

// release gives the claimed final mails back to the queue, due now.
func (f *fixture) release(t testing.TB, c completed) {
	t.Helper()
	for _, it := range c.items {
		if err := f.st.Retry(context.Background(), it, f.clock.now(), ""); err != nil {
			t.Fatal(err)
		}
	}
}

// readMail reads a message's text and its attachments by name.
func readMail(t testing.TB, raw []byte) (text string, files map[string][]byte) {
	t.Helper()
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	files = map[string][]byte{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return text, files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		switch h := p.Header.(type) {
		case *mail.InlineHeader:
			if ct, _, _ := h.ContentType(); ct == "text/plain" {
				text = string(b)
			}
		case *mail.AttachmentHeader:
			name, _ := h.Filename()
			files[name] = b
		}
	}
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

var downloadLink = regexp.MustCompile(`https://sign\.org\.example/d/([A-Za-z0-9_-]+)`)

// checkFinalMail checks a final mail to addressee: its files are the
// stored final document and certificate, attached when attached says so,
// their SHA-256 in the text; its download link is the job's, recorded for
// addressee; the archivist's copy carries the audit trail through
// completion, which verifies.
func checkFinalMail(t *testing.T, f *fixture, c completed, addressee string, raw []byte, attached bool) {
	t.Helper()
	text, files := readMail(t, raw)
	env := c.env
	doc, certName := env.Documents[0], "certificat-"+env.ID+".pdf"
	if env.Language == "en" {
		certName = "certificate-" + env.ID + ".pdf"
	}
	want := map[string]string{doc.Name: doc.Current, certName: env.Certificate}
	for name, sum := range want {
		if !strings.Contains(text, name) || !strings.Contains(text, sum) {
			t.Errorf("%s: the text does not name %s with its SHA-256 %s:\n%s", addressee, name, sum, text)
		}
		got, ok := files[name]
		switch {
		case ok != attached:
			t.Errorf("%s: %s attached: %v, want %v", addressee, name, ok, attached)
		case ok && hex.EncodeToString(sha256Sum(got)) != sum:
			t.Errorf("%s: attachment %s (%d bytes) is not the stored file %s", addressee, name, len(got), sum)
		}
	}
	m := downloadLink.FindStringSubmatch(text)
	if m == nil || m[1] != c.jobs[addressee].Token {
		t.Fatalf("%s: the text's download link %v is not the job's:\n%s", addressee, m, text)
	}
	envID, holder, err := f.st.ByToken(context.Background(), engine.HashToken(m[1]))
	if err != nil || envID != env.ID || holder != workflow.DownloadID {
		t.Errorf("%s: the download token finds %q %q, %v", addressee, envID, holder, err)
	}
	party := addressee
	if party == engine.SenderAddressee {
		party = workflow.SenderID
	}
	if d := env.DownloadToken(engine.HashToken(m[1])); d == nil || d.For != party {
		t.Errorf("%s: the download token is recorded as %+v", addressee, d)
	}
	trailFile, ok := files["audit-"+env.ID+".json"]
	if ok != (addressee == "r2") {
		t.Fatalf("%s: audit trail attached: %v", addressee, ok)
	}
	if !ok {
		return
	}
	var recs []audit.Record
	if err := json.Unmarshal(trailFile, &recs); err != nil {
		t.Fatalf("the archivist's audit trail is not JSON: %v", err)
	}
	if err := audit.Verify(recs); err != nil || len(recs) == 0 || recs[len(recs)-1].Type != audit.Completed {
		t.Fatalf("the archivist's audit trail (%d records) does not verify or end with the completion: %v", len(recs), err)
	}
	sum := sha256.Sum256(trailFile)
	if !strings.Contains(text, hex.EncodeToString(sum[:])) {
		t.Errorf("the archivist's text does not give the audit trail's SHA-256:\n%s", text)
	}
}

// TestFinalMailsFromTheStore composes each party's final mail from the
// real store: within the limit the attachments are the stored files, over
// it the link alone (and the archivist's audit trail); both languages; a
// second composition of the same item gives the same bytes, although the
// trail has grown since.
func TestFinalMailsFromTheStore(t *testing.T) {
	for _, lang := range []string{"fr", "en"} {
		f := newFixture(t, nil)
		c := f.complete(t, fmt.Sprint("Final ", lang, " ", time.Now().UnixNano()), lang, true, 310<<10)
		for _, limit := range []int64{10 << 20, 0} {
			mails := finalMails(t, f.st, limit)
			for to, job := range c.jobs {
				var b bytes.Buffer
				route, err := mails.Compose(context.Background(), c.items[to], job, &b)
				if err != nil {
					t.Fatalf("%s %s: %v", lang, to, err)
				}
				if len(route.To) != 1 {
					t.Fatalf("%s %s: route %+v", lang, to, route)
				}
				checkFinalMail(t, f, c, to, b.Bytes(), limit > 0)
				if to != "r2" {
					continue
				}
				// The archivist's trail grows with the delivery records
				// of the final mails; a resend is the same message.
				if _, err := f.eng.Event(context.Background(), c.env.ID, workflow.DeliveryStarted{Meta: workflow.Meta{At: f.clock.now()},
					Notice: workflow.CompletionMail, To: "r2", Attempt: 1}); err != nil {
					t.Fatal(err)
				}
				var again bytes.Buffer
				if _, err := mails.Compose(context.Background(), c.items[to], job, &again); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b.Bytes(), again.Bytes()) {
					t.Errorf("%s: the archivist's final mail changed between two compositions", lang)
				}
			}
		}
	}
}

// flakyStore fails blob reads with fail while it is set: a store that does
// not answer.
type flakyStore struct {
	store.Store
	mu   sync.Mutex
	fail error
}

func (s *flakyStore) set(err error) { s.mu.Lock(); s.fail = err; s.mu.Unlock() }

func (s *flakyStore) OpenBlob(ctx context.Context, sum string) (io.ReadCloser, store.Blob, error) {
	s.mu.Lock()
	err := s.fail
	s.mu.Unlock()
	if err != nil {
		return nil, store.Blob{}, err
	}
	return s.Store.OpenBlob(ctx, sum)
}

// TestFinalMailsArrive sends the final mails through Postfix to Dovecot:
// while the store does not answer they wait; then every party's mail
// arrives once, with the stored files.
func TestFinalMailsArrive(t *testing.T) {
	flaky := &flakyStore{}
	f := newFixture(t, func(c *Config) {
		flaky.Store = c.Outbox.Store
		c.Composer = finalMails(t, flaky, 10<<20)
	})
	c := f.complete(t, fmt.Sprint("Final arrival ", time.Now().UnixNano()), "fr", true, 310<<10)
	f.release(t, c)
	flaky.set(errors.New("dial tcp 192.0.2.9:6379: connection refused"))
	if n := f.drain(t); n != 3 {
		t.Fatalf("%d items worked, want the 3 final mails", n)
	}
	if buried, _ := f.st.Buried(context.Background(), engine.MailQueue); len(buried) != 0 {
		t.Fatalf("a store that did not answer buried %+v", buried)
	}
	flaky.set(nil)
	f.clock.add(time.Hour)
	if n := f.drain(t); n != 3 {
		t.Fatalf("%d items worked once the store answers, want 3", n)
	}
	if buried, _ := f.st.Buried(context.Background(), engine.MailQueue); len(buried) != 0 {
		t.Fatalf("buried: %+v", buried)
	}
	for to, user := range map[string]string{engine.SenderAddressee: "bob", "r1": "alice", "r2": "archives"} {
		checkFinalMail(t, f, c, to, fetchBy(t, user, "X-Parapheur-Envelope", c.env.ID), true)
	}
}

// TestFinalMailWithoutItsCertificate: a certificate missing from the store
// fails the mail at once, saying which file is missing; the sender is told
// that the final mail did not go.
func TestFinalMailWithoutItsCertificate(t *testing.T) {
	f := newFixture(t, withMails(t))
	c := f.complete(t, fmt.Sprint("Final without certificate ", time.Now().UnixNano()), "en", false, 310<<10)
	f.release(t, c)
	f.drain(t)
	buried, err := f.st.Buried(context.Background(), engine.MailQueue)
	if err != nil {
		t.Fatal(err)
	}
	if len(buried) != 3 {
		t.Fatalf("buried %d items, want the 3 final mails", len(buried))
	}
	for _, it := range buried {
		if !strings.Contains(it.LastError, "the certificate of completion, "+c.env.Certificate+", cannot be read from the store") ||
			!strings.Contains(it.LastError, "not found") {
			t.Errorf("buried %s for %q, want the missing certificate named", it.ID, it.LastError)
		}
	}
	_, text := parts(t, fetchBy(t, "bob", "Subject", "Undeliverable to archives@org.example"))
	if !strings.Contains(text, "neither the signed documents nor the certificate") {
		t.Errorf("the sender's notice does not say what the archivist lacks:\n%s", text)
	}
}

// TestFinalMail20MBStreamed: a 20 MB final document goes from the store
// into the mail without being held: composing the signer's final mail
// grows the heap by less than the document.
func TestFinalMail20MBStreamed(t *testing.T) {
	f := newFixture(t, nil)
	c := f.complete(t, fmt.Sprint("Final 20 MB ", time.Now().UnixNano()), "fr", true, 20<<20)
	mails := finalMails(t, f.st, 1<<30)
	var composed bytes.Buffer
	runtime.GC()
	base := peakHeap(func() {})
	peak := peakHeap(func() {
		if _, err := mails.Compose(context.Background(), c.items["r1"], c.jobs["r1"], io.Discard); err != nil {
			t.Error(err)
		}
	})
	t.Logf("composing a final mail with a %d-byte document: heap peak %d bytes above the %d before", 20<<20, peak-min(peak, base), base)
	// Held, the document alone would take its 20 MB, read whole with
	// io.ReadAll about twice that; streamed, what grows is the garbage of
	// the blob's chunks and the encoder's buffers until the next
	// collection (6 to 11 MB measured).
	if peak > base+16<<20 {
		t.Errorf("the heap grew by %d bytes while composing a mail with a 20 MB document", peak-base)
	}
	if _, err := mails.Compose(context.Background(), c.items["r1"], c.jobs["r1"], &composed); err != nil {
		t.Fatal(err)
	}
	checkFinalMail(t, f, c, "r1", composed.Bytes(), true)
}

// TestCompletionDelayedMail: a completion that keeps failing is told to
// the sender, with the last error, in the envelope's language.
func TestCompletionDelayedMail(t *testing.T) {
	f := newFixture(t, nil)
	envID, _ := f.signed(t, fmt.Sprint("Delayed ", time.Now().UnixNano()), "fr")
	f.takeMail(t)
	f.clock.add(time.Hour)
	if _, err := f.eng.Event(context.Background(), envID, workflow.CompletionDelayed{Meta: workflow.Meta{At: f.clock.now()},
		Reason: "time-stamp authority: 503 Service Unavailable"}); err != nil {
		t.Fatal(err)
	}
	var it *store.Item
	for key, item := range f.queued(t, f.clock.now()) {
		if key != "completion_delayed/sender" {
			t.Fatalf("unexpected mail %s", key)
		}
		it = item
	}
	if it == nil {
		t.Fatal("no completion_delayed mail queued")
	}
	job, err := f.eng.OpenJob(it)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	route, err := newMails(t, f.st).Compose(context.Background(), it, job, &b)
	if err != nil || len(route.To) != 1 || route.To[0] != "bob@example.com" {
		t.Fatalf("route %+v, %v", route, err)
	}
	h, text := parts(t, b.Bytes())
	if s, _ := h.Subject(); !strings.HasPrefix(s, "Finalisation retardée : Delayed ") {
		t.Errorf("subject %q", s)
	}
	for _, want := range []string{"échoue depuis", "503 Service Unavailable", envID} {
		if !strings.Contains(text, want) {
			t.Errorf("the mail does not say %q:\n%s", want, text)
		}
	}
}
