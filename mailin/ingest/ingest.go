// Package ingest decides what each message of the gateway's inbox is and
// acts on it (SPEC §2): a submission becomes an envelope, a delivery status
// notification (RFC 3464) a bounce on its envelope, a reply command
// (REFUSER / ANNULER) an action, an automatic mail (RFC 3834) nothing, and
// anything the gateway cannot accept a refusal reply. It is the
// poller.Handler of the running gateway.
//
// Nothing is dropped silently: every message ends in the processed folder
// or in quarantine with its reason, and a refusal reply is queued in the
// outbox unless the mail was automatic or its sender was already refused
// within the hour (a forged sender must not turn the gateway into a mail
// cannon). Handling is idempotent: the envelope ID derives from the
// Message-ID, so a message handled twice (a crash before its move out of the
// inbox) makes one envelope and one reply.
package ingest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"

	gomessage "github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/parapheur/parapheur/mailin/dsn"
	"github.com/parapheur/parapheur/mailin/instructions"
	"github.com/parapheur/parapheur/mailin/loop"
	"github.com/parapheur/parapheur/mailin/message"
	"github.com/parapheur/parapheur/mailin/poller"
	"github.com/parapheur/parapheur/mailin/reply"
	"github.com/parapheur/parapheur/mailin/sender"
	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// Config is what the handler needs to know of the installation.
type Config struct {
	// Gateway is the gateway's address, e.g. parapheur@org.example.
	Gateway string
	// Senders says who may submit.
	Senders *sender.Policy
	// Circuits are the predefined step sequences, by name.
	Circuits instructions.Circuits
	// DeadlineDays is the default envelope lifetime.
	DeadlineDays int
	// ReminderDays is the default reminder interval, 0 for none.
	ReminderDays int
	// Language is the default language, "fr" or "en".
	Language string
	// MaxMessageBytes is the largest message accepted.
	MaxMessageBytes int64
	// Location is the time zone deadlines are days of.
	Location *time.Location
	// Inspect reads a PDF and returns its page count, or an error saying
	// why it cannot be signed (encrypted, unreadable).
	Inspect func(pdf []byte) (pages int, err error)
}

// Handler handles inbox messages.
type Handler struct {
	cfg    Config
	engine *engine.Engine
	log    *slog.Logger
}

// New makes a handler.
func New(cfg Config, e *engine.Engine, log *slog.Logger) *Handler {
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if log == nil {
		log = slog.Default()
	}
	return &Handler{cfg: cfg, engine: e, log: log}
}

// refusalInterval is how often one sender address may be sent a refusal.
const refusalInterval = time.Hour

var _ poller.Handler = (*Handler)(nil)

// Handle handles one message; see the package doc.
func (h *Handler) Handle(ctx context.Context, m poller.Message) (poller.Destination, string, error) {
	key := messageKey(m.Raw)
	msg, err := message.Parse(bytes.NewReader(m.Raw), h.limit(m))
	if err != nil && !message.Tolerable(err) {
		return h.unreadable(ctx, m, key, err)
	}
	if why, auto := loop.Automatic(msg.Header, h.cfg.Gateway); auto {
		return h.automatic(ctx, m, why)
	}
	if m.TooLarge {
		return h.refuse(ctx, msg, key, "", fmt.Sprintf("the message is %s; the gateway accepts at most %s",
			megabytes(m.Size), megabytes(h.cfg.MaxMessageBytes)))
	}
	if cmd, ok, err := reply.Parse(msg); ok || err != nil {
		if err != nil {
			return h.refuse(ctx, msg, key, "", err.Error())
		}
		return h.command(ctx, msg, key, cmd)
	}
	return h.submission(ctx, msg, key)
}

// limit is the parse limit: the whole message, or its header only.
func (h *Handler) limit(m poller.Message) int64 {
	if h.cfg.MaxMessageBytes <= 0 || m.TooLarge {
		return int64(len(m.Raw)) + 1
	}
	return h.cfg.MaxMessageBytes
}

// messageKey identifies a message across retries: its Message-ID when it
// has one, else the hash of its bytes.
func messageKey(raw []byte) string {
	if msg, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		if ids := message.IDs(msg.Header.Get("Message-ID")); len(ids) > 0 {
			return "<" + strings.ToLower(ids[0]) + ">"
		}
	}
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func (h *Handler) submission(ctx context.Context, msg *message.Message, key string) (poller.Destination, string, error) {
	from := msg.From.Address
	decision := h.cfg.Senders.Check(from, msg.Header.Values("Authentication-Results"))
	if !decision.Allowed {
		return h.refuse(ctx, msg, key, "", decision.Reason)
	}
	in := instructions.Parse(msg.Text)
	in.Resolve(h.cfg.Circuits, msg.Detail(h.cfg.Gateway))
	lang := firstNonEmpty(in.Language, h.cfg.Language)
	var problems []string
	for _, p := range in.Problems {
		problems = append(problems, p.Error())
	}
	if len(msg.Documents) == 0 {
		problems = append(problems, "the mail has no PDF attachment: attach the document(s) to sign as PDF files")
	}
	docs := make([]workflow.Document, 0, len(msg.Documents))
	for _, d := range msg.Documents {
		pages, err := h.cfg.Inspect(d.Data)
		if err != nil {
			problems = append(problems, fmt.Sprintf("document %q cannot be signed: %v", d.Name, err))
			continue
		}
		docs = append(docs, workflow.Document{Name: d.Name, Pages: pages, Size: int64(len(d.Data))})
	}
	now := h.engine.Now()
	deadline := now.In(h.cfg.Location).AddDate(0, 0, h.cfg.DeadlineDays)
	deadline = time.Date(deadline.Year(), deadline.Month(), deadline.Day()+1, 0, 0, 0, 0, h.cfg.Location)
	if !in.Deadline.IsZero() {
		deadline = in.Deadline.End(h.cfg.Location)
		if !deadline.After(now) {
			problems = append(problems, fmt.Sprintf("the deadline %s has already passed", in.Deadline))
		}
	}
	if len(problems) > 0 {
		return h.refuse(ctx, msg, key, lang, problems...)
	}
	for i, d := range msg.Documents {
		blob, err := h.engine.Store.PutBlob(ctx, bytes.NewReader(d.Data))
		if err != nil {
			if errors.Is(err, store.ErrTooLarge) {
				return h.refuse(ctx, msg, key, lang, fmt.Sprintf("document %q is too large: %v", d.Name, err))
			}
			return 0, "", err
		}
		docs[i].Original = blob.SHA256
	}

	reminder := h.cfg.ReminderDays
	if in.ReminderDays > 0 {
		reminder = in.ReminderDays
	}
	d := workflow.Draft{
		ID: engine.EnvelopeID(key), Title: msg.Title, Message: in.Message, Language: lang,
		Sender: workflow.Party{Name: msg.From.Name, Email: from}, SenderAuth: decision.Summary,
		MessageID: msg.MessageID, Documents: docs, Ignored: ignored(msg), Steps: in.Steps, Copies: in.Copies, Archivists: in.Archivists,
		Deadline: deadline, ReminderEvery: time.Duration(reminder) * 24 * time.Hour,
	}
	env, err := h.engine.Create(ctx, d)
	switch {
	case err == nil:
		h.log.Info("ingest: envelope created", "envelope", env.ID, "from", from, "title", env.Title)
		return poller.Processed, "", nil
	case errors.Is(err, store.ErrExists):
		return poller.Processed, "", nil // handled before a crash: the envelope is there
	case errors.Is(err, workflow.ErrInvalidDraft):
		return h.refuse(ctx, msg, key, lang, err.Error())
	default:
		return 0, "", err
	}
}

// command carries out a reply command after checking it comes from the
// address the replied-to mail was sent to.
func (h *Handler) command(ctx context.Context, msg *message.Message, key string, cmd reply.Command) (poller.Destination, string, error) {
	envID, rid := h.thread(cmd.Thread)
	if envID == "" {
		return h.refuse(ctx, msg, key, "", "the reply command refers to no envelope of this gateway: reply to the gateway's own mail")
	}
	env, err := h.engine.Store.Get(ctx, envID)
	if errors.Is(err, store.ErrNotFound) {
		return h.refuse(ctx, msg, key, "", fmt.Sprintf("envelope %s does not exist", envID))
	}
	if err != nil {
		return 0, "", err
	}
	meta := workflow.Meta{At: h.engine.Now()}
	var ev workflow.Event
	switch cmd.Verb {
	case reply.Decline:
		r := env.Recipient(rid)
		if r == nil || !loop.SameMailbox(r.Email, cmd.From) {
			return h.refuse(ctx, msg, key, env.Language, "a decline is accepted only from the address the invitation was sent to")
		}
		ev = workflow.Declined{Meta: meta, RecipientID: rid, Reason: cmd.Reason, ByMail: true}
	case reply.Cancel:
		if !loop.SameMailbox(env.Sender.Email, cmd.From) {
			return h.refuse(ctx, msg, key, env.Language, "only the envelope's sender can cancel it")
		}
		ev = workflow.Cancelled{Meta: meta, By: env.Sender.Email, Reason: cmd.Reason}
	}
	_, err = h.engine.Event(ctx, envID, ev)
	var refused *workflow.Error
	switch {
	case err == nil:
		return poller.Processed, "", nil
	case errors.As(err, &refused):
		return h.refuse(ctx, msg, key, env.Language, refused.Message)
	default:
		return 0, "", err
	}
}

// thread finds the envelope and recipient a reply is about from the thread
// roots the gateway writes into References.
func (h *Handler) thread(ids []string) (envelopeID, recipientID string) {
	domain := h.cfg.Gateway[strings.LastIndexByte(h.cfg.Gateway, '@')+1:]
	for _, id := range ids {
		if env, rid, err := mailid.ParseThreadRoot(domain, id); err == nil {
			return env, rid
		}
	}
	return "", ""
}

// automatic handles a mail no one should answer; a delivery status
// notification is first recorded as a bounce on its envelope.
func (h *Handler) automatic(ctx context.Context, m poller.Message, why string) (poller.Destination, string, error) {
	rep, err := dsn.Parse(bytes.NewReader(m.Raw))
	if err != nil {
		h.log.Info("ingest: automatic mail, no reply", "why", why)
		return poller.Processed, "", nil
	}
	envID := rep.OriginalEnvelope
	if envID == "" {
		envID = h.returnPathEnvelope(m.Raw)
	}
	for _, rcpt := range rep.Recipients {
		if !rcpt.Failed() {
			continue
		}
		if envID == "" {
			h.log.Warn("ingest: bounce for an unknown envelope", "recipient", rcpt.FinalRecipient, "status", rcpt.Status)
			continue
		}
		reason := strings.TrimSpace(rcpt.Status + " " + rcpt.DiagnosticCode)
		_, err := h.engine.Event(ctx, envID, workflow.Bounced{Meta: workflow.Meta{At: h.engine.Now()}, Email: rcpt.FinalRecipient, Reason: reason})
		var refused *workflow.Error
		switch {
		case err == nil:
		case errors.As(err, &refused), errors.Is(err, store.ErrNotFound):
			h.log.Warn("ingest: bounce not recorded", "envelope", envID, "recipient", rcpt.FinalRecipient, "err", err)
		default:
			return 0, "", err
		}
	}
	return poller.Processed, "", nil
}

// returnPathEnvelope finds the envelope of a bounce from the VERP address
// it was delivered to (parapheur+bounce-ENVELOPE=RECIPIENT@…), for reports
// that do not quote the original header.
func (h *Handler) returnPathEnvelope(raw []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	for _, field := range []string{"Delivered-To", "X-Original-To", "To"} {
		for _, v := range msg.Header[field] {
			addrs, err := mail.ParseAddressList(v)
			if err != nil {
				continue
			}
			for _, a := range addrs {
				if env, _, err := mailid.ParseReturnPath(h.cfg.Gateway, a.Address); err == nil {
					return env
				}
			}
		}
	}
	return ""
}

// unreadable quarantines a message that cannot be parsed, with a refusal
// when its sender can be found.
func (h *Handler) unreadable(ctx context.Context, m poller.Message, key string, perr error) (poller.Destination, string, error) {
	reason := fmt.Sprintf("the message cannot be read: %v", perr)
	if errors.Is(perr, message.ErrTooLarge) {
		reason = fmt.Sprintf("the message is larger than %s", megabytes(h.cfg.MaxMessageBytes))
	}
	th, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(m.Raw)))
	if err != nil {
		return poller.Quarantine, reason, nil
	}
	hdr := gomail.Header{Header: gomessage.Header{Header: th}}
	if _, auto := loop.Automatic(hdr, h.cfg.Gateway); auto {
		return poller.Quarantine, reason, nil
	}
	from, err := hdr.AddressList("From")
	if err != nil || len(from) == 0 {
		return poller.Quarantine, reason, nil
	}
	subject, _ := hdr.Subject()
	msgID, _ := hdr.MessageID()
	msg := &message.Message{From: (*mail.Address)(from[0]), Subject: subject, MessageID: msgID}
	return h.refuse(ctx, msg, key, "", reason)
}

// refuse queues a refusal reply (at most one per sender per hour) and
// sends the message to quarantine.
func (h *Handler) refuse(ctx context.Context, msg *message.Message, key, lang string, problems ...string) (poller.Destination, string, error) {
	reason := strings.Join(problems, "; ")
	if msg.From == nil || msg.From.Address == "" {
		return poller.Quarantine, reason, nil
	}
	addr := strings.ToLower(msg.From.Address)
	// The lease's holder is the message: a retry of the same message keeps
	// its right to a reply, another message of the sender within the hour
	// gets none.
	first, err := h.engine.Store.AcquireLease(ctx, "refusal:"+addr, key, h.engine.Now(), refusalInterval)
	if err != nil {
		return 0, "", err
	}
	if !first {
		h.log.Info("ingest: refused without a reply (one refusal per sender per hour)", "from", addr, "reason", reason)
		return poller.Quarantine, reason, nil
	}
	job := engine.Job{Notice: engine.NoticeRefusal, Refusal: &engine.Refusal{
		To:      workflow.Party{Name: msg.From.Name, Email: msg.From.Address},
		Subject: msg.Subject, MessageID: msg.MessageID, References: msg.References,
		Problems: problems, Language: firstNonEmpty(lang, h.cfg.Language),
	}}
	payload, err := json.Marshal(job)
	if err != nil {
		return 0, "", err
	}
	item := store.Item{ID: "refusal/" + key, Queue: engine.MailQueue, Payload: payload, NotBefore: h.engine.Now()}
	if err := h.engine.Store.Enqueue(ctx, item); err != nil {
		return 0, "", err
	}
	return poller.Quarantine, reason, nil
}

func ignored(msg *message.Message) []workflow.Attachment {
	var out []workflow.Attachment
	for _, a := range msg.Ignored {
		out = append(out, workflow.Attachment{Name: a.Name, ContentType: a.ContentType})
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
