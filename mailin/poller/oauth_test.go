package poller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/mailout/oauth"
)

// startOAuth2 starts a poller of mb that logs in with mech and a token of an app-only
// client, handling mail with the returned recorder and logging to the returned buffer.
func startOAuth2(t *testing.T, mb mailbox, mech string) (*recorder, *testrig.Logs, *oauth.Source) {
	t.Helper()
	tokens.AddClient("app-"+mb.user, "secret-"+mb.user, mb.user)
	rec, logs := newRecorder(), &testrig.Logs{}
	log := logs.Logger()
	src, err := oauth.New(oauth.Config{Provider: oauth.Microsoft, Tenant: "org.example", ClientID: "app-" + mb.user,
		ClientSecret: "secret-" + mb.user, TokenURL: tokens.TokenURL()}, log)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{URL: mb.url(), OAuth2: src, Mechanism: mech, SafetyScan: time.Hour, IdleRestart: time.Minute,
		LeaseTTL: 3 * time.Second, Holder: "test", MaxMessageBytes: 4096}, openStore(t), rec, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if strings.Contains(logs.String(), "secret-"+mb.user) || strings.Contains(logs.String(), "access-") {
			t.Errorf("the log shows a secret:\n%s", logs)
		}
	})
	return rec, logs, src
}

func TestOAuth2PollerRenewsAnExpiredToken(t *testing.T) {
	for _, mech := range []string{oauth.XOAUTH2, oauth.OAUTHBEARER} {
		t.Run(mech, func(t *testing.T) {
			mb := dovecotMailbox(t)
			rec, logs, _ := startOAuth2(t, mb, mech)
			mb.append(t, testMessage("first-"+mech, "Convention"))
			rec.wait(t, 1)
			tokens.Expire()
			if err := rig.Kick(mb.user); err != nil {
				t.Fatal(err)
			}
			mb.append(t, testMessage("second-"+mech, "Convention"))
			rec.wait(t, 1)
			waitCounts(t, mb, map[string]int{"INBOX": 0, "Processed": 2, "Quarantine": 0})
			if !strings.Contains(logs.String(), "refused the access token; getting a new one") {
				t.Errorf("the renewal was not logged:\n%s", logs)
			}
		})
	}
}

func TestOAuth2PollerReportsARevokedGrant(t *testing.T) {
	mb := dovecotMailbox(t)
	rec, logs, src := startOAuth2(t, mb, oauth.XOAUTH2)
	mb.append(t, testMessage("before-revocation", "Convention"))
	rec.wait(t, 1)
	tokens.Revoke(mb.user)
	if err := rig.Kick(mb.user); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "has been revoked") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"imap poller: session ended, reconnecting\"") || !strings.Contains(logs.String(), "has been revoked") {
		t.Fatalf("the revocation is not in the log:\n%s", logs)
	}
	if err := src.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("Check: %v, want the token endpoint's invalid_grant", err)
	}
}
