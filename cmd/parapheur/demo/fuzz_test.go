package demo

import (
	"testing"
	"time"
)

// FuzzReadMessage reads any bytes as a kept mail: an error or a message,
// never a panic, and a message's attachments all named.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("From: a@demo.example\r\nSubject: hello\r\n\r\nbody\r\n"))
	f.Add([]byte("From: =?utf-8?q?Cl=C3=A9?= <a@demo.example>\r\nTo: b@x, c@y\r\nDate: Sun, 6 Dec 2026 10:00:00 +0100\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n<p>\xe9</p>\r\n" +
		"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: multipart/alternative; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x"))
	if sub, err := SampleSubmission(gateway, "fr"); err == nil {
		if raw, err := sub.Mail(time.Unix(0, 0)); err == nil {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := readMessage("1", raw)
		if err != nil {
			return
		}
		for _, a := range m.Attachments {
			if a.Name == "" {
				t.Fatalf("an attachment without name: %+v", a)
			}
		}
	})
}
