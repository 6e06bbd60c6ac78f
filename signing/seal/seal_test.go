package seal_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/internal/pkitest"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/seal"
	tsaclient "github.com/parapheur/parapheur/signing/tsa"
	"github.com/parapheur/parapheur/signing/verify"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pdftest.Cleanup()
	os.Exit(code)
}

// installation runs `ca init` in a temporary directory.
func installation(t *testing.T, crlURL, ocspURL string) (dir string, kp *pki.KeyPair) {
	t.Helper()
	dir = t.TempDir()
	if err := pki.InitCA(dir, pki.InitOptions{Organisation: "Mairie de Test", Country: "FR", Passphrase: "correct horse", CRLURL: crlURL, OCSPURL: ocspURL}); err != nil {
		t.Fatal(err)
	}
	kp, err := pki.LoadSeal(dir, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	return dir, kp
}

func TestSealBB(t *testing.T) {
	dir, kp := installation(t, "", "")
	out := filepath.Join(t.TempDir(), "sealed.pdf")
	if err := seal.File(context.Background(), pdftest.Corpus(t)["ps2pdf"], out, seal.Options{Seal: kp, Reason: "Scellement"}); err != nil {
		t.Fatal(err)
	}
	pdftest.Validate(t, out, pdftest.Expect{Signatures: 1, CAFile: filepath.Join(dir, pki.CACertFile)})
	r := verifyFile(t, dir, out)
	s := r.Signatures[0]
	if r.ExitCode() != verify.ExitValid || s.Level != verify.LevelBB || !s.IssuedByCA || s.Signer != "Mairie de Test seal" || s.ChangedAfter {
		t.Errorf("report:\n%s", r.Text(true))
	}
}

// verifyFile verifies path against the CA of the installation in dir.
func verifyFile(t *testing.T, dir, path string) *verify.Report {
	t.Helper()
	ca, err := pki.LoadCACert(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := verify.File(path, ca)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSealBLTA(t *testing.T) {
	crl, tsa, dir, kp := revocableInstallation(t)
	ca, err := pki.LoadCA(dir, "correct horse")
	if err != nil {
		t.Fatal(err)
	}

	files := maps.Clone(pdftest.Corpus(t))
	// A real-world document this project did not make: the JPEG standard
	// from pdfcpu's test data.
	files["itu-t81"] = pdftest.BenchmarkPDFs(t)["1MB"]
	for _, src := range []string{"qpdf-classic", "qpdf-objstm", "pdfcpu-form", "itu-t81"} {
		t.Run(src, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "sealed.pdf")
			var warnings []string
			err := seal.File(context.Background(), files[src], out, seal.Options{
				Seal: kp, TSAURL: tsa.URL, Reason: "Scellement",
				Warn: func(err error) { warnings = append(warnings, err.Error()) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) > 0 {
				t.Errorf("warnings: %v", warnings)
			}
			pdftest.Validate(t, out, pdftest.Expect{Signatures: 2, DocTimestamps: 1, CAFile: filepath.Join(dir, pki.CACertFile)})
			r, err := verify.File(out, ca.Cert)
			if err != nil {
				t.Fatal(err)
			}
			// The seal's certificate and CA, the TSA's, the CA's CRL, and
			// the OCSP answers for the seal's and the TSA's certificates.
			if len(r.Signatures) != 2 || !r.HasDSS || r.DSSCerts != 3 || r.DSSCRLs != 1 || r.DSSOCSPs != 2 || r.ExitCode() != verify.ExitValid {
				t.Fatalf("report:\n%s", r.Text(true))
			}
			s, dts := r.Signatures[0], r.Signatures[1]
			if s.Level != verify.LevelBLTA || !s.TimeStamped || !s.IssuedByCA || !s.ChangedAfter {
				t.Errorf("seal signature: %+v\n%s", s, r.Text(true))
			}
			if dts.Level != verify.LevelDocTimestamp || !dts.CoversWholeFile || dts.Signer != "Test TSA" {
				t.Errorf("document time-stamp: %+v\n%s", dts, r.Text(true))
			}
			t.Logf("parapheur verify report:\n%s", r.Text(true))
			if !strings.Contains(r.Text(true), "VALID: all 2 signature(s) intact") {
				t.Errorf("text report:\n%s", r.Text(true))
			}
		})
	}
	if crl.Fetched.Load() == 0 || crl.OCSP.Asked.Load() == 0 || tsa.Requests.Load() == 0 {
		t.Errorf("CRL fetched %d times, OCSP responder asked %d times, TSA asked %d times", crl.Fetched.Load(), crl.OCSP.Asked.Load(), tsa.Requests.Load())
	}
}

// TestSealMakesEveryoneLongTerm: the seal's /DSS holds the validation data
// of the signatures made before it too, with their time-stamps' (a signer's
// one-time certificate, its CRL, the TSA's certificate), so that the
// document time-stamp makes every signature B-LTA, not the seal alone.
func TestSealMakesEveryoneLongTerm(t *testing.T) {
	crl, tsa, dir, kp := revocableInstallation(t)
	ca, err := pki.LoadCA(dir, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	ca.CRLURL, ca.OCSPURL = crl.URL, crl.OCSP.URL
	signer, err := ca.IssueOneTime("Sophie Première", "sophie@example.com", 0)
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.ReadFile(pdftest.Corpus(t)["qpdf-classic"])
	if err != nil {
		t.Fatal(err)
	}
	var signed, sealed bytes.Buffer
	if err := pades.Sign(context.Background(), in, &signed, pades.Options{Signer: pades.Signer{Key: signer.Key, Chain: signer.Chain},
		Name: "Sophie Première", TSA: &tsaclient.Client{URL: tsa.URL}}); err != nil {
		t.Fatal(err)
	}
	if err := seal.Seal(context.Background(), signed.Bytes(), &sealed, seal.Options{Seal: kp, TSAURL: tsa.URL, Reason: "Scellement"}); err != nil {
		t.Fatal(err)
	}
	r, err := verify.Verify(sealed.Bytes(), ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	// The seal's certificate, the CA, the TSA's and the signer's; the
	// CA's CRL.
	if len(r.Signatures) != 3 || r.DSSCerts != 4 || r.DSSCRLs != 1 || r.ExitCode() != verify.ExitValid {
		t.Fatalf("report:\n%s", r.Text(true))
	}
	for _, s := range r.Signatures[:2] {
		if s.Level != verify.LevelBLTA {
			t.Errorf("%s's signature is %s, want %s:\n%s", s.Signer, s.Level, verify.LevelBLTA, r.Text(true))
		}
	}
	path := filepath.Join(t.TempDir(), "sealed.pdf")
	if err := os.WriteFile(path, sealed.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	pdftest.Validate(t, path, pdftest.Expect{Signatures: 3, DocTimestamps: 1, CAFile: filepath.Join(dir, pki.CACertFile)})
}

// revocation is a CRL distribution point and an OCSP responder for one CA.
type revocation struct {
	*pkitest.CRLServer
	OCSP *pkitest.OCSPResponder
}

// revocableInstallation runs `ca init` for certificates that name a CRL
// and an OCSP responder, both started, and a TSA whose certificate the
// CA issues.
func revocableInstallation(t *testing.T) (revocation, *pkitest.TSA, string, *pki.KeyPair) {
	t.Helper()
	r := revocation{pkitest.StartCRL(t), pkitest.StartOCSP(t)}
	dir, kp := installation(t, r.URL, r.OCSP.URL)
	ca, err := pki.LoadCA(dir, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	ca.CRLURL, ca.OCSPURL = r.URL, r.OCSP.URL
	r.CA.Store(ca)
	r.OCSP.CA.Store(ca)
	return r, pkitest.StartTSA(t, ca), dir, kp
}

// TestSealRevoked expects no seal, and an error that says which
// certificate is revoked and who says so, when the CRL or the OCSP
// responder declares the seal's certificate revoked.
func TestSealRevoked(t *testing.T) {
	for _, by := range []string{"CRL", "OCSP"} {
		t.Run(by, func(t *testing.T) {
			crl, tsa, _, kp := revocableInstallation(t)
			source := crl.URL
			if by == "OCSP" {
				crl.OCSP.Revoke(kp.Chain[0])
				source = crl.OCSP.URL
			} else {
				crl.Revoke(kp.Chain[0])
			}
			out := filepath.Join(t.TempDir(), "sealed.pdf")
			err := seal.File(context.Background(), pdftest.Corpus(t)["qpdf-objstm"], out, seal.Options{Seal: kp, TSAURL: tsa.URL})
			var revoked *pki.RevokedError
			if !errors.As(err, &revoked) || revoked.Source != source || !strings.Contains(err.Error(), "Mairie de Test seal") {
				t.Fatalf("sealing with a revoked certificate: %v", err)
			}
			leftovers(t, filepath.Dir(out))
			t.Log(err)
		})
	}
}

// TestSealInMemory expects Seal, which holds the document in buffers
// between its steps where File uses temporary files, to make the same
// B-LTA seal.
func TestSealInMemory(t *testing.T) {
	_, tsa, dir, kp := revocableInstallation(t)
	in, err := os.ReadFile(pdftest.Corpus(t)["qpdf-objstm"])
	if err != nil {
		t.Fatal(err)
	}
	var sealed bytes.Buffer
	if err := seal.Seal(context.Background(), in, &sealed, seal.Options{Seal: kp, TSAURL: tsa.URL}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "sealed.pdf")
	if err := os.WriteFile(out, sealed.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r := verifyFile(t, dir, out)
	if len(r.Signatures) != 2 || r.Signatures[0].Level != verify.LevelBLTA || !r.HasDSS || r.ExitCode() != verify.ExitValid {
		t.Fatalf("report:\n%s", r.Text(true))
	}
}

// TestFileOutput expects File to leave OUT as it was and nothing else in
// its directory when sealing fails, and to give the sealed file the
// permissions os.Create gives (not a temporary file's 0600).
func TestFileOutput(t *testing.T) {
	_, kp := installation(t, "", "")
	junk := filepath.Join(t.TempDir(), "junk.pdf")
	if err := os.WriteFile(junk, []byte(strings.Repeat("%PDF-1.7 but not quite\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	out := filepath.Join(outDir, "sealed.pdf")
	if err := seal.File(context.Background(), junk, out, seal.Options{Seal: kp}); err == nil {
		t.Fatal("sealed a file that is not a PDF")
	}
	leftovers(t, outDir)
	if err := os.WriteFile(out, []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := seal.File(context.Background(), junk, out, seal.Options{Seal: kp}); err == nil {
		t.Fatal("sealed a file that is not a PDF")
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "kept" {
		t.Errorf("OUT after a failed seal: %q, %v; want it as it was", b, err)
	}
	leftovers(t, outDir, "sealed.pdf")

	if err := seal.File(context.Background(), pdftest.Corpus(t)["qpdf-classic"], out, seal.Options{Seal: kp}); err != nil {
		t.Fatal(err)
	}
	leftovers(t, outDir, "sealed.pdf")
	ref := filepath.Join(outDir, "reference")
	f, err := os.Create(ref)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer os.Remove(ref)
	want, err := os.Stat(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode() != want.Mode() {
		t.Errorf("sealed file's mode %v, want %v as os.Create gives", got.Mode(), want.Mode())
	}
}

// leftovers fails t when dir holds other files than want.
func leftovers(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, want) {
		t.Errorf("%s holds %q, want %q", dir, names, want)
	}
}

// TestFileStreams expects File not to hold the document in memory: it is
// streamed from the input file to the output file (see pades.SignFile),
// so the heap grows by much less than the 21 MB document sealed.
func TestFileStreams(t *testing.T) {
	_, kp := installation(t, "", "")
	in := pdftest.BenchmarkPDFs(t)["21MB"]
	st, err := os.Stat(in)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "sealed.pdf")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := seal.File(context.Background(), in, out, seal.Options{Seal: kp}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	if allocated > uint64(st.Size())/4 {
		t.Errorf("sealing a %d-byte file allocated %d bytes, want under a quarter of it", st.Size(), allocated)
	}
	t.Logf("sealing a %d-byte file allocated %d bytes", st.Size(), allocated)
}
