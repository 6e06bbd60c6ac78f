package sender

import (
	"context"
	"strings"
	"testing"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/mailout/oauth"
	"github.com/parapheur/parapheur/workflow"
)

// AUTH XOAUTH2 and OAUTHBEARER against Postfix, which asks Dovecot's oauth2 passdb; a
// token that expired is renewed on a new connection and the mail is delivered at the
// first attempt.
func TestOAuth2Auth(t *testing.T) {
	tokens.AddClient("app-parapheur", "secret-parapheur", "parapheur")
	for _, mech := range []string{oauth.XOAUTH2, oauth.OAUTHBEARER} {
		t.Run(mech, func(t *testing.T) {
			logs := &testrig.Logs{}
			src, err := oauth.New(oauth.Config{Provider: oauth.Microsoft, Tenant: "org.example", ClientID: "app-parapheur",
				ClientSecret: "secret-parapheur", TokenURL: tokens.TokenURL()}, logs.Logger())
			if err != nil {
				t.Fatal(err)
			}
			f := newFixture(t, func(c *Config) {
				c.Relay.Username, c.Relay.OAuth2, c.Relay.AuthMechanism = "parapheur", src, mech
				c.MaxMails = 1 // a new connection, and a new AUTH, for every mail
			})
			for round := range 2 {
				env := f.envelope(t, "alice@example.com")
				if n := f.drain(t); n != 2 {
					t.Fatalf("round %d: %d items, want 2", round, n)
				}
				for _, r := range f.attempts(t, env.ID) {
					if r.Details["outcome"] != string(workflow.OutcomeDelivered) {
						t.Errorf("round %d: %+v, want delivered at the first attempt", round, r.Details)
					}
				}
				fetch(t, "alice", f.messageID(t, "invitation/r1"))
				tokens.Expire()
			}
			if !strings.Contains(logs.String(), "refused the access token; getting a new one") {
				t.Errorf("the renewal was not logged:\n%s", logs)
			}
			if strings.Contains(logs.String(), "secret-parapheur") || strings.Contains(logs.String(), "access-") {
				t.Errorf("the log shows a secret:\n%s", logs)
			}
			if err := src.Check(context.Background()); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}
