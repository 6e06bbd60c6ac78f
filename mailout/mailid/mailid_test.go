package mailid

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// key is a return path key of the tests.
var key = bytes.Repeat([]byte{0x5a}, KeySize)

func TestReturnPath(t *testing.T) {
	for _, tc := range []struct{ env, rcpt, want string }{
		{"K7Q2-abc_9", "r2", "parapheur+bounce-K7Q2-abc_9=r2."},
		{"K7Q2", "", "parapheur+bounce-K7Q2."},
	} {
		got, err := ReturnPath(key, "parapheur@org.example", tc.env, tc.rcpt)
		if err != nil || !strings.HasPrefix(got, tc.want) || !strings.HasSuffix(got, "@org.example") ||
			len(got) != len(tc.want)+13+len("@org.example") {
			t.Fatalf("ReturnPath(%q, %q) = %q, %v; want %q, a 13-character tag, @org.example", tc.env, tc.rcpt, got, err, tc.want)
		}
		env, rcpt, err := ParseReturnPath(key, "parapheur@org.example", got)
		if err != nil || env != tc.env || rcpt != tc.rcpt {
			t.Fatalf("ParseReturnPath(%q) = %q, %q, %v", got, env, rcpt, err)
		}
		// An MTA that folds case changes IDs with lower-case letters, which
		// come back as written, and so the tag no longer matches; the tag
		// alone may be folded.
		env, rcpt, err = ParseReturnPath(key, "parapheur@org.example", "<"+strings.ToUpper(got)+">")
		if folded := strings.ToUpper(tc.env+tc.rcpt) != tc.env+tc.rcpt; folded != errors.Is(err, ErrBadTag) || !folded && (env != tc.env || rcpt != tc.rcpt) {
			t.Fatalf("ParseReturnPath(upper %q) = %q, %q, %v; want ErrBadTag only when the IDs change", got, env, rcpt, err)
		}
		at := strings.LastIndexByte(got, '@')
		dot := strings.LastIndexByte(got[:at], '.')
		upperTag := "PARAPHEUR+BOUNCE-" + got[len("parapheur+bounce-"):dot] + strings.ToUpper(got[dot:at]) + "@ORG.EXAMPLE"
		if env, rcpt, err := ParseReturnPath(key, "parapheur@org.example", upperTag); err != nil || env != tc.env || rcpt != tc.rcpt {
			t.Fatalf("ParseReturnPath(%q) = %q, %q, %v", upperTag, env, rcpt, err)
		}
	}
}

// TestReturnPathTag checks that only the key's tag of the same IDs
// verifies: the tag binds the envelope and the recipient.
func TestReturnPathTag(t *testing.T) {
	good, err := ReturnPath(key, "parapheur@org.example", "E0123456789ABCDEFGHIJ", "r1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := ReturnPath(key, "parapheur@org.example", "E0123456789ABCDEFGHIJ", "r2")
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := ReturnPath(bytes.Repeat([]byte{1}, KeySize), "parapheur@org.example", "E0123456789ABCDEFGHIJ", "r1")
	if err != nil {
		t.Fatal(err)
	}
	tagOf := func(addr string) string {
		local := addr[:strings.LastIndexByte(addr, '@')]
		return local[strings.LastIndexByte(local, '.')+1:]
	}
	for name, addr := range map[string]string{
		"no tag":              "parapheur+bounce-E0123456789ABCDEFGHIJ=r1@org.example",
		"empty tag":           "parapheur+bounce-E0123456789ABCDEFGHIJ=r1.@org.example",
		"another recipient's": "parapheur+bounce-E0123456789ABCDEFGHIJ=r1." + tagOf(other) + "@org.example",
		"another key's":       otherKey,
		"one character off":   strings.Replace(good, "."+tagOf(good), "."+flip(tagOf(good)), 1),
		"truncated":           strings.Replace(good, "."+tagOf(good), "."+tagOf(good)[:12], 1),
	} {
		if addr == good {
			t.Fatalf("%s: the test made the good address", name)
		}
		if env, rcpt, err := ParseReturnPath(key, "parapheur@org.example", addr); !errors.Is(err, ErrBadTag) {
			t.Errorf("%s: ParseReturnPath(%q) = %q, %q, %v; want ErrBadTag", name, addr, env, rcpt, err)
		}
	}
	if _, _, err := ParseReturnPath(key[:KeySize-1], "parapheur@org.example", good); !errors.Is(err, ErrBadTag) {
		t.Errorf("a short key verified a tag: %v", err)
	}
	// The gateway's IDs fit the RFC 5321 limit with a 16-character local part.
	if _, err := ReturnPath(key, "p234567890123456@org.example", "E0123456789ABCDEFGHIJ", "r999"); err != nil {
		t.Errorf("16-character gateway local part: %v", err)
	}
}

// flip changes the first character of a tag.
func flip(tag string) string {
	if tag[0] == 'a' {
		return "b" + tag[1:]
	}
	return "a" + tag[1:]
}

func TestReturnPathErrors(t *testing.T) {
	for _, tc := range []struct {
		key                []byte
		gateway, env, rcpt string
		want               string
	}{
		{key, "parapheur@org.example", "a.b", "r1", "envelope ID"},
		{key, "parapheur@org.example", "", "r1", "empty envelope ID"},
		{key, "parapheur@org.example", "abc", "r-1", "recipient ID"},
		{key, "parapheur+x@org.example", "abc", "r1", "without '+'"},
		{key, "parapheur", "abc", "r1", "bare local@domain"},
		{key, "parapheur@org..example", "abc", "r1", "empty label"},
		{key, "parapheur@org.example", strings.Repeat("x", 33), "r1", "RFC 5321"},
		{nil, "parapheur@org.example", "abc", "r1", "at least 32"},
		{key[:16], "parapheur@org.example", "abc", "r1", "has 16 bytes"},
	} {
		_, err := ReturnPath(tc.key, tc.gateway, tc.env, tc.rcpt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReturnPath(%q, %q, %q) = %v; want an error with %q", tc.gateway, tc.env, tc.rcpt, err, tc.want)
		}
	}
	for _, addr := range []string{
		"parapheur@org.example",
		"parapheur+bounce-abc=r1.aaaaaaaaaaaaa@other.example",
		"parapheur+bounce-=r1.aaaaaaaaaaaaa@org.example",
		"parapheur+bounce-abc=.aaaaaaaaaaaaa@org.example",
		"parapheur+bounce-a.b.aaaaaaaaaaaaa@org.example",
		"other+bounce-abc.aaaaaaaaaaaaa@org.example",
		"no-at-sign",
	} {
		if env, rcpt, err := ParseReturnPath(key, "parapheur@org.example", addr); err == nil || errors.Is(err, ErrBadTag) {
			t.Errorf("ParseReturnPath(%q) = %q, %q, %v; want an error other than ErrBadTag", addr, env, rcpt, err)
		}
	}
}

func TestThreadRoot(t *testing.T) {
	got, err := ThreadRoot("org.example", "ENV-1", "r3")
	if err != nil || got != "thread.ENV-1.r3@org.example" {
		t.Fatalf("ThreadRoot = %q, %v", got, err)
	}
	env, rcpt, unique, err := ParseThread("org.example", "<"+got+">")
	if err != nil || env != "ENV-1" || rcpt != "r3" || unique != "" {
		t.Fatalf("ParseThread(%q) = %q, %q, %q, %v", got, env, rcpt, unique, err)
	}
	for _, id := range []string{"<abc@org.example>", "thread.a.b.c@org.example", "thread.abc@other.example", "thread.abc.@org.example", "thread.@org.example", "x"} {
		if env, rcpt, _, err := ParseThread("org.example", id); err == nil {
			t.Errorf("ParseThread(%q) = %q, %q; want an error", id, env, rcpt)
		}
	}
	if _, err := ThreadRoot("", "abc", "r1"); err == nil {
		t.Error("ThreadRoot with an empty domain: no error")
	}
}

func TestMailID(t *testing.T) {
	for _, tt := range []struct{ envelope, recipient, want string }{
		{"ENV-1", "r3", "mail.ENV-1.r3.q2xk7@org.example"},
		{"ENV-1", "", "mail.ENV-1.q2xk7@org.example"}, // to the sender
	} {
		got, err := MailID("org.example", tt.envelope, tt.recipient, "q2xk7")
		if err != nil || got != tt.want {
			t.Fatalf("MailID(%q, %q) = %q, %v; want %q", tt.envelope, tt.recipient, got, err, tt.want)
		}
		// As Outlook cites it, alone in In-Reply-To.
		env, rcpt, unique, err := ParseThread("ORG.example", "<"+got+">")
		if err != nil || env != tt.envelope || rcpt != tt.recipient || unique != "q2xk7" {
			t.Fatalf("ParseThread(%q) = %q, %q, %q, %v", got, env, rcpt, unique, err)
		}
	}
	for _, id := range []string{"mail.ENV@org.example", "mail.ENV.r1.@org.example", "mail.ENV..u1@org.example", "mail..u1@org.example",
		"mail.ENV.r1.u-1@org.example", "mail.ENV.r1.u1@other.example", "mail.a.b.c.d@org.example", "mails.ENV.u1@org.example"} {
		if env, rcpt, unique, err := ParseThread("org.example", id); err == nil {
			t.Errorf("ParseThread(%q) = %q, %q, %q; want an error", id, env, rcpt, unique)
		}
	}
	for _, bad := range [][3]string{{"ENV", "r1", ""}, {"ENV", "r1", "a.b"}, {"ENV", "r.1", "u1"}, {"", "r1", "u1"}} {
		if id, err := MailID("org.example", bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("MailID(%q, %q, %q) = %q; want an error", bad[0], bad[1], bad[2], id)
		}
	}
}
