package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/parapheur/parapheur/workflow/engine"
)

// signer receives every invitation; her Maildir is watched.
const signer = "alice"

// latency measures, one submission at a time, the time from Postfix accepting a
// submission to the signer's invitation landing in her Maildir.
func latency(o options, pdfPath string, interval time.Duration) error {
	pdf, err := os.ReadFile(pdfPath)
	if err != nil {
		return fmt.Errorf("%v (run from the repository's top folder, or name a PDF with -pdf)", err)
	}
	g, err := startGateway(o)
	if err != nil {
		return err
	}
	failed := true
	defer func() { g.stop(failed || o.verbose) }()

	inbox := filepath.Join(g.mail.Maildir(signer), "new")
	seen := map[string]bool{}
	run := time.Now().UnixNano()
	took := make([]time.Duration, 0, o.n)
	for i := range o.n {
		msgID := fmt.Sprintf("<bench-%d-%d@example.com>", run, i)
		start := time.Now()
		if err := g.send(agent, submission(msgID, fmt.Sprintf("Convention %d", i), signer+"@example.com", pdf)); err != nil {
			return fmt.Errorf("submission %d: %w", i, err)
		}
		accepted := time.Now()
		arrived, err := waitInvitation(inbox, engine.EnvelopeID(strings.ToLower(msgID)), seen, 30*time.Second)
		if err != nil {
			return fmt.Errorf("submission %d (%s): %w", i, msgID, err)
		}
		took = append(took, arrived.Sub(accepted))
		if o.verbose {
			fmt.Printf("%3d  smtp %6.1f ms  to invitation %6.1f ms\n", i, ms(accepted.Sub(start)), ms(arrived.Sub(accepted)))
		}
		time.Sleep(interval)
	}
	failed = false
	slices.Sort(took)
	fmt.Printf("mail -> invitation, %d submissions one at a time, store %s:\n", len(took), o.store)
	fmt.Printf("  p50 %.0f ms  p90 %.0f ms  p99 %.0f ms  max %.0f ms\n",
		ms(quantile(took, 0.50)), ms(quantile(took, 0.90)), ms(quantile(took, 0.99)), ms(took[len(took)-1]))
	return nil
}

// submission is a mail from the agent with one PDF and one signer, Alice Martin at
// signerAddress.
func submission(msgID, subject, signerAddress string, pdf []byte) string {
	return fmt.Sprintf("From: Bob Agent <%s>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\n"+
		"Date: %s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSignataire : Alice Martin <%s>\r\n"+
		"--b\r\nContent-Type: application/pdf; name=convention.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n--b--\r\n",
		agent, gatewayAddress, subject, msgID, time.Now().Format(time.RFC1123Z), signerAddress, base64Lines(pdf))
}

// base64Lines is b in base64, in lines of 76 characters (RFC 2045 §6.8).
func base64Lines(b []byte) string {
	enc := base64.StdEncoding.EncodeToString(b)
	var s strings.Builder
	s.Grow(len(enc) + len(enc)/76*2 + 2)
	for len(enc) > 76 {
		s.WriteString(enc[:76])
		s.WriteString("\r\n")
		enc = enc[76:]
	}
	s.WriteString(enc)
	return s.String()
}

// waitInvitation watches the Maildir folder dir until a message for envelope envID
// appears in it and returns when it was first seen. seen holds the files already
// read, so each is read once.
func waitInvitation(dir, envID string, seen map[string]bool, timeout time.Duration) (time.Time, error) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			return time.Time{}, err
		}
		now := time.Now()
		for _, e := range entries {
			if seen[e.Name()] {
				continue
			}
			seen[e.Name()] = true
			if header(filepath.Join(dir, e.Name())).Get("X-Parapheur-Envelope") == envID {
				return now, nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("no invitation in %s after %v: %w", dir, timeout, errTimeout)
}

// header reads the header of the message file at path; an unreadable one is empty.
func header(path string) textproto.MIMEHeader {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	h, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(b))).ReadMIMEHeader()
	return h
}

// quantile is the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
