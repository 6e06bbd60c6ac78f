package mailid

import (
	"strings"
	"testing"
)

func TestReturnPath(t *testing.T) {
	for _, tc := range []struct{ env, rcpt, want string }{
		{"K7Q2-abc_9", "r2", "parapheur+bounce-K7Q2-abc_9=r2@org.example"},
		{"K7Q2", "", "parapheur+bounce-K7Q2@org.example"},
	} {
		got, err := ReturnPath("parapheur@org.example", tc.env, tc.rcpt)
		if err != nil || got != tc.want {
			t.Fatalf("ReturnPath(%q, %q) = %q, %v; want %q", tc.env, tc.rcpt, got, err, tc.want)
		}
		env, rcpt, err := ParseReturnPath("parapheur@org.example", "<"+strings.ToUpper(got)+">")
		if err == nil {
			// Upper-casing changes the IDs, which must come back as written.
			if env != strings.ToUpper(tc.env) || rcpt != strings.ToUpper(tc.rcpt) {
				t.Fatalf("ParseReturnPath(upper %q) = %q, %q", got, env, rcpt)
			}
		} else {
			t.Fatalf("ParseReturnPath(upper %q): %v", got, err)
		}
		env, rcpt, err = ParseReturnPath("parapheur@org.example", got)
		if err != nil || env != tc.env || rcpt != tc.rcpt {
			t.Fatalf("ParseReturnPath(%q) = %q, %q, %v", got, env, rcpt, err)
		}
	}
}

func TestReturnPathErrors(t *testing.T) {
	for _, tc := range []struct{ gateway, env, rcpt, want string }{
		{"parapheur@org.example", "a.b", "r1", "envelope ID"},
		{"parapheur@org.example", "", "r1", "empty envelope ID"},
		{"parapheur@org.example", "abc", "r-1", "recipient ID"},
		{"parapheur+x@org.example", "abc", "r1", "without '+'"},
		{"parapheur", "abc", "r1", "bare local@domain"},
		{"parapheur@org..example", "abc", "r1", "empty label"},
		{"parapheur@org.example", strings.Repeat("x", 60), "r1", "RFC 5321"},
	} {
		_, err := ReturnPath(tc.gateway, tc.env, tc.rcpt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReturnPath(%q, %q, %q) = %v; want an error with %q", tc.gateway, tc.env, tc.rcpt, err, tc.want)
		}
	}
	for _, addr := range []string{
		"parapheur@org.example",
		"parapheur+bounce-abc=r1@other.example",
		"parapheur+bounce-=r1@org.example",
		"parapheur+bounce-abc=@org.example",
		"parapheur+bounce-a.b@org.example",
		"other+bounce-abc@org.example",
		"no-at-sign",
	} {
		if env, rcpt, err := ParseReturnPath("parapheur@org.example", addr); err == nil {
			t.Errorf("ParseReturnPath(%q) = %q, %q; want an error", addr, env, rcpt)
		}
	}
}

func TestThreadRoot(t *testing.T) {
	got, err := ThreadRoot("org.example", "ENV-1", "r3")
	if err != nil || got != "thread.ENV-1.r3@org.example" {
		t.Fatalf("ThreadRoot = %q, %v", got, err)
	}
	env, rcpt, err := ParseThreadRoot("org.example", "<"+got+">")
	if err != nil || env != "ENV-1" || rcpt != "r3" {
		t.Fatalf("ParseThreadRoot(%q) = %q, %q, %v", got, env, rcpt, err)
	}
	for _, id := range []string{"<abc@org.example>", "thread.a.b.c@org.example", "thread.abc@other.example", "thread.abc.@org.example", "thread.@org.example", "x"} {
		if env, rcpt, err := ParseThreadRoot("org.example", id); err == nil {
			t.Errorf("ParseThreadRoot(%q) = %q, %q; want an error", id, env, rcpt)
		}
	}
	if _, err := ThreadRoot("", "abc", "r1"); err == nil {
		t.Error("ThreadRoot with an empty domain: no error")
	}
}
