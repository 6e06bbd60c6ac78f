package testrig

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterBusOffset is how far above its client port a cluster node listens for its peers.
const clusterBusOffset = 10000

// RedisClusterNodes is a Redis Cluster of masters only, started by this package, with the
// 16384 hash slots spread over the nodes.
type RedisClusterNodes struct {
	nodes []*RedisServer
}

// StartRedisCluster starts n cluster-enabled redis-server nodes (n >= 3, the least
// redis-cli accepts), each in a subdirectory of dir, joins them with
// "redis-cli --cluster create" and waits until every node reports cluster_state:ok.
func StartRedisCluster(dir string, n int) (*RedisClusterNodes, error) {
	if n < 3 {
		return nil, fmt.Errorf("testrig: a Redis Cluster needs at least 3 masters, not %d", n)
	}
	cli, err := findBinary("redis-cli", redisPackages)
	if err != nil {
		return nil, err
	}
	c := &RedisClusterNodes{}
	for i := range n {
		port, err := freeClusterPort()
		if err == nil {
			var s *RedisServer
			s, err = startRedis(filepath.Join(dir, fmt.Sprintf("node%d", i+1)), port, RedisOptions{Config: []string{
				"cluster-enabled yes",
				"cluster-config-file nodes.conf",
				"cluster-node-timeout 5000",
			}})
			if err == nil {
				c.nodes = append(c.nodes, s)
			}
		}
		if err != nil {
			return nil, errors.Join(err, c.Stop())
		}
	}
	args := append(c.Addrs(), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, append([]string{"--cluster", "create"}, args...)...).CombinedOutput(); err != nil {
		return nil, errors.Join(fmt.Errorf("testrig: redis-cli --cluster create: %v\n%s", err, out), c.Stop())
	}
	if err := c.waitOK(); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

// RedisCluster starts an n-node cluster in a temporary directory of t and stops it when t
// ends. It fails t if the cluster cannot start.
func RedisCluster(t testing.TB, n int) *RedisClusterNodes {
	t.Helper()
	c, err := StartRedisCluster(t.TempDir(), n)
	return stopAtEnd(t, c, err)
}

// freeClusterPort returns a free port whose cluster bus port is free too.
func freeClusterPort() (int, error) {
	for range 100 {
		ports, err := freePorts(1)
		if err != nil {
			return 0, err
		}
		p := ports[0]
		if p+clusterBusOffset > 65535 {
			continue
		}
		if l, err := listenLoopback(p + clusterBusOffset); err == nil {
			l.Close()
			return p, nil
		}
	}
	return 0, errors.New("testrig: no free port pair for a cluster node")
}

// waitOK waits until every node says cluster_state:ok: redis-cli returns once the nodes
// agree on the slots, but a node may still refuse commands until its state turns ok.
func (c *RedisClusterNodes) waitOK() error {
	deadline := time.Now().Add(startTimeout)
	for _, addr := range c.Addrs() {
		cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		for {
			info, err := cl.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				cl.Close()
				return fmt.Errorf("testrig: cluster node %s not ok after %v: %v %s", addr, startTimeout, err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
		cl.Close()
	}
	return nil
}

// Addrs are the nodes' host:port addresses.
func (c *RedisClusterNodes) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// URL names every node in the form go-redis's ParseClusterURL reads:
// redis://127.0.0.1:p1?addr=127.0.0.1:p2&addr=127.0.0.1:p3. It has no database number:
// a cluster has only database 0.
func (c *RedisClusterNodes) URL() string {
	addrs := c.Addrs()
	u := "redis://" + addrs[0]
	for i, a := range addrs[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + a
	}
	return u
}

// Stop stops every node, all at once, and waits until they have exited.
func (c *RedisClusterNodes) Stop() error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, s := range c.nodes {
		wg.Go(func() { errs[i] = s.Stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}
