package testrig

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

const (
	dovecotPackages = "dovecot-imapd dovecot-lmtpd"
	postfixPackages = "postfix"
	// mailSysUser runs Dovecot and owns the mailboxes: Dovecot will not run as root
	// without chroots and privilege separation, which a test has no use for.
	mailSysUser = "mailtest"
	// dovecotLibexec is where Debian puts the IMAP and LMTP servers the master spawns.
	dovecotLibexec = "/usr/lib/dovecot"
)

//go:embed templates
var templates embed.FS

// validMailUser matches user names Dovecot's %Ln leaves alone and a passwd-file can hold.
var validMailUser = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// MailOptions tunes a [Mail] rig.
type MailOptions struct {
	// Users are the mailboxes that can log in over IMAP (as "alice" or "alice@example.com")
	// and over SMTP AUTH; default parapheur, alice, bob and archives. Mail to any other
	// local part is delivered too, to a mailbox nobody can log in to.
	Users []string
	// Password is every user's password; default "secret".
	Password string
	// OAuth2Introspection, when set, is the URL of an OAuth 2.0 token introspection
	// endpoint (RFC 7662) that a test serves: IMAP and SMTP then also offer XOAUTH2 and
	// OAUTHBEARER, and Dovecot's oauth2 passdb posts each bearer token there
	// ("token=…"), accepting it when the answer is {"active": true, "username": USER}.
	OAuth2Introspection string
}

// Mail is a private mail system: Postfix answers SMTP and relays mail for any local part at
// example.com, partner.example and org.example (the gateway's own domain in our tests) to
// Dovecot over LMTP, and Dovecot serves the mailboxes over IMAP. The mailbox is the local
// part without its "+tag". Scripted failures at RCPT: tempfail[+x]@ gets 451,
// reject[+x]@ gets 550, any other domain 554; a sender throttled by [Mail.DeferSender] gets
// 451 for every recipient. Nothing ever leaves the machine.
type Mail struct {
	dir      string
	users    []string
	password string
	oauth2   string // introspection URL
	ports    mailPorts
	cred     *syscall.Credential // of mailSysUser
	dovecot  string              // binaries
	doveadm  string
	postfix  string
	master   string // the Postfix master daemon

	mu          sync.Mutex // guards the processes and deferred across the methods that change them
	dovecotProc *process
	mtaProc     *process // nil while the MTA is stopped
	deferred    []string // the senders of DeferSender, in the order they were added
}

// mailPorts are the rig's loopback ports, named as the templates use them.
type mailPorts struct {
	SMTPPort, IMAPPort, LMTPPort, AuthPort int
}

// StartMail starts Dovecot and Postfix with their configuration, queues, mailboxes and logs
// in dir, which it creates if needed. It must run as root. Stop it with [Mail.Stop].
func StartMail(dir string, opts MailOptions) (*Mail, error) {
	m := &Mail{users: opts.Users, password: opts.Password, oauth2: opts.OAuth2Introspection}
	if len(m.users) == 0 {
		m.users = []string{"parapheur", "alice", "bob", "archives"}
	}
	if m.password == "" {
		m.password = "secret"
	}
	for _, u := range m.users {
		if !validMailUser.MatchString(u) {
			return nil, fmt.Errorf("testrig: mail user %q: want lower-case letters, digits, '.', '_' or '-'", u)
		}
	}
	if strings.ContainsAny(m.oauth2, "\r\n") {
		return nil, errors.New("testrig: the introspection URL must not hold a line break")
	}
	if strings.ContainsAny(m.password, ":\r\n") {
		return nil, errors.New("testrig: mail password must not hold ':' or a line break")
	}
	if err := m.findBinaries(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("testrig: the mail rig must run as root: the Postfix master needs it")
	}
	var err error
	if m.dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("testrig: %w", err)
	}
	if m.cred, err = sysUser(); err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	m.ports = mailPorts{SMTPPort: ports[0], IMAPPort: ports[1], LMTPPort: ports[2], AuthPort: ports[3]}
	if err := m.writeConfig(); err != nil {
		return nil, err
	}
	if err := m.startDovecot(); err != nil {
		return nil, err
	}
	if err := m.StartMTA(); err != nil {
		return nil, errors.Join(err, m.Stop())
	}
	return m, nil
}

// MailRig starts a mail rig with default options in a temporary directory of t and stops
// it when t ends. It fails t if the rig cannot start.
func MailRig(t testing.TB) *Mail {
	t.Helper()
	m, err := StartMail(t.TempDir(), MailOptions{})
	return stopAtEnd(t, m, err)
}

func (m *Mail) findBinaries() error {
	var err error
	if m.dovecot, err = findBinary("dovecot", dovecotPackages); err != nil {
		return err
	}
	if m.doveadm, err = findBinary("doveadm", dovecotPackages); err != nil {
		return err
	}
	// dovecot-core alone has neither server, and its master starts without them
	for _, name := range []string{"imap", "lmtp"} {
		if _, err := os.Stat(filepath.Join(dovecotLibexec, name)); err != nil {
			return fmt.Errorf("testrig: %s not found; install it with: %s",
				filepath.Join(dovecotLibexec, name), installCommand(dovecotPackages))
		}
	}
	if m.postfix, err = findBinary("postfix", postfixPackages); err != nil {
		return err
	}
	postconf, err := findBinary("postconf", postfixPackages)
	if err != nil {
		return err
	}
	out, err := exec.Command(postconf, "-d", "-h", "daemon_directory").Output()
	if err != nil {
		return fmt.Errorf("testrig: postconf -d daemon_directory: %w", err)
	}
	m.master = filepath.Join(strings.TrimSpace(string(out)), "master")
	return nil
}

// sysUser returns the credentials of mailSysUser, creating that system user if needed.
func sysUser() (*syscall.Credential, error) {
	u, err := user.Lookup(mailSysUser)
	if err != nil {
		useradd, err := findBinary("useradd", "passwd")
		if err != nil {
			return nil, err
		}
		// Another test binary may be creating it at the same moment: judge by the lookup.
		out, addErr := exec.Command(useradd, "-r", "-M", "-s", "/usr/sbin/nologin", mailSysUser).CombinedOutput()
		if u, err = user.Lookup(mailSysUser); err != nil {
			return nil, fmt.Errorf("testrig: creating system user %s: %v %s", mailSysUser, addErr, out)
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("testrig: user %s: %w", mailSysUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("testrig: user %s: %w", mailSysUser, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// writeConfig lays out dir: dovecot/ owned by mailSysUser, postfix/ as Postfix wants it.
func (m *Mail) writeConfig() error {
	for _, d := range []string{"dovecot/run", "dovecot/state", "dovecot/mail", "postfix/conf", "postfix/queue", "postfix/data"} {
		if err := os.MkdirAll(filepath.Join(m.dir, d), 0o755); err != nil {
			return fmt.Errorf("testrig: %w", err)
		}
	}
	if err := m.render("dovecot.conf", "dovecot/dovecot.conf"); err != nil {
		return err
	}
	if m.oauth2 != "" {
		if err := m.render("oauth2.conf.ext", "dovecot/oauth2.conf.ext"); err != nil {
			return err
		}
	}
	var users strings.Builder
	for _, u := range m.users {
		fmt.Fprintf(&users, "%s:%s\n", u, m.password)
	}
	if err := os.WriteFile(filepath.Join(m.dir, "dovecot/users"), []byte(users.String()), 0o600); err != nil {
		return fmt.Errorf("testrig: %w", err)
	}
	if err := chownTree(filepath.Join(m.dir, "dovecot"), int(m.cred.Uid), int(m.cred.Gid)); err != nil {
		return err
	}
	if err := openPath(m.dir, int(m.cred.Uid)); err != nil {
		return err
	}

	for _, f := range []string{"main.cf", "master.cf", "rcpt_access", "sender_access"} {
		if err := m.render(f, "postfix/conf/"+f); err != nil {
			return err
		}
	}
	// Postfix waits for a main.cf younger than about 2 s to "cool down": backdate them all.
	old := time.Now().Add(-time.Minute)
	for _, f := range []string{"main.cf", "master.cf", "rcpt_access", "sender_access"} {
		if err := os.Chtimes(filepath.Join(m.dir, "postfix/conf", f), old, old); err != nil {
			return fmt.Errorf("testrig: %w", err)
		}
	}
	pf, err := user.Lookup("postfix") // created by the postfix package
	if err != nil {
		return fmt.Errorf("testrig: %w; install postfix with: %s", err, installCommand(postfixPackages))
	}
	uid, _ := strconv.Atoi(pf.Uid)
	if err := os.Chown(filepath.Join(m.dir, "postfix/data"), uid, -1); err != nil {
		return fmt.Errorf("testrig: %w", err)
	}
	return nil
}

// render writes the embedded template name, filled with the rig's directory and ports, to
// the path rel under dir.
func (m *Mail) render(name, rel string) error {
	t, err := template.ParseFS(templates, "templates/"+name)
	if err != nil {
		return fmt.Errorf("testrig: %w", err)
	}
	f, err := os.Create(filepath.Join(m.dir, rel))
	if err != nil {
		return fmt.Errorf("testrig: %w", err)
	}
	data := struct {
		mailPorts
		Dir, SysUser, OAuth2 string
	}{m.ports, m.dir, mailSysUser, m.oauth2}
	return errors.Join(t.Execute(f, data), f.Close())
}

// chownTree gives the tree at root to uid:gid.
func chownTree(root string, uid, gid int) error {
	err := filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("testrig: %w", err)
	}
	return nil
}

// openPath lets uid enter dir and each of its parents, adding o+x where needed: Go's
// t.TempDir makes 0700 directories, which Dovecot's user could not enter.
func openPath(dir string, uid int) error {
	for p := dir; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("testrig: %w", err)
		}
		owner := st.Sys().(*syscall.Stat_t).Uid
		if st.Mode()&0o001 == 0 && int(owner) != uid {
			if err := os.Chmod(p, st.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("testrig: %w", err)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func (m *Mail) startDovecot() error {
	conf := filepath.Join(m.dir, "dovecot/dovecot.conf")
	p, err := startProcess("dovecot", filepath.Join(m.dir, "dovecot/stdout.log"), m.cred,
		[]string{m.dovecot, "-F", "-c", conf}, m.DovecotLog())
	if err != nil {
		return err
	}
	for _, port := range []int{m.ports.IMAPPort, m.ports.LMTPPort, m.ports.AuthPort} {
		if err := p.waitListening(loopback(port)); err != nil {
			return errors.Join(err, p.stop())
		}
	}
	m.dovecotProc = p
	return nil
}

// StartMTA starts Postfix, at first or again after [Mail.StopMTA], on the same port and with
// the same queue, so that mail it accepted before is delivered.
func (m *Mail) StartMTA() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mtaProc != nil {
		return nil
	}
	conf := filepath.Join(m.dir, "postfix/conf")
	// "postfix start" would run this check, which creates the queue directories, and then
	// detach the master from us. Run as our child (-d), the master is ours to reap, and its
	// watchdog can stop it if the test binary dies.
	if out, err := exec.Command(m.postfix, "-c", conf, "check").CombinedOutput(); err != nil {
		return fmt.Errorf("testrig: postfix check: %v: %s\n%s", err, out, logTail(m.MTALog(), 5))
	}
	p, err := startProcess("postfix", filepath.Join(m.dir, "postfix/master.log"), nil,
		[]string{m.master, "-d", "-c", conf}, m.MTALog())
	if err != nil {
		return err
	}
	if err := p.waitListening(m.SMTPAddr()); err != nil {
		return errors.Join(err, p.stop())
	}
	m.mtaProc = p
	return nil
}

// StopMTA stops Postfix and waits until all its processes are gone; SMTP connections are
// refused until [Mail.StartMTA]. Dovecot keeps running.
func (m *Mail) StopMTA() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mtaProc == nil {
		return nil
	}
	err := m.mtaProc.stop()
	m.mtaProc = nil
	return err
}

// Stop stops Postfix and Dovecot and waits until all their processes are gone. The
// directory stays, with the logs and mailboxes.
func (m *Mail) Stop() error {
	err := m.StopMTA()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dovecotProc != nil {
		err = errors.Join(err, m.dovecotProc.stop())
		m.dovecotProc = nil
	}
	return err
}

// RestartDovecot stops Dovecot and starts it again on the same ports and mailboxes, as an
// operator's restart does: IMAP sessions are cut, and meanwhile Postfix defers its LMTP
// deliveries and retries them later (queue_run_delay, 2 s). An smtpd process that used
// Dovecot's auth service before answers its next AUTH 454 once, as after a real restart.
func (m *Mail) RestartDovecot() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dovecotProc != nil {
		if err := m.dovecotProc.stop(); err != nil {
			return err
		}
		m.dovecotProc = nil
	}
	return m.startDovecot()
}

// DeferSender makes Postfix answer "451 4.7.1" at RCPT to every message whose envelope
// sender (MAIL FROM) is addr, or addr's local part with a "+tag" (as a VERP return path
// has), until [Mail.AcceptSenders]: a receiving MTA throttling a sender. The rule holds
// for the SMTP sessions that begin after the reload it makes; a session open before keeps
// the rules it began with until it ends.
func (m *Mail) DeferSender(addr string) error {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(addr, "/ \t\r\n") {
		return fmt.Errorf("testrig: DeferSender(%q): want an address like parapheur@org.example", addr)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deferred = append(m.deferred, addr)
	if err := m.writeSenderAccess(); err != nil {
		return err
	}
	return m.awaitSenderAccess(addr, true)
}

// AcceptSenders ends every [Mail.DeferSender], for the sessions that begin after it.
func (m *Mail) AcceptSenders() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	was := m.deferred
	m.deferred = nil
	if err := m.writeSenderAccess(); err != nil {
		return err
	}
	for _, addr := range was {
		if err := m.awaitSenderAccess(addr, false); err != nil {
			return err
		}
	}
	return nil
}

// smtpRcptCode opens an SMTP session at addr and answers the code that
// RCPT TO:<rcpt> got after MAIL FROM:<from>: 0 when it was accepted.
func smtpRcptCode(addr, from, rcpt string) (int, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Mail(from, nil); err != nil {
		return 0, err
	}
	err = c.Rcpt(rcpt, nil)
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code, nil
	}
	if err != nil {
		return 0, fmt.Errorf("RCPT TO:<%s>: %w", rcpt, err)
	}
	return 0, c.Quit()
}

// awaitSenderAccess waits until a new SMTP session from addr is deferred at
// RCPT, or no longer is: postfix reload only asks the running smtpd
// processes to stop, and one that is idle may still take the next session
// with the table it read at its start (a test saw RCPT accepted just after
// DeferSender). The probe sends no mail: it quits after RCPT.
func (m *Mail) awaitSenderAccess(addr string, deferred bool) error {
	if m.mtaProc == nil {
		return nil
	}
	var got int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		code, err := smtpRcptCode(m.SMTPAddr(), addr, "probe@example.com")
		if err != nil {
			return fmt.Errorf("testrig: probing Postfix's sender table: %w", err)
		}
		if got = code; (code == 451) == deferred {
			return nil
		}
	}
	return fmt.Errorf("testrig: Postfix still answers RCPT from <%s> with %d 10 s after its reload (want deferred: %v)", addr, got, deferred)
}

// writeSenderAccess writes the sender_access table of m.deferred and, when the MTA runs,
// reloads Postfix, which reads a regexp table only when a process starts.
func (m *Mail) writeSenderAccess() error {
	var table strings.Builder
	table.WriteString("# written by Mail.DeferSender\n")
	for _, addr := range m.deferred {
		local, domain, _ := strings.Cut(addr, "@")
		fmt.Fprintf(&table, "/^%s(\\+[^@]*)?@%s$/ 451 4.7.1 Sender throttled, try again later\n",
			regexp.QuoteMeta(local), regexp.QuoteMeta(domain))
	}
	if err := os.WriteFile(filepath.Join(m.dir, "postfix/conf/sender_access"), []byte(table.String()), 0o644); err != nil {
		return fmt.Errorf("testrig: %w", err)
	}
	if m.mtaProc == nil {
		return nil
	}
	if out, err := exec.Command(m.postfix, "-c", filepath.Join(m.dir, "postfix/conf"), "reload").CombinedOutput(); err != nil {
		return fmt.Errorf("testrig: postfix reload: %v: %s", err, out)
	}
	return nil
}

// Kick disconnects every IMAP session of user (doveadm kick), as a server
// restart or a network failure would; tests use it to check reconnection.
func (m *Mail) Kick(user string) error { return m.Doveadm("kick", user) }

// Doveadm runs a doveadm command against the rig's Dovecot as the mailbox
// owner, e.g. Doveadm("mailbox", "update", "-u", "parapheur", "--uid-validity", "7", "INBOX").
func (m *Mail) Doveadm(args ...string) error {
	cmd := exec.Command(m.doveadm, append([]string{"-c", filepath.Join(m.dir, "dovecot/dovecot.conf")}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: m.cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("testrig: doveadm %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// SMTPAddr is Postfix's host:port: SMTP without TLS, AUTH PLAIN and LOGIN optional (and
// XOAUTH2 and OAUTHBEARER with [MailOptions.OAuth2Introspection]).
func (m *Mail) SMTPAddr() string { return loopback(m.ports.SMTPPort) }

// IMAPAddr is Dovecot's host:port: IMAP without TLS, plain-text login allowed.
func (m *Mail) IMAPAddr() string { return loopback(m.ports.IMAPPort) }

// Users are the names that can log in; see [MailOptions.Users].
func (m *Mail) Users() []string { return append([]string(nil), m.users...) }

// Password is every user's password.
func (m *Mail) Password() string { return m.password }

// Maildir is the Maildir directory of user's INBOX: a delivered message appears in its
// new/ subdirectory, which a benchmark can watch without an IMAP client's notification
// delay.
func (m *Mail) Maildir(user string) string { return filepath.Join(m.dir, "dovecot", "mail", user) }

// MTALog is the path of Postfix's log: with [Mail.DovecotLog], what a test shows of a
// mail that did not arrive.
func (m *Mail) MTALog() string { return filepath.Join(m.dir, "postfix/postfix.log") }

// DovecotLog is the path of Dovecot's log.
func (m *Mail) DovecotLog() string { return filepath.Join(m.dir, "dovecot/dovecot.log") }

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// WaitMessage waits until a message whose header field has value (e.g.
// "Message-ID", "<id@host>") is in user's INBOX and returns it, for tests
// that check what a mail server delivered.
func (m *Mail) WaitMessage(user, field, value string, timeout time.Duration) ([]byte, error) {
	c, err := imapclient.DialInsecure(m.IMAPAddr(), nil)
	if err != nil {
		return nil, fmt.Errorf("testrig: %w", err)
	}
	defer c.Close()
	if err := c.Login(user, m.password).Wait(); err != nil {
		return nil, fmt.Errorf("testrig: IMAP login %s: %w", user, err)
	}
	criteria := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: field, Value: value}}}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			return nil, fmt.Errorf("testrig: %w", err)
		}
		found, err := c.UIDSearch(criteria, nil).Wait()
		if err != nil {
			return nil, fmt.Errorf("testrig: %w", err)
		}
		uids := found.AllUIDs()
		if len(uids) == 0 {
			continue
		}
		section := &imap.FetchItemBodySection{Peek: true}
		msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil || len(msgs) != 1 {
			return nil, fmt.Errorf("testrig: fetching %s %s from %s: %d messages, %v", field, value, user, len(msgs), err)
		}
		return msgs[0].FindBodySection(section), nil
	}
	return nil, fmt.Errorf("testrig: no message with %s %s in %s's INBOX after %v", field, value, user, timeout)
}

// WaitDelivered waits until Postfix's queues hold no message: every mail it accepted before
// the call has then reached its mailbox (or bounced), so that a test can count what the
// mailboxes hold.
func (m *Mail) WaitDelivered(timeout time.Duration) error {
	queue := filepath.Join(m.dir, "postfix", "queue")
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		n, err := queuedMessages(queue)
		if err != nil || n == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testrig: Postfix still holds %d message(s) after %v", n, timeout)
		}
	}
}

// queuedMessages counts the message files in the Postfix queues under dir: every queue a
// message waits in between its acceptance and its delivery or bounce.
func queuedMessages(dir string) (int, error) {
	n := 0
	for _, q := range []string{"maildrop", "incoming", "active", "deferred", "hold"} {
		err := filepath.WalkDir(filepath.Join(dir, q), func(_ string, d fs.DirEntry, err error) error {
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil // delivered while we looked
			case err != nil:
				return err
			case d.Type().IsRegular():
				n++
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("testrig: %w", err)
		}
	}
	return n, nil
}

// RunWithOAuth2Mail is RunWithMail with a local OAuth2 token server
// (StartOAuth2) answering the rig's oauth2 passdb: *tokens and *rig are
// set before the tests run, and both stop after them.
func RunWithOAuth2Mail(m *testing.M, opts MailOptions, rig **Mail, tokens **OAuth2) int {
	*tokens = StartOAuth2()
	defer (*tokens).Close()
	opts.OAuth2Introspection = (*tokens).IntrospectionURL()
	return RunWithMail(m, opts, rig)
}

// RunWithMail runs a test binary's tests with a mail rig started once for
// them all (Dovecot takes a second to stop: too long to pay per test), and
// returns the exit code for os.Exit. *rig is set before the tests run.
//
//	func TestMain(m *testing.M) { os.Exit(testrig.RunWithMail(m, testrig.MailOptions{}, &rig)) }
func RunWithMail(m *testing.M, opts MailOptions, rig **Mail) int {
	dir, err := os.MkdirTemp("", "testrig-mail-")
	if err == nil {
		*rig, err = StartMail(dir, opts)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		return 1
	}
	code := m.Run()
	if err := (*rig).Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.RemoveAll(dir)
	return code
}
