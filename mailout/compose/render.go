package compose

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"slices"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	"github.com/parapheur/parapheur/workflow"
)

// templateFS holds, per language, a layout (layout.txt, layout.html) and per
// kind KIND.txt, defining "subject" and "body", and KIND.html, defining
// "body". The layouts define "mail", which the renderer executes.
//
//go:embed templates
var templateFS embed.FS

// templateSet is every template, parsed once.
type templateSet struct {
	byLang map[string]map[Kind]*kindTemplates
}

// kindTemplates are the templates of one kind in one language.
type kindTemplates struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// templates parses the embedded templates on first use; an error here is a
// broken build, which the tests catch.
var templates = sync.OnceValues(func() (*templateSet, error) {
	dirs, err := fs.ReadDir(templateFS, "templates")
	if err != nil {
		return nil, err
	}
	set := &templateSet{byLang: map[string]map[Kind]*kindTemplates{}}
	for _, d := range dirs {
		lang := d.Name()
		loc, ok := locales[lang]
		if !ok {
			return nil, fmt.Errorf("compose: templates: no locale for language %q", lang)
		}
		funcs := loc.funcs()
		set.byLang[lang] = map[Kind]*kindTemplates{}
		for _, k := range Kinds {
			dir := "templates/" + lang + "/"
			text, err := texttemplate.New(string(k)).Funcs(funcs).ParseFS(templateFS, dir+"layout.txt", dir+string(k)+".txt")
			if err != nil {
				return nil, fmt.Errorf("compose: templates: %w", err)
			}
			html, err := htmltemplate.New(string(k)).Funcs(funcs).ParseFS(templateFS, dir+"layout.html", dir+string(k)+".html")
			if err != nil {
				return nil, fmt.Errorf("compose: templates: %w", err)
			}
			for _, name := range []string{"mail", "subject", "body"} {
				if text.Lookup(name) == nil {
					return nil, fmt.Errorf("compose: templates: %s%s.txt defines no %q", dir, k, name)
				}
			}
			if html.Lookup("body") == nil || html.Lookup("mail") == nil {
				return nil, fmt.Errorf("compose: templates: %s%s.html defines no \"body\"", dir, k)
			}
			set.byLang[lang][k] = &kindTemplates{text: text, html: html}
		}
	}
	return set, nil
})

// languages lists the supported languages, for error messages.
func (s *templateSet) languages() string {
	var l []string
	for lang := range s.byLang {
		l = append(l, lang)
	}
	slices.Sort(l)
	return strings.Join(l, ", ")
}

// rendered are the texts of one mail.
type rendered struct {
	subject    string
	text, html []byte
}

// render executes the templates of kind in lang on v.
func (s *templateSet) render(lang string, kind Kind, v *view) (rendered, error) {
	kt, ok := s.byLang[lang][kind]
	if !ok {
		return rendered{}, fmt.Errorf("language %q is not one of %s", lang, s.languages())
	}
	var b bytes.Buffer
	if err := kt.text.ExecuteTemplate(&b, "subject", v); err != nil {
		return rendered{}, err
	}
	v.Subject = workflow.Clip(workflow.OneLine(b.String()), maxSubjectRunes)
	b.Reset()
	if err := kt.text.ExecuteTemplate(&b, "mail", v); err != nil {
		return rendered{}, err
	}
	text := tidyText(b.String())
	b.Reset()
	if err := kt.html.ExecuteTemplate(&b, "mail", v); err != nil {
		return rendered{}, err
	}
	return rendered{subject: v.Subject, text: text, html: b.Bytes()}, nil
}

// tidyText lets the text templates be written for legibility: it trims
// trailing blanks (except in the "-- " signature separator), joins runs of
// empty lines into one and ends the text with one line break.
func tidyText(s string) []byte {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if line != "-- " {
			line = strings.TrimRight(line, " \t\r")
		}
		if line == "" && (len(out) == 0 || out[len(out)-1] == "") {
			continue
		}
		out = append(out, line)
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

// view is what the templates see.
type view struct {
	// Subject is the rendered subject, for the HTML title.
	Subject string
	// GatewayName, GatewayAddress and PublicURL present the gateway.
	GatewayName, GatewayAddress, PublicURL string
	// To is the addressee; Recipient is set when it is a recipient.
	To        workflow.Party
	Recipient *workflow.Recipient
	// Envelope is nil for a refusal.
	Envelope *workflow.Envelope
	// Deadline is the envelope's deadline in the configured time zone.
	Deadline time.Time
	// Created is when the envelope was created, in the configured time
	// zone (as every time a mail shows).
	Created time.Time
	// Steps, Copies and Archivists present the envelope's circuit.
	Steps      []stepView
	Copies     []workflow.Party
	Archivists []workflow.Party
	// Data is the kind's data.
	Data Data
	// Files are the completion's files; Attached tells whether they are
	// attached or reachable by the download link; Archivist whether the
	// audit trail, AuditName, is attached too.
	Files     []Attachment
	Attached  bool
	Archivist bool
	AuditName string
	// Total is the files' total size.
	Total int64
	// DownloadUntil is when the completion's download link stops working,
	// in the configured time zone.
	DownloadUntil time.Time
	// Decliner is who declined; Reason the decline or cancellation reason.
	Decliner *workflow.Recipient
	Reason   string
	// Delegator is who handed their place on: in a delegated mail, and
	// in an invitation to their delegate. Delegate is whom they chose.
	Delegator, Delegate *workflow.Recipient
	// Locked is whose one-time code was voided after Tries wrong codes.
	Locked *workflow.Recipient
	Tries  int
	// NextCode is when Locked may ask for a new code, to the minute above,
	// when the cap of CodesPerHour holds them back; zero otherwise.
	NextCode     time.Time
	CodesPerHour int
	// Pending are the recipients who had not acted when the envelope expired.
	Pending []workflow.Party
	// Minutes is how long a one-time code is valid.
	Minutes int
	// Since is when the steps were done, for a delayed completion.
	Since time.Time
}

// stepView is one step of the circuit.
type stepView struct {
	Number  int
	Role    workflow.Role
	Parties []workflow.Party
}

// view gathers what the templates show.
// lastMinute shows a deadline at midnight, which is how an "Échéance"
// day ends (the envelope expires at the first instant after it), as the
// last minute of that day: "15 décembre à 23:59", not "16 décembre à 00:00",
// which readers take for a day more than they wrote.
func lastMinute(t time.Time) time.Time {
	if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
		return t.Add(-time.Minute)
	}
	return t
}

func (c *Composer) view(m *Message, to addressee) (*view, error) {
	v := &view{
		GatewayName: c.cfg.Name, GatewayAddress: c.cfg.Address, PublicURL: c.cfg.PublicURL,
		To: to.party, Recipient: to.recipient, Envelope: m.Envelope, Data: m.Data,
	}
	v.To.Name = workflow.OneLine(v.To.Name) // it opens the greeting line
	if e := m.Envelope; e != nil {
		v.Deadline = lastMinute(e.Deadline.In(c.cfg.Location))
		v.Created = e.CreatedAt.In(c.cfg.Location)
		for i, s := range e.Steps {
			sv := stepView{Number: i + 1, Role: s.Role}
			for _, id := range s.Recipients {
				if r := e.Recipient(id); r != nil {
					sv.Parties = append(sv.Parties, r.Party)
				}
			}
			v.Steps = append(v.Steps, sv)
		}
		for _, r := range e.Recipients {
			switch r.Role {
			case workflow.Copy:
				v.Copies = append(v.Copies, r.Party)
			case workflow.Archivist:
				v.Archivists = append(v.Archivists, r.Party)
			}
		}
	}
	switch d := m.Data.(type) {
	case Refusal:
		// The submission's subject comes from anyone: the body quotes it
		// clipped, like the Subject field.
		d.Subject = workflow.Clip(workflow.OneLine(d.Subject), maxSubjectRunes)
		v.Data = d
	case Verification:
		d.Subject = workflow.Clip(workflow.OneLine(d.Subject), maxSubjectRunes)
		v.Data = d
	case Invitation:
		if to.recipient.DelegatedFrom != "" {
			v.Delegator = m.Envelope.Recipient(to.recipient.DelegatedFrom)
		}
	case Delegated:
		v.Delegator, v.Reason = m.Envelope.Recipient(d.By), d.Reason
		v.Delegate = m.Envelope.Recipient(v.Delegator.DelegatedTo)
		if v.Reason == "" {
			v.Reason = v.Delegator.Reason
		}
	case CodeLocked:
		v.Locked, v.Tries = m.Envelope.Recipient(d.By), workflow.MaxCodeFailures
		if next := v.Locked.NextCodeAt(m.Date); next.After(m.Date) {
			v.NextCode = next.Add(time.Minute - time.Nanosecond).Truncate(time.Minute).In(c.cfg.Location)
			v.CodesPerHour = workflow.MaxCodesPerHour
		}
	case OneTimeCode:
		v.Minutes = int((d.Valid + time.Minute - 1) / time.Minute)
	case Declined:
		v.Decliner, v.Reason = m.Envelope.Recipient(d.By), d.Reason
		if v.Reason == "" {
			v.Reason = v.Decliner.Reason
		}
	case Cancelled:
		v.Reason = d.Reason
		if v.Reason == "" {
			v.Reason = m.Envelope.Reason
		}
	case Expired:
		for _, r := range m.Envelope.Recipients {
			if r.State == workflow.Pending {
				v.Pending = append(v.Pending, r.Party)
			}
		}
	case CompletionDelayed:
		v.Since, v.Reason = m.Envelope.StepsDoneAt.In(c.cfg.Location), d.Reason
	case Completion:
		v.Files = d.Files
		for _, f := range d.Files {
			v.Total += f.Size
		}
		v.Attached = v.Total <= c.cfg.AttachmentLimit
		v.DownloadUntil = d.DownloadUntil.In(c.cfg.Location)
		if to.recipient != nil && to.recipient.Role == workflow.Archivist {
			v.Archivist, v.AuditName = true, "audit-"+m.Envelope.ID+".json"
		}
	}
	return v, nil
}
