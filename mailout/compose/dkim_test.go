package compose

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

// rsaKey is generated once: 2048-bit generation is slow under -race.
var rsaKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func testDKIM(tb testing.TB) *DKIM {
	tb.Helper()
	key, err := rsaKey()
	if err != nil {
		tb.Fatal(err)
	}
	return &DKIM{Domain: "org.example", Selector: "parapheur2026", Signer: key}
}

// lookupFor answers the DNS query for d's public key, and only that one.
func lookupFor(t *testing.T, d *DKIM) func(string) ([]string, error) {
	var record string
	switch pub := d.Signer.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		record = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		record = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	}
	return func(domain string) ([]string, error) {
		if domain != d.Selector+"._domainkey."+d.Domain {
			return nil, fmt.Errorf("no TXT record at %s", domain)
		}
		return []string{record}, nil
	}
}

// TestDKIM signs a mail of every kind with RSA and Ed25519 keys and verifies
// the signatures with go-msgauth; a changed byte must break them.
func TestDKIM(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaDKIM := testDKIM(t)
	for _, d := range []*DKIM{rsaDKIM, {Domain: "org.example", Selector: "ed", Signer: crypto.Signer(edKey)}} {
		cfg := testConfig()
		cfg.DKIM = d
		c := newComposer(t, cfg)
		opts := &dkim.VerifyOptions{LookupTXT: lookupFor(t, d)}
		for _, s := range samples("fr") {
			raw := compose(t, c, s.msg)
			if !bytes.HasPrefix(raw, []byte("DKIM-Signature: ")) {
				t.Fatalf("%s: the message does not start with its signature:\n%.300s", s.name, raw)
			}
			vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), opts)
			if err != nil || len(vs) != 1 {
				t.Fatalf("%s: verify: %v, %d signatures", s.name, err, len(vs))
			}
			if vs[0].Err != nil || vs[0].Domain != "org.example" {
				t.Errorf("%s (%T): signature: %v, domain %q", s.name, d.Signer, vs[0].Err, vs[0].Domain)
			}
			signed := map[string]bool{}
			for _, k := range vs[0].HeaderKeys {
				signed[k] = true
			}
			for _, k := range []string{"From", "To", "Subject", "Date", "Message-Id", "Reply-To", "Content-Type", "Auto-Submitted", "X-Parapheur-Envelope"} {
				if !signed[k] && !(k == "X-Parapheur-Envelope" && s.msg.Envelope == nil) {
					t.Errorf("%s: %s is not signed (h=%v)", s.name, k, vs[0].HeaderKeys)
				}
			}
			parse(t, raw) // still a readable message

			// Change one character of the text part.
			i := bytes.Index(raw, []byte("Bonjour"))
			tampered := bytes.Clone(raw)
			tampered[i] = 'b'
			vs, err = dkim.VerifyWithOptions(bytes.NewReader(tampered), opts)
			if err != nil || len(vs) != 1 || vs[0].Err == nil {
				t.Errorf("%s: a changed body still verifies (%v)", s.name, err)
			}
		}
	}
}

// TestDKIMChangedAttachment checks that an attachment whose content changes
// between the signing pass and the writing pass is an error, not a mail
// with a bad signature.
func TestDKIMChangedAttachment(t *testing.T) {
	cfg := testConfig()
	cfg.DKIM = testDKIM(t)
	c := newComposer(t, cfg)
	m := samples("fr")[11].msg
	d := m.Data.(Completion)
	opens := 0
	content := [][]byte{[]byte("first version!"), []byte("other version!")}
	f := file("a.pdf", "application/pdf", content[0])
	f.Open = func() (io.ReadCloser, error) {
		opens++
		return io.NopCloser(bytes.NewReader(content[(opens-1)%2])), nil
	}
	d.Files = []Attachment{f}
	m.Data = d
	err := c.Compose(io.Discard, m)
	if err == nil || !strings.Contains(err.Error(), "has SHA-256") || opens != 2 {
		t.Fatalf("an attachment that changed between the passes: %v after %d opens", err, opens)
	}
}
