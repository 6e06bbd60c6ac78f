package compose_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/parapheur/parapheur/mailout/compose"
	"github.com/parapheur/parapheur/mailout/mailid"
	"github.com/parapheur/parapheur/workflow"
)

// ExampleComposer_Compose composes an invitation and reads it back.
func ExampleComposer_Compose() {
	c, err := compose.New(compose.Config{
		Address:   "parapheur@org.example",
		PublicURL: "https://sign.org.example",
		// In the gateway, a key derived from the secret in keys.dir.
		ReturnPathKey: bytes.Repeat([]byte{1}, mailid.KeySize),
	})
	if err != nil {
		panic(err)
	}
	e := &workflow.Envelope{
		ID:        "ENV1",
		Title:     "Partnership agreement 2026",
		Sender:    workflow.Party{Name: "Agnès Dupont", Email: "agnes@org.example"},
		Language:  "en",
		Deadline:  time.Date(2026, 12, 15, 23, 59, 0, 0, time.UTC),
		Documents: []workflow.Document{{Name: "Agreement.pdf", Pages: 3}},
		Steps:     []workflow.Step{{Role: workflow.Signer, Recipients: []string{"r1"}}},
		Recipients: []workflow.Recipient{{
			Party: workflow.Party{Name: "John Smith", Email: "john@partner.example"},
			ID:    "r1", Role: workflow.Signer, State: workflow.Pending,
		}},
	}
	var b bytes.Buffer // in the gateway, the SMTP DATA writer
	err = c.Compose(&b, &compose.Message{
		ID:          "outbox-1@org.example",
		Date:        time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
		Envelope:    e,
		RecipientID: "r1",
		Data:        compose.Invitation{Link: "https://sign.org.example/s/TOKEN"},
	})
	if err != nil {
		panic(err)
	}

	r, err := mail.CreateReader(&b)
	if err != nil {
		panic(err)
	}
	subject, _ := r.Header.Subject()
	fmt.Println("Subject:", subject)
	fmt.Println("In-Reply-To:", r.Header.Get("In-Reply-To"))
	text, err := r.NextPart()
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(text.Body)
	plain, _, _ := strings.Cut(strings.ReplaceAll(string(body), "\r\n", "\n"), "-- \n")
	fmt.Print(plain)
	// Output:
	// Subject: Please sign: Partnership agreement 2026
	// In-Reply-To: <thread.ENV1.r1@org.example>
	// Hello John Smith,
	//
	// Agnès Dupont <agnes@org.example> asks you to sign electronically "Partnership agreement 2026".
	//
	// Documents:
	//   1. Agreement.pdf (3 pages)
	//
	// To read the documents and sign, open your personal link:
	// https://sign.org.example/s/TOKEN
	//
	// Please act before 15 December 2026 at 23:59 UTC.
	//
	// On the page you will read the documents, then ask for a one-time code, sent to this email address, which confirms it is you. You can also decline, giving a reason, or hand your signature to someone else.
	//
	// This link is personal: do not forward it.
	// You can also reply to this message with, on the first line:
	//   DECLINE: your reason
	// to decline, or
	//   DELEGATE: First Last <address@example.com>
	// to hand your signature to that person, who will get their own invitation.
}
