package address

import (
	"errors"
	"strings"
	"testing"
)

func TestSMTP(t *testing.T) {
	for _, tt := range []struct{ in, want, ascii string }{
		{"Jean.Dupont@Example.COM", "Jean.Dupont@example.com", "Jean.Dupont@example.com"},
		// net/mail unquotes "a@b"@example.com: SMTP must quote it again.
		{"a@b@example.com", `"a@b"@example.com`, "a@b@example.com"},
		{"jean dupont@example.com", `"jean dupont"@example.com`, "jean dupont@example.com"},
		{`a"b\c@example.com`, `"a\"b\\c"@example.com`, `a"b\c@example.com`},
		{".a@example.com", `".a"@example.com`, ".a@example.com"},
		{"a..b@example.com", `"a..b"@example.com`, "a..b@example.com"},
		{"o'brien+tag@example.com", "o'brien+tag@example.com", "o'brien+tag@example.com"},
		// IDN domains go as A-labels (RFC 5890), lower-case.
		{"marie@Bücher.Example", "marie@xn--bcher-kva.example", "marie@xn--bcher-kva.example"},
		{"marie@société.fr", "marie@xn--socit-esab.fr", "marie@xn--socit-esab.fr"},
		{"x@xn--bcher-kva.example", "x@xn--bcher-kva.example", "x@xn--bcher-kva.example"},
		{"x@example.com.", "x@example.com", "x@example.com"},
		{"x@[192.0.2.1]", "x@[192.0.2.1]", "x@[192.0.2.1]"},
		{"x@[IPv6:2001:db8::1]", "x@[IPv6:2001:db8::1]", "x@[IPv6:2001:db8::1]"},
	} {
		got, err := SMTP(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("SMTP(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		got, err = ASCII(tt.in)
		if err != nil || got != tt.ascii {
			t.Errorf("ASCII(%q) = %q, %v; want %q", tt.in, got, err, tt.ascii)
		}
	}
}

func TestSMTPRefuses(t *testing.T) {
	for _, tt := range []struct {
		in   string
		kind error
		why  string
	}{
		{"zoé@example.com", ErrNotASCII, `address "zoé@example.com": the part before the @ is not ASCII, and the gateway's mail does not use SMTPUTF8`},
		{"a\tb@example.com", ErrSyntax, "it is not of the form name@domain"},
		{"nobody", ErrSyntax, `address "nobody": it is not of the form name@domain`},
		{"@example.com", ErrSyntax, "it is not of the form name@domain"},
		{"x@", ErrDomain, `its domain is not a valid domain name ("")`},
		{"x@exa mple.com", ErrDomain, `its domain is not a valid domain name ("exa mple.com")`},
		{"x@-bad-.example", ErrDomain, "not a valid domain name"},
		{"x@\x8a.example", ErrDomain, "not a valid domain name"},
		{"x@a..example", ErrDomain, "not a valid domain name"},
		{"x@" + strings.Repeat("a", 64) + ".example", ErrDomain, "not a valid domain name"},
		{"x@[2001:db8::1]", ErrDomain, "is not an address literal"},
		{"x@[300.1.1.1]", ErrDomain, "is not an address literal"},
		{strings.Repeat("a", 65) + "@example.com", ErrTooLong, "longer than SMTP allows"},
		{"x@" + strings.Repeat("a.", 130) + "example", ErrTooLong, "longer than SMTP allows"},
	} {
		got, err := SMTP(tt.in)
		if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("SMTP(%q) = %q, %v; want %v saying %q", tt.in, got, err, tt.kind, tt.why)
		}
		if _, aerr := ASCII(tt.in); aerr == nil {
			t.Errorf("ASCII(%q) accepted what SMTP refuses", tt.in)
		}
	}
}

func TestSameMailbox(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"parapheur@org.example", "PARAPHEUR@org.EXAMPLE", true},
		{"parapheur+x@org.example", "parapheur@org.example", true},
		{"parapheur@org.example", "parapheur@org.example.evil", false},
		{"parapheurs@org.example", "parapheur@org.example", false},
		{"A+x@D.example", "a+y@d.example", true},
		// A quoted local part (net/mail unquotes it) keeps its own "@".
		{"a@b+x@d.example", "a@b@d.example", true},
		{"a@b@d.example", "a@d.example", false},
	} {
		if got := SameMailbox(tt.a, tt.b); got != tt.want {
			t.Errorf("SameMailbox(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func TestDeliverable(t *testing.T) {
	const gateway = "parapheur@org.example"
	for _, tt := range []struct {
		addr string
		want error
	}{
		{"marie@partner.example", nil},
		{"PARAPHEUR@org.example", ErrGateway},
		{"parapheur+verifier@org.example", ErrGateway},
		{"parapheur@org.example.evil", nil},
		{"marie", ErrSyntax},
		{"josé@partner.example", ErrNotASCII},
	} {
		if err := Deliverable(tt.addr, gateway); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("Deliverable(%q) = %v, want %v", tt.addr, err, tt.want)
		}
	}
}
