package ingest

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/mailin/instructions"
	"github.com/parapheur/parapheur/mailin/poller"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow/engine"
)

// mailFrom is a mail from `from` with the given Authentication-Results
// value ("" for none) and a text body.
func mailFrom(from, authResults, subject, body string) []byte {
	var ar string
	if authResults != "" {
		ar = "Authentication-Results: " + authResults + "\r\n"
	}
	return []byte(fmt.Sprintf("From: %s\r\nTo: parapheur@org.example\r\nSubject: %s\r\nMessage-ID: <%d@test.example>\r\n%s\r\n%s\r\n",
		from, subject, time.Now().UnixNano(), ar, body))
}

// refusals handles raw and returns the refusals it queued; the mail must
// go to quarantine.
func (f fixture) refusals(t *testing.T, raw []byte) []*engine.Refusal {
	t.Helper()
	if dest, reason := f.handle(t, raw); dest != poller.Quarantine {
		t.Fatalf("dest %v (%s), want quarantine", dest, reason)
	}
	var out []*engine.Refusal
	for _, j := range f.queued(t) {
		if j.Refusal == nil {
			t.Fatalf("queued %s, want refusals only", j.Notice)
		}
		out = append(out, j.Refusal)
	}
	return out
}

const dmarcPass = "mx.org.example; dmarc=pass header.from=org.example"

// A sender who may submit hears of every refused mail: two mistakes in a
// row, two refusals; a robot is stopped at 20 an hour, and heard again
// once the hour has passed.
func TestRefusalsToASenderWhoMaySubmit(t *testing.T) {
	f := newFixture(t)
	for i := range 2 {
		if got := f.refusals(t, mailFrom("agent@org.example", dmarcPass, "Convention", "Signataire: marie@partner.example")); len(got) != 1 {
			t.Fatalf("mistake %d: %d refusals, want 1", i+1, len(got))
		}
	}
	// The same mail again before its refusal went out (a crash before
	// its move): one refusal, and the retry does not count against the
	// quota.
	again := mailFrom("agent@org.example", dmarcPass, "Convention", "no PDF")
	if dest, _ := f.handle(t, again); dest != poller.Quarantine {
		t.Fatal("not quarantined")
	}
	if got := f.refusals(t, again); len(got) != 1 {
		t.Fatalf("the mail handled twice queued %d refusals, want 1", len(got))
	}
	// 3 so far; plus-tags and case are one sender.
	for i := 3; i < 20; i++ {
		if got := f.refusals(t, mailFrom(fmt.Sprintf("Agent+%d@Org.Example", i), dmarcPass, "Robot", "x")); len(got) != 1 {
			t.Fatalf("refusal %d: %d queued, want 1", i+1, len(got))
		}
	}
	if got := f.refusals(t, mailFrom("agent@org.example", dmarcPass, "Robot", "x")); len(got) != 0 {
		t.Fatalf("the 21st refusal within the hour was queued")
	}
	// Another sender is not held back by this one.
	if got := f.refusals(t, mailFrom("other@org.example", dmarcPass, "Convention", "x")); len(got) != 1 {
		t.Fatalf("another sender: %d refusals, want 1", len(got))
	}
	*f.at = f.at.Add(time.Hour)
	if got := f.refusals(t, mailFrom("agent@org.example", dmarcPass, "Robot", "x")); len(got) != 1 {
		t.Fatalf("an hour later: %d refusals, want 1", len(got))
	}
}

// A sender who may not submit, or whose mail is not authenticated, hears
// once a day per address (plus-tags and case folded), and never when the
// trusted server says the From domain failed DMARC.
func TestRefusalsToOthers(t *testing.T) {
	f := newFixture(t)
	stranger := "mx.org.example; dmarc=pass header.from=elsewhere.example"
	if got := f.refusals(t, mailFrom("someone+a@elsewhere.example", stranger, "Convention", "x")); len(got) != 1 ||
		!strings.Contains(got[0].Problems[0], "n'est pas autorisée") {
		t.Fatalf("first: %+v, want one refusal saying the sender may not submit", got)
	}
	if got := f.refusals(t, mailFrom("Someone+b@Elsewhere.Example", stranger, "Convention", "x")); len(got) != 0 {
		t.Fatalf("a second refusal to the same mailbox within the day was queued")
	}
	*f.at = f.at.Add(23 * time.Hour)
	if got := f.refusals(t, mailFrom("someone@elsewhere.example", stranger, "Convention", "x")); len(got) != 0 {
		t.Fatalf("a second refusal within 23 hours was queued")
	}
	*f.at = f.at.Add(time.Hour)
	if got := f.refusals(t, mailFrom("someone@elsewhere.example", stranger, "Convention", "x")); len(got) != 1 {
		t.Fatalf("a day later: %d refusals, want 1", len(got))
	}

	// An allowed address whose mail is not authenticated (senders.require_auth)
	// is counted apart from the same address authenticated: a forger does
	// not spend the real sender's quota.
	if got := f.refusals(t, mailFrom("chef@org.example", "", "Convention", "x")); len(got) != 1 ||
		!strings.Contains(got[0].Problems[0], "n'a pas pu être authentifié") {
		t.Fatalf("unauthenticated: %+v, want one refusal saying so", got)
	}
	if got := f.refusals(t, mailFrom("chef@org.example", "", "Convention", "x")); len(got) != 0 {
		t.Fatalf("a second refusal to an unauthenticated sender within the day was queued")
	}
	if got := f.refusals(t, mailFrom("chef@org.example", dmarcPass, "Convention", "x")); len(got) != 1 {
		t.Fatalf("the authenticated sender: %d refusals, want 1", len(got))
	}

	// DMARC says forged: no refusal at all, yet the mail is quarantined.
	for _, from := range []string{"ceo@bank.example", "agent@org.example"} {
		domain := from[strings.IndexByte(from, '@')+1:]
		if got := f.refusals(t, mailFrom(from, "mx.org.example; dmarc=fail (p=reject) header.from="+domain, "Urgent", "x")); len(got) != 0 {
			t.Fatalf("%s failed DMARC, yet %d refusals were queued", from, len(got))
		}
	}
}

// SPEC §2.3: the sender is checked before the attachments are read. A
// sender who may not submit sends 20 MB whose base64 cannot be decoded:
// the refusal says they may not submit (nothing of the attachment), and
// handling allocates far less than the attachment.
func TestRefusedSenderCostsNoDecoding(t *testing.T) {
	f := newFixture(t)
	f.h.cfg.MaxMessageBytes = 32 << 20
	junk := strings.Repeat(strings.Repeat("%", 76)+"\r\n", 20<<20/78)
	mk := func(from string) []byte {
		return mailFrom(from, "mx.org.example; dmarc=pass header.from="+from[strings.IndexByte(from, '@')+1:], "Convention",
			"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSignataire: marie@partner.example\r\n"+
				"--b\r\nContent-Type: application/pdf; name=c.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"+junk+"--b--")
	}
	raw := mk("intruder@elsewhere.example")
	raw = bytes.Replace(raw, []byte("\r\n\r\n"), []byte("\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"), 1)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	dest, reason, err := f.h.Handle(context.Background(), poller.Message{Raw: raw, Size: int64(len(raw))})
	runtime.ReadMemStats(&after)
	if err != nil || dest != poller.Quarantine || !strings.Contains(reason, "may not submit") || strings.Contains(reason, "decod") {
		t.Fatalf("Handle = %v, %q, %v; want quarantine because the sender may not submit", dest, reason, err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
		t.Errorf("handling allocated %d MB for a mail of %d MB whose sender may not submit", n>>20, len(raw)>>20)
	}
	if got := f.queued(t); len(got) != 1 || !strings.Contains(got[0].Refusal.Problems[0], "n'est pas autorisée") {
		t.Fatalf("queued %+v", got)
	}

	// The same attachment from a sender who may submit is decoded, and
	// the refusal says in French what is wrong with it.
	small := bytes.Replace(mk("agent@org.example"), []byte(junk), []byte(junk[:780]), 1)
	small = bytes.Replace(small, []byte("\r\n\r\n"), []byte("\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"), 1)
	got := f.refusals(t, small)
	if len(got) != 1 || !slices.Equal(got[0].Problems, []string{"le message est illisible : la partie 2 (application/pdf) : le contenu ne peut pas être décodé"}) {
		t.Fatalf("refusals %+v, want one saying in French that part 2 cannot be decoded", got)
	}
}

// SPEC §1.6: a French multipart mail over the size limit (only its header
// fetched) is refused by its size, entirely in French: no MIME parser's
// words about the body it does not have.
func TestTooLargeMultipartIsRefusedInFrench(t *testing.T) {
	f := newFixture(t)
	header := "From: Jean Dupont <agent@org.example>\r\nTo: parapheur@org.example\r\nSubject: Convention signée\r\n" +
		"Message-ID: <big.1@org.example>\r\nAuthentication-Results: " + dmarcPass + "\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"----=_Part_1\"\r\n\r\n"
	dest, reason, err := f.h.Handle(context.Background(), poller.Message{Raw: []byte(header), Size: 60_000_000, TooLarge: true})
	if err != nil || dest != poller.Quarantine || reason != "the message is 60.0 MB; the gateway accepts at most 1.0 MB" {
		t.Fatalf("Handle = %v, %q, %v", dest, reason, err)
	}
	jobs := f.queued(t)
	if len(jobs) != 1 || jobs[0].Refusal == nil {
		t.Fatalf("queued %+v, want one refusal", jobs)
	}
	r := jobs[0].Refusal
	if r.Language != "fr" || !slices.Equal(r.Problems, []string{"le message fait 60,0 Mo ; le parapheur accepte au plus 1,0 Mo"}) ||
		r.Usage != instructions.Help("fr", true) {
		t.Fatalf("refusal %+v, want it all in French", r)
	}
}

// SPEC §2.5: the recipients of one envelope are capped, and a From with
// two addresses is refused.
func TestLimits(t *testing.T) {
	f := newFixture(t)
	pdf := corpus(t, "doc1.pdf")
	var many []string
	for i := range 300 {
		many = append(many, fmt.Sprintf("s%d@partner.example", i))
	}
	dest, reason := f.handle(t, withPDF("agent@org.example", "Signataire: "+strings.Join(many, ", "), pdf))
	if dest != poller.Quarantine || reason != "the envelope names 300 recipients; the gateway accepts at most 50 per envelope" {
		t.Fatalf("300 signers: %v %q", dest, reason)
	}
	if jobs := f.queued(t); len(jobs) != 1 || !slices.Equal(jobs[0].Refusal.Problems, []string{"la demande nomme 300 destinataires ; le parapheur en accepte au plus 50 par demande"}) {
		t.Fatalf("queued %+v", jobs)
	}
	// 50 in all, a circuit's included, is accepted.
	f.h.cfg.MaxRecipients = 3
	raw := withPDF("agent@org.example", "Circuit: direction\nSignataire: a@partner.example\nCopie: b@partner.example", pdf)
	if dest, reason := f.handle(t, raw); dest != poller.Processed {
		t.Fatalf("3 recipients with a cap of 3: %v %q", dest, reason)
	}
	raw = withPDF("agent@org.example", "Circuit: direction\nSignataire: a@partner.example\nCopie: b@partner.example\nArchive: c@partner.example", pdf)
	if dest, reason := f.handle(t, raw); dest != poller.Quarantine || !strings.Contains(reason, "names 4 recipients") {
		t.Fatalf("4 recipients with a cap of 3: %v %q", dest, reason)
	}
	f.queued(t)

	two := withPDF("agent@org.example, mallory@org.example", "Signataire: marie@partner.example", pdf)
	dest, reason = f.handle(t, two)
	if dest != poller.Quarantine || !strings.Contains(reason, "the From header names 2 addresses (agent@org.example, mallory@org.example)") {
		t.Fatalf("two authors: %v %q", dest, reason)
	}
	if jobs := f.queued(t); len(jobs) != 1 || jobs[0].Refusal.To.Email != "agent@org.example" ||
		!strings.Contains(jobs[0].Refusal.Problems[0], "le champ From nomme 2 adresses") {
		t.Fatalf("two authors: queued %+v", jobs)
	}
}

// SPEC §1.5: a signer whose address needs quotes, or whose domain is
// internationalised, is accepted (the mail goes in the form SMTP takes);
// one the gateway cannot send to is refused at submission, named.
func TestSignerAddresses(t *testing.T) {
	f := newFixture(t)
	pdf := corpus(t, "doc1.pdf")
	raw := withPDF("agent@org.example", "Signataire: \"a@b\"@example.com\nSignataire: marie@société.example", pdf)
	if dest, reason := f.handle(t, raw); dest != poller.Processed {
		t.Fatalf("quoted and IDN signers: %v %q", dest, reason)
	}
	f.queued(t)
	raw = withPDF("agent@org.example", "Signataire: zoé@partner.example", pdf)
	dest, reason := f.handle(t, raw)
	if dest != poller.Quarantine || !strings.Contains(reason, "the gateway cannot send mail to zoé@partner.example") {
		t.Fatalf("non-ASCII local part: %v %q", dest, reason)
	}
	if jobs := f.queued(t); len(jobs) != 1 || !strings.Contains(jobs[0].Refusal.Problems[0], "le parapheur ne peut pas envoyer de message à « zoé@partner.example » : la partie avant le @") {
		t.Fatalf("queued %+v", jobs)
	}
}

// A PDF over limits.max_document_bytes is refused with both sizes: the
// sender must know how far to shrink it.
func TestDocumentOverTheLimitSaysTheLimit(t *testing.T) {
	f := newFixture(t)
	f.h.cfg.MaxMessageBytes = 10 << 20
	f.h.cfg.Inspect = func(b []byte) (int, error) { return pades.Inspect(context.Background(), b, 2_500_000) }
	pdf := corpus(t, "doc1.pdf")
	big := append(bytes.Repeat([]byte("%"+strings.Repeat("x", 99)+"\n"), 30_000), pdf...) // a comment before the header, 3 MB
	got := f.refusals(t, withPDF("agent@org.example", "Signataire: marie@partner.example", big))
	want := fmt.Sprintf("le fichier PDF fait %s ; le parapheur accepte des fichiers PDF d'au plus 2,5 Mo", megabytes(int64(len(big))).FR)
	if len(got) != 1 || len(got[0].Problems) != 1 || !strings.Contains(got[0].Problems[0], want) {
		t.Fatalf("refusals %q, want one saying %q", got[0].Problems, want)
	}
}

// The gateway's own address, in any case or with a +detail, is refused as
// a recipient: its invitation would come back to the gateway, be dropped
// as automatic, and the envelope could only expire.
func TestGatewayAddressIsNoRecipient(t *testing.T) {
	f := newFixture(t)
	for _, line := range []string{
		"Signataire: parapheur@org.example",
		"Visa: Parapheur <PARAPHEUR@Org.Example>\nSignataire: marie@partner.example",
		"Signataire: marie@partner.example\nCopie: parapheur+verifier@org.example",
	} {
		got := f.refusals(t, withPDF("agent@org.example", line, corpus(t, "doc1.pdf")))
		if len(got) != 1 || len(got[0].Problems) != 1 || !strings.Contains(got[0].Problems[0], "ne peut pas être destinataire") {
			t.Errorf("%q: refusals %+v, want one saying the gateway's address cannot be a recipient", line, got)
		}
	}
	if page, err := f.e.Store.List(context.Background(), store.ListQuery{}); err != nil || len(page.Envelopes) != 0 {
		t.Errorf("envelopes made: %d (%v), want none", len(page.Envelopes), err)
	}
}

// A signer's mobile number makes the code go by SMS; a gateway without an
// SMS gateway (no sms.url) would queue that SMS for nobody, and the signer
// could never act. It refuses the mail instead, saying what to change; with
// an SMS gateway the same mail makes an envelope.
func TestMobileNumberRefusedWithoutSMSGateway(t *testing.T) {
	f := newFixture(t)
	f.h.cfg.SMS = false
	raw := withPDF("agent@org.example", "Signataire: Marie Curie <marie@partner.example> +33612345678", corpus(t, "doc1.pdf"))
	got := f.refusals(t, raw)
	if len(got) != 1 || len(got[0].Problems) != 1 ||
		!strings.Contains(got[0].Problems[0], "ce parapheur n'envoie pas de SMS") ||
		!strings.Contains(got[0].Problems[0], "+33612345678") || !strings.Contains(got[0].Problems[0], "retirez le numéro de mobile") {
		t.Fatalf("refusals %+v", got)
	}
	f.h.cfg.SMS = true
	raw = withPDF("agent@org.example", "Signataire: Marie Curie <marie@partner.example> +33612345678", corpus(t, "doc1.pdf"))
	if dest, reason := f.handle(t, raw); dest != poller.Processed {
		t.Fatalf("with an SMS gateway: %v %q", dest, reason)
	}
}
