package verdict

import (
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

// TestWordsInBothLanguages: every sentence of a report exists in French
// and in English, with the same arguments.
func TestWordsInBothLanguages(t *testing.T) {
	for key, text := range words {
		if text.EN == "" || text.FR == "" || text.EN == text.FR {
			t.Errorf("sentence %q lacks a language: %+v", key, text)
		}
		if strings.Count(text.EN, "%") != strings.Count(text.FR, "%") {
			t.Errorf("sentence %q has different arguments in French and English: %+v", key, text)
		}
	}
	if got := Say("en", "no such sentence"); got != "[no such sentence]" {
		t.Errorf("an unknown key says %q", got)
	}
	for _, st := range []workflow.State{workflow.StateInProgress, workflow.StateCompleted, workflow.StateDeclined, workflow.StateCancelled, workflow.StateExpired} {
		if EnvelopeState(st, "fr") == string(st) || EnvelopeState(st, "en") == "" {
			t.Errorf("envelope state %q has no words", st)
		}
	}
	if AuditEvent(audit.Signed, "fr") != "signature" || AuditEvent("new_event", "fr") != "new_event" {
		t.Errorf("audit events: %q %q", AuditEvent(audit.Signed, "fr"), AuditEvent("new_event", "fr"))
	}
}

func TestTimesAndSizesForPeople(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	winter := time.Date(2026, 12, 6, 14, 5, 0, 0, time.UTC)
	summer := time.Date(2027, 7, 1, 8, 0, 0, 0, time.UTC)
	for _, c := range []struct{ got, want string }{
		{LongTime(winter, paris, "fr"), "6 décembre 2026 à 15:05 CET"},
		{LongTime(winter, paris, "en"), "6 December 2026, 15:05 CET"},
		{LongTime(summer, paris, "fr"), "1er juillet 2027 à 10:00 CEST"},
		{LongTime(time.Time{}, paris, "fr"), ""},
		{ByteSize(316, "fr"), "316 o"},
		{ByteSize(1_234_567, "fr"), "1,2 Mo"},
		{ByteSize(1_234_567, "en"), "1.2 MB"},
		{ByteSize(25_000, "en"), "25.0 kB"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// The codes of audit details read in the reader's language; a person's or
// a server's own words are left as they are, commas and all.
func TestDetailValue(t *testing.T) {
	for _, tt := range []struct{ key, value, lang, want string }{
		{"outcome", "delivered", "fr", "remis"},
		{"mail", "invitation,acknowledgement", "fr", "invitation, accusé de réception"},
		{"mail", "delegated", "en", "delegation notice"},
		{"authenticated_by", "one-time code", "fr", "code à usage unique"},
		{"voided", "true", "fr", "oui"},
		{"actor", "system", "fr", "le parapheur"},
		{"actor", "marie@partner.example", "fr", "marie@partner.example"},
		{"mail", "something_new", "fr", "something_new"},
		{"reason", "trop cher,vraiment", "fr", "trop cher,vraiment"},
	} {
		if got := DetailValue(tt.key, tt.value, tt.lang); got != tt.want {
			t.Errorf("DetailValue(%q, %q, %s) = %q, want %q", tt.key, tt.value, tt.lang, got, tt.want)
		}
	}
}
