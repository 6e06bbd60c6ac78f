package web

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// fixture is the API fixture (a real store, engine, ceremony and test
// CA) with the pages' envelope: an approval by the head of department,
// then the partner's signature, with a copy to the archives, in French.
// Its browsers hold cookies and post forms as a browser without
// JavaScript does.
type fixture struct {
	*apiFixture
}

// pagesDraft is the envelope of the pages' tests; the API fixture gives
// it its ID, deadline and documents.
func pagesDraft(d *workflow.Draft) {
	id, deadline := d.ID, d.Deadline
	*d = workflow.Draft{
		ID: id, Deadline: deadline, Title: "Convention de partenariat 2027",
		Message:  "Bonjour,\nvoici la convention à signer.",
		Language: "fr", Sender: workflow.Party{Name: "Agnès Agent", Email: senderEmail},
		SenderAuth: "dmarc=pass header.from=org.example",
		Steps: []workflow.DraftStep{
			{Role: workflow.Approver, Parties: []workflow.Party{{Name: "Claude Chef", Email: "chef@org.example"}}},
			{Role: workflow.Signer, Parties: []workflow.Party{{Name: "Marie Curie", Email: "marie@partner.example"}}},
		},
		Copies: []workflow.Party{{Email: "archives@org.example"}},
	}
}

// newFixture starts the fixture with the pages' envelope, changed by edit
// when given.
func newFixture(t *testing.T, edit func(*workflow.Draft)) *fixture {
	t.Helper()
	return &fixture{newAPIFixture(t, func(_ *Config, d *workflow.Draft) {
		pagesDraft(d)
		if edit != nil {
			edit(d)
		}
	})}
}

// publicURL is the fixture's PUBLIC_URL, where its browsers go.
const publicURL = "https://sign.org.example"

// recipient is the envelope's recipient of address email.
func (f *fixture) recipient(email string) *workflow.Recipient {
	f.t.Helper()
	env := f.envelope()
	for i := range env.Recipients {
		if env.Recipients[i].Email == email {
			return &env.Recipients[i]
		}
	}
	f.t.Fatalf("%s is not a recipient", email)
	return nil
}

// token is the signing-link token of the recipient of address email,
// from the latest mail that carried it.
func (f *fixture) token(email string) string {
	f.t.Helper()
	f.drainMail()
	tok := f.links[f.recipient(email).ID]
	if tok == "" {
		f.t.Fatalf("%s was sent no signing link", email)
	}
	return tok
}

// signing is the path of the signing page of the recipient of address
// email.
func (f *fixture) signing(email string) string { return "/s/" + f.token(email) }

// status is the path of the sender's status page.
func (f *fixture) status() string { return "/e/" + f.links[engine.SenderAddressee] }

// code returns the latest code mailed to the recipient of address email.
func (f *fixture) code(email string) string {
	f.t.Helper()
	f.drainMail()
	id := f.recipient(email).ID
	for i := len(f.mail) - 1; i >= 0; i-- {
		if j := f.mail[i]; j.Notice == engine.NoticeCode && j.To == id {
			return j.Code
		}
	}
	f.t.Fatalf("no code was sent to %s", email)
	return ""
}

// codesSent counts the code mails queued so far.
func (f *fixture) codesSent() int {
	f.drainMail()
	n := 0
	for _, j := range f.mail {
		if j.Notice == engine.NoticeCode {
			n++
		}
	}
	return n
}

// browser is a client with its own cookies that does not follow
// redirections, so a test sees each answer.
type browser struct {
	f      *fixture
	client *http.Client
	lang   string // Accept-Language
}

// handlerTransport carries a client's requests to the fixture's handler.
type handlerTransport struct{ f *fixture }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := httptest.NewRequest(req.Method, req.URL.String(), req.Body)
	r.Header = req.Header.Clone()
	resp := t.f.request(r).Result()
	resp.Request = req
	return resp, nil
}

func (f *fixture) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return &browser{f: f, client: &http.Client{Jar: jar, Transport: handlerTransport{f},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
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
	req, err := http.NewRequest(http.MethodGet, publicURL+path, nil)
	if err != nil {
		b.f.t.Fatal(err)
	}
	return b.do(req)
}

// post sends a form to a path of the door, as the page's form does (from
// the gateway's own origin).
func (b *browser) post(path string, form url.Values) answer {
	b.f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, publicURL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", publicURL)
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
