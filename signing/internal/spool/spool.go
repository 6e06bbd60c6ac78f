// Package spool streams a stored document through temporary files while a
// new version of it is made (a signature, a seal), so that memory does not
// grow with the document: the signing engine reads the input file in place
// and writes its output to another file, which is stored as a new blob.
//
// The temporary files are removed as soon as they are made (they live on
// as open descriptors), so nothing stays behind whatever happens to the
// process.
package spool

import (
	"context"
	"io"
	"os"

	"github.com/parapheur/parapheur/store"
)

// Rewrite copies r into a temporary file in dir ("" for the system's),
// has write make the new version from it into another temporary file, and
// stores that as a blob of st.
func Rewrite(ctx context.Context, st store.Store, dir string, r io.Reader, write func(in *os.File, out io.Writer) error) (store.Blob, error) {
	in, err := copyToTemp(dir, r)
	if err != nil {
		return store.Blob{}, err
	}
	return rewrite(ctx, st, dir, in, write)
}

// RewriteBlob is Rewrite of the stored blob whose hex SHA-256 is sum.
// The blob is read to its end before write starts, so that no store read
// stays open while the new version is made.
func RewriteBlob(ctx context.Context, st store.Store, dir, sum string, write func(in *os.File, out io.Writer) error) (store.Blob, error) {
	rc, _, err := st.OpenBlob(ctx, sum)
	if err != nil {
		return store.Blob{}, err
	}
	in, err := copyToTemp(dir, rc)
	rc.Close()
	if err != nil {
		return store.Blob{}, err
	}
	return rewrite(ctx, st, dir, in, write)
}

// rewrite has write make the new version of in, which it closes, and
// stores it.
func rewrite(ctx context.Context, st store.Store, dir string, in *os.File, write func(in *os.File, out io.Writer) error) (store.Blob, error) {
	defer in.Close()
	out, err := tempFile(dir)
	if err != nil {
		return store.Blob{}, err
	}
	defer out.Close()
	if err := write(in, out); err != nil {
		return store.Blob{}, err
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return store.Blob{}, err
	}
	return st.PutBlob(ctx, out)
}

// copyToTemp copies r into a temporary file in dir, removed at once, and
// returns it open.
func copyToTemp(dir string, r io.Reader) (*os.File, error) {
	f, err := tempFile(dir)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// tempFile is a temporary file in dir, removed at once.
func tempFile(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "parapheur-spool-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}
