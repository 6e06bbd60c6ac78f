// Package sender delivers the gateway's outgoing mail: workers claim items
// from the store's mail queue (engine.MailQueue), have a Composer write each
// message into a temporary file, and hand it over to the configured relay
// with SMTP (RFC 5321), protected by implicit TLS (smtps://, RFC 8314) or by
// STARTTLS (smtp://, RFC 3207), and authenticated with SMTP AUTH (RFC 4954)
// when a user name is configured: PLAIN or LOGIN with a password, or XOAUTH2
// or OAUTHBEARER (RFC 7628) with a token of package oauth. A refused token
// ends go-smtp's session, so the new token goes on a new connection.
//
// # Outcomes
//
// A Worker is the outbox.Task of the mail queue: package workflow/outbox
// claims the items, records every attempt in the envelope's audit trail and
// settles it. The relay's answer decides the outcome:
//
//   - a 2xx answer to the end of DATA: delivered;
//   - a 4xx answer, or no answer at all (connection refused, TLS failure,
//     timeout, AUTH refused): deferred, retried with the outbox's backoff;
//   - a 5xx answer to MAIL, RCPT or DATA: failed at once, the item is
//     buried. The workflow then tells the envelope's sender.
//
// A 5xx answer before the mail transaction (to EHLO, STARTTLS or AUTH) is a
// fault of the relay or of our configuration, not of the recipient: it
// defers. A message the Composer cannot write is buried with the reason,
// unless the reason may pass (the store did not answer): then it is
// retried.
//
// # Delivery is at least once
//
// An item leaves the outbox only after the relay accepted its message, so a
// crash (or a lost lease) between the end of DATA and the acknowledgement
// makes another worker send the same item again. The Composer gives every
// item a Message-ID derived from the item's ID (see MessageID) and composes
// the same bytes again, so the worst case is a duplicate that receivers can
// recognise by its Message-ID; a mail is never lost and never reported
// delivered before the relay took responsibility for it.
//
// # Connections
//
// Run keeps Config.Workers connections and reuses each for the following
// items (RFC 5321 §3.3: a new transaction may start after the end of DATA).
// Config.PerConnection workers share each connection, holding it for their
// mail transaction only: the store's work on an item (claiming it,
// composing its message, recording the attempt, settling it) takes longer
// than the transaction, and one worker alone would leave the connection
// idle meanwhile. After
// a refused transaction the worker sends RSET; an idle connection is checked
// with NOOP before reuse, and closed after Config.IdleTimeout, Config.MaxAge
// or Config.MaxMails. A network error on a reused connection (the relay
// closed it while idle) is tried once more on a new connection before it
// counts as an attempt's outcome.
//
// Mails is the Composer of the gateway, on top of package compose; tests
// and tools may plug in others.
//
// The message is spooled to an unlinked temporary file, not held in memory,
// so a 20 MB completion mail costs the same memory as a short notice, and
// the bytes can be sent again on a new connection without composing again.
package sender
