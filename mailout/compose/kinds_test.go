package compose

import (
	"slices"
	"testing"

	"github.com/parapheur/parapheur/mailout/mailid"

	"github.com/parapheur/parapheur/workflow"
)

// TestKindsMatchNotices checks that every mail the workflow asks for has a
// kind of the same name, so Kind(notice) is the conversion.
func TestKindsMatchNotices(t *testing.T) {
	for _, n := range []workflow.Notice{
		workflow.Acknowledgement, workflow.Invitation, workflow.Reminder, workflow.DeclineNotice,
		workflow.CancelNotice, workflow.ExpiryNotice, workflow.BounceNotice, workflow.CompletionMail,
		workflow.DelegationNotice, workflow.CodeLockedNotice,
	} {
		if !slices.Contains(Kinds, Kind(n)) {
			t.Errorf("workflow notice %q has no kind", n)
		}
	}
}

// TestReturnPath checks the reverse-paths the sender is to use.
func TestReturnPath(t *testing.T) {
	c := newComposer(t, testConfig())
	for _, s := range samples("fr") {
		got, err := c.ReturnPath(s.msg)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if _, ok := s.msg.Data.(answer); ok {
			if got != "" {
				t.Errorf("%s: return path %q, want the null path", s.name, got)
			}
			continue
		}
		env, rid, err := mailid.ParseReturnPath(returnPathKey, "parapheur@org.example", got)
		if err != nil || env != "ENV-7F3K2Q" || rid != s.msg.RecipientID {
			t.Errorf("%s: return path %q reads as %q, %q, %v; want ENV-7F3K2Q, %q", s.name, got, env, rid, err, s.msg.RecipientID)
		}
	}
	if _, err := c.ReturnPath(&Message{Data: Expired{}}); err == nil {
		t.Error("a return path without an envelope")
	}
}
