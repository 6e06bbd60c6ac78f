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
	source := func(user string) (*oauth.Source, error) {
		return oauth.New(oauth.Config{Provider: c.Provider, Tenant: c.Tenant, ClientID: c.ClientID,
			ClientSecret: string(c.ClientSecret), ClientCertificate: []byte(c.ClientCertificate),
			ServiceAccount: []byte(c.ServiceAccount), TokenFile: c.TokenFile, User: user,
			TokenURL: c.TokenURL, Scopes: c.Scopes}, log)
	}
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
