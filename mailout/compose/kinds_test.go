package compose

import (
	"slices"
	"testing"

	"github.com/parapheur/parapheur/workflow"
)

// TestKindsMatchNotices checks that every mail the workflow asks for has a
// kind of the same name, so Kind(notice) is the conversion.
func TestKindsMatchNotices(t *testing.T) {
	for _, n := range []workflow.Notice{
		workflow.Acknowledgement, workflow.Invitation, workflow.Reminder, workflow.DeclineNotice,
		workflow.CancelNotice, workflow.ExpiryNotice, workflow.BounceNotice, workflow.CompletionMail,
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
		want := "parapheur+bounce-ENV-7F3K2Q@org.example"
		if s.msg.RecipientID != "" {
			want = "parapheur+bounce-ENV-7F3K2Q=" + s.msg.RecipientID + "@org.example"
		}
		if s.msg.Data.Kind() == KindRefusal {
			want = ""
		}
		if got != want {
			t.Errorf("%s: return path %q, want %q", s.name, got, want)
		}
	}
	if _, err := c.ReturnPath(&Message{Data: Expired{}}); err == nil {
		t.Error("a return path without an envelope")
	}
}
