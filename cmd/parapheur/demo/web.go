package demo

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Envelopes reads envelopes, for the landing page's view of the sample;
// the gateway's engine is one.
type Envelopes interface {
	Envelope(ctx context.Context, id string) (*workflow.Envelope, error)
}

// Site is the demo's web: the landing page with its submission form, and
// the web mailbox with its JSON twin, all under /demo.
type Site struct {
	// Office delivers the visitors' submissions and keeps the mail shown.
	Office *PostOffice
	// PublicURL is the gateway's public_url; the demo is at PublicURL/demo.
	PublicURL string
	// Language of the pages: "fr" or "en".
	Language string
	// Location is the gateway's time zone, in which the mailbox shows
	// dates as the mails write them; nil means the system's.
	Location *time.Location
	// Envelopes and SampleEnvelope show the sample's progress.
	Envelopes      Envelopes
	SampleEnvelope string
	// SamplePDF is submitted when the visitor chooses no file.
	SamplePDF []byte
	// MaxUpload bounds a visitor's PDF.
	MaxUpload int64
	Log       *slog.Logger
}

// pageSecurityPolicy is the Content-Security-Policy of the demo's pages:
// their own style and script only, and frames of their own (the mails).
const pageSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; " +
	"frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// mailSecurityPolicy is the Content-Security-Policy of a mail's HTML
// shown in the mailbox: no script, nothing fetched, only its own styles
// and embedded images, so that a mail can neither run code nor tell
// anyone it was read.
const mailSecurityPolicy = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

// mailSandbox is the sandbox of the frame showing a mail's HTML: no
// script; a link the reader clicks opens in the whole window (the signing
// pages refuse to be framed).
const mailSandbox = "allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation"

// Handler serves the demo's routes; mount it at /demo/ on the gateway's
// server.
func (s *Site) Handler() (http.Handler, error) {
	w := words[s.Language]
	if w == nil {
		return nil, fmt.Errorf("demo: no pages in language %q", s.Language)
	}
	loc := s.Location
	if loc == nil {
		loc = time.Local
	}
	tmpl, err := template.New("").Funcs(template.FuncMap{
		"linkify": linkify,
		"date":    func(t time.Time) string { return t.In(loc).Format("02/01/2006 15:04 MST") },
		"size":    func(n int) string { return byteSize(n, s.Language) },
		"person":  person,
		"join":    strings.Join,
		// Unknown states (a newer engine's) show as they are.
		"say": func(m map[string]string, v any) string {
			if s, ok := m[fmt.Sprint(v)]; ok {
				return s
			}
			return fmt.Sprint(v)
		},
	}).ParseFS(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	h := &handler{Site: s, tmpl: tmpl, words: w}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /demo", h.landing)
	mux.HandleFunc("GET /demo/{$}", h.landing)
	mux.HandleFunc("POST /demo/submit", h.submit)
	mux.HandleFunc("GET /demo/mail", h.list)
	mux.HandleFunc("GET /demo/mail/{id}", h.message)
	mux.HandleFunc("GET /demo/mail/{id}/html", h.html)
	mux.HandleFunc("GET /demo/mail/{id}/raw", h.raw)
	mux.HandleFunc("GET /demo/api/messages", h.apiList)
	mux.HandleFunc("GET /demo/api/messages/{id}", h.apiMessage)
	mux.HandleFunc("GET /demo/api/messages/{id}/attachments/{n}", h.attachment)
	mux.Handle("GET /demo/static/", http.StripPrefix("/demo/", http.FileServerFS(staticFiles)))
	return mux, nil
}

type handler struct {
	*Site
	tmpl  *template.Template
	words *wordSet
}

// page writes the template name with data and the page's words.
func (h *handler) page(w http.ResponseWriter, status int, name string, data map[string]any) {
	data["W"] = h.words
	data["Lang"] = h.Language
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", pageSecurityPolicy)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	// The signing pages' policy: a link from the mailbox to them stays in
	// the same browsing context group, as a link between them does.
	w.Header().Set("Cross-Origin-Opener-Policy", "same-origin")
	w.WriteHeader(status)
	if err := h.tmpl.ExecuteTemplate(w, name, data); err != nil {
		h.Log.Error("demo: a page could not be written", "page", name, "err", err)
	}
}

func (h *handler) landing(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{"People": People, "Gateway": h.Office.Gateway,
		"Instructions": SampleInstructions(h.Language)}
	// The error is named, not written, in the URL: no link can make the
	// page say what it likes.
	switch r.URL.Query().Get("error") {
	case errUpload:
		data["Error"] = h.words.ErrUpload
	case errForm:
		data["Error"] = h.words.ErrForm
	}
	env, err := h.Envelopes.Envelope(r.Context(), h.SampleEnvelope)
	switch {
	case err == nil:
		data["Sample"] = env
	case errors.Is(err, store.ErrNotFound):
		// The poller has not taken the sample yet: the page says so.
	default:
		h.Log.Warn("demo: the sample envelope could not be read", "envelope", h.SampleEnvelope, "err", err)
	}
	data["PageTitle"] = h.words.Title
	h.page(w, http.StatusOK, "landing.html", data)
}

// submit mails the visitor's document to the gateway, from the mailbox
// they chose, as the demo's MTA would deliver it.
func (h *handler) submit(w http.ResponseWriter, r *http.Request) {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		http.Error(w, "the demo takes submissions from its own page only", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.MaxUpload+1<<20)
	if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		h.refuse(w, r, errUpload)
		return
	}
	i := slices.IndexFunc(People, func(p Person) bool { return p.Email == r.FormValue("from") })
	subject := strings.TrimSpace(r.FormValue("subject"))
	if i < 0 || subject == "" {
		h.refuse(w, r, errForm)
		return
	}
	sub := Submission{From: People[i], To: h.Office.Gateway, Subject: subject,
		Text: r.FormValue("instructions"), PDFName: "convention-jardins-partages.pdf", PDF: h.SamplePDF}
	if f, fh, err := r.FormFile("pdf"); err == nil {
		defer f.Close()
		if sub.PDF, err = io.ReadAll(f); err != nil {
			h.refuse(w, r, errUpload)
			return
		}
		sub.PDFName = fh.Filename
	} else if !errors.Is(err, http.ErrMissingFile) {
		h.refuse(w, r, errUpload)
		return
	}
	raw, err := sub.Mail(time.Now())
	if err != nil {
		h.Log.Error("demo: a submission could not be written", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if _, err := h.Office.Deliver(sub.From.Email, []string{h.Office.Gateway}, raw); err != nil {
		h.Log.Error("demo: a submission could not be delivered", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h.Log.Info("demo: a visitor's document was mailed to the gateway", "from", sub.From.Email, "bytes", len(sub.PDF))
	http.Redirect(w, r, "/demo/mail", http.StatusSeeOther)
}

// The errors of the form, named in the URL of the page that shows them.
const (
	errUpload = "upload"
	errForm   = "form"
)

// refuse sends the visitor back to the form, saying what was wrong.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, reason string) {
	http.Redirect(w, r, "/demo?error="+reason+"#submit", http.StatusSeeOther)
}

// mailboxes are the addresses of the people the demo knows, for the
// list's filter.
func mailboxes() []string {
	var all []string
	for _, p := range People {
		all = append(all, p.Email)
	}
	return all
}

// filtered is list without the mails not to or from addr ("" keeps all).
func filtered(list []Summary, addr string) []Summary {
	if addr == "" {
		return list
	}
	return slices.DeleteFunc(list, func(s Summary) bool {
		if strings.Contains(strings.ToLower(s.From), addr) {
			return false
		}
		for _, to := range s.To {
			if strings.Contains(strings.ToLower(to), addr) {
				return false
			}
		}
		return true
	})
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	list, _ := h.Office.Mailbox.List()
	addr := strings.ToLower(r.URL.Query().Get("to"))
	list = filtered(list, addr)
	h.page(w, http.StatusOK, "list.html", map[string]any{"PageTitle": h.words.Mailbox, "Mails": list, "Filter": addr, "Mailboxes": append(mailboxes(), h.Office.Gateway)})
}

// find finds the mail of the request's {id}, or answers 404 with fail
// (failText for the pages, failJSON for the JSON API).
func (h *handler) find(w http.ResponseWriter, r *http.Request, fail func(w http.ResponseWriter, status int, code, msg string)) (*Message, bool) {
	m, err := h.Office.Mailbox.Message(r.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		fail(w, http.StatusNotFound, "not_found", "no such mail: it may have been removed to make room for newer ones")
		return nil, false
	}
	if err != nil {
		h.Log.Error("demo: a kept mail could not be read", "mail", r.PathValue("id"), "err", err)
		fail(w, http.StatusInternalServerError, "internal", err.Error())
		return nil, false
	}
	return m, true
}

// failText answers an error to a page.
func failText(w http.ResponseWriter, status int, _, msg string) { http.Error(w, msg, status) }

// failJSON answers an error to the JSON API, in the shape of the gateway's
// own API: {"error": {"code", "message"}}.
func failJSON(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]map[string]string{"error": {"code": code, "message": msg}})
}

func (h *handler) message(w http.ResponseWriter, r *http.Request) {
	m, ok := h.find(w, r, failText)
	if !ok {
		return
	}
	h.page(w, http.StatusOK, "message.html", map[string]any{"PageTitle": m.Subject, "Mail": m, "Sandbox": mailSandbox})
}

// html serves a mail's HTML for the mailbox's sandboxed frame, under a
// policy that lets it run nothing and fetch nothing. A <base> makes its
// links open in the whole window.
func (h *handler) html(w http.ResponseWriter, r *http.Request) {
	m, ok := h.find(w, r, failText)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", mailSecurityPolicy)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	io.WriteString(w, `<base target="_top">`+m.HTML)
}

func (h *handler) raw(w http.ResponseWriter, r *http.Request) {
	raw, err := h.Office.Mailbox.Raw(r.PathValue("id"))
	if err != nil {
		http.Error(w, "no such mail", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "message/rfc822")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": r.PathValue("id") + ".eml"}))
	w.Write(raw)
}

// apiSummary is a mail in the JSON list (SPEC §7).
type apiSummary struct {
	ID      string    `json:"id"`
	From    string    `json:"from"`
	To      []string  `json:"to"`
	Subject string    `json:"subject"`
	Date    time.Time `json:"date"`
}

// apiMessage is a whole mail in JSON (SPEC §7).
type apiMessage struct {
	apiSummary
	Text        string          `json:"text"`
	HTML        string          `json:"html"`
	Attachments []apiAttachment `json:"attachments"`
}

type apiAttachment struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int    `json:"size"`
	URL         string `json:"url"`
}

func summaryJSON(s Summary) apiSummary {
	to := s.To
	if to == nil {
		to = []string{}
	}
	return apiSummary{ID: s.ID, From: s.From, To: to, Subject: s.Subject, Date: s.Date}
}

func (h *handler) apiList(w http.ResponseWriter, r *http.Request) {
	list, _ := h.Office.Mailbox.List()
	out := make([]apiSummary, 0, len(list))
	for _, s := range filtered(list, strings.ToLower(r.URL.Query().Get("to"))) {
		out = append(out, summaryJSON(s))
	}
	writeJSON(w, out)
}

func (h *handler) apiMessage(w http.ResponseWriter, r *http.Request) {
	m, ok := h.find(w, r, failJSON)
	if !ok {
		return
	}
	out := apiMessage{apiSummary: summaryJSON(m.Summary), Text: m.Text, HTML: m.HTML, Attachments: []apiAttachment{}}
	for i, a := range m.Attachments {
		out.Attachments = append(out.Attachments, apiAttachment{Name: a.Name, ContentType: a.ContentType, Size: len(a.Content),
			URL: h.PublicURL + attachmentPath(m.ID, i)})
	}
	writeJSON(w, out)
}

func attachmentPath(id string, n int) string {
	return "/demo/api/messages/" + id + "/attachments/" + strconv.Itoa(n)
}

func (h *handler) attachment(w http.ResponseWriter, r *http.Request) {
	m, ok := h.find(w, r, failJSON)
	if !ok {
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n >= len(m.Attachments) {
		failJSON(w, http.StatusNotFound, "not_found", fmt.Sprintf("mail %s has no attachment %q: it has %d, numbered from 0", m.ID, r.PathValue("n"), len(m.Attachments)))
		return
	}
	a := m.Attachments[n]
	ct := a.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": a.Name}))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; sandbox")
	w.Write(a.Content)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// linkPattern finds the web links of a mail's text.
var linkPattern = regexp.MustCompile(`https?://[^\s<>"]+[^\s<>".,;:!?)]`)

// linkify escapes a mail's text for HTML with its web links made links.
func linkify(text string) template.HTML {
	var b strings.Builder
	last := 0
	for _, m := range linkPattern.FindAllStringIndex(text, -1) {
		b.WriteString(template.HTMLEscapeString(text[last:m[0]]))
		link := template.HTMLEscapeString(text[m[0]:m[1]])
		b.WriteString(`<a href="` + link + `">` + link + `</a>`)
		last = m[1]
	}
	b.WriteString(template.HTMLEscapeString(text[last:]))
	return template.HTML(b.String())
}

// person shows an address as the list does: the name, and the address
// in small under it.
func person(addr string) template.HTML {
	name, email, ok := strings.Cut(strings.TrimSuffix(addr, ">"), " <")
	if !ok {
		return template.HTML(`<span class="addr">` + template.HTMLEscapeString(addr) + `</span>`)
	}
	return template.HTML(template.HTMLEscapeString(name) + ` <span class="addr">` + template.HTMLEscapeString(email) + `</span>`)
}

// byteSize writes n for people, as the gateway's mails do: 51.8 KB in
// English, 51,8 Ko in French.
func byteSize(n int, language string) string {
	v, unit := float64(n), "B"
	for _, u := range []string{"KB", "MB", "GB"} {
		if v < 1000 {
			break
		}
		v, unit = v/1000, u
	}
	text := fmt.Sprintf("%.1f %s", v, unit)
	if unit == "B" {
		text = fmt.Sprintf("%d B", n)
	}
	if language == "fr" {
		text = strings.NewReplacer(".", ",", "KB", "Ko", "MB", "Mo", "GB", "Go", " B", " o").Replace(text)
	}
	return text
}
