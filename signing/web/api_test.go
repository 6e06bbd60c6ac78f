package web

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/tsa"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
)

// wrong returns a code that is not code.
func wrong(code string) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (n+1)%1_000_000)
}

func TestAPIStateShowsTheEnvelopeToItsRecipient(t *testing.T) {
	f := newAPIFixture(t)
	w := f.get("/api/v1/sign/" + f.links["r1"])
	st := f.state(w)
	env := st.Envelope
	if env.ID != f.env.ID || env.Title != xssTitle || env.Message != xssMessage || env.State != workflow.StateInProgress ||
		env.Sender != senderEmail || !env.Deadline.Equal(f.env.Deadline) || env.Language != "en" {
		t.Errorf("envelope = %+v", env)
	}
	rec := st.Recipient
	if rec.Name != xssName || rec.Email != "marie@partner.example" || rec.Role != workflow.Signer || rec.State != workflow.Pending ||
		!rec.CanAct || rec.CannotAct != nil || rec.Code != nil || rec.Verified || !rec.CanDelegate {
		t.Errorf("recipient = %+v", rec)
	}
	if len(st.Documents) != 1 || st.Documents[0].Index != 0 || st.Documents[0].Name != xssFileName || st.Documents[0].Pages != 1 ||
		st.Documents[0].SHA256 != f.env.Documents[0].Original || st.Documents[0].Size != int64(len(onePagePDF())) {
		t.Errorf("documents = %+v", st.Documents)
	}
	if len(st.Steps) != 2 || !st.Steps[0].Current || st.Steps[1].Current ||
		!slices.Equal(stepView(st.Steps[0]), []string{xssName + " pending", "Jean pending"}) ||
		!slices.Equal(stepView(st.Steps[1]), []string{"Paul waiting"}) {
		t.Errorf("steps = %+v", st.Steps)
	}
	// Opening the link recorded a view and nothing else.
	trail := f.trail()
	if last := trail[len(trail)-1]; last.Type != audit.Viewed || last.RecipientID != "r1" || last.IP != "192.0.2.10" {
		t.Errorf("last audit record = %+v", last)
	}
	if codes := f.drainMail(); len(codes) != 0 {
		t.Errorf("a view queued mail: %+v", codes)
	}
}

func stepView(s StepState) []string {
	var out []string
	for _, r := range s.Recipients {
		out = append(out, r.Name+" "+string(r.State))
	}
	return out
}

// The title, message, names and file name come back as JSON data: no
// markup character is left raw for a browser to sniff, and the answer
// says it is JSON, not to be sniffed.
func TestAPIEscapesUserText(t *testing.T) {
	f := newAPIFixture(t)
	w := f.get("/api/v1/sign/" + f.links["r1"])
	f.state(w) // decodes back to the texts, as the state test checks
	if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("no nosniff: %v", w.Header())
	}
	if strings.ContainsAny(w.Body.String(), "<>") {
		t.Errorf("the answer holds raw markup:\n%s", w.Body)
	}
	for _, escaped := range []string{`\u003cscript\u003e`, `\u003csvg onload=alert(1)\u003e.pdf`, `Convention \u0026 co`} {
		if !strings.Contains(w.Body.String(), escaped) {
			t.Errorf("the answer lacks %s:\n%s", escaped, w.Body)
		}
	}
}

func TestAPIWrongCodeFiveTimesKillsTheCodeAndTellsTheSender(t *testing.T) {
	f := newAPIFixture(t)
	link := "/api/v1/sign/" + f.links["r1"]
	code := f.sendCode(f.links["r1"])
	for i := range workflow.MaxCodeFailures {
		e := f.wantError(f.post(link+"/sign", map[string]any{"code": wrong(code), "consent": true}), http.StatusForbidden, "wrong_code")
		want := fmt.Sprintf("(%d tries left)", workflow.MaxCodeFailures-1-i)
		switch i {
		case workflow.MaxCodeFailures - 2:
			want = "(1 try left)"
		case workflow.MaxCodeFailures - 1:
			want = "that was its last try (of 5), so it no longer works: ask for a new code"
		}
		if !strings.Contains(e.Message, want) {
			t.Errorf("try %d: %q does not say %s", i+1, e.Message, want)
		}
		if i == 0 {
			if st := f.state(f.get(link)); st.Recipient.Code == nil || st.Recipient.Code.TriesLeft != workflow.MaxCodeFailures-1 {
				t.Errorf("after a wrong code, code = %+v", st.Recipient.Code)
			}
		}
	}
	// The right code is dead now.
	f.wantError(f.post(link+"/sign", map[string]any{"code": code, "consent": true}), http.StatusForbidden, "no_code")
	var locked []engine.Job
	for _, j := range f.drainMail() {
		if j.Notice == workflow.CodeLockedNotice {
			locked = append(locked, j)
		}
	}
	if len(locked) != 1 || locked[0].To != engine.SenderAddressee || locked[0].About != "r1" {
		t.Fatalf("code_locked notices = %+v", locked)
	}
	if r := f.envelope().Recipient("r1"); r.State != workflow.Pending || r.Code != nil {
		t.Errorf("r1 after the lock = %+v", r)
	}
	// A new code works.
	f.state(f.post(link+"/sign", map[string]any{"code": f.sendCode(f.links["r1"]), "consent": true}))
}

func TestAPISixthCodeInAnHourRefused(t *testing.T) {
	f := newAPIFixture(t)
	token := f.links["r1"]
	for range workflow.MaxCodesPerHour {
		f.sendCode(token)
		f.clock.advance(time.Minute)
	}
	w := f.post("/api/v1/sign/"+token+"/code", nil)
	f.wantError(w, http.StatusTooManyRequests, "too_many_codes")
	// The first code was sent 5 minutes ago: the next may go in 55.
	if got := w.Header().Get("Retry-After"); got != strconv.Itoa(55*60) {
		t.Errorf("Retry-After = %q, want %d", got, 55*60)
	}
	if mails := f.drainMail(); len(mails) != 0 {
		t.Errorf("a refused code queued mail: %+v", mails)
	}
	f.clock.advance(55 * time.Minute)
	f.sendCode(token)
}

func TestAPICodeReuseRefused(t *testing.T) {
	f := newAPIFixture(t)
	link := "/api/v1/sign/" + f.links["r1"]
	first := f.sendCode(f.links["r1"])
	second := f.sendCode(f.links["r1"])
	if first == second {
		second = f.sendCode(f.links["r1"]) // one in a million: draw again
	}
	// A new code replaces the one before.
	f.wantError(f.post(link+"/decline", map[string]any{"code": first, "reason": "no"}), http.StatusForbidden, "wrong_code")
	// The code is verified (a delegation to oneself is refused after it)...
	self := f.envelope().Recipient("r1").Email
	f.wantError(f.post(link+"/delegate", map[string]any{"code": second, "name": "Me", "email": self, "reason": "no"}), http.StatusBadRequest, "invalid_delegate")
	if st := f.state(f.get(link)); !st.Recipient.Verified {
		t.Fatalf("after a right code, verified = false")
	}
	// ...and used: once the action window has passed, it opens nothing.
	f.clock.advance(workflow.ActionWindow + time.Second)
	f.wantError(f.post(link+"/sign", map[string]any{"code": second, "consent": true}), http.StatusForbidden, "no_code")
	f.wantError(f.post(link+"/sign", map[string]any{"consent": true}), http.StatusForbidden, "code_required")
	if r := f.envelope().Recipient("r1"); r.State != workflow.Pending {
		t.Errorf("r1 = %s after a reused code", r.State)
	}
}

func TestAPISignAppliesASignature(t *testing.T) {
	f := newAPIFixture(t)
	link := "/api/v1/sign/" + f.links["r1"]
	code := f.sendCode(f.links["r1"])
	// Without consent: refused, the code not spent.
	f.wantError(f.post(link+"/sign", map[string]any{"code": code}), http.StatusBadRequest, "consent_required")
	st := f.state(f.post(link+"/sign", map[string]any{"code": code, "consent": true}))
	if st.Recipient.State != workflow.HasSigned || st.Recipient.CanAct || st.Recipient.CannotAct == nil ||
		st.Recipient.CannotAct.Code != "already_acted" || st.Steps[0].Recipients[0].ActedAt == nil {
		t.Errorf("after signing, recipient = %+v, step = %+v", st.Recipient, st.Steps[0])
	}
	if st.Documents[0].SHA256 == f.env.Documents[0].Original {
		t.Errorf("the document did not change")
	}
	pdf := f.document(f.links["r1"], 0, st.Documents[0].SHA256)
	if sigs := pdftest.Signatures(t, pdf); len(sigs) != 1 {
		t.Fatalf("%d signatures in the signed PDF, want 1", len(sigs))
	}
	// Signing again: refused.
	f.wantError(f.post(link+"/sign", map[string]any{"code": code, "consent": true}), http.StatusConflict, "already_acted")

	// Jean signs too: step 2 starts, Paul is invited and signs.
	f.state(f.post("/api/v1/sign/"+f.links["r2"]+"/sign", map[string]any{"code": f.sendCode(f.links["r2"]), "consent": true}))
	if f.drainMail(); f.links["r3"] == "" {
		t.Fatalf("step 1 done and Paul not invited: %+v", f.mail)
	}
	st = f.state(f.post("/api/v1/sign/"+f.links["r3"]+"/sign", map[string]any{"code": f.sendCode(f.links["r3"]), "consent": true}))
	if sigs := pdftest.Signatures(t, f.document(f.links["r3"], 0, st.Documents[0].SHA256)); len(sigs) != 3 {
		t.Fatalf("%d signatures after three signers, want 3", len(sigs))
	}
	if st.Recipient.CannotAct == nil || st.Recipient.CannotAct.Code != "already_acted" {
		t.Errorf("Paul after signing: %+v", st.Recipient)
	}
	// A document that does not exist.
	f.wantError(f.get("/api/v1/sign/"+f.links["r1"]+"/documents/1"), http.StatusNotFound, "document_not_found")
	f.wantError(f.get("/api/v1/sign/"+f.links["r1"]+"/documents/x"), http.StatusNotFound, "document_not_found")
}

// document gets document n on token's link and checks it is the version
// named sha.
func (f *apiFixture) document(token string, n int, sha string) []byte {
	f.t.Helper()
	w := f.get(fmt.Sprintf("/api/v1/sign/%s/documents/%d", token, n))
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/pdf" || w.Header().Get("ETag") != `"`+sha+`"` {
		f.t.Fatalf("GET documents/%d = %d %v", n, w.Code, w.Header())
	}
	body, _ := io.ReadAll(w.Body)
	return body
}

func TestAPIOutOfTurnRefused(t *testing.T) {
	f := newAPIFixture(t)
	// Paul's step has not started: he has no link yet.
	if f.links["r3"] != "" {
		t.Fatalf("Paul was invited before his turn")
	}
	// Were he given one, the machine would refuse him.
	const early = "early-link-for-paul-0123456789abcdef"
	env := f.envelope()
	if err := env.AddToken("r3", engine.HashToken(early)); err != nil {
		t.Fatal(err)
	}
	if err := f.engine.Store.Update(context.Background(), env, store.Writes{}); err != nil {
		t.Fatal(err)
	}
	f.secrets = append(f.secrets, early)
	st := f.state(f.get("/api/v1/sign/" + early))
	if st.Recipient.CanAct || st.Recipient.CannotAct == nil || st.Recipient.CannotAct.Code != "not_your_turn" {
		t.Errorf("Paul's state = %+v", st.Recipient)
	}
	f.wantError(f.post("/api/v1/sign/"+early+"/code", nil), http.StatusConflict, "not_your_turn")
	f.wantError(f.post("/api/v1/sign/"+early+"/sign", map[string]any{"code": "123456", "consent": true}), http.StatusConflict, "not_your_turn")
}

func TestAPIActAfterDeclineRefused(t *testing.T) {
	f := newAPIFixture(t)
	jeanCode := f.sendCode(f.links["r2"])
	link := "/api/v1/sign/" + f.links["r1"]
	code := f.sendCode(f.links["r1"])
	// Without a reason the decline is refused for it first, code or not,
	// and the code is left as it was: the retry gives it again.
	f.wantError(f.post(link+"/decline", map[string]any{}), http.StatusBadRequest, "reason_required")
	f.wantError(f.post(link+"/decline", map[string]any{"code": code, "reason": " "}), http.StatusBadRequest, "reason_required")
	st := f.state(f.post(link+"/decline", map[string]any{"code": code, "reason": "the amount is wrong"}))
	if st.Envelope.State != workflow.StateDeclined || st.Envelope.Reason != "the amount is wrong" || st.Recipient.State != workflow.HasDeclined {
		t.Fatalf("after the decline: %+v %+v", st.Envelope, st.Recipient)
	}
	jean := "/api/v1/sign/" + f.links["r2"]
	f.wantError(f.post(jean+"/sign", map[string]any{"code": jeanCode, "consent": true}), http.StatusConflict, "envelope_ended")
	f.wantError(f.post(jean+"/code", nil), http.StatusConflict, "envelope_ended")
	if st := f.state(f.get(jean)); st.Recipient.CanAct || st.Recipient.CanDelegate || st.Recipient.CannotAct.Code != "envelope_ended" || st.Envelope.State != workflow.StateDeclined {
		t.Errorf("Jean's state after the decline = %+v", st.Recipient)
	}
}

func TestAPIActAfterExpiryRefused(t *testing.T) {
	f := newAPIFixture(t)
	link := "/api/v1/sign/" + f.links["r1"]
	code := f.sendCode(f.links["r1"])
	f.clock.advance(f.env.Deadline.Sub(f.clock.Now()))
	// Past the deadline, before the expiry timer fired.
	f.wantError(f.post(link+"/sign", map[string]any{"code": code, "consent": true}), http.StatusConflict, "deadline_passed")
	if n, err := f.engine.FireDueTimers(context.Background(), "test"); err != nil || n == 0 {
		t.Fatalf("FireDueTimers = %d, %v", n, err)
	}
	f.wantError(f.post(link+"/code", nil), http.StatusConflict, "envelope_ended")
	if st := f.state(f.get(link)); st.Envelope.State != workflow.StateExpired {
		t.Errorf("state = %s", st.Envelope.State)
	}
}

func TestAPIActAfterCancelRefused(t *testing.T) {
	f := newAPIFixture(t)
	link := "/api/v1/sign/" + f.links["r1"]
	code := f.sendCode(f.links["r1"])
	if _, err := f.server.cer.Cancel(context.Background(), f.links[engine.SenderAddressee], "sent by mistake", workflow.Client{}); err != nil {
		t.Fatal(err)
	}
	f.wantError(f.post(link+"/sign", map[string]any{"code": code, "consent": true}), http.StatusConflict, "envelope_ended")
	f.wantError(f.post(link+"/decline", map[string]any{"code": code, "reason": "x"}), http.StatusConflict, "envelope_ended")
	if st := f.state(f.get(link)); st.Envelope.State != workflow.StateCancelled || st.Envelope.Reason != "sent by mistake" {
		t.Errorf("envelope = %+v", st.Envelope)
	}
}

func TestAPIOneRecipientCannotActForAnother(t *testing.T) {
	f := newAPIFixture(t)
	jeanCode := f.sendCode(f.links["r2"])
	marie := "/api/v1/sign/" + f.links["r1"]
	// Marie's link with Jean's code: Marie has no code.
	f.wantError(f.post(marie+"/sign", map[string]any{"code": jeanCode, "consent": true}), http.StatusForbidden, "no_code")
	// With a code of her own outstanding, Jean's is wrong for her (unless
	// hers is the same, one time in a million: she asks again).
	for f.sendCode(f.links["r1"]) == jeanCode {
	}
	f.wantError(f.post(marie+"/sign", map[string]any{"code": jeanCode, "consent": true}), http.StatusForbidden, "wrong_code")
	env := f.envelope()
	if env.Recipient("r2").State != workflow.Pending || env.Recipient("r1").State != workflow.Pending {
		t.Fatalf("states after the attempts: %s %s", env.Recipient("r1").State, env.Recipient("r2").State)
	}
	// Marie's link shows Marie, and acts for her only.
	if st := f.state(f.get(marie)); st.Recipient.Email != "marie@partner.example" {
		t.Errorf("Marie's link shows %s", st.Recipient.Email)
	}
	f.state(f.post("/api/v1/sign/"+f.links["r2"]+"/sign", map[string]any{"code": jeanCode, "consent": true}))
	env = f.envelope()
	if env.Recipient("r2").State != workflow.HasSigned || env.Recipient("r1").State != workflow.Pending {
		t.Errorf("states after Jean signed: %s %s", env.Recipient("r1").State, env.Recipient("r2").State)
	}
}

func TestAPISenderTokenCannotSign(t *testing.T) {
	f := newAPIFixture(t)
	sender := f.links[engine.SenderAddressee]
	if sender == "" {
		t.Fatal("no acknowledgement with a status token")
	}
	link := "/api/v1/sign/" + sender
	f.wantError(f.get(link), http.StatusNotFound, "link_not_found")
	f.wantError(f.post(link+"/code", nil), http.StatusNotFound, "link_not_found")
	f.wantError(f.post(link+"/sign", map[string]any{"code": "123456", "consent": true}), http.StatusNotFound, "link_not_found")
	f.wantError(f.get(link+"/documents/0"), http.StatusNotFound, "link_not_found")
	// Nor can a made-up one.
	f.wantError(f.get("/api/v1/sign/"+strings.Repeat("A", 43)), http.StatusNotFound, "link_not_found")
}

func TestAPIDelegate(t *testing.T) {
	f := newAPIFixture(t)
	link := "/api/v1/sign/" + f.links["r1"]
	code := f.sendCode(f.links["r1"])
	f.wantError(f.post(link+"/delegate", map[string]any{"code": code, "name": "Luc", "email": "not an address", "reason": "holiday"}),
		http.StatusBadRequest, "invalid_delegate")
	// The gateway drops its own mail: a delegate there would never be
	// invited, whatever the +detail (a black-box run found the page took it
	// where a reply mail did not).
	for _, own := range []string{"parapheur@org.example", "Parapheur+verifier@ORG.example"} {
		f.wantError(f.post(link+"/delegate", map[string]any{"code": code, "name": "X", "email": own, "reason": "holiday"}),
			http.StatusBadRequest, "invalid_delegate")
	}
	f.wantError(f.post(link+"/delegate", map[string]any{"code": code, "name": "Luc", "email": "luc@partner.example"}),
		http.StatusBadRequest, "reason_required")
	// The refused requests left the code as it was: it still acts.
	st := f.state(f.post(link+"/delegate", map[string]any{"code": code, "name": "Luc", "email": "luc@partner.example", "reason": "on holiday"}))
	if st.Recipient.State != workflow.HasDelegated {
		t.Fatalf("after delegating: %+v", st.Recipient)
	}
	var invited, told bool
	for _, j := range f.drainMail() {
		if j.Notice == workflow.Invitation && j.Token != "" {
			r := f.envelope().Recipient(j.To)
			invited = r != nil && r.Email == "luc@partner.example" && r.Name == "Luc"
		}
		told = told || (j.Notice == workflow.DelegationNotice && j.To == engine.SenderAddressee)
	}
	if !invited || !told {
		t.Fatalf("delegate invited %v, sender told %v: %+v", invited, told, f.mail)
	}
	luc := f.envelope().Recipients[len(f.envelope().Recipients)-1]
	if st := f.state(f.get("/api/v1/sign/" + f.links[luc.ID])); !st.Recipient.CanAct || st.Recipient.Email != "luc@partner.example" {
		t.Errorf("the delegate's state = %+v", st.Recipient)
	}
}

func TestAPIBadRequestBodies(t *testing.T) {
	f := newAPIFixture(t)
	link := "/api/v1/sign/" + f.links["r1"] + "/sign"
	send := func(contentType, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, link, strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		return f.request(r)
	}
	for _, c := range []struct {
		contentType, body string
		status            int
		code, says        string
	}{
		{"application/json", `{"code": "1", "consent": tru}`, http.StatusBadRequest, "bad_request", "not the JSON object expected: it is not valid JSON (at byte 29)"},
		{"application/json", `["code"]`, http.StatusBadRequest, "bad_request", "not the JSON object expected: it must be a JSON object, not array"},
		{"application/json", `{"code": "1", "consent": "yes"}`, http.StatusBadRequest, "bad_request", `not the JSON object expected: "consent" must be true or false, not string`},
		{"application/json", `{"code": 123456, "consent": true}`, http.StatusBadRequest, "bad_request", `not the JSON object expected: "code" must be a string, not number`},
		{"application/json", `{"code": "1", "consnet": true}`, http.StatusBadRequest, "bad_request", `unknown field "consnet"`},
		{"application/json", `{"code": "1"} {"code": "2"}`, http.StatusBadRequest, "bad_request", "more than one JSON value"},
		{"application/x-www-form-urlencoded", `code=1&consent=on`, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type: application/json"},
		{"text/plain", `{"code": "1", "consent": true}`, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type: application/json"},
		{"application/json", `{"reason": "` + strings.Repeat("x", maxRequestBody) + `"}`, http.StatusRequestEntityTooLarge, "body_too_large", "over 65536 bytes"},
	} {
		e := f.wantError(send(c.contentType, c.body), c.status, c.code)
		if !strings.Contains(e.Message, c.says) {
			t.Errorf("%s %.40s: message %q does not say %q", c.contentType, c.body, e.Message, c.says)
		}
		if strings.Contains(e.Message, "Go ") || strings.Contains(e.Message, "actRequest") {
			t.Errorf("%s %.40s: message %q names the gateway's Go types", c.contentType, c.body, e.Message)
		}
	}
	if r := f.envelope().Recipient("r1"); r.State != workflow.Pending || len(r.CodesSent) != 0 {
		t.Errorf("bad requests changed r1: %+v", r)
	}
}

// The client's address in the audit trail is the connection's, or the one
// a trusted proxy names in X-Forwarded-For.
func TestAPIForwardedForBelievedOnlyFromTrustedProxy(t *testing.T) {
	f := newAPIFixture(t, func(c *Config, _ *workflow.Draft) { c.TrustedProxies = mustPrefixes(t, "10.0.0.0/8") })
	view := func(remote, forwarded string) string {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/sign/"+f.links["r1"], nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", forwarded)
		f.state(f.request(r))
		trail := f.trail()
		return trail[len(trail)-1].IP
	}
	if ip := view("10.1.2.3:5555", "203.0.113.9, 10.0.0.7"); ip != "203.0.113.9" {
		t.Errorf("through a trusted proxy, IP = %s", ip)
	}
	if ip := view("198.51.100.20:5555", "203.0.113.10"); ip != "198.51.100.20" {
		t.Errorf("from an untrusted client claiming a forwarded address, IP = %s", ip)
	}
	if ip := view("10.1.2.3:5555", "203.0.113.11, 198.51.100.21"); ip != "198.51.100.21" {
		t.Errorf("a client's own X-Forwarded-For passed through a proxy: IP = %s", ip)
	}
}

// trail returns the envelope's audit trail.
func (f *apiFixture) trail() []audit.Record {
	f.t.Helper()
	trail, err := f.engine.Store.AuditTrail(context.Background(), f.env.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return trail
}

// A signature already being made: the second gets 409 busy with
// Retry-After, never a second signature.
func TestAPIBusyWhileAnotherSignatureRuns(t *testing.T) {
	f := newAPIFixture(t)
	f.server.cer.SignWait = time.Millisecond
	ctx := context.Background()
	if ok, err := f.engine.Store.AcquireLease(ctx, "sign/"+f.env.ID, "other", time.Now(), time.Minute); err != nil || !ok {
		t.Fatalf("lease: %v %v", ok, err)
	}
	link := "/api/v1/sign/" + f.links["r1"]
	w := f.post(link+"/sign", map[string]any{"code": f.sendCode(f.links["r1"]), "consent": true})
	f.wantError(w, http.StatusConflict, "busy")
	if w.Header().Get("Retry-After") == "" {
		t.Errorf("busy without Retry-After")
	}
	f.engine.Store.ReleaseLease(ctx, "sign/"+f.env.ID, "other")
	// The code was verified: the retry needs none.
	st := f.state(f.post(link+"/sign", map[string]any{"consent": true}))
	if st.Recipient.State != workflow.HasSigned {
		t.Errorf("after the retry: %s", st.Recipient.State)
	}
}

func mustPrefixes(t *testing.T, prefixes ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, p := range prefixes {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

// An approver's sign call is the approval of the visa step: recorded
// without a signature; then the signers are invited.
func TestAPIApproveRecordsNoSignature(t *testing.T) {
	f := newAPIFixture(t, func(_ *Config, d *workflow.Draft) {
		d.Steps = []workflow.DraftStep{
			{Role: workflow.Approver, Parties: []workflow.Party{{Name: "Alice", Email: "alice@org.example"}}},
			{Role: workflow.Signer, Parties: []workflow.Party{{Name: "Paul", Email: "paul@partner.example"}}},
		}
	})
	link := "/api/v1/sign/" + f.links["r1"]
	if st := f.state(f.get(link)); st.Recipient.Role != workflow.Approver || !st.Recipient.CanAct {
		t.Fatalf("approver's state = %+v", st.Recipient)
	}
	code := f.sendCode(f.links["r1"])
	f.wantError(f.post(link+"/sign", map[string]any{"code": code}), http.StatusBadRequest, "consent_required")
	st := f.state(f.post(link+"/sign", map[string]any{"code": code, "consent": true}))
	if st.Recipient.State != workflow.HasApproved || st.Documents[0].SHA256 != f.env.Documents[0].Original {
		t.Fatalf("after approving: %+v, document %s", st.Recipient, st.Documents[0].SHA256)
	}
	if sigs := pdftest.Signatures(t, f.document(f.links["r1"], 0, f.env.Documents[0].Original)); len(sigs) != 0 {
		t.Errorf("an approval signed the document %d times", len(sigs))
	}
	if f.drainMail(); f.links["r2"] == "" {
		t.Fatalf("the signer was not invited after the approval: %+v", f.mail)
	}
	st = f.state(f.post("/api/v1/sign/"+f.links["r2"]+"/sign", map[string]any{"code": f.sendCode(f.links["r2"]), "consent": true}))
	if sigs := pdftest.Signatures(t, f.document(f.links["r2"], 0, st.Documents[0].SHA256)); len(sigs) != 1 {
		t.Errorf("%d signatures after the signer, want 1", len(sigs))
	}
}

func TestAPIDelegationDisabled(t *testing.T) {
	f := newAPIFixture(t, func(_ *Config, d *workflow.Draft) { d.NoDelegation = true })
	link := "/api/v1/sign/" + f.links["r1"]
	if st := f.state(f.get(link)); st.Recipient.CanDelegate {
		t.Errorf("can_delegate in an envelope without delegation")
	}
	f.wantError(f.post(link+"/delegate", map[string]any{"code": f.sendCode(f.links["r1"]), "name": "Luc",
		"email": "luc@partner.example", "reason": "on holiday"}), http.StatusForbidden, "delegation_disabled")
	if r := f.envelope().Recipient("r1"); r.State != workflow.Pending || len(f.envelope().Recipients) != 3 {
		t.Errorf("a refused delegation changed the envelope: %+v", r)
	}
}

// A path under /api/ that no route takes, or a route asked with a method
// it does not have, is answered as every error of the API is (SPEC §3):
// JSON {"error": {"code", "message"}}, 404 or 405 with Allow; and asking
// GET of an action's route does nothing.
func TestAPIUnknownRouteOrMethodAnswersJSON(t *testing.T) {
	f := newAPIFixture(t)
	link := "/api/v1/sign/" + f.links["r1"]
	for _, c := range []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{http.MethodGet, link + "/code", http.StatusMethodNotAllowed, "method_not_allowed", "POST"},
		{http.MethodGet, link + "/sign", http.StatusMethodNotAllowed, "method_not_allowed", "POST"},
		{http.MethodPut, link, http.StatusMethodNotAllowed, "method_not_allowed", "GET, HEAD"},
		{http.MethodDelete, link + "/documents/0", http.StatusMethodNotAllowed, "method_not_allowed", "GET, HEAD"},
		{http.MethodGet, link + "/nothing", http.StatusNotFound, "not_found", ""},
		{http.MethodGet, "/api/v1/sign/", http.StatusNotFound, "not_found", ""},
		{http.MethodPost, "/api/v2/sign/" + f.links["r1"] + "/code", http.StatusNotFound, "not_found", ""},
	} {
		// Not f.request: these paths are rightly absent from openapi.json.
		r := httptest.NewRequest(c.method, c.path, nil)
		r.RemoteAddr = "192.0.2.10:40000"
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("%s %s: Content-Type %q, body %q", c.method, c.path, ct, w.Body)
			continue
		}
		f.wantError(w, c.status, c.code)
		if got := w.Header().Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	if jobs := f.drainMail(); len(jobs) != 0 {
		t.Errorf("the refused requests queued mail: %+v", jobs)
	}
	if r := f.envelope().Recipient("r1"); r.State != workflow.Pending || len(r.CodesSent) != 0 {
		t.Errorf("the refused requests changed r1: %+v", r)
	}
}

// A client whose User-Agent is not UTF-8 (Latin-1 bytes) signs, and the
// envelope's audit trail, read back from the store, still verifies: the
// certificate of completion checks it, and a broken chain would leave the
// envelope stuck.
func TestUserAgentNotUTF8KeepsTheTrail(t *testing.T) {
	f := newAPIFixture(t)
	link := "/api/v1/sign/" + f.links["r1"]
	code := f.sendCode(f.links["r1"])
	r := httptest.NewRequest(http.MethodPost, link+"/sign", strings.NewReader(`{"code": "`+code+`", "consent": true}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "Mozilla/5.0 caf\xe9")
	if w := f.request(r); w.Code != http.StatusOK {
		t.Fatalf("sign = %d %s", w.Code, w.Body)
	}
	trail := f.trail()
	if err := audit.Verify(trail); err != nil {
		t.Fatalf("the trail does not verify: %v", err)
	}
	if last := trail[len(trail)-1]; last.Type != audit.Signed || last.UserAgent != "Mozilla/5.0 caf\uFFFD" {
		t.Errorf("last record %s with user agent %q, want the signature with the byte replaced by U+FFFD", last.Type, last.UserAgent)
	}
}

// What cannot be a code is refused as such, without using one of the
// code's tries; the code written with a space in the middle is the code.
func TestAPIMalformedCodeUsesNoTry(t *testing.T) {
	f := newAPIFixture(t)
	link := "/api/v1/sign/" + f.links["r1"]
	code := f.sendCode(f.links["r1"])
	for _, bad := range []string{"12ab56", code[:5], code + "0"} {
		e := f.wantError(f.post(link+"/sign", map[string]any{"code": bad, "consent": true}), http.StatusBadRequest, "malformed_code")
		if !strings.Contains(e.Message, "is not a code: a code is 6 digits") {
			t.Errorf("%q: %q", bad, e.Message)
		}
	}
	if st := f.state(f.get(link)); st.Recipient.Code == nil || st.Recipient.Code.TriesLeft != workflow.MaxCodeFailures {
		t.Errorf("after malformed codes, code = %+v, want every try left", st.Recipient.Code)
	}
	if w := f.post(link+"/sign", map[string]any{"code": code[:3] + " " + code[3:], "consent": true}); w.Code != http.StatusOK {
		t.Errorf("the code with a space: %d %s", w.Code, w.Body)
	}
}

// A part the gateway needs that does not answer (here the time-stamp
// authority) is 503 unavailable with Retry-After, not an internal error,
// and nothing is signed: the same request succeeds once it answers.
func TestAPIUnavailablePartIs503(t *testing.T) {
	f := newAPIFixture(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + closed.Addr().String()
	closed.Close()
	f.server.cer.TSA = &tsa.Client{URL: down}
	link := "/api/v1/sign/" + f.links["r1"]
	code := f.sendCode(f.links["r1"])
	w := f.post(link+"/sign", map[string]any{"code": code, "consent": true})
	f.wantError(w, http.StatusServiceUnavailable, "unavailable")
	if w.Header().Get("Retry-After") != "10" {
		t.Errorf("Retry-After %q, want 10", w.Header().Get("Retry-After"))
	}
	if st := f.state(f.get(link)); st.Recipient.State != workflow.Pending {
		t.Errorf("after the unavailable TSA, the recipient is %s", st.Recipient.State)
	}
	f.server.cer.TSA = nil
	if w := f.post(link+"/sign", map[string]any{"consent": true}); w.Code != http.StatusOK {
		t.Errorf("signing again once the part answers: %d %s", w.Code, w.Body)
	}
}
