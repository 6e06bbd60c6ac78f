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
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
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
		return pades.Sign(ctx, in, out, sign)
	}
	rec := &recorder{client: &tsa.Client{URL: opts.TSAURL, HTTP: hc}}
	sign.TSA = rec
	var signed, withDSS bytes.Buffer
	if err := pades.Sign(ctx, in, &signed, sign); err != nil {
		return err
	}
	certs := append([]*x509.Certificate(nil), opts.Seal.Chain...)
	for _, tok := range rec.tokens {
		ts, err := timestamp.Parse(tok)
		if err != nil {
			return fmt.Errorf("seal: time-stamp token: %w", err)
		}
		certs = append(certs, ts.Certificates...)
	}
	crls, crlErr := pki.FetchCRLs(ctx, hc, certs)
	ocsps, ocspErr := pki.FetchOCSP(ctx, hc, certs)
	// Validation data are gathered when available: a server that does not
	// answer only costs the document its long-term validation, but a
	// revoked certificate makes the seal worthless.
	err := errors.Join(crlErr, ocspErr)
	var revoked *pki.RevokedError
	if errors.As(err, &revoked) {
		return fmt.Errorf("seal: %w", revoked)
	}
	if err != nil && opts.Warn != nil {
		opts.Warn(err)
	}
	limit := opts.MaxInput
	if limit > 0 {
		limit += 1 << 20 // room for the seal's own updates
	}
	if err := pades.AddDSS(ctx, signed.Bytes(), &withDSS, pades.ValidationData{Certs: certs, CRLs: crls, OCSPs: ocsps}, limit); err != nil {
		return err
	}
	return pades.DocTimestamp(ctx, withDSS.Bytes(), out, rec.client, limit)
}

// File seals the PDF file inPath into outPath, which is only created when
// sealing succeeds.
func File(ctx context.Context, inPath, outPath string, opts Options) error {
	in, err := os.ReadFile(inPath)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	var out bytes.Buffer
	if err := Seal(ctx, in, &out, opts); err != nil {
		return err
	}
	if err := os.WriteFile(outPath, out.Bytes(), 0o644); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	return nil
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
