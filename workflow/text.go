package workflow

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Caps on the text a sender writes into an envelope, in runes. Every mail
// and page about the envelope quotes it, and a log line may: a subject of
// 10 MB must not make invitations, refusals or log lines of its size. The
// doors (the mail reader, the pages) clip what they are given.
const (
	// MaxTitleRunes caps the title, as one line of a subject.
	MaxTitleRunes = 250
	// MaxMessageRunes caps the sender's message to the recipients.
	MaxMessageRunes = 2000
	// MaxNameRunes caps a person's display name.
	MaxNameRunes = 120
)

// Clip shortens s to at most n runes (n ≥ 1), ending with "…" when it cut.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s // n bytes hold at most n runes
	}
	runes := 0
	for i := range s {
		if runes == n-1 {
			if _, size := utf8.DecodeRuneInString(s[i:]); i+size == len(s) {
				return s // the n-th rune is the last
			}
			return s[:i] + "…"
		}
		runes++
	}
	return s
}

// OneLine folds runs of white space, line breaks included, into one space,
// and control characters with them: a name, a title or a subject is one
// line wherever it is written (a header field, a line of a mail's text, a
// page), and a file name that carried line breaks would otherwise add lines
// of its sender's choosing to every mail that lists it. The bidirectional
// overrides and isolates (U+202A-U+202E, U+2066-U+2069) go too: they make
// "fdp.exe" read as "exe.pdf".
func OneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsControl(r):
			return ' '
		case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}
