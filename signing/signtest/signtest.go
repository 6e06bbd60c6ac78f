// Package signtest lets tests outside the signing tree check signed PDFs with
// the independent validators (poppler's pdfsig, qpdf, mupdf's mutool,
// openssl cms, pdfcpu and pdfsign), as the signing packages' own tests do
// with their internal package pdftest: the gateway's end-to-end tests check
// what it signed with the same tools and the same expectations. It also
// starts, for them, an RFC 3161 time-stamp authority on loopback, and gives
// them pdftest's hostile files to attack the gateway with.
package signtest

import (
	"testing"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/internal/pkitest"
	"github.com/parapheur/parapheur/signing/pki"
)

// Expect is what a signed file must show; see Validate.
type Expect = pdftest.Expect

// Validate runs every independent validator on the signed file at path and
// fails t unless each accepts all its signatures (e.Signatures of them,
// their certificates issued by the roots in e.CAFile).
func Validate(t testing.TB, path string, e Expect) {
	t.Helper()
	pdftest.Validate(t, path, e)
}

// Cleanup removes the files the validators left (pdfcpu's configuration);
// call it once the test binary's last validation is done.
func Cleanup() { pdftest.Cleanup() }

// Bomb is pdftest.Bomb: a one-page PDF file of less than a megabyte, one
// of whose streams ("xref", "xref-predictor", "objstm" or "objstms")
// inflates to about inflated bytes.
func Bomb(t testing.TB, inflated int64, where string) []byte {
	t.Helper()
	return pdftest.Bomb(t, inflated, where)
}

// Hostile is pdftest.Hostile: hand-made PDF files, by name, that attack a
// reader with loops, lies and nesting in their page trees.
func Hostile() map[string][]byte { return pdftest.Hostile() }

// TSA is a running RFC 3161 time-stamp authority of a test.
type TSA = pkitest.TSA

// StartTSA starts, on loopback until the test ends, a time-stamp authority
// whose certificate ca issues (naming ca's CRL distribution point, when it
// has one), for tests that run the gateway with tsa.url.
func StartTSA(t testing.TB, ca *pki.CA) *TSA {
	t.Helper()
	return pkitest.StartTSA(t, ca)
}

// Corpus returns unsigned PDFs made by real tools, by name, made once per
// test binary: among them "qpdf-objstm" (object and cross-reference
// streams) and "pdfcpu-form" (an AcroForm with fields); see the list in
// package pdftest.
func Corpus(t testing.TB) map[string]string {
	t.Helper()
	return pdftest.Corpus(t)
}

// SignWithPdfsign signs the PDF in into out with digitorus/pdfsign, an
// implementation other than the gateway's, with a certificate of ca: a
// document someone signed before submitting it.
func SignWithPdfsign(t testing.TB, ca *pki.CA, in, out string) {
	t.Helper()
	pdftest.SignWithPdfsign(t, ca, in, out)
}
