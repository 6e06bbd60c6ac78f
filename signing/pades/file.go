package pades

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime/debug"
)

// source is the document an update extends: its bytes, in memory or a
// file's mapped pages, and, for a file, the file itself, which is hashed
// and copied to the output by reading it, not its mapping.
type source struct {
	data []byte
	file *os.File
}

// withFile runs f on the content of in, mapped into memory for the lazy
// reader, which touches only the cross-reference sections and the objects
// the update needs: nothing of in is held on the heap. Input over the
// size limit is refused before anything is read; a pipe or a device,
// which cannot be mapped, is read whole.
//
// in must not change while f runs, as with any signer: a change would
// make the signature cover other bytes than the update was made for. A
// file truncated meanwhile, whose mapped pages past its new end fault
// when read, makes f fail with an error saying so rather than end the
// process.
func withFile(in *os.File, maxInput int64, f func(source) error) error {
	st, err := in.Stat()
	if err != nil {
		return fmt.Errorf("pades: %w", err)
	}
	if !st.Mode().IsRegular() {
		data, err := io.ReadAll(io.LimitReader(in, sizeLimit(maxInput)+1))
		if err != nil {
			return fmt.Errorf("pades: reading %s: %w", in.Name(), err)
		}
		return f(source{data: data})
	}
	if err := checkLength(st.Size(), maxInput); err != nil {
		return err
	}
	data, unmap, err := mapFile(in, st.Size())
	if err != nil {
		return fmt.Errorf("pades: reading %s: %w", in.Name(), err)
	}
	defer unmap()
	err = mappedRead(func() error { return f(source{data, in}) })
	if err != nil {
		if now, serr := in.Stat(); serr == nil && (now.Size() != st.Size() || !now.ModTime().Equal(st.ModTime())) {
			return fmt.Errorf("pades: %s changed while being signed: %w", in.Name(), err)
		}
	}
	return err
}

// mappedRead runs f, which may read a mapped file, turning the fault that
// reading its pages past its end raises, once the file was truncated,
// into an error: the runtime would otherwise end the process (SIGBUS).
// Goroutines that f starts and that read the mapping need their own
// debug.SetPanicOnFault.
func mappedRead(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
			err = errors.New("pades: reading the input file failed (an I/O error, or the file was truncated)")
		}
	}()
	return f()
}

// hashBuffer is the size of the buffer a file is hashed through: it
// stays in the processor's cache.
const hashBuffer = 256 << 10

// hashInto writes s's bytes to h. A file is read through a small buffer
// rather than from its mapping: faulting the mapped pages in costs more
// than copying them (1.5x the time on a 21 MB file), and the process then
// holds a buffer, not the file.
func (s source) hashInto(h hash.Hash) error {
	if s.file == nil {
		h.Write(s.data)
		return nil
	}
	buf := make([]byte, hashBuffer)
	for off := int64(0); off < int64(len(s.data)); {
		n, err := s.file.ReadAt(buf[:min(int64(len(buf)), int64(len(s.data))-off)], off)
		h.Write(buf[:n])
		off += int64(n)
		if err != nil {
			return fmt.Errorf("pades: reading %s: %w", s.file.Name(), err)
		}
	}
	return nil
}

// copying writes a source's bytes to an output, ahead of the update.
type copying struct {
	src  source
	out  io.Writer
	done chan error // the copy of a file, begun at once, reports here
	err  error      // what done reported, once received
}

// startCopy begins writing s's bytes to out when s is a file: the kernel
// copies them while the update is prepared and the bytes hashed. Bytes in
// memory are written by finish, only once the update is ready, so that out
// receives nothing when signing fails.
func (s source) startCopy(out io.Writer) *copying {
	c := &copying{src: s, out: out}
	if s.file != nil {
		c.done = make(chan error, 1)
		go func() { c.done <- copyFile(out, s.file, int64(len(s.data))) }()
	}
	return c
}

// finish completes the copy, which the update then follows.
func (c *copying) finish() error {
	if c.src.file == nil {
		_, err := c.out.Write(c.src.data)
		return err
	}
	return c.wait()
}

// wait waits for the copy of a file to end, so that nothing writes to the
// output once the signing function returned: deferred on every path.
func (c *copying) wait() error {
	if c.done != nil {
		c.err = <-c.done
		c.done = nil
	}
	return c.err
}

// copyFile copies the first n bytes of f, from its start, to out. For
// two files, io.Copy lets the kernel copy them (copy_file_range), which
// file systems that can (Btrfs, XFS) do by sharing their blocks.
func copyFile(out io.Writer, f *os.File, n int64) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("pades: %w", err)
	}
	copied, err := io.Copy(out, io.LimitReader(f, n))
	if err == nil && copied < n {
		err = fmt.Errorf("pades: copying %s: %d bytes of %d", f.Name(), copied, n)
	}
	return err
}
