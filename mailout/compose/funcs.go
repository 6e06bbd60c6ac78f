package compose

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parapheur/parapheur/workflow"
)

// locale is what the template functions need to know of a language.
type locale struct {
	months [12]string
	// at joins a date and a time: "15 décembre 2026 à 23:59".
	at string
	// first is how the first day of a month is written: "1er" in French.
	first string
	// decimal is the decimal separator; units are the byte-size units.
	decimal string
	units   [4]string
	// roles name what each role does in a step list.
	roles map[workflow.Role]string
}

var locales = map[string]locale{
	"fr": {
		months:  [12]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"},
		at:      " à ",
		first:   "1er",
		decimal: ",",
		units:   [4]string{"octets", "ko", "Mo", "Go"},
		roles: map[workflow.Role]string{
			workflow.Signer: "signature", workflow.Approver: "visa",
			workflow.Copy: "copie", workflow.Archivist: "archivage",
		},
	},
	"en": {
		months:  [12]string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"},
		at:      " at ",
		first:   "1",
		decimal: ".",
		units:   [4]string{"bytes", "kB", "MB", "GB"},
		roles: map[workflow.Role]string{
			workflow.Signer: "signature", workflow.Approver: "approval",
			workflow.Copy: "copy", workflow.Archivist: "archive",
		},
	},
}

// button is a link drawn as a button in HTML.
type button struct {
	URL, Label string
}

// funcs returns the template functions of the locale; both template
// packages take the same map.
func (l locale) funcs() map[string]any {
	return map[string]any{
		"party":    party,
		"datetime": l.datetime,
		"size":     l.size,
		"role":     func(r workflow.Role) string { return l.roles[r] },
		"inc":      func(i int) int { return i + 1 },
		"button":   func(url, label string) button { return button{URL: url, Label: label} },
		"days":     days,
		"indent":   indent,
		"re":       re,
	}
}

// re is the subject of a reply: "Re: " and the subject it answers, with
// one "Re:" only (RFC 5322 §3.6.5).
func re(subject string) string {
	if len(subject) >= 3 && strings.EqualFold(subject[:3], "re:") {
		return subject
	}
	return "Re: " + subject
}

// party shows a party as "Name <email>", or the bare address without a name.
func party(p workflow.Party) string {
	if name := workflow.OneLine(p.Name); name != "" {
		return name + " <" + p.Email + ">"
	}
	return p.Email
}

// datetime shows a date and time with its zone: "15 décembre 2026 à 23:59 CET".
func (l locale) datetime(t time.Time) string {
	day := strconv.Itoa(t.Day())
	if t.Day() == 1 {
		day = l.first
	}
	return fmt.Sprintf("%s %s %d%s%s", day, l.months[t.Month()-1], t.Year(), l.at, t.Format("15:04 MST"))
}

// size shows a byte count in decimal units with one decimal: "1,2 Mo".
func (l locale) size(n int64) string {
	if n < 1000 {
		return strconv.FormatInt(n, 10) + " " + l.units[0]
	}
	f, u := float64(n)/1000, 1
	for f >= 1000 && u < len(l.units)-1 {
		f, u = f/1000, u+1
	}
	return strings.Replace(strconv.FormatFloat(f, 'f', 1, 64), ".", l.decimal, 1) + " " + l.units[u]
}

// lineBreaks turns CRLF and lone CR into LF: user text comes from mails and
// web forms with any of them.
var lineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n")

// indent indents every line of a user's text (a message, a reason) by two
// spaces, setting it apart in a plain-text mail.
func indent(s string) string {
	lines := strings.Split(lineBreaks.Replace(strings.TrimSpace(s)), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

// days shows a reminder interval in whole days, at least one: the
// instruction block counts reminders in days.
func days(d time.Duration) int {
	return max(1, int(d.Round(time.Hour)/(24*time.Hour)))
}
