package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/signtest"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// TestServeThreeReplicas runs three gateways on one Redis and one mailbox
// (SPEC §7): exactly one polls; a signer's page and API work on any of
// them, one action on one replica and the next on another; when the
// polling replica is killed (kill -9) another takes the mailbox over, and
// every submission sent around the kill makes one envelope and one
// acknowledgement, none twice and none missed. One replica logs text, the
// others JSON: no log shows a link token or a code, every log names the
// envelopes.
func TestServeThreeReplicas(t *testing.T) {
	rig := testrig.MailRig(t)
	storeURL := testrig.Redis(t).URL()
	keys := initKeys(t)
	// The links of the mails name no replica: the test sends each request
	// to the replica of its choice, as a load balancer would.
	public := "http://" + freeAddr(t)
	// The first replica, which logs text, polls first: it is the one
	// killed, its successor logs JSON.
	first := startServe(t, rig, storeURL, keys, "PARAPHEUR_PUBLIC_URL="+public, "PARAPHEUR_LOG_FORMAT=text")
	onePoller(t, []*server{first})
	replicas := []*server{first,
		startServe(t, rig, storeURL, keys, "PARAPHEUR_PUBLIC_URL="+public),
		startServe(t, rig, storeURL, keys, "PARAPHEUR_PUBLIC_URL="+public),
	}
	c := &ceremonyRig{rig: rig, base: public}
	var sent []string // the Message-IDs of the submissions
	submit := func(round string, n int) {
		for i := range n {
			msg, id := newSubmission(t, fmt.Sprintf("Convention %s-%d", round, i))
			sendMail(t, rig.SMTPAddr(), "bob@example.com", "parapheur@org.example", msg)
			sent = append(sent, id)
		}
	}

	submit("a", 3)
	waitAcknowledged(t, rig, sent)
	if onePoller(t, replicas) != first {
		t.Fatal("the poller lease changed hands while its holder ran")
	}
	poller := first
	for _, r := range replicas {
		processed := metric(t, r, `parapheur_imap_messages_total{outcome="processed"}`)
		if r == poller && processed != 3 || r != poller && processed != 0 {
			t.Fatalf("replica %s (poller %v) processed %v mails", r.listen, r == poller, processed)
		}
	}

	// The signer's link works on every replica; the code is asked for on
	// one and the signature made on another.
	alice := c.invited(t, "alice", "Convention a-0")
	on := func(s *server) recipient {
		return recipient{user: alice.user, api: strings.Replace(alice.api, public, "http://"+s.listen, 1)}
	}
	for _, r := range replicas {
		if st := on(r).state(t); !st.Recipient.CanAct {
			t.Fatalf("replica %s: the signer cannot act: %+v", r.listen, st.Recipient)
		}
		page := strings.Replace(alice.api, "/api/v1/sign/", "/s/", 1)
		if resp, body := getResponse(t, strings.Replace(page, public, "http://"+r.listen, 1)); resp.StatusCode != http.StatusOK {
			t.Fatalf("replica %s: the signing page: %s\n%.300s", r.listen, resp.Status, body)
		}
	}
	on(replicas[1]).post(t, "/code", nil)
	code := codeIn(t, c.read(t, "alice", "Votre code de confirmation – Convention a-0"))
	if st := on(replicas[2]).post(t, "/sign", map[string]any{"code": code, "consent": true}); st.Recipient.State != "signed" {
		t.Fatalf("signed on a third replica: %+v", st.Recipient)
	}
	if st := on(replicas[0]).state(t); st.Recipient.State != "signed" || st.Recipient.CanAct {
		t.Fatalf("the first replica does not see the signature: %+v", st.Recipient)
	}

	// Submissions before and after the poller dies without a word.
	submit("b", 3)
	if err := poller.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-poller.exited
	submit("c", 3)
	var survivors []*server
	for _, r := range replicas {
		if r != poller {
			survivors = append(survivors, r)
		}
	}
	// The killed replica's lease runs out (6 s) and a survivor polls.
	successor := onePoller(t, survivors)
	waitAcknowledged(t, rig, sent)
	envelopesOf(t, storeURL, sent)

	// The survivors sent every mail of the last round, an acknowledgement
	// and an invitation each: sending is no business of the poller's.
	eventually(t, mailWait, "the surviving replicas delivering the 6 mails of the last round", func() bool {
		var delivered float64
		for _, r := range survivors {
			delivered += metric(t, r, `parapheur_mail_attempts_total{outcome="delivered"}`)
		}
		return delivered >= 6
	})
	for _, r := range replicas {
		logsHoldNone(t, r.logs.String(), c.secrets)
	}
	// Each poller's log names the envelopes it made, in its format.
	if want := "envelope=" + engine.EnvelopeID(strings.ToLower(sent[0])); !strings.Contains(first.logs.String(), want) {
		t.Errorf("the text log of the first poller does not show %s", want)
	}
	if want := `"envelope":"` + engine.EnvelopeID(strings.ToLower(sent[len(sent)-1])) + `"`; !strings.Contains(successor.logs.String(), want) {
		t.Errorf("the JSON log of the successor does not show %s", want)
	}
	for _, r := range survivors {
		r.stop(t)
	}
}

// onePoller waits until exactly one of replicas holds the poller lease,
// the others reporting that they do not, and returns it.
func onePoller(t *testing.T, replicas []*server) *server {
	t.Helper()
	var holder *server
	eventually(t, 30*time.Second, "exactly one replica holding the poller lease", func() bool {
		holder = nil
		n := 0
		for _, r := range replicas {
			switch metric(t, r, "parapheur_imap_lease_held") {
			case 1:
				holder = r
				n++
			case 0:
			default:
				return false
			}
		}
		return n == 1
	})
	return holder
}

// metric scrapes s's /metrics and returns the value of series, a name
// with its labels as Prometheus writes them; 0 when the series is absent.
func metric(t *testing.T, s *server, series string) float64 {
	t.Helper()
	body := get(t, "http://"+s.listen+"/metrics")
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", series, line, err)
			}
			return f
		}
	}
	return 0
}

// waitAcknowledged waits until bob's INBOX holds an acknowledgement in
// reply to each submission of sent and fails if one was made twice: two
// acknowledgements with different Message-IDs for one submission (a
// message delivered twice by a sender killed mid-send keeps its
// Message-ID, the outbox item's).
func waitAcknowledged(t *testing.T, rig *testrig.Mail, sent []string) {
	t.Helper()
	c := imapLogin(t, rig, "bob")
	defer c.Close()
	criteria := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "Enregistré"}}}
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID", "In-Reply-To"}, Peek: true}
	eventually(t, mailWait, fmt.Sprintf("an acknowledgement of each of %d submissions", len(sent)), func() bool {
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		found, err := c.UIDSearch(criteria, nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if len(found.AllUIDs()) == 0 {
			return false
		}
		msgs, err := c.Fetch(imap.UIDSetNum(found.AllUIDs()...), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		acks := map[string]map[string]bool{} // submission → its acknowledgements' Message-IDs
		for _, m := range msgs {
			h, err := mail.ReadMessage(bytes.NewReader(append(m.FindBodySection(section), '\r', '\n')))
			if err != nil {
				t.Fatal(err)
			}
			to := h.Header.Get("In-Reply-To")
			if !slices.Contains(sent, to) {
				t.Fatalf("an acknowledgement in reply to %q, which was not sent in this test", to)
			}
			if acks[to] == nil {
				acks[to] = map[string]bool{}
			}
			acks[to][h.Header.Get("Message-ID")] = true
			if len(acks[to]) > 1 {
				t.Fatalf("submission %s acknowledged twice: %v", to, acks[to])
			}
		}
		return len(acks) == len(sent)
	})
}

// envelopesOf checks that the store holds one envelope for each
// submission of sent, and no other.
func envelopesOf(t *testing.T, storeURL string, sent []string) {
	t.Helper()
	page, err := openStore(t, storeURL).List(context.Background(), store.ListQuery{Limit: len(sent) + 1})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, env := range page.Envelopes {
		got = append(got, env.MessageID)
	}
	want := slices.Clone(sent)
	for i, id := range want {
		want[i] = strings.Trim(id, "<>")
	}
	for i, id := range got {
		got[i] = strings.Trim(id, "<>")
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("envelopes of the submissions %v, want one of each of %v", got, want)
	}
}

// gate is a TCP proxy to a server that, once closed, holds every new
// connection until opened: a test catches the gateway in the middle of a
// call to a server (a send, a time-stamp) and does something meanwhile.
type gate struct {
	addr   string
	dials  atomic.Int64 // the connections accepted
	closed atomic.Bool
	held   chan struct{} // receives one value per connection held
	open   chan struct{} // closed to let the held connections through
	once   sync.Once
}

// startGate proxies to target until t ends.
func startGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{addr: ln.Addr().String(), held: make(chan struct{}, 64), open: make(chan struct{})}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		g.release()
		conns.Wait()
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			g.dials.Add(1)
			conns.Go(func() {
				defer in.Close()
				if g.closed.Load() {
					select {
					case g.held <- struct{}{}:
					default: // nobody is counting any more
					}
					<-g.open
				}
				out, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer out.Close()
				// Either side hanging up ends both: no half-closed
				// connection outlives the test.
				go func() {
					io.Copy(out, in)
					in.Close()
					out.Close()
				}()
				io.Copy(in, out)
			})
		}
	}()
	return g
}

// release lets the held connections, and all later ones, through.
func (g *gate) release() {
	g.closed.Store(false)
	g.once.Do(func() { close(g.open) })
}

// sigterm sends SIGTERM to s and waits until it says it is stopping, the
// work in flight still going on.
func (s *server) sigterm(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "serve stopping", func() bool {
		return strings.Contains(s.logs.String(), "parapheur: stopping")
	})
}

// exitedCleanly waits for s to exit after SIGTERM, with status 0.
func (s *server) exitedCleanly(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("serve did not stop cleanly: %v\n%s", err, s.logs.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not stop within 40 s of SIGTERM")
	}
}

// TestServeSIGTERMDuringSignature stops a gateway while it makes a
// signature (its time-stamp authority holds the answer): the signature is
// finished and recorded, its answer reaches the signer, and the gateway
// exits cleanly.
func TestServeSIGTERMDuringSignature(t *testing.T) {
	rig := testrig.MailRig(t)
	keys := initKeys(t)
	ca, err := pki.LoadCA(keys, "test")
	if err != nil {
		t.Fatal(err)
	}
	tsa := startGate(t, strings.TrimPrefix(signtest.StartTSA(t, ca).URL, "http://"))
	storeURL := "bolt://" + filepath.Join(t.TempDir(), "parapheur.db")
	srv := startServe(t, rig, storeURL, keys, "PARAPHEUR_TSA_URL=http://"+tsa.addr+"/")
	c := &ceremonyRig{rig: rig, srv: srv, keys: keys, base: "http://" + srv.listen}
	msg, id := newSubmission(t, "Convention arrêt")
	sendMail(t, rig.SMTPAddr(), "bob@example.com", "parapheur@org.example", msg)
	alice := c.invited(t, "alice", "Convention arrêt")
	alice.post(t, "/code", nil)
	code := codeIn(t, c.read(t, "alice", "Votre code de confirmation – Convention arrêt"))

	tsa.closed.Store(true)
	signed := make(chan apiState, 1)
	failed := make(chan string, 1)
	go func() {
		body, _ := json.Marshal(map[string]any{"code": code, "consent": true})
		resp, err := http.Post(alice.api+"/sign", "application/json", bytes.NewReader(body))
		if err != nil {
			failed <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var st apiState
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &st) != nil {
			failed <- resp.Status + "\n" + string(b)
			return
		}
		signed <- st
	}()
	select {
	case <-tsa.held:
	case msg := <-failed:
		t.Fatalf("the signature ended before its time-stamp: %s", msg)
	case <-time.After(mailWait):
		t.Fatal("the signature did not ask the time-stamp authority")
	}
	srv.sigterm(t)
	tsa.release()
	select {
	case st := <-signed:
		if st.Recipient.State != "signed" {
			t.Fatalf("after the shutdown, the signer is %s", st.Recipient.State)
		}
	case msg := <-failed:
		t.Fatalf("the signature in flight was cut by the shutdown: %s", msg)
	}
	srv.exitedCleanly(t)

	env, err := openStore(t, storeURL).Get(context.Background(), engine.EnvelopeID(strings.ToLower(id)))
	if err != nil {
		t.Fatal(err)
	}
	if r := env.Recipients[0]; r.State != workflow.HasSigned || env.Documents[0].Current == env.Documents[0].Original {
		t.Fatalf("the stored envelope: signer %s, document %s (original %s)", r.State, env.Documents[0].Current, env.Documents[0].Original)
	}
}

// TestServeSIGTERMDuringSend stops a gateway while its relay holds a
// mail's transaction: the mail goes out once, by it or, handed back, by a
// replica started after it; no mail is lost or sent twice.
func TestServeSIGTERMDuringSend(t *testing.T) {
	rig := testrig.MailRig(t)
	storeURL := testrig.Redis(t).URL()
	keys := initKeys(t)
	relay := startGate(t, rig.SMTPAddr())
	a := startServe(t, rig, storeURL, keys, "PARAPHEUR_SMTP_URL=smtp://"+relay.addr)
	relay.closed.Store(true)
	msg, _ := newSubmission(t, "Convention envoi")
	sendMail(t, rig.SMTPAddr(), "bob@example.com", "parapheur@org.example", msg)
	select {
	case <-relay.held:
	case <-time.After(mailWait):
		t.Fatal("the gateway sent nothing")
	}
	a.sigterm(t)
	relay.release()
	a.exitedCleanly(t)

	b := startServe(t, rig, storeURL, keys)
	waitDelivered(t, storeURL, 1)
	waitCount(t, rig, "bob", "Enregistré", 1)
	waitCount(t, rig, "alice", "Convention envoi", 1)
	b.stop(t)
}

// TestReadyz: /readyz names each part it checks and, when the SMTP relay
// stops answering, says so with a 503 while the other parts stay ok; a
// storm of probes costs the relay one connection per cache period.
func TestReadyz(t *testing.T) {
	rig := testrig.MailRig(t)
	keys := initKeys(t)
	relay := startGate(t, rig.SMTPAddr())
	srv := startServe(t, rig, "bolt://"+filepath.Join(t.TempDir(), "parapheur.db"), keys, "PARAPHEUR_SMTP_URL=smtp://"+relay.addr)
	type report struct {
		Ready bool
		Parts map[string]string
	}
	probe := func() (int, report) {
		resp, body := getResponse(t, "http://"+srv.listen+"/readyz")
		var r report
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("/readyz: %v\n%s", err, body)
		}
		return resp.StatusCode, r
	}
	code, r := probe()
	if code != http.StatusOK || !r.Ready || r.Parts["store"] != "ok" || r.Parts["imap"] != "ok" || r.Parts["smtp"] != "ok" {
		t.Fatalf("/readyz %d %+v", code, r)
	}
	before := relay.dials.Load()
	for range 50 {
		probe()
	}
	if n := relay.dials.Load() - before; n > 1 {
		t.Errorf("50 probes made %d connections to the relay, want at most 1 (a new round of checks)", n)
	}

	relay.closed.Store(true) // the relay accepts but never greets
	eventually(t, 20*time.Second, "/readyz reporting the relay", func() bool {
		code, r = probe()
		return code == http.StatusServiceUnavailable
	})
	if r.Ready || r.Parts["smtp"] == "ok" || r.Parts["imap"] != "ok" || r.Parts["store"] != "ok" {
		t.Fatalf("/readyz with the relay silent: %+v", r)
	}
	relay.release()
	srv.stop(t)
}

// TestMailPaused: with mail.paused, serve takes a submission in and makes its
// envelope, but neither sends its mails nor asks the relay anything (/readyz
// leaves the relay out); the mails wait in the outbox, due, and a serve
// without it sends them.
func TestMailPaused(t *testing.T) {
	rig := testrig.MailRig(t)
	keys := initKeys(t)
	storeURL := testrig.Redis(t).URL() // read while serve runs
	relay := startGate(t, rig.SMTPAddr())
	paused := startServe(t, rig, storeURL, keys, "PARAPHEUR_SMTP_URL=smtp://"+relay.addr, "PARAPHEUR_MAIL_PAUSED=true")
	resp, body := getResponse(t, "http://"+paused.listen+"/readyz")
	if resp.StatusCode != http.StatusOK || bytes.Contains(body, []byte("smtp")) {
		t.Fatalf("/readyz with mail paused: %d %s; want 200 without the relay", resp.StatusCode, body)
	}
	submission, msgID := newSubmission(t, "Convention en attente")
	sendMail(t, rig.SMTPAddr(), "bob@example.com", "parapheur@org.example", submission)
	envID := engine.EnvelopeID(strings.ToLower(msgID))
	st := openStore(t, storeURL)
	eventually(t, 60*time.Second, "the envelope made", func() bool {
		_, err := st.Get(t.Context(), envID)
		return err == nil
	})
	paused.stop(t)
	if n := relay.dials.Load(); n != 0 {
		t.Fatalf("serve with mail paused connected %d times to the relay", n)
	}
	stats, err := st.QueueStats(t.Context(), engine.MailQueue, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if stats.Due != 2 || stats.Held != 0 {
		t.Fatalf("mail queue after serve with mail paused: %+v; want the acknowledgement and the invitation due", stats)
	}

	startServe(t, rig, storeURL, keys, "PARAPHEUR_SMTP_URL=smtp://"+relay.addr)
	if _, err := rig.WaitMessage("alice", "X-Parapheur-Envelope", envID, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := rig.WaitMessage("bob", "In-Reply-To", msgID, 60*time.Second); err != nil {
		t.Fatal(err)
	}
}
