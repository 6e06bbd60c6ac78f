// Package dsn reads delivery status notifications (RFC 3464, carried in a
// multipart/report of RFC 6522) so that a bounce can be matched to the
// gateway's outgoing message and to the recipient it concerns.
//
// The gateway marks each mail it sends with an X-Parapheur-Envelope header;
// the returned message (message/rfc822) or its header
// (text/rfc822-headers) gives it back along with the Message-ID. Anyone can
// write a report, and these fields with it: the gateway believes a report
// only at the tagged return path of one of its mails (package mailid).
package dsn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // human-readable parts in any charset
	"github.com/emersion/go-message/textproto"

	"github.com/parapheur/parapheur/mailin/message"
)

// EnvelopeHeader is the header field naming the envelope in every mail
// the gateway sends.
const EnvelopeHeader = "X-Parapheur-Envelope"

// ErrNotDSN is returned (wrapped) for a message that is not a delivery
// status notification, such as a read receipt or an ordinary mail.
var ErrNotDSN = errors.New("not a delivery status notification")

// Report is a delivery status notification.
type Report struct {
	// ReportingMTA is the server that wrote the report, e.g. "dns;
	// mx.partner.example".
	ReportingMTA string
	// Recipients are the per-recipient results.
	Recipients []Recipient
	// OriginalMessageID is the Message-ID of the returned message, without
	// angle brackets; empty when the report returned nothing.
	OriginalMessageID string
	// OriginalEnvelope is the X-Parapheur-Envelope of the returned
	// message; empty when it was not the gateway's.
	OriginalEnvelope string
	// Text is the human-readable explanation, the report's first text part.
	Text string
}

// Recipient is the delivery result for one recipient.
type Recipient struct {
	// FinalRecipient is the address the reporting server tried, without
	// its address type ("rfc822;").
	FinalRecipient string
	// OriginalRecipient is the address as the gateway sent it, when given.
	OriginalRecipient string
	// Action is "failed", "delayed", "delivered", "relayed" or "expanded".
	Action string
	// Status is the RFC 3463 status code, e.g. "5.1.1".
	Status string
	// DiagnosticCode is the remote server's answer, e.g. "smtp; 550 5.1.1
	// <x@y>: Recipient address rejected".
	DiagnosticCode string
	// RemoteMTA is the server that gave the answer, when given.
	RemoteMTA string
}

// Failed reports whether delivery to the recipient failed for good.
func (r Recipient) Failed() bool {
	return r.Action == "failed" || strings.HasPrefix(r.Status, "5.")
}

// Parse reads a delivery status notification from a whole message.
func Parse(r io.Reader) (*Report, error) {
	e, err := gomessage.Read(r)
	if err != nil && !message.Tolerable(err) {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	t, params, err := e.Header.ContentType()
	if err != nil || t != "multipart/report" {
		return nil, fmt.Errorf("%w: Content-Type is %q, not multipart/report", ErrNotDSN, e.Header.Get("Content-Type"))
	}
	if rt := strings.ToLower(params["report-type"]); rt != "delivery-status" && rt != "global-delivery-status" {
		return nil, fmt.Errorf("%w: report-type is %q, not delivery-status", ErrNotDSN, params["report-type"])
	}
	rep := &Report{}
	found := false
	mr := e.MultipartReader()
	for i := 1; ; i++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil && !message.Tolerable(err) {
			return nil, fmt.Errorf("part %d: %w", i, err)
		}
		data, err := io.ReadAll(part.Body)
		if err != nil {
			return nil, fmt.Errorf("part %d: decoding the content: %w", i, err)
		}
		t, _, _ := part.Header.ContentType()
		switch t {
		case "message/delivery-status", "message/global-delivery-status":
			if err := rep.readStatus(data); err != nil {
				return nil, fmt.Errorf("part %d (%s): %w", i, t, err)
			}
			found = true
		case "message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers":
			if err := rep.readReturned(data); err != nil {
				return nil, fmt.Errorf("part %d (%s): %w", i, t, err)
			}
		case "text/plain":
			if rep.Text == "" {
				rep.Text = text(data)
			}
		case "multipart/alternative":
			// Exchange puts its explanation in an alternative of its own.
			if rep.Text == "" {
				rep.Text = firstText(part.Header, data)
			}
		}
	}
	if !found {
		return nil, errors.New("the report has no message/delivery-status part")
	}
	return rep, nil
}

// readStatus reads the delivery-status fields: one block of per-message
// fields, then one block per recipient, separated by blank lines.
func (rep *Report) readStatus(data []byte) error {
	br := bufio.NewReader(bytes.NewReader(data))
	for block := 0; ; block++ {
		if !skipBlankLines(br) {
			break
		}
		h, err := textproto.ReadHeader(br)
		if err != nil {
			return fmt.Errorf("block %d: %w", block+1, err)
		}
		if block == 0 {
			rep.ReportingMTA = h.Get("Reporting-MTA")
			continue
		}
		rep.Recipients = append(rep.Recipients, Recipient{
			FinalRecipient:    address(h.Get("Final-Recipient")),
			OriginalRecipient: address(h.Get("Original-Recipient")),
			Action:            strings.ToLower(strings.TrimSpace(h.Get("Action"))),
			Status:            statusCode(h.Get("Status")),
			DiagnosticCode:    strings.Join(strings.Fields(h.Get("Diagnostic-Code")), " "),
			RemoteMTA:         strings.TrimSpace(h.Get("Remote-MTA")),
		})
	}
	if len(rep.Recipients) == 0 {
		return errors.New("no per-recipient fields (Final-Recipient, Action, Status)")
	}
	for i, r := range rep.Recipients {
		if r.FinalRecipient == "" || r.Action == "" || r.Status == "" {
			return fmt.Errorf("recipient %d lacks Final-Recipient, Action or Status", i+1)
		}
	}
	return nil
}

// skipBlankLines consumes blank lines and reports whether anything follows.
func skipBlankLines(br *bufio.Reader) bool {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return false
		}
		if b[0] != '\r' && b[0] != '\n' && b[0] != ' ' && b[0] != '\t' {
			return true
		}
		if _, err := br.ReadByte(); err != nil {
			return false
		}
	}
}

// address strips the address type of an RFC 3464 address field
// ("rfc822; marie@partner.example") and any angle brackets.
func address(v string) string {
	if _, a, ok := strings.Cut(v, ";"); ok {
		v = a
	}
	return strings.Trim(strings.TrimSpace(v), "<>")
}

// statusCode returns the RFC 3463 code of a Status field, without the
// comment some servers add ("5.1.1 (bad destination mailbox)").
func statusCode(v string) string {
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}

// readReturned reads the header of the returned message.
func (rep *Report) readReturned(data []byte) error {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(data)))
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("reading the returned header: %w", err)
	}
	if ids := message.IDs(h.Get("Message-Id")); len(ids) > 0 {
		rep.OriginalMessageID = ids[0]
	}
	rep.OriginalEnvelope = strings.TrimSpace(h.Get(EnvelopeHeader))
	return nil
}

// firstText returns the first text/plain part of a multipart.
func firstText(h gomessage.Header, data []byte) string {
	e, err := gomessage.New(h, bytes.NewReader(data))
	if err != nil && !message.Tolerable(err) {
		return ""
	}
	mr := e.MultipartReader()
	if mr == nil {
		return ""
	}
	for {
		part, err := mr.NextPart()
		if err != nil && !message.Tolerable(err) {
			return ""
		}
		if t, _, _ := part.Header.ContentType(); t == "text/plain" {
			data, _ := io.ReadAll(part.Body)
			return text(data)
		}
	}
}

// text returns a text part with "\n" line ends and no surrounding blank
// lines.
func text(data []byte) string {
	return strings.TrimSpace(strings.ReplaceAll(string(data), "\r\n", "\n"))
}
