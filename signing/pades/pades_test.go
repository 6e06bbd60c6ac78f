package pades_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pdfsign "github.com/digitorus/pdfsign/sign"
	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/internal/pkitest"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/tsa"
	"github.com/pdfcpu/pdfcpu/pkg/api"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pdftest.Cleanup()
	os.Exit(code)
}

// testCA makes a CA and writes its certificate where openssl can read it.
func testCA(t *testing.T) (*pki.CA, string) {
	t.Helper()
	ca, err := pki.NewCA(pkix.Name{CommonName: "Test signing CA", Organization: []string{"Parapheur test"}}, 24*time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	return ca, pdftest.CAFile(t, ca.Cert)
}

// oneTimeSigner issues a one-time certificate naming name from a new
// test CA.
func oneTimeSigner(t *testing.T, name string) pades.Signer {
	t.Helper()
	ca, _ := testCA(t)
	kp, err := ca.IssueOneTime(name, "signer@example.org", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return pades.Signer{Key: kp.Key, Chain: kp.Chain}
}

func signFile(t *testing.T, ca *pki.CA, in, out string, name string, stamp *pades.Stamp) {
	t.Helper()
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.IssueOneTime(name, "signer@example.org", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err = pades.Sign(context.Background(), data, &buf, pades.Options{
		Signer: pades.Signer{Key: kp.Key, Chain: kp.Chain},
		Name:   name, Reason: "J'approuve ce document", Location: "Lyon",
		Stamp: stamp,
	})
	if err != nil {
		t.Fatalf("signing %s: %v", filepath.Base(in), err)
	}
	if !bytes.HasPrefix(buf.Bytes(), data) {
		t.Fatalf("signing %s rewrote the original bytes", filepath.Base(in))
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSignCorpus(t *testing.T) {
	ca, caFile := testCA(t)
	for name, path := range pdftest.Corpus(t) {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "signed.pdf")
			signFile(t, ca, path, out, "Hélène Dupont", &pades.Stamp{Page: 1, Name: "Hélène Dupont", Role: "Directrice", Reason: "Bon pour accord"})
			pdftest.Validate(t, out, pdftest.Expect{Signatures: 1, CAFile: caFile})
		})
	}
}

// flipInStream changes one byte in the middle of the first Flate stream's
// data, inside every signature's ByteRange and where qpdf, which does not
// check signatures, notices it as a stream decoding error.
func flipInStream(t *testing.T, data []byte) []byte {
	t.Helper()
	out := append([]byte(nil), data...)
	for off := 0; ; {
		i := bytes.Index(out[off:], []byte("stream\n"))
		if i < 0 {
			t.Fatal("no stream to alter")
		}
		start := off + i + len("stream\n")
		end := bytes.Index(out[start:], []byte("endstream"))
		dict := out[max(0, start-300):start]
		if end > 16 && bytes.Contains(dict[bytes.LastIndex(dict, []byte("obj")):], []byte("/FlateDecode")) {
			out[start+end/2] ^= 0x55
			return out
		}
		off = start
	}
}

func TestAlteredByteDetected(t *testing.T) {
	ca, caFile := testCA(t)
	dir := t.TempDir()
	signed := filepath.Join(dir, "signed.pdf")
	signFile(t, ca, pdftest.Corpus(t)["qpdf-objstm"], signed, "Alice Martin", nil)
	e := pdftest.Expect{Signatures: 1, CAFile: caFile}
	pdftest.Validate(t, signed, e)
	data, err := os.ReadFile(signed)
	if err != nil {
		t.Fatal(err)
	}
	altered := filepath.Join(dir, "altered.pdf")
	if err := os.WriteFile(altered, flipInStream(t, data), 0o644); err != nil {
		t.Fatal(err)
	}
	pdftest.Rejected(t, altered, e)
}

func TestManySignatures(t *testing.T) {
	ca, caFile := testCA(t)
	for _, n := range []int{2, 5} {
		for _, src := range []string{"qpdf-classic", "qpdf-objstm", "pdfcpu-form"} {
			t.Run(fmt.Sprintf("%s-%d", src, n), func(t *testing.T) {
				dir := t.TempDir()
				in := pdftest.Corpus(t)[src]
				for i := range n {
					out := filepath.Join(dir, fmt.Sprintf("signed%d.pdf", i+1))
					var stamp *pades.Stamp
					if i%2 == 0 {
						stamp = &pades.Stamp{Page: 1, Slot: i, Name: fmt.Sprintf("Signer %d", i+1), Role: "Témoin"}
					}
					signFile(t, ca, in, out, fmt.Sprintf("Signer %d", i+1), stamp)
					in = out
				}
				pdftest.Validate(t, in, pdftest.Expect{Signatures: n, CAFile: caFile})
			})
		}
	}
}

func TestPriorPdfsignSignatureStaysValid(t *testing.T) {
	ca, caFile := testCA(t)
	for _, src := range []string{"qpdf-classic", "qpdf-objstm", "pdfcpu-form"} {
		t.Run(src, func(t *testing.T) {
			dir := t.TempDir()
			prior := filepath.Join(dir, "prior.pdf")
			pdftest.SignWithPdfsign(t, ca, pdftest.Corpus(t)[src], prior)
			pdftest.Validate(t, prior, pdftest.Expect{Signatures: 1, CAFile: caFile})
			out := filepath.Join(dir, "signed.pdf")
			signFile(t, ca, prior, out, "Second Signer", &pades.Stamp{Page: 1, Name: "Second Signer"})
			pdftest.Validate(t, out, pdftest.Expect{Signatures: 2, CAFile: caFile})
		})
	}
}

// acroForm returns the AcroForm's field references, /DR and /DA as text.
func acroForm(t *testing.T, data []byte) (fields []string, dr, da string) {
	t.Helper()
	ctx, err := api.ReadContext(bytes.NewReader(data), pdftest.PdfcpuConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	root, err := ctx.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	form, err := ctx.DereferenceDict(root["AcroForm"])
	if err != nil || form == nil {
		t.Fatalf("no AcroForm: %v (catalog %v)", err, root)
	}
	arr, err := ctx.DereferenceArray(form["Fields"])
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range arr {
		fields = append(fields, f.String())
	}
	drDict, _ := ctx.DereferenceDict(form["DR"])
	if form["DA"] != nil {
		da = form["DA"].String()
	}
	return fields, drDict.String(), da
}

func TestFormFieldsKept(t *testing.T) {
	ca, _ := testCA(t)
	in := pdftest.Corpus(t)["pdfcpu-form"]
	out := filepath.Join(t.TempDir(), "signed.pdf")
	signFile(t, ca, in, out, "Form Signer", nil)
	before, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f0, dr0, da0 := acroForm(t, before)
	f1, dr1, da1 := acroForm(t, after)
	if len(f0) == 0 || dr0 == "" || da0 == "" {
		t.Fatalf("the form corpus file lacks fields, /DR or /DA: %d fields, DR %q, DA %q", len(f0), dr0, da0)
	}
	if len(f1) != len(f0)+1 || !slices.Equal(f1[:len(f0)], f0) {
		t.Errorf("fields before %v, after %v: want the same plus one", f0, f1)
	}
	if dr1 != dr0 || da1 != da0 {
		t.Errorf("/DR or /DA changed: %q %q -> %q %q", dr0, da0, dr1, da1)
	}
}

func TestKeyTypes(t *testing.T) {
	for _, kt := range []struct {
		name        string
		rsa         bool
		pss         bool
		unsupported map[string]string
	}{
		{"ecdsa-p256", false, false, nil},
		{"rsa-pkcs1v15", true, false, nil},
		{"rsa-pss", true, true, map[string]string{
			"mutool":  "mupdf 1.21 reports RSASSA-PSS as a digest error",
			"pdfsign": "digitorus/pkcs7 does not implement RSASSA-PSS",
		}},
	} {
		t.Run(kt.name, func(t *testing.T) {
			ca, err := pki.NewCA(pkix.Name{CommonName: "Key type CA"}, time.Hour, kt.rsa)
			if err != nil {
				t.Fatal(err)
			}
			caFile := pdftest.CAFile(t, ca.Cert)
			// The CA's own key signs here, which exercises RSA when asked.
			cert, err := ca.Issue(pkix.Name{CommonName: "Key type signer"}, nil, ca.Key.Public(), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(pdftest.Corpus(t)["qpdf-objstm"])
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := pades.Sign(context.Background(), data, &buf, pades.Options{
				Signer: pades.Signer{Key: ca.Key, Chain: []*x509.Certificate{cert, ca.Cert}, PSS: kt.pss},
			}); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "signed.pdf")
			if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			pdftest.Validate(t, out, pdftest.Expect{Signatures: 1, CAFile: caFile, Unsupported: kt.unsupported})
		})
	}
}

func TestTimestamped(t *testing.T) {
	ca, caFile := testCA(t)
	srv := pkitest.StartTSA(t, ca)
	for _, guess := range []int{0, 100} {
		t.Run(fmt.Sprintf("guess-%d", guess), func(t *testing.T) {
			if guess > 0 {
				// A guess far too small makes Sign start over with the
				// token's real size.
				defer pades.SetTokenSizeGuess(guess)()
			}
			kp, err := ca.IssueOneTime("Time Stamped", "ts@example.org", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(pdftest.Corpus(t)["ps2pdf"])
			if err != nil {
				t.Fatal(err)
			}
			before := srv.Requests.Load()
			var buf bytes.Buffer
			if err := pades.Sign(context.Background(), data, &buf, pades.Options{
				Signer: pades.Signer{Key: kp.Key, Chain: kp.Chain},
				TSA:    &tsa.Client{URL: srv.URL},
			}); err != nil {
				t.Fatal(err)
			}
			wantRequests := int64(1)
			if guess > 0 {
				wantRequests = 2
			}
			if n := srv.Requests.Load() - before; n != wantRequests {
				t.Errorf("%d time-stamp requests, want %d", n, wantRequests)
			}
			out := filepath.Join(t.TempDir(), "signed.pdf")
			if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			pdftest.Validate(t, out, pdftest.Expect{Signatures: 1, CAFile: caFile})
		})
	}
}

func TestVisibleStampRendered(t *testing.T) {
	ca, _ := testCA(t)
	out := filepath.Join(t.TempDir(), "signed.pdf")
	signFile(t, ca, pdftest.Corpus(t)["ps2pdf"], out, "Hélène Dupont", &pades.Stamp{
		Page: 2, Name: "Hélène Dupont", Role: "Directrice générale", Reason: "Bon pour accord",
		Date: time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC),
	})
	// mutool renders widget appearances when extracting a page's text.
	page2 := pdftest.Run(t, "mutool", "draw", "-F", "txt", "-o", "-", out, "2")
	for _, want := range []string{"Hélène Dupont", "Directrice générale", "2026-03-04 10:30 UTC", "Bon pour accord"} {
		if !strings.Contains(page2, want) {
			t.Errorf("page 2 text lacks %q:\n%s", want, page2)
		}
	}
	if page1 := pdftest.Run(t, "mutool", "draw", "-F", "txt", "-o", "-", out, "1"); strings.Contains(page1, "Hélène") {
		t.Errorf("the stamp is on page 1 too:\n%s", page1)
	}
}

func TestCertifiedDocument(t *testing.T) {
	ca, caFile := testCA(t)
	kp, err := ca.IssueOneTime("Certifier", "cert@example.org", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		perm pdfsign.DocMDPPerm
		want error
	}{
		{pdfsign.DoNotAllowAnyChangesPerms, pades.ErrLocked},
		{pdfsign.AllowFillingExistingFormFieldsAndSignaturesPerms, nil},
	} {
		t.Run(tc.perm.String(), func(t *testing.T) {
			dir := t.TempDir()
			certified := filepath.Join(dir, "certified.pdf")
			err := pdfsign.SignFile(pdftest.Corpus(t)["qpdf-classic"], certified, pdfsign.SignData{
				Signature:         pdfsign.SignDataSignature{CertType: pdfsign.CertificationSignature, DocMDPPerm: tc.perm, Info: pdfsign.SignDataSignatureInfo{Name: "Certifier", Date: time.Now()}},
				Signer:            kp.Key,
				DigestAlgorithm:   crypto.SHA256,
				Certificate:       kp.Chain[0],
				CertificateChains: [][]*x509.Certificate{kp.Chain},
			})
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(certified)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := ca.IssueOneTime("Approver", "approver@example.org", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			err = pades.Sign(context.Background(), data, &buf, pades.Options{Signer: pades.Signer{Key: signer.Key, Chain: signer.Chain}})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			out := filepath.Join(dir, "signed.pdf")
			if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			pdftest.Validate(t, out, pdftest.Expect{Signatures: 2, CAFile: caFile})
		})
	}
}

// TestIncrementMatchesSource checks that the update's cross-reference
// section is of the source's kind, and that the /Contents placeholder is
// sized from the real chain: little more than the signature it holds.
func TestIncrementMatchesSource(t *testing.T) {
	ca, _ := testCA(t)
	for name, stream := range map[string]bool{"qpdf-classic": false, "mutool": false, "qpdf-objstm": true, "qpdf-pdf20": true} {
		t.Run(name, func(t *testing.T) {
			in := pdftest.Corpus(t)[name]
			out := filepath.Join(t.TempDir(), "signed.pdf")
			signFile(t, ca, in, out, "Kind Check", nil)
			before, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			after, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			tail := after[len(before):]
			hasTable := bytes.Contains(tail, []byte("\nxref\n")) && bytes.Contains(tail, []byte("trailer"))
			hasStream := bytes.Contains(tail, []byte("/Type/XRef"))
			if hasTable == stream || hasStream != stream {
				t.Errorf("update has xref table %v, xref stream %v; source uses streams: %v", hasTable, hasStream, stream)
			}
			if bytes.Contains(tail, []byte("/ObjStm")) {
				t.Error("the update hides objects in an object stream")
			}
			sigs := pdftest.Signatures(t, after)
			reserved := int(sigs[0].ByteRange[2]-sigs[0].ByteRange[1]-2) / 2
			if slack := reserved - len(sigs[0].DER); slack < 0 || slack > 1024 {
				t.Errorf("reserved %d bytes for a %d-byte signature", reserved, len(sigs[0].DER))
			}
		})
	}
}

// TestConcurrentSigning signs different documents at once, as the
// gateway's workers do, and expects each result byte for byte as when
// signed alone: the readers share recycled buffers (see pdfread.Release),
// and a buffer handed to two documents would mix their objects. RSA
// PKCS #1 v1.5 and a fixed time make signing deterministic.
func TestConcurrentSigning(t *testing.T) {
	opts := deterministicOptions(t)
	td := pdftest.PdfcpuTestdata(t)
	var docs, want [][]byte
	for _, path := range []string{pdftest.Corpus(t)["qpdf-objstm"], pdftest.Corpus(t)["pdfcpu-hybrid"], filepath.Join(td, "itu-t81.pdf"), filepath.Join(td, "gobook.0.pdf")} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := pades.Sign(context.Background(), data, &buf, opts); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs, want = append(docs, data), append(want, buf.Bytes())
	}
	const rounds = 8
	errs := make(chan error, rounds*len(docs))
	for round := range rounds {
		for i, data := range docs {
			go func() {
				var buf bytes.Buffer
				err := pades.Sign(context.Background(), data, &buf, opts)
				if err == nil && !bytes.Equal(buf.Bytes(), want[i]) {
					err = fmt.Errorf("round %d, document %d: signed concurrently, the result differs from the one signed alone", round, i)
				}
				errs <- err
			}()
		}
	}
	for range rounds * len(docs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
