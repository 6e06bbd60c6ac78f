package ingest

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/mailin/poller"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow/engine"
)

// verifyingFixture is the fixture with the gateway's CA, which issued the
// certificate of the signed PDF it returns.
func verifyingFixture(t *testing.T) (fixture, []byte) {
	t.Helper()
	f := newFixture(t)
	ca, err := pki.NewCA(pkix.Name{CommonName: "Gateway CA"}, 24*time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	f.h.cfg.Verify = (&verdict.Checker{CA: ca.Cert, Location: f.h.cfg.Location}).Check
	kp, err := ca.IssueOneTime("Marie Curie", "marie@partner.example", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var signed bytes.Buffer
	if err := pades.Sign(context.Background(), corpus(t, "doc1.pdf"), &signed, pades.Options{Signer: pades.Signer{Key: kp.Key, Chain: kp.Chain}, Reason: "Read and approved"}); err != nil {
		t.Fatal(err)
	}
	return f, signed.Bytes()
}

// toVerify is a mail from `from` to the address `to` with the headers
// extra, the text body and the PDFs attached, in base64.
func toVerify(from, to, extra, body string, pdfs ...[]byte) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: Contrat signé\r\nMessage-ID: <%d@elsewhere.example>\r\n%sMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		from, to, time.Now().UnixNano(), extra, body)
	for i, pdf := range pdfs {
		fmt.Fprintf(&b, "--b\r\nContent-Type: application/pdf; name=f%d.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n", i+1, base64.StdEncoding.EncodeToString(pdf))
	}
	b.WriteString("--b--\r\n")
	return []byte(b.String())
}

// verified handles raw, which must end in the processed folder counted as
// a verification and make no envelope, and returns the reports it
// queued.
func (f fixture) verified(t *testing.T, raw []byte) []*engine.Verification {
	t.Helper()
	if dest, reason := f.handle(t, raw); dest != poller.Verified {
		t.Fatalf("dest %v (%s), want verified", dest, reason)
	}
	if page, err := f.e.Store.List(context.Background(), store.ListQuery{}); err != nil || len(page.Envelopes) != 0 {
		t.Fatalf("envelopes %+v, %v: a verification made one", page.Envelopes, err)
	}
	var out []*engine.Verification
	for _, j := range f.queued(t) {
		if j.Notice != engine.NoticeVerification || j.Verification == nil {
			t.Fatalf("queued %s, want verification reports only", j.Notice)
		}
		out = append(out, j.Verification)
	}
	return out
}

// Anyone may ask: a stranger, unauthenticated, gets a threaded report on
// each PDF, in the language of the mail's instructions, and no envelope;
// a copy with one signed byte changed is reported broken.
func TestVerificationReport(t *testing.T) {
	f, signed := verifyingFixture(t)
	tampered := bytes.Clone(signed)
	i := bytes.Index(tampered, []byte("Read and approved"))
	if i < 0 {
		t.Fatal("no /Reason in the signed file")
	}
	tampered[i] ^= 0x20 // "read and approved": inside the signed range
	raw := toVerify("Someone <someone@elsewhere.example>", "parapheur+verifier@org.example", "", "Language: en\r\nPlease check.", signed, tampered)
	got := f.verified(t, raw)
	if len(got) != 1 {
		t.Fatalf("%d reports, want 1", len(got))
	}
	v := got[0]
	// The display name is not repeated: whoever forged the From wrote it.
	if v.To.Email != "someone@elsewhere.example" || v.To.Name != "" || v.Language != "en" || v.Subject != "Contrat signé" || v.Address != "parapheur+verifier@org.example" ||
		!strings.HasSuffix(v.MessageID, "@elsewhere.example") || v.Problem != "" || v.Omitted != 0 || len(v.Files) != 2 {
		t.Fatalf("report %+v", v)
	}
	intact, broken := v.Files[0], v.Files[1]
	if !intact.Valid || intact.Name != "f1.pdf" || len(intact.Signatures) != 1 || intact.Signatures[0].Signer != "Marie Curie" ||
		intact.Signatures[0].Issuer != verdict.Say("en", "verify issuer ours") || intact.Verdict != verdict.Say("en", "verify valid one") {
		t.Errorf("the signed file: %+v", intact)
	}
	if broken.Valid || len(broken.Signatures) != 1 || broken.Signatures[0].Intact || broken.Signatures[0].Verdict != verdict.Say("en", "verify broken") {
		t.Errorf("the tampered file: %+v", broken)
	}
	// Handled again (a crash before the move): the same one reply.
	if again := f.verified(t, raw); len(again) != 1 {
		t.Fatalf("the mail handled twice queued %d reports, want 1", len(again))
	}
}

// A mail with no PDF is told so, in the default language, with the
// address to use; so is one too large to be read; the address is named
// as folded, whatever the case it was written in.
func TestVerificationWithoutFiles(t *testing.T) {
	f, _ := verifyingFixture(t)
	v := f.verified(t, toVerify("someone@elsewhere.example", "Parapheur+Verify@Org.Example", "", "Vérifiez svp"))
	if len(v) != 1 || len(v[0].Files) != 0 || v[0].Problem != "le message n'a aucune pièce jointe PDF" || v[0].Language != "fr" ||
		v[0].Address != "parapheur+verify@org.example" {
		t.Fatalf("reports %+v", v)
	}
	raw := toVerify("big@elsewhere.example", "parapheur+verifier@org.example", "", "x")
	dest, _, err := f.h.Handle(context.Background(), poller.Message{Raw: raw, Size: 2_500_000, TooLarge: true})
	if err != nil || dest != poller.Verified {
		t.Fatalf("Handle = %v, %v", dest, err)
	}
	jobs := f.queued(t)
	if len(jobs) != 1 || jobs[0].Verification == nil || len(jobs[0].Verification.Files) != 0 ||
		jobs[0].Verification.Problem != "le message fait 2,5 Mo ; le parapheur lit au plus 1,0 Mo : envoyez moins de fichiers, ou de plus petits" {
		t.Fatalf("queued %+v", jobs)
	}
}

// Attachments that are not PDFs are named in the reply as not checked,
// beside a PDF's report and when the mail holds no PDF.
func TestVerificationNamesOtherAttachments(t *testing.T) {
	f, signed := verifyingFixture(t)
	docx := "--b\r\nContent-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document; name=contrat.docx\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n--b--\r\n"
	for _, pdfs := range [][][]byte{{signed}, nil} {
		raw := bytes.Replace(toVerify("someone@elsewhere.example", "parapheur+verifier@org.example", "", "x", pdfs...), []byte("--b--\r\n"), []byte(docx), 1)
		v := f.verified(t, raw)
		if len(v) != 1 || len(v[0].Files) != len(pdfs) || len(v[0].Ignored) != 1 || v[0].Ignored[0].Name != "contrat.docx" ||
			v[0].Ignored[0].ContentType != "application/vnd.openxmlformats-officedocument.wordprocessingml.document" {
			t.Fatalf("%d PDFs: reports %+v, want the .docx named as ignored", len(pdfs), v)
		}
	}
}

// At most MaxVerifiedFiles PDFs are reported; the reply counts the others.
func TestVerificationCapsTheFiles(t *testing.T) {
	f, _ := verifyingFixture(t)
	doc := corpus(t, "doc1.pdf")
	pdfs := make([][]byte, MaxVerifiedFiles+3)
	for i := range pdfs {
		pdfs[i] = doc
	}
	v := f.verified(t, toVerify("someone@elsewhere.example", "parapheur+verifier@org.example", "", "", pdfs...))
	if len(v) != 1 || len(v[0].Files) != MaxVerifiedFiles || v[0].Omitted != 3 {
		t.Fatalf("%d reports: %d files, %d omitted", len(v), len(v[0].Files), v[0].Omitted)
	}
	if f := v[0].Files[0]; f.Verdict != verdict.Say("fr", "verify no signature") {
		t.Errorf("an unsigned PDF: %+v", f)
	}
}

// The loop rules hold: an automatic mail gets no reply; nor does a mail
// whose From domain failed DMARC at the trusted server. Both are counted
// as verifications.
func TestVerificationLoops(t *testing.T) {
	f, signed := verifyingFixture(t)
	for name, extra := range map[string]string{
		"auto-submitted": "Auto-Submitted: auto-replied\r\n",
		"list":           "List-Id: <people.elsewhere.example>\r\n",
		"forged":         "Authentication-Results: mx.org.example; dmarc=fail header.from=elsewhere.example\r\n",
	} {
		if got := f.verified(t, toVerify("someone@elsewhere.example", "parapheur+verifier@org.example", extra, "", signed)); len(got) != 0 {
			t.Errorf("%s: %d reports, want none", name, len(got))
		}
	}
}

// One address gets at most 10 reports an hour (plus-tags and case are
// one mailbox), counted apart from its refusals; another address is not
// held back, and the hour passed, the first is answered again.
func TestVerificationRateLimit(t *testing.T) {
	f, _ := verifyingFixture(t)
	ask := func(from string) int {
		t.Helper()
		return len(f.verified(t, toVerify(from, "parapheur+verifier@org.example", "", "")))
	}
	for i := range verificationQuota.Max {
		if ask(fmt.Sprintf("Someone+%d@Elsewhere.example", i)) != 1 {
			t.Fatalf("report %d not queued", i+1)
		}
	}
	if ask("someone@elsewhere.example") != 0 {
		t.Fatal("a report past the quota was queued")
	}
	if ask("other@elsewhere.example") != 1 {
		t.Fatal("another address was held back")
	}
	// The stranger's refusal quota is its own.
	if got := f.refusals(t, mailFrom("someone@elsewhere.example", "", "Convention", "x")); len(got) != 1 {
		t.Fatalf("the refusal after the reports: %d, want 1", len(got))
	}
	*f.at = f.at.Add(verificationQuota.Per)
	if ask("someone@elsewhere.example") != 1 {
		t.Fatal("no report once the hour passed")
	}
}

// A PDF inside a forwarded message (message/rfc822) is reported too: one
// forwards the mail that brought the document.
func TestVerificationOfAForwardedPDF(t *testing.T) {
	f, signed := verifyingFixture(t)
	forwarded := toVerify("Marie <marie@partner.example>", "agnes@org.example", "", "Voici le contrat signé.", signed)
	raw := fmt.Sprintf("From: someone@elsewhere.example\r\nTo: parapheur+verifier@org.example\r\nSubject: TR: Contrat signé\r\n"+
		"Message-ID: <fwd.%d@elsewhere.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n"+
		"--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nEst-il authentique ?\r\n"+
		"--outer\r\nContent-Type: message/rfc822\r\n\r\n%s\r\n--outer--\r\n", time.Now().UnixNano(), forwarded)
	v := f.verified(t, []byte(raw))
	if len(v) != 1 || len(v[0].Files) != 1 || !v[0].Files[0].Valid || v[0].Files[0].Signatures[0].Signer != "Marie Curie" {
		t.Fatalf("reports %+v", v)
	}
}
