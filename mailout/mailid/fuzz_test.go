package mailid

import "testing"

// FuzzParseReturnPath checks that parsing never panics and that whatever
// parses round-trips through ReturnPath.
func FuzzParseReturnPath(f *testing.F) {
	for _, s := range []string{
		"parapheur+bounce-ENV=r1@org.example", "<parapheur+bounce-ENV@org.example>",
		"PARAPHEUR+BOUNCE-x_y-z=r_2@ORG.EXAMPLE", "parapheur+bounce-=@org.example",
		"parapheur+bounce-a=b=c@org.example", "@", "", "parapheur+bounce-\xff@org.example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		env, rcpt, err := ParseReturnPath("parapheur@org.example", addr)
		if err != nil {
			return
		}
		// ReturnPath refuses only local parts over the RFC 5321 limit.
		local := len("parapheur+bounce-") + len(env)
		if rcpt != "" {
			local += 1 + len(rcpt)
		}
		again, err := ReturnPath("parapheur@org.example", env, rcpt)
		if err != nil && local <= maxLocalPart {
			t.Fatalf("%q parsed as %q, %q, which ReturnPath refuses: %v", addr, env, rcpt, err)
		}
		if err == nil {
			if e2, r2, err := ParseReturnPath("parapheur@org.example", again); err != nil || e2 != env || r2 != rcpt {
				t.Fatalf("%q: round trip gave %q, %q, %v", again, e2, r2, err)
			}
		}
	})
}

// FuzzParseThreadRoot checks that parsing never panics and round-trips.
func FuzzParseThreadRoot(f *testing.F) {
	for _, s := range []string{
		"<thread.ENV.r1@org.example>", "thread.ENV@org.example", "thread..@org.example",
		"thread.a.b.c@org.example", "<>", "", "thread.\x00@org.example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		env, rcpt, err := ParseThreadRoot("org.example", id)
		if err != nil {
			return
		}
		again, err := ThreadRoot("org.example", env, rcpt)
		if err != nil {
			t.Fatalf("%q parsed as %q, %q, which ThreadRoot refuses: %v", id, env, rcpt, err)
		}
		if e2, r2, err := ParseThreadRoot("org.example", again); err != nil || e2 != env || r2 != rcpt {
			t.Fatalf("%q: round trip gave %q, %q, %v", again, e2, r2, err)
		}
	})
}
