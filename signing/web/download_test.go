package web

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
)

// withArchivist is the pages' envelope with its signer only (r1), its
// copy (r2) and an archivist (r3).
func withArchivist(d *workflow.Draft) {
	d.Steps = d.Steps[1:]
	d.Archivists = []workflow.Party{{Name: "Service des archives", Email: "archiviste@org.example"}}
}

// complete has the signer sign on her page, then completes the envelope
// with a sealed version of its document and a certificate, as the
// completion would; the final mails' download tokens are in f.downloads.
// It returns the final document and the certificate.
func (f *fixture) complete(b *browser) (final, cert []byte) {
	f.t.Helper()
	marie := f.signing("marie@partner.example")
	wantRedirect(f.t, "code", b.submit(marie, marie+"/code", url.Values{}), marie)
	wantRedirect(f.t, "sign", b.submit(marie, marie+"/sign", url.Values{"code": {f.code("marie@partner.example")}, "consent": {"on"}}), marie)
	ctx := context.Background()
	env := f.envelope()
	final = append(append([]byte(nil), f.currentVersion(env)...), "% sealed\n"...)
	cert = []byte("%PDF-1.7 certificat de réalisation")
	sealed, err := f.engine.PutDocument(ctx, bytes.NewReader(final))
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := f.engine.PutDocument(ctx, bytes.NewReader(cert))
	if err != nil {
		f.t.Fatal(err)
	}
	f.clock.advance(time.Minute)
	if _, err := f.engine.Event(ctx, env.ID, workflow.Completed{Meta: workflow.Meta{At: f.clock.Now()}, Certificate: c.SHA256,
		Documents: []workflow.DocumentVersion{{Index: 0, Previous: env.Documents[0].Current, SHA256: sealed.SHA256, Size: sealed.Size}}}); err != nil {
		f.t.Fatal(err)
	}
	f.drainMail()
	if len(f.downloads) != 4 {
		f.t.Fatalf("download links %v, want the sender's, the signer's, the copy's and the archivist's", f.downloads)
	}
	return final, cert
}

// currentVersion reads the current version of env's document from the store.
func (f *fixture) currentVersion(env *workflow.Envelope) []byte {
	f.t.Helper()
	rc, _, err := f.engine.Store.OpenBlob(context.Background(), env.Documents[0].Current)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rc); err != nil {
		f.t.Fatal(err)
	}
	return b.Bytes()
}

// TestDownloadPage: each party's download link lists the final document
// and the certificate with their sizes and SHA-256 and serves them from
// the store; the sender and the archivist are also given the audit trail
// through completion, the signer and the copy are not; in the envelope's language or
// the reader's choice, under the pages' security headers.
func TestDownloadPage(t *testing.T) {
	f := newFixture(t, withArchivist)
	b := f.browser()
	final, cert := f.complete(b)
	env := f.envelope()
	certSum := env.Certificate

	for who, token := range map[string]string{"signer": f.downloads["r1"], "copy": f.downloads["r2"],
		"sender": f.downloads[engine.SenderAddressee], "archivist": f.downloads["r3"]} {
		d := "/d/" + token
		page := b.get(d)
		wantStatus(t, who, page, http.StatusOK)
		mustContain(t, who, page, "Documents définitifs", "Convention de partenariat 2027", "Agnès Agent", env.ID,
			"&lt;svg onload=alert(1)&gt;.pdf", env.Documents[0].Current, "certificat-"+env.ID+".pdf", certSum,
			`href="`+d+`/documents/0"`, `href="`+d+`/documents/0?download=1"`, `href="`+d+`/certificate"`, `href="/verify"`,
			"Lien valable jusqu&#39;au", verdict.ByteSize(int64(len(final)), "fr"), verdict.ByteSize(int64(len(cert)), "fr"))
		mustNotContain(t, who, page, "<script", "<svg", `id="sign-form"`)
		for k, v := range map[string]string{"Content-Security-Policy": contentSecurityPolicy, "X-Frame-Options": "DENY",
			"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
			if got := page.header.Get(k); got != v {
				t.Errorf("%s: %s %q, want %q", who, k, got, v)
			}
		}
		if who == "signer" || who == "copy" {
			mustNotContain(t, who, page, d+"/audit")
			wantStatus(t, "the "+who+"'s audit trail", b.get(d+"/audit"), http.StatusNotFound)
		} else {
			mustContain(t, who, page, `href="`+d+`/audit"`, "audit-"+env.ID+".json", "Journal d&#39;audit")
			a := b.get(d + "/audit")
			wantStatus(t, who+" audit", a, http.StatusOK)
			var recs []audit.Record
			if err := json.Unmarshal([]byte(a.body), &recs); err != nil {
				t.Fatalf("%s: the audit trail is not JSON: %v", who, err)
			}
			if err := audit.Verify(recs); err != nil || recs[len(recs)-1].Type != audit.Completed {
				t.Errorf("%s: the audit trail (%d records) does not verify or end with the completion: %v", who, len(recs), err)
			}
			if cd := a.header.Get("Content-Disposition"); cd != `attachment; filename=audit-`+env.ID+`.json` {
				t.Errorf("%s: audit trail served as %q", who, cd)
			}
		}
		if doc := b.get(d + "/documents/0?download=1"); doc.status != http.StatusOK || doc.body != string(final) ||
			!strings.HasPrefix(doc.header.Get("Content-Disposition"), "attachment;") {
			t.Errorf("%s: final document %d, %q, %d bytes", who, doc.status, doc.header.Get("Content-Disposition"), len(doc.body))
		}
		c := b.get(d + "/certificate")
		if c.status != http.StatusOK || c.body != string(cert) || c.header.Get("Content-Disposition") != `inline; filename=certificat-`+env.ID+`.pdf` {
			t.Errorf("%s: certificate %d, %q, %q", who, c.status, c.header.Get("Content-Disposition"), c.body)
		}
		wantStatus(t, who+" document 2", b.get(d+"/documents/1"), http.StatusNotFound)
	}

	en := b.get("/d/" + f.downloads["r1"] + "?lang=en")
	mustContain(t, "English", en, "Final documents", "Link valid until", "Signed documents and certificate")
	b.lang = "en"
	mustContain(t, "the reader's choice is kept", b.get("/d/"+f.downloads["r1"]), "Final documents")
}

// TestDownloadLinkExpires: past its expiry, by the engine's clock, the
// link and every file under it answer 410 with a page that says until
// when it worked, whom to ask and where to check a copy.
func TestDownloadLinkExpires(t *testing.T) {
	f := newFixture(t, withArchivist)
	b := f.browser()
	f.complete(b)
	env := f.envelope()
	d := "/d/" + f.downloads["r3"]
	f.clock.advance(engine.DefaultDownloadTTL - time.Second)
	wantStatus(t, "the last second", b.get(d), http.StatusOK)
	f.clock.advance(time.Second)
	for _, path := range []string{d, d + "/documents/0", d + "/certificate", d + "/audit"} {
		a := b.get(path)
		wantStatus(t, path, a, http.StatusGone)
		mustContain(t, path, a, "Ce lien de téléchargement a expiré", "Il était valable jusqu&#39;au", "Agnès Agent &lt;agent@org.example&gt;",
			env.ID, `href="/verify"`, "utilisez la page de vérification")
		mustNotContain(t, path, a, env.Documents[0].Current, "%PDF")
	}
	mustContain(t, "English", b.get(d+"?lang=en"), "This download link has expired", "ask the sender")
}

// TestDownloadTokenKinds: a download token opens neither a signing page
// nor a status page nor the API; signing, status and unknown tokens open
// no download page; nor does a download token of an envelope not
// completed.
func TestDownloadTokenKinds(t *testing.T) {
	f := newFixture(t, withArchivist)
	b := f.browser()
	f.complete(b)
	dl := f.downloads["r1"]
	for _, path := range []string{"/s/" + dl, "/s/" + dl + "/documents/0", "/s/" + dl + "/certificate", "/e/" + dl, "/e/" + dl + "/documents/0",
		"/e/" + dl + "/certificate", "/d/" + f.links["r1"], "/d/" + f.links[engine.SenderAddressee], "/d/" + f.links["r1"] + "/certificate",
		"/d/unknown-token", "/d/unknown-token/documents/0"} {
		a := b.get(path)
		wantStatus(t, path, a, http.StatusNotFound)
		mustContain(t, path, a, `id="error"`, "Ce lien n&#39;est pas valable")
	}
	f.wantError(f.get("/api/v1/sign/"+dl), http.StatusNotFound, "link_not_found")
	f.wantError(f.post("/api/v1/sign/"+dl+"/sign", map[string]any{"code": "123456", "consent": true}), http.StatusNotFound, "link_not_found")

	// A download token recorded on an envelope still in progress, which
	// the engine never mints, opens nothing either.
	g := newFixture(t, withArchivist)
	ctx := context.Background()
	env := g.envelope()
	if err := env.AddDownloadToken("r1", engine.HashToken("early-download-token"), g.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	rec, head := audit.Chain(env.Audit, []audit.Record{{Time: g.clock.Now(), Type: audit.ReminderSent, Actor: workflow.SystemActor}})
	env.Audit = head
	if err := g.engine.Store.Update(ctx, env, store.Writes{Audit: rec}); err != nil {
		t.Fatal(err)
	}
	if _, holder, err := g.engine.Store.ByToken(ctx, engine.HashToken("early-download-token")); err != nil || holder != workflow.DownloadID {
		t.Fatalf("the early token is not a download token: %q, %v", holder, err)
	}
	wantStatus(t, "download link of an envelope in progress", g.browser().get("/d/early-download-token"), http.StatusNotFound)
}

// TestDownloadRateLimit: the download page and its files count against
// the link's reads, like every link's GETs.
func TestDownloadRateLimit(t *testing.T) {
	f := &fixture{newAPIFixture(t, func(c *Config, d *workflow.Draft) {
		pagesDraft(d)
		withArchivist(d)
		c.Limits = Limits{PerClient: Rate{PerSecond: 1000, Burst: 1000}, PerLinkRead: Rate{PerSecond: 1, Burst: 20},
			PerLinkWrite: Rate{PerSecond: 1000, Burst: 1000}}
	})}
	b := f.browser()
	f.complete(b)
	d := "/d/" + f.downloads["r1"]
	for range 10 {
		wantStatus(t, "page", b.get(d), http.StatusOK)
		wantStatus(t, "certificate", b.get(d+"/certificate"), http.StatusOK)
	}
	a := b.get(d + "/documents/0")
	wantStatus(t, "past the link's reads", a, http.StatusTooManyRequests)
	if a.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}
