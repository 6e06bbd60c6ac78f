package compose

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"path"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"

	"github.com/parapheur/parapheur/workflow"
)

// maxNameRunes caps attachment names and the names in address fields,
// and maxSubjectRunes subjects: past the 998-octet line limit (RFC 5322
// §2.1.1), which a long word or RFC 2231 parameter can reach, go-message
// can only break the line inside it, which changes what readers show.
const (
	maxNameRunes    = 120
	maxSubjectRunes = 250
)

// bufferSize is the write buffer in front of the output: go-message writes
// a base64 body line by line, 76 bytes then CRLF, and each write into the
// DKIM signer is a hand-over between goroutines through a pipe.
const bufferSize = 64 << 10

// write writes the message to w. It can be called again and writes the
// same bytes, provided the attachments do.
func (p *prepared) write(w io.Writer) error {
	bw := buffers.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil)
		buffers.Put(bw)
	}()
	if err := p.writeTo(bw); err != nil {
		return err
	}
	return bw.Flush()
}

// buffers recycles the write buffers, which outweigh a small mail.
var buffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufferSize) }}

// writeTo writes the message, the header then the MIME tree.
func (p *prepared) writeTo(w io.Writer) error {
	mw, err := message.CreateWriter(w, p.header.Header)
	if err != nil {
		return fmt.Errorf("compose: %w", err)
	}
	if len(p.files) == 0 {
		if err := p.writeAlternative(mw); err != nil {
			return err
		}
		return mw.Close()
	}
	var h message.Header
	h.SetContentType("multipart/alternative", map[string]string{"boundary": boundary(p.id, "alternative")})
	alt, err := mw.CreatePart(h)
	if err != nil {
		return fmt.Errorf("compose: %w", err)
	}
	if err := p.writeAlternative(alt); err != nil {
		return err
	}
	if err := alt.Close(); err != nil {
		return err
	}
	for _, a := range p.files {
		if err := writeAttachment(mw, a); err != nil {
			return err
		}
	}
	return mw.Close()
}

// writeAlternative writes the text then the HTML part into mw, a
// multipart/alternative entity (the last part is the preferred one); the
// caller closes mw.
func (p *prepared) writeAlternative(mw *message.Writer) error {
	for _, part := range []struct {
		mediaType string
		body      []byte
	}{{"text/plain", p.text}, {"text/html", p.html}} {
		var h message.Header
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		h.SetContentType(part.mediaType, map[string]string{"charset": "utf-8"})
		pw, err := mw.CreatePart(h)
		if err != nil {
			return fmt.Errorf("compose: %w", err)
		}
		if _, err := pw.Write(part.body); err != nil {
			return err
		}
		if err := pw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// writeAttachment streams a's content into a base64 part of mw and checks
// that it is the content a describes.
func writeAttachment(mw *message.Writer, a Attachment) error {
	var h message.Header
	h.Set("Content-Transfer-Encoding", "base64")
	// go-message's AttachmentHeader.SetFilename writes an RFC 2047 encoded
	// word inside the parameter; mime.FormatMediaType writes RFC 2231.
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fileName(a.Name)}))
	ct := a.ContentType
	if _, _, err := mime.ParseMediaType(ct); err != nil {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	pw, err := mw.CreatePart(h)
	if err != nil {
		return fmt.Errorf("compose: attachment %q: %w", a.Name, err)
	}
	rc, err := a.Open()
	if err != nil {
		return fmt.Errorf("compose: attachment %q: %w", a.Name, err)
	}
	defer rc.Close()
	sum := sha256.New()
	n, err := io.Copy(pw, io.TeeReader(rc, sum))
	if err != nil {
		return fmt.Errorf("compose: attachment %q: %w", a.Name, err)
	}
	if n != a.Size {
		return fmt.Errorf("compose: attachment %q is %d bytes, not the %d stated", a.Name, n, a.Size)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); !strings.EqualFold(got, a.SHA256) {
		return fmt.Errorf("compose: attachment %q has SHA-256 %s, not the %s stated", a.Name, got, a.SHA256)
	}
	return pw.Close()
}

// boundary derives a part boundary from the Message-ID, so that every write
// of one message gives the same bytes. "=_" cannot occur in quoted-printable
// (which writes '=' as "=3D") nor in base64, the only encodings used, so the
// boundary never collides with content.
func boundary(messageID, part string) string {
	sum := sha256.Sum256([]byte("parapheur boundary\x00" + part + "\x00" + messageID))
	return "=_" + part + "_" + hex.EncodeToString(sum[:12])
}

// fileName makes a name safe to offer for saving: no directories, no control
// characters, at most maxNameRunes runes, extension kept.
func fileName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || unicode.IsControl(r) || r == utf8.RuneError {
			return '_'
		}
		return r
	}, name)
	name = workflow.OneLine(name)
	if utf8.RuneCountInString(name) > maxNameRunes {
		ext := path.Ext(name)
		if utf8.RuneCountInString(ext) > 10 {
			ext = ""
		}
		name = workflow.Clip(strings.TrimSuffix(name, ext), maxNameRunes-utf8.RuneCountInString(ext)) + ext
	}
	if name == "" || name == "." || name == ".." {
		return "file"
	}
	return name
}
