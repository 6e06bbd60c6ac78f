package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/mailout/compose"
	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/workflow"
)

const (
	testBase  = "http://127.0.0.1:8080"
	testToken = "AbCdEfGhIjKlMnOpQrStUv" // 22 characters, as a 128-bit token in base64url
)

// composedMail is the gateway's mail of data about envelope ENV1 to its signer, as the
// gateway's composer writes it in language, with the given attachment limit.
func composedMail(t testing.TB, language string, data compose.Data, attachmentLimit int64) []byte {
	t.Helper()
	c, err := compose.New(compose.Config{Address: gatewayAddress, PublicURL: testBase,
		AttachmentLimit: attachmentLimit, ReturnPathKey: bytes.Repeat([]byte{1}, mailid.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	e := &workflow.Envelope{
		ID: "ENV1", Title: "Convention 7", Language: language,
		Sender:    workflow.Party{Name: "Bob Agent", Email: agent},
		Deadline:  time.Date(2026, 12, 15, 23, 59, 0, 0, time.UTC),
		Documents: []workflow.Document{{Name: "convention.pdf", Pages: 1}},
		Steps:     []workflow.Step{{Role: workflow.Signer, Recipients: []string{"r1"}}},
		Recipients: []workflow.Recipient{{Party: workflow.Party{Name: "Alice Martin", Email: signerAddress(7)},
			ID: "r1", Role: workflow.Signer, State: workflow.Pending}},
	}
	var b bytes.Buffer
	if err := c.Compose(&b, &compose.Message{ID: "outbox-1@org.example", Date: e.Deadline.AddDate(0, 0, -7),
		Envelope: e, RecipientID: "r1", Data: data}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// finalFiles is the final mail's data with one signed PDF.
func finalFiles() compose.Completion {
	pdf := []byte("%PDF-1.7 signed\n%%EOF\n")
	sum := sha256.Sum256(pdf)
	return compose.Completion{
		Files: []compose.Attachment{{Name: "convention.pdf", ContentType: "application/pdf", Size: int64(len(pdf)),
			SHA256: hex.EncodeToString(sum[:]), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(pdf)), nil }}},
		DownloadURL:   testBase + "/d/" + testToken,
		DownloadUntil: time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC),
	}
}

// TestParseGatewayMail reads the mails the gateway's own composer writes to a signer,
// in both languages, as the load scenario's signers read them from their mailbox.
func TestParseGatewayMail(t *testing.T) {
	for _, lang := range []string{"fr", "en"} {
		for _, tc := range []struct {
			name  string
			data  compose.Data
			limit int64
			want  gatewayMail
		}{
			{"invitation", compose.Invitation{Link: testBase + "/s/" + testToken}, 10 << 20,
				gatewayMail{kind: invitationMail, base: testBase, token: testToken}},
			{"code", compose.OneTimeCode{Code: "042917", Valid: 10 * time.Minute}, 10 << 20,
				gatewayMail{kind: codeMail, code: "042917"}},
			{"final mail with the files", finalFiles(), 10 << 20, gatewayMail{kind: finalMail}},
			{"final mail over the attachment limit", finalFiles(), 1, gatewayMail{kind: finalMail}},
		} {
			t.Run(lang+"/"+tc.name, func(t *testing.T) {
				raw := composedMail(t, lang, tc.data, tc.limit)
				got, envID, err := parseGatewayMail(raw)
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want || envID != "ENV1" {
					t.Errorf("got %+v of envelope %q, want %+v of ENV1", got, envID, tc.want)
				}
			})
		}
	}
}

// TestParseGatewayMailRefusesOthers: a mail the scenario has no use for is an error that
// shows it, not a mail of some kind.
func TestParseGatewayMailRefusesOthers(t *testing.T) {
	raw := "From: <parapheur@org.example>\r\nSubject: Hello\r\nX-Parapheur-Envelope: ENV1\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nNothing to act on here.\r\n"
	_, _, err := parseGatewayMail([]byte(raw))
	if err == nil || !strings.Contains(err.Error(), "Nothing to act on here.") {
		t.Fatalf("got %v, want an error quoting the mail's text", err)
	}
}

func FuzzParseGatewayMail(f *testing.F) {
	for _, data := range []compose.Data{compose.Invitation{Link: testBase + "/s/" + testToken},
		compose.OneTimeCode{Code: "042917", Valid: 10 * time.Minute}, finalFiles()} {
		f.Add(composedMail(f, "fr", data, 10<<20))
	}
	f.Add(composedMail(f, "en", finalFiles(), 1))
	f.Add([]byte("Content-Type: text/plain\r\n\r\n123456\r\n"))
	f.Add([]byte("Content-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\n" +
		testBase + "/s/" + testToken + "\r\n--x--\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, _, err := parseGatewayMail(raw)
		if err != nil {
			return
		}
		switch m.kind {
		case invitationMail:
			if !strings.HasPrefix(m.base, "http") || len(m.token) < 20 {
				t.Errorf("an invitation with the link %q/s/%q", m.base, m.token)
			}
		case codeMail:
			if len(m.code) != 6 {
				t.Errorf("a code mail with the code %q", m.code)
			}
		case finalMail:
		default:
			t.Errorf("a mail of kind %q", m.kind)
		}
	})
}

// TestFloors runs the raw SMTP and IMAP clients of the floors against a private Postfix
// and Dovecot: every mail sent is accepted, delivered, fetched and moved.
func TestFloors(t *testing.T) {
	dir := t.TempDir()
	rig, err := testrig.StartMail(filepath.Join(dir, "mail"), testrig.MailOptions{Users: []string{floorMailbox}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rig.Stop(); err != nil {
			t.Error(err)
		}
	})
	to := floorMailbox + "@example.com"

	accepted := make([]bool, 5)
	mail := func(i int) (string, string, []byte) {
		return agent, to, []byte("From: <" + agent + ">\r\nSubject: floor " + strings.Repeat("x", i) + "\r\n\r\nbody\r\n")
	}
	if _, err := sendOver(rig.SMTPAddr(), 2, len(accepted), nil, mail, func(i int) { accepted[i] = true }); err != nil {
		t.Fatal(err)
	}
	for i, ok := range accepted {
		if !ok {
			t.Errorf("mail %d was never accepted", i)
		}
	}
	rate, err := rawSMTPAccept(rig.SMTPAddr(), 2, 4, agent, to, []byte("Subject: floor\r\n\r\nbody\r\n"))
	if err != nil || rate <= 0 {
		t.Fatalf("rawSMTPAccept: %v mails/s, %v", rate, err)
	}
	if err := rig.WaitDelivered(time.Minute); err != nil {
		t.Fatal(err)
	}

	moved, rate, err := rawIMAPFetchMove(rig.IMAPAddr(), floorMailbox, rig.Password(), 3)
	if err != nil || moved != 9 || rate <= 0 {
		t.Fatalf("rawIMAPFetchMove: %d mails at %v/s, %v; want the 9 mails sent", moved, rate, err)
	}
	c, err := imapclient.DialInsecure(rig.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(floorMailbox, rig.Password()).Wait(); err != nil {
		t.Fatal(err)
	}
	for mailbox, want := range map[string]uint32{"INBOX": 0, "Processed": 9} {
		st, err := c.Status(mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if *st.NumMessages != want {
			t.Errorf("%s holds %d mails, want %d", mailbox, *st.NumMessages, want)
		}
	}
}

// TestConcurrency counts the most inside at once.
func TestConcurrency(t *testing.T) {
	var c concurrency
	leaveA := c.enter()
	leaveB := c.enter()
	leaveA()
	leaveC := c.enter()
	leaveB()
	leaveC()
	if c.peak.Load() != 2 || c.now.Load() != 0 {
		t.Errorf("peak %d, now %d; want 2 and 0", c.peak.Load(), c.now.Load())
	}
}

// TestReplicaCPUAndMemory reads the processor time and the memory of a busy child.
func TestReplicaCPUAndMemory(t *testing.T) {
	r := &replica{cmd: exec.Command("sh", "-c", "while :; do :; done")}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		r.cmd.Process.Kill()
		r.cmd.Wait()
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		used, err := r.cpu()
		if err != nil {
			t.Fatal(err)
		}
		if used >= time.Second/userHZ {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a busy loop used %v of processor time in 30 s", used)
		}
	}
	peak, anon, file, err := r.memory()
	if err != nil {
		t.Fatal(err)
	}
	if peak <= 0 || anon+file <= 0 || anon+file > peak {
		t.Errorf("peak %d, anonymous %d, file %d: want a resident set within a positive peak", peak, anon, file)
	}
}
