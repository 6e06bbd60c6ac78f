// Command parapheur-bench measures the gateway as a whole process against real
// mail servers on this machine: it starts a private Postfix and Dovecot (package
// deploy/testrig), and for -store redis a private redis-server, runs "parapheur
// ca init" and "parapheur serve" the way an operator does, and mails
// submissions to the gateway through Postfix.
//
//	parapheur-bench latency [-n 60] [-interval 250ms]
//	    one submission at a time; for each, the time from Postfix accepting
//	    the submission to the signer's invitation landing in her mailbox
//	    (the Maildir, not an IMAP client, so no client-side delay is counted):
//	    p50, p90, p99 and max.
//	parapheur-bench flood [-n 20] [-size 36000000] [-kind pdf|junk|stranger]
//	    n large submissions at once (a valid PDF of -size bytes, a non-PDF
//	    attachment, or a PDF from a sender who may not submit); reports the
//	    serve process's peak resident memory (VmHWM) against
//	    limits.max_message_bytes once every mail has left the inbox.
//	parapheur-bench signers [-n 1000] [-workers 200] [-views 20000] [-signs 600] [-view page|api] [-rate 0] [-raw 50] [-pdf FILE]
//	    the signing door in this process, over HTTP on loopback, on -store
//	    bolt or redis: n envelopes of one signer each on a 1 MB PDF (pdfcpu's
//	    itu-t81.pdf by default); the raw pades.SignFile time of that PDF,
//	    one at a time; then -workers signers at once load their signing
//	    pages (views/s), then ask for a code, read it from the outbox and
//	    sign (p50, p99 of the sign request), each as soon as it is done or,
//	    with -rate, that many starting a second.
//	parapheur-bench completion [-n 100] [-workers 10] [-rate 2] [-pdf FILE] [-attach-limit 10485760] [-memory]
//	    the completion in this process as serve runs it, on -store bolt or
//	    redis: n envelopes of one signer each on the 1 MB PDF, signed over
//	    HTTP at -rate a second, completed by the completion worker (seal,
//	    certificate of completion), their final mails handed by the mail
//	    sender to a private Postfix; from the audit trails, the time from
//	    each envelope's last signature to its last final mail accepted by
//	    Postfix: p50, p99, max. With -memory the completion starts once
//	    every envelope is signed, and the peak live heap and the peak
//	    resident set it took, beyond what the process held before, are
//	    reported against the document's size.
//	parapheur-bench ingest [-n 2000] [-store bolt|redis] [-sending] [-serve-cpus LIST]
//	    intake alone: n submissions with a 100 KB PDF of their own and one
//	    signer, appended to a folder of the gateway's mailbox; the raw
//	    batched fetch+move of those mails on the same Dovecot (mails/s), then
//	    the gateway's rate, with mail.paused, from their move into its inbox
//	    to an empty inbox (envelopes/s), checking on /metrics that each made
//	    an envelope and queued its two mails; then the raw Postfix rate
//	    of small mails, and serve restarted without mail.paused, timed
//	    until Postfix has accepted the queued mails (the sender alone,
//	    against that rate). With -sending, mail is not
//	    paused: the raw Postfix acceptance rate of small mails over as many
//	    connections as serve's mail sender keeps is measured too, and the
//	    gateway's rate runs until Postfix has accepted every envelope's
//	    acknowledgement and invitation, against half that raw rate.
//
//	parapheur-bench load [-n 200] [-workers 200] [-rate 0] [-store bolt|redis] [-replicas 1] [-pdf FILE] [-serve-cpus LIST]
//	    the whole gateway under load, in one run: first the floors, on the
//	    same private Postfix and Dovecot: the raw Postfix acceptance rate of
//	    a plain SMTP client over as many connections as serve's mail sender
//	    keeps (small mails, then mails of a submission's size), and the raw
//	    Dovecot fetch+move rate of those submission-sized mails in the
//	    poller's batches; then n submissions of the 1 MB PDF mailed through
//	    Postfix (at -rate a second, or as fast as it takes them), each with
//	    a signer of its own, while -workers signers at once read their
//	    invitation and code from their mailbox (the Maildir) and sign over
//	    the JSON API. It reports the throughput (envelopes/s from the first
//	    submission to the last final mail in a signer's mailbox) against
//	    what the Postfix floor allows, p50, p90, p99 and max of mail ->
//	    invitation, of the sign request and of last signature -> final mail,
//	    the peak RSS and the processor time of every serve process, and the
//	    load average, beside the targets. -replicas runs that many serve
//	    processes on one Redis.
//
// By default every process shares every CPU, and the figures say how the gateway does on a
// box it shares with its mail servers. With -serve-cpus, as in
//
//	taskset -c 0 bin/parapheur-bench ingest -serve-cpus 1
//
// serve and redis-server run on the CPUs listed, and the bench, Postfix and Dovecot on the
// ones the bench was confined to: the floors are then those of mail servers with CPUs of
// their own, as on a deployment where the MTA is another machine, and the gateway's figures
// say whether it keeps them busy.
//
// latency, flood, completion, ingest and load must run as root (the Postfix master needs it) and run
// the binary named by -parapheur ("make bench-mail" builds it to
// bin/parapheur first); signers needs neither. Nothing leaves the loopback
// interface.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	scenario := os.Args[1]
	fs := flag.NewFlagSet(scenario, flag.ExitOnError)
	var o options
	fs.StringVar(&o.binary, "parapheur", "bin/parapheur", "the parapheur `BINARY` to run")
	fs.StringVar(&o.store, "store", "bolt", "the store: bolt or redis")
	fs.IntVar(&o.n, "n", 0, "how many submissions (default 60 for latency, 20 for flood, 2000 for ingest, 200 for load), or envelopes (default 1000 for signers)")
	fs.BoolVar(&o.verbose, "v", false, "print the gateway's log when done")
	fs.StringVar(&o.serveCPUs, "serve-cpus", "", "ingest, load: run serve and redis-server on these `CPUS` only (taskset -c list); run the bench itself under taskset -c with the other CPUs, so that Postfix and Dovecot, which it starts, stay there")
	fs.IntVar(&o.replicas, "replicas", 1, "load: how many serve processes share the store (more than one needs -store redis)")
	interval := fs.Duration("interval", 250*time.Millisecond, "latency: the pause between two submissions")
	pdf := fs.String("pdf", "", "latency: the `PDF` to submit (default mailin/testdata/doc1.pdf); signers, completion, load: the PDF to sign (default pdfcpu's itu-t81.pdf, 1 MB)")
	var so signersOptions
	fs.IntVar(&so.workers, "workers", 200, "signers, load: how many signers act at once (completion: at most, default 10)")
	fs.IntVar(&so.views, "views", 20000, "signers: how many signing-page views in all")
	fs.IntVar(&so.signs, "signs", 600, "signers: how many signatures in all (at most -n)")
	fs.StringVar(&so.view, "view", "page", "signers: what a view loads: page (GET /s/TOKEN) or api (GET /api/v1/sign/TOKEN)")
	fs.IntVar(&so.raw, "raw", 50, "signers: how many raw pades.SignFile runs to time")
	fs.Float64Var(&so.rate, "rate", 0, "signers: how many signers start their code-then-sign flow per second (0: each worker starts its next at once; completion: default 2); load: how many submissions are mailed per second (0: as fast as Postfix takes them)")
	fs.BoolVar(&so.memory, "memory", false, "completion: start the completion once every envelope is signed, and report the peak heap and resident set it took")
	fs.StringVar(&so.profile, "profile", "", "signers: write CPU, block and mutex profiles of the code-then-sign phase into `DIR` (cpu.pprof, block.pprof, mutex.pprof)")
	fs.Int64Var(&so.attachLimit, "attach-limit", 10<<20, "completion: mail.attachment_limit_bytes, above which the final mail carries the download link alone")
	size := fs.Int("size", 36_000_000, "flood: the attachment size in bytes (base64 makes the mail 4/3 of it)")
	sending := fs.Bool("sending", false, "ingest: send the mails too (mail not paused), against the raw Postfix rate of small mails")
	kind := fs.String("kind", "pdf", "flood: pdf, junk (a non-PDF attachment) or stranger (a sender who may not submit)")
	fs.Parse(os.Args[2:])

	var err error
	switch scenario {
	case "latency":
		o.n = orDefault(o.n, 60)
		err = latency(o, orDefaultPath(*pdf, "mailin/testdata/doc1.pdf"), *interval)
	case "flood":
		o.n = orDefault(o.n, 20)
		err = flood(o, *size, *kind)
	case "signers":
		o.n = orDefault(o.n, 1000)
		var path string
		if path, err = signingPDF(*pdf); err == nil {
			err = signers(o, path, so)
		}
	case "ingest":
		o.n = orDefault(o.n, 2000)
		err = ingest(o, *sending)
	case "completion":
		o.n = orDefault(o.n, 100)
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["workers"] {
			so.workers = 10
		}
		if !set["rate"] {
			so.rate = 2
		}
		var path string
		if path, err = signingPDF(*pdf); err == nil {
			err = completions(o, path, so)
		}
	case "load":
		o.n = orDefault(o.n, 200)
		var path string
		if path, err = signingPDF(*pdf); err == nil {
			err = load(o, path, loadOptions{signers: so.workers, rate: so.rate})
		}
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parapheur-bench:", err)
		os.Exit(1)
	}
}

// options are the flags every scenario shares.
type options struct {
	binary  string
	store   string
	n       int
	verbose bool
	// replicas is how many serve processes share the store (load only).
	replicas int
	// serveCPUs, when set, confines serve and redis-server to these CPUs (taskset).
	serveCPUs string
	// env holds PARAPHEUR_* settings for serve over the ones every scenario
	// gives it.
	env []string
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: parapheur-bench latency|flood|signers|completion|ingest|load [flags]; parapheur-bench latency -h for the flags")
	os.Exit(2)
}

// orDefault returns n, or def when n is not set.
func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// signingPDF returns path, or when it is not set the 1 MB PDF the signing scenarios
// default to: pdfcpu's itu-t81.pdf.
func signingPDF(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	return pdfcpuTestPDF("itu-t81.pdf")
}

// orDefaultPath returns path, or def when path is not set.
func orDefaultPath(path, def string) string {
	if path == "" {
		return def
	}
	return path
}

var errTimeout = errors.New("timed out")
