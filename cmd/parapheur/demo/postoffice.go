package demo

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"
)

// PostOffice is the demo's mail system, on loopback ports: an SMTP server
// that keeps every mail in the Mailbox, as Mailpit does, and an IMAP server
// holding the gateway's mailbox (INBOX, and the folders the poller moves
// mail to). Mail for the gateway's address, or one of its plus-addresses,
// is also delivered into that INBOX, as the organisation's MTA would.
type PostOffice struct {
	// Mailbox keeps every mail.
	Mailbox *Mailbox
	// Gateway is the gateway's address, IMAPUser and IMAPPassword the login
	// of its mailbox.
	Gateway, IMAPUser, IMAPPassword string
	// AuthservID names the demo's MTA in the Authentication-Results
	// header it adds to the mail it delivers to the gateway (RFC 8601).
	AuthservID string

	log    *slog.Logger
	user   *imapmemserver.User
	smtp   *smtp.Server
	imap   *imapserver.Server
	smtpLn net.Listener
	imapLn net.Listener
}

// Mailbox folders of the gateway, those of the configuration's defaults.
var gatewayFolders = []string{"INBOX", "Processed", "Quarantine"}

// maxMessageBytes bounds one mail taken over SMTP, as the gateway's
// own limits.max_message_bytes default does.
const maxMessageBytes = 50 << 20

// StartPostOffice starts the SMTP and IMAP servers on loopback ports.
func StartPostOffice(mailbox *Mailbox, gateway, authservID string, log *slog.Logger) (*PostOffice, error) {
	p := &PostOffice{Mailbox: mailbox, Gateway: strings.ToLower(gateway), IMAPUser: localPart(gateway),
		IMAPPassword: rand.Text(), AuthservID: authservID, log: log}
	p.user = imapmemserver.NewUser(p.IMAPUser, p.IMAPPassword)
	for _, f := range gatewayFolders {
		if err := p.user.Create(f, nil); err != nil {
			return nil, err
		}
	}
	mem := imapmemserver.New()
	mem.AddUser(p.user)
	// The mailbox lives in memory: each start is a new, empty one, whose
	// UIDs start again at 1. Its UIDVALIDITY is therefore the start time
	// (in milliseconds, modulo 2³²), as RFC 3501 §2.3.1.1 suggests, so
	// that a poller that kept the last UID it saw with the UIDVALIDITY
	// reads the new mailbox from its first mail.
	validity := uint32(time.Now().UnixMilli())
	p.imap = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return idleSession{mem.NewSession().(imapserver.SessionIMAP4rev2), validity}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIdle: {}, imap.CapMove: {}, imap.CapUIDPlus: {}},
		InsecureAuth: true, // loopback only
		Logger:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	})
	p.smtp = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{office: p}, nil }))
	p.smtp.Domain = "localhost"
	p.smtp.MaxMessageBytes = maxMessageBytes
	p.smtp.MaxRecipients = 100
	p.smtp.ReadTimeout, p.smtp.WriteTimeout = time.Minute, time.Minute
	p.smtp.EnableDSN = true
	p.smtp.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	var err error
	if p.smtpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	if p.imapLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		p.smtpLn.Close()
		return nil, err
	}
	go p.smtp.Serve(p.smtpLn)
	go p.imap.Serve(p.imapLn)
	return p, nil
}

// SMTPAddr and IMAPAddr are the servers' host:port.
func (p *PostOffice) SMTPAddr() string { return p.smtpLn.Addr().String() }

// IMAPAddr is the IMAP server's host:port.
func (p *PostOffice) IMAPAddr() string { return p.imapLn.Addr().String() }

// Close stops both servers.
func (p *PostOffice) Close() error {
	return errors.Join(p.smtp.Close(), p.imap.Close())
}

// Deliver does what the MTA does with a mail from returnPath to rcpts: it
// keeps it in the Mailbox and, when one of rcpts is the gateway's address,
// puts it into the gateway's INBOX with the trace and authentication
// header fields an MTA adds.
func (p *PostOffice) Deliver(returnPath string, rcpts []string, raw []byte) (string, error) {
	// The kept copy names its return path, as a delivering MTA writes it:
	// a delivery report about the mail goes there (the gateway's are
	// addresses of its own, by which it knows the recipient).
	kept := append([]byte("Return-Path: <"+returnPath+">\r\n"), raw...)
	id, err := p.Mailbox.Add(kept)
	if err != nil {
		return "", err
	}
	for _, rcpt := range rcpts {
		if !p.isGateway(rcpt) {
			continue
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "Return-Path: <%s>\r\nDelivered-To: %s\r\n", returnPath, rcpt)
		fmt.Fprintf(&b, "Authentication-Results: %s; dmarc=%s header.from=%s\r\n", p.AuthservID, p.dmarc(raw), fromDomain(raw))
		fmt.Fprintf(&b, "Received: by %s (parapheur demo); %s\r\n", p.AuthservID, time.Now().Format(time.RFC1123Z))
		if err := p.withoutOwnResults(&b, raw); err != nil {
			return "", fmt.Errorf("demo: delivering to %s: %w", rcpt, err)
		}
		if _, err := p.user.Append("INBOX", bytes.NewReader(b.Bytes()), &imap.AppendOptions{Time: time.Now()}); err != nil {
			return "", fmt.Errorf("demo: delivering to %s: %w", rcpt, err)
		}
		p.log.Debug("demo: delivered to the gateway's inbox", "mail", id, "to", rcpt)
		break // one copy, whatever the plus-addresses
	}
	return id, nil
}

// withoutOwnResults writes raw to w without the Authentication-Results
// fields that carry the demo MTA's own authserv-id: a sender may have
// written one, and an MTA removes them from incoming mail (RFC 8601 §5).
func (p *PostOffice) withoutOwnResults(w io.Writer, raw []byte) error {
	r := bufio.NewReader(bytes.NewReader(raw))
	h, err := textproto.ReadHeader(r)
	if err != nil {
		_, err = w.Write(raw) // not a header the gateway can read either: it says so
		return err
	}
	for f := h.FieldsByKey("Authentication-Results"); f.Next(); {
		id, _, _ := strings.Cut(f.Value(), ";")
		if fields := strings.Fields(id); len(fields) > 0 && strings.EqualFold(fields[0], p.AuthservID) {
			f.Del()
		}
	}
	if err := textproto.WriteHeader(w, h); err != nil {
		return err
	}
	_, err = io.Copy(w, r)
	return err
}

// dmarc is the DMARC result the demo's MTA vouches for: pass for its own
// domain, whose users it knows, none for the rest of the world, which it
// cannot check.
func (p *PostOffice) dmarc(raw []byte) string {
	if fromDomain(raw) == domainOf(p.Gateway) {
		return "pass"
	}
	return "none"
}

// isGateway reports whether rcpt is the gateway's address or one of its
// plus-addresses (circuits, the verifier).
func (p *PostOffice) isGateway(rcpt string) bool {
	rcpt = strings.ToLower(rcpt)
	if domainOf(rcpt) != domainOf(p.Gateway) {
		return false
	}
	local, _, _ := strings.Cut(localPart(rcpt), "+")
	return local == localPart(p.Gateway)
}

func localPart(addr string) string {
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		return addr[:at]
	}
	return addr
}

func domainOf(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}

// fromDomain is the domain of the mail's From address, "" without one.
func fromDomain(raw []byte) string {
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	defer r.Close()
	from, err := r.Header.AddressList("From")
	if err != nil || len(from) == 0 {
		return ""
	}
	return domainOf(from[0].Address)
}

// smtpSession is one mail transaction at a time, as RFC 5321 has them.
type smtpSession struct {
	office *PostOffice
	from   string
	rcpts  []string
}

func (s *smtpSession) Reset()        { s.from, s.rcpts = "", nil }
func (s *smtpSession) Logout() error { return nil }

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if _, err := s.office.Deliver(s.from, s.rcpts, raw); err != nil {
		s.office.log.Error("demo: a mail could not be kept", "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "the demo could not keep the mail: " + err.Error()}
	}
	return nil
}

// idleSession is imapmemserver's session made to report, when IDLE
// starts, the mail delivered since the client's last command, as Dovecot
// does: imapmemserver alone reports it only at the next change, and the
// poller would wait for a mail already there. It also reports the post
// office's UIDVALIDITY.
type idleSession struct {
	imapserver.SessionIMAP4rev2
	validity uint32 // the UIDVALIDITY of every mailbox
}

func (s idleSession) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	data, err := s.SessionIMAP4rev2.Select(name, options)
	if data != nil {
		data.UIDValidity = s.validity
	}
	return data, err
}

func (s idleSession) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	data, err := s.SessionIMAP4rev2.Status(name, options)
	if data != nil && options.UIDValidity {
		data.UIDValidity = s.validity
	}
	return data, err
}

func (s idleSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if err := s.Poll(w, true); err != nil {
		return err
	}
	return s.SessionIMAP4rev2.Idle(w, stop)
}
