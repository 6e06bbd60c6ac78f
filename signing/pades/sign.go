package pades

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/parapheur/parapheur/signing/cms"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// tokenSizeGuess is the room reserved for a time-stamp token, whose size
// is only known once the TSA answers; a larger token makes Sign redo the
// update once with the real size, so the guess only affects the padding.
var tokenSizeGuess = 6144

// Timestamper obtains RFC 3161 time-stamp tokens over SHA-256 digests;
// *tsa.Client is one.
type Timestamper interface {
	Token(ctx context.Context, digest []byte) ([]byte, error)
}

// Signer is a signing key with its certificate chain.
type Signer struct {
	// Key signs; any crypto.Signer (software, PKCS #11) with an RSA or
	// ECDSA key.
	Key crypto.Signer
	// Chain is the signer's certificate then its issuers, all embedded in
	// the signature.
	Chain []*x509.Certificate
	// PSS selects RSASSA-PSS for RSA keys.
	PSS bool
}

// Stamp is a visible signature mark. Sign places it on the page as a
// reader shows it (the crop box, turned by /Rotate), wherever the page's
// boxes start and however small it is: a StampWidth × StampHeight box,
// upright, in rows from the bottom-left corner.
type Stamp struct {
	// Page is the 1-based page number that carries the mark.
	Page int
	// Slot is the mark's place among the marks of the page, from 0: left
	// to right along the bottom, then row after row upwards. Marks of
	// different slots do not overlap while the page has room for them
	// (36 on an A4 page, at least 4 on any page: marks shrink on small
	// pages); give each signer of a document its own.
	Slot int
	// Name, Role and Reason are printed on the mark, one line each, when
	// not empty, and so is Date.
	Name, Role, Reason string
	// Date is printed in UTC; zero means the signature's time.
	Date time.Time
}

// Options describe one signature.
type Options struct {
	// Signer holds the key and certificates.
	Signer Signer
	// Name, Reason, Location and ContactInfo fill the signature
	// dictionary entries of the same names, shown by PDF readers.
	Name, Reason, Location, ContactInfo string
	// Time is the claimed signing time, written to /M (PAdES forbids a
	// signing-time attribute in the CMS); zero means now.
	Time time.Time
	// Stamp is the visible mark; nil makes an invisible signature.
	Stamp *Stamp
	// TSA, when set, adds a signature time-stamp (level B-T).
	TSA Timestamper
	// MaxInput is the input size limit; 0 means DefaultMaxInput.
	MaxInput int64
}

// Sign writes in followed by an incremental update that signs it to out.
// Errors wrap ErrNotPDF, ErrTooLarge, ErrTruncated, ErrMalformed,
// ErrEncrypted, ErrLocked or ErrNoSuchPage for bad input; out receives
// nothing then.
func Sign(ctx context.Context, in []byte, out io.Writer, opts Options) error {
	return sign(ctx, source{data: in}, out, opts)
}

// SignFile is Sign for a document in a file, which it streams, so that
// memory use does not grow with the file: the update is prepared from
// in's pages mapped into memory, in is hashed through a small buffer, and
// copied to out meanwhile, by the kernel when out is a file too
// (copy_file_range). in is read from its start, whatever its offset,
// which SignFile moves; it must not change meanwhile (see withFile). When
// SignFile fails, out may hold part of the result: write to a temporary
// file and rename it on success.
func SignFile(ctx context.Context, in *os.File, out io.Writer, opts Options) error {
	return withFile(in, opts.MaxInput, func(src source) error { return sign(ctx, src, out, opts) })
}

// sign is Sign for a source.
func sign(ctx context.Context, src source, out io.Writer, opts Options) error {
	s := opts.Signer
	if s.Key == nil || len(s.Chain) == 0 {
		return errors.New("pades: a signing key and its certificate are required")
	}
	if opts.Time.IsZero() {
		opts.Time = time.Now()
	}
	tokenSize := 0
	if opts.TSA != nil {
		tokenSize = tokenSizeGuess
	}
	signer, err := cms.NewSigner(s.Key, s.Chain, cms.Options{PSS: s.PSS})
	if err != nil {
		return err
	}
	size := cms.MaxSize(s.Key.Public(), s.Chain, tokenSize)
	contents := func(digest []byte) ([]byte, error) {
		sd, err := signer.Sign(digest)
		if err != nil {
			return nil, err
		}
		if opts.TSA != nil {
			h := sha256.Sum256(sd.Signature())
			token, err := opts.TSA.Token(ctx, h[:])
			if err != nil {
				return nil, fmt.Errorf("pades: signature time-stamp: %w", err)
			}
			sd.SetTimestamp(token)
		}
		return sd.Bytes()
	}
	build := func(d *document) error {
		v := types.Dict{
			"Type":      types.Name("Sig"),
			"Filter":    types.Name("Adobe.PPKLite"),
			"SubFilter": types.Name("ETSI.CAdES.detached"),
			"M":         types.StringLiteral(types.DateString(opts.Time)),
		}
		for key, val := range map[string]string{"Name": opts.Name, "Reason": opts.Reason, "Location": opts.Location, "ContactInfo": opts.ContactInfo} {
			if val != "" {
				v[key] = textString(val)
			}
		}
		if opts.Stamp == nil {
			return d.addSignature(v, size, 1, nil)
		}
		st := *opts.Stamp
		if st.Date.IsZero() {
			st.Date = opts.Time
		}
		return d.addSignature(v, size, st.Page, &st)
	}
	return appendSigned(ctx, src, out, opts.MaxInput, &size, build, contents)
}

// DocTimestamp writes in followed by an incremental update holding a
// document time-stamp (ETSI.RFC3161) over all of it, which protects the
// signatures and validation data before it (level B-LTA).
func DocTimestamp(ctx context.Context, in []byte, out io.Writer, tsa Timestamper, maxInput int64) error {
	return docTimestamp(ctx, source{data: in}, out, tsa, maxInput)
}

// DocTimestampFile is DocTimestamp for a document in a file, streamed as
// SignFile does.
func DocTimestampFile(ctx context.Context, in *os.File, out io.Writer, tsa Timestamper, maxInput int64) error {
	return withFile(in, maxInput, func(src source) error { return docTimestamp(ctx, src, out, tsa, maxInput) })
}

// docTimestamp is DocTimestamp for a source.
func docTimestamp(ctx context.Context, src source, out io.Writer, tsa Timestamper, maxInput int64) error {
	if tsa == nil {
		return errors.New("pades: a document time-stamp needs a time-stamp authority")
	}
	size := tokenSizeGuess
	build := func(d *document) error {
		v := types.Dict{
			"Type":      types.Name("DocTimeStamp"),
			"Filter":    types.Name("Adobe.PPKLite"),
			"SubFilter": types.Name("ETSI.RFC3161"),
		}
		return d.addSignature(v, size, 1, nil)
	}
	contents := func(digest []byte) ([]byte, error) {
		token, err := tsa.Token(ctx, digest)
		if err != nil {
			return nil, fmt.Errorf("pades: document time-stamp: %w", err)
		}
		return token, nil
	}
	return appendSigned(ctx, src, out, maxInput, &size, build, contents)
}

// appendSigned parses src, lets build add a signature dictionary of
// *size bytes, hashes the ByteRange, asks contents for the DER to put in
// /Contents, and writes the result to out. When the DER does not fit (a
// time-stamp token larger than guessed), it starts over once with the
// real size.
func appendSigned(ctx context.Context, src source, out io.Writer, maxInput int64, size *int, build func(*document) error, contents func(digest []byte) ([]byte, error)) error {
	in := src.data
	if err := checkSize(in, maxInput); err != nil {
		return err
	}
	copied := src.startCopy(out)
	defer copied.wait()
	// The ByteRange starts with all of in, the bulk of the work: the
	// update is prepared on another core, when there is one, while this
	// goroutine hashes in, once for both attempts. Hashing here rather
	// than there keeps the wake-up of the other goroutine off the
	// critical path.
	prepared := make(chan preparedUpdate)
	go func() {
		// in may be a mapped file (see mappedRead); a fault reading it,
		// as any panic here, becomes an error through guard: no caller's
		// recover reaches this goroutine, and a panic would take the
		// whole gateway down.
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		var u *update
		err := guard(func() (err error) {
			u, err = prepareUpdate(ctx, in, maxInput, build)
			return err
		})
		prepared <- preparedUpdate{u, err}
	}()
	inHash := sha256.New()
	hashErr := src.hashInto(inHash)
	for attempt := 0; ; attempt++ {
		var u *update
		var err error
		if attempt == 0 {
			p := <-prepared
			u, err = p.u, p.err
			if hashErr != nil {
				return hashErr
			}
		} else {
			u, err = prepareUpdate(ctx, in, maxInput, build)
		}
		if err != nil {
			return err
		}
		h, err := inHash.(hash.Cloner).Clone()
		if err != nil {
			return err
		}
		h.Write(u.tail[:u.contentsStart])
		h.Write(u.tail[u.contentsEnd:])
		der, err := contents(h.Sum(nil))
		if err != nil {
			return err
		}
		if len(der) > *size {
			if attempt > 0 {
				return fmt.Errorf("pades: signature of %d bytes exceeds the %d reserved", len(der), *size)
			}
			*size = len(der) + 512
			continue
		}
		hex.Encode(u.tail[u.contentsStart+1:], der)
		if err := copied.finish(); err != nil {
			return err
		}
		_, err = out.Write(u.tail)
		return err
	}
}

// update is the incremental update that follows the original bytes, with
// its /ByteRange filled in and its /Contents placeholder, the hexadecimal
// string at tail[contentsStart:contentsEnd], still zeros.
type update struct {
	tail                       []byte
	contentsStart, contentsEnd int
}

// preparedUpdate is what prepareUpdate returned.
type preparedUpdate struct {
	u   *update
	err error
}

// prepareUpdate parses in, lets build add a signature dictionary, and
// writes the update.
func prepareUpdate(ctx context.Context, in []byte, maxInput int64, build func(*document) error) (*update, error) {
	d, err := withDocument(ctx, in, maxInput, build)
	if err != nil {
		return nil, err
	}
	defer d.f.Release()
	base := int64(len(in))
	tail := d.write(base)
	start, end := d.contentsAt, d.contentsAt+int64(2*d.sigSize+2)
	byteRange := fmt.Sprintf("[0 %d %d %d]", start, end, base+int64(len(tail))-end)
	if len(byteRange) > byteRangeWidth {
		return nil, fmt.Errorf("%w: file too large for a /ByteRange", ErrTooLarge)
	}
	copy(tail[d.byteRangeAt-base:], fmt.Sprintf("%-*s", byteRangeWidth, byteRange))
	return &update{tail: tail, contentsStart: int(start - base), contentsEnd: int(end - base)}, nil
}
