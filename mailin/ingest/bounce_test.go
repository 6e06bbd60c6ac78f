package ingest

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/parapheur/parapheur/mailin/poller"
	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
)

// report is a delivery status notification, as Postfix writes one, to the
// address to, of a failure to deliver to final (and original, when not
// empty); its returned header names envelope envID as the gateway's mails
// do.
func report(to, envID, final, original string) []byte {
	orcpt := ""
	if original != "" {
		orcpt = "Original-Recipient: rfc822; " + original + "\r\n"
	}
	return []byte("From: MAILER-DAEMON@mx.org.example (Mail Delivery System)\r\nTo: " + to + "\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <" + strings.NewReplacer("@", ".", "+", ".", "=", ".").Replace(to+final) + "@mx.org.example>\r\n" +
		"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n" +
		"--r\r\nContent-Type: text/plain\r\n\r\nI'm sorry.\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.org.example\r\n\r\n" +
		"Final-Recipient: rfc822; " + final + "\r\n" + orcpt + "Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n" +
		"--r\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <x@org.example>\r\nX-Parapheur-Envelope: " + envID + "\r\n\r\n--r--\r\n")
}

// delivered is raw as the receiving MTA delivers it to the address at.
func delivered(at string, raw []byte) []byte {
	return append([]byte("Delivered-To: "+at+"\r\nReturn-Path: <>\r\n"), raw...)
}

// returnPath is the return path of the gateway's mails to recipient rid of
// envelope envID, tagged with key.
func returnPath(t testing.TB, key []byte, envID, rid string) string {
	t.Helper()
	addr, err := mailid.ReturnPath(key, "parapheur@org.example", envID, rid)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// submitted submits an envelope from agent@org.example with signers marie
// (r1) and paul (r2), drains the outbox and returns the envelope.
func (f fixture) submitted(t *testing.T) *workflow.Envelope {
	t.Helper()
	if dest, reason := f.handle(t, withPDF("agent@org.example", "Signataire: Marie <marie@partner.example>\nSignataire: paul@partner.example", corpus(t, "doc1.pdf"))); dest != poller.Processed {
		t.Fatalf("submission refused: %s", reason)
	}
	f.queued(t)
	page, err := f.e.Store.List(context.Background(), store.ListQuery{})
	if err != nil || len(page.Envelopes) != 1 {
		t.Fatalf("envelopes: %v %v", page, err)
	}
	f.logs.take(t)
	return page.Envelopes[0]
}

// TestForgedBounces checks that a delivery report counts only at the
// tagged return path of a mail the gateway sent, naming that mail's
// recipient: the envelope ID is in every mail the gateway sends, so
// anything else is a forgery, logged and ignored.
func TestForgedBounces(t *testing.T) {
	f := newFixture(t)
	env := f.submitted(t)
	verp := returnPath(t, returnPathKey, env.ID, "r1")
	for _, tc := range []struct{ name, arrivedAt, final, why string }{
		{"to the plain address", "parapheur@org.example", "marie@partner.example", "not delivered to a return path"},
		{"to a return path without a tag", "parapheur+bounce-" + env.ID + "=r1@org.example", "marie@partner.example", "does not verify"},
		{"to a return path with another key's tag", returnPath(t, bytes.Repeat([]byte{1}, mailid.KeySize), env.ID, "r1"), "marie@partner.example", "does not verify"},
		{"to marie's return path naming paul", verp, "paul@partner.example", "names another recipient"},
		{"to the return path of a recipient the envelope lacks", returnPath(t, returnPathKey, env.ID, "r7"), "marie@partner.example", "no such recipient"},
		{"to the return path of another envelope", returnPath(t, returnPathKey, "E0123456789ABCDEFGHIJ", "r1"), "marie@partner.example", "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if dest, reason := f.handle(t, delivered(tc.arrivedAt, report(tc.arrivedAt, env.ID, tc.final, ""))); dest != poller.Processed {
				t.Fatalf("DSN: %v %s; want Processed", dest, reason)
			}
			got, err := f.e.Store.Get(context.Background(), env.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range got.Recipients {
				if r.DeliveryFailure != "" {
					t.Errorf("a forged report recorded a bounce for %s: %q", r.ID, r.DeliveryFailure)
				}
			}
			if jobs := f.queued(t); len(jobs) != 0 {
				t.Errorf("a forged report queued %s", notices(jobs))
			}
			lines := f.logged(t, "ingest: delivery report ignored", map[string]any{"level": "WARN"})
			if len(lines) != 1 || !strings.Contains(lines[0]["why"].(string), tc.why) {
				t.Errorf("logged %v; want one Warn saying %q", lines, tc.why)
			}
		})
	}
	// A forged To does not hide where the report arrived: the receiving
	// MTA's Delivered-To comes first, and the To's tag is checked anyway.
	t.Run("a wrong tag in Delivered-To beside a genuine To", func(t *testing.T) {
		forged := delivered("parapheur+bounce-"+env.ID+"=r1.aaaaaaaaaaaaa@org.example", report(verp, env.ID, "marie@partner.example", ""))
		if f.handle(t, forged); len(f.queued(t)) != 1 {
			t.Error("a genuine To with a forged Delivered-To: the genuine return path was not found")
		}
	})
}

// TestCancelIsLogged checks that a cancellation by reply leaves a log line.
func TestCancelIsLogged(t *testing.T) {
	f := newFixture(t)
	env := f.submitted(t)
	root, err := mailid.ThreadRoot("org.example", env.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	cancel := rawMail("agent@org.example", "RE: Enregistré", "In-Reply-To: <ack@org.example>\r\nReferences: <"+root+"> <ack@org.example>\r\n", "ANNULER\r\n")
	if dest, reason := f.handle(t, cancel); dest != poller.Processed {
		t.Fatalf("cancel: %v %s", dest, reason)
	}
	if got, _ := f.e.Store.Get(context.Background(), env.ID); got.State != workflow.StateCancelled {
		t.Fatalf("after ANNULER: %s", got.State)
	}
	if lines := f.logged(t, "ingest: reply command applied", map[string]any{"level": "INFO", "envelope": env.ID, "recipient": "", "command": "cancel", "from": "agent@org.example"}); len(lines) != 1 {
		t.Errorf("the cancellation was logged %d times at Info with its envelope and command", len(lines))
	}
	f.queued(t)
	// Another ANNULER is told that the envelope is already cancelled.
	again := rawMail("agent@org.example", "RE: Enregistré", "In-Reply-To: <ack@org.example>\r\nReferences: <"+root+"> <ack@org.example>\r\n", "ANNULER\r\n")
	if dest, reason := f.handle(t, again); dest != poller.Quarantine || !strings.Contains(reason, "is already cancelled") {
		t.Fatalf("second cancel: %v %s", dest, reason)
	}
	if jobs := f.queued(t); len(jobs) != 1 || jobs[0].Refusal == nil || !strings.Contains(strings.Join(jobs[0].Refusal.Problems, " "), "est déjà annulée") {
		t.Errorf("second cancel: queued %+v, want a refusal saying it is already cancelled", jobs)
	}
}

// TestDovecotBounces delivers reports through the rig's Postfix and
// Dovecot as a remote MTA would, with the null reverse-path: to the plain
// address naming marie and to marie's return path naming paul, they record
// nothing; to paul's return path naming paul, the bounce.
func TestDovecotBounces(t *testing.T) {
	f := newFixture(t)
	user := freshBox(t)
	// The rig delivers user+anything@org.example to user's mailbox.
	gateway := user + "@org.example"
	f.h.cfg.Gateway = gateway
	env := f.submitted(t)
	verp := func(rid string) string {
		addr, err := mailid.ReturnPath(returnPathKey, gateway, env.ID, rid)
		if err != nil {
			t.Fatal(err)
		}
		return addr
	}
	c, err := smtp.Dial(rig.SMTPAddr()) // the rig's Postfix has no TLS: loopback only
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, dsn := range []struct{ to, final string }{
		{gateway, "marie@partner.example"}, {verp("r1"), "paul@partner.example"}, {verp("r2"), "paul@partner.example"},
	} {
		if err := c.SendMail("", []string{dsn.to}, bytes.NewReader(report(dsn.to, env.ID, dsn.final, ""))); err != nil {
			t.Fatalf("SMTP to %s: %v", dsn.to, err)
		}
	}
	done := make(chan poller.Destination, 3)
	run(t, user, f.e.Store, counting{f.h, done})
	if got := waitFor(t, done, 3); !slices.Equal(got, []poller.Destination{poller.Processed, poller.Processed, poller.Processed}) {
		t.Fatalf("destinations = %v", got)
	}
	got, err := f.e.Store.Get(context.Background(), env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r1, r2 := got.Recipient("r1"), got.Recipient("r2"); r1.DeliveryFailure != "" || !strings.Contains(r2.DeliveryFailure, "5.1.1") {
		t.Errorf("delivery failures: marie %q, paul %q; want paul's only", r1.DeliveryFailure, r2.DeliveryFailure)
	}
	if jobs := notices(f.queued(t)); jobs != "delivery_failure:sender" {
		t.Errorf("queued %q; want the one notice to the sender", jobs)
	}
	lines := f.logs.take(t)
	var msgs []string
	for _, l := range lines {
		msgs = append(msgs, l["level"].(string)+" "+l["msg"].(string))
	}
	slices.Sort(msgs)
	if want := []string{"INFO ingest: bounce recorded", "WARN ingest: delivery report ignored", "WARN ingest: delivery report ignored"}; !slices.Equal(msgs, want) {
		t.Errorf("logged %q; want %q", msgs, want)
	}
}
