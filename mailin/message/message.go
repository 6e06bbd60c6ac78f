// Package message reads a submission mail: an RFC 5322 message with MIME
// parts (RFC 2045-2049), header words encoded per RFC 2047 and file names
// per RFC 2231, in any charset go-message knows (windows-1252, iso-8859-1…).
//
// Parse walks every part, including forwarded messages (message/rfc822,
// nested), and sorts what it finds into the documents to sign (PDFs, by
// type, by name or by their "%PDF-" signature), the attachments the
// gateway ignores, and the sender's own text (the first text/plain part, or
// the HTML part turned into text) from which the instructions are read.
package message

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // charsets beyond UTF-8 and US-ASCII
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/problem"
)

// Message is what Parse found in a mail.
type Message struct {
	// Header is the top-level header, for the checks that read other
	// fields (loops, Authentication-Results).
	Header mail.Header
	// From is the author, the name clipped to workflow.MaxNameRunes runes;
	// Parse fails without one.
	From *mail.Address
	// ReplyTo are the Reply-To addresses, if any.
	ReplyTo []*mail.Address
	// To are the To and Cc addresses.
	To []*mail.Address
	// MessageID is the Message-ID without angle brackets, empty if absent.
	MessageID string
	// InReplyTo is the message ID the mail answers, without angle brackets.
	InReplyTo []string
	// References are the message IDs of the thread, oldest first, without
	// angle brackets.
	References []string
	// Subject is the decoded subject, see the Subject function.
	Subject string
	// Title is the subject without reply and forward prefixes.
	Title string
	// Documents are the PDFs, in the order of the parts.
	Documents []Document
	// Ignored are the other attachments, for the acknowledgement.
	Ignored []Attachment
	// Text is the sender's own text part: the first text/plain part
	// outside forwarded messages, or the first HTML part turned into text.
	// When that HTML part hides text from its reader (see HTMLText), its
	// visible text is taken even if there is a text/plain part: mail clients
	// write the plain alternative from the HTML, hidden text included.
	// It still holds any quoted or forwarded text written inline.
	Text string

	// body is the entity whose body ReadBody reads.
	body *entity
}

// Document is a PDF found in the mail.
type Document struct {
	// Name is the file name, "document-N.pdf" when the part has none.
	Name string
	// ContentType is the declared media type, which need not be
	// application/pdf.
	ContentType string
	// Data is the decoded content.
	Data []byte
}

// Attachment is a part the gateway does not use.
type Attachment struct {
	// Name is the file name.
	Name string
	// ContentType is the declared media type.
	ContentType string
	// Size is the decoded size in bytes.
	Size int
}

// ErrTooLarge is returned (wrapped) when a message exceeds Parse's limit.
var ErrTooLarge = errors.New("message too large")

// MaxDepth bounds how deeply multiparts and forwarded messages may nest,
// so that a crafted mail cannot exhaust the stack.
const MaxDepth = 32

// MaxParts bounds the parts of a message (multiparts and forwarded
// messages included), far above what a mail client writes: a mail of
// thousands of tiny parts within the size limit must not become an
// envelope of thousands of documents or ignored attachments.
const MaxParts = 1000

// Error is why a message cannot be read: in English with the decoder's
// own words (for logs and the quarantine reason), and in French for the
// sender, who is told in their language and spared the decoder's jargon.
type Error struct {
	en, fr string
	err    error
}

func (e *Error) Error() string { return e.en }

// Unwrap returns the decoder's error.
func (e *Error) Unwrap() error { return e.err }

// Problem says it in both languages, for the refusal.
func (e *Error) Problem() problem.Text { return problem.Text{EN: e.en, FR: e.fr} }

// failure is an Error: en is formatted with args and followed by err's
// text, fr is the French sentence.
func failure(err error, fr, en string, args ...any) *Error {
	en = fmt.Sprintf(en, args...)
	if err != nil {
		en += ": " + err.Error()
	}
	return &Error{en: en, fr: fr, err: err}
}

// Parse reads a message of at most limit bytes: ReadHeader, then ReadBody
// with every part.
func Parse(r io.Reader, limit int64) (*Message, error) {
	raw, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading the message: %w", err)
	}
	m, err := ReadHeader(raw, limit)
	if err != nil {
		return nil, err
	}
	if err := m.ReadBody(AllParts); err != nil {
		return nil, err
	}
	return m, nil
}

// ReadHeader reads the top-level header of raw, a message of at most limit
// bytes, and leaves the body to ReadBody: what a header says (the sender,
// whether the mail is automatic) decides whether the body is worth
// decoding at all. raw is kept, not copied, until ReadBody.
func ReadHeader(raw []byte, limit int64) (*Message, error) {
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%w: over the limit of %d bytes", ErrTooLarge, limit)
	}
	e, err := readEntity(bytes.NewReader(raw))
	if err != nil {
		return nil, failure(err, "l'en-tête du message est illisible", "reading the header")
	}
	m := &Message{Header: mail.Header{Header: e.header}, body: e}
	if err := m.readHeader(); err != nil {
		return nil, err
	}
	return m, nil
}

// Parts says which parts ReadBody decodes.
type Parts int

const (
	// AllParts decodes every part: documents, attachments and text.
	AllParts Parts = iota
	// TextOnly decodes only the parts that can be the sender's text; the
	// others (documents, attachments, forwarded messages) are skipped
	// undecoded, so a mail that will be refused costs no decoding of its
	// attachments. Text is the same as with AllParts; Documents and
	// Ignored are left incomplete.
	TextOnly
)

// ReadBody walks the body ReadHeader left, once, filling Documents,
// Ignored and Text as which asks.
func (m *Message) ReadBody(which Parts) error {
	e := m.body
	if e == nil {
		return errors.New("message: ReadBody called without ReadHeader, or twice")
	}
	m.body = nil
	w := walker{m: m, textOnly: which == TextOnly}
	if err := w.walk(e, nil, false); err != nil {
		return err
	}
	m.Text = w.text()
	for i := range m.Documents {
		if m.Documents[i].Name == "" {
			m.Documents[i].Name = "document-" + strconv.Itoa(i+1) + ".pdf"
		}
	}
	return nil
}

// entity is a part (or message) with its body as written in the mail,
// transfer encoding included, which decodedBody decodes. go-message's
// Entity decodes base64 through a streaming decoder behind a byte-by-byte
// filter, which cost a third of the gateway's CPU on 100 KB PDFs; the
// whole part, already in memory within the message limit, decodes in one
// call for a fraction of that.
type entity struct {
	header gomessage.Header
	body   io.Reader
}

// maxHeaderBytes bounds the header of a message, forwarded ones included,
// as go-message's Read does by default.
const maxHeaderBytes = 1 << 20

// errHeaderTooLarge is why a header over maxHeaderBytes is not read.
var errHeaderTooLarge = fmt.Errorf("the header is over the limit of %d bytes", maxHeaderBytes)

// readEntity reads a message's header (RFC 5322 §2.2) from r, whose rest is
// the body.
func readEntity(r io.Reader) (*entity, error) {
	bound := &headerBound{r: r, left: maxHeaderBytes}
	br := bufio.NewReader(bound)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, err
	}
	bound.left = -1
	return &entity{header: gomessage.Header{Header: h}, body: br}, nil
}

// headerBound reads r, failing with errHeaderTooLarge once left bytes
// are read, until left is set negative: no limit for the body.
type headerBound struct {
	r    io.Reader
	left int64
}

func (b *headerBound) Read(p []byte) (int, error) {
	if b.left < 0 {
		return b.r.Read(p)
	}
	if b.left == 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// multipartReader returns the reader of e's parts, or nil if e is not a
// multipart, by go-message's rules.
func (e *entity) multipartReader() *textproto.MultipartReader {
	mediaType, params, _ := e.header.ContentType()
	if !strings.HasPrefix(mediaType, "multipart/") {
		return nil
	}
	return textproto.NewMultipartReader(e.body, params["boundary"])
}

// decodedBody returns e's body with its transfer encoding (RFC 2045 §6)
// and, for text, its charset decoded, as go-message's Entity does, but
// base64 is read whole and decoded in one call: whole is then the content,
// unless a charset still has to be decoded; otherwise stream reads it. An
// unknown encoding or charset leaves the bytes as they are.
func (e *entity) decodedBody() (whole []byte, stream io.Reader, err error) {
	h, body := e.header, e.body
	var data []byte
	if strings.EqualFold(h.Get("Content-Transfer-Encoding"), "base64") {
		if data, err = decodeBase64(e.body); err != nil {
			return nil, nil, err
		}
		h = h.Copy()
		h.Del("Content-Transfer-Encoding")
		body = bytes.NewReader(data)
	}
	// New's only errors, an unknown encoding or charset, leave the bytes
	// as they are.
	decoded, _ := gomessage.New(h, body)
	if data != nil && decoded.Body == body {
		return data, nil, nil // no charset to decode
	}
	return nil, decoded.Body, nil
}

// decodeBase64 reads r whole and decodes it in one call. Decode skips CR
// and LF; spaces and tabs (continuation indents), which go-message
// tolerates, are read as line breaks.
func decodeBase64(r io.Reader) ([]byte, error) {
	buf := encodedPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooled {
			buf.Reset()
			encodedPool.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	data := make([]byte, base64.StdEncoding.DecodedLen(len(raw)))
	n, err := base64.StdEncoding.Decode(data, raw)
	if err != nil && bytes.ContainsAny(raw, " \t") {
		for i, c := range raw {
			if c == ' ' || c == '\t' {
				raw[i] = '\n'
			}
		}
		n, err = base64.StdEncoding.Decode(data, raw)
	}
	if err != nil {
		return nil, err
	}
	return data[:n], nil
}

// encodedPool holds the buffers decodeBase64 reads encoded parts into,
// dropped once decoded: ingesting many mails at once would otherwise
// allocate, and collect, twice the size of each part read.
var encodedPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooled is the largest buffer encodedPool keeps, the few megabytes of
// a usual attachment: a rare large one is left to the garbage collector.
const maxPooled = 4 << 20

// Tolerable reports whether an error of go-message leaves the entity
// readable: with an unknown charset or transfer encoding the bytes are
// left as they are, which beats refusing the mail.
func Tolerable(err error) bool {
	return gomessage.IsUnknownCharset(err) || gomessage.IsUnknownEncoding(err)
}

func (m *Message) readHeader() error {
	from, err := m.Header.AddressList("From")
	if err != nil {
		v := m.Header.Get("From")
		return failure(err, fmt.Sprintf("le champ From « %s » n'est pas une adresse valable", v), "From header %q", v)
	}
	switch len(from) {
	case 0:
		return problem.Text{EN: "the message has no From header", FR: "le message n'a pas de champ From (l'adresse de son auteur)"}
	case 1:
	default:
		// RFC 5322 §3.6.2 allows several authors only with a Sender
		// field, and DMARC (RFC 7489 §6.6.1) cannot tell which domain
		// to check: whom to answer, and whose right to submit, would
		// be a guess.
		var addrs []string
		for _, a := range from {
			addrs = append(addrs, a.Address)
		}
		list := strings.Join(addrs, ", ")
		return problem.Text{
			EN: fmt.Sprintf("the From header names %d addresses (%s): a mail to the gateway must have exactly one author", len(from), list),
			FR: fmt.Sprintf("le champ From nomme %d adresses (%s) : un message au parapheur doit avoir un seul auteur", len(from), list),
		}
	}
	m.From = from[0]
	// The sender's name is quoted in every mail of an envelope.
	m.From.Name = workflow.Clip(m.From.Name, workflow.MaxNameRunes)
	// Reply-To, To and Cc only help (replies, plus-addressing): a bad one
	// is left out rather than failing the mail.
	m.ReplyTo, _ = m.Header.AddressList("Reply-To")
	for _, k := range []string{"To", "Cc"} {
		list, _ := m.Header.AddressList(k)
		m.To = append(m.To, list...)
	}
	if ids := IDs(m.Header.Get("Message-Id")); len(ids) > 0 {
		m.MessageID = ids[0]
	}
	m.InReplyTo = IDs(m.Header.Get("In-Reply-To"))
	m.References = IDs(m.Header.Get("References"))
	m.Subject = Subject(m.Header)
	m.Title = StripPrefixes(m.Subject)
	return nil
}

// Subject returns the decoded subject of h on one line, clipped to
// workflow.MaxTitleRunes runes: every reply quotes it.
func Subject(h mail.Header) string {
	s, _ := h.Subject()
	return workflow.Clip(strings.Join(strings.Fields(s), " "), workflow.MaxTitleRunes)
}

// MaxAncestors is how many message IDs Ancestors keeps: a reply's
// References need the thread's root and its newest mails to thread, and a
// runaway thread must not make the gateway's replies' header grow without
// end.
const MaxAncestors = 20

// Ancestors returns the message IDs a reply to m names before m's own in
// its References (RFC 5322 §3.6.4): m's References, or else its In-Reply-To
// when that holds a single ID; past MaxAncestors, the first (the thread's
// root) and the newest.
func (m *Message) Ancestors() []string {
	ids := m.References
	if len(ids) == 0 && len(m.InReplyTo) == 1 {
		ids = m.InReplyTo
	}
	if len(ids) > MaxAncestors {
		ids = append([]string{ids[0]}, ids[len(ids)-MaxAncestors+1:]...)
	}
	return slices.Clone(ids)
}

// IDs returns the message IDs of a Message-ID, In-Reply-To or References
// field value (RFC 5322 §3.6.4) without angle brackets. IDs that RFC 5322
// rejects (no "@", no brackets) are common enough in the wild to be kept
// as written rather than dropped.
func IDs(value string) []string {
	h := mail.Header{}
	h.Set("References", value)
	if ids, err := h.MsgIDList("References"); err == nil {
		return ids
	}
	var ids []string
	for _, f := range strings.Fields(value) {
		if id := strings.Trim(f, "<>,"); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// Detail returns the detail of the plus-address (RFC 5233) through which
// the mail reached gateway: "direction" for a mail to
// parapheur+direction@org.example when gateway is parapheur@org.example.
// Delivered-To and X-Original-To, set by the delivering server, are read
// before To and Cc, which Bcc recipients do not appear in.
func (m *Message) Detail(gateway string) string {
	local, domain, ok := strings.Cut(gateway, "@")
	if !ok {
		return ""
	}
	var addrs []string
	for _, k := range []string{"Delivered-To", "X-Original-To"} {
		for _, v := range m.Header.Values(k) {
			addrs = append(addrs, strings.Trim(strings.TrimSpace(v), "<>"))
		}
	}
	for _, a := range m.To {
		addrs = append(addrs, a.Address)
	}
	for _, a := range addrs {
		l, d, ok := strings.Cut(a, "@")
		if !ok || !strings.EqualFold(d, domain) {
			continue
		}
		base, detail, ok := strings.Cut(l, "+")
		if ok && strings.EqualFold(base, local) && detail != "" {
			return detail
		}
	}
	return ""
}

// replyPrefixes are the folded prefixes mail clients put before a subject
// when replying or forwarding, in French, English and German.
var replyPrefixes = []string{"re", "fwd", "fw", "tr", "aw", "wg", "ref"}

// StripPrefixes removes reply and forward prefixes ("Re:", "RE :",
// "Fwd:", "TR:", "Fw:", "Re[2]:"), repeated, from a subject. A bracketed
// tag that a mail server put before a prefix ("RE: [EXT] TR: x") is kept,
// once, before the rest ("[EXT] x"): it may be the organisation's, and it
// must not hide the prefixes behind it.
func StripPrefixes(subject string) string {
	s := strings.TrimSpace(subject)
	var tags []string
	for {
		if rest, ok := cutPrefix(s); ok {
			s = rest
			continue
		}
		var run []string
		rest := s
		for tag, after, ok := cutTag(rest); ok; tag, after, ok = cutTag(rest) {
			run, rest = append(run, tag), after
		}
		if _, prefixed := cutPrefix(rest); len(run) == 0 || !prefixed {
			break
		}
		for _, tag := range run {
			if !slices.Contains(tags, tag) {
				tags = append(tags, tag)
			}
		}
		s = rest
	}
	for i := len(tags) - 1; i >= 0; i-- {
		if tag, _, ok := cutTag(s); !ok || tag != tags[i] {
			s = strings.TrimSpace(tags[i] + " " + s)
		}
	}
	return s
}

// cutTag cuts a leading bracketed tag ("[EXT]") from s.
func cutTag(s string) (tag, rest string, ok bool) {
	if !strings.HasPrefix(s, "[") {
		return "", s, false
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return "", s, false
	}
	return s[:end+1], strings.TrimSpace(s[end+1:]), true
}

func cutPrefix(s string) (string, bool) {
	word, rest, ok := strings.Cut(s, ":")
	if !ok {
		return s, false
	}
	word = strings.ToLower(strings.TrimSpace(strings.ReplaceAll(word, "\u00a0", " ")))
	if i := strings.IndexAny(word, "[("); i > 0 {
		n := strings.Trim(word[i:], "[]() ")
		if _, err := strconv.Atoi(n); err != nil {
			return s, false
		}
		word = strings.TrimSpace(word[:i])
	}
	for _, p := range replyPrefixes {
		if word == p {
			return strings.TrimSpace(rest), true
		}
	}
	return s, false
}

// walker sorts the parts of a message.
type walker struct {
	m           *Message
	plain, html *string
	// textOnly skips, undecoded, every part that cannot be the text.
	textOnly bool
	// parts counts the parts visited, against MaxParts.
	parts int
}

func (w *walker) text() string {
	if w.html != nil {
		// A text part with nothing in it (a space, as some webmails and
		// phones send beside the HTML) does not hide the HTML's text.
		empty := w.plain == nil || strings.TrimSpace(*w.plain) == ""
		if text, hid := htmlText(*w.html); hid || empty {
			return normaliseText(text)
		}
	}
	if w.plain != nil {
		return normaliseText(*w.plain)
	}
	return ""
}

func normaliseText(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
	return strings.TrimSpace(strings.TrimPrefix(s, "\ufeff"))
}

// walk visits e at path (IMAP part numbers); forwarded says whether e is
// inside a forwarded message, whose text is not the sender's.
func (w *walker) walk(e *entity, at []int, forwarded bool) error {
	if len(at) > MaxDepth {
		return failure(nil, fmt.Sprintf("%s : les parties sont imbriquées sur plus de %d niveaux", partNameFR(at), MaxDepth),
			"%s: parts nest deeper than %d levels", partName(at), MaxDepth)
	}
	if w.parts++; w.parts > MaxParts {
		return failure(nil, fmt.Sprintf("le message compte plus de %d parties MIME : envoyez les documents en plusieurs messages", MaxParts),
			"the message has more than %d MIME parts: send the documents in several messages", MaxParts)
	}
	mediaType := mediaTypeOf(e.header)
	if mr := e.multipartReader(); mr != nil {
		for i := 1; ; i++ {
			part, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return failure(truncated(err), fmt.Sprintf("%s (%s) : sa partie %d est illisible%s", partNameFR(at), mediaType, i, truncatedFR(err)),
					"%s (%s): reading its part %d", partName(at), mediaType, i)
			}
			if err := w.walk(&entity{header: gomessage.Header{Header: part.Header}, body: part}, append(at, i), forwarded); err != nil {
				return err
			}
		}
	}
	name := fileName(e.header)
	if w.textOnly && !w.maybeText(e, mediaType, name, forwarded) {
		return nil // the multipart reader skips the part's bytes undecoded
	}
	data, stream, err := e.decodedBody()
	if err != nil {
		return undecodable(err, at, mediaType)
	}
	if mediaType == "message/rfc822" || mediaType == "message/global" {
		if stream == nil {
			stream = bytes.NewReader(data)
		}
		body := bufio.NewReader(stream)
		if magic, _ := body.Peek(len(pdfMagic)); !bytes.Equal(magic, pdfMagic) {
			// Streamed, not read whole: forwards nested n deep must not
			// cost n copies of the message.
			inner, err := readEntity(body)
			if err != nil {
				return failure(truncated(err), fmt.Sprintf("%s (%s) : l'en-tête du message transféré est illisible%s", partNameFR(at), mediaType, truncatedFR(err)),
					"%s (%s): reading the forwarded header", partName(at), mediaType)
			}
			return w.walk(inner, append(at, 1), true)
		}
		stream = body
	}
	if stream != nil {
		if data, err = io.ReadAll(stream); err != nil {
			return undecodable(err, at, mediaType)
		}
	}
	if isPDF(mediaType, name, data) {
		w.m.Documents = append(w.m.Documents, Document{Name: name, ContentType: mediaType, Data: data})
		return nil
	}
	disposition, _, _ := e.header.ContentDisposition()
	attached := name != "" || strings.EqualFold(disposition, "attachment")
	switch {
	case attached:
		w.m.Ignored = append(w.m.Ignored, Attachment{Name: name, ContentType: mediaType, Size: len(data)})
	case forwarded:
	case mediaType == "text/plain" && w.plain == nil:
		s := string(data)
		if _, params, err := e.header.ContentType(); err == nil && strings.EqualFold(params["format"], "flowed") {
			s = unflow(s, strings.EqualFold(params["delsp"], "yes"))
		}
		w.plain = &s
	case mediaType == "text/html" && w.html == nil:
		s := string(data)
		w.html = &s
	}
	return nil
}

// undecodable is why the content of the part at path cannot be decoded.
func undecodable(err error, at []int, mediaType string) *Error {
	return failure(truncated(err), fmt.Sprintf("%s (%s) : le contenu ne peut pas être décodé%s", partNameFR(at), mediaType, truncatedFR(err)),
		"%s (%s): decoding the content", partName(at), mediaType)
}

// truncated explains the end-of-file errors of a multipart cut short,
// which say nothing on their own. go-message's multipart reader formats
// rather than wraps io.EOF, hence the suffix test.
func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.HasSuffix(err.Error(), ": EOF") {
		return fmt.Errorf("%w (%w)", errTruncated, err)
	}
	return err
}

var errTruncated = errors.New("the message ends before the closing MIME boundary")

// truncatedFR is what truncated adds, in French, for the sender: the
// decoder's own words stay in the English text.
func truncatedFR(err error) string {
	if errors.Is(truncated(err), errTruncated) {
		return " : le message se termine avant la fin de ses parties MIME (il est tronqué)"
	}
	return ""
}

// maybeText reports whether a part can be the sender's text, the only
// parts a TextOnly walk decodes: a text/plain or text/html part that is
// not attached, outside forwarded messages, while that kind of text has
// not been found yet.
func (w *walker) maybeText(e *entity, mediaType, name string, forwarded bool) bool {
	disposition, _, _ := e.header.ContentDisposition()
	switch {
	case forwarded, name != "", strings.EqualFold(disposition, "attachment"):
		return false
	case mediaType == "text/plain":
		return w.plain == nil
	case mediaType == "text/html":
		return w.html == nil
	}
	return false
}

// partName names a part by its IMAP part number ("part 1.2"), the root
// being "the message".
func partName(at []int) string {
	if len(at) == 0 {
		return "the message"
	}
	s := make([]string, len(at))
	for i, n := range at {
		s[i] = strconv.Itoa(n)
	}
	return "part " + strings.Join(s, ".")
}

// partNameFR is partName in French: "la partie 1.2", "le message".
func partNameFR(at []int) string {
	if len(at) == 0 {
		return "le message"
	}
	return "la partie " + partName(at)[len("part "):]
}

// mediaTypeOf returns the lower-case media type; a Content-Type that does
// not parse (duplicate parameters, bad quoting) still names its type.
func mediaTypeOf(h gomessage.Header) string {
	t, _, err := h.ContentType()
	if err != nil {
		t, _, _ = strings.Cut(h.Get("Content-Type"), ";")
	}
	return strings.ToLower(strings.TrimSpace(t))
}

// fileName returns the part's file name from Content-Disposition's
// filename or Content-Type's name, RFC 2231 or RFC 2047 encoded, without
// any directory, on one line (workflow.OneLine): an encoded name may carry
// line breaks, and every mail that lists the document would show the lines
// its sender wrote.
func fileName(h gomessage.Header) string {
	name := param(h, "Content-Disposition", "filename")
	if name == "" {
		name = param(h, "Content-Type", "name")
	}
	if !utf8.ValidString(name) {
		// Raw 8-bit names come from old Windows clients.
		name = fromWindows1252(name)
	}
	name = strings.ReplaceAll(workflow.OneLine(name), "\\", "/")
	if name = path.Base(strings.TrimSpace(name)); name == "." || name == "/" {
		return ""
	}
	return name
}

// param returns a parameter of a header field. go-message decodes RFC
// 2047 words in parameters but, through Go's mime package, RFC 2231
// extended values only in UTF-8 and US-ASCII; others are re-encoded first.
func param(h gomessage.Header, field, key string) string {
	if v := h.Get(field); strings.Contains(v, "*=") {
		if _, params, err := mime.ParseMediaType(toUTF8Params(v)); err == nil {
			return params[key]
		}
	}
	var params map[string]string
	var err error
	if field == "Content-Type" {
		_, params, err = h.ContentType()
	} else {
		_, params, err = h.ContentDisposition()
	}
	if err != nil {
		return ""
	}
	return params[key]
}

// pdfTypes are the media types PDFs are sent as.
var pdfTypes = map[string]bool{"application/pdf": true, "application/x-pdf": true, "application/acrobat": true}

func isPDF(mediaType, name string, data []byte) bool {
	switch {
	case pdfTypes[mediaType]:
		return true
	case mediaType == "application/octet-stream" && strings.HasSuffix(strings.ToLower(name), ".pdf"):
		return true
	}
	return bytes.HasPrefix(data, pdfMagic)
}

// pdfMagic starts every PDF file (ISO 32000-2 §7.5.2).
var pdfMagic = []byte("%PDF-")
