package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"mime"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-message/mail"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/signtest"
)

// completionSteps are the instruction lines of the envelopes whose
// certificate checkCertificate reads: an approver, two signers in
// parallel, a copy and an archivist.
var completionSteps = []string{
	"Visa : Anne Viseur <approver@example.com>",
	"Signataire : Sophie Première <signer1@example.com>, Paul Second <signer2@example.com>",
	"Copie : Carl Copie <copy@example.com>",
	"Archive : Arthur Archives <archivist@example.com>",
}

// completionUsers are the mailboxes of the completion tests: the gateway,
// the agent who submits, and the parties of the envelope.
var completionUsers = []string{"parapheur", "bob", "approver", "signer1", "signer2", "copy", "archivist"}

// TestCompletionOutputs runs a whole envelope (an approver, two signers in
// parallel, a copy and an archivist; two documents) through the real
// gateway, Postfix and Dovecot with an RFC 3161 time-stamp authority, and
// checks what every party holds in the end, read from their own mailbox:
// exactly one final mail each, whose PDFs every independent validator
// accepts at PAdES B-LTA, whose body states each attachment's SHA-256,
// whose download link serves the same files; a certificate of completion
// that says what happened and embeds the audit trail the archivist
// received; and that a changed byte or a changed event is caught.
func TestCompletionOutputs(t *testing.T) {
	c, tsa := startCompletionRig(t)
	t.Cleanup(signtest.Cleanup)

	const title = "Convention de mécénat 2027"
	envID, _ := c.submitFiles(t, title, map[string]string{"a-convention.pdf": samplePDF, "b-annexe.pdf": secondPDF}, completionSteps...)
	c.invited(t, "approver", "À viser : "+title).act(t, c, title, "approved")
	first, second := c.invited(t, "signer1", "À signer : "+title), c.invited(t, "signer2", "À signer : "+title)
	first.act(t, c, title, "signed")
	second.act(t, c, title, "signed")

	finals := map[string]finalMail{}
	for _, user := range []string{"bob", "approver", "signer1", "signer2", "copy", "archivist"} {
		finals[user] = c.finalMail(t, user, "Terminé : "+title)
	}
	// Every final mail was handed to the MTA: none is left to send, and
	// each party holds exactly one.
	eventually(t, mailWait, "the mail queue empty", func() bool { return outboxEmpty(get(t, c.base+"/metrics"), "mail") })
	for user := range finals {
		waitCount(t, c.rig, user, "Terminé : "+title, 1)
	}
	if tsa.Requests.Load() == 0 {
		t.Fatal("the time-stamp authority issued no token")
	}

	dir := t.TempDir()
	ca := filepath.Join(c.keys, pki.CACertFile)
	certName := "certificat-" + envID + ".pdf"
	auditName := "audit-" + envID + ".json"
	wantFiles := []string{"a-convention.pdf", "b-annexe.pdf", certName}
	var reference map[string][]byte // the sender's files, which every copy must equal
	for user, m := range finals {
		want := wantFiles
		if user == "archivist" {
			want = append(want, auditName)
		}
		if strings.Join(m.names, "|") != strings.Join(want, "|") {
			t.Fatalf("%s's final mail attaches %q, want %q", user, m.names, want)
		}
		m.statesSums(t, user)
		if user == "bob" {
			reference = m.files
		}
	}
	for user, m := range finals {
		for _, name := range wantFiles {
			if !bytes.Equal(m.files[name], reference[name]) {
				t.Errorf("%s's %s is not the sender's", user, name)
			}
		}
	}
	// Each document: the two signatures and the seal, then the document
	// time-stamp; the certificate: the seal and its time-stamp.
	for _, name := range wantFiles {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, reference[name], 0o644); err != nil {
			t.Fatal(err)
		}
		e := signtest.Expect{Signatures: 4, DocTimestamps: 1, CAFile: ca}
		if name == certName {
			e.Signatures = 2
		}
		signtest.Validate(t, path, e)
		// Every signature, the signers' and the seal, is B-LTA: the
		// seal's /DSS holds the validation data of all, and the document
		// time-stamp covers them.
		r := parapheur(t, []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_KEYS_DIR=" + c.keys, "PARAPHEUR_STORE_URL=" + c.store}, "verify", path)
		seal := regexp.MustCompile(`signer:  Mairie de Test seal\n.*\(time-stamped\)\n  level:   B-LTA \(ETSI.CAdES.detached\)`)
		if r.code != exitOK || !seal.MatchString(r.stdout) || strings.Count(r.stdout, "level:   B-LTA") != e.Signatures-1 ||
			!strings.Contains(r.stdout, fmt.Sprintf("VALID: all %d signature(s) intact\n", e.Signatures)) {
			t.Errorf("parapheur verify %s: exit %d; want 0 and the seal and every signature at B-LTA:\n%s%s", name, r.code, r.stdout, r.stderr)
		}
		// The running gateway holds its embedded store: verify still names
		// the envelope, and says why it cannot tell more.
		if want := "Envelope " + envID + ", named by the gateway's signature; whether this file is its final version is unknown: the store " + c.store +
			" is locked by another process"; name != certName && !strings.Contains(r.stdout, want) {
			t.Errorf("parapheur verify %s beside the running gateway does not say %q:\n%s", name, want, r.stdout)
		}
		// … and who can tell it meanwhile.
		if want := "The running gateway tells it meanwhile: its page PUBLIC_URL/verify"; name != certName && !strings.Contains(r.stdout, want) {
			t.Errorf("parapheur verify %s beside the running gateway does not say %q:\n%s", name, want, r.stdout)
		}
	}

	archived := finals["archivist"].files[auditName]
	c.checkCertificate(t, filepath.Join(dir, certName), envID, title, archived)
	c.checkDownloads(t, finals["archivist"], wantFiles, auditName)
	c.checkDownloads(t, finals["copy"], wantFiles, "")

	// A changed byte inside the signed ranges breaks every signature, and
	// verify names them.
	tampered := bytes.Clone(reference["a-convention.pdf"])
	i := bytes.Index(tampered, []byte("/BaseFont/Helvetica"))
	if i < 0 {
		t.Fatal("the final document has no font name to change")
	}
	tampered[i+len("/BaseFont/Helvetica")-1] = 'A'
	path := filepath.Join(dir, "tampered.pdf")
	if err := os.WriteFile(path, tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	r := parapheur(t, []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_KEYS_DIR=" + c.keys}, "verify", path)
	if r.code != 1 || !regexp.MustCompile(`#1 \S+: NOT INTACT`).MatchString(r.stdout) || strings.Contains(r.stdout, ": INTACT") {
		t.Errorf("parapheur verify of a final PDF with a changed byte: exit %d; want 1 and every signature named NOT INTACT:\n%s%s", r.code, r.stdout, r.stderr)
	}

	// An event of the archivist's trail edited: verify names it.
	var recs []map[string]any
	if err := json.Unmarshal(archived, &recs); err != nil {
		t.Fatal(err)
	}
	edited := -1
	for i, rec := range recs {
		if rec["type"] == "signed" && rec["actor"] == "signer2@example.com" {
			rec["actor"], edited = "mallory@example.com", i
			break
		}
	}
	if edited < 0 {
		t.Fatalf("the archivist's trail records no signature by signer2:\n%s", archived)
	}
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "audit.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r = parapheur(t, []string{"PARAPHEUR_CONFIG="}, "verify", path)
	if want := fmt.Sprintf("BROKEN at event seq %v (signed, ", recs[edited]["seq"]); r.code != 1 || !strings.Contains(r.stdout, want) {
		t.Errorf("parapheur verify of the trail with an edited event: exit %d; want 1 and %q:\n%s%s", r.code, want, r.stdout, r.stderr)
	}
}

// TestCompletionOverAttachmentLimit: a final mail whose files are larger
// than mail.attachment_limit_bytes carries the download link alone, and
// the link serves the files the envelope completed with.
func TestCompletionOverAttachmentLimit(t *testing.T) {
	c, _ := startCompletionRig(t, "PARAPHEUR_MAIL_ATTACHMENT_LIMIT_BYTES=1000")
	t.Cleanup(signtest.Cleanup)

	const title = "Bail commercial"
	envID, _ := c.submit(t, title, "Signataire : Sophie Première <signer1@example.com>", "Archive : archivist@example.com")
	signer := c.invited(t, "signer1", "À signer : "+title)
	signer.act(t, c, title, "signed")
	names := []string{"convention.pdf", "certificat-" + envID + ".pdf"}
	for _, user := range []string{"bob", "signer1", "archivist"} {
		m := c.finalMail(t, user, "Terminé : "+title)
		// No PDF, but the archivist's audit trail, a few kilobytes.
		var want []string
		if user == "archivist" {
			want = []string{"audit-" + envID + ".json"}
		}
		if strings.Join(m.names, "|") != strings.Join(want, "|") {
			t.Errorf("%s's final mail over the attachment limit attaches %q; want the link alone and %q", user, m.names, want)
		}
		if !strings.Contains(m.text, "trop volumineux pour être joints") {
			t.Errorf("%s's final mail does not say why the files are not attached:\n%s", user, m.text)
		}
		audit := "" // the sender and the archivists may download the trail
		if user == "bob" || user == "archivist" {
			audit = "audit-" + envID + ".json"
		}
		files := c.checkDownloads(t, m, names, audit)
		for _, name := range names {
			if !regexp.MustCompile(regexp.QuoteMeta(name) + `[^\n]*\n\s*SHA-256 : ` + sha256Hex(files[name])).MatchString(m.text) {
				t.Errorf("%s's final mail does not state the SHA-256 of %s as downloaded:\n%s", user, name, m.text)
			}
		}
		if user == "bob" {
			path := filepath.Join(t.TempDir(), "convention.pdf")
			if err := os.WriteFile(path, files["convention.pdf"], 0o644); err != nil {
				t.Fatal(err)
			}
			signtest.Validate(t, path, signtest.Expect{Signatures: 3, DocTimestamps: 1, CAFile: filepath.Join(c.keys, pki.CACertFile)})
		}
	}
}

// secondPDF is the second document of the completion tests.
var secondPDF = filepath.Join("..", "..", "mailin", "testdata", "doc2.pdf")

// startCompletionRig starts a private Postfix and Dovecot with the
// completion tests' mailboxes, a time-stamp authority whose certificate
// the gateway's CA issued, and "parapheur serve" with tsa.url and the
// settings extra. Its CA was made knowing the public URL, so that the seal
// certificate names the CRL the gateway publishes, as in production.
func startCompletionRig(t *testing.T, extra ...string) (*ceremonyRig, *signtest.TSA) {
	t.Helper()
	return startCompletionRigOn(t, startMailRig(t, completionUsers...), "bolt://"+filepath.Join(t.TempDir(), "parapheur.db"), extra...)
}

// startCompletionRigOn is startCompletionRig on the mail rig rig and the
// store storeURL.
func startCompletionRigOn(t *testing.T, rig *testrig.Mail, storeURL string, extra ...string) (*ceremonyRig, *signtest.TSA) {
	t.Helper()
	listen := freeAddr(t)
	base := "http://" + listen
	keys := initKeys(t, "PARAPHEUR_PUBLIC_URL="+base)
	ca, err := pki.LoadCA(keys, "test")
	if err != nil {
		t.Fatal(err)
	}
	ca.CRLURL = crlURL(base)
	tsa := signtest.StartTSA(t, ca)
	srv := startServeOn(t, rig, storeURL, keys, listen,
		append([]string{"PARAPHEUR_TSA_URL=" + tsa.URL, "PARAPHEUR_TIMEZONE=Europe/Paris"}, extra...)...)
	return &ceremonyRig{rig: rig, srv: srv, keys: keys, store: storeURL, base: base}, tsa
}

// finalMail is a final mail as its addressee reads it.
type finalMail struct {
	text, html string
	names      []string          // the attachments' file names, in order
	files      map[string][]byte // the attachments by name
}

// finalMail waits for the mail whose subject contains subject in user's
// mailbox, and reads its text, its HTML and its attachments.
func (c *ceremonyRig) finalMail(t *testing.T, user, subject string) finalMail {
	t.Helper()
	raw, err := c.rig.WaitMessage(user, "Subject", subject, mailWait)
	if err != nil {
		t.Fatal(err)
	}
	m := parseMail(t, user, raw)
	if m.text == "" || m.html == "" {
		t.Fatalf("%s's final mail lacks its text or its HTML:\n%s", user, raw)
	}
	if shots := os.Getenv("PARAPHEUR_SHOTS"); shots != "" {
		if err := os.WriteFile(filepath.Join(shots, "final-mail-"+user+".eml"), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// parseMail reads the text, the HTML and the attachments of user's mail
// raw.
func parseMail(t *testing.T, user string, raw []byte) finalMail {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s's final mail: %v", user, err)
	}
	m := finalMail{files: map[string][]byte{}}
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s's final mail: %v", user, err)
		}
		b, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatalf("%s's final mail: %v", user, err)
		}
		switch h := p.Header.(type) {
		case *mail.InlineHeader:
			switch ct, _, _ := h.ContentType(); ct {
			case "text/plain":
				m.text = string(b)
			case "text/html":
				m.html = string(b)
			}
		case *mail.AttachmentHeader:
			name, err := h.Filename()
			if err != nil || name == "" {
				t.Fatalf("%s's final mail has an attachment without a file name (%v)", user, err)
			}
			m.names = append(m.names, name)
			m.files[name] = b
		}
	}
	return m
}

// statesSums checks that the text and the HTML of user's final mail each
// state every attachment's SHA-256, the text beside its name ("SHA-256 :"
// in French, "SHA-256:" in English).
func (m finalMail) statesSums(t *testing.T, user string) {
	t.Helper()
	for _, name := range m.names {
		sum := sha256Hex(m.files[name])
		if !regexp.MustCompile(regexp.QuoteMeta(name) + `[^\n]*\n\s*SHA-256 ?: ` + sum).MatchString(m.text) {
			t.Errorf("%s's final mail does not state the SHA-256 %s of %s in its text:\n%s", user, sum, name, m.text)
		}
		if !strings.Contains(m.html, sum) {
			t.Errorf("%s's final mail does not state the SHA-256 of %s in its HTML", user, name)
		}
	}
}

// checkDownloads follows the download link of m: the page lists the files
// names (and audit, the audit trail, when not ""), and each download is
// the file the mail attached, if it did. It returns the files downloaded
// by name.
func (c *ceremonyRig) checkDownloads(t *testing.T, m finalMail, names []string, audit string) map[string][]byte {
	t.Helper()
	link := c.link(t, received{text: m.text}, "/d/")
	if !strings.Contains(m.html, link) {
		t.Errorf("the HTML of the final mail lacks the download link %s", link)
	}
	resp, page := getResponse(t, link)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", link, resp.Status, page)
	}
	path := strings.TrimPrefix(link, c.base)
	hrefs := regexp.MustCompile(`href="(`+regexp.QuoteMeta(path)+`/(?:documents/\d+|certificate|audit)[^"]*)"`).FindAllStringSubmatch(string(page), -1)
	downloads := map[string]bool{}
	for _, h := range hrefs {
		u := html.UnescapeString(h[1])
		if strings.HasSuffix(u, "/audit") || strings.HasSuffix(u, "download=1") {
			downloads[u] = true
		}
	}
	want := len(names)
	if audit != "" {
		want++
	}
	if len(downloads) != want {
		t.Fatalf("the download page offers %d downloads, want %d:\n%s", len(downloads), want, page)
	}
	files := map[string][]byte{}
	for u := range downloads {
		resp, b := getResponse(t, c.base+u)
		_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
		name := params["filename"]
		if resp.StatusCode != 200 || name == "" {
			t.Fatalf("GET %s: %s, Content-Disposition %q", u, resp.Status, resp.Header.Get("Content-Disposition"))
		}
		if attached, ok := m.files[name]; ok && !bytes.Equal(b, attached) {
			t.Errorf("%s downloaded (SHA-256 %s) is not the file attached (SHA-256 %s)", name, sha256Hex(b), sha256Hex(attached))
		}
		if !strings.Contains(string(page), sha256Hex(b)) {
			t.Errorf("the download page does not state the SHA-256 of %s", name)
		}
		files[name] = b
	}
	for _, name := range append(names, audit) {
		if _, ok := files[name]; !ok && name != "" {
			t.Errorf("the download page does not offer %s", name)
		}
	}
	return files
}

// checkCertificate checks the certificate of completion at path: its text
// names the envelope, its parties, its seals and its times with their
// zone; its embedded audit trail's chain verifies and is the archivist's
// trail, archived, up to the completion. With PARAPHEUR_SHOTS=DIR, its
// pages are saved there as PNG images to be looked at.
func (c *ceremonyRig) checkCertificate(t *testing.T, path, envID, title string, archived []byte) {
	t.Helper()
	out, err := exec.Command("pdftotext", path, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	text := strings.Join(strings.Fields(string(out)), " ")
	for _, want := range []string{
		"Certificat de réalisation", envID, title, "Bob Agent", "bob@example.com",
		"Anne Viseur", "approver@example.com", "Approbateur (visa)",
		"Sophie Première", "signer1@example.com", "Paul Second", "signer2@example.com", "Signataire",
		"Carl Copie", "copy@example.com", "Copie", "Arthur Archives", "archivist@example.com", "Archiviste",
		"a-convention.pdf", "b-annexe.pdf", "Cachet de l’organisation", "Europe/Paris", "UTC",
		c.base + "/verify",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the certificate's text lacks %q:\n%s", want, out)
		}
	}
	// Times are written in the zone, then in UTC.
	if !regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC`).MatchString(text) {
		t.Errorf("the certificate's times are not written in the zone and in UTC:\n%s", out)
	}
	if shots := os.Getenv("PARAPHEUR_SHOTS"); shots != "" {
		if out, err := exec.Command("pdftoppm", "-png", "-r", "80", path, filepath.Join(shots, "certificate-fr")).CombinedOutput(); err != nil {
			t.Fatalf("pdftoppm: %v\n%s", err, out)
		}
	}

	inCert := embeddedTrail(t, path, envID)
	var inMail []json.RawMessage
	if err := json.Unmarshal(archived, &inMail); err != nil {
		t.Fatal(err)
	}
	// The certificate is made before the completion is recorded: its
	// trail is the archivist's but for the last records (mails delivered
	// meanwhile, and the completion).
	if len(inCert) == 0 || len(inCert) >= len(inMail) {
		t.Fatalf("the certificate embeds %d events, the archivist's trail has %d", len(inCert), len(inMail))
	}
	for i := range inCert {
		if !bytes.Equal(compactJSON(t, inCert[i]), compactJSON(t, inMail[i])) {
			t.Errorf("event %d differs between the certificate and the archivist's trail:\n%s\n%s", i+1, inCert[i], inMail[i])
		}
	}
	var last struct{ Type string }
	if err := json.Unmarshal(inMail[len(inMail)-1], &last); err != nil || last.Type != "completed" {
		t.Errorf("the archivist's trail ends with %q (%v), want the completion", last.Type, err)
	}
}

// embeddedTrail returns the events of the audit trail that the
// certificate of completion at path embeds as audit-ENVID.json, once
// "parapheur verify" found its hash chain intact.
func embeddedTrail(t *testing.T, path, envID string) []json.RawMessage {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("pdfdetach", "-saveall", "-o", dir, path).CombinedOutput(); err != nil {
		t.Fatalf("pdfdetach: %v\n%s", err, out)
	}
	embedded, err := os.ReadFile(filepath.Join(dir, "audit-"+envID+".json"))
	if err != nil {
		t.Fatalf("the certificate embeds no audit-%s.json: %v", envID, err)
	}
	r := parapheur(t, []string{"PARAPHEUR_CONFIG="}, "verify", filepath.Join(dir, "audit-"+envID+".json"))
	if r.code != exitOK || !strings.Contains(r.stdout, "chain intact") {
		t.Errorf("parapheur verify of the embedded trail: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var events []json.RawMessage
	if err := json.Unmarshal(embedded, &events); err != nil {
		t.Fatal(err)
	}
	return events
}

func compactJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
