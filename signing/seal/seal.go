// Package seal applies an organisation's seal to a PDF file: a PAdES
// signature (ETSI EN 319 142-1) made with the seal certificate, at level
// B-B, or, when a time-stamp authority (RFC 3161) is configured, at level
// B-LTA: signature time-stamp, validation data (certificates, CRLs and
// OCSP answers, RFC 5280 and 6960) in a /DSS, then a document time-stamp.
// A certificate declared revoked stops the seal.
package seal

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/tsa"
)

// Options configure a seal.
type Options struct {
	// Seal is the organisation's seal key and chain.
	Seal *pki.KeyPair
	// TSAURL, when set, makes the seal B-LTA using this time-stamp
	// authority.
	TSAURL string
	// HTTP fetches time-stamps, CRLs and OCSP answers; nil means a client
	// with a 30-second timeout.
	HTTP *http.Client
	// Reason and Location go in the signature dictionary.
	Reason, Location string
	// MaxInput is the input size limit; 0 means pades.DefaultMaxInput.
	MaxInput int64
	// Warn, when set, receives problems that do not stop the seal, such
	// as a CRL or an OCSP answer that could not be fetched.
	Warn func(error)
}

// Seal writes in, sealed, to out.
func Seal(ctx context.Context, in []byte, out io.Writer, opts Options) error {
	return sealWith(ctx, in, out, opts, inMemory)
}

// File seals the PDF file inPath into outPath. The input is streamed (see
// pades.SignFile), never held whole in memory. The result is written to a
// temporary file next to outPath, then renamed to it: when sealing fails,
// outPath is left as it was and nothing else remains.
func File(ctx context.Context, inPath, outPath string, opts Options) (err error) {
	in, err := os.Open(inPath)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	defer in.Close()
	dir := filepath.Dir(outPath)
	// Not os.CreateTemp, whose 0600 would outlive the rename: the sealed
	// file gets the umask's permissions, as os.Create gives.
	tmpPath := filepath.Join(dir, "."+filepath.Base(outPath)+"."+rand.Text()[:12]+".tmp")
	out, err := os.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmpPath)
		}
	}()
	if err := Stream(ctx, in, out, dir, opts); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	if err := os.Rename(tmpPath, outPath); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	return nil
}

// Stream seals the PDF file in to out. Like File, it never holds the
// document whole in memory: the results of the steps of a B-LTA seal pass
// through temporary files in tempDir ("" for the system's), removed when
// it returns; tempDir is best on the file system of in and out.
func Stream(ctx context.Context, in *os.File, out io.Writer, tempDir string, opts Options) error {
	return sealWith(ctx, in, out, opts, inFiles(tempDir))
}

// steps are the pades calls on one kind of input, bytes or a file, and
// how the result of one becomes the input of the next.
type steps[In any] struct {
	sign         func(context.Context, In, io.Writer, pades.Options) error
	certs        func(context.Context, In, int64) ([]*x509.Certificate, error)
	addDSS       func(context.Context, In, io.Writer, pades.ValidationData, int64) error
	docTimestamp func(context.Context, In, io.Writer, pades.Timestamper, int64) error
	// intermediate makes room for a result that the next step reads back
	// with result; release frees it.
	intermediate func() (w io.Writer, result func() In, release func(), err error)
}

// inMemory passes results in buffers.
var inMemory = steps[[]byte]{
	sign:         pades.Sign,
	certs:        pades.SignatureCertificates,
	addDSS:       pades.AddDSS,
	docTimestamp: pades.DocTimestamp,
	intermediate: func() (io.Writer, func() []byte, func(), error) {
		var b bytes.Buffer
		return &b, b.Bytes, func() {}, nil
	},
}

// inFiles passes results in temporary files in dir, which should be on
// the output's file system: the kernel then copies between them, or
// shares their blocks where the file system can.
func inFiles(dir string) steps[*os.File] {
	return steps[*os.File]{
		sign:         pades.SignFile,
		certs:        pades.SignatureCertificatesFile,
		addDSS:       pades.AddDSSFile,
		docTimestamp: pades.DocTimestampFile,
		intermediate: func() (io.Writer, func() *os.File, func(), error) {
			f, err := os.CreateTemp(dir, ".parapheur-seal-*.tmp")
			if err != nil {
				return nil, nil, nil, fmt.Errorf("seal: %w", err)
			}
			return f, func() *os.File { return f }, func() {
				f.Close()
				os.Remove(f.Name())
			}, nil
		},
	}
}

// sealWith seals in to out with s.
func sealWith[In any](ctx context.Context, in In, out io.Writer, opts Options, s steps[In]) error {
	if opts.Seal == nil {
		return errors.New("seal: no seal key")
	}
	hc := opts.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	sign := pades.Options{
		Signer:   pades.Signer{Key: opts.Seal.Key, Chain: opts.Seal.Chain},
		Name:     opts.Seal.Chain[0].Subject.CommonName,
		Reason:   opts.Reason,
		Location: opts.Location,
		MaxInput: opts.MaxInput,
	}
	if opts.TSAURL == "" {
		return s.sign(ctx, in, out, sign)
	}
	// The earlier signatures' certificates: their validation data go in
	// the /DSS with the seal's, so that the document time-stamp makes
	// every signature B-LTA, not the seal alone.
	earlier, err := s.certs(ctx, in, opts.MaxInput)
	if err != nil {
		return fmt.Errorf("seal: reading the signatures before the seal: %w", err)
	}
	rec := &recorder{client: &tsa.Client{URL: opts.TSAURL, HTTP: hc}}
	sign.TSA = rec
	signedW, signed, releaseSigned, err := s.intermediate()
	if err != nil {
		return err
	}
	defer releaseSigned()
	if err := s.sign(ctx, in, signedW, sign); err != nil {
		return err
	}
	vd, err := validationData(ctx, hc, opts, earlier, rec.tokens)
	if err != nil {
		return err
	}
	limit := opts.MaxInput
	if limit > 0 {
		limit += 1 << 20 // room for the seal's own updates
	}
	withDSSW, withDSS, releaseWithDSS, err := s.intermediate()
	if err != nil {
		return err
	}
	defer releaseWithDSS()
	if err := s.addDSS(ctx, signed(), withDSSW, vd, limit); err != nil {
		return err
	}
	return s.docTimestamp(ctx, withDSS(), out, rec.client, limit)
}

// validationData gathers the certificates of the seal's chain, of the
// earlier signatures and of the time-stamp tokens, and what CRLs and OCSP
// answers can be fetched for them.
func validationData(ctx context.Context, hc *http.Client, opts Options, earlier []*x509.Certificate, tokens [][]byte) (pades.ValidationData, error) {
	certs := append([]*x509.Certificate(nil), opts.Seal.Chain...)
	add := func(more []*x509.Certificate) {
		for _, c := range more {
			if !slices.ContainsFunc(certs, c.Equal) {
				certs = append(certs, c)
			}
		}
	}
	add(earlier)
	for _, tok := range tokens {
		ts, err := timestamp.Parse(tok)
		if err != nil {
			return pades.ValidationData{}, fmt.Errorf("seal: time-stamp token: %w", err)
		}
		add(ts.Certificates)
	}
	crls, crlErr := pki.FetchCRLs(ctx, hc, certs)
	ocsps, ocspErr := pki.FetchOCSP(ctx, hc, certs)
	// Validation data are gathered when available: a server that does not
	// answer only costs the document its long-term validation, but a
	// revoked certificate makes the seal worthless.
	err := errors.Join(crlErr, ocspErr)
	var revoked *pki.RevokedError
	if errors.As(err, &revoked) {
		return pades.ValidationData{}, fmt.Errorf("seal: %w", revoked)
	}
	if err != nil && opts.Warn != nil {
		opts.Warn(err)
	}
	return pades.ValidationData{Certs: certs, CRLs: crls, OCSPs: ocsps}, nil
}

// recorder keeps the tokens a TSA issued, whose certificates belong in
// the validation data.
type recorder struct {
	client *tsa.Client
	tokens [][]byte
}

// Token implements pades.Timestamper.
func (r *recorder) Token(ctx context.Context, digest []byte) ([]byte, error) {
	tok, err := r.client.Token(ctx, digest)
	if err == nil {
		r.tokens = append(r.tokens, tok)
	}
	return tok, err
}
