package compose

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	htmlstd "html"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/workflow"
)

// parsed is a composed message read back with go-message.
type parsed struct {
	header      mail.Header
	text, html  string
	attachments []parsedFile
}

type parsedFile struct {
	Name        string `json:"filename"`
	ContentType string `json:"content_type"`
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
}

func compose(t testing.TB, c *Composer, m *Message) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := c.Compose(&b, m); err != nil {
		t.Fatalf("Compose(%s): %v", m.Data.Kind(), err)
	}
	return b.Bytes()
}

func parse(t testing.TB, raw []byte) parsed {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("go-message cannot read the message: %v\n%s", err, raw)
	}
	p := parsed{header: r.Header}
	for {
		part, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("go-message: next part: %v", err)
		}
		body, err := io.ReadAll(part.Body)
		if err != nil {
			t.Fatalf("go-message: reading a part: %v", err)
		}
		switch h := part.Header.(type) {
		case *mail.InlineHeader:
			ct, params, _ := h.ContentType()
			if params["charset"] != "utf-8" {
				t.Errorf("%s part has charset %q", ct, params["charset"])
			}
			switch ct {
			case "text/plain":
				p.text = string(body)
			case "text/html":
				p.html = string(body)
			default:
				t.Errorf("unexpected inline part %s", ct)
			}
		case *mail.AttachmentHeader:
			name, err := h.Filename()
			if err != nil {
				t.Errorf("attachment file name: %v", err)
			}
			ct, _, _ := h.ContentType()
			sum := sha256.Sum256(body)
			p.attachments = append(p.attachments, parsedFile{Name: name, ContentType: ct, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body))})
		}
	}
	return p
}

// TestComposeEveryKind composes every kind in both languages, reads each
// mail back with go-message and with Python's email package, and checks
// headers, texts and attachments.
func TestComposeEveryKind(t *testing.T) {
	c := newComposer(t, testConfig())
	dir := t.TempDir()
	if d := os.Getenv("COMPOSE_DUMP_DIR"); d != "" {
		// For reading the mails by eye: COMPOSE_DUMP_DIR=/tmp/mails go test -run EveryKind
		dir = d
	}
	type expect struct {
		subject string
		text    string
		files   []parsedFile
	}
	want := map[string]expect{}
	covered := map[Kind]bool{}
	for _, lang := range []string{"fr", "en"} {
		for _, s := range samples(lang) {
			name := lang + "-" + s.name
			covered[s.msg.Data.Kind()] = true
			raw := compose(t, c, s.msg)
			if err := os.WriteFile(filepath.Join(dir, name+".eml"), raw, 0o644); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
				t.Errorf("%s: bare LF in the message", name)
			}
			p := parse(t, raw)
			subject, err := p.header.Subject()
			if err != nil {
				t.Errorf("%s: subject: %v", name, err)
			}
			if lang == "fr" && s.subject != "" && subject != s.subject {
				t.Errorf("%s: subject %q, want %q", name, subject, s.subject)
			}
			checkHeader(t, name, c, s.msg, p.header)
			if p.text == "" || p.html == "" {
				t.Errorf("%s: text part %d bytes, HTML part %d bytes", name, len(p.text), len(p.html))
			}
			if e := s.msg.Envelope; e != nil && !strings.Contains(p.text, e.Title) {
				t.Errorf("%s: the text does not name the title:\n%s", name, p.text)
			}
			if strings.Contains(p.text, "<no value>") || strings.Contains(p.html, "<no value>") {
				t.Errorf("%s: a template printed a missing value:\n%s", name, p.text)
			}
			files := p.attachments
			if len(files) != len(s.files) {
				t.Errorf("%s: %d attachments, want %d", name, len(files), len(s.files))
			}
			for i := range min(len(files), len(s.files)) {
				if files[i].Name != s.files[i] {
					t.Errorf("%s: attachment %d is %q, want %q", name, i, files[i].Name, s.files[i])
				}
			}
			checkAttachedSums(t, name, s.msg, files)
			want[name+".eml"] = expect{subject: subject, text: p.text, files: files}
		}
	}
	for _, k := range Kinds {
		if !covered[k] {
			t.Errorf("no sample of kind %s", k)
		}
	}

	// Python's email package, with the modern policy, as an independent
	// reader.
	got := pythonParse(t, dir)
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: Python did not read it", name)
			continue
		}
		if len(g.Defects) > 0 {
			t.Errorf("%s: Python found defects: %v", name, g.Defects)
		}
		if g.Subject != w.subject {
			t.Errorf("%s: Python decodes the subject as %q, go-message as %q", name, g.Subject, w.subject)
		}
		if strings.ReplaceAll(g.Text, "\r\n", "\n") != strings.ReplaceAll(w.text, "\r\n", "\n") {
			t.Errorf("%s: Python's text part differs from go-message's:\n%s\n---\n%s", name, g.Text, w.text)
		}
		if g.HTML == "" {
			t.Errorf("%s: Python finds no HTML part", name)
		}
		if g.AutoSubmitted != "auto-generated" {
			t.Errorf("%s: Python reads Auto-Submitted %q", name, g.AutoSubmitted)
		}
		if fmt.Sprint(g.Attachments) != fmt.Sprint(w.files) {
			t.Errorf("%s: Python's attachments %v, go-message's %v", name, g.Attachments, w.files)
		}
	}
}

// checkHeader checks the fields every mail carries.
func checkHeader(t *testing.T, name string, c *Composer, m *Message, h mail.Header) {
	t.Helper()
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "parapheur@org.example" || from[0].Name != "Parapheur de l'Organisation" {
		t.Errorf("%s: From %v, %v", name, from, err)
	}
	replyTo, err := h.AddressList("Reply-To")
	if err != nil || len(replyTo) != 1 || replyTo[0].Address != "parapheur@org.example" {
		t.Errorf("%s: Reply-To %v, %v", name, replyTo, err)
	}
	to, err := h.AddressList("To")
	wantTo := ""
	switch d := m.Data.(type) {
	case answer:
		to, _, _ := d.answers()
		wantTo = to.Email
	default:
		wantTo = m.Envelope.Sender.Email
		if m.RecipientID != "" {
			wantTo = m.Envelope.Recipient(m.RecipientID).Email
		}
	}
	if err != nil || len(to) != 1 || to[0].Address != wantTo {
		t.Errorf("%s: To %v, %v; want %s", name, to, err, wantTo)
	}
	if id, err := h.MessageID(); err != nil || id != m.ID {
		t.Errorf("%s: Message-ID %q, %v; want %q", name, id, err, m.ID)
	}
	if d, err := h.Date(); err != nil || !d.Equal(m.Date) {
		t.Errorf("%s: Date %v, %v", name, d, err)
	}
	for k, v := range map[string]string{"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All", "Mime-Version": "1.0"} {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s: %q, want %q", name, k, got, v)
		}
	}
	wantEnv := ""
	if m.Envelope != nil {
		wantEnv = m.Envelope.ID
	}
	if got := h.Get("X-Parapheur-Envelope"); got != wantEnv {
		t.Errorf("%s: X-Parapheur-Envelope %q, want %q", name, got, wantEnv)
	}
}

// checkAttachedSums checks that every attachment is a file of the message
// with the stated SHA-256, and that the text states it.
func checkAttachedSums(t *testing.T, name string, m *Message, files []parsedFile) {
	t.Helper()
	d, ok := m.Data.(Completion)
	if !ok {
		return
	}
	stated := map[string]string{}
	for _, f := range d.Files {
		stated[fileName(f.Name)] = f.SHA256
	}
	stated["audit-"+m.Envelope.ID+".json"] = d.Audit.SHA256
	for _, f := range files {
		if stated[f.Name] != f.SHA256 {
			t.Errorf("%s: attachment %q has SHA-256 %s, stated %s", name, f.Name, f.SHA256, stated[f.Name])
		}
	}
}

// pythonMail is what the Python script reports of one message.
type pythonMail struct {
	Subject       string       `json:"subject"`
	AutoSubmitted string       `json:"auto_submitted"`
	InReplyTo     string       `json:"in_reply_to"`
	References    string       `json:"references"`
	Text          string       `json:"text"`
	HTML          string       `json:"html"`
	Attachments   []parsedFile `json:"attachments"`
	Defects       []string     `json:"defects"`
}

const pythonScript = `
import email, email.policy, hashlib, json, os, sys

out = {}
d = sys.argv[1]
for name in sorted(os.listdir(d)):
    if not name.endswith(".eml"):
        continue
    with open(os.path.join(d, name), "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    defects = [type(x).__name__ for part in msg.walk() for x in part.defects]
    for k, v in msg.items():
        defects += [k + ": " + type(x).__name__ for x in getattr(v, "defects", ())]
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    files = []
    for part in msg.iter_attachments():
        data = part.get_payload(decode=True)
        files.append({"filename": part.get_filename(), "content_type": part.get_content_type(),
                      "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    out[name] = {
        "subject": str(msg["subject"]),
        "auto_submitted": str(msg["auto-submitted"]),
        "in_reply_to": str(msg["in-reply-to"] or ""),
        "references": str(msg["references"] or ""),
        "text": text.get_content() if text is not None else "",
        "html": html.get_content() if html is not None else "",
        "attachments": files,
        "defects": defects,
    }
json.dump(out, sys.stdout)
`

// pythonParse runs Python's email package over every .eml file of dir.
func pythonParse(t *testing.T, dir string) map[string]pythonMail {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed to cross-check the mails: apt-get install -y python3")
	}
	cmd := exec.Command(python, "-c", pythonScript, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.String())
	}
	got := map[string]pythonMail{}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python3 output: %v\n%s", err, out)
	}
	return got
}

// TestThreading checks that every mail to one party about one envelope
// belongs to one thread.
func TestThreading(t *testing.T) {
	c := newComposer(t, testConfig())
	refs := map[string]string{}
	for _, s := range samples("fr") {
		p := parse(t, compose(t, c, s.msg))
		inReplyTo, err := p.header.MsgIDList("In-Reply-To")
		if err != nil {
			t.Fatalf("%s: In-Reply-To: %v", s.name, err)
		}
		references, err := p.header.MsgIDList("References")
		if err != nil {
			t.Fatalf("%s: References: %v", s.name, err)
		}
		if len(inReplyTo) != 1 || !slices.Contains(references, inReplyTo[0]) {
			t.Fatalf("%s: In-Reply-To %v, References %v", s.name, inReplyTo, references)
		}
		switch {
		case s.name == "refusal":
			if inReplyTo[0] != "refused.1@mail.org.example" {
				t.Errorf("refusal answers %q, not the refused submission", inReplyTo[0])
			}
			// RFC 5322 §3.6.4: the parent's References, then the parent;
			// what is not a msg-id, and the parent named twice, left out.
			if want := []string{"thread.0@mail.org.example", "refused.1@mail.org.example"}; !slices.Equal(references, want) {
				t.Errorf("refusal: References %v, want %v", references, want)
			}
			continue
		case s.msg.Data.Kind() == KindVerification:
			if _, want, _ := s.msg.Data.(answer).answers(); "<"+inReplyTo[0]+">" != want || len(references) != 1 {
				t.Errorf("%s answers %q (References %v), not the mail it reports on, %s", s.name, inReplyTo[0], references, want)
			}
			continue
		case s.msg.RecipientID == "":
			if inReplyTo[0] != "CAF1x-submission.42@mail.org.example" {
				t.Errorf("%s: the sender's mail answers %q, not the submission", s.name, inReplyTo[0])
			}
			// The submission's References, the submission, then the
			// sender's thread root, by which a reply command (ANNULER)
			// finds its envelope.
			if want := []string{"partner.7@partner.example", "CAF1x-forward.41@mail.org.example", inReplyTo[0]}; !slices.Equal(references[:len(references)-1], want) {
				t.Errorf("%s: References %v, want %v then the thread root", s.name, references, want)
			}
			if env, rid, _, err := mailid.ParseThread("org.example", references[len(references)-1]); err != nil || env != "ENV-7F3K2Q" || rid != "" {
				t.Errorf("%s: the sender's mail does not name the sender's thread root: References %v", s.name, references)
			}
		default:
			env, rid, _, err := mailid.ParseThread("org.example", inReplyTo[0])
			if err != nil || env != "ENV-7F3K2Q" || rid != s.msg.RecipientID {
				t.Errorf("%s: a recipient's mail answers %q (%q, %q, %v)", s.name, inReplyTo[0], env, rid, err)
			}
		}
		party := s.msg.RecipientID
		if prev, ok := refs[party]; ok && prev != inReplyTo[0] {
			t.Errorf("%s: party %q is in two threads: %s and %s", s.name, party, prev, inReplyTo[0])
		}
		refs[party] = inReplyTo[0]
	}
	if len(refs) < 4 {
		t.Fatalf("only %d parties seen", len(refs))
	}

	// The first invitation may be the thread root itself: it refers to
	// nothing, and later mails refer to it.
	root, err := mailid.ThreadRoot("org.example", "ENV-7F3K2Q", "r2")
	if err != nil {
		t.Fatal(err)
	}
	m := samples("fr")[2].msg
	m.ID = root
	p := parse(t, compose(t, c, m))
	if p.header.Has("In-Reply-To") || p.header.Has("References") {
		t.Errorf("the root invitation refers to %q / %q", p.header.Get("In-Reply-To"), p.header.Get("References"))
	}

	// An envelope whose submission had no usable Message-ID threads the
	// sender's mails under the sender's own root.
	m = samples("fr")[0].msg
	m.Envelope.MessageID = "not a message id"
	p = parse(t, compose(t, c, m))
	if ids, _ := p.header.MsgIDList("In-Reply-To"); len(ids) != 1 || ids[0] != "thread.ENV-7F3K2Q@org.example" {
		t.Errorf("without a submission ID the acknowledgement answers %v", ids)
	}
}

// TestFrenchSubject checks that accents and typographic characters survive
// the RFC 2047 encoding, and that the raw header is ASCII.
func TestFrenchSubject(t *testing.T) {
	c := newComposer(t, testConfig())
	m := samples("fr")[2].msg
	m.Envelope.Title = "Délibération n°2026-118 « École élémentaire » : accord-cadre œuvre d'été"
	raw := compose(t, c, m)
	header, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for _, b := range header {
		if b >= 0x80 {
			t.Fatalf("non-ASCII byte in the header:\n%s", header)
		}
	}
	p := parse(t, raw)
	if s, err := p.header.Subject(); err != nil || s != "À signer : "+m.Envelope.Title {
		t.Errorf("subject %q, %v", s, err)
	}
	to, err := p.header.AddressList("To")
	if err != nil || to[0].Name != "Marie Curie" {
		t.Errorf("To %v, %v", to, err)
	}
}

// TestHTMLEscaping feeds hostile user text everywhere the HTML shows it.
func TestHTMLEscaping(t *testing.T) {
	c := newComposer(t, testConfig())
	hostile := `<script>alert("x")</script>`
	for _, s := range samples("en") {
		m := s.msg
		if e := m.Envelope; e != nil {
			e.Title = hostile
			e.Message = `<img src=x onerror=alert(1)>`
			e.Sender.Name = `Eve <b>`
			e.Recipients[1].Name = `<i>Marie</i>`
			e.Documents[0].Name = `<svg onload=alert(1)>.pdf`
		}
		switch d := m.Data.(type) {
		case Refusal:
			d.Subject, d.Problems, d.Usage = hostile, []string{hostile}, hostile
			m.Data = d
		case Verification:
			// Anything in a report comes from the files someone sent.
			d.Subject, d.Problem = hostile, hostile
			if len(d.Files) > 0 {
				f := d.Files[0]
				f.Name, f.Signatures = hostile, []verdict.Signature{{Signer: hostile, Email: hostile, Reason: hostile, Problem: hostile, Level: hostile}}
				f.Trails = []verdict.Trail{{Name: hostile, Verdict: hostile}}
				d.Files = append([]verdict.File{f}, d.Files[1:]...)
			}
			m.Data = d
		case Declined:
			d.Reason = hostile
			m.Data = d
		case Delegated:
			d.Reason = hostile
			m.Data = d
		case DeliveryFailure:
			d.Answer = hostile
			m.Data = d
		case CompletionDelayed:
			d.Reason = hostile
			m.Data = d
		case Acknowledgement:
			d.Ignored = []IgnoredAttachment{{Name: hostile, ContentType: "text/html"}}
			m.Data = d
		case Completion:
			d.Files = append([]Attachment{file(hostile+".pdf", "application/pdf", []byte("x"))}, d.Files...)
			m.Data = d
		}
		p := parse(t, compose(t, c, m))
		for _, bad := range []string{"<script", "<img", "<svg", "<i>", "Eve <b>"} {
			if strings.Contains(p.html, bad) {
				t.Errorf("%s: the HTML holds %q unescaped", s.name, bad)
			}
		}
		if !strings.Contains(p.html, "&lt;script&gt;") {
			t.Errorf("%s: the HTML does not show the escaped title", s.name)
		}
		if !strings.Contains(p.text, hostile) {
			t.Errorf("%s: the text part does not show the title as written", s.name)
		}
		// Subjects are plain text, shown as written.
		if subject, _ := p.header.Subject(); !strings.Contains(subject, hostile) {
			t.Errorf("%s: subject %q does not hold the title as written", s.name, subject)
		}
	}
}

// TestFileNameRFC2231 checks the attachment names on the wire.
func TestFileNameRFC2231(t *testing.T) {
	c := newComposer(t, testConfig())
	raw := compose(t, c, samples("fr")[11].msg)
	if !bytes.Contains(raw, []byte(`filename*=utf-8''Convention%20%C3%A9t%C3%A9%202026.pdf`)) {
		t.Errorf("no RFC 2231 file name in:\n%s", raw)
	}
	for _, tc := range []struct{ in, want string }{
		{"../../etc/passwd", ".._.._etc_passwd"},
		{"a\r\nb.pdf", "a__b.pdf"},
		{"", "file"},
		{strings.Repeat("é", 200) + ".pdf", strings.Repeat("é", 115) + "….pdf"},
	} {
		if got := fileName(tc.in); got != tc.want {
			t.Errorf("fileName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestDeterministic checks that composing one outbox item twice gives the
// same bytes, which DKIM's two passes and resends rely on.
func TestDeterministic(t *testing.T) {
	c := newComposer(t, testConfig())
	for _, s := range samples("en") {
		a, b := compose(t, c, s.msg), compose(t, c, s.msg)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two compositions differ", s.name)
		}
	}
}

// TestComposeErrors checks that bad input is refused with a clear error.
func TestComposeErrors(t *testing.T) {
	c := newComposer(t, testConfig())
	get := func(name string) *Message { return sampleNamed(t, "fr", name) }
	for _, tc := range []struct {
		name string
		edit func(m *Message)
		base string
		want string
	}{
		{"foreign Message-ID", func(m *Message) { m.ID = "x@elsewhere.example" }, "invitation", "not a message ID on the gateway's domain"},
		{"no date", func(m *Message) { m.Date = time.Time{} }, "invitation", "no date"},
		{"link elsewhere", func(m *Message) { m.Data = Invitation{Link: "https://evil.example/s/x"} }, "invitation", "not under the public URL"},
		{"unknown recipient", func(m *Message) { m.RecipientID = "r9" }, "invitation", `no recipient "r9"`},
		{"invitation to a copy", func(m *Message) { m.RecipientID = "r4" }, "invitation", "neither signs nor approves"},
		{"invitation to the sender", func(m *Message) { m.RecipientID = "" }, "invitation", "not to the sender"},
		{"acknowledgement to a recipient", func(m *Message) { m.RecipientID = "r2" }, "acknowledgement", "goes to the sender"},
		{"no envelope", func(m *Message) { m.Envelope = nil }, "expired", "no envelope"},
		{"no deadline", func(m *Message) { m.Envelope.Deadline = time.Time{} }, "invitation", "has no deadline"},
		{"refusal with an envelope", func(m *Message) { m.Envelope = envelope("x") }, "refusal", "made no envelope"},
		{"refusal without problems", func(m *Message) { d := m.Data.(Refusal); d.Problems = nil; m.Data = d }, "refusal", "what was wrong"},
		{"refusal without usage", func(m *Message) { d := m.Data.(Refusal); d.Usage = " "; m.Data = d }, "refusal", "no usage text"},
		{"code without code", func(m *Message) { m.Data = OneTimeCode{Valid: 1} }, "code", "no code"},
		{"unknown language", func(m *Message) { m.Language = "de" }, "code", `language "de"`},
		{"decline by nobody", func(m *Message) { m.Data = Declined{By: "r8"} }, "declined", `no recipient "r8"`},
		{"delegation by nobody", func(m *Message) { m.Data = Delegated{By: "r8"} }, "delegated", `no recipient "r8" who delegated`},
		{"delegation by one who did not", func(m *Message) { m.Data = Delegated{By: "r3"} }, "delegated", "r3 of envelope ENV-7F3K2Q has not delegated"},
		{"delegation to nobody", func(m *Message) { m.Envelope.Recipient("r2").DelegatedTo = "r9" }, "delegated", "has not delegated to a recipient"},
		{"delegation notice to a recipient", func(m *Message) { m.RecipientID = "r3" }, "delegated", "goes to the sender"},
		{"code lock of a copy", func(m *Message) { m.Data = CodeLocked{By: "r4"} }, "code_locked", `no recipient "r4" who signs or approves`},
		{"code lock notice to a recipient", func(m *Message) { m.RecipientID = "r1" }, "code_locked", "goes to the sender"},
		{"archivist without audit", func(m *Message) { d := m.Data.(Completion); d.Audit = nil; m.Data = d }, "completion-archivist", "no audit trail"},
		{"bad hash", func(m *Message) { d := completion(); d.Files[0].SHA256 = "abc"; m.Data = d }, "completion", "not 64 hex digits"},
		{"bad addressee", func(m *Message) { m.Envelope.Sender.Email = "Agnès <a@b>" }, "completion", "the part before the @ is not ASCII"},
		{"addressee without domain", func(m *Message) { m.Envelope.Sender.Email = "agnes" }, "completion", "it is not of the form name@domain"},
	} {
		m := get(tc.base)
		tc.edit(m)
		err := c.Compose(io.Discard, m)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}

	// Content that is not what the hash says is caught while writing.
	m := get("completion")
	d := completion()
	d.Files[1].Open = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("tampered content!!!!!!!")), nil }
	d.Files[1].Size = int64(len("tampered content!!!!!!!"))
	m.Data = d
	if err := c.Compose(io.Discard, m); err == nil || !strings.Contains(err.Error(), "has SHA-256") {
		t.Errorf("tampered attachment: %v", err)
	}
	m = get("completion")
	d = completion()
	d.Files[0].Size++
	m.Data = d
	if err := c.Compose(io.Discard, m); err == nil || !strings.Contains(err.Error(), "not the") {
		t.Errorf("wrong size: %v", err)
	}
	m = get("completion")
	d = completion()
	d.Files[0].Open = func() (io.ReadCloser, error) { return nil, errors.New("blob gone") }
	m.Data = d
	if err := c.Compose(io.Discard, m); err == nil || !strings.Contains(err.Error(), "blob gone") {
		t.Errorf("unreadable attachment: %v", err)
	}
}

// TestNewErrors checks the configuration checks.
func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Address = "Parapheur <p@org.example>" }, "bare address"},
		{func(c *Config) { c.PublicURL = "sign.org.example" }, "absolute http(s) URL"},
		{func(c *Config) { c.Language = "de" }, `"de"`},
		{func(c *Config) { c.AttachmentLimit = -1 }, "negative"},
		{func(c *Config) { c.DKIM = &DKIM{Domain: "org.example", Selector: "s"} }, "DKIM"},
		// Return paths that could not be written would fail every mail.
		{func(c *Config) { c.ReturnPathKey = nil }, "return path key has 0 bytes"},
		{func(c *Config) { c.Address = "signature-electronique@org.example" }, "more than the 64 of RFC 5321"},
	} {
		cfg := testConfig()
		tc.edit(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New: %v, want an error with %q", err, tc.want)
		}
	}
}

// TestConcurrent composes one Completion for several parties at once, as
// the outbox workers do; run with -race.
func TestConcurrent(t *testing.T) {
	c := newComposer(t, testConfig())
	d := completion()
	d.Files = append(make([]Attachment, 0, 10), d.Files...) // room to append into
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		m := samples("en")[12].msg // the archivist's completion
		if i%2 == 0 {
			m = samples("en")[11].msg // the sender's
		}
		m.Data = d
		wg.Go(func() {
			var b bytes.Buffer
			if err := c.Compose(&b, m); err != nil {
				errs <- err
				return
			}
			if want := 3 + i%2; bytes.Count(b.Bytes(), []byte("Content-Disposition: attachment")) != want {
				errs <- fmt.Errorf("composition %d: want %d attachments", i, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestAcknowledgementWithoutStatusPage: with no status page, the
// acknowledgement carries no dead link and says how to cancel by reply.
func TestAcknowledgementWithoutStatusPage(t *testing.T) {
	c := newComposer(t, testConfig())
	checked := 0
	for _, lang := range []string{"fr", "en"} {
		for _, s := range samples(lang) {
			if s.name != "acknowledgement" {
				continue
			}
			checked++
			msg := *s.msg
			msg.Data = Acknowledgement{}
			p := parse(t, compose(t, c, &msg))
			word := map[string]string{"fr": "ANNULER", "en": "CANCEL"}[lang]
			if strings.Contains(p.text+p.html, "/e/") || !strings.Contains(p.text, word) || !strings.Contains(p.html, word) {
				t.Errorf("%s acknowledgement without status page:\n%s", lang, p.text)
			}
		}
	}
	if checked != 2 {
		t.Fatalf("checked %d acknowledgements, want one per language", checked)
	}
}

// TestDeadlineDay: an envelope expiring at midnight (the end of the day the
// sender wrote) shows that day, not the next one.
func TestDeadlineDay(t *testing.T) {
	c := newComposer(t, testConfig())
	s := samples("fr")[0]
	msg := *s.msg
	env := *msg.Envelope
	paris, _ := time.LoadLocation("Europe/Paris")
	env.Deadline = time.Date(2026, 12, 23, 0, 0, 0, 0, paris)
	msg.Envelope = &env
	p := parse(t, compose(t, c, &msg))
	if !strings.Contains(p.text, "22 décembre 2026") || strings.Contains(p.text, "23 décembre") {
		t.Fatalf("the deadline of 22 December shows as:\n%s", p.text)
	}
}

// sampleNamed returns a fresh copy of the sample called name in lang.
func sampleNamed(t *testing.T, lang, name string) *Message {
	t.Helper()
	for _, s := range samples(lang) {
		if s.name == name {
			return s.msg
		}
	}
	t.Fatalf("no sample %s", name)
	return nil
}

// lacks returns the first of want that p's text or HTML does not hold
// (the HTML with its escapes undone), or "".
func (p parsed) lacks(want ...string) string {
	html := htmlstd.UnescapeString(p.html)
	for _, w := range want {
		if !strings.Contains(p.text, w) || !strings.Contains(html, w) {
			return w
		}
	}
	return ""
}

// TestDelegationMails: the sender learns who handed their place to whom, why,
// and that the delegate was invited; the delegate's invitation says who
// delegated; the sender learns whose code was locked, that it is void, that
// a new one can be asked for, and that it may be an attack.
func TestDelegationMails(t *testing.T) {
	c := newComposer(t, testConfig())
	for _, tc := range []struct {
		lang, sample string
		want         []string
	}{
		{"fr", "delegated", []string{"Marie Curie <marie@partner.example> a confié sa signature", "Louise Martin <louise@partner.example> a reçu",
			"En congés jusqu'au 20 décembre.", "Louise suit le dossier.", "a reçu sa propre invitation", "à l'étape 2"}},
		{"en", "delegated", []string{"Marie Curie <marie@partner.example> handed their signature", "Louise Martin <louise@partner.example> has received",
			"En congés jusqu'au 20 décembre.", "has received their own invitation", "at step 2"}},
		{"fr", "invitation-delegate", []string{"Marie Curie <marie@partner.example> vous a confié sa signature, avec ce motif",
			"Louise suit le dossier.", "https://sign.org.example/s/TOKEN-r6"}},
		{"en", "invitation-delegate", []string{"Marie Curie <marie@partner.example> handed their signature to you, saying",
			"Louise suit le dossier."}},
		// Who declined by mail gets the notice as a confirmation, in the
		// second person; the others read who declined.
		{"fr", "declined-to-decliner", []string{"Vous avez refusé de signer", "Montant erroné.", "Le circuit est arrêté"}},
		{"en", "declined-to-decliner", []string{"You declined to sign", "Montant erroné.", "The circuit has stopped"}},
		{"fr", "declined-to-recipient", []string{"a refusé de signer"}},
		// … and so does who delegated by mail, without the sender's advice
		// to cancel.
		{"fr", "delegated-to-delegator", []string{"Vous avez confié votre signature", "Louise Martin <louise@partner.example>", "à votre place", "plus rien à faire"}},
		{"en", "delegated-to-delegator", []string{"You handed your signature", "in your place", "nothing more to do"}},
		{"fr", "code_locked", []string{"erroné a été saisi 5 fois", "John Smith <john@partner.example>", "Ce code est annulé",
			"demander un nouveau code", "ne pas avoir fait ces essais", "deviner le code"}},
		{"en", "code_locked", []string{"wrong confirmation code was entered 5 times", "John Smith <john@partner.example>", "That code is now void",
			"ask for a new code", "did not make these attempts", "guess the code"}},
	} {
		p := parse(t, compose(t, c, sampleNamed(t, tc.lang, tc.sample)))
		if w := p.lacks(tc.want...); w != "" {
			t.Errorf("%s %s: the text or the HTML does not say %q:\n%s", tc.lang, tc.sample, w, p.text)
		}
	}

	// When the code cap holds the recipient back, the sender is told from
	// when a new code can be asked for, to the minute above, in the zone.
	for _, lang := range []string{"fr", "en"} {
		m := sampleNamed(t, lang, "code_locked")
		if p := parse(t, compose(t, c, m)); strings.Contains(p.text+p.html, "codes par heure") || strings.Contains(p.text+p.html, "codes an hour") {
			t.Errorf("%s: a lock under the cap speaks of the cap:\n%s", lang, p.text)
		}
		r := m.Envelope.Recipient("r3")
		for i := range workflow.MaxCodesPerHour {
			r.CodesSent = append(r.CodesSent, m.Date.Add(time.Duration(i-50)*time.Minute+30*time.Second))
		}
		at := m.Date.Add(10*time.Minute + time.Minute).Truncate(time.Minute).In(paris)
		want := map[string]string{
			"fr": fmt.Sprintf("à partir du %d novembre 2026 à %s (5 codes par heure au plus)", at.Day(), at.Format("15:04 MST")),
			"en": fmt.Sprintf("from %d November 2026 at %s (at most 5 codes an hour)", at.Day(), at.Format("15:04 MST")),
		}[lang]
		if p := parse(t, compose(t, c, m)); p.lacks(want) != "" {
			t.Errorf("%s: the lock under the hourly cap does not say %q:\n%s", lang, want, p.text)
		}
	}

	// A delegation without a reason says there was none, and an invitation
	// to a delegate without a reason names the delegator all the same.
	for _, lang := range []string{"fr", "en"} {
		m := sampleNamed(t, lang, "delegated")
		m.Envelope.Recipient("r2").Reason = ""
		p := parse(t, compose(t, c, m))
		if w := p.lacks(map[string]string{"fr": "(aucun motif donné)", "en": "(no reason given)"}[lang]); w != "" {
			t.Errorf("%s: a delegation without a reason does not say %q:\n%s", lang, w, p.text)
		}
		m = sampleNamed(t, lang, "invitation-delegate")
		m.Envelope.Recipient("r2").Reason = ""
		p = parse(t, compose(t, c, m))
		if w := p.lacks(map[string]string{"fr": "Marie Curie <marie@partner.example> vous a confié sa signature.",
			"en": "Marie Curie <marie@partner.example> handed their signature to you."}[lang]); w != "" {
			t.Errorf("%s: the invitation to a delegate does not say %q:\n%s", lang, w, p.text)
		}
	}
}

// TestInvitationReplyCommands: invitations and reminders tell how to decline
// and, unless the envelope forbids it, how to delegate by reply.
func TestInvitationReplyCommands(t *testing.T) {
	c := newComposer(t, testConfig())
	for _, lang := range []string{"fr", "en"} {
		decline := map[string]string{"fr": "REFUSER : votre motif", "en": "DECLINE: your reason"}[lang]
		delegate := map[string]string{"fr": "DÉLÉGUER : Prénom Nom <adresse@exemple.fr>", "en": "DELEGATE: First Last <address@example.com>"}[lang]
		for _, name := range []string{"invitation", "invitation-approver", "reminder"} {
			m := sampleNamed(t, lang, name)
			p := parse(t, compose(t, c, m))
			if w := p.lacks(decline, delegate); w != "" {
				t.Errorf("%s %s: does not say %q:\n%s", lang, name, w, p.text)
			}
			m.Envelope.NoDelegation = true
			p = parse(t, compose(t, c, m))
			if w := p.lacks(decline); w != "" {
				t.Errorf("%s %s without delegation: does not say %q", lang, name, w)
			}
			if strings.Contains(p.text+p.html, delegate[:5]) || strings.Contains(strings.ToLower(p.text), map[string]string{"fr": "confier", "en": "hand your"}[lang]) {
				t.Errorf("%s %s offers delegation when the envelope forbids it:\n%s", lang, name, p.text)
			}
		}
	}
}

// TestAcknowledgementStatusPage: the status link is where the sender
// follows progress, reminds and cancels; ANNULER / CANCEL by reply still
// works and the mail says so.
func TestAcknowledgementStatusPage(t *testing.T) {
	c := newComposer(t, testConfig())
	for lang, want := range map[string][]string{
		"fr": {"https://sign.org.example/e/STATUSTOKEN", "Suivre l'avancement", "relancer", "annuler", "ANNULER", "ne le transférez pas"},
		"en": {"https://sign.org.example/e/STATUSTOKEN", "Follow progress", "reminder", "cancel", "CANCEL", "do not forward it"},
	} {
		p := parse(t, compose(t, c, sampleNamed(t, lang, "acknowledgement")))
		if w := p.lacks(want...); w != "" {
			t.Errorf("%s acknowledgement does not say %q:\n%s", lang, w, p.text)
		}
	}
}

// TestCommandRefusal: a refused reply command is told as a reply not
// applied, with how to reply, not as a submission to write again.
func TestCommandRefusal(t *testing.T) {
	c := newComposer(t, testConfig())
	for _, lang := range []string{"fr", "en"} {
		m := sampleNamed(t, lang, "refusal")
		d := m.Data.(Refusal)
		d.Subject, d.Command, d.Usage = "RE: À signer : Convention", true, "REFUSER : votre motif"
		m.Data = d
		p := parse(t, compose(t, c, m))
		subject, _ := p.header.Subject()
		want := map[string][]string{
			"fr": {"Non appliqué : RE: À signer : Convention", "n'a pas été appliquée", "Rien n'a été modifié.", "REFUSER : votre motif"},
			"en": {"Not applied: RE: À signer : Convention", "was not applied", "Nothing was changed.", "REFUSER : votre motif"},
		}[lang]
		if subject != want[0] {
			t.Errorf("%s: subject %q, want %q", lang, subject, want[0])
		}
		if w := p.lacks(want[1:]...); w != "" {
			t.Errorf("%s: the refusal of a command does not say %q:\n%s", lang, w, p.text)
		}
		if heading := map[string]string{"fr": "Comment répondre", "en": "How to reply"}[lang]; !strings.Contains(strings.ToLower(p.text), strings.ToLower(heading)) || !strings.Contains(p.html, heading) {
			t.Errorf("%s: the refusal of a command has no heading %q:\n%s", lang, heading, p.text)
		}
		for _, wrong := range []string{"Aucune demande n'a été créée", "No request was created", "circuit de signature", "sent for signature"} {
			if strings.Contains(p.text+p.html, wrong) {
				t.Errorf("%s: the refusal of a command says %q, as for a submission:\n%s", lang, wrong, p.text)
			}
		}
	}
}

// TestVerificationSigningTimes: a report says who vouches for each
// signing time: a time-stamp, this gateway's clock for a signature it
// made, else the signer's computer.
func TestVerificationSigningTimes(t *testing.T) {
	c := newComposer(t, testConfig())
	for _, lang := range []string{"fr", "en"} {
		m := sampleNamed(t, lang, "verification")
		d := m.Data.(Verification)
		stamped := d.Files[0].Signatures[0]
		ours, foreign := stamped, stamped
		ours.TimeStamped = false
		foreign.TimeStamped, foreign.Issued = false, false
		d.Files = []verdict.File{d.Files[0]}
		d.Files[0].Signatures = []verdict.Signature{stamped, ours, foreign}
		m.Data = d
		p := parse(t, compose(t, c, m))
		want := map[string][]string{
			"fr": {"(horodaté)", "(selon l'horloge de ce parapheur)", "(selon l'ordinateur du signataire)"},
			"en": {"(time-stamped)", "(by this gateway's clock)", "(as the signer's computer states it)"},
		}[lang]
		if w := p.lacks(want...); w != "" {
			t.Errorf("%s: the report does not say %q:\n%s", lang, w, p.text)
		}
	}
}

// TestVerificationNamesWhatItDidNotCheck: a mail to the verification address
// with attachments that are not PDFs is told they were not checked, beside
// the reports on its PDFs and when it had none.
func TestVerificationNamesWhatItDidNotCheck(t *testing.T) {
	c := newComposer(t, testConfig())
	for _, lang := range []string{"fr", "en"} {
		for _, sample := range []string{"verification", "verification-no-pdf"} {
			m := sampleNamed(t, lang, sample)
			d := m.Data.(Verification)
			d.Ignored = []IgnoredAttachment{{Name: "contrat.docx", ContentType: "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}, {ContentType: "image/png"}}
			m.Data = d
			p := parse(t, compose(t, c, m))
			want := map[string][]string{
				"fr": {"Pièces jointes non vérifiées (seuls les PDF sont vérifiés)", "contrat.docx", "(sans nom)"},
				"en": {"Attachments not checked (only PDF files are verified)", "contrat.docx", "(no name)"},
			}[lang]
			if w := p.lacks(append(want, "(application/vnd.openxmlformats-officedocument.wordprocessingml.document)", "(image/png)")...); w != "" {
				t.Errorf("%s %s: the reply does not say %q:\n%s\n%s", lang, sample, w, p.text, p.html)
			}
		}
	}
}

// The first of a month is "1er" in French, "1" in English; sizes are in
// "ko" in French, as everywhere else the gateway writes them.
func TestFirstOfTheMonthAndSizes(t *testing.T) {
	first := time.Date(2027, 3, 1, 10, 0, 0, 0, paris)
	if got := locales["fr"].datetime(first); got != "1er mars 2027 à 10:00 CET" {
		t.Errorf("fr: %q", got)
	}
	if got := locales["en"].datetime(first); got != "1 March 2027 at 10:00 CET" {
		t.Errorf("en: %q", got)
	}
	if got := locales["fr"].size(48_213); got != "48,2 ko" {
		t.Errorf("fr size: %q", got)
	}
}
