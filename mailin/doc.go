// Package mailin holds no code of its own: the packages below it read the mail that
// arrives at the gateway's mailbox. poller fetches it over IMAP (RFC 9051); message parses
// it (RFC 5322, MIME per RFC 2045-2049); loop (RFC 3834), dsn (RFC 3464), quote, reply and
// instructions tell what it is and what it asks; policy decides whether its author may
// submit (RFC 7601 Authentication-Results); ingest acts on it.
//
// Its test, TestCorpus, proves that those parsers read real mail as they should: each mail
// of testdata/ (forwards and replies as Outlook, Apple Mail, Gmail and Thunderbird write
// them, in UTF-8, Latin-1 and windows-1252, HTML only, delivery reports of Postfix and
// Exchange, an auto-reply) goes through every parser the poller calls, in the order it
// calls them, and each result — addresses, thread, title, documents byte for byte, the
// sender's own text, the instructions, the sender decision, the delivery report, the
// reply command — is compared with the expected one; a mail added to testdata/ without an
// expectation fails it.
package mailin
