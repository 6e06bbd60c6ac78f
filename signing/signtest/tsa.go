package signtest

import (
	"testing"

	"github.com/parapheur/parapheur/signing/internal/pkitest"
	"github.com/parapheur/parapheur/signing/pki"
)

// TSA is an RFC 3161 time-stamp authority on loopback, for the tests of a
// gateway configured with tsa.url.
type TSA = pkitest.TSA

// StartTSA starts a time-stamp authority whose certificate ca issues; it
// stops with the test.
func StartTSA(t testing.TB, ca *pki.CA) *TSA { return pkitest.StartTSA(t, ca) }
