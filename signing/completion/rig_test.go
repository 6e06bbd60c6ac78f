package completion_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parapheur/parapheur/signing/ceremony"
	"github.com/parapheur/parapheur/signing/completion"
	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/internal/pkitest"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/verify"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox"
	"github.com/parapheur/parapheur/workflow/outbox/outboxtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pdftest.Cleanup()
	os.Exit(code)
}

// clock is the engine's clock, which tests move on past leases, backoffs
// and the delay notice.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// rig is an installation as `ca init` makes it (signing CA, seal), with a
// CRL distribution point and an OCSP responder for its CA, a time-stamp
// authority that a test can make fail, a real bbolt store (possibly
// wrapped), the ceremony that makes the signatures and the completion
// worker.
type rig struct {
	st       store.Store
	eng      *engine.Engine
	cer      *ceremony.Ceremony
	ca       *pki.CA
	caFile   string
	seal     *pki.KeyPair
	clock    *clock
	tsa      *pkitest.TSA
	tsaURL   string      // the TSA behind a switch
	tsaDown  atomic.Bool // the switch: 500 while set
	worker   *completion.Worker
	registry *prometheus.Registry

	mu     sync.Mutex
	jobs   []engine.Job // every mail queued so far
	tokens map[string]string
	codes  map[string]string
}

const passphrase = "correct horse"

// newRig makes a rig on a bbolt store; wrap, when not nil, wraps it.
func newRig(t testing.TB, withTSA bool, wrap func(store.Store) store.Store) *rig {
	t.Helper()
	crl, ocsp := pkitest.StartCRL(t), pkitest.StartOCSP(t)
	dir := t.TempDir()
	if err := pki.InitCA(dir, pki.InitOptions{Organisation: "Mairie de Test", Country: "FR", Passphrase: passphrase,
		CRLURL: crl.URL, OCSPURL: ocsp.URL}); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(dir, passphrase)
	if err != nil {
		t.Fatal(err)
	}
	ca.CRLURL, ca.OCSPURL = crl.URL, ocsp.URL
	crl.CA.Store(ca)
	ocsp.CA.Store(ca)
	kp, err := pki.LoadSeal(dir, passphrase)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bolt.Open(filepath.Join(t.TempDir(), "parapheur.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	var st store.Store = b
	if wrap != nil {
		st = wrap(b)
	}
	r := &rig{st: st, ca: ca, caFile: filepath.Join(dir, pki.CACertFile), seal: kp, clock: &clock{t: time.Now()},
		registry: prometheus.NewRegistry(), tokens: map[string]string{}, codes: map[string]string{}}
	r.eng = &engine.Engine{Store: st, CodeKey: []byte("0123456789abcdef0123456789abcdef"), Clock: r.clock.now}
	r.cer = &ceremony.Ceremony{Engine: r.eng, CA: ca, Holder: "test", TempDir: t.TempDir()}
	r.worker = &completion.Worker{Engine: r.eng, Seal: kp, PublicURL: "https://parapheur.example", Location: paris(t),
		TempDir: t.TempDir(), Holder: "worker", Metrics: completion.NewMetrics(r.registry, r.clock.now)}
	if withTSA {
		r.tsa = pkitest.StartTSA(t, ca)
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if r.tsaDown.Load() {
				http.Error(w, "time-stamping is down for maintenance", http.StatusInternalServerError)
				return
			}
			resp, err := http.Post(r.tsa.URL, req.Header.Get("Content-Type"), req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
		}))
		t.Cleanup(front.Close)
		r.tsaURL = front.URL
		r.worker.TSAURL = front.URL
	}
	return r
}

func paris(t testing.TB) *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// readMail reads the mails queued so far (acknowledging them as sent),
// keeps them, and the links and codes they carry.
func (r *rig) readMail(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, job := range outboxtest.Deliver(t, r.eng, engine.MailQueue, r.clock.now()) {
		r.jobs = append(r.jobs, job)
		if job.Token != "" {
			r.tokens[job.To] = job.Token
		}
		if job.Code != "" {
			r.codes[job.To] = job.Code
		}
	}
}

// mails counts the mails of kind notice about envelope id queued so far,
// by addressee.
func (r *rig) mails(t testing.TB, id string, notice workflow.Notice) map[string]int {
	t.Helper()
	r.readMail(t)
	r.mu.Lock()
	defer r.mu.Unlock()
	n := map[string]int{}
	for _, j := range r.jobs {
		if j.EnvelopeID == id && j.Notice == notice {
			n[j.To]++
			if notice == workflow.CompletionMail && j.Token == "" {
				t.Errorf("the final mail to %s carries no download token", j.To)
			}
		}
	}
	return n
}

var client = workflow.Client{IP: "192.0.2.7", UserAgent: "completion-test"}

// document stores the PDF at path and returns it as a document.
func (r *rig) document(t testing.TB, path string) workflow.Document {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pages, err := pades.Inspect(context.Background(), data, 0)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blob, err := r.eng.PutDocument(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return workflow.Document{Name: strings.TrimSuffix(filepath.Base(path), ".pdf") + ".pdf", Pages: pages, Original: blob.SHA256, Size: blob.Size}
}

// signed makes envelope id with the documents at paths (see create) and
// has its signer sign through the ceremony: every step is done and the
// completion queued.
func (r *rig) signed(t testing.TB, id string, paths ...string) *workflow.Envelope {
	t.Helper()
	env := r.create(t, id, paths...)
	ctx := context.Background()
	rid := env.Steps[0].Recipients[0]
	r.readMail(t)
	token := r.tokens[rid]
	if _, err := r.cer.SendCode(ctx, token, client); err != nil {
		t.Fatalf("SendCode: %v", err)
	}
	r.readMail(t)
	l, err := r.cer.Act(ctx, token, ceremony.Action{Kind: ceremony.Sign, Code: r.codes[rid], Consent: true}, client)
	if err != nil {
		t.Fatalf("Act(Sign): %v", err)
	}
	if l.Envelope.CurrentStep != len(l.Envelope.Steps) || l.Envelope.StepsDoneAt.IsZero() {
		t.Fatalf("every step should be done: step %d of %d", l.Envelope.CurrentStep+1, len(l.Envelope.Steps))
	}
	return l.Envelope
}

// create makes envelope id with the documents at paths, to be signed by
// one signer, with a copy and an archivist.
func (r *rig) create(t testing.TB, id string, paths ...string) *workflow.Envelope {
	t.Helper()
	var docs []workflow.Document
	for _, p := range paths {
		docs = append(docs, r.document(t, p))
	}
	env, err := r.eng.Create(context.Background(), workflow.Draft{
		ID: id, Title: "Convention de partenariat", Language: "fr",
		Sender:     workflow.Party{Name: "Bob Agent", Email: "bob@org.example"},
		SenderAuth: "dmarc=pass header.from=org.example",
		Documents:  docs,
		Steps:      []workflow.DraftStep{{Role: workflow.Signer, Parties: []workflow.Party{{Name: "Alice Martin", Email: "alice@example.com"}}}},
		Copies:     []workflow.Party{{Email: "copie@org.example"}},
		Archivists: []workflow.Party{{Email: "archives@org.example"}},
		Deadline:   r.clock.now().Add(10 * 24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// work runs the worker until no completion item is due.
func (r *rig) work(t testing.TB) {
	t.Helper()
	for {
		worked, err := r.worker.Step(context.Background())
		if err != nil {
			t.Fatalf("worker step: %v", err)
		}
		if !worked {
			return
		}
	}
}

// envelope reads envelope id from the store.
func (r *rig) envelope(t testing.TB, id string) *workflow.Envelope {
	t.Helper()
	env, err := r.eng.Envelope(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// trail reads id's audit trail and counts its records by type.
func (r *rig) trail(t testing.TB, id string) ([]audit.Record, map[audit.Type]int) {
	t.Helper()
	trail, err := r.st.AuditTrail(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	n := map[audit.Type]int{}
	for _, rec := range trail {
		n[rec.Type]++
	}
	return trail, n
}

// blobFile writes the blob sum to a file of the test and returns its path.
func (r *rig) blobFile(t testing.TB, sum, name string) string {
	t.Helper()
	rc, _, err := r.st.OpenBlob(context.Background(), sum)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	return path
}

// verified checks the file at path with package verify against the CA
// and returns the report; every signature must be intact.
func (r *rig) verified(t testing.TB, path string) *verify.Report {
	t.Helper()
	rep, err := verify.File(path, r.ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ExitCode() != verify.ExitValid {
		t.Errorf("%s:\n%s", filepath.Base(path), rep.Text(true))
	}
	return rep
}

// completedOnce checks that envelope id is completed with each document
// sealed once and one Completed event, that one final mail was queued to
// each party, and returns the envelope.
func (r *rig) completedOnce(t testing.TB, id string) *workflow.Envelope {
	t.Helper()
	env := r.envelope(t, id)
	if env.State != workflow.StateCompleted || env.Certificate == "" {
		t.Fatalf("envelope %s is %s, certificate %q; want completed with a certificate", id, env.State, env.Certificate)
	}
	_, n := r.trail(t, id)
	if n[audit.Sealed] != len(env.Documents) || n[audit.Completed] != 1 {
		t.Errorf("trail has %d sealed and %d completed events; want %d and 1", n[audit.Sealed], n[audit.Completed], len(env.Documents))
	}
	for i, d := range env.Documents {
		if !d.Sealed {
			t.Errorf("document %d is not marked sealed", i+1)
		}
	}
	mails := r.mails(t, id, workflow.CompletionMail)
	want := map[string]int{engine.SenderAddressee: 1}
	for _, rc := range env.Recipients {
		want[rc.ID] = 1
	}
	if fmt.Sprint(mails) != fmt.Sprint(want) {
		t.Errorf("final mails by addressee: %v; want %v", mails, want)
	}
	return env
}

// retryDue moves the clock past the item's backoff or lease.
func (r *rig) retryDue() { r.clock.advance(completion.DefaultMaxRetry + outbox.DefaultLease) }

// completions checks the completion counters of the worker's registry.
func (r *rig) completions(t testing.TB, completed, retried int) {
	t.Helper()
	got := r.metric(t, "parapheur_completions_total")
	if got["completed"] != float64(completed) || got["retried"] != float64(retried) {
		t.Errorf("parapheur_completions_total: %v; want %d completed and %d retried", got, completed, retried)
	}
}

// metric gathers the values of the worker's metric name, by the value of
// their one label ("" for a metric without labels).
func (r *rig) metric(t testing.TB, name string) map[string]float64 {
	t.Helper()
	families, err := r.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			label := ""
			if len(m.GetLabel()) > 0 {
				label = m.GetLabel()[0].GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				got[label] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[label] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[label] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return got
}
