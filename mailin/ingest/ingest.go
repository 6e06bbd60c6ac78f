// Package ingest decides what each message of the gateway's inbox is and
// acts on it (SPEC §2): a submission becomes an envelope, a delivery status
// notification (RFC 3464) a bounce on its envelope, a reply command
// (REFUSER / DÉLÉGUER / ANNULER) an action, an automatic mail (RFC 3834) nothing,
// a mail to the verification address (parapheur+verifier@…, SPEC §6) a
// report on its PDFs, and anything the gateway cannot accept a refusal reply. It is the
// poller.Handler of the running gateway, and writes only through the
// workflow engine.
//
// The header is read first: whether the mail is automatic, too large, and
// whether its sender may submit are known before its body is decoded, so a
// mail that will be refused costs no decoding of its attachments.
//
// Nothing is dropped silently: every message ends in the processed folder
// or in quarantine with its reason, and a refusal reply is queued in the
// outbox unless the mail was automatic or its sender's quota of refusals is
// spent (see refusalQuota): a forged sender must not turn the gateway into
// a mail cannon. Verification reports have a quota of their own. Handling is idempotent: the envelope ID derives from the
// Message-ID, so a message handled twice (a crash before its move out of
// the inbox) makes one envelope and one reply.
package ingest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"github.com/parapheur/parapheur/mailin/policy"
	"github.com/parapheur/parapheur/mailin/poller"
	"github.com/parapheur/parapheur/mailin/reply"
	"github.com/parapheur/parapheur/mailout/address"
	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/problem"
)

// Config is what the handler needs to know of the installation.
type Config struct {
	// Gateway is the gateway's address, e.g. parapheur@org.example.
	Gateway string
	// Senders says who may submit.
	Senders *policy.Policy
	// Circuits are the predefined step sequences, by name.
	Circuits instructions.Circuits
	// DeadlineDays is the default envelope lifetime.
	DeadlineDays int
	// ReminderDays is the default reminder interval, 0 for none.
	ReminderDays int
	// Language is the default language, "fr" or "en".
	Language string
	// AllowDelegation lets recipients hand their place to someone else
	// (envelopes.allow_delegation); the envelopes made while it is off
	// forbid it for good.
	AllowDelegation bool
	// SMS tells that the gateway can send one-time codes by SMS (sms.url
	// is set). Without it a signer's mobile number is refused: the code
	// would go by SMS (SPEC §2), and no SMS would ever leave, so the
	// signer could never act.
	SMS bool
	// MaxMessageBytes is the largest message accepted.
	MaxMessageBytes int64
	// MaxRecipients is the most recipients (signers, approvers, copies and
	// archivists) one envelope may name; 0 means DefaultMaxRecipients.
	MaxRecipients int
	// Location is the time zone deadlines are days of.
	Location *time.Location
	// ReturnPathKey verifies the tags of the return paths that delivery
	// reports come back to; the key of compose.Config.ReturnPathKey.
	ReturnPathKey []byte
	// Inspect reads a PDF and returns its page count, or an error saying
	// why it cannot be signed (encrypted, unreadable).
	Inspect func(pdf []byte) (pages int, err error)
	// Verify reports in lang on a PDF sent to the verification address,
	// called name: a verdict.Checker's Check with the gateway's CA and its
	// envelopes. Nil means a Checker that knows neither.
	Verify func(ctx context.Context, name string, pdf []byte, lang string) verdict.File
	// Metrics counts the outcomes; nil counts nothing.
	Metrics *Metrics
}

// DefaultMaxRecipients is Config.MaxRecipients when not set, the default
// of limits.max_recipients.
const DefaultMaxRecipients = 50

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
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.Verify == nil {
		cfg.Verify = (&verdict.Checker{Location: cfg.Location, Log: log}).Check
	}
	return &Handler{cfg: cfg, engine: e, log: log}
}

var _ poller.Handler = (*Handler)(nil)

// inbound is a message being handled, once its header is read.
type inbound struct {
	msg *message.Message
	// key identifies the message across retries (see messageKey).
	key string
	// sender is the policy's decision on the From address, which also
	// decides how often a refusal may be sent to it.
	sender policy.Decision
}

// Handle handles one message; see the package doc. It is safe for
// concurrent use: the poller hands it several messages at once.
func (h *Handler) Handle(ctx context.Context, m poller.Message) (poller.Destination, string, error) {
	key := messageKey(m.Raw)
	msg, err := message.ReadHeader(m.Raw, h.limit(m))
	if err != nil {
		return h.unreadable(ctx, m, key, err)
	}
	_, verification := instructions.Verification(msg.Detail(h.cfg.Gateway))
	if why, auto := loop.Automatic(msg.Header, h.cfg.Gateway); auto {
		if verification {
			h.log.Info("ingest: automatic mail to the verification address, no reply", "why", why)
			return poller.Verified, "", nil
		}
		return h.automatic(ctx, m, why)
	}
	in := &inbound{msg: msg, key: key, sender: h.cfg.Senders.Check(msg.From.Address, msg.Header.Values("Authentication-Results"))}
	if verification {
		return h.verification(ctx, m, in)
	}
	if m.TooLarge {
		// Only the header was fetched: the size is told in the default
		// language, the instructions that could name another being unread.
		size, limit := megabytes(m.Size), megabytes(h.cfg.MaxMessageBytes)
		return h.refuse(ctx, in, "", problem.Text{
			EN: fmt.Sprintf("the message is %s; the gateway accepts at most %s", size.EN, limit.EN),
			FR: fmt.Sprintf("le message fait %s ; le parapheur accepte au plus %s", size.FR, limit.FR),
		})
	}
	// A sender who may not submit is still told why in the language of
	// the instructions, and a reply command needs its text; neither needs
	// the attachments.
	parts := message.AllParts
	if !in.sender.Allowed {
		parts = message.TextOnly
	}
	if err := msg.ReadBody(parts); err != nil {
		return h.refuse(ctx, in, "", unreadableReason(err, h.cfg.MaxMessageBytes))
	}
	cmd, ok, err := reply.Parse(msg)
	if ok && err == nil {
		return h.command(ctx, in, cmd)
	}
	if err != nil || len(msg.Documents) == 0 {
		// A command badly written is still a command, and a reply on the
		// thread of one of the gateway's mails with neither a command nor
		// a document ("Thanks", a question for the sender) is no
		// submission: both are answered as commands are, in the
		// envelope's language.
		envID, _, env, terr := h.threadEnvelope(ctx, reply.Thread(msg))
		if terr != nil {
			return 0, "", terr
		}
		near, isNear := reply.NearMiss(msg)
		switch {
		case err != nil:
			return h.refuseCommand(ctx, in, languageOf(env), problem.From(err))
		case envID != "" && isNear:
			return h.refuseCommand(ctx, in, languageOf(env), near)
		case envID != "":
			return h.refuseCommand(ctx, in, languageOf(env), problem.Text{
				EN: "no person read it: this address is read by the gateway only, which found no command in it. To write to the person who sent the request, write to their own address; to act, use the link in the gateway's mail, or reply with one of the commands below",
				FR: "personne ne l'a lue : cette adresse n'est lue que par le parapheur, qui n'y a trouvé aucune commande. Pour écrire à la personne qui a envoyé la demande, écrivez à sa propre adresse ; pour agir, utilisez le lien du message du parapheur, ou répondez avec l'une des commandes ci-dessous",
			})
		}
	}
	return h.submission(ctx, in)
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

func (h *Handler) submission(ctx context.Context, mi *inbound) (poller.Destination, string, error) {
	msg := mi.msg
	from := msg.From.Address
	// The instructions are read first for their language, in which even
	// a sender who may not submit is told so.
	in := instructions.Parse(msg.Text)
	in.Resolve(h.cfg.Circuits, msg.Detail(h.cfg.Gateway))
	lang := firstNonEmpty(in.Language, h.cfg.Language)
	if !mi.sender.Allowed {
		return h.refuse(ctx, mi, lang, mi.sender.Reason)
	}
	var problems []problem.Text
	for _, p := range in.Problems {
		problems = append(problems, p.Sentence())
	}
	problems = append(problems, h.recipientProblems(in)...)
	if len(msg.Documents) == 0 {
		problems = append(problems, noPDF(msg.Ignored))
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
	deadline, passed := workflow.Deadline(h.engine.Now(), h.cfg.DeadlineDays, h.cfg.Location, in.Deadline)
	if passed {
		problems = append(problems, problem.DeadlinePassed(in.Deadline))
	}
	if len(problems) > 0 {
		return h.refuse(ctx, mi, lang, problems...)
	}
	for i, d := range msg.Documents {
		blob, err := h.engine.PutDocument(ctx, bytes.NewReader(d.Data))
		if err != nil {
			if errors.Is(err, store.ErrTooLarge) {
				return h.refuse(ctx, mi, lang, problem.Text{
					EN: fmt.Sprintf("document %q is too large: %v", d.Name, err),
					FR: fmt.Sprintf("le document « %s » est trop volumineux pour le parapheur", d.Name),
				})
			}
			return 0, "", err
		}
		docs[i].Original = blob.SHA256
	}

	reminder := h.cfg.ReminderDays
	switch {
	case in.ReminderDays == instructions.NoReminders:
		reminder = 0
	case in.ReminderDays > 0:
		reminder = in.ReminderDays
	}
	// A mail without a subject is titled by its first document, so that
	// no mail, page or certificate shows an empty title.
	d := workflow.Draft{
		ID: engine.EnvelopeID(mi.key), Title: firstNonEmpty(msg.Title, docs[0].Name), Message: in.Message, Language: lang,
		LanguageGiven: in.Language != "", NoDelegation: !h.cfg.AllowDelegation,
		Sender: workflow.Party{Name: msg.From.Name, Email: from}, SenderAuth: mi.sender.Summary,
		MessageID: msg.MessageID, References: msg.Ancestors(), Documents: docs, Ignored: ignored(msg), Steps: in.Steps, Copies: in.Copies, Archivists: in.Archivists,
		Deadline: deadline, ReminderEvery: time.Duration(reminder) * 24 * time.Hour,
	}
	env, err := h.engine.Create(ctx, d)
	switch {
	case err == nil:
		h.log.Info("ingest: envelope created", "envelope", env.ID, "from", logText(from), "title", logText(env.Title))
		h.cfg.Metrics.count(outcomeEnvelope)
		return poller.Processed, "", nil
	case errors.Is(err, store.ErrExists):
		return poller.Processed, "", nil // handled before a crash: the envelope is there
	case errors.Is(err, workflow.ErrInvalidDraft):
		return h.refuse(ctx, mi, lang, problem.From(err))
	default:
		return 0, "", err
	}
}

// recipientProblems says what is wrong with the envelope's recipients as
// a whole: more than the configured cap (one mail must not make hundreds
// of invitations), addresses the gateway's mail cannot reach, or its own.
func (h *Handler) recipientProblems(in *instructions.Instructions) []problem.Text {
	var parties []workflow.Party
	for _, s := range in.Steps {
		parties = append(parties, s.Parties...)
	}
	parties = append(append(parties, in.Copies...), in.Archivists...)
	if n, max := len(parties), h.cfg.MaxRecipients; n > max {
		return []problem.Text{{
			EN: fmt.Sprintf("the envelope names %d recipients; the gateway accepts at most %d per envelope", n, max),
			FR: fmt.Sprintf("la demande nomme %d destinataires ; le parapheur en accepte au plus %d par demande", n, max),
		}}
	}
	var problems []problem.Text
	for _, p := range parties {
		// The gateway drops its own mail as automatic: an invitation to
		// itself would wait for ever, and the envelope only expire.
		switch err := address.Deliverable(p.Email, h.cfg.Gateway); {
		case errors.Is(err, address.ErrGateway):
			problems = append(problems, problem.New("the gateway's own address %s cannot be a recipient: name the people who are to act or to receive the copy",
				"l'adresse du parapheur, %s, ne peut pas être destinataire : indiquez les personnes qui doivent agir ou recevoir la copie", p.Email))
		case err != nil:
			problems = append(problems, unreachable(p.Email, err))
		}
		if p.Phone != "" && !h.cfg.SMS {
			problems = append(problems, problem.Text{
				EN: fmt.Sprintf("%s: this gateway sends no SMS, so the one-time code cannot go to %s: remove the mobile number, and the code goes by mail", p.Email, p.Phone),
				FR: fmt.Sprintf("%s : ce parapheur n'envoie pas de SMS, le code à usage unique ne peut donc pas partir au %s : retirez le numéro de mobile, et le code partira par courriel", p.Email, p.Phone),
			})
		}
	}
	return problems
}

// addressFR says in French why an address cannot be sent, by kind.
var addressFR = []struct {
	kind error
	fr   string
}{
	{address.ErrNotASCII, "la partie avant le @ contient des caractères non ASCII, que la messagerie du parapheur ne sait pas transmettre : donnez une adresse en ASCII"},
	{address.ErrDomain, "son domaine n'est pas un nom de domaine valable"},
	{address.ErrTooLong, "elle est plus longue que ce que SMTP permet (64 caractères avant le @, 254 en tout)"},
}

// unreachable says that the gateway cannot send mail to addr, and why.
func unreachable(addr string, err error) problem.Text {
	why := "ce n'est pas une adresse de la forme nom@domaine"
	for _, k := range addressFR {
		if errors.Is(err, k.kind) {
			why = k.fr
			break
		}
	}
	return problem.Text{
		EN: fmt.Sprintf("the gateway cannot send mail to %s: %v", addr, err),
		FR: fmt.Sprintf("le parapheur ne peut pas envoyer de message à « %s » : %s", addr, why),
	}
}

// command carries out a reply command after checking it comes from the
// address the replied-to mail was sent to.
func (h *Handler) command(ctx context.Context, in *inbound, cmd reply.Command) (poller.Destination, string, error) {
	// The envelope is read first for its language, in which even a
	// command that is not believed is refused: the reply is on its thread.
	envID, rid, env, err := h.threadEnvelope(ctx, cmd.Thread)
	if err != nil {
		return 0, "", err
	}
	lang := languageOf(env)
	// Its From is all that authenticates a command: one the trusted
	// server says failed DMARC is not believed (nor answered, see
	// refusalQuota), nor, under senders.require_auth, one it did not
	// authenticate, or anyone could decline in a recipient's name.
	switch {
	case in.sender.DMARCFailed:
		return h.refuseCommand(ctx, in, lang, problem.Text{
			EN: "the reply command's From domain failed DMARC: the mail may be forged",
			FR: "le domaine d'expéditeur de la commande a échoué à DMARC : le message est peut-être falsifié",
		})
	case !in.sender.Believed:
		return h.refuseCommand(ctx, in, lang, problem.Text{
			EN: "the receiving mail server did not authenticate the reply command's sender (no DMARC pass nor aligned DKIM signature), and this gateway accepts commands by mail only from authenticated senders: use the link of the gateway's mail instead",
			FR: "le serveur de messagerie n'a pas authentifié l'expéditeur de la commande (ni DMARC réussi, ni signature DKIM alignée), et ce parapheur n'accepte de commandes par message que d'expéditeurs authentifiés : utilisez plutôt le lien du message du parapheur",
		})
	case envID == "":
		return h.refuseCommand(ctx, in, "", problem.Text{
			EN: "the reply command refers to no envelope of this gateway: reply to the gateway's own mail",
			FR: "la commande ne se rapporte à aucune demande de ce parapheur : répondez au message envoyé par le parapheur",
		})
	case env == nil:
		return h.refuseCommand(ctx, in, "", problem.New("envelope %s does not exist", "la demande %s n'existe pas", envID))
	}
	meta := workflow.Meta{At: h.engine.Now()}
	var ev workflow.Event
	switch cmd.Verb {
	case reply.Decline, reply.Delegate:
		if r := env.Recipient(rid); r == nil || !address.SameMailbox(r.Email, cmd.From) {
			return h.refuseCommand(ctx, in, env.Language, invitedOnly[cmd.Verb])
		}
		if cmd.Verb == reply.Decline {
			ev = workflow.Declined{Meta: meta, RecipientID: rid, Reason: cmd.Reason, ByMail: true}
			break
		}
		if p, bad := h.delegateProblem(cmd.To); bad {
			return h.refuseCommand(ctx, in, env.Language, p)
		}
		ev = workflow.Delegated{Meta: meta, RecipientID: rid, To: cmd.To, Reason: cmd.Reason, ByMail: true}
	case reply.Cancel:
		if !address.SameMailbox(env.Sender.Email, cmd.From) {
			return h.refuseCommand(ctx, in, env.Language, problem.Text{
				EN: "only the envelope's sender can cancel it",
				FR: "seul l'expéditeur de la demande peut l'annuler",
			})
		}
		if env.State == workflow.StateCancelled {
			// The machine takes a second cancellation as a replay, and
			// tells nobody: the sender must hear that nothing changed.
			return h.refuseCommand(ctx, in, env.Language, problem.New("envelope %s is already cancelled",
				"la demande %s est déjà annulée", env.ID))
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
		return h.refuseCommand(ctx, in, env.Language, problem.From(refused))
	default:
		return 0, "", err
	}
}

// invitedOnly says, for each command a recipient may give, that it counts
// only from the address the invitation was sent to: that address is what
// authenticates it instead of a one-time code.
var invitedOnly = map[reply.Verb]problem.Text{
	reply.Decline: {
		EN: "a decline is accepted only from the address the invitation was sent to",
		FR: "un refus n'est accepté que de l'adresse à laquelle l'invitation a été envoyée",
	},
	reply.Delegate: {
		EN: "a delegation is accepted only from the address the invitation was sent to",
		FR: "une délégation n'est acceptée que de l'adresse à laquelle l'invitation a été envoyée",
	},
}

// delegateProblem says what is wrong with a delegate named by mail that
// the state machine cannot know: an address the gateway's mail cannot
// reach, or the gateway's own.
func (h *Handler) delegateProblem(to workflow.Party) (problem.Text, bool) {
	switch err := address.Deliverable(to.Email, h.cfg.Gateway); {
	case err == nil:
		return problem.Text{}, false
	case !errors.Is(err, address.ErrGateway):
		return unreachable(to.Email, err), true
	default:
		return problem.New("the gateway's own address %s cannot be a delegate: name the person who is to act instead of you",
			"l'adresse du parapheur, %s, ne peut pas recevoir la délégation : indiquez la personne qui doit agir à votre place", h.cfg.Gateway), true
	}
}

// threadEnvelope finds the envelope and recipient a reply is about from
// the message IDs it cites: the Message-ID of the gateway's mail it
// answers, or the thread root the gateway writes into References (package
// mailid). The envelope is nil when no ID is the gateway's (envelopeID is
// then "") or when the envelope named does not exist.
func (h *Handler) threadEnvelope(ctx context.Context, ids []string) (envelopeID, recipientID string, env *workflow.Envelope, err error) {
	domain := h.cfg.Gateway[strings.LastIndexByte(h.cfg.Gateway, '@')+1:]
	for _, id := range ids {
		if envelopeID, recipientID, _, err = mailid.ParseThread(domain, id); err == nil {
			break
		}
		envelopeID, recipientID = "", ""
	}
	if envelopeID == "" {
		return "", "", nil, nil
	}
	e, err := h.engine.Envelope(ctx, envelopeID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return envelopeID, recipientID, nil, nil
	case err != nil:
		return "", "", nil, err
	}
	return envelopeID, recipientID, e, nil
}

// languageOf is the language of the envelope a reply is about, "" (the
// default) when there is none.
func languageOf(env *workflow.Envelope) string {
	if env == nil {
		return ""
	}
	return env.Language
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
	env, err := h.engine.Envelope(ctx, envID)
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
		if !address.SameMailbox(rcpt.FinalRecipient, addressee) && !address.SameMailbox(rcpt.OriginalRecipient, addressee) {
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

// unreadable handles a message whose header cannot be read: it goes to
// quarantine, with a refusal when its author can still be found.
func (h *Handler) unreadable(ctx context.Context, m poller.Message, key string, perr error) (poller.Destination, string, error) {
	reason := unreadableReason(perr, h.cfg.MaxMessageBytes)
	th, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(m.Raw)))
	if err != nil {
		return h.quarantine(reason.EN, false)
	}
	hdr := gomail.Header{Header: gomessage.Header{Header: th}}
	if _, auto := loop.Automatic(hdr, h.cfg.Gateway); auto {
		return h.quarantine(reason.EN, false)
	}
	// With several From addresses (refused for that), the first is
	// answered, within the quota the policy's decision on it allows.
	from, err := hdr.AddressList("From")
	if err != nil || len(from) == 0 {
		return h.quarantine(reason.EN, false)
	}
	msgID, _ := hdr.MessageID()
	in := &inbound{
		msg:    &message.Message{From: (*mail.Address)(from[0]), Subject: message.Subject(hdr), MessageID: msgID},
		key:    key,
		sender: h.cfg.Senders.Check(from[0].Address, hdr.Values("Authentication-Results")),
	}
	return h.refuse(ctx, in, "", reason)
}

// unreadableReason says why a message cannot be read, in both languages.
func unreadableReason(err error, limit int64) problem.Text {
	var whole problem.Text // a sentence of its own, e.g. on the From field
	if errors.As(err, &whole) {
		return whole
	}
	if errors.Is(err, message.ErrTooLarge) {
		l := megabytes(limit)
		return problem.Text{EN: "the message is larger than " + l.EN, FR: "le message dépasse " + l.FR}
	}
	why := problem.From(err)
	return problem.Text{EN: "the message cannot be read: " + why.EN, FR: "le message est illisible : " + why.FR}
}

// MaxVerifiedFiles is the most PDFs of one mail to the verification
// address that get a report: the reply, and the job that carries it, stay
// small whatever the mail holds. The reply counts the others.
const MaxVerifiedFiles = 20

// verificationQuota bounds the reports one address is sent (SPEC §6):
// anyone may ask, and the From address may be forged.
var verificationQuota = engine.Quota{Max: 10, Per: time.Hour}

// verification answers a mail to the verification address with a report
// on each of its PDFs (at most MaxVerifiedFiles), in the language of its
// instructions: no sender authorisation, no envelope, and no reply past
// the sender's quota or when the trusted server says the From domain
// failed DMARC. The mail goes to the processed folder in every case.
func (h *Handler) verification(ctx context.Context, m poller.Message, in *inbound) (poller.Destination, string, error) {
	msg := in.msg
	from := msg.From.Address
	if in.sender.DMARCFailed {
		h.log.Info("ingest: verification without a reply: the From domain failed DMARC", "from", logText(from))
		return poller.Verified, "", nil
	}
	quota := verificationQuota
	quota.Key = "verifier:" + address.Mailbox(from)
	var files int
	queued, err := h.engine.Reply(ctx, in.key, quota, func() engine.Job {
		v := h.verify(ctx, m, msg)
		files = len(v.Files)
		return engine.Job{Notice: engine.NoticeVerification, Verification: v}
	})
	switch {
	case err != nil:
		return 0, "", err
	case !queued:
		h.log.Warn("ingest: verification without a reply: the sender's quota of reports is spent",
			"from", logText(from), "max", quota.Max, "per", quota.Per)
	default:
		h.log.Info("ingest: verification report queued", "from", logText(from), "files", files)
	}
	return poller.Verified, "", nil
}

// verify checks the PDFs of msg and makes the reply's content. The reply
// greets nobody by name: anyone may ask, so the From may be someone else's
// address, and a display name written by whoever forged it is not repeated
// to them.
func (h *Handler) verify(ctx context.Context, m poller.Message, msg *message.Message) *engine.Verification {
	v := &engine.Verification{To: workflow.Party{Email: msg.From.Address},
		Subject: msg.Subject, MessageID: msg.MessageID, References: msg.Ancestors(), Language: h.cfg.Language,
		Address: verificationAddress(h.cfg.Gateway, msg.Detail(h.cfg.Gateway))}
	if m.TooLarge {
		size, limit := megabytes(m.Size), megabytes(h.cfg.MaxMessageBytes)
		v.Problem = problem.Text{
			EN: fmt.Sprintf("the message is %s; the gateway reads at most %s: send fewer or smaller files", size.EN, limit.EN),
			FR: fmt.Sprintf("le message fait %s ; le parapheur lit au plus %s : envoyez moins de fichiers, ou de plus petits", size.FR, limit.FR),
		}.In(v.Language)
		return v
	}
	if err := msg.ReadBody(message.AllParts); err != nil {
		v.Problem = unreadableReason(err, h.cfg.MaxMessageBytes).In(v.Language)
		return v
	}
	v.Language = firstNonEmpty(instructions.Parse(msg.Text).Language, v.Language)
	v.Ignored = ignored(msg)
	docs := msg.Documents
	if len(docs) > MaxVerifiedFiles {
		v.Omitted, docs = len(docs)-MaxVerifiedFiles, docs[:MaxVerifiedFiles]
	}
	for _, d := range docs {
		v.Files = append(v.Files, h.cfg.Verify(ctx, d.Name, d.Data, v.Language))
	}
	if len(v.Files) == 0 {
		v.Problem = problem.Text{
			EN: "the message has no PDF attachment",
			FR: "le message n'a aucune pièce jointe PDF",
		}.In(v.Language)
	}
	return v
}

// verificationAddress is the gateway's address with the plus-address
// detail the mail was sent to, folded, which the reply says to use again.
func verificationAddress(gateway, detail string) string {
	folded, _ := instructions.Verification(detail)
	local, domain, _ := strings.Cut(gateway, "@")
	return local + "+" + folded + "@" + domain
}

// Refusal quotas (SPEC §2, Refusal). A sender who may submit hears of
// every refused mail, up to a cap that only stops a runaway robot; anyone
// else, of one refused mail a day, since the From address may be forged.
var (
	submitterQuota = engine.Quota{Max: 20, Per: time.Hour}
	strangerQuota  = engine.Quota{Max: 1, Per: 24 * time.Hour}
)

// refusalQuota is the quota of refusals for the author of a mail, or false
// when none may be sent: the trusted server says the From domain failed
// DMARC, so the author is most likely not who the From says. Addresses
// are counted by mailbox (a+x@d and A+y@D are one), and the two classes
// apart, so that forged mail does not spend a real sender's quota.
func refusalQuota(addr string, d policy.Decision) (engine.Quota, bool) {
	mailbox := address.Mailbox(addr)
	switch {
	case d.Allowed:
		q := submitterQuota
		q.Key = "submitter:" + mailbox
		return q, true
	case d.DMARCFailed:
		return engine.Quota{}, false
	}
	q := strangerQuota
	q.Key = "stranger:" + mailbox
	return q, true
}

// refuse queues a refusal reply within the author's quota, its problems in
// lang or else the default language, and sends the message to quarantine
// with the problems in English. A refusal not sent is logged.
func (h *Handler) refuse(ctx context.Context, in *inbound, lang string, problems ...problem.Text) (poller.Destination, string, error) {
	return h.refuseWith(ctx, in, lang, false, problems)
}

// refuseCommand is refuse for a reply command: the reply says how to give
// one, not how to write a submission.
func (h *Handler) refuseCommand(ctx context.Context, in *inbound, lang string, problems ...problem.Text) (poller.Destination, string, error) {
	return h.refuseWith(ctx, in, lang, true, problems)
}

// refuseWith is refuse, for a reply command when command is set.
func (h *Handler) refuseWith(ctx context.Context, in *inbound, lang string, command bool, problems []problem.Text) (poller.Destination, string, error) {
	lang = firstNonEmpty(lang, h.cfg.Language)
	english := make([]string, len(problems))
	sentences := make([]string, len(problems))
	for i, p := range problems {
		english[i], sentences[i] = p.EN, p.In(lang)
	}
	reason := strings.Join(english, "; ")
	msg := in.msg
	if msg.From == nil || msg.From.Address == "" {
		return h.quarantine(reason, false)
	}
	quota, ok := refusalQuota(msg.From.Address, in.sender)
	if !ok {
		h.log.Info("ingest: refused without a reply: the From domain failed DMARC", "from", logText(msg.From.Address), "reason", logText(reason))
		return h.quarantine(reason, false)
	}
	usage := instructions.Help(lang, h.cfg.SMS)
	if command {
		usage = reply.Help(lang)
	}
	queued, err := h.engine.Reply(ctx, in.key, quota, func() engine.Job {
		return engine.Job{Notice: engine.NoticeRefusal, Refusal: &engine.Refusal{
			To:      workflow.Party{Name: msg.From.Name, Email: msg.From.Address},
			Subject: msg.Subject, MessageID: msg.MessageID, References: msg.Ancestors(),
			Problems: sentences, Usage: usage, Command: command, Language: lang,
		}}
	})
	if err != nil {
		return 0, "", err
	}
	if !queued {
		h.log.Warn("ingest: refused without a reply: the sender's quota of refusals is spent",
			"from", logText(msg.From.Address), "max", quota.Max, "per", quota.Per, "may_submit", in.sender.Allowed, "reason", logText(reason))
	}
	return h.quarantine(reason, queued)
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
// pdfProblems does not know keeps its own words in English, and reads as
// an unreadable file in French.
func unsignable(name string, err error) problem.Text {
	why := problem.From(err)
	if why.FR == why.EN {
		why.FR = "le fichier PDF ne peut pas être lu"
	}
	for _, p := range pdfProblems {
		if errors.Is(err, p.err) {
			why = p.why
			break
		}
	}
	if se := (*pades.SizeError)(nil); errors.As(err, &se) {
		size, limit := megabytes(se.Size), megabytes(se.Limit)
		why = problem.Text{
			EN: fmt.Sprintf("the PDF file is %s; the gateway accepts PDF files of at most %s", size.EN, limit.EN),
			FR: fmt.Sprintf("le fichier PDF fait %s ; le parapheur accepte des fichiers PDF d'au plus %s", size.FR, limit.FR),
		}
	}
	return problem.Text{
		EN: fmt.Sprintf("document %q cannot be signed: %s", name, why.EN),
		FR: fmt.Sprintf("le document « %s » ne peut pas être signé : %s", name, why.FR),
	}
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

// noPDF says that a submission has no PDF, naming the attachments it has
// instead: a Word file to save as PDF, or Outlook's winmail.dat, which
// hides the attachments of a mail sent in Outlook's own format (TNEF).
func noPDF(attached []message.Attachment) problem.Text {
	t := problem.Text{
		EN: "the mail has no PDF attachment: attach the document(s) to sign as PDF files",
		FR: "le message n'a aucune pièce jointe PDF : joignez le ou les documents à signer en PDF",
	}
	var names []string
	tnef := false
	for _, a := range attached {
		if a.Name == "" {
			continue // inline images of a signature, not what the sender attached
		}
		names = append(names, a.Name)
		tnef = tnef || strings.EqualFold(a.Name, "winmail.dat") || strings.EqualFold(a.ContentType, "application/ms-tnef")
	}
	switch list := logText(strings.Join(names, ", ")); {
	case len(names) == 1:
		t.EN += fmt.Sprintf(" (it has %s, which is not a PDF file)", list)
		t.FR += fmt.Sprintf(" (il contient %s, qui n'est pas un PDF)", list)
	case len(names) > 1:
		t.EN += fmt.Sprintf(" (it has %s, which are not PDF files)", list)
		t.FR += fmt.Sprintf(" (il contient %s, qui ne sont pas des PDF)", list)
	}
	if tnef {
		t.EN += "; winmail.dat means that Outlook sent the mail in its own format, which hides the attachments: send it again as HTML or plain text"
		t.FR += " ; winmail.dat signifie qu'Outlook a envoyé le message dans son format propre, qui cache les pièces jointes : renvoyez-le au format HTML ou texte brut"
	}
	return t
}
