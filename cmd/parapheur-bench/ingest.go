package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// stagingFolder is the folder of the gateway's mailbox the ingest scenario
// appends its mails to, beside the gateway's INBOX, Processed and Quarantine.
const stagingFolder = "Staging"

// ingestPDFSize is the size of each submission's PDF: the target's 100 KB.
const ingestPDFSize = 100_000

// ingest measures intake: n submissions, each with its own 100 KB PDF and one signer,
// are appended to a staging folder of the gateway's mailbox and to the inbox of the floor
// mailbox, the raw batched fetch+move of the floor's copies is timed on the same Dovecot,
// then the gateway's are moved into its inbox at once and "parapheur serve" is timed.
// Without sending, serve runs with mail.paused (no mail is sent, so sending takes no
// share of the machine or of the store) until the inbox is empty, every mail handled; the
// envelopes and their queued mails are then counted on /metrics. With sending, the raw
// Postfix acceptance rate of small mails over as many connections as serve's sender keeps
// is measured first, and serve is timed until Postfix has accepted both mails of every
// envelope (its acknowledgement and its invitation).
func ingest(o options, sending bool) error {
	if !sending {
		o.env = append(o.env, "PARAPHEUR_MAIL_PAUSED=true")
	}
	g, err := startGateway(o)
	if err != nil {
		return err
	}
	failed := true
	defer func() { g.stop(failed || o.verbose) }()
	c, err := g.login("parapheur")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Create(stagingFolder, nil).Wait(); err != nil {
		return fmt.Errorf("imap create %s: %w", stagingFolder, err)
	}

	start := time.Now()
	run := start.UnixNano()
	for _, box := range []struct{ user, folder string }{{floorMailbox, "INBOX"}, {"parapheur", stagingFolder}} {
		if err := g.appendSubmissions(box.user, box.folder, o.n, run); err != nil {
			return err
		}
	}
	appended := time.Since(start)

	moved, raw, err := rawIMAPFetchMove(g.mail.IMAPAddr(), floorMailbox, g.mail.Password(), pollerBatch)
	if err != nil {
		return fmt.Errorf("raw IMAP client: %w", err)
	}
	if moved != o.n {
		return fmt.Errorf("raw IMAP client: moved %d mails, not the %d appended", moved, o.n)
	}
	var smallRate float64
	if sending {
		if smallRate, err = rawSMTPAccept(g.mail.SMTPAddr(), senderConnections, 2*o.n, agent, "sink@example.com", smallMail()); err != nil {
			return err
		}
		if err := g.mail.WaitDelivered(5 * time.Minute); err != nil {
			return err
		}
	}

	if _, err := c.Select(stagingFolder, nil).Wait(); err != nil {
		return fmt.Errorf("imap select %s: %w", stagingFolder, err)
	}
	serve := g.replicas[0]
	cpuBefore, err := serve.cpu()
	if err != nil {
		return err
	}
	start = time.Now()
	if _, err := c.Move(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, "INBOX").Wait(); err != nil {
		return fmt.Errorf("imap move %s to INBOX: %w", stagingFolder, err)
	}
	moving := time.Since(start)
	first, err := waitFirstEnvelope(serve, 10*time.Minute)
	if err != nil {
		return err
	}
	if err := waitInboxEmpty(c, 10*time.Minute); err != nil {
		return err
	}
	handled := time.Since(start)
	steady := time.Since(first)
	if sending {
		if err := waitDelivered(serve, 2*o.n, 10*time.Minute); err != nil {
			return err
		}
	}
	took := time.Since(start)
	cpuAfter, err := serve.cpu()
	if err != nil {
		return err
	}

	envelopes, err := serve.metric("parapheur_ingest_mails_total", `outcome="envelope"`)
	if err != nil {
		return err
	}
	if int(envelopes) != o.n {
		return fmt.Errorf("the inbox is empty, but /metrics counts %.0f envelopes made: want %d", envelopes, o.n)
	}
	var mails string
	if sending {
		mails = fmt.Sprintf("%d mails accepted by Postfix", 2*o.n)
	} else {
		var queued float64
		for _, state := range []string{"waiting", "due", "held"} {
			n, err := serve.metric("parapheur_outbox_items", `queue="mail"`, `state="`+state+`"`)
			if err != nil {
				return err
			}
			queued += n
		}
		if int(queued) != 2*o.n {
			return fmt.Errorf("the inbox is empty, but /metrics counts %.0f mails queued: want %d (an acknowledgement and an invitation each)", queued, 2*o.n)
		}
		mails = fmt.Sprintf("%d mails queued", int(queued))
	}
	failed = false
	fmt.Printf("ingest of %d submissions with a %d KB PDF each, store %s, %s; %s:\n", o.n, ingestPDFSize/1000, o.store, map[bool]string{false: "mail paused", true: "mail sent"}[sending], g.placement())
	fmt.Printf("  appended to the gateway's and the floor's mailboxes in %.1f s\n", appended.Seconds())
	fmt.Printf("  raw batched UID FETCH BODY.PEEK[] + UID MOVE, %d a batch: %.0f mails/s\n", pollerBatch, raw)
	if sending {
		fmt.Printf("  raw Postfix acceptance over %d connections: %.0f mails/s of %d KB, which allows %.0f envelopes/s at two mails each\n",
			senderConnections, smallRate, smallMailBytes>>10, smallRate/2)
	}
	rate := float64(o.n) / took.Seconds()
	until := "an empty inbox"
	if sending {
		until = fmt.Sprintf("the last mail accepted; the inbox was empty after %.2f s", handled.Seconds())
	}
	fmt.Printf("  gateway: %.0f envelopes/s (%.2f s from the move into the inbox, which took %.2f s, to %s; %d envelopes, %s)\n",
		rate, took.Seconds(), moving.Seconds(), until, int(envelopes), mails)
	if !sending {
		// Dovecot tells an IDLE client of new mail some 0.5 s after it
		// lands, a wait the raw client, which fetches at once, does not have.
		fmt.Printf("    from the first envelope made to an empty inbox: %.0f envelopes/s (%.2f s; the first came %.2f s after the move ended)\n",
			float64(o.n-1)/steady.Seconds(), steady.Seconds(), (handled - steady - moving).Seconds())
	}
	if sending {
		fmt.Printf("    = %.2f x what the raw Postfix rate allows (target >= 0.9)\n", rate/(smallRate/2))
	}
	// On a machine shared with other work the rate says how much of it the
	// gateway got; the processor time each envelope took does not depend on that.
	peak, _, _, err := serve.memory()
	if err != nil {
		return err
	}
	fmt.Printf("  serve's processor time (user+system): %.2f ms an envelope, %.0f%% of one core while it ran; its peak RSS (VmHWM) %.0f MB\n",
		ms(cpuAfter-cpuBefore)/float64(o.n), 100*(cpuAfter-cpuBefore).Seconds()/took.Seconds(), float64(peak)/1e6)
	if !sending {
		return drain(g, 2*o.n)
	}
	return nil
}

// drain measures the mail sender alone: the raw Postfix acceptance rate of n
// small mails over as many connections as serve's sender keeps, then serve
// restarted without mail.paused on the store whose outbox holds n mails,
// timed from when it is ready (as the raw client is from when its connections
// are open) until Postfix has accepted them all, counting the mails accepted
// in that time.
func drain(g *gateway, n int) error {
	raw, err := rawSMTPAccept(g.mail.SMTPAddr(), senderConnections, n, agent, "sink@example.com", smallMail())
	if err != nil {
		return err
	}
	if err := g.mail.WaitDelivered(5 * time.Minute); err != nil {
		return err
	}
	if err := g.restart(0, "PARAPHEUR_MAIL_PAUSED=false"); err != nil {
		return err
	}
	start := time.Now()
	before, err := g.replicas[0].metric("parapheur_mail_attempts_total", `outcome="delivered"`)
	if err != nil {
		return err
	}
	if err := waitDelivered(g.replicas[0], n, 10*time.Minute); err != nil {
		return err
	}
	took := time.Since(start)
	sent := n - int(before)
	cpu, err := g.replicas[0].cpu()
	if err != nil {
		return err
	}
	// The attempts' own time (the mail transaction on a connection) beside
	// the time each connection spent a mail, to tell the relay's share.
	attemptSum, err := g.replicas[0].metric("parapheur_mail_attempt_duration_seconds_sum")
	if err != nil {
		return err
	}
	attempts, err := g.replicas[0].metric("parapheur_mail_attempt_duration_seconds_count")
	if err != nil {
		return err
	}
	rate := float64(sent) / took.Seconds()
	fmt.Printf("then the mail sender alone (serve restarted without mail.paused, timed from when it was ready, %d mails sent by then):\n", n-sent)
	fmt.Printf("  raw Postfix acceptance over %d connections: %.0f mails/s of %d KB\n", senderConnections, raw, smallMailBytes>>10)
	fmt.Printf("  gateway: %.0f mails/s (%d mails accepted by Postfix in %.2f s) = %.2f x the raw rate (target >= 0.9)\n",
		rate, sent, took.Seconds(), rate/raw)
	fmt.Printf("  a mail took %.1f ms of a connection's time, of which its mail transaction %.1f ms (the raw client's: %.1f ms)\n",
		1000*took.Seconds()*senderConnections/float64(sent), 1000*attemptSum/attempts, 1000*senderConnections/raw)
	fmt.Printf("  serve's processor time (user+system, its start included): %.2f ms a mail, %.0f%% of one core while it sent\n",
		ms(cpu)/float64(n), 100*cpu.Seconds()/took.Seconds())
	return nil
}

// waitDelivered waits until the replica's mail sender has had n mails accepted, by its
// /metrics. It asks every 50 ms, not more often: a scrape reads the queues' depths from
// the store, work the gateway would not do otherwise.
func waitDelivered(r *replica, n int, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		sent, err := r.metric("parapheur_mail_attempts_total", `outcome="delivered"`)
		if err != nil {
			return err
		}
		if int(sent) >= n {
			return nil
		}
	}
	return fmt.Errorf("the gateway had not sent its %d mails after %v: %w", n, timeout, errTimeout)
}

// login opens an IMAP session of user's mailbox.
func (g *gateway) login(user string) (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(g.mail.IMAPAddr(), nil) // the private Dovecot listens on loopback
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, g.mail.Password()).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap login: %w", err)
	}
	return c, nil
}

// appendSubmissions appends n submissions of the run to folder of user's
// mailbox over a few connections at once, each mail with a PDF of its own (the
// gateway keeps one copy of equal documents: the same PDF n times would spare
// the store n-1 writes).
func (g *gateway) appendSubmissions(user, folder string, n int, run int64) error {
	const connections = 4
	base := bigPDF(ingestPDFSize)
	// The image's bytes are random: numbering its first bytes makes each PDF
	// distinct and keeps it valid.
	pixels := bytes.LastIndex(base, []byte(">>\nstream\n")) + len(">>\nstream\n")
	errs := make(chan error, connections)
	var wg sync.WaitGroup
	for w := range connections {
		wg.Go(func() {
			c, err := g.login(user)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			pdf := bytes.Clone(base)
			for i := w; i < n; i += connections {
				copy(pdf[pixels:], fmt.Sprintf("%016d", i))
				msg := submission(fmt.Sprintf("<ingest-%d-%d@example.com>", run, i), fmt.Sprintf("Convention %d", i), signer+"@example.com", pdf)
				cmd := c.Append(folder, int64(len(msg)), nil)
				if _, err := io.WriteString(cmd, msg); err != nil {
					errs <- fmt.Errorf("imap append: %w", err)
					return
				}
				if err := cmd.Close(); err != nil {
					errs <- fmt.Errorf("imap append: %w", err)
					return
				}
				if _, err := cmd.Wait(); err != nil {
					errs <- fmt.Errorf("imap append: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// waitFirstEnvelope waits until the replica's /metrics counts an envelope made
// from mail, and says when it saw it. It asks every 10 ms until then, and
// stops: a scrape reads the queues' depths from the store.
func waitFirstEnvelope(r *replica, timeout time.Duration) (time.Time, error) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n, err := r.metric("parapheur_ingest_mails_total", `outcome="envelope"`)
		if err != nil {
			return time.Time{}, err
		}
		if n > 0 {
			return time.Now(), nil
		}
	}
	return time.Time{}, fmt.Errorf("the gateway had made no envelope %v after the move into its inbox: %w", timeout, errTimeout)
}

// waitInboxEmpty waits until the inbox holds no mail: the poller moves a mail
// out only once its handler is done with it.
func waitInboxEmpty(c *imapclient.Client, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			return fmt.Errorf("imap status INBOX: %w", err)
		}
		if *st.NumMessages == 0 {
			return nil
		}
	}
	return fmt.Errorf("the gateway's inbox was not empty after %v: %w", timeout, errTimeout)
}

// metric reads the sum of the samples of the named metric on the replica's
// /metrics whose labels include every one of labels (`queue="mail"`).
func (r *replica) metric(name string, labels ...string) (float64, error) {
	resp, err := http.Get("http://" + r.listen + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var sum float64
	found := false
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line := lines.Text()
		series, value, ok := strings.Cut(line, " ")
		metric, set, _ := strings.Cut(series, "{")
		if !ok || metric != name || !hasLabels(set, labels) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, fmt.Errorf("/metrics: %q: %w", line, err)
		}
		sum, found = sum+v, true
	}
	if err := lines.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("/metrics has no %s{%s}", name, strings.Join(labels, ","))
	}
	return sum, nil
}

// hasLabels reports whether the label set of a sample (`a="x",b="y"}`) holds
// every one of labels.
func hasLabels(set string, labels []string) bool {
	have := strings.Split(strings.TrimSuffix(set, "}"), ",")
	for _, l := range labels {
		found := false
		for _, h := range have {
			found = found || h == l
		}
		if !found {
			return false
		}
	}
	return true
}
