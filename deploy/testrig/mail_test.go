package testrig

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func TestMail(t *testing.T) {
	m := MailRig(t)

	t.Run("deliver", func(t *testing.T) {
		id := send(t, m, "alice@example.com", "bob+circuit@partner.example", "archives@org.example")
		for _, login := range []string{"alice", "bob@partner.example", "archives@org.example"} {
			if raw := fetch(t, m, login, id); !bytes.Contains(raw, []byte(id)) {
				t.Errorf("%s: fetched message lacks %s:\n%s", login, id, raw)
			}
		}
	})

	t.Run("answers at RCPT", func(t *testing.T) {
		for rcpt, want := range map[string]int{
			"alice@example.com":             0,
			"tempfail@example.com":          451,
			"tempfail+retry@org.example":    451,
			"reject@example.com":            550,
			"reject+x@partner.example":      550,
			"someone@elsewhere.example.net": 554,
		} {
			if got := rcptCode(t, m, "parapheur@org.example", rcpt); got != want {
				t.Errorf("RCPT TO:<%s> answered %d, want %d", rcpt, got, want)
			}
		}
	})

	t.Run("deferred sender", func(t *testing.T) {
		if err := m.DeferSender("parapheur@org.example"); err != nil {
			t.Fatal(err)
		}
		for from, want := range map[string]int{
			"parapheur@org.example":                451,
			"PARAPHEUR+bounce-e1=r1.x@org.example": 451,
			"parapheur@org.example.net":            0,
			"parapheur-other@org.example":          0,
			"bob@example.com":                      0,
		} {
			if got := rcptCode(t, m, from, "alice@example.com"); got != want {
				t.Errorf("MAIL FROM:<%s> deferred: RCPT answered %d, want %d", from, got, want)
			}
		}
		if err := m.AcceptSenders(); err != nil {
			t.Fatal(err)
		}
		if got := rcptCode(t, m, "parapheur@org.example", "alice@example.com"); got != 0 {
			t.Errorf("after AcceptSenders, RCPT answered %d", got)
		}
		if err := m.DeferSender("no-at-sign"); err == nil {
			t.Error("DeferSender of a word without @: no error")
		}
	})

	t.Run("Dovecot restarted", func(t *testing.T) {
		before := send(t, m, "alice@example.com")
		fetch(t, m, "alice", before)
		c := login(t, m, "alice")
		defer c.Close()
		pid := m.dovecotProc.cmd.Process.Pid
		if err := m.RestartDovecot(); err != nil {
			t.Fatal(err)
		}
		if m.dovecotProc.cmd.Process.Pid == pid {
			t.Fatalf("RestartDovecot left the same master %d running", pid)
		}
		select {
		case <-c.Closed():
		case <-time.After(10 * time.Second):
			t.Fatal("an IMAP session outlived the restart by 10 s")
		}
		// The mailbox kept what it had, and takes new mail. (Without AUTH: an smtpd
		// process that talked to Dovecot's auth service before answers its next AUTH
		// 454 once, as it would after a real restart.)
		fetch(t, m, "alice", before)
		after := fmt.Sprintf("<%d.restarted@org.example>", time.Now().UnixNano())
		msg := "From: bob@example.com\r\nTo: alice@example.com\r\nSubject: after\r\nMessage-ID: " + after + "\r\n\r\nHello.\r\n"
		sc, err := smtp.Dial(m.SMTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		if err := sc.SendMail("bob@example.com", []string{"alice@example.com"}, strings.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		fetch(t, m, "alice", after)
	})

	t.Run("MTA down then up", func(t *testing.T) {
		if err := m.StopMTA(); err != nil {
			t.Fatal(err)
		}
		if c, err := smtp.Dial(m.SMTPAddr()); err == nil {
			c.Close()
			t.Fatal("SMTP still answers after StopMTA")
		}
		if err := m.StartMTA(); err != nil {
			t.Fatal(err)
		}
		id := send(t, m, "alice@example.com")
		fetch(t, m, "alice", id)
	})

	t.Run("wait delivered", func(t *testing.T) {
		id := send(t, m, "alice@example.com")
		if err := m.WaitDelivered(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		if !inMaildir(t, m.Maildir("alice"), id) {
			t.Errorf("%s is not in alice's Maildir once Postfix's queues are empty", id)
		}
		// A message Postfix holds keeps it waiting.
		held := filepath.Join(m.dir, "postfix", "queue", "hold", "TESTRIGHELD")
		if err := os.WriteFile(held, []byte("held"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := m.WaitDelivered(100 * time.Millisecond)
		if rmErr := os.Remove(held); rmErr != nil {
			t.Fatal(rmErr)
		}
		if err == nil || !strings.Contains(err.Error(), "Postfix still holds 1 message(s)") {
			t.Errorf("WaitDelivered with a held message: %v", err)
		}
	})

	t.Run("kick", func(t *testing.T) {
		c := login(t, m, "bob")
		defer c.Close()
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := m.Kick("bob"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.Closed():
		case <-time.After(10 * time.Second):
			t.Fatal("IMAP connection still open 10 s after Kick")
		}
		if err := m.Kick("bob"); err == nil {
			t.Error("Kick of a user without connections: no error")
		}
	})
}

// send submits a message with SMTP AUTH to rcpts and returns its Message-ID.
func send(t *testing.T, m *Mail, rcpts ...string) string {
	t.Helper()
	id := fmt.Sprintf("<%d.testrig@org.example>", time.Now().UnixNano())
	msg := "From: parapheur@org.example\r\nTo: " + strings.Join(rcpts, ", ") + "\r\n" +
		"Subject: testrig\r\nMessage-ID: " + id + "\r\n\r\nHello.\r\n"
	c, err := smtp.Dial(m.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "parapheur", m.Password())); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	if err := c.SendMail("parapheur@org.example", rcpts, strings.NewReader(msg)); err != nil {
		t.Fatalf("sending to %v: %v", rcpts, err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	return id
}

// rcptCode returns the SMTP code the MTA answers to RCPT TO:<rcpt> after MAIL FROM:<from>,
// 0 for success.
func rcptCode(t *testing.T, m *Mail, from, rcpt string) int {
	t.Helper()
	code, err := smtpRcptCode(m.SMTPAddr(), from, rcpt)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func login(t *testing.T, m *Mail, user string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(m.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(user, m.Password()).Wait(); err != nil {
		c.Close()
		t.Fatalf("IMAP login %s: %v", user, err)
	}
	return c
}

// inMaildir tells whether a message of the Maildir dir holds id.
func inMaildir(t *testing.T, dir, id string) bool {
	t.Helper()
	for _, sub := range []string{"new", "cur"} {
		files, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue // Dovecot makes it with the first message
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			raw, err := os.ReadFile(filepath.Join(dir, sub, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte(id)) {
				return true
			}
		}
	}
	return false
}

// fetch waits until the message with Message-ID id is in user's INBOX and returns it.
func fetch(t *testing.T, m *Mail, user, id string) []byte {
	t.Helper()
	raw, err := m.WaitMessage(user, "Message-ID", id, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestMailStopLeavesNothing(t *testing.T) {
	start := time.Now()
	m, err := StartMail(t.TempDir(), MailOptions{Users: []string{"carol"}, Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Since(start)
	c := login(t, m, "carol") // a live imap process, which Stop must end too
	defer c.Close()
	groups := map[string]int{"dovecot": m.dovecotProc.cmd.Process.Pid, "postfix master": m.mtaProc.cmd.Process.Pid}
	for name, pgid := range groups {
		if !groupAlive(pgid) {
			t.Fatalf("%s (process group %d) not seen in /proc", name, pgid)
		}
	}
	start = time.Now()
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("start %v, stop %v", started.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for name, pgid := range groups {
		if groupAlive(pgid) {
			t.Errorf("%s: process group %d still running after Stop", name, pgid)
		}
	}
	for _, addr := range []string{m.SMTPAddr(), m.IMAPAddr()} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Stop", addr)
		}
	}
}

func TestStartMailBadOptions(t *testing.T) {
	for _, opts := range []MailOptions{
		{Users: []string{"Alice"}},
		{Users: []string{"a:b"}},
		{Users: []string{""}},
		{Password: "se:cret"},
		{Password: "two\nlines"},
	} {
		if m, err := StartMail(t.TempDir(), opts); err == nil {
			m.Stop()
			t.Errorf("StartMail(%+v) started", opts)
		}
	}
}
