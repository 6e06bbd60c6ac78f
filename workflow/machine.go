package workflow

import (
	"crypto/hmac"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parapheur/parapheur/workflow/audit"
)

// Limits of the one-time codes and of the action they authorise (SPEC §3).
const (
	// CodeTTL is how long a one-time code is accepted.
	CodeTTL = 10 * time.Minute
	// MaxCodeFailures wrong entries void a code.
	MaxCodeFailures = 5
	// MaxCodesPerHour is how many codes one recipient may be sent per hour.
	MaxCodesPerHour = 5
	// ActionWindow is how long after a verified code the recipient may act.
	ActionWindow = 10 * time.Minute
	// ViewEvery: views of the page by the same client closer together
	// than this are one view, so that reloads do not each write a record.
	ViewEvery = 5 * time.Minute
	// ManualReminderGap is how long after a reminder (by hand or by the
	// schedule) the sender may send one by hand.
	ManualReminderGap = time.Hour
)

// SystemActor is the audit actor of events the gateway causes itself.
const SystemActor = "system"

// Transition is the outcome of an event: the next envelope, the audit records
// to append (already chained to the envelope's audit head) and the effects
// to carry out once both are stored. A transition with no audit record
// changed nothing (a replayed or stale event) and need not be written.
type Transition struct {
	Envelope *Envelope
	Audit    []audit.Record
	Effects  []Effect
}

// Changed reports whether the transition must be stored. Every change of an
// envelope leaves an audit record, so the two are the same question.
func (t Transition) Changed() bool { return len(t.Audit) > 0 }

// Draft is what a submission asks for; Create turns it into an envelope.
type Draft struct {
	// ID is the new envelope's ID, chosen by the edge (for idempotent
	// ingestion it derives from the submission's Message-ID).
	ID       string
	Title    string
	Message  string
	Language string
	// LanguageGiven is set when the submission chose Language.
	LanguageGiven bool
	// NoDelegation forbids delegation in this envelope.
	NoDelegation bool
	Sender       Party
	SenderAuth   string
	MessageID    string
	References   []string
	Documents    []Document
	// Ignored are the attachments that are not documents.
	Ignored []Attachment
	// Steps are the acting steps in order; each is a role and its parties.
	Steps      []DraftStep
	Copies     []Party
	Archivists []Party
	Deadline   time.Time
	// ReminderEvery is the reminder interval, 0 for none.
	ReminderEvery time.Duration
}

// DraftStep is one step of a Draft.
type DraftStep struct {
	Role    Role
	Parties []Party
}

// Create validates a draft and builds the envelope: the first step is
// invited, the sender acknowledged, the expiry and first reminder scheduled.
func Create(d Draft, at time.Time) (Transition, error) {
	if err := d.validate(at); err != nil {
		return Transition{}, err
	}
	e := &Envelope{
		ID: d.ID, Title: d.Title, Message: d.Message, Language: d.Language,
		LanguageGiven: d.LanguageGiven, NoDelegation: d.NoDelegation,
		Sender: d.Sender, SenderAuth: d.SenderAuth, MessageID: d.MessageID,
		References: slices.Clone(d.References),
		State:      StateInProgress, CreatedAt: at.UTC(), Deadline: d.Deadline.UTC(),
		ReminderEvery: d.ReminderEvery,
		Documents:     append([]Document(nil), d.Documents...),
		Ignored:       append([]Attachment(nil), d.Ignored...),
		Audit:         audit.Start(),
	}
	for i := range e.Documents {
		e.Documents[i].Current = e.Documents[i].Original
	}
	add := func(p Party, role Role, step int) string {
		id := fmt.Sprintf("r%d", len(e.Recipients)+1)
		e.Recipients = append(e.Recipients, Recipient{Party: p, ID: id, Role: role, Step: step, State: Waiting})
		return id
	}
	for i, s := range d.Steps {
		step := Step{Role: s.Role}
		for _, p := range s.Parties {
			step.Recipients = append(step.Recipients, add(p, s.Role, i))
		}
		e.Steps = append(e.Steps, step)
	}
	for _, p := range d.Copies {
		add(p, Copy, -1)
	}
	for _, p := range d.Archivists {
		add(p, Archivist, -1)
	}

	details := map[string]string{"title": e.Title, "sender_auth": e.SenderAuth, "steps": fmt.Sprint(len(e.Steps))}
	for i, doc := range e.Documents {
		details[fmt.Sprintf("document_%d", i)] = fmt.Sprintf("%s sha256=%s pages=%d", doc.Name, doc.Original, doc.Pages)
	}
	t := newTransition(e)
	t.record(audit.Record{Time: at, Type: audit.Submitted, Actor: e.Sender.Email, Details: details})
	t.effect(Notify{Notice: Acknowledgement, ToSender: true})
	t.effect(Schedule{Timer: ExpiryTimer, At: e.Deadline})
	if e.ReminderEvery > 0 && at.Add(e.ReminderEvery).Before(e.Deadline) {
		e.NextReminder = at.Add(e.ReminderEvery).UTC()
		t.effect(Schedule{Timer: ReminderTimer, At: e.NextReminder})
	}
	t.startStep(0, at)
	return t.done(), nil
}

func (d Draft) validate(at time.Time) error {
	var problems []string
	if d.ID == "" {
		problems = append(problems, "no envelope ID")
	}
	if d.Sender.Email == "" {
		problems = append(problems, "no sender")
	}
	if len(d.Documents) == 0 {
		problems = append(problems, "no document")
	}
	signers := 0
	for i, s := range d.Steps {
		if !s.Role.Acts() {
			problems = append(problems, fmt.Sprintf("step %d has role %q: a step is for signers or approvers", i+1, s.Role))
		}
		if len(s.Parties) == 0 {
			problems = append(problems, fmt.Sprintf("step %d names nobody", i+1))
		}
		if s.Role == Signer {
			signers += len(s.Parties)
		}
		for _, p := range s.Parties {
			if p.Email == "" {
				problems = append(problems, fmt.Sprintf("step %d has a recipient without an address", i+1))
			}
		}
	}
	if signers == 0 {
		problems = append(problems, "no signer")
	}
	if !d.Deadline.After(at) {
		problems = append(problems, fmt.Sprintf("deadline %s is not in the future", d.Deadline.Format(time.DateOnly)))
	}
	if d.ReminderEvery < 0 {
		problems = append(problems, "negative reminder interval")
	}
	if len(problems) > 0 {
		return errorf(ErrInvalidDraft, "envelope not valid: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Apply feeds one event to an envelope. It never changes e. A refused event
// returns a *Error; a replayed or stale event returns an unchanged
// transition (see Transition.Changed).
func Apply(e *Envelope, ev Event) (Transition, error) {
	t := newTransition(e.Clone())
	var err error
	switch ev := ev.(type) {
	case Viewed:
		err = t.viewed(ev)
	case CodeSent:
		err = t.codeSent(ev)
	case CodeFailed:
		err = t.codeFailed(ev)
	case CodeVerified:
		err = t.codeVerified(ev)
	case Signed:
		// Who may sign is told before whether the documents moved on.
		if _, err = performer(t.e, ev.RecipientID, Signer, ev.At); err == nil {
			err = t.checkVersions(ev.Signature.Documents)
		}
		if err != nil {
			break
		}
		err = t.act(ev.Meta, ev.RecipientID, Signer, func(r *Recipient) {
			r.State, r.Signature = HasSigned, &ev.Signature
			t.applyVersions(ev.Signature.Documents)
			details := map[string]string{"cert_serial": ev.Signature.CertSerial}
			for _, v := range ev.Signature.Documents {
				details[fmt.Sprintf("document_%d", v.Index)] = v.SHA256
			}
			t.recordFor(ev.Meta, audit.Signed, r, details)
		})
	case Approved:
		err = t.act(ev.Meta, ev.RecipientID, Approver, func(r *Recipient) {
			r.State = HasApproved
			t.recordFor(ev.Meta, audit.Approved, r, nil)
		})
	case Declined:
		err = t.declined(ev)
	case Delegated:
		err = t.delegated(ev)
	case Cancelled:
		err = t.cancelled(ev)
	case Expired:
		err = t.expired(ev)
	case ReminderDue:
		err = t.reminderDue(ev)
	case Resend:
		err = t.resend(ev)
	case Bounced:
		err = t.bounced(ev)
	case Sealed:
		err = t.sealed(ev)
	case CompletionDelayed:
		err = t.completionDelayed(ev)
	case Completed:
		err = t.completed(ev)
	case DeliveryStarted:
		err = t.deliveryStarted(ev)
	case DeliveryAttempted:
		err = t.deliveryAttempted(ev)
	default:
		err = fmt.Errorf("workflow: unknown event %T", ev)
	}
	if err != nil {
		return Transition{}, err
	}
	return t.done(), nil
}

// CanAct tells whether recipientID may act now (ask for a code, sign,
// approve or decline), and if not, why.
func CanAct(e *Envelope, recipientID string, at time.Time) error {
	_, err := actor(e, recipientID, at)
	return err
}

// CanPerform tells whether recipientID may now do what role asks (sign or
// approve): CanAct, the role, and a code verified within ActionWindow. The
// signing edge asks it before the costly work of a signature, whose Signed
// event Apply then checks the same way.
func CanPerform(e *Envelope, recipientID string, role Role, at time.Time) error {
	_, err := performer(e, recipientID, role, at)
	return err
}

func performer(e *Envelope, recipientID string, role Role, at time.Time) (*Recipient, error) {
	r, err := actor(e, recipientID, at)
	if err != nil {
		return nil, err
	}
	if r.Role != role {
		return nil, errorf(ErrWrongRole, "%s is asked to %s, not to %s", r.Email, verb(r.Role), verb(role))
	}
	if err := verified(r, at); err != nil {
		return nil, err
	}
	return r, nil
}

func actor(e *Envelope, recipientID string, at time.Time) (*Recipient, error) {
	r := e.Recipient(recipientID)
	switch {
	case r == nil:
		return nil, errorf(ErrUnknownRecipient, "envelope %s has no recipient %q", e.ID, recipientID)
	case !r.Role.Acts():
		return nil, errorf(ErrWrongRole, "%s receives a copy and has nothing to sign", r.Email)
	case r.Acted():
		return nil, errorf(ErrAlreadyActed, "%s has already %s this envelope", r.Email, r.State)
	case e.State.Final():
		return nil, errorf(ErrEnded, "the envelope is %s", e.State)
	case !at.Before(e.Deadline):
		return nil, errorf(ErrDeadlinePassed, "the deadline (%s) has passed", e.Deadline.Format(time.RFC3339))
	case e.CurrentStep >= len(e.Steps):
		return nil, errorf(ErrCompleting, "every step is done; the envelope is being completed")
	case r.Step > e.CurrentStep:
		return nil, errorf(ErrNotYourTurn, "step %d of %d must be done before %s can act", e.CurrentStep+1, len(e.Steps), r.Email)
	}
	return r, nil
}

// transition accumulates a transition's changes on a private copy.
type transition struct {
	e       *Envelope
	records []audit.Record
	effects []Effect
}

func newTransition(e *Envelope) *transition { return &transition{e: e} }

func (t *transition) record(r audit.Record) { t.records = append(t.records, r) }
func (t *transition) effect(f Effect)       { t.effects = append(t.effects, f) }

func (t *transition) recordFor(m Meta, typ audit.Type, r *Recipient, details map[string]string) {
	t.record(audit.Record{Time: m.At, Type: typ, Actor: r.Email, RecipientID: r.ID,
		IP: m.Client.IP, UserAgent: m.Client.UserAgent, Details: details})
	if m.Client != (Client{}) {
		r.LastSeen = m.Client
	}
}

func (t *transition) done() Transition {
	recs, head := audit.Chain(t.e.Audit, t.records)
	t.e.Audit = head
	return Transition{Envelope: t.e, Audit: recs, Effects: t.effects}
}

// startStep makes step i current and invites its recipients, or, past the
// last step, asks for completion.
func (t *transition) startStep(i int, at time.Time) {
	t.e.CurrentStep = i
	if i >= len(t.e.Steps) {
		t.e.StepsDoneAt = at.UTC()
		t.effect(Complete{})
		return
	}
	ids := t.e.Steps[i].Recipients
	for _, id := range ids {
		r := t.e.Recipient(id)
		r.State, r.InvitedAt = Pending, at.UTC()
	}
	t.effect(Notify{Notice: Invitation, Recipients: append([]string(nil), ids...)})
}

func (t *transition) applyVersions(vs []DocumentVersion) {
	for _, v := range vs {
		if v.Index >= 0 && v.Index < len(t.e.Documents) {
			t.e.Documents[v.Index].Current, t.e.Documents[v.Index].Size = v.SHA256, v.Size
		}
	}
}

func (t *transition) viewed(ev Viewed) error {
	r := t.e.Recipient(ev.RecipientID)
	if r == nil {
		return errorf(ErrUnknownRecipient, "envelope %s has no recipient %q", t.e.ID, ev.RecipientID)
	}
	// A view at the very instant of the last one is a reload too; one
	// before it (a clock stepped back) is recorded.
	if since := ev.At.Sub(r.LastViewAt); !r.LastViewAt.IsZero() && since >= 0 && since < ViewEvery && r.LastSeen == ev.Client {
		return nil // a reload: already recorded
	}
	if r.ViewedAt.IsZero() {
		r.ViewedAt = ev.At.UTC()
	}
	r.LastViewAt = ev.At.UTC()
	t.recordFor(ev.Meta, audit.Viewed, r, nil)
	return nil
}

func (t *transition) codeSent(ev CodeSent) error {
	r, err := actor(t.e, ev.RecipientID, ev.At)
	if err != nil {
		return err
	}
	if len(ev.MAC) == 0 || (ev.Channel != "email" && ev.Channel != "sms") {
		return fmt.Errorf("workflow: CodeSent needs a MAC and a channel (email or sms), got channel %q", ev.Channel)
	}
	recent := r.CodesSent[:0]
	for _, sent := range r.CodesSent {
		if ev.At.Sub(sent) < time.Hour {
			recent = append(recent, sent)
		}
	}
	r.CodesSent = recent
	if retry := r.NextCodeAt(ev.At); retry.After(ev.At) {
		return errorf(ErrTooManyCodes, "%d codes were sent in the last hour; ask again after %s", MaxCodesPerHour, retry.Format("15:04 MST"))
	}
	r.CodesSent = append(r.CodesSent, ev.At.UTC())
	r.Code = &Code{MAC: append([]byte(nil), ev.MAC...), ExpiresAt: ev.At.Add(CodeTTL).UTC(), Channel: ev.Channel}
	t.recordFor(ev.Meta, audit.CodeSent, r, map[string]string{"channel": ev.Channel})
	t.effect(SendCode{RecipientID: r.ID, Channel: ev.Channel})
	return nil
}

// checkCode is the pure test of an entered code against the outstanding one.
func checkCode(r *Recipient, mac []byte, at time.Time) error {
	switch {
	case r.Code == nil:
		return errorf(ErrNoCode, "no code is outstanding for %s: ask for a new code", r.Email)
	case !at.Before(r.Code.ExpiresAt):
		return errorf(ErrCodeExpired, "the code expired at %s: ask for a new code", r.Code.ExpiresAt.Format("15:04 MST"))
	case !hmac.Equal(mac, r.Code.MAC):
		left := MaxCodeFailures - r.Code.Failures - 1
		if left <= 0 {
			return refusal(ErrWrongCode, "the code is wrong; that was its last try (of %d), so it no longer works: ask for a new code",
				"le code est faux ; c'était son dernier essai (sur %d) : il ne fonctionne plus, demandez un nouveau code", MaxCodeFailures)
		}
		if left == 1 {
			return refusal(ErrWrongCode, "the code is wrong (1 try left)", "le code est faux (encore 1 essai)")
		}
		return refusal(ErrWrongCode, "the code is wrong (%d tries left)", "le code est faux (encore %d essais)", left)
	}
	return nil
}

func (t *transition) codeVerified(ev CodeVerified) error {
	r, err := actor(t.e, ev.RecipientID, ev.At)
	if err != nil {
		return err
	}
	if err := checkCode(r, ev.MAC, ev.At); err != nil {
		return err
	}
	r.Code, r.VerifiedAt = nil, ev.At.UTC()
	t.recordFor(ev.Meta, audit.CodeVerified, r, nil)
	return nil
}

func (t *transition) codeFailed(ev CodeFailed) error {
	r, err := actor(t.e, ev.RecipientID, ev.At)
	if err != nil {
		return err
	}
	if r.Code == nil {
		return errorf(ErrNoCode, "no code is outstanding for %s", r.Email)
	}
	r.Code.Failures++
	details := map[string]string{"failures": fmt.Sprint(r.Code.Failures)}
	voided := r.Code.Failures >= MaxCodeFailures
	if voided {
		r.Code = nil
		details["voided"] = "true"
	}
	t.recordFor(ev.Meta, audit.CodeFailed, r, details)
	if voided {
		t.effect(Notify{Notice: CodeLockedNotice, ToSender: true, About: r.ID})
	}
	return nil
}

// act runs a recipient's action (sign, approve) after the common checks,
// then moves the step on when its last recipient has acted.
func (t *transition) act(m Meta, recipientID string, role Role, apply func(*Recipient)) error {
	r, err := performer(t.e, recipientID, role, m.At)
	if err != nil {
		return err
	}
	r.ActedAt, r.VerifiedAt = m.At.UTC(), time.Time{}
	apply(r)
	t.advance(m.At)
	return nil
}

// checkVersions requires a signature to carry one new version of every
// document, each made from the document's current version.
func (t *transition) checkVersions(vs []DocumentVersion) error {
	if len(vs) != len(t.e.Documents) {
		return fmt.Errorf("workflow: a signature carries %d document versions for %d documents", len(vs), len(t.e.Documents))
	}
	seen := make([]bool, len(t.e.Documents))
	for _, v := range vs {
		if v.Index < 0 || v.Index >= len(seen) || seen[v.Index] || v.SHA256 == "" {
			return fmt.Errorf("workflow: a signature's document versions do not name each document once")
		}
		seen[v.Index] = true
		if d := t.e.Documents[v.Index]; v.Previous != d.Current {
			return errorf(ErrStaleDocument, "%s changed while the signature was made (it is now %s, the signature was made on %s): sign again",
				d.Name, short(d.Current), short(v.Previous))
		}
	}
	return nil
}

func short(sha string) string { return sha[:min(len(sha), 12)] }

func verb(r Role) string {
	if r == Approver {
		return "approve"
	}
	return "sign"
}

// verified requires a code verified within ActionWindow; each verification
// authorises one action.
func verified(r *Recipient, at time.Time) error {
	if r.VerifiedAt.IsZero() || at.Sub(r.VerifiedAt) > ActionWindow {
		return errorf(ErrNotVerified, "%s must enter a one-time code before acting", r.Email)
	}
	return nil
}

// advance starts the next step when every recipient of the current one acted.
func (t *transition) advance(at time.Time) {
	for _, id := range t.e.Steps[t.e.CurrentStep].Recipients {
		if !t.e.Recipient(id).Acted() {
			return
		}
	}
	t.startStep(t.e.CurrentStep+1, at)
}

// end moves the envelope to a final state and tells the sender, the
// recipients who already acted and also; about is who caused it, if a
// recipient.
func (t *transition) end(s State, at time.Time, reason string, notice Notice, about string, also ...string) {
	t.e.State, t.e.Reason, t.e.EndedAt, t.e.NextReminder = s, reason, at.UTC(), time.Time{}
	ids, toSender := t.onePerAddress(append(t.actedRecipients(), also...), true)
	t.effect(Notify{Notice: notice, Recipients: ids, ToSender: toSender, Reason: reason, About: about})
}

// onePerAddress keeps, of the recipients ids and the sender (when
// toSender), one per address, so that nobody gets the same notice twice
// (SPEC §5): an agent who signs their own request, or names themselves as
// copy, is one party. It keeps an archivist first, whose final mail also
// carries the audit trail, then a copy, whose state the delivery of the
// final mail completes, then the sender, then the first of ids.
func (t *transition) onePerAddress(ids []string, toSender bool) ([]string, bool) {
	rank := func(id string) int {
		switch r := t.e.Recipient(id); {
		case r.Role == Archivist:
			return 0
		case r.Role == Copy:
			return 1
		default:
			return 3
		}
	}
	const senderRank = 2
	best := map[string]string{} // folded address -> the recipient kept
	for _, id := range ids {
		addr := strings.ToLower(t.e.Recipient(id).Email)
		if kept, ok := best[addr]; !ok || rank(id) < rank(kept) {
			best[addr] = id
		}
	}
	if kept, ok := best[strings.ToLower(t.e.Sender.Email)]; toSender && ok && rank(kept) > senderRank {
		delete(best, strings.ToLower(t.e.Sender.Email))
	} else if ok {
		toSender = false
	}
	var out []string
	for _, id := range ids {
		if best[strings.ToLower(t.e.Recipient(id).Email)] == id {
			out = append(out, id)
		}
	}
	return out, toSender
}

func (t *transition) actedRecipients() []string {
	var ids []string
	for _, r := range t.e.Recipients {
		if r.State == HasSigned || r.State == HasApproved {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

func (t *transition) declined(ev Declined) error {
	r, err := actor(t.e, ev.RecipientID, ev.At)
	if err != nil {
		return err
	}
	if err := CheckReason(ev.Reason, "decline"); err != nil {
		return err
	}
	reason := strings.TrimSpace(ev.Reason)
	if !ev.ByMail {
		if err := verified(r, ev.At); err != nil {
			return err
		}
	}
	r.State, r.Reason, r.ActedAt, r.VerifiedAt = HasDeclined, reason, ev.At.UTC(), time.Time{}
	method := "one-time code"
	if ev.ByMail {
		method = "reply mail"
	}
	t.recordFor(ev.Meta, audit.Declined, r, map[string]string{"reason": reason, "authenticated_by": method})
	// Who declines by mail sees no page saying it was done: the notice is
	// their confirmation.
	var confirm []string
	if ev.ByMail {
		confirm = append(confirm, r.ID)
	}
	t.end(StateDeclined, ev.At, reason, DeclineNotice, r.ID, confirm...)
	return nil
}

// CheckReason refuses an empty reason for action ("decline", "delegate"):
// a decline always needs one, a delegation on the page too. The machine
// checks it, and a door may ask first, so that a request without a reason
// is refused before its one-time code is checked.
func CheckReason(reason, action string) error {
	if strings.TrimSpace(reason) == "" {
		return errorf(ErrReasonRequired, "a reason is required to %s", action)
	}
	return nil
}

// MaxRecipients bounds the recipients of an envelope, delegates included,
// so that a chain of delegations cannot grow it without end.
const MaxRecipients = 500

func (t *transition) delegated(ev Delegated) error {
	r, err := actor(t.e, ev.RecipientID, ev.At)
	if err != nil {
		return err
	}
	if t.e.NoDelegation {
		return errorf(ErrNoDelegation, "delegation is not allowed for envelope %s", t.e.ID)
	}
	reason := strings.TrimSpace(ev.Reason)
	if !ev.ByMail {
		if err := CheckReason(reason, "delegate"); err != nil {
			return err
		}
		if err := verified(r, ev.At); err != nil {
			return err
		}
	}
	to := ev.To
	to.Email = strings.TrimSpace(to.Email)
	to.Name = strings.TrimSpace(to.Name)
	switch {
	case to.Email == "" || strings.Count(to.Email, "@") != 1 || strings.HasPrefix(to.Email, "@") || strings.HasSuffix(to.Email, "@"):
		return refusal(ErrBadDelegate, "%q is not an email address", "« %s » n'est pas une adresse électronique", to.Email)
	case strings.EqualFold(to.Email, r.Email):
		return refusal(ErrBadDelegate, "%s cannot delegate to their own address", "%s ne peut pas se déléguer à sa propre adresse", r.Email)
	case len(t.e.Recipients) >= MaxRecipients:
		return refusal(ErrBadDelegate, "envelope %s has %d recipients, the most it may have",
			"la demande %s a %d destinataires, le plus qu'elle puisse avoir", t.e.ID, MaxRecipients)
	}
	// Each step keeps a person of its own: a delegate who approves or
	// signs elsewhere in the envelope would check their own signature.
	for _, o := range t.e.Recipients {
		if o.Role.Acts() && o.State != HasDelegated && strings.EqualFold(o.Email, to.Email) {
			if o.Step == r.Step {
				return refusal(ErrBadDelegate, "%s already acts in this step", "%s agit déjà à cette étape", to.Email)
			}
			return refusal(ErrBadDelegate, "%s already has a place at step %d of this envelope: the delegate must be someone else, or the sender must cancel and send the request again",
				"%s a déjà une place à l'étape %d de cette demande : la délégation doit aller à quelqu'un d'autre, ou l'expéditeur doit annuler et renvoyer la demande", o.Email, o.Step+1)
		}
	}
	d := Recipient{Party: to, ID: fmt.Sprintf("r%d", len(t.e.Recipients)+1), Role: r.Role, Step: r.Step,
		State: Pending, InvitedAt: ev.At.UTC(), DelegatedFrom: r.ID}
	r.State, r.DelegatedTo, r.Reason, r.ActedAt, r.VerifiedAt, r.Code = HasDelegated, d.ID, reason, ev.At.UTC(), time.Time{}, nil
	ids := t.e.Steps[r.Step].Recipients
	for i, id := range ids {
		if id == r.ID {
			ids[i] = d.ID
		}
	}
	method := "one-time code"
	if ev.ByMail {
		method = "reply mail"
	}
	t.recordFor(ev.Meta, audit.Delegated, r, map[string]string{"to": d.ID, "to_email": d.Email, "to_name": d.Name,
		"reason": reason, "authenticated_by": method})
	t.e.Recipients = append(t.e.Recipients, d)
	t.effect(Notify{Notice: Invitation, Recipients: []string{d.ID}})
	notice := Notify{Notice: DelegationNotice, ToSender: true, Reason: reason, About: r.ID}
	if ev.ByMail {
		// Who delegates by mail sees no page saying it was done: the
		// notice is their confirmation.
		notice.Recipients, notice.ToSender = t.onePerAddress([]string{r.ID}, true)
	}
	t.effect(notice)
	return nil
}

func (t *transition) cancelled(ev Cancelled) error {
	if t.e.State.Final() {
		if t.e.State == StateCancelled {
			return nil // replay
		}
		return errorf(ErrEnded, "the envelope is already %s", t.e.State)
	}
	if t.e.CurrentStep >= len(t.e.Steps) {
		return errorf(ErrCompleting, "every step is done; the envelope can no longer be cancelled")
	}
	reason := strings.TrimSpace(ev.Reason)
	t.record(audit.Record{Time: ev.At, Type: audit.Cancelled, Actor: ev.By, IP: ev.Client.IP,
		UserAgent: ev.Client.UserAgent, Details: map[string]string{"reason": reason}})
	t.end(StateCancelled, ev.At, reason, CancelNotice, "")
	return nil
}

func (t *transition) expired(ev Expired) error {
	if t.e.State.Final() || t.e.CurrentStep >= len(t.e.Steps) {
		return nil // ended, or completing: completion wins over a late timer
	}
	if ev.At.Before(t.e.Deadline) {
		return errorf(ErrNotDue, "the envelope expires at %s, not before", t.e.Deadline.Format(time.RFC3339))
	}
	reason := "deadline " + t.e.Deadline.Format(time.RFC3339) + " passed"
	t.record(audit.Record{Time: ev.At, Type: audit.Expired, Actor: SystemActor, Details: map[string]string{"deadline": t.e.Deadline.Format(time.RFC3339)}})
	t.end(StateExpired, ev.At, reason, ExpiryNotice, "")
	return nil
}

func (t *transition) reminderDue(ev ReminderDue) error {
	scheduled := !ev.Due.IsZero()
	if t.e.State.Final() || t.e.CurrentStep >= len(t.e.Steps) {
		if scheduled {
			return nil // a timer that outlived the envelope
		}
		return errorf(ErrEnded, "the envelope is %s: nobody is left to remind", t.e.State)
	}
	if scheduled && (!ev.Due.Equal(t.e.NextReminder) || !ev.At.Before(t.e.Deadline)) {
		return nil // stale, replayed, or too late to be of use: expiry is next
	}
	// A reminder by hand mails every pending recipient at once: without a
	// gap, a status link (the sender's, or one that leaked) would be a
	// mail cannon aimed at them.
	if next := t.e.LastReminderAt.Add(ManualReminderGap); !scheduled && ev.At.Before(next) {
		return refusal(ErrReminderTooSoon, "a reminder went out at %s: the next can go at %s",
			"une relance est partie à %s : la prochaine pourra partir à %s",
			t.e.LastReminderAt.UTC().Format("15:04 MST"), next.UTC().Format("15:04 MST"))
	}
	t.e.LastReminderAt = ev.At.UTC()
	var pending []string
	for _, id := range t.e.Steps[t.e.CurrentStep].Recipients {
		if !t.e.Recipient(id).Acted() {
			pending = append(pending, id)
		}
	}
	actor := SystemActor
	if !scheduled {
		actor = t.e.Sender.Email
	}
	t.record(audit.Record{Time: ev.At, Type: audit.ReminderSent, Actor: actor,
		Details: map[string]string{"recipients": strings.Join(pending, ",")}})
	t.effect(Notify{Notice: Reminder, Recipients: pending})
	if scheduled {
		t.e.NextReminder = time.Time{}
		// A timer fired late (the gateway was down) schedules the next
		// reminder after now: the ones missed meanwhile would all be due
		// at once, a burst of reminders instead of one.
		next := ev.Due.Add(t.e.ReminderEvery)
		if !next.After(ev.At) {
			next = next.Add((ev.At.Sub(next)/t.e.ReminderEvery + 1) * t.e.ReminderEvery)
		}
		if next.Before(t.e.Deadline) {
			t.e.NextReminder = next.UTC()
			t.effect(Schedule{Timer: ReminderTimer, At: t.e.NextReminder})
		}
	}
	return nil
}

func (t *transition) resend(ev Resend) error {
	email := strings.TrimSpace(ev.Email)
	toSender := strings.EqualFold(t.e.Sender.Email, email)
	var parties []*Recipient
	for i := range t.e.Recipients {
		if r := &t.e.Recipients[i]; strings.EqualFold(r.Email, email) {
			parties = append(parties, r)
		}
	}
	if !toSender && len(parties) == 0 {
		return errorf(ErrUnknownRecipient, "envelope %s has no sender or recipient %s", t.e.ID, email)
	}
	// Only the recipients the notice was (or is now) meant for get it.
	var notice Notice
	var keep func(*Recipient) bool
	reason, about := t.e.Reason, ""
	switch t.e.State {
	case StateInProgress:
		switch {
		case t.e.CurrentStep >= len(t.e.Steps):
			return errorf(ErrCompleting, "every step of envelope %s is done: the completion mail goes out once the documents are sealed", t.e.ID)
		case !ev.At.Before(t.e.Deadline):
			return errorf(ErrDeadlinePassed, "the deadline of envelope %s, %s, has passed: a link would no longer work", t.e.ID, t.e.Deadline.Format(time.RFC3339))
		}
		notice, reason = Invitation, ""
		keep = func(r *Recipient) bool { return r.State == Pending }
	case StateCompleted:
		notice = CompletionMail
		keep = func(*Recipient) bool { return true }
	default:
		notice = map[State]Notice{StateDeclined: DeclineNotice, StateCancelled: CancelNotice, StateExpired: ExpiryNotice}[t.e.State]
		acted := t.actedRecipients()
		keep = func(r *Recipient) bool { return slices.Contains(acted, r.ID) }
		for _, r := range t.e.Recipients {
			if r.State == HasDeclined {
				about = r.ID
			}
		}
	}
	var ids []string
	for _, r := range parties {
		if keep(r) {
			ids = append(ids, r.ID)
		}
	}
	if !toSender && len(ids) == 0 {
		return errorf(ErrNothingToResend, "%s has no mail due now from envelope %s: the envelope is %s and they are %s",
			email, t.e.ID, t.e.State, parties[0].State)
	}
	// While in progress the sender's mail is the acknowledgement, which
	// carries the status link.
	senderNotice := notice
	if notice == Invitation {
		senderNotice = Acknowledgement
	}
	var mails []string
	if len(ids) > 0 {
		mails = append(mails, string(notice))
	}
	if toSender && !slices.Contains(mails, string(senderNotice)) {
		mails = append(mails, string(senderNotice))
	}
	rec := audit.Record{Time: ev.At, Type: audit.Resent, Actor: ev.By, IP: ev.Client.IP, UserAgent: ev.Client.UserAgent,
		Details: map[string]string{"to": email, "recipients": strings.Join(ids, ","), "mail": strings.Join(mails, ",")}}
	t.record(rec)
	if len(ids) > 0 {
		t.effect(Notify{Notice: notice, Recipients: ids, Reason: reason, About: about})
	}
	if toSender {
		t.effect(Notify{Notice: senderNotice, ToSender: true, Reason: reason, About: about})
	}
	return nil
}

func (t *transition) bounced(ev Bounced) error {
	reason := strings.TrimSpace(ev.Reason)
	var hit []string
	// Only a recipient's first failure is told: a DSN does not say which
	// mail bounced, and a bounced notice of a bounce must not make another.
	told := false
	for i := range t.e.Recipients {
		r := &t.e.Recipients[i]
		if !strings.EqualFold(r.Email, ev.Email) {
			continue
		}
		if r.DeliveryFailure == reason {
			return nil // replayed bounce
		}
		told = told || r.DeliveryFailure != ""
		r.DeliveryFailure = reason
		hit = append(hit, r.ID)
		t.record(audit.Record{Time: ev.At, Type: audit.Bounced, Actor: SystemActor, RecipientID: r.ID,
			Details: map[string]string{"email": r.Email, "reason": reason}})
	}
	if len(hit) == 0 {
		return errorf(ErrUnknownRecipient, "envelope %s has no recipient %s", t.e.ID, ev.Email)
	}
	if !told {
		t.bounceNotice(reason, t.e.Recipient(hit[0]))
	}
	return nil
}

// addressee returns the recipient a delivery goes to (nil for the sender)
// and its address.
func (t *transition) addressee(to string) (*Recipient, string, error) {
	if to == "" {
		return nil, t.e.Sender.Email, nil
	}
	r := t.e.Recipient(to)
	if r == nil {
		return nil, "", errorf(ErrUnknownRecipient, "envelope %s has no recipient %q", t.e.ID, to)
	}
	return r, r.Email, nil
}

func (t *transition) deliveryStarted(ev DeliveryStarted) error {
	r, email, err := t.addressee(ev.To)
	if err != nil {
		return err
	}
	rec := audit.Record{Time: ev.At, Type: audit.DeliveryStart, Actor: SystemActor,
		Details: map[string]string{"mail": string(ev.Notice), "to": email, "attempt": fmt.Sprint(ev.Attempt)}}
	if r != nil {
		rec.RecipientID = r.ID
	}
	t.record(rec)
	return nil
}

func (t *transition) deliveryAttempted(ev DeliveryAttempted) error {
	r, email, err := t.addressee(ev.To)
	if err != nil {
		return err
	}
	rec := audit.Record{Time: ev.At, Type: audit.DeliveryAttempt, Actor: SystemActor,
		Details: map[string]string{"mail": string(ev.Notice), "to": email, "outcome": string(ev.Outcome), "answer": ev.Answer}}
	if r != nil {
		rec.RecipientID = r.ID
	}
	t.record(rec)
	switch {
	case r == nil:
		// A mail to the sender that failed is told to the sender once: the
		// notice may get through where the mail could not be made, and a
		// failed notice is recorded only, or notices would loop.
		if ev.Outcome == OutcomeFailed && ev.Notice != BounceNotice && !t.e.State.Final() {
			t.effect(Notify{Notice: BounceNotice, ToSender: true, Reason: ev.Answer})
		}
	case ev.Outcome == OutcomeDelivered && ev.Notice == Invitation && r.SentAt.IsZero():
		r.SentAt = ev.At.UTC()
		t.recordFor(ev.Meta, audit.InvitationSent, r, nil)
	case ev.Outcome == OutcomeDelivered && ev.Notice == CompletionMail:
		// A copy or archivist has the final documents once the server
		// took them, and so has another copy or archivist of the same
		// address, whose own mail was left out (onePerAddress); one
		// refused (OutcomeFailed) stays waiting, with its DeliveryFailure.
		for i := range t.e.Recipients {
			if other := &t.e.Recipients[i]; !other.Role.Acts() && strings.EqualFold(other.Email, r.Email) {
				other.State = Delivered
			}
		}
	case ev.Outcome == OutcomeFailed:
		r.DeliveryFailure = ev.Answer
		// A failed notice of a failure is recorded only, or notices would
		// loop.
		if ev.Notice != BounceNotice {
			t.bounceNotice(ev.Answer, r)
		}
	}
	return nil
}

// bounceNotice tells of a mail to r that could not be delivered, in any
// state (SPEC §5): the sender and the recipients who already acted, but r.
// Once completed, the sender may hand the final documents to r another way;
// after a decline, cancellation or expiry, r missed the news of the end.
func (t *transition) bounceNotice(reason string, r *Recipient) {
	others := slices.DeleteFunc(t.actedRecipients(), func(id string) bool { return id == r.ID })
	t.effect(Notify{Notice: BounceNotice, Recipients: others, ToSender: true, Reason: reason, About: r.ID})
}

// completing tells whether the envelope is being completed: in progress
// with every step done.
func (t *transition) completing() error {
	switch {
	case t.e.State.Final():
		return errorf(ErrEnded, "the envelope is %s", t.e.State)
	case t.e.CurrentStep < len(t.e.Steps):
		return errorf(ErrNotCompleting, "step %d of %d is not done", t.e.CurrentStep+1, len(t.e.Steps))
	}
	return nil
}

func (t *transition) sealed(ev Sealed) error {
	v := ev.Document
	if v.Index < 0 || v.Index >= len(t.e.Documents) {
		return fmt.Errorf("workflow: envelope %s has no document %d to seal", t.e.ID, v.Index)
	}
	d := &t.e.Documents[v.Index]
	if d.Sealed && d.Current == v.SHA256 {
		return nil // replay
	}
	if err := t.completing(); err != nil {
		return err
	}
	switch {
	case d.Sealed:
		return errorf(ErrAlreadySealed, "document %d (%s) of envelope %s is sealed already", v.Index+1, d.Name, t.e.ID)
	case v.Previous != d.Current:
		return errorf(ErrStaleDocument, "the seal of document %d was made on version %s, but the current version is %s", v.Index+1, v.Previous, d.Current)
	case v.SHA256 == "":
		return fmt.Errorf("workflow: Sealed needs the sealed version's SHA-256")
	}
	d.Current, d.Size, d.Sealed = v.SHA256, v.Size, true
	t.record(audit.Record{Time: ev.At, Type: audit.Sealed, Actor: SystemActor, Details: map[string]string{
		"document": fmt.Sprint(v.Index), "previous": v.Previous, "sha256": v.SHA256, "level": ev.Level, "serial": ev.Serial}})
	return nil
}

func (t *transition) completionDelayed(ev CompletionDelayed) error {
	if t.e.State.Final() || t.e.CurrentStep < len(t.e.Steps) || !t.e.DelayNoticeAt.IsZero() {
		return nil // completed since, or the sender was told already
	}
	reason := strings.TrimSpace(ev.Reason)
	t.e.DelayNoticeAt = ev.At.UTC()
	t.record(audit.Record{Time: ev.At, Type: audit.CompletionDelay, Actor: SystemActor, Details: map[string]string{"reason": reason}})
	t.effect(Notify{Notice: CompletionDelayedNotice, ToSender: true, Reason: reason})
	return nil
}

func (t *transition) completed(ev Completed) error {
	switch {
	case t.e.State == StateCompleted:
		return nil // replay
	case t.e.State.Final():
		return errorf(ErrEnded, "the envelope is %s and cannot complete", t.e.State)
	case t.e.CurrentStep < len(t.e.Steps):
		return errorf(ErrNotCompleting, "step %d of %d is not done", t.e.CurrentStep+1, len(t.e.Steps))
	case ev.Certificate == "":
		return fmt.Errorf("workflow: Completed needs the certificate's SHA-256")
	}
	t.applyVersions(ev.Documents)
	t.e.State, t.e.EndedAt, t.e.NextReminder, t.e.Certificate = StateCompleted, ev.At.UTC(), time.Time{}, ev.Certificate
	details := map[string]string{"certificate": ev.Certificate}
	var all []string
	for _, r := range t.e.Recipients {
		all = append(all, r.ID)
	}
	for i, d := range t.e.Documents {
		details[fmt.Sprintf("document_%d", i)] = d.Current
	}
	t.record(audit.Record{Time: ev.At, Type: audit.Completed, Actor: SystemActor, Details: details})
	ids, toSender := t.onePerAddress(all, true)
	t.effect(Notify{Notice: CompletionMail, Recipients: ids, ToSender: toSender})
	return nil
}
