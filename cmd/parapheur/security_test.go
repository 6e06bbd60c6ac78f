package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	mathrand "math/rand/v2"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"golang.org/x/net/html"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/signing/signtest"
	"github.com/parapheur/parapheur/workflow/engine"
)

// The security tests attack the running "parapheur serve" as an outsider
// would (issue 13 item 3): through mail sent to Postfix and through HTTP,
// each attack checked for what SPEC §2 and §3 ask: what the attacker sees,
// that nothing is lost (every mail ends in Processed or Quarantine), and
// that the gateway keeps serving. The package tests of signing/web,
// mailin/ingest, mailin/loop, mailout/compose and signing/pades check the
// same rules part by part; these check that the built binary, its
// configuration and the real mail servers keep them.

// attackAuthservID is the receiving server whose Authentication-Results the
// gateway under attack trusts (senders.require_auth is on). The rig's
// Postfix adds none: the tests write the trusted server's field into the
// mails, as the organisation's MX would.
const attackAuthservID = "mx.org.example"

// attackUsers are the mailboxes of the attacks: the gateway, the agent,
// signers, a naive auto-responder and a victim whose address the
// attacker tries to make the gateway write to.
var attackUsers = []string{"parapheur", "bob", "signer1", "signer2", "reader1", "reader2", "reader3", "responder", "victim"}

// attackRig is the one gateway every attack of TestAttacks goes at.
type attackRig struct {
	*ceremonyRig
	n atomic.Int64 // numbers the attack mails' Message-IDs
}

// TestAttacks runs every attack of issue 13 on one "parapheur serve" (bbolt
// store, senders.require_auth on) with a private Postfix and Dovecot.
func TestAttacks(t *testing.T) {
	rig := startMailRig(t, attackUsers...)
	keys := initKeys(t)
	db := t.TempDir() + "/parapheur.db"
	srv := startServe(t, rig, "bolt://"+db, keys,
		"PARAPHEUR_SENDERS_REQUIRE_AUTH=true", "PARAPHEUR_SENDERS_AUTHSERV_ID="+attackAuthservID)
	a := &attackRig{ceremonyRig: &ceremonyRig{rig: rig, srv: srv, keys: keys, store: "bolt://" + db, base: "http://" + srv.listen}}

	// First, while the process's peak memory is its start's alone.
	t.Run("100 MB attachment", a.hugeAttachment)
	t.Run("code brute force", a.codeBruteForce)
	t.Run("token guessing and timing", a.tokenGuessing)
	t.Run("replay", a.replay)
	t.Run("CSRF", a.crossSiteForms)
	t.Run("XSS", a.crossSiteScripting)
	t.Run("header injection", a.headerInjection)
	t.Run("forged Authentication-Results", a.forgedAuthResults)
	t.Run("spoofed From", a.spoofedFrom)
	t.Run("auto-responder loop", a.autoResponderLoop)
	t.Run("PDF bombs", a.pdfBombs)
	t.Run("MIME bombs", a.mimeBombs)
	t.Run("the gateway still serves and lost nothing", a.stillServes)
}

// attackAuth is the Authentication-Results field the organisation's MX
// writes for a mail whose From domain got result from DMARC.
func attackAuth(result, domain string) string {
	return fmt.Sprintf("Authentication-Results: %s; dmarc=%s header.from=%s", attackAuthservID, result, domain)
}

// attackMail is a mail to the gateway, as an attacker or an agent writes it.
type attackMail struct {
	from    string   // the From field as written
	subject string   // the Subject field as written
	headers []string // more header lines, e.g. attackAuth's
	text    string   // the first, text/plain part: the instruction block
	parts   []string // further MIME parts, each its header, a blank line and its body
}

// attackPDFPart is an attached PDF part named name, the name written as
// mime.FormatMediaType writes parameters (quoted, or RFC 2231).
func attackPDFPart(name string, pdf []byte) string {
	return "Content-Type: " + mime.FormatMediaType("application/pdf", map[string]string{"name": name}) + "\r\n" +
		"Content-Disposition: " + mime.FormatMediaType("attachment", map[string]string{"filename": name}) + "\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + attackBase64(pdf)
}

// attackBase64 is data in base64, in lines of 76 characters (RFC 2045).
func attackBase64(data []byte) string {
	s := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return b.String() + s + "\r\n"
}

// attackSamplePDF is samplePDF's content.
func attackSamplePDF(t *testing.T) []byte {
	t.Helper()
	pdf, err := os.ReadFile(samplePDF)
	if err != nil {
		t.Fatal(err)
	}
	return pdf
}

// raw writes m with a new Message-ID and returns it with that ID.
func (a *attackRig) raw(m attackMail) (string, string) {
	id := fmt.Sprintf("<attack-%d-%d@example.com>", time.Now().UnixNano(), a.n.Add(1))
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: parapheur@org.example\r\nSubject: %s\r\nMessage-ID: %s\r\nDate: %s\r\n",
		m.from, m.subject, id, time.Now().Format(time.RFC1123Z))
	for _, h := range m.headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=attack-boundary\r\n\r\n" +
		"--attack-boundary\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + m.text + "\r\n")
	for _, p := range m.parts {
		b.WriteString("--attack-boundary\r\n" + p + "\r\n")
	}
	b.WriteString("--attack-boundary--\r\n")
	return b.String(), id
}

// send mails m through Postfix with the envelope sender mailFrom and
// returns its Message-ID.
func (a *attackRig) send(t *testing.T, mailFrom string, m attackMail) string {
	t.Helper()
	raw, id := a.raw(m)
	sendMail(t, a.rig.SMTPAddr(), mailFrom, "parapheur@org.example", raw)
	return id
}

// submitAs mails a submission from bob, authenticated by the trusted
// server, titled subject, with the instruction lines and the parts, and
// returns its envelope ID and Message-ID.
func (a *attackRig) submitAs(t *testing.T, from, subject string, lines []string, parts ...string) (string, string) {
	t.Helper()
	id := a.send(t, "bob@example.com", attackMail{from: from, subject: subject,
		headers: []string{attackAuth("pass", "example.com")}, text: strings.Join(lines, "\r\n"), parts: parts})
	return engine.EnvelopeID(strings.ToLower(id)), id
}

// submitPDF is submitAs from Bob Agent with the sample PDF.
func (a *attackRig) submitPDF(t *testing.T, subject string, lines ...string) (string, string) {
	t.Helper()
	return a.submitAs(t, "Bob Agent <bob@example.com>", subject, lines, attackPDFPart("convention.pdf", attackSamplePDF(t)))
}

// count is the number of messages of user's folder that find finds.
// Unlike search, it fetches none.
func (a *attackRig) count(t *testing.T, user, folder string, where ...string) int {
	t.Helper()
	c := a.login(t, user)
	defer c.Close()
	return len(a.find(t, c, folder, where...))
}

// login is an IMAP session of user, to be closed.
func (a *attackRig) login(t *testing.T, user string) *imapclient.Client {
	t.Helper()
	return imapLogin(t, a.rig, user)
}

// find selects folder and returns the UIDs of its messages whose header
// fields hold the values of where, pairs of a field and a value (all
// messages when where is empty); none when the folder does not exist.
func (a *attackRig) find(t *testing.T, c *imapclient.Client, folder string, where ...string) []imap.UID {
	t.Helper()
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		return nil // not made yet
	}
	criteria := &imap.SearchCriteria{}
	for i := 0; i+1 < len(where); i += 2 {
		criteria.Header = append(criteria.Header, imap.SearchCriteriaHeaderField{Key: where[i], Value: where[i+1]})
	}
	found, err := c.UIDSearch(criteria, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	return found.AllUIDs()
}

// fate waits until the mail msgID has left the gateway's INBOX for the
// processed folder or the quarantine, and returns which.
func (a *attackRig) fate(t *testing.T, msgID string) string {
	t.Helper()
	var folder string
	eventually(t, mailWait, "mail "+msgID+" processed or quarantined", func() bool {
		for _, f := range []string{"Processed", "Quarantine"} {
			if a.count(t, "parapheur", f, "Message-ID", msgID) == 1 {
				folder = f
				return true
			}
		}
		return false
	})
	return folder
}

// wantFate expects the mail msgID to end in folder, and, the gateway done
// with it, every mail it then sent to be delivered.
func (a *attackRig) wantFate(t *testing.T, msgID, folder string) {
	t.Helper()
	if got := a.fate(t, msgID); got != folder {
		t.Fatalf("mail %s ended in %s, want %s", msgID, got, folder)
	}
	a.settle(t)
}

// settle waits until the gateway's mail queue holds nothing due or being
// sent, and Postfix has delivered what it took: what a mailbox then holds
// is all the gateway sent so far.
func (a *attackRig) settle(t *testing.T) {
	t.Helper()
	eventually(t, mailWait, "the gateway's mail queue drained", func() bool {
		m := get(t, a.base+"/metrics")
		return strings.Contains(m, `parapheur_outbox_items{queue="mail",state="due"} 0`) &&
			strings.Contains(m, `parapheur_outbox_items{queue="mail",state="held"} 0`)
	})
	if err := a.rig.WaitDelivered(mailWait); err != nil {
		t.Fatal(err)
	}
}

// search returns the messages of user's folder that find finds.
func (a *attackRig) search(t *testing.T, user, folder string, where ...string) [][]byte {
	t.Helper()
	c := a.login(t, user)
	defer c.Close()
	return fetchBodies(t, c, a.find(t, c, folder, where...))
}

// fetchBodies returns the whole messages uids of the mailbox c selected,
// leaving them unread.
func fetchBodies(t *testing.T, c *imapclient.Client, uids []imap.UID) [][]byte {
	t.Helper()
	if len(uids) == 0 {
		return nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var raws [][]byte
	for _, m := range msgs {
		raws = append(raws, m.FindBodySection(section))
	}
	return raws
}

// wantCount expects user's INBOX to hold want messages that find finds
// with where, once the gateway settled, and returns them.
func (a *attackRig) wantCount(t *testing.T, user string, want int, where ...string) [][]byte {
	t.Helper()
	got := a.search(t, user, "INBOX", where...)
	if len(got) != want {
		t.Fatalf("%s's INBOX holds %d messages with %q, want %d", user, len(got), where, want)
	}
	return got
}

// codeFor waits for the one-time code mail of envelope envID in user's
// INBOX (the only one) and returns the code.
func (a *attackRig) codeFor(t *testing.T, user, envID string) string {
	t.Helper()
	where := []string{"X-Parapheur-Envelope", envID, "Subject", "Votre code de confirmation"}
	eventually(t, mailWait, "the code mail of "+envID+" in "+user+"'s mailbox", func() bool {
		return a.count(t, user, "INBOX", where...) > 0
	})
	return codeIn(t, a.parse(t, user, "code", a.wantCount(t, user, 1, where...)[0]))
}

// metric is the value of the Prometheus sample line starting with series.
func (a *attackRig) metric(t *testing.T, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(get(t, a.base+"/metrics"), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the metrics", series)
	return 0
}

// attackText is the text/plain part of a raw mail.
func attackText(t *testing.T, raw []byte) string {
	t.Helper()
	return attackParts(t, raw)["text/plain"]
}

// attackParts reads a raw mail and returns its first part of each inline
// media type, decoded.
func attackParts(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	r, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("reading a mail: %v\n%.2000s", err, raw)
	}
	parts := map[string]string{}
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatalf("reading a mail: %v", err)
		}
		if h, ok := p.Header.(*gomail.InlineHeader); ok {
			ct, _, _ := h.ContentType()
			if _, seen := parts[ct]; !seen {
				b, err := io.ReadAll(p.Body)
				if err != nil {
					t.Fatal(err)
				}
				parts[ct] = string(b)
			}
		}
	}
}

// vmHWM is the peak resident memory of the serve process, from /proc.
func (a *attackRig) vmHWM(t *testing.T) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.srv.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmHWM:\s+(\d+) kB$`).FindSubmatch(status)
	if m == nil {
		t.Fatalf("no VmHWM in /proc status:\n%s", status)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// attackRepeat gives line n times.
type attackRepeat struct {
	line []byte
	n    int
	off  int
}

func (r *attackRepeat) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && r.n > 0 {
		c := copy(p[k:], r.line[r.off:])
		k += c
		if r.off += c; r.off == len(r.line) {
			r.off, r.n = 0, r.n-1
		}
	}
	return k, nil
}

// hugeAttachment mails a 100 MB PDF (137 MB in base64), twice the
// gateway's limit: the gateway fetches its header only, refuses it with a
// reply that gives both sizes, quarantines it, and its memory never holds
// the attachment.
func (a *attackRig) hugeAttachment(t *testing.T) {
	const size = 100 << 20
	before := a.vmHWM(t)
	raw, id := a.raw(attackMail{from: "Bob Agent <bob@example.com>", subject: "Convention de 100 Mo",
		headers: []string{attackAuth("pass", "example.com")}, text: "Signataire : signer1@example.com"})
	head := strings.TrimSuffix(raw, "--attack-boundary--\r\n") + "--attack-boundary\r\n" +
		"Content-Type: application/pdf; name=huge.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	chunk := make([]byte, 57) // 76 characters of base64
	copy(chunk, "%PDF-1.7\n% filler\n")
	line := []byte(base64.StdEncoding.EncodeToString(chunk) + "\r\n")
	body := io.MultiReader(strings.NewReader(head), &attackRepeat{line: line, n: size / len(chunk)},
		strings.NewReader("--attack-boundary--\r\n"))
	// curl, since Go's SMTP client, dot-stuffing byte by byte, takes
	// a quarter of a minute for it under the race detector.
	curl := exec.Command("curl", "--silent", "--show-error", "--url", "smtp://"+a.rig.SMTPAddr(),
		"--mail-from", "bob@example.com", "--mail-rcpt", "parapheur@org.example", "--upload-file", "-")
	curl.Stdin = body
	if out, err := curl.CombinedOutput(); err != nil {
		t.Fatalf("curl could not send the 100 MB mail to Postfix (apt-get install -y curl): %v\n%s", err, out)
	}
	a.wantFate(t, id, "Quarantine")
	refusal := a.wantCount(t, "bob", 1, "In-Reply-To", id)[0]
	text := attackText(t, refusal)
	if !regexp.MustCompile(`le message fait 1[34]\d,\d Mo ; le parapheur accepte au plus 52,4 Mo`).MatchString(text) {
		t.Errorf("the refusal does not give the mail's size and the limit:\n%s", text)
	}
	after := a.vmHWM(t)
	t.Logf("peak resident memory of serve: %d MiB before the 100 MB mail, %d MiB after", before>>20, after>>20)
	if after-before > 32<<20 {
		t.Errorf("serve's peak memory grew by %d MiB with the 100 MB mail: it read more than its header", (after-before)>>20)
	}
}

// codeBruteForce guesses a signer's one-time code: the fifth wrong code
// kills it (the right one no longer works) and the sender is told; a
// sixth code in the hour is refused.
func (a *attackRig) codeBruteForce(t *testing.T) {
	const title = "Brute force"
	a.submitPDF(t, title, "Signataire : signer1@example.com")
	r := a.invited(t, "signer1", "À signer : "+title)
	r.post(t, "/code", nil)
	code := codeIn(t, a.read(t, "signer1", "Votre code de confirmation – "+title))
	n, _ := strconv.Atoi(code)
	for i := range 5 {
		guess := fmt.Sprintf("%06d", (n+1+i)%1_000_000)
		attackAPIError(t, r, "/sign", map[string]any{"code": guess, "consent": true}, http.StatusForbidden, "wrong_code")
	}
	// The right code is dead: the attacker cannot tell a lucky sixth guess.
	attackAPIError(t, r, "/sign", map[string]any{"code": code, "consent": true}, http.StatusForbidden, "no_code")
	locked := a.read(t, "bob", "Code bloqué : "+title)
	if !strings.Contains(locked.text, "5 fois") {
		t.Errorf("the sender's notice does not say how many wrong codes were entered:\n%s", locked.text)
	}
	// Four more codes make five in the hour; the sixth is refused.
	for range 4 {
		r.post(t, "/code", nil)
	}
	resp := attackAPIError(t, r, "/code", nil, http.StatusTooManyRequests, "too_many_codes")
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s <= 0 || s > 3600 {
		t.Errorf("Retry-After %q after the sixth code, want the seconds until one may be sent", resp.Header.Get("Retry-After"))
	}
	a.settle(t)
	a.wantCount(t, "signer1", 5, "Subject", "Votre code de confirmation – "+title)
	if st := r.state(t); st.Recipient.State != "pending" || st.Envelope.State != "in_progress" {
		t.Errorf("after the brute force: recipient %s, envelope %s", st.Recipient.State, st.Envelope.State)
	}
}

// attackAPIError posts body as JSON to the link's API path and expects the
// JSON error code with status.
func attackAPIError(t *testing.T, r recipient, path string, body any, status int, code string) *http.Response {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(r.api+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct{ Code, Message string }
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &e); err != nil || resp.StatusCode != status || e.Error.Code != code || e.Error.Message == "" {
		t.Fatalf("POST %s: %s %s, want %d and the error %q", path, resp.Status, raw, status, code)
	}
	return resp
}

// attackClient is an HTTP client of its own loopback source address, so
// that the per-client rate limit counts it apart: an attacker with many
// addresses.
func attackClient(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: pageWait,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// attackAnswer is what a guess got, the guessed token blanked out.
type attackAnswer struct {
	status int
	body   string
	took   time.Duration
}

func attackGuess(t *testing.T, c *http.Client, url, token string) attackAnswer {
	t.Helper()
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	if token != "" {
		body = strings.ReplaceAll(body, token, "TOKEN")
	}
	return attackAnswer{status: resp.StatusCode, body: body, took: took}
}

// attackToken is a well-formed link token nobody was given.
func attackToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenGuessing guesses links: every wrong token of any shape (random,
// one character off a real one, a real one cut short or lengthened, a
// signer's token on the status page) gets the same answer, in the same
// time as far as a statistical test over many requests can tell (a
// two-sample Kolmogorov-Smirnov test at α = 0.001, confirmed on a second
// sample when it sees a difference; its power is shown by
// the difference it sees between a hit and a miss, logged); and one
// client guessing fast is soon stopped.
func (a *attackRig) tokenGuessing(t *testing.T) {
	const title = "Devinettes"
	a.submitPDF(t, title, "Signataire : signer2@example.com, reader1@example.com, reader2@example.com, reader3@example.com")
	var tokens []string
	for _, user := range []string{"signer2", "reader1", "reader2", "reader3"} {
		link := a.link(t, a.read(t, user, "À signer : "+title), "/s/")
		tokens = append(tokens, link[strings.LastIndexByte(link, '/')+1:])
	}
	real := tokens[0]
	if raw, err := base64.RawURLEncoding.DecodeString(real); err != nil || len(raw)*8 < 128 {
		t.Fatalf("the link token %q does not hold 128 bits", real)
	}
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	shapes := map[string]string{
		"random": attackToken(), "last character changed": flip(real, len(real)-1), "first character changed": flip(real, 0),
		"cut short": real[:len(real)-1], "lengthened": real + "A", "tiny": "Zq9", "long": strings.Repeat("A", 4000),
	}
	c := attackClient(t, "127.0.0.2")
	for _, prefix := range []string{"/s/", "/e/", "/d/", "/api/v1/sign/"} {
		base := attackGuess(t, c, a.base+prefix+shapes["random"], shapes["random"])
		if base.status != http.StatusNotFound || strings.Contains(base.body, title) {
			t.Fatalf("GET %sRANDOM: %d\n%s", prefix, base.status, base.body)
		}
		for name, tok := range shapes {
			if got := attackGuess(t, c, a.base+prefix+tok, tok); got.status != base.status || got.body != base.body {
				t.Errorf("GET %s with a token %s: %d\n%s\nwhile a random token gets %d\n%s", prefix, name, got.status, got.body, base.status, base.body)
			}
		}
		if prefix != "/s/" && prefix != "/api/v1/sign/" {
			// The signer's own token opens no other door.
			if got := attackGuess(t, c, a.base+prefix+real, real); got.status != base.status || got.body != base.body {
				t.Errorf("GET %s with the signer's token: %d, want the answer to a random guess", prefix, got.status)
			}
		}
	}

	// Timing: misses two characters off the real token against random
	// misses, interleaved in random order over eight client addresses
	// (each under the per-client limit); and, to show the test can see a
	// difference, hits against misses.
	const n = 200
	// timeMisses times the n near and n random misses, from eight client
	// addresses of its own from firstClient on.
	timeMisses := func(firstClient int) (near, far []float64) {
		var clients []*http.Client
		for i := range 8 {
			cl := attackClient(t, fmt.Sprintf("127.0.0.%d", firstClient+i))
			attackGuess(t, cl, a.base+"/healthz", "") // the connection made before timing
			clients = append(clients, cl)
		}
		type probe struct {
			near bool
			tok  string
		}
		var probes []probe
		for i := range n {
			probes = append(probes, probe{near: true, tok: flip(flip(real, len(real)-1-i%20), len(real)-21-i/20)}, probe{tok: attackToken()})
		}
		mathrand.Shuffle(len(probes), func(i, j int) { probes[i], probes[j] = probes[j], probes[i] })
		for i, p := range probes {
			g := attackGuess(t, clients[i%len(clients)], a.base+"/api/v1/sign/"+p.tok, p.tok)
			if g.status != http.StatusNotFound {
				t.Fatalf("guess %d: %d %s", i, g.status, g.body)
			}
			if p.near {
				near = append(near, g.took.Seconds())
			} else {
				far = append(far, g.took.Seconds())
			}
		}
		return near, far
	}
	near, far := timeMisses(10)
	var hits, misses []float64
	for i, tok := range tokens {
		hitter := attackClient(t, fmt.Sprintf("127.0.0.%d", 20+i))
		attackGuess(t, hitter, a.base+"/healthz", "")
		for range 15 { // the per-link read limit allows 20 at once
			g := attackGuess(t, hitter, a.base+"/api/v1/sign/"+tok, tok)
			if g.status != http.StatusOK {
				t.Fatalf("a real token: %d %s", g.status, g.body)
			}
			hits = append(hits, g.took.Seconds())
			misses = append(misses, attackGuess(t, hitter, a.base+"/api/v1/sign/"+attackToken(), "").took.Seconds())
		}
	}
	const alpha = 0.001
	dNear, critNear := attackKS(near, far, alpha)
	dHit, critHit := attackKS(hits, misses, alpha)
	t.Logf("near vs random misses: medians %.0f µs and %.0f µs, Kolmogorov-Smirnov D = %.3f (critical %.3f at α = %g, n = %d each)",
		attackMedian(near)*1e6, attackMedian(far)*1e6, dNear, critNear, alpha, n)
	// The hits show the test's power where it can be seen; on a loaded
	// machine the noise may hide a 0.2 ms difference, so it is reported,
	// not asserted (a failure there would say nothing about the gateway).
	t.Logf("hits vs misses: medians %.0f µs and %.0f µs, D = %.3f (critical %.3f, n = %d each; the test sees a difference: %v)",
		attackMedian(hits)*1e6, attackMedian(misses)*1e6, dHit, critHit, len(hits), dHit > critHit)
	if dNear > critNear {
		// An equal-time gateway fails one test in 1/α: a difference counts
		// only when a second sample sees it too (both, one in 1/α²), as a
		// real leak would.
		near, far = timeMisses(40)
		dAgain, critAgain := attackKS(near, far, alpha)
		t.Logf("near vs random misses, again: medians %.0f µs and %.0f µs, D = %.3f (critical %.3f)", attackMedian(near)*1e6, attackMedian(far)*1e6, dAgain, critAgain)
		if dAgain > critAgain {
			t.Errorf("a miss one character off the real token takes a different time than a random one, in two samples (D = %.3f > %.3f, then %.3f > %.3f): the token leaks by timing", dNear, critNear, dAgain, critAgain)
		}
	}

	// One client guessing fast is stopped.
	flood := attackClient(t, "127.0.0.30")
	for i := range 200 {
		g := attackGuess(t, flood, a.base+"/api/v1/sign/"+attackToken(), "")
		if g.status == http.StatusTooManyRequests {
			if !strings.Contains(g.body, `"rate_limited"`) {
				t.Errorf("the flood's refusal: %s", g.body)
			}
			t.Logf("a client guessing tokens is stopped at guess %d", i+1)
			return
		}
	}
	t.Error("200 guesses in a row from one client were all answered")
}

// attackKS is the two-sample Kolmogorov-Smirnov statistic of x and y and its
// critical value at level alpha.
func attackKS(x, y []float64, alpha float64) (d, critical float64) {
	x, y = slices.Sorted(slices.Values(x)), slices.Sorted(slices.Values(y))
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		v := min(x[i], y[j])
		for i < len(x) && x[i] == v {
			i++
		}
		for j < len(y) && y[j] == v {
			j++
		}
		d = max(d, math.Abs(float64(i)/float64(len(x))-float64(j)/float64(len(y))))
	}
	n, m := float64(len(x)), float64(len(y))
	return d, math.Sqrt(-math.Log(alpha/2)/2) * math.Sqrt((n+m)/(n*m))
}

func attackMedian(x []float64) float64 {
	s := slices.Sorted(slices.Values(x))
	return s[len(s)/2]
}

// replay plays back what an attacker could record: a code already used to
// sign, and the submission mail itself. Neither acts twice.
func (a *attackRig) replay(t *testing.T) {
	const title = "Rejeu"
	_, msgID := a.submitPDF(t, title, "Signataire : signer2@example.com")
	r := a.invited(t, "signer2", "À signer : "+title)
	r.post(t, "/code", nil)
	code := codeIn(t, a.read(t, "signer2", "Votre code de confirmation – "+title))
	r.post(t, "/sign", map[string]any{"code": code, "consent": true})
	var st apiState
	eventually(t, mailWait, "the envelope completed", func() bool {
		st = r.state(t)
		return st.Envelope.State == "completed"
	})
	attackAPIError(t, r, "/sign", map[string]any{"code": code, "consent": true}, http.StatusConflict, "already_acted")
	if again := r.state(t); again.Documents[0].SHA256 != st.Documents[0].SHA256 || again.Recipient.State != "signed" {
		t.Errorf("the replayed signature changed the envelope: %+v", again)
	}

	// The submission mail again, byte for byte but for Postfix's fields.
	first := a.search(t, "parapheur", "Processed", "Message-ID", msgID)
	if len(first) != 1 {
		t.Fatalf("the submission %s is not in Processed", msgID)
	}
	sendMail(t, a.rig.SMTPAddr(), "bob@example.com", "parapheur@org.example", string(first[0]))
	eventually(t, mailWait, "the replayed submission processed", func() bool {
		return a.count(t, "parapheur", "Processed", "Message-ID", msgID) == 2
	})
	a.settle(t)
	a.wantCount(t, "bob", 1, "Subject", "Enregistré : "+title)
	a.wantCount(t, "signer2", 1, "Subject", "À signer : "+title)
}

// attackPost posts form to url from the client c with the extra headers.
func attackPost(t *testing.T, c *http.Client, url string, form url.Values, headers map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// attackBrowser is a cookie-keeping client that does not follow redirects.
func attackBrowser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: pageWait,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// attackCSRFToken is the CSRF token of the form whose action ends with action on
// the page at url, read by c (which keeps the cookie).
func attackCSRFToken(t *testing.T, c *http.Client, url, action string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	doc, err := html.Parse(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for form := range doc.Descendants() {
		if form.Data != "form" || !strings.HasSuffix(attackAttr(form, "action"), action) {
			continue
		}
		for in := range form.Descendants() {
			if in.Data == "input" && attackAttr(in, "name") == "csrf" {
				return attackAttr(in, "value")
			}
		}
	}
	t.Fatalf("no form posting to …%s with a CSRF token on %s", action, url)
	return ""
}

func attackAttr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// crossSiteForms posts the page's forms as another site would make a
// browser post them: without the page's token, with it but from another
// origin, or without the cookie. Each is refused and nothing happens; the
// same form posted by the page itself works.
func (a *attackRig) crossSiteForms(t *testing.T) {
	const title = "Falsification de requête"
	a.submitPDF(t, title, "Signataire : signer1@example.com")
	link := a.link(t, a.read(t, "signer1", "À signer : "+title), "/s/")
	status := a.link(t, a.read(t, "bob", "Enregistré : "+title), "/e/")
	victim := attackBrowser(t)
	token := attackCSRFToken(t, victim, link, "/code")
	cancelToken := attackCSRFToken(t, victim, status, "/cancel")
	evil := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
	for name, try := range map[string]struct {
		c       *http.Client
		url     string
		form    url.Values
		headers map[string]string
	}{
		"code without the token":             {victim, link + "/code", url.Values{}, nil},
		"code with another form's token":     {victim, link + "/code", url.Values{"csrf": {cancelToken}}, nil},
		"code from another origin":           {victim, link + "/code", url.Values{"csrf": {token}}, evil},
		"code without the cookie":            {attackBrowser(t), link + "/code", url.Values{"csrf": {token}}, nil},
		"cancel without the token":           {victim, status + "/cancel", url.Values{"reason": {"forged"}}, nil},
		"cancel from another origin":         {victim, status + "/cancel", url.Values{"csrf": {cancelToken}, "reason": {"forged"}}, evil},
		"sign from another origin (no JS)":   {victim, link + "/sign", url.Values{"csrf": {token}, "code": {"123456"}, "consent": {"on"}}, map[string]string{"Origin": "null", "Sec-Fetch-Site": "cross-site"}},
		"the API's code from another site":   {victim, a.holder(link).api + "/code", nil, evil},
		"the API's code, a sibling's Origin": {victim, a.holder(link).api + "/code", nil, map[string]string{"Origin": "http://evil." + a.srv.listen}},
	} {
		if resp := attackPost(t, try.c, try.url, try.form, try.headers); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %s, want 403", name, resp.Status)
		}
	}
	if st := a.holder(link).state(t); st.Envelope.State != "in_progress" {
		t.Fatalf("a forged form acted: the envelope is %s", st.Envelope.State)
	}
	a.settle(t)
	a.wantCount(t, "signer1", 0, "Subject", "Votre code de confirmation – "+title)

	// The page's own form, as the browser posts it.
	resp := attackPost(t, victim, link+"/code", url.Values{"csrf": {token}}, map[string]string{"Origin": a.base, "Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the page's own form: %s, want 303", resp.Status)
	}
	a.read(t, "signer1", "Votre code de confirmation – "+title)
}

// attackXSS is markup that runs a script wherever it is not escaped.
const attackXSS = `<script>document.title='pwned'</script><img src=x onerror="document.title='pwned'"><svg onload="document.title='pwned'">`

// attackXSSName is markup that runs a script, short enough for a display name.
const attackXSSName = `<script>document.title='pwned'</script>`

// attackEncodedWord is s as one RFC 2047 encoded word, whatever it holds.
func attackEncodedWord(s string) string {
	return "=?utf-8?b?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
}

// attackNoMarkup parses doc as HTML and fails unless it holds no element
// or attribute that runs a script, and shows each of texts as text.
func attackNoMarkup(t *testing.T, what, doc string, texts ...string) {
	t.Helper()
	root, err := html.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var shown strings.Builder
	for n := range root.Descendants() {
		switch {
		case n.Type == html.TextNode:
			shown.WriteString(n.Data)
		case n.Type == html.ElementNode && (n.Data == "script" || n.Data == "svg" || n.Data == "iframe" || n.Data == "object"):
			t.Errorf("%s holds a <%s> element", what, n.Data)
		}
		for _, a := range n.Attr {
			if strings.HasPrefix(strings.ToLower(a.Key), "on") || strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:") {
				t.Errorf("%s: <%s %s=%q>", what, n.Data, a.Key, a.Val)
			}
		}
	}
	for _, s := range texts {
		if !strings.Contains(shown.String(), s) {
			t.Errorf("%s does not show %q as text", what, s)
		}
	}
}

// page GETs url and returns its body, after checking the answer's
// Content-Security-Policy forbids scripts.
func attackPage(t *testing.T, url string) string {
	t.Helper()
	resp, body := getResponse(t, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe") {
		t.Errorf("GET %s: Content-Security-Policy %q lets scripts run", url, csp)
	}
	return string(body)
}

// crossSiteScripting puts markup in everything a sender and a recipient
// write: the title, the message, a file name, the sender's and the
// signer's display names, the decline reason, and the name of a file
// uploaded to the verification page. Pages and mails show it as text; in
// Chromium, with scripts on, none runs.
func (a *attackRig) crossSiteScripting(t *testing.T) {
	title := "Titre " + attackXSS
	// Names are clipped to workflow.MaxNameRunes: a shorter payload.
	sender := "Bob " + attackXSSName
	signer := "Chef " + attackXSSName
	file := `"><svg onload=alert(1)>.pdf`
	envID, _ := a.submitAs(t, attackEncodedWord(sender)+" <bob@example.com>", title,
		[]string{`Signataire : "` + signer + `" <signer1@example.com>`, "Message : Lisez " + attackXSS},
		attackPDFPart(file, attackSamplePDF(t)))
	invitation, err := a.rig.WaitMessage("signer1", "X-Parapheur-Envelope", envID, mailWait)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := a.rig.WaitMessage("bob", "X-Parapheur-Envelope", envID, mailWait)
	if err != nil {
		t.Fatal(err)
	}
	for what, raw := range map[string][]byte{"the invitation": invitation, "the acknowledgement": ack} {
		m, err := gomail.CreateReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if subject, err := m.Header.Subject(); err != nil || !strings.HasSuffix(subject, " : "+title) {
			t.Errorf("%s's subject %q, %v: want the title as written", what, subject, err)
		}
		parts := attackParts(t, raw)
		attackNoMarkup(t, what+"'s HTML", parts["text/html"], title, sender)
		if !strings.Contains(parts["text/plain"], title) {
			t.Errorf("%s's text does not show the title as written:\n%s", what, parts["text/plain"])
		}
	}
	m := a.parse(t, "signer1", "invitation", invitation)
	link := a.link(t, m, "/s/")
	r := a.holder(link)
	r.user = "signer1"
	status := a.link(t, a.parse(t, "bob", "acknowledgement", ack), "/e/")
	r.post(t, "/code", nil)
	code := a.codeFor(t, "signer1", envID)
	reason := "Raison " + attackXSS
	r.post(t, "/decline", map[string]any{"code": code, "reason": reason})

	attackNoMarkup(t, "the signing page", attackPage(t, link), title, sender, signer, "Lisez "+attackXSS, file, reason)
	attackNoMarkup(t, "the status page", attackPage(t, status), title, signer, file, reason)
	notice := a.read(t, "bob", "Refusé : ")
	if !strings.Contains(notice.text, reason) {
		t.Errorf("the decline notice does not quote the reason as written:\n%s", notice.text)
	}

	// The verification page shows the name of the file it checks.
	verifier := attackBrowser(t)
	token := attackCSRFToken(t, verifier, a.base+"/verify", "/verify")
	var form bytes.Buffer
	w := multipart.NewWriter(&form)
	w.WriteField("csrf", token)
	fw, err := w.CreateFormFile("files", file)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(attackSamplePDF(t))
	w.Close()
	resp, err := verifier.Post(a.base+"/verify", w.FormDataContentType(), &form)
	if err != nil {
		t.Fatal(err)
	}
	report, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("POST /verify: %s, Content-Security-Policy %q", resp.Status, resp.Header.Get("Content-Security-Policy"))
	}
	attackNoMarkup(t, "the verification report", string(report), file)

	browser := testrig.ChromiumRig(t)
	for _, url := range []string{link, status} {
		p := a.open(t, browser, testrig.Desktop, url)
		ctx, cancel := context.WithTimeout(p.tab, pageWait)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`document.title + "|" + document.querySelectorAll("script, svg, img[src=x]").length`))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if title, injected, _ := strings.Cut(got, "|"); title == "pwned" || injected != "0" {
			p.failf("in Chromium, the page's title and injected elements: %q", got)
		}
		if !strings.Contains(p.text("main"), attackXSS) {
			p.failf("the page does not show the payload as text")
		}
	}
}

// attackInjected is the header an attacker tries to add to the gateway's mails.
const attackInjected = "Bcc: victim@example.com\r\nX-Injected: yes"

// attackHeaderFields returns the names of the header fields of raw and of each
// of its parts, nested ones included.
func attackHeaderFields(t *testing.T, raw []byte) []string {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) {
		t.Fatalf("reading a mail: %v", err)
	}
	var names []string
	var walk func(e *message.Entity)
	walk = func(e *message.Entity) {
		for f := e.Header.Fields(); f.Next(); {
			names = append(names, f.Key())
		}
		if mr := e.MultipartReader(); mr != nil {
			for {
				p, err := mr.NextPart()
				if err != nil {
					return
				}
				walk(p)
			}
		}
	}
	walk(e)
	return names
}

// headerInjection writes line breaks and header fields into the subject,
// the sender's and the signer's display names (RFC 2047 encoded words)
// and a file name (RFC 2231): no mail the gateway sends, from the
// acknowledgement to the final mails with the signed file, gets a field
// of the attacker's.
func (a *attackRig) headerInjection(t *testing.T) {
	title := "Injection\r\n" + attackInjected
	envID, _ := a.submitAs(t, attackEncodedWord("Bob\r\n"+attackInjected)+" <bob@example.com>", attackEncodedWord(title),
		[]string{"Signataire : " + attackEncodedWord("Eve\r\n"+attackInjected) + " <signer2@example.com>"},
		attackPDFPart("contrat\r\n"+attackInjected+".pdf", attackSamplePDF(t)))
	r := a.holder(a.link(t, a.parse(t, "signer2", "invitation", attackMailOf(t, a.rig, "signer2", envID)), "/s/"))
	r.user = "signer2"
	r.post(t, "/code", nil)
	code := a.codeFor(t, "signer2", envID)
	r.post(t, "/sign", map[string]any{"code": code, "consent": true})
	eventually(t, mailWait, "the envelope completed", func() bool { return r.state(t).Envelope.State == "completed" })
	a.settle(t)
	var mails [][]byte
	for _, user := range []string{"bob", "signer2"} {
		mails = append(mails, a.search(t, user, "INBOX", "X-Parapheur-Envelope", envID)...)
	}
	// acknowledgement, invitation, code, two final mails
	if len(mails) < 5 {
		t.Fatalf("%d mails of envelope %s, want at least 5", len(mails), envID)
	}
	for _, raw := range mails {
		fields := attackHeaderFields(t, raw)
		for _, f := range fields {
			if strings.EqualFold(f, "Bcc") || strings.EqualFold(f, "X-Injected") {
				t.Errorf("a mail of the gateway has the attacker's field %s:\n%.3000s", f, raw)
			}
		}
		m, err := gomail.CreateReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if s, _ := m.Header.Subject(); strings.ContainsAny(s, "\r\n") {
			t.Errorf("a subject holds a line break: %q", s)
		}
	}
	a.wantCount(t, "victim", 0)
}

// attackMailOf is the only mail of user's INBOX about envelope envID.
func attackMailOf(t *testing.T, rig *testrig.Mail, user, envID string) []byte {
	t.Helper()
	raw, err := rig.WaitMessage(user, "X-Parapheur-Envelope", envID, mailWait)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// forgedAuthResults sends, from an allowed sender, a submission whose
// only passing Authentication-Results are the attacker's: another
// authserv-id, one that merely starts with the trusted one, the trusted
// one vouching for another domain or for an unaligned DKIM signature.
// None counts: the mail is refused (once: the sender is not
// authenticated) and quarantined, and no envelope is made.
func (a *attackRig) forgedAuthResults(t *testing.T) {
	forged := []string{
		"Authentication-Results: mx.evil.example; dmarc=pass header.from=example.com",
		"Authentication-Results: " + attackAuthservID + ".evil.example; dmarc=pass header.from=example.com",
		"Authentication-Results: " + attackAuthservID + "; dmarc=pass header.from=evil.example",
		"Authentication-Results: " + attackAuthservID + "; dkim=pass header.d=evil.example",
	}
	const title = "Résultats falsifiés"
	var ids []string
	for range 2 {
		ids = append(ids, a.send(t, "bob@example.com", attackMail{from: "Bob Agent <bob@example.com>", subject: mimeWord(title),
			headers: forged, text: "Signataire : signer1@example.com", parts: []string{attackPDFPart("convention.pdf", attackSamplePDF(t))}}))
	}
	for _, id := range ids {
		a.wantFate(t, id, "Quarantine")
	}
	refusals := a.search(t, "bob", "INBOX", "Subject", "Non enregistré : "+title)
	if len(refusals) != 1 {
		t.Fatalf("%d refusals for two unauthenticated mails, want 1 (at most one a day)", len(refusals))
	}
	if text := attackText(t, refusals[0]); !strings.Contains(text, "n'a pas pu être authentifié") {
		t.Errorf("the refusal does not say the mail could not be authenticated:\n%s", text)
	}
	a.wantCount(t, "signer1", 0, "Subject", title)
}

// spoofedFrom forges the From of an allowed sender, of a stranger (the
// victim of a mail cannon) and of a signer answering her invitation with
// a decline, each failing DMARC by the trusted server's results: no
// reply goes out, every mail is quarantined, nothing acts.
func (a *attackRig) spoofedFrom(t *testing.T) {
	pdf := attackPDFPart("convention.pdf", attackSamplePDF(t))
	quarantined := a.metric(t, `parapheur_ingest_mails_total{outcome="quarantined"}`)
	bob := a.send(t, "bob@example.com", attackMail{from: "Bob Agent <bob@example.com>", subject: "Usurpation",
		headers: []string{attackAuth("fail", "example.com")}, text: "Signataire : signer1@example.com", parts: []string{pdf}})
	var cannon []string
	for i := range 5 {
		cannon = append(cannon, a.send(t, "victim@example.com", attackMail{from: "victim@example.com", subject: fmt.Sprintf("Canon %d", i),
			headers: []string{attackAuth("fail", "example.com")}, text: "Pas de PDF ici"}))
	}
	a.wantFate(t, bob, "Quarantine")
	for _, id := range cannon {
		a.wantFate(t, id, "Quarantine")
	}
	if got := a.metric(t, `parapheur_ingest_mails_total{outcome="quarantined"}`); got != quarantined+6 {
		t.Errorf("%v submissions quarantined without a reply, want 6", got-quarantined)
	}
	a.wantCount(t, "bob", 0, "Subject", "Usurpation")
	a.wantCount(t, "signer1", 0, "Subject", "Usurpation")
	a.wantCount(t, "victim", 0)

	// A decline forged in a signer's name, threaded to her invitation as
	// her mail client would (the envelope ID is in every mail of the
	// envelope, the signer's address on the status page).
	const title = "Refus usurpé"
	envID, _ := a.submitPDF(t, title, "Signataire : signer1@example.com")
	invitation, err := gomail.CreateReader(bytes.NewReader(attackMailOf(t, a.rig, "signer1", envID)))
	if err != nil {
		t.Fatal(err)
	}
	inviteID, refs := invitation.Header.Get("Message-ID"), invitation.Header.Get("References")
	forged := a.send(t, "signer1@example.com", attackMail{from: "signer1@example.com", subject: "RE: À signer : " + mimeWord(title),
		headers: []string{attackAuth("fail", "example.com"), "In-Reply-To: " + inviteID, "References: " + refs + " " + inviteID},
		text:    "REFUSER : je refuse (faux)"})
	a.wantFate(t, forged, "Quarantine")
	r := a.holder(a.link(t, a.parse(t, "signer1", "invitation", attackMailOf(t, a.rig, "signer1", envID)), "/s/"))
	if st := r.state(t); st.Envelope.State != "in_progress" || st.Recipient.State != "pending" {
		t.Fatalf("a decline forged in the signer's name acted: envelope %s, signer %s", st.Envelope.State, st.Recipient.State)
	}
	a.wantCount(t, "bob", 0, "Subject", "Refusé : "+title)
	a.wantCount(t, "signer1", 0, "In-Reply-To", forged)
}

// autoResponderLoop answers the gateway as auto-responders do: the ones
// that mark their mail (RFC 3834 and the usual fields) get no reply and
// are processed; a naive one that answers everything gets one refusal,
// answers it, and the loop ends there.
func (a *attackRig) autoResponderLoop(t *testing.T) {
	const title = "Vacances"
	envID, _ := a.submitPDF(t, title, "Signataire : signer2@example.com")
	invitation := attackMailOf(t, a.rig, "signer2", envID)
	inviteID := regexp.MustCompile(`(?mi)^Message-ID:\s*(<[^>]+>)`).FindSubmatch(invitation)[1]
	processed := a.metric(t, `parapheur_imap_messages_total{outcome="processed"}`)
	auto := map[string]struct {
		mailFrom, from string
		headers        []string
	}{
		"Auto-Submitted":   {"signer2@example.com", "signer2@example.com", []string{"Auto-Submitted: auto-replied"}},
		"Precedence: bulk": {"responder@example.com", "responder@example.com", []string{"Precedence: bulk"}},
		"List-Id":          {"responder@example.com", "responder@example.com", []string{"List-Id: <annonces.example.com>"}},
		"null Return-Path": {"", "responder@example.com", nil},
		"MAILER-DAEMON":    {"responder@example.com", "MAILER-DAEMON@example.com", nil},
		"the gateway":      {"responder@example.com", "parapheur@org.example", nil},
	}
	for name, m := range auto {
		id := a.send(t, m.mailFrom, attackMail{from: m.from, subject: "Absent : À signer : " + mimeWord(title) + " (" + name + ")",
			headers: append([]string{attackAuth("pass", "example.com"), "In-Reply-To: " + string(inviteID)}, m.headers...),
			text:    "Je suis absent jusqu'au 15."})
		a.wantFate(t, id, "Processed")
	}
	if got := a.metric(t, `parapheur_imap_messages_total{outcome="processed"}`); got != processed+float64(len(auto)) {
		t.Errorf("%v automatic mails counted as processed, want %d", got-processed, len(auto))
	}
	a.wantCount(t, "responder", 0)
	a.wantCount(t, "signer2", 1, "X-Parapheur-Envelope", envID)
	if !strings.Contains(a.srv.logs.String(), "automatic mail, no reply") {
		t.Error("the gateway's logs do not say why the automatic mails got no reply")
	}

	// The naive responder answers every mail it gets.
	refused := a.metric(t, `parapheur_ingest_mails_total{outcome="refused"}`)
	quarantined := a.metric(t, `parapheur_ingest_mails_total{outcome="quarantined"}`)
	id := a.send(t, "responder@example.com", attackMail{from: "responder@example.com", subject: "Absence",
		headers: []string{attackAuth("pass", "example.com")}, text: "Je suis absent jusqu'au 15."})
	for round := 1; ; round++ {
		a.wantFate(t, id, "Quarantine")
		got := a.search(t, "responder", "INBOX")
		if len(got) < round {
			t.Logf("the loop ended after %d round(s)", round)
			break
		}
		if round > 3 {
			t.Fatalf("the gateway answered the naive responder %d times", len(got))
		}
		last := got[len(got)-1]
		if !bytes.Contains(last, []byte("Auto-Submitted: auto-generated")) {
			t.Errorf("the gateway's reply is not marked Auto-Submitted:\n%.2000s", last)
		}
		prev := regexp.MustCompile(`(?mi)^Message-ID:\s*(<[^>]+>)`).FindSubmatch(last)[1]
		id = a.send(t, "responder@example.com", attackMail{from: "responder@example.com", subject: "Re: Absence",
			headers: []string{attackAuth("pass", "example.com"), "In-Reply-To: " + string(prev)}, text: "Je suis absent jusqu'au 15."})
	}
	a.wantCount(t, "responder", 1)
	if r, q := a.metric(t, `parapheur_ingest_mails_total{outcome="refused"}`)-refused,
		a.metric(t, `parapheur_ingest_mails_total{outcome="quarantined"}`)-quarantined; r != 1 || q != 1 {
		t.Errorf("the loop counted %v refused with a reply and %v quarantined without, want 1 and 1", r, q)
	}
}

// pdfBombs attaches PDF files made to exhaust a reader: streams that
// inflate to 400 MiB (the cross-reference stream, object streams), a page
// tree that loops, one 1000 levels deep, arrays nested 100 000 deep. The
// mail is refused with a reply naming each file, and quarantined.
func (a *attackRig) pdfBombs(t *testing.T) {
	hostile := signtest.Hostile()
	bombs := map[string][]byte{
		"bomb-xref.pdf":          signtest.Bomb(t, 400<<20, "xref"),
		"bomb-objstm.pdf":        signtest.Bomb(t, 400<<20, "objstm"),
		"bomb-objstms.pdf":       signtest.Bomb(t, 400<<20, "objstms"),
		"kids-loop.pdf":          hostile["kids-loop-objstm"],
		"deep-page-tree.pdf":     hostile["deep-page-tree"],
		"deep-array-catalog.pdf": hostile["deep-array-in-catalog-objstm"],
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(bombs)) {
		parts = append(parts, attackPDFPart(name, bombs[name]))
	}
	_, id := a.submitAs(t, "Bob Agent <bob@example.com>", "Bombes PDF", []string{"Signataire : signer1@example.com"}, parts...)
	a.wantFate(t, id, "Quarantine")
	text := attackText(t, a.wantCount(t, "bob", 1, "In-Reply-To", id)[0])
	for name := range bombs {
		if !strings.Contains(text, "le document « "+name+" » ne peut pas être signé") {
			t.Errorf("the refusal does not say why %s cannot be signed:\n%s", name, text)
		}
	}
	a.wantCount(t, "signer1", 0, "Subject", "Bombes PDF")
}

// attackNested is a multipart/mixed entity nested depth deep around a text part.
func attackNested(depth int) string {
	s := "Content-Type: text/plain\r\n\r\nSignataire : signer1@example.com\r\n"
	for i := range depth {
		b := fmt.Sprintf("n%d", i)
		s = "Content-Type: multipart/mixed; boundary=" + b + "\r\n\r\n--" + b + "\r\n" + s + "\r\n--" + b + "--\r\n"
	}
	return s
}

// attackForwarded is a message/rfc822 part nested depth deep around a text part.
func attackForwarded(depth int) string {
	s := "Content-Type: text/plain\r\n\r\nbonjour\r\n"
	for range depth {
		s = "Content-Type: message/rfc822\r\n\r\nFrom: x@example.com\r\nSubject: fwd\r\n" + s
	}
	return s
}

// mimeBombs nests parts 1000 deep (multiparts, forwarded messages) and
// sends a mail of 5001 parts: each is refused with a reply that says why,
// and quarantined.
func (a *attackRig) mimeBombs(t *testing.T) {
	pdf := attackPDFPart("convention.pdf", attackSamplePDF(t))
	for name, part := range map[string]string{"multiparts": attackNested(1000), "forwarded messages": attackForwarded(1000)} {
		_, id := a.submitAs(t, "Bob Agent <bob@example.com>", "Bombe MIME "+name, []string{"Signataire : signer1@example.com"}, part, pdf)
		a.wantFate(t, id, "Quarantine")
		if text := attackText(t, a.wantCount(t, "bob", 1, "In-Reply-To", id)[0]); !strings.Contains(text, "imbriquées sur plus de 32 niveaux") {
			t.Errorf("%s: the refusal does not say the parts nest too deep:\n%s", name, text)
		}
	}
	many := make([]string, 5000)
	for i := range many {
		many[i] = fmt.Sprintf("Content-Type: text/plain; name=n%d.txt\r\n\r\nx", i)
	}
	_, id := a.submitAs(t, "Bob Agent <bob@example.com>", "Bombe MIME parties", []string{"Signataire : signer1@example.com"}, append(many, pdf)...)
	a.wantFate(t, id, "Quarantine")
	if text := attackText(t, a.wantCount(t, "bob", 1, "In-Reply-To", id)[0]); !strings.Contains(text, "le message compte plus de 1000 parties MIME") {
		t.Errorf("5001 parts: the refusal does not say the mail has too many parts:\n%s", text)
	}
	a.wantCount(t, "signer1", 0, "Subject", "Bombe MIME")
	t.Logf("serve's peak resident memory after the PDF and MIME bombs: %d MiB", a.vmHWM(t)>>20)
}

// stillServes checks, after every attack, that the gateway answers and
// takes a new submission, that its inbox is empty (every mail processed
// or quarantined, as counted in its metrics), that nobody wrote to the
// victim, and that its logs hold no token or code.
func (a *attackRig) stillServes(t *testing.T) {
	if resp, _ := getResponse(t, a.base+"/readyz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %s", resp.Status)
	}
	const title = "Après les attaques"
	_, id := a.submitPDF(t, title, "Signataire : signer1@example.com")
	a.wantFate(t, id, "Processed")
	a.read(t, "bob", "Enregistré : "+title)
	a.read(t, "signer1", "À signer : "+title)
	if left := a.count(t, "parapheur", "INBOX"); left != 0 {
		t.Errorf("%d mails left in the gateway's inbox", left)
	}
	handled := a.count(t, "parapheur", "Processed") + a.count(t, "parapheur", "Quarantine")
	counted := a.metric(t, `parapheur_imap_messages_total{outcome="processed"}`) + a.metric(t, `parapheur_imap_messages_total{outcome="quarantine"}`)
	if float64(handled) != counted {
		t.Errorf("%d mails in Processed and Quarantine, %v counted", handled, counted)
	}
	a.wantCount(t, "victim", 0)
	t.Logf("serve's peak resident memory after every attack: %d MiB", a.vmHWM(t)>>20)
	logsHoldNone(t, a.srv.logs.String(), a.secrets)
	a.storeHoldsNoSecret(t, strings.TrimPrefix(a.store, "bolt://"))
}
