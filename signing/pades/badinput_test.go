package pades_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/pades"
)

func TestBadInput(t *testing.T) {
	signer := oneTimeSigner(t, "Bad Input")
	good, err := os.ReadFile(pdftest.Corpus(t)["qpdf-classic"])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	encrypted := func(user string) []byte {
		out := filepath.Join(dir, "enc-"+user+".pdf")
		pdftest.Run(t, "qpdf", "--encrypt", user, "owner-secret", "256", "--", pdftest.Corpus(t)["qpdf-classic"], out)
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	malformed := bytes.Replace(good, []byte("obj"), []byte("ojb"), -1)
	notPDF, err := exec.Command("go", "version").Output()
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		in   []byte
		opts func(*pades.Options)
		want error
	}{
		{"not a PDF", notPDF, nil, pades.ErrNotPDF},
		{"empty", nil, nil, pades.ErrNotPDF},
		{"truncated", good[:len(good)/2], nil, pades.ErrTruncated},
		{"malformed", malformed, nil, pades.ErrMalformed},
		{"encrypted with a password", encrypted("user-secret"), nil, pades.ErrEncrypted},
		{"encrypted without a user password", encrypted(""), nil, pades.ErrEncrypted},
		{"over the size limit", good, func(o *pades.Options) { o.MaxInput = 100 }, pades.ErrTooLarge},
		{"no such page", good, func(o *pades.Options) {
			o.Stamp = &pades.Stamp{Page: 9, Name: "X"}
		}, pades.ErrNoSuchPage},
		{"page zero", good, func(o *pades.Options) {
			o.Stamp = &pades.Stamp{Page: 0, Name: "X"}
		}, pades.ErrNoSuchPage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := pades.Options{Signer: signer}
			if tc.opts != nil {
				tc.opts(&opts)
			}
			var out bytes.Buffer
			err := pades.Sign(context.Background(), tc.in, &out, opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			if out.Len() != 0 {
				t.Errorf("%d bytes written despite the error", out.Len())
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestInspect(t *testing.T) {
	good, err := os.ReadFile(pdftest.Corpus(t)["ps2pdf"])
	if err != nil {
		t.Fatal(err)
	}
	if n, err := pades.Inspect(context.Background(), good, 0); err != nil || n != 2 {
		t.Errorf("Inspect: %d pages, %v; want 2 pages", n, err)
	}
	if _, err := pades.Inspect(context.Background(), good[:len(good)/2], 0); !errors.Is(err, pades.ErrTruncated) {
		t.Errorf("truncated: %v", err)
	}
}

// TestDecompressionBomb checks that Inspect and Sign refuse a PDF of
// less than a megabyte one of whose streams inflates to 400 MiB, far
// past the document limit, without inflating more than the limit: a
// cross-reference stream, the same with a predictor (decoded by pdfcpu),
// an object stream.
func TestDecompressionBomb(t *testing.T) {
	signer := oneTimeSigner(t, "Bomb")
	const limit = 1 << 20
	for _, where := range []string{"xref", "xref-predictor", "objstm"} {
		t.Run(where, func(t *testing.T) {
			bomb := pdftest.Bomb(t, 400<<20, where)
			if len(bomb) >= limit {
				t.Fatalf("the bomb is %d bytes, over the %d-byte limit", len(bomb), limit)
			}
			_, inspectErr := pades.Inspect(context.Background(), bomb, limit)
			signErr := pades.Sign(context.Background(), bomb, new(bytes.Buffer), pades.Options{
				Signer: signer, MaxInput: limit,
			})
			for name, err := range map[string]error{"Inspect": inspectErr, "Sign": signErr} {
				if !errors.Is(err, pades.ErrMalformed) || !strings.Contains(err.Error(), "expand to more than 1 MB") {
					t.Errorf("%s: %v, want ErrMalformed saying the data expand to more than 1 MB", name, err)
				}
			}
			t.Logf("Inspect: %v", inspectErr)
		})
	}
	// Under the limit, the same file is a document like any other.
	small := pdftest.Bomb(t, 100<<10, "xref-predictor")
	if n, err := pades.Inspect(context.Background(), small, limit); err != nil || n != 1 {
		t.Errorf("a stream inflating to 100 KiB: %d pages, %v; want 1 page", n, err)
	}
}

func TestTruncatedMessage(t *testing.T) {
	if got := pades.ErrTruncated.Error(); !strings.Contains(got, " %EOF ") {
		t.Errorf("ErrTruncated says %q, want the %%EOF marker named as it is written", got)
	}
}
