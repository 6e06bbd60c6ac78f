package main

var sealCommand = &command{
	name:    "seal",
	args:    "IN.pdf OUT.pdf",
	summary: "apply the organisation's seal to a PDF",
	help: `
Seal applies the organisation's seal (the seal key and certificate in keys.dir)
to IN.pdf and writes the result to OUT.pdf, as an incremental update that keeps
every earlier signature valid. With tsa.url configured the seal is timestamped
and carries its validation data (PAdES B-LTA); without, it is PAdES B-B.`,
	run: runSeal,
}

func runSeal(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(2, 2); !ok {
		return code
	}
	return inv.notImplemented("signing engine, issue #3")
}
