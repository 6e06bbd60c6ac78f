package config

import (
	"errors"
	"github.com/parapheur/parapheur/mailin/instructions"
	"io/fs"
	"os"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary files and environments to the loader: it must never panic, and
// it either returns a valid configuration or problems that each name a key.
func FuzzLoad(f *testing.F) {
	sample, err := os.ReadFile(samplePath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(sample), "PARAPHEUR_IMAP_PASSWORD_FILE=/secret\nPARAPHEUR_SMTP_PASSWORD_FILE=/secret")
	f.Add(tomlText(validKeys()), "")
	f.Add(tomlText(validKeys()), "PARAPHEUR_LANGUAGE=en\nPARAPHEUR_CIRCUITS_X_STEPS=Visa: a@b.example\nSigner: c@d.example +33612345678")
	f.Add("address = 3\n[imap]\npasword = 'x'\nurl = 'imap://u:p@h:99999?tls=none'\n", "PARAPHEUR_IMAP_PASWORD=x")
	f.Add("[circuits.a]\nsteps = ['Visa: \"Curie, Marie\" <m@x.example>; n@x.example', 'Échéance: 2026-01-01']\n[circuits.B]\n", "")
	f.Add("[store]\nurl = 'redis-sentinel://:p@h:26379/0?addr=h2:26379'\n[imap]\npassword_file = '/secret'\npassword = 'x'\n", "PARAPHEUR_STORE_URL_FILE=/missing")
	f.Add("circuits = 1\nimap = []\n[[senders]]\n", "PARAPHEUR_SENDERS_ALLOWED=@x.example,,a@")
	f.Add("listen = = \n", "")
	readFile := func(path string) ([]byte, error) {
		if path == "/secret" {
			return []byte("fuzz-secret\n"), nil
		}
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	f.Fuzz(func(t *testing.T, file, env string) {
		c, err := load("fuzz.toml", []byte(file), strings.Split(env, "\n"), readFile)
		var cerr *Error
		switch {
		case errors.As(err, &cerr):
			if len(cerr.Problems) == 0 {
				t.Fatal("an *Error without problems")
			}
			for _, p := range cerr.Problems {
				if p.Key == "" || p.Reason == "" {
					t.Fatalf("problem without key or reason: %#v", p)
				}
			}
			if strings.Contains(err.Error(), "fuzz-secret") {
				t.Fatalf("a secret read from a file is printed: %v", err)
			}
		case err != nil:
			if !strings.HasPrefix(err.Error(), "fuzz.toml: ") {
				t.Fatalf("error without the file name: %v", err)
			}
		default:
			if c.Language != "fr" && c.Language != "en" || c.Address == "" || c.IMAP.Server.Host == "" ||
				c.IMAP.Mailbox == "" || len(c.Senders.Allowed) == 0 || c.Limits.MaxDocumentBytes > c.Limits.MaxMessageBytes {
				t.Fatalf("accepted an invalid configuration: %+v", c)
			}
			for name, circuit := range c.Circuits {
				if !circuitName.MatchString(name) || len(circuit.Steps) == 0 {
					t.Fatalf("accepted circuit %q: %+v", name, circuit)
				}
				if _, err := instructions.CompileCircuits(map[string][]string{name: circuit.Steps}); err != nil {
					t.Fatalf("accepted circuit %q that does not compile: %v", name, err)
				}
			}
		}
	})
}
