package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binary is the parapheur command built for these tests, run as a user would.
var binary string

// defaultFile is the binary's config.DefaultPath: a file of the test's own, absent unless a
// test writes it, so that /etc/parapheur/parapheur.toml of the machine plays no part.
var defaultFile string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parapheur-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "parapheur")
	defaultFile = filepath.Join(dir, "etc", "parapheur.toml")
	build := exec.Command("go", "build", "-o", binary,
		"-ldflags", "-X github.com/parapheur/parapheur/cmd/parapheur/config.DefaultPath="+defaultFile, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the binary did.
type result struct {
	code           int
	stdout, stderr string
}

// parapheur runs the binary with args and exactly the environment env.
func parapheur(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running parapheur %s: %v", strings.Join(args, " "), err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

func TestHelpOfEveryCommand(t *testing.T) {
	for _, c := range commands {
		words := strings.Fields(c.name)
		for _, flag := range []string{"--help", "-h"} {
			t.Run(c.name+" "+flag, func(t *testing.T) {
				r := parapheur(t, nil, append(words, flag)...)
				if r.code != exitOK || r.stderr != "" {
					t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
				}
				wantUsage := "usage: parapheur " + c.name
				if !strings.HasPrefix(r.stdout, wantUsage) || !strings.Contains(r.stdout, strings.TrimSpace(c.help)) {
					t.Errorf("help lacks %q or the description:\n%s", wantUsage, r.stdout)
				}
				if c.args != "" && !strings.Contains(strings.SplitN(r.stdout, "\n", 2)[0], c.args) {
					t.Errorf("usage line lacks the arguments %q:\n%s", c.args, r.stdout)
				}
				if strings.Contains(r.stdout, "not implemented") {
					t.Errorf("help ran the command:\n%s", r.stdout)
				}
			})
		}
	}
	// "help COMMAND" is "COMMAND --help".
	r := parapheur(t, nil, "help", "envelope", "show")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "usage: parapheur envelope show [flags] ID") {
		t.Errorf("help envelope show: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestOverview(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		r := parapheur(t, nil, args...)
		if r.code != exitOK || !strings.HasPrefix(r.stdout, "usage: parapheur [--config FILE] COMMAND") {
			t.Errorf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		for _, c := range commands {
			if !strings.Contains(r.stdout, "  "+c.name) {
				t.Errorf("%v: overview does not list %q", args, c.name)
			}
		}
	}
	r := parapheur(t, nil)
	if r.code != exitUsage || !strings.HasPrefix(r.stderr, "usage: parapheur") || r.stdout != "" {
		t.Errorf("no arguments: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = parapheur(t, nil, "envelope", "--help")
	if r.code != exitOK || !strings.Contains(r.stdout, "envelope remind ID") || strings.Contains(r.stdout, "seal") {
		t.Errorf("envelope --help: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"sign"}, `parapheur: unknown command "sign"`},
		{[]string{"envelope"}, "parapheur envelope: missing subcommand"},
		{[]string{"envelope", "delete", "X"}, `parapheur envelope: unknown subcommand "delete"`},
		{[]string{"ca"}, "parapheur ca: missing subcommand"},
		{[]string{"seal", "in.pdf"}, "parapheur seal: missing arguments: want IN.pdf OUT.pdf"},
		{[]string{"seal", "a.pdf", "b.pdf", "c.pdf"}, "parapheur seal: too many arguments"},
		{[]string{"seal", "a.pdf", "--colour", "b.pdf"}, "parapheur seal: flag provided but not defined: -colour"}, // flags after an argument are read too
		{[]string{"envelope", "show", "E1", "--verify", "E2"}, "parapheur envelope show: too many arguments"},
		{[]string{"verify"}, "parapheur verify: missing arguments: want FILE"},
		{[]string{"envelope", "show"}, "parapheur envelope show: missing arguments: want ID"},
		{[]string{"config", "check", "extra"}, "parapheur config check: too many arguments"},
		{[]string{"serve", "--colour"}, "parapheur serve: flag provided but not defined: -colour"},
		{[]string{"--colour", "serve"}, "parapheur: flag provided but not defined: -colour"},
		{[]string{"demo", "--config", "x.toml"}, "parapheur demo: flag provided but not defined: -config"},
		{[]string{"demo", "--listen", "127.0.0.1:0"}, `parapheur demo: --listen "127.0.0.1:0": want HOST:PORT with a port`},
		{[]string{"demo", "--listen", "8080"}, `parapheur demo: --listen "8080": want HOST:PORT with a port`},
		{[]string{"demo", "--language", "de"}, `parapheur demo: --language "de": want fr or en`},
	} {
		r := parapheur(t, nil, tc.args...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, tc.stderr) || r.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and stderr starting %q", tc.args, r.code, r.stdout, r.stderr, tc.stderr)
		}
	}
}
