package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/completion"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox/outboxtest"
)

// TestServeNeedsTheSeal checks that serve without a usable seal key stops
// at once and says how to make one, rather than failing at the first
// completion.
func TestServeNeedsTheSeal(t *testing.T) {
	keys := initKeys(t)
	env := unreachableServersEnv(t, keys)
	seal := filepath.Join(keys, pki.SealKeyFile)
	if err := os.Remove(seal); err != nil {
		t.Fatal(err)
	}
	r := parapheur(t, env, "serve")
	if want := "the organisation's seal in " + keys + ": pki: open " + seal + ": no such file or directory (run \"parapheur ca init\""; r.code != exitFailure || !strings.Contains(r.stderr, want) {
		t.Fatalf("serve without the seal: exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
	}
	if err := os.WriteFile(seal, []byte("not a PKCS #12 file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := parapheur(t, env, "serve"); r.code != exitFailure || !strings.Contains(r.stderr, "the organisation's seal in "+keys+": pki: "+seal) {
		t.Fatalf("serve with a broken seal file: exit %d, stderr %q", r.code, r.stderr)
	}
}

// unreachableServersEnv configures serve with the keys in keys (made with
// the passphrase "test") and mail servers that do not answer: enough for
// what serve checks before it starts.
func unreachableServersEnv(t *testing.T, keys string) []string {
	return []string{
		"PARAPHEUR_CONFIG=",
		"PARAPHEUR_ADDRESS=parapheur@org.example",
		"PARAPHEUR_PUBLIC_URL=http://127.0.0.1:8080",
		"PARAPHEUR_STORE_URL=bolt://" + filepath.Join(t.TempDir(), "parapheur.db"),
		"PARAPHEUR_IMAP_URL=imap://parapheur@127.0.0.1:1/INBOX",
		"PARAPHEUR_IMAP_PASSWORD=secret",
		"PARAPHEUR_SMTP_URL=smtp://127.0.0.1:1",
		"PARAPHEUR_SENDERS_ALLOWED=bob@example.com",
		"PARAPHEUR_KEYS_DIR=" + keys,
		"PARAPHEUR_KEYS_PASSPHRASE=test",
	}
}

// TestEnvelopeListStuck lists the envelopes whose completion has not
// ended some time after their last step, with the failures the worker
// recorded and whether the sender was told.
func TestEnvelopeListStuck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	st, err := bolt.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	// E1's steps were done two hours ago, and its completion keeps failing.
	signedAt(t, st, "E1", now.Add(-2*time.Hour))
	p, _ := json.Marshal(completion.Progress{Attempts: 9, LastError: "sealing document 1 (c.pdf): tsa: http://tsa.example answered\t500",
		At: now.Add(-time.Minute), NextAttempt: now.Add(14 * time.Minute)})
	if err := st.SetCursor(ctx, completion.ProgressCursor("E1"), p); err != nil {
		t.Fatal(err)
	}
	told := now.Add(-time.Hour)
	eng := &engine.Engine{Store: st, Clock: func() time.Time { return told }}
	if _, err := eng.Event(ctx, "E1", workflow.CompletionDelayed{Meta: workflow.Meta{At: told}, Reason: "tsa down"}); err != nil {
		t.Fatal(err)
	}
	// E2's were done 20 minutes ago, and no attempt failed: no gateway runs.
	signedAt(t, st, "E2", now.Add(-20*time.Minute))
	// E3's a minute ago: not stuck yet.
	signedAt(t, st, "E3", now.Add(-time.Minute))
	// E4 waits for its signer.
	newEnvelope(t, st, "E4", now)
	st.Close()

	env := []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_STORE_URL=bolt://" + path}
	r := parapheur(t, env, "envelope", "list", "--stuck")
	if r.code != exitOK {
		t.Fatalf("list --stuck: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("envelope list --stuck:\n%s", r.stdout)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") {
		t.Fatalf("list --stuck: want a header and E1 and E2:\n%s", r.stdout)
	}
	// Newest first.
	// Every time names its zone.
	zone := regexp.QuoteMeta(now.Local().Format("MST"))
	e2 := regexp.MustCompile(`^E2 +\S+ \S+ ` + zone + ` +2\dm\d+s +0 +no failure recorded: is the gateway running\? +no +Convention`)
	e1 := regexp.MustCompile(`^E1 +\S+ \S+ ` + zone + ` +2h\d+m\d+s +9 +\S+ \S+ ` + zone + `: sealing document 1 \(c\.pdf\): tsa: http://tsa\.example answered 500 +` +
		regexp.QuoteMeta(told.Local().Format("2006-01-02 15:04 MST")) + ` +Convention`)
	if !e2.MatchString(lines[1]) || !e1.MatchString(lines[2]) {
		t.Errorf("list --stuck:\n%s", r.stdout)
	}
	r = parapheur(t, env, "envelope", "list", "--stuck", "--stuck-after", "30s")
	if r.code != exitOK || !strings.Contains(r.stdout, "E3 ") || strings.Contains(r.stdout, "E4") {
		t.Errorf("list --stuck --stuck-after 30s: exit %d; want E1, E2 and E3:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// newEnvelope stores envelope id, created at, of one document to be
// signed by marie@partner.example, and returns the engine that made it.
func newEnvelope(t *testing.T, st store.Store, id string, at time.Time) *engine.Engine {
	t.Helper()
	e := &engine.Engine{Store: st, CodeKey: []byte("0123456789abcdef0123456789abcdef"), Clock: func() time.Time { return at }}
	d := workflow.Draft{
		ID: id, Title: "Convention " + id, Language: "fr", Sender: workflow.Party{Email: "agent@org.example"},
		Documents: []workflow.Document{{Name: "c.pdf", Pages: 2, Original: strings.Repeat("ab", 32)}},
		Steps:     []workflow.DraftStep{{Role: workflow.Signer, Parties: []workflow.Party{{Email: "marie@partner.example"}}}},
		Deadline:  at.Add(48 * time.Hour),
	}
	if _, err := e.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return e
}

// signedAt stores envelope id signed by its one signer at: every step
// done then, its completion queued.
func signedAt(t *testing.T, st store.Store, id string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	e := newEnvelope(t, st, id, at)
	env, err := e.Envelope(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	rid := env.Steps[0].Recipients[0]
	if _, err := e.SendCode(ctx, id, rid, workflow.Client{}); err != nil {
		t.Fatal(err)
	}
	var code string
	for _, job := range outboxtest.Deliver(t, e, engine.MailQueue, time.Now()) {
		if job.To == rid && job.Code != "" {
			code = job.Code
		}
	}
	if _, err := e.VerifyCode(ctx, id, rid, code, workflow.Client{}); err != nil {
		t.Fatal(err)
	}
	env, err = e.Event(ctx, id, workflow.Signed{Meta: workflow.Meta{At: at}, RecipientID: rid, Signature: workflow.Signature{
		CertSerial: "1a", Documents: []workflow.DocumentVersion{{Index: 0, Previous: env.Documents[0].Current, SHA256: strings.Repeat("cd", 32)}}}})
	if err != nil {
		t.Fatal(err)
	}
	if !env.StepsDoneAt.Equal(at.UTC()) {
		t.Fatalf("%s: steps done at %v; want %v", id, env.StepsDoneAt, at)
	}
}
