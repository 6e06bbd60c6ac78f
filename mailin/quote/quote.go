// Package quote finds where the author's own words end in the text of an
// e-mail (RFC 5322 body, after MIME decoding): the point where a reply
// quotes, or a forward copies, an earlier message.
//
// Mail clients do not mark this point in any standard way, so Own
// recognises the separators the common clients write, in French and
// English: Outlook's header block ("De :", "Envoyé :", "From:", "Sent:")
// and its "-----Original Message-----" line, Gmail's and Thunderbird's
// "Forwarded message" banners, Apple Mail's "Begin forwarded message:", the
// "Le … a écrit :" / "On … wrote:" attribution lines, and lines quoted with
// ">".
package quote

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Own returns the start of text that the author wrote, before the first
// quoted or forwarded content. Line ends are normalised to "\n" and trailing
// blank lines removed.
func Own(text string) string {
	lines := Lines(text)
	end := Cut(lines)
	return strings.TrimRight(strings.Join(lines[:end], "\n"), " \t\n")
}

// Lines splits text into lines at "\r\n", "\n" or "\r".
func Lines(text string) []string {
	return strings.Split(strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n"), "\n")
}

// Cut returns the index of the first line of lines that begins quoted or
// forwarded content, or len(lines) when there is none.
func Cut(lines []string) int {
	for i, line := range lines {
		f := Fold(line)
		switch {
		case strings.HasPrefix(f, ">"):
			return i
		case isBanner(f):
			return i
		case isAttribution(f, next(lines, i)):
			return i
		case isHeaderBlock(lines[i:]):
			return i
		case isRule(f) && isHeaderBlock(lines[i+1:]):
			// Outlook puts a line of underscores above its header block.
			return i
		}
	}
	return len(lines)
}

// Fold returns s trimmed, in lower case, without accents and with
// non-breaking spaces made plain, so that "  Envoyé\u00a0:" and "envoye :"
// compare equal.
func Fold(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
		case r == '\u00a0' || r == '\u202f' || r == '\t':
			b.WriteByte(' ')
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return strings.TrimSpace(b.String())
}

func next(lines []string, i int) string {
	if i+1 < len(lines) {
		return Fold(lines[i+1])
	}
	return ""
}

// banners are the words between the dashes of the separator lines of
// Outlook ("-----Original Message-----"), Gmail ("---------- Forwarded
// message ---------") and Thunderbird ("-------- Forwarded Message
// --------"), folded, and Apple Mail's introductions.
var banners = []string{
	"original message", "message d'origine", "message d’origine", "forwarded message",
	"message transfere", "message original", "message reexpedie",
}

var appleIntros = []string{"begin forwarded message:", "debut du message reexpedie :", "debut du message reexpedie:"}

func isBanner(f string) bool {
	for _, intro := range appleIntros {
		if f == intro {
			return true
		}
	}
	if !strings.HasPrefix(f, "--") {
		return false
	}
	words := strings.TrimSpace(strings.Trim(f, "- "))
	for _, b := range banners {
		if words == b {
			return true
		}
	}
	return false
}

// isAttribution recognises "Le lun. 3 nov. 2026 à 10:12, Marie <m@x> a écrit :"
// and "On Mon, Nov 3, 2026 at 10:12 AM Marie <m@x> wrote:", which clients
// often wrap onto a second line.
func isAttribution(f, next string) bool {
	joined := f + " " + next
	switch {
	case strings.HasPrefix(f, "le "):
		return endsWith(f, "a ecrit :", "a ecrit:") || endsWith(joined, "a ecrit :", "a ecrit:")
	case strings.HasPrefix(f, "on "):
		return endsWith(f, "wrote:") || endsWith(joined, "wrote:")
	}
	return false
}

func endsWith(s string, suffixes ...string) bool {
	for _, suf := range suffixes {
		if strings.HasSuffix(s, suf) {
			return true
		}
	}
	return false
}

// headerKeys are the field names of the header block Outlook and other
// clients write at the top of a forwarded or quoted message, folded.
var headerKeys = map[string]bool{
	"de": true, "from": true, "envoye": true, "sent": true, "date": true,
	"a": true, "to": true, "cc": true, "objet": true, "subject": true,
	"importance": true,
}

// isHeaderBlock reports whether lines start with at least two header
// fields of a quoted message, one of them naming the author or the time
// it was sent.
func isHeaderBlock(lines []string) bool {
	fields, anchored := 0, false
	for _, line := range lines {
		key, ok := headerKey(Fold(line))
		if !ok {
			break
		}
		fields++
		anchored = anchored || key == "de" || key == "from" || key == "envoye" || key == "sent"
		if fields == 2 {
			return anchored
		}
	}
	return false
}

func headerKey(f string) (string, bool) {
	f = strings.TrimLeft(f, "*") // Outlook's HTML bold turned to text as "*De :*".
	key, _, ok := strings.Cut(f, ":")
	if !ok {
		return "", false
	}
	key = strings.TrimRight(key, " *")
	return key, headerKeys[key]
}

func isRule(f string) bool {
	return len(f) >= 10 && strings.Trim(f, "_") == ""
}
