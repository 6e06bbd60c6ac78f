package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/mail"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/signing/certificate"
	"github.com/parapheur/parapheur/signing/completion"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/signtest"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/backend"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
)

// The parties of the envelopes of TestCompletionResumes, besides the
// sender bob: each gets one final mail.
var resumeParties = []string{"bob", "signer1", "copy", "archivist"}

// resumeDocuments are the envelopes' two documents: their names in the
// submission, and the files.
var resumeDocuments = []struct{ name, path string }{
	{"convention.pdf", samplePDF},
	{"annexe.pdf", filepath.Join("..", "..", "mailin", "testdata", "doc2.pdf")},
}

// TestCompletionResumes stops the completion as SPEC §5 says it must
// survive, each case on its own gateway and store, in parallel, on one
// Postfix and Dovecot: the process killed after each completion step in
// turn (a crash point of PARAPHEUR_TEST_CRASH_AFTER) then started again,
// the store gone while a document is sealed, and the time-stamp authority
// answering 503 for a while. Each time the envelope completes with one
// seal per document and one final mail per party, counted by Message-ID
// in the real mailboxes.
//
// Most of a case's time is a wait for an item's lease: a crashed
// completion is taken up again after the completion queue's lease
// (completion.DefaultLease), a crashed final mail after the mail queue's
// (outbox.DefaultLease).
func TestCompletionResumes(t *testing.T) {
	steps := []string{completion.StepSealed, completion.StepCertificate, completion.StepCompleted, stepFinalMail}
	users := append([]string{"gw-store", "gw-tsa"}, resumeParties...)
	for _, step := range steps {
		users = append(users, "gw-"+step)
	}
	rig := startMailRig(t, users...)
	keys := initKeys(t)
	cases := map[string]func(t *testing.T){
		"store unavailable": func(t *testing.T) { storeOutage(t, rig, keys) },
		"TSA failing":       func(t *testing.T) { tsaOutage(t, rig, keys) },
	}
	for _, step := range steps {
		cases["crash after "+step] = func(t *testing.T) {
			crashAndResume(t, newResumeCase(t, rig, keys, "gw-"+step, "bolt://"+filepath.Join(t.TempDir(), "parapheur.db")), step)
		}
	}
	// The cases wait for leases and mail, not for the processor: they all
	// run at once (t.Run may be called from several goroutines), rather
	// than go test -parallel's few at a time, one per core.
	var wg sync.WaitGroup
	for name, run := range cases {
		wg.Go(func() { t.Run(name, run) })
	}
	wg.Wait()
}

// resumeCase is one envelope of TestCompletionResumes and the gateways
// that complete it, one after the other, on one store and one address.
type resumeCase struct {
	rig      *testrig.Mail
	keys     string
	gateway  string // the gateway's mailbox, and its address's local part
	storeURL string
	listen   string // every gateway of the case: the links of the mails stay valid
	title    string
	envID    string
	signer   recipient
	// signedAt is when the signer's last signature was answered: the
	// envelope's steps were all done before.
	signedAt time.Time
}

func newResumeCase(t *testing.T, rig *testrig.Mail, keys, gateway, storeURL string) *resumeCase {
	return &resumeCase{rig: rig, keys: keys, gateway: gateway, storeURL: storeURL, listen: freeAddr(t),
		title: "Convention reprise " + strings.TrimPrefix(gateway, "gw-")}
}

// env is the environment of the case's gateway, with the extra variables.
func (rc *resumeCase) env(extra ...string) []string {
	env := append(serveEnv(rc.rig, rc.storeURL, rc.keys, rc.listen),
		"PARAPHEUR_ADDRESS="+rc.gateway+"@org.example",
		"PARAPHEUR_IMAP_URL=imap://"+rc.gateway+"@"+rc.rig.IMAPAddr()+"/INBOX")
	return append(env, extra...) // the last value of a variable counts
}

// serve starts a gateway of the case with the extra variables.
func (rc *resumeCase) serve(t *testing.T, extra ...string) *server {
	t.Helper()
	return startServeWith(t, rc.env(extra...), rc.listen)
}

// ceremony is the ceremony test's view of the case's gateway srv.
func (rc *resumeCase) ceremony(srv *server) *ceremonyRig {
	return &ceremonyRig{rig: rc.rig, srv: srv, keys: rc.keys, base: "http://" + rc.listen}
}

// signEnvelope submits the case's envelope to srv: two documents, one
// signer, a copy and an archivist; the signer signs. The gateway may
// exit at a crash point right after the signature: the answer to it may
// then be lost, and the signature is checked on the next gateway
// (checkSigned).
func (rc *resumeCase) signEnvelope(t *testing.T, srv *server) {
	t.Helper()
	c := rc.ceremony(srv)
	rc.envID = rc.submit(t, "Signataire : Sophie Première <signer1@example.com>",
		"Copie : Carl Copie <copy@example.com>", "Archive : archivist@example.com")
	rc.signer = c.invited(t, "signer1", "À signer : "+rc.title)
	rc.signer.post(t, "/code", nil)
	code := codeIn(t, c.read(t, "signer1", "Votre code de confirmation – "+rc.title))
	body := strings.NewReader(fmt.Sprintf(`{"code": %q, "consent": true}`, code))
	resp, err := http.Post(rc.signer.api+"/sign", "application/json", body)
	rc.signedAt = time.Now()
	if err != nil {
		t.Logf("the answer to the signature was lost: %v", err)
		return
	}
	st := decodeState(t, resp)
	if st.Recipient.State != "signed" {
		t.Fatalf("the signer is %s after signing", st.Recipient.State)
	}
}

// submit mails the case's two documents from bob to the gateway, with
// the instruction lines, and returns the envelope's ID.
func (rc *resumeCase) submit(t *testing.T, lines ...string) string {
	t.Helper()
	id := fmt.Sprintf("<resume-%s-%d@example.com>", rc.gateway, time.Now().UnixNano())
	var msg strings.Builder
	fmt.Fprintf(&msg, "From: Bob Agent <bob@example.com>\r\nTo: %s@org.example\r\nSubject: %s\r\nMessage-ID: %s\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n",
		rc.gateway, rc.title, id, strings.Join(lines, "\r\n"))
	for _, d := range resumeDocuments {
		pdf, err := os.ReadFile(d.path)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&msg, "--b\r\nContent-Type: application/pdf; name=%s\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n",
			d.name, base64.StdEncoding.EncodeToString(pdf))
	}
	msg.WriteString("--b--\r\n")
	sendMail(t, rc.rig.SMTPAddr(), "bob@example.com", rc.gateway+"@org.example", msg.String())
	return engine.EnvelopeID(strings.ToLower(id))
}

// crashAndResume runs the case's envelope on a gateway that exits at the
// crash point step, then completes it on a gateway started again.
func crashAndResume(t *testing.T, rc *resumeCase, step string) {
	crashing := rc.serve(t, crashAfterVariable+"="+step)
	rc.signEnvelope(t, crashing)
	crashing.waitCrash(t, step)
	resumed := rc.serve(t)
	rc.checkSigned(t)
	finals := rc.waitCompleted(t, resumed)
	if step == stepFinalMail {
		// The crash came after the relay accepted a final mail and before
		// its item was settled: that item was sent again, as the same
		// message.
		copies := 0
		for _, f := range finals {
			copies += f.copies
		}
		if copies <= len(finals) {
			t.Errorf("%d copies of the %d final mails after a crash between a final mail's delivery and its acknowledgement: no final mail was sent again", copies, len(finals))
		}
	}
	resumed.stop(t)
	rc.checkTrail(t, finals, "B-B")
}

// waitCrash waits until the gateway exited at the crash point step.
func (s *server) waitCrash(t *testing.T, step string) {
	t.Helper()
	select {
	case err := <-s.exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != exitTestCrash {
			t.Fatalf("the gateway exited with %v; want the status %d of the crash point %s", err, exitTestCrash, step)
		}
	case <-time.After(mailWait):
		t.Fatalf("the gateway did not exit at the crash point %s within %v", step, mailWait)
	}
	if want := fmt.Sprintf("exiting after the step %q", step); !strings.Contains(s.logs.String(), want) {
		t.Fatalf("the gateway's logs do not say %q", want)
	}
}

// checkSigned checks on the running gateway that the signer's signature
// counts, whether or not its answer came back.
func (rc *resumeCase) checkSigned(t *testing.T) {
	t.Helper()
	if st := rc.signer.state(t); st.Recipient.State != "signed" {
		t.Fatalf("after the crash, the signer is %s", st.Recipient.State)
	}
}

// partyFinal is what a party's mailbox holds of the final mail.
type partyFinal struct {
	copies int               // the messages with its Message-ID
	files  map[string][]byte // its attachments by file name
}

// waitCompleted waits until the envelope is completed, its completion
// done, every final mail sent and settled, and returns each party's final
// mail. A party with no final mail, or with two different ones (two
// Message-IDs), fails the test.
func (rc *resumeCase) waitCompleted(t *testing.T, srv *server) map[string]partyFinal {
	t.Helper()
	// The metrics are polled, not the signer's link, which has a rate
	// limit. The completion item is acknowledged after the final mails
	// were queued: once it is gone, the mail queue holds them or sent them.
	metrics := "http://" + srv.listen + "/metrics"
	eventually(t, 2*mailWait, "the completion done", func() bool {
		return outboxEmpty(get(t, metrics), engine.CompletionQueue)
	})
	if st := rc.signer.state(t); st.Envelope.State != "completed" {
		t.Fatalf("the completion is done, and the envelope is %s", st.Envelope.State)
	}
	eventually(t, 2*mailWait, "the final mails sent", func() bool {
		return outboxEmpty(get(t, metrics), engine.MailQueue)
	})
	// Postfix accepted every copy sent: once it delivered them, the
	// mailboxes hold all there will be.
	if err := rc.rig.WaitDelivered(mailWait); err != nil {
		t.Fatal(err)
	}
	finals := map[string]partyFinal{}
	for _, party := range resumeParties {
		ids := map[string]int{}
		var first []byte
		for _, raw := range rc.fetch(t, party, "Terminé : "+rc.title) {
			if len(ids) == 0 {
				first = raw
			}
			ids[headerOf(t, raw, "Message-ID")]++
		}
		if len(ids) != 1 {
			t.Errorf("%s has %d final mails (Message-IDs %v), want one", party, len(ids), ids)
		}
		for id, n := range ids {
			t.Logf("%s: final mail %s, %d cop(ies) in the mailbox", party, id, n)
			finals[party] = partyFinal{copies: n, files: attachments(t, first)}
		}
	}
	return finals
}

// fetch returns every message of the case's envelope in user's INBOX
// whose subject contains subject.
func (rc *resumeCase) fetch(t *testing.T, user, subject string) [][]byte {
	t.Helper()
	return imapMessages(t, rc.rig, user, &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{
		{Key: "X-Parapheur-Envelope", Value: rc.envID}, {Key: "Subject", Value: subject}}})
}

// imapMessages returns the messages of user's INBOX that match criteria
// (all of them with empty criteria), through IMAP.
func imapMessages(t *testing.T, rig *testrig.Mail, user string, criteria *imap.SearchCriteria) [][]byte {
	t.Helper()
	c := imapLogin(t, rig, user)
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	found, err := c.UIDSearch(criteria, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	return fetchBodies(t, c, found.AllUIDs())
}

// headerOf returns the header field of the raw message.
func headerOf(t *testing.T, raw []byte, field string) string {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return r.Header.Get(field)
}

// attachments returns the attached files of the raw message by name.
func attachments(t *testing.T, raw []byte) map[string][]byte {
	t.Helper()
	return parseMail(t, "a party", raw).files
}

// checkTrail checks the finished envelope in its store against the final
// mails: one seal (at level) per document, one completion, and every
// party's mail carrying the same final documents and certificate, those
// the envelope names.
func (rc *resumeCase) checkTrail(t *testing.T, finals map[string]partyFinal, level string) {
	t.Helper()
	ctx := context.Background()
	st, err := backend.Open(ctx, rc.storeURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	env, err := (&engine.Engine{Store: st}).Envelope(ctx, rc.envID)
	if err != nil {
		t.Fatal(err)
	}
	trail, err := st.AuditTrail(ctx, rc.envID)
	if err != nil {
		t.Fatal(err)
	}
	seals := map[string]int{}
	completed := 0
	for _, r := range trail {
		switch r.Type {
		case audit.Sealed:
			seals[r.Details["document"]]++
			if r.Details["level"] != level {
				t.Errorf("document %s sealed at level %s, want %s", r.Details["document"], r.Details["level"], level)
			}
		case audit.Completed:
			completed++
		}
	}
	if env.State != workflow.StateCompleted || completed != 1 {
		t.Errorf("the envelope is %s with %d completed records, want completed once", env.State, completed)
	}
	want := map[string]string{} // SHA-256 by file name
	for i, d := range env.Documents {
		if n := seals[strconv.Itoa(i)]; n != 1 || !d.Sealed {
			t.Errorf("document %d (%s) has %d sealed records (sealed: %v), want one", i+1, d.Name, n, d.Sealed)
		}
		want[d.Name] = d.Current
	}
	if len(env.Documents) != len(resumeDocuments) {
		t.Fatalf("the envelope has %d documents, want %d", len(env.Documents), len(resumeDocuments))
	}
	certName, err := certificate.FileName(env.ID, env.Language)
	if err != nil {
		t.Fatal(err)
	}
	want[certName] = env.Certificate
	for party, f := range finals {
		for name, sum := range want {
			got := sha256.Sum256(f.files[name])
			if f.files[name] == nil || hex.EncodeToString(got[:]) != sum {
				t.Errorf("%s's final mail carries %s with SHA-256 %x (%d bytes), want the final version %s", party, name, got, len(f.files[name]), sum)
			}
		}
	}
}

// storeOutage stops the Redis store while the gateway seals a document
// (as it fetches the seal's time-stamp), and starts it again on the same
// port and data: the completion resumes.
func storeOutage(t *testing.T, rig *testrig.Mail, keys string) {
	redis := testrig.Redis(t)
	tsa := startTSAGate(t, keys)
	rc := newResumeCase(t, rig, keys, "gw-store", redis.URL())
	// The first document is sealed by a gateway that then exits: the one
	// started next seals the second, with no other time-stamp to fetch
	// before, which is when the store goes away.
	crashing := rc.serve(t, tsa.env(), crashAfterVariable+"="+completion.StepSealed)
	rc.signEnvelope(t, crashing)
	crashing.waitCrash(t, completion.StepSealed)
	stopped := make(chan error, 1)
	stop := func() { stopped <- redis.Stop() }
	tsa.before.Store(&stop)
	resumed := rc.serve(t, tsa.env())
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * mailWait):
		t.Fatalf("the second document was not sealed within %v", 2*mailWait)
	}
	eventually(t, mailWait, "the completion failed without its store", func() bool {
		return strings.Contains(resumed.logs.String(), `"msg":"completion failed; retrying"`)
	})
	if err := redis.Restart(); err != nil {
		t.Fatal(err)
	}
	finals := rc.waitCompleted(t, resumed)
	resumed.stop(t)
	rc.checkTrail(t, finals, "B-LTA")
}

// tsaOutage makes the time-stamp authority answer 503 while the gateway
// seals a document: the envelope is listed as stuck with the error, the
// metrics show its completion pending, and it completes at B-LTA once the
// authority answers again.
func tsaOutage(t *testing.T, rig *testrig.Mail, keys string) {
	// A Redis store, which "envelope list" reads while the gateway runs.
	rc := newResumeCase(t, rig, keys, "gw-tsa", testrig.Redis(t).URL())
	tsa := startTSAGate(t, keys)
	// The signer's signature needs a time-stamp too: the authority fails
	// once the first document is sealed and its gateway exited.
	crashing := rc.serve(t, tsa.env(), crashAfterVariable+"="+completion.StepSealed)
	rc.signEnvelope(t, crashing)
	crashing.waitCrash(t, completion.StepSealed)
	tsa.failing.Store(true)
	resumed := rc.serve(t, tsa.env())

	listEnv := []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_STORE_URL=" + rc.storeURL}
	// ID, steps done (day, time, zone), for, attempts, then the last error after its time.
	row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(rc.envID) + ` +\S+ \S+ \S+ +\S+ +([1-9]\d*) +\S+ \S+ \S+: .*answered 503 Service Unavailable.*$`)
	var listed string
	eventually(t, 2*mailWait, "the envelope listed as stuck with the time-stamp authority's answer", func() bool {
		r := parapheur(t, listEnv, "envelope", "list", "--stuck", "--stuck-after", "1s")
		if r.code != exitOK {
			t.Fatalf("envelope list --stuck: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		listed = row.FindString(r.stdout)
		return listed != ""
	})
	t.Logf("envelope list --stuck: %s", listed)
	// The envelope has waited at least since its signature was answered.
	waited := time.Since(rc.signedAt).Seconds()
	metrics := get(t, "http://"+resumed.listen+"/metrics")
	for name, atLeast := range map[string]float64{
		`parapheur_completion_retrying_envelopes`:                         1,
		`parapheur_completion_oldest_retrying_age_seconds`:                waited,
		`parapheur_outbox_oldest_pending_age_seconds{queue="completion"}`: waited,
		`parapheur_completions_total{outcome="retried"}`:                  1,
	} {
		if v := metricValue(t, metrics, name); v < atLeast {
			t.Errorf("%s is %v while the completion is retried %.1f s after the signature; want at least %v", name, v, waited, atLeast)
		}
	}
	if v := metricValue(t, metrics, `parapheur_completions_total{outcome="completed"}`); v != 0 {
		t.Errorf("parapheur_completions_total{outcome=\"completed\"} is %v before the time-stamp authority answers", v)
	}

	tsa.failing.Store(false)
	finals := rc.waitCompleted(t, resumed)
	metrics = get(t, "http://"+resumed.listen+"/metrics")
	for name, want := range map[string]float64{
		`parapheur_completion_retrying_envelopes`:                         0,
		`parapheur_completions_total{outcome="completed"}`:                1,
		`parapheur_outbox_oldest_pending_age_seconds{queue="completion"}`: 0,
	} {
		if v := metricValue(t, metrics, name); v != want {
			t.Errorf("%s is %v once the envelope is completed, want %v", name, v, want)
		}
	}
	resumed.stop(t)
	rc.checkTrail(t, finals, "B-LTA")
	// B-LTA: each final document ends with a document time-stamp.
	for _, d := range resumeDocuments {
		if pdf := finals["archivist"].files[d.name]; !bytes.Contains(pdf, []byte("/DocTimeStamp")) {
			t.Errorf("the final %s carries no document time-stamp", d.name)
		}
	}
	if tsa.refused.Load() == 0 {
		t.Error("the time-stamp authority refused no request: the outage proved nothing")
	}
}

// tsaGate stands between the gateway and an RFC 3161 time-stamp authority
// whose certificate the gateway's signing CA issued.
type tsaGate struct {
	url string
	// failing makes the gate answer 503 Service Unavailable.
	failing atomic.Bool
	// refused counts the requests answered 503.
	refused atomic.Int64
	// before, when set, runs once before a request is passed on.
	before atomic.Pointer[func()]
}

func startTSAGate(t *testing.T, keys string) *tsaGate {
	t.Helper()
	ca, err := pki.LoadCA(keys, "test")
	if err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(signtest.StartTSA(t, ca).URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	g := &tsaGate{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.failing.Load() {
			g.refused.Add(1)
			http.Error(w, "time-stamping is down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if before := g.before.Swap(nil); before != nil {
			(*before)()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

// env is the variable that sets tsa.url to the gate.
func (g *tsaGate) env() string { return "PARAPHEUR_TSA_URL=" + g.url }

// metricValue returns the value of the sample name (with its labels) in
// the Prometheus text metrics.
func metricValue(t *testing.T, metrics, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no %s in the metrics:\n%s", name, metrics)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}
