package cms_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/cms"
	"github.com/parapheur/parapheur/signing/pki"
)

func TestSignParseVerify(t *testing.T) {
	for _, rsaKey := range []bool{false, true} {
		ca, err := pki.NewCA(pkix.Name{CommonName: "CMS CA"}, time.Hour, rsaKey)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := ca.Issue(pkix.Name{CommonName: "CMS signer"}, nil, ca.Key.Public(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, pss := range []bool{false, rsaKey} {
			content := []byte("the signed content")
			digest := sha256.Sum256(content)
			sd, err := cms.Sign(digest[:], ca.Key, []*x509.Certificate{cert, ca.Cert}, cms.Options{PSS: pss})
			if err != nil {
				t.Fatal(err)
			}
			sd.SetTimestamp(nil)
			der, err := sd.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if max := cms.MaxSize(ca.Key.Public(), []*x509.Certificate{cert, ca.Cert}, 0); len(der) > max {
				t.Errorf("DER of %d bytes over MaxSize %d", len(der), max)
			}
			// Zero padding, as in a PDF /Contents, is ignored.
			p, err := cms.Parse(append(der, make([]byte, 100)...))
			if err != nil {
				t.Fatal(err)
			}
			if p.Signer == nil || !p.Signer.Equal(cert) || p.HasSigningTime || !p.HasSigningCertificateV2 || p.Timestamp != nil || len(p.Certificates) != 2 {
				t.Errorf("parsed: %+v", p)
			}
			if err := p.Verify(digest[:]); err != nil {
				t.Errorf("rsa=%v pss=%v: %v", rsaKey, pss, err)
			}
			other := sha256.Sum256([]byte("other content"))
			if err := p.Verify(other[:]); err == nil {
				t.Error("a signature verified over other content")
			}
			checkOpenSSL(t, der, content, ca)
		}
	}
}

// checkOpenSSL has openssl verify the detached signature and print the
// signed attributes, which must not include signing-time.
func checkOpenSSL(t *testing.T, der, content []byte, ca *pki.CA) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl not found: apt-get install -y openssl")
	}
	dir := t.TempDir()
	sig, data, caFile := filepath.Join(dir, "sig.der"), filepath.Join(dir, "data"), filepath.Join(dir, "ca.der")
	for path, b := range map[string][]byte{sig: der, data: content, caFile: ca.Cert.Raw} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pemCA := filepath.Join(dir, "ca.pem")
	if out, err := exec.Command("openssl", "x509", "-inform", "DER", "-in", caFile, "-out", pemCA).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := exec.Command("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", data, "-CAfile", pemCA, "-purpose", "any", "-out", os.DevNull).CombinedOutput(); err != nil {
		t.Fatalf("openssl cms -verify: %v\n%s", err, out)
	}
	out, err := exec.Command("openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", sig).CombinedOutput()
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, want := range []string{"contentType", "messageDigest", "id-smime-aa-signingCertificateV2"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("signed attributes lack %s:\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte("signingTime")) {
		t.Errorf("signing-time present:\n%s", out)
	}
}

func TestSignRejects(t *testing.T) {
	ca, err := pki.NewCA(pkix.Name{CommonName: "CA"}, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA(pkix.Name{CommonName: "Other"}, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(nil)
	if _, err := cms.Sign(d[:4], ca.Key, []*x509.Certificate{ca.Cert}, cms.Options{}); err == nil {
		t.Error("short digest accepted")
	}
	if _, err := cms.Sign(d[:], ca.Key, nil, cms.Options{}); err == nil {
		t.Error("no certificate accepted")
	}
	if _, err := cms.Sign(d[:], ca.Key, []*x509.Certificate{other.Cert}, cms.Options{}); err == nil {
		t.Error("certificate of another key accepted")
	}
}
