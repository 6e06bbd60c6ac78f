package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/parapheur/parapheur/signing/pki"
)

// loadSeal opens the organisation's seal in keys.dir and checks that its
// certificate is valid at now.
func loadSeal(dir, passphrase string, now time.Time) (*pki.KeyPair, error) {
	kp, err := pki.LoadSeal(dir, passphrase)
	if err != nil {
		return nil, fmt.Errorf("the organisation's seal in %s: %w (run \"parapheur ca init\" to make one, or set keys.passphrase)", dir, err)
	}
	cert := kp.Chain[0]
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, fmt.Errorf("the organisation's seal certificate in %s (%s) is valid from %s to %s, not now: seals made with it would not validate; renew it",
			dir, cert.Subject.CommonName, cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339))
	}
	return kp, nil
}

// crashAfterVariable names a test hook: "parapheur serve" with
// PARAPHEUR_TEST_CRASH_AFTER=STEP (a step of package completion:
// sealed, certificate, completed; or stepFinalMail) exits with status
// exitTestCrash right after the completion worker recorded that step, or
// right after the relay accepted a final mail and before its outbox item
// is acknowledged, without any cleanup, as a process killed there would.
// The end-to-end tests use it to check that a completion resumes after a
// crash at each step; it is no setting.
const crashAfterVariable = "PARAPHEUR_TEST_CRASH_AFTER"

// stepFinalMail is the crash point of crashAfterVariable after the relay
// accepted a final mail (workflow.CompletionMail), before its item is
// acknowledged: the item is then sent again, as the same message.
const stepFinalMail = "final-mail"

// exitTestCrash is the exit status of the crash hook.
const exitTestCrash = 86

// crashAfter returns the completion worker's crash hook that the
// environment asks for, or nil.
func crashAfter(environ []string, stderr io.Writer) func(step string) {
	at := environValue(environ, crashAfterVariable)
	if at == "" {
		return nil
	}
	return func(step string) {
		if step == at {
			fmt.Fprintf(stderr, "parapheur serve: %s=%s: exiting after the step %q\n", crashAfterVariable, at, step)
			os.Exit(exitTestCrash)
		}
	}
}

// clockOffsetVariable names a test hook: "parapheur serve" with
// PARAPHEUR_TEST_CLOCK_OFFSET=DURATION (a Go duration, "25h") runs with
// a clock that far ahead of the machine's: the events it records, the
// timers it fires (deadlines, reminders) and the outbox items it claims
// all follow it. The end-to-end tests use it to make an envelope's
// reminder and deadline come without waiting days; it is no setting.
const clockOffsetVariable = "PARAPHEUR_TEST_CLOCK_OFFSET"

// testClock returns the gateway's clock that the environment asks for,
// or nil for the machine's.
func testClock(environ []string) (func() time.Time, error) {
	v := environValue(environ, clockOffsetVariable)
	if v == "" {
		return nil, nil
	}
	offset, err := time.ParseDuration(v)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: want a duration such as 25h", clockOffsetVariable, v)
	}
	return func() time.Time { return time.Now().Add(offset) }, nil
}

// environValue is the last value of the variable name in environ, as
// os.Getenv would give it; "" when unset.
func environValue(environ []string, name string) string {
	var value string
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			value = v
		}
	}
	return value
}
