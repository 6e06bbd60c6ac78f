package main

var serveCommand = &command{
	name:    "serve",
	summary: "run the gateway from the configuration",
	help: `
Serve runs the whole gateway from the configuration: it polls the IMAP mailbox
for submissions (one replica at a time holds the poller lease), sends the mail
of the outbox over SMTP, serves the signing pages, the JSON API, /verify,
/metrics, /healthz and /readyz on the listen address, and sends reminders and
expires envelopes on time. Run "parapheur config check" first; serve refuses a
configuration with any problem.`,
	run: runServe,
}

func runServe(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(0, 0); !ok {
		return code
	}
	return inv.notImplemented("the gateway: mail ingestion #4, sending #5 and the web pages")
}
