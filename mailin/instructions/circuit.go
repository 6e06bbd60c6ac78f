package instructions

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/parapheur/parapheur/mailin/quote"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/problem"
)

// Circuits are predefined instruction blocks from the configuration (the
// organisation's hierarchy), by folded name.
type Circuits map[string]*Instructions

// CompileCircuits reads circuit definitions: each name maps to instruction
// lines in the same syntax as a mail. The error lists every problem of every
// circuit, for `parapheur config check`.
func CompileCircuits(defs map[string][]string) (Circuits, error) {
	c := Circuits{}
	var errs []error
	for name, lines := range defs {
		key := circuitKey(name)
		if key == "" {
			errs = append(errs, fmt.Errorf("circuit %q: the name is empty", name))
			continue
		}
		if _, reserved := Verification(name); reserved {
			errs = append(errs, fmt.Errorf("circuit %q: %w", name, ErrReservedCircuit))
			continue
		}
		if _, dup := c[key]; dup {
			errs = append(errs, fmt.Errorf("circuit %q: another circuit has the same name", name))
			continue
		}
		in := &Instructions{}
		in.parseLines(lines)
		if in.Circuit != "" {
			in.Problems = append(in.Problems, Problem{Reason: problem.Text{EN: "a circuit cannot name another circuit"}})
		}
		if len(in.Steps) == 0 {
			in.Problems = append(in.Problems, Problem{Reason: problem.Text{EN: "the circuit has no Visa or Signataire line"}})
		}
		for _, p := range in.Problems {
			errs = append(errs, fmt.Errorf("circuit %q: %w", name, p))
		}
		c[key] = in
	}
	return c, errors.Join(errs...)
}

// verificationDetails are the plus-address details of the verification
// address (SPEC §6), parapheur+verifier@… and parapheur+verify@…: a mail
// sent there asks for a report on its PDFs, never for an envelope.
var verificationDetails = []string{"verifier", "verify"}

// ErrReservedCircuit: a circuit is named like the verification address.
var ErrReservedCircuit = fmt.Errorf("the names %s are reserved for the verification address (address+verifier, address+verify) and cannot name a circuit: choose another name",
	strings.Join(verificationDetails, " and "))

// Verification tells whether the plus-address detail (or a circuit name)
// is that of the verification address, folded as circuit names are
// ("Vérifier" is "verifier"), and returns it folded.
func Verification(detail string) (folded string, ok bool) {
	folded = circuitKey(detail)
	return folded, slices.Contains(verificationDetails, folded)
}

// circuitKey folds a circuit name so that "Direction", "direction" and
// "Diréction" select the same circuit.
func circuitKey(name string) string {
	return strings.Join(strings.Fields(quote.Fold(name)), " ")
}

// Resolve completes the instructions of a mail: it expands the circuit
// named by the Circuit line or, failing that, by the plus-address detail
// the mail was sent to (parapheur+direction@…, RFC 5233), then checks that
// someone signs. A circuit's steps come before the mail's; its copies and
// archivists are added to the mail's, and its deadline, reminder, message
// and language apply where the mail gives none.
func (in *Instructions) Resolve(circuits Circuits, detail string) {
	name := in.Circuit
	switch {
	case name == "":
		name = detail
	case detail != "" && circuitKey(detail) != circuitKey(name):
		in.Problems = append(in.Problems, Problem{Reason: problem.New(
			"the mail was sent to the address of circuit %q but its Circuit line names %q: use one",
			"le message a été envoyé à l'adresse du circuit « %s » mais sa ligne Circuit nomme « %s » : n'en utilisez qu'un", detail, name)})
		name = ""
	}
	if name != "" {
		if c, ok := circuits[circuitKey(name)]; ok {
			in.apply(c)
		} else {
			known := make([]string, 0, len(circuits))
			for k := range circuits {
				known = append(known, k)
			}
			slices.Sort(known)
			reason := problem.New("circuit %q is not defined", "le circuit « %s » n'existe pas", name)
			if len(known) > 0 {
				reason.EN += "; the circuits are: " + strings.Join(known, ", ")
				reason.FR += " ; les circuits sont : " + strings.Join(known, ", ")
			} else {
				reason.EN += "; this gateway has no circuits: name the approvers and signers on Approver and Signer lines"
				reason.FR += " ; ce parapheur n'a aucun circuit : nommez les personnes qui visent et qui signent sur des lignes Visa et Signataire"
			}
			in.Problems = append(in.Problems, Problem{Reason: reason})
		}
	}
	if !slices.ContainsFunc(in.Steps, func(s workflow.DraftStep) bool { return s.Role == workflow.Signer }) {
		in.Problems = append(in.Problems, Problem{Reason: problem.Text{
			EN: `no signer: add a line such as "Signer: Marie Curie <marie@partner.example>"`,
			FR: "aucun signataire : ajoutez une ligne telle que « Signataire: Marie Curie <marie@partner.example> »",
		}})
	}
}

func (in *Instructions) apply(c *Instructions) {
	in.Steps = append(cloneSteps(c.Steps), in.Steps...)
	in.Copies = append(slices.Clone(c.Copies), in.Copies...)
	in.Archivists = append(slices.Clone(c.Archivists), in.Archivists...)
	if in.Deadline.IsZero() {
		in.Deadline = c.Deadline
	}
	if in.ReminderDays == 0 {
		in.ReminderDays = c.ReminderDays
	}
	if in.Message == "" {
		in.Message = c.Message
	}
	if in.Language == "" {
		in.Language = c.Language
	}
}

// cloneSteps copies steps so that an envelope never shares a slice with
// the circuit it came from.
func cloneSteps(steps []workflow.DraftStep) []workflow.DraftStep {
	out := make([]workflow.DraftStep, len(steps))
	for i, s := range steps {
		out[i] = workflow.DraftStep{Role: s.Role, Parties: slices.Clone(s.Parties)}
	}
	return out
}
