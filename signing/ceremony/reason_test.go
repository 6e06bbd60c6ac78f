package ceremony

import (
	"testing"

	"github.com/parapheur/parapheur/workflow"
)

// TestEnvelopeOfReason reads back the envelope of the /Reason the
// ceremony writes, and of the certificate's seal, in each language, and
// nothing from other texts.
func TestEnvelopeOfReason(t *testing.T) {
	for _, lang := range []string{"fr", "en"} {
		env := &workflow.Envelope{ID: "EX53GKC5GOGISIIRLVK45", Language: lang}
		for _, r := range []string{reason(env), CertificateReason(env)} {
			if id, ok := EnvelopeOfReason(r); !ok || id != env.ID {
				t.Errorf("%s: EnvelopeOfReason(%q) = %q, %v", lang, r, id, ok)
			}
		}
	}
	for _, r := range []string{"", "Scellement", "Electronic signature, envelope ", "Electronic signature, envelope A B",
		"Signature électronique, demande A,B", "Envelope EX53GKC5GOGISIIRLVK45"} {
		if id, ok := EnvelopeOfReason(r); ok {
			t.Errorf("EnvelopeOfReason(%q) = %q, true", r, id)
		}
	}
}
