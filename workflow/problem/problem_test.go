package problem

import (
	"errors"
	"fmt"
	"github.com/parapheur/parapheur/workflow"
	"testing"
)

func TestText(t *testing.T) {
	p := New("%q is not an email address", "« %s » n'est pas une adresse e-mail", "marie@")
	if got, want := p.In("fr"), "« marie@ » n'est pas une adresse e-mail"; got != want {
		t.Errorf("In(fr) = %q, want %q", got, want)
	}
	if got, want := p.In("en"), `"marie@" is not an email address`; got != want {
		t.Errorf("In(en) = %q, want %q", got, want)
	}
	if p.In("") != p.EN || p.Error() != p.EN {
		t.Errorf("English is the default and the error text: %q %q", p.In(""), p.Error())
	}
	wrapped := fmt.Errorf("parsing: %w", p)
	if got := From(wrapped); got != p {
		t.Errorf("From(wrapped) = %+v, want %+v", got, p)
	}
	other := errors.New("pades: something new")
	if got := From(other); got.EN != other.Error() || got.FR != other.Error() {
		t.Errorf("From(other) = %+v, want its text in both languages", got)
	}
}

// Every refusal kind of the state machine reads in French, and keeps its
// own English message, which names the envelope's details.
func TestWorkflowRefusals(t *testing.T) {
	kinds := []*workflow.Error{workflow.ErrInvalidDraft, workflow.ErrUnknownRecipient, workflow.ErrEnded,
		workflow.ErrDeadlinePassed, workflow.ErrCompleting, workflow.ErrNotYourTurn, workflow.ErrAlreadyActed,
		workflow.ErrWrongRole, workflow.ErrTooManyCodes, workflow.ErrNoCode, workflow.ErrCodeExpired,
		workflow.ErrWrongCode, workflow.ErrMalformedCode, workflow.ErrNotVerified, workflow.ErrReasonRequired, workflow.ErrNotDue,
		workflow.ErrNotCompleting, workflow.ErrStaleDocument, workflow.ErrNoDelegation, workflow.ErrBadDelegate, workflow.ErrReminderTooSoon}
	if len(kinds) != len(workflowFR) {
		t.Errorf("%d kinds tested, %d worded in French: test them all", len(kinds), len(workflowFR))
	}
	for _, k := range kinds {
		err := fmt.Errorf("engine: %w", &workflow.Error{Code: k.Code, Message: k.Message + " (r2)"})
		got := From(err)
		if got.EN != "engine: "+k.Message+" (r2)" || got.FR == "" || got.FR == got.EN {
			t.Errorf("%s: From = %+v, want its English and a French sentence", k.Code, got)
		}
	}
}

// A parser's error that explains itself keeps both its languages through
// wrapping.
func TestExplainer(t *testing.T) {
	err := fmt.Errorf("handling: %w", explained{})
	if got := From(err); got != (Text{EN: "bad part", FR: "partie illisible"}) {
		t.Errorf("From = %+v", got)
	}
}

type explained struct{}

func (explained) Error() string { return "bad part: decoder detail" }
func (explained) Problem() Text { return Text{EN: "bad part", FR: "partie illisible"} }

func TestDeadlinePassed(t *testing.T) {
	got := DeadlinePassed(workflow.Day{Year: 2026, Month: 5, Day: 1})
	if got.EN != "the deadline 2026-05-01 has already passed" || got.FR != "l'échéance du 01/05/2026 est déjà passée" {
		t.Errorf("DeadlinePassed = %+v", got)
	}
}

func TestPhrasebook(t *testing.T) {
	p := Phrasebook{
		"hello": {EN: "Hello", FR: "Bonjour"},
		"files": {EN: "%d files for %s", FR: "%d fichiers pour %s"},
	}
	for _, c := range []struct{ got, want string }{
		{p.Say("fr", "hello"), "Bonjour"},
		{p.Say("en", "hello"), "Hello"},
		{p.Say("fr", "files", 3, "Marie"), "3 fichiers pour Marie"},
		{p.Say("en", "files", 3, "Marie"), "3 files for Marie"},
		{p.Say("fr", "missing"), "[missing]"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// A refusal that carries its own French words keeps them: they name what
// the kind's words cannot.
func TestRefusalWithItsOwnFrench(t *testing.T) {
	err := fmt.Errorf("engine: %w", workflow.CheckCodeFormat("12ab"))
	if got := From(err); got.FR != "« 12ab » n'est pas un code : un code a 6 chiffres, comme dans le message reçu" ||
		got.EN != `engine: "12ab" is not a code: a code is 6 digits, as in the mail or text message` {
		t.Errorf("From = %+v", got)
	}
}
