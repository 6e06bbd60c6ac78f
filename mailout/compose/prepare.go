package compose

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-message/mail"
	"github.com/parapheur/parapheur/mailout/address"
	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/workflow"
)

// addressee is who a mail goes to: the sender (recipient nil) or a recipient.
type addressee struct {
	party     workflow.Party
	recipient *workflow.Recipient
}

// prepared is a message ready to be written, as many times as needed.
type prepared struct {
	header  mail.Header
	id      string
	text    []byte
	html    []byte
	files   []Attachment
	subject string
}

// prepare checks m, renders its texts and builds its header.
func (c *Composer) prepare(m *Message) (*prepared, error) {
	if m == nil || m.Data == nil {
		return nil, fmt.Errorf("compose: no message data")
	}
	kind := m.Data.Kind()
	to, err := c.addressee(m)
	if err != nil {
		return nil, fmt.Errorf("compose: %s: %w", kind, err)
	}
	if err := m.Data.check(m, to); err != nil {
		return nil, fmt.Errorf("compose: %s: %w", kind, err)
	}
	if err := c.checkLinks(m.Data); err != nil {
		return nil, fmt.Errorf("compose: %s: %w", kind, err)
	}
	id := trimAngles(m.ID)
	if !validMsgID(id) || !strings.EqualFold(id[strings.LastIndexByte(id, '@')+1:], c.cfg.Domain) {
		return nil, fmt.Errorf("compose: %s: Message-ID %q is not a message ID on the gateway's domain %s", kind, m.ID, c.cfg.Domain)
	}
	if m.Date.IsZero() {
		return nil, fmt.Errorf("compose: %s: no date", kind)
	}
	lang := m.Language
	if lang == "" && m.Envelope != nil {
		lang = m.Envelope.Language
	}
	if lang == "" {
		lang = c.cfg.Language
	}
	v, err := c.view(m, to)
	if err != nil {
		return nil, fmt.Errorf("compose: %s: %w", kind, err)
	}
	r, err := c.set.render(lang, kind, v)
	if err != nil {
		return nil, fmt.Errorf("compose: %s: %w", kind, err)
	}
	p := &prepared{id: id, text: r.text, html: r.html, subject: r.subject}
	if v.Attached {
		// A copy: the audit trail is appended, and one Completion may be
		// composed for several parties at once.
		p.files = append([]Attachment(nil), v.Files...)
	}
	if v.Archivist {
		audit := *m.Data.(Completion).Audit
		audit.Name = v.AuditName
		p.files = append(p.files, audit)
	}
	thread, err := c.thread(m, to, id)
	if err != nil {
		return nil, fmt.Errorf("compose: %s: %w", kind, err)
	}
	p.header = c.header(m, to, p, thread)
	return p, nil
}

// addressee finds who m goes to.
func (c *Composer) addressee(m *Message) (addressee, error) {
	if a, ok := m.Data.(answer); ok {
		if m.Envelope != nil {
			return addressee{}, fmt.Errorf("a %s answers a mail that made no envelope, yet envelope %s is given", a.Kind(), m.Envelope.ID)
		}
		to, _, _ := a.answers()
		return addressee{party: to}, checkEmail(to.Email)
	}
	e := m.Envelope
	if e == nil {
		return addressee{}, fmt.Errorf("no envelope")
	}
	if e.Deadline.IsZero() {
		return addressee{}, fmt.Errorf("envelope %s has no deadline", e.ID)
	}
	if m.RecipientID == "" {
		return addressee{party: e.Sender}, checkEmail(e.Sender.Email)
	}
	r := e.Recipient(m.RecipientID)
	if r == nil {
		return addressee{}, fmt.Errorf("envelope %s has no recipient %q", e.ID, m.RecipientID)
	}
	return addressee{party: r.Party, recipient: r}, checkEmail(r.Email)
}

// threading is where a mail stands in its thread: the msg-id it answers
// (In-Reply-To) and its ancestors (References), both empty for a root.
type threading struct {
	inReplyTo  string
	references []string
}

// replyTo threads a reply under parent, whose References were ancestors:
// RFC 5322 §3.6.4 has the reply's References name the parent's, then the
// parent. IDs that could not be written in a header are left out.
func replyTo(parent string, ancestors []string) threading {
	var refs []string
	for _, id := range ancestors {
		if id = trimAngles(id); validMsgID(id) && id != parent && !slices.Contains(refs, id) {
			refs = append(refs, id)
		}
	}
	return threading{parent, append(refs, parent)}
}

// thread places the mail: a refusal or a verification report answers the
// mail it is about; the sender's
// mails answer the submission and also name the sender's thread root, so a
// reply command (ANNULER), whose References a mail client copies from the
// mail it answers, names its envelope; a recipient's mails answer the
// recipient's thread root, unless the mail is that root.
func (c *Composer) thread(m *Message, to addressee, id string) (threading, error) {
	if a, ok := m.Data.(answer); ok {
		_, inReplyTo, ancestors := a.answers()
		if parent := trimAngles(inReplyTo); validMsgID(parent) {
			return replyTo(parent, ancestors), nil
		}
		return threading{}, nil
	}
	rid := ""
	if to.recipient != nil {
		rid = to.recipient.ID
	}
	root, err := mailid.ThreadRoot(c.cfg.Domain, m.Envelope.ID, rid)
	if err != nil {
		return threading{}, err
	}
	if to.recipient == nil {
		if parent := trimAngles(m.Envelope.MessageID); validMsgID(parent) {
			t := replyTo(parent, m.Envelope.References)
			if !slices.Contains(t.references, root) {
				t.references = append(t.references, root)
			}
			return t, nil
		}
	}
	if strings.EqualFold(root, id) {
		return threading{}, nil
	}
	return threading{root, []string{root}}, nil
}

// header builds the top-level header. go-message writes fields in the
// reverse order of their addition (it is built for prepending trace fields),
// so they are added last first.
func (c *Composer) header(m *Message, to addressee, p *prepared, thread threading) mail.Header {
	var h mail.Header
	if len(p.files) > 0 {
		h.SetContentType("multipart/mixed", map[string]string{"boundary": boundary(p.id, "mixed")})
	} else {
		h.SetContentType("multipart/alternative", map[string]string{"boundary": boundary(p.id, "alternative")})
	}
	h.Set("MIME-Version", "1.0")
	if m.Envelope != nil {
		h.Set("X-Parapheur-Envelope", m.Envelope.ID)
	}
	h.Set("X-Auto-Response-Suppress", "All")
	h.Set("Auto-Submitted", "auto-generated")
	if thread.inReplyTo != "" {
		h.SetMsgIDList("References", thread.references)
		h.SetMsgIDList("In-Reply-To", []string{thread.inReplyTo})
	}
	h.SetMessageID(p.id)
	h.SetDate(m.Date)
	h.SetSubject(p.subject)
	gateway := []*mail.Address{{Name: c.cfg.Name, Address: c.cfg.Address}}
	h.SetAddressList("Reply-To", gateway)
	// The ASCII form, which checkEmail accepted: an IDN domain in A-labels
	// (the header is not SMTPUTF8), the local part quoted by SetAddressList.
	email, _ := address.ASCII(to.party.Email)
	h.SetAddressList("To", []*mail.Address{{Name: workflow.Clip(workflow.OneLine(to.party.Name), maxNameRunes), Address: email}})
	h.SetAddressList("From", gateway)
	return h
}

// checkLinks requires every link of the data to be under the public URL: a
// link elsewhere is a bug upstream, and a phishing aid.
func (c *Composer) checkLinks(d Data) error {
	var links []string
	switch d := d.(type) {
	case Acknowledgement:
		if d.StatusURL != "" {
			links = []string{d.StatusURL}
		}
	case Invitation:
		links = []string{d.Link}
	case Reminder:
		links = []string{d.Link}
	case Completion:
		links = []string{d.DownloadURL}
	}
	for _, l := range links {
		if !strings.HasPrefix(l, c.cfg.PublicURL+"/") {
			return fmt.Errorf("link %q is not under the public URL %s", l, c.cfg.PublicURL)
		}
	}
	return nil
}

func (d Acknowledgement) check(m *Message, to addressee) error { return checkSender(to) }

// checkSender requires the addressee to be the envelope's sender.
func checkSender(to addressee) error {
	if to.recipient != nil {
		return fmt.Errorf("it goes to the sender, not to recipient %s", to.recipient.ID)
	}
	return nil
}

func (d Refusal) check(m *Message, to addressee) error {
	if len(d.Problems) == 0 {
		return fmt.Errorf("a refusal must say what was wrong: no problems given")
	}
	if strings.TrimSpace(d.Usage) == "" {
		return fmt.Errorf("a refusal must explain the instruction block: no usage text")
	}
	return nil
}

func (d Verification) check(m *Message, to addressee) error {
	if len(d.Files) == 0 && strings.TrimSpace(d.Problem) == "" {
		return fmt.Errorf("a verification report must report on files or say why there are none: neither given")
	}
	if d.Address == "" {
		return fmt.Errorf("a verification report must name the verification address: none given")
	}
	return nil
}

func (d Invitation) check(m *Message, to addressee) error { return checkActor(to) }

func (d Reminder) check(m *Message, to addressee) error { return checkActor(to) }

func (d OneTimeCode) check(m *Message, to addressee) error {
	if d.Code == "" {
		return fmt.Errorf("no code")
	}
	if d.Valid <= 0 {
		return fmt.Errorf("code validity %s is not positive", d.Valid)
	}
	return checkActor(to)
}

func (d Declined) check(m *Message, to addressee) error {
	if m.Envelope.Recipient(d.By) == nil {
		return fmt.Errorf("envelope %s has no recipient %q who declined", m.Envelope.ID, d.By)
	}
	return nil
}

func (d Delegated) check(m *Message, to addressee) error {
	by := m.Envelope.Recipient(d.By)
	switch {
	case by == nil:
		return fmt.Errorf("envelope %s has no recipient %q who delegated", m.Envelope.ID, d.By)
	case by.State != workflow.HasDelegated || m.Envelope.Recipient(by.DelegatedTo) == nil:
		return fmt.Errorf("recipient %s of envelope %s has not delegated to a recipient of the envelope", d.By, m.Envelope.ID)
	case to.recipient != nil && to.recipient.ID != d.By:
		// The sender is told; so is who delegated by mail, as confirmation.
		return fmt.Errorf("it goes to the sender or to %s who delegated, not to recipient %s", d.By, to.recipient.ID)
	}
	return nil
}

func (d CodeLocked) check(m *Message, to addressee) error {
	if by := m.Envelope.Recipient(d.By); by == nil || !by.Role.Acts() {
		return fmt.Errorf("envelope %s has no recipient %q who signs or approves", m.Envelope.ID, d.By)
	}
	return checkSender(to)
}

func (d Cancelled) check(m *Message, to addressee) error { return nil }

func (d Expired) check(m *Message, to addressee) error { return nil }

func (d DeliveryFailure) check(m *Message, to addressee) error {
	if d.Address == "" {
		return fmt.Errorf("no failed address")
	}
	return nil
}

func (d CompletionDelayed) check(m *Message, to addressee) error {
	if m.Envelope.StepsDoneAt.IsZero() {
		return fmt.Errorf("envelope %s has not done its steps: no completion to be delayed", m.Envelope.ID)
	}
	return checkSender(to)
}

func (d Completion) check(m *Message, to addressee) error {
	switch {
	case len(d.Files) == 0:
		return fmt.Errorf("no files")
	case d.DownloadURL == "":
		// Over the limit it is the only way to the files; within it, the
		// way to fetch them again once the mail is gone.
		return fmt.Errorf("no download link")
	case d.DownloadUntil.IsZero():
		return fmt.Errorf("no expiry of the download link")
	}
	for _, f := range d.Files {
		if err := f.check(); err != nil {
			return err
		}
	}
	if to.recipient != nil && to.recipient.Role == workflow.Archivist {
		if d.Audit == nil {
			return fmt.Errorf("recipient %s is an archivist, and no audit trail is given", to.recipient.ID)
		}
		return d.Audit.check()
	}
	return nil
}

// check rejects an attachment that cannot be written or described.
func (a Attachment) check() error {
	if a.Name == "" {
		return fmt.Errorf("an attachment has no name")
	}
	if a.Open == nil {
		return fmt.Errorf("attachment %q has no content", a.Name)
	}
	if a.Size < 0 {
		return fmt.Errorf("attachment %q has a negative size", a.Name)
	}
	if b, err := hex.DecodeString(a.SHA256); err != nil || len(b) != 32 {
		return fmt.Errorf("attachment %q: SHA-256 %q is not 64 hex digits", a.Name, a.SHA256)
	}
	return nil
}

// checkActor requires the addressee to be a recipient who signs or approves.
func checkActor(to addressee) error {
	if to.recipient == nil {
		return fmt.Errorf("it goes to a recipient who signs or approves, not to the sender")
	}
	if !to.recipient.Role.Acts() {
		return fmt.Errorf("recipient %s is a %s, who neither signs nor approves", to.recipient.ID, to.recipient.Role)
	}
	return nil
}

// checkEmail rejects an address that cannot go in To.
func checkEmail(addr string) error {
	if _, err := address.ASCII(addr); err != nil {
		return fmt.Errorf("addressee: %w", err)
	}
	return nil
}

// validMsgID accepts what can go between angle brackets: id-left "@"
// id-right, printable ASCII without space or brackets (RFC 5322 §3.6.4,
// leniently, since submissions' IDs are the outside world's).
func validMsgID(id string) bool {
	at := strings.LastIndexByte(id, '@')
	if at <= 0 || at == len(id)-1 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

func trimAngles(id string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(id), "<"), ">")
}
