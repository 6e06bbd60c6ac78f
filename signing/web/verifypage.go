package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"

	"github.com/parapheur/parapheur/signing/ceremony"
	"github.com/parapheur/parapheur/signing/verify"
	"github.com/parapheur/parapheur/store"
)

// The verification page (PUBLIC_URL/verify, SPEC §6) checks PDFs anyone
// uploads: their signatures, whether this gateway's CA issued them, and
// the audit trails they embed. Nothing uploaded is stored: the files are
// read into memory, checked, and forgotten with the answer.

// DefaultMaxUpload is Config.MaxUpload when it is zero.
const DefaultMaxUpload = 25 << 20

// MaxVerifyFiles bounds the files of one upload.
const MaxVerifyFiles = 10

// verifyCSRFLink is what the upload form's CSRF token is bound to, in
// place of a link token (which is never empty nor contains a NUL).
const verifyCSRFLink = "\x00verify"

// multipartOverhead is the room left, over the files' bytes, for the
// multipart boundaries, part headers and the CSRF field.
const multipartOverhead = 64 << 10

// verifyView is the verification page: the form, and after an upload the
// report of each file.
type verifyView struct {
	base
	CSRF   string
	Action string
	// MaxFiles and MaxSize say the upload's limits.
	MaxFiles int
	MaxSize  string
	// Error is a refusal of the whole upload, shown next to the form.
	Error string
	Files []verifiedFile
}

// verifiedFile is one uploaded file's report.
type verifiedFile struct {
	Name, Size, SHA256 string
	// Unreadable says why the file could not be checked at all.
	Unreadable string
	// Verdict says whether every signature is intact and every embedded
	// trail whole; Valid tells the same for the page's style.
	Verdict    string
	Valid      bool
	Signatures []signatureView
	Trails     []trailView
	// Envelope names the envelope the gateway's signatures name, and
	// Placement where the file stands in it; Final tells that it is the
	// envelope's final version.
	Envelope, Placement string
	Final               bool
}

type signatureView struct {
	Signer, Email, When, Level, Reason string
	TimeStamped                        bool
	Intact                             bool
	Problem                            string
	// Issuer says whether this gateway issued the certificate.
	Issuer string
	// Issued tells the same for the page's style.
	Issued bool
	// Changes says whether the file was changed after the signature.
	Changes string
	// Covers tells that it covers the whole file.
	Covers bool
}

type trailView struct {
	Name    string
	Intact  bool
	Verdict string
}

func (s *Server) verifyRoutes(mux *http.ServeMux) {
	s.route(mux, "GET /verify", s.verifyPage)
	s.route(mux, "POST /verify", s.verifyUpload)
}

// newVerifyView starts the verification page for r, with its form.
func (s *Server) newVerifyView(w http.ResponseWriter, r *http.Request) *verifyView {
	b := s.page(w, r, nil, s.link("verify"))
	return &verifyView{base: b, CSRF: s.csrfToken(s.csrfSeed(w, r), verifyCSRFLink), Action: s.link("verify"),
		MaxFiles: MaxVerifyFiles, MaxSize: byteSize(s.cfg.MaxUpload, b.Lang)}
}

func (s *Server) verifyPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, s.pages.verify, http.StatusOK, s.newVerifyView(w, r))
}

// upload is one file of the form.
type upload struct {
	name string
	data []byte
}

// errTooManyFiles: more files than MaxVerifyFiles.
var errTooManyFiles = errors.New("too many files")

func (s *Server) verifyUpload(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxUpload+multipartOverhead)
	files, token, err := s.readUploads(r)
	v := s.newVerifyView(w, r)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		v.Error = v.T("verify too big", v.MaxSize)
		s.render(w, s.pages.verify, http.StatusRequestEntityTooLarge, v)
		return
	case errors.Is(err, errTooManyFiles):
		v.Error = v.T("verify too many", MaxVerifyFiles)
		s.render(w, s.pages.verify, http.StatusRequestEntityTooLarge, v)
		return
	case err != nil:
		s.log.Debug("web: upload not read", "err", err)
		v.Error = v.T("bad form")
		s.render(w, s.pages.verify, http.StatusBadRequest, v)
		return
	case !s.csrfTokenValid(r, token, verifyCSRFLink):
		v.Error = v.T("bad form")
		s.render(w, s.pages.verify, http.StatusForbidden, v)
		return
	case len(files) == 0:
		v.Error = v.T("verify none")
		s.render(w, s.pages.verify, http.StatusBadRequest, v)
		return
	}
	for _, f := range files {
		v.Files = append(v.Files, s.verifyFile(r.Context(), f, &v.base))
	}
	s.render(w, s.pages.verify, http.StatusOK, v)
}

// readUploads reads the multipart form of r: the files of the "files"
// field, in memory (r.Body is bounded), and the CSRF token. A file input
// left empty sends a part with no name and no bytes, which is skipped.
func (s *Server) readUploads(r *http.Request) ([]upload, string, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, "", err
	}
	var files []upload
	token := ""
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return files, token, nil
		}
		if err != nil {
			return nil, "", err
		}
		switch p.FormName() {
		case csrfField:
			b, err := io.ReadAll(io.LimitReader(p, 512))
			if err != nil {
				return nil, "", err
			}
			token = string(b)
		case "files":
			data, err := io.ReadAll(p)
			if err != nil {
				return nil, "", err
			}
			if p.FileName() == "" && len(data) == 0 {
				continue
			}
			if len(files) == MaxVerifyFiles {
				return nil, "", errTooManyFiles
			}
			files = append(files, upload{name: p.FileName(), data: data})
		}
		if err := p.Close(); err != nil {
			return nil, "", err
		}
	}
}

// verifyFile checks one uploaded file and writes its report in b's
// language.
func (s *Server) verifyFile(ctx context.Context, f upload, b *base) verifiedFile {
	sum := sha256.Sum256(f.data)
	out := verifiedFile{Name: f.name, Size: byteSize(int64(len(f.data)), b.Lang), SHA256: hex.EncodeToString(sum[:])}
	if out.Name == "" {
		out.Name = b.T("verify unnamed")
	}
	rep, err := verify.Verify(f.data, s.cfg.CACert)
	if err != nil {
		out.Unreadable = b.T("verify unreadable")
		s.log.Debug("web: uploaded file not readable", "sha256", out.SHA256, "err", err)
		return out
	}
	out.Valid = rep.Valid()
	switch n := len(rep.Signatures); {
	case n == 0:
		out.Verdict = b.T("verify no signature")
	case !out.Valid:
		out.Verdict = b.T("verify invalid")
	case n == 1:
		out.Verdict = b.T("verify valid one")
	default:
		out.Verdict = b.T("verify valid", n)
	}
	for _, sig := range rep.Signatures {
		sv := signatureView{Signer: sig.Signer, Email: sig.Email, Level: sig.Level, Reason: sig.Reason,
			TimeStamped: sig.TimeStamped, Intact: sig.Intact, Problem: sig.Problem, Issued: sig.IssuedByCA,
			Covers: sig.CoversWholeFile}
		if !sig.Time.IsZero() {
			sv.When = b.When(sig.Time)
		}
		switch {
		case s.cfg.CACert == nil:
			sv.Issuer = b.T("verify issuer unknown")
		case sig.IssuedByCA:
			sv.Issuer = b.T("verify issuer ours")
		default:
			sv.Issuer = b.T("verify issuer other")
		}
		switch {
		case sig.CoversWholeFile:
			sv.Changes = b.T("verify covers")
		case sig.LaterSignatures > 0:
			sv.Changes = b.T("verify later sigs", sig.LaterSignatures)
		default:
			sv.Changes = b.T("verify changed")
		}
		out.Signatures = append(out.Signatures, sv)
	}
	s.place(ctx, &out, rep, b)
	for _, t := range rep.Trails {
		tv := trailView{Name: t.Name, Intact: t.Intact()}
		switch {
		case t.Intact():
			tv.Verdict = b.T("verify trail intact", t.Records)
		case t.Broken != nil:
			tv.Verdict = b.T("verify trail broken at", t.Broken.Seq, wordOf(auditWords, t.Broken.Type, b.Lang), b.When(t.Broken.Time), t.Problem)
		default:
			tv.Verdict = b.T("verify trail broken", t.Problem)
		}
		out.Trails = append(out.Trails, tv)
	}
	return out
}

// place tells which envelope the file belongs to and whether it is its
// final version: the envelope is the one an intact signature of this
// gateway names in its /Reason (the store has no index of documents by
// their hash, but finds an envelope by its ID).
func (s *Server) place(ctx context.Context, out *verifiedFile, rep *verify.Report, b *base) {
	id := ""
	for _, sig := range rep.Signatures {
		if sig.Intact && sig.IssuedByCA {
			if e, ok := ceremony.EnvelopeOfReason(sig.Reason); ok {
				id = e
				break
			}
		}
	}
	if id == "" {
		return
	}
	p, err := s.cer.FindDocument(ctx, id, out.SHA256)
	switch {
	case errors.Is(err, store.ErrNotFound):
		out.Envelope = b.T("verify envelope unknown", id)
		return
	case err != nil:
		s.log.Warn("web: envelope of a verified file not looked up", "envelope", id, "err", err)
		out.Envelope = b.T("verify envelope unavailable", id)
		return
	}
	out.Envelope = b.T("verify envelope", id, b.EnvelopeState(p.Envelope.State))
	out.Final = p.Final
	switch {
	case p.Document < 0:
		out.Placement = b.T("verify not current")
	case p.Final:
		out.Placement = b.T("verify final", p.Document+1, p.Envelope.Documents[p.Document].Name)
	default:
		out.Placement = b.T("verify current", p.Document+1, p.Envelope.Documents[p.Document].Name)
	}
}
