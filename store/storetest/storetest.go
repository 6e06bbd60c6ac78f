// Package storetest is the conformance suite of the store contract
// (package store): every backend runs Run in its tests, against a real
// database, so that the behaviour the rest of the gateway relies on is
// written down once and checked everywhere: optimistic concurrency that
// writes nothing on conflict, the transactional outbox, leases that move on
// expiry unless their holder extends them, queue statistics (with the age
// of pending work, which retries keep), wake-ups that reach every handle on
// the store, blobs streamed past the chunk size and refused past the limit,
// corrupt records reported by name, and no lost update when several
// handles race on one envelope.
//
// Bench measures the operations the gateway does most, for comparing
// backends; Durable checks that what a store acknowledged survives a
// restart.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

// Hooks are what the suite needs from a backend beyond the Store interface:
// a way to damage stored records, to count blob chunks and to open a second
// handle. Backends implement them on their store type in their own test
// files, so that none of this is in a production build.
type Hooks interface {
	// CorruptEnvelope replaces the stored envelope id with bytes that do not
	// decode.
	CorruptEnvelope(ctx context.Context, id string) error
	// CorruptAudit replaces the first audit record of the envelope with
	// bytes that do not decode.
	CorruptAudit(ctx context.Context, envelopeID string) error
	// CorruptBlob changes one stored byte of the blob.
	CorruptBlob(ctx context.Context, sha256 string) error
	// StoredChunks counts the blob chunks held, of finished uploads or not:
	// a refused blob must leave none, a blob stored twice adds none.
	StoredChunks(ctx context.Context) (int, error)
	// Share opens a second handle on the same database, closed when t ends.
	Share(t *testing.T) store.Store
}

// Run runs the suite. open must return a new, empty store with the default
// store.Options that implements Hooks, and close it when t ends; it is called
// once per subtest.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					s := open(t)
					if _, ok := s.(Hooks); !ok {
						t.Fatalf("%T does not implement storetest.Hooks: the suite cannot test corrupt records, leftovers and concurrent handles", s)
					}
					c.f(t, s)
				})
			}
		})
	}
}

type testCase struct {
	name string
	f    func(t *testing.T, s store.Store)
}

var groups = []struct {
	name  string
	cases []testCase
}{
	{"Envelope", envelopeCases},
	{"List", listCases},
	{"Token", tokenCases},
	{"Audit", auditCases},
	{"Blob", blobCases},
	{"Outbox", outboxCases},
	{"Extend", extendCases},
	{"QueueStats", statsCases},
	{"Pending", pendingCases},
	{"Wakeups", wakeupCases},
	{"Lease", leaseCases},
	{"Cursor", cursorCases},
	{"Concurrent", concurrentCases},
}

// t0 is the suite's clock: tests pass times explicitly, as the contract has
// its callers do.
var t0 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

// tokenHash is the SHA-256 of a token, as the signing edge stores it.
func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// newEnvelope returns an envelope of two signers and one copy, with its
// first audit record chained, ready for Create.
func newEnvelope(id string, created time.Time) (*workflow.Envelope, []audit.Record) {
	doc := hex.EncodeToString(tokenHash("document " + id))
	env := &workflow.Envelope{
		ID:        id,
		Title:     "Contract " + id,
		Sender:    workflow.Party{Name: "Agent", Email: "agent@org.example"},
		Language:  "en",
		State:     workflow.StateInProgress,
		CreatedAt: created,
		Deadline:  created.Add(14 * 24 * time.Hour),
		Documents: []workflow.Document{{Name: "contract.pdf", Pages: 3, Original: doc, Current: doc, Size: 1234}},
		Steps:     []workflow.Step{{Role: workflow.Signer, Recipients: []string{"r1", "r2"}}},
		Recipients: []workflow.Recipient{
			{Party: workflow.Party{Email: "marie@partner.example"}, ID: "r1", Role: workflow.Signer, State: workflow.Pending,
				TokenHashes: [][]byte{tokenHash(id + "/r1/1")}, InvitedAt: created},
			{Party: workflow.Party{Email: "paul@partner.example"}, ID: "r2", Role: workflow.Signer, State: workflow.Pending,
				TokenHashes: [][]byte{tokenHash(id + "/r2/1")}, InvitedAt: created},
			{Party: workflow.Party{Email: "archive@org.example"}, ID: "r3", Role: workflow.Copy, Step: -1, State: workflow.Waiting},
		},
		Audit: audit.Start(),
	}
	return env, record(env, audit.Submitted, "agent@org.example")
}

// record chains one audit record onto env, as a transition does.
func record(env *workflow.Envelope, typ audit.Type, actor string) []audit.Record {
	recs, head := audit.Chain(env.Audit, []audit.Record{{
		Time: t0.Add(time.Duration(env.Audit.Seq) * time.Minute), Type: typ, Actor: actor,
		Details: map[string]string{"n": fmt.Sprint(env.Audit.Seq + 1)},
	}})
	env.Audit = head
	return recs
}

// create stores a new envelope and fails t if that fails.
func create(t testing.TB, s store.Store, id string, created time.Time) *workflow.Envelope {
	t.Helper()
	env, recs := newEnvelope(id, created)
	if err := s.Create(context.Background(), env, store.Writes{Audit: recs}); err != nil {
		t.Fatalf("Create %s: %v", id, err)
	}
	return env
}

func ok(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantErr fails t unless err is target.
func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// wantCorrupt fails t unless err is a *store.CorruptError naming name.
func wantCorrupt(t testing.TB, err error, name, what string) {
	t.Helper()
	wantErr(t, err, store.ErrCorrupt, what)
	var ce *store.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: %v is not a *store.CorruptError", what, err)
	}
	if !strings.Contains(ce.Key, name) {
		t.Fatalf("%s: corrupt record %q does not name %q", what, ce.Key, name)
	}
}

// sameEnvelope compares envelopes by their JSON, which is what is stored:
// time.Time values that are Equal may differ in location.
func sameEnvelope(t testing.TB, got, want *workflow.Envelope, what string) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("%s: got envelope\n%s\nwant\n%s", what, g, w)
	}
}

// trail fetches the audit trail and checks it verifies and has n records.
func trail(t testing.TB, s store.Store, id string, n int) []audit.Record {
	t.Helper()
	recs, err := s.AuditTrail(context.Background(), id)
	ok(t, err, "AuditTrail "+id)
	if len(recs) != n {
		t.Fatalf("AuditTrail %s: %d records, want %d", id, len(recs), n)
	}
	if err := audit.Verify(recs); err != nil {
		t.Fatalf("AuditTrail %s: %v", id, err)
	}
	return recs
}

// hasKey checks HasKey.
func hasKey(t testing.TB, s store.Store, id, key string, want bool) {
	t.Helper()
	got, err := s.HasKey(context.Background(), id, key)
	ok(t, err, "HasKey")
	if got != want {
		t.Fatalf("HasKey(%s, %s) = %v, want %v", id, key, got, want)
	}
}

// queueEmpty checks that nothing of queue is due at at.
func queueEmpty(t testing.TB, s store.Store, queue string, at time.Time) {
	t.Helper()
	it, err := s.Claim(context.Background(), queue, "checker", at, time.Minute)
	if !errors.Is(err, store.ErrEmpty) {
		t.Fatalf("Claim %s at %v: got %+v, %v; want ErrEmpty", queue, at, it, err)
	}
}

// genReader yields n pseudo-random bytes from a counter, hashing them as
// it goes, so that a large blob is never in memory.
type genReader struct {
	n, off int64
	seed   byte
	h      hash.Hash
}

func newGen(n int64, seed byte) *genReader { return &genReader{n: n, seed: seed, h: sha256.New()} }

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.n-g.off)]
	for i := range p {
		x := uint64(g.off+int64(i)) * 0x9E3779B97F4A7C15
		p[i] = byte(x>>56) ^ g.seed
	}
	g.off += int64(len(p))
	g.h.Write(p)
	return len(p), nil
}

func (g *genReader) sum() string { return hex.EncodeToString(g.h.Sum(nil)) }

// sum reads r to its end and returns its size and hex SHA-256.
func sum(r io.Reader) (int64, string, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

func itemAt(id, queue string, at time.Time) store.Item {
	p := make([]byte, 8)
	binary.BigEndian.PutUint64(p, uint64(at.UnixNano()))
	return store.Item{ID: id, Queue: queue, Payload: append([]byte("payload "+id+" "), p...), NotBefore: at}
}

// sameItem compares what the caller enqueued with what came back before
// any retry: Since is the one the caller set, else NotBefore.
func sameItem(t testing.TB, got *store.Item, want store.Item, what string) {
	t.Helper()
	if want.Since.IsZero() {
		want.Since = want.NotBefore
	}
	if got.ID != want.ID || got.Queue != want.Queue || got.EnvelopeID != want.EnvelopeID ||
		string(got.Payload) != string(want.Payload) || !got.NotBefore.Equal(want.NotBefore) || !got.Since.Equal(want.Since) {
		t.Fatalf("%s: got item %+v, want %+v", what, got, want)
	}
}
