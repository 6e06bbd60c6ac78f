package main

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

// The floors are what the mail servers do for a plain client, the rates the gateway's own
// are compared with: the gateway cannot take mail out of Dovecot faster than a client that
// does nothing but fetch and move it, nor hand mail to Postfix faster than a client that
// does nothing but send it over as many connections.

// rawSMTPAccept hands n copies of msg from from to to, to the SMTP server at addr, over
// conns connections at once, each reused from one transaction to the next as the gateway's
// mail sender reuses its own; it returns how many mails the server accepted a second.
func rawSMTPAccept(addr string, conns, n int, from, to string, msg []byte) (float64, error) {
	start, err := sendOver(addr, conns, n, nil, func(int) (string, string, []byte) { return from, to, msg }, nil)
	if err != nil {
		return 0, fmt.Errorf("raw SMTP client: %w", err)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// sendOver sends n mails to the SMTP server at addr over conns connections at once, each
// reused from one transaction to the next; mail(i) is the i-th mail's sender, recipient
// and content. When tickets is not nil each mail waits for a ticket first. accepted, when
// not nil, is called with i as soon as the server accepted mail i. The connections are
// opened first; start is when the first mail went.
func sendOver(addr string, conns, n int, tickets <-chan struct{}, mail func(i int) (from, to string, msg []byte),
	accepted func(i int)) (start time.Time, err error) {
	clients := make([]*smtp.Client, conns)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Quit()
			}
		}
	}()
	for i := range clients {
		c, err := smtp.Dial(addr) // the private Postfix listens on loopback, without TLS
		if err != nil {
			return time.Time{}, err
		}
		clients[i] = c
	}
	var next atomic.Int64
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	start = time.Now()
	for _, c := range clients {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if tickets != nil {
					<-tickets
				}
				from, to, msg := mail(i)
				if err := c.SendMail(from, []string{to}, bytes.NewReader(msg)); err != nil {
					errs <- fmt.Errorf("mail %d: %w", i, err)
					return
				}
				if accepted != nil {
					accepted(i)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return start, <-errs
}

// rawIMAPFetchMove logs in to the IMAP server at addr as user, then fetches every message
// of the INBOX whole and moves it to the folder Processed, batch messages at a time, as the
// gateway's poller does, and nothing else; it returns how many messages it moved and how
// many a second.
func rawIMAPFetchMove(addr, user, password string, batch int) (int, float64, error) {
	c, err := imapclient.DialInsecure(addr, nil) // the private Dovecot listens on loopback
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return 0, 0, fmt.Errorf("IMAP login %s: %w", user, err)
	}
	if err := c.Create("Processed", nil).Wait(); err != nil {
		return 0, 0, fmt.Errorf("creating Processed: %w", err)
	}
	start := time.Now()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return 0, 0, err
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		return 0, 0, err
	}
	uids := found.AllUIDs()
	for len(uids) > 0 {
		set := imap.UIDSetNum(uids[:min(batch, len(uids))]...)
		uids = uids[min(batch, len(uids)):]
		fetch := c.Fetch(set, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		for msg := fetch.Next(); msg != nil; msg = fetch.Next() {
			for item := msg.Next(); item != nil; item = msg.Next() {
				if body, ok := item.(imapclient.FetchItemDataBodySection); ok {
					if _, err := io.Copy(io.Discard, body.Literal); err != nil {
						return 0, 0, err
					}
				}
			}
		}
		if err := fetch.Close(); err != nil {
			return 0, 0, err
		}
		if _, err := c.Move(set, "Processed").Wait(); err != nil {
			return 0, 0, err
		}
	}
	moved := len(found.AllUIDs())
	return moved, float64(moved) / time.Since(start).Seconds(), nil
}
