// Package audit is the envelope's append-only, hash-chained audit trail.
//
// Each record carries the SHA-256 of the record before it (Prev) and its own
// hash (Hash) over a canonical encoding of every other field, so that a
// changed, removed, inserted or reordered record breaks the chain; Verify
// finds the first such break. The trail is embedded as JSON in the completion
// certificate and sent to archivists, so the encoding is part of the external
// contract: never change the meaning of a field, only add new ones.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Type names what happened. The values appear in the certificate and in the
// archivists' JSON, so they are stable identifiers, not display text.
type Type string

// The audit event types; each workflow event and each delivery attempt maps
// to one of these.
const (
	Submitted       Type = "submitted"          // the envelope was created from a mail or the API
	InvitationSent  Type = "invitation_sent"    // an invitation left the gateway for a recipient
	Viewed          Type = "viewed"             // a recipient opened the signing page
	CodeSent        Type = "code_sent"          // a one-time code was sent
	CodeFailed      Type = "code_failed"        // a wrong or expired one-time code was entered
	CodeVerified    Type = "code_verified"      // a one-time code was verified
	Signed          Type = "signed"             // a signer signed
	Approved        Type = "approved"           // an approver approved (visa)
	Declined        Type = "declined"           // a recipient declined, with a reason
	Delegated       Type = "delegated"          // a recipient handed their place to someone else
	Cancelled       Type = "cancelled"          // the sender cancelled the envelope
	Expired         Type = "expired"            // the deadline passed
	ReminderSent    Type = "reminder_sent"      // pending recipients were reminded
	Resent          Type = "resent"             // an operator had a lost mail sent again
	Bounced         Type = "bounced"            // a mail to a recipient could not be delivered
	Sealed          Type = "sealed"             // a document was sealed with the organisation's seal
	CompletionDelay Type = "completion_delayed" // completion kept failing; the sender was told
	Completed       Type = "completed"          // all steps done, documents sealed
	DeliveryStart   Type = "delivery_started"   // an attempt to deliver a mail or SMS begins
	DeliveryAttempt Type = "delivery_attempt"   // one SMTP attempt and the server's answer
)

// GenesisHash is the Prev of the first record of every trail.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Record is one event of the trail.
type Record struct {
	// Seq numbers the records of one envelope from 1, without gaps.
	Seq uint64 `json:"seq"`
	// Time is when the event happened, in UTC.
	Time time.Time `json:"time"`
	// Type is what happened.
	Type Type `json:"type"`
	// Actor is the email address of who caused the event: a recipient, the
	// sender, or "system" for the gateway itself (expiry, reminders).
	Actor string `json:"actor"`
	// RecipientID is the recipient the event concerns, if any.
	RecipientID string `json:"recipient_id,omitempty"`
	// IP is the client's address for events caused over HTTP.
	IP string `json:"ip,omitempty"`
	// UserAgent is the client's User-Agent for events caused over HTTP.
	UserAgent string `json:"user_agent,omitempty"`
	// Details holds the event's own facts (reason, certificate serial,
	// document hashes, SMTP answer…), keyed by stable names.
	Details map[string]string `json:"details,omitempty"`
	// Prev is the Hash of the record before, or GenesisHash for the first.
	Prev string `json:"prev"`
	// Hash is the hex SHA-256 of the record's canonical encoding (all fields
	// but Hash itself).
	Hash string `json:"hash"`
}

// Head is where a trail currently ends: enough to chain the next record
// without reading the trail. The envelope carries it, so a record appended
// under the envelope's optimistic version check always chains correctly.
type Head struct {
	// Seq is the Seq of the last record, 0 for an empty trail.
	Seq uint64 `json:"seq"`
	// Hash is the Hash of the last record, GenesisHash for an empty trail.
	Hash string `json:"hash"`
}

// Start is the head of an empty trail.
func Start() Head { return Head{Hash: GenesisHash} }

// Chain fills Seq, Prev and Hash of each record in order, continuing from
// head, and returns the new head. Times are normalised to UTC, and text to
// valid UTF-8 (see validUTF8).
func Chain(head Head, recs []Record) ([]Record, Head) {
	out := make([]Record, len(recs))
	for i, r := range recs {
		r.Seq = head.Seq + 1
		r.Prev = head.Hash
		r.Time = r.Time.UTC()
		r.validUTF8()
		r.Hash = r.computeHash()
		out[i] = r
		head = Head{Seq: r.Seq, Hash: r.Hash}
	}
	return out, head
}

// validUTF8 replaces the bytes of r's text that are not UTF-8 (a
// User-Agent or a form field in Latin-1) with U+FFFD. encoding/json writes
// such a byte as the escape \ufffd but the character U+FFFD as itself, so
// a record hashed with the byte would hash differently once stored and
// read back, and its trail would no longer verify.
func (r *Record) validUTF8() {
	valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	r.Actor, r.RecipientID, r.IP, r.UserAgent = valid(r.Actor), valid(r.RecipientID), valid(r.IP), valid(r.UserAgent)
	if len(r.Details) == 0 {
		return
	}
	details := make(map[string]string, len(r.Details))
	for k, v := range r.Details {
		details[valid(k)] = valid(v)
	}
	r.Details = details
}

// computeHash hashes the JSON encoding of the record with Hash left empty.
// encoding/json writes struct fields in declaration order and map keys
// sorted, so the encoding is canonical for a given record.
func (r Record) computeHash() string {
	r.Hash = ""
	b, err := json.Marshal(r)
	if err != nil {
		// A Record holds only strings, integers and a time: it always encodes.
		panic(fmt.Sprintf("audit: encoding record: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ChainError tells where and how a trail fails verification.
type ChainError struct {
	// Index is the position in the verified slice of the first bad record.
	Index int
	// Seq is that record's claimed sequence number.
	Seq uint64
	// Problem says what is wrong with it.
	Problem string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit trail broken at record %d (seq %d): %s", e.Index+1, e.Seq, e.Problem)
}

// Verify checks that recs form one unbroken chain from the genesis: numbered
// 1, 2, 3…, each linked to the one before, each hash matching its content.
// It returns a *ChainError naming the first bad record.
func Verify(recs []Record) error {
	head := Start()
	for i, r := range recs {
		switch {
		case r.Seq != head.Seq+1:
			return &ChainError{i, r.Seq, fmt.Sprintf("expected seq %d: a record was removed, inserted or reordered", head.Seq+1)}
		case r.Prev != head.Hash:
			return &ChainError{i, r.Seq, "prev does not match the hash of the record before: a record was removed, inserted or reordered"}
		case r.Hash != r.computeHash():
			return &ChainError{i, r.Seq, "hash does not match the content: the record was changed"}
		}
		head = Head{Seq: r.Seq, Hash: r.Hash}
	}
	return nil
}

// VerifyEnd checks, besides Verify, that the trail ends at head: the chain
// alone cannot show that its last records were cut off, the head recorded
// elsewhere (in the envelope, in the sealed certificate) can.
func VerifyEnd(recs []Record, head Head) error {
	if err := Verify(recs); err != nil {
		return err
	}
	last := Start()
	if n := len(recs); n > 0 {
		last = Head{Seq: recs[n-1].Seq, Hash: recs[n-1].Hash}
	}
	if last != head {
		return &ChainError{Index: len(recs), Seq: head.Seq,
			Problem: fmt.Sprintf("the trail ends at seq %d but the recorded head is seq %d: records were cut off or added", last.Seq, head.Seq)}
	}
	return nil
}

// JSON is the trail as the file that travels with the envelope: the
// attachment embedded in the certificate of completion and the archivists'
// audit-ENVELOPEID.json. It is a JSON array of the records in Record's own
// encoding (the one Hash covers), indented for a human reader, ending with
// a line break; an empty trail is an empty array, never null.
func JSON(recs []Record) []byte {
	if recs == nil {
		recs = []Record{}
	}
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		// A Record holds only strings, integers and a time: it always encodes.
		panic(fmt.Sprintf("audit: encoding the trail: %v", err))
	}
	return append(b, '\n')
}

// ThroughCompletion returns the records of a completed envelope's trail up
// to its Completed record, included, or false when the trail has none.
// That is the envelope's whole life as its final mails and its download
// page hand it over: the records after it only tell of the delivery of
// those very mails, and would make each copy (a resend, a download) a
// different file.
func ThroughCompletion(recs []Record) ([]Record, bool) {
	for i, r := range recs {
		if r.Type == Completed {
			return recs[:i+1], true
		}
	}
	return nil, false
}
