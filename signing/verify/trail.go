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
)

// TrailPattern matches the name of an audit trail file, as the archivists'
// mail and the completion certificate's attachment (SPEC §5) name it.
const TrailPattern = "audit-*.json"

// Trail is what was found about one audit trail's hash chain.
type Trail struct {
	// Name is the trail's file or attachment name, or what it was read from.
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

// embeddedTrails checks each file attachment of the PDF (the /EmbeddedFiles
// name tree, ISO 32000-2 §7.11.4) whose name matches TrailPattern.
func embeddedTrails(ctx *model.Context) []Trail {
	list, err := ctx.ListAttachments()
	if err != nil {
		return []Trail{{Name: "embedded files", Problem: fmt.Sprintf("the /EmbeddedFiles name tree cannot be read: %v", err)}}
	}
	var trails []Trail
	for _, a := range list {
		if ok, _ := path.Match(TrailPattern, a.FileName); !ok {
			continue
		}
		full, err := ctx.ExtractAttachment(a)
		if err == nil && full == nil {
			err = errors.New("not found in the /EmbeddedFiles name tree")
		}
		var data []byte
		if err == nil {
			data, err = io.ReadAll(full.Reader)
		}
		if err != nil {
			trails = append(trails, Trail{Name: a.FileName, Head: audit.Start(), Problem: fmt.Sprintf("the attachment cannot be extracted: %v", err)})
			continue
		}
		trails = append(trails, trailData(a.FileName, data))
	}
	return trails
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
