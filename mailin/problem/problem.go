// Package problem holds the sentences that tell the author of a mail what
// the gateway could not accept (SPEC §2, refusals), written once in each
// language the gateway speaks, where the problem is found. The refusal is
// written later, in the language of the submission, so the sentence must
// travel in both languages until then.
package problem

import (
	"errors"
	"fmt"
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

// In returns the sentence in lang: French for "fr", English otherwise, as
// instructions.Help does. A sentence meant for operators only (a
// configuration error) may have no French, and reads in English.
func (t Text) In(lang string) string {
	if lang == "fr" && t.FR != "" {
		return t.FR
	}
	return t.EN
}

// Error returns the English sentence.
func (t Text) Error() string { return t.EN }

// From returns the Text err carries, or err's own message in both
// languages when it carries none (an error of another package that has no
// translation keeps its words rather than being lost).
func From(err error) Text {
	var t Text
	if errors.As(err, &t) {
		return t
	}
	return Text{EN: err.Error(), FR: err.Error()}
}
