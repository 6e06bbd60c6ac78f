package poller

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parapheur/parapheur/deploy/testrig"
)

// rig is the package's Dovecot (and Postfix), started once in TestMain; its oauth2
// passdb asks tokens.
var (
	rig    *testrig.Mail
	tokens *testrig.OAuth2
)

// boxes are the rig's users, one fresh mailbox per test.
var (
	boxes   []string
	nextBox atomic.Int32
)

func TestMain(m *testing.M) {
	for i := 1; i <= 30; i++ {
		boxes = append(boxes, fmt.Sprintf("box%d", i))
	}
	os.Exit(testrig.RunWithOAuth2Mail(m, testrig.MailOptions{Users: boxes}, &rig, &tokens))
}

func dovecotMailbox(t *testing.T) mailbox {
	t.Helper()
	n := int(nextBox.Add(1))
	if n > len(boxes) {
		t.Fatalf("more than %d mailboxes asked of the rig", len(boxes))
	}
	return mailbox{addr: rig.IMAPAddr(), user: boxes[n-1], password: rig.Password()}
}

func TestPollerDovecot(t *testing.T) {
	suite(t, dovecotMailbox)
}

func TestDovecotReconnectAfterKick(t *testing.T) {
	mb := dovecotMailbox(t)
	rec := newRecorder()
	start(t, mb, openStore(t), rec, nil)
	mb.append(t, testMessage("before", "Convention"))
	rec.wait(t, 1)
	if err := rig.Kick(mb.user); err != nil {
		t.Fatal(err)
	}
	mb.append(t, testMessage("after", "Convention"))
	rec.wait(t, 1) // the poller reconnected (after a 1 s backoff) and saw it
	waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": 2, "Quarantine": 0})
}

func TestDovecotUIDValidityChange(t *testing.T) {
	mb := dovecotMailbox(t)
	st := openStore(t)
	rec := newRecorder()
	mb.append(t, testMessage("u1", "Convention"), testMessage("u2", "Convention"), testMessage("u3", "flaky"))
	r := start(t, mb, st, rec, nil)
	rec.wait(t, 2) // u3 failed once and stays in the inbox
	waitCounts(t, mb, map[string]int{"INBOX": 1, "Processed": 2, "Quarantine": 0})
	r.stop(t)

	if err := rig.Doveadm("mailbox", "update", "-u", mb.user, "--uid-validity", "424242", "INBOX"); err != nil {
		t.Fatal(err)
	}
	mb.append(t, testMessage("u4", "Convention"))
	start(t, mb, st, rec, nil)
	rec.wait(t, 2) // u3 (kept in the inbox) and u4 (new)
	waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": 4, "Quarantine": 0})
	for _, id := range []string{"<u1@org.example>", "<u2@org.example>", "<u3@org.example>", "<u4@org.example>"} {
		if n := rec.times(id); n != 1 {
			t.Errorf("%s handled %d times, want 1", id, n)
		}
	}
}

func TestDovecotThousandSubmissions(t *testing.T) {
	mb := dovecotMailbox(t)
	const n = 1000
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = testMessage(fmt.Sprintf("m%04d", i), "Convention")
	}
	mb.append(t, msgs...)
	rec := newRecorder()
	begin := time.Now()
	start(t, mb, openStore(t), rec, func(c *Config) { c.BatchSize = 100 })
	rec.wait(t, n)
	waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": n, "Quarantine": 0})
	t.Logf("%d messages handled and moved in %v", n, time.Since(begin))
	for i := 0; i < n; i++ {
		if got := rec.times(fmt.Sprintf("<m%04d@org.example>", i)); got != 1 {
			t.Fatalf("message %d handled %d times", i, got)
		}
	}
}
