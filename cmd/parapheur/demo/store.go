// Package demo holds the parts of "parapheur demo" that stand in for the
// world around the gateway: an SMTP server (RFC 5321) that keeps every mail
// the gateway sends, an IMAP server (RFC 9051) as the gateway's mailbox, a
// web mailbox modelled on Mailpit to read the kept mail, with its JSON
// twin (SPEC §7), a landing page with a form to submit documents, and the
// sample convention the demo submits on its first start.
//
// None of it is used by "parapheur serve": the gateway's own parts (poller,
// ingest, engine, outbox, composer, ceremony) run unchanged against these
// servers, as they do against Dovecot and Postfix.
package demo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/emersion/go-message/charset" // mails in any charset, as a mail client reads them
	"github.com/emersion/go-message/mail"
)

// ErrNotFound is the answer for a mail that is not (or no longer) kept.
var ErrNotFound = errors.New("demo: no such mail")

// Summary is what the mailbox list shows of a mail.
type Summary struct {
	ID      string
	From    string
	To      []string
	Subject string
	Date    time.Time
	size    int64
}

// Mailbox keeps every mail delivered to the demo, one file per mail in a
// directory, so that it survives a restart. It keeps the newest MaxMails
// mails within MaxBytes, removing the oldest beyond either bound.
type Mailbox struct {
	dir      string
	maxMails int
	maxBytes int64

	mu      sync.Mutex
	mails   []Summary // oldest first
	next    uint64
	changed chan struct{} // closed and replaced at each new mail
}

// mailExt ends the name of each kept mail's file: ID.eml.
const mailExt = ".eml"

// OpenMailbox opens (creating it if need be) the mailbox kept in dir.
func OpenMailbox(dir string, maxMails int, maxBytes int64) (*Mailbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := &Mailbox{dir: dir, maxMails: maxMails, maxBytes: maxBytes, next: 1, changed: make(chan struct{})}
	for _, e := range entries {
		n, err := strconv.ParseUint(strings.TrimSuffix(e.Name(), mailExt), 10, 64)
		if err != nil || !strings.HasSuffix(e.Name(), mailExt) {
			continue // a file of another program, or an interrupted write
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		s, err := summarize(strconv.FormatUint(n, 10), raw)
		if err != nil {
			return nil, fmt.Errorf("demo: the kept mail %s: %w", filepath.Join(dir, e.Name()), err)
		}
		if info, err := e.Info(); err == nil && s.Date.IsZero() {
			s.Date = info.ModTime().UTC() // when it came (see Add)
		}
		m.mails = append(m.mails, s)
		m.next = max(m.next, n+1)
	}
	slices.SortFunc(m.mails, func(a, b Summary) int { return compareIDs(a.ID, b.ID) })
	return m, nil
}

func compareIDs(a, b string) int {
	x, _ := strconv.ParseUint(a, 10, 64)
	y, _ := strconv.ParseUint(b, 10, 64)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// Add keeps raw, a whole mail, and returns its ID.
func (m *Mailbox) Add(raw []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := strconv.FormatUint(m.next, 10)
	s, err := summarize(id, raw)
	if err != nil {
		return "", err
	}
	if s.Date.IsZero() {
		// A mail without a Date (a script's) is dated when it came, as
		// mail clients show it, not at the year 1.
		s.Date = time.Now().UTC().Truncate(time.Second)
	}
	tmp := filepath.Join(m.dir, id+".tmp")
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, m.path(id)); err != nil {
		return "", err
	}
	m.next++
	m.mails = append(m.mails, s)
	var total int64
	for _, s := range m.mails {
		total += s.size
	}
	for len(m.mails) > 1 && (len(m.mails) > m.maxMails || total > m.maxBytes) {
		if err := os.Remove(m.path(m.mails[0].ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		total -= m.mails[0].size
		m.mails = m.mails[1:]
	}
	close(m.changed)
	m.changed = make(chan struct{})
	return id, nil
}

func (m *Mailbox) path(id string) string { return filepath.Join(m.dir, id+mailExt) }

// List returns the kept mails, newest first, and a channel closed when a
// mail is added after it.
func (m *Mailbox) List() ([]Summary, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	list := slices.Clone(m.mails)
	slices.Reverse(list)
	return list, m.changed
}

// Raw returns the mail id as it was delivered.
func (m *Mailbox) Raw(id string) ([]byte, error) {
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		return nil, ErrNotFound
	}
	raw, err := os.ReadFile(m.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	return raw, err
}

// Message is a kept mail read as a mail client reads it.
type Message struct {
	Summary
	// Header is the mail's header as delivered, for people to read.
	Header string
	// Text and HTML are the first text/plain and text/html parts, decoded.
	Text, HTML  string
	Attachments []Attachment
}

// Attachment is a part of a mail that is not its text.
type Attachment struct {
	Name        string
	ContentType string
	Content     []byte
}

// Message reads the mail id.
func (m *Mailbox) Message(id string) (*Message, error) {
	raw, err := m.Raw(id)
	if err != nil {
		return nil, err
	}
	msg, err := readMessage(id, raw)
	if err == nil && msg.Date.IsZero() {
		m.mu.Lock()
		if i := slices.IndexFunc(m.mails, func(s Summary) bool { return s.ID == id }); i >= 0 {
			msg.Date = m.mails[i].Date
		}
		m.mu.Unlock()
	}
	return msg, err
}

func readMessage(id string, raw []byte) (*Message, error) {
	s, err := summarize(id, raw)
	if err != nil {
		return nil, err
	}
	msg := &Message{Summary: s}
	if end := bytes.Index(raw, []byte("\r\n\r\n")); end >= 0 {
		msg.Header = string(raw[:end])
	} else if end := bytes.Index(raw, []byte("\n\n")); end >= 0 {
		msg.Header = string(raw[:end])
	}
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("demo: mail %s: %w", id, err)
	}
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("demo: mail %s: %w", id, err)
		}
		body, err := io.ReadAll(p.Body)
		if err != nil {
			return nil, fmt.Errorf("demo: mail %s: %w", id, err)
		}
		switch h := p.Header.(type) {
		case *mail.InlineHeader:
			ct, params, _ := h.ContentType()
			switch {
			case ct == "text/plain" && msg.Text == "":
				msg.Text = string(body)
			case ct == "text/html" && msg.HTML == "":
				msg.HTML = string(body)
			default:
				msg.Attachments = append(msg.Attachments, Attachment{Name: params["name"], ContentType: ct, Content: body})
			}
		case *mail.AttachmentHeader:
			ct, _, _ := h.ContentType()
			name, _ := h.Filename()
			msg.Attachments = append(msg.Attachments, Attachment{Name: name, ContentType: ct, Content: body})
		}
	}
	for i := range msg.Attachments {
		if msg.Attachments[i].Name == "" {
			msg.Attachments[i].Name = fmt.Sprintf("attachment-%d", i+1)
		}
	}
	return msg, nil
}

// summarize reads the header fields the list shows.
func summarize(id string, raw []byte) (Summary, error) {
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		return Summary{}, fmt.Errorf("not a mail: %w", err)
	}
	defer r.Close()
	s := Summary{ID: id, size: int64(len(raw))}
	if from, err := r.Header.AddressList("From"); err == nil && len(from) > 0 {
		s.From = formatAddress(from[0])
	}
	if to, err := r.Header.AddressList("To"); err == nil {
		for _, a := range to {
			s.To = append(s.To, formatAddress(a))
		}
	}
	s.Subject, _ = r.Header.Subject()
	s.Date, _ = r.Header.Date()
	return s, nil
}

// formatAddress writes a for people: "Name <mail@host>", or the bare
// address without a name.
func formatAddress(a *mail.Address) string {
	if a.Name == "" {
		return a.Address
	}
	return a.Name + " <" + a.Address + ">"
}
