package workflow

import "time"

// Event is something that happened to an envelope, fed to Apply. The
// concrete types below are the only events.
type Event interface {
	meta() Meta
}

// Meta is what every event carries.
type Meta struct {
	// At is when the event happened; the machine never reads a clock.
	At time.Time
	// Client is the HTTP client that caused the event, if any.
	Client Client
}

func (m Meta) meta() Meta { return m }

// Viewed: RecipientID opened the signing page.
type Viewed struct {
	Meta
	RecipientID string
}

// CodeSent: a one-time code was generated for RecipientID; MAC is its keyed
// hash. The code itself never enters the machine: the edge that generated
// it puts it in the mail or SMS the SendCode effect asks for.
type CodeSent struct {
	Meta
	RecipientID string
	MAC         []byte
	// Channel is "email" or "sms".
	Channel string
}

// CodeFailed: RecipientID entered a code that Apply refused for CodeVerified.
type CodeFailed struct {
	Meta
	RecipientID string
}

// CodeVerified: RecipientID entered a code whose keyed hash is MAC. Apply
// refuses it with ErrWrongCode or ErrCodeExpired when it does not match the
// outstanding code; the edge then records CodeFailed.
type CodeVerified struct {
	Meta
	RecipientID string
	MAC         []byte
}

// Signed: RecipientID signed; Signature names the new document versions.
type Signed struct {
	Meta
	RecipientID string
	Signature   Signature
}

// Approved: RecipientID approved (visa).
type Approved struct {
	Meta
	RecipientID string
}

// Declined: RecipientID declined, for Reason. ByMail is set when the
// decline came as a reply to the invitation from the invited address, which
// authenticates it instead of a one-time code.
type Declined struct {
	Meta
	RecipientID string
	Reason      string
	ByMail      bool
}

// Delegated: RecipientID handed their place to To, for Reason. The
// delegate becomes a recipient of the same step and role and is invited;
// the sender is told. ByMail is set when it came as a reply to the
// invitation from the invited address (DÉLÉGUER: / DELEGATE:), which
// authenticates it instead of a one-time code, and needs no reason.
type Delegated struct {
	Meta
	RecipientID string
	To          Party
	Reason      string
	ByMail      bool
}

// Cancelled: the sender (By) cancelled the envelope.
type Cancelled struct {
	Meta
	By     string
	Reason string
}

// Resend: an operator (By) asked for the mail that Email needs now to be
// sent again, because it was lost or deleted: to a recipient whose turn it
// is, the invitation (with a new link; the old ones keep working); to the
// sender of an envelope in progress, the acknowledgement (with a new status
// link); once completed, the completion mail (with a new download link); once
// declined, cancelled or expired, the notice of that end, to those it was
// sent to. The machine refuses it when Email has no such mail to get.
type Resend struct {
	Meta
	By    string
	Email string
}

// Expired: the expiry timer fired.
type Expired struct {
	Meta
}

// ReminderDue: the reminder timer for Due fired, or, with a zero Due, the
// sender asked for a reminder now.
type ReminderDue struct {
	Meta
	Due time.Time
}

// Bounced: a mail to Email could not be delivered, for Reason (a DSN or a
// permanent SMTP answer).
type Bounced struct {
	Meta
	Email  string
	Reason string
}

// Delivery outcomes of one SMTP attempt.
const (
	// OutcomeDelivered: the server accepted the mail (2xx).
	OutcomeDelivered Outcome = "delivered"
	// OutcomeDeferred: the server answered 4xx or could not be reached; the
	// sender retries.
	OutcomeDeferred Outcome = "deferred"
	// OutcomeFailed: the server answered 5xx, or retries ran out.
	OutcomeFailed Outcome = "failed"
)

// Outcome is how one delivery attempt ended.
type Outcome string

// DeliveryStarted: the sender is about to make attempt number Attempt (1
// for the first) to deliver a mail or message of kind Notice to To (a
// recipient ID, or "" for the envelope's sender). It is recorded before
// the attempt, so that an attempt cut short by a crash leaves a trace and
// a resend shows as the next attempt; it changes nothing but the audit
// trail.
type DeliveryStarted struct {
	Meta
	Notice  Notice
	To      string
	Attempt int
}

// DeliveryAttempted: the sender tried to deliver a mail of kind Notice to
// To (a recipient ID, or "" for the envelope's sender); Answer is the
// server's reply or the connection error, or why the mail could not be
// made. Every attempt is audited; a delivered invitation records the
// invitation as sent; a failure tells the envelope's sender, unless the
// failed mail was itself a failure notice to the sender (which would
// loop).
type DeliveryAttempted struct {
	Meta
	Notice  Notice
	To      string
	Outcome Outcome
	Answer  string
}

// Sealed: during completion the edge applied the organisation's seal to
// the document at Document.Index, made from its current version
// (Document.Previous). A document is sealed once: the machine refuses a
// second seal, so a completion resumed after a crash seals only what is
// left. Level is the PAdES level reached ("B-B", "B-LTA"), Serial the seal
// certificate's serial number (hex).
type Sealed struct {
	Meta
	Document DocumentVersion
	Level    string
	Serial   string
}

// CompletionDelayed: the completion has kept failing since the last step
// was done (StepsDoneAt), for Reason (the last error). The sender is told
// once.
type CompletionDelayed struct {
	Meta
	Reason string
}

// Completed: the edge sealed the documents (new versions in Documents, or
// none when each was recorded by a Sealed event) and stored the completion
// certificate whose SHA-256 is Certificate.
type Completed struct {
	Meta
	Documents   []DocumentVersion
	Certificate string
}

// Effect is what the edges must do after a transition is stored. The
// concrete types below are the only effects.
type Effect interface {
	isEffect()
}

// Notice is the kind of mail a Notify effect asks for.
type Notice string

// Mail kinds sent on behalf of an envelope.
const (
	Acknowledgement Notice = "acknowledgement"
	Invitation      Notice = "invitation"
	Reminder        Notice = "reminder"
	DeclineNotice   Notice = "declined"
	CancelNotice    Notice = "cancelled"
	ExpiryNotice    Notice = "expired"
	BounceNotice    Notice = "delivery_failure"
	CompletionMail  Notice = "completion"
	// DelegationNotice tells the sender that About delegated (to the
	// recipient About.DelegatedTo names).
	DelegationNotice Notice = "delegated"
	// CodeLockedNotice tells the sender that About entered a wrong code
	// MaxCodeFailures times, which voided it.
	CodeLockedNotice Notice = "code_locked"
	// CompletionDelayedNotice tells the sender that the completion has
	// kept failing for CompletionDelayAfter; Reason is the last error.
	CompletionDelayedNotice Notice = "completion_delayed"
)

// Notify asks for a mail of kind Notice to each of Recipients (IDs) and,
// when ToSender is set, to the sender. Invitations and reminders each need a
// freshly minted link token (see Envelope.AddToken).
type Notify struct {
	Notice     Notice
	Recipients []string
	ToSender   bool
	// Reason is the decline, cancellation or failure reason to quote.
	Reason string
	// About is the recipient ID the notice is about (who declined, whose
	// mail bounced), "" when none.
	About string
}

// SendCode asks for the outstanding one-time code of RecipientID to be sent
// over Channel ("email" or "sms").
type SendCode struct {
	RecipientID string
	Channel     string
}

// TimerKind names an envelope timer.
type TimerKind string

// Envelope timers.
const (
	ExpiryTimer   TimerKind = "expiry"
	ReminderTimer TimerKind = "reminder"
)

// Schedule asks for Timer to fire at At (feeding Expired or ReminderDue).
// A timer that fires late, twice, or after the envelope ended is harmless:
// Apply answers it without effect.
type Schedule struct {
	Timer TimerKind
	At    time.Time
}

// Complete asks the edge to seal the documents, build the completion
// certificate and then apply Completed.
type Complete struct{}

func (Notify) isEffect()   {}
func (SendCode) isEffect() {}
func (Schedule) isEffect() {}
func (Complete) isEffect() {}
