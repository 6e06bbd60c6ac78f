package certificate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/internal/pdftest"

	"github.com/parapheur/parapheur/workflow"
)

// TestSealedEvents: the certificate a completion makes once it sealed the
// documents names each seal of the trail by the document's number and
// name (as the documents section does), gives the sealed versions as the
// final ones, and says the envelope is completed; while a document is
// not sealed, it says the completion is under way.
func TestSealedEvents(t *testing.T) {
	const (
		contractSealed = "5555555555555555555555555555555555555555555555555555555555555555"
		annexSealed    = "6666666666666666666666666666666666666666666666666666666666666666"
	)
	for _, language := range []string{"fr", "en"} {
		t.Run(language, func(t *testing.T) {
			w := vocabulary[language]
			s := completedEnvelope(t, language)
			seal := func(i int, previous, sealed string) {
				s.apply(workflow.Sealed{Meta: s.next(time.Second, workflow.Client{}), Level: "B-LTA", Serial: "5ea1",
					Document: workflow.DocumentVersion{Index: i, Previous: previous, SHA256: sealed, Size: 500000}})
			}
			seal(0, contractFinal, contractSealed)
			path, _ := build(t, input(t, s))
			if got := text(t, path); !strings.Contains(got, w.state+" "+w.completing) {
				t.Errorf("with a document left to seal, the certificate does not say %q", w.state+" "+w.completing)
			}
			seal(1, annexFinal, annexSealed)
			in := input(t, s)
			path, _ = build(t, in)
			got := text(t, path)
			// PARAPHEUR_SHOTS=DIR saves the pages as images, to be looked at.
			if shots := os.Getenv("PARAPHEUR_SHOTS"); shots != "" {
				pdftest.Run(t, "pdftoppm", "-png", "-r", "80", path, filepath.Join(shots, "certificate-"+language))
			}
			label := func(key, value string) string { return w.details[key] + w.colon + value }
			for _, want := range []string{
				// The seal events, in the certificate's words, hashes cut
				// as the hash column cuts them.
				label("document", "1. Contrat-cadre"), label("document", "2. Annexe A"), label("level", "B-LTA"), label("serial", "5ea1"),
				label("previous", contractFinal[:12]+"…"), label("sha256", annexSealed[:12]+"…"),
				// Each document's seal, in the documents section.
				w.sealRow + " " + fmt.Sprintf(w.sealValue, "B-LTA", ""), w.sealSerial + " 5ea1",
				fmt.Sprintf(w.sealedNote, in.Organisation),
				contractSealed, annexSealed, w.state + " " + w.envelopeStates[workflow.StateCompleted],
				strings.Fields(w.events["sealed"])[0]} {
				if !strings.Contains(got, strings.TrimSpace(want)) {
					t.Errorf("the certificate does not say %q", want)
				}
			}
			for _, wrong := range []string{"document: 0", "level:", "cert_serial", w.completing} {
				if strings.Contains(got, wrong) {
					t.Errorf("the certificate says %q", wrong)
				}
			}
			if t.Failed() {
				t.Logf("text:\n%s", got)
			}
		})
	}
}
