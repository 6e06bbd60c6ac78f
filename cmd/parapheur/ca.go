package main

var caInitCommand = &command{
	name:    "ca init",
	summary: "create the signing CA and the seal certificate",
	help: `
"ca init" creates, for a new installation, the signing CA that issues a one-time
certificate to each signer and the organisation's seal key and certificate, and
writes them to keys.dir, the private keys encrypted with keys.passphrase when it
is set. It refuses to overwrite existing keys.`,
	run: runCAInit,
}

func runCAInit(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(0, 0); !ok {
		return code
	}
	return inv.notImplemented("signing engine, issue #3")
}
