package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/parapheur/parapheur/deploy/testrig"
)

// gateway is a "parapheur serve" process with its private mail servers and store.
type gateway struct {
	dir    string
	mail   *testrig.Mail
	redis  *testrig.RedisServer // nil on bbolt
	cmd    *exec.Cmd
	exited chan error
	log    *os.File
	listen string
}

// The gateway's address and the one sender allowed to submit.
const (
	gatewayAddress = "parapheur@org.example"
	agent          = "bob@example.com"
)

// startGateway starts the mail servers, the store, "ca init" and "serve".
func startGateway(o options) (g *gateway, err error) {
	g = &gateway{exited: make(chan error, 1)}
	if g.dir, err = os.MkdirTemp("", "parapheur-bench-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			g.stop(true)
		}
	}()
	if g.mail, err = testrig.StartMail(filepath.Join(g.dir, "mail"), testrig.MailOptions{}); err != nil {
		return g, err
	}
	storeURL := "bolt://" + filepath.Join(g.dir, "parapheur.db")
	switch o.store {
	case "bolt":
	case "redis":
		if g.redis, err = testrig.StartRedis(filepath.Join(g.dir, "redis"), testrig.RedisOptions{}); err != nil {
			return g, err
		}
		storeURL = g.redis.URL()
	default:
		return g, fmt.Errorf("-store %q: want bolt or redis", o.store)
	}
	if g.listen, err = freeAddr(); err != nil {
		return g, err
	}
	env := []string{
		"PARAPHEUR_CONFIG=",
		"PARAPHEUR_ADDRESS=" + gatewayAddress,
		"PARAPHEUR_PUBLIC_URL=http://" + g.listen,
		"PARAPHEUR_LISTEN=" + g.listen,
		"PARAPHEUR_STORE_URL=" + storeURL,
		"PARAPHEUR_IMAP_URL=imap://parapheur@" + g.mail.IMAPAddr() + "/INBOX",
		"PARAPHEUR_IMAP_PASSWORD=" + g.mail.Password(),
		"PARAPHEUR_SMTP_URL=smtp://" + g.mail.SMTPAddr(),
		"PARAPHEUR_SENDERS_ALLOWED=" + agent,
		"PARAPHEUR_KEYS_DIR=" + filepath.Join(g.dir, "keys"),
		"PARAPHEUR_KEYS_PASSPHRASE=bench",
		"PATH=" + os.Getenv("PATH"),
	}
	env = append(env, o.env...)
	caInit := exec.Command(o.binary, "ca", "init", "--organisation", "Bench")
	caInit.Env = env
	if out, err := caInit.CombinedOutput(); err != nil {
		return g, fmt.Errorf("%s ca init: %v\n%s", o.binary, err, out)
	}
	if g.log, err = os.Create(filepath.Join(g.dir, "serve.log")); err != nil {
		return g, err
	}
	g.cmd = exec.Command(o.binary, "serve")
	g.cmd.Env = env
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	if err := g.cmd.Start(); err != nil {
		return g, err
	}
	go func() { g.exited <- g.cmd.Wait() }()
	return g, g.waitReady(30 * time.Second)
}

// waitReady waits until /readyz answers 200.
func (g *gateway) waitReady(timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		select {
		case err := <-g.exited:
			return fmt.Errorf("serve exited: %v\n%s", err, g.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get("http://" + g.listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("serve not ready after %v: %w\n%s", timeout, errTimeout, g.logTail())
}

// memory reads the serve process's peak resident set (VmHWM) and its resident set now,
// anonymous (heap, stacks) and file-backed (the binary, a bbolt store's mapped file), from
// /proc/PID/status, in bytes.
func (g *gateway) memory() (peak, anon, file int64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		return 0, 0, 0, err
	}
	fields := map[string]*int64{"VmHWM:": &peak, "RssAnon:": &anon, "RssFile:": &file}
	for line := range strings.Lines(string(status)) {
		for name, v := range fields {
			if rest, ok := strings.CutPrefix(line, name); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				if err != nil {
					return 0, 0, 0, fmt.Errorf("/proc/%d/status: %s %w", g.cmd.Process.Pid, name, err)
				}
				*v = kb << 10
				delete(fields, name)
			}
		}
	}
	if len(fields) > 0 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/status lacks %d of VmHWM, RssAnon, RssFile", g.cmd.Process.Pid, len(fields))
	}
	return peak, anon, file, nil
}

// send mails msg from from to the gateway through Postfix.
func (g *gateway) send(from, msg string) error {
	c, err := smtp.Dial(g.mail.SMTPAddr()) // the private Postfix listens on loopback, without TLS
	if err != nil {
		return err
	}
	defer c.Close()
	return c.SendMail(from, []string{gatewayAddress}, strings.NewReader(msg))
}

func (g *gateway) logTail() string {
	if g.log == nil {
		return ""
	}
	b, _ := os.ReadFile(g.log.Name())
	if i := len(b) - 4000; i > 0 {
		b = b[bytes.IndexByte(b[i:], '\n')+i+1:]
	}
	return string(b)
}

// stop stops serve and the servers and removes the directory, printing the log first when
// asked to.
func (g *gateway) stop(printLog bool) {
	if g.cmd != nil && g.cmd.Process != nil {
		g.cmd.Process.Kill()
		<-g.exited
	}
	if printLog {
		fmt.Fprint(os.Stderr, g.logTail())
	}
	if g.log != nil {
		g.log.Close()
	}
	for _, stop := range []func() error{g.mailStop, g.redisStop} {
		if err := stop(); err != nil {
			fmt.Fprintln(os.Stderr, "parapheur-bench:", err)
		}
	}
	os.RemoveAll(g.dir)
}

func (g *gateway) mailStop() error {
	if g.mail == nil {
		return nil
	}
	return g.mail.Stop()
}

func (g *gateway) redisStop() error {
	if g.redis == nil {
		return nil
	}
	return g.redis.Stop()
}

// freeAddr is a free loopback host:port.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
