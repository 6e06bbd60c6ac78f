package main

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/verify"
)

var verifyCommand = &command{
	name:    "verify",
	args:    "FILE",
	summary: "check the signatures of a PDF, or an audit trail's chain",
	help: `
Verify lists each signature of FILE, a PDF: signer, time, PAdES level, whether
it is intact, whether this gateway's CA (keys.dir) issued it, and whether the
file was changed after it. Without a configured keys.dir it still checks the
signatures, but cannot say which the gateway issued. When the PDF embeds an
audit trail (an attachment named audit-*.json, as the completion certificate
does), verify also checks its hash chain.

FILE may also be an audit trail itself (audit-ENVELOPEID.json, as archivists
receive it, or any file that holds a JSON array): verify checks its chain and
names the first event edited, removed, inserted or moved, or prints the number
of events and the head hash. The chain alone cannot show events cut off at its
end: compare the head with the one the certificate states.

Exit status: 0 when every signature is valid and every trail intact, 1 when one
is not (or a PDF has no signature), 2 when the file cannot be read.`,
	run: runVerify,
}

func runVerify(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(1, 1); !ok {
		return code
	}
	file := inv.args[0]
	data, err := os.ReadFile(file)
	if err != nil {
		return inv.unreadable(fmt.Errorf("%w: %v", verify.ErrUnreadable, err))
	}
	if isTrailFile(file, data) {
		return inv.verifyTrail(file, data)
	}
	var ca *x509.Certificate
	if cfg, err := config.LoadSections(*inv.configPath, inv.environ, "keys"); err == nil && cfg.Keys.Dir != "" {
		ca, _ = pki.LoadCACert(cfg.Keys.Dir) // no CA: the report says so
	}
	report, err := verify.Verify(data, ca)
	if errors.Is(err, verify.ErrUnreadable) {
		return inv.unreadable(err)
	}
	if err != nil {
		return inv.fail(err)
	}
	report.WriteText(inv.stdout, ca != nil)
	return report.ExitCode()
}

// isTrailFile tells whether the file to verify is an audit trail: named
// *.json, or a JSON array whatever its name (a PDF starts with %PDF-).
func isTrailFile(name string, data []byte) bool {
	return strings.EqualFold(filepath.Ext(name), ".json") || bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("["))
}

// verifyTrail checks the chain of the audit trail file name holding data.
func (inv *invocation) verifyTrail(name string, data []byte) int {
	recs, err := verify.ReadTrail(data)
	if err != nil {
		return inv.unreadable(fmt.Errorf("%s: %w", name, err))
	}
	t := verify.CheckTrail(filepath.Base(name), recs, nil)
	t.WriteText(inv.stdout)
	if !t.Intact() {
		return verify.ExitInvalid
	}
	return verify.ExitValid
}

// unreadable reports a file verify cannot check at all.
func (inv *invocation) unreadable(err error) int {
	fmt.Fprintf(inv.stderr, "parapheur verify: %v\n", err)
	return verify.ExitUnreadable
}
