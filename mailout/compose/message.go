package compose

import (
	"io"
	"time"

	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/workflow"
)

// Kind is the kind of a mail; it names the mail's templates. Kinds that
// answer a workflow.Notice have the same string value.
type Kind string

// Mail kinds.
const (
	KindAcknowledgement   Kind = "acknowledgement"
	KindRefusal           Kind = "refusal"
	KindInvitation        Kind = "invitation"
	KindCode              Kind = "code"
	KindReminder          Kind = "reminder"
	KindDeclined          Kind = "declined"
	KindCancelled         Kind = "cancelled"
	KindExpired           Kind = "expired"
	KindDeliveryFailure   Kind = "delivery_failure"
	KindCompletion        Kind = "completion"
	KindDelegated         Kind = "delegated"
	KindCodeLocked        Kind = "code_locked"
	KindCompletionDelayed Kind = "completion_delayed"
	KindVerification      Kind = "verification"
)

// Kinds lists every kind, in the order a user meets them.
var Kinds = []Kind{
	KindAcknowledgement, KindRefusal, KindInvitation, KindCode, KindReminder,
	KindDelegated, KindCodeLocked, KindDeclined, KindCancelled, KindExpired, KindDeliveryFailure, KindCompletionDelayed, KindCompletion,
	KindVerification,
}

// Message is one mail to compose.
type Message struct {
	// ID is the Message-ID, without angle brackets, on the gateway's
	// domain. The outbox item decides it, so that a resend after a crash
	// is the same message and the receiver can drop the duplicate.
	ID string
	// Date is the Date field; with ID fixed, it belongs to the outbox item
	// too, so that a resend composes the same bytes.
	Date time.Time
	// Language is "fr" or "en"; empty means the envelope's language, then
	// the configured default.
	Language string
	// Envelope is the envelope the mail is about; nil only for a Refusal
	// or a Verification, which answer a mail that made no envelope.
	Envelope *workflow.Envelope
	// RecipientID is the addressee, one of Envelope.Recipients; empty means
	// the envelope's sender. Unused for a Refusal or a Verification, whose
	// data names its addressee.
	RecipientID string
	// Data is what the kind of mail needs; its type decides the kind.
	Data Data
}

// answer is the Data of a mail that answers a mail which made no envelope
// (a Refusal, a Verification): it names its addressee and the mail it
// answers, and has the null return path.
type answer interface {
	Data
	answers() (to workflow.Party, inReplyTo string, references []string)
}

func (d Refusal) answers() (workflow.Party, string, []string) {
	return d.To, d.InReplyTo, d.References
}

func (d Verification) answers() (workflow.Party, string, []string) {
	return d.To, d.InReplyTo, d.References
}

// Data is the kind-specific content of a Message: one of the types below.
type Data interface {
	// Kind is the kind of mail the data makes.
	Kind() Kind
	// check reports what is missing for the given message.
	check(m *Message, to addressee) error
}

// Acknowledgement tells the sender their submission became an envelope:
// its ID, steps, documents (all from the envelope) and what was ignored.
type Acknowledgement struct {
	// StatusURL is the sender's private status page, where they follow
	// progress, send a reminder or cancel; empty leaves the link out (the
	// mail then tells how to cancel by reply).
	StatusURL string
	// Ignored are the attachments that are not documents of the envelope.
	Ignored []IgnoredAttachment
}

// IgnoredAttachment names an attachment of the submission that is not a PDF.
type IgnoredAttachment struct {
	// Name is the attachment's file name, possibly empty.
	Name string
	// ContentType is its media type as the mail stated it.
	ContentType string
}

// Refusal answers a submission, or a reply command, the gateway could not
// accept.
type Refusal struct {
	// To is the submission's sender.
	To workflow.Party
	// InReplyTo is the submission's Message-ID, so the refusal threads
	// under it; empty when the submission had none.
	InReplyTo string
	// References are the IDs the submission answered, oldest first, which
	// the refusal's References name before InReplyTo.
	References []string
	// Subject is the submission's subject, quoted so the sender knows
	// which mail is refused.
	Subject string
	// Problems say exactly what was wrong, one sentence each, in the
	// message's language.
	Problems []string
	// Usage explains how to write the instruction block, or for a
	// Command how to reply with one, in the message's language; the caller
	// owns that text, since the parser owns the syntax.
	Usage string
	// Command tells that the refused mail was a reply command (REFUSER:,
	// ANNULER, DÉLÉGUER:), not a submission.
	Command bool
}

// Verification answers a mail sent to the verification address (SPEC §6)
// with a report on each of its PDFs, in the message's language.
type Verification struct {
	// To is the mail's sender.
	To workflow.Party
	// InReplyTo is the mail's Message-ID, so the reply threads under it;
	// empty when the mail had none.
	InReplyTo string
	// References are the IDs the mail answered, oldest first, which the
	// reply's References name before InReplyTo.
	References []string
	// Subject is the mail's subject, which the reply's repeats.
	Subject string
	// Address is the verification address the mail was sent to, which
	// the reply tells how to use.
	Address string
	// Files are the reports, in the order of the mail's PDFs.
	Files []verdict.File
	// Ignored are the mail's attachments that are not PDFs, not checked.
	Ignored []IgnoredAttachment
	// Omitted counts the PDFs past the gateway's cap, not reported.
	Omitted int
	// Problem says why no file was checked; required when Files is empty.
	Problem string
}

// Invitation asks a recipient of the current step to sign or approve.
type Invitation struct {
	// Link is the personal signing link, PUBLIC_URL/s/TOKEN.
	Link string
}

// Reminder reminds a pending recipient; it carries a newly minted link.
type Reminder struct {
	// Link is the personal signing link, PUBLIC_URL/s/TOKEN.
	Link string
}

// OneTimeCode carries the code a recipient asked for on the signing page.
type OneTimeCode struct {
	// Code is the code itself: it is never stored, so it only exists in
	// this mail.
	Code string
	// Valid is how long the code is accepted (workflow.CodeTTL).
	Valid time.Duration
}

// Declined tells that a recipient declined the envelope, which ended it.
type Declined struct {
	// By is the ID of the recipient who declined.
	By string
	// Reason is the decline reason; empty means that recorded for By.
	Reason string
}

// Delegated tells the sender that a recipient handed their place to someone
// else (the recipient's DelegatedTo), who was invited instead.
type Delegated struct {
	// By is the ID of the recipient who delegated.
	By string
	// Reason is the delegator's reason; empty means that recorded for By.
	Reason string
}

// CodeLocked tells the sender that a recipient entered a wrong one-time
// code workflow.MaxCodeFailures times, which voided the code.
type CodeLocked struct {
	// By is the ID of the recipient whose code was voided.
	By string
}

// Cancelled tells that the sender cancelled the envelope.
type Cancelled struct {
	// Reason is the sender's reason, possibly empty.
	Reason string
}

// Expired tells that the deadline passed before every step was done.
type Expired struct{}

// DeliveryFailure tells that a mail of the envelope could not be delivered:
// to the sender, and, while the envelope is in progress, to the recipients
// who already acted.
type DeliveryFailure struct {
	// Address is the address that failed.
	Address string
	// Answer is the mail server's answer (the SMTP reply or the bounce's
	// diagnostic).
	Answer string
}

// CompletionDelayed tells the sender that every step is done (since the
// envelope's StepsDoneAt) but completing it, the seal and the certificate,
// keeps failing; the gateway keeps trying.
type CompletionDelayed struct {
	// Reason is the last error.
	Reason string
}

// Completion delivers the final documents and the completion certificate.
type Completion struct {
	// Files are the signed PDFs then the certificate. They are attached
	// when their total size is within the configured limit; otherwise the
	// mail lists them with DownloadURL.
	Files []Attachment
	// DownloadURL is where the files can be downloaded (PUBLIC_URL/d/TOKEN)
	// until DownloadUntil. Every completion mail shows it: beside the
	// attached files, or alone when they are over the limit.
	DownloadURL string
	// DownloadUntil is when the download link stops working.
	DownloadUntil time.Time
	// Audit is the machine-readable audit trail, attached for archivists
	// (as audit-ENVELOPEID.json) and ignored for everyone else, so one
	// Completion serves every party.
	Audit *Attachment
}

// Attachment is a file to attach. It is read when the mail is written, twice
// with DKIM.
type Attachment struct {
	// Name is the file name shown to the reader.
	Name string
	// ContentType is the media type, e.g. "application/pdf".
	ContentType string
	// Size is the byte size, shown in the body and counted against the
	// attachment limit.
	Size int64
	// SHA256 is the hex SHA-256 of the content, shown in the body and
	// checked while the content is written.
	SHA256 string
	// Open returns the content from its start; Compose closes it.
	Open func() (io.ReadCloser, error)
}

// Kind implements Data.
func (Acknowledgement) Kind() Kind { return KindAcknowledgement }

// Kind implements Data.
func (Refusal) Kind() Kind { return KindRefusal }

// Kind implements Data.
func (Verification) Kind() Kind { return KindVerification }

// Kind implements Data.
func (Invitation) Kind() Kind { return KindInvitation }

// Kind implements Data.
func (Reminder) Kind() Kind { return KindReminder }

// Kind implements Data.
func (OneTimeCode) Kind() Kind { return KindCode }

// Kind implements Data.
func (Declined) Kind() Kind { return KindDeclined }

// Kind implements Data.
func (Delegated) Kind() Kind { return KindDelegated }

// Kind implements Data.
func (CodeLocked) Kind() Kind { return KindCodeLocked }

// Kind implements Data.
func (Cancelled) Kind() Kind { return KindCancelled }

// Kind implements Data.
func (Expired) Kind() Kind { return KindExpired }

// Kind implements Data.
func (DeliveryFailure) Kind() Kind { return KindDeliveryFailure }

// Kind implements Data.
func (CompletionDelayed) Kind() Kind { return KindCompletionDelayed }

// Kind implements Data.
func (Completion) Kind() Kind { return KindCompletion }
