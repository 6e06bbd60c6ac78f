package record

import (
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

// TestListKeyOrder checks that list keys sort newest first across the zero
// time, times before 1970 and after, and by ID within one instant.
func TestListKeyOrder(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	want := []string{
		ListKey(now.Add(time.Microsecond), "a"),
		ListKey(now, "a"),
		ListKey(now, "b"),
		ListKey(time.Unix(0, 0), "a"),
		ListKey(time.Unix(-1, 0), "a"),
		ListKey(time.Time{}, "a"),
	}
	got := append([]string(nil), want...)
	sort.Strings(got)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sorted keys %q, want %q", got, want)
		}
	}
	if id := ListKeyID(ListKey(now, "E|1")); id != "E|1" {
		t.Fatalf("ListKeyID = %q", id)
	}
}

func TestCheckAfter(t *testing.T) {
	if err := CheckAfter(ListKey(time.Now(), "E1")); err != nil {
		t.Fatalf("CheckAfter of a list key: %v", err)
	}
	for _, bad := range []string{"x", "0123456789abcdef", "0123456789ABCDEF|E1", "0123456789abcdeg|E1", "0123456789abcdef-E1"} {
		if err := CheckAfter(bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CheckAfter(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

// TestDecodeStamp checks that a write's stamp reads what the whole decode
// reads of the stored envelope, and refuses what the whole decode refuses.
func TestDecodeStamp(t *testing.T) {
	env := &workflow.Envelope{
		ID:         "env-1",
		Title:      "Convention",
		CreatedAt:  time.Date(2026, 12, 7, 4, 5, 6, 7000, time.UTC),
		Audit:      audit.Head{Seq: 12, Hash: "abc123"},
		Recipients: []workflow.Recipient{{ID: "r1"}},
	}
	data, err := EncodeEnvelope(env, 5)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := DecodeEnvelope("env-1", data)
	if err != nil {
		t.Fatal(err)
	}
	st, err := DecodeStamp("env-1", data)
	if err != nil {
		t.Fatal(err)
	}
	want := Stamp{ID: whole.ID, Version: whole.Version, CreatedAt: whole.CreatedAt, Audit: whole.Audit}
	if st.ID != want.ID || st.Version != want.Version || !st.CreatedAt.Equal(want.CreatedAt) || st.Audit != want.Audit {
		t.Errorf("stamp %+v, the whole decode reads %+v", st, want)
	}
	if st.Version != 5 || !st.CreatedAt.Equal(env.CreatedAt) || st.Audit != env.Audit {
		t.Errorf("stamp %+v of the envelope written at version 5 with %v and %+v", st, env.CreatedAt, env.Audit)
	}
	for name, c := range map[string]struct {
		id   string
		data []byte
	}{
		"another envelope's record": {"env-2", data},
		"not JSON":                  {"env-1", []byte("{\"id\": ")},
	} {
		_, wholeErr := DecodeEnvelope(c.id, c.data)
		_, err := DecodeStamp(c.id, c.data)
		if !errors.Is(err, store.ErrCorrupt) || !errors.Is(wholeErr, store.ErrCorrupt) {
			t.Errorf("%s: stamp error %v, whole decode's %v: want both ErrCorrupt", name, err, wholeErr)
		}
	}
}
