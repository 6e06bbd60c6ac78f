package main

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-message/mail"
	"github.com/pdfcpu/pdfcpu/pkg/api"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/signing/certificate"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/signtest"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
)

// e2eUsers are the mailboxes of TestEndToEnd: the two gateways, the
// agents who submit, and everyone the envelopes name, among them the
// addresses of the real-client mails of mailin/testdata.
var e2eUsers = []string{"parapheur", "gw-clock", "bob", "agent", "jean.dupont",
	"approver", "signer1", "signer2", "signer3", "copy", "archivist",
	"cfo", "controller", "marie", "assistante", "directeur", "jb.poquelin", "delegate", "archives", "comptable",
	"paul.martin", "marie.curie", "direction", "sophie.durand", "compta", "acheteur", "boss"}

// e2eRig is the whole product of TestEndToEnd: "parapheur serve" on
// Redis, Postfix and Dovecot, with a time-stamp authority, a circuit and
// a browser.
type e2eRig struct {
	c       *ceremonyRig
	browser *testrig.Chromium
	sms     *e2eSMS
	// caFile holds the roots of every signature the final PDFs carry: the
	// gateway's signing CA, and the CA of the other tool that signed a
	// document before it was submitted.
	caFile string
	// foreignPDF is a document that tool signed.
	foreignPDF string
	mu         sync.Mutex
	// finals are the mails read that tell of an envelope's end (final
	// mails; decline, cancellation and expiry notices), "user\x00subject":
	// in the end each mailbox must hold exactly one of each.
	finals []string
}

// ended notes that user read the mail subject telling of an envelope's end,
// for oneFinalMailEach.
func (e *e2eRig) ended(user, subject string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.finals = append(e.finals, user+"\x00"+subject)
}

// TestEndToEnd runs the whole product as an operator deploys it: the
// built "parapheur serve" as its own process on Redis, with a private
// Postfix and Dovecot, a time-stamp authority (PAdES B-LTA) and a
// circuit. Submissions are real mails through the MTA: an Outlook
// forward of forwards (message/rfc822), Outlook's French inline forward
// (windows-1252, a signer's code by SMS), Gmail's forward in English to
// the plus-address of a circuit, an HTML-only mail, a Thunderbird
// forward naming a circuit, a cp1252 mail with octet-stream PDFs, and
// plain mails with several documents, one with object streams and an
// AcroForm, one already signed by another tool. Every recipient reads
// their invitation and codes in their own mailbox and acts through the
// JSON API, the signing page in Chromium, or a reply; envelopes are
// declined, cancelled on the status page, delegated by reply, reminded
// and expired (on a second gateway whose clock is moved forward). Every
// party of every completed envelope gets exactly one final mail, whose
// PDFs pass every independent validator and "parapheur verify", and
// whose certificate's audit trail has an intact hash chain. The
// envelopes run side by side, as on a real gateway.
func TestEndToEnd(t *testing.T) {
	t.Cleanup(signtest.Cleanup)
	rig := startMailRig(t, e2eUsers...)
	sms := startE2ESMS(t)
	redis := testrig.Redis(t)
	c, _ := startCompletionRigOn(t, rig, redis.URL(),
		"PARAPHEUR_SENDERS_ALLOWED=bob@example.com, @org.example",
		"PARAPHEUR_CIRCUITS_DIRECTION_STEPS=Visa : Diane Directrice <directeur@org.example>",
		"PARAPHEUR_CIRCUITS_ACHATS_STEPS=Visa : Alain Acheteur <acheteur@org.example>",
		"PARAPHEUR_SMS_URL="+sms.url)
	e := &e2eRig{c: c, browser: testrig.ChromiumRig(t), sms: sms}
	e.signedElsewhere(t)

	cases := map[string]func(t *testing.T){
		"Outlook forward of forwards":                         e.outlookForward,
		"Outlook inline forward, a code by SMS":               e.outlookInlineForward,
		"Gmail forward in English to a plus-address circuit":  e.gmailPlusAddress,
		"HTML-only mail, signed in Chromium":                  e.htmlOnly,
		"several documents: forms, object streams, signed":    e.severalDocuments,
		"circuit, delegation by reply":                        e.circuitAndDelegation,
		"decline with a reason":                               e.decline,
		"cancel on the status page":                           e.cancelOnStatusPage,
		"reminder and expiry on a gateway ahead of its clock": e.reminderAndExpiry,
	}
	// The cases wait for mail and for each other's signatures, not for
	// the processor: they all run at once, as envelopes do on a gateway.
	var wg sync.WaitGroup
	for name, run := range cases {
		wg.Go(func() { t.Run(name, run) })
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Run("every mail processed, none quarantined", e.everyMailProcessed)
	t.Run("every party got one final mail or end notice", e.oneFinalMailEach)
	t.Run("no token or code in the logs", c.logsHoldNoSecret)
	t.Run("no token or code in the store", func(t *testing.T) {
		files, err := filepath.Glob(filepath.Join(redis.Dir(), "appendonlydir", "*"))
		if err != nil {
			t.Fatal(err)
		}
		c.storeHoldsNoSecret(t, files...)
	})
}

// signedElsewhere makes the document signed by another tool (pdfsign,
// with a CA of its own) and the CA file that holds both roots.
func (e *e2eRig) signedElsewhere(t *testing.T) {
	t.Helper()
	other, err := pki.NewCA(pkix.Name{CommonName: "Autre Organisation CA"}, 24*time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e.foreignPDF = filepath.Join(dir, "signe-ailleurs.pdf")
	signtest.SignWithPdfsign(t, other, signtest.Corpus(t)["qpdf-classic"], e.foreignPDF)
	roots, err := os.ReadFile(filepath.Join(e.c.keys, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	roots = append(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Cert.Raw})...)
	e.caFile = filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(e.caFile, roots, 0o644); err != nil {
		t.Fatal(err)
	}
}

// outlookForward: Outlook's "FW:" of a forward of a partner's mail, the
// PDF two message/rfc822 levels down, instruction lines in the quoted
// mails that must be ignored; a signer then an approver, through the API.
func (e *e2eRig) outlookForward(t *testing.T) {
	c := e.c
	envID := e.sendFixture(t, "forward-of-forward.eml")
	const title = "Budget 2027"
	ack := c.read(t, "agent", "Enregistré : "+title)
	if !strings.Contains(ack.text, envID) || !strings.Contains(ack.text, "budget-2027.pdf") {
		t.Errorf("the acknowledgement does not name the envelope and the forwarded PDF:\n%s", ack.text)
	}
	cfo := c.invited(t, "cfo", "À signer : "+title)
	e.expectSteps(t, cfo.state(t), "signer:cfo@org.example", "approver:controller@org.example")
	cfo.act(t, c, title, "signed")
	c.invited(t, "controller", "À viser : "+title).act(t, c, title, "approved")
	e.checkCompleted(t, envID, title, "fr", []string{"agent", "cfo", "controller"}, "", e2eDocument{"budget-2027.pdf", 3})
}

// outlookInlineForward: Outlook's French "TR :" of a partner's mail
// (windows-1252, quoted-printable, multipart/related with an inline
// image), the forwarded mail inline below the agent's lines; an approver,
// a signer whose code goes by SMS to the French mobile number after her
// address, then two signers in parallel, and a copy.
func (e *e2eRig) outlookInlineForward(t *testing.T) {
	c := e.c
	deadline := time.Now().AddDate(0, 0, 30).Format("02/01/2006")
	// The partner's domain is one the mail rig delivers; the mail's
	// deadline, long past, one in a month.
	envID := e.sendFixture(t, "outlook-fr-forward.eml", "partenaire.example", "partner.example",
		"=C9ch=E9ance : 15/07/2026", "=C9ch=E9ance : "+deadline)
	const title = "Convention de partenariat – été 2026"
	approver := c.invited(t, "paul.martin", "À viser : "+title)
	e.expectSteps(t, approver.state(t), "approver:Paul Martin", "signer:Marie Curie", "signer:direction@org.example signer:Sophie Durand")
	approver.act(t, c, title, "approved")

	e.signBySMS(t, c.invited(t, "marie.curie", "À signer : "+title), "+33612345678")
	c.invited(t, "direction", "À signer : "+title).act(t, c, title, "signed")
	c.invited(t, "sophie.durand", "À signer : "+title).act(t, c, title, "signed")
	e.checkCompleted(t, envID, title, "fr", []string{"jean.dupont", "paul.martin", "marie.curie", "direction", "sophie.durand", "compta"}, "",
		e2eDocument{"Convention partenariat été 2026.pdf", 5})
}

// gmailPlusAddress: Gmail's forward to parapheur+achats@, the address of
// the circuit "achats", in English ("Language: en"): every mail and code
// in English; the signer's code by SMS.
func (e *e2eRig) gmailPlusAddress(t *testing.T) {
	c := e.c
	deadline := time.Now().AddDate(0, 0, 30).Format(time.DateOnly)
	envID := e.sendFixture(t, "gmail-forward.eml", "Deadline: 2026-12-31", "Deadline: "+deadline,
		"+33612345678", "+33698765432") // a number of its own in the SMS gateway
	const title = "Quote 2026"
	if ack := c.read(t, "agent", "Received: "+title); !strings.Contains(ack.text, envID) {
		t.Errorf("the acknowledgement does not name the envelope:\n%s", ack.text)
	}
	buyer := c.invited(t, "acheteur", "Please approve: "+title)
	e.expectSteps(t, buyer.state(t), "approver:Alain Acheteur", "signer:Marie Curie", "approver:boss@org.example")
	buyer.actWith(t, c, "Your confirmation code – "+title, "approved")
	e.signBySMS(t, c.invited(t, "marie", "Please sign: "+title), "+33698765432")
	c.invited(t, "boss", "Please approve: "+title).actWith(t, c, "Your confirmation code – "+title, "approved")
	e.checkCompleted(t, envID, title, "en", []string{"agent", "acheteur", "marie", "boss"}, "", e2eDocument{"Quote 2026.pdf", 3})
}

// signBySMS signs as r with the code the SMS gateway received for the
// number to.
func (e *e2eRig) signBySMS(t *testing.T, r recipient, to string) {
	t.Helper()
	r.post(t, "/code", nil)
	code := e.sms.code(t, to)
	e.c.mu.Lock()
	e.c.secrets = append(e.c.secrets, code) // which the logs must not show either
	e.c.mu.Unlock()
	if st := r.post(t, "/sign", map[string]any{"code": code, "consent": true}); st.Recipient.State != "signed" {
		t.Fatalf("%s after signing with the SMS code: %s", r.user, st.Recipient.State)
	}
}

// htmlOnly: a mail with an HTML part alone (the instructions in <p>,
// the forwarded part in a blockquote); the signer signs on her phone in
// Chromium, without JavaScript.
func (e *e2eRig) htmlOnly(t *testing.T) {
	c := e.c
	envID := e.sendFixture(t, "html-only.eml")
	const title = "Contrat"
	link := c.link(t, c.read(t, "marie", "À signer : "+title), "/s/")
	e.expectSteps(t, c.holder(link).state(t), "signer:Marie Curie")
	p := c.open(t, e.browser, phoneWithoutJS("fr"), link)
	if got := p.text("h1"); got != title {
		p.failf("the page's heading is %q, want %q", got, title)
	}
	if !strings.Contains(p.text("main"), "Contrat & annexes") {
		p.failf("the page does not show the sender's message")
	}
	p.askCode()
	p.sign(codeIn(t, c.read(t, "marie", "Votre code de confirmation – "+title)))
	e.checkCompleted(t, envID, title, "fr", []string{"agent", "marie", "assistante"}, "", e2eDocument{"Contrat.pdf", 3})
}

// severalDocuments: a plain-text mail with two documents, one with an
// AcroForm saved with object streams, one already signed by another
// tool; an approver, two signers in parallel, a copy and an archivist.
func (e *e2eRig) severalDocuments(t *testing.T) {
	c := e.c
	form := filepath.Join(t.TempDir(), "formulaire.pdf")
	e2ePDFTool(t, "qpdf", "--object-streams=generate", signtest.Corpus(t)["pdfcpu-form"], form)
	if b, err := os.ReadFile(form); err != nil || !bytes.Contains(b, []byte("/ObjStm")) {
		t.Fatalf("qpdf wrote no object stream (%v)", err)
	}
	fields := e2eFormFields(t, form)
	if len(fields) == 0 {
		t.Fatal("the form PDF has no form field")
	}
	const title = "Convention de mécénat 2027"
	// The parties of TestCompletionOutputs, whose certificate
	// checkCertificate knows.
	envID, _ := c.submitFiles(t, title, map[string]string{"a-convention.pdf": form, "b-annexe.pdf": e.foreignPDF}, completionSteps...)
	// The acknowledgement states each document's SHA-256 as submitted.
	ack := c.read(t, "bob", "Enregistré : "+title)
	for _, path := range []string{form, e.foreignPDF} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(ack.text, sha256Hex(b)) {
			t.Errorf("the acknowledgement does not state the SHA-256 of %s:\n%s", filepath.Base(path), ack.text)
		}
	}
	c.invited(t, "approver", "À viser : "+title).act(t, c, title, "approved")
	first, second := c.invited(t, "signer1", "À signer : "+title), c.invited(t, "signer2", "À signer : "+title)
	second.act(t, c, title, "signed")
	first.act(t, c, title, "signed")
	finals, dir := e.checkCompleted(t, envID, title, "fr", []string{"bob", "approver", "signer1", "signer2", "copy", "archivist"}, "archivist",
		e2eDocument{"a-convention.pdf", 4}, e2eDocument{"b-annexe.pdf", 5})
	signed := e2eFormFields(t, filepath.Join(dir, "a-convention.pdf"))
	for _, f := range fields {
		if !slices.Contains(signed, f) {
			t.Errorf("the signed form lost its field %s (it has %q)", f, signed)
		}
	}
	certName := "certificat-" + envID + ".pdf"
	auditName := "audit-" + envID + ".json"
	c.checkCertificate(t, filepath.Join(dir, certName), envID, title, finals["archivist"].files[auditName])
	c.checkDownloads(t, finals["archivist"], []string{"a-convention.pdf", "b-annexe.pdf", certName}, auditName)
}

// circuitAndDelegation: Thunderbird's forward naming the circuit
// "direction" (an approval before the mail's steps), with a spreadsheet
// the acknowledgement lists as ignored; one of two parallel signers hands
// his place to a delegate by replying DÉLÉGUER to his invitation.
func (e *e2eRig) circuitAndDelegation(t *testing.T) {
	c := e.c
	deadline := time.Now().AddDate(0, 0, 30).Format(time.DateOnly)
	envID := e.sendFixture(t, "thunderbird-forward.eml", "Échéance: 2026-12-31", "Échéance: "+deadline)
	const title = "Avenant n°2"
	ack := c.read(t, "agent", "Enregistré : "+title)
	if !strings.Contains(ack.text, "Budget.xlsx") {
		t.Errorf("the acknowledgement does not list the ignored spreadsheet:\n%s", ack.text)
	}
	director := c.invited(t, "directeur", "À viser : "+title)
	e.expectSteps(t, director.state(t), "approver:Diane Directrice", "signer:Marie Curie signer:Jean-Baptiste Poquelin")
	director.act(t, c, title, "approved")
	c.invited(t, "marie", "À signer : "+title).act(t, c, title, "signed")

	invitation := c.read(t, "jb.poquelin", "À signer : "+title)
	e.reply(t, "jb.poquelin@partner.example", invitation, "DÉLÉGUER : Denise Déléguée <delegate@org.example>\r\n\r\nJe suis en congé.")
	if notice := c.read(t, "agent", "Délégation : "+title); !strings.Contains(notice.text, "delegate@org.example") {
		t.Errorf("the sender's delegation notice does not name the delegate:\n%s", notice.text)
	}
	delegate := c.invited(t, "delegate", "À signer : "+title)
	if st := delegate.state(t); st.Recipient.Email != "delegate@org.example" || !st.Recipient.CanAct {
		t.Fatalf("the delegate's link: %+v", st.Recipient)
	}
	delegate.act(t, c, title, "signed")
	// The delegator is still a party: he gets the final mail too.
	finals, _ := e.checkCompleted(t, envID, title, "fr", []string{"agent", "directeur", "marie", "jb.poquelin", "delegate", "archives"}, "archives",
		e2eDocument{"Avenant n°2 été.pdf", 4})
	// The archivist's trail begins with the submission and says who
	// handed their place to whom.
	var trail []audit.Record
	if err := json.Unmarshal(finals["archives"].files["audit-"+envID+".json"], &trail); err != nil {
		t.Fatal(err)
	}
	if len(trail) == 0 || trail[0].Type != audit.Submitted || trail[0].Actor != "agent@org.example" {
		t.Errorf("the archivist's trail does not begin with the agent's submission:\n%s", finals["archives"].files["audit-"+envID+".json"])
	}
	if !slices.ContainsFunc(trail, func(r audit.Record) bool {
		return r.Type == audit.Delegated && r.Actor == "jb.poquelin@partner.example" && r.Details["to_email"] == "delegate@org.example"
	}) {
		t.Errorf("the archivist's trail does not record the delegation from jb.poquelin to delegate:\n%s", finals["archives"].files["audit-"+envID+".json"])
	}
}

// decline: the approver approves, then the signer declines through the
// API with a reason: the sender and the approver are told why.
func (e *e2eRig) decline(t *testing.T) {
	c := e.c
	const title, reason = "Marché de travaux 2027", "Le montant de l'article 3 est faux"
	c.submit(t, title, "Visa : Anne Viseur <approver@example.com>", "Signataire : Élise Troisième <signer3@example.com>")
	c.invited(t, "approver", "À viser : "+title).act(t, c, title, "approved")
	signer := c.invited(t, "signer3", "À signer : "+title)
	signer.post(t, "/code", nil)
	code := codeIn(t, c.read(t, "signer3", "Votre code de confirmation – "+title))
	st := signer.post(t, "/decline", map[string]any{"code": code, "reason": reason})
	if st.Envelope.State != "declined" || st.Recipient.State != "declined" || st.Recipient.CanAct {
		t.Fatalf("after the decline: envelope %s, signer %s (can act: %v)", st.Envelope.State, st.Recipient.State, st.Recipient.CanAct)
	}
	for _, user := range []string{"bob", "approver"} {
		e.ended(user, "Refusé : "+title)
		if notice := c.read(t, user, "Refusé : "+title); !strings.Contains(notice.text, reason) {
			t.Errorf("%s's decline notice does not give the reason:\n%s", user, notice.text)
		}
	}
}

// cancelOnStatusPage: a cp1252 mail with its PDFs sent as
// application/octet-stream; on the status page of his acknowledgement,
// in Chromium, the agent sends the signer a reminder, then cancels the
// envelope: he is told, the signer's link shows it cancelled.
func (e *e2eRig) cancelOnStatusPage(t *testing.T) {
	c := e.c
	e.sendFixture(t, "cp1252-octet-stream.eml")
	const title, reason = "Reçu – 1 200 €", "Mauvais montant, je renvoie le reçu corrigé"
	ack := c.read(t, "agent", "Enregistré : "+title)
	signer := c.invited(t, "comptable", "À signer : "+title)
	if st := signer.state(t); len(st.Documents) != 2 {
		t.Fatalf("the two octet-stream PDFs made %d documents", len(st.Documents))
	}
	status := c.open(t, e.browser, desktopWithoutJS, c.link(t, ack, "/e/"))
	// First a reminder from the page, then the cancellation.
	status.submit("#remind-form button")
	status.confirmed()
	if reminder := c.read(t, "comptable", "Rappel – à signer : "+title); !strings.Contains(reminder.text, c.base+"/s/") {
		t.Errorf("the reminder from the status page carries no signing link:\n%s", reminder.text)
	}
	status.do(chromedp.SendKeys(chromedp.CSS("#cancel-form [name=reason]"), reason))
	status.submit("#cancel-form button")
	status.confirmed()
	if !status.has(".state-cancelled") {
		status.failf("the status page does not show the envelope cancelled")
	}
	e.ended("agent", "Annulé : "+title)
	if notice := c.read(t, "agent", "Annulé : "+title); !strings.Contains(notice.text, reason) {
		t.Errorf("the cancellation notice does not give the reason:\n%s", notice.text)
	}
	if st := signer.state(t); st.Envelope.State != "cancelled" || st.Recipient.CanAct {
		t.Errorf("the signer's link after the cancellation: envelope %s, can act %v", st.Envelope.State, st.Recipient.CanAct)
	}
}

// reminderAndExpiry runs an envelope with a reminder every day and a
// deadline in three days on a gateway of its own (its own address and
// store), started again two days ahead of the machine's clock
// (PARAPHEUR_TEST_CLOCK_OFFSET), as after two days down, then five days
// ahead: the pending signer is reminded once, not once per day missed,
// with a working link; then the envelope expires and the sender and the
// approver who acted are told.
func (e *e2eRig) reminderAndExpiry(t *testing.T) {
	rig, keys := e.c.rig, e.c.keys
	listen, storeURL := freeAddr(t), testrig.Redis(t).URL()
	serve := func(extra ...string) *server {
		env := append(serveEnv(rig, storeURL, keys, listen), "PARAPHEUR_ADDRESS=gw-clock@org.example",
			"PARAPHEUR_IMAP_URL=imap://gw-clock@"+rig.IMAPAddr()+"/INBOX", "PARAPHEUR_TIMEZONE=Europe/Paris")
		return startServeWith(t, append(env, extra...), listen)
	}
	servers := []*server{serve()}
	c := &ceremonyRig{rig: rig, srv: servers[0], keys: keys, base: "http://" + listen, address: "gw-clock@org.example"}
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	const title = "Convention d'occupation 2027"
	c.submit(t, title, "Visa : Anne Viseur <approver@example.com>", "Signataire : Élise Troisième <signer3@example.com>",
		"Rappel : 1 jour", "Échéance : "+time.Now().In(paris).AddDate(0, 0, 3).Format("02/01/2006"))
	c.invited(t, "approver", "À viser : "+title).act(t, c, title, "approved")
	signer := c.invited(t, "signer3", "À signer : "+title)

	servers[0].stop(t)
	servers = append(servers, serve(clockOffsetVariable+"=49h"))
	reminder := c.read(t, "signer3", "Rappel – à signer : "+title)
	if st := c.holder(c.link(t, reminder, "/s/")).state(t); st.Recipient.Email != "signer3@example.com" || !st.Recipient.CanAct {
		t.Fatalf("the reminder's link: %+v", st.Recipient)
	}
	// The invitation's link works until the envelope ends (SPEC §3).
	if st := signer.state(t); !st.Recipient.CanAct {
		t.Fatalf("the invitation's link after the reminder: %+v", st.Recipient)
	}

	servers[1].stop(t)
	servers = append(servers, serve(clockOffsetVariable+"=120h"))
	for _, user := range []string{"bob", "approver"} {
		// The reason: the deadline passed, and who had not acted.
		e.ended(user, "Expiré : "+title)
		if notice := c.read(t, user, "Expiré : "+title); !strings.Contains(notice.text, "a expiré le") || !strings.Contains(notice.text, "Élise Troisième") {
			t.Errorf("%s's expiry notice does not say the deadline passed before Élise Troisième acted:\n%s", user, notice.text)
		}
	}
	if st := signer.state(t); st.Envelope.State != "expired" || st.Recipient.CanAct {
		t.Errorf("the signer's link after the deadline: envelope %s, can act %v", st.Envelope.State, st.Recipient.CanAct)
	}
	// Every mail sent and delivered, the signer holds all the reminders
	// there will be.
	eventually(t, mailWait, "the mail queue empty", func() bool {
		return outboxEmpty(get(t, c.base+"/metrics"), engine.MailQueue)
	})
	if err := rig.WaitDelivered(mailWait); err != nil {
		t.Fatal(err)
	}
	waitCount(t, rig, "signer3", "Rappel – à signer : "+title, 1)
	servers[2].stop(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range servers {
		logsHoldNone(t, s.logs.String(), c.secrets)
	}
}

// sendFixture mails the real-client mail name of mailin/testdata through
// Postfix, from its author to its addressee (the gateway's address, or
// one of its plus-addresses), with each pair of edits
// (old, new) applied, and returns the envelope ID it makes.
func (e *e2eRig) sendFixture(t *testing.T, name string, edits ...string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "mailin", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(edits); i += 2 {
		if !bytes.Contains(raw, []byte(edits[i])) {
			t.Fatalf("%s does not hold %q", name, edits[i])
		}
		raw = bytes.ReplaceAll(raw, []byte(edits[i]), []byte(edits[i+1]))
	}
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	from, err := r.Header.AddressList("From")
	if err != nil || len(from) != 1 {
		t.Fatalf("%s: From: %v %v", name, from, err)
	}
	to, err := r.Header.AddressList("To")
	if err != nil || len(to) != 1 {
		t.Fatalf("%s: To: %v %v", name, to, err)
	}
	msgID := r.Header.Get("Message-ID")
	r.Close()
	sendMail(t, e.c.rig.SMTPAddr(), from[0].Address, to[0].Address, string(raw))
	return engine.EnvelopeID(strings.ToLower(msgID))
}

// reply answers the gateway's mail m from the address from with text, as
// a mail client threads a reply.
func (e *e2eRig) reply(t *testing.T, from string, m received, text string) {
	t.Helper()
	id := m.header.Get("Message-ID")
	msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: Re: %s\r\nMessage-ID: <e2e-reply-%d@partner.example>\r\n"+
		"In-Reply-To: %s\r\nReferences: %s %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n",
		from, e.c.gatewayAddress(), mimeWord(m.header.Get("Subject")), time.Now().UnixNano(), id, m.header.Get("References"), id, text)
	sendMail(t, e.c.rig.SMTPAddr(), from, e.c.gatewayAddress(), msg)
}

// expectSteps checks the envelope's steps in st: one string per step,
// "role:name" for each of its recipients, space-separated.
func (e *e2eRig) expectSteps(t *testing.T, st apiState, want ...string) {
	t.Helper()
	var got []string
	for _, step := range st.Steps {
		var people []string
		for _, r := range step.Recipients {
			people = append(people, step.Role+":"+r.Name)
		}
		got = append(got, strings.Join(people, " "))
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("the envelope's steps are %q, want %q", got, want)
	}
}

// e2eDocument is a document of a completed envelope: its file name and
// how many signatures its final version holds (the ones it came with, the
// signers', the seal and the document time-stamp).
type e2eDocument struct {
	name       string
	signatures int
}

// checkCompleted waits for the final mail of every party of envelope
// envID (the sender first), titled title, in the language lang: each carries the documents and
// the certificate of completion (the archivist, when not "", the audit
// trail too), the same files as the sender's, with their SHA-256 in the
// body. Every PDF passes every independent validator and "parapheur
// verify"; the certificate's embedded trail and the archivist's have an
// intact hash chain. It returns the final mails by user and the
// directory where the sender's files were written.
func (e *e2eRig) checkCompleted(t *testing.T, envID, title, lang string, parties []string, archivist string, docs ...e2eDocument) (map[string]finalMail, string) {
	t.Helper()
	c := e.c
	certName, err := certificate.FileName(envID, lang)
	if err != nil {
		t.Fatal(err)
	}
	auditName := "audit-" + envID + ".json"
	expect := map[string]signtest.Expect{certName: {Signatures: 2, DocTimestamps: 1, CAFile: e.caFile}}
	var names []string
	for _, d := range docs {
		names = append(names, d.name)
		expect[d.name] = signtest.Expect{Signatures: d.signatures, DocTimestamps: 1, CAFile: e.caFile}
	}
	names = append(names, certName)

	subject := map[string]string{"fr": "Terminé : ", "en": "Completed: "}[lang] + title
	finals := map[string]finalMail{}
	for _, user := range parties {
		finals[user] = c.finalMail(t, user, subject)
		e.ended(user, subject)
	}
	sender := finals[parties[0]]
	for user, m := range finals {
		want := names
		if user == archivist {
			want = append(slices.Clone(names), auditName)
		}
		if strings.Join(m.names, "|") != strings.Join(want, "|") {
			t.Fatalf("%s's final mail attaches %q, want %q", user, m.names, want)
		}
		m.statesSums(t, user)
		for _, name := range names {
			if !bytes.Equal(m.files[name], sender.files[name]) {
				t.Errorf("%s's %s is not the sender's", user, name)
			}
		}
	}

	dir := t.TempDir()
	for _, name := range names {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, sender.files[name], 0o644); err != nil {
			t.Fatal(err)
		}
		signtest.Validate(t, path, expect[name])
		// On the gateway's machine (its keys and its store, the running
		// gateway's Redis), verify names the envelope and tells a final
		// document as such (SPEC §6).
		r := parapheur(t, []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_KEYS_DIR=" + c.keys, "PARAPHEUR_STORE_URL=" + c.store}, "verify", path)
		if want := fmt.Sprintf("VALID: all %d signature(s) intact\n", expect[name].Signatures); r.code != exitOK || !strings.Contains(r.stdout, want) {
			t.Errorf("parapheur verify %s: exit %d; want 0 and %q:\n%s%s", name, r.code, want, r.stdout, r.stderr)
		}
		if want := "Envelope " + envID + " (completed).\nThis file is the final version of document "; name != certName && !strings.Contains(r.stdout, want) {
			t.Errorf("parapheur verify %s does not say %q:\n%s%s", name, want, r.stdout, r.stderr)
		}
		t.Logf("parapheur verify %s:\n%s", name, r.stdout)
	}
	if trail := embeddedTrail(t, filepath.Join(dir, certName), envID); len(trail) == 0 {
		t.Error("the certificate embeds an empty audit trail")
	}
	if archivist != "" {
		path := filepath.Join(dir, auditName)
		if err := os.WriteFile(path, finals[archivist].files[auditName], 0o644); err != nil {
			t.Fatal(err)
		}
		if r := parapheur(t, []string{"PARAPHEUR_CONFIG="}, "verify", path); r.code != exitOK || !strings.Contains(r.stdout, "chain intact") {
			t.Errorf("parapheur verify of the archivist's trail: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	}
	return finals, dir
}

// everyMailProcessed checks the gateway's count of the mails it took
// from its mailbox: the submissions and the reply the cases sent, each
// processed, none quarantined, none left out (SPEC §2: nothing is
// silently dropped).
func (e *e2eRig) everyMailProcessed(t *testing.T) {
	const sent = 9 // eight submissions and one DÉLÉGUER reply
	if n := metric(t, e.c.srv, `parapheur_imap_messages_total{outcome="processed"}`); n != sent {
		t.Errorf("the gateway processed %v mails, want the %d sent to it", n, sent)
	}
	if n := metric(t, e.c.srv, `parapheur_imap_messages_total{outcome="quarantine"}`); n != 0 {
		t.Errorf("the gateway quarantined %v mails", n)
	}
}

// oneFinalMailEach waits until the gateway has sent every mail and
// Postfix has delivered them, then counts each mail read that told of an
// envelope's end (final mail or notice) in its mailbox: exactly one each,
// none sent twice.
func (e *e2eRig) oneFinalMailEach(t *testing.T) {
	metrics := e.c.base + "/metrics"
	eventually(t, mailWait, "the mail queue empty", func() bool {
		return outboxEmpty(get(t, metrics), engine.MailQueue) && outboxEmpty(get(t, metrics), engine.CompletionQueue)
	})
	if err := e.c.rig.WaitDelivered(mailWait); err != nil {
		t.Fatal(err)
	}
	if len(e.finals) < 15 {
		t.Fatalf("%d final mails read: the completed envelopes have more parties", len(e.finals))
	}
	for _, f := range e.finals {
		user, subject, _ := strings.Cut(f, "\x00")
		waitCount(t, e.c.rig, user, subject, 1)
	}
}

// e2eSMS is the SMS gateway of TestEndToEnd (sms.url): it accepts every
// message SPEC §3 describes and keeps it.
type e2eSMS struct {
	url  string
	mu   sync.Mutex
	sent map[string][]string // the messages by number
}

func startE2ESMS(t *testing.T) *e2eSMS {
	t.Helper()
	s := &e2eSMS{sent: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ To, Message string }
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&m) != nil || m.To == "" {
			http.Error(w, `want a POST of {"to", "message"}`, http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.sent[m.To] = append(s.sent[m.To], m.Message)
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// code waits for the first message to the number to and returns the
// one-time code it carries.
func (s *e2eSMS) code(t *testing.T, to string) string {
	t.Helper()
	var code string
	eventually(t, mailWait, "a code by SMS to "+to, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.sent[to]) == 0 {
			return false
		}
		code = regexp.MustCompile(`\b\d{6}\b`).FindString(s.sent[to][0])
		if code == "" {
			t.Fatalf("the SMS to %s carries no six-digit code: %q", to, s.sent[to][0])
		}
		return true
	})
	return code
}

// e2ePDFTool runs a PDF tool and fails the test when it fails.
func e2ePDFTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// e2eFormFields lists the names (/T) of the fields of the interactive form
// of the PDF at path, as pdfcpu reads them (through object streams).
func e2eFormFields(t *testing.T, path string) []string {
	t.Helper()
	ctx, err := api.ReadContextFile(path)
	if err != nil {
		t.Fatalf("pdfcpu reading %s: %v", filepath.Base(path), err)
	}
	root, err := ctx.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	form, err := ctx.DereferenceDict(root["AcroForm"])
	if err != nil {
		t.Fatalf("%s: /AcroForm: %v", filepath.Base(path), err)
	}
	fields, err := ctx.DereferenceArray(form["Fields"])
	if err != nil {
		t.Fatalf("%s: /AcroForm /Fields: %v", filepath.Base(path), err)
	}
	var names []string
	for _, f := range fields {
		field, err := ctx.DereferenceDict(f)
		if err != nil || field == nil {
			t.Fatalf("%s: a form field: %v", filepath.Base(path), err)
		}
		names = append(names, fmt.Sprint(field["T"]))
	}
	return names
}

// TestServeRefusesABadClockOffset: the test hook's value must be a
// duration; serve says so rather than run on the machine's clock.
func TestServeRefusesABadClockOffset(t *testing.T) {
	env := append(unreachableServersEnv(t, t.TempDir()), clockOffsetVariable+"=two days")
	r := parapheur(t, env, "serve")
	if want := clockOffsetVariable + `="two days": want a duration such as 25h`; r.code != exitFailure || !strings.Contains(r.stderr, want) {
		t.Fatalf("serve with a bad clock offset: exit %d, stderr %q; want %d and %q", r.code, r.stderr, exitFailure, want)
	}
}
