package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pdfsign "github.com/digitorus/pdfsign/sign"
	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/internal/pkitest"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/tsa"
	"github.com/parapheur/parapheur/signing/verify"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pdftest.Cleanup()
	os.Exit(code)
}

func newCA(t testing.TB, name string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(pkix.Name{CommonName: name}, 24*time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func sign(t testing.TB, ca *pki.CA, in []byte, name string, ts pades.Timestamper) []byte {
	t.Helper()
	kp, err := ca.IssueOneTime(name, strings.ToLower(strings.ReplaceAll(name, " ", "."))+"@example.org", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := pades.Sign(context.Background(), in, &out, pades.Options{Signer: pades.Signer{Key: kp.Key, Chain: kp.Chain}, Reason: "Lu et approuvé", TSA: ts}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestReport(t *testing.T) {
	ours, other := newCA(t, "Gateway CA"), newCA(t, "Someone else's CA")
	tsaSrv := pkitest.StartTSA(t, ours)
	in, err := os.ReadFile(pdftest.Corpus(t)["qpdf-objstm"])
	if err != nil {
		t.Fatal(err)
	}
	one := sign(t, ours, in, "Alice Martin", nil)
	two := sign(t, other, one, "Bob Durand", &tsa.Client{URL: tsaSrv.URL})

	r, err := verify.Verify(two, ours.Cert)
	if err != nil {
		t.Fatal(err)
	}
	text := r.Text(true)
	if len(r.Signatures) != 2 || r.ExitCode() != verify.ExitValid {
		t.Fatalf("report:\n%s", text)
	}
	a, b := r.Signatures[0], r.Signatures[1]
	if a.Signer != "Alice Martin" || a.Email != "alice.martin@example.org" || a.Level != verify.LevelBB || !a.IssuedByCA || !a.ChangedAfter || a.LaterSignatures != 1 || a.TimeStamped {
		t.Errorf("first signature: %+v", a)
	}
	if b.Signer != "Bob Durand" || b.Level != verify.LevelBT || b.IssuedByCA || b.ChangedAfter || !b.CoversWholeFile || !b.TimeStamped {
		t.Errorf("second signature: %+v", b)
	}
	if time.Since(b.Time) > time.Minute || a.Time.IsZero() {
		t.Errorf("times: %v, %v", a.Time, b.Time)
	}
	for _, want := range []string{"Alice Martin <alice.martin@example.org>", "this gateway's CA", "not this gateway's CA", "B-T", "time-stamped", "1 later signature(s) added after it", "VALID: all 2",
		"UTC (this gateway's clock)"} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q:\n%s", want, text)
		}
	}
	// Without the CA, the gateway's signature is not known as its own:
	// its time is the signer's claim.
	if text := r.Text(false); !strings.Contains(text, "UTC (claimed by the signer)") || strings.Contains(text, "this gateway's clock") {
		t.Errorf("text report without the CA:\n%s", text)
	}

	// One changed byte in the signed range breaks both signatures.
	altered := append([]byte(nil), two...)
	altered[len(in)/2] ^= 1
	r, err = verify.Verify(altered, ours.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitCode() != verify.ExitInvalid || r.Signatures[0].Intact || r.Signatures[1].Intact {
		t.Errorf("altered file:\n%s", r.Text(true))
	}
	if !strings.Contains(r.Text(true), "INVALID") {
		t.Errorf("text report of the altered file:\n%s", r.Text(true))
	}

	// Appending an update that is not a signature leaves both intact but
	// shows the change.
	appended := append(append([]byte(nil), two...), []byte("\n% a comment after the last signature\n")...)
	r, err = verify.Verify(appended, ours.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitCode() != verify.ExitValid || !r.Signatures[1].ChangedAfter {
		t.Errorf("appended file:\n%s", r.Text(true))
	}
}

func TestNoSignature(t *testing.T) {
	in, err := os.ReadFile(pdftest.Corpus(t)["mutool"])
	if err != nil {
		t.Fatal(err)
	}
	r, err := verify.Verify(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitCode() != verify.ExitInvalid || !strings.Contains(r.Text(false), "no signature") {
		t.Errorf("unsigned file:\n%s", r.Text(false))
	}
}

func TestUnreadable(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":     nil,
		"not a PDF": []byte("GIF89a"),
		"garbage":   []byte("%PDF-1.7\nthis is no PDF body\n%%EOF\n"),
		"nonsense":  bytes.Repeat([]byte("%PDF-1.4 \x00\xff"), 100),
	} {
		t.Run(name, func(t *testing.T) {
			r, err := verify.Verify(data, nil)
			if !errors.Is(err, verify.ErrUnreadable) {
				t.Fatalf("got %v, %v; want ErrUnreadable", r, err)
			}
		})
	}
	if _, err := verify.File(filepath.Join(t.TempDir(), "missing.pdf"), nil); !errors.Is(err, verify.ErrUnreadable) {
		t.Errorf("missing file: %v", err)
	}
}

func TestPdfsignSignature(t *testing.T) {
	ca := newCA(t, "Gateway CA")
	kp, err := ca.IssueOneTime("Other Tool", "other@example.org", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "pdfsign.pdf")
	err = pdfsign.SignFile(pdftest.Corpus(t)["qpdf-classic"], out, pdfsign.SignData{
		Signature:         pdfsign.SignDataSignature{CertType: pdfsign.ApprovalSignature, Info: pdfsign.SignDataSignatureInfo{Name: "Other Tool", Date: time.Now()}},
		Signer:            kp.Key,
		DigestAlgorithm:   crypto.SHA256,
		Certificate:       kp.Chain[0],
		CertificateChains: [][]*x509.Certificate{kp.Chain},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := verify.File(out, ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Signatures) != 1 || !r.Signatures[0].Intact || !r.Signatures[0].IssuedByCA || r.Signatures[0].Signer != "Other Tool" {
		t.Errorf("pdfsign's signature:\n%s", r.Text(true))
	}
}

// Validation data added after the last signature leaves the file valid;
// an update that changes what the document shows (its information, its
// catalog) makes it not valid, though every signature stays intact, and
// says so.
func TestChangedAfterTheLastSignature(t *testing.T) {
	ca := newCA(t, "Gateway CA")
	in, err := os.ReadFile(pdftest.Corpus(t)["qpdf-objstm"])
	if err != nil {
		t.Fatal(err)
	}
	signed := sign(t, ca, in, "Alice Martin", nil)
	var lt bytes.Buffer
	if err := pades.AddDSS(context.Background(), signed, &lt, pades.ValidationData{Certs: []*x509.Certificate{ca.Cert}}, 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		file      []byte
		unsigned  bool
		wantLines []string
	}{
		{"validation data", lt.Bytes(), false, []string{"only validation data (DSS) added after it", "VALID: all 1 signature(s) intact"}},
		{"validation data by hand", pdftest.Update(t, signed, []string{"<</Certs []>>"}, -1, "/DSS NEW 0 R"), false, nil},
		{"document information", pdftest.Update(t, lt.Bytes(), []string{"<</Title (Hacked)>>"}, 0, ""), true,
			[]string{"changes: the file was changed after it, and no signature covers the change", "INVALID: all 1 signature(s) intact, but the file was changed after the last one"}},
		{"catalog", pdftest.Update(t, signed, nil, -1, "/OpenAction << /S /JavaScript /JS (app.alert(1)) >>"), true, nil},
		{"a new object and the DSS", pdftest.Update(t, lt.Bytes(), []string{"<</Type /Annot /Subtype /Text /Contents (x)>>"}, -1, ""), true, nil},
	} {
		r, err := verify.Verify(tc.file, ca.Cert)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		text := r.Text(true)
		if r.ChangedUnsigned != tc.unsigned || r.Valid() == tc.unsigned || !r.Signatures[0].Intact {
			t.Errorf("%s: ChangedUnsigned %v, valid %v; want %v, %v:\n%s", tc.name, r.ChangedUnsigned, r.Valid(), tc.unsigned, !tc.unsigned, text)
		}
		for _, want := range tc.wantLines {
			if !strings.Contains(text, want) {
				t.Errorf("%s: the report lacks %q:\n%s", tc.name, want, text)
			}
		}
	}
}
