package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox"
	"github.com/parapheur/parapheur/workflow/outbox/outboxtest"
)

// gateway is a scripted SMS gateway on loopback: it answers each POST with
// the next status of its script (the last one repeating) and keeps what it
// received.
type gateway struct {
	mu       sync.Mutex
	script   []int
	requests []received
	// arrived, when not nil, is told of each request, which then waits
	// until proceed is closed.
	arrived, proceed chan struct{}
}

type received struct {
	auth, contentType string
	body              request
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.arrived != nil {
		g.arrived <- struct{}{}
		<-g.proceed
	}
	var req request
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if r.Method != http.MethodPost || dec.Decode(&req) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.requests = append(g.requests, received{auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type"), body: req})
	status := g.script[min(len(g.requests), len(g.script))-1]
	g.mu.Unlock()
	w.WriteHeader(status)
	io.WriteString(w, `{"detail": "scripted answer"}`)
}

func (g *gateway) received() []received {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]received(nil), g.requests...)
}

type fixture struct {
	st   store.Store
	eng  *engine.Engine
	now  time.Time
	s    *Sender
	gw   *gateway
	env  *workflow.Envelope
	srv  *httptest.Server
	auth string
}

// newFixture makes an envelope whose signer gave a mobile number and asks
// for a code, which queues the SMS; the gateway answers with script.
func newFixture(t *testing.T, script ...int) *fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, now: time.Now(), gw: &gateway{script: script}, auth: "Bearer s3cret"}
	f.eng = &engine.Engine{Store: st, CodeKey: bytes.Repeat([]byte{9}, 32), Clock: func() time.Time { return f.now }}
	f.srv = httptest.NewServer(f.gw)
	t.Cleanup(f.srv.Close)
	f.s, err = New(Config{
		Gateway: Gateway{URL: f.srv.URL + "/send", Authorization: f.auth},
		Outbox:  outbox.Queue{Store: st, Engine: f.eng, Now: func() time.Time { return f.now }},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f.env, err = f.eng.Create(ctx, workflow.Draft{
		ID: engine.EnvelopeID(t.Name()), Title: "Avenant", Language: "fr",
		Sender:    workflow.Party{Email: "agent@org.example"},
		Documents: []workflow.Document{{Name: "a.pdf", Pages: 1, Original: strings.Repeat("cd", 32)}},
		Steps:     []workflow.DraftStep{{Role: workflow.Signer, Parties: []workflow.Party{{Name: "Marie", Email: "marie@partner.example", Phone: "+33612345678"}}}},
		Deadline:  f.now.Add(24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.eng.SendCode(ctx, f.env.ID, "r1", workflow.Client{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) step(t *testing.T) bool {
	t.Helper()
	worked, err := f.s.Worker("test").Step(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return worked
}

// outcomes lists the audited SMS attempts as "outcome: answer".
func (f *fixture) outcomes(t *testing.T) []string {
	t.Helper()
	trail, err := f.st.AuditTrail(context.Background(), f.env.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range trail {
		if r.Type == audit.DeliveryAttempt && r.Details["mail"] == string(engine.NoticeCode) {
			out = append(out, r.Details["outcome"]+": "+r.Details["answer"])
		}
	}
	return out
}

func (f *fixture) buried(t *testing.T) []store.Item {
	t.Helper()
	b, err := f.st.Buried(context.Background(), engine.SMSQueue)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var codeIn = regexp.MustCompile(`\b(\d{6})\b`)

// The gateway receives the number, a French text with the code and the
// Authorization header; the code it got is the one the engine checks.
func TestAccepted(t *testing.T) {
	f := newFixture(t, http.StatusAccepted)
	if !f.step(t) {
		t.Fatal("no SMS item was due")
	}
	reqs := f.gw.received()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.auth != f.auth || r.contentType != "application/json" || r.body.To != "+33612345678" || !strings.Contains(r.body.Message, "valable 10 minutes") {
		t.Fatalf("request %+v", r)
	}
	m := codeIn.FindStringSubmatch(r.body.Message)
	if m == nil {
		t.Fatalf("no code in %q", r.body.Message)
	}
	if _, err := f.eng.VerifyCode(context.Background(), f.env.ID, "r1", m[1], workflow.Client{}); err != nil {
		t.Errorf("the code sent does not verify: %v", err)
	}
	if got := f.outcomes(t); len(got) != 1 || got[0] != "delivered: HTTP 202 Accepted" {
		t.Errorf("audited attempts %q", got)
	}
	if f.step(t) || len(f.buried(t)) != 0 {
		t.Error("the item is still queued or was buried after a 2xx")
	}
}

// A worker stopped while the gateway handles its request (serve's
// SIGTERM) waits for the answer: the code is sent once and recorded as
// delivered, not cut off and sent again later.
func TestStopDuringSendFinishes(t *testing.T) {
	f := newFixture(t, http.StatusAccepted)
	f.gw.arrived, f.gw.proceed = make(chan struct{}), make(chan struct{})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := f.s.Worker("test").Step(ctx)
		done <- err
	}()
	<-f.gw.arrived
	stop()
	close(f.gw.proceed)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := f.outcomes(t); len(got) != 1 || got[0] != "delivered: HTTP 202 Accepted" {
		t.Fatalf("audited attempts %q, want one delivered", got)
	}
}

// A 4xx answer fails the code at once; the sender is told.
func TestRefused(t *testing.T) {
	f := newFixture(t, http.StatusUnprocessableEntity)
	f.step(t)
	if got := f.outcomes(t); len(got) != 1 || got[0] != `failed: HTTP 422 Unprocessable Entity: {"detail": "scripted answer"}` {
		t.Errorf("audited attempts %q", got)
	}
	if b := f.buried(t); len(b) != 1 || !strings.Contains(b[0].LastError, "422") {
		t.Errorf("buried %+v, want the item with the 422 answer", b)
	}
	var notices []engine.Job
	for {
		it, err := f.st.Claim(context.Background(), engine.MailQueue, "inspector", f.now, time.Minute)
		if err != nil {
			break
		}
		var job engine.Job
		json.Unmarshal(it.Payload, &job)
		if job.Notice == workflow.BounceNotice {
			notices = append(notices, job)
		}
	}
	if len(notices) != 1 || notices[0].To != engine.SenderAddressee || notices[0].About != "r1" {
		t.Errorf("delivery-failure notices queued: %+v, want one to the sender about r1", notices)
	}
}

// A 5xx answer, a 429 or a dead gateway defers with the backoff; the retry
// goes through.
func TestRetried(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first int
	}{{"503", http.StatusServiceUnavailable}, {"429", http.StatusTooManyRequests}, {"down", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.first, http.StatusOK)
			if tc.first == 0 {
				f.gw.script = []int{http.StatusOK}
				url := f.srv.URL
				f.srv.Close()
				f.s.cfg.Gateway.URL = url + "/send"
			}
			f.step(t)
			f.now = f.now.Add(time.Minute - time.Second)
			if f.step(t) {
				t.Fatal("retried before the backoff ended")
			}
			if tc.first == 0 {
				srv := httptest.NewUnstartedServer(f.gw)
				srv.Start()
				defer srv.Close()
				f.s.cfg.Gateway.URL = srv.URL + "/send"
			}
			f.now = f.now.Add(time.Second)
			if !f.step(t) {
				t.Fatal("not retried after the backoff")
			}
			got := f.outcomes(t)
			if len(got) != 2 || !strings.HasPrefix(got[0], "deferred: ") || got[1] != "delivered: HTTP 200 OK" {
				t.Errorf("audited attempts %q, want deferred then delivered", got)
			}
			if tc.first != 0 && !strings.HasPrefix(got[0], "deferred: HTTP "+tc.name) {
				t.Errorf("first attempt %q, want the %s answer", got[0], tc.name)
			}
		})
	}
}

// An SMS item without a code or a number is buried without a request.
func TestUnsendable(t *testing.T) {
	f := newFixture(t, http.StatusOK)
	job, _ := json.Marshal(engine.Job{Notice: workflow.Invitation, EnvelopeID: f.env.ID, To: "r1"})
	if err := f.st.Enqueue(context.Background(), store.Item{ID: "odd", Queue: engine.SMSQueue, EnvelopeID: f.env.ID, Payload: job, NotBefore: f.now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	f.step(t)
	b := f.buried(t)
	if len(b) != 1 || b[0].ID != "odd" || !strings.Contains(b[0].LastError, "not a one-time code") {
		t.Errorf("buried %+v", b)
	}
	if n := len(f.gw.received()); n != 0 {
		t.Errorf("%d requests for an unsendable item", n)
	}
}

// A store that does not answer while the SMS is prepared defers it; the
// code is posted once the store is back, and nothing is buried.
func TestStoreErrorDefers(t *testing.T) {
	f := newFixture(t, http.StatusAccepted)
	f.s.cfg.Outbox.Store = outboxtest.NewFailingGets(f.st, 1)
	if !f.step(t) {
		t.Fatal("no SMS item was due")
	}
	if n := len(f.gw.received()); n != 0 || len(f.buried(t)) != 0 {
		t.Fatalf("%d requests, buried %+v: want the item deferred", n, f.buried(t))
	}
	if f.step(t) {
		t.Fatal("the deferred item was due again at once")
	}
	f.now = f.now.Add(outbox.DefaultFirstBackoff)
	if !f.step(t) {
		t.Fatal("the deferred item was not due after the backoff")
	}
	if got := f.outcomes(t); len(got) != 1 || !strings.HasPrefix(got[0], "delivered") || len(f.gw.received()) != 1 {
		t.Errorf("outcomes %v, %d requests; want one delivered", got, len(f.gw.received()))
	}
}

func TestGatewayURL(t *testing.T) {
	for url, ok := range map[string]bool{
		"https://sms.example/send": true, "http://127.0.0.1:8080/send": true, "http://localhost/x": true,
		"http://sms.example/send": false, "ftp://sms.example": false, "https:///x": false, "%zz": false,
	} {
		if err := (&Gateway{URL: url}).check(); (err == nil) != ok {
			t.Errorf("%q: %v, want ok=%v", url, err, ok)
		}
	}
}
