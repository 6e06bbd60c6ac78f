// Package compose writes the mails the gateway sends: Composer.Compose turns
// a kind of mail, its envelope, its addressee and the data of that kind into
// an Internet message ready for SMTP DATA.
//
// The message is an RFC 5322 message with MIME bodies (RFC 2045-2049): a
// multipart/alternative of text/plain and text/html, wrapped in a
// multipart/mixed when files are attached. Subjects and display names are
// encoded words (RFC 2047); attachment file names are RFC 2231 parameters.
// Every mail carries Auto-Submitted: auto-generated (RFC 3834) and
// X-Auto-Response-Suppress: All, so that auto-responders leave it alone, and
// X-Parapheur-Envelope naming its envelope. In-Reply-To and References put
// every mail to one party about one envelope in one thread: the sender's
// mails answer their submission, a recipient's mails refer to a root that
// package mailid makes and reads back.
//
// The texts are Go templates, in French and English, embedded in the binary:
// text/template for subjects and plain text, html/template for HTML, so that
// user text (titles, messages, names, file names, reasons) is escaped in
// HTML.
//
// Attachments are streamed from their readers through the base64 encoder,
// never held in memory, and their SHA-256 is checked on the way: a mail never
// states a hash other than that of the bytes it carries. Optional DKIM
// signing (RFC 6376) composes the message twice, first into the signer to
// hash it, then to the output behind the DKIM-Signature field, so it too
// works in constant memory; MIME boundaries derive from the Message-ID, which
// makes the two passes, and any resend of the same outbox item, byte for
// byte the same message. ReturnPath gives the matching SMTP reverse-path:
// a VERP address for bounce matching, or the null path for refusals and
// verification reports, which answer mail that made no envelope.
//
// To add a kind of mail: a Kind constant, listed in Kinds; a Data type with
// its Kind and check methods (and its links in Composer.checkLinks); KIND.txt
// (defining "subject" and "body") and KIND.html (defining "body") in every
// directory of templates/; a sample in the tests' catalogue, without which
// TestComposeEveryKind fails.
package compose
