package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// TrailPattern matches the name of an audit trail file, as the archivists'
// mail and the completion certificate's attachment (SPEC §5) name it.
const TrailPattern = "audit-*.json"

// Trail is what was found about one audit trail's hash chain.
type Trail struct {
	// Name says which trail it is, as the text writes it after "audit
	// trail": its file or attachment name, or "of envelope ID".
	Name string
	// Records counts its events; Head is where it ends.
	Records int
	Head    audit.Head
	// Problem says why the trail could not be read or where its chain is
	// broken; empty when the chain is intact.
	Problem string
	// Broken is the first event the chain check rejects, nil when the
	// chain is intact, the trail unreadable, or the break is after its
	// last event (records cut off at the end).
	Broken *audit.Record
}

// Intact tells whether the trail was read and its chain holds.
func (t *Trail) Intact() bool { return t.Problem == "" }

// CheckTrail checks the hash chain of recs, the trail called name; with a
// head (the one the envelope records), it also checks that the trail ends
// there, which the chain alone cannot show.
func CheckTrail(name string, recs []audit.Record, head *audit.Head) Trail {
	t := Trail{Name: name, Records: len(recs), Head: audit.Start()}
	if n := len(recs); n > 0 {
		t.Head = audit.Head{Seq: recs[n-1].Seq, Hash: recs[n-1].Hash}
	}
	var err error
	if head != nil {
		err = audit.VerifyEnd(recs, *head)
	} else {
		err = audit.Verify(recs)
	}
	var broken *audit.ChainError
	switch {
	case errors.As(err, &broken):
		t.Problem = broken.Problem
		if broken.Index < len(recs) {
			t.Broken = &recs[broken.Index]
		}
	case err != nil:
		t.Problem = err.Error()
	}
	return t
}

// ReadTrail decodes an audit trail file: a JSON array of audit.Record as
// workflow/audit encodes them. Fields the record does not have are refused:
// the hash covers only the known ones, so a field added to an event would
// otherwise pass the check unseen.
func ReadTrail(data []byte) ([]audit.Record, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("audit trail: %v: want a JSON array of audit records", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("audit trail: starts with %v: want a JSON array of audit records", tok)
	}
	var recs []audit.Record
	for dec.More() {
		var r audit.Record
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("audit trail: record %d: %v", len(recs)+1, err)
		}
		recs = append(recs, r)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("audit trail: after record %d: %v", len(recs), err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("audit trail: %v after the closing ]: want one JSON array and nothing after it", orError(tok, err))
	}
	if len(recs) == 0 {
		return nil, errors.New("audit trail: the array holds no record: every envelope's trail starts with its submission")
	}
	return recs, nil
}

// orError is err when there is one, else tok.
func orError(tok json.Token, err error) any {
	if err != nil {
		return err
	}
	return tok
}

// trailData checks the audit trail file data called name.
func trailData(name string, data []byte) Trail {
	recs, err := ReadTrail(data)
	if err != nil {
		return Trail{Name: name, Head: audit.Start(), Problem: err.Error()}
	}
	return CheckTrail(name, recs, nil)
}

// embeddedTrails checks each embedded file of the PDF whose name matches
// TrailPattern.
func embeddedTrails(ctx *model.Context) []Trail {
	files, err := embeddedFiles(ctx)
	var trails []Trail
	for _, f := range files {
		if ok, _ := path.Match(TrailPattern, f.name); !ok {
			continue
		}
		if f.err != nil {
			trails = append(trails, Trail{Name: f.name, Head: audit.Start(), Problem: fmt.Sprintf("the attachment cannot be extracted: %v", f.err)})
			continue
		}
		trails = append(trails, trailData(f.name, f.data))
	}
	if err != nil {
		trails = append(trails, Trail{Name: "in /EmbeddedFiles", Head: audit.Start(), Problem: fmt.Sprintf("the embedded files cannot all be read: %v", err)})
	}
	return trails
}

// embeddedFile is one entry of the /EmbeddedFiles name tree: its file
// name, and its content or why it cannot be read.
type embeddedFile struct {
	name string
	data []byte
	err  error
}

// embeddedFiles reads the /EmbeddedFiles name tree of the catalog's
// /Names (ISO 32000-2 §7.7.4, §7.9.6, §7.11.4). pdfcpu's own listing only
// sees the tree of a document it validated, and verify does not validate:
// a signed PDF need not be a valid one to be worth checking.
func embeddedFiles(ctx *model.Context) ([]embeddedFile, error) {
	root, err := ctx.Catalog()
	if err != nil {
		return nil, err
	}
	names, err := ctx.DereferenceDict(root["Names"])
	if err != nil || names == nil {
		return nil, err
	}
	var files []embeddedFile
	seen := map[int]bool{}
	var walk func(o types.Object, depth int) error
	walk = func(o types.Object, depth int) error {
		if depth > 32 {
			return errors.New("name tree deeper than 32")
		}
		if ref, ok := o.(types.IndirectRef); ok {
			if seen[ref.ObjectNumber.Value()] {
				return fmt.Errorf("name tree node %d appears twice", ref.ObjectNumber.Value())
			}
			seen[ref.ObjectNumber.Value()] = true
		}
		node, err := ctx.DereferenceDict(o)
		if err != nil || node == nil {
			return err
		}
		kids, err := ctx.DereferenceArray(node["Kids"])
		if err != nil {
			return err
		}
		for _, kid := range kids {
			if err := walk(kid, depth+1); err != nil {
				return err
			}
		}
		pairs, err := ctx.DereferenceArray(node["Names"])
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(pairs); i += 2 {
			key, _ := ctx.DereferenceStringOrHexLiteral(pairs[i], model.V10, nil)
			files = append(files, embeddedFileOf(ctx, key, pairs[i+1]))
		}
		return nil
	}
	return files, walk(names["EmbeddedFiles"], 0)
}

// embeddedFileOf reads the file specification o (ISO 32000-2 §7.11.3),
// whose key in the name tree is key: its name is /UF, else /F, else key;
// its content the decoded /EF stream.
func embeddedFileOf(ctx *model.Context, key string, o types.Object) embeddedFile {
	f := embeddedFile{name: key}
	spec, err := ctx.DereferenceDict(o)
	if err != nil || spec == nil {
		f.err = missing("file specification dictionary", err)
		return f
	}
	for _, k := range []string{"UF", "F"} {
		if n, err := ctx.DereferenceStringOrHexLiteral(spec[k], model.V10, nil); err == nil && n != "" {
			f.name = n
			break
		}
	}
	ef, err := ctx.DereferenceDict(spec["EF"])
	if err != nil || ef == nil {
		f.err = missing("/EF dictionary of embedded streams", err)
		return f
	}
	stream := ef["UF"]
	if stream == nil {
		stream = ef["F"]
	}
	sd, _, err := ctx.DereferenceStreamDict(stream)
	if err != nil || sd == nil {
		f.err = missing("embedded file stream", err)
		return f
	}
	if err := sd.Decode(); err != nil {
		f.err = fmt.Errorf("decoding the embedded file stream: %v", err)
		return f
	}
	f.data = sd.Content
	return f
}

// missing says that what is absent, or cannot be read for err.
func missing(what string, err error) error {
	if err != nil {
		return fmt.Errorf("the %s cannot be read: %v", what, err)
	}
	return fmt.Errorf("no %s", what)
}

// WriteText writes the trail's verdict for people: where its chain ends,
// or which event breaks it and how.
func (t *Trail) WriteText(w io.Writer) {
	switch {
	case t.Intact():
		fmt.Fprintf(w, "audit trail %s: chain intact: %d events, head seq %d %s\n", t.Name, t.Records, t.Head.Seq, t.Head.Hash)
	case t.Broken != nil:
		fmt.Fprintf(w, "audit trail %s: BROKEN at event seq %d (%s, %s by %s): %s\n", t.Name, t.Broken.Seq, t.Broken.Type,
			t.Broken.Time.UTC().Format("2006-01-02 15:04:05 UTC"), t.Broken.Actor, t.Problem)
	default:
		fmt.Fprintf(w, "audit trail %s: BROKEN: %s\n", t.Name, t.Problem)
	}
}
