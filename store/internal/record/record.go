// Package record is the encoding of the records every backend keeps
// (envelopes, audit records, token pointers, the List order), shared so that
// the backends read and write the same bytes and report a record they cannot
// decode the same way: a *store.CorruptError naming it.
package record

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

// EncodeEnvelope returns env's stored form at the given version, leaving env
// untouched: the caller sets env.Version only once the write succeeded.
func EncodeEnvelope(env *workflow.Envelope, version uint64) ([]byte, error) {
	c := *env
	c.Version = version
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encoding envelope %s: %w", env.ID, err)
	}
	return b, nil
}

// DecodeEnvelope decodes the stored envelope id.
func DecodeEnvelope(id string, data []byte) (*workflow.Envelope, error) {
	var env workflow.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, &store.CorruptError{Key: "envelope " + id, Err: err}
	}
	if env.ID != id {
		return nil, &store.CorruptError{Key: "envelope " + id, Err: fmt.Errorf("record holds envelope %q", env.ID)}
	}
	return &env, nil
}

// Stamp is what a write checks of the stored envelope it replaces: its
// version, where its audit trail ends, and when it was created (its List
// position).
type Stamp struct {
	ID        string     `json:"id"`
	Version   uint64     `json:"version"`
	CreatedAt time.Time  `json:"created_at"`
	Audit     audit.Head `json:"audit"`
}

// DecodeStamp decodes the Stamp of the stored envelope id. It reads the
// record as DecodeEnvelope does, without building the envelope: a write
// holds the store's write lock meanwhile (bbolt's), so it does as little
// as it can there.
func DecodeStamp(id string, data []byte) (Stamp, error) {
	var st Stamp
	if err := json.Unmarshal(data, &st); err != nil {
		return st, &store.CorruptError{Key: "envelope " + id, Err: err}
	}
	if st.ID != id {
		return st, &store.CorruptError{Key: "envelope " + id, Err: fmt.Errorf("record holds envelope %q", st.ID)}
	}
	return st, nil
}

// EncodeAudit returns a record's stored form.
func EncodeAudit(r audit.Record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding audit record %d: %w", r.Seq, err)
	}
	return b, nil
}

// DecodeAudit decodes the n-th (from 1) stored audit record of envelope id.
func DecodeAudit(id string, n int, data []byte) (audit.Record, error) {
	var r audit.Record
	if err := json.Unmarshal(data, &r); err != nil {
		return audit.Record{}, &store.CorruptError{Key: fmt.Sprintf("audit record %d of envelope %s", n, id), Err: err}
	}
	return r, nil
}

// TokenTarget is what a token index entry points at.
type TokenTarget struct {
	// Envelope is the envelope ID.
	Envelope string `json:"e"`
	// Recipient is the recipient ID within it.
	Recipient string `json:"r"`
}

// EncodeToken returns the stored form of a token index entry.
func EncodeToken(envelopeID, recipientID string) []byte {
	b, _ := json.Marshal(TokenTarget{envelopeID, recipientID}) // two strings always encode
	return b
}

// DecodeToken decodes the token index entry of tokenHash.
func DecodeToken(tokenHash, data []byte) (TokenTarget, error) {
	var t TokenTarget
	if err := json.Unmarshal(data, &t); err != nil {
		return t, &store.CorruptError{Key: "token index entry " + hex.EncodeToString(tokenHash), Err: err}
	}
	return t, nil
}

// HoldsToken reports whether the recipient of env holds the token hash. A
// token index entry is written before its envelope and may point at a write
// that never happened: readers confirm it here.
func HoldsToken(env *workflow.Envelope, recipientID string, tokenHash []byte) bool {
	if recipientID == workflow.DownloadID {
		return env.DownloadToken(tokenHash) != nil
	}
	hashes := env.SenderTokenHashes
	if recipientID != workflow.SenderID {
		r := env.Recipient(recipientID)
		if r == nil {
			return false
		}
		hashes = r.TokenHashes
	}
	for _, h := range hashes {
		if bytes.Equal(h, tokenHash) {
			return true
		}
	}
	return false
}

// Tokens calls f with every token hash of env and its recipient
// (workflow.SenderID for the sender's status-page tokens,
// workflow.DownloadID for the download links of the final mails).
func Tokens(env *workflow.Envelope, f func(hash []byte, recipientID string)) {
	for _, h := range env.SenderTokenHashes {
		f(h, workflow.SenderID)
	}
	for _, d := range env.DownloadTokens {
		f(d.Hash, workflow.DownloadID)
	}
	for _, r := range env.Recipients {
		for _, h := range r.TokenHashes {
			f(h, r.ID)
		}
	}
}

// listKeyHexLen is the width of the time part of a list key.
const listKeyHexLen = 16

// ListKey is the envelope's position in List: keys sort, as bytes, newest
// CreatedAt first, then by ID. It is also the Page.Next that resumes after
// the envelope, the same on every backend.
func ListKey(createdAt time.Time, id string) string {
	// Flipping the sign bit orders negative times before positive ones as
	// unsigned numbers; inverting every bit puts the newest first.
	u := ^(uint64(createdAt.UnixMicro()) ^ 1<<63)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], u)
	return hex.EncodeToString(b[:]) + "|" + id
}

// ListKeyID returns the envelope ID of a ListKey.
func ListKeyID(k string) string {
	if len(k) <= listKeyHexLen {
		return ""
	}
	return k[listKeyHexLen+1:]
}

// CheckAfter checks a ListQuery.After: "" or a Page.Next.
func CheckAfter(after string) error {
	if after == "" {
		return nil
	}
	if len(after) < listKeyHexLen+2 || after[listKeyHexLen] != '|' || strings.ToLower(after[:listKeyHexLen]) != after[:listKeyHexLen] {
		return fmt.Errorf("%w: list cursor %.80q is not a Page.Next", store.ErrInvalid, after)
	}
	if _, err := hex.DecodeString(after[:listKeyHexLen]); err != nil {
		return fmt.Errorf("%w: list cursor %.80q is not a Page.Next", store.ErrInvalid, after)
	}
	return nil
}
