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
	"github.com/parapheur/parapheur/mailin/problem"
	"github.com/parapheur/parapheur/mailin/reply"
	"github.com/parapheur/parapheur/mailin/sender"
	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/signing/pades"
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
	// ReturnPathKey verifies the tags of the return paths that delivery
	// reports come back to; the key of compose.Config.ReturnPathKey.
	ReturnPathKey []byte
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
		size, limit := megabytes(m.Size), megabytes(h.cfg.MaxMessageBytes)
		return h.refuse(ctx, msg, key, "", problem.Text{
			EN: fmt.Sprintf("the message is %s; the gateway accepts at most %s", size.EN, limit.EN),
			FR: fmt.Sprintf("le message fait %s ; le parapheur accepte au plus %s", size.FR, limit.FR),
		})
	}
	if cmd, ok, err := reply.Parse(msg); ok || err != nil {
		if err != nil {
			return h.refuse(ctx, msg, key, "", problem.From(err))
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
// has one, else the hash of its bytes. A Message-ID longer than
// maxKeyIDBytes is hashed too: the key goes into outbox item IDs, which the
// store caps, and a mail whose refusal cannot be queued would stay in the
// inbox for ever.
func messageKey(raw []byte) string {
	if msg, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		if ids := message.IDs(msg.Header.Get("Message-ID")); len(ids) > 0 {
			key := "<" + strings.ToLower(ids[0]) + ">"
			if len(key) <= maxKeyIDBytes {
				return key
			}
			raw = []byte(key)
		}
	}
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// maxKeyIDBytes is the longest Message-ID a key holds as written: with
// "refusal/" before it, within the store's 200-byte item IDs.
const maxKeyIDBytes = 160

// megabytes writes a size as people read it: "2.5 MB", "2,5 Mo".
func megabytes(n int64) problem.Text {
	mb := fmt.Sprintf("%.1f", float64(n)/1e6)
	return problem.Text{EN: mb + " MB", FR: strings.Replace(mb, ".", ",", 1) + " Mo"}
}

func (h *Handler) submission(ctx context.Context, msg *message.Message, key string) (poller.Destination, string, error) {
	from := msg.From.Address
	// The instructions are read first for their language, in which even
	// a sender who may not submit is told so.
	in := instructions.Parse(msg.Text)
	in.Resolve(h.cfg.Circuits, msg.Detail(h.cfg.Gateway))
	lang := firstNonEmpty(in.Language, h.cfg.Language)
	decision := h.cfg.Senders.Check(from, msg.Header.Values("Authentication-Results"))
	if !decision.Allowed {
		return h.refuse(ctx, msg, key, lang, decision.Reason)
	}
	var problems []problem.Text
	for _, p := range in.Problems {
		problems = append(problems, p.Sentence())
	}
	if len(msg.Documents) == 0 {
		problems = append(problems, problem.Text{
			EN: "the mail has no PDF attachment: attach the document(s) to sign as PDF files",
			FR: "le message n'a aucune pièce jointe PDF : joignez le ou les documents à signer en PDF",
		})
	}
	docs := make([]workflow.Document, 0, len(msg.Documents))
	for _, d := range msg.Documents {
		pages, err := h.cfg.Inspect(d.Data)
		if err != nil {
			h.log.Info("ingest: document cannot be signed", "from", logText(from), "document", logText(d.Name), "err", logText(err.Error()))
			problems = append(problems, unsignable(d.Name, err))
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
			problems = append(problems, problem.Text{
				EN: fmt.Sprintf("the deadline %s has already passed", in.Deadline),
				FR: fmt.Sprintf("l'échéance du %02d/%02d/%d est déjà passée", in.Deadline.Day, in.Deadline.Month, in.Deadline.Year),
			})
		}
	}
	if len(problems) > 0 {
		return h.refuse(ctx, msg, key, lang, problems...)
	}
	for i, d := range msg.Documents {
		blob, err := h.engine.Store.PutBlob(ctx, bytes.NewReader(d.Data))
		if err != nil {
			if errors.Is(err, store.ErrTooLarge) {
				return h.refuse(ctx, msg, key, lang, problem.New("document %q is too large: %v",
					"le document « %s » est trop volumineux : %v", d.Name, err))
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
		h.log.Info("ingest: envelope created", "envelope", env.ID, "from", logText(from), "title", logText(env.Title))
		return poller.Processed, "", nil
	case errors.Is(err, store.ErrExists):
		return poller.Processed, "", nil // handled before a crash: the envelope is there
	case errors.Is(err, workflow.ErrInvalidDraft):
		return h.refuse(ctx, msg, key, lang, engineProblem(err))
	default:
		return 0, "", err
	}
}

// command carries out a reply command after checking it comes from the
// address the replied-to mail was sent to.
func (h *Handler) command(ctx context.Context, msg *message.Message, key string, cmd reply.Command) (poller.Destination, string, error) {
	envID, rid := h.thread(cmd.Thread)
	if envID == "" {
		return h.refuse(ctx, msg, key, "", problem.Text{
			EN: "the reply command refers to no envelope of this gateway: reply to the gateway's own mail",
			FR: "la commande ne se rapporte à aucune demande de ce parapheur : répondez au message envoyé par le parapheur",
		})
	}
	env, err := h.engine.Store.Get(ctx, envID)
	if errors.Is(err, store.ErrNotFound) {
		return h.refuse(ctx, msg, key, "", problem.New("envelope %s does not exist", "la demande %s n'existe pas", envID))
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
			return h.refuse(ctx, msg, key, env.Language, problem.Text{
				EN: "a decline is accepted only from the address the invitation was sent to",
				FR: "un refus n'est accepté que de l'adresse à laquelle l'invitation a été envoyée",
			})
		}
		ev = workflow.Declined{Meta: meta, RecipientID: rid, Reason: cmd.Reason, ByMail: true}
	case reply.Cancel:
		if !loop.SameMailbox(env.Sender.Email, cmd.From) {
			return h.refuse(ctx, msg, key, env.Language, problem.Text{
				EN: "only the envelope's sender can cancel it",
				FR: "seul l'expéditeur de la demande peut l'annuler",
			})
		}
		ev = workflow.Cancelled{Meta: meta, By: env.Sender.Email, Reason: cmd.Reason}
	}
	_, err = h.engine.Event(ctx, envID, ev)
	var refused *workflow.Error
	switch {
	case err == nil:
		h.log.Info("ingest: reply command applied", "envelope", envID, "recipient", rid, "command", cmd.Verb, "from", logText(cmd.From))
		return poller.Processed, "", nil
	case errors.As(err, &refused):
		return h.refuse(ctx, msg, key, env.Language, engineProblem(refused))
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
// notification is first recorded as a bounce on its envelope if genuine.
func (h *Handler) automatic(ctx context.Context, m poller.Message, why string) (poller.Destination, string, error) {
	rep, err := dsn.Parse(bytes.NewReader(m.Raw))
	if err != nil {
		h.log.Info("ingest: automatic mail, no reply", "why", why)
		return poller.Processed, "", nil
	}
	if err := h.bounce(ctx, m.Raw, rep); err != nil {
		return 0, "", err
	}
	return poller.Processed, "", nil
}

// bounce records the failures a delivery status notification reports when
// it is genuine: it arrived at the return path of a mail the gateway sent,
// whose tag verifies (see package mailid), and names that mail's addressee.
// Anything else is logged and ignored, since the envelope ID a forger needs
// is in every mail the gateway sends: the envelope named in the returned
// header, or a report to the plain gateway address, prove nothing. Only a
// store error is returned.
func (h *Handler) bounce(ctx context.Context, raw []byte, rep *dsn.Report) error {
	envID, rid, err := h.returnPath(raw)
	if err != nil {
		h.log.Warn("ingest: delivery report ignored", "why", logText(err.Error()), "reporting_mta", logText(rep.ReportingMTA))
		return nil
	}
	env, err := h.engine.Store.Get(ctx, envID)
	if errors.Is(err, store.ErrNotFound) {
		h.log.Warn("ingest: delivery report ignored", "why", "its envelope does not exist", "envelope", envID, "recipient", rid)
		return nil
	}
	if err != nil {
		return err
	}
	addressee := env.Sender.Email
	if rid != "" {
		r := env.Recipient(rid)
		if r == nil {
			h.log.Warn("ingest: delivery report ignored", "why", "its envelope has no such recipient", "envelope", envID, "recipient", rid)
			return nil
		}
		addressee = r.Email
	}
	for _, rcpt := range rep.Recipients {
		if !rcpt.Failed() {
			continue
		}
		if !loop.SameMailbox(rcpt.FinalRecipient, addressee) && !loop.SameMailbox(rcpt.OriginalRecipient, addressee) {
			h.log.Warn("ingest: delivery report ignored", "why", "it names another recipient than the mail of its return path",
				"envelope", envID, "recipient", rid, "final_recipient", logText(rcpt.FinalRecipient),
				"original_recipient", logText(rcpt.OriginalRecipient))
			continue
		}
		// The remote server's words go into the notice to the sender.
		reason := workflow.Clip(strings.TrimSpace(rcpt.Status+" "+rcpt.DiagnosticCode), workflow.MaxMessageRunes)
		_, err := h.engine.Event(ctx, envID, workflow.Bounced{Meta: workflow.Meta{At: h.engine.Now()}, Email: addressee, Reason: reason})
		var refused *workflow.Error
		switch {
		case err == nil:
			h.log.Info("ingest: bounce recorded", "envelope", envID, "recipient", rid, "status", logText(rcpt.Status))
		case errors.As(err, &refused):
			h.log.Warn("ingest: bounce not recorded", "envelope", envID, "recipient", rid, "err", err)
		default:
			return err
		}
	}
	return nil
}

// returnPath finds the envelope and recipient of a delivery report from the
// return path it was delivered to: where the receiving MTA or LMTP server
// says it delivered it (Delivered-To, X-Original-To), else the To that a
// report is addressed to. Anyone can write these fields; the tag of the
// return path is what proves the gateway made it.
func (h *Handler) returnPath(raw []byte) (envelopeID, recipientID string, err error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", "", err
	}
	var forged error
	for _, field := range []string{"Delivered-To", "X-Original-To", "To"} {
		for _, v := range msg.Header[field] {
			addrs, err := mail.ParseAddressList(v)
			if err != nil {
				continue
			}
			for _, a := range addrs {
				env, rid, err := mailid.ParseReturnPath(h.cfg.ReturnPathKey, h.cfg.Gateway, a.Address)
				if err == nil {
					return env, rid, nil
				}
				if errors.Is(err, mailid.ErrBadTag) && forged == nil {
					forged = err
				}
			}
		}
	}
	if forged != nil {
		return "", "", forged
	}
	return "", "", errors.New("it was not delivered to a return path of the gateway (Delivered-To, X-Original-To, To)")
}

// unreadable quarantines a message that cannot be parsed, with a refusal
// when its sender can be found.
func (h *Handler) unreadable(ctx context.Context, m poller.Message, key string, perr error) (poller.Destination, string, error) {
	reason := problem.New("the message cannot be read: %v", "le message est illisible : %v", perr)
	if errors.Is(perr, message.ErrTooLarge) {
		limit := megabytes(h.cfg.MaxMessageBytes)
		reason = problem.Text{EN: "the message is larger than " + limit.EN, FR: "le message dépasse " + limit.FR}
	}
	th, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(m.Raw)))
	if err != nil {
		return poller.Quarantine, reason.EN, nil
	}
	hdr := gomail.Header{Header: gomessage.Header{Header: th}}
	if _, auto := loop.Automatic(hdr, h.cfg.Gateway); auto {
		return poller.Quarantine, reason.EN, nil
	}
	from, err := hdr.AddressList("From")
	if err != nil || len(from) == 0 {
		return poller.Quarantine, reason.EN, nil
	}
	msgID, _ := hdr.MessageID()
	msg := &message.Message{From: (*mail.Address)(from[0]), Subject: message.Subject(hdr), MessageID: msgID}
	return h.refuse(ctx, msg, key, "", reason)
}

// refuse queues a refusal reply (at most one per sender per hour), its
// problems in lang or else the default language, and sends the message to
// quarantine with the problems in English.
func (h *Handler) refuse(ctx context.Context, msg *message.Message, key, lang string, problems ...problem.Text) (poller.Destination, string, error) {
	lang = firstNonEmpty(lang, h.cfg.Language)
	english := make([]string, len(problems))
	sentences := make([]string, len(problems))
	for i, p := range problems {
		english[i], sentences[i] = p.EN, p.In(lang)
	}
	reason := strings.Join(english, "; ")
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
		h.log.Info("ingest: refused without a reply (one refusal per sender per hour)", "from", logText(addr), "reason", logText(reason))
		return poller.Quarantine, reason, nil
	}
	job := engine.Job{Notice: engine.NoticeRefusal, Refusal: &engine.Refusal{
		To:      workflow.Party{Name: msg.From.Name, Email: msg.From.Address},
		Subject: msg.Subject, MessageID: msg.MessageID, References: msg.References,
		Problems: sentences, Language: lang,
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

// pdfProblems say in plain words why a PDF cannot be signed, for the
// errors pades.Inspect wraps.
var pdfProblems = []struct {
	err error
	why problem.Text
}{
	{pades.ErrNotPDF, problem.Text{EN: "it is not a PDF file", FR: "ce n'est pas un fichier PDF"}},
	{pades.ErrTooLarge, problem.Text{EN: "the PDF file is over the size limit", FR: "le fichier PDF dépasse la taille maximale"}},
	{pades.ErrTruncated, problem.Text{EN: "the PDF file is truncated", FR: "le fichier PDF est incomplet (tronqué)"}},
	{pades.ErrMalformed, problem.Text{EN: "the PDF file is damaged or malformed", FR: "le fichier PDF est endommagé ou mal formé"}},
	{pades.ErrEncrypted, problem.Text{
		EN: "the PDF file is encrypted: save it without a password or protection and send it again",
		FR: "le fichier PDF est chiffré : enregistrez-le sans mot de passe ni protection, puis envoyez-le de nouveau",
	}},
	{pades.ErrLocked, problem.Text{
		EN: "the document is certified with no changes allowed, so it cannot take a signature",
		FR: "le document est certifié sans modification autorisée : il ne peut pas recevoir de signature",
	}},
}

// unsignable says why document name cannot be signed; an error of a kind
// pdfProblems does not know keeps its own words.
func unsignable(name string, err error) problem.Text {
	why := problem.From(err)
	for _, p := range pdfProblems {
		if errors.Is(err, p.err) {
			why = p.why
			break
		}
	}
	return problem.Text{
		EN: fmt.Sprintf("document %q cannot be signed: %s", name, why.EN),
		FR: fmt.Sprintf("le document « %s » ne peut pas être signé : %s", name, why.FR),
	}
}

// engineFR says in French, by kind, why the engine refused a submission or
// a reply command.
var engineFR = []struct {
	kind *workflow.Error
	fr   string
}{
	{workflow.ErrInvalidDraft, "la demande n'est pas valable"},
	{workflow.ErrUnknownRecipient, "vous ne figurez pas parmi les destinataires de cette demande"},
	{workflow.ErrEnded, "la demande est déjà terminée (signée, refusée, annulée ou expirée)"},
	{workflow.ErrDeadlinePassed, "l'échéance de la demande est passée"},
	{workflow.ErrCompleting, "toutes les étapes sont faites : la demande est en cours de finalisation et ne peut plus changer"},
	{workflow.ErrNotYourTurn, "une étape précédente n'est pas encore faite : vous pourrez agir à votre tour"},
	{workflow.ErrAlreadyActed, "vous avez déjà répondu à cette demande"},
	{workflow.ErrWrongRole, "votre rôle dans cette demande ne permet pas cette action"},
	{workflow.ErrReasonRequired, "donnez la raison du refus"},
}

// engineProblem is an engine refusal: its own English message, which
// names the envelope's details, and a French sentence for its kind (the
// English one for a kind engineFR does not know).
func engineProblem(err error) problem.Text {
	t := problem.From(err)
	for _, k := range engineFR {
		if errors.Is(err, k.kind) {
			t.FR = k.fr
			break
		}
	}
	return t
}

// maxLogRunes caps the text of a mail that a log line quotes: a hostile
// mail must not make log lines of its own size.
const maxLogRunes = 200

// logText is s clipped for a log line.
func logText(s string) string { return workflow.Clip(s, maxLogRunes) }

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
