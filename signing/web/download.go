package web

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"mime"
	"net/http"
	"strconv"

	"github.com/parapheur/parapheur/signing/ceremony"
	"github.com/parapheur/parapheur/signing/certificate"
	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

// downloadRoutes registers the download page of the final mails
// (/d/TOKEN): the final documents, the certificate and, for the sender and
// the archivists, the audit trail, until the link expires.
func (s *Server) downloadRoutes(mux *http.ServeMux) {
	s.route(mux, "GET /d/{token}", s.downloadPage)
	s.route(mux, "GET /d/{token}/documents/{n}", s.downloadDocument)
	s.route(mux, "GET /d/{token}/certificate", s.downloadCertificate)
	s.route(mux, "GET /d/{token}/audit", s.downloadAudit)
}

// downloadView is the download page, or, once its link expired, the page
// that says so.
type downloadView struct {
	base
	Env  *workflow.Envelope
	Docs []docLink
	// Audit is the audit trail's file, for the sender and the archivists.
	Audit *docLink
	// Until is when the link stops (or stopped) working.
	Until string
	// Expired says the link no longer works; Ask whom to ask instead.
	Expired bool
	Ask     string
}

// openDownload opens the download link of the request; when it cannot,
// it answers with the page that says why (410 for an expired link, 404
// for one that is not a live download link) and returns false.
func (s *Server) openDownload(w http.ResponseWriter, r *http.Request) (ceremony.Link, workflow.DownloadToken, bool) {
	token := r.PathValue("token")
	l, d, err := s.cer.OpenDownload(r.Context(), token)
	switch {
	case errors.Is(err, ceremony.ErrLinkExpired):
		env := l.Envelope
		b := s.page(w, r, env, s.link("d", token))
		sender := env.Sender.Email
		if env.Sender.Name != "" {
			sender = env.Sender.Name + " <" + sender + ">"
		}
		s.render(w, s.pages.download, http.StatusGone, &downloadView{base: b, Env: env, Until: b.When(d.Expires), Expired: true,
			Ask: b.T("download expired ask", sender, env.ID)})
		return l, d, false
	case err != nil:
		s.problemPage(w, r, nil, "", err)
		return l, d, false
	}
	return l, d, true
}

func (s *Server) downloadPage(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	l, d, ok := s.openDownload(w, r)
	if !ok {
		return
	}
	env := l.Envelope
	b := s.page(w, r, env, s.link("d", token))
	v := &downloadView{base: b, Env: env, Docs: s.docLinks(env, b.Lang, "d", token), Until: b.When(d.Expires)}
	cert, err := s.certificateLink(r, l, b.Lang, s.link("d", token, "certificate"))
	if err != nil {
		s.problemPage(w, r, env, "", err)
		return
	}
	v.Docs = append(v.Docs, cert)
	if l.Archives() {
		trail, err := s.cer.FinalTrail(r.Context(), l)
		if err != nil {
			s.problemPage(w, r, env, "", err)
			return
		}
		file := audit.JSON(trail)
		sum := sha256.Sum256(file)
		href := s.link("d", token, "audit")
		v.Audit = &docLink{Name: certificate.AttachmentName(env.ID), Size: verdict.ByteSize(int64(len(file)), b.Lang),
			SHA256: hex.EncodeToString(sum[:]), View: href, Download: href}
	}
	s.render(w, s.pages.download, http.StatusOK, v)
}

// certificateLink is the certificate of l's envelope as a file of a page,
// served at href.
func (s *Server) certificateLink(r *http.Request, l ceremony.Link, lang, href string) (docLink, error) {
	rc, blob, err := s.cer.Certificate(r.Context(), l)
	if err != nil {
		return docLink{}, err
	}
	rc.Close()
	name, err := certificate.FileName(l.Envelope.ID, l.Envelope.Language)
	if err != nil {
		return docLink{}, err
	}
	return docLink{Name: name, Size: verdict.ByteSize(blob.Size, lang), SHA256: blob.SHA256, View: href, Download: href + "?download=1"}, nil
}

func (s *Server) downloadDocument(w http.ResponseWriter, r *http.Request) {
	l, _, ok := s.openDownload(w, r)
	if !ok {
		return
	}
	s.serveDocument(w, r, l, func(err error) { s.problemPage(w, r, l.Envelope, s.link("d", r.PathValue("token")), err) })
}

func (s *Server) downloadCertificate(w http.ResponseWriter, r *http.Request) {
	l, _, ok := s.openDownload(w, r)
	if !ok {
		return
	}
	s.serveCertificate(w, r, l, s.link("d", r.PathValue("token")))
}

// downloadAudit sends the audit trail through completion, as the
// archivists' final mail carries it, to the sender and the archivists.
func (s *Server) downloadAudit(w http.ResponseWriter, r *http.Request) {
	l, _, ok := s.openDownload(w, r)
	if !ok {
		return
	}
	trail, err := s.cer.FinalTrail(r.Context(), l)
	if err != nil {
		s.problemPage(w, r, l.Envelope, s.link("d", r.PathValue("token")), err)
		return
	}
	file := audit.JSON(trail)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": certificate.AttachmentName(l.Envelope.ID)}))
	h.Set("Content-Length", strconv.Itoa(len(file)))
	h.Set("Cache-Control", "private, no-store")
	if _, err := w.Write(file); err != nil {
		s.log.Warn("web: audit trail not sent whole", "envelope", l.Envelope.ID, "err", err)
	}
}
