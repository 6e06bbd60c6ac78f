package testrig

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisPackages hold redis-server and redis-cli.
const redisPackages = "redis-server redis-tools"

// RedisOptions tunes a [RedisServer].
type RedisOptions struct {
	// Config holds extra redis.conf directives, one per element ("maxmemory 64mb"). They come
	// after the defaults, those of deploy/compose.yaml (appendonly yes, appendfsync always,
	// no RDB snapshots, rewrites uncompressed), so the durability the defaults give can be
	// turned down here, e.g. "appendfsync everysec".
	Config []string
}

// RedisServer is a redis-server this package started. Its defaults make every acknowledged
// write durable, so a test can restart it and find its data there.
type RedisServer struct {
	dir  string
	port int
	argv []string

	mu   sync.Mutex // guards proc across Stop and Restart
	proc *process
}

// StartRedis starts redis-server on a free loopback port with its configuration, log and
// data in dir, which it creates if needed.
func StartRedis(dir string, opts RedisOptions) (*RedisServer, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	return startRedis(dir, ports[0], opts)
}

// Redis starts a redis-server with default options in a temporary directory of t and
// stops it when t ends. It fails t if the server cannot start.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	s, err := StartRedis(t.TempDir(), RedisOptions{})
	return stopAtEnd(t, s, err)
}

// stopAtEnd fails t with err, the error of starting s, or else stops s when t ends:
// what every rig's test helper does with what it started.
func stopAtEnd[S interface{ Stop() error }](t testing.TB, s S, err error) S {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func startRedis(dir string, port int, opts RedisOptions) (*RedisServer, error) {
	conf := []string{
		"appendonly yes",
		"appendfsync always",
		`save ""`, // the append-only file alone must carry the data across a restart
		// The store is mostly PDFs, compressed already: LZF spared 6% of their size (200
		// PDFs, 85 MB), and compressing each rewrite of the append-only file (at each
		// doubling) took a fifth of a core while ingesting 1100 envelopes a second.
		"rdbcompression no",
	}
	return startRedisConf(dir, port, append(conf, opts.Config...))
}

// startRedisConf starts redis-server with args after its configuration file, which holds
// what every server of this package has (loopback port, dir, log on stdout) and then conf.
func startRedisConf(dir string, port int, conf []string, args ...string) (*RedisServer, error) {
	bin, err := findBinary("redis-server", redisPackages)
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("testrig: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("testrig: %w", err)
	}
	conf = append([]string{
		"bind 127.0.0.1",
		"port " + strconv.Itoa(port),
		"dir " + strconv.Quote(dir),
		"daemonize no",
		`logfile ""`, // stdout, which startProcess appends to redis.log
	}, conf...)
	confPath := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(confPath, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("testrig: %w", err)
	}
	s := &RedisServer{dir: dir, port: port, argv: append([]string{bin, confPath}, args...)}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// start runs the server and waits until it answers PING, which it does only once it has
// loaded its append-only file.
func (s *RedisServer) start() error {
	p, err := startProcess("redis-server", filepath.Join(s.dir, "redis.log"), nil, s.argv)
	if err != nil {
		return err
	}
	if err := p.waitListening(s.Addr()); err != nil {
		_ = p.stop()
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = p.stop()
			return p.failure(fmt.Sprintf("does not answer PING: %v", err))
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.proc = p
	return nil
}

// Addr is the server's host:port.
func (s *RedisServer) Addr() string { return loopback(s.port) }

// Pid is the process ID of the running redis-server, 0 while it is stopped; a benchmark
// uses it to pin the server to chosen CPUs.
func (s *RedisServer) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Dir is the server's directory: its configuration, its log, and its append-only files
// in appendonlydir.
func (s *RedisServer) Dir() string { return s.dir }

// URL is the server's address in the form go-redis's ParseURL reads, database 0.
func (s *RedisServer) URL() string { return "redis://" + s.Addr() + "/0" }

// Stop shuts the server down with SIGTERM and waits until it has exited. Its data directory
// stays, so Restart can bring it back.
func (s *RedisServer) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	err := s.proc.stop()
	s.proc = nil
	return err
}

// Restart stops the server and starts it again on the same port and data directory, so that
// a test can show that what was written before is still there after.
func (s *RedisServer) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.start()
}
