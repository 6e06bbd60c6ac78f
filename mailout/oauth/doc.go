// Package oauth lets the IMAP poller and the SMTP sender log in to mailboxes that refuse
// passwords (Exchange Online, Google Workspace) with an OAuth 2.0 access token (RFC 6749,
// RFC 6750), presented with the SASL mechanism OAUTHBEARER (RFC 7628) or with XOAUTH2, the
// older mechanism of the same shape that Google and Microsoft documented first
// (https://developers.google.com/gmail/imap/xoauth2-protocol and
// https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth).
//
// A [Source] gets the tokens, with golang.org/x/oauth2, from one of three grants:
//
//   - [Microsoft]: the client-credentials grant of the Microsoft identity platform, the
//     application authenticated by a client secret or by a certificate (a signed client
//     assertion, RFC 7523 §2.2), with app-only access to the mailbox;
//   - [Google]: a service account with domain-wide delegation, which signs a JWT bearer
//     grant (RFC 7523 §2.1) naming the mailbox to act as;
//   - [RefreshToken]: a refresh token obtained once by the device authorization grant
//     (RFC 8628) of [Login], "parapheur oauth2 login", and kept in a file only the gateway
//     reads; rotated refresh tokens are written back.
//
// Tokens are cached and renewed a minute before they expire; a server that refuses a
// token (a revoked one) makes the Source fetch a new one at once and try again, once.
// A token that cannot be had is an error that names the configuration key to fix; the
// Source remembers it for the readiness check. Secrets never appear in errors or logs.
//
// When authentication fails, the server first sends a JSON challenge (RFC 7628 §3.2.2);
// [ParseChallenge] reads it, and the clients answer it as the mechanisms require, so that
// the server's own failure message ends the exchange.
package oauth
