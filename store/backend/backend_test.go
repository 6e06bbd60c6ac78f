package backend

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

func TestBadURLs(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"", "no scheme"},
		{"/var/lib/parapheur.db", "no scheme"},
		{"sqlite:///x.db", `unknown scheme "sqlite"`},
		{"bolt://var/lib/parapheur.db", `host "var"`},
		{"bolt:relative.db", "three slashes"},
		{"bolt:///var/lib/", "is a directory"},
		{"bolt://", "no file path"},
		{"bolt:///x.db?nosync=1", "no parameters"},
		{"redis://:s3cret@host/0?bogus=1", "bogus"},
		{"redis-sentinel://host:26379/0", "master_name"},
		{"http://[::1", "missing ']'"},
	} {
		s, err := Open(t.Context(), c.url, store.Options{})
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", c.url)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want an error naming %q", c.url, err, c.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) error shows the password: %v", c.url, err)
		}
	}
}

// TestOpens opens each backend by URL and writes through it.
func TestOpens(t *testing.T) {
	srv := testrig.Redis(t)
	for _, u := range []string{"bolt://" + filepath.Join(t.TempDir(), "parapheur.db"), srv.URL()} {
		s, err := Open(t.Context(), u, store.Options{})
		if err != nil {
			t.Fatalf("Open(%s): %v", u, err)
		}
		env := &workflow.Envelope{ID: "E1", State: workflow.StateInProgress, CreatedAt: time.Now(), Audit: audit.Start()}
		if err := s.Create(context.Background(), env, store.Writes{}); err != nil {
			t.Fatalf("%s: Create: %v", u, err)
		}
		if got, err := s.Get(context.Background(), "E1"); err != nil || got.Version != 1 {
			t.Fatalf("%s: Get = %+v, %v", u, got, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
