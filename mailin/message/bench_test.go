package message

import (
	"bytes"
	"encoding/base64"
	"os"
	"strings"
	"testing"
)

// BenchmarkParse measures the Outlook FR forward of the corpus and the
// same shape of mail carrying a 100 KB PDF (the ingestion benchmark's size),
// read as ingestion reads a fetched mail: ReadHeader, then ReadBody.
func BenchmarkParse(b *testing.B) {
	outlook, err := os.ReadFile("../testdata/outlook-fr-forward.eml")
	if err != nil {
		b.Fatal(err)
	}
	pdf := append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16)...)
	enc := base64.StdEncoding.EncodeToString(pdf)
	var lines []string
	for len(enc) > 76 {
		lines, enc = append(lines, enc[:76]), enc[76:]
	}
	lines = append(lines, enc)
	large := []byte(strings.ReplaceAll("From: a@org.example\nSubject: TR: Convention\nContent-Type: multipart/mixed; boundary=b\n\n"+
		"--b\nContent-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: quoted-printable\n\nSignataire : m@x.example\n"+
		"--b\nContent-Type: application/pdf; name=c.pdf\nContent-Transfer-Encoding: base64\n\n"+strings.Join(lines, "\n")+"\n--b--\n", "\n", "\r\n"))
	for _, bench := range []struct {
		name string
		raw  []byte
	}{{"outlook", outlook}, {"pdf-100KB", large}} {
		b.Run(bench.name, func(b *testing.B) {
			b.SetBytes(int64(len(bench.raw)))
			for b.Loop() {
				m, err := ReadHeader(bench.raw, 1<<24)
				if err != nil {
					b.Fatal(err)
				}
				if err := m.ReadBody(AllParts); err != nil || len(m.Documents) != 1 {
					b.Fatalf("ReadBody: %v, %d documents", err, len(m.Documents))
				}
			}
		})
	}
}
