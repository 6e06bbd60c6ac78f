package verify

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Text renders the report for people, as `parapheur verify` prints it;
// caKnown tells whether a CA was given, so "not issued by the gateway" is
// only claimed when it was checked.
func (r *Report) Text(caKnown bool) string {
	var b strings.Builder
	r.WriteText(&b, caKnown)
	return b.String()
}

// WriteText writes Text's rendering to w.
func (r *Report) WriteText(w io.Writer, caKnown bool) {
	fmt.Fprintf(w, "%d bytes, %d signature(s)", r.Size, len(r.Signatures))
	if r.HasDSS {
		fmt.Fprintf(w, ", validation data (DSS): %d certificate(s), %d CRL(s), %d OCSP answer(s)", r.DSSCerts, r.DSSCRLs, r.DSSOCSPs)
	}
	fmt.Fprintln(w)
	bad := 0
	for i, s := range r.Signatures {
		state := "INTACT"
		if !s.Intact {
			state = "NOT INTACT: " + s.Problem
			bad++
		}
		fmt.Fprintf(w, "\n#%d %s: %s\n", i+1, s.Field, state)
		signer := s.Signer
		if s.Email != "" {
			signer += " <" + s.Email + ">"
		}
		fmt.Fprintf(w, "  signer:  %s\n", signer)
		when := "unknown"
		if !s.Time.IsZero() {
			when = s.Time.UTC().Format(time.DateTime + " UTC")
			switch {
			case s.TimeStamped:
				when += " (time-stamped)"
			case caKnown && s.IssuedByCA: // the gateway signed, by its own clock
				when += " (this gateway's clock)"
			default:
				when += " (claimed by the signer)"
			}
		}
		fmt.Fprintf(w, "  time:    %s\n", when)
		fmt.Fprintf(w, "  level:   %s (%s)\n", s.Level, s.SubFilter)
		if s.Reason != "" {
			fmt.Fprintf(w, "  reason:  %s\n", s.Reason)
		}
		switch {
		case !caKnown:
			fmt.Fprintln(w, "  issuer:  not checked (no CA given)")
		case s.IssuedByCA:
			fmt.Fprintln(w, "  issuer:  this gateway's CA")
		default:
			fmt.Fprintln(w, "  issuer:  not this gateway's CA")
		}
		switch {
		case !s.ChangedAfter:
			fmt.Fprintln(w, "  changes: none, it covers the whole file")
		case s.LaterSignatures > 0:
			fmt.Fprintf(w, "  changes: %d later signature(s) added after it\n", s.LaterSignatures)
		case r.ChangedUnsigned:
			fmt.Fprintln(w, "  changes: the file was changed after it, and no signature covers the change")
		default:
			fmt.Fprintln(w, "  changes: only validation data (DSS) added after it")
		}
	}
	fmt.Fprintln(w)
	brokenTrails := 0
	for _, t := range r.Trails {
		t.WriteText(w)
		if !t.Intact() {
			brokenTrails++
		}
	}
	if len(r.Trails) > 0 {
		fmt.Fprintln(w)
	}
	switch {
	case len(r.Signatures) == 0:
		fmt.Fprintln(w, "INVALID: the file has no signature")
	case bad > 0:
		fmt.Fprintf(w, "INVALID: %d of %d signature(s) not intact\n", bad, len(r.Signatures))
	case r.ChangedUnsigned:
		fmt.Fprintf(w, "INVALID: all %d signature(s) intact, but the file was changed after the last one, and no signature covers the change\n", len(r.Signatures))
	case brokenTrails > 0:
		fmt.Fprintf(w, "INVALID: all %d signature(s) intact, but %d embedded audit trail(s) broken\n", len(r.Signatures), brokenTrails)
	default:
		fmt.Fprintf(w, "VALID: all %d signature(s) intact\n", len(r.Signatures))
	}
}
