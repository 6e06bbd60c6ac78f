package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/signtest"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// ceremonyUsers are the mailboxes of the people of the signing tests: the
// gateway, the agent who submits, and the recipients.
var ceremonyUsers = []string{"parapheur", "bob", "approver", "signer1", "signer2", "signer3", "copy", "archivist", "delegate"}

// mailWait bounds the wait for one mail through Postfix, the gateway and
// Dovecot: generous, because the machine running the tests may be busy.
const mailWait = 60 * time.Second

// ceremonyRig is one "parapheur serve" on a private Postfix and Dovecot,
// shared by the tests of the signing ceremony.
type ceremonyRig struct {
	rig  *testrig.Mail
	srv  *server
	keys string // keys.dir: the signing CA is keys/ca.crt
	// store is the gateway's store.url, which "parapheur verify" reads
	// too; "" when the test did not say.
	store string
	base  string // the public URL
	// address is the gateway's mailbox address; "" means
	// parapheur@org.example.
	address string
	// secrets are the link tokens and one-time codes of every mail read,
	// which the gateway's logs must never show; mu guards them, for the
	// tests that run envelopes side by side.
	mu      sync.Mutex
	secrets []string
}

// TestSigningCeremony runs envelopes from the agent's mail to the signed
// PDF through the real gateway, Postfix and Dovecot: every recipient reads
// their invitation and their codes in their own mailbox and acts through
// the JSON API or, in Chromium, through the pages.
func TestSigningCeremony(t *testing.T) {
	c := startCeremonyRig(t, ceremonyUsers...)
	t.Cleanup(signtest.Cleanup)

	t.Run("whole envelope through mail and the API", c.wholeEnvelope)
	t.Run("pages in a browser", c.inBrowser)
	t.Run("no token or code in the logs", c.logsHoldNoSecret)
	t.Run("no token or code in the store", func(t *testing.T) {
		c.storeHoldsNoSecret(t, strings.TrimPrefix(c.store, "bolt://"))
	})
}

// startCeremonyRig starts a private Postfix and Dovecot with the mailboxes
// of users, and "parapheur serve" on them with a new CA, until the test
// ends.
func startCeremonyRig(t *testing.T, users ...string) *ceremonyRig {
	t.Helper()
	rig := startMailRig(t, users...)
	keys := initKeys(t)
	storeURL := "bolt://" + filepath.Join(t.TempDir(), "parapheur.db")
	srv := startServe(t, rig, storeURL, keys)
	return &ceremonyRig{rig: rig, srv: srv, keys: keys, store: storeURL, base: "http://" + srv.listen}
}

// startMailRig starts a private Postfix and Dovecot with the mailboxes of
// users, until the test ends.
func startMailRig(t *testing.T, users ...string) *testrig.Mail {
	t.Helper()
	rig, err := testrig.StartMail(t.TempDir(), testrig.MailOptions{Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rig.Stop(); err != nil {
			t.Error(err)
		}
	})
	return rig
}

// logsHoldNoSecret looks for every link token and code the mails carried
// in the gateway's logs.
func (c *ceremonyRig) logsHoldNoSecret(t *testing.T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.secrets) < 10 {
		t.Fatalf("%d secrets collected: the whole envelope's mails carry more", len(c.secrets))
	}
	logsHoldNone(t, c.srv.logs.String(), c.secrets)
}

// storeHoldsNoSecret looks for every link token and code the mails carried
// in the store's files, read as they lie on disk (a bbolt file, Redis's
// append-only files): SPEC §3 stores them as hashes only, and a copy of
// the store (a backup) must open no signing page. The files must show the
// sender's address, or they would not be the store, in clear. A token is
// looked for as is; a code, six digits, as a JSON or a Redis string.
func (c *ceremonyRig) storeHoldsNoSecret(t *testing.T, files ...string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.secrets) < 2 || len(files) == 0 {
		t.Fatalf("%d secrets collected, %d store files: the check would prove nothing", len(c.secrets), len(files))
	}
	var data []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, b...)
	}
	if !bytes.Contains(data, []byte("bob@example.com")) {
		t.Fatalf("%s (%d bytes) do not show bob@example.com: not the store's files, or not in clear", files, len(data))
	}
	// The stores keep an outbox item's payload as base64 in its JSON.
	for _, m := range storeBase64.FindAllSubmatch(data, -1) {
		if b, err := base64.StdEncoding.DecodeString(string(m[1])); err == nil {
			data = append(data, b...)
		}
	}
	for _, secret := range c.secrets {
		forms := []string{secret}
		if len(secret) == workflow.CodeDigits {
			forms = []string{`"` + secret + `"`, "\r\n" + secret + "\r\n"}
		}
		for _, form := range forms {
			if bytes.Contains(data, []byte(form)) {
				t.Errorf("the store's files show the secret %q", secret)
			}
		}
	}
}

// storeBase64 is a JSON string of standard base64, as encoding/json writes
// a []byte.
var storeBase64 = regexp.MustCompile(`"([A-Za-z0-9+/]{16,}={0,2})"`)

// logsHoldNone fails t if logs show one of secrets. A code is looked for as
// a number of its own, not as six digits of a longer one (a timestamp's
// fraction).
func logsHoldNone(t *testing.T, logs string, secrets []string) {
	t.Helper()
	if len(secrets) < 2 || !strings.Contains(logs, "parapheur: serving") {
		t.Fatalf("%d secrets collected, %d bytes of logs: the check would prove nothing", len(secrets), len(logs))
	}
	for _, secret := range secrets {
		if regexp.MustCompile(`(^|[^0-9.:])` + regexp.QuoteMeta(secret) + `([^0-9]|$)`).MatchString(logs) {
			t.Errorf("the gateway's logs show the secret %q", secret)
		}
	}
}

// wholeEnvelope is issue 10's envelope: an approver, then two signers in
// parallel, then one signer, with a copy and an archivist. Each signature
// must be valid for every independent validator, the earlier ones still
// valid after the later ones, and each certificate must name its signer.
func (c *ceremonyRig) wholeEnvelope(t *testing.T) {
	const title = "Convention de partenariat 2027"
	envID, _ := c.submit(t, title,
		"Visa : Anne Viseur <approver@example.com>",
		"Signataire : Sophie Première <signer1@example.com>, Paul Second <signer2@example.com>",
		"Signataire : Élise Troisième <signer3@example.com>",
		"Copie : Carl Copie <copy@example.com>",
		"Archive : archivist@example.com",
	)
	ack := c.read(t, "bob", "Enregistré : "+title)
	for _, want := range []string{envID, "copy@example.com", "archivist@example.com", c.base + "/e/"} {
		if !strings.Contains(ack.text, want) {
			t.Errorf("the acknowledgement does not show %q:\n%s", want, ack.text)
		}
	}

	approver := c.invited(t, "approver", "À viser : "+title)
	st := approver.state(t)
	if st.Envelope.ID != envID || st.Envelope.Title != title || st.Envelope.State != "in_progress" ||
		st.Recipient.Email != "approver@example.com" || st.Recipient.Role != "approver" || !st.Recipient.CanAct || len(st.Steps) != 3 {
		t.Fatalf("the approver's state: %+v", st)
	}
	approver.act(t, c, title, "approved")

	// Step 2 runs in parallel: both signers are invited at once, and act
	// in any order (the second first here).
	first, second := c.invited(t, "signer1", "À signer : "+title), c.invited(t, "signer2", "À signer : "+title)
	second.act(t, c, title, "signed")
	if st := first.state(t); !st.Steps[1].Current || st.Steps[2].Recipients[0].State != "waiting" || !st.Recipient.CanAct {
		t.Fatalf("after one signer of the parallel step, the step moved on or the other cannot act: %+v", st)
	}
	first.act(t, c, title, "signed")
	afterStep2 := first.document(t, 0)

	last := c.invited(t, "signer3", "À signer : "+title)
	st = last.act(t, c, title, "signed")
	for i, step := range st.Steps {
		if step.Current {
			t.Errorf("step %d is still current after every recipient acted", i+1)
		}
		for _, r := range step.Recipients {
			if r.State != "signed" && r.State != "approved" {
				t.Errorf("step %d: %s is %s", i+1, r.Name, r.State)
			}
		}
	}
	// The last signature is answered before the completion: the gateway
	// then seals the documents (B-B: no tsa.url) and completes the
	// envelope.
	if st.Envelope.State != "in_progress" {
		t.Errorf("the envelope is %s right after the last signature; want in_progress until it is completed", st.Envelope.State)
	}
	eventually(t, mailWait, "the envelope completed", func() bool {
		st = last.state(t)
		return st.Envelope.State == "completed"
	})

	final := last.document(t, 0)
	if sum := sha256.Sum256(final); hex.EncodeToString(sum[:]) != st.Documents[0].SHA256 {
		t.Errorf("the document served is not the one the state describes (SHA-256 %s)", st.Documents[0].SHA256)
	}
	// Incremental updates: the final file begins with the file the first
	// two signatures were made on, byte for byte.
	if !bytes.HasPrefix(final, afterStep2) {
		t.Error("the last signature rewrote the document instead of appending to it")
	}
	dir := t.TempDir()
	ca := filepath.Join(c.keys, pki.CACertFile)
	for _, v := range []struct {
		name string
		pdf  []byte
		sigs int
	}{{"after-step-2.pdf", afterStep2, 2}, {"final.pdf", final, 4}} {
		path := filepath.Join(dir, v.name)
		if err := os.WriteFile(path, v.pdf, 0o644); err != nil {
			t.Fatal(err)
		}
		signtest.Validate(t, path, signtest.Expect{Signatures: v.sigs, CAFile: ca})
	}
	// Each signature's certificate names its signer, in signing order,
	// then comes the organisation's seal.
	out, err := exec.Command("pdfsig", "-nocert", filepath.Join(dir, "final.pdf")).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfsig: %v\n%s", err, out)
	}
	names := regexp.MustCompile(`Signer Certificate Common Name: (.*)`).FindAllStringSubmatch(string(out), -1)
	var got []string
	for _, m := range names {
		got = append(got, strings.TrimSpace(m[1]))
	}
	if want := []string{"Paul Second", "Sophie Première", "Élise Troisième", "Mairie de Test seal"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("the signers' certificates name %q, want %q:\n%s", got, want, out)
	}
}

// submit mails samplePDF from bob to the gateway, titled title, with the
// instruction block lines, and returns the envelope's id and the mail's
// Message-ID.
func (c *ceremonyRig) submit(t *testing.T, title string, lines ...string) (string, string) {
	t.Helper()
	return c.submitFiles(t, title, map[string]string{"convention.pdf": samplePDF}, lines...)
}

// submitFiles is submit with the PDFs at the paths of files, attached
// under their names in the order of the names.
func (c *ceremonyRig) submitFiles(t *testing.T, title string, files map[string]string, lines ...string) (string, string) {
	t.Helper()
	id := fmt.Sprintf("<ceremony-%d@example.com>", time.Now().UnixNano())
	msg := fmt.Sprintf("From: Bob Agent <bob@example.com>\r\nTo: %s\r\nSubject: %s\r\n"+
		"Message-ID: %s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n",
		c.gatewayAddress(), mimeWord(title), id, strings.Join(lines, "\r\n"))
	for _, name := range slices.Sorted(maps.Keys(files)) {
		pdf, err := os.ReadFile(files[name])
		if err != nil {
			t.Fatal(err)
		}
		msg += fmt.Sprintf("--b\r\nContent-Type: application/pdf; name=%s\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n",
			name, base64.StdEncoding.EncodeToString(pdf))
	}
	sendMail(t, c.rig.SMTPAddr(), "bob@example.com", c.gatewayAddress(), msg+"--b--\r\n")
	return engine.EnvelopeID(strings.ToLower(id)), id
}

// gatewayAddress is the address submissions and replies are sent to.
func (c *ceremonyRig) gatewayAddress() string {
	if c.address == "" {
		return "parapheur@org.example"
	}
	return c.address
}

// mimeWord encodes s for a header (RFC 2047) when it is not ASCII.
func mimeWord(s string) string {
	for _, r := range s {
		if r > 0x7e {
			return "=?utf-8?b?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
		}
	}
	return s
}

// received is a mail as its addressee reads it.
type received struct {
	header mail.Header
	text   string // the text/plain part
}

// read waits for the mail whose subject contains subject in user's
// mailbox, and returns it.
func (c *ceremonyRig) read(t *testing.T, user, subject string) received {
	t.Helper()
	raw, err := c.rig.WaitMessage(user, "Subject", subject, mailWait)
	if err != nil {
		t.Fatal(err)
	}
	return c.parse(t, user, subject, raw)
}

// parse reads raw, user's mail described by what, and keeps the secrets
// it carries.
func (c *ceremonyRig) parse(t *testing.T, user, what string, raw []byte) received {
	t.Helper()
	subject := what
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s's mail %q: %v", user, subject, err)
	}
	m := received{header: r.Header}
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s's mail %q: %v", user, subject, err)
		}
		if h, ok := p.Header.(*mail.InlineHeader); ok && m.text == "" {
			if ct, _, _ := h.ContentType(); ct == "text/plain" {
				b, err := io.ReadAll(p.Body)
				if err != nil {
					t.Fatal(err)
				}
				m.text = string(b)
			}
		}
	}
	if m.text == "" {
		t.Fatalf("%s's mail %q has no text part:\n%s", user, subject, raw)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range regexp.MustCompile(`/[se]/([A-Za-z0-9_-]{20,})`).FindAllStringSubmatch(m.text, -1) {
		c.secrets = append(c.secrets, l[1])
	}
	for _, code := range regexp.MustCompile(`(?m)^\s*(\d{6})\s*$`).FindAllStringSubmatch(m.text, -1) {
		c.secrets = append(c.secrets, code[1])
	}
	return m
}

// link returns the first link under the public URL's path prefix ("/s/"
// for a signing link, "/e/" for a status link) in m.
func (c *ceremonyRig) link(t *testing.T, m received, prefix string) string {
	t.Helper()
	l := regexp.MustCompile(regexp.QuoteMeta(c.base+prefix) + `[A-Za-z0-9_-]+`).FindString(m.text)
	if l == "" {
		t.Fatalf("no %s link in the mail:\n%s", c.base+prefix, m.text)
	}
	return l
}

// codeIn returns the one-time code of a code mail: six digits on a line of
// their own.
func codeIn(t *testing.T, m received) string {
	t.Helper()
	code := regexp.MustCompile(`(?m)^\s*(\d{6})\s*$`).FindStringSubmatch(m.text)
	if code == nil {
		t.Fatalf("no six-digit code in the mail:\n%s", m.text)
	}
	return code[1]
}

// recipient is one person holding a signing link, as a program using the
// JSON API.
type recipient struct {
	user string // the mailbox
	api  string // the API's URL of the link
}

// invited reads user's invitation, whose subject contains subject, and
// returns the link holder.
func (c *ceremonyRig) invited(t *testing.T, user, subject string) recipient {
	t.Helper()
	r := c.holder(c.link(t, c.read(t, user, subject), "/s/"))
	r.user = user
	return r
}

// holder is the API client of a signing link.
func (c *ceremonyRig) holder(link string) recipient {
	return recipient{api: c.base + "/api/v1/sign/" + link[strings.LastIndexByte(link, '/')+1:]}
}

// apiState is the answer of the API, with SPEC §3's fields.
type apiState struct {
	Envelope struct {
		ID, Title, State, Sender string
		Deadline                 time.Time
	}
	Recipient struct {
		Name, Email, Role, State string
		CanAct                   bool `json:"can_act"`
	}
	Documents []struct {
		Index, Pages int
		Name, SHA256 string
	}
	Steps []struct {
		Role       string
		Current    bool
		Recipients []struct{ Name, State string }
	}
}

func (r recipient) state(t *testing.T) apiState {
	t.Helper()
	resp, err := http.Get(r.api)
	if err != nil {
		t.Fatal(err)
	}
	return decodeState(t, resp)
}

// post sends body as JSON to the link's API path and expects 200 and a state.
func (r recipient) post(t *testing.T, path string, body any) apiState {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(r.api+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return decodeState(t, resp)
}

func decodeState(t *testing.T, resp *http.Response) apiState {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s\n%s", resp.Request.Method, resp.Request.URL.Path, resp.Status, b)
	}
	var st apiState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s %s: %v\n%s", resp.Request.Method, resp.Request.URL.Path, err, b)
	}
	return st
}

// act asks for a code, reads it in the recipient's mailbox and signs (or
// approves) with it; the recipient must then be in state want.
func (r recipient) act(t *testing.T, c *ceremonyRig, title, want string) apiState {
	t.Helper()
	return r.actWith(t, c, "Votre code de confirmation – "+title, want)
}

// actWith is act for the code mail whose subject contains codeSubject
// (an envelope in another language).
func (r recipient) actWith(t *testing.T, c *ceremonyRig, codeSubject, want string) apiState {
	t.Helper()
	r.post(t, "/code", nil)
	code := codeIn(t, c.read(t, r.user, codeSubject))
	st := r.post(t, "/sign", map[string]any{"code": code, "consent": true})
	if st.Recipient.State != want || st.Recipient.CanAct {
		t.Fatalf("%s after acting: %s (can act: %v), want %s", r.user, st.Recipient.State, st.Recipient.CanAct, want)
	}
	return st
}

// document downloads document n as it now is.
func (r recipient) document(t *testing.T, n int) []byte {
	t.Helper()
	resp, b := getResponse(t, fmt.Sprintf("%s/documents/%d", r.api, n))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("document %d: %s %s\n%.300s", n, resp.Status, resp.Header.Get("Content-Type"), b)
	}
	return b
}
