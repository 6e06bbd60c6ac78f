// Package backend opens the store a URL names (the store.url setting), so
// that the gateway's configuration picks the backend without the rest of
// the code importing either:
//
//	bolt:///var/lib/parapheur/parapheur.db   the embedded store (store/bolt), one process
//	redis://…, rediss://…                    one Redis server (store/redis)
//	redis-sentinel://…, rediss-sentinel://…  Redis behind Sentinel
//	redis-cluster://…, rediss-cluster://…    Redis Cluster
//
// The Redis forms are documented in package store/redis.
package backend

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
	"github.com/parapheur/parapheur/store/redis"
)

// Open opens the store rawURL names.
func Open(ctx context.Context, rawURL string, opts store.Options) (store.Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("store URL: %w", err)
	}
	switch u.Scheme {
	case "bolt":
		path, err := boltPath(u)
		if err != nil {
			return nil, fmt.Errorf("store URL %s: %w", u.Redacted(), err)
		}
		return bolt.Open(path, opts)
	case "redis", "rediss", "redis-sentinel", "rediss-sentinel", "redis-cluster", "rediss-cluster":
		return redis.Open(ctx, rawURL, opts)
	case "":
		return nil, fmt.Errorf("store URL %q: no scheme: want bolt:///absolute/path/parapheur.db or redis://host:6379/0", u.Redacted())
	}
	return nil, fmt.Errorf("store URL %s: unknown scheme %q: want bolt, redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", u.Redacted(), u.Scheme)
}

// boltPath returns the file of a bolt URL: bolt:///absolute/path.
func boltPath(u *url.URL) (string, error) {
	switch {
	case u.Opaque != "":
		return "", fmt.Errorf("want bolt:///absolute/path (three slashes), not bolt:%s", u.Opaque)
	case u.Host != "":
		return "", fmt.Errorf("host %q: a bolt URL names a local file, bolt:///absolute/path (three slashes)", u.Host)
	case u.Path == "" || !strings.HasPrefix(u.Path, "/"):
		return "", errors.New("no file path: want bolt:///absolute/path/parapheur.db")
	case strings.HasSuffix(u.Path, "/"):
		return "", fmt.Errorf("path %s is a directory: name the file, e.g. %sparapheur.db", u.Path, u.Path)
	case u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("a bolt URL takes no parameters")
	case u.User != nil:
		return "", errors.New("a bolt URL takes no user or password")
	}
	return u.Path, nil
}
