package pdftest

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/digitorus/pdfsign/verify"
	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
)

// Signature is one signature dictionary found in a file's bytes.
type Signature struct {
	// ByteRange is the signed ranges: offset, length, offset, length.
	ByteRange [4]int64
	// DER is /Contents without its zero padding.
	DER []byte
	// DocTimestamp tells an ETSI.RFC3161 document time-stamp.
	DocTimestamp bool
}

var byteRangeRE = regexp.MustCompile(`/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]`)

// Signatures finds the signature dictionaries in data by their /ByteRange,
// independently of the code under test.
func Signatures(t testing.TB, data []byte) []Signature {
	t.Helper()
	var sigs []Signature
	for _, m := range byteRangeRE.FindAllSubmatchIndex(data, -1) {
		var s Signature
		for i := range 4 {
			n, _ := strconv.ParseInt(string(data[m[2+2*i]:m[3+2*i]]), 10, 64)
			s.ByteRange[i] = n
		}
		start, end := s.ByteRange[1], s.ByteRange[2]
		if start <= 0 || end > int64(len(data)) || start >= end || data[start] != '<' || data[end-1] != '>' {
			t.Fatalf("signature at %d: /ByteRange %v does not frame a hex string", m[0], s.ByteRange)
		}
		der, err := hex.DecodeString(string(data[start+1 : end-1]))
		if err != nil {
			t.Fatalf("signature at %d: /Contents: %v", m[0], err)
		}
		var raw asn1.RawValue
		if _, err := asn1.Unmarshal(der, &raw); err != nil {
			t.Fatalf("signature at %d: /Contents is not DER: %v", m[0], err)
		}
		s.DER = raw.FullBytes
		dict := data[max(0, m[0]-2048):min(len(data), m[1]+int(end-start)+2048)]
		s.DocTimestamp = bytes.Contains(dict, []byte("/ETSI.RFC3161")) && bytes.Contains(dict, []byte("/DocTimeStamp"))
		sigs = append(sigs, s)
	}
	return sigs
}

// SignedContent returns the bytes a signature's ByteRange covers.
func (s Signature) SignedContent(data []byte) []byte {
	b := s.ByteRange
	out := append([]byte(nil), data[b[0]:b[0]+b[1]]...)
	return append(out, data[b[2]:b[2]+b[3]]...)
}

// Expect is what a signed file must show.
type Expect struct {
	// Signatures is the number of signatures (document time-stamps
	// included).
	Signatures int
	// DocTimestamps is how many of them are document time-stamps
	// (ETSI.RFC3161), which pdfsig 22.12, mupdf 1.21 and pdfsign cannot
	// verify: those validators must then check all the other signatures
	// and see the time-stamps without judging them.
	DocTimestamps int
	// CAFile is a PEM file of the roots that issued the signers' (and
	// TSAs') certificates, for openssl.
	CAFile string
	// Unsupported names validators that cannot check these signatures at
	// all (say, an algorithm they lack), with the reason; they are not run.
	Unsupported map[string]string
}

// CAFile writes cert in PEM to a file of the test's and returns its path,
// for Expect.CAFile.
func CAFile(t testing.TB, cert *x509.Certificate) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Validate runs every independent validator on the signed file at path and
// fails the test unless each accepts all its signatures.
func Validate(t testing.TB, path string, e Expect) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sigs := Signatures(t, data)
	if len(sigs) != e.Signatures {
		t.Fatalf("%s: %d signatures in the file, want %d", path, len(sigs), e.Signatures)
	}
	for name, check := range map[string]func(testing.TB, string, []byte, Expect) error{
		"pdfsig": pdfsig, "qpdf": qpdf, "mutool": mutool, "openssl": openssl, "pdfcpu": pdfcpu, "pdfsign": pdfsign,
	} {
		if why, ok := e.Unsupported[name]; ok {
			t.Logf("%s not run: %s", name, why)
			continue
		}
		if err := check(t, path, data, e); err != nil {
			t.Errorf("%s rejects %s: %v", name, filepath.Base(path), err)
		}
	}
}

// Rejected runs every validator on path, which had a byte changed, and
// fails the test for each validator that does not report a problem.
func Rejected(t testing.TB, path string, e Expect) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, check := range map[string]func(testing.TB, string, []byte, Expect) error{
		"pdfsig": pdfsig, "qpdf": qpdf, "mutool": mutool, "openssl": openssl, "pdfcpu": pdfcpu, "pdfsign": pdfsign,
	} {
		if err := check(t, path, data, e); err == nil {
			t.Errorf("%s accepts the altered %s", name, filepath.Base(path))
		} else {
			t.Logf("%s reports the alteration: %.200v", name, err)
		}
	}
}

func output(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	Need(t, name)
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// pdfsig (poppler, NSS) checks each signature's digest and CMS signature;
// certificate trust is not asked since our CA is in no NSS database.
func pdfsig(t testing.TB, path string, _ []byte, e Expect) error {
	out, err := output(t, "pdfsig", "-nocert", path)
	if err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	total := strings.Count(out, "\nSignature #")
	valid := strings.Count(out, "Signature Validation: Signature is Valid.")
	if total != e.Signatures || valid != e.Signatures-e.DocTimestamps {
		return fmt.Errorf("%d of %d signatures valid, want %d\n%s", valid, total, e.Signatures, out)
	}
	return nil
}

// qpdf --check parses every object and decodes every stream.
func qpdf(t testing.TB, path string, _ []byte, _ Expect) error {
	out, err := output(t, "qpdf", "--check", path)
	if err != nil || !strings.Contains(out, "No syntax or stream encoding errors found") {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}

// mutool sign -v (mupdf 1.21) checks each signature's digest; its
// certificate complaint about our self-signed test root is expected.
func mutool(t testing.TB, path string, _ []byte, e Expect) error {
	out, err := output(t, "mutool", "sign", "-v", path)
	if err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	total := strings.Count(out, "Verifying signature")
	unchanged := strings.Count(out, "The document is unchanged since signing.")
	edited := strings.Count(out, "The signature is valid but there have been edits since signing.")
	unsupported := strings.Count(out, "Signature is not signed.") // mupdf's view of a document time-stamp
	// Earlier signatures see the later increments as edits (mupdf 1.21
	// does not tell signature-only updates apart); the last sees none.
	last := 1
	if e.DocTimestamps > 0 {
		last = 0
	}
	if total != e.Signatures || unsupported != e.DocTimestamps || unchanged != last || unchanged+edited != e.Signatures-e.DocTimestamps {
		return fmt.Errorf("%d of %d signatures intact, want %d\n%s", unchanged+edited, total, e.Signatures, out)
	}
	return nil
}

// openssl checks each CMS signature against its ByteRange content and the
// CA, with its default S/MIME signing purpose (key usage and extended key
// usage of the signer's certificate), and each document time-stamp token
// against its content and the CA.
func openssl(t testing.TB, path string, data []byte, e Expect) error {
	dir := t.TempDir()
	for i, s := range Signatures(t, data) {
		der, content := filepath.Join(dir, fmt.Sprintf("sig%d.der", i)), filepath.Join(dir, fmt.Sprintf("content%d.bin", i))
		if err := os.WriteFile(der, s.DER, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(content, s.SignedContent(data), 0o644); err != nil {
			return err
		}
		args := []string{"cms", "-verify", "-binary", "-inform", "DER", "-in", der, "-content", content, "-CAfile", e.CAFile, "-out", os.DevNull}
		if s.DocTimestamp {
			args = []string{"ts", "-verify", "-token_in", "-in", der, "-data", content, "-CAfile", e.CAFile}
		}
		if out, err := output(t, "openssl", args...); err != nil {
			return fmt.Errorf("signature %d: %v\n%s", i+1, err, out)
		}
	}
	return nil
}

var (
	pdfcpuConfigOnce sync.Once
	pdfcpuConfigDir  string
)

// PdfcpuConfig is a pdfcpu configuration whose directory lives in a
// temporary directory that Cleanup removes.
func PdfcpuConfig(t testing.TB) *model.Configuration {
	pdfcpuConfigOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pdfcpu-config-")
		if err != nil {
			t.Fatal(err)
		}
		pdfcpuConfigDir = dir
		if err := api.EnsureDefaultConfigAt(dir); err != nil {
			t.Fatalf("pdfcpu config: %v", err)
		}
	})
	return model.NewDefaultConfiguration()
}

// pdfcpu validates the file's structure, then its signatures' integrity.
func pdfcpu(t testing.TB, path string, data []byte, e Expect) error {
	if err := api.Validate(bytes.NewReader(data), PdfcpuConfig(t)); err != nil {
		return fmt.Errorf("validate: %w", err)
	}
	results, err := api.ValidateSignaturesRaw(bytes.NewReader(data), true, PdfcpuConfig(t))
	if err != nil {
		return fmt.Errorf("signatures: %w", err)
	}
	intact := 0
	var report []string
	for _, r := range results {
		report = append(report, r.String())
		if r.Status != model.SignatureStatusInvalid && r.Reason&model.SignatureReasonDocModified == 0 && r.Reason&model.SignatureReasonSignatureForged == 0 {
			intact++
		}
	}
	if intact != e.Signatures {
		return fmt.Errorf("%d signatures intact, want %d\n%s", intact, e.Signatures, strings.Join(report, "\n"))
	}
	return nil
}

// pdfsign's verify package checks digests and CMS signatures.
func pdfsign(t testing.TB, _ string, data []byte, e Expect) error {
	opts := verify.DefaultVerifyOptions()
	opts.AllowUntrustedRoots = true
	resp, err := verify.VerifyWithOptions(bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		return err
	}
	valid := 0
	for _, s := range resp.Signers {
		if s.ValidSignature {
			valid++
		}
	}
	if valid != e.Signatures-e.DocTimestamps || len(resp.Signers) != e.Signatures {
		return fmt.Errorf("%d of %d signatures valid, want %d (%s)", valid, len(resp.Signers), e.Signatures, resp.Error)
	}
	return nil
}
