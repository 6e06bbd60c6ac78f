package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/smtp"
	"strings"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"github.com/parapheur/parapheur/mailin/poller"
	"github.com/parapheur/parapheur/mailout/compose"
	"github.com/parapheur/parapheur/mailout/sender"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/outbox"
)

// mailer sends the fixture's outbox through the rig's Postfix, composed by
// the gateway's own composer.
func (f fixture) mailer(t *testing.T) *sender.Worker {
	t.Helper()
	cc, err := compose.New(compose.Config{Address: f.h.cfg.Gateway, PublicURL: "https://sign.org.example", ReturnPathKey: returnPathKey})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sender.New(sender.Config{
		Relay:    sender.Relay{URL: "smtp://" + rig.SMTPAddr(), LocalName: "gateway.org.example", Timeout: 10 * time.Second},
		Composer: &sender.Mails{Composer: cc, Store: f.e.Store, Domain: "org.example", PublicURL: "https://sign.org.example"},
		Outbox:   outbox.Queue{Store: f.e.Store, Engine: f.e, Now: f.e.Now},
		Workers:  1, TempDir: t.TempDir(), Poll: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	w := s.Worker("test")
	t.Cleanup(func() { w.Close() })
	return w
}

// send delivers every due mail of the outbox and returns how many.
func send(t *testing.T, w *sender.Worker) int {
	t.Helper()
	n := 0
	for {
		worked, err := w.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !worked {
			return n
		}
		n++
	}
}

// received waits for the mail in user's mailbox whose field has value and
// returns its header and text part.
func received(t *testing.T, user, field, value string) (*gomail.Header, string) {
	t.Helper()
	raw, err := rig.WaitMessage(user, field, value, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var text string
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h, ok := p.Header.(*gomail.InlineHeader); ok {
			if ct, _, _ := h.ContentType(); ct == "text/plain" {
				b, _ := io.ReadAll(p.Body)
				text = string(b)
			}
		}
	}
	return &r.Header, text
}

// A signer answers the real invitation mail, as Outlook does (citing that
// mail alone, not its References), with DÉLÉGUER: the reply travels through Postfix to the gateway's mailbox, the
// poller hands it to the handler, the envelope delegates, and the delegate's
// invitation and the sender's notice arrive through Postfix and Dovecot.
func TestDovecotDelegateReply(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	mailer := f.mailer(t)
	done := make(chan poller.Destination, 10)
	run(t, "parapheur", f.e.Store, counting{f.h, done})

	title := fmt.Sprint("Agreement ", time.Now().UnixNano())
	appendAll(t, "parapheur", [][]byte{withPDFTitled("agent@org.example", title, "Language: en\nSigner: Marie Curie <marie@partner.example>", corpus(t, "doc1.pdf"))})
	if got := waitFor(t, done, 1); got[0] != poller.Processed {
		t.Fatalf("submission: %v, queued %+v", got, f.queued(t)[0].Refusal)
	}
	env := f.onlyEnvelope(t)
	if n := send(t, mailer); n != 2 {
		t.Fatalf("%d mails sent, want the acknowledgement and the invitation", n)
	}

	invitation, _ := received(t, "marie", "X-Parapheur-Envelope", env.ID)
	id, err := invitation.MessageID()
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := invitation.Subject()
	reply := "From: Marie Curie <marie@partner.example>\r\nTo: parapheur@org.example\r\n" +
		"Authentication-Results: mx.org.example; dmarc=pass header.from=partner.example\r\n" +
		"Subject: Re: " + subject + "\r\nMessage-ID: <reply." + env.ID + "@partner.example>\r\n" +
		"In-Reply-To: <" + id + ">\r\nReferences: <" + id + ">\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		"Déléguer : Louise Martin <louise@partner.example>\r\n\r\nLe 2 juin 2026, Parapheur a écrit :\r\n" +
		"> You can also reply to this message with, on the first line:\r\n>   DECLINE: your reason\r\n"
	if err := smtp.SendMail(rig.SMTPAddr(), nil, "marie@partner.example", []string{"parapheur@org.example"}, []byte(reply)); err != nil {
		t.Fatal(err)
	}
	if got := waitFor(t, done, 1); got[0] != poller.Processed {
		t.Fatalf("the DÉLÉGUER reply: %v", got)
	}
	got, err := f.e.Store.Get(ctx, env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r1, r2 := got.Recipient("r1"), got.Recipient("r2"); r1.State != workflow.HasDelegated || r2 == nil || r2.Email != "louise@partner.example" || r2.DelegatedFrom != "r1" {
		t.Fatalf("after the reply: r1 %+v, r2 %+v", r1, r2)
	}

	if n := send(t, mailer); n != 3 {
		t.Fatalf("%d mails sent, want the delegate's invitation, the sender's notice and Marie's confirmation", n)
	}
	h, text := received(t, "louise", "X-Parapheur-Envelope", env.ID)
	if s, _ := h.Subject(); s != "Please sign: "+title || !strings.Contains(text, "Marie Curie <marie@partner.example> handed their signature to you.") {
		t.Errorf("the delegate's invitation %q:\n%s", s, text)
	}
	_, text = received(t, "agent", "Subject", "Delegated: "+title)
	if !strings.Contains(text, "Marie Curie <marie@partner.example> handed their signature") || !strings.Contains(text, "Louise Martin <louise@partner.example>") {
		t.Errorf("the sender's notice:\n%s", text)
	}
	if got, _ := f.e.Store.Get(ctx, env.ID); got.Recipient("r2").SentAt.IsZero() {
		t.Error("the delegate's invitation is not recorded as sent")
	}
}
