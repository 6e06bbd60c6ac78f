package sender

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/parapheur/parapheur/mailout/address"
	"github.com/parapheur/parapheur/mailout/compose"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
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
	// PublicURL is the base of signing links, PUBLIC_URL/s/TOKEN, and of
	// the sender's status page, PUBLIC_URL/e/TOKEN.
	PublicURL string
	// Completion returns the files (or the download link) of env's
	// completion mail; the same value serves every party.
	Completion func(ctx context.Context, env *workflow.Envelope) (compose.Completion, error)
}

// Compose implements Composer. The Date is the item's NotBefore, which a
// claim leaves alone: a resend after a crash is the same message, byte for
// byte.
func (m *Mails) Compose(ctx context.Context, it *store.Item, job engine.Job, w io.Writer) (Route, error) {
	msg := &compose.Message{ID: MessageID(it.ID, m.Domain), Date: it.NotBefore}
	var to string
	switch job.Notice {
	case engine.NoticeRefusal:
		r := job.Refusal
		if r == nil {
			return Route{}, errors.New("a refusal job without its refusal")
		}
		msg.Language = r.Language
		msg.Data = compose.Refusal{To: r.To, InReplyTo: r.MessageID, Subject: r.Subject, Problems: r.Problems, Usage: r.Usage}
		to = r.To.Email
	case engine.NoticeVerification:
		v := job.Verification
		if v == nil {
			return Route{}, errors.New("a verification job without its report")
		}
		msg.Language = v.Language
		msg.Data = compose.Verification{To: v.To, InReplyTo: v.MessageID, Subject: v.Subject, Address: v.Address,
			Files: v.Files, Omitted: v.Omitted, Problem: v.Problem}
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
		for _, a := range env.Ignored {
			ack.Ignored = append(ack.Ignored, compose.IgnoredAttachment{Name: a.Name, ContentType: a.ContentType})
		}
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
	case workflow.CompletionMail:
		if m.Completion == nil {
			return nil, errors.New("no completion files configured")
		}
		return m.Completion(ctx, env)
	}
	return nil, fmt.Errorf("no mail for notice %q", job.Notice)
}
