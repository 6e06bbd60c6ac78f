package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/parapheur/parapheur/mailin/poller"
	"github.com/parapheur/parapheur/workflow/engine"
)

// loadOptions are the flags of the load scenario.
type loadOptions struct {
	// signers is how many signers act at once.
	signers int
	// rate, when positive, is how many submissions are mailed a second;
	// 0 mails them as fast as Postfix takes them over submitConnections.
	rate float64
}

const (
	// senderConnections is how many connections serve's mail sender keeps to
	// its relay: mailout/sender's default Config.Workers, which serve leaves
	// alone. The raw Postfix floor uses as many.
	senderConnections = 4
	// submitConnections is how many SMTP connections mail the submissions.
	submitConnections = 4
	// pollerBatch is how many messages serve's poller fetches and moves at
	// once (mailin/poller's default Config.BatchSize, which serve leaves
	// alone); the raw Dovecot floor uses as many.
	pollerBatch = poller.DefaultBatchSize
	// smallMailBytes is about the size of the gateway's mails without
	// attachments, for the raw Postfix floor: their average, as composed
	// (mailout/compose's samples: acknowledgement 6.4 KB, invitation 5.2 KB,
	// code 3.4 KB).
	smallMailBytes = 5 << 10
	// smallMails and largeMails are the gateway's mails of each envelope
	// of the scenario: acknowledgement, invitation and code; the final mail
	// to the sender and to the signer, with the signed PDF and the
	// certificate.
	smallMails, largeMails = 3, 2
)

// load mails o.n submissions of the PDF at pdfPath through Postfix to the serve
// process(es), each with a signer of its own whose mail lands in one mailbox, while
// lo.signers signers at once read their invitations and codes from it and sign over the
// JSON API; then it reports the throughput, the latencies of the three steps a person
// waits for, the peak memory and the processor time of each replica, and the floors
// measured on the same mail servers before the gateway's run.
func load(o options, pdfPath string, lo loadOptions) error {
	pdf, err := os.ReadFile(pdfPath)
	if err != nil {
		return err
	}
	g, err := startGateway(o)
	if err != nil {
		return err
	}
	failed := true
	defer func() { g.stop(failed || o.verbose) }()
	loadBefore := loadAverage()

	run := time.Now().UnixNano()
	envelopes := make([]*loadEnvelope, o.n)
	for i := range envelopes {
		msgID := fmt.Sprintf("<load-%d-%d@example.com>", run, i)
		envelopes[i] = &loadEnvelope{id: engine.EnvelopeID(strings.ToLower(msgID)), msgID: msgID,
			submitted: make(chan struct{}), mails: make(chan gatewayMail, 4)}
	}
	// The floors first, on the same servers, while the gateway waits for mail.
	sample := []byte(submission(envelopes[0].msgID, "Convention 0", signerAddress(0), pdf))
	fl, err := measureFloors(g, o.n, sample)
	if err != nil {
		return err
	}

	// A watcher that fails stops the run with its error.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	byID := map[string]*loadEnvelope{}
	for _, e := range envelopes {
		byID[e.id] = e
	}
	go func() {
		if err := watchMaildir(ctx, filepath.Join(g.mail.Maildir(signer), "new"), byID); err != nil {
			cancel(err)
		}
	}()

	client := newClient(lo.signers)
	benches := map[string]*bench{} // by replica: each invitation's link names the one that wrote it
	var benchesMu sync.Mutex
	benchFor := func(base string) *bench {
		benchesMu.Lock()
		defer benchesMu.Unlock()
		if benches[base] == nil {
			benches[base] = &bench{base: base, client: client}
		}
		return benches[base]
	}
	signed := make(chan error, 1)
	var acting concurrency
	go func() {
		signed <- (&bench{}).each(lo.signers, func(w int) error {
			for i := w; i < len(envelopes); i += lo.signers {
				if err := envelopes[i].sign(ctx, i, benchFor, &acting); err != nil {
					return err
				}
			}
			return nil
		})
	}()

	cpuBefore := make([]time.Duration, len(g.replicas)) // serve's start and idle time, not the run's
	for i, r := range g.replicas {
		if cpuBefore[i], err = r.cpu(); err != nil {
			return err
		}
	}
	tickets := pace(ctx, lo.rate)
	start, err := sendOver(g.mail.SMTPAddr(), submitConnections, len(envelopes), tickets,
		func(i int) (string, string, []byte) {
			return agent, gatewayAddress, []byte(submission(envelopes[i].msgID, fmt.Sprintf("Convention %d", i), signerAddress(i), pdf))
		},
		func(i int) {
			envelopes[i].accepted = time.Now()
			close(envelopes[i].submitted)
		})
	if err != nil {
		return fmt.Errorf("mailing the submissions: %w", err)
	}
	mailed := time.Since(start)
	if err := <-signed; err != nil {
		return err
	}
	var invitations, signs, finals []time.Duration
	last := start
	for _, e := range envelopes {
		final, err := e.wait(ctx, finalMail, 5*time.Minute)
		if err != nil {
			return err
		}
		invitations = append(invitations, e.invited.Sub(e.accepted))
		signs = append(signs, e.signTook)
		finals = append(finals, final.at.Sub(e.signedAt))
		if final.at.After(last) {
			last = final.at
		}
	}
	loadAfter := loadAverage()
	failed = false

	fmt.Printf("load: %d submissions of %s (%d bytes; a %.1f MB mail) with one signer each, %d signers at once, store %s, %d replica(s)\n",
		o.n, filepath.Base(pdfPath), len(pdf), float64(len(sample))/1e6, lo.signers, o.store, len(g.replicas))
	fmt.Printf("  load average (1 min) %s before, %s after; %d CPUs; %s\n", loadBefore, loadAfter, runtime.NumCPU(), g.placement())
	fmt.Print(fl)
	mailedHow := "as fast as Postfix took them"
	if lo.rate > 0 {
		mailedHow = fmt.Sprintf("at %g a second", lo.rate)
	}
	through := float64(o.n) / last.Sub(start).Seconds()
	fmt.Printf("  submissions mailed %s over %d connections in %.1f s; all completed (final mail in the signer's mailbox) after %.1f s\n",
		mailedHow, submitConnections, mailed.Seconds(), last.Sub(start).Seconds())
	fmt.Printf("  throughput %.1f envelopes/s submitted -> completed = %.2f x the %.1f/s the raw Postfix rates allow for %d small and %d large mails an envelope\n",
		through, through/fl.envelopesPerSecond(), fl.envelopesPerSecond(), smallMails, largeMails)
	fmt.Printf("    (targets: mail sending >= 0.9 x the raw Postfix rate; redis >= 0.8 x bolt on one replica, and three replicas > one)\n")
	printQuantiles("mail -> invitation in the signer's mailbox", invitations, "p50 <= 700 ms, p99 <= 1500 ms")
	printQuantiles(fmt.Sprintf("sign request (%d signers waiting, at most %d between code and signature at once)", lo.signers, acting.peak.Load()),
		signs, "p99 <= 100 ms with 200 signers at once")
	printQuantiles("last signature -> final mail in the signer's mailbox", finals, "p50 <= 2000 ms")
	for i, r := range g.replicas {
		peak, anon, file, err := r.memory()
		if err != nil {
			return err
		}
		used, err := r.cpu()
		if err != nil {
			return err
		}
		used -= cpuBefore[i]
		fmt.Printf("  serve replica %d: peak RSS (VmHWM) %.0f MB; resident at the end: %.0f MB anonymous, %.0f MB of mapped files; "+
			"CPU %.1f s over the run = %.0f ms an envelope\n",
			i, float64(peak)/1e6, float64(anon)/1e6, float64(file)/1e6, used.Seconds(), ms(used)/float64(o.n))
	}
	return nil
}

// printQuantiles prints p50, p90, p99 and max of took beside the target.
func printQuantiles(what string, took []time.Duration, target string) {
	slices.Sort(took)
	fmt.Printf("  %s: p50 %.0f ms  p90 %.0f ms  p99 %.0f ms  max %.0f ms  (target %s)\n", what,
		ms(quantile(took, 0.50)), ms(quantile(took, 0.90)), ms(quantile(took, 0.99)), ms(took[len(took)-1]), target)
}

// signerAddress is the address of the signer of submission i: a mailbox of its own for
// the gateway, the signer's mailbox for Dovecot, which files "+tag" addresses under the
// plain local part (one Maildir to watch).
func signerAddress(i int) string { return fmt.Sprintf("%s+e%d@example.com", signer, i) }

// loadEnvelope is one submission of the load scenario and what its signer saw.
type loadEnvelope struct {
	id, msgID string
	// submitted is closed once Postfix accepted the submission, at accepted.
	submitted chan struct{}
	accepted  time.Time
	// mails are the gateway's mails to the signer, in the order they landed.
	mails chan gatewayMail
	// invited is when the invitation landed; signedAt when the signature's
	// answer came, after signTook.
	invited, signedAt time.Time
	signTook          time.Duration
}

// sign plays submission i's signer: she waits for the invitation, asks for a code, waits
// for it and signs over the JSON API of the replica her link names.
func (e *loadEnvelope) sign(ctx context.Context, i int, benchFor func(base string) *bench, acting *concurrency) error {
	<-e.submitted
	inv, err := e.wait(ctx, invitationMail, 2*time.Minute)
	if err != nil {
		return err
	}
	e.invited = inv.at
	defer acting.enter()()
	b := benchFor(inv.base)
	l := link{envelopeID: e.id, token: inv.token, ip: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}
	if err := b.do(ctx, l, "POST", "/api/v1/sign/"+l.token+"/code", nil); err != nil {
		return err
	}
	code, err := e.wait(ctx, codeMail, 2*time.Minute)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := b.do(ctx, l, "POST", "/api/v1/sign/"+l.token+"/sign", map[string]any{"code": code.code, "consent": true}); err != nil {
		return err
	}
	e.signedAt = time.Now()
	e.signTook = e.signedAt.Sub(t0)
	return nil
}

// concurrency counts who is inside a section at once, and the most there were.
type concurrency struct {
	now, peak atomic.Int64
}

// enter counts one more inside; the function it returns counts one out.
func (c *concurrency) enter() (leave func()) {
	n := c.now.Add(1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
	return func() { c.now.Add(-1) }
}

// wait returns the envelope's next mail to the signer, which must be of kind.
func (e *loadEnvelope) wait(ctx context.Context, kind mailKind, timeout time.Duration) (gatewayMail, error) {
	select {
	case m := <-e.mails:
		if m.kind != kind {
			return m, fmt.Errorf("envelope %s: the signer got %s where %s was due", e.id, m.kind, kind)
		}
		return m, nil
	case <-time.After(timeout):
		return gatewayMail{}, fmt.Errorf("envelope %s: no %s in the signer's mailbox after %v: %w", e.id, kind, timeout, errTimeout)
	case <-ctx.Done():
		return gatewayMail{}, context.Cause(ctx)
	}
}

// mailKind is what a mail of the gateway to a signer is for.
type mailKind string

const (
	invitationMail mailKind = "an invitation"
	codeMail       mailKind = "a one-time code"
	finalMail      mailKind = "the final mail"
)

// gatewayMail is a mail of the gateway to a signer, as found in her mailbox at at.
type gatewayMail struct {
	kind mailKind
	at   time.Time
	// base and token make the invitation's signing link base/s/token; code is
	// the code mail's code.
	base, token, code string
}

var (
	signingLink = regexp.MustCompile(`(https?://[^/\s]+)/s/([A-Za-z0-9_-]{20,})`)
	oneTimeCode = regexp.MustCompile(`(?m)^\s*(\d{6})\s*$`)
	// downloadLink is the final files' link in a final mail over the attachment limit.
	downloadLink = regexp.MustCompile(`https?://[^/\s]+/d/[A-Za-z0-9_-]{20,}`)
)

// watchMaildir watches the Maildir folder dir (a "new" folder) every 2 ms until ctx ends,
// reads each message as it lands, hands it to its envelope of byID and moves it to the
// Maildir's "cur" folder, as a mail client does, so that each look reads only new names.
func watchMaildir(ctx context.Context, dir string, byID map[string]*loadEnvelope) error {
	cur := filepath.Join(filepath.Dir(dir), "cur")
	for ctx.Err() == nil {
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		now := time.Now()
		for _, entry := range entries {
			path := filepath.Join(dir, entry.Name())
			m, envID, err := readGatewayMail(path)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			m.at = now
			if e := byID[envID]; e != nil {
				e.mails <- m
			}
			if err := os.Rename(path, filepath.Join(cur, entry.Name()+":2,S")); err != nil {
				return err
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// readGatewayMail reads the gateway's mail at path (see parseGatewayMail).
func readGatewayMail(path string) (m gatewayMail, envID string, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return m, "", err
	}
	return parseGatewayMail(raw)
}

// parseGatewayMail reads a mail of the gateway to a signer: its envelope, and what it is
// for, from its shape: a final mail carries files (or, over the attachment limit, a
// download link), a code mail a line of six digits, an invitation a signing link.
func parseGatewayMail(raw []byte) (m gatewayMail, envID string, err error) {
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		return m, "", err
	}
	envID = r.Header.Get("X-Parapheur-Envelope")
	if ct, _, _ := r.Header.ContentType(); ct == "multipart/mixed" {
		m.kind = finalMail
		return m, envID, nil
	}
	var text string
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return m, envID, err
		}
		if h, ok := p.Header.(*mail.InlineHeader); ok {
			if ct, _, _ := h.ContentType(); ct == "text/plain" {
				b, err := io.ReadAll(p.Body)
				if err != nil {
					return m, envID, err
				}
				text = string(b)
				break
			}
		}
	}
	if code := oneTimeCode.FindStringSubmatch(text); code != nil {
		m.kind, m.code = codeMail, code[1]
		return m, envID, nil
	}
	if l := signingLink.FindStringSubmatch(text); l != nil {
		m.kind, m.base, m.token = invitationMail, l[1], l[2]
		return m, envID, nil
	}
	if downloadLink.MatchString(text) {
		m.kind = finalMail
		return m, envID, nil
	}
	return m, envID, fmt.Errorf("a mail of the gateway (%q) with neither files, a code, a signing link nor a download link:\n%.2000s",
		r.Header.Get("Subject"), text)
}

// floors are the raw rates of the mail servers, measured before the gateway's run.
type floors struct {
	smallRate, largeRate, fetchMoveRate float64
	largeSize, moved                    int
}

// measureFloors measures on g's mail servers the raw Postfix acceptance rate over
// senderConnections connections, of n small mails then of n copies of sample (a
// submission), and the raw Dovecot fetch+move rate of those copies, pollerBatch at a time.
func measureFloors(g *gateway, n int, sample []byte) (floors, error) {
	f := floors{largeSize: len(sample)}
	var err error
	if f.smallRate, err = rawSMTPAccept(g.mail.SMTPAddr(), senderConnections, n, agent, "sink@example.com", smallMail()); err != nil {
		return f, err
	}
	if err := g.mail.WaitDelivered(5 * time.Minute); err != nil {
		return f, err
	}
	if f.largeRate, err = rawSMTPAccept(g.mail.SMTPAddr(), senderConnections, n, agent, floorMailbox+"@example.com", sample); err != nil {
		return f, err
	}
	if err := g.mail.WaitDelivered(5 * time.Minute); err != nil {
		return f, err
	}
	f.moved, f.fetchMoveRate, err = rawIMAPFetchMove(g.mail.IMAPAddr(), floorMailbox, g.mail.Password(), pollerBatch)
	if err == nil && f.moved != n {
		err = fmt.Errorf("the raw IMAP client found %d of the %d floor mails in the INBOX", f.moved, n)
	}
	return f, err
}

// smallMail is a mail of about the size of the gateway's mails without attachments, for
// the raw Postfix floor.
func smallMail() []byte {
	return []byte(fmt.Sprintf("From: <%s>\r\nTo: <sink@example.com>\r\nSubject: floor\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", agent, strings.Repeat("Lorem ipsum dolor sit amet.\r\n", smallMailBytes/29)))
}

// envelopesPerSecond is how many envelopes a second the raw Postfix rates allow, at
// smallMails and largeMails mails an envelope.
func (f floors) envelopesPerSecond() float64 {
	return 1 / (smallMails/f.smallRate + largeMails/f.largeRate)
}

func (f floors) String() string {
	return fmt.Sprintf("  floors: raw Postfix acceptance over %d connections: %.0f mails/s of %d KB, %.1f mails/s of %.1f MB; "+
		"raw Dovecot fetch+move, %d at a time: %.1f mails/s of %.1f MB (%d mails)\n",
		senderConnections, f.smallRate, smallMailBytes>>10, f.largeRate, float64(f.largeSize)/1e6,
		pollerBatch, f.fetchMoveRate, float64(f.largeSize)/1e6, f.moved)
}

// loadAverage is the 1-minute load average (the first field of /proc/loadavg), "?" where
// there is none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
