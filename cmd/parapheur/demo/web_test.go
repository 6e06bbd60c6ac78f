package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/parapheur/parapheur/mailout/compose"
	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/backend"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

const gateway = "parapheur@" + Domain

// rig is a post office and the demo's site on a test server.
type rig struct {
	office *PostOffice
	server *httptest.Server
	sample []byte
}

func newRig(t *testing.T) *rig {
	t.Helper()
	mailbox, err := OpenMailbox(t.TempDir(), 100, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	office, err := StartPostOffice(mailbox, gateway, "mx."+Domain, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { office.Close() })
	sample, err := SamplePDF()
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{office: office, sample: sample}
	r.server = httptest.NewUnstartedServer(nil)
	r.server.Start()
	t.Cleanup(r.server.Close)
	st, err := backend.Open(context.Background(), "bolt://"+filepath.Join(t.TempDir(), "parapheur.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	site := &Site{Office: office, PublicURL: r.server.URL, Language: "fr", Location: paris, SamplePDF: sample, MaxUpload: 25 << 20,
		Envelopes: &engine.Engine{Store: st}, SampleEnvelope: engine.EnvelopeID(SampleMessageID), Log: slog.New(slog.DiscardHandler)}
	h, err := site.Handler()
	if err != nil {
		t.Fatal(err)
	}
	r.server.Config.Handler = h
	return r
}

// composer is the gateway's composer, as the demo configures it.
func (r *rig) composer(t *testing.T) *compose.Composer {
	t.Helper()
	c, err := compose.New(compose.Config{Address: gateway, PublicURL: r.server.URL, Language: "fr",
		AttachmentLimit: 10 << 20, ReturnPathKey: bytes.Repeat([]byte{7}, mailid.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// envelope is an envelope with a signer and an archivist.
func envelope() *workflow.Envelope {
	return &workflow.Envelope{
		ID: "EDEMOTEST", Title: "Convention de partenariat", Language: "fr",
		Sender:    workflow.Party{Name: Agent.Name, Email: Agent.Email},
		Deadline:  time.Date(2027, 1, 31, 23, 59, 0, 0, time.UTC),
		Documents: []workflow.Document{{Name: "convention.pdf", Pages: 3}},
		Steps:     []workflow.Step{{Role: workflow.Signer, Recipients: []string{"r1"}}},
		Recipients: []workflow.Recipient{
			{Party: workflow.Party{Name: Mayor.Name, Email: Mayor.Email}, ID: "r1", Role: workflow.Signer, State: workflow.Pending},
			{Party: workflow.Party{Name: Archives.Name, Email: Archives.Email}, ID: "r2", Role: workflow.Archivist, Step: -1},
		},
	}
}

// send composes m with the gateway's composer and sends it over SMTP to
// the post office, as the gateway's outbox does.
func (r *rig) send(t *testing.T, m *compose.Message, rcpt string) {
	t.Helper()
	var b bytes.Buffer
	if err := r.composer(t).Compose(&b, m); err != nil {
		t.Fatal(err)
	}
	r.sendRaw(t, "parapheur+bounce@"+Domain, []string{rcpt}, &b)
}

// sendRaw sends a mail over SMTP to the post office, without TLS as the
// gateway does to a loopback relay.
func (r *rig) sendRaw(t *testing.T, from string, to []string, mail io.Reader) {
	t.Helper()
	c, err := smtp.Dial(r.office.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail(from, to, mail); err != nil {
		t.Fatal(err)
	}
}

// sendInvitationAndCompletion sends an invitation to the signer, then the
// completion to the archivist with the sample PDF attached.
func (r *rig) sendInvitationAndCompletion(t *testing.T) {
	t.Helper()
	env := envelope()
	r.send(t, &compose.Message{ID: "1@" + Domain, Date: time.Now(), Envelope: env, RecipientID: "r1",
		Data: compose.Invitation{Link: r.server.URL + "/s/TOKEN1"}}, Mayor.Email)
	sum := sha256.Sum256(r.sample)
	file := compose.Attachment{Name: "convention-signée.pdf", ContentType: "application/pdf", Size: int64(len(r.sample)),
		SHA256: hex.EncodeToString(sum[:]), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(r.sample)), nil }}
	audit := []byte(`{"events":[]}`)
	auditSum := sha256.Sum256(audit)
	r.send(t, &compose.Message{ID: "2@" + Domain, Date: time.Now(), Envelope: env, RecipientID: "r2",
		Data: compose.Completion{Files: []compose.Attachment{file},
			DownloadURL: r.server.URL + "/d/TOKEN2", DownloadUntil: time.Now().Add(30 * 24 * time.Hour),
			Audit: &compose.Attachment{Name: "audit-EDEMOTEST.json",
				ContentType: "application/json", Size: int64(len(audit)), SHA256: hex.EncodeToString(auditSum[:]),
				Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(audit)), nil }}}}, Archives.Email)
}

// get fetches path from the site and returns the answer and its body.
func (r *rig) get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	if strings.HasPrefix(url, "/") {
		url = r.server.URL + url
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// getJSON fetches path, wants 200 and JSON, and decodes it into v.
func (r *rig) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, b := r.get(t, path)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %s %s\n%s", path, resp.Status, resp.Header.Get("Content-Type"), b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, b)
	}
}

// keys are the sorted keys of a JSON object.
func keys(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

func wantKeys(t *testing.T, what string, m map[string]any, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := keys(m); !slices.Equal(got, want) {
		t.Errorf("%s has the keys %q, want exactly %q (SPEC §7)", what, got, want)
	}
}

// TestMessagesAPI reads composed mails through the JSON twin: the list
// newest first, a message with its text, HTML and attachments, each in
// SPEC §7's shape, and an attachment downloaded from its url.
func TestMessagesAPI(t *testing.T) {
	r := newRig(t)
	r.sendInvitationAndCompletion(t)

	var list []map[string]any
	r.getJSON(t, "/demo/api/messages", &list)
	if len(list) != 2 {
		t.Fatalf("the list has %d mails, want 2: %v", len(list), list)
	}
	for i, m := range list {
		wantKeys(t, "a mail of the list", m, "id", "from", "to", "subject", "date")
		if i == 0 && (m["subject"] != "Terminé : Convention de partenariat" || m["to"].([]any)[0] != Archives.String()) {
			t.Errorf("the newest mail is %v, want the completion to the archives", m)
		}
	}
	if list[1]["subject"] != "À signer : Convention de partenariat" || list[1]["from"] != "Parapheur <"+gateway+">" {
		t.Errorf("the oldest mail is %v, want the invitation from the gateway", list[1])
	}
	if _, err := time.Parse(time.RFC3339, list[0]["date"].(string)); err != nil {
		t.Errorf("date: %v", err)
	}

	var invitation map[string]any
	r.getJSON(t, "/demo/api/messages/"+list[1]["id"].(string), &invitation)
	wantKeys(t, "a message", invitation, "id", "from", "to", "subject", "date", "text", "html", "attachments")
	if !strings.Contains(invitation["text"].(string), r.server.URL+"/s/TOKEN1") ||
		!strings.Contains(invitation["html"].(string), `href="`+r.server.URL+`/s/TOKEN1"`) {
		t.Errorf("the invitation's text and HTML do not carry the link:\n%v", invitation)
	}
	if a := invitation["attachments"].([]any); len(a) != 0 {
		t.Errorf("the invitation has attachments: %v", a)
	}

	var completion struct {
		Attachments []map[string]any
	}
	r.getJSON(t, "/demo/api/messages/"+list[0]["id"].(string), &completion)
	if len(completion.Attachments) != 2 {
		t.Fatalf("the completion has %d attachments, want the PDF and the audit trail", len(completion.Attachments))
	}
	pdf := completion.Attachments[0]
	wantKeys(t, "an attachment", pdf, "name", "content_type", "size", "url")
	if pdf["name"] != "convention-signée.pdf" || pdf["content_type"] != "application/pdf" || pdf["size"] != float64(len(r.sample)) {
		t.Errorf("the PDF attachment is described as %v", pdf)
	}
	resp, body := r.get(t, pdf["url"].(string))
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, r.sample) || resp.Header.Get("Content-Type") != "application/pdf" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("downloading %s: %s %s %s, %d bytes", pdf["url"], resp.Status, resp.Header.Get("Content-Type"),
			resp.Header.Get("Content-Disposition"), len(body))
	}
	if completion.Attachments[1]["name"] != "audit-EDEMOTEST.json" {
		t.Errorf("the second attachment is %v, want the audit trail", completion.Attachments[1])
	}

	for _, path := range []string{"/demo/api/messages/999", "/demo/api/messages/x", "/demo/api/messages/" + list[0]["id"].(string) + "/attachments/2"} {
		resp, body := r.get(t, path)
		var answer struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(body, &answer); resp.StatusCode != http.StatusNotFound || err != nil || answer.Error.Code != "not_found" || answer.Error.Message == "" {
			t.Errorf("GET %s: %s %q, want 404 and a JSON error", path, resp.Status, body)
		}
	}
}

// TestMailPages reads a composed invitation in the mailbox's pages: the
// list links to it, its HTML is in a frame that may run no script, served
// under the policy that fetches nothing, and its link opens the whole
// window.
func TestMailPages(t *testing.T) {
	r := newRig(t)
	r.sendInvitationAndCompletion(t)
	var list []map[string]any
	r.getJSON(t, "/demo/api/messages", &list)
	id := list[1]["id"].(string)

	resp, page := r.get(t, "/demo/mail")
	if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte(`href="/demo/mail/`+id+`"`)) ||
		bytes.Index(page, []byte("Terminé : ")) > bytes.Index(page, []byte("À signer : ")) {
		t.Fatalf("the list does not link to the invitation, newest first:\n%s", page)
	}
	if !regexp.MustCompile(`\d\d/\d\d/\d{4} \d\d:\d\d CES?T`).Match(page) {
		t.Errorf("the list does not give dates in the gateway's zone (Paris):\n%s", page)
	}
	resp, page = r.get(t, "/demo/mail?to="+Archives.Email)
	if bytes.Contains(page, []byte("À signer : ")) || !bytes.Contains(page, []byte("Terminé : ")) {
		t.Errorf("the list of the archives' mailbox shows another's mail:\n%s", page)
	}

	resp, page = r.get(t, "/demo/mail/"+id)
	frame := regexp.MustCompile(`<iframe[^>]*src="/demo/mail/` + id + `/html"[^>]*>`).Find(page)
	if resp.StatusCode != http.StatusOK || frame == nil {
		t.Fatalf("the mail's page has no frame of its HTML:\n%s", page)
	}
	sandbox := regexp.MustCompile(`sandbox="([^"]*)"`).FindSubmatch(frame)
	if sandbox == nil || strings.Contains(string(sandbox[1]), "allow-scripts") || strings.Contains(string(sandbox[1]), "allow-same-origin") {
		t.Errorf("the frame %s is not sandboxed against scripts", frame)
	}
	if !bytes.Contains(page, []byte(`<a href="`+r.server.URL+`/s/TOKEN1">`)) {
		t.Errorf("the mail's text does not link to the signing page:\n%s", page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("the mail's page has the policy %q", csp)
	}

	resp, html := r.get(t, "/demo/mail/"+id+"/html")
	if csp := resp.Header.Get("Content-Security-Policy"); csp != "default-src 'none'; img-src data:; style-src 'unsafe-inline'" {
		t.Errorf("the mail's HTML has the policy %q", csp)
	}
	if resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || !bytes.HasPrefix(html, []byte(`<base target="_top">`)) ||
		!bytes.Contains(html, []byte(r.server.URL+"/s/TOKEN1")) {
		t.Errorf("the mail's HTML (%s):\n%s", resp.Header.Get("Content-Type"), html)
	}
}

// gatewayMailbox logs in to the gateway's mailbox as its poller does.
func (r *rig) gatewayMailbox(t *testing.T) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(r.office.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(r.office.IMAPUser, r.office.IMAPPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDeliveryToTheGateway sends mail through the SMTP server: mail to
// the gateway's address and its plus-addresses lands in its IMAP inbox,
// once, with the trusted authentication results of the demo's domain;
// mail to anyone else is only kept for the web mailbox.
func TestDeliveryToTheGateway(t *testing.T) {
	r := newRig(t)
	// A sender's own Authentication-Results with the demo MTA's id are
	// removed (RFC 8601 §5); another server's are kept.
	const forged, foreign = "Authentication-Results: MX.demo.example; dmarc=pass header.from=elsewhere.example\r\n",
		"Authentication-Results: mx.elsewhere.example; dmarc=pass header.from=elsewhere.example\r\n"
	mail := func(from, subject string) io.Reader {
		return strings.NewReader("From: " + from + "\r\nTo: " + gateway + "\r\nSubject: " + subject + "\r\n" + forged + foreign +
			"Message-ID: <" + subject + "@x>\r\n\r\nDECLINE: wrong amount\r\n")
	}
	for _, m := range []struct{ from, subject string }{{Mayor.Email, "reply"}, {"someone@elsewhere.example", "outsider"}} {
		r.sendRaw(t, m.from, []string{gateway, "parapheur+verify@" + Domain}, mail(m.from, m.subject))
	}
	r.sendRaw(t, Mayor.Email, []string{Accounting.Email}, mail(Mayor.Email, "aside"))
	list, _ := r.office.Mailbox.List()
	if len(list) != 3 {
		t.Fatalf("the web mailbox keeps %d mails, want 3", len(list))
	}
	// The kept copy names the return path a delivery report must go to.
	for _, m := range list {
		if raw, err := r.office.Mailbox.Raw(m.ID); err != nil || !bytes.HasPrefix(raw, []byte("Return-Path: <"+Mayor.Email+">\r\n")) && !bytes.HasPrefix(raw, []byte("Return-Path: <someone@elsewhere.example>\r\n")) {
			t.Errorf("mail %s kept without its Return-Path: %v\n%.200s", m.ID, err, raw)
		}
	}

	c := r.gatewayMailbox(t)
	for _, f := range []string{"Processed", "Quarantine"} {
		if _, err := c.Status(f, &imap.StatusOptions{NumMessages: true}).Wait(); err != nil {
			t.Errorf("the gateway's folder %s: %v", f, err)
		}
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("the gateway's inbox holds %d mails, want 2", len(msgs))
	}
	for i, want := range []string{
		"Authentication-Results: mx.demo.example; dmarc=pass header.from=demo.example\r\n",
		"Authentication-Results: mx.demo.example; dmarc=none header.from=elsewhere.example\r\n",
	} {
		raw := msgs[i].BodySection[0].Bytes
		if !bytes.Contains(raw, []byte(want)) || !bytes.HasPrefix(raw, []byte("Return-Path: <")) {
			t.Errorf("mail %d in the inbox lacks %q or a Return-Path:\n%s", i+1, want, raw)
		}
		if bytes.Contains(raw, []byte(forged)) || !bytes.Contains(raw, []byte(foreign)) || !bytes.HasSuffix(raw, []byte("\r\n\r\nDECLINE: wrong amount\r\n")) {
			t.Errorf("mail %d in the inbox keeps the sender's Authentication-Results with the demo's id, or lost another field or its body:\n%s", i+1, raw)
		}
	}
}

// TestNewMailboxAtEachStart starts two post offices one after the other,
// as two runs of the demo: the gateway's inbox of each is empty, its UIDs
// start at 1, and its UIDVALIDITY differs, so that a poller does not take
// the second for the first and skip its mail.
func TestNewMailboxAtEachStart(t *testing.T) {
	validity := map[uint32]bool{}
	for range 2 {
		r := newRig(t)
		r.sendRaw(t, Agent.Email, []string{gateway}, strings.NewReader("From: "+Agent.Email+"\r\nSubject: x\r\n\r\nx\r\n"))
		sel, err := r.gatewayMailbox(t).Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if sel.NumMessages != 1 || sel.UIDNext != 2 {
			t.Errorf("the new inbox holds %d mails, next UID %d; want 1 and 2", sel.NumMessages, sel.UIDNext)
		}
		validity[sel.UIDValidity] = true
	}
	if len(validity) != 2 {
		t.Errorf("two starts gave the inbox the same UIDVALIDITY %v", validity)
	}
}

// TestSubmitForm sends a document of the visitor's through the landing
// page's form: it reaches the gateway's inbox from the chosen mailbox,
// with the instruction block and the PDF, and shows in the web mailbox.
func TestSubmitForm(t *testing.T) {
	r := newRig(t)
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField("from", President.Email)
	w.WriteField("subject", "Avenant n° 1")
	w.WriteField("instructions", "Signataire : "+Mayor.String())
	f, _ := w.CreateFormFile("pdf", "avenant.pdf")
	f.Write(r.sample)
	w.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Post(r.server.URL+"/demo/submit", w.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/demo/mail" {
		t.Fatalf("the form answered %s to %s", resp.Status, resp.Header.Get("Location"))
	}
	list, _ := r.office.Mailbox.List()
	if len(list) != 1 || list[0].From != President.String() || list[0].Subject != "Avenant n° 1" || !slices.Equal(list[0].To, []string{gateway}) {
		t.Fatalf("the web mailbox holds %+v", list)
	}
	m, err := r.office.Mailbox.Message(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, "Signataire : "+Mayor.String()) || len(m.Attachments) != 1 ||
		m.Attachments[0].Name != "avenant.pdf" || !bytes.Equal(m.Attachments[0].Content, r.sample) {
		t.Errorf("the submission reads %q with %d attachments", m.Text, len(m.Attachments))
	}
	status, err := r.office.user.Status("INBOX", &imap.StatusOptions{NumMessages: true})
	if err != nil || *status.NumMessages != 1 {
		t.Errorf("the gateway's inbox: %v, %v", status, err)
	}

	// A form without a sender of the demo goes back to the page, saying so.
	resp, err = client.PostForm(r.server.URL+"/demo/submit", map[string][]string{"from": {"x@elsewhere.example"}, "subject": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/demo?error=") {
		t.Fatalf("a form from an unknown sender answered %s to %s", resp.Status, loc)
	}
	_, page := r.get(t, loc)
	if !bytes.Contains(page, []byte(`<p id="error" class="error">Choisissez un expéditeur de la démo`)) ||
		!bytes.Contains(page, []byte("La passerelle n&#39;a pas encore relevé la convention d&#39;exemple")) {
		t.Errorf("the page %s does not say what was wrong, or what became of the sample:\n%s", loc, page)
	}
}

// TestMailboxBoundsAndRestart keeps mails beyond the bounds and opens the
// directory again, as a restarted demo does.
func TestMailboxBoundsAndRestart(t *testing.T) {
	dir := t.TempDir()
	m, err := OpenMailbox(dir, 3, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"one", "two", "three", "four"} {
		if _, err := m.Add([]byte("From: a@" + Domain + "\r\nTo: b@" + Domain + "\r\nSubject: " + s + "\r\n\r\nhello\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	subjects := func(m *Mailbox) string {
		list, _ := m.List()
		var s []string
		for _, x := range list {
			s = append(s, x.ID+":"+x.Subject)
		}
		return strings.Join(s, " ")
	}
	if got := subjects(m); got != "4:four 3:three 2:two" {
		t.Errorf("after four mails in a mailbox of three: %s", got)
	}
	if _, err := m.Raw("1"); err != ErrNotFound {
		t.Errorf("the oldest mail is still there: %v", err)
	}
	again, err := OpenMailbox(dir, 3, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := subjects(again); got != "4:four 3:three 2:two" {
		t.Errorf("after a restart: %s", got)
	}
	if id, err := again.Add([]byte("Subject: five\r\n\r\n")); err != nil || id != "5" {
		t.Errorf("the next mail after a restart is %q, %v; want 5", id, err)
	}
	if _, err := m.Add([]byte("not a mail")); err == nil {
		t.Error("a text without header was kept as a mail")
	}
}
