package testrig

import (
	"bytes"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Time limits: generous, because the machine running the tests may be busy.
const (
	startTimeout = 20 * time.Second
	stopTimeout  = 10 * time.Second
)

// findBinary returns the path of the program name, looking in PATH and then in the sbin
// directories that a non-login root shell may lack. pkgs are the Debian packages that hold it.
func findBinary(name, pkgs string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("testrig: %s not found; install it with: %s", name, installCommand(pkgs))
}

// installCommand returns the shell command that installs the Debian packages pkgs.
func installCommand(pkgs string) string {
	if strings.Contains(" "+pkgs+" ", " postfix ") {
		return PostfixPreseed + " && " + aptGet + pkgs
	}
	return aptGet + pkgs
}

// freePorts returns n distinct loopback TCP ports that nobody listened on a moment ago. The
// servers that get them bind them a few milliseconds later; a clash in between makes a
// server fail to start, with its log in the error.
func freePorts(n int) ([]int, error) {
	ports, err := FreeLoopbackPorts(n)
	if err != nil {
		return nil, fmt.Errorf("testrig: %w", err)
	}
	return ports, nil
}

// FreeLoopbackPorts returns n distinct loopback TCP ports that nobody listened on a moment
// ago, for servers that bind them a few milliseconds later. They are taken below the
// kernel's ephemeral range (net.ipv4.ip_local_port_range) when it leaves room: a port
// the kernel handed out for a listener on port 0 goes back to the pool that outgoing
// connections draw their local ports from, and one of those (a test's HTTP or SMTP
// client) taking it meanwhile made the server's bind fail with "address already in use".
func FreeLoopbackPorts(n int) ([]int, error) {
	low := ephemeralLow()
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	var ports []int
	// Random tries below the ephemeral range; each port is held until all are picked, so
	// that they differ.
	for try := 0; len(ports) < n && low-minTestPort > 1000 && try < 100*n; try++ {
		l, err := listenLoopback(minTestPort + mrand.IntN(low-minTestPort))
		if err != nil {
			continue // in use
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for len(ports) < n { // no room below the range: any port
		l, err := listenLoopback(0)
		if err != nil {
			return nil, fmt.Errorf("no free loopback port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// minTestPort is the lowest port FreeLoopbackPorts picks: above the well-known and most
// registered services' ports.
const minTestPort = 10000

// ephemeralLow is the lowest port of the kernel's ephemeral range, 32768 (Linux's default)
// when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return low
}

// listenLoopback listens on the loopback TCP port, 0 for any.
func listenLoopback(port int) (net.Listener, error) {
	return net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
}

// process is a server this package started as its child. It leads a process group of its
// own, so that everything it forked can be found, signalled and waited for.
type process struct {
	name     string
	cmd      *exec.Cmd
	watchdog *exec.Cmd
	logs     []string      // files whose end explains a failure
	exited   chan struct{} // closed once cmd.Wait has returned
	err      error         // cmd.Wait's result, set before exited is closed
}

// watchdogScript stops process group $1 once its stdin reaches end of file, which happens
// when the test binary dies (test timeout, ^C, crash) without calling Stop. Pdeathsig would
// not do: the Postfix master loses it when it changes its effective user, and Dovecot's
// children outlive their master. (No "--" before the group: dash's kill does not take it.)
const watchdogScript = `read _; kill -TERM -"$1"`

// startProcess runs argv in the background with stdout and stderr appended to logPath.
// cred, when not nil, is the user it runs as. logs are further files to quote on failure.
func startProcess(name, logPath string, cred *syscall.Credential, argv []string, logs ...string) (*process, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testrig: %s: %w", name, err)
	}
	defer out.Close() // the child has its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = filepath.Dir(logPath) // somewhere a server running as another user may enter
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testrig: starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logs: append([]string{logPath}, logs...), exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	// In a group of its own, the watchdog survives the ^C that kills the test binary.
	p.watchdog = exec.Command("/bin/sh", "-c", watchdogScript, "testrig-watchdog", strconv.Itoa(cmd.Process.Pid))
	p.watchdog.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if _, err = p.watchdog.StdinPipe(); err == nil {
		err = p.watchdog.Start()
	}
	if err != nil {
		p.watchdog = nil
		return nil, errors.Join(fmt.Errorf("testrig: starting %s's watchdog: %w", name, err), p.stop())
	}
	return p, nil
}

// waitListening returns once addr accepts TCP connections, or an error quoting the logs if
// the process exits first or the time runs out.
func (p *process) waitListening(addr string) error {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-p.exited:
			return p.failure(fmt.Sprintf("exited (%v) before listening on %s", p.err, addr))
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return p.failure(fmt.Sprintf("not listening on %s after %v", addr, startTimeout))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// failure builds an error about p that quotes the end of its logs.
func (p *process) failure(what string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "testrig: %s %s", p.name, what)
	for _, l := range p.logs {
		if t := logTail(l, 8); t != "" {
			fmt.Fprintf(&b, "\n--- %s:\n%s", l, t)
		}
	}
	return errors.New(b.String())
}

// stop sends SIGTERM to p's process group, waits for p to exit and for every process of
// the group to be gone. The whole group gets the signal because Dovecot's master waits ten
// seconds for its IMAP sessions to end. After stopTimeout, SIGKILL and an error. Stopping a
// stopped process is a no-op.
func (p *process) stop() error {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM) // ESRCH: already gone, which is what we want
	err := p.waitGone(pgid)
	if p.watchdog != nil {
		_ = p.watchdog.Process.Kill()
		_ = p.watchdog.Wait() // "signal: killed"
		p.watchdog = nil
	}
	return err
}

// waitGone waits for p to exit and then for process group pgid to be empty.
func (p *process) waitGone(pgid int) error {
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
		return p.failure(fmt.Sprintf("still running %v after SIGTERM; sent SIGKILL", stopTimeout))
	}
	deadline := time.Now().Add(stopTimeout)
	for groupAlive(pgid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			return p.failure(fmt.Sprintf("left processes of group %d running %v after SIGTERM; sent SIGKILL", pgid, stopTimeout))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// groupAlive reports whether a process of process group pgid is still running. Zombies do
// not count: a daemon's orphaned children are reaped by PID 1, which may take a second or two.
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

// logTail returns the last n lines of the file at path, or "" if it cannot be read.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
