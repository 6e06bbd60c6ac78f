package mailid

import (
	"strings"
	"testing"
)

// FuzzParseReturnPath checks that parsing never panics and that whatever
// parses, its tag verified, round-trips through ReturnPath to the same
// address but for case.
func FuzzParseReturnPath(f *testing.F) {
	for _, s := range []string{
		"parapheur+bounce-ENV=r1@org.example", "<parapheur+bounce-ENV.aaaaaaaaaaaaa@org.example>",
		"PARAPHEUR+BOUNCE-x_y-z=r_2.@ORG.EXAMPLE", "parapheur+bounce-=@org.example",
		"parapheur+bounce-a=b=c@org.example", "@", "", "parapheur+bounce-\xff@org.example",
	} {
		f.Add(s)
	}
	for _, ids := range [][2]string{{"ENV", "r1"}, {"E0123456789ABCDEFGHIJ", "r12"}, {"x_y-z", ""}} {
		addr, err := ReturnPath(key, "parapheur@org.example", ids[0], ids[1])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(addr)
		f.Add("<" + strings.ToUpper(addr) + ">")
	}
	f.Fuzz(func(t *testing.T, addr string) {
		env, rcpt, err := ParseReturnPath(key, "parapheur@org.example", addr)
		if err != nil {
			return
		}
		again, err := ReturnPath(key, "parapheur@org.example", env, rcpt)
		if err != nil {
			t.Fatalf("%q parsed as %q, %q, which ReturnPath refuses: %v", addr, env, rcpt, err)
		}
		if bare := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(addr), "<"), ">"); !strings.EqualFold(again, bare) {
			t.Fatalf("%q parsed as %q, %q, which ReturnPath writes %q", addr, env, rcpt, again)
		}
		if e2, r2, err := ParseReturnPath(key, "parapheur@org.example", again); err != nil || e2 != env || r2 != rcpt {
			t.Fatalf("%q: round trip gave %q, %q, %v", again, e2, r2, err)
		}
	})
}

// FuzzParseThread checks that parsing never panics and that whatever
// parses round-trips through ThreadRoot or MailID.
func FuzzParseThread(f *testing.F) {
	for _, s := range []string{
		"<thread.ENV.r1@org.example>", "thread.ENV@org.example", "thread..@org.example",
		"thread.a.b.c@org.example", "<>", "", "thread.\x00@org.example",
		"<mail.ENV.r1.abc234@org.example>", "mail.ENV.abc234@ORG.EXAMPLE", "mail.ENV..x@org.example", "mail.a.b.c.d@org.example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		env, rcpt, unique, err := ParseThread("org.example", id)
		if err != nil {
			return
		}
		var again string
		if unique == "" {
			again, err = ThreadRoot("org.example", env, rcpt)
		} else {
			again, err = MailID("org.example", env, rcpt, unique)
		}
		if err != nil {
			t.Fatalf("%q parsed as %q, %q, %q, which cannot be written again: %v", id, env, rcpt, unique, err)
		}
		if e2, r2, u2, err := ParseThread("org.example", again); err != nil || e2 != env || r2 != rcpt || u2 != unique {
			t.Fatalf("%q: round trip gave %q, %q, %q, %v", again, e2, r2, u2, err)
		}
	})
}
