package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/workflow"
)

// Reply queues at most Max replies per address in any period Per (a
// sliding window: each one frees its place Per after it was taken), a
// mail handled again keeps its one reply, and a Message-ID longer than an
// item ID may be still makes an item.
func TestReplyQuota(t *testing.T) {
	e, c := newEngine(t)
	ctx := context.Background()
	quota := Quota{Key: "submitter:agent@org.example", Max: 3, Per: time.Hour}
	refusal := Job{Notice: NoticeRefusal, Refusal: &Refusal{To: workflow.Party{Email: "agent@org.example"}, Subject: "Convention", Problems: []string{"no PDF"}, Usage: "how to", Language: "en"}}
	made := 0 // replies made: none past the quota
	refuse := func(key string) bool {
		t.Helper()
		ok, err := e.Reply(ctx, key, quota, func() Job { made++; return refusal })
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	start := c.Now()
	for i := range 3 {
		c.set(start.Add(time.Duration(i) * 10 * time.Minute))
		if !refuse(fmt.Sprintf("<m%d@org.example>", i)) {
			t.Fatalf("refusal %d of 3 not queued", i+1)
		}
	}
	if !refuse("<m2@org.example>") {
		t.Fatal("the same mail again lost its reply")
	}
	items := drain(t, e, MailQueue)
	if len(items) != 3 {
		t.Fatalf("%d items, want 3 (the mail handled twice makes one)", len(items))
	}
	if j := jobs(t, e, items[:1]); j[0].Notice != NoticeRefusal || j[0].Refusal.Usage != "how to" {
		t.Fatalf("job %+v", j[0])
	}
	c.set(start.Add(59 * time.Minute))
	before := made
	if refuse("<m3@org.example>") {
		t.Fatal("a 4th refusal within the hour was queued")
	}
	if made != before {
		t.Fatal("a refusal past the quota was made")
	}
	other := quota
	other.Key = "submitter:other@org.example"
	if ok, err := e.Reply(ctx, "<o@org.example>", other, func() Job { return refusal }); err != nil || !ok {
		t.Fatalf("another address: %v %v", ok, err)
	}
	// An hour after the first refusal, its place is free again; the
	// second's is not yet.
	c.set(start.Add(time.Hour))
	if !refuse("<m4@org.example>") {
		t.Fatal("no refusal an hour after the first")
	}
	if refuse("<m5@org.example>") {
		t.Fatal("a refusal queued while three are within the hour")
	}
	long := "<" + strings.Repeat("x", 300) + "@org.example>"
	c.set(start.Add(3 * time.Hour))
	if !refuse(long) {
		t.Fatal("a long Message-ID got no refusal")
	}
	if n := len(drain(t, e, MailQueue)); n != 3 {
		t.Fatalf("%d items, want 3", n)
	}
}

// Replies of different kinds to one address are counted apart, and each
// kind of reply to one mail is its own item: a verification report is not
// taken for a refusal already queued, nor spends its quota.
func TestReplyKindsApart(t *testing.T) {
	e, _ := newEngine(t)
	ctx := context.Background()
	to := workflow.Party{Email: "anyone@elsewhere.example"}
	refusal := Job{Notice: NoticeRefusal, Refusal: &Refusal{To: to, Problems: []string{"no PDF"}, Usage: "how to", Language: "fr"}}
	report := Job{Notice: NoticeVerification, Verification: &Verification{To: to, Problem: "no PDF", Language: "fr"}}
	if ok, err := e.Reply(ctx, "<m@elsewhere.example>", Quota{Key: "stranger:anyone@elsewhere.example", Max: 1, Per: time.Hour}, func() Job { return refusal }); err != nil || !ok {
		t.Fatalf("refusal: %v %v", ok, err)
	}
	if ok, err := e.Reply(ctx, "<m@elsewhere.example>", Quota{Key: "verifier:anyone@elsewhere.example", Max: 1, Per: time.Hour}, func() Job { return report }); err != nil || !ok {
		t.Fatalf("verification: %v %v", ok, err)
	}
	j := jobs(t, e, drain(t, e, MailQueue))
	if len(j) != 2 {
		t.Fatalf("%d items, want a refusal and a verification", len(j))
	}
	notices := []workflow.Notice{j[0].Notice, j[1].Notice}
	slices.Sort(notices)
	if notices[0] != NoticeRefusal || notices[1] != NoticeVerification {
		t.Fatalf("notices %v", notices)
	}
}
