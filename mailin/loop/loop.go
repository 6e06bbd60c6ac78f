// Package loop recognises mail that a program sent rather than a person
// (RFC 3834: out-of-office replies, bounces, mailing lists, the gateway's
// own mail), so that the gateway never answers it and two robots cannot
// mail each other forever.
package loop

import (
	"fmt"
	"strings"

	"github.com/emersion/go-message/mail"

	"github.com/parapheur/parapheur/mailout/address"
)

// robots are the local parts of the addresses mail servers and list
// managers send from.
var robots = map[string]bool{
	"mailer-daemon": true, "postmaster": true, "mail-daemon": true, "mailerdaemon": true,
	"listserv": true, "majordomo": true,
}

// Automatic reports whether the message with header h was sent
// automatically, and which field says so, e.g. `Auto-Submitted:
// auto-replied`. gateway is the gateway's own address: a mail from it,
// with or without a +detail, is its own mail coming back.
func Automatic(h mail.Header, gateway string) (reason string, automatic bool) {
	if v := fieldValue(h, "Auto-Submitted"); v != "" && v != "no" {
		return "Auto-Submitted: " + v, true
	}
	switch v := fieldValue(h, "Precedence"); v {
	case "bulk", "list", "junk", "auto_reply":
		return "Precedence: " + v, true
	}
	for _, k := range []string{"List-Id", "X-Autoreply", "X-Autorespond"} {
		if h.Has(k) {
			return k + " present", true
		}
	}
	for _, v := range h.Values("Return-Path") {
		if strings.TrimSpace(v) == "<>" {
			return "null Return-Path (<>)", true
		}
	}
	if t, _, err := h.ContentType(); err == nil && t == "multipart/report" {
		return "Content-Type: multipart/report", true
	}
	from, err := h.AddressList("From")
	if err != nil {
		// Unreadable senders are the parser's to refuse; fall back to the
		// raw field so that MAILER-DAEMON is still seen.
		from = []*mail.Address{{Address: strings.Trim(strings.TrimSpace(h.Get("From")), "<>")}}
	}
	for _, a := range from {
		local, _, _ := strings.Cut(a.Address, "@")
		if robots[strings.ToLower(local)] {
			return fmt.Sprintf("From: %s is a mail system address", a.Address), true
		}
		if gateway != "" && address.SameMailbox(a.Address, gateway) {
			return fmt.Sprintf("From: %s is the gateway itself", a.Address), true
		}
	}
	return "", false
}

// fieldValue returns the field's value in lower case without parameters
// or comments ("auto-replied; owner-email=…" gives "auto-replied").
func fieldValue(h mail.Header, key string) string {
	v, _, _ := strings.Cut(h.Get(key), ";")
	v, _, _ = strings.Cut(v, "(")
	return strings.ToLower(strings.TrimSpace(v))
}
