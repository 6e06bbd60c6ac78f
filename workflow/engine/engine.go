// Package engine is the edge between the pure state machine (package
// workflow) and the store: it loads an envelope, applies an event, turns the
// effects into outbox items, and writes the envelope, its audit records and
// those items in one atomic store write, retrying on a concurrent change.
//
// Secrets are made here, never in the machine: signing-link tokens (256
// bits from crypto/rand; only their SHA-256 is kept in the envelope) and
// one-time codes (6 digits; only an HMAC-SHA-256 under the gateway's code
// key is kept). A token or code travels in the outbox payload of the mail or
// SMS that carries it, and leaves the store when that item is acknowledged.
package engine

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"time"

	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
)

// Queues of the outbox.
const (
	// MailQueue holds mails to send (payload: Job).
	MailQueue = "mail"
	// SMSQueue holds one-time codes to send by SMS (payload: Job).
	SMSQueue = "sms"
	// TimerQueue holds envelope timers (payload: Timer), due at their time.
	TimerQueue = "timer"
	// CompletionQueue holds envelopes whose steps are done and that wait
	// to be sealed (payload: Completion).
	CompletionQueue = "completion"
)

// SenderAddressee is the Job.To of a mail to the envelope's sender.
const SenderAddressee = workflow.SenderID

// Job is the payload of a MailQueue or SMSQueue item: which mail to compose
// and send, for whom. Composition happens at sending time from the envelope
// as it then is; what cannot be recomputed (a token, a code) is carried here.
type Job struct {
	// Notice is the kind of mail; "code" for a one-time code.
	Notice workflow.Notice `json:"notice"`
	// EnvelopeID is the envelope the mail is about.
	EnvelopeID string `json:"envelope_id"`
	// To is a recipient ID, or SenderAddressee.
	To string `json:"to"`
	// Token is the signing-link token, for invitations and reminders, the
	// sender's status-page token, for the acknowledgement, or the
	// download-link token, for a completion mail. In the store it is in
	// Sealed (see Engine.OpenJob); only items queued by versions before
	// the sealing hold it here.
	Token string `json:"token,omitempty"`
	// Code is the one-time code, for NoticeCode; in the store, in Sealed
	// like Token.
	Code string `json:"code,omitempty"`
	// Sealed holds Token and Code as stored: encrypted and bound to the
	// item, so that the store keeps no link token or code in clear, only
	// their hashes (SPEC §3), and a copy of it (a backup, Redis's
	// append-only file) opens no signing page while the mail waits.
	Sealed []byte `json:"sealed,omitempty"`
	// Reason is the reason to quote (decline, cancellation, failure).
	Reason string `json:"reason,omitempty"`
	// About is the recipient ID the mail is about (who declined, whose
	// mail bounced), "" when none.
	About string `json:"about,omitempty"`
	// Refusal is the refused submission, for NoticeRefusal (which has no
	// envelope: EnvelopeID and To are empty).
	Refusal *Refusal `json:"refusal,omitempty"`
	// Verification is the report on the PDFs of a mail to the
	// verification address, for NoticeVerification (which has no
	// envelope either).
	Verification *Verification `json:"verification,omitempty"`
}

// NoticeRefusal is the Job notice of a refusal reply.
const NoticeRefusal workflow.Notice = "refusal"

// Refusal is what a refusal reply says and to whom: a refused mail makes
// no envelope, so the job carries it all.
type Refusal struct {
	// To is the address the refused mail came from.
	To workflow.Party `json:"to"`
	// Subject is the refused mail's subject.
	Subject string `json:"subject"`
	// MessageID and References thread the reply to the refused mail.
	MessageID  string   `json:"message_id,omitempty"`
	References []string `json:"references,omitempty"`
	// Problems say exactly what was wrong, one sentence each.
	Problems []string `json:"problems"`
	// Usage says how to write an instruction block, or, for a Command,
	// how to reply with one, in Language.
	Usage string `json:"usage,omitempty"`
	// Command tells that the refused mail was a reply command (REFUSER:,
	// ANNULER, DÉLÉGUER:), not a submission.
	Command bool `json:"command,omitempty"`
	// Language is "fr" or "en".
	Language string `json:"language"`
}

// NoticeVerification is the Job notice of the reply to a mail sent to the
// verification address (SPEC §6, by mail).
const NoticeVerification workflow.Notice = "verification"

// Verification is what the reply to a mail sent to the verification
// address says and to whom. The PDFs are not stored: they are checked when
// the mail arrives, and the job carries their reports, already in words.
type Verification struct {
	// To is the address the mail came from.
	To workflow.Party `json:"to"`
	// Subject is the mail's subject.
	Subject string `json:"subject"`
	// MessageID and References thread the reply to the mail.
	MessageID  string   `json:"message_id,omitempty"`
	References []string `json:"references,omitempty"`
	// Address is the verification address the mail was sent to.
	Address string `json:"address"`
	// Files are the reports on the mail's PDFs, in the order of the mail.
	Files []verdict.File `json:"files,omitempty"`
	// Ignored are the mail's attachments that are not PDFs, which the
	// reply names as not checked.
	Ignored []workflow.Attachment `json:"ignored,omitempty"`
	// Omitted counts the PDFs past the cap, which are not reported.
	Omitted int `json:"omitted,omitempty"`
	// Problem says why no file was checked (no PDF attached, the mail
	// too large), when Files is empty.
	Problem string `json:"problem,omitempty"`
	// Language is "fr" or "en".
	Language string `json:"language"`
}

// NoticeCode is the Job notice of a one-time code mail or SMS.
const NoticeCode workflow.Notice = "code"

// Timer is the payload of a TimerQueue item.
type Timer struct {
	// EnvelopeID is the envelope whose timer it is.
	EnvelopeID string `json:"envelope_id"`
	// Kind is the timer: expiry or reminder.
	Kind workflow.TimerKind `json:"kind"`
	// At is when it was scheduled for.
	At time.Time `json:"at"`
}

// Completion is the payload of a CompletionQueue item.
type Completion struct {
	// EnvelopeID is the envelope to complete.
	EnvelopeID string `json:"envelope_id"`
}

// Engine applies events to stored envelopes.
type Engine struct {
	// Store persists envelopes and the outbox.
	Store store.Store
	// CodeKey is the HMAC key for one-time codes (at least 32 bytes).
	CodeKey []byte
	// Clock is the time source; nil means time.Now.
	Clock func() time.Time
	// Random is the source of tokens and codes; nil means crypto/rand.
	Random io.Reader
	// DownloadTTL is how long the download link of a final mail works;
	// zero means DefaultDownloadTTL.
	DownloadTTL time.Duration
	// Metrics counts the transitions and the codes; nil counts nothing.
	Metrics *Metrics
	// Log, when set, gets one Info line for each envelope that changes
	// state (declined, cancelled, expired, completed), whichever door the
	// event came through, so that an operator reading the log sees why an
	// envelope ended. Reasons are not logged: they are the users' words.
	Log *slog.Logger
}

// DefaultDownloadTTL is how long the download link of a final mail works
// when Engine.DownloadTTL is zero.
const DefaultDownloadTTL = 30 * 24 * time.Hour

func (e *Engine) downloadTTL() time.Duration {
	if e.DownloadTTL <= 0 {
		return DefaultDownloadTTL
	}
	return e.DownloadTTL
}

// maxRetries bounds the reload-and-reapply loop on concurrent changes; a
// short random pause between tries keeps many writers of one envelope from
// colliding in step.
const maxRetries = 50

// Now is the engine's time: every event it makes is stamped with it.
func (e *Engine) Now() time.Time {
	if e.Clock == nil {
		return time.Now()
	}
	return e.Clock()
}

func (e *Engine) random() io.Reader {
	if e.Random == nil {
		return rand.Reader
	}
	return e.Random
}

// EnvelopeID derives an envelope ID from an idempotency key (the normalised
// Message-ID of a submission): the same mail always makes the same ID, so
// the store's refusal of a second Create is the duplicate check. 100 bits
// of SHA-256 in Crockford-like base32: short enough to read on the phone.
func EnvelopeID(key string) string {
	sum := sha256.Sum256([]byte("parapheur envelope\x00" + key))
	return "E" + strings.ToUpper(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:])[:20])
}

// HashToken is the SHA-256 under which a signing-link token is stored.
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// CodeMAC is the keyed hash under which a one-time code is stored. It binds
// the code to its envelope and recipient, so a code is useless elsewhere.
func (e *Engine) CodeMAC(envelopeID, recipientID, code string) []byte {
	m := hmac.New(sha256.New, e.CodeKey)
	fmt.Fprintf(m, "%s\x00%s\x00%s", envelopeID, recipientID, code)
	return m.Sum(nil)
}

// jobSecrets are what Job.Sealed holds.
type jobSecrets struct {
	Token string `json:"t,omitempty"`
	Code  string `json:"c,omitempty"`
}

// jobAEAD is the cipher of Job.Sealed: AES-256-GCM under a key derived
// from CodeKey, which every replica has (keys.dir).
func (e *Engine) jobAEAD() (cipher.AEAD, error) {
	m := hmac.New(sha256.New, e.CodeKey)
	m.Write([]byte("parapheur outbox job secrets"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealJob moves job's token and code into job.Sealed, bound to the item
// itemID: a sealed payload copied onto another item does not open.
func (e *Engine) sealJob(itemID string, job *Job) error {
	if job.Token == "" && job.Code == "" {
		return nil
	}
	aead, err := e.jobAEAD()
	if err != nil {
		return err
	}
	plain, err := json.Marshal(jobSecrets{Token: job.Token, Code: job.Code})
	if err != nil {
		return err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(e.random(), nonce); err != nil {
		return fmt.Errorf("engine: drawing a nonce: %w", err)
	}
	job.Sealed = aead.Seal(nonce, nonce, plain, []byte(itemID))
	job.Token, job.Code = "", ""
	return nil
}

// OpenJob decodes the Job of an outbox item, its token and code opened
// from Job.Sealed.
func (e *Engine) OpenJob(it *store.Item) (Job, error) {
	var job Job
	if err := json.Unmarshal(it.Payload, &job); err != nil {
		return job, fmt.Errorf("payload is not a job: %w", err)
	}
	if job.Sealed == nil {
		return job, nil
	}
	aead, err := e.jobAEAD()
	if err != nil {
		return job, err
	}
	n := aead.NonceSize()
	if len(job.Sealed) < n {
		return job, fmt.Errorf("the job's sealed secrets are %d bytes, shorter than a nonce", len(job.Sealed))
	}
	plain, err := aead.Open(nil, job.Sealed[:n], job.Sealed[n:], []byte(it.ID))
	if err != nil {
		return job, fmt.Errorf("the job's sealed secrets do not open with this gateway's keys (keys.dir changed since the item was queued?): %w", err)
	}
	var sec jobSecrets
	if err := json.Unmarshal(plain, &sec); err != nil {
		return job, fmt.Errorf("the job's sealed secrets: %w", err)
	}
	job.Token, job.Code, job.Sealed = sec.Token, sec.Code, nil
	return job, nil
}

// Envelope returns the stored envelope, or store.ErrNotFound.
func (e *Engine) Envelope(ctx context.Context, id string) (*workflow.Envelope, error) {
	return e.Store.Get(ctx, id)
}

// PutDocument stores a document's bytes, before the Create that names
// them by their SHA-256; store.ErrTooLarge past the store's limit.
func (e *Engine) PutDocument(ctx context.Context, r io.Reader) (store.Blob, error) {
	return e.Store.PutBlob(ctx, r)
}

// Create stores a new envelope from a draft with the effects of its
// creation (acknowledgement, first invitations, timers). A draft whose ID
// exists already returns the stored envelope and store.ErrExists.
func (e *Engine) Create(ctx context.Context, d workflow.Draft) (*workflow.Envelope, error) {
	t, err := workflow.Create(d, e.Now())
	if err != nil {
		return nil, err
	}
	w, err := e.writes(t, "")
	if err != nil {
		return nil, err
	}
	if err := e.Store.Create(ctx, t.Envelope, w); err != nil {
		if errors.Is(err, store.ErrExists) {
			old, gerr := e.Store.Get(ctx, d.ID)
			if gerr != nil {
				return nil, errors.Join(err, gerr)
			}
			return old, err
		}
		return nil, err
	}
	e.Metrics.entered("", t.Envelope.State)
	return t.Envelope, nil
}

// Apply applies the event made by mk (called again on each retry, with the
// envelope as it then is) and stores the outcome. It returns the envelope
// after the event, unchanged for a replayed event.
func (e *Engine) Apply(ctx context.Context, envelopeID string, mk func(*workflow.Envelope) (workflow.Event, error)) (*workflow.Envelope, error) {
	return e.apply(ctx, envelopeID, mk, applied{})
}

// applied is what apply stores besides an event's outcome.
type applied struct {
	code string // the plaintext of a one-time code, for the SendCode effect the event may cause
	key  string // an idempotency key (see EventOnce)
}

// apply is Apply with extras.
func (e *Engine) apply(ctx context.Context, envelopeID string, mk func(*workflow.Envelope) (workflow.Event, error), extra applied) (*workflow.Envelope, error) {
	for attempt := 0; ; attempt++ {
		env, err := e.Store.Get(ctx, envelopeID)
		if err != nil {
			return nil, err
		}
		// Read after the envelope: a write of the key that came between
		// the two reads changed the version, so the Update below fails
		// with a conflict and the next round sees the key.
		if extra.key != "" {
			done, err := e.Store.HasKey(ctx, envelopeID, extra.key)
			if err != nil || done {
				return env, err
			}
		}
		ev, err := mk(env)
		if err != nil {
			return env, err
		}
		t, err := workflow.Apply(env, ev)
		if err != nil {
			return env, err
		}
		if !t.Changed() {
			return env, nil
		}
		w, err := e.writes(t, extra.code)
		if err != nil {
			return env, err
		}
		if extra.key != "" {
			w.Keys = append(w.Keys, extra.key)
		}
		err = e.Store.Update(ctx, t.Envelope, w)
		if err == nil {
			e.Metrics.entered(env.State, t.Envelope.State)
			if e.Log != nil && env.State != t.Envelope.State {
				e.Log.Info("engine: envelope "+string(t.Envelope.State), "envelope", envelopeID, "was", env.State)
			}
			return t.Envelope, nil
		}
		if !errors.Is(err, store.ErrConflict) || attempt >= maxRetries {
			return env, err
		}
		pause := time.NewTimer(time.Duration(mrand.Int64N(int64(time.Millisecond) * int64(attempt+1))))
		select {
		case <-ctx.Done():
			pause.Stop()
			return env, ctx.Err()
		case <-pause.C:
		}
	}
}

// Event applies a fixed event (see Apply).
func (e *Engine) Event(ctx context.Context, envelopeID string, ev workflow.Event) (*workflow.Envelope, error) {
	return e.Apply(ctx, envelopeID, func(*workflow.Envelope) (workflow.Event, error) { return ev, nil })
}

// EventOnce applies ev and records the idempotency key with it, unless
// the envelope has the key already: then ev was applied before, and the
// envelope is returned unchanged. It is for an event that a process
// stopped after storing may make again on its restart, with effects that
// must not come twice (a failed delivery's notice to the sender); the
// store's HasKey tells whether it was stored.
func (e *Engine) EventOnce(ctx context.Context, envelopeID, key string, ev workflow.Event) (*workflow.Envelope, error) {
	if key == "" {
		return nil, errors.New("engine: EventOnce without an idempotency key")
	}
	return e.apply(ctx, envelopeID, func(*workflow.Envelope) (workflow.Event, error) { return ev, nil }, applied{key: key})
}

// SendCode makes a one-time code for the recipient, stores its MAC and
// queues the mail or SMS that carries it. The channel is SMS when the
// recipient gave a mobile number.
func (e *Engine) SendCode(ctx context.Context, envelopeID, recipientID string, client workflow.Client) (*workflow.Envelope, error) {
	code, err := e.newCode()
	if err != nil {
		return nil, err
	}
	var channel string
	env, err := e.apply(ctx, envelopeID, func(env *workflow.Envelope) (workflow.Event, error) {
		r := env.Recipient(recipientID)
		if r == nil {
			return nil, workflow.CanAct(env, recipientID, e.Now())
		}
		channel = "email"
		if r.Phone != "" {
			channel = "sms"
		}
		return workflow.CodeSent{Meta: workflow.Meta{At: e.Now(), Client: client}, RecipientID: recipientID,
			MAC: e.CodeMAC(envelopeID, recipientID, code), Channel: channel}, nil
	}, applied{code: code})
	if err == nil {
		e.Metrics.issued(channel)
	}
	return env, err
}

// VerifyCode checks an entered code: a right code is recorded as verified
// (authorising one action), a wrong one is counted as a failure and its
// refusal returned.
func (e *Engine) VerifyCode(ctx context.Context, envelopeID, recipientID, code string, client workflow.Client) (*workflow.Envelope, error) {
	meta := workflow.Meta{At: e.Now(), Client: client}
	env, err := e.Event(ctx, envelopeID, workflow.CodeVerified{Meta: meta, RecipientID: recipientID,
		MAC: e.CodeMAC(envelopeID, recipientID, strings.TrimSpace(code))})
	if errors.Is(err, workflow.ErrWrongCode) || errors.Is(err, workflow.ErrCodeExpired) {
		if _, ferr := e.Event(ctx, envelopeID, workflow.CodeFailed{Meta: meta, RecipientID: recipientID}); ferr != nil {
			return env, errors.Join(err, ferr)
		}
	}
	return env, err
}

// newCode draws a uniform 6-digit code.
func (e *Engine) newCode() (string, error) {
	n, err := rand.Int(e.random(), new(big.Int).Exp(big.NewInt(10), big.NewInt(workflow.CodeDigits), nil))
	if err != nil {
		return "", fmt.Errorf("engine: drawing a one-time code: %w", err)
	}
	return fmt.Sprintf("%0*d", workflow.CodeDigits, n.Int64()), nil
}

func (e *Engine) newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(e.random(), b); err != nil {
		return "", fmt.Errorf("engine: drawing a link token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// writes turns a transition's audit records and effects into a store
// write. Item IDs derive from the envelope, the audit sequence number of the
// transition and the effect, so a retried write enqueues the same items.
func (e *Engine) writes(t workflow.Transition, code string) (store.Writes, error) {
	env := t.Envelope
	w := store.Writes{Audit: t.Audit}
	seq := env.Audit.Seq
	add := func(queue, id string, notBefore time.Time, payload any) error {
		itemID := fmt.Sprintf("%s/%d/%s", env.ID, seq, id)
		if job, ok := payload.(Job); ok {
			if err := e.sealJob(itemID, &job); err != nil {
				return err
			}
			payload = job
		}
		b, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		w.Items = append(w.Items, store.Item{ID: itemID, Queue: queue,
			EnvelopeID: env.ID, Payload: b, NotBefore: notBefore})
		return nil
	}
	now := e.Now()
	// download mints the download-link token of a final mail to party.
	download := func(job *Job, party string) (err error) {
		if job.Token, err = e.newToken(); err != nil {
			return err
		}
		return env.AddDownloadToken(party, HashToken(job.Token), now.Add(e.downloadTTL()))
	}
	for i, f := range t.Effects {
		var err error
		switch f := f.(type) {
		case workflow.Notify:
			if f.ToSender {
				job := Job{Notice: f.Notice, EnvelopeID: env.ID, To: SenderAddressee, Reason: f.Reason, About: f.About}
				switch f.Notice {
				case workflow.Acknowledgement:
					// The acknowledgement carries the sender's status link.
					if job.Token, err = e.newToken(); err != nil {
						break
					}
					env.AddSenderToken(HashToken(job.Token))
				case workflow.CompletionMail:
					err = download(&job, workflow.SenderID)
				}
				if err == nil {
					err = add(MailQueue, fmt.Sprintf("%d/%s/sender", i, f.Notice), now, job)
				}
			}
			for _, rid := range f.Recipients {
				if err != nil {
					break
				}
				job := Job{Notice: f.Notice, EnvelopeID: env.ID, To: rid, Reason: f.Reason, About: f.About}
				switch f.Notice {
				case workflow.Invitation, workflow.Reminder:
					if job.Token, err = e.newToken(); err != nil {
						break
					}
					err = env.AddToken(rid, HashToken(job.Token))
				case workflow.CompletionMail:
					err = download(&job, rid)
				}
				if err == nil {
					err = add(MailQueue, fmt.Sprintf("%d/%s/%s", i, f.Notice, rid), now, job)
				}
			}
		case workflow.SendCode:
			queue := MailQueue
			if f.Channel == "sms" {
				queue = SMSQueue
			}
			if code == "" {
				return w, fmt.Errorf("engine: a code was asked for outside SendCode")
			}
			err = add(queue, fmt.Sprintf("%d/code/%s", i, f.RecipientID), now,
				Job{Notice: NoticeCode, EnvelopeID: env.ID, To: f.RecipientID, Code: code})
		case workflow.Schedule:
			// Timer IDs leave out the sequence: one item per timer and time.
			b, merr := json.Marshal(Timer{EnvelopeID: env.ID, Kind: f.Timer, At: f.At})
			if merr != nil {
				return w, merr
			}
			w.Items = append(w.Items, store.Item{ID: fmt.Sprintf("%s/timer/%s/%d", env.ID, f.Timer, f.At.Unix()),
				Queue: TimerQueue, EnvelopeID: env.ID, Payload: b, NotBefore: f.At})
		case workflow.Complete:
			err = add(CompletionQueue, "complete", now, Completion{EnvelopeID: env.ID})
		default:
			err = fmt.Errorf("engine: unknown effect %T", f)
		}
		if err != nil {
			return w, err
		}
	}
	return w, nil
}
