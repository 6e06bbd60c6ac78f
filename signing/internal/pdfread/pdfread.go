// Package pdfread reads PDF files (ISO 32000-2 §7.5) on behalf of the
// signing packages. Open reads lazily: the cross-reference sections and
// trailer, then only the objects asked for, with pdfcpu's object parser.
// Read parses everything with pdfcpu, which also repairs broken files,
// without pdfcpu's validation step, which mutates the model. Neither lets
// a pdfcpu panic escape, and both bound what streams may decompress to
// (DecodeLimitError): a few hundred kilobytes of Flate data (RFC 1950)
// can inflate to gigabytes.
package pdfread

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/pdfcpu/pdfcpu/pkg/filter"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// Config is pdfcpu's default configuration, built here rather than with
// model.NewDefaultConfiguration, which creates a configuration directory in
// the user's home as a side effect, with each stream bounded to maxDecoded
// bytes, encoded or decoded, when it is positive.
func Config(maxDecoded int64) *model.Configuration {
	limits := model.DefaultResourceLimits()
	if maxDecoded > 0 {
		limits.MaxStreamBytes = min(limits.MaxStreamBytes, maxDecoded)
		limits.MaxDecodeBytes = min(limits.MaxDecodeBytes, maxDecoded)
	}
	return &model.Configuration{
		Reader15:                  true,
		ValidationMode:            model.ValidationRelaxed,
		UnsupportedResourcePolicy: model.UnsupportedResourceSkip,
		Eol:                       types.EolLF,
		Offline:                   true,
		Limits:                    limits,
		Cmd:                       model.ADDSIGNATURE,
	}
}

// Read parses in, giving up when c is done or after a time that grows
// with the size of in: pdfcpu's repair of a broken cross-reference table
// can take minutes on hostile input. Each stream pdfcpu decodes while
// reading may decompress to maxDecoded bytes (see Config); Full bounds
// the object streams read afterwards.
func Read(c context.Context, in []byte, maxDecoded int64) (ctx *model.Context, err error) {
	c, cancel := context.WithTimeout(c, 3*time.Second+time.Duration(len(in)>>20)*time.Second)
	defer cancel()
	err = Guard(func() (err error) {
		ctx, err = pdfcpu.ReadWithContext(c, bytes.NewReader(in), Config(maxDecoded))
		return err
	})
	if err != nil && c.Err() != nil {
		return nil, fmt.Errorf("parsing took too long: %w", c.Err())
	}
	if errors.Is(err, filter.ErrDecodeLimitExceeded) {
		return nil, &DecodeLimitError{Limit: Config(maxDecoded).Limits.MaxDecodeBytes}
	}
	return ctx, err
}

// PanicError is a pdfcpu panic caught by Guard.
type PanicError struct {
	// Value is what pdfcpu panicked with.
	Value any
}

func (e *PanicError) Error() string { return fmt.Sprintf("pdfcpu failed: %v", e.Value) }

// Guard runs f, turning a panic into a *PanicError: pdfcpu panics on some
// malformed documents outside of its API wrappers, and that is still bad
// input, not a reason to crash the gateway.
func Guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r}
		}
	}()
	return f()
}

// xrefStart matches what startxref must point to: an xref table with its
// first subsection header and entry, or an xref stream object.
var xrefStart = regexp.MustCompile(`^\s*(xref\s*\d+ \d+\s+\d{10} \d{5} [fn]|\d+\s+\d+\s+obj)`)

// CheckStartXRef checks that the last startxref points to a
// cross-reference section. pdfcpu silently rebuilds a missing one by
// scanning, which is slow on hostile input, and an update chained to such
// a guess would not be read back the same way by other readers.
func CheckStartXRef(in []byte) error {
	_, err := StartXRef(in)
	return err
}

// StartXRef returns the offset the last startxref gives, counted from the
// start of the file, after checking that a cross-reference section is there.
func StartXRef(in []byte) (int64, error) {
	i := bytes.LastIndex(in, []byte("startxref"))
	if i < 0 {
		return 0, errors.New("no startxref")
	}
	fields := bytes.Fields(in[i+len("startxref") : min(len(in), i+len("startxref")+64)])
	if len(fields) == 0 {
		return 0, errors.New("startxref without an offset")
	}
	// Offsets count from the header, which may follow some junk.
	base := int64(max(0, bytes.Index(in[:min(len(in), 1024)], []byte("%PDF-"))))
	off, err := strconv.ParseInt(string(fields[0]), 10, 64)
	off += base
	if err != nil || off <= base || off >= int64(len(in)) || !xrefStart.Match(in[off:min(int64(len(in)), off+64)]) {
		return 0, fmt.Errorf("startxref %q does not point to a cross-reference section", fields[0])
	}
	return off, nil
}
