package ingest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parapheur/parapheur/mailin/poller"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
)

// TestHugeSubjects checks that a huge subject makes neither a huge mail
// nor a huge log line: 10 MB (past go-message's 1 MB header limit, so the
// mail is unreadable and refused) and 900 KB (an envelope, whose mails
// quote the title).
func TestHugeSubjects(t *testing.T) {
	f := newFixture(t)
	f.h.cfg.MaxMessageBytes = 32 << 20

	huge := "From: agent@org.example\r\nTo: parapheur@org.example\r\nSubject: Convention " + strings.Repeat("x", 10<<20) +
		"\r\nMessage-ID: <huge-subject@org.example>\r\n\r\nSignataire: marie@partner.example\r\n"
	dest, reason := f.handle(t, []byte(huge))
	if dest != poller.Quarantine {
		t.Fatalf("a 10 MB subject: %v %.200s", dest, reason)
	}
	jobs := f.queued(t)
	if len(jobs) != 1 || jobs[0].Refusal == nil {
		t.Fatalf("a 10 MB subject: queued %s; want a refusal", notices(jobs))
	}
	if payload, _ := json.Marshal(jobs[0]); len(payload) > 10_000 {
		t.Errorf("the refusal of a 10 MB subject is a job of %d bytes", len(payload))
	}

	raw := withPDF("agent2@org.example", "Signataire: marie@partner.example", corpus(t, "doc1.pdf"))
	raw = []byte(strings.Replace(string(raw), "Subject: Convention\r\n", "Subject: Convention "+strings.Repeat("é", 900_000/2)+"\r\n", 1))
	if dest, reason := f.handle(t, raw); dest != poller.Processed {
		t.Fatalf("a 900 KB subject: %v %.200s", dest, reason)
	}
	page, err := f.e.Store.List(context.Background(), store.ListQuery{})
	if err != nil || len(page.Envelopes) != 1 {
		t.Fatalf("envelopes: %v %v", page, err)
	}
	if n := utf8.RuneCountInString(page.Envelopes[0].Title); n > workflow.MaxTitleRunes {
		t.Errorf("a title of %d runes", n)
	}

	logged := f.logs.String()
	if !strings.Contains(logged, "ingest: envelope created") {
		t.Fatalf("no log of the envelope:\n%.2000s", logged)
	}
	for _, line := range strings.Split(strings.TrimSpace(logged), "\n") {
		if len(line) > 2000 {
			t.Errorf("a log line of %d bytes: %.300s…", len(line), line)
		}
	}
}

// TestLongMessageID checks that a mail whose Message-ID is too long for an
// outbox item ID is still refused, rather than failing for ever.
func TestLongMessageID(t *testing.T) {
	f := newFixture(t)
	raw := "From: agent@org.example\r\nTo: parapheur@org.example\r\nSubject: Convention\r\nMessage-ID: <" +
		strings.Repeat("x", 300) + "@org.example>\r\nAuthentication-Results: mx.org.example; dmarc=pass header.from=org.example\r\n\r\nSignataire: marie@partner.example\r\n"
	if dest, reason := f.handle(t, []byte(raw)); dest != poller.Quarantine || !strings.Contains(reason, "no PDF") {
		t.Fatalf("%v %q; want quarantine for the missing PDF", dest, reason)
	}
	if jobs := f.queued(t); len(jobs) != 1 || jobs[0].Refusal == nil {
		t.Fatalf("queued %s; want a refusal", notices(jobs))
	}
}
