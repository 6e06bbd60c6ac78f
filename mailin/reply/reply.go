// Package reply reads the commands a person may write in answer to the
// gateway's mail instead of using the signing page (SPEC §2, §3): "REFUSER:
// reason" / "DECLINE: reason" and "DÉLÉGUER: Name <mail>" / "DELEGATE: Name
// <mail>" from a recipient answering an invitation, and "ANNULER" /
// "CANCEL" from the sender answering an acknowledgement. The delegate's
// address is read as an RFC 5322 mailbox, by net/mail.
//
// Only the author's own text counts (see package quote): the quoted
// invitation below a reply must not be read as a command. The caller
// matches the command to an envelope by the thread identifiers (RFC 5322
// In-Reply-To and References) and checks that it comes from the address
// the answered mail was sent to.
package reply

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"

	"github.com/parapheur/parapheur/mailin/message"
	"github.com/parapheur/parapheur/mailin/quote"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/problem"
)

// Verb is what a reply asks for.
type Verb string

// Verbs.
const (
	// Decline is a recipient's refusal to sign or approve; it needs a
	// reason, as on the signing page.
	Decline Verb = "decline"
	// Cancel is the sender withdrawing the envelope; a reason is optional.
	Cancel Verb = "cancel"
	// Delegate is a recipient handing their place to someone else; it
	// needs the delegate's address.
	Delegate Verb = "delegate"
)

// verbs maps the folded command words, French and English, to verbs.
var verbs = map[string]Verb{
	"refuser": Decline, "decline": Decline,
	"annuler": Cancel, "cancel": Cancel,
	"deleguer": Delegate, "delegate": Delegate,
}

// Command is a command found in a reply.
type Command struct {
	// Verb is what is asked.
	Verb Verb
	// Reason is the text after the command word, or the paragraph below
	// it; possibly empty for Cancel and Delegate, whose text after the
	// word is the delegate.
	Reason string
	// To is the delegate of a Delegate command.
	To workflow.Party
	// From is the address the reply came from.
	From string
	// Thread are the message IDs the reply answers, In-Reply-To first then
	// References from the newest, without duplicates: the gateway looks
	// for its own mail among them.
	Thread []string
}

// Parse looks for a command on a line of the reply's own text. It returns
// false when there is none, and an error when a command is malformed
// (DECLINE without a reason, DELEGATE without a readable address), to be
// answered with what is wrong; that error is a problem.Text.
//
// People also write what follows the colon on the next lines: the reason
// of a decline or a cancellation may be the paragraph below "REFUSER :" or
// "ANNULER", a delegate the line below "DÉLÉGUER :". A delegation's reason
// may follow the delegate's <address>.
func Parse(m *message.Message) (Command, bool, error) {
	lines := strings.Split(quote.Own(m.Text), "\n")
	for i, line := range lines {
		verb, value, ok := command(line)
		if !ok {
			continue
		}
		c := Command{Verb: verb, Reason: value, Thread: Thread(m)}
		below := lines[i+1:]
		switch {
		case (verb == Decline || verb == Cancel) && value == "":
			c.Reason = paragraph(below)
		case verb == Delegate:
			if value == "" && len(below) > 0 {
				value = strings.TrimSpace(below[0])
			}
			to, reason, err := delegate(line, value)
			if err != nil {
				return Command{}, true, err
			}
			c.To, c.Reason = to, reason
		}
		if verb == Decline && c.Reason == "" {
			return Command{}, true, problem.New(`%q: give the reason for declining after the colon, e.g. "DECLINE: the amount is wrong"`,
				"« %s » : donnez la raison du refus après les deux-points, par exemple « REFUSER: le montant est faux »", strings.TrimSpace(line))
		}
		// A second command would be dropped unheard, and the first may not
		// be undone (a decline ends the envelope): neither is applied.
		for _, next := range below {
			if _, _, another := command(next); another {
				return Command{}, true, problem.New(`%q and %q: a reply carries one command; send the one you mean, alone`,
					"« %s » et « %s » : une réponse porte une seule commande ; envoyez seule celle que vous voulez", strings.TrimSpace(line), strings.TrimSpace(next))
			}
		}
		if m.From != nil {
			c.From = m.From.Address
		}
		return c, true, nil
	}
	return Command{}, false, nil
}

// NearMiss finds, in a reply with no command, a line of its own text that
// starts with a command word but lacks the colon ("refuser le montant est
// faux", "Decline - wrong amount"), and says how to write it. The reply is
// answered anyway, since nothing in it acts: the answer then says what was
// close, instead of that no command was found.
func NearMiss(m *message.Message) (problem.Text, bool) {
	for _, line := range strings.Split(quote.Own(m.Text), "\n") {
		line = strings.TrimSpace(strings.ReplaceAll(line, "\u00a0", " "))
		word, rest, _ := strings.Cut(line, " ")
		verb, ok := verbs[strings.TrimRight(quote.Fold(word), ".,;!-–")]
		if !ok || strings.Contains(line, ":") {
			continue
		}
		rest = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(rest), "-–—,;."))
		w := commandWords[verb]
		var example problem.Text
		switch {
		case verb == Delegate:
			example = problem.Text{EN: w.EN + ": Marie Curie <marie@example.org>", FR: w.FR + " : Marie Curie <marie@exemple.fr>"}
		case rest == "":
			example = problem.Text{EN: w.EN + ": your reason", FR: w.FR + " : votre motif"}
		default:
			example = problem.Text{EN: w.EN + ": " + rest, FR: w.FR + " : " + rest}
		}
		return problem.Text{
			EN: fmt.Sprintf("%q reads like a command without its colon: write the command word, a colon, then the rest, e.g. %q", line, example.EN),
			FR: fmt.Sprintf("« %s » ressemble à une commande sans ses deux-points : écrivez le mot de la commande, deux-points, puis la suite, par exemple « %s »", line, example.FR),
		}, true
	}
	return problem.Text{}, false
}

// commandWords are the command words as Help writes them.
var commandWords = map[Verb]problem.Text{
	Decline:  {EN: "DECLINE", FR: "REFUSER"},
	Cancel:   {EN: "CANCEL", FR: "ANNULER"},
	Delegate: {EN: "DELEGATE", FR: "DÉLÉGUER"},
}

// command reads "REFUSER: reason", "Decline : reason", "ANNULER" and
// "cancel: reason" lines; the command word must be alone before the colon
// (or on its line), so that prose ("Je vais annuler…") is not taken for a
// command.
func command(line string) (Verb, string, bool) {
	line = strings.TrimSpace(line)
	word, reason, _ := strings.Cut(line, ":")
	verb, ok := verbs[quote.Fold(word)]
	if !ok {
		return "", "", false
	}
	// Decline notices and the audit trail quote the reason, like a message.
	return verb, workflow.Clip(strings.TrimSpace(reason), workflow.MaxMessageRunes), true
}

// paragraph returns the lines up to the first blank one or command,
// clipped like a reason on the command's line.
func paragraph(lines []string) string {
	var para []string
	for _, l := range lines {
		if _, _, isCommand := command(l); isCommand {
			break
		}
		if l = strings.TrimSpace(l); l == "" {
			break
		}
		para = append(para, l)
	}
	return workflow.Clip(strings.Join(para, "\n"), workflow.MaxMessageRunes)
}

// delegate reads the delegate of a DELEGATE line: "Name <mail@host>" or a
// bare "mail@host", and the reason that may follow a bracketed address
// ("Marie Curie <marie@host> – en congé").
func delegate(line, value string) (to workflow.Party, reason string, err error) {
	line = strings.TrimSpace(line)
	if end := strings.LastIndexByte(value, '>'); end >= 0 && strings.Contains(value[:end], "<") {
		value, reason = value[:end+1], strings.TrimLeft(value[end+1:], " \t-–—,;:.")
	}
	if value == "" {
		return workflow.Party{}, "", problem.New(`%q: give the name and address of the person you hand your place to after the colon, e.g. "DELEGATE: Marie Curie <marie@example.org>"`,
			"« %s » : indiquez après les deux-points le nom et l'adresse de la personne à qui vous confiez votre place, par exemple « DÉLÉGUER: Marie Curie <marie@exemple.fr> »", line)
	}
	a, err := mail.ParseAddress(value)
	if err != nil {
		// net/mail's own words ("mail: no angle-addr") would mean nothing
		// to the reader: the example says what is wanted.
		return workflow.Party{}, "", problem.New(`%q: %q is not an email address; write it as "DELEGATE: Marie Curie <marie@example.org>" or "DELEGATE: marie@example.org"`,
			"« %s » : « %s » n'est pas une adresse électronique ; écrivez par exemple « DÉLÉGUER: Marie Curie <marie@exemple.fr> » ou « DÉLÉGUER: marie@exemple.fr »", line, value)
	}
	return workflow.Party{Name: a.Name, Email: a.Address}, reason, nil
}

// Thread are the message IDs m answers, In-Reply-To first then References
// from the newest, without duplicates (see Command.Thread).
func Thread(m *message.Message) []string {
	ids := slices.Clone(m.InReplyTo)
	for i := len(m.References) - 1; i >= 0; i-- {
		if !slices.Contains(ids, m.References[i]) {
			ids = append(ids, m.References[i])
		}
	}
	return ids
}
