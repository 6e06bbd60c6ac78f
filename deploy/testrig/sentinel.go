package testrig

import (
	"strconv"
	"testing"
)

// SentinelMaster is the name under which a sentinel of this package watches its master.
const SentinelMaster = "parapheur"

// StartRedisSentinel starts redis-server in Sentinel mode on a free loopback port, with its
// configuration (which Sentinel rewrites) and log in dir, watching master under the name
// [SentinelMaster] with a quorum of one. Clients ask it for the master's address, as they
// do in a Sentinel deployment.
func StartRedisSentinel(dir string, master *RedisServer) (*RedisServer, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	return startRedisConf(dir, ports[0], []string{
		"sentinel monitor " + SentinelMaster + " 127.0.0.1 " + strconv.Itoa(master.port) + " 1",
	}, "--sentinel")
}

// RedisSentinel starts a sentinel of master in a temporary directory of t and stops it when
// t ends. It fails t if the sentinel cannot start.
func RedisSentinel(t testing.TB, master *RedisServer) *RedisServer {
	t.Helper()
	s, err := StartRedisSentinel(t.TempDir(), master)
	return stopAtEnd(t, s, err)
}
