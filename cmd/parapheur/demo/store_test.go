package demo

import (
	"testing"
	"time"
)

// TestMailWithoutDate: a mail a script sent without a Date is listed and
// read as dated when it came, also after the mailbox is opened again,
// never at the year 1.
func TestMailWithoutDate(t *testing.T) {
	dir := t.TempDir()
	m, err := OpenMailbox(dir, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	id, err := m.Add([]byte("From: a@example.org\r\nTo: parapheur@demo.example\r\nSubject: no date\r\n\r\nHello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	recent := func(what string, d time.Time) {
		if d.Before(before) || d.After(time.Now().Add(time.Second)) {
			t.Errorf("%s: date %v, want the time the mail came (after %v)", what, d, before)
		}
	}
	list, _ := m.List()
	recent("listed", list[0].Date)
	msg, err := m.Message(id)
	if err != nil {
		t.Fatal(err)
	}
	recent("read", msg.Date)
	again, err := OpenMailbox(dir, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	list, _ = again.List()
	recent("listed after opening again", list[0].Date)
}
