package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
	"github.com/parapheur/parapheur/signing/pki"
)

var configCheckCommand = &command{
	name:    "config check",
	summary: "check the configuration",
	help: `
Config check reads the configuration file and the PARAPHEUR_* environment
variables as serve would, reads the secrets of the _file keys, and checks every
key without connecting anywhere, except that with imap.auth or smtp.auth =
"oauth2" it asks the identity platform for an access token. It reads the keys
in keys.dir with keys.passphrase as serve does, unless there are none yet:
"parapheur ca init" makes them, as the systemd unit does at the first start.
It prints
"config OK: FILE", or every problem on its own line, naming the key and what is
wrong, and then exits 1. Secrets are never printed.`,
	run: runConfigCheck,
}

func runConfigCheck(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(0, 0); !ok {
		return code
	}
	path := *inv.configPath
	name := path
	if name == "" {
		name = "(environment only)"
	}
	cfg, err := config.Load(path, inv.environ)
	if err == nil {
		err = checkOAuth2(inv.context, cfg, path)
	}
	if err == nil {
		err = checkKeys(cfg, path)
	}
	var cerr *config.Error
	switch {
	case errors.As(err, &cerr):
		for _, p := range cerr.Problems {
			fmt.Fprintln(inv.stdout, p)
		}
		fmt.Fprintf(inv.stderr, "parapheur config check: %s: %d problem(s)\n", name, len(cerr.Problems))
		return exitFailure
	case err != nil:
		fmt.Fprintf(inv.stderr, "parapheur config check: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(inv.stdout, "config OK: %s\n", name)
	return exitOK
}

// checkKeys reads the keys as serve does, so that a missing passphrase or
// a wrong one shows now. A keys.dir without keys yet is not checked: "ca
// init" makes them, as the systemd unit does at the first start.
func checkKeys(cfg *config.Config, path string) error {
	problem := func(key, reason string) error {
		return &config.Error{Path: path, Problems: []config.Problem{{Key: key, Reason: reason}}}
	}
	if cfg.Keys.Passphrase == "" {
		return problem("keys.passphrase", passphraseRequired)
	}
	if _, err := os.Stat(filepath.Join(cfg.Keys.Dir, pki.CACertFile)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if _, _, _, err := loadKeys(cfg); err != nil {
		return problem("keys.dir", err.Error())
	}
	return nil
}

// checkOAuth2 gets a token for each OAuth2 login, so that a wrong secret, key or
// permission shows now rather than in the gateway's log.
func checkOAuth2(ctx context.Context, cfg *config.Config, path string) error {
	sources, err := newOAuthSources(cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err = sources.check(ctx)
	}
	if err == nil {
		return nil
	}
	var problems []config.Problem
	// oauth's errors start with the key to fix when there is one: "oauth2.tenant: required…"
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimPrefix(line, "oauth2: ")
		key, reason, ok := strings.Cut(line, ": ")
		if !ok || !strings.HasPrefix(key, "oauth2.") {
			key, reason = "oauth2", line
		}
		problems = append(problems, config.Problem{Key: key, Reason: reason})
	}
	return &config.Error{Path: path, Problems: problems}
}
