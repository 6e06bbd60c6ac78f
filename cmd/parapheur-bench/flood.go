package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// defaultMaxMessageBytes is limits.max_message_bytes when not configured, which the
// benchmark leaves alone.
const defaultMaxMessageBytes = 50 << 20

// flood mails o.n large submissions at once and reports the gateway's peak memory once
// they have all left its inbox.
func flood(o options, size int, kind string) error {
	var from, name, contentType string
	var attachment []byte
	switch kind {
	case "pdf", "stranger":
		from, name, contentType, attachment = agent, "convention.pdf", "application/pdf", bigPDF(size)
		if kind == "stranger" {
			from = "mallory@example.net"
		}
	case "junk":
		from, name, contentType, attachment = agent, "archive.bin", "application/octet-stream", random(size)
	default:
		return fmt.Errorf("-kind %q: want pdf, junk or stranger", kind)
	}
	body := base64Lines(attachment)
	g, err := startGateway(o)
	if err != nil {
		return err
	}
	failed := true
	defer func() { g.stop(failed || o.verbose) }()
	baseline, _, _, err := g.memory()
	if err != nil {
		return err
	}

	start := time.Now()
	errs := make(chan error, o.n)
	var wg sync.WaitGroup
	for i := range o.n {
		msg := fmt.Sprintf("From: <%s>\r\nTo: %s\r\nSubject: Flood %d\r\nMessage-ID: <flood-%d-%d@example.com>\r\n"+
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
			"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSignataire : alice@example.com\r\n"+
			"--b\r\nContent-Type: %s; name=%s\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n--b--\r\n",
			from, gatewayAddress, i, start.UnixNano(), i, contentType, name, body)
		wg.Go(func() { errs <- g.send(from, msg) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return fmt.Errorf("mailing the flood: %w", err)
		}
	}
	mailed := time.Since(start)
	if err := waitHandled(g, o.n, 10*time.Minute); err != nil {
		return err
	}
	peak, anon, file, err := g.memory()
	if err != nil {
		return err
	}
	failed = false
	fmt.Printf("flood of %d %s mails of %.1f MB (attachment %.1f MB), store %s:\n", o.n, kind,
		float64(len(body))/1e6, float64(size)/1e6, o.store)
	fmt.Printf("  mailed in %.1f s, all handled after %.1f s\n", mailed.Seconds(), time.Since(start).Seconds())
	fmt.Printf("  serve peak RSS %.0f MB (%.0f MB when idle) = %.2f x limits.max_message_bytes (%d MiB)\n",
		float64(peak)/1e6, float64(baseline)/1e6, float64(peak)/defaultMaxMessageBytes, defaultMaxMessageBytes>>20)
	fmt.Printf("  resident at the end: %.0f MB anonymous, %.0f MB of mapped files\n", float64(anon)/1e6, float64(file)/1e6)
	return nil
}

// waitHandled waits until the gateway's inbox is empty and n mails are in its
// processed and quarantine folders together.
func waitHandled(g *gateway, n int, timeout time.Duration) error {
	c, err := imapclient.DialInsecure(g.mail.IMAPAddr(), nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login("parapheur", g.mail.Password()).Wait(); err != nil {
		return err
	}
	count := func(mailbox string) uint32 {
		st, err := c.Status(mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil || st.NumMessages == nil {
			return 0 // not created yet
		}
		return *st.NumMessages
	}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if count("INBOX") == 0 && int(count("Processed")+count("Quarantine")) >= n {
			return nil
		}
	}
	return fmt.Errorf("the gateway had not handled %d mails after %v: %w", n, timeout, errTimeout)
}

// bigPDF is a valid one-page PDF of about size bytes: an image of random bytes, which
// no compression shrinks, on its page.
func bigPDF(size int) []byte {
	var b bytes.Buffer
	var offsets []int
	object := func(format string, args ...any) {
		offsets = append(offsets, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n", len(offsets))
		fmt.Fprintf(&b, format, args...)
		b.WriteString("\nendobj\n")
	}
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	object("<< /Type /Catalog /Pages 2 0 R >>")
	object("<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
	object("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /XObject << /Im1 5 0 R >> >> >>")
	draw := "q 595 0 0 842 0 0 cm /Im1 Do Q"
	object("<< /Length %d >>\nstream\n%s\nendstream", len(draw), draw)
	width := 4096
	pixels := random(max(width, size/width*width))
	object("<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 /Length %d >>\nstream\n%s\nendstream",
		width, len(pixels)/width, len(pixels), pixels)
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	return b.Bytes()
}

// random is n bytes of a fast non-cryptographic generator: test data only.
func random(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{}).Read(b)
	return b
}
