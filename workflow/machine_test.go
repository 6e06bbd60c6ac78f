package workflow

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/workflow/audit"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func at(d time.Duration) Meta {
	return Meta{At: t0.Add(d), Client: Client{IP: "192.0.2.10", UserAgent: "test"}}
}

// draft: step 1 approver r1 (chef), step 2 parallel signers r2 (marie) and
// r3 (paul), a copy r4 and an archivist r5; deadline in 10 days, reminders
// every 3 days.
func draft() Draft {
	return Draft{
		ID: "E1", Title: "Convention de partenariat", Language: "fr",
		Sender:     Party{Name: "Agent", Email: "agent@org.example"},
		SenderAuth: "dmarc=pass",
		Documents:  []Document{{Name: "convention.pdf", Pages: 3, Original: "aa", Size: 100}},
		Steps: []DraftStep{
			{Role: Approver, Parties: []Party{{Name: "Chef", Email: "chef@org.example"}}},
			{Role: Signer, Parties: []Party{{Name: "Marie", Email: "marie@partner.example", Phone: "+33612345678"}, {Email: "paul@partner.example"}}},
		},
		Copies:        []Party{{Email: "copie@org.example"}},
		Archivists:    []Party{{Email: "archives@org.example"}},
		Deadline:      t0.Add(10 * 24 * time.Hour),
		ReminderEvery: 3 * 24 * time.Hour,
	}
}

func created(t *testing.T) *Envelope {
	t.Helper()
	tr, err := Create(draft(), t0)
	if err != nil {
		t.Fatal(err)
	}
	return tr.Envelope
}

var mac = []byte("mac-of-123456")

// verify is the event pair a recipient goes through before acting.
func verify(id string, d time.Duration) []Event {
	return []Event{
		CodeSent{Meta: at(d), RecipientID: id, MAC: mac, Channel: "email"},
		CodeVerified{Meta: at(d + time.Minute), RecipientID: id, MAC: mac},
	}
}

// failures: r1 is sent a code d after t0, then enters n wrong codes a
// minute later.
func failures(n int, d time.Duration) []Event {
	evs := []Event{CodeSent{Meta: at(d), RecipientID: "r1", MAC: mac, Channel: "email"}}
	for range n {
		evs = append(evs, CodeFailed{Meta: at(d + time.Minute), RecipientID: "r1"})
	}
	return evs
}

func seq(groups ...[]Event) []Event {
	var all []Event
	for _, g := range groups {
		all = append(all, g...)
	}
	return all
}

func one(evs ...Event) []Event { return evs }

var sig = Signature{CertSerial: "0a1b", Documents: []DocumentVersion{{Index: 0, Previous: "aa", SHA256: "bb", Size: 150}}}

// sig2 is the second signature, made on sig's version.
var sig2 = Signature{CertSerial: "0c", Documents: []DocumentVersion{{Index: 0, Previous: "bb", SHA256: "cc", Size: 200}}}

// step1Done: the approver approved; the signers are pending.
func step1Done() []Event {
	return seq(verify("r1", time.Hour), one(Approved{Meta: at(time.Hour + 2*time.Minute), RecipientID: "r1"}))
}

// allSigned: every step is done; completion is under way.
func allSigned() []Event {
	return seq(step1Done(),
		verify("r2", 2*time.Hour), one(Signed{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2", Signature: sig}),
		verify("r3", 3*time.Hour), one(Signed{Meta: at(3*time.Hour + 2*time.Minute), RecipientID: "r3", Signature: sig2}))
}

func run(t *testing.T, e *Envelope, evs []Event) *Envelope {
	t.Helper()
	for i, ev := range evs {
		tr, err := Apply(e, ev)
		if err != nil {
			t.Fatalf("setup event %d (%T): %v", i, ev, err)
		}
		e = tr.Envelope
	}
	return e
}

func effectKinds(effs []Effect) []string {
	var out []string
	for _, f := range effs {
		switch f := f.(type) {
		case Notify:
			about := ""
			if f.About != "" {
				about = ":about=" + f.About
			}
			out = append(out, fmt.Sprintf("notify:%s:%v:sender=%v%s", f.Notice, f.Recipients, f.ToSender, about))
		case SendCode:
			out = append(out, "code:"+f.RecipientID+":"+f.Channel)
		case Schedule:
			out = append(out, fmt.Sprintf("schedule:%s:%s", f.Timer, f.At.Sub(t0)))
		case Complete:
			out = append(out, "complete")
		}
	}
	return out
}

func auditTypes(recs []audit.Record) []audit.Type {
	var out []audit.Type
	for _, r := range recs {
		out = append(out, r.Type)
	}
	return out
}

func TestCreate(t *testing.T) {
	tr, err := Create(draft(), t0)
	if err != nil {
		t.Fatal(err)
	}
	e := tr.Envelope
	wantEffects := []string{
		"notify:acknowledgement:[]:sender=true",
		"schedule:expiry:240h0m0s",
		"schedule:reminder:72h0m0s",
		"notify:invitation:[r1]:sender=false",
	}
	if got := effectKinds(tr.Effects); !reflect.DeepEqual(got, wantEffects) {
		t.Errorf("effects = %v, want %v", got, wantEffects)
	}
	if got := auditTypes(tr.Audit); !reflect.DeepEqual(got, []audit.Type{audit.Submitted}) {
		t.Errorf("audit = %v", got)
	}
	if tr.Audit[0].Details["sender_auth"] != "dmarc=pass" {
		t.Errorf("the first audit event must carry the sender authentication, got %v", tr.Audit[0].Details)
	}
	states := map[string]RecipientState{}
	for _, r := range e.Recipients {
		states[r.ID+"/"+string(r.Role)] = r.State
	}
	want := map[string]RecipientState{"r1/approver": Pending, "r2/signer": Waiting, "r3/signer": Waiting, "r4/cc": Waiting, "r5/archivist": Waiting}
	if !reflect.DeepEqual(states, want) {
		t.Errorf("recipients = %v, want %v", states, want)
	}
	if e.Documents[0].Current != "aa" || e.State != StateInProgress || e.CurrentStep != 0 {
		t.Errorf("envelope = %+v", e)
	}
	if err := audit.VerifyEnd(tr.Audit, e.Audit); err != nil {
		t.Error(err)
	}
}

func TestCreateRefusesBadDrafts(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Draft)
		want   string
	}{
		{"no document", func(d *Draft) { d.Documents = nil }, "no document"},
		{"no signer", func(d *Draft) { d.Steps = d.Steps[:1] }, "no signer"},
		{"empty step", func(d *Draft) { d.Steps[1].Parties = nil }, "step 2 names nobody"},
		{"copy as a step", func(d *Draft) { d.Steps[0].Role = Copy }, `step 1 has role "cc"`},
		{"past deadline", func(d *Draft) { d.Deadline = t0.Add(-time.Hour) }, "is not in the future"},
		{"no sender", func(d *Draft) { d.Sender.Email = "" }, "no sender"},
		{"recipient without address", func(d *Draft) { d.Steps[1].Parties[1].Email = "" }, "without an address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := draft()
			tt.change(&d)
			_, err := Create(d, t0)
			if !errors.Is(err, ErrInvalidDraft) {
				t.Fatalf("Create = %v, want ErrInvalidDraft", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

// TestApply is the transition table: a history that brings the envelope to
// a situation, one event, and what must come out.
func TestApply(t *testing.T) {
	later := 20 * 24 * time.Hour // past the deadline
	tests := []struct {
		name    string
		history []Event
		event   Event
		wantErr *Error
		// checks on success
		wantState   State
		wantEffects []string
		wantAudit   []audit.Type
		check       func(t *testing.T, e *Envelope)
	}{
		{
			name:      "a second delivered invitation (a replay) changes nothing but the audit",
			history:   one(DeliveryAttempted{Meta: at(time.Minute), Notice: Invitation, To: "r1", Outcome: OutcomeDelivered}),
			event:     DeliveryAttempted{Meta: at(2 * time.Minute), Notice: Invitation, To: "r1", Outcome: OutcomeDelivered},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.DeliveryAttempt},
			check: func(t *testing.T, e *Envelope) {
				if !e.Recipient("r1").SentAt.Equal(t0.Add(time.Minute)) {
					t.Errorf("SentAt must keep the first delivery, got %v", e.Recipient("r1").SentAt)
				}
			},
		},
		{
			name: "view is audited every time", history: one(Viewed{Meta: at(time.Minute), RecipientID: "r1"}),
			event: Viewed{Meta: at(time.Hour), RecipientID: "r1"}, wantState: StateInProgress, wantAudit: []audit.Type{audit.Viewed},
			check: func(t *testing.T, e *Envelope) {
				if !e.Recipient("r1").ViewedAt.Equal(t0.Add(time.Minute)) {
					t.Errorf("ViewedAt must keep the first view, got %v", e.Recipient("r1").ViewedAt)
				}
			},
		},
		{
			name: "a reload by the same client within ViewEvery is not recorded", history: one(Viewed{Meta: at(time.Minute), RecipientID: "r1"}),
			event: Viewed{Meta: at(time.Minute + ViewEvery - time.Second), RecipientID: "r1"}, wantState: StateInProgress,
		},
		{
			name: "a second view by the same client at the same instant is not recorded", history: one(Viewed{Meta: at(time.Minute), RecipientID: "r1"}),
			event: Viewed{Meta: at(time.Minute), RecipientID: "r1"}, wantState: StateInProgress,
		},
		{
			name: "the same client after ViewEvery is recorded", history: one(Viewed{Meta: at(time.Minute), RecipientID: "r1"}),
			event: Viewed{Meta: at(time.Minute + ViewEvery), RecipientID: "r1"}, wantState: StateInProgress, wantAudit: []audit.Type{audit.Viewed},
			check: func(t *testing.T, e *Envelope) {
				if r := e.Recipient("r1"); !r.ViewedAt.Equal(t0.Add(time.Minute)) || !r.LastViewAt.Equal(t0.Add(time.Minute+ViewEvery)) {
					t.Errorf("ViewedAt %v must keep the first view, LastViewAt %v the last", r.ViewedAt, r.LastViewAt)
				}
			},
		},
		{
			name: "another client within ViewEvery is recorded", history: one(Viewed{Meta: at(time.Minute), RecipientID: "r1"}),
			event:     Viewed{Meta: Meta{At: t0.Add(2 * time.Minute), Client: Client{IP: "198.51.100.7", UserAgent: "scanner"}}, RecipientID: "r1"},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.Viewed},
		},
		{
			name: "a view after another action of the same client is recorded",
			history: one(Viewed{Meta: Meta{At: t0.Add(time.Minute), Client: Client{IP: "198.51.100.7", UserAgent: "scanner"}}, RecipientID: "r1"},
				Viewed{Meta: at(2 * time.Minute), RecipientID: "r1"},
				Viewed{Meta: Meta{At: t0.Add(3 * time.Minute), Client: Client{IP: "198.51.100.7", UserAgent: "scanner"}}, RecipientID: "r1"}),
			event: Viewed{Meta: at(4 * time.Minute), RecipientID: "r1"}, wantState: StateInProgress, wantAudit: []audit.Type{audit.Viewed},
		},
		{
			name: "a later signer may view the page", event: Viewed{Meta: at(time.Minute), RecipientID: "r2"},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.Viewed},
		},
		{
			name:  "code sent by sms",
			event: CodeSent{Meta: at(time.Minute), RecipientID: "r1", MAC: mac, Channel: "sms"}, wantState: StateInProgress,
			wantEffects: []string{"code:r1:sms"}, wantAudit: []audit.Type{audit.CodeSent},
			check: func(t *testing.T, e *Envelope) {
				c := e.Recipient("r1").Code
				if c == nil || !c.ExpiresAt.Equal(t0.Add(11*time.Minute)) {
					t.Errorf("code = %+v", c)
				}
			},
		},
		{
			name: "sixth code within the hour is refused",
			history: one(
				CodeSent{Meta: at(1 * time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"},
				CodeSent{Meta: at(2 * time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"},
				CodeSent{Meta: at(3 * time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"},
				CodeSent{Meta: at(4 * time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"},
				CodeSent{Meta: at(5 * time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"}),
			event: CodeSent{Meta: at(6 * time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"}, wantErr: ErrTooManyCodes,
		},
		{
			name: "a code an hour after the first five is allowed",
			history: one(
				CodeSent{Meta: at(1 * time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"},
				CodeSent{Meta: at(2 * time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"},
				CodeSent{Meta: at(3 * time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"},
				CodeSent{Meta: at(4 * time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"},
				CodeSent{Meta: at(5 * time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"}),
			event:     CodeSent{Meta: at(61 * time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"},
			wantState: StateInProgress, wantEffects: []string{"code:r1:email"}, wantAudit: []audit.Type{audit.CodeSent},
		},
		{
			name: "code out of turn is refused", event: CodeSent{Meta: at(time.Minute), RecipientID: "r2", MAC: mac, Channel: "email"},
			wantErr: ErrNotYourTurn,
		},
		{
			name: "a copy gets no code", event: CodeSent{Meta: at(time.Minute), RecipientID: "r4", MAC: mac, Channel: "email"},
			wantErr: ErrWrongRole,
		},
		{
			name: "unknown recipient", event: Viewed{Meta: at(time.Minute), RecipientID: "r9"}, wantErr: ErrUnknownRecipient,
		},
		{
			name:    "right code verifies and is used up",
			history: one(CodeSent{Meta: at(time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"}),
			event:   CodeVerified{Meta: at(2 * time.Minute), RecipientID: "r1", MAC: mac}, wantState: StateInProgress,
			wantAudit: []audit.Type{audit.CodeVerified},
			check: func(t *testing.T, e *Envelope) {
				if r := e.Recipient("r1"); r.Code != nil || r.VerifiedAt.IsZero() {
					t.Errorf("code must be consumed and verification recorded: %+v", r)
				}
			},
		},
		{
			name:    "used code cannot verify twice",
			history: verify("r1", time.Minute),
			event:   CodeVerified{Meta: at(3 * time.Minute), RecipientID: "r1", MAC: mac}, wantErr: ErrNoCode,
		},
		{
			name:    "wrong code",
			history: one(CodeSent{Meta: at(time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"}),
			event:   CodeVerified{Meta: at(2 * time.Minute), RecipientID: "r1", MAC: []byte("other")}, wantErr: ErrWrongCode,
		},
		{
			name:    "expired code",
			history: one(CodeSent{Meta: at(time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"}),
			event:   CodeVerified{Meta: at(11 * time.Minute), RecipientID: "r1", MAC: mac}, wantErr: ErrCodeExpired,
		},
		{
			name:    "a failure is counted",
			history: one(CodeSent{Meta: at(time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"}),
			event:   CodeFailed{Meta: at(2 * time.Minute), RecipientID: "r1"}, wantState: StateInProgress,
			wantAudit: []audit.Type{audit.CodeFailed},
			check: func(t *testing.T, e *Envelope) {
				if c := e.Recipient("r1").Code; c == nil || c.Failures != 1 {
					t.Errorf("code = %+v", c)
				}
			},
		},
		{
			name:    "the fifth failure voids the code",
			history: failures(5, time.Minute),
			event:   CodeVerified{Meta: at(3 * time.Minute), RecipientID: "r1", MAC: mac}, wantErr: ErrNoCode,
		},
		{
			name:    "the fourth failure tells nobody",
			history: failures(3, time.Minute),
			event:   CodeFailed{Meta: at(3 * time.Minute), RecipientID: "r1"}, wantState: StateInProgress,
			wantAudit: []audit.Type{audit.CodeFailed},
			check: func(t *testing.T, e *Envelope) {
				if c := e.Recipient("r1").Code; c == nil || c.Failures != 4 {
					t.Errorf("after four failures the code must still stand: %+v", c)
				}
			},
		},
		{
			name:    "the fifth failure voids the code and tells the sender",
			history: failures(4, time.Minute),
			event:   CodeFailed{Meta: at(3 * time.Minute), RecipientID: "r1"}, wantState: StateInProgress,
			wantAudit: []audit.Type{audit.CodeFailed}, wantEffects: []string{"notify:code_locked:[]:sender=true:about=r1"},
			check: func(t *testing.T, e *Envelope) {
				if c := e.Recipient("r1").Code; c != nil {
					t.Errorf("the fifth failure must void the code: %+v", c)
				}
			},
		},
		{
			name:    "a new code after a lock can be asked for and locks again with a new notice",
			history: seq(failures(5, time.Minute), failures(4, 4*time.Minute)),
			event:   CodeFailed{Meta: at(6 * time.Minute), RecipientID: "r1"}, wantState: StateInProgress,
			wantAudit: []audit.Type{audit.CodeFailed}, wantEffects: []string{"notify:code_locked:[]:sender=true:about=r1"},
		},
		{
			name: "failure without a code", event: CodeFailed{Meta: at(time.Minute), RecipientID: "r1"}, wantErr: ErrNoCode,
		},
		{
			name: "approve without a code is refused", event: Approved{Meta: at(time.Minute), RecipientID: "r1"}, wantErr: ErrNotVerified,
		},
		{
			name: "approve long after the code is refused", history: verify("r1", time.Minute),
			event: Approved{Meta: at(time.Hour), RecipientID: "r1"}, wantErr: ErrNotVerified,
		},
		{
			name: "approval ends step 1 and invites the parallel signers", history: verify("r1", time.Minute),
			event: Approved{Meta: at(3 * time.Minute), RecipientID: "r1"}, wantState: StateInProgress,
			wantEffects: []string{"notify:invitation:[r2 r3]:sender=false"}, wantAudit: []audit.Type{audit.Approved},
			check: func(t *testing.T, e *Envelope) {
				if e.CurrentStep != 1 || e.Recipient("r2").State != Pending || e.Recipient("r3").State != Pending {
					t.Errorf("step = %d, r2 %s, r3 %s", e.CurrentStep, e.Recipient("r2").State, e.Recipient("r3").State)
				}
				if e.Recipient("r1").LastSeen.IP != "192.0.2.10" {
					t.Errorf("the acting client must be kept for the certificate")
				}
			},
		},
		{
			name: "an approver cannot sign", history: verify("r1", time.Minute),
			event: Signed{Meta: at(3 * time.Minute), RecipientID: "r1", Signature: sig}, wantErr: ErrWrongRole,
		},
		{
			name: "a signer cannot approve", history: seq(step1Done(), verify("r2", 2*time.Hour)),
			event: Approved{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2"}, wantErr: ErrWrongRole,
		},
		{
			name: "first parallel signer: the step goes on", history: seq(step1Done(), verify("r2", 2*time.Hour)),
			event: Signed{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2", Signature: sig}, wantState: StateInProgress,
			wantAudit: []audit.Type{audit.Signed},
			check: func(t *testing.T, e *Envelope) {
				if e.CurrentStep != 1 || e.Documents[0].Current != "bb" || e.Recipient("r2").Signature.CertSerial != "0a1b" {
					t.Errorf("envelope = %+v", e)
				}
			},
		},
		{
			name: "last signer: completion is asked for",
			history: seq(step1Done(), verify("r2", 2*time.Hour),
				one(Signed{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2", Signature: sig}), verify("r3", 3*time.Hour)),
			event:     Signed{Meta: at(3*time.Hour + 2*time.Minute), RecipientID: "r3", Signature: sig2},
			wantState: StateInProgress, wantEffects: []string{"complete"}, wantAudit: []audit.Type{audit.Signed},
		},
		{
			name: "a signature made on an older version is refused",
			history: seq(step1Done(), verify("r2", 2*time.Hour), verify("r3", 2*time.Hour),
				one(Signed{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2", Signature: sig})),
			event: Signed{Meta: at(2*time.Hour + 3*time.Minute), RecipientID: "r3", Signature: sig}, wantErr: ErrStaleDocument,
		},
		{
			name: "a signature on an unknown version is refused", history: seq(step1Done(), verify("r2", 2*time.Hour)),
			event: Signed{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2",
				Signature: Signature{CertSerial: "0d", Documents: []DocumentVersion{{Index: 0, Previous: "zz", SHA256: "ee", Size: 10}}}},
			wantErr: ErrStaleDocument,
		},
		{
			name: "who may sign is told before a stale version", history: step1Done(),
			event: Signed{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2", Signature: sig2}, wantErr: ErrNotVerified,
		},
		{
			name: "act twice is refused", history: seq(step1Done(), verify("r2", 2*time.Hour),
				one(Signed{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2", Signature: sig})),
			event: Signed{Meta: at(2*time.Hour + 3*time.Minute), RecipientID: "r2", Signature: sig}, wantErr: ErrAlreadyActed,
		},
		{
			name: "act out of turn is refused", event: Signed{Meta: at(time.Minute), RecipientID: "r2", Signature: sig}, wantErr: ErrNotYourTurn,
		},
		{
			name: "decline needs a reason", history: verify("r1", time.Minute),
			event: Declined{Meta: at(3 * time.Minute), RecipientID: "r1", Reason: "  "}, wantErr: ErrReasonRequired,
		},
		{
			name: "decline needs a code on the page", event: Declined{Meta: at(3 * time.Minute), RecipientID: "r1", Reason: "wrong amount"},
			wantErr: ErrNotVerified,
		},
		{
			name:    "decline ends the envelope and tells the sender and those who acted",
			history: seq(step1Done(), verify("r2", 2*time.Hour)),
			event:   Declined{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2", Reason: "wrong amount"}, wantState: StateDeclined,
			wantEffects: []string{"notify:declined:[r1]:sender=true:about=r2"}, wantAudit: []audit.Type{audit.Declined},
			check: func(t *testing.T, e *Envelope) {
				if e.Reason != "wrong amount" || e.Recipient("r2").State != HasDeclined || e.EndedAt.IsZero() {
					t.Errorf("envelope = %+v", e)
				}
			},
		},
		{
			// … and the decliner, who sees no page, gets the notice as a
			// confirmation; on the page, the page is the confirmation.
			name: "decline by reply mail needs no code", event: Declined{Meta: at(time.Minute), RecipientID: "r1", Reason: "pas d'accord", ByMail: true},
			wantState: StateDeclined, wantEffects: []string{"notify:declined:[r1]:sender=true:about=r1"}, wantAudit: []audit.Type{audit.Declined},
		},
		{
			name:    "sign after decline is refused",
			history: seq(step1Done(), verify("r2", 2*time.Hour), verify("r3", 2*time.Hour), one(Declined{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2", Reason: "no"})),
			event:   Signed{Meta: at(2*time.Hour + 3*time.Minute), RecipientID: "r3", Signature: sig}, wantErr: ErrEnded,
		},
		{
			name: "cancel by the sender", history: step1Done(),
			event:     Cancelled{Meta: at(2 * time.Hour), By: "agent@org.example", Reason: "replaced by v2"},
			wantState: StateCancelled, wantEffects: []string{"notify:cancelled:[r1]:sender=true"}, wantAudit: []audit.Type{audit.Cancelled},
		},
		{
			name:    "cancel twice is a replay",
			history: one(Cancelled{Meta: at(time.Hour), By: "agent@org.example"}),
			event:   Cancelled{Meta: at(2 * time.Hour), By: "agent@org.example"}, wantState: StateCancelled,
		},
		{
			name: "cancel after completion is refused", history: seq(allSigned(), one(Completed{Meta: at(4 * time.Hour), Certificate: "cert"})),
			event: Cancelled{Meta: at(5 * time.Hour), By: "agent@org.example"}, wantErr: ErrEnded,
		},
		{
			name: "cancel while completing is refused", history: allSigned(),
			event: Cancelled{Meta: at(5 * time.Hour), By: "agent@org.example"}, wantErr: ErrCompleting,
		},
		{
			name: "expiry at the deadline", history: step1Done(), event: Expired{Meta: at(10 * 24 * time.Hour)},
			wantState: StateExpired, wantEffects: []string{"notify:expired:[r1]:sender=true"}, wantAudit: []audit.Type{audit.Expired},
		},
		{
			name: "an early expiry timer is refused", event: Expired{Meta: at(24 * time.Hour)}, wantErr: ErrNotDue,
		},
		{
			name: "expiry replayed", history: one(Expired{Meta: at(later)}), event: Expired{Meta: at(later + time.Hour)}, wantState: StateExpired,
		},
		{
			name: "expiry while completing does nothing", history: allSigned(), event: Expired{Meta: at(later)}, wantState: StateInProgress,
		},
		{
			name: "act after the deadline, before the timer fired", history: one(CodeSent{Meta: at(time.Minute), RecipientID: "r1", MAC: mac, Channel: "email"}),
			event: CodeVerified{Meta: at(later), RecipientID: "r1", MAC: mac}, wantErr: ErrDeadlinePassed,
		},
		{
			name: "act after expiry", history: seq(verify("r1", time.Minute), one(Expired{Meta: at(later)})),
			event: Approved{Meta: at(later + time.Minute), RecipientID: "r1"}, wantErr: ErrEnded,
		},
		{
			name: "reminder reminds the pending and schedules the next", history: seq(step1Done(), verify("r2", 2*time.Hour),
				one(Signed{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2", Signature: sig})),
			event:       ReminderDue{Meta: at(72 * time.Hour), Due: t0.Add(72 * time.Hour)},
			wantState:   StateInProgress,
			wantEffects: []string{"notify:reminder:[r3]:sender=false", "schedule:reminder:144h0m0s"}, wantAudit: []audit.Type{audit.ReminderSent},
		},
		{
			name: "a late reminder timer reminds once and schedules the next after now", history: step1Done(),
			event:       ReminderDue{Meta: at(150 * time.Hour), Due: t0.Add(72 * time.Hour)},
			wantState:   StateInProgress,
			wantEffects: []string{"notify:reminder:[r2 r3]:sender=false", "schedule:reminder:216h0m0s"}, wantAudit: []audit.Type{audit.ReminderSent},
		},
		{
			name: "no reminder scheduled past the deadline", history: one(ReminderDue{Meta: at(72 * time.Hour), Due: t0.Add(72 * time.Hour)},
				ReminderDue{Meta: at(144 * time.Hour), Due: t0.Add(144 * time.Hour)}),
			event: ReminderDue{Meta: at(216 * time.Hour), Due: t0.Add(216 * time.Hour)}, wantState: StateInProgress,
			wantEffects: []string{"notify:reminder:[r1]:sender=false"}, wantAudit: []audit.Type{audit.ReminderSent},
			check: func(t *testing.T, e *Envelope) {
				if !e.NextReminder.IsZero() {
					t.Errorf("NextReminder = %v, want none", e.NextReminder)
				}
			},
		},
		{
			name: "a reminder timer firing after the deadline does nothing", history: one(ReminderDue{Meta: at(72 * time.Hour), Due: t0.Add(72 * time.Hour)},
				ReminderDue{Meta: at(144 * time.Hour), Due: t0.Add(144 * time.Hour)}),
			event: ReminderDue{Meta: at(later), Due: t0.Add(216 * time.Hour)}, wantState: StateInProgress,
		},
		{
			name: "a replayed reminder timer does nothing", history: one(ReminderDue{Meta: at(72 * time.Hour), Due: t0.Add(72 * time.Hour)}),
			event: ReminderDue{Meta: at(73 * time.Hour), Due: t0.Add(72 * time.Hour)}, wantState: StateInProgress,
		},
		{
			name: "the sender's manual reminder", event: ReminderDue{Meta: at(time.Hour)}, wantState: StateInProgress,
			wantEffects: []string{"notify:reminder:[r1]:sender=false"}, wantAudit: []audit.Type{audit.ReminderSent},
			check: func(t *testing.T, e *Envelope) {
				if !e.NextReminder.Equal(t0.Add(72 * time.Hour)) {
					t.Errorf("a manual reminder must not move the schedule: %v", e.NextReminder)
				}
			},
		},
		{
			name: "a manual reminder within the hour of another is refused", history: one(ReminderDue{Meta: at(time.Hour)}),
			event: ReminderDue{Meta: at(time.Hour + 59*time.Minute)}, wantErr: ErrReminderTooSoon,
		},
		{
			name: "a manual reminder within the hour of a scheduled one is refused", history: one(ReminderDue{Meta: at(72 * time.Hour), Due: t0.Add(72 * time.Hour)}),
			event: ReminderDue{Meta: at(72*time.Hour + 30*time.Minute)}, wantErr: ErrReminderTooSoon,
		},
		{
			name: "a manual reminder an hour after another goes", history: one(ReminderDue{Meta: at(time.Hour)}),
			event: ReminderDue{Meta: at(2 * time.Hour)}, wantState: StateInProgress,
			wantEffects: []string{"notify:reminder:[r1]:sender=false"}, wantAudit: []audit.Type{audit.ReminderSent},
		},
		{
			name: "a scheduled reminder is not held back by a manual one", history: one(ReminderDue{Meta: at(72*time.Hour - 10*time.Minute)}),
			event:       ReminderDue{Meta: at(72 * time.Hour), Due: t0.Add(72 * time.Hour)},
			wantState:   StateInProgress,
			wantEffects: []string{"notify:reminder:[r1]:sender=false", "schedule:reminder:144h0m0s"}, wantAudit: []audit.Type{audit.ReminderSent},
		},
		{
			name: "manual reminder on an ended envelope is refused", history: one(Cancelled{Meta: at(time.Hour), By: "agent@org.example"}),
			event: ReminderDue{Meta: at(2 * time.Hour)}, wantErr: ErrEnded,
		},
		{
			name: "reminder timer after the end does nothing", history: one(Cancelled{Meta: at(time.Hour), By: "agent@org.example"}),
			event: ReminderDue{Meta: at(72 * time.Hour), Due: t0.Add(72 * time.Hour)}, wantState: StateCancelled,
		},
		{
			name: "bounce is recorded and the sender told", event: Bounced{Meta: at(time.Minute), Email: "CHEF@org.example", Reason: "550 5.1.1 no such user"},
			wantState: StateInProgress, wantEffects: []string{"notify:delivery_failure:[]:sender=true:about=r1"}, wantAudit: []audit.Type{audit.Bounced},
			check: func(t *testing.T, e *Envelope) {
				if e.Recipient("r1").DeliveryFailure != "550 5.1.1 no such user" {
					t.Errorf("failure = %q", e.Recipient("r1").DeliveryFailure)
				}
			},
		},
		{
			name: "a replayed bounce", history: one(Bounced{Meta: at(time.Minute), Email: "chef@org.example", Reason: "550"}),
			event: Bounced{Meta: at(2 * time.Minute), Email: "chef@org.example", Reason: "550"}, wantState: StateInProgress,
		},
		{
			name: "bounce for a stranger", event: Bounced{Meta: at(time.Minute), Email: "x@example.com", Reason: "550"}, wantErr: ErrUnknownRecipient,
		},
		{
			name:      "a delivered invitation is audited and counts as sent",
			event:     DeliveryAttempted{Meta: at(time.Minute), Notice: Invitation, To: "r1", Outcome: OutcomeDelivered, Answer: "250 2.0.0 Ok: queued as 4Xy"},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.DeliveryAttempt, audit.InvitationSent},
			check: func(t *testing.T, e *Envelope) {
				if !e.Recipient("r1").SentAt.Equal(t0.Add(time.Minute)) {
					t.Errorf("SentAt = %v", e.Recipient("r1").SentAt)
				}
			},
		},
		{
			name:      "a deferred attempt is audited only",
			event:     DeliveryAttempted{Meta: at(time.Minute), Notice: Invitation, To: "r1", Outcome: OutcomeDeferred, Answer: "451 4.3.0 try later"},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.DeliveryAttempt},
		},
		{
			name:      "a failed invitation tells the sender",
			event:     DeliveryAttempted{Meta: at(time.Minute), Notice: Invitation, To: "r1", Outcome: OutcomeFailed, Answer: "550 5.1.1 unknown user"},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.DeliveryAttempt},
			wantEffects: []string{"notify:delivery_failure:[]:sender=true:about=r1"},
		},
		{
			name:      "a failed mail to the sender tells the sender once",
			event:     DeliveryAttempted{Meta: at(time.Minute), Notice: Acknowledgement, Outcome: OutcomeFailed, Answer: "composing acknowledgement mail: no template"},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.DeliveryAttempt},
			wantEffects: []string{"notify:delivery_failure:[]:sender=true"},
		},
		{
			name:      "a failed failure notice to the sender is recorded without another notice",
			event:     DeliveryAttempted{Meta: at(time.Minute), Notice: BounceNotice, Outcome: OutcomeFailed, Answer: "550 5.1.1 unknown user"},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.DeliveryAttempt},
		},
		{
			name:      "a failed mail to the sender of an ended envelope is recorded only",
			history:   seq(verify("r1", time.Minute), one(Declined{Meta: at(3 * time.Minute), RecipientID: "r1", Reason: "no"})),
			event:     DeliveryAttempted{Meta: at(time.Hour), Notice: DeclineNotice, Outcome: OutcomeFailed, Answer: "550 5.1.1 unknown user"},
			wantState: StateDeclined, wantAudit: []audit.Type{audit.DeliveryAttempt},
		},
		{
			name:      "a started delivery is audited and changes nothing else",
			event:     DeliveryStarted{Meta: at(time.Minute), Notice: Invitation, To: "r1", Attempt: 2},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.DeliveryStart},
			check: func(t *testing.T, e *Envelope) {
				if r := e.Recipient("r1"); !r.SentAt.IsZero() || r.DeliveryFailure != "" {
					t.Errorf("a started delivery changed the recipient: %+v", r)
				}
			},
		},
		{
			name: "a started delivery to a stranger", event: DeliveryStarted{Meta: at(time.Minute), Notice: Invitation, To: "r9", Attempt: 1},
			wantErr: ErrUnknownRecipient,
		},
		{
			name: "completion before the steps are done is refused", history: step1Done(),
			event: Completed{Meta: at(4 * time.Hour), Certificate: "cert"}, wantErr: ErrNotCompleting,
		},
		{
			name: "completion seals and mails everyone", history: allSigned(),
			event:     Completed{Meta: at(4 * time.Hour), Certificate: "cert", Documents: []DocumentVersion{{Index: 0, SHA256: "dd", Size: 300}}},
			wantState: StateCompleted, wantEffects: []string{"notify:completion:[r1 r2 r3 r4 r5]:sender=true"}, wantAudit: []audit.Type{audit.Completed},
			check: func(t *testing.T, e *Envelope) {
				if e.Documents[0].Current != "dd" || e.Documents[0].Original != "aa" || e.Certificate != "cert" {
					t.Errorf("documents = %+v", e.Documents)
				}
				if e.Recipient("r4").State != Waiting || e.Recipient("r5").State != Waiting {
					t.Errorf("copies are marked %s and %s before their final mail was sent, want waiting", e.Recipient("r4").State, e.Recipient("r5").State)
				}
			},
		},
		{
			name: "a copy has the documents once the server took its final mail", history: seq(allSigned(), one(Completed{Meta: at(4 * time.Hour), Certificate: "cert"})),
			event:     DeliveryAttempted{Meta: at(5 * time.Hour), Notice: CompletionMail, To: "r4", Outcome: OutcomeDelivered, Answer: "250 2.0.0 Ok"},
			wantState: StateCompleted, wantAudit: []audit.Type{audit.DeliveryAttempt},
			check: func(t *testing.T, e *Envelope) {
				if e.Recipient("r4").State != Delivered || e.Recipient("r5").State != Waiting {
					t.Errorf("after r4's final mail was accepted: r4 %s, r5 %s", e.Recipient("r4").State, e.Recipient("r5").State)
				}
			},
		},
		{
			name: "a copy whose final mail was refused has not the documents", history: seq(allSigned(), one(Completed{Meta: at(4 * time.Hour), Certificate: "cert"})),
			event:     DeliveryAttempted{Meta: at(5 * time.Hour), Notice: CompletionMail, To: "r5", Outcome: OutcomeFailed, Answer: "550 5.1.1 unknown user"},
			wantState: StateCompleted, wantEffects: []string{"notify:delivery_failure:[r1 r2 r3]:sender=true:about=r5"}, wantAudit: []audit.Type{audit.DeliveryAttempt},
			check: func(t *testing.T, e *Envelope) {
				if r := e.Recipient("r5"); r.State != Waiting || r.DeliveryFailure != "550 5.1.1 unknown user" {
					t.Errorf("after r5's final mail was refused: %+v", r)
				}
			},
		},
		{
			name: "completion replayed", history: seq(allSigned(), one(Completed{Meta: at(4 * time.Hour), Certificate: "cert"})),
			event: Completed{Meta: at(5 * time.Hour), Certificate: "cert"}, wantState: StateCompleted,
		},
		{
			name: "the last signature records when completion began", history: seq(step1Done(), verify("r2", 2*time.Hour),
				one(Signed{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2", Signature: sig}), verify("r3", 3*time.Hour)),
			event:     Signed{Meta: at(3*time.Hour + 2*time.Minute), RecipientID: "r3", Signature: sig2},
			wantState: StateInProgress, wantEffects: []string{"complete"}, wantAudit: []audit.Type{audit.Signed},
			check: func(t *testing.T, e *Envelope) {
				if !e.StepsDoneAt.Equal(t0.Add(3*time.Hour + 2*time.Minute)) {
					t.Errorf("StepsDoneAt = %v", e.StepsDoneAt)
				}
			},
		},
		{
			name: "a seal is recorded on the current version", history: allSigned(),
			event:     Sealed{Meta: at(4 * time.Hour), Document: DocumentVersion{Index: 0, Previous: "cc", SHA256: "dd", Size: 300}, Level: "B-LTA", Serial: "5e"},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.Sealed},
			check: func(t *testing.T, e *Envelope) {
				if d := e.Documents[0]; d.Current != "dd" || d.Size != 300 || !d.Sealed {
					t.Errorf("document = %+v", d)
				}
			},
		},
		{
			name: "a replayed seal changes nothing", history: seq(allSigned(),
				one(Sealed{Meta: at(4 * time.Hour), Document: DocumentVersion{Index: 0, Previous: "cc", SHA256: "dd", Size: 300}})),
			event:     Sealed{Meta: at(5 * time.Hour), Document: DocumentVersion{Index: 0, Previous: "cc", SHA256: "dd", Size: 300}},
			wantState: StateInProgress,
		},
		{
			name: "a second seal of a document is refused", history: seq(allSigned(),
				one(Sealed{Meta: at(4 * time.Hour), Document: DocumentVersion{Index: 0, Previous: "cc", SHA256: "dd", Size: 300}})),
			event:   Sealed{Meta: at(5 * time.Hour), Document: DocumentVersion{Index: 0, Previous: "dd", SHA256: "ee", Size: 400}},
			wantErr: ErrAlreadySealed,
		},
		{
			name: "a seal made on an old version is refused", history: allSigned(),
			event:   Sealed{Meta: at(4 * time.Hour), Document: DocumentVersion{Index: 0, Previous: "bb", SHA256: "dd", Size: 300}},
			wantErr: ErrStaleDocument,
		},
		{
			name: "a seal before the steps are done is refused", history: step1Done(),
			event:   Sealed{Meta: at(4 * time.Hour), Document: DocumentVersion{Index: 0, Previous: "aa", SHA256: "dd", Size: 300}},
			wantErr: ErrNotCompleting,
		},
		{
			name: "a delayed completion tells the sender once", history: allSigned(),
			event:     CompletionDelayed{Meta: at(5 * time.Hour), Reason: " time-stamp authority unreachable "},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.CompletionDelay},
			wantEffects: []string{"notify:completion_delayed:[]:sender=true"},
			check: func(t *testing.T, e *Envelope) {
				if !e.DelayNoticeAt.Equal(t0.Add(5 * time.Hour)) {
					t.Errorf("DelayNoticeAt = %v", e.DelayNoticeAt)
				}
			},
		},
		{
			name: "a second delay is not told again", history: seq(allSigned(), one(CompletionDelayed{Meta: at(5 * time.Hour), Reason: "x"})),
			event: CompletionDelayed{Meta: at(6 * time.Hour), Reason: "y"}, wantState: StateInProgress,
		},
		{
			name: "a delay after completion is not told", history: seq(allSigned(), one(Completed{Meta: at(4 * time.Hour), Certificate: "cert"})),
			event: CompletionDelayed{Meta: at(6 * time.Hour), Reason: "y"}, wantState: StateCompleted,
		},
		{
			name: "a bounce is told to the sender and to those who acted", history: step1Done(),
			event:     Bounced{Meta: at(2 * time.Hour), Email: "paul@partner.example", Reason: "550 5.1.1 no such user"},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.Bounced},
			wantEffects: []string{"notify:delivery_failure:[r1]:sender=true:about=r3"},
		},
		{
			name: "a second bounce of the same recipient is recorded only", history: seq(step1Done(),
				one(Bounced{Meta: at(2 * time.Hour), Email: "paul@partner.example", Reason: "550 5.1.1 no such user"})),
			event:     Bounced{Meta: at(3 * time.Hour), Email: "paul@partner.example", Reason: "552 mailbox full"},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.Bounced},
		},
		{
			name: "a failed invitation is told to those who acted, not to its recipient", history: step1Done(),
			event:     DeliveryAttempted{Meta: at(2 * time.Hour), Notice: Invitation, To: "r2", Outcome: OutcomeFailed, Answer: "550 5.1.1 unknown user"},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.DeliveryAttempt},
			wantEffects: []string{"notify:delivery_failure:[r1]:sender=true:about=r2"},
		},
		{
			name: "a failed failure notice to a recipient makes no other", history: step1Done(),
			event:     DeliveryAttempted{Meta: at(2 * time.Hour), Notice: BounceNotice, To: "r1", Outcome: OutcomeFailed, Answer: "550 5.1.1 unknown user"},
			wantState: StateInProgress, wantAudit: []audit.Type{audit.DeliveryAttempt},
		},
		{
			name: "a failed final mail is told to the sender and to those who acted", history: seq(allSigned(), one(Completed{Meta: at(4 * time.Hour), Certificate: "cert"})),
			event:     DeliveryAttempted{Meta: at(5 * time.Hour), Notice: CompletionMail, To: "r4", Outcome: OutcomeFailed, Answer: "552 message too large"},
			wantState: StateCompleted, wantAudit: []audit.Type{audit.DeliveryAttempt},
			wantEffects: []string{"notify:delivery_failure:[r1 r2 r3]:sender=true:about=r4"},
		},
		{
			name: "a failed decline notice is told to the sender and to the others who acted",
			history: seq(step1Done(),
				verify("r2", 2*time.Hour), one(Signed{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2", Signature: sig}),
				verify("r3", 3*time.Hour), one(Declined{Meta: at(3*time.Hour + 2*time.Minute), RecipientID: "r3", Reason: "no"})),
			event:     DeliveryAttempted{Meta: at(4 * time.Hour), Notice: DeclineNotice, To: "r1", Outcome: OutcomeFailed, Answer: "550 5.1.1 unknown user"},
			wantState: StateDeclined, wantAudit: []audit.Type{audit.DeliveryAttempt},
			wantEffects: []string{"notify:delivery_failure:[r2]:sender=true:about=r1"},
		},
		{
			name: "completion of a declined envelope is refused", history: seq(verify("r1", time.Minute), one(Declined{Meta: at(3 * time.Minute), RecipientID: "r1", Reason: "no"})),
			event: Completed{Meta: at(5 * time.Hour), Certificate: "cert"}, wantErr: ErrEnded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := run(t, created(t), tt.history)
			snapshot := before.Clone()
			tr, err := Apply(before, tt.event)
			if !reflect.DeepEqual(before, snapshot) {
				t.Fatal("Apply changed its input envelope")
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Apply = %v, want %s", err, tt.wantErr.Code)
				}
				if err.Error() == tt.wantErr.Message {
					t.Errorf("error %q should say more than the generic message", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			e := tr.Envelope
			if e.State != tt.wantState {
				t.Errorf("state = %s, want %s", e.State, tt.wantState)
			}
			if got := effectKinds(tr.Effects); !reflect.DeepEqual(got, tt.wantEffects) {
				t.Errorf("effects = %v, want %v", got, tt.wantEffects)
			}
			if got := auditTypes(tr.Audit); !reflect.DeepEqual(got, tt.wantAudit) {
				t.Errorf("audit = %v, want %v", got, tt.wantAudit)
			}
			if !tr.Changed() && !reflect.DeepEqual(e, snapshot) {
				t.Errorf("an unchanged transition altered the envelope")
			}
			if tr.Changed() && (e.Audit.Seq != snapshot.Audit.Seq+uint64(len(tr.Audit)) || tr.Audit[0].Prev != snapshot.Audit.Hash) {
				t.Errorf("audit records do not continue the envelope's chain")
			}
			if tt.check != nil {
				tt.check(t, e)
			}
		})
	}
}

// TestFullTrailVerifies runs a whole envelope and checks the accumulated
// audit trail is one valid chain ending at the envelope's head.
func TestFullTrailVerifies(t *testing.T) {
	tr, err := Create(draft(), t0)
	if err != nil {
		t.Fatal(err)
	}
	e, trail := tr.Envelope, tr.Audit
	for _, ev := range seq(allSigned(), one(Completed{Meta: at(4 * time.Hour), Certificate: "cert"})) {
		tr, err := Apply(e, ev)
		if err != nil {
			t.Fatal(err)
		}
		e, trail = tr.Envelope, append(trail, tr.Audit...)
	}
	if e.State != StateCompleted {
		t.Fatalf("state = %s", e.State)
	}
	if err := audit.VerifyEnd(trail, e.Audit); err != nil {
		t.Fatal(err)
	}
	if len(trail) != 11 {
		t.Fatalf("trail has %d records, want 11: %v", len(trail), auditTypes(trail))
	}
}

func TestCanAct(t *testing.T) {
	e := created(t)
	if err := CanAct(e, "r1", t0.Add(time.Minute)); err != nil {
		t.Errorf("r1: %v", err)
	}
	if err := CanAct(e, "r2", t0.Add(time.Minute)); !errors.Is(err, ErrNotYourTurn) {
		t.Errorf("r2: %v", err)
	}
	if err := CanAct(e, "r5", t0.Add(time.Minute)); !errors.Is(err, ErrWrongRole) {
		t.Errorf("r5: %v", err)
	}
}

func TestAddToken(t *testing.T) {
	e := created(t)
	if err := e.AddToken("r1", []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := e.AddToken("r1", []byte{3}); err != nil {
		t.Fatal(err)
	}
	if got := e.Recipient("r1").TokenHashes; len(got) != 2 {
		t.Fatalf("tokens = %v", got)
	}
	if err := e.AddToken("r4", []byte{1}); !errors.Is(err, ErrWrongRole) {
		t.Fatalf("a copy got a link: %v", err)
	}
	if err := e.AddToken("r9", []byte{1}); !errors.Is(err, ErrUnknownRecipient) {
		t.Fatalf("unknown recipient: %v", err)
	}
}

// A started delivery names the attempt and the address in the audit trail,
// so that a resend after a crash shows as the next attempt.
func TestDeliveryStartedRecord(t *testing.T) {
	e := created(t)
	for _, tc := range []struct {
		ev   DeliveryStarted
		want audit.Record
	}{
		{DeliveryStarted{Meta: at(time.Minute), Notice: Invitation, To: "r1", Attempt: 2},
			audit.Record{RecipientID: "r1", Details: map[string]string{"mail": "invitation", "to": "chef@org.example", "attempt": "2"}}},
		{DeliveryStarted{Meta: at(time.Minute), Notice: Acknowledgement, Attempt: 1},
			audit.Record{Details: map[string]string{"mail": "acknowledgement", "to": "agent@org.example", "attempt": "1"}}},
	} {
		tr, err := Apply(e, tc.ev)
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.Audit) != 1 || len(tr.Effects) != 0 {
			t.Fatalf("%+v: audit %v, effects %v; want one record, no effect", tc.ev, tr.Audit, tr.Effects)
		}
		got := tr.Audit[0]
		if got.Type != audit.DeliveryStart || got.Actor != SystemActor || got.RecipientID != tc.want.RecipientID ||
			!reflect.DeepEqual(got.Details, tc.want.Details) || !got.Time.Equal(tc.ev.At) {
			t.Errorf("%+v: record %+v, want recipient %q details %v", tc.ev, got, tc.want.RecipientID, tc.want.Details)
		}
	}
}

var adjoint = Party{Name: "Adjoint", Email: "adjoint@org.example"}

// TestDelegationRefused: every way a delegation can be wrong is refused
// with its own error, and the envelope is left as it was.
func TestDelegationRefused(t *testing.T) {
	tests := []struct {
		name    string
		draft   func(*Draft)
		history []Event
		event   Delegated
		want    *Error
	}{
		{"delegation disabled", func(d *Draft) { d.NoDelegation = true }, verify("r1", time.Minute),
			Delegated{Meta: at(3 * time.Minute), RecipientID: "r1", To: adjoint, Reason: "congés"}, ErrNoDelegation},
		{"delegation disabled, by mail", func(d *Draft) { d.NoDelegation = true }, nil,
			Delegated{Meta: at(3 * time.Minute), RecipientID: "r1", To: adjoint, ByMail: true}, ErrNoDelegation},
		{"to one's own address", nil, verify("r1", time.Minute),
			Delegated{Meta: at(3 * time.Minute), RecipientID: "r1", To: Party{Email: "CHEF@org.example"}, Reason: "congés"}, ErrBadDelegate},
		{"to someone already in the step", nil, seq(step1Done(), verify("r2", 2*time.Hour)),
			Delegated{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2", To: Party{Email: "Paul@partner.example"}, Reason: "absente"}, ErrBadDelegate},
		{"to no address", nil, nil,
			Delegated{Meta: at(3 * time.Minute), RecipientID: "r1", To: Party{Name: "Adjoint", Email: "adjoint"}, ByMail: true}, ErrBadDelegate},
		{"without a reason on the page", nil, verify("r1", time.Minute),
			Delegated{Meta: at(3 * time.Minute), RecipientID: "r1", To: adjoint, Reason: " "}, ErrReasonRequired},
		{"without a verified code on the page", nil, nil,
			Delegated{Meta: at(3 * time.Minute), RecipientID: "r1", To: adjoint, Reason: "congés"}, ErrNotVerified},
		{"out of turn", nil, nil,
			Delegated{Meta: at(3 * time.Minute), RecipientID: "r2", To: adjoint, ByMail: true}, ErrNotYourTurn},
		{"by a copy", nil, nil,
			Delegated{Meta: at(3 * time.Minute), RecipientID: "r4", To: adjoint, ByMail: true}, ErrWrongRole},
		{"after the end", nil, one(Cancelled{Meta: at(time.Minute), By: "agent@org.example"}),
			Delegated{Meta: at(3 * time.Minute), RecipientID: "r1", To: adjoint, ByMail: true}, ErrEnded},
		{"after the deadline", nil, nil,
			Delegated{Meta: at(20 * 24 * time.Hour), RecipientID: "r1", To: adjoint, ByMail: true}, ErrDeadlinePassed},
		{"twice", nil, one(Delegated{Meta: at(time.Minute), RecipientID: "r1", To: adjoint, ByMail: true}),
			Delegated{Meta: at(3 * time.Minute), RecipientID: "r1", To: Party{Email: "autre@org.example"}, ByMail: true}, ErrAlreadyActed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := draft()
			if tt.draft != nil {
				tt.draft(&d)
			}
			tr, err := Create(d, t0)
			if err != nil {
				t.Fatal(err)
			}
			before := run(t, tr.Envelope, tt.history)
			snapshot := before.Clone()
			_, err = Apply(before, tt.event)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Apply = %v, want %s", err, tt.want.Code)
			}
			if err.Error() == tt.want.Message {
				t.Errorf("error %q should say more than the generic message", err)
			}
			if !reflect.DeepEqual(before, snapshot) {
				t.Fatal("Apply changed its input envelope")
			}
		})
	}
}

// TestDelegation follows delegations through an envelope: the delegate takes
// the delegator's place in the step, is invited, can act and can delegate
// again; the sender is told each time and the audit trail says who handed
// their place to whom, and how that was authenticated.
func TestDelegation(t *testing.T) {
	tr, err := Create(draft(), t0)
	if err != nil {
		t.Fatal(err)
	}
	e, trail := tr.Envelope, tr.Audit
	apply := func(ev Event, wantEffects []string) Transition {
		t.Helper()
		tr, err := Apply(e, ev)
		if err != nil {
			t.Fatalf("%T: %v", ev, err)
		}
		if got := effectKinds(tr.Effects); !reflect.DeepEqual(got, wantEffects) {
			t.Fatalf("%T: effects = %v, want %v", ev, got, wantEffects)
		}
		e, trail = tr.Envelope, append(trail, tr.Audit...)
		return tr
	}
	// verified gives id a verified code, d after t0.
	verified := func(id string, d time.Duration) {
		t.Helper()
		evs := verify(id, d)
		apply(evs[0], []string{"code:" + id + ":email"})
		apply(evs[1], nil)
	}
	record := func(tr Transition, want map[string]string) {
		t.Helper()
		if len(tr.Audit) != 1 || tr.Audit[0].Type != audit.Delegated {
			t.Fatalf("audit = %v, want one delegated record", auditTypes(tr.Audit))
		}
		if got := tr.Audit[0].Details; !reflect.DeepEqual(got, want) {
			t.Errorf("details = %v, want %v", got, want)
		}
	}

	// The approver delegates on the page, with a code and a reason.
	verified("r1", time.Minute)
	tr = apply(Delegated{Meta: at(3 * time.Minute), RecipientID: "r1", To: Party{Name: " Adjoint ", Email: " adjoint@org.example "}, Reason: " congés "},
		[]string{"notify:invitation:[r6]:sender=false", "notify:delegated:[]:sender=true:about=r1"})
	record(tr, map[string]string{"to": "r6", "to_email": "adjoint@org.example", "to_name": "Adjoint", "reason": "congés", "authenticated_by": "one-time code"})
	if a := tr.Audit[0]; a.Actor != "chef@org.example" || a.RecipientID != "r1" || a.IP != "192.0.2.10" {
		t.Errorf("the record must name the delegator and their client: %+v", a)
	}
	r1, r6 := e.Recipient("r1"), e.Recipient("r6")
	if r1.State != HasDelegated || r1.DelegatedTo != "r6" || r1.Reason != "congés" || !r1.VerifiedAt.IsZero() {
		t.Errorf("delegator = %+v", r1)
	}
	if r6 == nil || r6.State != Pending || r6.Role != Approver || r6.Step != 0 || r6.DelegatedFrom != "r1" ||
		r6.Email != "adjoint@org.example" || r6.Name != "Adjoint" || !r6.InvitedAt.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("delegate = %+v", r6)
	}
	if got := e.Steps[0].Recipients; !reflect.DeepEqual(got, []string{"r6"}) {
		t.Errorf("step 1 = %v, want the delegate in the delegator's place", got)
	}
	if err := CanAct(e, "r1", t0.Add(4*time.Minute)); !errors.Is(err, ErrAlreadyActed) {
		t.Errorf("the delegator can still act: %v", err)
	}

	// The delegate approves: the step is done and the signers are invited.
	verified("r6", 10*time.Minute)
	apply(Approved{Meta: at(12 * time.Minute), RecipientID: "r6"}, []string{"notify:invitation:[r2 r3]:sender=false"})
	if e.CurrentStep != 1 {
		t.Fatalf("step = %d after the delegate approved", e.CurrentStep)
	}

	// Marie delegates by mail, without a code or a reason; her delegate
	// delegates again, by mail too. Each, seeing no page, gets the notice
	// as confirmation.
	tr = apply(Delegated{Meta: at(time.Hour), RecipientID: "r2", To: Party{Name: "Louise", Email: "louise@partner.example"}, ByMail: true},
		[]string{"notify:invitation:[r7]:sender=false", "notify:delegated:[r2]:sender=true:about=r2"})
	record(tr, map[string]string{"to": "r7", "to_email": "louise@partner.example", "to_name": "Louise", "reason": "", "authenticated_by": "reply mail"})
	tr = apply(Delegated{Meta: at(2 * time.Hour), RecipientID: "r7", To: Party{Email: "marie@partner.example"}, ByMail: true, Reason: "je suis absente"},
		[]string{"notify:invitation:[r8]:sender=false", "notify:delegated:[r7]:sender=true:about=r7"})
	record(tr, map[string]string{"to": "r8", "to_email": "marie@partner.example", "to_name": "", "reason": "je suis absente", "authenticated_by": "reply mail"})
	if got := e.Steps[1].Recipients; !reflect.DeepEqual(got, []string{"r8", "r3"}) {
		t.Errorf("step 2 = %v", got)
	}
	if r8 := e.Recipient("r8"); r8.DelegatedFrom != "r7" || r8.Role != Signer || r8.State != Pending {
		t.Errorf("second delegate = %+v", r8)
	}

	// A reminder goes to the delegates still pending, not to those who
	// handed their place on.
	apply(ReminderDue{Meta: at(3 * time.Hour)}, []string{"notify:reminder:[r8 r3]:sender=false"})

	verified("r8", 4*time.Hour)
	verified("r3", 4*time.Hour)
	apply(Signed{Meta: at(4*time.Hour + 2*time.Minute), RecipientID: "r8", Signature: sig}, nil)
	apply(Signed{Meta: at(4*time.Hour + 3*time.Minute), RecipientID: "r3", Signature: sig2}, []string{"complete"})
	if err := audit.VerifyEnd(trail, e.Audit); err != nil {
		t.Fatal(err)
	}
}

// NextCodeAt is now under the cap; at it, an hour after the oldest of the
// last MaxCodesPerHour codes; codes older than an hour do not count.
func TestNextCodeAt(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	r := &Recipient{CodesSent: []time.Time{now.Add(-2 * time.Hour)}}
	for _, ago := range []time.Duration{50, 40, 30, 20} {
		r.CodesSent = append(r.CodesSent, now.Add(-ago*time.Minute))
	}
	if got := r.NextCodeAt(now); !got.Equal(now) {
		t.Fatalf("four codes in the hour: NextCodeAt = %v, want now", got)
	}
	r.CodesSent = append(r.CodesSent, now.Add(-10*time.Minute))
	if got, want := r.NextCodeAt(now), now.Add(10*time.Minute); !got.Equal(want) {
		t.Errorf("five codes in the hour: NextCodeAt = %v, want %v", got, want)
	}
}

// Nobody gets the same end notice twice (SPEC §5): a sender who approves
// their own request gets the sender's final mail only; a sender named as
// copy gets the copy's, which marks the copy delivered; a copy and an
// archivist of one address get the archivist's, with the trail, and both
// count as delivered; a decline is told once to an approver who is the
// sender. Addresses compare without case.
func TestOneEndNoticePerAddress(t *testing.T) {
	completion := func(e *Envelope) Notify {
		t.Helper()
		tr, err := Apply(run(t, e, allSigned()), Completed{Meta: at(4 * time.Hour), Certificate: "cert"})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range tr.Effects {
			if n, ok := f.(Notify); ok && n.Notice == CompletionMail {
				return n
			}
		}
		t.Fatal("no completion mail")
		return Notify{}
	}
	envelope := func(edit func(*Draft)) *Envelope {
		d := draft()
		edit(&d)
		tr, err := Create(d, t0)
		if err != nil {
			t.Fatal(err)
		}
		return tr.Envelope
	}

	approverSender := envelope(func(d *Draft) { d.Steps[0].Parties[0].Email = "Agent@Org.example" })
	if n := completion(approverSender); !slices.Equal(n.Recipients, []string{"r2", "r3", "r4", "r5"}) || !n.ToSender {
		t.Errorf("sender who approved: completion to %v, sender %v; want r2-r5 and the sender", n.Recipients, n.ToSender)
	}
	tr, err := Apply(run(t, approverSender, seq(step1Done(), verify("r2", 2*time.Hour))), Declined{Meta: at(2*time.Hour + 2*time.Minute), RecipientID: "r2", Reason: "non"})
	if err != nil {
		t.Fatal(err)
	}
	if got := effectKinds(tr.Effects); !slices.Contains(got, "notify:declined:[]:sender=true:about=r2") {
		t.Errorf("decline with the sender as approver: %v, want the sender once, not the approver of the same address too", got)
	}

	copySender := envelope(func(d *Draft) { d.Copies[0].Email = "AGENT@org.example" })
	if n := completion(copySender); !slices.Equal(n.Recipients, []string{"r1", "r2", "r3", "r4", "r5"}) || n.ToSender {
		t.Errorf("sender as copy: completion to %v, sender %v; want r1-r5 and not the sender", n.Recipients, n.ToSender)
	}

	copyArchivist := envelope(func(d *Draft) { d.Copies[0].Email = "Archives@org.example" })
	if n := completion(copyArchivist); !slices.Equal(n.Recipients, []string{"r1", "r2", "r3", "r5"}) || !n.ToSender {
		t.Errorf("copy and archivist of one address: completion to %v, sender %v; want r1-r3, r5 and the sender", n.Recipients, n.ToSender)
	}
	e := run(t, copyArchivist, seq(allSigned(), one(Completed{Meta: at(4 * time.Hour), Certificate: "cert"}),
		one(DeliveryAttempted{Meta: at(5 * time.Hour), Notice: CompletionMail, To: "r5", Outcome: OutcomeDelivered})))
	if e.Recipient("r4").State != Delivered || e.Recipient("r5").State != Delivered {
		t.Errorf("after the archivist's final mail: copy %s, archivist %s; want both delivered", e.Recipient("r4").State, e.Recipient("r5").State)
	}
}
