package main

import (
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/verify"
)

var verifyCommand = &command{
	name:    "verify",
	args:    "FILE.pdf",
	summary: "check the signatures of a PDF",
	help: `
Verify lists each signature of FILE.pdf: signer, time, PAdES level, whether it is
intact, whether this gateway's CA (keys.dir) issued it, and whether the file was
changed after it. Without a configured keys.dir it still checks the signatures,
but cannot say which the gateway issued. Exit status: 0 when every signature is
valid, 1 when one is not (or there is none), 2 when the file cannot be read.`,
	run: runVerify,
}

func runVerify(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(1, 1); !ok {
		return code
	}
	var ca *x509.Certificate
	if cfg, err := config.LoadSections(*inv.configPath, inv.environ, "keys"); err == nil && cfg.Keys.Dir != "" {
		ca, _ = pki.LoadCACert(cfg.Keys.Dir) // no CA: the report says so
	}
	report, err := verify.File(inv.args[0], ca)
	if errors.Is(err, verify.ErrUnreadable) {
		fmt.Fprintf(inv.stderr, "parapheur verify: %v\n", err)
		return verify.ExitUnreadable
	}
	if err != nil {
		return inv.fail(err)
	}
	report.WriteText(inv.stdout, ca != nil)
	return report.ExitCode()
}
