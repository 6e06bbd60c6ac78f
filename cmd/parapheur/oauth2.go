package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
	"github.com/parapheur/parapheur/mailout/oauth"
)

// oauthSources are the token sources of the mailbox logins that use OAuth2; a nil one
// logs in with a password.
type oauthSources struct {
	imap, smtp *oauth.Source
}

// newOAuthSources makes the sources that imap.auth and smtp.auth ask for. One source
// serves both when one token does: always but for a Google service account acting as two
// different users.
func newOAuthSources(cfg *config.Config, log *slog.Logger) (oauthSources, error) {
	var s oauthSources
	c := cfg.OAuth2
	source := func(user string) (*oauth.Source, error) { return oauth.New(oauthConfig(c, user), log) }
	var err error
	if cfg.IMAP.Auth == "oauth2" {
		if s.imap, err = source(cfg.IMAP.Server.Username); err != nil {
			return s, err
		}
	}
	if cfg.SMTP.Auth == "oauth2" {
		if s.imap != nil && (c.Provider != oauth.Google || cfg.SMTP.Server.Username == cfg.IMAP.Server.Username) {
			s.smtp = s.imap
		} else if s.smtp, err = source(cfg.SMTP.Server.Username); err != nil {
			return s, err
		}
	}
	return s, nil
}

// oauthConfig is the [oauth2] table for package oauth; user is the mailbox.
func oauthConfig(c config.OAuth2, user string) oauth.Config {
	return oauth.Config{Provider: c.Provider, Tenant: c.Tenant, ClientID: c.ClientID,
		ClientSecret: string(c.ClientSecret), ClientCertificate: []byte(c.ClientCertificate),
		ServiceAccount: []byte(c.ServiceAccount), TokenFile: c.TokenFile, User: user,
		TokenURL: c.TokenURL, DeviceURL: c.DeviceURL, Scopes: c.Scopes}
}

// check reports whether every source can have a token, for /readyz and config check.
func (s oauthSources) check(ctx context.Context) error {
	var errs []error
	if s.imap != nil {
		errs = append(errs, s.imap.Check(ctx))
	}
	if s.smtp != nil && s.smtp != s.imap {
		if err := s.smtp.Check(ctx); err != nil {
			errs = append(errs, fmt.Errorf("for smtp.url's user: %w", err))
		}
	}
	return errors.Join(errs...)
}

var oauth2LoginCommand = &command{
	name:    "oauth2 login",
	summary: "sign in to the mailbox once, for oauth2.provider = \"refresh_token\"",
	help: `
OAuth2 login gets the refresh token that oauth2.provider = "refresh_token" uses,
by the device authorization grant (RFC 8628) of the app registration
oauth2.client_id in oauth2.tenant: it prints where to sign in and which code
to enter, waits while the mailbox's user signs in (from any browser), and
stores the refresh token in oauth2.token_file, readable by its owner only. Run
it as the user the gateway runs as. The gateway renews the access tokens from
then on, and writes the renewed refresh tokens back to the file.`,
	run: runOAuth2Login,
}

func runOAuth2Login(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(0, 0); !ok {
		return code
	}
	cfg, err := config.LoadSections(*inv.configPath, inv.environ, "oauth2")
	if err == nil && cfg.OAuth2.Provider != oauth.RefreshToken {
		err = fmt.Errorf("oauth2.provider is %q: the login is for \"refresh_token\"", cfg.OAuth2.Provider)
	}
	if err == nil {
		err = oauth.Login(inv.context, oauthConfig(cfg.OAuth2, ""), inv.stdout)
	}
	if err != nil {
		fmt.Fprintf(inv.stderr, "parapheur oauth2 login: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(inv.stdout, "refresh token stored in %s\n", cfg.OAuth2.TokenFile)
	return exitOK
}
