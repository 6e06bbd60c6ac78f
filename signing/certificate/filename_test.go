package certificate

import (
	"strings"
	"testing"
)

// TestFileName: the certificate's file name is in the envelope's language,
// and a language the certificate is not written in is refused.
func TestFileName(t *testing.T) {
	for lang, want := range map[string]string{"fr": "certificat-E1.pdf", "en": "certificate-E1.pdf"} {
		if got, err := FileName("E1", lang); err != nil || got != want {
			t.Errorf("FileName(E1, %s) = %q, %v; want %q", lang, got, err, want)
		}
	}
	if _, err := FileName("E1", "de"); err == nil || !strings.Contains(err.Error(), `"de"`) {
		t.Errorf("FileName in German: %v", err)
	}
}
