package main

import (
	"fmt"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/seal"
)

var sealCommand = &command{
	name:    "seal",
	args:    "IN.pdf OUT.pdf",
	summary: "apply the organisation's seal to a PDF",
	help: `
Seal applies the organisation's seal (the seal key and certificate in keys.dir)
to IN.pdf and writes the result to OUT.pdf, as an incremental update that keeps
every earlier signature valid. With tsa.url configured the seal is timestamped
and carries its validation data (PAdES B-LTA); without, it is PAdES B-B.
OUT.pdf is written under a temporary name in its directory and only takes its
name once complete: a failed seal leaves it as it was. IN.pdf is streamed, not
held in memory, and must not change while it is sealed.`,
	run: runSeal,
}

func runSeal(inv *invocation) int {
	inv.configFlag()
	reason := inv.flags.String("reason", "Sealed by the organisation", "the `REASON` shown in PDF readers")
	if code, ok := inv.parse(2, 2); !ok {
		return code
	}
	cfg, err := config.LoadSections(*inv.configPath, inv.environ, "keys", "tsa", "limits")
	if err != nil {
		return inv.fail(err)
	}
	if err := passphraseGiven(cfg); err != nil {
		return inv.fail(err)
	}
	key, err := pki.LoadSeal(cfg.Keys.Dir, string(cfg.Keys.Passphrase))
	if err != nil {
		return inv.fail(err)
	}
	opts := seal.Options{Seal: key, TSAURL: cfg.TSA.URL, Reason: *reason, MaxInput: cfg.Limits.MaxDocumentBytes,
		Warn: func(err error) { fmt.Fprintf(inv.stderr, "parapheur seal: warning: %v\n", err) }}
	in, out := inv.args[0], inv.args[1]
	if err := seal.File(inv.ctx(), in, out, opts); err != nil {
		return inv.fail(err)
	}
	level := "PAdES B-B"
	if cfg.TSA.URL != "" {
		level = "PAdES B-LTA"
	}
	fmt.Fprintf(inv.stdout, "sealed %s -> %s (%s, %s)\n", in, out, level, key.Chain[0].Subject.CommonName)
	return exitOK
}
