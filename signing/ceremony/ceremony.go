// Package ceremony is what a signing link and a status link can do: the
// edge between the people who hold a link (through the signing pages, the
// JSON API, any other door) and the workflow engine, the store and the
// pure signing engine (packages pades and pki).
//
// Every operation starts from a link token, which it looks up by its
// SHA-256 (tokens are never stored); a signer's token acts only for its
// recipient, the sender's status token only for the sender, a final
// mail's download token only downloads, and none can do what another
// does. The workflow rules themselves (who may act when, codes, rate of
// codes, reasons) are the state machine's: a door never checks them twice,
// it shows the machine's refusal.
//
// A signature is the one costly step: the one-time certificate, a PAdES
// signature on each document's current version, the new versions stored as
// blobs, then the Signed event. Only one signature of an envelope is made
// at a time (a store lease, so also across replicas), and the Signed event
// names the versions each new one was made from, which the machine checks:
// a crash between the blobs and the event leaves unused blobs and no
// signature, never a lost or a doubled one.
package ceremony

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	"github.com/parapheur/parapheur/mailout/address"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
)

// Errors of the ceremony itself; the workflow's refusals come as
// *workflow.Error.
var (
	// ErrNoLink: the token is not one of a live link (unknown, mistyped,
	// or of another kind: a status token on the signing page).
	ErrNoLink = errors.New("this link is not valid")
	// ErrBusy: another signature of the envelope is being made and did not
	// finish in time; try again.
	ErrBusy = errors.New("another signature of this envelope is being made: try again in a moment")
	// ErrConsent: signing or approving needs the signer's consent.
	ErrConsent = errors.New("tick the consent box to sign or approve")
	// ErrCancelReason: the sender's status page cancels with a reason,
	// which the recipients who already acted are told.
	ErrCancelReason = errors.New("give the reason for cancelling: the recipients who already acted are told it")
	// ErrNoDocument: no document has that number.
	ErrNoDocument = errors.New("no such document")
	// ErrLinkExpired: a final mail's download link past its expiry.
	ErrLinkExpired = errors.New("this download link has expired")
)

// Ceremony carries out what links ask for.
type Ceremony struct {
	// Engine applies the events; its store holds envelopes and documents.
	Engine *engine.Engine
	// CA issues the one-time certificates of the signers.
	CA *pki.CA
	// TSA, when set, time-stamps each signer's signature (PAdES B-T).
	TSA pades.Timestamper
	// MaxDocumentBytes bounds the documents read for signing.
	MaxDocumentBytes int64
	// Holder names this process in the signing lease.
	Holder string
	// SignWait is how long a signature waits for another one of the same
	// envelope before giving up with ErrBusy; 0 means DefaultSignWait.
	SignWait time.Duration
	// SignLease is how long a signature's hold on its envelope lasts
	// unless renewed; it is renewed every third of it while the signature
	// is made, so a replica that dies while signing frees the envelope
	// within SignLease. 0 means DefaultSignLease.
	SignLease time.Duration
	// TempDir holds the documents while they are signed; "" means the
	// system's.
	TempDir string
	// Metrics counts the signatures; nil counts nothing.
	Metrics *Metrics
	// Gateway is the gateway's own address, which cannot be a delegate: the
	// gateway drops its own mail, and the delegate's step would wait for ever.
	Gateway string
}

// DefaultSignWait is the default Ceremony.SignWait.
const DefaultSignWait = 10 * time.Second

// DefaultSignLease is the default Ceremony.SignLease: a gateway killed
// while signing keeps the signer waiting ("busy") for at most this long.
const DefaultSignLease = 15 * time.Second

// Link is what a token opened: an envelope and who holds the link.
type Link struct {
	Envelope *workflow.Envelope
	// RecipientID is the link holder's recipient ID, or workflow.SenderID
	// for the sender's status link.
	RecipientID string
}

// Recipient returns the link holder as a recipient (nil for the sender).
func (l Link) Recipient() *workflow.Recipient { return l.Envelope.Recipient(l.RecipientID) }

// Action is what a signer or approver asks for with a verified code.
type Action struct {
	// Kind is Sign (a signature, or an approval for an approver),
	// Decline or Delegate.
	Kind ActionKind
	// Code is the one-time code received, unless one was verified within
	// workflow.ActionWindow and not used yet.
	Code string
	// Consent is required for Sign.
	Consent bool
	// Reason is required for Decline and Delegate.
	Reason string
	// Delegate is who to hand the place to, for Delegate.
	Delegate workflow.Party
}

// ActionKind names an Action.
type ActionKind string

// Actions.
const (
	Sign     ActionKind = "sign"
	Decline  ActionKind = "decline"
	Delegate ActionKind = "delegate"
)

// open finds the link of token; sender selects the status link (true) or
// a signing link (false).
func (c *Ceremony) open(ctx context.Context, token string, sender bool) (Link, error) {
	env, rid, err := c.find(ctx, token, func(rid string) bool {
		return rid != workflow.DownloadID && (rid == workflow.SenderID) == sender
	})
	return Link{Envelope: env, RecipientID: rid}, err
}

// find looks token up and loads its envelope if the holder the store
// names is one kind accepts: ErrNoLink otherwise, as for a token nobody
// holds.
func (c *Ceremony) find(ctx context.Context, token string, kind func(recipientID string) bool) (*workflow.Envelope, string, error) {
	if token == "" || len(token) > 128 {
		return nil, "", ErrNoLink
	}
	envID, rid, err := c.Engine.Store.ByToken(ctx, engine.HashToken(token))
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return nil, "", ErrNoLink
	}
	if err != nil {
		return nil, "", err
	}
	if !kind(rid) {
		return nil, "", ErrNoLink
	}
	env, err := c.Engine.Envelope(ctx, envID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", ErrNoLink
	}
	if err != nil {
		return nil, "", err
	}
	return env, rid, nil
}

// OpenDownload opens the download link of a final mail: the completed
// envelope, held by the party the mail went to (Link.RecipientID, or
// workflow.SenderID), and the link itself. A token of another kind, or of
// an envelope not completed, is ErrNoLink; a link past its expiry, by the
// engine's clock, is ErrLinkExpired, returned with the link and its
// envelope so that the reader can be told until when it worked and whom to
// ask.
func (c *Ceremony) OpenDownload(ctx context.Context, token string) (Link, workflow.DownloadToken, error) {
	env, _, err := c.find(ctx, token, func(rid string) bool { return rid == workflow.DownloadID })
	if err != nil {
		return Link{}, workflow.DownloadToken{}, err
	}
	d := env.DownloadToken(engine.HashToken(token))
	if d == nil || env.State != workflow.StateCompleted {
		return Link{}, workflow.DownloadToken{}, ErrNoLink
	}
	l := Link{Envelope: env, RecipientID: d.For}
	if !c.Engine.Now().Before(d.Expires) {
		return l, *d, ErrLinkExpired
	}
	return l, *d, nil
}

// Archives tells whether the link holder is given the audit trail as a
// file: the sender, and the archivists, whose final mail carries it.
func (l Link) Archives() bool {
	if l.RecipientID == workflow.SenderID {
		return true
	}
	r := l.Recipient()
	return r != nil && r.Role == workflow.Archivist
}

// FinalTrail returns the audit trail of the link's completed envelope
// through its completion (audit.ThroughCompletion), the file the
// archivists' final mail carries, to a holder who Archives; ErrNoDocument
// to anyone else.
func (c *Ceremony) FinalTrail(ctx context.Context, l Link) ([]audit.Record, error) {
	if !l.Archives() {
		return nil, ErrNoDocument
	}
	trail, err := c.Engine.Store.AuditTrail(ctx, l.Envelope.ID)
	if err != nil {
		return nil, err
	}
	trail, ok := audit.ThroughCompletion(trail)
	if !ok {
		return nil, fmt.Errorf("ceremony: envelope %s is completed, yet its audit trail has no completion record", l.Envelope.ID)
	}
	return trail, nil
}

// Open returns the signing link of token without recording anything.
func (c *Ceremony) Open(ctx context.Context, token string) (Link, error) {
	return c.open(ctx, token, false)
}

// View opens the signing link of token and records the view (a reload by
// the same client within workflow.ViewEvery is one view). A view changes
// nothing else: mail scanners open links before people do.
func (c *Ceremony) View(ctx context.Context, token string, client workflow.Client) (Link, error) {
	l, err := c.open(ctx, token, false)
	if err != nil {
		return l, err
	}
	env, err := c.Engine.Event(ctx, l.Envelope.ID, workflow.Viewed{Meta: c.meta(client), RecipientID: l.RecipientID})
	if err != nil {
		return l, err
	}
	l.Envelope = env
	return l, nil
}

// SendCode sends the link holder a one-time code (by mail, or SMS when
// they gave a mobile number).
func (c *Ceremony) SendCode(ctx context.Context, token string, client workflow.Client) (Link, error) {
	l, err := c.open(ctx, token, false)
	if err != nil {
		return l, err
	}
	env, err := c.Engine.SendCode(ctx, l.Envelope.ID, l.RecipientID, client)
	if env != nil {
		l.Envelope = env
	}
	return l, err
}

// Act carries out a signer's or approver's action: checks the code (a
// wrong one is counted), then signs, approves, declines or delegates.
func (c *Ceremony) Act(ctx context.Context, token string, a Action, client workflow.Client) (Link, error) {
	l, err := c.open(ctx, token, false)
	if err != nil {
		return l, err
	}
	// What the request lacks is told before the code is checked, so that
	// a refused request leaves the code as it was.
	switch a.Kind {
	case Sign:
		if !a.Consent {
			return l, ErrConsent
		}
	case Decline:
		if err := workflow.CheckReason(a.Reason, "decline"); err != nil {
			return l, err
		}
	case Delegate:
		if err := workflow.CheckReason(a.Reason, "delegate"); err != nil {
			return l, err
		}
		if a.Delegate, err = delegate(a.Delegate, c.Gateway); err != nil {
			return l, err
		}
	}
	if l.Envelope, err = c.verify(ctx, l, a.Code, client); err != nil {
		return l, err
	}
	r := l.Recipient()
	meta := c.meta(client)
	var env *workflow.Envelope
	switch a.Kind {
	case Sign:
		if r.Role == workflow.Approver {
			env, err = c.Engine.Event(ctx, l.Envelope.ID, workflow.Approved{Meta: meta, RecipientID: r.ID})
		} else {
			env, err = c.sign(ctx, l.Envelope.ID, r.ID, client)
		}
	case Decline:
		env, err = c.Engine.Event(ctx, l.Envelope.ID, workflow.Declined{Meta: meta, RecipientID: r.ID, Reason: a.Reason})
	case Delegate:
		env, err = c.Engine.Event(ctx, l.Envelope.ID, workflow.Delegated{Meta: meta, RecipientID: r.ID, To: a.Delegate, Reason: a.Reason})
	default:
		return l, fmt.Errorf("ceremony: unknown action %q", a.Kind)
	}
	if env != nil {
		l.Envelope = env
	}
	return l, err
}

// delegate checks that the gateway can write to the delegate's address,
// which is not its own (gateway), and returns the party with the address in
// its plain form.
func delegate(p workflow.Party, gateway string) (workflow.Party, error) {
	a, err := mail.ParseAddress(strings.TrimSpace(p.Email))
	if err != nil || a.Name != "" {
		return p, &workflow.Error{Code: workflow.ErrBadDelegate.Code,
			Message: fmt.Sprintf("%q is not an email address like marie@partner.example", p.Email),
			FR:      fmt.Sprintf("« %s » n'est pas une adresse électronique comme marie@partenaire.fr", p.Email)}
	}
	switch err := address.Deliverable(a.Address, gateway); {
	case errors.Is(err, address.ErrGateway):
		return p, &workflow.Error{Code: workflow.ErrBadDelegate.Code,
			Message: fmt.Sprintf("%s is the gateway's own address, which cannot receive the delegation: name the person who is to act instead of you", a.Address),
			FR:      fmt.Sprintf("%s est l'adresse du parapheur, qui ne peut pas recevoir la délégation : indiquez la personne qui doit agir à votre place", a.Address)}
	case err != nil:
		return p, &workflow.Error{Code: workflow.ErrBadDelegate.Code,
			Message: fmt.Sprintf("the gateway cannot send mail to %s: %v", a.Address, err),
			FR:      fmt.Sprintf("le parapheur ne peut pas envoyer de message à %s : %v", a.Address, err)}
	}
	return workflow.Party{Name: strings.TrimSpace(p.Name), Email: a.Address}, nil
}

// verify checks the entered code, unless the recipient verified one within
// the action window that no action used yet (a retry after ErrBusy, or
// after the machine refused the action, e.g. a delegate it does not
// accept). Without a code and without a verification, the
// machine's ErrNotVerified tells what to do.
func (c *Ceremony) verify(ctx context.Context, l Link, code string, client workflow.Client) (*workflow.Envelope, error) {
	code = strings.Join(strings.Fields(code), "") // "482 913", as some write it
	r := l.Recipient()
	now := c.Engine.Now()
	recent := !r.VerifiedAt.IsZero() && now.Sub(r.VerifiedAt) <= workflow.ActionWindow
	if recent && (code == "" || r.Code == nil) {
		return l.Envelope, nil
	}
	if code == "" {
		if err := workflow.CanAct(l.Envelope, r.ID, now); err != nil {
			return l.Envelope, err
		}
		return l.Envelope, &workflow.Error{Code: workflow.ErrNotVerified.Code,
			Message: "enter the one-time code you received (ask for one first)"}
	}
	if err := workflow.CheckCodeFormat(code); err != nil {
		return l.Envelope, err
	}
	env, err := c.Engine.VerifyCode(ctx, l.Envelope.ID, r.ID, code, client)
	if env == nil {
		env = l.Envelope
	}
	return env, err
}

// Document opens document n (from 0) of the link's envelope, as it now is
// (after the signatures so far, or the final sealed version).
func (c *Ceremony) Document(ctx context.Context, l Link, n int) (io.ReadCloser, workflow.Document, error) {
	if n < 0 || n >= len(l.Envelope.Documents) {
		return nil, workflow.Document{}, ErrNoDocument
	}
	d := l.Envelope.Documents[n]
	rc, blob, err := c.Engine.Store.OpenBlob(ctx, d.Current)
	if err != nil {
		return nil, d, err
	}
	d.Size = blob.Size
	return rc, d, nil
}

// Certificate opens the completion certificate of the link's envelope,
// or fails with ErrNoDocument before completion.
func (c *Ceremony) Certificate(ctx context.Context, l Link) (io.ReadCloser, store.Blob, error) {
	if l.Envelope.Certificate == "" {
		return nil, store.Blob{}, ErrNoDocument
	}
	return c.Engine.Store.OpenBlob(ctx, l.Envelope.Certificate)
}

// Status opens the sender's status link of token and returns the audit
// trail so far.
func (c *Ceremony) Status(ctx context.Context, token string) (Link, []audit.Record, error) {
	l, err := c.open(ctx, token, true)
	if err != nil {
		return l, nil, err
	}
	trail, err := c.Engine.Store.AuditTrail(ctx, l.Envelope.ID)
	return l, trail, err
}

// OpenStatus returns the sender's status link of token.
func (c *Ceremony) OpenStatus(ctx context.Context, token string) (Link, error) {
	return c.open(ctx, token, true)
}

// Remind sends the pending recipients of the current step a reminder now,
// at the sender's request.
func (c *Ceremony) Remind(ctx context.Context, token string, client workflow.Client) (Link, error) {
	return c.senderEvent(ctx, token, func(env *workflow.Envelope) workflow.Event {
		return workflow.ReminderDue{Meta: c.meta(client)}
	})
}

// Cancel cancels the envelope at the sender's request, with reason (not
// blank: ErrCancelReason).
func (c *Ceremony) Cancel(ctx context.Context, token, reason string, client workflow.Client) (Link, error) {
	if strings.TrimSpace(reason) == "" {
		l, err := c.open(ctx, token, true)
		if err != nil {
			return l, err
		}
		return l, ErrCancelReason
	}
	return c.senderEvent(ctx, token, func(env *workflow.Envelope) workflow.Event {
		return workflow.Cancelled{Meta: c.meta(client), By: env.Sender.Email, Reason: reason}
	})
}

func (c *Ceremony) senderEvent(ctx context.Context, token string, mk func(*workflow.Envelope) workflow.Event) (Link, error) {
	l, err := c.open(ctx, token, true)
	if err != nil {
		return l, err
	}
	env, err := c.Engine.Apply(ctx, l.Envelope.ID, func(env *workflow.Envelope) (workflow.Event, error) { return mk(env), nil })
	if env != nil {
		l.Envelope = env
	}
	return l, err
}

func (c *Ceremony) meta(client workflow.Client) workflow.Meta {
	return workflow.Meta{At: c.Engine.Now(), Client: client}
}

// FindDocument tells where the file of SHA-256 sum (hex) stands in the
// envelope envelopeID (which a signature of the gateway names in its
// /Reason: see EnvelopeOfReason): store.ErrNotFound when there is no such
// envelope. Only the documents' current versions are known by their hash;
// an earlier version is told as none of them.
func (c *Ceremony) FindDocument(ctx context.Context, envelopeID, sum string) (verdict.Placement, error) {
	env, err := c.Engine.Envelope(ctx, envelopeID)
	if err != nil {
		return verdict.Placement{}, err
	}
	return verdict.Locate(env, sum), nil
}
