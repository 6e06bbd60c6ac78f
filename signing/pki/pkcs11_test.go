//go:build cgo

// The PKCS #11 keys need cgo (see pkcs11.go); their tests too.

package pki_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
)

// softHSM makes a SoftHSM token in a temporary directory and returns the
// module path.
func softHSM(t *testing.T, label, pin string) string {
	t.Helper()
	module := "/usr/lib/softhsm/libsofthsm2.so"
	if _, err := os.Stat(module); err != nil {
		t.Fatalf("SoftHSM module missing: apt-get install -y softhsm2")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	pdftest.Run(t, "softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "12345678")
	return module
}

// importKey puts key into the token under label with softhsm2-util.
func importKey(t *testing.T, key crypto.Signer, token, label, id, pin string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	writePEM(t, path, "PRIVATE KEY", der)
	pdftest.Run(t, "softhsm2-util", "--import", path, "--token", token, "--label", label, "--id", id, "--pin", pin)
}

// storeCert writes cert into the token under label, as HSM set-ups do.
func storeCert(t *testing.T, module, token, pin, label string, cert *x509.Certificate) {
	t.Helper()
	p := pkcs11.New(module)
	if err := p.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		t.Fatal(err)
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		info, err := p.GetTokenInfo(s)
		if err != nil || info.Label != token {
			continue
		}
		sess, err := p.OpenSession(s, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		defer p.CloseSession(sess)
		if err := p.Login(sess, pkcs11.CKU_USER, pin); err != nil {
			t.Fatal(err)
		}
		defer p.Logout(sess)
		_, err = p.CreateObject(sess, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
			pkcs11.NewAttribute(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_SUBJECT, cert.RawSubject),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, cert.Raw),
		})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("token %q not found", token)
}

func TestPKCS11(t *testing.T) {
	const token, pin = "parapheur", "1234"
	module := softHSM(t, token, pin)
	ca, err := pki.NewCA(pkix.Name{CommonName: "HSM CA"}, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, caFile, "CERTIFICATE", ca.Cert.Raw)

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	importKey(t, ecKey, token, "seal-ec", "01", pin)
	importKey(t, rsaKey, token, "seal-rsa", "02", pin)
	ecCert, err := ca.Issue(pkix.Name{CommonName: "HSM seal EC"}, nil, ecKey.Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rsaCert, err := ca.Issue(pkix.Name{CommonName: "HSM seal RSA"}, nil, rsaKey.Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	storeCert(t, module, token, pin, "seal-rsa", rsaCert)

	if _, err := pki.OpenPKCS11(pki.PKCS11Config{Module: module, TokenLabel: token, PIN: "0000", KeyLabel: "seal-ec"}); err == nil {
		t.Error("a wrong PIN opened the token")
	}
	if _, err := pki.OpenPKCS11(pki.PKCS11Config{Module: module, TokenLabel: "nope", PIN: pin, KeyLabel: "seal-ec"}); err == nil {
		t.Error("a missing token opened")
	}

	in, err := os.ReadFile(pdftest.Corpus(t)["qpdf-objstm"])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  pki.PKCS11Config
		pss  bool
		skip map[string]string
	}{
		// The EC certificate comes from configuration, the RSA one from
		// the token.
		{"ecdsa", pki.PKCS11Config{KeyLabel: "seal-ec", Chain: []*x509.Certificate{ecCert, ca.Cert}}, false, nil},
		{"rsa-pkcs1v15", pki.PKCS11Config{KeyLabel: "seal-rsa"}, false, nil},
		{"rsa-pss", pki.PKCS11Config{KeyLabel: "seal-rsa"}, true, map[string]string{
			"mutool":  "mupdf 1.21 reports RSASSA-PSS as a digest error",
			"pdfsign": "digitorus/pkcs7 does not implement RSASSA-PSS",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Module, cfg.TokenLabel, cfg.PIN = module, token, pin
			key, err := pki.OpenPKCS11(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer key.Close()
			// A raw signature first, checked with the certificate's key.
			h := sha256.Sum256([]byte("parapheur"))
			var opts crypto.SignerOpts = crypto.SHA256
			if tc.pss {
				opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
			}
			sig, err := key.Sign(rand.Reader, h[:], opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkRaw(key.Public(), h[:], sig, tc.pss); err != nil {
				t.Fatal(err)
			}
			chain := key.Chain
			if len(chain) == 1 {
				chain = append(chain, ca.Cert)
			}
			var out bytes.Buffer
			if err := pades.Sign(context.Background(), in, &out, pades.Options{Signer: pades.Signer{Key: key, Chain: chain, PSS: tc.pss}, Name: "HSM seal"}); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "hsm.pdf")
			if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			pdftest.Validate(t, path, pdftest.Expect{Signatures: 1, CAFile: caFile, Unsupported: tc.skip})
		})
	}
}

func checkRaw(pub crypto.PublicKey, digest, sig []byte, pss bool) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return fmt.Errorf("ECDSA signature from the token does not verify")
		}
		return nil
	case *rsa.PublicKey:
		if pss {
			return rsa.VerifyPSS(k, crypto.SHA256, digest, sig, nil)
		}
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig)
	}
	return fmt.Errorf("key type %T", pub)
}
