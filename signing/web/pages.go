package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parapheur/parapheur/signing/ceremony"
	"github.com/parapheur/parapheur/signing/certificate"
	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

// The pages are html/template files and one style sheet, embedded so the
// binary is the whole installation. They need no JavaScript: every action
// is a form posted to the server, answered by a redirection to the page
// (Post/Redirect/Get, so a reload never acts twice) or, when refused, by
// the page again with the refusal next to the form.
//
//go:embed templates/*.html assets/*
var files embed.FS

// pages holds the parsed templates and the assets.
type pages struct {
	signer, status, problem, verify, download *template.Template
	// assets are the embedded files by their served name, which carries
	// a hash of their content: a changed file gets a new name, so each
	// may be cached for a year.
	assets map[string]asset
	// css is the served name of the style sheet.
	css string
}

type asset struct {
	body        []byte
	contentType string
}

func newPages() (*pages, error) {
	p := &pages{assets: map[string]asset{}}
	parse := func(page string) (*template.Template, error) {
		return template.ParseFS(files, "templates/layout.html", "templates/"+page)
	}
	var err error
	if p.signer, err = parse("signer.html"); err != nil {
		return nil, err
	}
	if p.status, err = parse("status.html"); err != nil {
		return nil, err
	}
	if p.problem, err = parse("problem.html"); err != nil {
		return nil, err
	}
	if p.verify, err = parse("verify.html"); err != nil {
		return nil, err
	}
	if p.download, err = parse("download.html"); err != nil {
		return nil, err
	}
	names, err := fs.Glob(files, "assets/*")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		body, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		base := path.Base(name)
		ext := path.Ext(base)
		served := strings.TrimSuffix(base, ext) + "." + hex.EncodeToString(sum[:6]) + ext
		p.assets[served] = asset{body: body, contentType: mime.TypeByExtension(ext)}
		if base == "style.css" {
			p.css = served
		}
	}
	if p.css == "" {
		return nil, errors.New("web: the style sheet is not embedded")
	}
	return p, nil
}

// pageRoutes registers the signer's page (/s/TOKEN) and the sender's
// status page (/e/TOKEN), their forms and documents, and the assets.
func (s *Server) pageRoutes(mux *http.ServeMux) {
	s.route(mux, "GET /s/{token}", s.signerPage)
	s.route(mux, "POST /s/{token}/code", s.signerCode)
	s.route(mux, "POST /s/{token}/sign", s.signerAct(ceremony.Sign, "sign-form"))
	s.route(mux, "POST /s/{token}/decline", s.signerAct(ceremony.Decline, "decline-form"))
	s.route(mux, "POST /s/{token}/delegate", s.signerAct(ceremony.Delegate, "delegate-form"))
	s.route(mux, "GET /s/{token}/documents/{n}", s.signerDocument)
	s.route(mux, "GET /s/{token}/certificate", s.signerCertificate)
	s.route(mux, "GET /e/{token}", s.statusPage)
	s.route(mux, "POST /e/{token}/remind", s.statusRemind)
	s.route(mux, "POST /e/{token}/cancel", s.statusCancel)
	s.route(mux, "GET /e/{token}/documents/{n}", s.statusDocument)
	s.route(mux, "GET /e/{token}/certificate", s.statusCertificate)
	mux.HandleFunc("GET /assets/{name}", s.asset)
}

func (s *Server) asset(w http.ResponseWriter, r *http.Request) {
	a, ok := s.pages.assets[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Write(a.body)
}

// link is the path of a page under the public URL, e.g. link("s", token,
// "sign"); the public URL's own path, if any, comes first.
func (s *Server) link(parts ...string) string {
	prefix := ""
	if u, err := url.Parse(s.cfg.PublicURL); err == nil {
		prefix = strings.TrimRight(u.Path, "/")
	}
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return prefix + "/" + strings.Join(parts, "/")
}

// base is what every page has: the language, its switch, the style sheet,
// and the sentences of the page.
type base struct {
	Lang  string
	Langs []langLink
	CSS   string
	// Wide pages (the status page and its audit table) use more of a
	// large screen.
	Wide bool
	// Verify is the verification page, linked from every page's foot.
	Verify string
	loc    *time.Location
}

// langLink is one entry of the language switch.
type langLink struct {
	Code, Label, Name, Href string
	Current                 bool
}

// T returns the sentence of key in the page's language.
func (b *base) T(key string, args ...any) string { return say(b.Lang, key, args...) }

// When writes a time in full, with its zone.
func (b *base) When(t time.Time) string { return verdict.LongTime(t, b.loc, b.Lang) }

// Until writes a deadline, as the last minute it allows.
func (b *base) Until(t time.Time) string { return lastDay(t, b.loc, b.Lang) }

// On writes "on <time>", for a sentence that says when something happened.
func (b *base) On(t time.Time) string { return say(b.Lang, "at", verdict.LongTime(t, b.loc, b.Lang)) }

// Short writes a time for a table cell.
func (b *base) Short(t time.Time) string { return shortTime(t, b.loc, b.Lang) }

// Sentence starts a refusal with a capital, to show it on its own.
func (b *base) Sentence(s string) string { return sentence(s) }

// Role names a role in the page's language.
func (b *base) Role(r workflow.Role) string { return verdict.Word(roleWords, r, b.Lang) }

// State names a recipient's state in the page's language.
func (b *base) State(st workflow.RecipientState) string { return verdict.Word(stateWords, st, b.Lang) }

// RecipientState names where r stands in env, and its code for the page's
// style: one who was still to act or waiting when env was declined,
// cancelled or expired is no longer asked to.
func (b *base) RecipientState(env *workflow.Envelope, r *workflow.Recipient) (word, code string) {
	if env.State.Final() && env.State != workflow.StateCompleted && (r.State == workflow.Pending || r.State == workflow.Waiting) {
		return say(b.Lang, "not asked any more"), "stopped"
	}
	return b.State(r.State), string(r.State)
}

// EnvelopeState names an envelope's state in the page's language.
func (b *base) EnvelopeState(st workflow.State) string { return verdict.EnvelopeState(st, b.Lang) }

// page starts the view of a page at pagePath for r: it keeps a language
// chosen with ?lang= in a cookie, so the next pages (and the forms'
// answers) keep it.
func (s *Server) page(w http.ResponseWriter, r *http.Request, env *workflow.Envelope, pagePath string) base {
	if l := r.URL.Query().Get("lang"); l == "fr" || l == "en" {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
	}
	lang := s.lang(r, env)
	b := base{Lang: lang, CSS: s.link("assets", s.pages.css), Verify: s.link("verify"), loc: s.cfg.Location}
	for _, l := range []langLink{{Code: "fr", Label: "FR", Name: "Français"}, {Code: "en", Label: "EN", Name: "English"}} {
		l.Current = l.Code == lang
		l.Href = pagePath + "?lang=" + l.Code
		b.Langs = append(b.Langs, l)
	}
	return b
}

// render writes a page; the page is made in memory first, so a template
// failure is an error page, not half a page.
func (s *Server) render(w http.ResponseWriter, t *template.Template, status int, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		s.log.Error("web: page not rendered", "template", t.Name(), "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// problemView is a page that only says what went wrong.
type problemView struct {
	base
	Heading, Message string
	// Back is the page to reload, when there is one.
	Back string
}

// problemPage tells err (a link that is not valid, an internal error) on a
// page of its own, with the status of its kind. back is the page to go
// back to (its language switch leads there too), "" for the page asked
// for.
func (s *Server) problemPage(w http.ResponseWriter, r *http.Request, env *workflow.Envelope, back string, err error) {
	f := s.failureOf(r, err)
	if f.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.retryAfter))
	}
	here := back
	if here == "" {
		here = r.URL.Path
	}
	b := s.page(w, r, env, here)
	s.render(w, s.pages.problem, f.status, &problemView{base: b, Heading: b.T("error title"), Message: sentence(f.text.In(b.Lang)), Back: back})
}

// readForm parses a posted form of the link token and checks its CSRF
// token; when either fails it answers with a page saying to reload
// back, and returns false.
func (s *Server) readForm(w http.ResponseWriter, r *http.Request, token, back string) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	var status int
	key := "bad form"
	var tooBig *http.MaxBytesError
	switch err := r.ParseForm(); {
	case errors.As(err, &tooBig):
		status, key = http.StatusRequestEntityTooLarge, "form too big"
	case err != nil:
		status = http.StatusBadRequest
	case !s.csrfValid(r, token):
		status = http.StatusForbidden
	default:
		return true
	}
	b := s.page(w, r, nil, back)
	s.render(w, s.pages.problem, status, &problemView{base: b, Heading: b.T("error title"), Message: b.T(key), Back: back})
	return false
}

// formError is a refusal shown next to the form that caused it, with what
// was typed in it (but the code).
type formError struct {
	Form    string
	Message string
	Values  url.Values
}

// ErrorIn returns the refusal to show in form, if it is there.
func (e formError) ErrorIn(form string) string {
	if e.Form == form {
		return e.Message
	}
	return ""
}

// Value is what was typed in field of form before a refusal; never the
// one-time code, which is not written back into a page.
func (e formError) Value(form, field string) string {
	if e.Form != form || field == "code" {
		return ""
	}
	return e.Values.Get(field)
}

// signerView is the signer's page.
type signerView struct {
	base
	State
	Env   *workflow.Envelope
	Me    *workflow.Recipient
	CSRF  string
	Docs  []docLink
	Steps []signerStep
	// CodeDest says where a code goes; CodeSent that one went and until
	// when it is valid.
	CodeDest, CodeSent string
	// Decliner names who declined an envelope that ended so.
	Decliner string
	// DelegateName names who the link holder delegated to.
	DelegateName string
	// Certificate links the completion certificate, once there is one.
	Certificate string
	actions     map[string]string
	formError
}

// docLink is one document on a page.
type docLink struct {
	Name, Pages, Size, SHA256, View, Download string
}

// signerStep is one step as the signer's page shows it.
type signerStep struct {
	Label   string
	Current bool
	People  []personView
}

type personView struct {
	Name, State, StateCode, When string
}

// Action is the path a form of the page posts to.
func (v *signerView) Action(name string) string { return v.actions[name] }

// codeField is the one-time code input of a form.
type codeField struct {
	ID, Label string
	// Required unless a code verified lately still allows an action.
	Required bool
	// Invalid when the form's refusal is shown.
	Invalid bool
}

// CodeField is the code input of the form named action ("sign-form"…).
func (v *signerView) CodeField(action string) codeField {
	return codeField{ID: action + "-code", Label: v.T("code"), Required: !v.Recipient.Verified, Invalid: v.ErrorIn(action+"-form") != ""}
}

// Approver tells whether the link holder approves rather than signs.
func (v *signerView) Approver() bool { return v.Me.Role == workflow.Approver }

// TopError is a refusal whose form is no longer on the page (the envelope
// ended, the turn passed): it is shown at the top.
func (v *signerView) TopError() string {
	if v.Message != "" && !v.Recipient.CanAct {
		return v.Message
	}
	return ""
}

// Summary is a refusal shown in its form, announced at the top of the
// page with a link to it: the page opens at its top, and the form may be
// a screen further down.
func (v *signerView) Summary() string {
	if v.Message != "" && v.Recipient.CanAct {
		return v.Message
	}
	return ""
}

func (s *Server) signerPage(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	l, err := s.cer.View(r.Context(), token, s.client(r))
	if err != nil {
		s.problemPage(w, r, l.Envelope, "", err)
		return
	}
	s.renderSigner(w, r, l, http.StatusOK, formError{})
}

func (s *Server) renderSigner(w http.ResponseWriter, r *http.Request, l ceremony.Link, status int, fe formError) {
	token := r.PathValue("token")
	env, me := l.Envelope, l.Recipient()
	b := s.page(w, r, env, s.link("s", token))
	v := &signerView{base: b, State: s.state(r, l), Env: env, Me: me, CSRF: s.csrfToken(s.csrfSeed(w, r), token), formError: fe,
		actions: map[string]string{}}
	for _, a := range []string{"code", "sign", "decline", "delegate"} {
		v.actions[a] = s.link("s", token, a)
	}
	v.Docs = s.docLinks(env, b.Lang, "s", token)
	if env.Certificate != "" {
		v.Certificate = s.link("s", token, "certificate")
	}
	for i, step := range env.Steps {
		sv := signerStep{Label: b.T("step", i+1, len(env.Steps), b.Role(step.Role)), Current: i == env.CurrentStep && !env.State.Final()}
		for _, id := range step.Recipients {
			o := env.Recipient(id)
			pv := personView{Name: displayName(o.Party)}
			pv.State, pv.StateCode = b.RecipientState(env, o)
			if !o.ActedAt.IsZero() {
				pv.When = b.On(o.ActedAt)
			}
			sv.People = append(sv.People, pv)
		}
		v.Steps = append(v.Steps, sv)
	}
	if me.Phone != "" {
		v.CodeDest = b.T("code to sms", maskPhone(me.Phone))
	} else {
		v.CodeDest = b.T("code to mail", me.Email)
	}
	if c := v.Recipient.Code; c != nil && len(me.CodesSent) > 0 {
		sentAt := me.CodesSent[len(me.CodesSent)-1]
		if c.Channel == "sms" {
			v.CodeSent = b.T("code sent sms", maskPhone(me.Phone), clockTime(sentAt, b.loc), clockTime(c.ExpiresAt, b.loc))
		} else {
			v.CodeSent = b.T("code sent mail", me.Email, clockTime(sentAt, b.loc), clockTime(c.ExpiresAt, b.loc))
		}
	}
	for _, o := range env.Recipients {
		if o.State == workflow.HasDeclined {
			v.Decliner = displayName(o.Party)
		}
	}
	if d := env.Recipient(me.DelegatedTo); d != nil {
		v.DelegateName = d.Name + " <" + d.Email + ">"
		if d.Name == "" {
			v.DelegateName = d.Email
		}
	}
	s.render(w, s.pages.signer, status, v)
}

// docLinks are the documents of env as links under /kind/token.
func (s *Server) docLinks(env *workflow.Envelope, lang, kind, token string) []docLink {
	var out []docLink
	for i, d := range env.Documents {
		pages := say(lang, "pages", d.Pages)
		if d.Pages == 1 {
			pages = say(lang, "one page")
		}
		view := s.link(kind, token, "documents", strconv.Itoa(i))
		out = append(out, docLink{Name: d.Name, Pages: pages, Size: verdict.ByteSize(d.Size, lang), SHA256: d.Current,
			View: view, Download: view + "?download=1"})
	}
	return out
}

func (s *Server) signerCode(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if !s.readForm(w, r, token, s.link("s", token)) {
		return
	}
	l, err := s.cer.SendCode(r.Context(), token, s.client(r))
	if err != nil {
		s.signerRefused(w, r, l, err, "code-form")
		return
	}
	http.Redirect(w, r, s.link("s", token)+"#code-form", http.StatusSeeOther)
}

func (s *Server) signerAct(kind ceremony.ActionKind, form string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := r.PathValue("token")
		if !s.readForm(w, r, token, s.link("s", token)) {
			return
		}
		f := r.PostForm
		a := ceremony.Action{Kind: kind, Code: f.Get("code"), Consent: f.Get("consent") != "",
			Reason:   workflow.Clip(f.Get("reason"), workflow.MaxMessageRunes),
			Delegate: workflow.Party{Name: workflow.Clip(f.Get("name"), workflow.MaxNameRunes), Email: f.Get("email")}}
		l, err := s.cer.Act(r.Context(), token, a, s.client(r))
		if err != nil {
			s.signerRefused(w, r, l, err, form)
			return
		}
		http.Redirect(w, r, s.link("s", token)+"#confirmation", http.StatusSeeOther)
	}
}

// signerRefused shows the signer's page again, as it now is, with the
// refusal next to form.
func (s *Server) signerRefused(w http.ResponseWriter, r *http.Request, l ceremony.Link, err error, form string) {
	if l.Envelope == nil {
		s.problemPage(w, r, nil, s.link("s", r.PathValue("token")), err)
		return
	}
	f := s.failureOf(r, err)
	if f.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.retryAfter))
	}
	// The refusal may have changed the envelope (a wrong code counted):
	// show it as it now is.
	if now, err := s.cer.Open(r.Context(), r.PathValue("token")); err == nil {
		l = now
	}
	s.renderSigner(w, r, l, f.status, formError{Form: form, Message: sentence(f.text.In(s.lang(r, l.Envelope))), Values: r.PostForm})
}

func (s *Server) signerDocument(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	l, err := s.cer.Open(r.Context(), token)
	if err != nil {
		s.problemPage(w, r, nil, "", err)
		return
	}
	s.serveDocument(w, r, l, func(err error) { s.problemPage(w, r, l.Envelope, s.link("s", token), err) })
}

// statusView is the sender's status page.
type statusView struct {
	base
	Env       *workflow.Envelope
	CSRF      string
	Docs      []docLink
	Steps     []statusStep
	Observers []recipientRow
	Trail     []trailRow
	// Done says what the sender's last action did.
	Done        string
	Certificate string
	Remind      string
	Cancel      string
	formError
}

type statusStep struct {
	Label   string
	Current bool
	People  []recipientRow
}

// recipientRow is one recipient as the sender sees them.
type recipientRow struct {
	Name, Email, Role, State, StateCode string
	Invited, Sent, Viewed, Acted        string
	// Notes are delegation, decline reason and delivery failure.
	Notes []string
}

// trailRow is one audit record as a table row.
type trailRow struct {
	Time, Event, Actor, IP string
	Details                []detail
}

type detail struct{ Key, Value string }

// peopleTable is a list of recipients on the status page.
type peopleTable struct {
	V      *statusView
	People []recipientRow
}

// Table pairs people with the page, for the template that lists them.
func (v *statusView) Table(people []recipientRow) peopleTable {
	return peopleTable{V: v, People: people}
}

// Summary is a refusal shown in its form, announced at the top.
func (v *statusView) Summary() string {
	if v.Live() {
		return v.Message
	}
	return ""
}

// TopError is a refusal whose form is no longer on the page.
func (v *statusView) TopError() string {
	if !v.Live() {
		return v.Message
	}
	return ""
}

// Live tells whether the request is still in progress and waits for
// someone: once every step is done, nobody is left to remind and the
// request can no longer be cancelled.
func (v *statusView) Live() bool { return !v.Env.State.Final() && v.Env.CurrentStep < len(v.Env.Steps) }

func (s *Server) statusPage(w http.ResponseWriter, r *http.Request) {
	l, trail, err := s.cer.Status(r.Context(), r.PathValue("token"))
	if err != nil {
		s.problemPage(w, r, l.Envelope, "", err)
		return
	}
	s.renderStatus(w, r, l, trail, http.StatusOK, formError{})
}

func (s *Server) renderStatus(w http.ResponseWriter, r *http.Request, l ceremony.Link, trail []audit.Record, status int, fe formError) {
	token := r.PathValue("token")
	env := l.Envelope
	b := s.page(w, r, env, s.link("e", token))
	b.Wide = true
	v := &statusView{base: b, Env: env, CSRF: s.csrfToken(s.csrfSeed(w, r), token), formError: fe,
		Docs: s.docLinks(env, b.Lang, "e", token), Remind: s.link("e", token, "remind"), Cancel: s.link("e", token, "cancel")}
	switch r.URL.Query().Get("done") {
	case "reminded":
		v.Done = b.T("done reminded")
	case "cancelled":
		if env.State == workflow.StateCancelled {
			v.Done = b.T("done cancelled")
		}
	}
	if env.Certificate != "" {
		v.Certificate = s.link("e", token, "certificate")
	}
	row := func(o *workflow.Recipient) recipientRow {
		rr := recipientRow{Name: o.Name, Email: o.Email, Role: b.Role(o.Role),
			Invited: b.Short(o.InvitedAt), Sent: b.Short(o.SentAt), Viewed: b.Short(o.ViewedAt), Acted: b.Short(o.ActedAt)}
		rr.State, rr.StateCode = b.RecipientState(env, o)
		if d := env.Recipient(o.DelegatedTo); d != nil {
			rr.Notes = append(rr.Notes, b.T("delegated to", displayName(d.Party)))
		}
		if d := env.Recipient(o.DelegatedFrom); d != nil {
			rr.Notes = append(rr.Notes, b.T("delegated from", displayName(d.Party)))
		}
		if o.Reason != "" {
			rr.Notes = append(rr.Notes, b.T("declined reason", o.Reason))
		}
		if o.DeliveryFailure != "" {
			rr.Notes = append(rr.Notes, b.T("failure", o.DeliveryFailure))
		}
		return rr
	}
	for i, step := range env.Steps {
		ss := statusStep{Label: b.T("step", i+1, len(env.Steps), b.Role(step.Role)), Current: i == env.CurrentStep && !env.State.Final()}
		for _, id := range step.Recipients {
			ss.People = append(ss.People, row(env.Recipient(id)))
		}
		v.Steps = append(v.Steps, ss)
	}
	for i := range env.Recipients {
		// A delegating recipient left their step: they are shown too,
		// under the step, before the delegate.
		o := &env.Recipients[i]
		switch {
		case !o.Role.Acts():
			v.Observers = append(v.Observers, row(o))
		case o.State == workflow.HasDelegated && o.Step < len(v.Steps):
			st := &v.Steps[o.Step]
			st.People = append([]recipientRow{row(o)}, st.People...)
		}
	}
	for i := len(trail) - 1; i >= 0; i-- {
		v.Trail = append(v.Trail, s.trailRow(env, trail[i], b))
	}
	s.render(w, s.pages.status, status, v)
}

// trailRow writes an audit record for the sender: the event in words,
// recipient IDs as the people they are.
func (s *Server) trailRow(env *workflow.Envelope, rec audit.Record, b base) trailRow {
	row := trailRow{Time: b.Short(rec.Time), Event: verdict.AuditEvent(rec.Type, b.Lang), Actor: verdict.Actor(rec.Actor, b.Lang), IP: rec.IP}
	keys := make([]string, 0, len(rec.Details))
	for k := range rec.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		val := rec.Details[k]
		if val == "" {
			continue // a fact without a value tells the reader nothing
		}
		if k == "to" || k == "recipients" || k == "about" {
			var names []string
			for _, id := range strings.Split(val, ",") {
				if o := env.Recipient(id); o != nil {
					names = append(names, o.Email)
				} else {
					names = append(names, id)
				}
			}
			val = strings.Join(names, ", ")
		}
		if k == "document" {
			// A sealed document is named by its 0-based index.
			if i, err := strconv.Atoi(val); err == nil && i >= 0 && i < len(env.Documents) {
				val = fmt.Sprintf("%d. %s", i+1, env.Documents[i].Name)
			}
		}
		row.Details = append(row.Details, detail{Key: detailName(k, b.Lang), Value: verdict.DetailValue(k, val, b.Lang)})
	}
	return row
}

func (s *Server) statusRemind(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if !s.readForm(w, r, token, s.link("e", token)) {
		return
	}
	l, err := s.cer.Remind(r.Context(), token, s.client(r))
	if err != nil {
		s.statusRefused(w, r, l, err, "remind-form")
		return
	}
	http.Redirect(w, r, s.link("e", token)+"?done=reminded", http.StatusSeeOther)
}

func (s *Server) statusCancel(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if !s.readForm(w, r, token, s.link("e", token)) {
		return
	}
	reason := workflow.Clip(r.PostForm.Get("reason"), workflow.MaxMessageRunes)
	l, err := s.cer.Cancel(r.Context(), token, reason, s.client(r))
	if err != nil {
		s.statusRefused(w, r, l, err, "cancel-form")
		return
	}
	http.Redirect(w, r, s.link("e", token)+"?done=cancelled", http.StatusSeeOther)
}

func (s *Server) statusRefused(w http.ResponseWriter, r *http.Request, l ceremony.Link, err error, form string) {
	f := s.failureOf(r, err)
	now, trail, serr := s.cer.Status(r.Context(), r.PathValue("token"))
	if l.Envelope == nil || serr != nil {
		s.problemPage(w, r, l.Envelope, s.link("e", r.PathValue("token")), err)
		return
	}
	s.renderStatus(w, r, now, trail, f.status, formError{Form: form, Message: sentence(f.text.In(s.lang(r, now.Envelope))), Values: r.PostForm})
}

func (s *Server) statusDocument(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	l, err := s.cer.OpenStatus(r.Context(), token)
	if err != nil {
		s.problemPage(w, r, nil, "", err)
		return
	}
	s.serveDocument(w, r, l, func(err error) { s.problemPage(w, r, l.Envelope, s.link("e", token), err) })
}

// statusCertificate answers with the completion certificate of a
// completed envelope, for its sender.
func (s *Server) statusCertificate(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	l, err := s.cer.OpenStatus(r.Context(), token)
	if err != nil {
		s.problemPage(w, r, nil, "", err)
		return
	}
	s.serveCertificate(w, r, l, s.link("e", token))
}

// signerCertificate answers with the completion certificate of a
// completed envelope, for a recipient.
func (s *Server) signerCertificate(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	l, err := s.cer.Open(r.Context(), token)
	if err != nil {
		s.problemPage(w, r, nil, "", err)
		return
	}
	s.serveCertificate(w, r, l, s.link("s", token))
}

// serveCertificate sends l's completion certificate; back is the page a
// refusal links back to.
func (s *Server) serveCertificate(w http.ResponseWriter, r *http.Request, l ceremony.Link, back string) {
	name, err := certificate.FileName(l.Envelope.ID, l.Envelope.Language)
	if err != nil {
		s.problemPage(w, r, l.Envelope, back, err)
		return
	}
	rc, blob, err := s.cer.Certificate(r.Context(), l)
	if err != nil {
		s.problemPage(w, r, l.Envelope, back, err)
		return
	}
	defer rc.Close()
	s.servePDF(w, r, l, rc, name, blob.Size, blob.SHA256)
}
