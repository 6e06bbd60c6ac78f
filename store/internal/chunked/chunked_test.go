package chunked

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/parapheur/parapheur/store"
)

// shortLen is a reader whose Len says less than it holds.
type shortLen struct{ *strings.Reader }

func (shortLen) Len() int { return 0 }

// TestWriteSizedReaders writes readers that say their length, truthfully or
// not, and checks that the blob is all their bytes: a buffer sized by Len
// must still read on when Len was wrong.
func TestWriteSizedReaders(t *testing.T) {
	data := "twenty bytes of data"
	sum := sha256.Sum256([]byte(data))
	want := store.Blob{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
	for name, r := range map[string]interface {
		Read([]byte) (int, error)
		Len() int
	}{"bytes.Reader": bytes.NewReader([]byte(data)), "a Len of 0": shortLen{strings.NewReader(data)}} {
		var got bytes.Buffer
		blob, _, err := Write(t.Context(), r, 1<<20, func(_ int, chunk []byte, _ *store.Blob) error {
			got.Write(chunk)
			return nil
		})
		if err != nil || blob != want || got.String() != data {
			t.Errorf("%s: Write = %+v, %v, chunks %q; want %+v, %q", name, blob, err, got.String(), want, data)
		}
	}
}
