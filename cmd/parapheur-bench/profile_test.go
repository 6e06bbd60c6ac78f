package main

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestProfiles: -profile writes the CPU, block and mutex profiles, each a
// gzip-compressed protocol buffer as pprof reads them.
func TestProfiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prof")
	stop, err := startProfiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cpu", "block", "mutex"} {
		f, err := os.Open(filepath.Join(dir, name+".pprof"))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			t.Fatalf("%s.pprof is not a gzip stream: %v", name, err)
		}
		data, err := io.ReadAll(zr)
		f.Close()
		if err != nil || len(data) == 0 {
			t.Fatalf("%s.pprof: %d bytes, %v", name, len(data), err)
		}
	}
}

// TestNoProfiles: without -profile no directory is made.
func TestNoProfiles(t *testing.T) {
	t.Chdir(t.TempDir())
	stop, err := startProfiles("")
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir("."); err != nil || len(entries) != 0 {
		t.Fatalf("startProfiles(\"\") wrote %d entries (%v)", len(entries), err)
	}
}
