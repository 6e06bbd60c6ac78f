package web

import (
	"bytes"
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// mustContain fails the test unless body holds every piece.
func mustContain(t *testing.T, what string, a answer, pieces ...string) {
	t.Helper()
	for _, p := range pieces {
		if !strings.Contains(a.body, p) {
			t.Errorf("%s: the page lacks %q:\n%s", what, p, a.body)
		}
	}
}

func mustNotContain(t *testing.T, what string, a answer, pieces ...string) {
	t.Helper()
	for _, p := range pieces {
		if strings.Contains(a.body, p) {
			t.Errorf("%s: the page holds %q:\n%s", what, p, a.body)
		}
	}
}

func wantStatus(t *testing.T, what string, a answer, status int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: status %d, want %d:\n%s", what, a.status, status, a.body)
	}
}

// wantRedirect checks a Post/Redirect/Get answer to the page at path.
func wantRedirect(t *testing.T, what string, a answer, path string) {
	t.Helper()
	wantStatus(t, what, a, http.StatusSeeOther)
	if loc := a.header.Get("Location"); !strings.HasPrefix(loc, path) {
		t.Fatalf("%s: redirected to %q, want %s", what, loc, path)
	}
}

// TestSignerFlowWithoutJavaScript goes through the pages as a browser
// without JavaScript does: an approver asks for a code, reads it from the
// outbox and approves; then the signer of the next step signs, and the
// document the page offers is the signed one.
func TestSignerFlowWithoutJavaScript(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	chef := f.signing("chef@org.example")

	page := b.get(chef)
	wantStatus(t, "approver's page", page, http.StatusOK)
	mustContain(t, "approver's page", page, `<html lang="fr">`, "Convention de partenariat 2027", "Agnès Agent",
		"voici la convention à signer.", "&lt;svg onload=alert(1)&gt;.pdf", f.env.Documents[0].Current, `href="`+chef+`/documents/0"`,
		`id="code-form"`, `id="sign-form"`, `id="decline-form"`, `id="delegate-form"`,
		"Le code est envoyé par courriel à chef@org.example.", "J&#39;ai lu les documents et je les approuve", ">Viser</button>",
		"Étape 1 sur 2 : viser (visa)", "Marie Curie")
	mustNotContain(t, "approver's page", page, "<script", " style=", `id="confirmation"`)
	if got := f.envelope().Recipient("r1").ViewedAt; got.IsZero() {
		t.Error("the GET did not record the view")
	}
	if f.codesSent() != 0 {
		t.Fatal("a GET sent a code")
	}

	wantRedirect(t, "code", b.post(chef+"/code", url.Values{"csrf": {b.csrf(page)}}), chef)
	page = b.get(chef)
	mustContain(t, "after the code", page, "Un code a été envoyé par courriel à chef@org.example", "Essais restants avec ce code : 5.", "Recevoir un nouveau code")

	approve := url.Values{"csrf": {b.csrf(page)}, "code": {f.code("chef@org.example")}, "consent": {"yes"}}
	wantRedirect(t, "approve", b.post(chef+"/sign", approve), chef)
	page = b.get(chef)
	mustContain(t, "confirmation", page, `id="confirmation"`, "Vous avez visé les documents le ")
	mustNotContain(t, "confirmation", page, `id="sign-form"`, `id="code-form"`)
	if r := f.envelope().Recipient("r1"); r.State != workflow.HasApproved {
		t.Fatalf("the approver is %s", r.State)
	}

	// The same form sent again (a resubmission) does nothing twice.
	again := b.post(chef+"/sign", approve)
	wantStatus(t, "resubmitted approval", again, http.StatusConflict)
	mustContain(t, "resubmitted approval", again, `id="error"`, "Vous avez déjà répondu à cette demande")

	marie := f.signing("marie@partner.example")
	m := f.browser()
	page = m.get(marie)
	mustContain(t, "signer's page", page, "J&#39;ai lu les documents et j&#39;accepte de les signer électroniquement", ">Signer</button>")
	wantRedirect(t, "code", m.post(marie+"/code", url.Values{"csrf": {m.csrf(page)}}), marie)
	sign := url.Values{"csrf": {m.csrf(page)}, "code": {f.code("marie@partner.example")}, "consent": {"yes"}}
	wantRedirect(t, "sign", m.post(marie+"/sign", sign), marie)
	page = m.get(marie)
	mustContain(t, "signed", page, `id="confirmation"`, "Vous avez signé les documents le ")
	env := f.envelope()
	signed := env.Documents[0].Current
	if signed == f.env.Documents[0].Current || env.Recipient("r2").State != workflow.HasSigned {
		t.Fatalf("no signature was made: %+v", env.Recipient("r2"))
	}
	mustContain(t, "signed", page, signed)

	doc := m.get(marie + "/documents/0")
	wantStatus(t, "document", doc, http.StatusOK)
	if ct, cd := doc.header.Get("Content-Type"), doc.header.Get("Content-Disposition"); ct != "application/pdf" || !strings.HasPrefix(cd, "inline") {
		t.Errorf("document served as %q, %q", ct, cd)
	}
	if !bytes.HasPrefix([]byte(doc.body), onePagePDF()) || len(doc.body) <= len(onePagePDF()) {
		t.Error("the document served is not the signed version of the original")
	}
	if cd := m.get(marie + "/documents/0?download=1").header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") {
		t.Errorf("download served as %q", cd)
	}
}

// TestSignerRefusalsNextToTheForm: a refused action shows the page again
// with the machine's refusal in the form, with the status of its kind,
// and what was typed (but the code) kept.
func TestSignerRefusalsNextToTheForm(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	chef := f.signing("chef@org.example")

	noCode := b.submit(chef, chef+"/sign", url.Values{"code": {"123456"}, "consent": {"yes"}})
	wantStatus(t, "no code asked", noCode, http.StatusForbidden)
	mustContain(t, "no code asked", noCode, "Aucun code n&#39;est en cours : demandez un nouveau code")

	wantRedirect(t, "code", b.submit(chef, chef+"/code", url.Values{}), chef)
	right := f.code("chef@org.example")
	wrong := "000000"
	if right == wrong {
		wrong = "000001"
	}
	a := b.submit(chef, chef+"/decline", url.Values{"code": {wrong}, "reason": {"Le montant est faux"}})
	wantStatus(t, "wrong code", a, http.StatusForbidden)
	form := a.body[strings.Index(a.body, `id="decline-form"`):]
	form = form[:strings.Index(form, "</form>")]
	if !strings.Contains(form, `<p id="error" class="error">Le code est faux (encore 4 essais)</p>`) || !strings.Contains(form, ">Le montant est faux</textarea>") {
		t.Errorf("the refusal or the reason typed is not in the decline form:\n%s", form)
	}
	mustContain(t, "wrong code", a, "Essais restants avec ce code : 4.", `aria-invalid="true" aria-describedby="error"`,
		`<div class="error-summary" role="alert" aria-labelledby="summary-h">`, `<a href="#error">Le code est faux (encore 4 essais)</a>`)
	if strings.Contains(a.body, wrong) {
		t.Error("the code typed was written back into the page")
	}

	noConsent := b.submit(chef, chef+"/sign", url.Values{"code": {right}})
	wantStatus(t, "no consent", noConsent, http.StatusBadRequest)
	mustContain(t, "no consent", noConsent, "Cochez la case de consentement")

	noReason := b.submit(chef, chef+"/decline", url.Values{"code": {right}, "reason": {"  "}})
	wantStatus(t, "no reason", noReason, http.StatusBadRequest)
	mustContain(t, "no reason", noReason, "Donnez la raison : elle est obligatoire")

	for i := 0; i < 4; i++ {
		wantRedirect(t, "code", b.submit(chef, chef+"/code", url.Values{}), chef)
	}
	tooMany := b.submit(chef, chef+"/code", url.Values{})
	wantStatus(t, "sixth code", tooMany, http.StatusTooManyRequests)
	mustContain(t, "sixth code", tooMany, "Trop de codes ont été demandés")
}

// TestBusyEnvelope: while another signature of the envelope is being
// made, signing is refused with 409 and Retry-After; the code verified
// stays good for the retry, which needs no code.
func TestBusyEnvelope(t *testing.T) {
	f := newFixture(t, func(d *workflow.Draft) { d.Steps = d.Steps[1:] })
	f.server.cer.SignWait = time.Millisecond
	b := f.browser()
	marie := f.signing("marie@partner.example")
	ctx := context.Background()
	lease := "sign/" + f.env.ID
	if ok, err := f.engine.Store.AcquireLease(ctx, lease, "another signature", time.Now(), time.Minute); !ok || err != nil {
		t.Fatalf("lease: %v %v", ok, err)
	}
	wantRedirect(t, "code", b.submit(marie, marie+"/code", url.Values{}), marie)
	busy := b.submit(marie, marie+"/sign", url.Values{"code": {f.code("marie@partner.example")}, "consent": {"yes"}})
	wantStatus(t, "busy", busy, http.StatusConflict)
	if busy.header.Get("Retry-After") == "" {
		t.Error("no Retry-After on a busy envelope")
	}
	mustContain(t, "busy", busy, `<p id="error" class="error">Une autre signature de ce document est en cours`,
		"Votre code est vérifié", `id="sign-form"`)
	if err := f.engine.Store.ReleaseLease(ctx, lease, "another signature"); err != nil {
		t.Fatal(err)
	}
	wantRedirect(t, "retry without a code", b.submit(marie, marie+"/sign", url.Values{"consent": {"yes"}}), marie)
	if r := f.envelope().Recipient("r1"); r.State != workflow.HasSigned {
		t.Fatalf("the retry did not sign: %s", r.State)
	}
}

// TestCannotActSaysWhy: past the deadline (before the expiry timer ran),
// the page offers no action and says why, in the machine's words.
func TestCannotActSaysWhy(t *testing.T) {
	f := newFixture(t, nil)
	chef := f.signing("chef@org.example")
	f.clock.advance(11 * 24 * time.Hour)
	page := f.browser().get(chef)
	wantStatus(t, "past the deadline", page, http.StatusOK)
	mustContain(t, "past the deadline", page, `id="cannot-act"`, "<p>L&#39;échéance de la demande est passée</p>")
	mustNotContain(t, "past the deadline", page, `id="code-form"`, `id="sign-form"`, `id="decline-form"`)
}

// TestDeclineEndsTheEnvelope: a decline with its reason is confirmed once
// (the page of the one who declined does not say it again as how the
// envelope ended), and the sender's page says how it ended.
func TestDeclineEndsTheEnvelope(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	chef := f.signing("chef@org.example")
	wantRedirect(t, "code", b.submit(chef, chef+"/code", url.Values{}), chef)
	a := b.submit(chef, chef+"/decline", url.Values{"code": {f.code("chef@org.example")}, "reason": {"Le montant est faux"}})
	wantRedirect(t, "decline", a, chef)
	page := b.get(chef)
	mustContain(t, "declined", page, `id="confirmation"`, "Vous avez refusé cette demande le ", "Votre raison : Le montant est faux",
		"Votre réponse est enregistrée", "Il vous était demandé de")
	mustNotContain(t, "declined", page, `id="decline-form"`, `id="ended"`, ">Merci<", "Il vous est demandé de")
	if n := strings.Count(page.body, "Le montant est faux"); n != 1 {
		t.Errorf("the reason is shown %d times to the one who declined, want once", n)
	}
	mustContain(t, "declined, sender", b.get(f.status()), "Le montant est faux")
	if env := f.envelope(); env.State != workflow.StateDeclined || env.Reason != "Le montant est faux" {
		t.Fatalf("envelope %s (%q)", env.State, env.Reason)
	}
}

// TestDelegate: the approver hands their place to someone else, who gets
// their own invitation and link.
func TestDelegate(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	chef := f.signing("chef@org.example")
	wantRedirect(t, "code", b.submit(chef, chef+"/code", url.Values{}), chef)
	code := f.code("chef@org.example")
	bad := b.submit(chef, chef+"/delegate", url.Values{"code": {code}, "name": {"Denise Adjointe"},
		"email": {"pas une adresse"}, "reason": {"Congés"}})
	wantStatus(t, "bad delegate", bad, http.StatusBadRequest)
	mustContain(t, "bad delegate", bad, `value="Denise Adjointe"`, `value="pas une adresse"`, "« pas une adresse » n&#39;est pas une adresse électronique comme marie@partenaire.fr")

	a := b.submit(chef, chef+"/delegate", url.Values{"code": {code}, "name": {"Denise Adjointe"}, "email": {"denise@org.example"}, "reason": {"Congés"}})
	wantRedirect(t, "delegate", a, chef)
	page := b.get(chef)
	mustContain(t, "delegated", page, `id="confirmation"`, "Vous avez délégué à Denise Adjointe &lt;denise@org.example&gt;")

	denise := f.signing("denise@org.example")
	d := f.browser()
	page = d.get(denise)
	wantStatus(t, "delegate's page", page, http.StatusOK)
	mustContain(t, "delegate's page", page, `id="sign-form"`, ">Viser</button>", "Denise Adjointe")

	status := d.get(f.status())
	mustContain(t, "status page", status, "A délégué à Denise Adjointe", "À la place de Claude Chef", "a délégué", "délégation",
		"adresse du délégué", "Congés")
}

// TestDelegationNotOffered: without delegation, the form is not shown.
func TestDelegationNotOffered(t *testing.T) {
	f := newFixture(t, func(d *workflow.Draft) { d.NoDelegation = true })
	page := f.browser().get(f.signing("chef@org.example"))
	mustContain(t, "no delegation", page, `id="sign-form"`)
	mustNotContain(t, "no delegation", page, `id="delegate-form"`)
}

// TestCSRF: a form without its token, with a token of another browser or
// of another link, is refused with a page saying to reload, and does
// nothing.
func TestCSRF(t *testing.T) {
	f := newFixture(t, nil)
	b, other := f.browser(), f.browser()
	chef := f.signing("chef@org.example")
	page := b.get(chef)
	cookies := page.header.Values("Set-Cookie")
	if len(cookies) != 1 || !strings.HasPrefix(cookies[0], "__Host-csrf=") || !strings.Contains(cookies[0], "HttpOnly") ||
		!strings.Contains(cookies[0], "SameSite=Strict") || !strings.Contains(cookies[0], "Path=/") || !strings.Contains(cookies[0], "Secure") ||
		strings.Contains(cookies[0], "Domain") {
		t.Errorf("CSRF cookie: %q", cookies)
	}
	otherPage := other.get(chef)
	status := f.browser().get(f.status())

	for name, form := range map[string]url.Values{
		"no token":              {},
		"empty token":           {"csrf": {""}},
		"another browser's":     {"csrf": {other.csrf(otherPage)}},
		"another link's":        {"csrf": {b.csrf(b.get(f.status()))}},
		"a status page's token": {"csrf": {b.csrf(status)}},
	} {
		a := b.post(chef+"/code", form)
		wantStatus(t, name, a, http.StatusForbidden)
		mustContain(t, name, a, "Rechargez la page et recommencez", `href="`+chef+`"`)
	}
	// A browser without the cookie (a cross-site post carries none).
	bare := f.browser()
	a := bare.post(chef+"/code", url.Values{"csrf": {b.csrf(page)}})
	wantStatus(t, "no cookie", a, http.StatusForbidden)
	a = b.post(f.status()+"/cancel", url.Values{"csrf": {b.csrf(page)}, "reason": {"x"}})
	wantStatus(t, "signer's token on the status page", a, http.StatusForbidden)

	huge := b.post(chef+"/decline", url.Values{"csrf": {b.csrf(page)}, "reason": {strings.Repeat("x", maxRequestBody)}})
	wantStatus(t, "a form over the limit", huge, http.StatusRequestEntityTooLarge)
	mustContain(t, "a form over the limit", huge, "Le formulaire envoyé est trop volumineux.")

	f.drainMail()
	if f.codesSent() != 0 || f.envelope().State != workflow.StateInProgress {
		t.Fatal("a refused form acted")
	}
	wantRedirect(t, "the right token", b.post(chef+"/code", url.Values{"csrf": {b.csrf(page)}}), chef)
}

// TestLanguageChoice: ?lang= (kept in a cookie), then the envelope's
// language when its sender chose it, then Accept-Language, then the
// envelope's default language.
func TestLanguageChoice(t *testing.T) {
	f := newFixture(t, nil)
	chef := f.signing("chef@org.example")
	isLang := func(what string, a answer, lang string) {
		t.Helper()
		mustContain(t, what, a, `<html lang="`+lang+`">`)
	}
	b := f.browser()
	isLang("no preference", b.get(chef), "fr")
	b.lang = "de-DE, en;q=0.8, fr;q=0.5"
	en := b.get(chef)
	isLang("Accept-Language", en, "en")
	mustContain(t, "English page", en, "I have read the documents and I approve them", ">Approve</button>", "Step 1 of 2: approve (visa)",
		`<span aria-current="true" lang="en" title="English">EN</span>`, `href="`+chef+`?lang=fr"`)
	// chef approves (visa): the decline control does not speak of signing.
	mustContain(t, "English page", en, "<summary>Decline…</summary>")
	mustNotContain(t, "English page", en, "Decline to sign")

	chosen := b.get(chef + "?lang=fr")
	isLang("?lang=fr", chosen, "fr")
	var cookie string
	for _, c := range chosen.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "lang=") {
			cookie = c
		}
	}
	if cookie == "" || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") || !strings.Contains(cookie, "Secure") {
		t.Errorf("language cookie %q", cookie)
	}
	isLang("the cookie over Accept-Language", b.get(chef), "fr")
	isLang("?lang over the cookie", b.get(chef+"?lang=en"), "en")

	given := newFixture(t, func(d *workflow.Draft) { d.Language, d.LanguageGiven = "en", true })
	g := given.browser()
	g.lang = "fr-FR"
	isLang("the sender's choice over Accept-Language", g.get("/s/"+given.token("chef@org.example")), "en")
	isLang("the reader's switch over the sender's choice", g.get("/s/"+given.token("chef@org.example")+"?lang=fr"), "fr")
	isLang("status page", given.browser().get(given.status()), "en")
}

// TestUserTextEscaped: what senders and recipients typed is shown as
// text, never as markup.
func TestUserTextEscaped(t *testing.T) {
	const evil = `<script>alert("x")</script><img src=x onerror="alert('y')">`
	f := newFixture(t, func(d *workflow.Draft) {
		d.Title = "Titre " + evil
		d.Message = "Message " + evil
		d.Sender.Name = "Agent " + evil
		d.Steps[0].Parties[0].Name = "Chef " + evil
	})
	b := f.browser()
	chef := f.signing("chef@org.example")
	wantRedirect(t, "code", b.submit(chef, chef+"/code", url.Values{}), chef)
	wantRedirect(t, "decline", b.submit(chef, chef+"/decline", url.Values{"code": {f.code("chef@org.example")}, "reason": {"Raison " + evil}}), chef)

	escaped := `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=&#34;alert(&#39;y&#39;)&#34;&gt;`
	for what, a := range map[string]answer{"signer's page": b.get(chef), "status page": b.get(f.status())} {
		wantStatus(t, what, a, http.StatusOK)
		mustNotContain(t, what, a, "<script", "<img", `"alert`)
		for _, p := range []string{"Titre ", "Message ", "Chef ", "Raison "} {
			mustContain(t, what, a, p+escaped)
		}
		mustContain(t, what, a, "&lt;svg onload=alert(1)&gt;.pdf") // the API fixture's file name
	}
	mustContain(t, "signer's page", b.get(chef), "Agent "+escaped)
}

// TestStatusPage: the sender sees every step, recipient and time and the
// audit trail, reminds the pending recipients and cancels with a reason.
func TestStatusPage(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	chef := f.signing("chef@org.example")
	b.get(chef) // a view, for the trail
	if _, err := f.engine.Event(context.Background(), f.env.ID, workflow.Bounced{Meta: workflow.Meta{At: f.clock.Now()},
		Email: "marie@partner.example", Reason: "550 5.1.1 <marie@partner.example>: user unknown"}); err != nil {
		t.Fatal(err)
	}
	e := f.status()
	page := b.get(e)
	wantStatus(t, "status page", page, http.StatusOK)
	mustContain(t, "status page", page, "Suivi de la demande", "Convention de partenariat 2027", "en cours",
		"Étape 1 sur 2 : viser (visa)", "Claude Chef", "&lt;chef@org.example&gt;", "Marie Curie", "Copies et archivage", "archives@org.example",
		"Invité", "Ouvert", "demande reçue", "page ouverte", "courriel non remis",
		"Échec de remise : 550 5.1.1 &lt;marie@partner.example&gt;: user unknown", "authentification de l&#39;expéditeur", "dmarc=pass header.from=org.example", `id="remind-form"`, `id="cancel-form"`, `href="`+e+`/documents/0"`)
	mustNotContain(t, "status page", page, f.token("chef@org.example"), "<script", " style=")
	// The gateway's own events are the gateway's, in the page's language.
	mustContain(t, "status page", page, `<span class="addr">le parapheur</span>`)
	mustNotContain(t, "status page", page, `<span class="addr">system</span>`)

	statusCSRF := page
	before := f.token("chef@org.example")
	wantRedirect(t, "remind", b.submit(e, e+"/remind", url.Values{}), e+"?done=reminded")
	page = b.get(e + "?done=reminded")
	mustContain(t, "reminded", page, `id="confirmation"`, "Une relance a été envoyée", "relance envoyée")
	if f.token("chef@org.example") == before {
		t.Error("the reminder carried no new link to the pending approver")
	}
	// A second reminder within the hour is refused, saying when the next
	// can go: the status link is no mail cannon (a black-box run sent 58
	// reminders in a minute). An hour later it goes.
	f.drainMail()
	queued := len(f.mail)
	f.clock.advance(59 * time.Minute)
	again := b.submit(e, e+"/remind", url.Values{})
	wantStatus(t, "second reminder within the hour", again, http.StatusTooManyRequests)
	mustContain(t, "second reminder within the hour", again, "Une relance est partie à", "la prochaine pourra partir à")
	if f.drainMail(); len(f.mail) != queued {
		t.Errorf("the refused reminder queued %d mails", len(f.mail)-queued)
	}
	f.clock.advance(time.Minute)
	wantRedirect(t, "reminder an hour later", b.submit(e, e+"/remind", url.Values{}), e+"?done=reminded")

	if doc := b.get(e + "/documents/0"); doc.status != http.StatusOK || doc.body != string(onePagePDF()) {
		t.Errorf("status page document: %d", doc.status)
	}

	// The page says who the cancellation is told to, as SPEC §5 has it:
	// the sender and the recipients who already acted, not the pending
	// approver, who gets no mail.
	mustContain(t, "status page", page, "vous et les destinataires qui ont déjà signé ou visé êtes prévenus")
	mustNotContain(t, "status page", page, "chaque destinataire est prévenu")
	f.drainMail()
	queued = len(f.mail)
	// Cancel is "with a reason" (SPEC §3): a blank one, which a form
	// posted without the browser's check sends, cancels nothing and says
	// what to write, on the page.
	a := b.submit(e, e+"/cancel", url.Values{"reason": {" \r\n "}})
	wantStatus(t, "cancel without a reason", a, http.StatusBadRequest)
	mustContain(t, "cancel without a reason", a, `id="error"`, "Donnez le motif de l&#39;annulation", `id="cancel-form"`)
	if env, err := f.engine.Envelope(context.Background(), f.env.ID); err != nil || env.State != workflow.StateInProgress {
		t.Fatalf("after a cancel without a reason: %v, %v", env.State, err)
	}
	wantRedirect(t, "cancel", b.submit(e, e+"/cancel", url.Values{"reason": {"Projet abandonné"}}), e+"?done=cancelled")
	f.drainMail()
	for _, j := range f.mail[queued:] {
		if j.Notice == workflow.CancelNotice && j.To != engine.SenderAddressee {
			t.Errorf("the cancellation was mailed to %s, who had not acted", j.To)
		}
	}
	page = b.get(e + "?done=cancelled")
	mustContain(t, "cancelled", page, "La demande est annulée ; vous et les destinataires qui avaient déjà signé ou visé êtes prévenus", "annulée", "Projet abandonné", "annulation")
	mustNotContain(t, "cancelled", page, "chaque destinataire est prévenu")
	mustNotContain(t, "cancelled", page, `id="remind-form"`, `id="cancel-form"`)
	// Those who had still to act are no longer asked to, on both pages.
	mustContain(t, "cancelled", page, `<span class="state state-stopped">plus sollicité</span>`)
	mustNotContain(t, "cancelled", page, "à faire", "en attente")
	page = b.get(chef)
	mustContain(t, "signer's page after cancel", page, `id="ended"`, "Demande annulée", "L&#39;expéditeur a annulé cette demande. Raison : Projet abandonné",
		`<span class="state state-stopped">plus sollicité</span>`)
	mustNotContain(t, "signer's page after cancel", page, `id="sign-form"`, ">à faire<", ">en attente<")

	// A remind form left open in another tab and sent after the cancel:
	// the machine's refusal, on the page.
	a = b.post(e+"/remind", url.Values{"csrf": {b.csrf(statusCSRF)}})
	wantStatus(t, "remind after cancel", a, http.StatusConflict)
	mustContain(t, "remind after cancel", a, `id="error"`, "La demande est déjà terminée")
}

// TestCompletedEnvelope: after completion both pages offer the final
// documents and the certificate.
func TestCompletedEnvelope(t *testing.T) {
	f := newFixture(t, func(d *workflow.Draft) { d.Steps = d.Steps[1:] })
	b := f.browser()
	marie := f.signing("marie@partner.example")
	wantRedirect(t, "code", b.submit(marie, marie+"/code", url.Values{}), marie)
	wantRedirect(t, "sign", b.submit(marie, marie+"/sign", url.Values{"code": {f.code("marie@partner.example")}, "consent": {"on"}}), marie)
	mustContain(t, "completing", b.get(marie), `id="confirmation"`)
	wantStatus(t, "certificate before completion", b.get(marie+"/certificate"), http.StatusNotFound)

	ctx := context.Background()
	final, err := f.engine.PutDocument(ctx, bytes.NewReader(append(append([]byte(nil), onePagePDF()...), "% sealed\n"...)))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := f.engine.PutDocument(ctx, strings.NewReader("%PDF-1.7 certificate"))
	if err != nil {
		t.Fatal(err)
	}
	f.clock.advance(time.Minute)
	signed, err := f.engine.Envelope(ctx, f.env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine.Event(ctx, f.env.ID, workflow.Sealed{Meta: workflow.Meta{At: f.clock.Now()}, Level: "B-LTA", Serial: "5eal",
		Document: workflow.DocumentVersion{Index: 0, Previous: signed.Documents[0].Current, SHA256: final.SHA256, Size: final.Size}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine.Event(ctx, f.env.ID, workflow.Completed{Meta: workflow.Meta{At: f.clock.Now()}, Certificate: cert.SHA256}); err != nil {
		t.Fatal(err)
	}

	page := b.get(marie)
	mustContain(t, "completed, signer", page, `id="ended"`, "Demande terminée", "Cette demande est terminée", "certificat de réalisation vous est envoyé",
		"toutes les signatures et tous les visas ont été recueillis", // not "toutes les parties ont signé": a visa is no signature
		">Certificat de réalisation<",
		"Ce sont les documents définitifs", final.SHA256)
	if doc := b.get(marie + "/documents/0"); !strings.HasSuffix(doc.body, "% sealed\n") {
		t.Error("the signer's link does not serve the final document")
	}
	mustContain(t, "completed, signer", page, `href="`+marie+`/certificate"`)
	// The page names the certificate as the PDF, the mails and SPEC §5 do.
	mustNotContain(t, "completed, signer", page, "fin de procédure")
	if c := b.get(marie + "/certificate"); c.status != http.StatusOK || c.body != "%PDF-1.7 certificate" {
		t.Errorf("the signer's certificate: %d %q", c.status, c.body)
	}
	e := f.status()
	page = b.get(e)
	mustContain(t, "completed, sender", page, "terminée, signée", final.SHA256, `href="`+e+`/certificate"`,
		"niveau PAdES", "B-LTA", "1. "+html.EscapeString(signed.Documents[0].Name))
	mustNotContain(t, "completed, sender", page, `id="cancel-form"`)
	if c := b.get(e + "/certificate"); c.status != http.StatusOK || c.body != "%PDF-1.7 certificate" {
		t.Errorf("certificate: %d %q", c.status, c.body)
	}
}

// TestEachTokenItsOwnDoor: the sender's token opens no signing page and a
// signer's token no status page.
func TestEachTokenItsOwnDoor(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	signer, sender := f.token("chef@org.example"), f.links[engine.SenderAddressee]
	for _, path := range []string{"/s/" + sender, "/s/" + sender + "/documents/0", "/e/" + signer, "/e/" + signer + "/documents/0",
		"/e/" + signer + "/certificate", "/s/" + sender + "/certificate", "/s/unknown-token", "/e/unknown-token"} {
		a := b.get(path)
		wantStatus(t, path, a, http.StatusNotFound)
		mustContain(t, path, a, `id="error"`, "Ce lien n&#39;est pas valable")
	}
	// The sender's own page and its CSRF token do not let it act as a
	// signer.
	status := b.get("/e/" + sender)
	a := b.post("/s/"+sender+"/sign", url.Values{"csrf": {b.csrf(status)}, "code": {"123456"}, "consent": {"yes"}})
	wantStatus(t, "sender signing", a, http.StatusNotFound)
	if f.envelope().Recipient("r1").State != workflow.Pending {
		t.Fatal("the sender's token acted")
	}
}

// TestAssets: the style sheet is served under a name that changes with
// its content, cached for a year; the pages link it.
func TestAssets(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	css := "/assets/" + f.server.pages.css
	page := b.get(f.signing("chef@org.example"))
	mustContain(t, "page", page, `<link rel="stylesheet" href="`+css+`">`)
	a := b.get(css)
	wantStatus(t, "style sheet", a, http.StatusOK)
	if ct, cc := a.header.Get("Content-Type"), a.header.Get("Cache-Control"); !strings.HasPrefix(ct, "text/css") || !strings.Contains(cc, "max-age=31536000") {
		t.Errorf("style sheet served as %q, %q", ct, cc)
	}
	wantStatus(t, "unknown asset", b.get("/assets/style.css"), http.StatusNotFound)
}

// TestCookiesOverPlainHTTP: behind an http public URL (a test or a
// local installation), the cookies cannot be Secure, and the CSRF cookie
// loses its __Host- prefix, which requires Secure.
func TestCookiesOverPlainHTTP(t *testing.T) {
	f := newFixture(t, nil)
	s, err := New(Config{PublicURL: "http://sign.example", SecretKey: bytes.Repeat([]byte("s"), 32)}, f.server.cer, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://sign.example"+f.signing("chef@org.example")+"?lang=en", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("page: %d\n%s", rec.Code, rec.Body)
	}
	names := map[string]*http.Cookie{}
	for _, c := range rec.Result().Cookies() {
		names[c.Name] = c
	}
	for _, name := range []string{"csrf", "lang"} {
		if c := names[name]; c == nil || c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
			t.Errorf("cookie %s: %+v", name, c)
		}
	}
}
