package workflow

import "unicode/utf8"

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
