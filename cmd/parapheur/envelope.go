package main

var envelopeListCommand = &command{
	name:    "envelope list",
	summary: "list the envelopes",
	help: `
Envelope list prints the envelopes of the store, one a line: id, state,
sender, title, deadline, and the recipients who still have to act.`,
	run: runEnvelopeList,
}

var envelopeShowCommand = &command{
	name:    "envelope show",
	args:    "ID",
	summary: "show an envelope and its audit trail",
	help: `
Envelope show prints envelope ID: its documents with their SHA-256, its steps
and each recipient's state, and its audit trail, whose hash chain it checks.`,
	run: runEnvelopeShow,
}

var envelopeCancelCommand = &command{
	name:    "envelope cancel",
	args:    "ID",
	summary: "cancel an envelope in progress",
	help: `
Envelope cancel ends envelope ID as cancelled, as its sender can by mail or on
the status page: its links stop working for action, and the sender and the
recipients who already acted are told. The cancellation is an audit event.`,
	run: runEnvelopeCancel,
}

var envelopeRemindCommand = &command{
	name:    "envelope remind",
	args:    "ID",
	summary: "remind the pending recipients now",
	help: `
Envelope remind mails a reminder at once to every recipient of envelope ID who
has yet to act, whatever the reminder interval, and records it in the audit
trail.`,
	run: runEnvelopeRemind,
}

// envelopeWork names the work that fills the envelope commands in.
const envelopeWork = "envelope administration, once the store and workflow of issue #2 are in"

func runEnvelopeList(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(0, 0); !ok {
		return code
	}
	return inv.notImplemented(envelopeWork)
}

func runEnvelopeShow(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(1, 1); !ok {
		return code
	}
	return inv.notImplemented(envelopeWork)
}

func runEnvelopeCancel(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(1, 1); !ok {
		return code
	}
	return inv.notImplemented(envelopeWork)
}

func runEnvelopeRemind(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(1, 1); !ok {
		return code
	}
	return inv.notImplemented(envelopeWork)
}
