package quote

import (
	"strings"
	"testing"
)

func FuzzOwn(f *testing.F) {
	for _, s := range []string{
		"Signataire: a@b.example\n\nDe : Marie\nEnvoyé : lundi\n",
		"x\nLe lun. 2 nov. 2026 à 10:12, Marie <m@x> a\nécrit :\n> y",
		"x\r\n---------- Forwarded message ---------\r\nFrom: y",
		"________________________________\nFrom: a\nSent: b", "> quoted", "On Mon, x wrote:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		own := Own(text)
		normal := strings.Join(Lines(text), "\n")
		if !strings.HasPrefix(normal, own) {
			t.Errorf("Own(%q) = %q is not a start of the text", text, own)
		}
		if Own(own) != own {
			t.Errorf("Own is not idempotent on %q", text)
		}
	})
}
