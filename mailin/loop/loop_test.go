package loop

import (
	"bufio"
	"strings"
	"testing"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

func header(t *testing.T, fields string) mail.Header {
	t.Helper()
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(fields + "\r\n")))
	if err != nil {
		t.Fatalf("header %q: %v", fields, err)
	}
	return mail.HeaderFromMap(h.Map())
}

func TestAutomatic(t *testing.T) {
	const gateway = "parapheur@org.example"
	for _, tt := range []struct{ fields, want string }{
		{"From: Marie <marie@partner.example>\r\nAuto-Submitted: no\r\n", ""},
		{"From: marie@partner.example\r\nPrecedence: first-class\r\n", ""},
		{"From: marie@partner.example\r\nReturn-Path: <marie@partner.example>\r\n", ""},
		{"From: noreply@partner.example\r\n", ""},
		{"From: marie@partner.example\r\nAuto-Submitted: auto-replied\r\n", "Auto-Submitted: auto-replied"},
		{"From: marie@partner.example\r\nAuto-Submitted: Auto-Generated; owner-email=\"x@y\"\r\n", "Auto-Submitted: auto-generated"},
		{"From: marie@partner.example\r\nAuto-Submitted: auto-notified (vacation)\r\n", "Auto-Submitted: auto-notified"},
		{"From: marie@partner.example\r\nPrecedence: Bulk\r\n", "Precedence: bulk"},
		{"From: marie@partner.example\r\nPrecedence: list\r\n", "Precedence: list"},
		{"From: marie@partner.example\r\nPrecedence: junk\r\n", "Precedence: junk"},
		{"From: marie@partner.example\r\nList-Id: <legal.partner.example>\r\n", "List-Id present"},
		{"From: marie@partner.example\r\nReturn-Path: <>\r\n", "null Return-Path (<>)"},
		{"From: marie@partner.example\r\nX-Autoreply: yes\r\n", "X-Autoreply present"},
		{"From: marie@partner.example\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n", "Content-Type: multipart/report"},
		{"From: MAILER-DAEMON@mx.partner.example (Mail Delivery System)\r\n", "From: MAILER-DAEMON@mx.partner.example is a mail system address"},
		{"From: Postmaster <postmaster@partner.example>\r\n", "From: postmaster@partner.example is a mail system address"},
		{"From: MAILER-DAEMON\r\n", "From: MAILER-DAEMON is a mail system address"},
		{"From: Parapheur <Parapheur@ORG.example>\r\n", "From: Parapheur@ORG.example is the gateway itself"},
		{"From: parapheur+direction@org.example\r\n", "From: parapheur+direction@org.example is the gateway itself"},
		{"From: parapheur@other.example\r\n", ""},
	} {
		reason, automatic := Automatic(header(t, tt.fields), gateway)
		if reason != tt.want || automatic != (tt.want != "") {
			t.Errorf("Automatic(%q) = %q, %v; want %q", tt.fields, reason, automatic, tt.want)
		}
	}
}
