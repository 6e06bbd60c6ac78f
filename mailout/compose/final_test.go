package compose

import (
	htmlstd "html"
	"io"
	"strings"
	"testing"
	"time"
)

// holds returns the first of unwanted that p's text or HTML holds, or "".
func (p parsed) holds(unwanted ...string) string {
	html := htmlstd.UnescapeString(p.html)
	for _, w := range unwanted {
		if strings.Contains(p.text, w) || strings.Contains(html, w) {
			return w
		}
	}
	return ""
}

// TestCompletionDownloadLink: every final mail, in both languages, shows
// the download link and until when it works, and the SHA-256 of every file
// it names; within the limit the files are attached too, over it the link
// is the only way to them; the archivist's copy carries the audit trail
// either way, its SHA-256 in the body.
func TestCompletionDownloadLink(t *testing.T) {
	until := map[string]string{"fr": "jusqu'au 5 janvier 2027 à 11:00 CET", "en": "until 5 January 2027 at 11:00 CET"}
	for _, limit := range []int64{10 << 20, 50} {
		cfg := testConfig()
		cfg.AttachmentLimit = limit
		c := newComposer(t, cfg)
		attached := limit > 50
		for _, lang := range []string{"fr", "en"} {
			for _, name := range []string{"completion", "completion-archivist"} {
				m := sampleNamed(t, lang, name)
				d := m.Data.(Completion)
				p := parse(t, compose(t, c, m))
				what := lang + " " + name
				if attached {
					what += " attached"
				}
				if w := p.lacks("https://sign.org.example/d/DOWNLOADTOKEN", until[lang]); w != "" {
					t.Errorf("%s: the text or the HTML does not say %q:\n%s", what, w, p.text)
				}
				for _, f := range d.Files {
					if w := p.lacks(f.Name, f.SHA256); w != "" {
						t.Errorf("%s: the body does not name %q", what, w)
					}
				}
				wantFiles := 0
				if attached {
					wantFiles = len(d.Files)
				}
				if name == "completion-archivist" {
					wantFiles++
					if w := p.lacks("audit-ENV-7F3K2Q.json", d.Audit.SHA256); w != "" {
						t.Errorf("%s: the body does not name the audit trail's %q", what, w)
					}
				} else if w := p.holds("audit-ENV-7F3K2Q.json"); w != "" {
					t.Errorf("%s: a party who does not archive is told of %q", what, w)
				}
				if len(p.attachments) != wantFiles {
					t.Errorf("%s: %d attachments, want %d", what, len(p.attachments), wantFiles)
				}
			}
		}
	}
}

// TestDeliveryFailureWording: a failed mail is told to the sender with
// what to do, which depends on whether the envelope is still in progress,
// completed or otherwise ended, and to a recipient who acted as news that
// needs nothing from them.
func TestDeliveryFailureWording(t *testing.T) {
	c := newComposer(t, testConfig())
	for _, tc := range []struct {
		lang, sample string
		want, not    []string
	}{
		{"fr", "delivery_failure", []string{"john@partner.example", "550 5.1.1", "Vérifiez l'adresse", "annulez la demande"}, []string{"rien à faire"}},
		{"en", "delivery_failure", []string{"john@partner.example", "550 5.1.1", "check the address", "cancel the request"}, []string{"nothing for you to do"}},
		{"fr", "delivery_failure-to-recipient", []string{"Bonjour Chef de service", "john@partner.example", "550 5.1.1", "vous avez déjà agi",
			"L'expéditeur, Agnès Dupont <agnes.dupont@org.example>, est prévenu", "rien à faire"}, []string{"annulez", "ANNULER", "Vérifiez"}},
		{"en", "delivery_failure-to-recipient", []string{"Hello Chef de service", "john@partner.example", "already acted",
			"The sender, Agnès Dupont <agnes.dupont@org.example>, has been told", "nothing for you to do"}, []string{"cancel", "CANCEL", "check the address"}},
		{"fr", "delivery_failure-completed", []string{"copie@org.example", "552 5.3.4", "ni les documents signés ni le certificat", "message de fin"}, []string{"annulez", "ANNULER"}},
		{"en", "delivery_failure-completed", []string{"copie@org.example", "552 5.3.4", "neither the signed documents nor the certificate", "completion mail"}, []string{"cancel", "CANCEL"}},
		{"fr", "delivery_failure-declined", []string{"chef@org.example", "550 5.1.1", "La demande est close", "Vérifiez l'adresse"}, []string{"annulez", "ANNULER", "circuit ne peut pas avancer", "documents signés"}},
		{"en", "delivery_failure-declined", []string{"chef@org.example", "550 5.1.1", "The request has ended", "check the address"}, []string{"cancel", "CANCEL", "cannot move on", "signed documents"}},
	} {
		p := parse(t, compose(t, c, sampleNamed(t, tc.lang, tc.sample)))
		if w := p.lacks(tc.want...); w != "" {
			t.Errorf("%s %s: the text or the HTML does not say %q:\n%s", tc.lang, tc.sample, w, p.text)
		}
		if w := p.holds(tc.not...); w != "" {
			t.Errorf("%s %s: the text or the HTML says %q, which does not fit its reader:\n%s", tc.lang, tc.sample, w, p.text)
		}
	}
}

// TestCompletionDelayed: the sender learns since when the completion
// fails, that the gateway keeps trying, and the last error; without an
// error the mail still reads.
func TestCompletionDelayed(t *testing.T) {
	c := newComposer(t, testConfig())
	for lang, want := range map[string][]string{
		"fr": {"recueillis le 24 novembre 2026 à 17:05 CET", "échoue depuis", "continue d'essayer", "Dernière erreur", "503 Service Unavailable", "ENV-7F3K2Q"},
		"en": {"given on 24 November 2026 at 17:05 CET", "kept failing since", "keeps trying", "The last error", "503 Service Unavailable", "ENV-7F3K2Q"},
	} {
		m := sampleNamed(t, lang, "completion_delayed")
		p := parse(t, compose(t, c, m))
		if w := p.lacks(want...); w != "" {
			t.Errorf("%s: the text or the HTML does not say %q:\n%s", lang, w, p.text)
		}
		m.Data = CompletionDelayed{}
		p = parse(t, compose(t, c, m))
		if w := p.holds(want[3]); w != "" {
			t.Errorf("%s: without an error the mail still shows %q:\n%s", lang, w, p.text)
		}
	}
}

// TestFinalMailErrors: a final mail without its link or the link's
// expiry, and a delay notice for an envelope whose steps are not done or
// to a recipient, are refused, saying what is missing.
func TestFinalMailErrors(t *testing.T) {
	c := newComposer(t, testConfig())
	for _, tc := range []struct {
		name, base string
		edit       func(m *Message)
		want       string
	}{
		{"completion without link", "completion", func(m *Message) { d := completion(); d.DownloadURL = ""; m.Data = d }, "no download link"},
		{"completion without expiry", "completion", func(m *Message) { d := completion(); d.DownloadUntil = time.Time{}; m.Data = d }, "no expiry"},
		{"link elsewhere", "completion", func(m *Message) { d := completion(); d.DownloadURL = "https://evil.example/d/x"; m.Data = d }, "not under the public URL"},
		{"delay before the steps are done", "completion_delayed", func(m *Message) { m.Envelope.StepsDoneAt = time.Time{} }, "has not done its steps"},
		{"delay to a recipient", "completion_delayed", func(m *Message) { m.RecipientID = "r2" }, "goes to the sender"},
	} {
		m := sampleNamed(t, "fr", tc.base)
		tc.edit(m)
		if err := c.Compose(io.Discard, m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

// TestReminderDateInTheZone: the reminder says when the request was made
// in the configured zone, as every other time in the mails; the store
// keeps the creation time in UTC, which the reminder showed as it was.
func TestReminderDateInTheZone(t *testing.T) {
	c := newComposer(t, testConfig())
	for lang, want := range map[string]string{"fr": "20 novembre 2026 à 09:30 CET", "en": "20 November 2026 at 09:30 CET"} {
		m := sampleNamed(t, lang, "reminder")
		m.Envelope.CreatedAt = time.Date(2026, 11, 20, 8, 30, 0, 0, time.UTC) // as the store keeps it
		p := parse(t, compose(t, c, m))
		if w := p.lacks(want); w != "" {
			t.Errorf("%s: the reminder does not say %q:\n%s", lang, w, p.text)
		}
		if w := p.holds("UTC"); w != "" {
			t.Errorf("%s: the reminder shows a time in UTC:\n%s", lang, p.text)
		}
	}
}
