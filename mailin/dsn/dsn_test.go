package dsn

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func report(status, returned string) string {
	s := "From: MAILER-DAEMON@mx.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nbounced\r\n" +
		"--b\r\nContent-Type: message/delivery-status\r\n\r\n" + status + "\r\n"
	if returned != "" {
		s += "--b\r\nContent-Type: message/rfc822\r\n\r\n" + returned + "\r\n"
	}
	return s + "--b--\r\n"
}

func TestParse(t *testing.T) {
	// No blank line after the last block, a folded Diagnostic-Code, a
	// Status with a comment, a returned message without a body.
	raw := report("Reporting-MTA: dns; mx.example\r\n\r\n\r\nFinal-Recipient: RFC822; <Marie@Partner.example>\r\n"+
		"Action: Failed\r\nStatus: 5.2.2 (mailbox full)\r\nDiagnostic-Code: smtp; 552 5.2.2\r\n  Mailbox full",
		"Message-ID: <inv-1@org.example>\r\nX-Parapheur-Envelope:  env-1 \r\nSubject: x")
	got, err := Parse(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := &Report{
		ReportingMTA: "dns; mx.example",
		Recipients: []Recipient{{FinalRecipient: "Marie@Partner.example", Action: "failed", Status: "5.2.2",
			DiagnosticCode: "smtp; 552 5.2.2 Mailbox full"}},
		OriginalMessageID: "inv-1@org.example",
		OriginalEnvelope:  "env-1",
		Text:              "bounced",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", got, want)
	}
	if !got.Recipients[0].Failed() {
		t.Error("a failed recipient is not Failed")
	}
	if (Recipient{Action: "delayed", Status: "4.4.7"}).Failed() {
		t.Error("a delayed recipient is Failed")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name, raw, want string
		notDSN          bool
	}{
		{"plain mail", "From: a@b.example\r\n\r\nhello", `not a delivery status notification: Content-Type is "", not multipart/report`, true},
		{"read receipt", "From: a@b.example\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n--b--\r\n",
			`report-type is "disposition-notification", not delivery-status`, true},
		{"no status part", "From: a@b.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n",
			"the report has no message/delivery-status part", false},
		{"no recipient", report("Reporting-MTA: dns; mx.example\r\n", ""), "part 2 (message/delivery-status): no per-recipient fields", false},
		{"recipient without status", report("Reporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\nAction: failed\r\n", ""),
			"part 2 (message/delivery-status): recipient 1 lacks Final-Recipient, Action or Status", false},
		{"garbage fields", report("Reporting-MTA: dns; x\r\n\r\nthis is not a field\r\n", ""), "part 2 (message/delivery-status): block 2: ", false},
		{"unterminated multipart", "From: a@b.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx",
			"part 1: decoding the content: unexpected EOF", false},
	} {
		_, err := Parse(strings.NewReader(tt.raw))
		if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, ErrNotDSN) != tt.notDSN {
			t.Errorf("%s: Parse error = %v, want one containing %q (ErrNotDSN %v)", tt.name, err, tt.want, tt.notDSN)
		}
	}
}
