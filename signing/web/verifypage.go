package web

import (
	"errors"
	"io"
	"net/http"

	"github.com/parapheur/parapheur/signing/verdict"
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
	Files []verdict.File
}

func (s *Server) verifyRoutes(mux *http.ServeMux) {
	s.route(mux, "GET /verify", s.verifyPage)
	s.route(mux, "POST /verify", s.verifyUpload)
}

// newVerifyView starts the verification page for r, with its form.
func (s *Server) newVerifyView(w http.ResponseWriter, r *http.Request) *verifyView {
	b := s.page(w, r, nil, s.link("verify"))
	return &verifyView{base: b, CSRF: s.csrfToken(s.csrfSeed(w, r), verifyCSRFLink), Action: s.link("verify"),
		MaxFiles: MaxVerifyFiles, MaxSize: verdict.ByteSize(s.cfg.MaxUpload, b.Lang)}
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
		v.Files = append(v.Files, s.checker.Check(r.Context(), f.name, f.data, v.Lang))
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
