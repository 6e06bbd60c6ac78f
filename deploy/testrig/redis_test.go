package testrig

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestRedisRestartKeepsData(t *testing.T) {
	s := Redis(t)
	opt, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.Set(t.Context(), "envelope:1", "draft", 0).Err(); err != nil {
		t.Fatal(err)
	}
	before := s.proc.cmd.Process.Pid
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.proc.cmd.Process.Pid == before {
		t.Fatalf("Restart left the same process %d running", before)
	}
	got, err := c.Get(t.Context(), "envelope:1").Result()
	if err != nil || got != "draft" {
		t.Fatalf("after restart: GET = %q, %v; want \"draft\"", got, err)
	}
	// with `save ""`, the append-only file is the only thing that could have kept it
	if _, err := os.Stat(filepath.Join(s.dir, "dump.rdb")); !os.IsNotExist(err) {
		t.Errorf("dump.rdb exists (%v): the data may not have come from the append-only file", err)
	}
}

func TestRedisStopLeavesNothing(t *testing.T) {
	s, err := StartRedis(t.TempDir(), RedisOptions{Config: []string{"maxmemory 16mb"}})
	if err != nil {
		t.Fatal(err)
	}
	pid := s.proc.cmd.Process.Pid
	if !groupAlive(pid) {
		t.Fatalf("redis-server %d not seen in /proc", pid)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if groupAlive(pid) {
		t.Errorf("process group %d still running after Stop", pid)
	}
	if c, err := net.Dial("tcp", s.Addr()); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", s.Addr())
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestRedisCluster(t *testing.T) {
	cl := RedisCluster(t, 3)
	opt, err := redis.ParseClusterURL(cl.URL())
	if err != nil {
		t.Fatalf("ParseClusterURL(%s): %v", cl.URL(), err)
	}
	if strings.Join(opt.Addrs, " ") != strings.Join(cl.Addrs(), " ") {
		t.Fatalf("URL %s names %v, want %v", cl.URL(), opt.Addrs, cl.Addrs())
	}
	c := redis.NewClusterClient(opt)
	defer c.Close()
	ctx := t.Context()
	const n = 100
	for i := range n {
		if err := c.Set(ctx, fmt.Sprintf("key:%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET key:%d: %v", i, err)
		}
	}
	for i := range n {
		if got, err := c.Get(ctx, fmt.Sprintf("key:%d", i)).Int(); err != nil || got != i {
			t.Fatalf("GET key:%d = %d, %v", i, got, err)
		}
	}
	total := 0
	for _, addr := range cl.Addrs() {
		node := redis.NewClient(&redis.Options{Addr: addr})
		size, err := node.DBSize(ctx).Result()
		node.Close()
		if err != nil || size == 0 {
			t.Errorf("node %s holds %d keys (%v): the slots are not spread", addr, size, err)
		}
		total += int(size)
	}
	if total != n {
		t.Errorf("nodes hold %d keys in all, want %d", total, n)
	}
	// a real cluster refuses a multi-key write across slots, and takes it within a hash tag
	if err := c.MSet(ctx, "key:1", "a", "key:2", "b").Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Errorf("MSET across slots: %v, want a CROSSSLOT error", err)
	}
	if err := c.MSet(ctx, "{env:1}:a", "a", "{env:1}:b", "b").Err(); err != nil {
		t.Errorf("MSET within one hash tag: %v", err)
	}
}

func TestRedisSentinel(t *testing.T) {
	master := Redis(t)
	sentinel := RedisSentinel(t, master)
	ctx := t.Context()
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr()})
	defer sc.Close()
	addr, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil || strings.Join(addr, ":") != master.Addr() {
		t.Fatalf("sentinel names master %v (%v), want %s", addr, err, master.Addr())
	}
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: []string{sentinel.Addr()}})
	defer c.Close()
	if err := c.Set(ctx, "through", "sentinel", 0).Err(); err != nil {
		t.Fatal(err)
	}
	direct := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer direct.Close()
	if got, err := direct.Get(ctx, "through").Result(); err != nil || got != "sentinel" {
		t.Fatalf("master holds %q (%v), want what was written through the sentinel", got, err)
	}
}

func TestStartRedisClusterTooSmall(t *testing.T) {
	if _, err := StartRedisCluster(t.TempDir(), 2); err == nil || !strings.Contains(err.Error(), "at least 3") {
		t.Errorf("StartRedisCluster(2): %v, want an error about the node count", err)
	}
}

func TestMissingBinary(t *testing.T) {
	_, err := findBinary("no-such-server-xyz", "no-such-package")
	want := "install it with: DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends no-such-package"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("findBinary: %v, want an error holding %q", err, want)
	}
	if got := installCommand("dovecot-imapd postfix"); !strings.HasPrefix(got, PostfixPreseed+" && ") {
		t.Errorf("installCommand with postfix = %q, want the debconf preseed first", got)
	}
	if _, err := findBinary("redis-server", redisPackages); err != nil {
		t.Errorf("findBinary(redis-server): %v", err)
	}
}
