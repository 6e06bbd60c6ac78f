package web

import (
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestEveryWordInBothLanguages: every sentence a template or a handler
// asks for exists, in French and in English.
func TestEveryWordInBothLanguages(t *testing.T) {
	uses := regexp.MustCompile(`(?:\.T[ (]|say\([a-zA-Z.]+, )"([^"]+)"`)
	found := map[string]bool{}
	check := func(name, text string) {
		for _, m := range uses.FindAllStringSubmatch(text, -1) {
			found[m[1]] = true
			if _, ok := words[m[1]]; !ok {
				t.Errorf("%s asks for the sentence %q, which is not in words", name, m[1])
			}
		}
	}
	err := fs.WalkDir(files, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		check(p, string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pages.go", "i18n.go"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		check(name, string(b))
	}
	if len(found) < 50 {
		t.Fatalf("only %d sentences found in use: the pattern no longer matches the templates", len(found))
	}
	for key, text := range words {
		if text.EN == "" || text.FR == "" {
			t.Errorf("sentence %q lacks a language: %+v", key, text)
		}
		if strings.Count(text.EN, "%") != strings.Count(text.FR, "%") {
			t.Errorf("sentence %q has different arguments in French and English: %+v", key, text)
		}
	}
}

func TestTimesAndNumbersForPeople(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	winter := time.Date(2026, 12, 6, 14, 5, 0, 0, time.UTC)
	summer := time.Date(2027, 7, 1, 8, 0, 0, 0, time.UTC)
	for _, c := range []struct{ got, want string }{
		{shortTime(summer, paris, "fr"), "01/07/2027 10:00:00 CEST"},
		{shortTime(summer, time.UTC, "en"), "2027-07-01 08:00:00 UTC"},
		{clockTime(winter, paris), "15:05 CET"},
		{maskPhone("+33612345678"), "+33•••••••78"},
		{maskPhone("0612"), "••••"},
		{detailName("document_0", "fr"), "document 1"},
		{detailName("sender_auth", "en"), "sender authentication"},
		{detailName("something_new", "fr"), "something_new"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
