// Package verdict tells people, in French or English, what package verify
// found in a PDF file (SPEC §6): whether each signature is intact, who
// signed and when, at which PAdES level (ETSI EN 319 142-1), whether this
// gateway's CA issued the certificate, which envelope the file belongs to
// and whether it is that envelope's final version, and whether the audit
// trails it embeds hold their chain. The verification page and the reply
// to a mail sent to the verification address both say it with this
// package, so they say it alike.
//
// The words a report shares with the pages (times, sizes, envelope
// states, audit events) live here too.
package verdict

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"

	"github.com/parapheur/parapheur/signing/verify"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
)

// File is the report on one file in one language. It is plain data, so
// that a mail job carries it from the inbox to the mail sender.
type File struct {
	// Name is the file name; Size its size in words; SHA256 its hex
	// SHA-256.
	Name   string `json:"name"`
	Size   string `json:"size"`
	SHA256 string `json:"sha256"`
	// Unreadable says why the file could not be checked at all; the
	// other fields are then empty.
	Unreadable string `json:"unreadable,omitempty"`
	// Verdict says whether every signature is intact and every embedded
	// trail whole; Valid tells the same for a program.
	Verdict string `json:"verdict,omitempty"`
	Valid   bool   `json:"valid"`
	// Signatures are in file order, earliest first.
	Signatures []Signature `json:"signatures,omitempty"`
	// Trails are the embedded audit trails.
	Trails []Trail `json:"trails,omitempty"`
	// Envelope names the envelope the gateway's signatures name, and
	// Placement where the file stands in it; Final tells that it is the
	// envelope's final version.
	Envelope  string `json:"envelope,omitempty"`
	Placement string `json:"placement,omitempty"`
	Final     bool   `json:"final,omitempty"`
}

// Signature is the report on one signature.
type Signature struct {
	// Signer and Email name the certificate's subject.
	Signer string `json:"signer"`
	Email  string `json:"email,omitempty"`
	// When is the signing time in words, empty when unknown; TimeStamped
	// tells that a time-stamp, not the signer, vouches for it.
	When        string `json:"when,omitempty"`
	TimeStamped bool   `json:"time_stamped,omitempty"`
	// Level is the PAdES baseline level; Reason the /Reason entry.
	Level  string `json:"level"`
	Reason string `json:"reason,omitempty"`
	// Verdict says whether the signature is intact; Intact tells the same
	// for a program, and Problem says why not.
	Verdict string `json:"verdict"`
	Intact  bool   `json:"intact"`
	Problem string `json:"problem,omitempty"`
	// Issuer says whether this gateway issued the certificate; Issued
	// tells the same for a program.
	Issuer string `json:"issuer"`
	Issued bool   `json:"issued,omitempty"`
	// Changes says whether the file was changed after the signature;
	// Covers tells that it covers the whole file.
	Changes string `json:"changes"`
	Covers  bool   `json:"covers,omitempty"`
}

// Trail is the report on one embedded audit trail.
type Trail struct {
	// Name is the attachment's name.
	Name string `json:"name"`
	// Verdict says whether its chain holds, or where it breaks; Intact
	// tells the same for a program.
	Verdict string `json:"verdict"`
	Intact  bool   `json:"intact"`
}

// Placement is where a file stands in the envelope its signatures name.
type Placement struct {
	Envelope *workflow.Envelope
	// Document is the index of the document the file is a version of,
	// -1 when it is none of their current versions.
	Document int
	// Final: the envelope is completed and the file is the document's
	// current version, the one sent to every party.
	Final bool
	// Certificate: the file is the envelope's certificate of completion.
	Certificate bool
}

// Locate tells where the file of SHA-256 sum (hex) stands in env.
func Locate(env *workflow.Envelope, sum string) Placement {
	p := Placement{Envelope: env, Document: -1, Certificate: env.Certificate == sum}
	for i, d := range env.Documents {
		if d.Current == sum {
			p.Document = i
			p.Final = env.State == workflow.StateCompleted
		}
	}
	return p
}

// Finder finds where a file stands in an envelope (ceremony.Ceremony).
type Finder interface {
	// EnvelopeOfReason reads the envelope ID from a signature's /Reason
	// as the gateway writes it; ok is false for any other text.
	EnvelopeOfReason(reason string) (id string, ok bool)
	// FindDocument tells where the file of SHA-256 sum (hex) stands in
	// envelope envelopeID: store.ErrNotFound when there is no such
	// envelope.
	FindDocument(ctx context.Context, envelopeID, sum string) (Placement, error)
}

// Checker checks files and reports on them in words.
type Checker struct {
	// CA is the gateway's CA certificate; nil leaves the issuer unchecked.
	CA *x509.Certificate
	// Finder looks up the envelope a file belongs to; nil leaves it
	// unnamed.
	Finder Finder
	// Location is the time zone times are told in; nil means UTC.
	Location *time.Location
	// Log receives what the reader is not told (why a file is unreadable,
	// a failed lookup); nil means slog.Default().
	Log *slog.Logger
}

// Check checks the file data, called name, and reports on it in lang. A
// file that cannot be read as a PDF is a report that says so, not an
// error: the reader sent it and must hear about it.
func (c *Checker) Check(ctx context.Context, name string, data []byte, lang string) File {
	sum := sha256.Sum256(data)
	out := File{Name: name, Size: ByteSize(int64(len(data)), lang), SHA256: hex.EncodeToString(sum[:])}
	if out.Name == "" {
		out.Name = Say(lang, "verify unnamed")
	}
	rep, err := verify.Verify(data, c.CA)
	if err != nil {
		out.Unreadable = Say(lang, "verify unreadable")
		if errors.Is(err, verify.ErrEncrypted) {
			out.Unreadable = Say(lang, "verify encrypted")
		}
		c.log().Debug("verdict: file not readable", "sha256", out.SHA256, "err", err)
		return out
	}
	out.Valid = rep.Valid()
	switch n := len(rep.Signatures); {
	case n == 0:
		out.Verdict = Say(lang, "verify no signature")
	case rep.ChangedUnsigned:
		out.Verdict = Say(lang, "verify changed unsigned")
	case !out.Valid:
		out.Verdict = Say(lang, "verify invalid")
	case n == 1:
		out.Verdict = Say(lang, "verify valid one")
	default:
		out.Verdict = Say(lang, "verify valid", n)
	}
	for i, sig := range rep.Signatures {
		last := i == len(rep.Signatures)-1
		out.Signatures = append(out.Signatures, c.signature(sig, lang, last && rep.ChangedUnsigned))
	}
	c.Place(ctx, &out, rep, lang)
	for _, t := range rep.Trails {
		tv := Trail{Name: t.Name, Intact: t.Intact()}
		switch {
		case t.Intact():
			tv.Verdict = Say(lang, "verify trail intact", t.Records)
		case t.Broken != nil:
			tv.Verdict = Say(lang, "verify trail broken at", t.Broken.Seq, AuditEvent(t.Broken.Type, lang), LongTime(t.Broken.Time, c.location(), lang), t.Problem)
		default:
			tv.Verdict = Say(lang, "verify trail broken", t.Problem)
		}
		out.Trails = append(out.Trails, tv)
	}
	return out
}

// signature reports on one signature in lang; unsigned tells that it is
// the last and the file was changed after it (Report.ChangedUnsigned).
func (c *Checker) signature(sig verify.Signature, lang string, unsigned bool) Signature {
	sv := Signature{Signer: sig.Signer, Email: sig.Email, Level: sig.Level, Reason: sig.Reason,
		TimeStamped: sig.TimeStamped, Intact: sig.Intact, Problem: sig.Problem, Issued: sig.IssuedByCA,
		Covers: sig.CoversWholeFile}
	sv.When = LongTime(sig.Time, c.location(), lang)
	if sig.Intact {
		sv.Verdict = Say(lang, "verify intact")
	} else {
		sv.Verdict = Say(lang, "verify broken")
	}
	switch {
	case c.CA == nil:
		sv.Issuer = Say(lang, "verify issuer unknown")
	case sig.IssuedByCA:
		sv.Issuer = Say(lang, "verify issuer ours")
	default:
		sv.Issuer = Say(lang, "verify issuer other")
	}
	switch {
	case sig.CoversWholeFile && !sig.Intact:
		sv.Changes = Say(lang, "verify covers broken")
	case sig.CoversWholeFile:
		sv.Changes = Say(lang, "verify covers")
	case sig.LaterSignatures > 0:
		sv.Changes = Say(lang, "verify later sigs", sig.LaterSignatures)
	case unsigned:
		sv.Changes = Say(lang, "verify changed")
	default:
		sv.Changes = Say(lang, "verify validation data")
	}
	return sv
}

// Place tells in out (Envelope, Placement, Final) which envelope the file
// of report rep and hash out.SHA256 belongs to and whether it is its final
// version: the envelope is the one an intact signature of this gateway
// names in its /Reason (the store has no index of documents by their hash,
// but finds an envelope by its ID).
func (c *Checker) Place(ctx context.Context, out *File, rep *verify.Report, lang string) {
	if c.Finder == nil {
		return
	}
	id := ""
	for _, sig := range rep.Signatures {
		if sig.Intact && sig.IssuedByCA {
			if e, ok := c.Finder.EnvelopeOfReason(sig.Reason); ok {
				id = e
				break
			}
		}
	}
	if id == "" {
		return
	}
	p, err := c.Finder.FindDocument(ctx, id, out.SHA256)
	switch {
	case errors.Is(err, store.ErrNotFound):
		out.Envelope = Say(lang, "verify envelope unknown", id)
		return
	case err != nil:
		c.log().Warn("verdict: envelope of a verified file not looked up", "envelope", id, "err", err)
		out.Envelope = Say(lang, "verify envelope unavailable", id)
		return
	}
	out.Envelope = Say(lang, "verify envelope", id, EnvelopeState(p.Envelope.State, lang))
	out.Final = p.Final
	switch {
	case p.Certificate:
		out.Final = true
		out.Placement = Say(lang, "verify certificate")
	case p.Document < 0 && rep.ChangedUnsigned:
		out.Placement = Say(lang, "verify modified copy")
	case p.Document < 0:
		out.Placement = Say(lang, "verify not current")
	case p.Final:
		out.Placement = Say(lang, "verify final", p.Document+1, p.Envelope.Documents[p.Document].Name)
	default:
		out.Placement = Say(lang, "verify current", p.Document+1, p.Envelope.Documents[p.Document].Name)
	}
}

func (c *Checker) location() *time.Location {
	if c.Location == nil {
		return time.UTC
	}
	return c.Location
}

func (c *Checker) log() *slog.Logger {
	if c.Log == nil {
		return slog.Default()
	}
	return c.Log
}
