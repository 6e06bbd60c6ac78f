package main

import (
	"bytes"
	"context"
	encbin "encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox/outboxtest"
	"go.etcd.io/bbolt"
)

// TestCASealVerify runs the signing commands as an operator would: create
// the keys, seal a PDF made by another tool, verify it, and verify a copy
// with one byte changed.
func TestCASealVerify(t *testing.T) {
	dir := t.TempDir()
	env := []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_KEYS_DIR=" + filepath.Join(dir, "keys"), "PARAPHEUR_KEYS_PASSPHRASE=correct horse"}
	if err := os.Mkdir(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Bad names are refused before anything is written.
	for _, args := range [][]string{{"--organisation", "  "}, {"--organisation", "Mairie de Test", "--country", "France"}} {
		if r := parapheur(t, env, append([]string{"ca", "init"}, args...)...); r.code != exitUsage || r.stderr == "" {
			t.Errorf("ca init %q: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	// Nor is a seal made without the keys' passphrase, which says so.
	if r := parapheur(t, env[:2], "seal", "in.pdf", "out.pdf"); r.code != exitFailure || !strings.Contains(r.stderr, "keys.passphrase: required") {
		t.Errorf("seal without a passphrase: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := parapheur(t, env, "ca", "init", "--organisation", "Mairie de Test", "--country", "fr"); r.code != exitOK || !strings.Contains(r.stdout, "seal.p12") ||
		!strings.Contains(r.stdout, "wrote "+filepath.Join(dir, "keys", "gateway.key")) {
		t.Fatalf("ca init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	secret := filepath.Join(dir, "keys", "gateway.key")
	first, err := os.ReadFile(secret)
	if fi, _ := os.Stat(secret); err != nil || len(first) != 32 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("gateway.key: %d bytes, %v; want 32 bytes readable by its owner only", len(first), err)
	}
	if r := parapheur(t, env, "ca", "init", "--organisation", "Mairie de Test"); r.code != exitFailure || !strings.Contains(r.stderr, "not overwriting") {
		t.Fatalf("second ca init: exit %d\n%s", r.code, r.stderr)
	}
	if again, err := os.ReadFile(secret); err != nil || !bytes.Equal(again, first) {
		t.Fatalf("the second ca init changed the gateway secret: %v", err)
	}
	// A container's first-start step runs on every start: it keeps the keys.
	seal := filepath.Join(dir, "keys", "seal.p12")
	sealBefore, err := os.ReadFile(seal)
	if err != nil {
		t.Fatal(err)
	}
	if r := parapheur(t, env, "ca", "init", "--if-missing", "--organisation", "Mairie de Test"); r.code != exitOK || !strings.Contains(r.stdout, "kept the CA and seal") {
		t.Fatalf("ca init --if-missing over existing keys: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if sealAfter, err := os.ReadFile(seal); err != nil || !bytes.Equal(sealAfter, sealBefore) {
		t.Fatalf("ca init --if-missing changed the seal: %v", err)
	}
	// An installation made before the gateway secret: ca init adds the
	// secret serve asks for and keeps the CA.
	if err := os.Remove(secret); err != nil {
		t.Fatal(err)
	}
	if r := parapheur(t, env, "ca", "init", "--organisation", "Mairie de Test"); r.code != exitOK ||
		!strings.Contains(r.stdout, "wrote "+secret) || !strings.Contains(r.stdout, "kept the CA and seal") {
		t.Fatalf("ca init of an installation without gateway.key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	in, out := filepath.Join(dir, "in.pdf"), filepath.Join(dir, "out.pdf")
	if _, err := exec.LookPath("qpdf"); err != nil {
		t.Fatal("qpdf not found: run  apt-get install -y qpdf")
	}
	if b, err := exec.Command("qpdf", "--empty", "--pages", filepath.Join("..", "..", "mailin", "testdata", "doc1.pdf"), "--", in).CombinedOutput(); err != nil {
		t.Fatalf("qpdf: %v: %s", err, b)
	}
	if r := parapheur(t, env, "seal", in, out); r.code != exitOK || !strings.Contains(r.stdout, "PAdES B-B, Mairie de Test seal") {
		t.Fatalf("seal: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r := parapheur(t, env, "verify", out)
	if r.code != exitOK || !strings.Contains(r.stdout, "this gateway's CA") || !strings.Contains(r.stdout, "VALID: all 1 signature(s) intact") {
		t.Fatalf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if b, err := exec.Command("pdfsig", "-nocert", out).CombinedOutput(); err != nil || !strings.Contains(string(b), "Signature is Valid") {
		t.Fatalf("pdfsig on the sealed file: %v\n%s", err, b)
	}

	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/3] ^= 0x01
	bad := filepath.Join(dir, "bad.pdf")
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := parapheur(t, env, "verify", bad); r.code != exitFailure || !strings.Contains(r.stdout, "NOT INTACT") {
		t.Fatalf("verify of a changed file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := os.WriteFile(bad, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := parapheur(t, env, "verify", bad); r.code != 2 || !strings.Contains(r.stderr, "unreadable") {
		t.Fatalf("verify of a non-PDF: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	wrong := append(env[:2:2], "PARAPHEUR_KEYS_PASSPHRASE=wrong")
	if r := parapheur(t, wrong, "seal", in, out); r.code != exitFailure || !strings.Contains(r.stderr, "wrong passphrase") {
		t.Fatalf("seal with a wrong passphrase: exit %d\n%s", r.code, r.stderr)
	}
}

// boltEnvelope makes a bolt store in a temporary directory holding
// envelope E1, to be signed by marie@partner.example, with events applied
// to it, and returns the file's path and E1's audit trail. The store is
// closed: bolt allows one process at a time.
func boltEnvelope(t *testing.T, events ...workflow.Event) (string, []audit.Record) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.db")
	st, err := bolt.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, code := boltKeys(t, path)
	e := &engine.Engine{Store: st, CodeKey: code}
	d := workflow.Draft{
		ID: "E1", Title: "Convention de partenariat", Language: "fr", Sender: workflow.Party{Email: "agent@org.example"},
		Documents: []workflow.Document{{Name: "c.pdf", Pages: 2, Original: strings.Repeat("ab", 32)}},
		Steps:     []workflow.DraftStep{{Role: workflow.Signer, Parties: []workflow.Party{{Email: "marie@partner.example"}}}},
		Deadline:  time.Now().Add(48 * time.Hour),
	}
	if _, err := e.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if _, err := e.Event(context.Background(), "E1", ev); err != nil {
			t.Fatal(err)
		}
	}
	trail, err := st.AuditTrail(context.Background(), "E1")
	if err != nil {
		t.Fatal(err)
	}
	return path, trail
}

// boltKeys is the keys.dir beside the bolt store at path, holding a
// gateway secret (made on first use), as the envelope commands that queue
// mails need: its PARAPHEUR_KEYS_DIR setting, and the key that seals and
// opens the links and codes of those mails.
func boltKeys(t *testing.T, path string) (string, []byte) {
	t.Helper()
	dir := filepath.Join(filepath.Dir(path), "keys")
	if _, err := createGatewaySecret(dir); err != nil {
		t.Fatal(err)
	}
	keys, err := loadGatewayKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	return "PARAPHEUR_KEYS_DIR=" + dir, keys.code
}

// TestEnvelopeCommands administers envelopes of a bolt store.
func TestEnvelopeCommands(t *testing.T) {
	path, _ := boltEnvelope(t)
	keysDir, _ := boltKeys(t, path)
	env := []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_STORE_URL=bolt://" + path, keysDir}
	r := parapheur(t, env, "envelope", "list")
	if r.code != exitOK || !strings.Contains(r.stdout, "E1") || !strings.Contains(r.stdout, "marie@partner.example") {
		t.Fatalf("list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Without the gateway's key the reminder's link could not be sealed for
	// serve to open: the command says so, and queues nothing.
	noKeys := []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_STORE_URL=bolt://" + path, "PARAPHEUR_KEYS_DIR=" + t.TempDir()}
	if r := parapheur(t, noKeys, "envelope", "remind", "E1"); r.code != exitFailure || !strings.Contains(r.stderr, "keys.dir") || !strings.Contains(r.stderr, "gateway secret") {
		t.Errorf("remind without the gateway's key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := parapheur(t, env, "envelope", "remind", "E1"); r.code != exitOK || !strings.Contains(r.stdout, "reminder queued for marie@partner.example") {
		t.Fatalf("remind: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The ID as typed from a mail, in lower case, and the flag after it,
	// as people write commands.
	if r := parapheur(t, env, "envelope", "cancel", "e1", "--reason", "remplacée par la v2"); r.code != exitOK || !strings.Contains(r.stdout, "envelope E1: ") || !strings.Contains(r.stdout, "now cancelled") {
		t.Fatalf("cancel: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := parapheur(t, env, "envelope", "cancel", "--reason", "again", "E1"); r.code != exitOK {
		t.Fatalf("a second cancel is a replay: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = parapheur(t, env, "envelope", "show", "E1")
	for _, want := range []string{"envelope E1: cancelled", "remplacée par la v2", "submitted", "reminder_sent", "cancelled", "audit trail of envelope E1: chain intact: 3 events, head seq 3 "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show does not say %q:\n%s", want, r.stdout)
		}
	}
	if r := parapheur(t, env, "envelope", "show", "NOPE"); r.code != exitFailure || !strings.Contains(r.stderr, "not found") || !strings.Contains(r.stderr, "parapheur envelope list") {
		t.Fatalf("show of an unknown envelope: exit %d\n%s", r.code, r.stderr)
	}
	// A store.url that names no file is told, with how to name the right
	// store; no empty store is made there.
	missing := filepath.Join(t.TempDir(), "parapheur.db")
	r = parapheur(t, []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_STORE_URL=bolt://" + missing}, "envelope", "list")
	if r.code != exitFailure || !strings.Contains(r.stderr, "no store at bolt://"+missing) || !strings.Contains(r.stderr, "PARAPHEUR_STORE_URL") {
		t.Errorf("list of a store that is not there: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("envelope list made a store at %s: %v", missing, err)
	}
	if r := parapheur(t, env, "envelope", "list", "--state", "in_progress"); r.code != exitOK || strings.Contains(r.stdout, "E1") {
		t.Fatalf("list of in-progress envelopes: exit %d\n%s", r.code, r.stdout)
	}
	if r := parapheur(t, env, "envelope", "list", "--state", "cancelled"); r.code != exitOK || !strings.Contains(r.stdout, "E1") {
		t.Fatalf("list of cancelled envelopes: exit %d\n%s", r.code, r.stdout)
	}
}

// TestEnvelopeCommandsRefuseBadInput checks that a state that does not
// exist is named with the states that do, that --stuck goes only with
// in_progress, and that a cancellation needs its reason: nothing is
// changed then.
func TestEnvelopeCommandsRefuseBadInput(t *testing.T) {
	path, _ := boltEnvelope(t)
	env := []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_STORE_URL=bolt://" + path}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"envelope", "list", "--state", "done"}, `--state "done": not a state; want one of in_progress, completed, declined, cancelled, expired`},
		{[]string{"envelope", "list", "--stuck", "--state", "completed"}, "--stuck lists envelopes in progress; it does not go with --state completed"},
		{[]string{"envelope", "cancel", "E1"}, "--reason is required"},
		{[]string{"envelope", "cancel", "--reason", " ", "E1"}, "--reason is required"},
	} {
		r := parapheur(t, env, tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", strings.Join(tc.args, " "), r.code, r.stderr, exitUsage, tc.want)
		}
	}
	if r := parapheur(t, env, "envelope", "show", "E1"); !strings.Contains(r.stdout, "envelope E1: in_progress") {
		t.Errorf("a refused cancel changed the envelope:\n%s", r.stdout)
	}
}

// TestEnvelopeShowVerify tampers with the audit trail in the bolt file, as
// someone with access to the database could, and checks that envelope
// show --verify names the event each change breaks.
func TestEnvelopeShowVerify(t *testing.T) {
	now := time.Now()
	path, trail := boltEnvelope(t, workflow.ReminderDue{Meta: workflow.Meta{At: now}}, workflow.Cancelled{Meta: workflow.Meta{At: now}, By: "operator", Reason: "test"})
	n := len(trail)
	if n < 3 {
		t.Fatalf("the trail holds %d records, want at least 3 to tamper with", n)
	}
	env := []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_STORE_URL=bolt://" + path}
	r := parapheur(t, env, "envelope", "show", "--verify", "E1")
	want := fmt.Sprintf("audit trail of envelope E1: chain intact: %d events, head seq %d %s\n", n, n, trail[n-1].Hash)
	if r.code != exitOK || r.stdout != want {
		t.Fatalf("show --verify of an intact trail: exit %d\n%s%s\nwant %s", r.code, r.stdout, r.stderr, want)
	}

	// Each case changes the trail in the file, checks the verdict, and
	// puts the original records back.
	for _, c := range []struct {
		name   string
		tamper func(b *bbolt.Bucket) error
		want   []string
		marked uint64 // the seq show marks as broken, 0 for none
	}{
		{"edited", func(b *bbolt.Bucket) error {
			r := trail[1]
			r.Actor = "mallory@example.org"
			return b.Put(auditKey("E1", 2), mustJSON(t, r))
		}, []string{fmt.Sprintf("BROKEN at event seq 2 (%s, ", trail[1].Type), "by mallory@example.org): hash does not match the content: the record was changed"}, 2},
		{"removed", func(b *bbolt.Bucket) error {
			return b.Delete(auditKey("E1", 2))
		}, []string{fmt.Sprintf("BROKEN at event seq 3 (%s, ", trail[2].Type), "expected seq 2: a record was removed"}, 3},
		{"swapped", func(b *bbolt.Bucket) error {
			if err := b.Put(auditKey("E1", 2), mustJSON(t, trail[2])); err != nil {
				return err
			}
			return b.Put(auditKey("E1", 3), mustJSON(t, trail[1]))
		}, []string{fmt.Sprintf("BROKEN at event seq 3 (%s, ", trail[2].Type), "expected seq 2"}, 3},
		{"last removed", func(b *bbolt.Bucket) error {
			return b.Delete(auditKey("E1", uint64(n)))
		}, []string{fmt.Sprintf("BROKEN: the trail ends at seq %d but the recorded head is seq %d", n-1, n)}, 0},
		{"undecodable", func(b *bbolt.Bucket) error {
			return b.Put(auditKey("E1", 2), []byte(`{"seq":`))
		}, []string{"BROKEN: corrupt stored record audit record 2 of envelope E1"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			rewriteAudit(t, path, c.tamper)
			defer rewriteAudit(t, path, func(b *bbolt.Bucket) error {
				for _, r := range trail {
					if err := b.Put(auditKey("E1", r.Seq), mustJSON(t, r)); err != nil {
						return err
					}
				}
				return nil
			})
			r := parapheur(t, env, "envelope", "show", "--verify", "E1")
			if r.code != exitFailure || !strings.HasPrefix(r.stdout, "audit trail of envelope E1: ") {
				t.Fatalf("show --verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			for _, want := range c.want {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("show --verify does not say %q:\n%s", want, r.stdout)
				}
			}
			full := parapheur(t, env, "envelope", "show", "E1")
			if full.code != exitFailure || !strings.Contains(full.stdout, "envelope E1: cancelled") || !strings.HasSuffix(full.stdout, r.stdout) {
				t.Fatalf("show: exit %d\n%s%s\nwant the envelope and then %q", full.code, full.stdout, full.stderr, r.stdout)
			}
			var marked []string
			for _, line := range strings.Split(full.stdout, "\n") {
				if strings.HasPrefix(line, "!") {
					marked = append(marked, line)
				}
			}
			if c.marked == 0 && len(marked) != 0 || c.marked != 0 && (len(marked) != 1 || !strings.HasPrefix(marked[0], fmt.Sprintf("! %3d ", c.marked))) {
				t.Fatalf("show marks %q as broken, want seq %d:\n%s", marked, c.marked, full.stdout)
			}
		})
	}
	if r := parapheur(t, env, "envelope", "show", "--verify", "E1"); r.code != exitOK || r.stdout != want {
		t.Fatalf("show --verify once the records are back: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// auditKey is store/bolt's key of an audit record: the envelope ID with
// its uvarint length, then the seq big-endian.
func auditKey(envelopeID string, seq uint64) []byte {
	k := encbin.AppendUvarint(nil, uint64(len(envelopeID)))
	k = append(k, envelopeID...)
	return encbin.BigEndian.AppendUint64(k, seq)
}

// rewriteAudit changes the audit bucket of the bolt file at path.
func rewriteAudit(t *testing.T, path string, change func(*bbolt.Bucket) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error { return change(tx.Bucket([]byte("audit"))) }); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerifyAuditTrail runs verify on audit trails as an archivist receives
// them: the JSON file (intact, one event edited, one removed, two swapped,
// not a trail) and the completion certificate's kind of PDF, sealed, with
// the trail attached (by qpdf, another tool than ours).
func TestVerifyAuditTrail(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	recs, _ := audit.Chain(audit.Start(), []audit.Record{
		{Time: at, Type: audit.Submitted, Actor: "agent@org.example"},
		{Time: at.Add(time.Minute), Type: audit.InvitationSent, Actor: "system", RecipientID: "r1"},
		{Time: at.Add(time.Hour), Type: audit.Signed, Actor: "marie@partner.example", RecipientID: "r1", Details: map[string]string{"serial": "0a1b"}},
		{Time: at.Add(2 * time.Hour), Type: audit.Completed, Actor: "system"},
	})
	file := func(name string, recs []audit.Record) string {
		p := filepath.Join(dir, name)
		b, err := json.MarshalIndent(recs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	edited := recs[2]
	edited.Details = map[string]string{"serial": "ffff"}
	env := []string{"PARAPHEUR_CONFIG="}
	for _, c := range []struct {
		name string
		recs []audit.Record
		code int
		want string
	}{
		{"intact", recs, exitOK, "audit trail audit-E1.json: chain intact: 4 events, head seq 4 " + recs[3].Hash + "\n"},
		{"edited", []audit.Record{recs[0], recs[1], edited, recs[3]}, exitFailure,
			"audit trail audit-E1.json: BROKEN at event seq 3 (signed, 2026-06-01 10:00:00 UTC by marie@partner.example): hash does not match the content: the record was changed\n"},
		{"removed", []audit.Record{recs[0], recs[2], recs[3]}, exitFailure,
			"audit trail audit-E1.json: BROKEN at event seq 3 (signed, 2026-06-01 10:00:00 UTC by marie@partner.example): expected seq 2: a record was removed, inserted or reordered\n"},
		{"swapped", []audit.Record{recs[0], recs[1], recs[3], recs[2]}, exitFailure,
			"audit trail audit-E1.json: BROKEN at event seq 4 (completed, 2026-06-01 11:00:00 UTC by system): expected seq 3: a record was removed, inserted or reordered\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := parapheur(t, env, "verify", file(c.name+"-audit-E1.json", c.recs))
			if r.code != c.code || r.stdout != strings.Replace(c.want, "audit-E1.json", c.name+"-audit-E1.json", 1) {
				t.Fatalf("exit %d\n%s%s\nwant exit %d and %s", r.code, r.stdout, r.stderr, c.code, c.want)
			}
		})
	}
	notTrail := filepath.Join(dir, "audit-E2.json")
	if err := os.WriteFile(notTrail, []byte(`{"seq": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := parapheur(t, env, "verify", notTrail); r.code != 2 || r.stderr != "parapheur verify: "+notTrail+": audit trail: starts with {: want a JSON array of audit records\n" {
		t.Fatalf("verify of a JSON object: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// The trail attached to a sealed PDF.
	env = []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_KEYS_DIR=" + filepath.Join(dir, "keys"), "PARAPHEUR_KEYS_PASSPHRASE=correct horse"}
	if err := os.Mkdir(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if r := parapheur(t, env, "ca", "init", "--organisation", "Mairie de Test"); r.code != exitOK {
		t.Fatalf("ca init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sealedWith := func(trail string) string {
		attached, sealed := trail+".pdf", trail+".sealed.pdf"
		if b, err := exec.Command("qpdf", filepath.Join("..", "..", "mailin", "testdata", "doc1.pdf"), "--add-attachment", trail,
			"--filename=audit-E1.json", "--mimetype=application/json", "--", attached).CombinedOutput(); err != nil {
			t.Fatalf("qpdf --add-attachment: %v: %s", err, b)
		}
		if r := parapheur(t, env, "seal", attached, sealed); r.code != exitOK {
			t.Fatalf("seal: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		return sealed
	}
	r := parapheur(t, env, "verify", sealedWith(file("intact.json", recs)))
	if r.code != exitOK || !strings.Contains(r.stdout, "\naudit trail audit-E1.json: chain intact: 4 events, head seq 4 "+recs[3].Hash+"\n") ||
		!strings.Contains(r.stdout, "VALID: all 1 signature(s) intact") {
		t.Fatalf("verify of a sealed PDF with its trail: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = parapheur(t, env, "verify", sealedWith(file("edited.json", []audit.Record{recs[0], recs[1], edited, recs[3]})))
	if r.code != exitFailure || !strings.Contains(r.stdout, "\naudit trail audit-E1.json: BROKEN at event seq 3 (signed, ") ||
		!strings.Contains(r.stdout, "INVALID: all 1 signature(s) intact, but 1 embedded audit trail(s) broken") {
		t.Fatalf("verify of a sealed PDF with an edited trail: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestEnvelopeCommandsWhileServeHoldsTheStore runs the envelope commands
// while a real "parapheur serve" has the embedded store open: bbolt locks
// the file for one process, so each command must say so and what to do
// within a few seconds, never wait on the lock; once serve stops, they work.
func TestEnvelopeCommandsWhileServeHoldsTheStore(t *testing.T) {
	keys := initKeys(t)
	db := filepath.Join(t.TempDir(), "parapheur.db")
	listen := freeAddr(t)
	env := append(unreachableServersEnv(t, keys), "PARAPHEUR_STORE_URL=bolt://"+db, "PARAPHEUR_LISTEN="+listen)
	serve := exec.Command(binary, "serve")
	serve.Env = env
	logs := &lockedBuffer{}
	serve.Stdout, serve.Stderr = logs, logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	t.Cleanup(func() {
		serve.Process.Kill()
		if t.Failed() {
			t.Logf("serve logs:\n%s", logs.String())
		}
	})
	// /healthz answers once the store is open: serve holds the lock.
	waitHTTP(t, "http://"+listen+"/healthz", exited)

	for _, args := range [][]string{
		{"envelope", "list"},
		{"envelope", "list", "--stuck"},
		{"envelope", "show", "E1"},
		{"envelope", "cancel", "--reason", "test", "E1"},
		{"envelope", "remind", "E1"},
	} {
		// The deadline only keeps a hanging command from hanging the test.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, binary, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		hung := errors.Is(ctx.Err(), context.DeadlineExceeded)
		cancel()
		if hung {
			t.Fatalf("%s hangs while serve holds the store", strings.Join(args, " "))
		}
		want := "the store bolt://" + db + " is locked by another process, most likely a running `parapheur serve`"
		if err == nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), "Redis") {
			t.Errorf("%s while serve runs: %v\n%s\nwant an error saying %q and what to do", strings.Join(args, " "), err, out, want)
		}
	}

	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Fatalf("serve did not stop cleanly: %v", err)
	}
	if r := parapheur(t, env, "envelope", "list"); r.code != exitOK || !strings.HasPrefix(r.stdout, "ID") {
		t.Errorf("list once serve stopped: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestEnvelopeResend resends lost mails as an operator would: a signer's
// invitation and the sender's acknowledgement while envelope E1 is in
// progress, each with a new link beside the old one, then, once E1 is
// signed, sealed and completed, the completion mail; envelope show then
// tells the seal, the final hashes and the certificate.
func TestEnvelopeResend(t *testing.T) {
	path, _ := boltEnvelope(t)
	keysDir, code := boltKeys(t, path)
	env := []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_STORE_URL=bolt://" + path, keysDir}
	ctx := context.Background()
	// delivered returns the jobs of the mails queued since the last call.
	delivered := func() []engine.Job {
		t.Helper()
		st, err := bolt.Open(path, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		return outboxtest.Deliver(t, &engine.Engine{Store: st, CodeKey: code}, engine.MailQueue, time.Now())
	}
	first := delivered() // the acknowledgement and the invitation of the submission

	for _, tc := range []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"E1"}, exitUsage, "", "--to is required"},
		{[]string{"--to", "eve@example.com", "E1"}, exitFailure, "", "envelope E1 has no sender or recipient eve@example.com"},
		{[]string{"--to", "Marie@partner.example", "E1"}, exitOK, "envelope E1: invitation queued for Marie@partner.example (now in_progress)\n", ""},
		{[]string{"--to", "agent@org.example", "E1"}, exitOK, "envelope E1: acknowledgement queued for agent@org.example (now in_progress)\n", ""},
	} {
		r := parapheur(t, env, append([]string{"envelope", "resend"}, tc.args...)...)
		if r.code != tc.code || r.stdout != tc.out || !strings.Contains(r.stderr, tc.err) {
			t.Errorf("resend %s: exit %d, stdout %q, stderr %q; want %d, %q and %q", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.code, tc.out, tc.err)
		}
	}
	again := delivered()
	// Each mail again, to the same party, with a new token; the old links keep working.
	st, err := bolt.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || len(again) != 2 {
		t.Fatalf("queued at creation %+v, by the resends %+v: want two of each", first, again)
	}
	for i, job := range again {
		old := first[i]
		if job.Notice != old.Notice || job.To != old.To || job.Token == "" || job.Token == old.Token {
			t.Errorf("resent %s to %s with token %q; first sent %s to %s with %q", job.Notice, job.To, job.Token, old.Notice, old.To, old.Token)
		}
		for _, token := range []string{old.Token, job.Token} {
			if id, who, err := st.ByToken(ctx, engine.HashToken(token)); err != nil || id != "E1" || who != job.To {
				t.Errorf("the %s link %q leads to %s/%s, %v; want E1/%s", job.Notice, token, id, who, err, job.To)
			}
		}
	}

	// Marie signs; the completion seals the document and stores the certificate.
	e := &engine.Engine{Store: st, CodeKey: code}
	if _, err := e.SendCode(ctx, "E1", "r1", workflow.Client{}); err != nil {
		t.Fatal(err)
	}
	codes := outboxtest.Deliver(t, e, engine.MailQueue, time.Now())
	if len(codes) != 1 || codes[0].Notice != engine.NoticeCode {
		t.Fatalf("queued after SendCode: %+v", codes)
	}
	if _, err := e.VerifyCode(ctx, "E1", "r1", codes[0].Code, workflow.Client{}); err != nil {
		t.Fatal(err)
	}
	signed, sealed, certificate := strings.Repeat("cd", 32), strings.Repeat("ef", 32), strings.Repeat("01", 32)
	now := workflow.Meta{At: time.Now()}
	for _, ev := range []workflow.Event{
		workflow.Signed{Meta: now, RecipientID: "r1", Signature: workflow.Signature{CertSerial: "0a",
			Documents: []workflow.DocumentVersion{{Index: 0, Previous: strings.Repeat("ab", 32), SHA256: signed, Size: 10}}}},
		workflow.Sealed{Meta: now, Document: workflow.DocumentVersion{Index: 0, Previous: signed, SHA256: sealed, Size: 11}, Level: "B-B", Serial: "5e"},
		workflow.Completed{Meta: now, Certificate: certificate},
	} {
		if _, err := e.Event(ctx, "E1", ev); err != nil {
			t.Fatalf("%T: %v", ev, err)
		}
	}
	outboxtest.Deliver(t, e, engine.MailQueue, time.Now()) // the completion mails
	st.Close()

	if r := parapheur(t, env, "envelope", "resend", "--to", "marie@partner.example", "E1"); r.code != exitOK || r.stdout != "envelope E1: completion queued for marie@partner.example (now completed)\n" {
		t.Errorf("resend after completion: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if jobs := delivered(); len(jobs) != 1 || jobs[0].Notice != workflow.CompletionMail || jobs[0].To != "r1" || jobs[0].Token == "" {
		t.Errorf("queued by the resend after completion: %+v; want the completion mail to r1 with its download token", jobs)
	}
	r := parapheur(t, env, "envelope", "show", "E1")
	for _, want := range []string{
		"envelope E1: completed",
		"sealed   sha256 " + sealed,
		"completion certificate sha256 " + certificate,
		`sealed           system document="0" level="B-B" previous="` + signed + `" serial="5e" sha256="` + sealed + `"`,
		`resent           operator mail="invitation" recipients="r1" to="Marie@partner.example"`,
		`resent           operator mail="completion" recipients="r1" to="marie@partner.example"`,
		"chain intact",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show does not say %q:\n%s", want, r.stdout)
		}
	}
}

// TestEnvelopeListTimesHaveTheirZone: envelope list and show write every
// time with its zone, and the deadline as the day it ends: a deadline is
// midnight after its day, which a server in Paris would list as the next
// day.
func TestEnvelopeListTimesHaveTheirZone(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatalf("time zone database: %v", err)
	}
	day := time.Now().In(paris).AddDate(0, 0, 10)
	deadline := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, paris) // the end of day
	path := filepath.Join(t.TempDir(), "p.db")
	st, err := bolt.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&engine.Engine{Store: st}).Create(context.Background(), workflow.Draft{
		ID: "E9", Title: "Convention", Language: "fr", Sender: workflow.Party{Email: "agent@org.example"},
		Documents: []workflow.Document{{Name: "c.pdf", Pages: 2, Original: strings.Repeat("ab", 32)}},
		Steps:     []workflow.DraftStep{{Role: workflow.Signer, Parties: []workflow.Party{{Email: "marie@partner.example"}}}},
		Deadline:  deadline,
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	env := []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_STORE_URL=bolt://" + path, "TZ=Europe/Paris"}
	r := parapheur(t, env, "envelope", "list")
	row := regexp.MustCompile(`(?m)^E9 +in_progress +\d{4}-\d\d-\d\d \d\d:\d\d (CET|CEST) +` + regexp.QuoteMeta(day.Format("2006-01-02")) + ` +agent@org\.example`)
	if r.code != exitOK || !row.MatchString(r.stdout) {
		t.Errorf("list: exit %d; want E9 created with its zone, due %s:\n%s%s", r.code, day.Format("2006-01-02"), r.stdout, r.stderr)
	}
	r = parapheur(t, env, "envelope", "show", "E9")
	if line := regexp.MustCompile(`(?m)^ +1 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d (CET|CEST) submitted `); r.code != exitOK || !line.MatchString(r.stdout) {
		t.Errorf("show: exit %d; want the audit trail's times with their zone:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestEnvelopeCommandsFindTheDemo: run from the folder where the demo
// keeps its state, with nothing configured, the envelope commands use the
// demo's store and say so, as verify does (a black-box run found verify did
// and envelope show did not); a configured store keeps them from it.
func TestEnvelopeCommandsFindTheDemo(t *testing.T) {
	path, _ := boltEnvelope(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, demoDir), 0o700); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, demoDir, "parapheur.db"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(env []string, args ...string) (string, string) {
		cmd := exec.Command(binary, args...)
		cmd.Env, cmd.Dir = env, dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		return stdout.String(), stderr.String()
	}
	stdout, stderr := run([]string{"PARAPHEUR_CONFIG="}, "envelope", "show", "E1")
	if !strings.Contains(stdout, "envelope E1: in_progress") || !strings.Contains(stderr, "No configuration: using the demo's store in ./parapheur-demo.") {
		t.Errorf("envelope show beside the demo's folder:\n%s%s", stdout, stderr)
	}
	other := filepath.Join(t.TempDir(), "parapheur.db")
	stdout, stderr = run([]string{"PARAPHEUR_CONFIG=", "PARAPHEUR_STORE_URL=bolt://" + other}, "envelope", "list")
	if strings.Contains(stdout, "E1") || strings.Contains(stderr, "demo's store") || !strings.Contains(stderr, "no store at bolt://"+other) {
		t.Errorf("envelope list with store.url configured elsewhere:\n%s%s", stdout, stderr)
	}
}

// TestVerifyFindsTheDemo: run from the folder where the demo keeps its
// state, with nothing configured, verify knows the demo's CA and says it
// used it; anything configured keeps it from looking there.
func TestVerifyFindsTheDemo(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, demoDir, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := demoKeys(keys, "http://127.0.0.1:8080"); err != nil {
		t.Fatal(err)
	}
	in, out := filepath.Join(dir, "in.pdf"), filepath.Join(dir, "out.pdf")
	if b, err := exec.Command("qpdf", "--empty", "--pages", filepath.Join("..", "..", "mailin", "testdata", "doc1.pdf"), "--", in).CombinedOutput(); err != nil {
		t.Fatalf("qpdf: %v: %s", err, b)
	}
	if r := parapheur(t, []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_KEYS_DIR=" + keys, "PARAPHEUR_KEYS_PASSPHRASE=" + demoPassphrase}, "seal", in, out); r.code != exitOK {
		t.Fatalf("seal: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	verify := exec.Command(binary, "verify", out)
	verify.Env, verify.Dir = []string{"PARAPHEUR_CONFIG="}, dir
	stdout, err := verify.Output()
	if err != nil || !strings.Contains(string(stdout), "No configuration: checked against the demo's keys and store in ./parapheur-demo.") ||
		!strings.Contains(string(stdout), "this gateway's CA") {
		t.Fatalf("verify beside the demo's folder: %v\n%s", err, stdout)
	}
	// The same from another folder: the demo is not looked for there.
	r := parapheur(t, []string{"PARAPHEUR_CONFIG="}, "verify", out)
	if r.code != exitOK || strings.Contains(r.stdout, "demo") || strings.Contains(r.stdout, "this gateway's CA") {
		t.Fatalf("verify away from the demo's folder: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	verify = exec.Command(binary, "verify", out)
	verify.Env, verify.Dir = []string{"PARAPHEUR_CONFIG=", "PARAPHEUR_KEYS_DIR=" + t.TempDir()}, dir
	if stdout, err := verify.Output(); err != nil || strings.Contains(string(stdout), "demo") || strings.Contains(string(stdout), "this gateway's CA") {
		t.Fatalf("verify with keys.dir configured elsewhere: %v\n%s", err, stdout)
	}
}
