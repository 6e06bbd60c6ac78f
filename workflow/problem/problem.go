// Package problem holds what the gateway tells a person when it refuses
// something — a submission's refusal mail (SPEC §2), an error on the
// signing pages (SPEC §3) — written once in each language the gateway
// speaks, where the problem is found. The mail or page is written later,
// in the envelope's or the reader's language, so the sentence travels in
// both languages until then.
//
// The wording of every refusal of the state machine (a workflow.Error
// kind) lives here too, so that a mail and a page say the same thing.
package problem

import (
	"errors"
	"fmt"

	"github.com/parapheur/parapheur/workflow"
)

// Text is one sentence in English and in French. It is an error too, so a
// function that already returns errors can return one and its caller can
// take it back with From.
type Text struct {
	// EN is the English sentence, also used in logs and quarantine
	// reasons.
	EN string
	// FR is the same sentence in French.
	FR string
}

// New formats both sentences with the same arguments; each format may
// quote them its own way (%q in English, « %s » in French).
func New(en, fr string, args ...any) Text {
	return Text{EN: fmt.Sprintf(en, args...), FR: fmt.Sprintf(fr, args...)}
}

// In returns the sentence in lang: French for "fr", English otherwise. A
// sentence meant for operators only (a configuration error) may have no
// French, and reads in English.
func (t Text) In(lang string) string {
	if lang == "fr" && t.FR != "" {
		return t.FR
	}
	return t.EN
}

// Error returns the English sentence.
func (t Text) Error() string { return t.EN }

// Phrasebook is a set of sentences by key: those of the pages, those of a
// verification report. A sentence with verbs (%s, %d) is formatted with
// the caller's arguments.
type Phrasebook map[string]Text

// Say returns the sentence of key in lang, formatted with args; an unknown
// key is a programming error, shown as "[key]" so that a test sees it.
func (p Phrasebook) Say(lang, key string, args ...any) string {
	t, ok := p[key]
	if !ok {
		return "[" + key + "]"
	}
	if len(args) == 0 {
		return t.In(lang)
	}
	return fmt.Sprintf(t.In(lang), args...)
}

// Explainer is an error that can say itself in both languages, such as a
// parser's error type that keeps the error it wraps.
type Explainer interface {
	error
	Problem() Text
}

// From returns the Text err carries or explains; for a refusal of the state machine,
// its own English message (which names the envelope's details) and the
// French sentence of its kind; else err's own message in both languages
// (an error of another package that has no translation keeps its words
// rather than being lost).
func From(err error) Text {
	var t Text
	if errors.As(err, &t) {
		return t
	}
	var e Explainer
	if errors.As(err, &e) {
		return e.Problem()
	}
	t = Text{EN: err.Error(), FR: err.Error()}
	var refusal *workflow.Error
	if errors.As(err, &refusal) {
		if fr, ok := workflowFR[refusal.Code]; ok {
			t.FR = fr
		}
		if refusal.FR != "" {
			t.FR = refusal.FR
		}
	}
	return t
}

// workflowFR says in French, by kind, why the state machine refused an
// event; the English is the error's own message.
var workflowFR = map[string]string{
	workflow.ErrInvalidDraft.Code:     "la demande n'est pas valable",
	workflow.ErrUnknownRecipient.Code: "vous ne figurez pas parmi les destinataires de cette demande",
	workflow.ErrEnded.Code:            "la demande est déjà terminée (signée, refusée, annulée ou expirée)",
	workflow.ErrDeadlinePassed.Code:   "l'échéance de la demande est passée",
	workflow.ErrCompleting.Code:       "toutes les étapes sont faites : la demande est en cours de finalisation et ne peut plus changer",
	workflow.ErrNotYourTurn.Code:      "une étape précédente n'est pas encore faite : vous pourrez agir à votre tour",
	workflow.ErrAlreadyActed.Code:     "vous avez déjà répondu à cette demande",
	workflow.ErrWrongRole.Code:        "votre rôle dans cette demande ne permet pas cette action",
	workflow.ErrTooManyCodes.Code:     "trop de codes ont été demandés : réessayez dans une heure",
	workflow.ErrNoCode.Code:           "aucun code n'est en cours : demandez un nouveau code",
	workflow.ErrCodeExpired.Code:      "le code a expiré : demandez un nouveau code",
	workflow.ErrWrongCode.Code:        "le code est faux",
	workflow.ErrMalformedCode.Code:    "un code a 6 chiffres",
	workflow.ErrNotVerified.Code:      "saisissez d'abord le code à usage unique",
	workflow.ErrReasonRequired.Code:   "donnez la raison : elle est obligatoire",
	workflow.ErrNotDue.Code:           "ce délai n'est pas encore échu",
	workflow.ErrNotCompleting.Code:    "des étapes restent à faire",
	workflow.ErrStaleDocument.Code:    "le document a changé pendant la signature : recommencez",
	workflow.ErrNoDelegation.Code:     "la délégation n'est pas permise pour cette demande",
	workflow.ErrBadDelegate.Code:      "cette personne ne peut pas recevoir la délégation",
	workflow.ErrReminderTooSoon.Code:  "une relance est partie il y a moins d'une heure : réessayez plus tard",
}

// DeadlinePassed says that the deadline day a sender gave has already
// ended (see workflow.Deadline).
func DeadlinePassed(d workflow.Day) Text {
	return Text{
		EN: fmt.Sprintf("the deadline %s has already passed", d),
		FR: fmt.Sprintf("l'échéance du %02d/%02d/%d est déjà passée", d.Day, d.Month, d.Year),
	}
}
