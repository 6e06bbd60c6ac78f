package oauth

import (
	"bytes"
	"testing"
)

// FuzzParseChallenge feeds the server's failure challenge: ParseChallenge never panics,
// and a challenge it accepts has a status and can be answered.
func FuzzParseChallenge(f *testing.F) {
	for _, seed := range []string{
		`{"status":"invalid_token","scope":"mail","schemes":"bearer"}`,
		`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`,
		`{"status":"invalid_token","openid-configuration":"https://example.com/.well-known/openid-configuration"}`,
		`{"schemes":"bearer"}`, `{}`, `[]`, `null`, ``, `{"status":7}`, "{\"status\":\"\x01\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseChallenge(data)
		if err != nil {
			if c != nil {
				t.Fatal("a challenge with an error")
			}
			return
		}
		if c.Status == "" {
			t.Fatalf("%q accepted without a status", data)
		}
		for _, mech := range []string{XOAUTH2, OAUTHBEARER} {
			cl, _ := NewClient(mech, "u", "t")
			resp, err := cl.Next(data)
			if err != nil || cl.Failure == nil || !bytes.Equal(resp, []byte{1}) {
				t.Fatalf("%s: answer %q, %v", mech, resp, err)
			}
			if _, err := cl.Next(data); err == nil {
				t.Fatalf("%s: a second challenge accepted", mech)
			}
		}
	})
}
