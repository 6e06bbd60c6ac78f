package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/backend"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
)

// TestServeEndToEnd runs "parapheur serve" as an operator would, against a
// real Dovecot and Postfix: a submission mailed to the gateway comes back
// as an acknowledgement to its sender and an invitation to the signer, and
// a mail without PDF as a refusal.
func TestServeEndToEnd(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) {
		serveEndToEnd(t, "bolt://"+filepath.Join(t.TempDir(), "parapheur.db"))
	})
	t.Run("redis", func(t *testing.T) {
		serveEndToEnd(t, testrig.Redis(t).URL())
	})
}

// server is one "parapheur serve" process of a test.
type server struct {
	listen string
	cmd    *exec.Cmd
	exited chan error
	logs   *lockedBuffer
}

// initKeys runs "parapheur ca init" as an operator does before the first
// serve, with the settings extra (PARAPHEUR_PUBLIC_URL=…), and returns the
// keys.dir it wrote; replicas share it.
func initKeys(t *testing.T, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	r := parapheur(t, append([]string{"PARAPHEUR_CONFIG=", "PARAPHEUR_KEYS_DIR=" + dir, "PARAPHEUR_KEYS_PASSPHRASE=test"}, extra...),
		"ca", "init", "--organisation", "Mairie de Test")
	if r.code != exitOK {
		t.Fatalf("ca init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return dir
}

// serveEnv is the environment that configures "parapheur serve" alone, on
// storeURL, rig's mailbox and the keys.dir keys, listening on listen. It
// names no configuration file: with none at the default path (the test
// binary's, absent), the environment alone configures serve, as in a
// container (SPEC §7).
func serveEnv(rig *testrig.Mail, storeURL, keys, listen string) []string {
	return []string{
		"PARAPHEUR_ADDRESS=parapheur@org.example",
		"PARAPHEUR_PUBLIC_URL=http://" + listen,
		"PARAPHEUR_LISTEN=" + listen,
		"PARAPHEUR_KEYS_PASSPHRASE=test",
		"PARAPHEUR_STORE_URL=" + storeURL,
		"PARAPHEUR_IMAP_URL=imap://parapheur@" + rig.IMAPAddr() + "/INBOX",
		"PARAPHEUR_IMAP_PASSWORD=" + rig.Password(),
		"PARAPHEUR_SMTP_URL=smtp://" + rig.SMTPAddr(),
		"PARAPHEUR_SENDERS_ALLOWED=bob@example.com",
		"PARAPHEUR_KEYS_DIR=" + keys,
	}
}

// startServe runs "parapheur serve" on storeURL, rig's mailbox and the
// keys in keys, with the variables of env besides (they win), waits until
// it is ready, and kills it at the end of the test if still running.
func startServe(t *testing.T, rig *testrig.Mail, storeURL, keys string, env ...string) *server {
	t.Helper()
	return startServeOn(t, rig, storeURL, keys, freeAddr(t), env...)
}

// startServeOn is startServe listening on listen (PUBLIC_URL
// http://listen), with the settings extra over serveEnv's.
func startServeOn(t *testing.T, rig *testrig.Mail, storeURL, keys, listen string, extra ...string) *server {
	t.Helper()
	return startServeWith(t, append(serveEnv(rig, storeURL, keys, listen), extra...), listen)
}

// startServeEnv is startServe with the environment env gives for the
// listen address.
func startServeEnv(t *testing.T, env func(listen string) []string) *server {
	t.Helper()
	listen := freeAddr(t)
	return startServeWith(t, env(listen), listen)
}

// startServeWith runs "parapheur serve" with the environment env, which
// makes it listen on listen, waits until it is ready, and kills it at the
// end of the test if still running.
func startServeWith(t *testing.T, env []string, listen string) *server {
	t.Helper()
	s := &server{listen: listen, exited: make(chan error, 1), logs: &lockedBuffer{}}
	s.cmd = exec.Command(binary, "serve")
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs // written by exec's copying goroutine
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("serve %s logs:\n%s", s.listen, s.logs.String())
		}
	})
	waitHTTP(t, "http://"+s.listen+"/readyz", s.exited)
	return s
}

// stop sends SIGTERM and expects a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("serve did not stop cleanly on SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20 s of SIGTERM")
	}
}

// newSubmission is a mail from bob with a PDF and one signer, and its Message-ID.
func newSubmission(t *testing.T, subject string) (string, string) {
	t.Helper()
	pdf, err := os.ReadFile(samplePDF)
	if err != nil {
		t.Fatal(err)
	}
	return submissionOf(subject, pdf)
}

// samplePDF is the document of the end-to-end submissions.
var samplePDF = filepath.Join("..", "..", "mailin", "testdata", "doc1.pdf")

// submissionOf is a mail from bob with pdf and one signer, and its Message-ID.
func submissionOf(subject string, pdf []byte) (string, string) {
	id := fmt.Sprintf("<e2e-%d@example.com>", time.Now().UnixNano())
	return fmt.Sprintf("From: Bob Agent <bob@example.com>\r\nTo: parapheur@org.example\r\nSubject: %s\r\n"+
		"Message-ID: %s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSignataire : Alice Martin <alice@example.com>\r\n"+
		"--b\r\nContent-Type: application/pdf; name=convention.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n--b--\r\n",
		subject, id, base64.StdEncoding.EncodeToString(pdf)), id
}

// TestServeObjectStreamsAndForgedBounce is issue 9's proof through the real
// Postfix and Dovecot: a PDF saved with object streams (as Word, Acrobat and
// qpdf write them) is acknowledged with its real page count, and a delivery
// report forged to the plain gateway address, naming the envelope and its
// signer, is ignored.
func TestServeObjectStreamsAndForgedBounce(t *testing.T) {
	qpdf, err := exec.LookPath("qpdf")
	if err != nil {
		t.Fatal("qpdf is missing: apt-get install -y qpdf")
	}
	objstm := filepath.Join(t.TempDir(), "objstm.pdf")
	if out, err := exec.Command(qpdf, "--object-streams=generate", samplePDF, objstm).CombinedOutput(); err != nil {
		t.Fatalf("qpdf: %v\n%s", err, out)
	}
	pdf, err := os.ReadFile(objstm)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(pdf, []byte("/ObjStm")) {
		t.Fatal("qpdf wrote no object stream")
	}
	rig := testrig.MailRig(t)
	srv := startServe(t, rig, "bolt://"+filepath.Join(t.TempDir(), "parapheur.db"), initKeys(t))
	submission, msgID := submissionOf("Convention en flux d'objets", pdf)
	sendMail(t, rig.SMTPAddr(), "bob@example.com", "parapheur@org.example", submission)
	ack, err := rig.WaitMessage("bob", "In-Reply-To", msgID, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	envID := engine.EnvelopeID(strings.ToLower(msgID))
	sum := sha256.Sum256(pdf)
	ackMsg, err := mail.ReadMessage(bytes.NewReader(ack))
	if err != nil {
		t.Fatal(err)
	}
	ackText, err := io.ReadAll(quotedprintable.NewReader(ackMsg.Body))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(ackText, []byte(envID)) || !bytes.Contains(ackText, []byte(hex.EncodeToString(sum[:]))) ||
		!bytes.Contains(ackText, []byte("1 page")) {
		t.Fatalf("the acknowledgement does not name envelope %s, one page and the document's SHA-256:\n%s", envID, ack)
	}
	if _, err := rig.WaitMessage("alice", "X-Parapheur-Envelope", envID, 60*time.Second); err != nil {
		t.Fatal(err)
	}

	forged := "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\nTo: parapheur@org.example\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <forged-" + envID + "@mx.example.net>\r\n" +
		"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n" +
		"--r\r\nContent-Type: text/plain\r\n\r\nI'm sorry.\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\n" +
		"Reporting-MTA: dns; mx.example.net\r\nOriginal-Envelope-Id: " + envID + "\r\n\r\n" +
		"Final-Recipient: rfc822; alice@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
		"Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n" +
		"--r\r\nContent-Type: text/rfc822-headers\r\n\r\nX-Parapheur-Envelope: " + envID + "\r\n\r\n--r--\r\n"
	sendMail(t, rig.SMTPAddr(), "", "parapheur@org.example", forged)
	eventually(t, 60*time.Second, "the forged report is handled", func() bool {
		return strings.Contains(srv.logs.String(), "delivery report ignored")
	})
	if logs := srv.logs.String(); strings.Contains(logs, "bounce recorded") {
		t.Fatalf("the forged report was believed:\n%s", grepLines(logs, "bounce"))
	}
	srv.stop(t) // the bbolt file is the serving process's alone
	show := parapheur(t, srv.cmd.Env, "envelope", "show", envID)
	if show.code != exitOK || !strings.Contains(show.stdout, "1 page(s)") ||
		strings.Contains(show.stdout, "bounced") || strings.Contains(show.stdout, "delivery failed") {
		t.Fatalf("envelope show (exit %d) after the forged report:\n%s%s", show.code, show.stdout, show.stderr)
	}
}

func serveEndToEnd(t *testing.T, storeURL string) {
	rig := testrig.MailRig(t)
	srv := startServe(t, rig, storeURL, initKeys(t))
	listen := srv.listen
	submission, msgID := newSubmission(t, "TR: Convention de partenariat")
	sendMail(t, rig.SMTPAddr(), "bob@example.com", "parapheur@org.example", submission)

	ack, err := rig.WaitMessage("bob", "In-Reply-To", msgID, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	envID := engine.EnvelopeID(strings.ToLower(msgID))
	if !bytes.Contains(ack, []byte(envID)) || !bytes.Contains(ack, []byte("Auto-Submitted: auto-generated")) {
		t.Fatalf("the acknowledgement does not name envelope %s:\n%s", envID, ack)
	}
	invitation, err := rig.WaitMessage("alice", "X-Parapheur-Envelope", envID, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(invitation, []byte("http://"+listen+"/s/")) {
		t.Fatalf("the invitation carries no signing link:\n%s", invitation)
	}

	refused := strings.Replace(submission[:strings.Index(submission, "--b\r\nContent-Type: application/pdf")], "<e2e-", "<e2e-nopdf-", 1) + "--b--\r\n"
	sendMail(t, rig.SMTPAddr(), "bob@example.com", "parapheur@org.example", refused)
	refusal, err := rig.WaitMessage("bob", "In-Reply-To", strings.Replace(msgID, "<e2e-", "<e2e-nopdf-", 1), 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	refusalMsg, err := mail.ReadMessage(bytes.NewReader(refusal))
	if err != nil {
		t.Fatal(err)
	}
	refusalText, err := io.ReadAll(quotedprintable.NewReader(refusalMsg.Body))
	if err != nil {
		t.Fatal(err)
	}
	// The default language is French: the problem is told in French.
	if !bytes.Contains(refusalText, []byte("aucune pièce jointe PDF")) {
		t.Fatalf("the refusal does not say what was wrong:\n%s", refusal)
	}

	// The sender cancels by replying to the acknowledgement, as a mail
	// client writes a reply: In-Reply-To the acknowledgement, References
	// copied from it.
	ackMsg, err := mail.ReadMessage(bytes.NewReader(ack))
	if err != nil {
		t.Fatal(err)
	}
	cancelMail := fmt.Sprintf("From: Bob Agent <bob@example.com>\r\nTo: parapheur@org.example\r\nSubject: Re: Enregistré\r\n"+
		"Message-ID: <e2e-cancel-%d@example.com>\r\nIn-Reply-To: %s\r\nReferences: %s %s\r\n\r\nANNULER\r\n\r\n> Votre demande est enregistrée\r\n",
		time.Now().UnixNano(), ackMsg.Header.Get("Message-ID"), ackMsg.Header.Get("References"), ackMsg.Header.Get("Message-ID"))
	sendMail(t, rig.SMTPAddr(), "bob@example.com", "parapheur@org.example", cancelMail)
	if _, err := rig.WaitMessage("bob", "Subject", "Annulé", 60*time.Second); err != nil {
		t.Fatalf("no cancellation notice after ANNULER: %v", err)
	}

	// A second envelope, which the signer declines by replying to her
	// invitation: the sender is told, with the reason.
	second := strings.Replace(strings.Replace(submission, "<e2e-", "<e2e-second-", 1), "Subject: TR: Convention de partenariat", "Subject: Avenant", 1)
	sendMail(t, rig.SMTPAddr(), "bob@example.com", "parapheur@org.example", second)
	secondID := engine.EnvelopeID(strings.ToLower(strings.Replace(msgID, "<e2e-", "<e2e-second-", 1)))
	inv2, err := rig.WaitMessage("alice", "X-Parapheur-Envelope", secondID, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	invMsg, err := mail.ReadMessage(bytes.NewReader(inv2))
	if err != nil {
		t.Fatal(err)
	}
	decline := fmt.Sprintf("From: Alice Martin <alice@example.com>\r\nTo: parapheur@org.example\r\nSubject: RE: À signer : Avenant\r\n"+
		"Message-ID: <e2e-decline-%d@example.com>\r\nIn-Reply-To: %s\r\nReferences: %s %s\r\n\r\nREFUSER: le montant est faux\r\n",
		time.Now().UnixNano(), invMsg.Header.Get("Message-ID"), invMsg.Header.Get("References"), invMsg.Header.Get("Message-ID"))
	sendMail(t, rig.SMTPAddr(), "alice@example.com", "parapheur@org.example", decline)
	notice, err := rig.WaitMessage("bob", "Subject", "Refusé : Avenant", 60*time.Second)
	if err != nil {
		t.Fatalf("no decline notice after REFUSER: %v", err)
	}
	if !bytes.Contains(notice, []byte("le montant est faux")) {
		t.Fatalf("the decline notice does not quote the reason:\n%s", notice)
	}

	metrics := get(t, "http://"+listen+"/metrics")
	if !strings.Contains(metrics, `parapheur_imap_messages_total{outcome="processed"} 4`) ||
		!strings.Contains(metrics, `parapheur_imap_messages_total{outcome="quarantine"} 1`) {
		t.Errorf("metrics do not count the two mails:\n%s", grepLines(metrics, "parapheur_imap"))
	}
	// The envelope's expiry waits in the timer queue; every queue is shown.
	if !regexp.MustCompile(`parapheur_outbox_items\{queue="timer",state="waiting"\} [1-9]`).MatchString(metrics) {
		t.Errorf("metrics do not show the waiting timer:\n%s", grepLines(metrics, "parapheur_outbox"))
	}
	for _, q := range []string{"mail", "sms", "timer", "completion"} {
		if !strings.Contains(metrics, `parapheur_outbox_oldest_due_age_seconds{queue="`+q+`"}`) {
			t.Errorf("no oldest-item age of queue %s:\n%s", q, grepLines(metrics, "parapheur_outbox"))
		}
	}
	srv.stop(t)
}

// TestServeNeedsTheGatewaySecret checks that serve without the gateway
// secret stops at once and says how to make it.
func TestServeNeedsTheGatewaySecret(t *testing.T) {
	keys := t.TempDir()
	env := unreachableServersEnv(t, keys)
	r := parapheur(t, env, "serve")
	if want := filepath.Join(keys, "gateway.key") + ` does not exist: run "parapheur ca init"`; r.code != exitFailure || !strings.Contains(r.stderr, want) {
		t.Fatalf("serve without the secret: exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
	}
	if err := os.WriteFile(filepath.Join(keys, "gateway.key"), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := parapheur(t, env, "serve"); r.code != exitFailure || !strings.Contains(r.stderr, "holds 5 bytes instead of 32") {
		t.Fatalf("serve with a short secret: exit %d, stderr %q", r.code, r.stderr)
	}
}

// freeAddr is a loopback address for a server to listen on, outside the
// ports outgoing connections take (see testrig.FreeLoopbackPorts).
func freeAddr(t *testing.T) string {
	t.Helper()
	ports, err := testrig.FreeLoopbackPorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(ports[0])
}

// eventually checks cond every 100 ms until it holds, and fails the test
// saying what was awaited when it does not within timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not within %v", what, timeout)
		}
	}
}

func waitHTTP(t *testing.T, url string, exited chan error) {
	t.Helper()
	last := "no answer"
	ready := func() bool {
		select {
		case err := <-exited:
			t.Fatalf("serve exited: %v", err)
		default:
		}
		resp, err := http.Get(url)
		if err != nil {
			last = err.Error()
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = resp.Status + " " + string(body)
		return resp.StatusCode == http.StatusOK
	}
	defer func() {
		if t.Failed() {
			t.Logf("the last answer of %s: %s", url, last)
		}
	}()
	// A loaded machine (the whole test suite at once) may keep Dovecot's
	// login past the readiness check's 2 s a few times in a row.
	eventually(t, 60*time.Second, url+" ready", ready)
}

func get(t *testing.T, url string) string {
	t.Helper()
	_, body := getResponse(t, url)
	return string(body)
}

// getResponse GETs url and returns the answer with its whole body.
func getResponse(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
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

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func sendMail(t *testing.T, addr, from, to, msg string) {
	t.Helper()
	c, err := smtp.Dial(addr) // the rig's Postfix has no TLS: loopback only
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail(from, []string{to}, strings.NewReader(msg)); err != nil {
		t.Fatalf("SMTP to %s: %v", addr, err)
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeTwoReplicas runs two gateways on one Redis store and one
// mailbox, as SPEC §7 allows: one polls (the lease), both send; when the
// poller stops, the other takes over. Every submission is answered once.
func TestServeTwoReplicas(t *testing.T) {
	rig := testrig.MailRig(t)
	storeURL := testrig.Redis(t).URL()
	keys := initKeys(t)
	a := startServe(t, rig, storeURL, keys)
	b := startServe(t, rig, storeURL, keys)

	const n = 4
	send := func(round string) {
		for i := range n {
			mail, _ := newSubmission(t, fmt.Sprintf("Convention %s-%d", round, i))
			sendMail(t, rig.SMTPAddr(), "bob@example.com", "parapheur@org.example", mail)
		}
	}
	send("a")
	waitCount(t, rig, "bob", "Enregistré", n)
	processed := fmt.Sprintf(`parapheur_imap_messages_total{outcome="processed"} %d`, n)
	poller, other := a, b
	if !strings.Contains(get(t, "http://"+a.listen+"/metrics"), processed) {
		poller, other = b, a
	}
	if !strings.Contains(get(t, "http://"+poller.listen+"/metrics"), processed) {
		t.Fatal("neither replica counts the first submissions")
	}
	if strings.Contains(get(t, "http://"+other.listen+"/metrics"), "parapheur_imap_messages_total{") {
		t.Fatal("both replicas polled the mailbox")
	}
	poller.stop(t) // it releases the lease: the other takes over
	send("b")
	waitCount(t, rig, "bob", "Enregistré", 2*n)
	waitCount(t, rig, "alice", "À signer", 2*n)
	if !strings.Contains(get(t, "http://"+other.listen+"/metrics"), processed) {
		t.Fatal("the second replica did not take over the mailbox")
	}
	// Once every envelope's mails are recorded as delivered, the outbox
	// holds nothing more that could send one again: the mailbox count is
	// final.
	waitDelivered(t, storeURL, 2*n)
	waitCount(t, rig, "bob", "Enregistré", 2*n)
	waitCount(t, rig, "alice", "À signer", 2*n)
	other.stop(t)
}

// openStore opens the store of storeURL, as a gateway does, until t ends.
func openStore(t *testing.T, storeURL string) store.Store {
	t.Helper()
	st, err := backend.Open(context.Background(), storeURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// waitDelivered waits until the store holds want envelopes whose
// acknowledgement and invitation the audit trail records as delivered,
// and fails if any mail was delivered twice.
func waitDelivered(t *testing.T, storeURL string, want int) {
	t.Helper()
	ctx := context.Background()
	st := openStore(t, storeURL)
	eventually(t, 60*time.Second, fmt.Sprintf("%d envelopes with their mails delivered", want), func() bool {
		page, err := st.List(ctx, store.ListQuery{Limit: want + 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Envelopes) != want {
			return false
		}
		done := true
		for _, env := range page.Envelopes {
			trail, err := st.AuditTrail(ctx, env.ID)
			if err != nil {
				t.Fatal(err)
			}
			delivered := map[string]int{}
			for _, r := range trail {
				if r.Type == audit.DeliveryAttempt && r.Details["outcome"] == string(workflow.OutcomeDelivered) {
					delivered[r.Details["mail"]]++
				}
			}
			for _, mail := range []workflow.Notice{workflow.Acknowledgement, workflow.Invitation} {
				switch delivered[string(mail)] {
				case 0:
					done = false
				case 1:
				default:
					t.Fatalf("envelope %s: the %s was delivered %d times", env.ID, mail, delivered[string(mail)])
				}
			}
		}
		return done
	})
}

// imapLogin is an IMAP session of user on the rig's Dovecot, to be closed.
func imapLogin(t *testing.T, rig *testrig.Mail, user string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(rig.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(user, rig.Password()).Wait(); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

// waitCount waits until user's INBOX holds exactly want messages whose
// subject contains subject.
func waitCount(t *testing.T, rig *testrig.Mail, user, subject string, want int) {
	t.Helper()
	c := imapLogin(t, rig, user)
	defer c.Close()
	criteria := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: subject}}}
	eventually(t, 60*time.Second, fmt.Sprintf("%d messages with %q in %s's subject", want, subject, user), func() bool {
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		found, err := c.UIDSearch(criteria, nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if got := len(found.AllUIDs()); got > want {
			t.Fatalf("%s has %d messages with %q in the subject, want %d", user, got, subject, want)
		}
		return len(found.AllUIDs()) == want
	})
}
