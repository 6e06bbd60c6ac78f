// Package instructions reads the instruction block of a submission mail
// (SPEC §2): the "Keyword: value" lines an agent writes above a forwarded
// message to say who approves, who signs and in which order.
//
// Keywords are French or English, singular or plural, and compared without
// case or accents. Addresses follow the RFC 5322 name-addr / addr-spec
// forms; deadlines are ISO 8601 calendar dates (YYYY-MM-DD) or the French
// DD/MM/YYYY; mobile numbers are E.164 (French national 06/07 numbers are
// accepted and converted). Parse never fails: every line it cannot use
// becomes a Problem that says which line and what is wrong, so a refusal
// mail can quote it back to the sender.
package instructions

import (
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/parapheur/parapheur/mailin/quote"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/problem"
)

// Instructions is what an instruction block asks for.
type Instructions struct {
	// Steps are the approval and signature steps in the order of the
	// lines; a circuit's steps come first once Resolve has run.
	Steps []workflow.DraftStep
	// Copies receive the final signed documents.
	Copies []workflow.Party
	// Archivists receive the final documents and the audit trail.
	Archivists []workflow.Party
	// Deadline is the last day of the envelope; zero when not given.
	Deadline workflow.Day
	// ReminderDays is the interval between reminders in days; 0 when not
	// given, NoReminders when the sender asked for none ("Rappel : 0").
	ReminderDays int
	// Message is the sender's message to the recipients, one line per
	// Message line, at most workflow.MaxMessageRunes runes.
	Message string
	// Language is "fr" or "en"; empty when not given.
	Language string
	// Circuit is the name of the predefined circuit asked for, as written.
	Circuit string
	// Problems are the lines that could not be used, in order. A
	// submission with problems is refused with their text.
	Problems []Problem
}

// Problem is one thing wrong in an instruction block.
type Problem struct {
	// Line is the 1-based line number in the text the block was read
	// from, 0 for a problem of the block as a whole.
	Line int
	// Text is the line as written, trimmed, and clipped to
	// maxQuotedRunes runes.
	Text string
	// Reason says what is wrong, e.g. `"marie@" is not an email address`;
	// its English text is the one of logs and errors.
	Reason problem.Text
}

// Sentence is the problem as the refusal mail quotes it, with its line:
// `line 3 "Signataire: marie@": "marie@" is not an email address`.
func (p Problem) Sentence() problem.Text {
	if p.Line == 0 {
		return p.Reason
	}
	return problem.Text{
		EN: fmt.Sprintf("line %d %q: %s", p.Line, p.Text, p.Reason.EN),
		FR: fmt.Sprintf("ligne %d « %s » : %s", p.Line, p.Text, p.Reason.FR),
	}
}

// Error returns the English sentence, so a list of problems reads as a
// list of errors.
func (p Problem) Error() string { return p.Sentence().EN }

// Err returns the problems as one error, one problem per line, or nil
// when the block is usable.
func (in *Instructions) Err() error {
	errs := make([]error, len(in.Problems))
	for i, p := range in.Problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// keyword is what a line asks for.
type keyword int

const (
	kwNone keyword = iota
	kwApprover
	kwSigner
	kwCopy
	kwArchive
	kwDeadline
	kwReminder
	kwMessage
	kwLanguage
	kwCircuit
)

// keywords maps folded keywords (see quote.Fold), singular and plural, to
// what they ask for.
var keywords = map[string]keyword{
	"visa": kwApprover, "visas": kwApprover, "approver": kwApprover, "approvers": kwApprover,
	"approbateur": kwApprover, "approbateurs": kwApprover,
	"signataire": kwSigner, "signataires": kwSigner, "signer": kwSigner, "signers": kwSigner,
	"copie": kwCopy, "copies": kwCopy, "cc": kwCopy, "copy": kwCopy,
	"archive": kwArchive, "archives": kwArchive, "archiviste": kwArchive, "archivistes": kwArchive,
	"archivist": kwArchive, "archivists": kwArchive,
	"echeance": kwDeadline, "deadline": kwDeadline, "date limite": kwDeadline,
	"rappel": kwReminder, "rappels": kwReminder, "reminder": kwReminder, "reminders": kwReminder,
	"message": kwMessage,
	"langue":  kwLanguage, "language": kwLanguage,
	"circuit": kwCircuit,
}

// NoReminders is the ReminderDays of "Rappel : 0" (or "aucun", "none"):
// no reminder at all, whatever the configured default.
const NoReminders = -1

// MaxReminderDays bounds the reminder interval; a larger number is more
// likely a typo than an intent.
const MaxReminderDays = 365

// Parse reads the instruction block from the author's own text of a mail
// (it stops at quoted or forwarded content, see quote.Cut). Lines whose
// text before the first colon is not a keyword are prose and skipped.
func Parse(text string) *Instructions {
	in := &Instructions{}
	lines := quote.Lines(text)
	in.parseLines(lines[:quote.Cut(lines)])
	return in
}

func (in *Instructions) parseLines(lines []string) {
	var seen [kwCircuit + 1]int // line of the first occurrence of single-valued keywords
	for i, raw := range lines {
		kw, value, ok := splitLine(raw)
		if !ok {
			continue
		}
		p := lineParser{in: in, line: i + 1, text: strings.TrimSpace(raw)}
		switch kw {
		case kwApprover, kwSigner, kwDeadline, kwReminder, kwLanguage, kwCircuit:
			if value == "" {
				p.problem(problem.Text{EN: "the line gives no value", FR: "la ligne ne donne aucune valeur"})
				continue
			}
		}
		switch kw {
		case kwDeadline, kwReminder, kwLanguage, kwCircuit:
			if seen[kw] != 0 {
				p.problem(problem.New("repeats line %d: give it once", "répète la ligne %d : ne donnez cette instruction qu'une fois", seen[kw]))
				continue
			}
			seen[kw] = p.line
		}
		switch kw {
		case kwApprover:
			if parties := p.parties(value, false); len(parties) > 0 {
				in.Steps = append(in.Steps, workflow.DraftStep{Role: workflow.Approver, Parties: parties})
			}
		case kwSigner:
			if parties := p.parties(value, true); len(parties) > 0 {
				in.Steps = append(in.Steps, workflow.DraftStep{Role: workflow.Signer, Parties: parties})
			}
		case kwCopy:
			in.Copies = append(in.Copies, p.parties(value, false)...)
		case kwArchive:
			in.Archivists = append(in.Archivists, p.parties(value, false)...)
		case kwDeadline:
			in.Deadline = p.date(value)
		case kwReminder:
			in.ReminderDays = p.days(value)
		case kwMessage:
			if value != "" {
				in.Message = workflow.Clip(strings.TrimPrefix(in.Message+"\n"+value, "\n"), workflow.MaxMessageRunes)
			}
		case kwLanguage:
			in.Language = p.language(value)
		case kwCircuit:
			in.Circuit = workflow.Clip(value, workflow.MaxNameRunes) // quoted when unknown
		}
	}
}

// splitLine returns the keyword and value of a "Keyword: value" line,
// tolerating a list bullet before the keyword and the French space before
// the colon.
func splitLine(line string) (keyword, string, bool) {
	line = strings.TrimSpace(line)
	line = strings.TrimLeft(line, "-*•· \t")
	key, value, ok := strings.Cut(line, ":")
	if !ok {
		return kwNone, "", false
	}
	kw, ok := keywords[strings.Join(strings.Fields(quote.Fold(key)), " ")]
	if !ok {
		return kwNone, "", false
	}
	return kw, strings.TrimSpace(strings.ReplaceAll(value, "\u00a0", " ")), true
}

// lineParser reads the value of one line and records its problems.
type lineParser struct {
	in   *Instructions
	line int
	text string
}

// maxQuotedRunes caps the line a problem quotes, and the reason, which may
// quote a value of the line: a refusal must not be a copy of a huge line.
const maxQuotedRunes = 250

func (p lineParser) problem(reason problem.Text) {
	p.in.Problems = append(p.in.Problems, Problem{Line: p.line, Text: workflow.Clip(p.text, maxQuotedRunes), Reason: problem.Text{
		EN: workflow.Clip(reason.EN, 2*maxQuotedRunes), FR: workflow.Clip(reason.FR, 2*maxQuotedRunes),
	}})
}

// parties reads the addresses of a line, each "Name <mail@host>" or
// "mail@host", separated by "," or ";", each optionally followed by a
// mobile number when phones are allowed (signers).
func (p lineParser) parties(value string, phones bool) []workflow.Party {
	var parties []workflow.Party
	seen := map[string]bool{}
	for _, item := range splitList(value) {
		party, err := parseParty(item)
		if err != nil {
			p.problem(problem.From(err))
			continue
		}
		if party.Phone != "" && !phones {
			p.problem(problem.New("%q: a mobile number is only for signers (Signataire/Signer lines)",
				"« %s » : un numéro de mobile n'est possible que pour un signataire (lignes Signataire/Signer)", item))
			continue
		}
		key := strings.ToLower(party.Email)
		if seen[key] {
			p.problem(problem.New("%s is named twice on the line", "%s figure deux fois sur la ligne", party.Email))
			continue
		}
		seen[key] = true
		parties = append(parties, party)
	}
	return parties
}

// splitList splits a line's value at "," and ";" outside quoted names and
// angle brackets, dropping empty items.
func splitList(s string) []string {
	var items []string
	quoted, angle, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == '<' && !quoted:
			angle = true
		case c == '>' && !quoted:
			angle = false
		case (c == ',' || c == ';') && !quoted && !angle:
			items = append(items, s[start:i])
			start = i + 1
		}
	}
	items = append(items, s[min(start, len(s)):])
	out := items[:0]
	for _, item := range items {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseParty reads "Name <mail@host> +33612345678", "mail@host 06 12 34 56
// 78" and the like; its errors are problem.Text.
func parseParty(item string) (workflow.Party, error) {
	var addrPart, rest string
	if i := strings.LastIndexByte(item, '>'); i >= 0 {
		addrPart, rest = item[:i+1], item[i+1:]
	} else {
		fields := strings.Fields(item)
		at := -1
		for i, f := range fields {
			if strings.Contains(f, "@") {
				at = i
				break
			}
		}
		if at < 0 {
			return workflow.Party{}, notAddress(item)
		}
		// A bare address after a display name without brackets
		// ("Marie Curie marie@x") is read as if it had them.
		addrPart = fields[at]
		if at > 0 {
			addrPart = strings.Join(fields[:at], " ") + " <" + fields[at] + ">"
		}
		rest = strings.Join(fields[at+1:], " ")
		// "marie@x (Marie Curie)": RFC 5322 allows the name as a comment.
		if strings.HasPrefix(rest, "(") {
			if end := strings.IndexByte(rest, ')'); end > 0 {
				addrPart, rest = addrPart+" "+rest[:end+1], rest[end+1:]
			}
		}
	}
	addr, err := mail.ParseAddress(addrPart)
	if err != nil || !strings.Contains(addr.Address, "@") {
		return workflow.Party{}, notAddress(strings.TrimSpace(addrPart))
	}
	local, domain, _ := strings.Cut(addr.Address, "@")
	party := workflow.Party{Name: workflow.Clip(addr.Name, workflow.MaxNameRunes), Email: local + "@" + strings.ToLower(domain)}
	if rest = strings.TrimSpace(rest); rest != "" {
		phone, err := Phone(rest)
		if err != nil {
			return workflow.Party{}, err
		}
		party.Phone = phone
	}
	return party, nil
}

func notAddress(s string) problem.Text {
	return problem.New("%q is not an email address", "« %s » n'est pas une adresse e-mail", s)
}

// Phone returns a mobile number in E.164 form: "+33 6 12 34 56 78",
// "0033612345678" and the French national "06 12 34 56 78" all give
// "+33612345678". Its error is a problem.Text.
func Phone(s string) (string, error) {
	digits := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '.', '-', '(', ')', '\u00a0':
			return -1
		}
		return r
	}, s)
	switch {
	case strings.HasPrefix(digits, "00"):
		digits = "+" + digits[2:]
	case len(digits) == 10 && (strings.HasPrefix(digits, "06") || strings.HasPrefix(digits, "07")):
		digits = "+33" + digits[1:]
	}
	// E.164: a "+", a country code not starting with 0, at most 15 digits.
	ok := len(digits) >= 9 && len(digits) <= 16 && digits[0] == '+' && digits[1] != '0'
	for i := 1; ok && i < len(digits); i++ {
		ok = digits[i] >= '0' && digits[i] <= '9'
	}
	if !ok {
		return "", problem.New("%q is not a mobile number: write it as +33612345678 or 06 12 34 56 78",
			"« %s » n'est pas un numéro de mobile : écrivez-le +33612345678 ou 06 12 34 56 78", s)
	}
	return digits, nil
}

func (p lineParser) date(value string) workflow.Day {
	for _, layout := range []string{"2006-01-02", "02/01/2006", "2/1/2006"} {
		if t, err := time.Parse(layout, value); err == nil {
			return workflow.Day{Year: t.Year(), Month: t.Month(), Day: t.Day()}
		}
	}
	p.problem(problem.New("%q is not a date: write it as 2026-07-14 or 14/07/2026",
		"« %s » n'est pas une date : écrivez-la 14/07/2026 ou 2026-07-14", value))
	return workflow.Day{}
}

// dayUnits are the words allowed after a reminder's number of days.
var dayUnits = map[string]bool{"": true, "j": true, "jour": true, "jours": true, "d": true, "day": true, "days": true}

func (p lineParser) days(value string) int {
	f := quote.Fold(value)
	switch strings.TrimSpace(f) {
	case "aucun", "aucune", "non", "none", "no", "never", "jamais":
		return NoReminders
	}
	i := strings.IndexFunc(f, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(f)
	}
	n, err := strconv.Atoi(f[:i])
	if err != nil || !dayUnits[strings.TrimSpace(f[i:])] || n < 0 || n > MaxReminderDays {
		p.problem(problem.New("%q is not a number of days between 1 and %d (or 0 for no reminder)",
			"« %s » n'est pas un nombre de jours entre 1 et %d (ou 0 pour aucun rappel)", value, MaxReminderDays))
		return 0
	}
	if n == 0 {
		return NoReminders
	}
	return n
}

// languages maps folded language names to the codes the gateway speaks.
var languages = map[string]string{
	"fr": "fr", "francais": "fr", "french": "fr",
	"en": "en", "anglais": "en", "english": "en",
}

func (p lineParser) language(value string) string {
	if code, ok := languages[quote.Fold(value)]; ok {
		return code
	}
	p.problem(problem.New("%q is not a known language: write fr or en",
		"« %s » n'est pas une langue connue : écrivez fr ou en", value))
	return ""
}
