package certificate

import (
	"bytes"
	"testing"
)

// FuzzBuild feeds arbitrary text (invalid UTF-8, control characters,
// glyphs the Go fonts lack, PDF delimiters) to the fields a submitter or a
// recipient chooses: the certificate is always made, with its attachment.
func FuzzBuild(f *testing.F) {
	for _, seed := range [][4]string{
		{"Contrat", "Jean Martin", "Bonjour", "En congé"},
		{"", "", "", ""},
		{"(unbalanced \\ ) paren", "<script>alert(1)</script>", "%%EOF\nstartxref\n0", "endobj"},
		{"日本語の契約書", "Zoë 🙂 Ørsted", "\x00\x01\x7f\xff\xfe", "\u202e\u200b"},
		{string(bytes.Repeat([]byte("x"), 5000)), "a\nb\r\nc\td", "\xc3", "\xe2\x80"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	s := completedEnvelope(f, "fr")
	f.Fuzz(func(t *testing.T, title, name, message, reason string) {
		env := s.env.Clone()
		env.Title, env.Message = title, message
		env.Recipients[0].Name, env.Sender.Name = name, name
		env.Recipients[1].Reason = reason
		in := input(t, s)
		in.Envelope = env
		pdf, err := Build(in)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		if !bytes.HasSuffix(pdf, []byte("%%EOF\n")) || !bytes.Contains(pdf, []byte("/AFRelationship /Data")) {
			t.Fatal("the certificate does not end with its attachment's update")
		}
	})
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"Zoë Lefèvre-Ørsted — « ok » ’": "Zoë Lefèvre-Ørsted — « ok » ’",
		"smile 🙂":                       "smile [U+1F642]",
		"a\r\nb\rc\td":                  "a\nb\nc d",
		"bell\x07":                      "bell[U+0007]",
		"bad \xc3 byte":                 "bad \uFFFD byte",
		"契約":                            "[U+5951][U+7D04]",
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}
