package policy

import (
	"strings"
	"testing"

	"github.com/parapheur/parapheur/workflow/problem"
)

func TestCheck(t *testing.T) {
	const trusted = "mx.org.example"
	strict, err := NewPolicy([]string{"agent@org.example", " @Partner.Example ", "@org.example"}, true, trusted)
	if err != nil {
		t.Fatal(err)
	}
	lax, err := NewPolicy([]string{"@org.example"}, false, "")
	if err != nil {
		t.Fatal(err)
	}
	reported, err := NewPolicy([]string{"@org.example"}, false, trusted)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		policy      *Policy
		from        string
		authResults []string
		want        Decision
	}{{
		name:   "dmarc pass from the trusted server",
		policy: strict, from: "Agent@Org.Example",
		authResults: []string{"mx.org.example;\r\n\tdkim=pass (2048-bit key; unprotected) header.d=org.example header.i=@org.example header.b=\"QmV4\";\r\n\tdmarc=pass (p=quarantine dis=none) header.from=org.example"},
		want:        Decision{Allowed: true, Authenticated: true, Believed: true, Summary: "sender agent@org.example allowed by agent@org.example; dmarc=pass header.from=org.example (authserv-id mx.org.example)"},
	}, {
		name:   "dmarc pass alone",
		policy: strict, from: "someone@org.example",
		authResults: []string{"mx.org.example; spf=pass smtp.mailfrom=org.example; dmarc=pass header.from=org.example"},
		want:        Decision{Allowed: true, Authenticated: true, Believed: true, Summary: "sender someone@org.example allowed by @org.example; dmarc=pass header.from=org.example (authserv-id mx.org.example)"},
	}, {
		name:   "dkim of a subdomain is aligned (relaxed)",
		policy: strict, from: "marie@partner.example",
		authResults: []string{"mx.org.example 1; dkim=pass header.d=mail.partner.example"},
		want:        Decision{Allowed: true, Authenticated: true, Believed: true, Summary: "sender marie@partner.example allowed by @partner.example; dkim=pass header.d=mail.partner.example aligned with partner.example (authserv-id mx.org.example)"},
	}, {
		name:   "dkim of a third party is not aligned",
		policy: strict, from: "marie@partner.example",
		authResults: []string{"mx.org.example; dkim=pass header.d=mailchimp.example; dmarc=fail header.from=partner.example"},
		want: Decision{DMARCFailed: true,
			Summary: "sender marie@partner.example refused: dkim=pass header.d=mailchimp.example not aligned with partner.example, dmarc=fail header.from=partner.example (authserv-id mx.org.example)",
			Reason:  problem.Text{EN: "the mail from marie@partner.example could not be authenticated (dkim=pass header.d=mailchimp.example not aligned with partner.example, dmarc=fail header.from=partner.example (authserv-id mx.org.example)): it may be forged"},
		},
	}, {
		// The receiving server adds its field on top; a forged one with
		// its id below it, which the server did not remove, is not read.
		name:   "a pass below the trusted server's topmost field is ignored",
		policy: strict, from: "agent@org.example",
		authResults: []string{"mx.org.example; spf=fail smtp.mailfrom=org.example; dmarc=fail header.from=org.example",
			"mx.org.example; dkim=pass header.d=org.example; dmarc=pass header.from=org.example"},
		want: Decision{DMARCFailed: true,
			Summary: "sender agent@org.example refused: dmarc=fail header.from=org.example (authserv-id mx.org.example)",
			Reason:  problem.Text{EN: "the mail from agent@org.example could not be authenticated (dmarc=fail header.from=org.example (authserv-id mx.org.example)): it may be forged"},
		},
	}, {
		name:   "a pass below the trusted server's topmost field without DMARC is ignored",
		policy: strict, from: "agent@org.example",
		authResults: []string{"mx.org.example; spf=none smtp.mailfrom=org.example", "mx.org.example; dmarc=pass header.from=org.example"},
		want: Decision{
			Summary: "sender agent@org.example refused: no DMARC or DKIM result (authserv-id mx.org.example)",
			Reason:  problem.Text{EN: "the mail from agent@org.example could not be authenticated (no DMARC or DKIM result (authserv-id mx.org.example)): it may be forged"},
		},
	}, {
		name:   "a pass from another authserv-id is ignored",
		policy: strict, from: "agent@org.example",
		authResults: []string{"evil.example; dmarc=pass header.from=org.example", "mx.org.example; dmarc=fail header.from=org.example"},
		want: Decision{DMARCFailed: true,
			Summary: "sender agent@org.example refused: dmarc=fail header.from=org.example (authserv-id mx.org.example)",
			Reason:  problem.Text{EN: "the mail from agent@org.example could not be authenticated (dmarc=fail header.from=org.example (authserv-id mx.org.example)): it may be forged"},
		},
	}, {
		name:   "dmarc pass for another domain does not count",
		policy: strict, from: "agent@org.example",
		authResults: []string{"mx.org.example; dmarc=pass header.from=evil.example"},
		want: Decision{
			Summary: "sender agent@org.example refused: dmarc=pass header.from=evil.example (authserv-id mx.org.example)",
			Reason:  problem.Text{EN: "the mail from agent@org.example could not be authenticated (dmarc=pass header.from=evil.example (authserv-id mx.org.example)): it may be forged"},
		},
	}, {
		name:   "no results at all",
		policy: strict, from: "agent@org.example",
		want: Decision{
			Summary: "sender agent@org.example refused: no DMARC or DKIM result (authserv-id mx.org.example)",
			Reason:  problem.Text{EN: "the mail from agent@org.example could not be authenticated (no DMARC or DKIM result (authserv-id mx.org.example)): it may be forged"},
		},
	}, {
		name:   "not listed",
		policy: strict, from: "agent@org.example.evil.example",
		authResults: []string{"mx.org.example; dmarc=pass header.from=org.example.evil.example"},
		want: Decision{Authenticated: true, Believed: true,
			Summary: "sender agent@org.example.evil.example refused: not in senders.allowed",
			Reason:  problem.Text{EN: "agent@org.example.evil.example may not submit documents to this gateway"},
		},
	}, {
		name:   "subdomain of an allowed domain is not allowed",
		policy: lax, from: "x@sub.org.example",
		want: Decision{Believed: true, Summary: "sender x@sub.org.example refused: not in senders.allowed", Reason: problem.Text{EN: "x@sub.org.example may not submit documents to this gateway"}},
	}, {
		name:   "authentication not required",
		policy: lax, from: "x@org.example",
		authResults: []string{"mx.org.example; dmarc=fail header.from=org.example"},
		want:        Decision{Allowed: true, Believed: true, Summary: "sender x@org.example allowed by @org.example; authentication not checked"},
	}, {
		name:   "authentication reported but not required",
		policy: reported, from: "x@org.example",
		authResults: []string{"mx.org.example; dmarc=fail header.from=org.example"},
		want:        Decision{Allowed: true, DMARCFailed: true, Summary: "sender x@org.example allowed by @org.example; dmarc=fail header.from=org.example (authserv-id mx.org.example)"},
	}, {
		name:   "not listed, and DMARC says forged",
		policy: strict, from: "ceo@bank.example",
		authResults: []string{"mx.org.example; spf=fail smtp.mailfrom=bank.example; dmarc=fail (p=reject) header.from=bank.example"},
		want: Decision{DMARCFailed: true,
			Summary: "sender ceo@bank.example refused: not in senders.allowed",
			Reason:  problem.Text{EN: "ceo@bank.example may not submit documents to this gateway"},
		},
	}, {
		name:   "dmarc fail of another domain is not this sender's",
		policy: strict, from: "ceo@bank.example",
		authResults: []string{"mx.org.example; dmarc=fail header.from=other.example"},
		want: Decision{
			Summary: "sender ceo@bank.example refused: not in senders.allowed",
			Reason:  problem.Text{EN: "ceo@bank.example may not submit documents to this gateway"},
		},
	}, {
		name:   "not an address",
		policy: lax, from: "nobody",
		want: Decision{Summary: "sender nobody refused", Reason: problem.Text{EN: `the sender address "nobody" has no domain`}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.Check(tt.from, tt.authResults)
			if (got.Reason.EN == "") != (got.Reason.FR == "") {
				t.Errorf("reason %+v is not in both languages", got.Reason)
			}
			got.Reason.FR = "" // the French of each reason is checked in TestReasonInFrench
			if got != tt.want {
				t.Errorf("Check:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestReasonInFrench(t *testing.T) {
	p, err := NewPolicy([]string{"@org.example"}, true, "mx.org.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ from, auth, want string }{
		{"x@elsewhere.example", "", "l'adresse x@elsewhere.example n'est pas autorisée à soumettre des documents à ce parapheur"},
		{"nobody", "", "l'adresse d'expéditeur « nobody » n'a pas de domaine"},
		{"a@org.example", "mx.org.example; dmarc=fail header.from=org.example",
			"le message de a@org.example n'a pas pu être authentifié (dmarc=fail header.from=org.example (authserv-id mx.org.example)) : il est peut-être falsifié"},
	} {
		if got := p.Check(tt.from, []string{tt.auth}).Reason.In("fr"); got != tt.want {
			t.Errorf("Check(%q).Reason.In(fr) = %q, want %q", tt.from, got, tt.want)
		}
	}
}

func TestNewPolicyErrors(t *testing.T) {
	for _, tt := range []struct {
		allowed []string
		require bool
		id      string
		want    string
	}{
		{[]string{"org.example"}, false, "", `"org.example" is neither an address`},
		{[]string{"a@"}, false, "", `"a@" is neither an address`},
		{[]string{"a b@c.example"}, false, "", `"a b@c.example" is neither an address`},
		{[]string{"@org.example"}, true, " ", "senders.authserv_id is empty"},
	} {
		_, err := NewPolicy(tt.allowed, tt.require, tt.id)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewPolicy(%q, %v, %q) = %v, want an error with %q", tt.allowed, tt.require, tt.id, err, tt.want)
		}
	}
}

func TestAligned(t *testing.T) {
	for _, tt := range []struct {
		d, from string
		want    bool
	}{
		{"org.example", "org.example", true},
		{"ORG.example.", "org.example", true},
		{"mail.org.example", "org.example", true},
		{"org.example", "dept.org.example", true},
		{"a.gouv.fr", "b.gouv.fr", false},
		{"example.co.uk", "other.co.uk", false},
		{"mail.example.co.uk", "example.co.uk", true},
		{"co.uk", "example.co.uk", false},
		{"", "org.example", false},
	} {
		if got := Aligned(tt.d, tt.from); got != tt.want {
			t.Errorf("Aligned(%q, %q) = %v, want %v", tt.d, tt.from, got, tt.want)
		}
	}
}

func TestStripComments(t *testing.T) {
	in := `mx.org.example (v1; x); dkim=pass (2048-bit key; nested (c) \)) header.d=a.example reason="a (b) c"`
	want := `mx.org.example  ; dkim=pass   header.d=a.example reason="a (b) c"`
	if got := stripComments(in); got != want {
		t.Errorf("stripComments = %q, want %q", got, want)
	}
}
