package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/deploy/testrig"
)

// TestVerifyByMail runs SPEC §6's verification by mail through the real
// gateway, Postfix and Dovecot: a PDF the gateway signed, sent to
// parapheur+verifier@ by someone who may not submit, gets a threaded reply
// naming its envelope; a copy with one signed byte changed gets a reply
// saying the signature is broken; an automatic mail gets no reply; and one
// address gets at most 10 replies an hour.
func TestVerifyByMail(t *testing.T) {
	c := startCeremonyRig(t, "parapheur", "bob", "signer1", "carol", "dave", "erin")
	rig, srv := c.rig, c.srv

	const title = "Contrat de maintenance"
	envID, _ := c.submit(t, title, "Signataire : Sophie Première <signer1@example.com>")
	signer := c.invited(t, "signer1", "À signer : "+title)
	signer.act(t, c, title, "signed")
	// Its one signature made, the gateway seals the document and
	// completes the envelope: the final version is the one to verify.
	eventually(t, mailWait, "the envelope completed", func() bool {
		return signer.state(t).Envelope.State == "completed"
	})
	signed := signer.document(t, 0)

	// Carol, who may not submit, asks about the signed file.
	asked := askToVerify(t, rig, "Carol <carol@example.com>", "parapheur+verifier@org.example", "Vérifier ce contrat", "", signed)
	reply := c.readReply(t, "carol", asked)
	if s, err := reply.header.Subject(); err != nil || s != "Re: Vérifier ce contrat" {
		t.Errorf("the reply's subject is %q, %v", s, err)
	}
	if refs := reply.header.Get("References"); !strings.Contains(refs, asked) {
		t.Errorf("the reply's References %q do not name %s", refs, asked)
	}
	if rp := reply.header.Get("Return-Path"); rp != "<>" {
		t.Errorf("the reply's Return-Path is %q, want the null path", rp)
	}
	for _, want := range []string{
		"Valide : les 2 signatures sont intactes.", // Sophie's and the seal
		"Mairie de Test seal",
		"Signature intacte : le contenu signé n'a pas été modifié.",
		"Sophie Première <signer1@example.com>",
		"Délivrée par : ce parapheur",
		"Demande " + envID + " (terminée, signée).",
		"Ce fichier est la version définitive du document 1 (convention.pdf)",
		"parapheur+verifier@org.example",
	} {
		if !strings.Contains(reply.text, want) {
			t.Errorf("the reply does not say %q:\n%s", want, reply.text)
		}
	}

	// A copy with one byte changed inside the signed range, asked in
	// English.
	tampered := bytes.Clone(signed)
	i := bytes.Index(tampered, []byte("/BaseFont/Helvetica"))
	if i < 0 {
		t.Fatal("the signed document has no font name to change")
	}
	tampered[i+len("/BaseFont/Helvetica")-1] = 'A' // Helvetica → HelveticA
	asked = askToVerify(t, rig, "carol@example.com", "parapheur+verify@org.example", "Is this genuine?", "Language: en", tampered)
	reply = c.readReply(t, "carol", asked)
	for _, want := range []string{"Not valid: a signature is broken", "Signature broken: the signed content was changed", "Sophie Première"} {
		if !strings.Contains(reply.text, want) {
			t.Errorf("the reply on the tampered copy does not say %q:\n%s", want, reply.text)
		}
	}
	if strings.Contains(reply.text, "Signature intact") {
		t.Errorf("the reply calls the tampered copy's signature intact:\n%s", reply.text)
	}

	// A mail without PDF is told how to use the address.
	asked = askToVerify(t, rig, "carol@example.com", "parapheur+verifier@org.example", "Sans pièce jointe", "", nil)
	reply = c.readReply(t, "carol", asked)
	for _, want := range []string{"le message n'a aucune pièce jointe PDF", "COMMENT VÉRIFIER UN DOCUMENT", "parapheur+verifier@org.example"} {
		if !strings.Contains(reply.text, want) {
			t.Errorf("the reply to a mail without PDF does not say %q:\n%s", want, reply.text)
		}
	}

	// An automatic mail gets no reply; an address past its 10 reports an
	// hour gets no more (each mail here has no PDF: it is told so).
	askToVerify(t, rig, "dave@example.com", "parapheur+verifier@org.example", "Absence", "Auto-Submitted: auto-replied", signed)
	for n := range 11 {
		askToVerify(t, rig, "erin@example.com", "parapheur+verifier@org.example", fmt.Sprintf("Question %d", n+1), "", nil)
	}
	// Every mail was handled (3 + 1 + 11) and every reply sent; the
	// gateway's log says which mails it did not answer, and why.
	metric := regexp.MustCompile(`parapheur_imap_messages_total\{outcome="verification"\} (\d+)`)
	eventually(t, 2*mailWait, "15 mails to the verification address handled and their replies sent", func() bool {
		metrics := get(t, c.base+"/metrics")
		m := metric.FindStringSubmatch(metrics)
		n := 0
		if m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		return n == 15 && outboxEmpty(metrics, "mail")
	})
	waitCount(t, rig, "erin", "Re: Question", 10)
	logs := srv.logs.String()
	if n := strings.Count(logs, "verification without a reply: the sender's quota of reports is spent"); n != 1 {
		t.Errorf("the log tells of %d mails past the quota, want 1", n)
	}
	if n := strings.Count(logs, "automatic mail to the verification address, no reply"); n != 1 {
		t.Errorf("the log tells of %d automatic mails, want 1", n)
	}
	// A last question, answered: the mails before it had their chance to
	// arrive, and neither Dave nor Erin got one more.
	asked = askToVerify(t, rig, "carol@example.com", "parapheur+verifier@org.example", "Dernière question", "", signed)
	c.readReply(t, "carol", asked)
	waitCount(t, rig, "erin", "Re: Question", 10)
	waitCount(t, rig, "dave", "", 0)
}

// outboxEmpty tells whether the metrics show no item in queue, waiting,
// due or held.
func outboxEmpty(metrics, queue string) bool {
	for _, state := range []string{"waiting", "due", "held"} {
		if !strings.Contains(metrics, `parapheur_outbox_items{queue="`+queue+`",state="`+state+`"} 0`) {
			return false
		}
	}
	return true
}

// askToVerify mails the PDF (none when nil) from `from` to the address to,
// with the header field extra ("" for none) or, when it is an instruction
// line, that line as the text; it returns the mail's Message-ID.
func askToVerify(t *testing.T, rig *testrig.Mail, from, to, subject, extra string, pdf []byte) string {
	t.Helper()
	id := fmt.Sprintf("<verify-%d@example.com>", time.Now().UnixNano())
	header, text := "", "Bonjour, pouvez-vous vérifier ce document ?"
	switch {
	case strings.HasPrefix(extra, "Language:"):
		text = extra + "\r\n\r\nCould you check this document?"
	case extra != "":
		header = extra + "\r\n"
	}
	msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\n%sMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n",
		from, to, mimeWord(subject), id, header, text)
	if pdf != nil {
		msg += "--b\r\nContent-Type: application/pdf; name=contrat.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(pdf) + "\r\n"
	}
	msg += "--b--\r\n"
	addr := from
	if i := strings.IndexByte(from, '<'); i >= 0 {
		addr = strings.Trim(from[i:], "<>")
	}
	sendMail(t, rig.SMTPAddr(), addr, to, msg)
	return id
}

// readReply waits for the mail in user's mailbox that answers the mail of
// Message-ID id.
func (c *ceremonyRig) readReply(t *testing.T, user, id string) received {
	t.Helper()
	raw, err := c.rig.WaitMessage(user, "In-Reply-To", id, mailWait)
	if err != nil {
		t.Fatal(err)
	}
	return c.parse(t, user, "the reply to "+id, raw)
}
