package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"html"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/pdfcpu/pdfcpu/pkg/api"
)

// verifyFixture is the API fixture whose first signer has signed, with
// the web door told the fixture's CA, and a browser.
type verifyFixture struct {
	*fixture
	b *browser
	// signed is the document after the signature.
	signed []byte
}

func newVerifyFixture(t *testing.T) *verifyFixture {
	t.Helper()
	f := newAPIFixture(t)
	f.server.checker.CA = f.server.cer.CA.Cert
	token := f.links["r1"]
	st := f.state(f.post("/api/v1/sign/"+token+"/sign", map[string]any{"code": f.sendCode(token), "consent": true}))
	fx := &fixture{f}
	return &verifyFixture{fixture: fx, b: fx.browser(), signed: f.document(token, 0, st.Documents[0].SHA256)}
}

// file is one file of an upload.
type file struct {
	name string
	data []byte
}

// upload posts files to /verify as the page's form does, with the CSRF
// token csrf.
func (v *verifyFixture) upload(csrf string, files ...file) answer {
	v.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if csrf != "" {
		mw.WriteField("csrf", csrf)
	}
	for _, f := range files {
		w, err := mw.CreateFormFile("files", f.name)
		if err != nil {
			v.t.Fatal(err)
		}
		w.Write(f.data)
	}
	mw.Close()
	req, err := http.NewRequest(http.MethodPost, publicURL+"/verify", &body)
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", publicURL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return v.b.do(req)
}

// verify opens the page and uploads files with its token.
func (v *verifyFixture) verify(files ...file) answer {
	v.t.Helper()
	page := v.b.get("/verify")
	if page.status != http.StatusOK {
		v.t.Fatalf("GET /verify = %d:\n%s", page.status, page.body)
	}
	return v.upload(v.b.csrf(page), files...)
}

// says checks that page holds the sentence of key in lang, as the page
// escapes it.
func says(t *testing.T, page answer, lang, key string, args ...any) {
	t.Helper()
	sentence := say(lang, key, args...)
	if _, ours := words[key]; !ours {
		sentence = verdict.Say(lang, key, args...) // a report's, shared with the reply mail
	}
	if want := html.EscapeString(sentence); !strings.Contains(page.body, want) {
		t.Errorf("the page does not say %q:\n%s", want, page.body)
	}
}

func TestVerifyPageForm(t *testing.T) {
	v := newVerifyFixture(t)
	page := v.b.get("/verify?lang=en")
	if page.status != http.StatusOK {
		t.Fatalf("GET /verify = %d", page.status)
	}
	for _, want := range []string{`enctype="multipart/form-data"`, `type="file"`, `name="files"`, ` multiple`, `accept="application/pdf,.pdf"`,
		`name="csrf"`, html.EscapeString(say("en", "verify limits", MaxVerifyFiles, "26.2 MB"))} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the form lacks %s:\n%s", want, page.body)
		}
	}
	if csp := page.header.Get("Content-Security-Policy"); csp != contentSecurityPolicy {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
}

func TestVerifySignedDocument(t *testing.T) {
	v := newVerifyFixture(t)
	sum := sha256.Sum256(v.signed)
	for _, lang := range []string{"fr", "en"} {
		t.Run(lang, func(t *testing.T) {
			v.b.lang = lang
			page := v.verify(file{"convention.pdf", v.signed})
			if page.status != http.StatusOK {
				t.Fatalf("POST /verify = %d:\n%s", page.status, page.body)
			}
			says(t, page, lang, "verify valid one")
			says(t, page, lang, "verify intact")
			says(t, page, lang, "verify covers")
			if want := `<dd class="state-signed">` + html.EscapeString(verdict.Say(lang, "verify issuer ours")) + `</dd>`; !strings.Contains(page.body, want) {
				t.Errorf("the page does not say the gateway issued the signature (%s):\n%s", want, page.body)
			}
			for _, want := range []string{"convention.pdf", hex.EncodeToString(sum[:]), "B-B", html.EscapeString(xssName)} {
				if !strings.Contains(page.body, want) {
					t.Errorf("the report lacks %s", want)
				}
			}
			if strings.Contains(page.body, "<b>bold</b>") {
				t.Errorf("the signer's name is not escaped")
			}
		})
	}
}

func TestVerifyTamperedDocument(t *testing.T) {
	v := newVerifyFixture(t)
	tampered := bytes.Clone(v.signed)
	i := bytes.Index(tampered, []byte("(Convention)"))
	if i < 0 {
		t.Fatal("the signed document has no text to change")
	}
	tampered[i+2] = 'a' // Convention → Canvention, inside the signed range
	v.b.lang = "en"
	page := v.verify(file{"convention.pdf", tampered})
	if page.status != http.StatusOK {
		t.Fatalf("POST /verify = %d:\n%s", page.status, page.body)
	}
	says(t, page, "en", "verify broken")
	says(t, page, "en", "verify invalid")
	if strings.Contains(page.body, html.EscapeString(verdict.Say("en", "verify intact"))) {
		t.Errorf("a tampered signature is called intact")
	}
}

func TestVerifyNotAPDF(t *testing.T) {
	v := newVerifyFixture(t)
	v.b.lang = "fr"
	page := v.verify(file{"notes.txt", []byte("not a PDF at all")}, file{"convention.pdf", v.signed})
	if page.status != http.StatusOK {
		t.Fatalf("POST /verify = %d:\n%s", page.status, page.body)
	}
	says(t, page, "fr", "verify unreadable")
	// The other file of the upload is still checked.
	says(t, page, "fr", "verify valid one")
	if !strings.Contains(page.body, "notes.txt") {
		t.Errorf("the unreadable file is not named")
	}
}

func TestVerifyUploadLimits(t *testing.T) {
	v := newVerifyFixture(t)
	v.b.lang = "en"
	v.server.cfg.MaxUpload = int64(len(v.signed)) * 2
	// Within the limit: checked.
	if page := v.verify(file{"a.pdf", v.signed}); page.status != http.StatusOK {
		t.Fatalf("an upload within the limit = %d:\n%s", page.status, page.body)
	}
	// Over it: 413, and the page says the limit.
	big := bytes.Repeat([]byte("x"), int(v.server.cfg.MaxUpload)+multipartOverhead)
	page := v.verify(file{"a.pdf", v.signed}, file{"big.pdf", big})
	if page.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("an upload over the limit = %d:\n%s", page.status, page.body)
	}
	says(t, page, "en", "verify too big", verdict.ByteSize(v.server.cfg.MaxUpload, "en"))
	if strings.Contains(page.body, html.EscapeString(verdict.Say("en", "verify valid one"))) {
		t.Errorf("an upload over the limit was checked")
	}
	// Too many files: 413 too.
	v.server.cfg.MaxUpload = DefaultMaxUpload
	var many []file
	for range MaxVerifyFiles + 1 {
		many = append(many, file{"a.pdf", v.signed})
	}
	page = v.verify(many...)
	if page.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("%d files = %d:\n%s", len(many), page.status, page.body)
	}
	says(t, page, "en", "verify too many", MaxVerifyFiles)
	// None: the form again, with a refusal.
	page = v.verify(file{"", nil})
	if page.status != http.StatusBadRequest {
		t.Fatalf("an empty upload = %d:\n%s", page.status, page.body)
	}
	says(t, page, "en", "verify none")
}

func TestVerifyNeedsCSRF(t *testing.T) {
	v := newVerifyFixture(t)
	v.b.lang = "en"
	page := v.b.get("/verify")
	token := v.b.csrf(page)
	// A wrong token differs from the page's in its first character, whatever that is.
	wrong := "A" + token[1:]
	if token[0] == 'A' {
		wrong = "B" + token[1:]
	}
	for name, csrf := range map[string]string{"none": "", "wrong": wrong, "another form's": v.server.csrfToken(v.cookie(), "some-link")} {
		page := v.upload(csrf, file{"a.pdf", v.signed})
		if page.status != http.StatusForbidden {
			t.Errorf("%s CSRF token: status %d", name, page.status)
		}
		if strings.Contains(page.body, html.EscapeString(verdict.Say("en", "verify valid one"))) {
			t.Errorf("%s CSRF token: the upload was checked", name)
		}
	}
	if page := v.upload(token, file{"a.pdf", v.signed}); page.status != http.StatusOK {
		t.Errorf("the page's own token: status %d", page.status)
	}
}

// cookie is the browser's CSRF cookie.
func (v *verifyFixture) cookie() string {
	v.t.Helper()
	u, err := url.Parse(publicURL + "/verify")
	if err != nil {
		v.t.Fatal(err)
	}
	for _, c := range v.b.client.Jar.Cookies(u) {
		if c.Name == v.server.csrfCookie() {
			return c.Value
		}
	}
	v.t.Fatal("the browser has no CSRF cookie")
	return ""
}

func TestVerifyFileNameEscaped(t *testing.T) {
	v := newVerifyFixture(t)
	page := v.verify(file{xssFileName, v.signed})
	if page.status != http.StatusOK {
		t.Fatalf("POST /verify = %d", page.status)
	}
	if strings.Contains(page.body, "<svg") || !strings.Contains(page.body, html.EscapeString(xssFileName)) {
		t.Errorf("the file name is not shown escaped:\n%s", page.body)
	}
}

func TestVerifyLinkedFromEveryPage(t *testing.T) {
	v := newVerifyFixture(t)
	for lang, path := range map[string]string{"fr": "/s/" + v.links["r2"] + "?lang=fr", "en": "/verify?lang=en"} {
		page := v.b.get(path)
		if want := `<a href="/verify">` + html.EscapeString(say(lang, "verify link")) + `</a>`; !strings.Contains(page.body, want) {
			t.Errorf("%s lacks %s", path, want)
		}
	}
}

// withTrail is the fixture's one-page PDF with recs attached as
// audit-E1.json, as the completion certificate embeds its trail.
func withTrail(t *testing.T, recs []audit.Record) []byte {
	t.Helper()
	data, err := json.Marshal(recs)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "audit-E1.json")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := api.AddAttachments(bytes.NewReader(onePagePDF()), &out, []string{name}, false, pdftest.PdfcpuConfig(t)); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestVerifyEmbeddedTrail(t *testing.T) {
	v := newVerifyFixture(t)
	at := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	recs, _ := audit.Chain(audit.Start(), []audit.Record{
		{Time: at, Type: audit.Submitted, Actor: "agent@org.example"},
		{Time: at.Add(time.Minute), Type: audit.InvitationSent, Actor: "system", RecipientID: "r1"},
		{Time: at.Add(time.Hour), Type: audit.Signed, Actor: "marie@partner.example", RecipientID: "r1"},
	})
	edited := slices.Clone(recs)
	edited[1].Actor = "mallory@example.org"
	v.b.lang = "en"
	page := v.verify(file{"intact.pdf", withTrail(t, recs)}, file{"edited.pdf", withTrail(t, edited)})
	if page.status != http.StatusOK {
		t.Fatalf("POST /verify = %d:\n%s", page.status, page.body)
	}
	says(t, page, "en", "verify no signature")
	says(t, page, "en", "verify trail intact", 3)
	if want := html.EscapeString(verdict.Say("en", "verify trail broken at", 2, "invitation sent", "1 June 2026, 09:01 UTC", "")); !strings.Contains(page.body, strings.TrimSuffix(want, ": .")) {
		t.Errorf("the page does not name the edited event (%s):\n%s", want, page.body)
	}
}

// TestVerifyNamesEnvelopeAndFinalVersion follows one document through its
// envelope: the version after the first signature is the latest while
// the envelope is in progress, an earlier one after the next signature,
// and the version after the last signature is the final one.
func TestVerifyNamesEnvelopeAndFinalVersion(t *testing.T) {
	v := newVerifyFixture(t)
	v.b.lang = "en"
	first := v.verify(file{"first.pdf", v.signed})
	says(t, first, "en", "verify envelope", v.env.ID, "in progress")
	says(t, first, "en", "verify current", 1, xssFileName)

	sign := func(token string) []byte {
		st := v.state(v.post("/api/v1/sign/"+token+"/sign", map[string]any{"code": v.sendCode(token), "consent": true}))
		v.drainMail()
		return v.document(token, 0, st.Documents[0].SHA256)
	}
	sign(v.links["r2"])
	says(t, v.verify(file{"first.pdf", v.signed}), "en", "verify not current")

	last := sign(v.links["r3"])
	says(t, v.verify(file{"last.pdf", last}), "en", "verify current", 1, xssFileName)
	// Completion seals the document: the sealed version, appended to the
	// last signed one, is the final version, and the last signed one is
	// no longer.
	ctx := context.Background()
	sealed := append(bytes.Clone(last), "% sealed\n"...)
	blob, err := v.engine.PutDocument(ctx, bytes.NewReader(sealed))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := v.engine.PutDocument(ctx, strings.NewReader("%PDF-1.7 certificate"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.engine.Event(ctx, v.env.ID, workflow.Completed{Meta: workflow.Meta{At: v.clock.Now()}, Certificate: cert.SHA256,
		Documents: []workflow.DocumentVersion{{Index: 0, Previous: v.envelope().Documents[0].Current, SHA256: blob.SHA256, Size: blob.Size}}}); err != nil {
		t.Fatal(err)
	}
	page := v.verify(file{"final.pdf", sealed})
	says(t, page, "en", "verify valid", 3)
	says(t, page, "en", "verify envelope", v.env.ID, "completed")
	says(t, page, "en", "verify final", 1, xssFileName)
	says(t, v.verify(file{"last.pdf", last}), "en", "verify not current")
}
