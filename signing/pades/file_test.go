package pades_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
)

// deterministicOptions signs with RSA PKCS #1 v1.5, which makes the same
// signature of the same digest, at a fixed time, with a visible stamp:
// the same input then gives the same bytes.
func deterministicOptions(t *testing.T) pades.Options {
	t.Helper()
	ca, err := pki.NewCA(pkix.Name{CommonName: "File CA"}, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(pkix.Name{CommonName: "File signer"}, nil, ca.Key.Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return pades.Options{
		Signer: pades.Signer{Key: ca.Key, Chain: []*x509.Certificate{cert, ca.Cert}},
		Time:   time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC),
		Stamp:  &pades.Stamp{Page: 1, Name: "Hélène Dupont"},
	}
}

// fixedToken is a time-stamp authority that always answers the same
// bytes, for outputs that can be compared; pades does not read them.
type fixedToken []byte

func (f fixedToken) Token(context.Context, []byte) ([]byte, error) { return f, nil }

// TestFileMatchesMemory expects SignFile, AddDSSFile and DocTimestampFile
// to write exactly the bytes that Sign, AddDSS and DocTimestamp write for
// the same input, whether out is a file (copied by the kernel) or not,
// and whatever the offset the input file was left at.
func TestFileMatchesMemory(t *testing.T) {
	opts := deterministicOptions(t)
	vd := pades.ValidationData{Certs: opts.Signer.Chain}
	tsa := fixedToken(bytes.Repeat([]byte{0x30}, 300))
	ctx := context.Background()
	type step struct {
		name   string
		memory func(in []byte, out io.Writer) error
		file   func(in *os.File, out io.Writer) error
	}
	steps := []step{
		{"Sign",
			func(in []byte, out io.Writer) error { return pades.Sign(ctx, in, out, opts) },
			func(in *os.File, out io.Writer) error { return pades.SignFile(ctx, in, out, opts) }},
		{"AddDSS",
			func(in []byte, out io.Writer) error { return pades.AddDSS(ctx, in, out, vd, 0) },
			func(in *os.File, out io.Writer) error { return pades.AddDSSFile(ctx, in, out, vd, 0) }},
		{"DocTimestamp",
			func(in []byte, out io.Writer) error { return pades.DocTimestamp(ctx, in, out, tsa, 0) },
			func(in *os.File, out io.Writer) error { return pades.DocTimestampFile(ctx, in, out, tsa, 0) }},
	}
	td := pdftest.PdfcpuTestdata(t)
	for _, path := range []string{pdftest.Corpus(t)["qpdf-objstm"], pdftest.Corpus(t)["pdfcpu-hybrid"], pdftest.Corpus(t)["mutool"], filepath.Join(td, "itu-t81.pdf")} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			t.Run(filepath.Base(path)+"/"+s.name, func(t *testing.T) {
				var want bytes.Buffer
				if err := s.memory(data, &want); err != nil {
					t.Fatal(err)
				}
				in, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer in.Close()
				// Left where a previous reader stopped.
				if _, err := in.Seek(int64(len(data)/2), io.SeekStart); err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				if err := s.file(in, &buf); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf.Bytes(), want.Bytes()) {
					t.Errorf("to a buffer: %d bytes differ from the %d written from memory", len(buf.Bytes()), want.Len())
				}
				outPath := filepath.Join(t.TempDir(), "out.pdf")
				out, err := os.Create(outPath)
				if err != nil {
					t.Fatal(err)
				}
				defer out.Close()
				if err := s.file(in, out); err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(outPath)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want.Bytes()) {
					t.Errorf("to a file: %d bytes differ from the %d written from memory", len(got), want.Len())
				}
			})
		}
	}
}

// TestSignFileRefusesBeforeReading expects the size limit and bad input
// to be reported as by Sign.
func TestSignFileRefusesBeforeReading(t *testing.T) {
	opts := deterministicOptions(t)
	path := pdftest.Corpus(t)["qpdf-classic"]
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	opts.MaxInput = 1000
	var out bytes.Buffer
	err = pades.SignFile(context.Background(), in, &out, opts)
	if !errors.Is(err, pades.ErrTooLarge) {
		t.Errorf("a file over MaxInput: %v, want ErrTooLarge", err)
	}
	info, _ := in.Stat()
	if se := (*pades.SizeError)(nil); !errors.As(err, &se) || se.Limit != 1000 || se.Size != info.Size() {
		t.Errorf("a file over MaxInput: %#v, want a SizeError of %d bytes, limit 1000", err, info.Size())
	}
	junk := filepath.Join(t.TempDir(), "junk.pdf")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a PDF\n", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	j, err := os.Open(junk)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	opts.MaxInput = 0
	if err := pades.SignFile(context.Background(), j, &out, opts); !errors.Is(err, pades.ErrNotPDF) {
		t.Errorf("a file that is not a PDF: %v, want ErrNotPDF", err)
	}
}

// truncating is a time-stamp authority that truncates the file being
// signed before answering with a token larger than the room reserved, so
// that the update is prepared again from the file's mapped pages, now
// past its end.
type truncating struct{ path string }

func (tr truncating) Token(context.Context, []byte) ([]byte, error) {
	if err := os.Truncate(tr.path, 100); err != nil {
		return nil, err
	}
	return bytes.Repeat([]byte{0x30}, 20000), nil
}

// TestSignFileTruncatedMeanwhile expects an error that says the input
// changed, not the end of the process: reading a mapped file past its end
// raises SIGBUS.
func TestSignFileTruncatedMeanwhile(t *testing.T) {
	defer pades.SetTokenSizeGuess(16)()
	data, err := os.ReadFile(filepath.Join(pdftest.PdfcpuTestdata(t), "itu-t81.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "in.pdf")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	opts := deterministicOptions(t)
	opts.TSA = truncating{path}
	err = pades.SignFile(context.Background(), in, io.Discard, opts)
	if err == nil || !strings.Contains(err.Error(), "in.pdf changed while being signed") {
		t.Fatalf("signing a file truncated meanwhile: %v", err)
	}
	t.Log(err)
}
