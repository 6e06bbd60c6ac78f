package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/internal/check"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

var envelopeCases = []testCase{
	{"CreateGet", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		env, recs := newEnvelope("E1", t0)
		item := itemAt("E1/ack", "mail", t0)
		item.EnvelopeID = "E1"
		ok(t, s.Create(ctx, env, store.Writes{Audit: recs, Items: []store.Item{item}, Keys: []string{"<sub@org.example>"}}), "Create")
		if env.Version != 1 {
			t.Fatalf("Create set Version %d, want 1", env.Version)
		}
		got, err := s.Get(ctx, "E1")
		ok(t, err, "Get")
		sameEnvelope(t, got, env, "Get after Create")
		trail(t, s, "E1", 1)
		hasKey(t, s, "E1", "<sub@org.example>", true)
		hasKey(t, s, "E1", "<other@org.example>", false)
		claimed, err := s.Claim(ctx, "mail", "w", t0, time.Minute)
		ok(t, err, "Claim of the item written by Create")
		sameItem(t, claimed, item, "Claim")
	}},
	{"GetNotFound", func(t *testing.T, s store.Store) {
		_, err := s.Get(t.Context(), "nope")
		wantErr(t, err, store.ErrNotFound, "Get of an unknown envelope")
	}},
	{"CreateExists", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		first := create(t, s, "E1", t0)
		again, recs := newEnvelope("E1", t0.Add(time.Hour))
		again.Title = "second ingestion"
		again.Recipients[0].TokenHashes = [][]byte{tokenHash("E1/second")}
		item := itemAt("E1/second", "mail", t0)
		item.EnvelopeID = "E1"
		err := s.Create(ctx, again, store.Writes{Audit: recs, Items: []store.Item{item}, Keys: []string{"second"}})
		wantErr(t, err, store.ErrExists, "Create of a taken ID")
		if again.Version != 0 {
			t.Fatalf("failed Create set Version %d", again.Version)
		}
		got, err := s.Get(ctx, "E1")
		ok(t, err, "Get")
		sameEnvelope(t, got, first, "the first envelope after a second Create")
		trail(t, s, "E1", 1)
		hasKey(t, s, "E1", "second", false)
		queueEmpty(t, s, "mail", t0.Add(time.Hour))
		_, _, err = s.ByToken(ctx, tokenHash("E1/second"))
		wantErr(t, err, store.ErrNotFound, "ByToken of a token of the refused Create")
		page, err := s.List(ctx, store.ListQuery{})
		ok(t, err, "List")
		if len(page.Envelopes) != 1 {
			t.Fatalf("List after a refused Create: %d envelopes, want 1", len(page.Envelopes))
		}
	}},
	{"CreateInvalid", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		for _, c := range []struct {
			name   string
			change func(env *workflow.Envelope, w *store.Writes)
		}{
			{"version", func(env *workflow.Envelope, w *store.Writes) { env.Version = 3 }},
			{"no ID", func(env *workflow.Envelope, w *store.Writes) { env.ID = "" }},
			{"item of another envelope", func(env *workflow.Envelope, w *store.Writes) {
				w.Items = []store.Item{{ID: "x", Queue: "mail", EnvelopeID: "E2"}}
			}},
			{"item ID too long", func(env *workflow.Envelope, w *store.Writes) {
				w.Items = []store.Item{{ID: strings.Repeat("x", check.MaxItemIDBytes+1), Queue: "mail", EnvelopeID: "E1"}}
			}},
			{"item without queue", func(env *workflow.Envelope, w *store.Writes) {
				w.Items = []store.Item{{ID: "x", EnvelopeID: "E1"}}
			}},
			{"empty key", func(env *workflow.Envelope, w *store.Writes) { w.Keys = []string{""} }},
			{"audit not from the start", func(env *workflow.Envelope, w *store.Writes) {
				w.Audit = append(w.Audit, record(env, audit.Viewed, "x")...)
				w.Audit = w.Audit[1:]
			}},
			{"head not at the last record", func(env *workflow.Envelope, w *store.Writes) { env.Audit = audit.Start() }},
		} {
			env, recs := newEnvelope("E1", t0)
			w := store.Writes{Audit: recs}
			c.change(env, &w)
			wantErr(t, s.Create(ctx, env, w), store.ErrInvalid, "Create with "+c.name)
		}
		_, err := s.Get(ctx, "E1")
		wantErr(t, err, store.ErrNotFound, "Get after refused Creates")
	}},
	{"Update", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		env := create(t, s, "E1", t0)
		env.Recipients[0].State = workflow.HasSigned
		env.Recipients[0].ActedAt = t0.Add(time.Hour)
		recs := record(env, audit.Signed, "marie@partner.example")
		item := itemAt("E1/notify", "mail", t0)
		item.EnvelopeID = "E1"
		ok(t, s.Update(ctx, env, store.Writes{Audit: recs, Items: []store.Item{item}, Keys: []string{"reply-1"}}), "Update")
		if env.Version != 2 {
			t.Fatalf("Update set Version %d, want 2", env.Version)
		}
		got, err := s.Get(ctx, "E1")
		ok(t, err, "Get")
		sameEnvelope(t, got, env, "Get after Update")
		trail(t, s, "E1", 2)
		hasKey(t, s, "E1", "reply-1", true)
		claimed, err := s.Claim(ctx, "mail", "w", t0, time.Minute)
		ok(t, err, "Claim of the item written by Update")
		sameItem(t, claimed, item, "Claim")

		// An update without writes only changes the envelope.
		got.Title = "renamed"
		ok(t, s.Update(ctx, got, store.Writes{}), "Update without writes")
		again, err := s.Get(ctx, "E1")
		ok(t, err, "Get")
		if again.Version != 3 || again.Title != "renamed" {
			t.Fatalf("after second Update: version %d title %q", again.Version, again.Title)
		}
		trail(t, s, "E1", 2)
	}},
	{"UpdateConflict", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		env := create(t, s, "E1", t0)
		stale, err := s.Get(ctx, "E1")
		ok(t, err, "Get")
		env.Title = "first writer"
		ok(t, s.Update(ctx, env, store.Writes{Audit: record(env, audit.Viewed, "marie@partner.example")}), "Update")

		stale.Title = "second writer"
		ok(t, stale.AddToken("r2", tokenHash("E1/stale")), "AddToken")
		item := itemAt("E1/stale", "mail", t0)
		item.EnvelopeID = "E1"
		recs := record(stale, audit.Viewed, "paul@partner.example")
		err = s.Update(ctx, stale, store.Writes{Audit: recs, Items: []store.Item{item}, Keys: []string{"stale"}})
		wantErr(t, err, store.ErrConflict, "Update of a stale version")
		if stale.Version != 1 {
			t.Fatalf("failed Update changed Version to %d", stale.Version)
		}
		got, err := s.Get(ctx, "E1")
		ok(t, err, "Get")
		sameEnvelope(t, got, env, "envelope after a refused Update")
		trail(t, s, "E1", 2)
		hasKey(t, s, "E1", "stale", false)
		queueEmpty(t, s, "mail", t0.Add(time.Hour))
		_, _, err = s.ByToken(ctx, tokenHash("E1/stale"))
		wantErr(t, err, store.ErrNotFound, "ByToken of a token of the refused Update")

		// The caller's way out: reload and reapply.
		got.Title = "second writer"
		ok(t, s.Update(ctx, got, store.Writes{Audit: record(got, audit.Viewed, "paul@partner.example")}), "Update after reload")
		trail(t, s, "E1", 3)
	}},
	{"UpdateNotFound", func(t *testing.T, s store.Store) {
		env, _ := newEnvelope("E9", t0)
		env.Version = 1
		wantErr(t, s.Update(t.Context(), env, store.Writes{}), store.ErrNotFound, "Update of an unknown envelope")
	}},
	{"UpdateAuditGap", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		env := create(t, s, "E1", t0)
		record(env, audit.Viewed, "x") // chained but never written
		recs := record(env, audit.Signed, "x")
		wantErr(t, s.Update(ctx, env, store.Writes{Audit: recs}), store.ErrInvalid, "Update whose records skip one")
		trail(t, s, "E1", 1)
		got, err := s.Get(ctx, "E1")
		ok(t, err, "Get")
		if got.Version != 1 {
			t.Fatalf("refused Update wrote version %d", got.Version)
		}
	}},
	{"OddIDs", func(t *testing.T, s store.Store) {
		// IDs come from Message-IDs and mail addresses: braces (Redis hash
		// tags), separators and escapes must not mix up records.
		ctx := t.Context()
		ids := []string{"<a{b}c@host>", "a}b{", "{x}", "%7Bx%7D", "a|b:c", "a", "é/\\x00"}
		for i, id := range ids {
			env, recs := newEnvelope(id, t0.Add(time.Duration(i)*time.Second))
			item := itemAt(id+"|{item}", "mail", t0.Add(time.Duration(i)*time.Second))
			item.EnvelopeID = id
			ok(t, s.Create(ctx, env, store.Writes{Audit: recs, Items: []store.Item{item}, Keys: []string{id}}), "Create "+id)
		}
		for i, id := range ids {
			got, err := s.Get(ctx, id)
			ok(t, err, "Get "+id)
			if got.ID != id {
				t.Fatalf("Get %q returned %q", id, got.ID)
			}
			trail(t, s, id, 1)
			hasKey(t, s, id, id, true)
			byToken(t, s, id+"/r2/1", id, "r2")
			it := claim(t, s, "mail", "w", t0.Add(time.Hour), time.Minute)
			if it.EnvelopeID != id || it.ID != id+"|{item}" {
				t.Fatalf("claim %d: got item %q of %q, want %q", i, it.ID, it.EnvelopeID, id)
			}
			ok(t, s.Ack(ctx, it), "Ack")
		}
		page, err := s.List(ctx, store.ListQuery{})
		ok(t, err, "List")
		if len(page.Envelopes) != len(ids) {
			t.Fatalf("List: %d envelopes, want %d", len(page.Envelopes), len(ids))
		}
	}},
	{"Corrupt", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		create(t, s, "E1", t0)
		env := create(t, s, "E2", t0.Add(time.Minute))
		ok(t, s.(Hooks).CorruptEnvelope(ctx, "E2"), "CorruptEnvelope")
		_, err := s.Get(ctx, "E2")
		wantCorrupt(t, err, "E2", "Get of a corrupt envelope")
		wantCorrupt(t, s.Update(ctx, env, store.Writes{}), "E2", "Update of a corrupt envelope")
		_, err = s.List(ctx, store.ListQuery{})
		wantCorrupt(t, err, "E2", "List over a corrupt envelope")
		_, _, err = s.ByToken(ctx, tokenHash("E2/r1/1"))
		wantCorrupt(t, err, "E2", "ByToken of a corrupt envelope")
		_, err = s.Get(ctx, "E1")
		ok(t, err, "Get of a sound envelope beside a corrupt one")
	}},
}

var listCases = []testCase{
	{"Paging", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		for i := 1; i <= 7; i++ {
			create(t, s, "E"+string(rune('0'+i)), t0.Add(time.Duration(i)*time.Minute))
		}
		pages := listAll(t, s, store.ListQuery{Limit: 3})
		want := [][]string{{"E7", "E6", "E5"}, {"E4", "E3", "E2"}, {"E1"}}
		samePages(t, pages, want, "List by 3")
		page, err := s.List(ctx, store.ListQuery{})
		ok(t, err, "List")
		if len(page.Envelopes) != 7 || page.Next != "" || page.Envelopes[0].Version != 1 {
			t.Fatalf("List with the default limit: %d envelopes, next %q", len(page.Envelopes), page.Next)
		}
	}},
	{"Filter", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		for i := 1; i <= 6; i++ {
			env := create(t, s, "E"+string(rune('0'+i)), t0.Add(time.Duration(i)*time.Minute))
			if i%3 == 0 {
				env.State = workflow.StateCompleted
				ok(t, s.Update(ctx, env, store.Writes{Audit: record(env, audit.Completed, "system")}), "Update")
			}
		}
		samePages(t, listAll(t, s, store.ListQuery{State: workflow.StateCompleted, Limit: 1}), [][]string{{"E6"}, {"E3"}}, "completed by 1")
		samePages(t, listAll(t, s, store.ListQuery{State: workflow.StateInProgress, Limit: 3}), [][]string{{"E5", "E4", "E2"}, {"E1"}}, "in progress by 3")
		samePages(t, listAll(t, s, store.ListQuery{State: workflow.StateDeclined}), [][]string{{}}, "declined")
	}},
	{"Empty", func(t *testing.T, s store.Store) {
		samePages(t, listAll(t, s, store.ListQuery{}), [][]string{{}}, "empty store")
	}},
	{"BadQuery", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		_, err := s.List(ctx, store.ListQuery{Limit: -1})
		wantErr(t, err, store.ErrInvalid, "List with a negative limit")
		_, err = s.List(ctx, store.ListQuery{After: "not a cursor"})
		wantErr(t, err, store.ErrInvalid, "List after a made-up cursor")
	}},
}

// listAll pages through List and returns the IDs of each page.
func listAll(t *testing.T, s store.Store, q store.ListQuery) [][]string {
	t.Helper()
	var pages [][]string
	for {
		page, err := s.List(t.Context(), q)
		ok(t, err, "List")
		ids := []string{}
		for _, e := range page.Envelopes {
			ids = append(ids, e.ID)
		}
		pages = append(pages, ids)
		if page.Next == "" {
			return pages
		}
		if len(pages) > 100 {
			t.Fatalf("List does not end: %v", pages[:5])
		}
		q.After = page.Next
	}
}

func samePages(t *testing.T, got, want [][]string, what string) {
	t.Helper()
	if strings.Join(flatten(got), "/") != strings.Join(flatten(want), "/") {
		t.Fatalf("%s: got pages %v, want %v", what, got, want)
	}
}

func flatten(pages [][]string) []string {
	var out []string
	for _, p := range pages {
		out = append(out, "["+strings.Join(p, " ")+"]")
	}
	return out
}

var tokenCases = []testCase{
	{"AfterCreate", func(t *testing.T, s store.Store) {
		create(t, s, "E1", t0)
		create(t, s, "E2", t0)
		byToken(t, s, "E2/r2/1", "E2", "r2")
		byToken(t, s, "E1/r1/1", "E1", "r1")
	}},
	{"AfterUpdate", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		env := create(t, s, "E1", t0)
		ok(t, env.AddToken("r2", tokenHash("E1/r2/2")), "AddToken")
		ok(t, s.Update(ctx, env, store.Writes{Audit: record(env, audit.ReminderSent, "system")}), "Update")
		byToken(t, s, "E1/r2/2", "E1", "r2")
		byToken(t, s, "E1/r2/1", "E1", "r2")
	}},
	{"Sender", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		env := create(t, s, "E1", t0)
		env.AddSenderToken(tokenHash("E1/sender/1"))
		ok(t, s.Update(ctx, env, store.Writes{Audit: record(env, audit.ReminderSent, "system")}), "Update")
		byToken(t, s, "E1/sender/1", "E1", workflow.SenderID)
		byToken(t, s, "E1/r2/1", "E1", "r2")
	}},
	{"Download", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		env := create(t, s, "E1", t0)
		ok(t, env.AddDownloadToken("r2", tokenHash("E1/download/r2"), t0.Add(time.Hour)), "AddDownloadToken")
		ok(t, s.Update(ctx, env, store.Writes{Audit: record(env, audit.ReminderSent, "system")}), "Update")
		byToken(t, s, "E1/download/r2", "E1", workflow.DownloadID)
		got, err := s.Get(ctx, "E1")
		ok(t, err, "Get")
		if d := got.DownloadToken(tokenHash("E1/download/r2")); d == nil || d.For != "r2" || !d.Expires.Equal(t0.Add(time.Hour)) {
			t.Fatalf("stored download token = %+v", d)
		}
	}},
	{"Unknown", func(t *testing.T, s store.Store) {
		create(t, s, "E1", t0)
		_, _, err := s.ByToken(t.Context(), tokenHash("never minted"))
		wantErr(t, err, store.ErrNotFound, "ByToken of an unknown token")
		_, _, err = s.ByToken(t.Context(), []byte("short"))
		wantErr(t, err, store.ErrInvalid, "ByToken of a 5-byte hash")
	}},
}

func byToken(t *testing.T, s store.Store, token, wantEnv, wantRecipient string) {
	t.Helper()
	e, r, err := s.ByToken(t.Context(), tokenHash(token))
	ok(t, err, "ByToken "+token)
	if e != wantEnv || r != wantRecipient {
		t.Fatalf("ByToken %s = %s, %s; want %s, %s", token, e, r, wantEnv, wantRecipient)
	}
}

var auditCases = []testCase{
	{"Trail", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		env := create(t, s, "E1", t0)
		var want []audit.Record
		first, err := s.AuditTrail(ctx, "E1")
		ok(t, err, "AuditTrail")
		want = append(want, first...)
		for i, typ := range []audit.Type{audit.InvitationSent, audit.Viewed, audit.CodeSent, audit.CodeVerified, audit.Signed} {
			recs := record(env, typ, "marie@partner.example")
			if i == 2 { // several records in one write
				recs = append(recs, record(env, audit.CodeFailed, "marie@partner.example")...)
			}
			want = append(want, recs...)
			ok(t, s.Update(ctx, env, store.Writes{Audit: recs}), "Update")
		}
		got := trail(t, s, "E1", len(want))
		for i := range want {
			if got[i].Hash != want[i].Hash || got[i].Type != want[i].Type || !got[i].Time.Equal(want[i].Time) {
				t.Fatalf("record %d: got %+v, want %+v", i+1, got[i], want[i])
			}
		}
	}},
	{"UnknownEnvelope", func(t *testing.T, s store.Store) {
		_, err := s.AuditTrail(t.Context(), "nope")
		wantErr(t, err, store.ErrNotFound, "AuditTrail of an unknown envelope")
		_, err = s.HasKey(t.Context(), "nope", "k")
		wantErr(t, err, store.ErrNotFound, "HasKey of an unknown envelope")
	}},
	{"Corrupt", func(t *testing.T, s store.Store) {
		create(t, s, "E1", t0)
		ok(t, s.(Hooks).CorruptAudit(t.Context(), "E1"), "CorruptAudit")
		_, err := s.AuditTrail(t.Context(), "E1")
		wantCorrupt(t, err, "E1", "AuditTrail with a corrupt record")
	}},
}
