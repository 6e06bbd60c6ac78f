// Package workflow is the envelope model and its state machine.
//
// An envelope is one submission: documents to sign, ordered steps of
// recipients who approve ("visa") or sign, and observers (copies, archivists)
// who receive the result. The machine is pure: Create and Apply take the
// current envelope and an event and return the next envelope, the audit
// records to append and the effects the edges must carry out (mails to queue,
// timers to set, completion to run). Nothing here reads a clock, a disk or
// the network, so every transition is a table-driven test and a replay of the
// same event is answered the same way.
package workflow

import (
	"bytes"
	"time"

	"github.com/parapheur/parapheur/workflow/audit"
)

// State is where an envelope is in its life.
type State string

// Envelope states. Only StateInProgress accepts actions; the others are final.
const (
	StateInProgress State = "in_progress"
	StateCompleted  State = "completed"
	StateDeclined   State = "declined"
	StateCancelled  State = "cancelled"
	StateExpired    State = "expired"
)

// Final reports whether no event but a view can change the envelope any more.
func (s State) Final() bool { return s != StateInProgress }

// Role is what a recipient is asked to do.
type Role string

// Recipient roles. Signers and approvers act in steps; copies and archivists
// only receive the final documents (archivists also get the audit trail).
const (
	Signer    Role = "signer"
	Approver  Role = "approver"
	Copy      Role = "cc"
	Archivist Role = "archivist"
)

// Acts reports whether the role takes part in a step.
func (r Role) Acts() bool { return r == Signer || r == Approver }

// RecipientState is where a recipient is.
type RecipientState string

// Recipient states.
const (
	// Waiting: the recipient's step has not started yet (or, for copies and
	// archivists, the envelope has not completed).
	Waiting RecipientState = "waiting"
	// Pending: the recipient's step is current and they have not acted.
	Pending RecipientState = "pending"
	// Done states of acting recipients.
	HasSigned   RecipientState = "signed"
	HasApproved RecipientState = "approved"
	HasDeclined RecipientState = "declined"
	// HasDelegated: the recipient handed their place to someone else
	// (DelegatedTo), who acts instead.
	HasDelegated RecipientState = "delegated"
	// Delivered: the mail server accepted the final mail to a copy or
	// archivist.
	Delivered RecipientState = "delivered"
)

// Party is a person named in an envelope.
type Party struct {
	// Name is the display name, possibly empty.
	Name string `json:"name,omitempty"`
	// Email is the address in lower-case domain form, e.g. "Marie@partner.example".
	Email string `json:"email"`
	// Phone is an E.164 mobile number (+33612345678); when set, one-time
	// codes go by SMS instead of mail.
	Phone string `json:"phone,omitempty"`
}

// Recipient is a party with a role in the envelope and their progress.
type Recipient struct {
	Party
	// ID identifies the recipient within the envelope ("r1", "r2"…).
	ID string `json:"id"`
	// Role is what the recipient is asked to do.
	Role Role `json:"role"`
	// Step is the index in Envelope.Steps of the recipient's step, or -1
	// for copies and archivists.
	Step int `json:"step"`
	// State is the recipient's progress.
	State RecipientState `json:"state"`
	// TokenHashes are the SHA-256 of the recipient's signing-link tokens;
	// tokens themselves are never stored, so each mail that carries a link
	// (invitation, reminder) mints a new token, and every one stays valid
	// until the envelope ends. Empty for copies and archivists.
	TokenHashes [][]byte `json:"token_hashes,omitempty"`
	// InvitedAt is when the invitation was queued (the step started).
	InvitedAt time.Time `json:"invited_at,omitzero"`
	// SentAt is when the invitation was accepted by the mail server.
	SentAt time.Time `json:"sent_at,omitzero"`
	// ViewedAt is the first time the recipient opened the signing page.
	ViewedAt time.Time `json:"viewed_at,omitzero"`
	// LastViewAt is the last view recorded in the audit trail.
	LastViewAt time.Time `json:"last_view_at,omitzero"`
	// VerifiedAt is the last time a one-time code was verified; it allows
	// one action within ActionWindow.
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	// ActedAt is when the recipient signed, approved or declined.
	ActedAt time.Time `json:"acted_at,omitzero"`
	// Code is the outstanding one-time code, if any.
	Code *Code `json:"code,omitempty"`
	// CodesSent are the times codes were sent within the last hour, for
	// the rate limit.
	CodesSent []time.Time `json:"codes_sent,omitempty"`
	// Reason is the decline reason.
	Reason string `json:"reason,omitempty"`
	// Signature describes the recipient's signature once signed.
	Signature *Signature `json:"signature,omitempty"`
	// LastSeen is the client of the recipient's last action, for the
	// completion certificate.
	LastSeen Client `json:"last_seen,omitzero"`
	// DeliveryFailure is the last permanent delivery failure of a mail to
	// this recipient (a bounce or a 5xx answer).
	DeliveryFailure string `json:"delivery_failure,omitempty"`
	// DelegatedTo is the ID of the recipient this one delegated to.
	DelegatedTo string `json:"delegated_to,omitempty"`
	// DelegatedFrom is the ID of the recipient who delegated to this one.
	DelegatedFrom string `json:"delegated_from,omitempty"`
}

// Acted reports whether the recipient has signed, approved, declined or
// delegated: in each case they have nothing left to do.
func (r *Recipient) Acted() bool {
	return r.State == HasSigned || r.State == HasApproved || r.State == HasDeclined || r.State == HasDelegated
}

// NextCodeAt returns when the recipient may next be sent a code, at most
// MaxCodesPerHour in any hour: now itself when one may be sent now.
func (r *Recipient) NextCodeAt(now time.Time) time.Time {
	var recent []time.Time
	for _, sent := range r.CodesSent {
		if now.Sub(sent) < time.Hour {
			recent = append(recent, sent)
		}
	}
	if len(recent) < MaxCodesPerHour {
		return now
	}
	return recent[len(recent)-MaxCodesPerHour].Add(time.Hour)
}

// Code is a one-time code waiting to be entered. Only a keyed hash (MAC) of
// the code is kept, so a copy of the store does not reveal valid codes.
type Code struct {
	// MAC is the keyed hash of the code (HMAC-SHA-256 with the gateway's key).
	MAC []byte `json:"mac"`
	// ExpiresAt is when the code stops being accepted.
	ExpiresAt time.Time `json:"expires_at"`
	// Failures counts wrong entries; at MaxCodeFailures the code is void.
	Failures int `json:"failures"`
	// Channel is how the code was sent: "email" or "sms".
	Channel string `json:"channel"`
}

// Signature is what the signing edge reports about a signature it applied.
type Signature struct {
	// CertSerial is the serial number (hex) of the one-time certificate.
	CertSerial string `json:"cert_serial"`
	// Documents are the document versions after the signature.
	Documents []DocumentVersion `json:"documents"`
}

// Client is who was on the other end of an HTTP request.
type Client struct {
	// IP is the client's address.
	IP string `json:"ip,omitempty"`
	// UserAgent is the client's User-Agent header.
	UserAgent string `json:"user_agent,omitempty"`
}

// Document is one PDF of the envelope.
type Document struct {
	// Name is the attachment's file name.
	Name string `json:"name"`
	// Pages is the page count.
	Pages int `json:"pages"`
	// Original is the SHA-256 (hex) of the submitted file, the blob key.
	Original string `json:"original"`
	// Current is the SHA-256 (hex) of the latest version (after the latest
	// signature, or the seal once completed).
	Current string `json:"current"`
	// Size is the byte size of the current version.
	Size int64 `json:"size"`
	// Sealed is set once the organisation's seal was applied: Current is
	// then the final version.
	Sealed bool `json:"sealed,omitempty"`
}

// Attachment names a file of the submission mail.
type Attachment struct {
	// Name is the file name, possibly empty.
	Name string `json:"name"`
	// ContentType is the media type the mail gave it.
	ContentType string `json:"content_type"`
}

// DocumentVersion names a new version of the document at Index.
type DocumentVersion struct {
	// Index is the document's position in Envelope.Documents.
	Index int `json:"index"`
	// Previous is the SHA-256 of the version the new one was made from. A
	// signature must be made on the current version: one made on an older
	// version would drop the signatures added since.
	Previous string `json:"previous,omitempty"`
	// SHA256 is the hex SHA-256 of the new version, its blob key.
	SHA256 string `json:"sha256"`
	// Size is its byte size.
	Size int64 `json:"size"`
}

// Step is a set of recipients who all act, in any order, before the next
// step starts. All recipients of a step have the same role.
type Step struct {
	// Role is the step's role: Signer or Approver.
	Role Role `json:"role"`
	// Recipients are the IDs of the step's recipients.
	Recipients []string `json:"recipients"`
}

// Envelope is a submission and its progress.
type Envelope struct {
	// ID identifies the envelope in links, mails and the certificate.
	ID string `json:"id"`
	// Version is the store's optimistic-concurrency counter: the version
	// read, checked on write.
	Version uint64 `json:"version"`
	// Title is the subject of the submission without reply/forward prefixes.
	Title string `json:"title"`
	// Sender is who submitted the envelope.
	Sender Party `json:"sender"`
	// SenderAuth says how the submission was authenticated (e.g.
	// "dmarc=pass header.from=org.example (mx.org.example)").
	SenderAuth string `json:"sender_auth,omitempty"`
	// MessageID is the Message-ID of the submission mail, for threading.
	MessageID string `json:"message_id,omitempty"`
	// References are the message IDs the submission mail answered, oldest
	// first, which the mails answering it name before its own.
	References []string `json:"references,omitempty"`
	// Message is the sender's message to the recipients.
	Message string `json:"message,omitempty"`
	// Language is "fr" or "en".
	Language string `json:"language"`
	// LanguageGiven is set when the submission chose Language; otherwise
	// it is the configured default, and pages follow the reader's browser.
	LanguageGiven bool `json:"language_given,omitempty"`
	// NoDelegation forbids recipients to hand their place to someone else
	// (envelopes.allow_delegation = false when the envelope was made).
	NoDelegation bool `json:"no_delegation,omitempty"`
	// SenderTokenHashes are the SHA-256 of the sender's status-page tokens
	// (PUBLIC_URL/e/TOKEN), minted like the recipients' link tokens by the
	// mails that carry them.
	SenderTokenHashes [][]byte `json:"sender_token_hashes,omitempty"`
	// State is where the envelope is.
	State State `json:"state"`
	// Reason is why the envelope ended when it was declined, cancelled or expired.
	Reason string `json:"reason,omitempty"`
	// CreatedAt is when the envelope was created.
	CreatedAt time.Time `json:"created_at"`
	// Deadline is when the envelope expires.
	Deadline time.Time `json:"deadline"`
	// ReminderEvery is the interval between reminders, 0 for none.
	ReminderEvery time.Duration `json:"reminder_every,omitempty"`
	// NextReminder is when pending recipients are next reminded.
	NextReminder time.Time `json:"next_reminder,omitzero"`
	// LastReminderAt is when pending recipients were last reminded, by the
	// schedule or by the sender; zero when never.
	LastReminderAt time.Time `json:"last_reminder_at,omitzero"`
	// EndedAt is when the envelope reached a final state.
	EndedAt time.Time `json:"ended_at,omitzero"`
	// StepsDoneAt is when the last step was done and completion began.
	StepsDoneAt time.Time `json:"steps_done_at,omitzero"`
	// DelayNoticeAt is when the sender was told that completion keeps
	// failing (CompletionDelayed), zero if never.
	DelayNoticeAt time.Time `json:"delay_notice_at,omitzero"`
	// DownloadTokens are the tokens of the download links of the final
	// mails (PUBLIC_URL/d/TOKEN), one per party, each expiring.
	DownloadTokens []DownloadToken `json:"download_tokens,omitempty"`
	// Documents are the PDFs, in submission order.
	Documents []Document `json:"documents"`
	// Ignored are the submission's attachments that are not documents,
	// listed in the acknowledgement so the sender knows they were left out.
	Ignored []Attachment `json:"ignored,omitempty"`
	// Steps are run in order; CurrentStep is the one running. When
	// CurrentStep == len(Steps) every step is done and completion is
	// under way (or done).
	Steps []Step `json:"steps"`
	// CurrentStep is the index of the running step.
	CurrentStep int `json:"current_step"`
	// Recipients are every recipient, acting or not, in the order named.
	Recipients []Recipient `json:"recipients"`
	// Certificate is the SHA-256 (hex) of the completion certificate PDF.
	Certificate string `json:"certificate,omitempty"`
	// Audit is where the audit trail ends.
	Audit audit.Head `json:"audit"`
}

// Recipient returns the recipient with the given ID, or nil.
func (e *Envelope) Recipient(id string) *Recipient {
	for i := range e.Recipients {
		if e.Recipients[i].ID == id {
			return &e.Recipients[i]
		}
	}
	return nil
}

// Clone returns a deep copy, so a transition never changes its input.
func (e *Envelope) Clone() *Envelope {
	c := *e
	c.Documents = append([]Document(nil), e.Documents...)
	c.Ignored = append([]Attachment(nil), e.Ignored...)
	c.SenderTokenHashes = append([][]byte(nil), e.SenderTokenHashes...)
	c.DownloadTokens = append([]DownloadToken(nil), e.DownloadTokens...)
	c.Steps = make([]Step, len(e.Steps))
	for i, s := range e.Steps {
		c.Steps[i] = Step{Role: s.Role, Recipients: append([]string(nil), s.Recipients...)}
	}
	c.Recipients = make([]Recipient, len(e.Recipients))
	for i, r := range e.Recipients {
		r.TokenHashes = append([][]byte(nil), r.TokenHashes...)
		r.CodesSent = append([]time.Time(nil), r.CodesSent...)
		if r.Code != nil {
			code := *r.Code
			code.MAC = append([]byte(nil), code.MAC...)
			r.Code = &code
		}
		if r.Signature != nil {
			sig := *r.Signature
			sig.Documents = append([]DocumentVersion(nil), sig.Documents...)
			r.Signature = &sig
		}
		c.Recipients[i] = r
	}
	return &c
}

// AddToken records the hash of a newly minted signing-link token for the
// recipient. The edge that composes a mail carrying a link calls it before
// writing the envelope, in the same store write as the mail.
func (e *Envelope) AddToken(recipientID string, tokenHash []byte) error {
	r := e.Recipient(recipientID)
	if r == nil {
		return errorf(ErrUnknownRecipient, "envelope %s has no recipient %q", e.ID, recipientID)
	}
	if !r.Role.Acts() {
		return errorf(ErrWrongRole, "recipient %s is a %s and gets no signing link", r.Email, r.Role)
	}
	r.TokenHashes = append(r.TokenHashes, append([]byte(nil), tokenHash...))
	return nil
}

// SenderID stands for the envelope's sender where a recipient ID is
// expected: the holder of a status-page token (store.ByToken), the
// addressee of a mail to the sender.
const SenderID = "sender"

// AddSenderToken records the hash of a newly minted status-page token for
// the sender, like AddToken for a recipient.
func (e *Envelope) AddSenderToken(tokenHash []byte) {
	e.SenderTokenHashes = append(e.SenderTokenHashes, append([]byte(nil), tokenHash...))
}

// DownloadToken is a download link of a final mail: who it was sent to
// and until when it works. Only the token's SHA-256 is kept.
type DownloadToken struct {
	// Hash is the SHA-256 of the token.
	Hash []byte `json:"hash"`
	// For is the recipient ID the link was mailed to, or SenderID.
	For string `json:"for"`
	// Expires is when the link stops working.
	Expires time.Time `json:"expires"`
}

// DownloadID stands for the holder of a download-link token where a
// recipient ID is expected (store.ByToken); DownloadToken tells whose it is.
const DownloadID = "download"

// AddDownloadToken records the hash of a newly minted download-link token
// of the final mail to party (a recipient ID or SenderID).
func (e *Envelope) AddDownloadToken(party string, tokenHash []byte, expires time.Time) error {
	if party != SenderID && e.Recipient(party) == nil {
		return errorf(ErrUnknownRecipient, "envelope %s has no recipient %q", e.ID, party)
	}
	e.DownloadTokens = append(e.DownloadTokens, DownloadToken{Hash: append([]byte(nil), tokenHash...), For: party, Expires: expires.UTC()})
	return nil
}

// DownloadToken returns the download link whose token hash is tokenHash,
// or nil.
func (e *Envelope) DownloadToken(tokenHash []byte) *DownloadToken {
	for i := range e.DownloadTokens {
		if bytes.Equal(e.DownloadTokens[i].Hash, tokenHash) {
			return &e.DownloadTokens[i]
		}
	}
	return nil
}
