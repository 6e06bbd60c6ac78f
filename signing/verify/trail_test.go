package verify_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/verify"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// testTrail is a chained trail of four events, as an envelope records them.
func testTrail() []audit.Record {
	at := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	recs, _ := audit.Chain(audit.Start(), []audit.Record{
		{Time: at, Type: audit.Submitted, Actor: "agent@org.example", Details: map[string]string{"auth": "dkim=pass"}},
		{Time: at.Add(time.Minute), Type: audit.InvitationSent, Actor: "system", RecipientID: "r1"},
		{Time: at.Add(time.Hour), Type: audit.Viewed, Actor: "marie@partner.example", RecipientID: "r1", IP: "192.0.2.7", UserAgent: "Firefox/140"},
		{Time: at.Add(2 * time.Hour), Type: audit.Signed, Actor: "marie@partner.example", RecipientID: "r1", Details: map[string]string{"serial": "0a1b"}},
	})
	return recs
}

// encodeTrail writes recs as the archivists' audit-ENVELOPEID.json.
func encodeTrail(t testing.TB, recs []audit.Record) []byte {
	t.Helper()
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTrailFile checks trail files as archivists receive them: intact, and
// with one event edited in the text, removed, or swapped with the next;
// each break is named by the event it shows at.
func TestTrailFile(t *testing.T) {
	recs := testTrail()
	intact := encodeTrail(t, recs)
	got, err := verify.ReadTrail(intact)
	if err != nil {
		t.Fatal(err)
	}
	tr := verify.CheckTrail("audit-E1.json", got, nil)
	if !tr.Intact() || tr.Records != 4 || tr.Head != (audit.Head{Seq: 4, Hash: recs[3].Hash}) {
		t.Fatalf("intact trail: %+v", tr)
	}
	var text bytes.Buffer
	tr.WriteText(&text)
	if want := "audit trail audit-E1.json: chain intact: 4 events, head seq 4 " + recs[3].Hash + "\n"; text.String() != want {
		t.Fatalf("intact trail reads %q, want %q", text.String(), want)
	}

	for _, c := range []struct {
		name      string
		data      []byte
		seq       uint64
		typ       audit.Type
		problem   string
		textNames string
	}{
		{"edited", bytes.Replace(intact, []byte(`"ip": "192.0.2.7"`), []byte(`"ip": "198.51.100.9"`), 1),
			3, audit.Viewed, "the record was changed", "BROKEN at event seq 3 (viewed, 2026-06-01 10:00:00 UTC by marie@partner.example): hash does not match"},
		{"removed", encodeTrail(t, []audit.Record{recs[0], recs[2], recs[3]}),
			3, audit.Viewed, "expected seq 2: a record was removed", "BROKEN at event seq 3 (viewed,"},
		{"swapped", encodeTrail(t, []audit.Record{recs[0], recs[2], recs[1], recs[3]}),
			3, audit.Viewed, "expected seq 2", "BROKEN at event seq 3 (viewed,"},
		{"renumbered after a removal", encodeTrail(t, func() []audit.Record {
			r := recs[2]
			r.Seq = 2
			return []audit.Record{recs[0], r, recs[3]}
		}()), 2, audit.Viewed, "prev does not match", "BROKEN at event seq 2 (viewed,"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if bytes.Equal(c.data, intact) {
				t.Fatal("the case does not change the trail")
			}
			got, err := verify.ReadTrail(c.data)
			if err != nil {
				t.Fatal(err)
			}
			tr := verify.CheckTrail("audit-E1.json", got, nil)
			if tr.Intact() || tr.Broken == nil || tr.Broken.Seq != c.seq || tr.Broken.Type != c.typ || !strings.Contains(tr.Problem, c.problem) {
				t.Fatalf("got %+v (broken %+v), want seq %d (%s): %s", tr, tr.Broken, c.seq, c.typ, c.problem)
			}
			var text bytes.Buffer
			tr.WriteText(&text)
			if !strings.Contains(text.String(), c.textNames) {
				t.Fatalf("text %q does not say %q", text.String(), c.textNames)
			}
		})
	}

	// The head the envelope records shows the events cut off at the end.
	tr = verify.CheckTrail("E1", recs[:3], &audit.Head{Seq: 4, Hash: recs[3].Hash})
	if tr.Intact() || tr.Broken != nil || !strings.Contains(tr.Problem, "the trail ends at seq 3 but the recorded head is seq 4") {
		t.Fatalf("a trail cut short of its head: %+v", tr)
	}
}

// TestReadTrailErrors checks that a file that is not a trail is refused
// with what is wrong, rather than passing as an empty or partial chain.
func TestReadTrailErrors(t *testing.T) {
	intact := string(encodeTrail(t, testTrail()))
	for _, c := range []struct{ name, data, want string }{
		{"empty", "", "audit trail: EOF: want a JSON array"},
		{"object", `{"seq":1}`, "audit trail: starts with {: want a JSON array"},
		{"no record", "[]", "the array holds no record"},
		{"unknown field", strings.Replace(intact, `"seq": 2,`, `"seq": 2, "note": "added",`, 1), `audit trail: record 2: json: unknown field "note"`},
		{"wrong type", strings.Replace(intact, `"seq": 3,`, `"seq": "3",`, 1), "audit trail: record 3: json: cannot unmarshal string"},
		{"cut", intact[:len(intact)/2], "audit trail: record "},
		{"two arrays", intact + intact, "after the closing ]: want one JSON array and nothing after it"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := verify.ReadTrail([]byte(c.data)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error saying %q", err, c.want)
			}
		})
	}
}

// attachTrail returns doc1.pdf with data attached as audit-E1.json, the
// way the completion certificate embeds the trail.
func attachTrail(t testing.TB, data []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	name := filepath.Join(dir, "audit-E1.json")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := os.ReadFile(filepath.Join("..", "..", "mailin", "testdata", "doc1.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := api.AddAttachments(bytes.NewReader(in), &out, []string{name}, false, pdftest.PdfcpuConfig(t)); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestEmbeddedTrail checks the trail a PDF carries as a file attachment:
// reported with the signatures when intact, named where it breaks when an
// event was edited before it was attached.
func TestEmbeddedTrail(t *testing.T) {
	ca := newCA(t, "Gateway CA")
	recs := testTrail()
	signed := sign(t, ca, attachTrail(t, encodeTrail(t, recs)), "Sceau Mairie", nil)
	r, err := verify.Verify(signed, ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Trails) != 1 || !r.Trails[0].Intact() || r.Trails[0].Name != "audit-E1.json" || r.Trails[0].Head.Hash != recs[3].Hash || !r.Valid() {
		t.Fatalf("trails %+v, valid %v", r.Trails, r.Valid())
	}
	text := r.Text(true)
	for _, want := range []string{"audit trail audit-E1.json: chain intact: 4 events, head seq 4 " + recs[3].Hash, "VALID: all 1 signature(s) intact"} {
		if !strings.Contains(text, want) {
			t.Errorf("report does not say %q:\n%s", want, text)
		}
	}

	edited := recs[1]
	edited.Actor = "mallory@example.org"
	tampered := sign(t, ca, attachTrail(t, encodeTrail(t, []audit.Record{recs[0], edited, recs[2], recs[3]})), "Sceau Mairie", nil)
	r, err = verify.Verify(tampered, ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Trails) != 1 || r.Trails[0].Intact() || r.Trails[0].Broken == nil || r.Trails[0].Broken.Seq != 2 || r.Valid() || r.ExitCode() != verify.ExitInvalid {
		t.Fatalf("tampered trail: %+v, valid %v", r.Trails, r.Valid())
	}
	text = r.Text(true)
	for _, want := range []string{"audit trail audit-E1.json: BROKEN at event seq 2 (invitation_sent, ", "the record was changed",
		"INVALID: all 1 signature(s) intact, but 1 embedded audit trail(s) broken"} {
		if !strings.Contains(text, want) {
			t.Errorf("report does not say %q:\n%s", want, text)
		}
	}

	// An attachment named like a trail that is not one is reported, not
	// skipped.
	r, err = verify.Verify(attachTrail(t, []byte("%PDF-1.7 not a trail")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Trails) != 1 || r.Trails[0].Intact() || !strings.Contains(r.Trails[0].Problem, "want a JSON array of audit records") {
		t.Fatalf("an attachment that is not a trail: %+v", r.Trails)
	}
	if text := r.Text(false); !strings.Contains(text, "audit trail audit-E1.json: BROKEN: audit trail: invalid character") {
		t.Fatalf("report of an attachment that is not a trail:\n%s", text)
	}

	// The name tree split into a leaf under a root with /Kids, as large
	// trees are (ISO 32000-2 §7.9.6); then a leaf that is its own kid.
	nested := nestEmbeddedFiles(t, attachTrail(t, encodeTrail(t, recs)), false)
	if r, err := verify.Verify(nested, nil); err != nil || len(r.Trails) != 1 || !r.Trails[0].Intact() || r.Trails[0].Records != 4 {
		t.Fatalf("a trail under /Kids: %v, trails %+v", err, r.Trails)
	}
	looped := nestEmbeddedFiles(t, attachTrail(t, encodeTrail(t, recs)), true)
	if r, err := verify.Verify(looped, nil); err != nil || len(r.Trails) == 0 || !strings.Contains(r.Trails[len(r.Trails)-1].Problem, "appears twice") {
		t.Fatalf("a name tree with a loop: %v, trails %+v", err, r.Trails)
	}

	// A PDF without an attachment has no trail to report.
	in, err := os.ReadFile(filepath.Join("..", "..", "mailin", "testdata", "doc1.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := verify.Verify(in, nil); err != nil || len(r.Trails) != 0 || strings.Contains(r.Text(false), "audit trail") {
		t.Fatalf("doc1.pdf: %v, trails %+v", err, r.Trails)
	}
}

// nestEmbeddedFiles moves the /EmbeddedFiles leaf of pdf under a root
// node's /Kids; with loop, the leaf also lists itself as a kid.
func nestEmbeddedFiles(t *testing.T, pdf []byte, loop bool) []byte {
	t.Helper()
	ctx, err := api.ReadContext(bytes.NewReader(pdf), pdftest.PdfcpuConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	root, err := ctx.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	names, err := ctx.DereferenceDict(root["Names"])
	if err != nil || names == nil {
		t.Fatalf("no /Names in the catalog: %v", err)
	}
	leaf, err := ctx.DereferenceDict(names["EmbeddedFiles"])
	if err != nil || leaf == nil {
		t.Fatalf("no /EmbeddedFiles: %v", err)
	}
	leafRef, err := ctx.IndRefForNewObject(leaf)
	if err != nil {
		t.Fatal(err)
	}
	leaf["Limits"] = types.Array{types.StringLiteral("audit-E1.json"), types.StringLiteral("audit-E1.json")}
	if loop {
		leaf["Kids"] = types.Array{*leafRef}
	}
	names["EmbeddedFiles"] = types.Dict{"Kids": types.Array{*leafRef}}
	var out bytes.Buffer
	if err := api.WriteContext(ctx, &out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
