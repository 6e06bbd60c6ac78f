package ceremony

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/parapheur/parapheur/signing/internal/spool"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
)

// signPoll is how often a waiting signature looks at the lease again.
const signPoll = 25 * time.Millisecond

// sign makes recipientID's signature on every document of the envelope and
// records it.
func (c *Ceremony) sign(ctx context.Context, envID, recipientID string, client workflow.Client) (*workflow.Envelope, error) {
	start := time.Now()
	env, err := c.makeSignature(ctx, envID, recipientID, client)
	c.Metrics.signature(err, time.Since(start))
	return env, err
}

// makeSignature takes the envelope's signing lease, signs every document
// and records the Signed event.
func (c *Ceremony) makeSignature(ctx context.Context, envID, recipientID string, client workflow.Client) (*workflow.Envelope, error) {
	release, err := c.lock(ctx, envID)
	if err != nil {
		return nil, err
	}
	defer release()
	// Read again under the lease: a signature made meanwhile moved the
	// documents on.
	env, err := c.Engine.Envelope(ctx, envID)
	if err != nil {
		return nil, err
	}
	now := c.Engine.Now()
	if err := workflow.CanPerform(env, recipientID, workflow.Signer, now); err != nil {
		return env, err
	}
	r := env.Recipient(recipientID)
	name := r.Name
	if name == "" {
		name = r.Email
	}
	kp, err := c.CA.IssueOneTime(name, r.Email, 0)
	if err != nil {
		return env, fmt.Errorf("ceremony: one-time certificate for %s: %w", r.Email, err)
	}
	signed := 0
	for _, o := range env.Recipients {
		if o.State == workflow.HasSigned {
			signed++
		}
	}
	opts := pades.Options{
		Signer:      pades.Signer{Key: kp.Key, Chain: kp.Chain},
		Name:        name,
		ContactInfo: r.Email,
		Reason:      reason(env),
		Time:        now,
		TSA:         c.TSA,
		MaxInput:    c.MaxDocumentBytes,
	}
	versions := make([]workflow.DocumentVersion, len(env.Documents))
	for i, d := range env.Documents {
		opts.Stamp = stamp(env, r, name, signed, d.Pages)
		blob, err := c.signDocument(ctx, d, opts)
		if err != nil {
			return env, fmt.Errorf("ceremony: signing %s: %w", d.Name, err)
		}
		versions[i] = workflow.DocumentVersion{Index: i, Previous: d.Current, SHA256: blob.SHA256, Size: blob.Size}
	}
	return c.Engine.Event(ctx, envID, workflow.Signed{Meta: workflow.Meta{At: now, Client: client}, RecipientID: recipientID,
		Signature: workflow.Signature{CertSerial: serial(kp), Documents: versions}})
}

func serial(kp *pki.KeyPair) string { return pki.SerialHex(kp.Chain[0]) }

// signDocument signs the current version of d into a new blob. The
// document goes through temporary files, so memory does not grow with it.
func (c *Ceremony) signDocument(ctx context.Context, d workflow.Document, opts pades.Options) (store.Blob, error) {
	return spool.RewriteBlob(ctx, c.Engine.Store, c.TempDir, d.Current, func(in *os.File, out io.Writer) error {
		return pades.SignFile(ctx, in, out, opts)
	})
}

// lock takes the envelope's signing lease, waiting up to SignWait for a
// signature in progress, and returns its release.
func (c *Ceremony) lock(ctx context.Context, envID string) (func(), error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	name, holder := "sign/"+envID, c.Holder+"/"+hex.EncodeToString(b[:])
	wait := c.SignWait
	if wait <= 0 {
		wait = DefaultSignWait
	}
	lease := c.SignLease
	if lease <= 0 {
		lease = DefaultSignLease
	}
	deadline := time.Now().Add(wait)
	for {
		ok, err := c.Engine.Store.AcquireLease(ctx, name, holder, time.Now(), lease)
		if err != nil {
			return nil, err
		}
		if ok {
			stop := c.renewLease(ctx, name, holder, lease)
			return func() {
				stop()
				// The release outlives a cancelled request: a lease left
				// behind would hold the envelope until it ends.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				c.Engine.Store.ReleaseLease(rctx, name, holder)
			}, nil
		}
		if time.Now().After(deadline) {
			return nil, ErrBusy
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(ErrBusy, ctx.Err())
		case <-time.After(signPoll):
		}
	}
}

// renewLease renews the signing lease name of holder every third of its
// duration until the returned stop is called, so that a signature slower
// than the lease (a large document, a slow time-stamp authority) keeps
// its envelope. A renewal that fails is tried again at the next tick; the
// signature's record is safe without the lease anyway, since it names the
// document versions it was made on (workflow.ErrStaleDocument).
func (c *Ceremony) renewLease(ctx context.Context, name, holder string, lease time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_, _ = c.Engine.Store.AcquireLease(ctx, name, holder, time.Now(), lease)
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// reasonPrefixes start the signature's /Reason, by language; the
// envelope ID ends it. certificatePrefixes do the same for the seal of
// the certificate of completion (see CertificateReason).
var (
	reasonPrefixes      = map[string]string{"fr": "Signature électronique, demande ", "en": "Electronic signature, envelope "}
	certificatePrefixes = map[string]string{"fr": "Certificat de réalisation de la demande ", "en": "Certificate of completion of envelope "}
)

// CertificateReason is the /Reason of the seal of env's certificate of
// completion, in the envelope's language: EnvelopeOfReason reads the
// envelope back from it, so that a verification names the envelope.
func CertificateReason(env *workflow.Envelope) string {
	if env.Language == "fr" {
		return certificatePrefixes["fr"] + env.ID
	}
	return certificatePrefixes["en"] + env.ID
}

// reason is the signature's /Reason, in the envelope's language.
func reason(env *workflow.Envelope) string {
	if env.Language == "fr" {
		return reasonPrefixes["fr"] + env.ID
	}
	return reasonPrefixes["en"] + env.ID
}

// EnvelopeOfReason reads the envelope ID back from a signature's /Reason
// as the ceremony writes it; ok is false for any other text. Only a
// signature this gateway's CA issued, and intact, is known to carry the
// ceremony's own /Reason.
func EnvelopeOfReason(r string) (id string, ok bool) {
	for _, prefixes := range []map[string]string{reasonPrefixes, certificatePrefixes} {
		for _, p := range prefixes {
			if id, ok := strings.CutPrefix(r, p); ok && id != "" && !strings.ContainsAny(id, " ,") {
				return id, true
			}
		}
	}
	return "", false
}

// EnvelopeOfReason is the function EnvelopeOfReason, for verdict.Finder.
func (*Ceremony) EnvelopeOfReason(r string) (id string, ok bool) { return EnvelopeOfReason(r) }

// stamp is the n-th signature's visible mark (from 0) on the last page
// of a document of pages pages: each signer its own slot, so that the
// signers' marks never overlap.
func stamp(env *workflow.Envelope, r *workflow.Recipient, name string, n, pages int) *pades.Stamp {
	role, ref := "Signer", "Envelope "
	if env.Language == "fr" {
		role, ref = "Signataire", "Demande "
	}
	return &pades.Stamp{Page: max(pages, 1), Slot: n, Name: name, Role: role + " · " + r.Email, Reason: ref + env.ID}
}
