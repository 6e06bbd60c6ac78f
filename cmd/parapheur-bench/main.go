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
//
// It must run as root (the Postfix master needs it) and runs the binary named
// by -parapheur ("make bench-mail" builds it to bin/parapheur first). Nothing
// leaves the loopback interface.
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
	fs.IntVar(&o.n, "n", 0, "how many submissions (default 60 for latency, 20 for flood)")
	fs.BoolVar(&o.verbose, "v", false, "print the gateway's log when done")
	interval := fs.Duration("interval", 250*time.Millisecond, "latency: the pause between two submissions")
	pdf := fs.String("pdf", "mailin/testdata/doc1.pdf", "latency: the `PDF` to submit")
	size := fs.Int("size", 36_000_000, "flood: the attachment size in bytes (base64 makes the mail 4/3 of it)")
	kind := fs.String("kind", "pdf", "flood: pdf, junk (a non-PDF attachment) or stranger (a sender who may not submit)")
	fs.Parse(os.Args[2:])

	var err error
	switch scenario {
	case "latency":
		o.n = orDefault(o.n, 60)
		err = latency(o, *pdf, *interval)
	case "flood":
		o.n = orDefault(o.n, 20)
		err = flood(o, *size, *kind)
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
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: parapheur-bench latency|flood [flags]; parapheur-bench latency -h for the flags")
	os.Exit(2)
}

// orDefault returns n, or def when n is not set.
func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

var errTimeout = errors.New("timed out")
