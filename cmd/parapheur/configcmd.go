package main

import (
	"errors"
	"fmt"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
)

var configCheckCommand = &command{
	name:    "config check",
	summary: "check the configuration",
	help: `
Config check reads the configuration file and the PARAPHEUR_* environment
variables as serve would, reads the secrets of the _file keys, and checks every
key without connecting anywhere. It prints "config OK: FILE", or every problem
on its own line, naming the key and what is wrong, and then exits 1. Secrets
are never printed.`,
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
	_, err := config.Load(path, inv.environ)
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
