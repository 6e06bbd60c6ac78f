// Package verify checks the signatures of a PDF file (ISO 32000-2 §12.8)
// and classifies PAdES ones by baseline level (ETSI EN 319 142-1: B-B,
// B-T, B-LT, B-LTA): for each, who signed and when, whether the signed
// bytes are intact, whether the gateway's CA issued the certificate, and
// whether the file was changed after it. It also checks the hash chain of
// audit trails (package workflow/audit), in a JSON file or embedded in a
// PDF as a file attachment (ISO 32000-2 §7.11.4).
package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/parapheur/parapheur/signing/cms"
	"github.com/parapheur/parapheur/signing/internal/pdfread"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// Exit codes of `parapheur verify`.
const (
	ExitValid      = 0 // every signature is intact
	ExitInvalid    = 1 // some signature is not, or there is none
	ExitUnreadable = 2 // the file could not be read as a PDF
)

// ErrUnreadable wraps the reason a file could not be checked at all.
var ErrUnreadable = errors.New("verify: unreadable PDF file")

// ErrEncrypted is the reason, beside ErrUnreadable, for an encrypted file
// that could not be read: one saved without a password could be.
var ErrEncrypted = errors.New("verify: encrypted PDF file")

// Levels of a signature. A document time-stamp has its own kind.
const (
	LevelBB           = "B-B"
	LevelBT           = "B-T"
	LevelBLT          = "B-LT"
	LevelBLTA         = "B-LTA"
	LevelDocTimestamp = "document time-stamp"
	LevelNotPAdES     = "not PAdES"
)

// Signature is what was found about one signature.
type Signature struct {
	// Field is the signature field's name.
	Field string
	// SubFilter is the signature format, as /SubFilter names it.
	SubFilter string
	// Signer is the signer certificate's subject common name (the TSA's
	// for a document time-stamp); Email its first email address.
	Signer, Email string
	// Certificate is the signer's certificate, nil if not embedded.
	Certificate *x509.Certificate `json:"-"`
	// Time is the time-stamp's time when there is one, else the claimed
	// time (/M); TimeStamped tells which.
	Time        time.Time
	TimeStamped bool
	// Reason is the /Reason entry.
	Reason string
	// Level is the PAdES baseline level, LevelDocTimestamp or
	// LevelNotPAdES.
	Level string
	// Intact tells whether the signature verifies over its byte range;
	// Problem says why not.
	Intact  bool
	Problem string
	// IssuedByCA tells whether the given CA issued the signer's
	// certificate.
	IssuedByCA bool
	// ChangedAfter tells whether bytes were appended after the signed
	// range (later signatures, validation data, or other edits);
	// CoversWholeFile is its negation.
	ChangedAfter    bool
	CoversWholeFile bool
	// LaterSignatures counts the signatures (document time-stamps
	// included) made after this one, which account for some or all of
	// the later changes.
	LaterSignatures int

	end int64 // end of the signed range
}

// Report is the result of checking one file.
type Report struct {
	// Size is the file size in bytes.
	Size int64
	// Signatures are in file order, earliest first.
	Signatures []Signature
	// HasDSS tells whether the file has a document security store;
	// DSSCerts, DSSCRLs and DSSOCSPs count what it holds.
	HasDSS                      bool
	DSSCerts, DSSCRLs, DSSOCSPs int
	// Trails are the audit trails embedded as file attachments named
	// like TrailPattern, as the completion certificate carries one.
	Trails []Trail
	// ChangedUnsigned tells that the file was changed after its last
	// signature by more than validation data (see unsignedTail): what it
	// shows is not what was signed, and no signature vouches for it.
	ChangedUnsigned bool
}

// Valid tells whether the file has signatures and all are intact, nothing
// but validation data was added after the last one, and whether the chain
// of every embedded audit trail holds.
func (r *Report) Valid() bool {
	if len(r.Signatures) == 0 || r.ChangedUnsigned {
		return false
	}
	for _, s := range r.Signatures {
		if !s.Intact {
			return false
		}
	}
	for _, t := range r.Trails {
		if !t.Intact() {
			return false
		}
	}
	return true
}

// ExitCode is ExitValid or ExitInvalid, as `parapheur verify` exits.
func (r *Report) ExitCode() int {
	if r.Valid() {
		return ExitValid
	}
	return ExitInvalid
}

// File checks the PDF file at path; ca, if not nil, is the gateway's CA.
func File(path string, ca *x509.Certificate) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreadable, err)
	}
	return Verify(data, ca)
}

// Verify checks the PDF file data; ca, if not nil, is the gateway's CA.
// An error means the file could not be read at all (ErrUnreadable).
func Verify(data []byte, ca *x509.Certificate) (*Report, error) {
	if !bytes.Contains(data[:min(len(data), 1024)], []byte("%PDF-")) {
		return nil, fmt.Errorf("%w: not a PDF file", ErrUnreadable)
	}
	if err := pdfread.CheckStartXRef(data); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreadable, err)
	}
	ctx, err := pdfread.Read(context.Background(), data, 0) // pdfcpu's own limit
	if err != nil {
		if _, oerr := pdfread.Open(context.Background(), data, 0); errors.Is(oerr, pdfread.ErrEncrypted) {
			return nil, fmt.Errorf("%w: %w (%v)", ErrUnreadable, ErrEncrypted, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrUnreadable, err)
	}
	r := &Report{Size: int64(len(data))}
	var dicts []sigField
	var dssCerts [][]byte
	if err := pdfread.Guard(func() error {
		var err error
		dicts, err = signatureFields(ctx)
		if err != nil {
			return err
		}
		dssCerts = dss(ctx, r)
		r.Trails = embeddedTrails(ctx)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreadable, err)
	}
	for _, f := range dicts {
		r.Signatures = append(r.Signatures, check(data, f, ca))
	}
	sort.SliceStable(r.Signatures, func(i, j int) bool { return r.Signatures[i].end < r.Signatures[j].end })
	for i := range r.Signatures {
		for _, later := range r.Signatures[i+1:] {
			if later.end > r.Signatures[i].end {
				r.Signatures[i].LaterSignatures++
			}
		}
	}
	classify(r, dssCerts)
	if len(r.Signatures) > 0 {
		last := r.Signatures[len(r.Signatures)-1].end
		err := pdfread.Guard(func() error {
			var err error
			r.ChangedUnsigned, err = unsignedTail(data, ctx, last)
			return err
		})
		if err != nil {
			// What was added after the last signature cannot be told
			// apart from the signed revision: nothing vouches for it.
			r.ChangedUnsigned = true
		}
	}
	return r, nil
}

// classify upgrades B-T signatures whose certificate is in the DSS to
// B-LT, and B-LT ones that a later document time-stamp covers to B-LTA.
func classify(r *Report, dssCerts [][]byte) {
	var lastDocTS int64 = -1
	for _, s := range r.Signatures {
		if s.Level == LevelDocTimestamp && s.Intact {
			lastDocTS = max(lastDocTS, s.end)
		}
	}
	for i := range r.Signatures {
		s := &r.Signatures[i]
		if s.Level != LevelBT || s.Certificate == nil {
			continue
		}
		for _, c := range dssCerts {
			if bytes.Equal(c, s.Certificate.Raw) {
				s.Level = LevelBLT
				break
			}
		}
		if s.Level == LevelBLT && lastDocTS > s.end {
			s.Level = LevelBLTA
		}
	}
}

// sigField is a signature field with its value.
type sigField struct {
	name string
	v    types.Dict
}

// signatureFields returns the signed signature fields of the AcroForm.
func signatureFields(ctx *model.Context) ([]sigField, error) {
	root, err := ctx.Catalog()
	if err != nil || root == nil {
		return nil, fmt.Errorf("no document catalog (%v)", err)
	}
	form, err := ctx.DereferenceDict(root["AcroForm"])
	if err != nil || form == nil {
		return nil, err
	}
	fields, err := ctx.DereferenceArray(form["Fields"])
	if err != nil {
		return nil, err
	}
	var out []sigField
	seen := map[int]bool{}
	var walk func(arr types.Array, parentName, parentFT string, depth int) error
	walk = func(arr types.Array, parentName, parentFT string, depth int) error {
		if depth > 32 {
			return errors.New("form field tree deeper than 32")
		}
		for _, o := range arr {
			if ref, ok := o.(types.IndirectRef); ok {
				if seen[ref.ObjectNumber.Value()] {
					continue
				}
				seen[ref.ObjectNumber.Value()] = true
			}
			f, err := ctx.DereferenceDict(o)
			if err != nil || f == nil {
				continue
			}
			name := parentName
			if t, err := ctx.DereferenceStringOrHexLiteral(f["T"], model.V10, nil); err == nil && t != "" {
				if name != "" {
					name += "."
				}
				name += t
			}
			ft := parentFT
			if n := f.NameEntry("FT"); n != nil {
				ft = *n
			}
			if kids, err := ctx.DereferenceArray(f["Kids"]); err == nil && len(kids) > 0 {
				if err := walk(kids, name, ft, depth+1); err != nil {
					return err
				}
			}
			if ft != "Sig" {
				continue
			}
			if v, err := ctx.DereferenceDict(f["V"]); err == nil && v != nil {
				out = append(out, sigField{name: name, v: v})
			}
		}
		return nil
	}
	return out, walk(fields, "", "", 0)
}

// dss returns the certificates of the document security store, and
// records what it holds in r.
func dss(ctx *model.Context, r *Report) [][]byte {
	root, err := ctx.Catalog()
	if err != nil {
		return nil
	}
	d, err := ctx.DereferenceDict(root["DSS"])
	if err != nil || d == nil {
		return nil
	}
	r.HasDSS = true
	crls, _ := ctx.DereferenceArray(d["CRLs"])
	ocsps, _ := ctx.DereferenceArray(d["OCSPs"])
	r.DSSCRLs, r.DSSOCSPs = len(crls), len(ocsps)
	arr, _ := ctx.DereferenceArray(d["Certs"])
	var certs [][]byte
	for _, o := range arr {
		sd, _, err := ctx.DereferenceStreamDict(o)
		if err != nil || sd == nil {
			continue
		}
		if err := sd.Decode(); err == nil {
			certs = append(certs, sd.Content)
		}
	}
	r.DSSCerts = len(certs)
	return certs
}

// check verifies one signature over data.
func check(data []byte, f sigField, ca *x509.Certificate) Signature {
	s := Signature{Field: f.name, Level: LevelNotPAdES}
	if n := f.v.NameEntry("SubFilter"); n != nil {
		s.SubFilter = *n
	}
	if m, ok := textEntry(f.v, "M"); ok {
		if t, ok := types.DateTime(m, true); ok {
			s.Time = t
		}
	}
	s.Reason, _ = textEntry(f.v, "Reason")
	if name, ok := textEntry(f.v, "Name"); ok {
		s.Signer = name
	}
	content, der, err := signedRange(data, f.v, &s)
	if err != nil {
		s.Problem = err.Error()
		return s
	}
	switch s.SubFilter {
	case "ETSI.RFC3161":
		s.Level = LevelDocTimestamp
		err = checkDocTimestamp(&s, content, der)
	case "ETSI.CAdES.detached", "adbe.pkcs7.detached":
		if s.SubFilter == "ETSI.CAdES.detached" {
			s.Level = LevelBB
		}
		err = checkCMS(&s, content, der)
	default:
		err = fmt.Errorf("unsupported /SubFilter %q", s.SubFilter)
	}
	// Who issued the certificate is told even for a broken signature: a
	// broken seal of ours is a different alarm from a stranger's.
	if ca != nil && s.Certificate != nil {
		s.IssuedByCA = issuedBy(s.Certificate, ca, s.Time)
	}
	if err != nil {
		s.Problem = err.Error()
		return s
	}
	s.Intact = true
	return s
}

// signedRange checks the /ByteRange and returns the bytes it covers (as
// two slices of data) and the DER of /Contents.
func signedRange(data []byte, v types.Dict, s *Signature) ([2][]byte, []byte, error) {
	var none [2][]byte
	arr := v.ArrayEntry("ByteRange")
	if len(arr) != 4 {
		return none, nil, errors.New("no /ByteRange of four numbers")
	}
	var br [4]int64
	for i, o := range arr {
		n, ok := o.(types.Integer)
		if !ok || n < 0 {
			return none, nil, errors.New("/ByteRange holds a non-integer")
		}
		br[i] = int64(n)
	}
	size := int64(len(data))
	if br[0] != 0 || br[1] <= 0 || br[2] <= br[1]+1 || br[2] > size || br[3] > size-br[2] {
		return none, nil, fmt.Errorf("/ByteRange %v does not fit the %d-byte file", br, size)
	}
	s.end = br[2] + br[3]
	s.ChangedAfter = s.end < size
	s.CoversWholeFile = !s.ChangedAfter
	hole := data[br[1]:br[2]]
	if hole[0] != '<' || hole[len(hole)-1] != '>' {
		return none, nil, errors.New("the unsigned gap is not the /Contents hex string")
	}
	der := make([]byte, (len(hole)-2)/2)
	if _, err := hex.Decode(der, bytes.TrimRight(hole[1:len(hole)-1], "\r\n\t ")); err != nil {
		return none, nil, fmt.Errorf("/Contents: %v", err)
	}
	return [2][]byte{data[:br[1]], data[br[2]:s.end]}, der, nil
}

func checkCMS(s *Signature, content [2][]byte, der []byte) error {
	p, err := cms.Parse(der)
	if err != nil {
		return err
	}
	if p.Signer != nil {
		s.Certificate = p.Signer
		s.Signer = p.Signer.Subject.CommonName
		if len(p.Signer.EmailAddresses) > 0 {
			s.Email = p.Signer.EmailAddresses[0]
		}
	}
	h := sha256.New()
	h.Write(content[0])
	h.Write(content[1])
	if err := p.Verify(h.Sum(nil)); err != nil {
		return err
	}
	if s.Level == LevelBB && p.HasSigningTime {
		s.Level = LevelNotPAdES // PAdES baseline forbids signing-time
	}
	if p.Timestamp == nil {
		return nil
	}
	ts, err := timestamp.Parse(p.Timestamp)
	if err != nil {
		return fmt.Errorf("signature time-stamp: %v", err)
	}
	if err := imprintMatches(ts, p.Signature()); err != nil {
		return fmt.Errorf("signature time-stamp: %v", err)
	}
	s.Time, s.TimeStamped = ts.Time, true
	if s.Level == LevelBB {
		s.Level = LevelBT
	}
	return nil
}

func checkDocTimestamp(s *Signature, content [2][]byte, der []byte) error {
	// The token is followed by the placeholder's zero padding.
	var token asn1.RawValue
	if _, err := asn1.Unmarshal(der, &token); err != nil {
		return fmt.Errorf("document time-stamp: %v", err)
	}
	ts, err := timestamp.Parse(token.FullBytes)
	if err != nil {
		return fmt.Errorf("document time-stamp: %v", err)
	}
	if len(ts.Certificates) > 0 {
		s.Certificate = ts.Certificates[0]
		s.Signer = ts.Certificates[0].Subject.CommonName
	}
	s.Time, s.TimeStamped = ts.Time, true
	return imprintMatches(ts, content[0], content[1])
}

// imprintMatches checks that ts's message imprint is the hash of parts.
func imprintMatches(ts *timestamp.Timestamp, parts ...[]byte) error {
	if ts.HashAlgorithm != crypto.SHA256 && ts.HashAlgorithm != crypto.SHA384 && ts.HashAlgorithm != crypto.SHA512 {
		return fmt.Errorf("hash algorithm %v not accepted", ts.HashAlgorithm)
	}
	h := ts.HashAlgorithm.New()
	for _, p := range parts {
		h.Write(p)
	}
	if !bytes.Equal(h.Sum(nil), ts.HashedMessage) {
		return errors.New("the token does not cover the signed data")
	}
	return nil
}

// issuedBy tells whether cert chains to ca, at the signature's time (a
// one-time certificate expires within the hour).
func issuedBy(cert, ca *x509.Certificate, at time.Time) bool {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if at.IsZero() {
		at = cert.NotBefore.Add(time.Minute)
	}
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

// textEntry returns a text string entry of d.
func textEntry(d types.Dict, key string) (string, bool) {
	o, ok := d[key]
	if !ok {
		return "", false
	}
	s, err := types.StringOrHexLiteral(o)
	if err != nil || s == nil {
		return "", false
	}
	return *s, true
}
