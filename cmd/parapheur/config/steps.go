package config

import (
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Role is what the recipients of a step do.
type Role string

// The roles a step line can give.
const (
	// RoleApprover approves (visa) without a signature of their own.
	RoleApprover Role = "approver"
	// RoleSigner signs the documents.
	RoleSigner Role = "signer"
	// RoleCC receives the final signed copy.
	RoleCC Role = "cc"
	// RoleArchivist receives the final copy and the machine-readable audit trail.
	RoleArchivist Role = "archivist"
)

// Recipient is one person named on a step line.
type Recipient struct {
	// Name is the display name, empty for a bare address.
	Name string
	// Email is the address, user@host.
	Email string
	// Phone is a mobile number in E.164 form (+33612345678) that makes the one-time code go
	// by SMS; empty for codes by mail.
	Phone string
}

// Step is one line of an instruction block, "Keyword: recipients": all its recipients act,
// in any order, before the next step starts.
type Step struct {
	// Role is given by the line's keyword.
	Role Role
	// Recipients are the addresses of the line, never empty.
	Recipients []Recipient
}

// roleKeywords are the line keywords of SPEC §2 that name recipients, French and English,
// singular and plural, lower case without accents.
var roleKeywords = map[string]Role{
	"visa": RoleApprover, "visas": RoleApprover, "approver": RoleApprover, "approvers": RoleApprover,
	"signataire": RoleSigner, "signataires": RoleSigner, "signer": RoleSigner, "signers": RoleSigner,
	"copie": RoleCC, "copies": RoleCC, "cc": RoleCC,
	"archive": RoleArchivist, "archives": RoleArchivist,
}

// otherKeywords are instruction-block keywords that set something other than recipients,
// meaningless in a circuit.
var otherKeywords = map[string]bool{
	"echeance": true, "deadline": true, "rappel": true, "reminder": true, "message": true,
	"langue": true, "language": true, "circuit": true,
}

// e164 is an international mobile number once spaces, dots and dashes are removed.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)

// ParseStep parses one instruction line, such as "Signataire : Marie Curie
// <marie@partner.example> +33612345678, dg@org.example". Keywords ignore case and accents;
// addresses are separated by "," or ";" and parsed by net/mail; a Visa or Signataire
// address may be followed by a mobile number.
func ParseStep(line string) (Step, error) {
	keyword, value, ok := strings.Cut(line, ":")
	if !ok {
		return Step{}, fmt.Errorf("%q: want \"Keyword: addresses\", e.g. \"Signataire: dg@org.example\"", line)
	}
	kw := foldKeyword(keyword)
	role, ok := roleKeywords[kw]
	if !ok {
		if otherKeywords[kw] {
			return Step{}, fmt.Errorf("%q: %q sets no recipients; a step is Visa, Signataire, Copie or Archive", line, strings.TrimSpace(keyword))
		}
		return Step{}, fmt.Errorf("%q: unknown keyword %q; want Visa, Signataire, Copie or Archive (or Approver, Signer, Cc)", line, strings.TrimSpace(keyword))
	}
	step := Step{Role: role}
	seen := map[string]bool{}
	for _, item := range splitAddresses(value) {
		r, err := parseRecipient(item, role)
		if err != nil {
			return Step{}, fmt.Errorf("%q: %v", line, err)
		}
		if seen[strings.ToLower(r.Email)] {
			return Step{}, fmt.Errorf("%q: %s is named twice", line, r.Email)
		}
		seen[strings.ToLower(r.Email)] = true
		step.Recipients = append(step.Recipients, r)
	}
	if len(step.Recipients) == 0 {
		return Step{}, fmt.Errorf("%q: no address after %q", line, strings.TrimSpace(keyword)+":")
	}
	return step, nil
}

// UnmarshalText parses a step line with ParseStep.
func (s *Step) UnmarshalText(text []byte) error {
	step, err := ParseStep(string(text))
	if err != nil {
		return err
	}
	*s = step
	return nil
}

// foldKeyword lower-cases a keyword and strips its accents: "Échéance " is "echeance".
func foldKeyword(s string) string {
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	folded, _, err := transform.String(t, strings.TrimSpace(s))
	if err != nil {
		folded = s
	}
	return strings.ToLower(folded)
}

// splitAddresses splits a list at the commas and semicolons outside quotes, angle brackets
// and comments, so that "Curie, Marie" <marie@partner.example> stays whole.
func splitAddresses(s string) []string {
	var items []string
	depth, quoted, escaped, start := 0, false, false, 0
	for i, r := range s {
		switch {
		case escaped:
			escaped = false
		case r == '\\' && quoted:
			escaped = true
		case r == '"':
			quoted = !quoted
		case quoted:
		case r == '<' || r == '(':
			depth++
		case (r == '>' || r == ')') && depth > 0:
			depth--
		case (r == ',' || r == ';') && depth == 0:
			items = append(items, s[start:i])
			start = i + 1
		}
	}
	items = append(items, s[start:])
	var nonEmpty []string
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" {
			nonEmpty = append(nonEmpty, it)
		}
	}
	return nonEmpty
}

// parseRecipient parses "Name <addr> +phone", "addr +phone" or either without the phone.
func parseRecipient(item string, role Role) (Recipient, error) {
	addr, phone := item, ""
	if gt := strings.LastIndexByte(item, '>'); gt >= 0 {
		addr, phone = item[:gt+1], strings.TrimSpace(item[gt+1:])
	} else if sp := strings.IndexFunc(item, unicode.IsSpace); sp >= 0 && !strings.Contains(item, "\"") {
		addr, phone = item[:sp], strings.TrimSpace(item[sp:])
	}
	a, err := mail.ParseAddress(addr)
	if err != nil {
		return Recipient{}, fmt.Errorf("address %q: %v", addr, err)
	}
	r := Recipient{Name: a.Name, Email: a.Address}
	if phone == "" {
		return r, nil
	}
	if role != RoleSigner && role != RoleApprover {
		return Recipient{}, fmt.Errorf("%s: a mobile number is for Visa and Signataire lines only", a.Address)
	}
	r.Phone = strings.NewReplacer(" ", "", ".", "", "-", "").Replace(phone)
	if !e164.MatchString(r.Phone) {
		return Recipient{}, fmt.Errorf("%s: %q is not a mobile number in international form, like +33612345678", a.Address, phone)
	}
	return r, nil
}
