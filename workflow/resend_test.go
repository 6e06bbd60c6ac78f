package workflow

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/parapheur/parapheur/workflow/audit"
)

// TestResend checks which mail an operator's resend asks for, to whom, in
// each state of the envelope, and that it is refused, saying why, when the
// address has no mail due.
func TestResend(t *testing.T) {
	later := 20 * 24 * time.Hour // past the deadline
	completed := seq(allSigned(), one(Completed{Meta: at(4 * time.Hour), Certificate: "cert"}))
	declined := seq(step1Done(), verify("r2", 2*time.Hour), one(Declined{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2", Reason: "wrong amount"}))
	cancelled := one(Cancelled{Meta: at(time.Hour), By: "agent@org.example", Reason: "replaced"})
	resend := func(email string, d time.Duration) Resend {
		return Resend{Meta: at(d), By: "operator", Email: email}
	}
	for _, tt := range []struct {
		name    string
		history []Event
		event   Resend
		wantErr *Error
		// on success: the effects and the audit record's details
		wantEffects []string
		wantDetails map[string]string
	}{
		{
			name: "the recipient whose turn it is gets a new invitation", event: resend("Chef@org.example", time.Hour),
			wantEffects: []string{"notify:invitation:[r1]:sender=false"},
			wantDetails: map[string]string{"to": "Chef@org.example", "recipients": "r1", "mail": "invitation"},
		},
		{
			name: "a parallel signer of the running step gets a new invitation", history: step1Done(), event: resend("paul@partner.example", 2*time.Hour),
			wantEffects: []string{"notify:invitation:[r3]:sender=false"},
			wantDetails: map[string]string{"to": "paul@partner.example", "recipients": "r3", "mail": "invitation"},
		},
		{
			name: "the sender of an envelope in progress gets the acknowledgement", event: resend("agent@org.example", time.Hour),
			wantEffects: []string{"notify:acknowledgement:[]:sender=true"},
			wantDetails: map[string]string{"to": "agent@org.example", "recipients": "", "mail": "acknowledgement"},
		},
		{
			name: "every recipient and the sender get the completion mail again", history: completed, event: resend("archives@org.example", 5*time.Hour),
			wantEffects: []string{"notify:completion:[r5]:sender=false"},
			wantDetails: map[string]string{"to": "archives@org.example", "recipients": "r5", "mail": "completion"},
		},
		{
			name: "the sender gets the completion mail again", history: completed, event: resend("agent@org.example", later),
			wantEffects: []string{"notify:completion:[]:sender=true"},
			wantDetails: map[string]string{"to": "agent@org.example", "recipients": "", "mail": "completion"},
		},
		{
			name: "who had acted gets the decline notice again, about who declined", history: declined, event: resend("chef@org.example", 3*time.Hour),
			wantEffects: []string{"notify:declined:[r1]:sender=false:about=r2"},
			wantDetails: map[string]string{"to": "chef@org.example", "recipients": "r1", "mail": "declined"},
		},
		{
			name: "the sender gets the cancellation notice again", history: cancelled, event: resend("agent@org.example", 2*time.Hour),
			wantEffects: []string{"notify:cancelled:[]:sender=true"},
			wantDetails: map[string]string{"to": "agent@org.example", "recipients": "", "mail": "cancelled"},
		},
		{name: "a signer whose step has not started has no mail due", event: resend("marie@partner.example", time.Hour), wantErr: ErrNothingToResend},
		{name: "a recipient who acted has no invitation due", history: step1Done(), event: resend("chef@org.example", 2*time.Hour), wantErr: ErrNothingToResend},
		{name: "who never acted was not told of the cancellation", history: cancelled, event: resend("chef@org.example", 2*time.Hour), wantErr: ErrNothingToResend},
		{name: "an address of no party is refused", event: resend("eve@example.com", time.Hour), wantErr: ErrUnknownRecipient},
		{name: "nothing is resent while completing", history: allSigned(), event: resend("agent@org.example", 4*time.Hour), wantErr: ErrCompleting},
		{name: "no invitation is resent past the deadline", event: resend("chef@org.example", later), wantErr: ErrDeadlinePassed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := run(t, created(t), tt.history)
			tr, err := Apply(e, tt.event)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || err.Error() == tt.wantErr.Message {
					t.Fatalf("Apply = %v, want a %s refusal that says more than %q", err, tt.wantErr.Code, tt.wantErr.Message)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got := effectKinds(tr.Effects); !reflect.DeepEqual(got, tt.wantEffects) {
				t.Errorf("effects = %v, want %v", got, tt.wantEffects)
			}
			if len(tr.Audit) != 1 || tr.Audit[0].Type != audit.Resent || tr.Audit[0].Actor != "operator" || !reflect.DeepEqual(tr.Audit[0].Details, tt.wantDetails) {
				t.Errorf("audit = %+v, want one %s record by operator with %v", tr.Audit, audit.Resent, tt.wantDetails)
			}
			if tr.Envelope.State != e.State {
				t.Errorf("a resend moved the envelope from %s to %s", e.State, tr.Envelope.State)
			}
		})
	}
}
