package verdict_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/ceremony"
	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pdftest.Cleanup()
	os.Exit(code)
}

// finder is an envelope store of one envelope, read as the ceremony reads
// signatures' /Reason.
type finder struct {
	env *workflow.Envelope
	err error // the store's answer, when not nil
}

func (f finder) EnvelopeOfReason(r string) (string, bool) { return ceremony.EnvelopeOfReason(r) }

func (f finder) FindDocument(ctx context.Context, id, sum string) (verdict.Placement, error) {
	if f.err != nil {
		return verdict.Placement{}, f.err
	}
	if id != f.env.ID {
		return verdict.Placement{}, store.ErrNotFound
	}
	return verdict.Locate(f.env, sum), nil
}

// signed returns a corpus PDF signed by ca's one-time certificate with
// the ceremony's /Reason for envelope envID.
func signed(t *testing.T, ca *pki.CA, envID string) []byte {
	return signedWith(t, ca, "Electronic signature, envelope "+envID)
}

// signedWith returns a corpus PDF signed by ca's one-time certificate
// with the given /Reason.
func signedWith(t *testing.T, ca *pki.CA, reason string) []byte {
	t.Helper()
	in, err := os.ReadFile(pdftest.Corpus(t)["qpdf-objstm"])
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.IssueOneTime("Alice Martin", "alice@org.example", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	opts := pades.Options{Signer: pades.Signer{Key: kp.Key, Chain: kp.Chain}, Reason: reason}
	if err := pades.Sign(context.Background(), in, &out, opts); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestCheck reports, in both languages, on the final version of an
// envelope's document, on a copy with one signed byte changed, on a file
// that is no PDF, and on a signature naming an envelope the store lacks
// or cannot be asked about.
func TestCheck(t *testing.T) {
	ca, err := pki.NewCA(pkix.Name{CommonName: "Gateway CA"}, 24*time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	pdf := signed(t, ca, "E0123456789ABCDEFGHJK")
	env := &workflow.Envelope{ID: "E0123456789ABCDEFGHJK", State: workflow.StateCompleted,
		Documents: []workflow.Document{{Name: "convention.pdf", Current: hexSum(pdf)}}}
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	c := &verdict.Checker{CA: ca.Cert, Finder: finder{env: env}, Location: paris}
	ctx := context.Background()
	for _, lang := range []string{"fr", "en"} {
		f := c.Check(ctx, "convention.pdf", pdf, lang)
		if !f.Valid || f.Verdict != verdict.Say(lang, "verify valid one") || len(f.Signatures) != 1 {
			t.Fatalf("%s: %+v", lang, f)
		}
		s := f.Signatures[0]
		if !s.Intact || s.Verdict != verdict.Say(lang, "verify intact") || s.Signer != "Alice Martin" || s.Email != "alice@org.example" ||
			s.Issuer != verdict.Say(lang, "verify issuer ours") || s.Changes != verdict.Say(lang, "verify covers") || s.Level != "B-B" ||
			!strings.HasSuffix(s.When, "CET") && !strings.HasSuffix(s.When, "CEST") {
			t.Errorf("%s: signature %+v", lang, s)
		}
		if want := verdict.Say(lang, "verify envelope", env.ID, verdict.EnvelopeState(workflow.StateCompleted, lang)); f.Envelope != want {
			t.Errorf("%s: envelope %q, want %q", lang, f.Envelope, want)
		}
		if want := verdict.Say(lang, "verify final", 1, "convention.pdf"); !f.Final || f.Placement != want {
			t.Errorf("%s: placement %q (final %v), want %q", lang, f.Placement, f.Final, want)
		}
		if f.SHA256 != hexSum(pdf) || f.Name != "convention.pdf" || f.Size != verdict.ByteSize(int64(len(pdf)), lang) {
			t.Errorf("%s: file %q %q %q", lang, f.Name, f.Size, f.SHA256)
		}
	}
	if fr, en := verdict.Say("fr", "verify intact"), verdict.Say("en", "verify intact"); fr == en {
		t.Errorf("French and English say the same: %q", fr)
	}

	tampered := bytes.Clone(pdf)
	i := bytes.Index(tampered, []byte("Electronic signature"))
	if i < 0 {
		t.Fatal("no /Reason in the signed file")
	}
	tampered[i+1] ^= 0x20 // "eLectronic": inside the signed range
	f := c.Check(ctx, "copy.pdf", tampered, "en")
	if f.Valid || f.Verdict != verdict.Say("en", "verify invalid") || len(f.Signatures) != 1 || f.Signatures[0].Intact ||
		f.Signatures[0].Verdict != verdict.Say("en", "verify broken") {
		t.Errorf("tampered: %+v", f)
	}
	if f.Envelope != "" || f.Final {
		t.Errorf("a broken signature placed the file: %q", f.Envelope)
	}

	// A copy whose document information was changed after the signature:
	// every signature intact, but not valid, and not an earlier version.
	changed := pdftest.Update(t, pdf, []string{"<</Title (Hacked)>>"}, 0, "")
	if f := c.Check(ctx, "changed.pdf", changed, "fr"); f.Valid || f.Verdict != verdict.Say("fr", "verify changed unsigned") ||
		len(f.Signatures) != 1 || !f.Signatures[0].Intact || f.Signatures[0].Changes != verdict.Say("fr", "verify changed") ||
		f.Placement != verdict.Say("fr", "verify modified copy") {
		t.Errorf("changed after the signature: %+v", f)
	}

	if f := c.Check(ctx, "", []byte("not a PDF"), "fr"); f.Unreadable != verdict.Say("fr", "verify unreadable") || f.Name != verdict.Say("fr", "verify unnamed") {
		t.Errorf("not a PDF: %+v", f)
	}

	// A file encrypted with a user password cannot be read: the report
	// says so, and what to send instead.
	locked := filepath.Join(t.TempDir(), "locked.pdf")
	pdftest.Run(t, "qpdf", "--encrypt", "user-secret", "owner-secret", "256", "--", pdftest.Corpus(t)["qpdf-classic"], locked)
	data, err := os.ReadFile(locked)
	if err != nil {
		t.Fatal(err)
	}
	if f := c.Check(ctx, "locked.pdf", data, "fr"); f.Unreadable != verdict.Say("fr", "verify encrypted") {
		t.Errorf("encrypted: %+v", f)
	}

	// The certificate of completion, sealed with its own /Reason, names
	// its envelope and is told as the certificate sent to every party.
	for _, lang := range []string{"fr", "en"} {
		cert := signedWith(t, ca, ceremony.CertificateReason(&workflow.Envelope{ID: env.ID, Language: lang}))
		withCert := *env
		withCert.Certificate = hexSum(cert)
		cc := &verdict.Checker{CA: ca.Cert, Finder: finder{env: &withCert}}
		f := cc.Check(ctx, "certificat.pdf", cert, lang)
		if want := verdict.Say(lang, "verify envelope", env.ID, verdict.EnvelopeState(workflow.StateCompleted, lang)); f.Envelope != want {
			t.Errorf("%s: certificate's envelope %q, want %q", lang, f.Envelope, want)
		}
		if want := verdict.Say(lang, "verify certificate"); !f.Final || f.Placement != want {
			t.Errorf("%s: certificate's placement %q (final %v), want %q", lang, f.Placement, f.Final, want)
		}
	}

	gone := &verdict.Checker{CA: ca.Cert, Finder: finder{env: &workflow.Envelope{ID: "Eother"}}}
	if f := gone.Check(ctx, "c.pdf", pdf, "en"); f.Envelope != verdict.Say("en", "verify envelope unknown", env.ID) || f.Placement != "" {
		t.Errorf("unknown envelope: %+v", f)
	}
	down := &verdict.Checker{CA: ca.Cert, Finder: finder{err: errors.New("store down")}}
	if f := down.Check(ctx, "c.pdf", pdf, "en"); f.Envelope != verdict.Say("en", "verify envelope unavailable", env.ID) {
		t.Errorf("store down: %+v", f)
	}
	other, err := pki.NewCA(pkix.Name{CommonName: "Someone else's CA"}, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	foreign := &verdict.Checker{CA: other.Cert, Finder: finder{env: env}}
	if f := foreign.Check(ctx, "c.pdf", pdf, "en"); f.Signatures[0].Issuer != verdict.Say("en", "verify issuer other") || f.Envelope != "" {
		t.Errorf("another CA's signature: %+v", f)
	}
}
