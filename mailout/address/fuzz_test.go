package address

import (
	"net/mail"
	"strings"
	"testing"
)

func FuzzSMTP(f *testing.F) {
	for _, s := range []string{"Jean.Dupont@Example.COM", "a@b@example.com", "jean dupont@example.com", `a"b\c@example.com`,
		"marie@Bücher.Example", "zoé@example.com", "x@[192.0.2.1]", "x@[IPv6:2001:db8::1]", "x@exa mple.com", ".a@example.com", "x@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		path, err := SMTP(addr)
		if err != nil {
			return
		}
		for i := 0; i < len(path); i++ {
			if c := path[i]; c < 0x20 || c >= 0x7f {
				t.Fatalf("SMTP(%q) = %q: byte %#x is not printable ASCII", addr, path, c)
			}
		}
		if len(path) > maxPath {
			t.Fatalf("SMTP(%q) is %d bytes long", addr, len(path))
		}
		ascii, err := ASCII(addr)
		if err != nil {
			t.Fatalf("ASCII(%q) fails where SMTP succeeds: %v", addr, err)
		}
		// What is sent names the mailbox that was written: read back as
		// an address, the path gives the same local part and domain.
		if !strings.HasPrefix(path, "[") {
			back, err := mail.ParseAddress("<" + path + ">")
			if err == nil && back.Address != ascii {
				t.Fatalf("SMTP(%q) = %q reads back as %q, want %q", addr, path, back.Address, ascii)
			}
		}
		if again, err := SMTP(ascii); err != nil || again != path {
			t.Fatalf("SMTP(ASCII(%q)) = %q, %v; want %q", addr, again, err, path)
		}
	})
}
