//go:build unix

package pades

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps the size bytes of f read-only into memory. The mapping
// is the page cache's own pages: read on first touch, never copied to
// the heap.
func mapFile(f *os.File, size int64) (data []byte, unmap func() error, err error) {
	if size == 0 {
		return nil, func() error { return nil }, nil
	}
	data, err = unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return unix.Munmap(data) }, nil
}
