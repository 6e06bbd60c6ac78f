package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/signtest"
	"github.com/parapheur/parapheur/signing/verify"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/backend"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
)

var (
	faultsLong = flag.Bool("faults.long", false, "TestFaults: the long run, 2000 envelopes and at least 200 kills of the gateway (about half an hour: give go test -timeout 60m)")
	faultsSeed = flag.Uint64("faults.seed", 0, "TestFaults: the seed of the kills' moments and of the envelopes' shapes; 0 takes one from the clock (the test logs it)")
)

// faultSigners are the signers' mailboxes of TestFaults; each envelope
// draws one or two of them.
var faultSigners = []string{"signer1", "signer2", "signer3", "signer4", "signer5", "signer6", "signer7", "signer8"}

// faultRejected is the copy of one envelope of TestFaults whose address
// Postfix refuses with 550 at RCPT (the rig's reject@ rule).
const faultRejected = "reject@example.com"

// TestFaults runs envelopes from the sender's mail to every party's final
// mail through the built gateway on Redis, Postfix and Dovecot, while the
// gateway is killed with SIGKILL at random moments (seeded: the seed is
// logged, and -faults.seed replays it) and started again each time, Redis
// and Dovecot are restarted, Postfix answers the gateway 451 for a while,
// and one copy's address is refused for good with 550. Signers act over
// the JSON API with the codes their mailboxes receive, retrying while the
// gateway is down, as a program would.
//
// Then: every submission made one envelope and one only, every envelope
// completed once with one seal per document, each final PDF carries each
// signer's signature once and the seal, every party got exactly one final
// mail (one Message-ID in their real mailbox; a mail sent again after a
// kill keeps its Message-ID), the acknowledgements and invitations were
// not duplicated either, and the sender of the envelope with the refused
// copy was told.
//
// The default run has 200 envelopes and at least 20 kills; -faults.long
// has 2000 and 200.
func TestFaults(t *testing.T) {
	plan := faultPlan{envelopes: 200, kills: 20}
	if *faultsLong {
		plan = faultPlan{envelopes: 2000, kills: 200}
	}
	seed := *faultsSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -faults.seed=%d): %d envelopes, at least %d kills", seed, seed, plan.envelopes, plan.kills)
	rnd := rand.New(rand.NewPCG(seed, 0))
	start := time.Now()

	f := startFaultRun(t, plan, rnd)
	ctx, cancel := context.WithTimeout(context.Background(), plan.timeout())
	defer cancel()
	watching, stopWatching := context.WithCancel(context.Background())
	defer stopWatching()
	f.boxes.watch(watching)

	var submitted, acted sync.WaitGroup
	paceSeed := rnd.Uint64() // drawn here: rnd is the chaos's, in this goroutine
	submitted.Go(func() { f.submitAll(ctx, paceSeed) })
	for _, e := range f.envelopes {
		acted.Go(func() { f.act(ctx, e) })
	}
	f.chaos(t, rnd)
	submitted.Wait()
	acted.Wait()
	if f.failed(t) {
		f.explain(t)
		return
	}
	t.Logf("every signer acted after %v and %d kills; %d requests met a gateway killed and were sent again",
		time.Since(start).Round(time.Second), f.kills, f.unanswered.Load())
	if f.unanswered.Load() == 0 {
		t.Error("no signer's request met a killed gateway: the kills proved nothing for the signers")
	}

	settling := time.Now()
	f.waitSettled(t)
	t.Logf("every final mail arrived %v after the last signature", time.Since(settling).Round(time.Second))
	f.check(t)
	f.srv.stop(t)
	t.Logf("the fault run took %v", time.Since(start).Round(time.Second))
}

// faultPlan sizes a fault run.
type faultPlan struct {
	envelopes int
	kills     int // at least
}

// timeout bounds the run from the first submission to the last
// signature: the kills (at most 5 s apart, plus the restart), the
// submissions, and a margin, generous since a mail deferred by the 451
// window waits a minute (the outbox's first backoff) and an item a killed
// gateway held waits for its lease. The final mails are waited for as
// long as they keep coming (see waitSettled).
func (p faultPlan) timeout() time.Duration {
	return 5*time.Minute + time.Duration(p.kills)*8*time.Second + time.Duration(p.envelopes)*200*time.Millisecond
}

// Waiting for the final mails: the run fails once no new mail reached a
// party's mailbox for settleStall (longer than a mail waits after a 451,
// the outbox's first backoff, or after its holder was killed, its lease,
// each a minute), or after settleLimit in all, so that a slow machine
// gets the time its speed needs, and a stuck mail fails the run soon.
const (
	settleStall = 3 * time.Minute
	settleLimit = 8 * time.Minute
)

// faultEnvelope is one envelope of the run, as submitted.
type faultEnvelope struct {
	index     int
	title     string
	messageID string
	id        string
	steps     [][]string // each step's signers' mailboxes, in order
	copy      bool       // copy@example.com is a copy
	rejected  bool       // faultRejected is a copy
}

// signers are the envelope's signers' mailboxes.
func (e *faultEnvelope) signers() []string { return slices.Concat(e.steps...) }

// bounceTold are the mailboxes told that the refused copy's final mail
// could not be delivered: the sender and those who acted, every signer
// (SPEC §5).
func (e *faultEnvelope) bounceTold() []string {
	return append([]string{"bob"}, e.signers()...)
}

// parties are the mailboxes that must get the final mail.
func (e *faultEnvelope) parties() []string {
	parties := append([]string{"bob"}, e.signers()...)
	if e.copy {
		parties = append(parties, "copy")
	}
	return parties
}

// signerName is the name the submission gives the signer whose mailbox is
// user: each signature's one-time certificate carries it.
func signerName(user string) string { return "Signataire " + strings.TrimPrefix(user, "signer") }

// submission is the envelope's mail from bob, with one PDF.
func (e *faultEnvelope) submission(pdf []byte) string {
	var lines []string
	for _, step := range e.steps {
		var addrs []string
		for _, u := range step {
			addrs = append(addrs, fmt.Sprintf("%s <%s@example.com>", signerName(u), u))
		}
		lines = append(lines, "Signataire : "+strings.Join(addrs, ", "))
	}
	if e.copy {
		lines = append(lines, "Copie : Carl Copie <copy@example.com>")
	}
	if e.rejected {
		lines = append(lines, "Copie : "+faultRejected)
	}
	return fmt.Sprintf("From: Bob Agent <bob@example.com>\r\nTo: parapheur@org.example\r\nSubject: %s\r\n"+
		"Message-ID: %s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n"+
		"--b\r\nContent-Type: application/pdf; name=convention.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n--b--\r\n",
		e.title, e.messageID, strings.Join(lines, "\r\n"), base64.StdEncoding.EncodeToString(pdf))
}

// faultRun is the state of TestFaults: the servers, the gateway running
// now, the envelopes and what went wrong in the goroutines.
type faultRun struct {
	plan      faultPlan
	rig       *testrig.Mail
	redis     *testrig.RedisServer
	keys      string
	listen    string
	base      string // the public URL
	env       []string
	srv       *server // the gateway running; only chaos changes it
	kills     int
	boxes     *faultMailboxes
	envelopes []*faultEnvelope
	pdf       []byte
	http      *http.Client
	// unanswered counts the signers' requests the gateway did not answer
	// (killed before or while it answered), which were sent again.
	unanswered atomic.Int64
	// asking counts the signers' requests under way, for chaos to kill
	// the gateway while some are.
	asking atomic.Int64

	mu   sync.Mutex
	errs []error
}

func startFaultRun(t *testing.T, plan faultPlan, rnd *rand.Rand) *faultRun {
	t.Helper()
	users := append([]string{"bob", "copy"}, faultSigners...)
	rig := startMailRig(t, append(users, "parapheur")...)
	f := &faultRun{plan: plan, rig: rig, redis: testrig.Redis(t), keys: initKeys(t), listen: freeAddr(t),
		boxes: newFaultMailboxes(rig, users), http: &http.Client{Timeout: 30 * time.Second}}
	f.base = "http://" + f.listen
	// The signers come through a load balancer on loopback that names
	// them in X-Forwarded-For: each has the rate limits of a person.
	f.env = append(serveEnv(rig, f.redis.URL(), f.keys, f.listen), "PARAPHEUR_HTTP_TRUSTED_PROXIES=127.0.0.1")
	var err error
	if f.pdf, err = os.ReadFile(samplePDF); err != nil {
		t.Fatal(err)
	}
	rejected := rnd.IntN(plan.envelopes)
	for i := range plan.envelopes {
		e := &faultEnvelope{index: i, title: fmt.Sprintf("Convention panne %04d", i),
			messageID: fmt.Sprintf("<faults-%d-%04d@example.com>", time.Now().UnixNano(), i),
			copy:      rnd.IntN(3) == 0, rejected: i == rejected}
		e.id = engine.EnvelopeID(strings.ToLower(e.messageID))
		signers := slices.Clone(faultSigners)
		rnd.Shuffle(len(signers), func(a, b int) { signers[a], signers[b] = signers[b], signers[a] })
		switch rnd.IntN(3) {
		case 0: // one signer
			e.steps = [][]string{signers[:1]}
		case 1: // two in parallel
			e.steps = [][]string{signers[:2]}
		default: // two one after the other
			e.steps = [][]string{signers[:1], signers[1:2]}
		}
		f.envelopes = append(f.envelopes, e)
	}
	f.srv = startServeWith(t, f.env, f.listen)
	return f
}

// fail records a goroutine's failure: they may not stop the test.
func (f *faultRun) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, err)
}

// explain logs, after a failed run, where each envelope that did not
// complete stands: its recipients and its last audit records in the
// store, or, when there is no envelope, the folder of the gateway's
// mailbox its submission is in.
func (f *faultRun) explain(t *testing.T) {
	f.explainEnvelopes(t, f.envelopes, false)
}

// explainEnvelopes logs where each of envelopes stands, as explain does;
// with all it logs the completed ones too, with their every delivery
// record (the attempts of each mail and the server's answers) besides the
// last records: what tells why a party's mail did not arrive.
func (f *faultRun) explainEnvelopes(t *testing.T, envelopes []*faultEnvelope, all bool) {
	ctx := context.Background()
	st, err := backend.Open(ctx, f.redis.URL(), store.Options{})
	if err != nil {
		t.Logf("explain: the store: %v", err)
		return
	}
	defer st.Close()
	for _, e := range envelopes {
		env, err := st.Get(ctx, e.id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			t.Logf("%s (%s): no envelope; its submission %s is in the gateway's %s", e.title, e.id, e.messageID, f.folderOf(t, e.messageID))
			continue
		case err != nil:
			t.Logf("%s (%s): %v", e.title, e.id, err)
			continue
		case env.State == workflow.StateCompleted && !all:
			continue
		}
		var who []string
		for _, r := range env.Recipients {
			who = append(who, fmt.Sprintf("%s %s %s sent %s failure %q", r.ID, r.Email, r.State, r.SentAt.Format(time.TimeOnly), r.DeliveryFailure))
		}
		t.Logf("%s (%s): %s, step %d; %s", e.title, e.id, env.State, env.CurrentStep+1, strings.Join(who, "; "))
		trail, err := st.AuditTrail(ctx, e.id)
		if err != nil {
			t.Logf("  its audit trail: %v", err)
			continue
		}
		last := max(0, len(trail)-12)
		for i, rec := range trail {
			delivery := rec.Type == audit.DeliveryStart || rec.Type == audit.DeliveryAttempt || rec.Type == audit.Bounced
			if i >= last || all && delivery {
				t.Logf("  %3d %s %s %s %v", rec.Seq, rec.Time.Format(time.TimeOnly), rec.Type, rec.RecipientID, rec.Details)
			}
		}
	}
}

// folderOf names the folder of the gateway's mailbox that holds the mail
// of Message-ID id.
func (f *faultRun) folderOf(t *testing.T, id string) string {
	c := imapLogin(t, f.rig, "parapheur")
	defer c.Close()
	for _, folder := range []string{"INBOX", "Processed", "Quarantine"} {
		if _, err := c.Select(folder, nil).Wait(); err != nil {
			continue
		}
		found, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: id}}}, nil).Wait()
		if err == nil && len(found.AllUIDs()) > 0 {
			return fmt.Sprintf("%s (%d)", folder, len(found.AllUIDs()))
		}
	}
	return "none of INBOX, Processed, Quarantine"
}

// failed reports the goroutines' failures to t, the first 20 of them.
func (f *faultRun) failed(t *testing.T) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, err := range f.errs {
		if i == 20 {
			t.Errorf("… and %d more", len(f.errs)-i)
			break
		}
		t.Error(err)
	}
	return len(f.errs) > 0
}

// submitAll mails the envelopes to the gateway through Postfix, at a
// random pace over the first part of the run, so that submissions arrive
// around the kills.
func (f *faultRun) submitAll(ctx context.Context, seed uint64) {
	rnd := rand.New(rand.NewPCG(seed, 1))
	for _, e := range f.envelopes {
		select {
		case <-ctx.Done():
			f.fail(fmt.Errorf("submitting %s: %w", e.title, ctx.Err()))
			return
		case <-time.After(time.Duration(rnd.IntN(300)) * time.Millisecond):
		}
		if err := faultSend(f.rig.SMTPAddr(), "bob@example.com", "parapheur@org.example", e.submission(f.pdf)); err != nil {
			f.fail(fmt.Errorf("submitting %s: %w", e.title, err))
			return
		}
	}
}

// faultSend sends msg through the SMTP server at addr.
func faultSend(addr, from, to, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// chaos kills the gateway with SIGKILL at random moments, plan.kills
// times, and starts it again at once each time. Every 20 kills it also
// has Postfix answer the gateway's mail 451 from the second kill until
// the audit records a mail so deferred, two kills at least and eight at
// most (changed while the gateway is down, so that no SMTP session of the
// gateway's began under the other rules: on a loaded machine, a gateway
// killed soon after it started may have sent nothing in two kills),
// restarts Redis and restarts Dovecot (while the gateway runs).
func (f *faultRun) chaos(t *testing.T, rnd *rand.Rand) {
	t.Helper()
	type event struct {
		what string
		do   func() error
	}
	st := openStore(t, f.redis.URL())
	deferring := false
	whileDown := map[int]event{
		2: {"Postfix defers the gateway's mail with 451", func() error {
			deferring = true
			return f.rig.DeferSender("parapheur@org.example")
		}},
	}
	whileUp := map[int]event{
		8:  {"Redis restarted", f.redis.Restart},
		12: {"Dovecot restarted", f.rig.RestartDovecot},
	}
	run := func(events map[int]event) {
		if ev, ok := events[f.kills%20]; ok {
			t.Logf("kill %d: %s", f.kills, ev.what)
			if err := ev.do(); err != nil {
				t.Fatalf("%s: %v", ev.what, err)
			}
		}
	}
	endDeferral := func() {
		if !deferring || f.kills%20 < 4 {
			return
		}
		n := f.deferrals(t, st)
		if n == 0 && f.kills%20 < 10 {
			return
		}
		deferring = false
		t.Logf("kill %d: Postfix accepts the gateway's mail again (%d attempts deferred so far)", f.kills, n)
		if err := f.rig.AcceptSenders(); err != nil {
			t.Fatalf("Postfix accepts the gateway's mail again: %v", err)
		}
	}
	for f.kills < f.plan.kills {
		// Between 1 and 5 s after the gateway is ready: mostly shorter than
		// the poller's lease (6 s) that the gateway killed before left, and
		// sometimes long enough to read the mailbox, or to be killed doing
		// it.
		<-time.After(time.Duration(1000+rnd.IntN(4000)) * time.Millisecond)
		// Every other kill waits, a few seconds at most, for a signer's
		// request under way: the signers wait on mail most of the time,
		// and the run must show their requests cut off and sent again.
		for wait := time.Now().Add(3 * time.Second); f.kills%2 == 1 && f.asking.Load() == 0 && time.Now().Before(wait); {
			time.Sleep(2 * time.Millisecond)
		}
		if err := f.srv.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-f.srv.exited
		f.kills++
		run(whileDown)
		endDeferral()
		f.srv = startServeWith(t, f.env, f.listen)
		run(whileUp)
	}
}

// act has the envelope's signers act, step after step, the signers of a
// step at once.
func (f *faultRun) act(ctx context.Context, e *faultEnvelope) {
	for _, step := range e.steps {
		var wg sync.WaitGroup
		for _, user := range step {
			wg.Go(func() {
				if err := f.sign(ctx, e, user); err != nil {
					f.fail(fmt.Errorf("%s, signer %s: %w", e.title, user, err))
				}
			})
		}
		wg.Wait()
	}
}

// sign has user sign e over the JSON API: reads the invitation, asks for
// a code, reads it and signs with it. A request the gateway did not
// answer (killed, or not started yet) is sent again; a code that turns
// out to be stale (the request that made a newer one got no answer) is
// followed by the next code mail; a code no longer outstanding makes the
// signer ask for a new one.
func (f *faultRun) sign(ctx context.Context, e *faultEnvelope, user string) error {
	inv, err := f.boxes.wait(ctx, user, func(m faultMail) bool {
		return m.envelope == e.id && strings.HasPrefix(m.subject, "À signer : ")
	})
	if err != nil {
		return fmt.Errorf("the invitation: %w", err)
	}
	link := regexp.MustCompile(regexp.QuoteMeta(f.base+"/s/") + `([A-Za-z0-9_-]+)`).FindStringSubmatch(inv.text)
	if link == nil {
		return fmt.Errorf("no signing link in the invitation:\n%s", inv.text)
	}
	c := faultClient{run: f, api: f.base + "/api/v1/sign/" + link[1],
		ip: fmt.Sprintf("10.%d.%d.%d", e.index/256, e.index%256, slices.Index(faultSigners, user)+1)}
	tried := map[string]bool{}
	for range workflow.MaxCodesPerHour {
		if _, err := c.call(ctx, http.MethodPost, "/code", nil); err != nil {
			return fmt.Errorf("asking for a code: %w", err)
		}
		signed, err := c.signWithNewCodes(ctx, e, user, tried)
		if signed || err != nil {
			return err
		}
	}
	return fmt.Errorf("no signature with %d codes", workflow.MaxCodesPerHour)
}

// signWithNewCodes signs with each code mail of the envelope not tried
// yet, as it arrives, until one is right (signed), or none is outstanding
// any more (not signed: ask for another).
func (c faultClient) signWithNewCodes(ctx context.Context, e *faultEnvelope, user string, tried map[string]bool) (signed bool, err error) {
	for {
		m, err := c.run.boxes.wait(ctx, user, func(m faultMail) bool {
			return m.envelope == e.id && m.code != "" && !tried[m.code]
		})
		if err != nil {
			return false, fmt.Errorf("the code: %w", err)
		}
		tried[m.code] = true
		st, err := c.call(ctx, http.MethodPost, "/sign", map[string]any{"code": m.code, "consent": true})
		var refusal *faultRefusal
		switch {
		case err == nil:
			if st.Recipient.State != "signed" {
				return false, fmt.Errorf("the signature answered with the signer %s", st.Recipient.State)
			}
			return true, nil
		case !errors.As(err, &refusal):
			return false, fmt.Errorf("signing: %w", err)
		case refusal.Code == workflow.ErrWrongCode.Code:
			// An older code, whose mail came after: the newer one follows.
		case refusal.Code == workflow.ErrAlreadyActed.Code || refusal.Code == workflow.ErrCompleting.Code:
			// A signature whose answer was lost, sent again.
			st, gerr := c.call(ctx, http.MethodGet, "", nil)
			if gerr != nil || st.Recipient.State != "signed" {
				return false, fmt.Errorf("signing: %w, and then the signer is %q (%v)", err, st.Recipient.State, gerr)
			}
			return true, nil
		case refusal.Code == workflow.ErrNoCode.Code || refusal.Code == workflow.ErrCodeExpired.Code:
			return false, nil
		default:
			return false, fmt.Errorf("signing: %w", err)
		}
	}
}

// faultClient is a signer's client of the JSON API.
type faultClient struct {
	run *faultRun
	api string // the link's API URL
	ip  string // the signer's address, as the load balancer tells it
}

// faultRefusal is the API's JSON error.
type faultRefusal struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (r *faultRefusal) Error() string { return fmt.Sprintf("%d %s: %s", r.Status, r.Code, r.Message) }

// call sends the request to the link's API path and returns the state
// answered, or the API's refusal. What is sent again: a request that got
// no answer (the gateway killed before or while it answered), an internal
// error or 503 (its store restarting), 429 (rate limits) and "busy" (the
// envelope's signing lease, which a killed gateway holds until it ends).
func (c faultClient) call(ctx context.Context, method, path string, body any) (apiState, error) {
	var st apiState
	for {
		var payload io.Reader
		if method != http.MethodGet {
			b, err := json.Marshal(body)
			if err != nil {
				return st, err
			}
			payload = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, c.api+path, payload)
		if err != nil {
			return st, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", c.ip)
		c.run.asking.Add(1)
		resp, err := c.run.http.Do(req)
		c.run.asking.Add(-1)
		if err != nil {
			c.run.unanswered.Add(1)
		} else {
			answer, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case rerr != nil:
				err = rerr
			case resp.StatusCode == http.StatusOK:
				return st, json.Unmarshal(answer, &st)
			default:
				var refusal struct{ Error faultRefusal }
				if jerr := json.Unmarshal(answer, &refusal); jerr != nil {
					return st, fmt.Errorf("%s %s: %s, %v:\n%s", method, path, resp.Status, jerr, answer)
				}
				refusal.Error.Status = resp.StatusCode
				r := &refusal.Error
				retry := resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests && r.Code == "rate_limited" || r.Code == "busy"
				if !retry {
					return st, r
				}
				err = r
			}
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("%s %s: %w; last: %v", method, path, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitSettled waits until every party's mailbox holds the final mail of
// each of its envelopes, and bob's the acknowledgement of each (and the
// notice of the refused copy), then until Postfix delivered all it
// accepted: the mailboxes then hold all there will be (the invitations
// came before their signers acted).
func (f *faultRun) waitSettled(t *testing.T) {
	t.Helper()
	ctx, cancel := f.boxes.whileArriving(settleStall, settleLimit)
	defer cancel()
	var missing []*faultEnvelope
	lackingUsers := map[string]bool{}
	for _, e := range f.envelopes {
		type mailOf struct{ user, prefix string }
		// The acknowledgement too: a gateway killed while sending it held
		// it for its lease (a minute), and it may come after the final mails.
		want := []mailOf{{"bob", "Enregistré : "}}
		for _, p := range e.parties() {
			want = append(want, mailOf{p, "Terminé : "})
		}
		if e.rejected {
			for _, u := range e.bounceTold() {
				want = append(want, mailOf{u, "Non distribué à " + faultRejected})
			}
		}
		lacking := false
		for _, w := range want {
			user, prefix := w.user, w.prefix
			if _, err := f.boxes.wait(ctx, user, func(m faultMail) bool {
				return m.envelope == e.id && strings.HasPrefix(m.subject, prefix)
			}); err != nil {
				// Once ctx ended, wait answers at once: the other
				// mails lacking are listed too, before the failure.
				t.Errorf("%s (%s): %s has no mail %q…: %v; it has %s", e.title, e.id, user, prefix, context.Cause(ctx), f.boxes.subjects(user, e.id))
				lacking = true
				lackingUsers[user] = true
			}
		}
		if lacking {
			missing = append(missing, e)
		}
	}
	if len(missing) > 0 {
		f.explainEnvelopes(t, missing[:min(len(missing), 5)], true)
		f.logMailServers(t, lackingUsers)
		// A mail attempt stuck mid-transaction, or its settlement.
		f.srv.logStacks(t, "sender.(*Worker).Attempt", "outbox.(*Queue).settle")
		t.FailNow()
	}
	if err := f.rig.WaitDelivered(settleStall); err != nil {
		t.Fatal(err)
	}
}

// check makes the run's assertions on the store and the real mailboxes.
func (f *faultRun) check(t *testing.T) {
	t.Helper()
	sent := make([]string, len(f.envelopes))
	for i, e := range f.envelopes {
		sent[i] = e.messageID
	}
	envelopesOf(t, f.redis.URL(), sent)
	f.checkTrails(t)

	ca, err := pki.LoadCA(f.keys, "test")
	if err != nil {
		t.Fatal(err)
	}
	byEnvelope := map[string]*faultEnvelope{}
	for _, e := range f.envelopes {
		byEnvelope[e.id] = e
	}
	// mails[kind][envelope][user] are the Message-IDs of the kind of mail
	// of the envelope in the user's INBOX, as Dovecot serves it.
	mails := map[string]map[string]map[string]map[string]bool{}
	finals := map[string]map[string][]byte{} // envelope → user → the final PDF
	copies := 0                              // final mails found more than once under one Message-ID
	for _, user := range f.boxes.users {
		for _, raw := range imapMessages(t, f.rig, user, &imap.SearchCriteria{}) {
			m, err := readFaultMail(raw)
			if err != nil {
				t.Fatalf("%s's mail: %v", user, err)
			}
			kind := m.kind()
			if byEnvelope[m.envelope] == nil || kind == "" {
				continue
			}
			if mails[kind] == nil {
				mails[kind] = map[string]map[string]map[string]bool{}
			}
			if mails[kind][m.envelope] == nil {
				mails[kind][m.envelope] = map[string]map[string]bool{}
			}
			if mails[kind][m.envelope][user] == nil {
				mails[kind][m.envelope][user] = map[string]bool{}
			}
			if kind == "final" && mails[kind][m.envelope][user][m.messageID] {
				copies++
			}
			mails[kind][m.envelope][user][m.messageID] = true
			if kind == "delivery failure" && !strings.Contains(m.text, "550 5.1.1") {
				t.Errorf("%s's notice %q does not give the server's answer (550 5.1.1):\n%s", user, m.subject, m.text)
			}
			if kind == "final" {
				if finals[m.envelope] == nil {
					finals[m.envelope] = map[string][]byte{}
				}
				finals[m.envelope][user] = parseMail(t, user, raw).files["convention.pdf"]
			}
		}
	}
	one := func(kind string, e *faultEnvelope, users []string) {
		for user, ids := range mails[kind][e.id] {
			if !slices.Contains(users, user) {
				t.Errorf("%s: %s got %d %s mail(s), and is no party to it", e.title, user, len(ids), kind)
			}
		}
		for _, user := range users {
			if ids := mails[kind][e.id][user]; len(ids) != 1 {
				t.Errorf("%s: %s got %d %s mails (Message-IDs %v), want one", e.title, user, len(ids), kind, slices.Sorted(mapKeys(ids)))
			}
		}
	}
	for _, e := range f.envelopes {
		one("acknowledgement", e, []string{"bob"})
		one("invitation", e, e.signers())
		one("final", e, e.parties())
		var bounce []string
		if e.rejected {
			bounce = e.bounceTold()
		}
		one("delivery failure", e, bounce)
		// The independent validators take about a second a file: a
		// sample of the envelopes, the refused copy's among them.
		validate := e.rejected || e.index%50 == 0
		f.checkSignatures(t, e, finals[e.id], ca.Cert, validate)
	}
	// A mail the server accepted just before a kill is sent again, under
	// the same Message-ID (which a mail client shows once): counted, as
	// the issue asks, by Message-ID, and the copies told here.
	t.Logf("%d final mails arrived twice under the same Message-ID (a kill between the server's acceptance and its record)", copies)
}

// mapKeys are the keys of m.
func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// checkSignatures checks that every party's final PDF of e is the same
// file, with each signer's signature once and the seal, all intact; with
// validate, the independent validators check it too.
func (f *faultRun) checkSignatures(t *testing.T, e *faultEnvelope, pdfs map[string][]byte, ca *x509.Certificate, validate bool) {
	t.Helper()
	var first []byte
	for _, user := range e.parties() {
		pdf, ok := pdfs[user]
		switch {
		case !ok:
			continue // no final mail: told by check
		case pdf == nil:
			t.Errorf("%s: %s's final mail has no convention.pdf", e.title, user)
		case first == nil:
			first = pdf
		case sha256.Sum256(pdf) != sha256.Sum256(first):
			t.Errorf("%s: %s's final PDF differs from another party's", e.title, user)
		}
	}
	if first == nil {
		return
	}
	report, err := verify.Verify(first, ca)
	if err != nil {
		t.Errorf("%s: the final PDF: %v", e.title, err)
		return
	}
	var names []string
	for _, s := range report.Signatures {
		names = append(names, s.Signer)
		if !s.Intact || !s.IssuedByCA {
			t.Errorf("%s: the signature of %s: intact %v, issued by the CA %v (%s)", e.title, s.Signer, s.Intact, s.IssuedByCA, s.Problem)
		}
	}
	var want []string
	for _, u := range e.signers() {
		want = append(want, signerName(u))
	}
	want = append(want, "Mairie de Test seal")
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("%s: the final PDF has %d signatures by %q, want %q", e.title, len(names), names, want)
	}
	if validate {
		path := filepath.Join(t.TempDir(), e.id+".pdf")
		if err := os.WriteFile(path, first, 0o644); err != nil {
			t.Fatal(err)
		}
		signtest.Validate(t, path, signtest.Expect{Signatures: len(want), CAFile: filepath.Join(f.keys, pki.CACertFile)})
	}
}

// logMailServers logs what Postfix's and Dovecot's logs say of the
// users' mail other than its delivery: deferrals, bounces, errors, the
// last 10 lines of each for each user.
func (f *faultRun) logMailServers(t *testing.T, users map[string]bool) {
	t.Helper()
	mta, err := os.ReadFile(f.rig.MTALog())
	if err != nil {
		t.Logf("Postfix's log: %v", err)
	}
	dovecot, err := os.ReadFile(f.rig.DovecotLog())
	if err != nil {
		t.Logf("Dovecot's log: %v", err)
	}
	last := func(log []byte, keep func(string) bool) string {
		var lines []string
		for l := range strings.Lines(string(log)) {
			if keep(l) {
				lines = append(lines, l)
			}
		}
		return fmt.Sprintf("%d lines, the last 10:\n%s", len(lines), strings.Join(lines[max(0, len(lines)-10):], ""))
	}
	for user := range users {
		t.Logf("Postfix on %s's mail but its deliveries: %s", user, last(mta, func(l string) bool {
			return strings.Contains(l, "to=<"+user+"@") && !strings.Contains(l, "status=sent")
		}))
		t.Logf("Dovecot's errors and warnings on %s's mail: %s", user, last(dovecot, func(l string) bool {
			return strings.Contains(l, "("+user+")") && (strings.Contains(l, "Error") || strings.Contains(l, "Warning"))
		}))
	}
}

// logStacks makes serve print its goroutines' stacks and exit (SIGQUIT),
// and logs those whose stack names one of the functions in: its full
// logs, at the end of a failed test, hold them too, among all the others.
func (s *server) logStacks(t *testing.T, in ...string) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Logf("serve's stacks: %v", err)
		return
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Log("serve's stacks: serve did not exit within 10 s of SIGQUIT")
		return
	}
	_, dump, ok := strings.Cut(s.logs.String(), "SIGQUIT: quit")
	if !ok {
		t.Log("serve's stacks: serve printed none")
		return
	}
	found := 0
	for _, g := range strings.Split(dump, "\n\n") {
		if slices.ContainsFunc(in, func(name string) bool { return strings.Contains(g, name) }) {
			t.Logf("serve's stack:\n%s", g)
			found++
		}
	}
	if found == 0 {
		t.Logf("serve's stacks: no goroutine was in %s", strings.Join(in, ", "))
	}
}

// checkTrails checks each envelope's audit trail: completed once, its
// document sealed once; and that the faults happened: a mail deferred
// with the 451 of the deferral window, the refused copy's final mail
// failed with the 550.
func (f *faultRun) checkTrails(t *testing.T) {
	t.Helper()
	st := openStore(t, f.redis.URL())
	ctx := context.Background()
	deferred := 0
	for _, e := range f.envelopes {
		trail, err := st.AuditTrail(ctx, e.id)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.Verify(trail); err != nil {
			t.Errorf("%s: after the kills: %v", e.title, err)
		}
		completed, sealed, refused := 0, 0, 0
		for _, r := range trail {
			switch {
			case r.Type == audit.Completed:
				completed++
			case r.Type == audit.Sealed:
				sealed++
			case deferredBy451(r):
				deferred++
			case r.Type == audit.DeliveryAttempt && r.Details["outcome"] == string(workflow.OutcomeFailed):
				if r.Details["to"] != faultRejected || !strings.HasPrefix(r.Details["answer"], "550 5.1.1 ") {
					t.Errorf("%s: a mail to %s failed: %s", e.title, r.Details["to"], r.Details["answer"])
				}
				refused++
			}
		}
		if completed != 1 || sealed != 1 {
			t.Errorf("%s: %d completed and %d sealed records, want one of each", e.title, completed, sealed)
		}
		if want := map[bool]int{true: 1}[e.rejected]; refused != want {
			t.Errorf("%s: %d failed deliveries, want %d", e.title, refused, want)
		}
	}
	if deferred == 0 {
		t.Error("no mail was deferred with 451 4.7.1: the deferral window proved nothing")
	}
	t.Logf("%d delivery attempts deferred by the 451 window", deferred)
}

// deferredBy451 tells whether r records a delivery attempt deferred by
// the 451 of the deferral window.
func deferredBy451(r audit.Record) bool {
	return r.Type == audit.DeliveryAttempt && r.Details["outcome"] == string(workflow.OutcomeDeferred) &&
		strings.HasPrefix(r.Details["answer"], "451 4.7.1 ")
}

// deferrals counts the delivery attempts the audit trails record as
// deferred by the 451 of the deferral window, in the envelopes made so far.
func (f *faultRun) deferrals(t *testing.T, st store.Store) int {
	t.Helper()
	n := 0
	for _, e := range f.envelopes {
		trail, err := st.AuditTrail(context.Background(), e.id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("reading %s's audit trail: %v", e.title, err)
		}
		for _, r := range trail {
			if deferredBy451(r) {
				n++
			}
		}
	}
	return n
}

// faultMail is what the run reads of a mail.
type faultMail struct {
	messageID, envelope, subject string
	text                         string // the text/plain part
	code                         string // a code mail's one-time code
}

// kind names the gateway's mails the run counts by their subjects, ""
// for the others.
func (m faultMail) kind() string {
	for prefix, kind := range map[string]string{"Enregistré : ": "acknowledgement", "À signer : ": "invitation",
		"Terminé : ": "final", "Non distribué à ": "delivery failure"} {
		if strings.HasPrefix(m.subject, prefix) {
			return kind
		}
	}
	return ""
}

var faultCode = regexp.MustCompile(`(?m)^\s*(\d{6})\s*$`)

// readFaultMail reads a raw message.
func readFaultMail(raw []byte) (faultMail, error) {
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		return faultMail{}, err
	}
	defer r.Close()
	m := faultMail{messageID: r.Header.Get("Message-ID"), envelope: r.Header.Get("X-Parapheur-Envelope")}
	if m.subject, err = r.Header.Subject(); err != nil {
		return m, err
	}
	for m.text == "" {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return m, err
		}
		if h, ok := p.Header.(*mail.InlineHeader); ok {
			if ct, _, _ := h.ContentType(); ct == "text/plain" {
				b, err := io.ReadAll(p.Body)
				if err != nil {
					return m, err
				}
				m.text = string(b)
			}
		}
	}
	if c := faultCode.FindStringSubmatch(m.text); c != nil && strings.HasPrefix(m.subject, "Votre code de confirmation") {
		m.code = c[1]
	}
	return m, nil
}

// faultMailboxes follows the mail Dovecot delivers to the parties'
// Maildirs, for the signers to wait on: one reader of the directories
// for all of them, rather than an IMAP session each.
type faultMailboxes struct {
	rig   *testrig.Mail
	users []string

	mu      sync.Mutex
	mails   map[string][]faultMail // by user, in the order found
	seen    map[string]bool        // the files read, by user/name without flags
	changed chan struct{}          // closed when mail is found
}

func newFaultMailboxes(rig *testrig.Mail, users []string) *faultMailboxes {
	return &faultMailboxes{rig: rig, users: users, mails: map[string][]faultMail{}, seen: map[string]bool{}, changed: make(chan struct{})}
}

// watch reads the new mail of the Maildirs every 50 ms until ctx ends.
func (b *faultMailboxes) watch(ctx context.Context) {
	go func() {
		for {
			b.scan()
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
}

// scan reads the messages of the Maildirs not read yet. A file Dovecot
// moved from new/ to cur/ meanwhile is read at the next scan.
func (b *faultMailboxes) scan() {
	found := false
	for _, user := range b.users {
		for _, sub := range []string{"new", "cur"} {
			dir := filepath.Join(b.rig.Maildir(user), sub)
			entries, err := os.ReadDir(dir)
			if err != nil {
				continue // no mail yet
			}
			for _, entry := range entries {
				key := user + "/" + strings.SplitN(entry.Name(), ":", 2)[0]
				b.mu.Lock()
				seen := b.seen[key]
				b.mu.Unlock()
				if seen {
					continue
				}
				raw, err := os.ReadFile(filepath.Join(dir, entry.Name()))
				if err != nil {
					continue
				}
				m, err := readFaultMail(raw)
				if err != nil {
					continue // told by the final count, through IMAP
				}
				b.mu.Lock()
				b.seen[key] = true
				b.mails[user] = append(b.mails[user], m)
				b.mu.Unlock()
				found = true
			}
		}
	}
	if found {
		b.mu.Lock()
		close(b.changed)
		b.changed = make(chan struct{})
		b.mu.Unlock()
	}
}

// whileArriving returns a context that ends once no new mail was found
// for stall, or after limit, with the cause.
func (b *faultMailboxes) whileArriving(stall, limit time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ctx, stop := context.WithTimeoutCause(ctx, limit, fmt.Errorf("mail kept coming, but not all of it within %v", limit))
	go func() {
		found, since := b.found(), time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			if n := b.found(); n != found {
				found, since = n, time.Now()
			} else if time.Since(since) >= stall {
				cancel(fmt.Errorf("no new mail in any mailbox for %v", stall))
				return
			}
		}
	}()
	return ctx, func() { stop(); cancel(nil) }
}

// found counts the mails found so far.
func (b *faultMailboxes) found() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.seen)
}

// subjects lists the subjects of the mails of envelope id user got.
func (b *faultMailboxes) subjects(user, id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var subjects []string
	for _, m := range b.mails[user] {
		if m.envelope == id {
			subjects = append(subjects, strconv.Quote(m.subject))
		}
	}
	if len(subjects) == 0 {
		return "none of this envelope"
	}
	return strings.Join(subjects, ", ")
}

// wait returns the first mail of user's that match accepts, once there is
// one.
func (b *faultMailboxes) wait(ctx context.Context, user string, match func(faultMail) bool) (faultMail, error) {
	for {
		b.mu.Lock()
		changed := b.changed
		for _, m := range b.mails[user] {
			if match(m) {
				b.mu.Unlock()
				return m, nil
			}
		}
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return faultMail{}, ctx.Err()
		case <-changed:
		}
	}
}
