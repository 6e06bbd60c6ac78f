package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sample is the commented sample configuration shipped in deploy/.
var sample, _ = filepath.Abs("../../deploy/parapheur.toml")

// sampleEnv points the sample's secret files, which live in /etc/parapheur/secrets on a real
// installation, at files of the test.
func sampleEnv(t *testing.T) []string {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("never-shown\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"PARAPHEUR_IMAP_PASSWORD_FILE=" + secret, "PARAPHEUR_SMTP_PASSWORD_FILE=" + secret, "PARAPHEUR_KEYS_PASSPHRASE_FILE=" + secret}
}

func TestConfigCheckGood(t *testing.T) {
	env := sampleEnv(t)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"global flag", env, []string{"--config", sample, "config", "check"}},
		{"flag after the command", env, []string{"config", "check", "--config=" + sample}},
		{"PARAPHEUR_CONFIG", append(env, "PARAPHEUR_CONFIG="+sample), []string{"config", "check"}},
		{"flag over PARAPHEUR_CONFIG", append(env, "PARAPHEUR_CONFIG=/nonexistent.toml"), []string{"-config", sample, "config", "check"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := parapheur(t, tc.env, tc.args...)
			if r.code != exitOK || r.stdout != "config OK: "+sample+"\n" || r.stderr != "" {
				t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
		})
	}

	// The environment alone, with an empty --config.
	r := parapheur(t, []string{
		"PARAPHEUR_CONFIG=",
		"PARAPHEUR_ADDRESS=parapheur@org.example",
		"PARAPHEUR_PUBLIC_URL=http://127.0.0.1:8080",
		"PARAPHEUR_IMAP_URL=imap://parapheur@127.0.0.1:1143/INBOX",
		"PARAPHEUR_IMAP_PASSWORD=secret",
		"PARAPHEUR_SMTP_URL=smtp://127.0.0.1:2525",
		"PARAPHEUR_SENDERS_ALLOWED=@example.com",
		"PARAPHEUR_KEYS_PASSPHRASE=correct horse",
	}, "config", "check")
	if r.code != exitOK || r.stdout != "config OK: (environment only)\n" {
		t.Errorf("environment only: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestConfigCheckBad(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer(
		`url = "smtp://parapheur@smtp.org.example:587"`, `url = "smtp://mail.example.org:25?tls=none"`,
		`authserv_id = "mx.org.example"`, `authserv_id = ""`,
		`processed_folder =`, `pasword = "hunter2"`+"\nprocessed_folder =",
	).Replace(string(data))
	if err := os.WriteFile(bad, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	r := parapheur(t, sampleEnv(t), "--config", bad, "config", "check")
	want := []string{
		`imap.pasword: unknown key (did you mean imap.password?)`,
		`senders.authserv_id: required when senders.require_auth is true`,
		`smtp.url: unknown parameter "tls": the URL takes none`,
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != exitFailure || len(lines) != len(want) {
		t.Fatalf("exit %d, want 1 and %d problems; stdout:\n%s\nstderr: %s", r.code, len(want), r.stdout, r.stderr)
	}
	for i, line := range lines {
		if !strings.HasPrefix(line, want[i]) {
			t.Errorf("line %d: %q, want it to start with %q", i+1, line, want[i])
		}
	}
	if r.stderr != "parapheur config check: "+bad+": 3 problem(s)\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "never-shown") || strings.Contains(r.stdout+r.stderr, "hunter2") {
		t.Errorf("a secret is printed:\n%s%s", r.stdout, r.stderr)
	}

	if err := os.WriteFile(filepath.Join(dir, "syntax.toml"), []byte("listen = = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, file, stderr string }{
		{"missing file", filepath.Join(dir, "missing.toml"), "no such file or directory"},
		{"syntax error", filepath.Join(dir, "syntax.toml"), "syntax.toml: toml: line 1"},
	} {
		r := parapheur(t, nil, "config", "check", "--config", tc.file)
		if r.code != exitFailure || !strings.HasPrefix(r.stderr, "parapheur config check: ") || !strings.Contains(r.stderr, tc.stderr) || r.stdout != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", tc.name, r.code, r.stdout, r.stderr)
		}
	}
}

// TestNoConfigFile runs the commands that read the configuration with no file at the
// default path and none named (SPEC §7): the environment alone configures them, secrets
// read from files included. A file at the default path is read; a file named by --config or
// PARAPHEUR_CONFIG that cannot be read is an error naming it.
func TestNoConfigFile(t *testing.T) {
	if _, err := os.Stat(defaultFile); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the test's default configuration file %s should not exist: %v", defaultFile, err)
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PARAPHEUR_ADDRESS=parapheur@org.example",
		"PARAPHEUR_PUBLIC_URL=http://127.0.0.1:8080",
		"PARAPHEUR_IMAP_URL=imap://parapheur@127.0.0.1:1143/INBOX",
		"PARAPHEUR_IMAP_PASSWORD_FILE=" + secret,
		"PARAPHEUR_SMTP_URL=smtp://127.0.0.1:2525",
		"PARAPHEUR_SENDERS_ALLOWED=@example.com",
		"PARAPHEUR_KEYS_DIR=" + keys,
		"PARAPHEUR_KEYS_PASSPHRASE_FILE=" + secret,
	}

	if r := parapheur(t, env, "config", "check"); r.code != exitOK || r.stdout != "config OK: (environment only)\n" {
		t.Errorf("config check: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := parapheur(t, env, "ca", "init", "--organisation", "Mairie de Test"); r.code != exitOK || !strings.Contains(r.stdout, filepath.Join(keys, "seal.p12")) {
		t.Fatalf("ca init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// With the keys made, config check reads them as serve does: with the
	// passphrase they were made with, and no other.
	if r := parapheur(t, env, "config", "check"); r.code != exitOK || r.stdout != "config OK: (environment only)\n" {
		t.Errorf("config check with the keys: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	wrong := append(env[:len(env)-1:len(env)-1], "PARAPHEUR_KEYS_PASSPHRASE=not the one")
	if r := parapheur(t, wrong, "config", "check"); r.code != exitFailure || !strings.HasPrefix(r.stdout, "keys.dir: the signing CA in "+keys+": ") {
		t.Errorf("config check with another passphrase: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := parapheur(t, env[:len(env)-1], "config", "check"); r.code != exitFailure || !strings.HasPrefix(r.stdout, "keys.passphrase: required") {
		t.Errorf("config check without a passphrase: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	in, err := filepath.Abs(filepath.Join("..", "..", "mailin", "testdata", "doc1.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "sealed.pdf")
	if r := parapheur(t, env, "seal", in, out); r.code != exitOK || !strings.Contains(r.stdout, "Mairie de Test seal") {
		t.Errorf("seal: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// serve reads the same configuration; a bad listen address stops it before it
	// connects anywhere, naming the variable, which shows that it read the environment.
	if r := parapheur(t, append(env, "PARAPHEUR_LISTEN=nowhere"), "serve"); r.code != exitFailure || !strings.HasPrefix(r.stderr, "parapheur serve: listen (PARAPHEUR_LISTEN): ") {
		t.Errorf("serve: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A file named explicitly that cannot be read is an error naming it, for every command.
	missing := filepath.Join(dir, "missing.toml")
	for _, args := range [][]string{{"config", "check"}, {"ca", "init", "--organisation", "X"}, {"seal", in, out}, {"serve"}} {
		for _, named := range []struct {
			how  string
			env  []string
			args []string
		}{
			{"--config", env, append([]string{"--config", missing}, args...)},
			{"PARAPHEUR_CONFIG", append(env, "PARAPHEUR_CONFIG="+missing), args},
		} {
			r := parapheur(t, named.env, named.args...)
			if r.code != exitFailure || !strings.Contains(r.stderr, "open "+missing+": no such file or directory") {
				t.Errorf("%s named by %s: exit %d\n%s%s", strings.Join(args[:2], " "), named.how, r.code, r.stdout, r.stderr)
			}
		}
	}

	// A file at the default path is read, under the environment.
	if err := os.MkdirAll(filepath.Dir(defaultFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(defaultFile, []byte("language = \"la\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(defaultFile) })
	r := parapheur(t, env, "config", "check")
	if r.code != exitFailure || !strings.HasPrefix(r.stdout, "language: ") || r.stderr != "parapheur config check: "+defaultFile+": 1 problem(s)\n" {
		t.Errorf("config check with a file at the default path: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestConfigCheckComposeExample checks the configuration that
// deploy/compose.yaml mounts, with its example secrets, on its own Redis and
// on the Sentinel overlay's store URL.
func TestConfigCheckComposeExample(t *testing.T) {
	dir, err := filepath.Abs("../../deploy/compose")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PARAPHEUR_CONFIG=" + filepath.Join(dir, "parapheur.toml"),
		"PARAPHEUR_IMAP_PASSWORD_FILE=" + filepath.Join(dir, "secrets", "mail-password"),
		"PARAPHEUR_KEYS_PASSPHRASE_FILE=" + filepath.Join(dir, "secrets", "keys-passphrase"),
	}
	sentinel := "PARAPHEUR_STORE_URL=redis-sentinel://sentinel-1:26379/0?master_name=parapheur&addr=sentinel-2:26379&addr=sentinel-3:26379"
	for _, env := range [][]string{env, append(env, sentinel)} {
		if r := parapheur(t, env, "config", "check"); r.code != exitOK || !strings.HasPrefix(r.stdout, "config OK: ") {
			t.Errorf("config check of the compose example with %v: exit %d\n%s%s", env[len(env)-1], r.code, r.stdout, r.stderr)
		}
	}
}

// TestConfigCheckNamesTheKey breaks the sample configuration one key at a
// time, as an operator's typo would, and checks that config check names
// that key, and only it.
func TestConfigCheckNamesTheKey(t *testing.T) {
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key, old, new string
	}{
		{"public_url", `public_url = "https://sign.org.example"`, `public_url = "http://sign.org.example"`},
		{"listen", `listen = ":8080"`, `listen = "8080"`},
		{"language", `language = "fr"`, `language = "de"`},
		{"timezone", `timezone = "Europe/Paris"`, `timezone = "Europe/Lutece"`},
		{"store.url", `url = "bolt:///var/lib/parapheur/parapheur.db"`, `url = "mysql://db/parapheur"`},
		{"imap.url", `url = "imaps://parapheur@imap.org.example/INBOX"`, `url = "imap://parapheur:pw@imap.org.example/INBOX"`},
		{"envelopes.default_deadline_days", `default_deadline_days = 30`, `default_deadline_days = "thirty"`},
		{"limits.max_document_bytes", `max_document_bytes = 26214400`, `max_document_bytes = 104857600`},
		{"mail.download_link_days", `download_link_days = 30`, `download_link_days = 0`},
		{"http.trusted_proxies", `trusted_proxies = ["127.0.0.1/32", "::1/128"]`, `trusted_proxies = ["localhost"]`},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if !strings.Contains(string(data), tc.old) {
				t.Fatalf("the sample no longer has %s", tc.old)
			}
			bad := filepath.Join(t.TempDir(), "bad.toml")
			if err := os.WriteFile(bad, []byte(strings.Replace(string(data), tc.old, tc.new, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			r := parapheur(t, sampleEnv(t), "--config", bad, "config", "check")
			if r.code != exitFailure || !strings.HasPrefix(r.stdout, tc.key+": ") || strings.Count(r.stdout, "\n") != 1 {
				t.Errorf("%s = %s: exit %d, stdout %q, stderr %q; want one problem naming %s", tc.key, tc.new, r.code, r.stdout, r.stderr, tc.key)
			}
		})
	}
}
