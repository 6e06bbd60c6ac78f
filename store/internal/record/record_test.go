package record

import (
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/parapheur/parapheur/store"
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
