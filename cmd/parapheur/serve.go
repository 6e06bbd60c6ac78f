package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
)

var serveCommand = &command{
	name:    "serve",
	summary: "run the gateway from the configuration",
	help: `
Serve runs the gateway from the configuration: it polls the IMAP mailbox for
submissions (one replica at a time holds the poller lease), turns them into
envelopes or refusals, sends the mail of the outbox over SMTP (and one-time
codes by SMS when sms.url is set), sends reminders and expires envelopes on
time, and serves /metrics, /healthz and /readyz on the listen address. It
completes every envelope whose steps are all done: the organisation's seal on
each document (PAdES B-LTA with tsa.url, else B-B), the certificate of
completion, sealed too, then the final mails; a completion that fails is
retried until it succeeds (see "parapheur envelope list --stuck"). Serve does
not start without the signing CA and the seal of "parapheur ca init". Run
"parapheur config check" first; serve refuses a configuration with any
problem. Logs go to standard error, JSON or text (log.format) from log.level
up; they carry envelope ids, never link tokens or codes. With mail.paused
(PARAPHEUR_MAIL_PAUSED=true), serve sends no mail: the mails wait in the
outbox until a serve without it sends them.

On SIGTERM or SIGINT, serve stops taking work (the mailbox, the outbox, the
completions and the timers), lets the requests in flight finish (a signature
being made is completed, never cut half-way), hands the outbox items it holds
back to the queue and the poller lease to the other replicas, then exits; it
waits at most 30 s for the work in flight. /readyz answers 200 once the
store, the IMAP server and the SMTP relay answer, else 503 naming the part
that does not.`,
	run: runServe,
}

func runServe(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(0, 0); !ok {
		return code
	}
	cfg, err := config.Load(*inv.configPath, inv.environ)
	var cerr *config.Error
	if errors.As(err, &cerr) {
		for _, p := range cerr.Problems {
			fmt.Fprintf(inv.stderr, "parapheur serve: %s\n", p)
		}
		return exitFailure
	}
	if err != nil {
		return inv.fail(err)
	}
	log := newLogger(inv.stderr, cfg.Log)
	if os.Getenv("GOMEMLIMIT") == "" {
		// A mail is held whole while it is handled, its decoded documents
		// beside it. Left to GOGC alone, the heap doubles past that after
		// each large mail; a soft limit of twice the largest mail makes
		// the collector work harder instead, which keeps the process near
		// four times limits.max_message_bytes whatever arrives
		// (parapheur-bench flood, 20 mails of 49 MB at once: 4.1–4.3
		// times, peak RSS 216–226 MB, 7 December 2026). GOMEMLIMIT, when
		// set, decides instead.
		debug.SetMemoryLimit(2 * cfg.Limits.MaxMessageBytes)
	}
	clock, err := testClock(inv.environ)
	if err != nil {
		return inv.fail(err)
	}
	g, err := newGateway(inv.ctx(), cfg, log)
	if err != nil {
		return inv.fail(err)
	}
	g.crashAfter = crashAfter(inv.environ, inv.stderr)
	g.engine.Clock = clock
	if err := g.run(inv.ctx()); err != nil {
		return inv.fail(err)
	}
	return exitOK
}

// newLogger is the log of serve as configured.
func newLogger(w io.Writer, cfg config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Leveled}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
