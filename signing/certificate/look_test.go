package certificate

import (
	"os"
	"testing"
)

func TestLookDump(t *testing.T) {
	for _, l := range []string{"fr", "en"} {
		pdf, err := Build(input(t, completedEnvelope(t, l)))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile("/tmp/certlook/"+l+".pdf", pdf, 0o644)
	}
}
