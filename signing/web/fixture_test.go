package web

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
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

// fixture is a whole gateway door for tests: a bbolt store, the engine, a
// ceremony with a test CA, the web server on a loopback port, and one
// envelope whose links and codes are read from the engine's outbox as the
// mailer would read them.
type fixture struct {
	t      *testing.T
	srv    *httptest.Server
	web    *Server
	engine *engine.Engine
	clock  *testClock
	env    *workflow.Envelope
	// tokens are the signing-link tokens by recipient address; sender is
	// the sender's status-page token.
	tokens map[string]string
	sender string
	// codes are the one-time codes sent, by recipient ID, latest last.
	codes map[string][]string
}

// testClock is the engine's settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// testPDF is a one-page PDF.
var testPDF = pdftest.Classic(
	"<</Type/Catalog/Pages 2 0 R>>",
	"<</Type/Pages/Kids[3 0 R]/Count 1>>",
	"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
)

// testDraft is an approval by the head of department, then the partner's
// signature, with a copy to the archives.
func testDraft() workflow.Draft {
	return workflow.Draft{
		ID: engine.EnvelopeID("<web-test@org.example>"), Title: "Convention de partenariat 2027",
		Message:  "Bonjour,\nvoici la convention à signer.",
		Language: "fr", Sender: workflow.Party{Name: "Agnès Agent", Email: "agent@org.example"},
		SenderAuth: "dmarc=pass header.from=org.example",
		Steps: []workflow.DraftStep{
			{Role: workflow.Approver, Parties: []workflow.Party{{Name: "Claude Chef", Email: "chef@org.example"}}},
			{Role: workflow.Signer, Parties: []workflow.Party{{Name: "Marie Curie", Email: "marie@partner.example"}}},
		},
		Copies:   []workflow.Party{{Email: "archives@org.example"}},
		Deadline: time.Now().Add(10 * 24 * time.Hour),
	}
}

// newFixture starts the door with the envelope of testDraft, changed by
// edit when given.
func newFixture(t *testing.T, edit func(*workflow.Draft)) *fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "parapheur.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := &testClock{now: time.Now().UTC().Truncate(time.Second)}
	eng := &engine.Engine{Store: st, CodeKey: bytes.Repeat([]byte("k"), 32), Clock: clock.Now}
	ca, err := pki.NewCA(pkix.Name{CommonName: "Web test CA"}, 24*time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	// A signature waits for another one of the same envelope briefly, so
	// that a test of a busy envelope is quick.
	cer := &ceremony.Ceremony{Engine: eng, CA: ca, Holder: "test", TempDir: t.TempDir(), SignWait: 200 * time.Millisecond}

	srv := httptest.NewUnstartedServer(nil)
	web, err := New(Config{PublicURL: "http://" + srv.Listener.Addr().String(), Language: "fr",
		SecretKey: bytes.Repeat([]byte("s"), 32), Location: time.UTC}, cer, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = web.Handler()
	srv.Start()
	t.Cleanup(srv.Close)

	f := &fixture{t: t, srv: srv, web: web, engine: eng, clock: clock, tokens: map[string]string{}, codes: map[string][]string{}}
	blob, err := eng.PutDocument(context.Background(), bytes.NewReader(testPDF))
	if err != nil {
		t.Fatal(err)
	}
	d := testDraft()
	d.Documents = []workflow.Document{{Name: "convention.pdf", Pages: 1, Original: blob.SHA256, Current: blob.SHA256, Size: blob.Size}}
	if edit != nil {
		edit(&d)
	}
	if f.env, err = eng.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	f.readOutbox()
	if f.sender == "" || len(f.tokens) == 0 {
		t.Fatalf("the outbox held no status link or no invitation: %+v", f.tokens)
	}
	return f
}

// readOutbox takes every mail the engine queued, as the mailer would, and
// keeps the links and codes they carry.
func (f *fixture) readOutbox() {
	f.t.Helper()
	ctx := context.Background()
	for {
		it, err := f.engine.Store.Claim(ctx, engine.MailQueue, "test", f.clock.Now(), time.Minute)
		if errors.Is(err, store.ErrEmpty) {
			break
		}
		if err != nil {
			f.t.Fatal(err)
		}
		var job engine.Job
		if err := json.Unmarshal(it.Payload, &job); err != nil {
			f.t.Fatal(err)
		}
		if err := f.engine.Store.Ack(ctx, it); err != nil {
			f.t.Fatal(err)
		}
		switch {
		case job.Notice == engine.NoticeCode:
			f.codes[job.To] = append(f.codes[job.To], job.Code)
		case job.Token != "" && job.To == engine.SenderAddressee:
			f.sender = job.Token
		case job.Token != "":
			env, err := f.engine.Envelope(ctx, job.EnvelopeID)
			if err != nil {
				f.t.Fatal(err)
			}
			f.tokens[env.Recipient(job.To).Email] = job.Token
		}
	}
}

// signing is the path of the signing page of the recipient of address
// email, from the latest mail that carried their link.
func (f *fixture) signing(email string) string {
	f.t.Helper()
	f.readOutbox()
	if f.tokens[email] == "" {
		f.t.Fatalf("%s was sent no signing link", email)
	}
	return "/s/" + f.tokens[email]
}

// code returns the latest code sent to the recipient of address email.
func (f *fixture) code(email string) string {
	f.t.Helper()
	f.readOutbox()
	env := f.envelope()
	for _, r := range env.Recipients {
		if r.Email == email && len(f.codes[r.ID]) > 0 {
			return f.codes[r.ID][len(f.codes[r.ID])-1]
		}
	}
	f.t.Fatalf("no code was sent to %s", email)
	return ""
}

// envelope is the envelope as now stored.
func (f *fixture) envelope() *workflow.Envelope {
	f.t.Helper()
	env, err := f.engine.Envelope(context.Background(), f.env.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return env
}

// browser is a client with its own cookies that does not follow
// redirections, so a test sees each answer.
type browser struct {
	f      *fixture
	client *http.Client
	lang   string // Accept-Language
}

func (f *fixture) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return &browser{f: f, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// answer is a response read whole.
type answer struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) answer {
	b.f.t.Helper()
	if b.lang != "" {
		req.Header.Set("Accept-Language", b.lang)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.f.t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(body)}
}

// get fetches a path of the door.
func (b *browser) get(path string) answer {
	b.f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.f.srv.URL+path, nil)
	if err != nil {
		b.f.t.Fatal(err)
	}
	return b.do(req)
}

// post sends a form to a path of the door, as the page's form does (from
// the gateway's own origin).
func (b *browser) post(path string, form url.Values) answer {
	b.f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.f.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.f.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the form token of a page.
func (b *browser) csrf(page answer) string {
	b.f.t.Helper()
	m := csrfInput.FindStringSubmatch(page.body)
	if m == nil {
		b.f.t.Fatalf("the page has no CSRF field:\n%s", page.body)
	}
	return m[1]
}

// submit opens the page at pagePath and posts form to action with the
// page's CSRF token.
func (b *browser) submit(pagePath, action string, form url.Values) answer {
	b.f.t.Helper()
	page := b.get(pagePath)
	if page.status != http.StatusOK {
		b.f.t.Fatalf("GET %s = %d:\n%s", pagePath, page.status, page.body)
	}
	form.Set("csrf", b.csrf(page))
	return b.post(action, form)
}
