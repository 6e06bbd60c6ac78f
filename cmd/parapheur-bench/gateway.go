package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/parapheur/parapheur/deploy/testrig"
)

// gateway is one or more "parapheur serve" processes with their private mail servers and
// store.
type gateway struct {
	dir   string
	mail  *testrig.Mail
	redis *testrig.RedisServer // nil on bbolt
	// binary and env start a serve process (restart starts another), on the CPUs
	// serveCPUs lists ("" for any).
	binary    string
	env       []string
	serveCPUs string
	// replicas are the serve processes, on one store: exactly one of them polls the
	// mailbox at a time, any of them serves pages and sends mail.
	replicas []*replica
}

// replica is one "parapheur serve" process.
type replica struct {
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

// floorMailbox receives the mails of the raw Postfix and Dovecot floors; the load
// scenario logs in to it.
const floorMailbox = "floor"

// startGateway starts the mail servers, the store, "ca init" and o.replicas "serve"
// processes (one when unset).
func startGateway(o options) (g *gateway, err error) {
	g = &gateway{}
	if g.dir, err = os.MkdirTemp("", "parapheur-bench-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			g.stop(true)
		}
	}()
	replicas := orDefault(o.replicas, 1)
	storeURL := "bolt://" + filepath.Join(g.dir, "parapheur.db")
	switch {
	case o.store == "bolt" && replicas > 1:
		return g, fmt.Errorf("-replicas %d: several replicas share a Redis store, not a bbolt file: add -store redis", replicas)
	case o.store == "bolt":
	case o.store == "redis":
		if g.redis, err = testrig.StartRedis(filepath.Join(g.dir, "redis"), testrig.RedisOptions{}); err != nil {
			return g, err
		}
		storeURL = g.redis.URL()
		if o.serveCPUs != "" {
			// The store is the gateway's side of the machine: it goes with serve.
			pin := exec.Command("taskset", "-a", "-p", "-c", o.serveCPUs, strconv.Itoa(g.redis.Pid()))
			if out, err := pin.CombinedOutput(); err != nil {
				return g, fmt.Errorf("pinning redis-server to CPUs %s: %v\n%s", o.serveCPUs, err, out)
			}
		}
	default:
		return g, fmt.Errorf("-store %q: want bolt or redis", o.store)
	}
	mailUsers := []string{"parapheur", floorMailbox}
	if g.mail, err = testrig.StartMail(filepath.Join(g.dir, "mail"), testrig.MailOptions{Users: mailUsers}); err != nil {
		return g, err
	}
	env := []string{
		"PARAPHEUR_CONFIG=",
		"PARAPHEUR_ADDRESS=" + gatewayAddress,
		"PARAPHEUR_STORE_URL=" + storeURL,
		"PARAPHEUR_IMAP_URL=imap://parapheur@" + g.mail.IMAPAddr() + "/INBOX",
		"PARAPHEUR_IMAP_PASSWORD=" + g.mail.Password(),
		"PARAPHEUR_SMTP_URL=smtp://" + g.mail.SMTPAddr(),
		"PARAPHEUR_SENDERS_ALLOWED=" + agent,
		// The bench's signers each send their own X-Forwarded-For, as clients behind a
		// reverse proxy, so that the per-client limits treat them as the people they are.
		"PARAPHEUR_HTTP_TRUSTED_PROXIES=127.0.0.0/8",
		"PARAPHEUR_KEYS_DIR=" + filepath.Join(g.dir, "keys"),
		"PARAPHEUR_KEYS_PASSPHRASE=bench",
		"PATH=" + os.Getenv("PATH"),
	}
	env = append(env, o.env...)
	g.binary, g.env, g.serveCPUs = o.binary, env, o.serveCPUs
	caInit := exec.Command(o.binary, "ca", "init", "--organisation", "Bench")
	caInit.Env = env
	if out, err := caInit.CombinedOutput(); err != nil {
		return g, fmt.Errorf("%s ca init: %v\n%s", o.binary, err, out)
	}
	for i := range replicas {
		r, err := startReplica(o.binary, o.serveCPUs, env, filepath.Join(g.dir, fmt.Sprintf("serve-%d.log", i)))
		if r != nil {
			g.replicas = append(g.replicas, r)
		}
		if err != nil {
			return g, err
		}
	}
	return g, nil
}

// startReplica starts "serve" with env, on the CPUs listed by cpus ("" for any), on a
// listen address of its own which is also its public URL, logging to logPath, and waits
// until it is ready.
func startReplica(binary, cpus string, env []string, logPath string) (*replica, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	r := &replica{exited: make(chan error, 1), listen: listen}
	if r.log, err = os.Create(logPath); err != nil {
		return nil, err
	}
	r.cmd = exec.Command(binary, "serve")
	if cpus != "" {
		r.cmd = exec.Command("taskset", "-c", cpus, binary, "serve")
	}
	r.cmd.Env = append(env, "PARAPHEUR_LISTEN="+listen, "PARAPHEUR_PUBLIC_URL=http://"+listen)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		r.log.Close()
		return nil, err
	}
	go func() { r.exited <- r.cmd.Wait() }()
	return r, r.waitReady(30 * time.Second)
}

// waitReady waits until /readyz answers 200.
func (r *replica) waitReady(timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		select {
		case err := <-r.exited:
			r.exited <- err // for stop
			return fmt.Errorf("serve exited: %v\n%s", err, r.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get("http://" + r.listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("serve not ready after %v: %w\n%s", timeout, errTimeout, r.logTail())
}

// restart stops replica i as an operator does (SIGTERM, its work in flight
// finished) and starts another serve in its place on the same store, with
// the variables extra over the gateway's.
func (g *gateway) restart(i int, extra ...string) error {
	r := g.replicas[i]
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-r.exited:
	case <-time.After(time.Minute):
		return fmt.Errorf("serve did not stop within a minute of SIGTERM: %w\n%s", errTimeout, r.logTail())
	}
	r.exited <- nil // for stop
	next, err := startReplica(g.binary, g.serveCPUs, append(slices.Clone(g.env), extra...), strings.TrimSuffix(r.log.Name(), ".log")+"-restarted.log")
	if next != nil {
		r.log.Close()
		g.replicas[i] = next
	}
	return err
}

// placement says where the processes run: on any CPU, or with -serve-cpus the gateway's
// side (serve, and redis-server) on its CPUs and the bench with the mail servers it started
// on the CPUs it was confined to (taskset -c).
func (g *gateway) placement() string {
	if g.serveCPUs == "" {
		return "every process on any of the machine's CPUs"
	}
	return fmt.Sprintf("serve and its store on CPU(s) %s; the bench, Postfix and Dovecot on CPU(s) %s", g.serveCPUs, allowedCPUs())
}

// allowedCPUs is the list of CPUs this process may run on (Cpus_allowed_list in
// /proc/self/status), "?" where it cannot be read.
func allowedCPUs() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// memory is the first replica's memory (see replica.memory).
func (g *gateway) memory() (peak, anon, file int64, err error) {
	return g.replicas[0].memory()
}

// memory reads the serve process's peak resident set (VmHWM) and its resident set now,
// anonymous (heap, stacks) and file-backed (the binary, a bbolt store's mapped file), from
// /proc/PID/status, in bytes.
func (r *replica) memory() (peak, anon, file int64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
	if err != nil {
		return 0, 0, 0, err
	}
	fields := map[string]*int64{"VmHWM:": &peak, "RssAnon:": &anon, "RssFile:": &file}
	for line := range strings.Lines(string(status)) {
		for name, v := range fields {
			if rest, ok := strings.CutPrefix(line, name); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				if err != nil {
					return 0, 0, 0, fmt.Errorf("/proc/%d/status: %s %w", r.cmd.Process.Pid, name, err)
				}
				*v = kb << 10
				delete(fields, name)
			}
		}
	}
	if len(fields) > 0 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/status lacks %d of VmHWM, RssAnon, RssFile", r.cmd.Process.Pid, len(fields))
	}
	return peak, anon, file, nil
}

// cpu is the processor time the serve process has used so far, user and system, from
// /proc/PID/stat.
func (r *replica) cpu() (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may hold spaces:
	// state is the first of them, utime and stime (proc(5) fields 14 and 15) the 12th
	// and 13th.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name, want at least 13", r.cmd.Process.Pid, len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		t, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", r.cmd.Process.Pid, err)
		}
		ticks += t
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// userHZ is the unit of the times in /proc/PID/stat: clock ticks of 1/100 s, which Linux
// gives user space on every architecture.
const userHZ = 100

// send mails msg from from to the gateway through Postfix.
func (g *gateway) send(from, msg string) error {
	c, err := smtp.Dial(g.mail.SMTPAddr()) // the private Postfix listens on loopback, without TLS
	if err != nil {
		return err
	}
	defer c.Close()
	return c.SendMail(from, []string{gatewayAddress}, strings.NewReader(msg))
}

func (r *replica) logTail() string {
	b, _ := os.ReadFile(r.log.Name())
	if i := len(b) - 4000; i > 0 {
		b = b[bytes.IndexByte(b[i:], '\n')+i+1:]
	}
	return string(b)
}

// stop stops serve and the servers and removes the directory, printing the logs first when
// asked to.
func (g *gateway) stop(printLog bool) {
	for i, r := range g.replicas {
		r.cmd.Process.Kill()
		<-r.exited
		if printLog {
			if len(g.replicas) > 1 {
				fmt.Fprintf(os.Stderr, "--- replica %d (%s):\n", i, r.listen)
			}
			fmt.Fprint(os.Stderr, r.logTail())
		}
		r.log.Close()
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
