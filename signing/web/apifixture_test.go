package web

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/ceremony"
	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// apiFixture is a gateway's web door over a real bbolt store, the real
// engine and ceremony, a test CA and a real one-page PDF, with one
// envelope: unless configured otherwise, step 1 is Marie (r1) and Jean
// (r2) signing in parallel, step 2 is Paul (r3). Every text its sender wrote carries markup, to see it come
// back as data.
type apiFixture struct {
	t      *testing.T
	clock  *testClock
	engine *engine.Engine
	server *Server
	h      http.Handler
	logs   *syncBuffer
	env    *workflow.Envelope
	// links are the signing-link tokens by recipient ID, and the
	// sender's status token under engine.SenderAddressee, from the
	// mails queued so far.
	links map[string]string
	// downloads are the final mails' download-link tokens by recipient
	// ID, the sender's under engine.SenderAddressee.
	downloads map[string]string
	// secrets are every token and code the outbox held, for the check
	// that none is logged.
	secrets []string
	// mail is every mail job queued so far.
	mail []engine.Job
	// schemas checks the JSON answers against the OpenAPI document.
	schemas *openAPIChecker
}

// Texts of the fixture's envelope, each an attempt at markup.
const (
	xssTitle    = `<script>alert("title")</script> Convention & co`
	xssMessage  = `<img src=x onerror=alert('message')>`
	xssName     = `Marie "<b>bold</b>" </script>`
	xssFileName = `<svg onload=alert(1)>.pdf`
	senderEmail = "agent@org.example"
)

// onePagePDF is a real one-page PDF with a line of text.
func onePagePDF() []byte {
	return pdftest.Classic(
		"<</Type/Catalog/Pages 2 0 R>>",
		"<</Type/Pages/Kids[3 0 R]/Count 1>>",
		"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 4 0 R/Resources<</Font<</F1 5 0 R>>>>>>",
		"<</Length 44>>stream\nBT /F1 24 Tf 72 760 Td (Convention) Tj ET\nendstream",
		"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>")
}

// newAPIFixture starts the fixture; configure may change the web
// configuration (limits, proxies) and the envelope's draft before they
// are used.
func newAPIFixture(t *testing.T, configure ...func(*Config, *workflow.Draft)) *apiFixture {
	t.Helper()
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "parapheur.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := &testClock{now: time.Now().UTC().Truncate(time.Second)}
	eng := &engine.Engine{Store: st, CodeKey: bytes.Repeat([]byte("k"), 32), Clock: clock.Now}
	ca, err := pki.NewCA(pkix.Name{CommonName: "parapheur test CA"}, 24*time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	cer := &ceremony.Ceremony{Engine: eng, CA: ca, MaxDocumentBytes: 16 << 20, Holder: "test", TempDir: t.TempDir(), Gateway: "parapheur@org.example"}
	cfg := Config{
		PublicURL: "https://sign.org.example",
		SecretKey: bytes.Repeat([]byte("s"), 32),
		// Far above what a test sends, but for the tests of the limits.
		Limits: Limits{PerClient: Rate{PerSecond: 1000, Burst: 1000}, PerLinkRead: Rate{PerSecond: 1000, Burst: 1000},
			PerLinkWrite: Rate{PerSecond: 1000, Burst: 1000}},
	}
	draft := workflow.Draft{
		ID: engine.EnvelopeID("<" + t.Name() + "@org.example>"), Title: xssTitle, Message: xssMessage,
		Language: "en", LanguageGiven: true,
		Sender: workflow.Party{Name: `Agent <i>X</i>`, Email: senderEmail},
		Steps: []workflow.DraftStep{
			{Role: workflow.Signer, Parties: []workflow.Party{{Name: xssName, Email: "marie@partner.example"}, {Name: "Jean", Email: "jean@partner.example"}}},
			{Role: workflow.Signer, Parties: []workflow.Party{{Name: "Paul", Email: "paul@partner.example"}}},
		},
		Deadline: clock.Now().Add(10 * 24 * time.Hour),
	}
	for _, c := range configure {
		c(&cfg, &draft)
	}
	logs := &syncBuffer{}
	srv, err := New(cfg, cer, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	srv.guards.now = clock.Now
	f := &apiFixture{t: t, clock: clock, engine: eng, server: srv, h: srv.Handler(), logs: logs,
		links: map[string]string{}, downloads: map[string]string{}, schemas: newOpenAPIChecker(t)}

	blob, err := eng.PutDocument(ctx, bytes.NewReader(onePagePDF()))
	if err != nil {
		t.Fatal(err)
	}
	draft.Documents = []workflow.Document{{Name: xssFileName, Pages: 1, Original: blob.SHA256, Size: blob.Size}}
	f.env, err = eng.Create(ctx, draft)
	if err != nil {
		t.Fatal(err)
	}
	f.drainMail()
	t.Cleanup(f.checkLogs)
	return f
}

// drainMail claims every mail queued so far, keeps its job and its
// secrets, and returns the new jobs.
func (f *apiFixture) drainMail() []engine.Job {
	f.t.Helper()
	var jobs []engine.Job
	for {
		it, err := f.engine.Store.Claim(context.Background(), engine.MailQueue, "test", f.clock.Now(), time.Minute)
		if errors.Is(err, store.ErrEmpty) {
			break
		}
		if err != nil {
			f.t.Fatal(err)
		}
		j, err := f.engine.OpenJob(it)
		if err != nil {
			f.t.Fatal(err)
		}
		if err := f.engine.Store.Ack(context.Background(), it); err != nil {
			f.t.Fatal(err)
		}
		switch {
		case j.Token == "":
		case j.Notice == workflow.CompletionMail:
			f.downloads[j.To] = j.Token
		default:
			f.links[j.To] = j.Token
		}
		if j.Token != "" {
			f.secrets = append(f.secrets, j.Token)
		}
		if j.Code != "" {
			f.secrets = append(f.secrets, j.Code)
		}
		jobs = append(jobs, j)
	}
	f.mail = append(f.mail, jobs...)
	return jobs
}

// request sends a request to the handler as a client at 192.0.2.10 would
// (a program: no Origin, no Sec-Fetch-Site), and checks a JSON answer of
// the API against the OpenAPI document.
func (f *apiFixture) request(r *http.Request) *httptest.ResponseRecorder {
	f.t.Helper()
	if r.RemoteAddr == "192.0.2.1:1234" { // httptest.NewRequest's default
		r.RemoteAddr = "192.0.2.10:40000"
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if strings.HasPrefix(r.URL.Path, "/api/v1/") {
		f.schemas.checkAnswer(r, w)
	}
	return w
}

// get and post call the API for token.
func (f *apiFixture) get(path string) *httptest.ResponseRecorder {
	return f.request(httptest.NewRequest(http.MethodGet, path, nil))
}

func (f *apiFixture) post(path string, body any) *httptest.ResponseRecorder {
	f.t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	r := httptest.NewRequest(http.MethodPost, path, rd)
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	return f.request(r)
}

// sendCode asks for a code on token's link and returns the code from the
// mail it queued.
func (f *apiFixture) sendCode(token string) string {
	f.t.Helper()
	w := f.post("/api/v1/sign/"+token+"/code", nil)
	if w.Code != http.StatusOK {
		f.t.Fatalf("POST code = %d %s", w.Code, w.Body)
	}
	for _, j := range f.drainMail() {
		if j.Notice == engine.NoticeCode {
			return j.Code
		}
	}
	f.t.Fatal("asking for a code queued no code mail")
	return ""
}

// state decodes an answer that must be a 200 with the state.
func (f *apiFixture) state(w *httptest.ResponseRecorder) State {
	f.t.Helper()
	if w.Code != http.StatusOK {
		f.t.Fatalf("answer %d, want 200: %s", w.Code, w.Body)
	}
	var st State
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		f.t.Fatalf("state: %v\n%s", err, w.Body)
	}
	return st
}

// wantError checks that an answer is the error code with status.
func (f *apiFixture) wantError(w *httptest.ResponseRecorder, status int, code string) APIError {
	f.t.Helper()
	var body struct{ Error APIError }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != status || body.Error.Code != code {
		f.t.Fatalf("answer %d %s, want %d with error code %q", w.Code, w.Body, status, code)
	}
	if body.Error.Message == "" {
		f.t.Fatalf("error %q has no message", code)
	}
	return body.Error
}

// envelope reads the envelope as stored now.
func (f *apiFixture) envelope() *workflow.Envelope {
	f.t.Helper()
	env, err := f.engine.Envelope(context.Background(), f.env.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return env
}

// checkLogs fails the test if the server logged a token or code it used.
// A code is six digits: it is looked for as a number of its own, not as
// part of a longer one or of a time's fraction of a second.
func (f *apiFixture) checkLogs() {
	logs := f.logs.String()
	for _, s := range f.secrets {
		found := strings.Contains(logs, s)
		if len(s) == 6 {
			found = regexp.MustCompile(`(^|[^0-9.])` + s + `([^0-9]|$)`).MatchString(logs)
		}
		if found {
			f.t.Errorf("the log holds a secret %q:\n%s", s, logs)
		}
	}
}

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *testClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// syncBuffer is a bytes.Buffer that handlers may write from several
// goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
