package policy

import (
	"strings"
	"testing"
)

// FuzzCheck feeds arbitrary From addresses and Authentication-Results
// values (RFC 8601) to the policy: it must never panic, must explain every
// decision, and must never allow a sender outside the allow-list.
func FuzzCheck(f *testing.F) {
	f.Add("agent@org.example", "mx.org.example; dmarc=pass (p=quarantine) header.from=org.example")
	f.Add("agent@org.example", "mx.org.example;\r\n\tdkim=pass (2048-bit key; unprotected) header.d=org.example header.i=@org.example")
	f.Add("Agent <agent@sub.org.example>", "mx.org.example; dkim=pass header.d=org.example; dmarc=fail")
	f.Add("x@evil.example", "evil.example; dmarc=pass header.from=org.example")
	f.Add("a@org.example", "mx.org.example; (comment ( nested ) ; ) dmarc=pass")
	f.Add("", ";;;")
	p, err := NewPolicy([]string{"agent@org.example", "@org.example"}, true, "mx.org.example")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, from, results string) {
		d := p.Check(from, []string{results})
		if d.Allowed && d.Summary == "" || !d.Allowed && (d.Reason.EN == "" || d.Reason.FR == "") {
			t.Fatalf("unexplained decision %+v", d)
		}
		addr := strings.ToLower(from)
		if d.Allowed && !strings.HasSuffix(addr, "@org.example") && !strings.HasSuffix(addr, "@org.example>") {
			t.Fatalf("allowed %q outside the allow-list", from)
		}
	})
}
