package sender

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/parapheur/parapheur/mailout/address"
	"github.com/parapheur/parapheur/mailout/compose"
	"github.com/parapheur/parapheur/signing/certificate"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox"
)

// Mails is the Composer of the gateway: it reads the envelope an item is
// about, as it is at sending time, turns the item's Job into the data of
// package compose, and composes the mail with the item's Message-ID.
type Mails struct {
	// Composer writes the messages.
	Composer *compose.Composer
	// Store holds the envelopes.
	Store store.Store
	// Domain is the right-hand side of Message-IDs: the Domain of the
	// compose configuration.
	Domain string
	// PublicURL is the base of signing links, PUBLIC_URL/s/TOKEN, of the
	// sender's status page, PUBLIC_URL/e/TOKEN, and of the final mails'
	// download links, PUBLIC_URL/d/TOKEN.
	PublicURL string
}

// Compose implements Composer. The Date is the item's NotBefore, which a
// claim leaves alone: a resend after a crash is the same message, byte for
// byte.
func (m *Mails) Compose(ctx context.Context, it *store.Item, job engine.Job, w io.Writer) (Route, error) {
	id, err := MessageID(it.ID, job, m.Domain)
	if err != nil {
		return Route{}, err
	}
	msg := &compose.Message{ID: id, Date: it.NotBefore}
	var to string
	switch job.Notice {
	case engine.NoticeRefusal:
		r := job.Refusal
		if r == nil {
			return Route{}, errors.New("a refusal job without its refusal")
		}
		msg.Language = r.Language
		msg.Data = compose.Refusal{To: r.To, InReplyTo: r.MessageID, References: r.References, Subject: r.Subject, Problems: r.Problems, Usage: r.Usage, Command: r.Command}
		to = r.To.Email
	case engine.NoticeVerification:
		v := job.Verification
		if v == nil {
			return Route{}, errors.New("a verification job without its report")
		}
		msg.Language = v.Language
		msg.Data = compose.Verification{To: v.To, InReplyTo: v.MessageID, References: v.References, Subject: v.Subject, Address: v.Address,
			Files: v.Files, Ignored: ignoredAttachments(v.Ignored), Omitted: v.Omitted, Problem: v.Problem}
		to = v.To.Email
	default:
		env, err := m.Store.Get(ctx, job.EnvelopeID)
		if err != nil {
			return Route{}, outbox.StoreError(err)
		}
		msg.Envelope = env
		to = env.Sender.Email
		if job.To != engine.SenderAddressee {
			r := env.Recipient(job.To)
			if r == nil {
				return Route{}, fmt.Errorf("envelope %s has no recipient %q", env.ID, job.To)
			}
			msg.RecipientID, to = r.ID, r.Email
		}
		if msg.Data, err = m.data(ctx, env, job); err != nil {
			return Route{}, err
		}
	}
	from, err := m.Composer.ReturnPath(msg)
	if err != nil {
		return Route{}, err
	}
	if to, err = address.SMTP(to); err != nil {
		return Route{}, err
	}
	if err := m.Composer.Compose(w, msg); err != nil {
		return Route{}, err
	}
	return Route{From: from, To: []string{to}}, nil
}

// data is the compose data of job.
func (m *Mails) data(ctx context.Context, env *workflow.Envelope, job engine.Job) (compose.Data, error) {
	switch job.Notice {
	case workflow.Acknowledgement:
		ack := compose.Acknowledgement{}
		if job.Token != "" {
			ack.StatusURL = m.PublicURL + "/e/" + job.Token
		}
		ack.Ignored = ignoredAttachments(env.Ignored)
		return ack, nil
	case workflow.Invitation:
		return compose.Invitation{Link: m.PublicURL + "/s/" + job.Token}, nil
	case workflow.Reminder:
		return compose.Reminder{Link: m.PublicURL + "/s/" + job.Token}, nil
	case engine.NoticeCode:
		return compose.OneTimeCode{Code: job.Code, Valid: workflow.CodeTTL}, nil
	case workflow.DeclineNotice:
		return compose.Declined{By: job.About, Reason: job.Reason}, nil
	case workflow.DelegationNotice:
		return compose.Delegated{By: job.About, Reason: job.Reason}, nil
	case workflow.CodeLockedNotice:
		return compose.CodeLocked{By: job.About}, nil
	case workflow.CancelNotice:
		return compose.Cancelled{Reason: job.Reason}, nil
	case workflow.ExpiryNotice:
		return compose.Expired{}, nil
	case workflow.BounceNotice:
		addr := env.Sender.Email
		if job.About != "" {
			r := env.Recipient(job.About)
			if r == nil {
				return nil, fmt.Errorf("envelope %s has no recipient %q", env.ID, job.About)
			}
			addr = r.Email
		}
		return compose.DeliveryFailure{Address: addr, Answer: job.Reason}, nil
	case workflow.CompletionDelayedNotice:
		return compose.CompletionDelayed{Reason: job.Reason}, nil
	case workflow.CompletionMail:
		return m.completion(ctx, env, job)
	}
	return nil, fmt.Errorf("no mail for notice %q", job.Notice)
}

// completion is the data of a final mail: the final version of each
// document, then the certificate of completion, each streamed from the
// store when the mail is written (a 20 MB document is never held in
// memory); the download link of the job's token; and for an archivist the
// audit trail through completion (audit.ThroughCompletion), the same file
// at every resend. A file missing from the store fails the mail, which a
// retry cannot mend; a store that does not answer is a transient failure.
func (m *Mails) completion(ctx context.Context, env *workflow.Envelope, job engine.Job) (compose.Completion, error) {
	if env.State != workflow.StateCompleted || env.Certificate == "" {
		return compose.Completion{}, fmt.Errorf("envelope %s is %s, not completed with a certificate: it has no final mail", env.ID, env.State)
	}
	if job.Token == "" {
		return compose.Completion{}, fmt.Errorf("the final mail of envelope %s to %s carries no download-link token", env.ID, job.To)
	}
	link := env.DownloadToken(engine.HashToken(job.Token))
	if link == nil {
		return compose.Completion{}, fmt.Errorf("envelope %s does not know the download link of its final mail to %s", env.ID, job.To)
	}
	c := compose.Completion{DownloadURL: m.PublicURL + "/d/" + job.Token, DownloadUntil: link.Expires}
	for i, d := range env.Documents {
		f, err := m.storedFile(ctx, env, d.Current, d.Name, fmt.Sprintf("document %d (%s)", i+1, d.Name))
		if err != nil {
			return compose.Completion{}, err
		}
		c.Files = append(c.Files, f)
	}
	name, err := certificate.FileName(env.ID, env.Language)
	if err != nil {
		return compose.Completion{}, err
	}
	f, err := m.storedFile(ctx, env, env.Certificate, name, "the certificate of completion")
	if err != nil {
		return compose.Completion{}, err
	}
	c.Files = append(c.Files, f)
	if r := env.Recipient(job.To); r != nil && r.Role == workflow.Archivist {
		if c.Audit, err = m.auditFile(ctx, env); err != nil {
			return compose.Completion{}, err
		}
	}
	return c, nil
}

// storedFile is the PDF of SHA-256 sum in the store, named name; what
// names it in errors. The blob is looked up now, for its size and so that
// a missing one is told before anything is written, and opened again when
// the mail is written.
func (m *Mails) storedFile(ctx context.Context, env *workflow.Envelope, sum, name, what string) (compose.Attachment, error) {
	open := func() (io.ReadCloser, store.Blob, error) {
		rc, blob, err := m.Store.OpenBlob(ctx, sum)
		if err != nil {
			return nil, blob, outbox.StoreError(fmt.Errorf("envelope %s: %s, %s, cannot be read from the store: %w", env.ID, what, sum, err))
		}
		return rc, blob, nil
	}
	rc, blob, err := open()
	if err != nil {
		return compose.Attachment{}, err
	}
	rc.Close()
	return compose.Attachment{Name: name, ContentType: "application/pdf", Size: blob.Size, SHA256: sum,
		Open: func() (io.ReadCloser, error) {
			rc, _, err := open()
			return rc, err
		}}, nil
}

// auditFile is the archivists' audit-ENVELOPEID.json: the trail through
// completion, small enough to be held.
func (m *Mails) auditFile(ctx context.Context, env *workflow.Envelope) (*compose.Attachment, error) {
	trail, err := m.Store.AuditTrail(ctx, env.ID)
	if err != nil {
		return nil, outbox.StoreError(fmt.Errorf("envelope %s: reading its audit trail: %w", env.ID, err))
	}
	trail, ok := audit.ThroughCompletion(trail)
	if !ok {
		return nil, fmt.Errorf("envelope %s is completed, yet its audit trail has no completion record", env.ID)
	}
	b := audit.JSON(trail)
	sum := sha256.Sum256(b)
	return &compose.Attachment{Name: certificate.AttachmentName(env.ID), ContentType: "application/json", Size: int64(len(b)),
		SHA256: hex.EncodeToString(sum[:]), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}, nil
}

// ignoredAttachments names the attachments a mail's reply lists as left out.
func ignoredAttachments(list []workflow.Attachment) []compose.IgnoredAttachment {
	var out []compose.IgnoredAttachment
	for _, a := range list {
		out = append(out, compose.IgnoredAttachment{Name: a.Name, ContentType: a.ContentType})
	}
	return out
}
