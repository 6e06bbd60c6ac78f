package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/parapheur/parapheur/signing/ceremony"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/problem"
)

// maxRequestBody bounds a JSON request body: the largest is a delegation
// with a reason.
const maxRequestBody = 64 << 10

// apiRoutes registers the JSON API of SPEC §3.
func (s *Server) apiRoutes(mux *http.ServeMux) {
	s.route(mux, "GET /api/v1/sign/{token}", s.apiState)
	s.route(mux, "POST /api/v1/sign/{token}/code", s.apiCode)
	s.route(mux, "POST /api/v1/sign/{token}/sign", s.apiAct(ceremony.Sign))
	s.route(mux, "POST /api/v1/sign/{token}/decline", s.apiAct(ceremony.Decline))
	s.route(mux, "POST /api/v1/sign/{token}/delegate", s.apiAct(ceremony.Delegate))
	s.route(mux, "GET /api/v1/sign/{token}/documents/{n}", s.apiDocument)
	s.route(mux, "GET /api/v1/openapi.json", s.openAPI)
	mux.Handle("/api/", s.apiNoRoute(mux))
}

// apiNoRoute answers a request under /api/ that no route of the API
// takes, as every other error of the API, in JSON (SPEC §3): 405 with
// Allow when the path is one of the API's for other methods, else 404.
// Without it the mux's plain-text "404 page not found" or "Method Not
// Allowed" would reach a program that expects {"error": {...}}.
func (s *Server) apiNoRoute(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/api/" {
				allow = append(allow, m)
				if m == http.MethodGet {
					allow = append(allow, http.MethodHead)
				}
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.refuse(w, r, http.StatusMethodNotAllowed, "method_not_allowed", problem.Text{
				EN: "this method is not allowed here: use " + strings.Join(allow, " or "),
				FR: "cette méthode n'est pas permise ici : utilisez " + strings.Join(allow, " ou ")}, 0)
			return
		}
		s.refuse(w, r, http.StatusNotFound, "not_found", problem.Text{
			EN: "there is no such address in the API: see /api/v1/openapi.json",
			FR: "cette adresse n'existe pas dans l'API : voir /api/v1/openapi.json"}, 0)
	})
}

// State is the answer of GET /api/v1/sign/TOKEN and of every action.
type State struct {
	Envelope  EnvelopeState   `json:"envelope"`
	Recipient RecipientState  `json:"recipient"`
	Documents []DocumentState `json:"documents"`
	Steps     []StepState     `json:"steps"`
}

// EnvelopeState describes the envelope.
type EnvelopeState struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// State is in_progress, completed, declined, cancelled or expired.
	State workflow.State `json:"state"`
	// Sender is the sender's address; SenderName their display name.
	Sender     string    `json:"sender"`
	SenderName string    `json:"sender_name,omitempty"`
	Message    string    `json:"message,omitempty"`
	Language   string    `json:"language"`
	Deadline   time.Time `json:"deadline"`
	// Reason is why the envelope ended, when declined, cancelled or expired.
	Reason string `json:"reason,omitempty"`
}

// RecipientState describes the link holder.
type RecipientState struct {
	Name  string                  `json:"name"`
	Email string                  `json:"email"`
	Role  workflow.Role           `json:"role"`
	State workflow.RecipientState `json:"state"`
	// CanAct tells whether the recipient may act now; when not,
	// CannotAct says why, with the refusal's stable code.
	CanAct    bool       `json:"can_act"`
	CannotAct *APIError  `json:"cannot_act,omitempty"`
	Code      *CodeState `json:"code,omitempty"`
	// Verified tells that a code was verified and not used yet: the next
	// action needs no code.
	Verified bool `json:"verified"`
	// CanDelegate tells whether the recipient may hand their place to
	// someone else now: delegation is allowed in this envelope and they
	// can act.
	CanDelegate bool `json:"can_delegate"`
}

// CodeState describes the outstanding one-time code (never the code).
type CodeState struct {
	Channel   string    `json:"channel"`
	ExpiresAt time.Time `json:"expires_at"`
	TriesLeft int       `json:"tries_left"`
}

// DocumentState describes one document as it now is.
type DocumentState struct {
	Index  int    `json:"index"`
	Name   string `json:"name"`
	Pages  int    `json:"pages"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	URL    string `json:"url"`
}

// StepState is one step and how far its recipients are.
type StepState struct {
	Role       workflow.Role   `json:"role"`
	Current    bool            `json:"current"`
	Recipients []StepRecipient `json:"recipients"`
}

// StepRecipient is one recipient of a step, as another recipient sees them.
type StepRecipient struct {
	Name    string                  `json:"name"`
	State   workflow.RecipientState `json:"state"`
	ActedAt *time.Time              `json:"acted_at,omitempty"`
}

// APIError is the body of every error answer: {"error": {...}}.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (s *Server) state(r *http.Request, l ceremony.Link) State {
	env, rec := l.Envelope, l.Recipient()
	now := s.cer.Engine.Now()
	st := State{
		Envelope: EnvelopeState{ID: env.ID, Title: env.Title, State: env.State, Sender: env.Sender.Email,
			SenderName: env.Sender.Name, Message: env.Message, Language: env.Language, Deadline: env.Deadline, Reason: env.Reason},
		Recipient: RecipientState{Name: rec.Name, Email: rec.Email, Role: rec.Role, State: rec.State,
			Verified: !rec.VerifiedAt.IsZero() && now.Sub(rec.VerifiedAt) <= workflow.ActionWindow},
	}
	if err := workflow.CanAct(env, rec.ID, now); err != nil {
		f := s.failureOf(r, err)
		st.Recipient.CannotAct = &APIError{Code: f.code, Message: f.text.In(s.lang(r, env))}
	} else {
		st.Recipient.CanAct, st.Recipient.CanDelegate = true, !env.NoDelegation
	}
	if c := rec.Code; c != nil && now.Before(c.ExpiresAt) {
		st.Recipient.Code = &CodeState{Channel: c.Channel, ExpiresAt: c.ExpiresAt, TriesLeft: workflow.MaxCodeFailures - c.Failures}
	}
	for i, d := range env.Documents {
		st.Documents = append(st.Documents, DocumentState{Index: i, Name: d.Name, Pages: d.Pages, SHA256: d.Current, Size: d.Size,
			URL: fmt.Sprintf("%s/api/v1/sign/%s/documents/%d", s.cfg.PublicURL, r.PathValue("token"), i)})
	}
	for i, step := range env.Steps {
		ss := StepState{Role: step.Role, Current: i == env.CurrentStep && !env.State.Final(), Recipients: []StepRecipient{}}
		for _, id := range step.Recipients {
			o := env.Recipient(id)
			sr := StepRecipient{Name: displayName(o.Party), State: o.State}
			if !o.ActedAt.IsZero() {
				at := o.ActedAt
				sr.ActedAt = &at
			}
			ss.Recipients = append(ss.Recipients, sr)
		}
		st.Steps = append(st.Steps, ss)
	}
	return st
}

// displayName is how a party is named to others: their name, else their
// address.
func displayName(p workflow.Party) string {
	if p.Name != "" {
		return p.Name
	}
	return p.Email
}

func (s *Server) apiState(w http.ResponseWriter, r *http.Request) {
	l, err := s.cer.View(r.Context(), r.PathValue("token"), s.client(r))
	if err != nil {
		s.apiError(w, r, l, err)
		return
	}
	s.writeJSON(w, http.StatusOK, s.state(r, l))
}

func (s *Server) apiCode(w http.ResponseWriter, r *http.Request) {
	if _, err := readJSON(w, r, &struct{}{}); err != nil {
		s.refuseBody(w, err)
		return
	}
	l, err := s.cer.SendCode(r.Context(), r.PathValue("token"), s.client(r))
	if err != nil {
		s.apiError(w, r, l, err)
		return
	}
	s.writeJSON(w, http.StatusOK, s.state(r, l))
}

// actRequest is the body of the sign, decline and delegate calls.
type actRequest struct {
	Code    string `json:"code"`
	Consent bool   `json:"consent"`
	Reason  string `json:"reason"`
	// Name and Email name the delegate.
	Name  string `json:"name"`
	Email string `json:"email"`
}

func (s *Server) apiAct(kind ceremony.ActionKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req actRequest
		if _, err := readJSON(w, r, &req); err != nil {
			s.refuseBody(w, err)
			return
		}
		a := ceremony.Action{Kind: kind, Code: req.Code, Consent: req.Consent, Reason: workflow.Clip(req.Reason, workflow.MaxMessageRunes),
			Delegate: workflow.Party{Name: workflow.Clip(req.Name, workflow.MaxNameRunes), Email: req.Email}}
		l, err := s.cer.Act(r.Context(), r.PathValue("token"), a, s.client(r))
		if err != nil {
			s.apiError(w, r, l, err)
			return
		}
		s.writeJSON(w, http.StatusOK, s.state(r, l))
	}
}

func (s *Server) apiDocument(w http.ResponseWriter, r *http.Request) {
	l, err := s.cer.Open(r.Context(), r.PathValue("token"))
	if err != nil {
		s.apiError(w, r, l, err)
		return
	}
	s.serveDocument(w, r, l, func(err error) { s.apiError(w, r, l, err) })
}

// serveDocument answers with document {n} of l: the current PDF, shown by
// the browser's own viewer, or downloaded with ?download=1.
func (s *Server) serveDocument(w http.ResponseWriter, r *http.Request, l ceremony.Link, fail func(error)) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		fail(ceremony.ErrNoDocument)
		return
	}
	rc, d, err := s.cer.Document(r.Context(), l, n)
	if err != nil {
		fail(err)
		return
	}
	defer rc.Close()
	s.servePDF(w, r, l, rc, d.Name, d.Size, d.Current)
}

// servePDF sends a stored PDF of l's envelope, shown by the browser's own
// viewer, or downloaded with ?download=1; its SHA-256 is its ETag.
func (s *Server) servePDF(w http.ResponseWriter, r *http.Request, l ceremony.Link, rc io.Reader, name string, size int64, sha256 string) {
	disposition := "inline"
	if r.URL.Query().Get("download") != "" {
		disposition = "attachment"
	}
	h := w.Header()
	h.Set("Content-Security-Policy", pdfSecurityPolicy)
	h.Set("Content-Type", "application/pdf")
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": name}))
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("ETag", `"`+sha256+`"`)
	h.Set("Cache-Control", "private, no-store")
	if _, err := io.Copy(w, rc); err != nil {
		s.log.Warn("web: PDF not sent whole", "envelope", l.Envelope.ID, "file", name, "err", err)
	}
}

// apiError writes err as {"error": {"code", "message"}} in the reader's
// language.
func (s *Server) apiError(w http.ResponseWriter, r *http.Request, l ceremony.Link, err error) {
	f := s.failureOf(r, err)
	if f.code == workflow.ErrTooManyCodes.Code && l.Envelope != nil {
		f.retryAfter = int(math.Ceil(codeWait(l.Recipient(), s.cer.Engine.Now()).Seconds()))
	}
	if f.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.retryAfter))
	}
	s.writeJSON(w, f.status, map[string]APIError{"error": {Code: f.code, Message: f.text.In(s.lang(r, l.Envelope))}})
}

// codeWait is how long until r may be sent a code again: an hour after
// the oldest of the last workflow.MaxCodesPerHour codes.
func codeWait(r *workflow.Recipient, now time.Time) time.Duration {
	if r == nil || len(r.CodesSent) < workflow.MaxCodesPerHour {
		return 0
	}
	return r.CodesSent[len(r.CodesSent)-workflow.MaxCodesPerHour].Add(time.Hour).Sub(now)
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		s.log.Debug("web: answer not written", "err", err)
	}
}

// bodyError is a request body the API cannot take: its HTTP status, its
// stable code, and what to send instead.
type bodyError struct {
	status int
	code   string
	msg    string
}

func (e *bodyError) Error() string { return e.msg }

// refuseBody answers err of readJSON.
func (s *Server) refuseBody(w http.ResponseWriter, err error) {
	f := &bodyError{http.StatusBadRequest, "bad_request", err.Error()}
	errors.As(err, &f)
	s.writeJSON(w, f.status, map[string]APIError{"error": {Code: f.code, Message: f.msg}})
}

// jsonProblem says what is wrong with a request body in the API's terms,
// not encoding/json's (which names Go types: "Go struct field
// actRequest.code of type string").
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Sprintf("%q must be %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind()), typeErr.Value)
	case errors.As(err, &typeErr):
		return "it must be a JSON object, not " + typeErr.Value
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("it is not valid JSON (at byte %d)", syntaxErr.Offset)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind names the JSON value a Go value of kind k is read from.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "a number"
}

// readJSON decodes a request body into v. An empty body leaves v as it is;
// a body must be application/json (which a cross-site form cannot send)
// and one JSON object.
func readJSON(w http.ResponseWriter, r *http.Request, v any) (bool, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return false, &bodyError{http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("the request body is over %d bytes", maxRequestBody)}
		}
		return false, &bodyError{http.StatusBadRequest, "bad_request", fmt.Sprintf("reading the request body: %v", err)}
	}
	if len(body) == 0 {
		return false, nil
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return false, &bodyError{http.StatusUnsupportedMediaType, "unsupported_media_type",
			fmt.Sprintf("the request body must be JSON, sent as Content-Type: application/json (got %q)", r.Header.Get("Content-Type"))}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return false, &bodyError{http.StatusBadRequest, "bad_request", "the request body is not the JSON object expected: " + jsonProblem(err)}
	}
	if dec.Decode(&json.RawMessage{}) != io.EOF {
		return false, &bodyError{http.StatusBadRequest, "bad_request", "the request body holds more than one JSON value"}
	}
	return true, nil
}
