// Package policy decides whether the author of a submission may submit
// (SPEC §2): an allow-list of addresses and domains, and optionally proof
// that the receiving mail server authenticated the From domain, read from
// its Authentication-Results header fields (RFC 8601) with DMARC (RFC 7489)
// or DKIM (RFC 6376) aligned with the From domain.
//
// Anyone can write an Authentication-Results field into a mail, so only
// the fields carrying the configured authserv-id of the receiving server
// count; that server must remove fields with its own id from incoming mail
// (RFC 8601 §5), as Postfix with OpenDKIM/OpenDMARC and Exchange do. Where
// it does not, a forged field with its id sits below the one it added on
// top (trace fields are prepended, RFC 5321 §4.4): only the topmost field
// with the trusted id is read.
package policy

import (
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/authres"
	"golang.org/x/net/publicsuffix"

	"github.com/parapheur/parapheur/workflow/problem"
)

// Policy is who may submit.
type Policy struct {
	addresses   map[string]bool
	domains     map[string]bool
	requireAuth bool
	authservID  string
}

// NewPolicy builds a policy from the configured allow-list entries, each an
// address ("agent@org.example") or a domain ("@org.example", that domain
// only, not its subdomains), compared without case. With requireAuth, a
// sender must also be authenticated by the server named authservID;
// without it, that server's results are still reported in the summary.
func NewPolicy(allowed []string, requireAuth bool, authservID string) (*Policy, error) {
	p := &Policy{addresses: map[string]bool{}, domains: map[string]bool{}, requireAuth: requireAuth, authservID: strings.TrimSpace(authservID)}
	for _, entry := range allowed {
		e := strings.ToLower(strings.TrimSpace(entry))
		local, domain, ok := strings.Cut(e, "@")
		switch {
		case e == "":
		case !ok || domain == "" || strings.ContainsAny(domain, "@ \t") || strings.ContainsAny(local, " \t"):
			return nil, fmt.Errorf("senders.allowed: %q is neither an address (agent@org.example) nor a domain (@org.example)", entry)
		case local == "":
			p.domains[domain] = true
		default:
			p.addresses[e] = true
		}
	}
	if requireAuth && p.authservID == "" {
		return nil, fmt.Errorf("senders.require_auth is set but senders.authserv_id is empty: name the receiving server whose Authentication-Results are trusted")
	}
	return p, nil
}

// Decision is whether a sender may submit and why, and what the trusted
// server said of the mail, which decides how often a refused sender is
// told (SPEC §2, Refusal).
type Decision struct {
	// Allowed is true when the sender may submit: on the allow-list, and
	// authenticated when the policy requires it.
	Allowed bool
	// Authenticated is true when the trusted server's results show
	// dmarc=pass, or dkim=pass aligned with the From domain.
	Authenticated bool
	// DMARCFailed is true when the trusted server's results say the From
	// domain failed DMARC: the From address is likely forged, and must
	// not be answered.
	DMARCFailed bool
	// Believed is true when the From address may be taken as the mail's
	// author, which is all that authenticates a reply command: the
	// trusted server authenticated it, or the policy does not require that
	// and the server did not say its domain failed DMARC.
	Believed bool
	// Summary says how the sender was checked, for the envelope's first
	// audit event and the certificate, e.g. "dmarc=pass
	// header.from=org.example (authserv-id mx.org.example)".
	Summary string
	// Reason says why the sender was refused, for the refusal mail; zero
	// when allowed.
	Reason problem.Text
}

// Check decides for the From address from and the message's
// Authentication-Results field values, in header order.
func (p *Policy) Check(from string, authResults []string) Decision {
	addr := strings.ToLower(strings.TrimSpace(from))
	_, domain, ok := strings.Cut(addr, "@")
	if !ok || domain == "" {
		return Decision{
			Reason:  problem.New("the sender address %q has no domain", "l'adresse d'expéditeur « %s » n'a pas de domaine", from),
			Summary: "sender " + from + " refused",
		}
	}
	// The results are read for every sender: one the allow-list refuses
	// is not answered either when DMARC says the mail is forged.
	auth := p.authenticate(domain, authResults)
	d := Decision{Authenticated: auth.pass, DMARCFailed: auth.dmarcFailed, Believed: auth.pass || !p.requireAuth && !auth.dmarcFailed}
	var listed string
	switch {
	case p.addresses[addr]:
		listed = addr
	case p.domains[domain]:
		listed = "@" + domain
	default:
		d.Summary = fmt.Sprintf("sender %s refused: not in senders.allowed", addr)
		d.Reason = problem.New("%s may not submit documents to this gateway",
			"l'adresse %s n'est pas autorisée à soumettre des documents à ce parapheur", addr)
		return d
	}
	d.Allowed = auth.pass || !p.requireAuth
	d.Summary = fmt.Sprintf("sender %s allowed by %s; %s", addr, listed, auth.summary)
	if !d.Allowed {
		d.Summary = fmt.Sprintf("sender %s refused: %s", addr, auth.summary)
		d.Reason = problem.New("the mail from %s could not be authenticated (%s): it may be forged",
			"le message de %s n'a pas pu être authentifié (%s) : il est peut-être falsifié", addr, auth.summary)
	}
	return d
}

// authentication is what the trusted server's results say of a mail.
type authentication struct {
	// summary says what was found, for the audit trail.
	summary string
	// pass: dmarc=pass, or dkim=pass aligned with the From domain.
	pass bool
	// dmarcFailed: dmarc=fail for the From domain.
	dmarcFailed bool
}

// authenticate looks for dmarc=pass, or else a dkim=pass aligned with
// domain, in the topmost field of the trusted server, and says what it
// found.
func (p *Policy) authenticate(domain string, fields []string) authentication {
	if p.authservID == "" {
		return authentication{summary: "authentication not checked"}
	}
	var a authentication
	var seen []string
	dkim := "" // an aligned dkim=pass, used when no dmarc=pass is found
	var results []authres.Result
	for _, field := range fields {
		id, rs, err := authres.Parse(stripComments(field))
		if !strings.EqualFold(id, p.authservID) {
			continue
		}
		if err != nil && len(rs) == 0 {
			seen = append(seen, "unreadable Authentication-Results: "+err.Error())
		}
		results = rs
		break // the topmost trusted field is the server's; any below may be forged
	}
	for _, r := range results {
		switch r := r.(type) {
		case *authres.DMARCResult:
			s := fmt.Sprintf("dmarc=%s header.from=%s", r.Value, r.From)
			ours := r.From == "" || strings.EqualFold(r.From, domain)
			if r.Value == authres.ResultPass && ours {
				return authentication{summary: p.cite(s), pass: true}
			}
			if r.Value == authres.ResultFail && ours {
				a.dmarcFailed = true
			}
			seen = append(seen, s)
		case *authres.DKIMResult:
			s := fmt.Sprintf("dkim=%s header.d=%s", r.Value, r.Domain)
			if r.Value == authres.ResultPass && Aligned(r.Domain, domain) {
				if dkim == "" {
					dkim = s + " aligned with " + domain
				}
				continue
			}
			if r.Value == authres.ResultPass {
				s += " not aligned with " + domain
			}
			seen = append(seen, s)
		}
	}
	switch {
	case dkim != "":
		// An aligned DKIM signature is DMARC's own pass condition
		// (RFC 7489 §4.2), whatever a dmarc= result said.
		return authentication{summary: p.cite(dkim), pass: true}
	case len(seen) == 0:
		a.summary = p.cite("no DMARC or DKIM result")
	default:
		a.summary = p.cite(strings.Join(seen, ", "))
	}
	return a
}

func (p *Policy) cite(s string) string {
	return s + " (authserv-id " + p.authservID + ")"
}

// Aligned reports whether a DKIM signing domain is aligned with the From
// domain in DMARC's relaxed mode (RFC 7489 §3.1.1): both have the same
// organisational domain, found with the public suffix list.
func Aligned(signing, from string) bool {
	signing, from = strings.ToLower(strings.TrimSuffix(signing, ".")), strings.ToLower(strings.TrimSuffix(from, "."))
	if signing == "" || from == "" {
		return false
	}
	if signing == from {
		return true
	}
	a, errA := publicsuffix.EffectiveTLDPlusOne(signing)
	b, errB := publicsuffix.EffectiveTLDPlusOne(from)
	return errA == nil && errB == nil && a == b
}

// stripComments removes RFC 5322 comments "(…)", which may hold ";" and so
// confuse authres.Parse, from a header field value, leaving quoted strings
// alone.
func stripComments(v string) string {
	var b strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && i+1 < len(v):
			if depth == 0 {
				b.WriteString(v[i : i+2])
			}
			i++
		case c == '"' && depth == 0:
			quoted = !quoted
			b.WriteByte(c)
		case c == '(' && !quoted:
			depth++
		case c == ')' && !quoted && depth > 0:
			depth--
			if depth == 0 {
				b.WriteByte(' ')
			}
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}
