package main

var verifyCommand = &command{
	name:    "verify",
	args:    "FILE.pdf",
	summary: "check the signatures of a PDF",
	help: `
Verify lists each signature of FILE.pdf: the signer, the time, the PAdES level,
whether the signed bytes are intact, whether this gateway's CA issued it (and
for which envelope), and whether the file was changed after it. It exits 0 when
every signature is valid, 1 when any is not, and 2 when the file cannot be
read as a PDF.`,
	run: runVerify,
}

func runVerify(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(1, 1); !ok {
		return code
	}
	return inv.notImplemented("signing engine, issue #3")
}
