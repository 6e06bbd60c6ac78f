package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func trail(n int) []Record {
	base := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var recs []Record
	for i := 0; i < n; i++ {
		recs = append(recs, Record{Time: base.Add(time.Duration(i) * time.Minute), Type: Viewed,
			Actor: "marie@partner.example", IP: "192.0.2.7", Details: map[string]string{"i": string(rune('a' + i))}})
	}
	out, _ := Chain(Start(), recs)
	return out
}

func TestChainContinuesFromHead(t *testing.T) {
	all := trail(5)
	first, head := Chain(Start(), stripChain(all[:2]))
	rest, _ := Chain(head, stripChain(all[2:]))
	got := append(first, rest...)
	if err := Verify(got); err != nil {
		t.Fatal(err)
	}
	for i := range all {
		if got[i].Hash != all[i].Hash {
			t.Fatalf("record %d: chaining in two parts gave hash %s, in one %s", i, got[i].Hash, all[i].Hash)
		}
	}
}

func stripChain(recs []Record) []Record {
	out := append([]Record(nil), recs...)
	for i := range out {
		out[i].Seq, out[i].Prev, out[i].Hash = 0, "", ""
	}
	return out
}

func TestVerifyFindsTampering(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func([]Record) []Record
		wantIdx int
	}{
		{"changed detail", func(r []Record) []Record { r[2].Details["i"] = "z"; return r }, 2},
		{"changed time", func(r []Record) []Record { r[1].Time = r[1].Time.Add(time.Second); return r }, 1},
		{"changed actor", func(r []Record) []Record { r[3].Actor = "mallory@example.com"; return r }, 3},
		{"removed record", func(r []Record) []Record { return append(r[:2], r[3:]...) }, 2},
		{"removed last record", func(r []Record) []Record { return r[:4] }, -1},
		{"reordered", func(r []Record) []Record { r[1], r[2] = r[2], r[1]; return r }, 1},
		{"inserted copy", func(r []Record) []Record { return append(r[:3], append([]Record{r[2]}, r[3:]...)...) }, 3},
		{"renumbered after removal", func(r []Record) []Record {
			r = append(r[:2], r[3:]...)
			for i := range r {
				r[i].Seq = uint64(i + 1)
			}
			return r
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.tamper(trail(5)))
			if tt.wantIdx < 0 {
				// Truncation keeps a valid prefix: only the recorded head shows it.
				if err != nil {
					t.Fatalf("a truncated trail is a valid prefix, got %v", err)
				}
				full := trail(5)
				err = VerifyEnd(tt.tamper(trail(5)), Head{Seq: 5, Hash: full[4].Hash})
				if err == nil {
					t.Fatal("VerifyEnd accepted a truncated trail")
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify = %v, want a *ChainError", err)
			}
			if ce.Index != tt.wantIdx {
				t.Fatalf("break found at record %d, want %d (%v)", ce.Index, tt.wantIdx, err)
			}
		})
	}
}

func TestVerifyAcceptsIntactTrail(t *testing.T) {
	if err := Verify(trail(10)); err != nil {
		t.Fatal(err)
	}
	if err := Verify(nil); err != nil {
		t.Fatalf("empty trail: %v", err)
	}
}

func TestVerifyEndAcceptsFullTrail(t *testing.T) {
	recs := trail(3)
	if err := VerifyEnd(recs, Head{Seq: 3, Hash: recs[2].Hash}); err != nil {
		t.Fatal(err)
	}
	if err := VerifyEnd(nil, Start()); err != nil {
		t.Fatalf("empty trail at the start head: %v", err)
	}
}

// TestJSON: the trail file reads back as the same records, which still
// verify; an empty trail is an empty array.
func TestJSON(t *testing.T) {
	recs := trail(3)
	b := JSON(recs)
	var back []Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("the trail file is not JSON: %v\n%s", err, b)
	}
	if err := Verify(back); err != nil || len(back) != 3 {
		t.Fatalf("read back %d records: %v", len(back), err)
	}
	if !bytes.HasSuffix(b, []byte("]\n")) || !bytes.Contains(b, []byte("\n  {\n")) {
		t.Errorf("not an indented array ending with a line break:\n%s", b)
	}
	if got := string(JSON(nil)); got != "[]\n" {
		t.Errorf("empty trail = %q, want an empty array", got)
	}
}

// TestThroughCompletion: the trail is cut after its Completed record;
// without one there is nothing to hand over.
func TestThroughCompletion(t *testing.T) {
	recs := trail(5)
	recs[2].Type = Completed
	got, ok := ThroughCompletion(recs)
	if !ok || len(got) != 3 || got[2].Type != Completed {
		t.Fatalf("ThroughCompletion = %d records, %v; want the first 3", len(got), ok)
	}
	if _, ok := ThroughCompletion(trail(4)); ok {
		t.Error("a trail without completion was handed over")
	}
}

// TestTextNotUTF8 chains records whose text has bytes that are not UTF-8
// (a User-Agent or a decline reason sent in Latin-1): the trail must still
// verify once stored as JSON and read back, as the store and the archivists'
// JSON do.
func TestTextNotUTF8(t *testing.T) {
	latin1 := "caf\xe9 \xff"
	recs, _ := Chain(Start(), []Record{
		{Time: time.Now(), Type: CodeVerified, Actor: "marie@partner.example", UserAgent: "Mozilla/5.0 " + latin1},
		{Time: time.Now(), Type: Declined, Actor: "marie" + latin1 + "@partner.example", Details: map[string]string{"reason": latin1, "k" + latin1: "v"}},
	})
	var stored []Record
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back Record
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, back)
	}
	if err := Verify(stored); err != nil {
		t.Fatalf("the trail read back does not verify: %v", err)
	}
	if want := "Mozilla/5.0 caf\uFFFD \uFFFD"; stored[0].UserAgent != want || stored[1].Details["reason"] != "caf\uFFFD \uFFFD" {
		t.Errorf("user agent %q, reason %q: want the bytes replaced by U+FFFD", stored[0].UserAgent, stored[1].Details["reason"])
	}
}
