package oauth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/jwt"
)

// Scopes and endpoints of the providers.
const (
	// microsoftAppScope is Exchange Online's IMAP and SMTP for an application.
	microsoftAppScope = "https://outlook.office365.com/.default"
	// googleMailScope is Gmail's IMAP and SMTP.
	googleMailScope = "https://mail.google.com/"
	googleTokenURL  = "https://oauth2.googleapis.com/token"
	// clientAssertionType marks a JWT client assertion (RFC 7523 §2.2).
	clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// MicrosoftDelegatedScopes are the scopes "parapheur oauth2 login" asks for by default:
// the signed-in user's mailbox over IMAP and SMTP, and a refresh token.
var MicrosoftDelegatedScopes = []string{"offline_access",
	"https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send"}

func microsoftURL(tenant, endpoint string) string {
	return "https://login.microsoftonline.com/" + url.PathEscape(tenant) + "/oauth2/v2.0/" + endpoint
}

func microsoft(cfg Config, now func() time.Time) (func(context.Context) (*oauth2.Token, error), error) {
	var problems []error
	if cfg.Tenant == "" && cfg.TokenURL == "" {
		problems = append(problems, errors.New("oauth2.tenant: required: the Microsoft Entra tenant ID or domain (contoso.onmicrosoft.com)"))
	}
	if cfg.ClientID == "" {
		problems = append(problems, errors.New("oauth2.client_id: required: the application (client) ID of the app registration"))
	}
	var cert *tls.Certificate
	switch {
	case cfg.ClientSecret == "" && len(cfg.ClientCertificate) == 0:
		problems = append(problems, errors.New("oauth2.client_secret_file: required, or oauth2.client_certificate_file: the app's credential"))
	case cfg.ClientSecret != "" && len(cfg.ClientCertificate) != 0:
		problems = append(problems, errors.New("oauth2.client_certificate_file: set beside oauth2.client_secret_file; keep one"))
	case len(cfg.ClientCertificate) != 0:
		c, err := tls.X509KeyPair(cfg.ClientCertificate, cfg.ClientCertificate)
		if err != nil {
			problems = append(problems, fmt.Errorf("oauth2.client_certificate_file: want a PEM certificate and its private key in one file: %v", err))
		} else if _, ok := c.PrivateKey.(*rsa.PrivateKey); !ok {
			problems = append(problems, errors.New("oauth2.client_certificate_file: the Microsoft identity platform wants an RSA key"))
		} else {
			cert = &c
		}
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	cc := &clientcredentials.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, TokenURL: cfg.TokenURL,
		Scopes: cfg.Scopes, AuthStyle: oauth2.AuthStyleInParams}
	if cc.TokenURL == "" {
		cc.TokenURL = microsoftURL(cfg.Tenant, "token")
	}
	if len(cc.Scopes) == 0 {
		cc.Scopes = []string{microsoftAppScope}
	}
	credential := "oauth2.client_secret_file"
	if cert != nil {
		credential = "oauth2.client_certificate_file (is its certificate uploaded to the app registration?)"
	}
	return func(ctx context.Context) (*oauth2.Token, error) {
		c := *cc
		if cert != nil {
			assertion, err := clientAssertion(cert, cc.ClientID, cc.TokenURL, now())
			if err != nil {
				return nil, err
			}
			c.EndpointParams = url.Values{"client_assertion_type": {clientAssertionType}, "client_assertion": {assertion}}
		}
		tok, err := c.Token(ctx)
		return tok, explain(err, credential+", oauth2.client_id and oauth2.tenant")
	}, nil
}

// clientAssertion is the signed JWT that proves the app holds cert's key (RFC 7523 §2.2,
// with the x5t header the Microsoft identity platform wants).
func clientAssertion(cert *tls.Certificate, clientID, audience string, now time.Time) (string, error) {
	thumb := sha1.Sum(cert.Certificate[0])
	jti := make([]byte, 16)
	rand.Read(jti)
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "x5t": base64.RawURLEncoding.EncodeToString(thumb[:])})
	claims, _ := json.Marshal(map[string]any{"aud": audience, "iss": clientID, "sub": clientID,
		"jti": base64.RawURLEncoding.EncodeToString(jti), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()})
	signed := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, cert.PrivateKey.(*rsa.PrivateKey), crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("oauth2.client_certificate_file: signing the client assertion: %w", err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// serviceAccount is what a Google service account's JSON key holds that the grant needs.
type serviceAccount struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

func google(cfg Config) (func(context.Context) (*oauth2.Token, error), error) {
	if len(cfg.ServiceAccount) == 0 {
		return nil, errors.New("oauth2.service_account_file: required: the JSON key of the service account with domain-wide delegation")
	}
	var sa serviceAccount
	if err := json.Unmarshal(cfg.ServiceAccount, &sa); err != nil {
		return nil, fmt.Errorf("oauth2.service_account_file: not a service account's JSON key: %v", err)
	}
	switch {
	case sa.Type != "service_account":
		return nil, fmt.Errorf("oauth2.service_account_file: the key's type is %q, want \"service_account\" (an OAuth client's secret will not do)", sa.Type)
	case sa.ClientEmail == "" || sa.PrivateKey == "":
		return nil, errors.New("oauth2.service_account_file: the key has no client_email or no private_key")
	case cfg.User == "":
		return nil, errors.New("oauth2: no mailbox to act as: the user of imap.url or smtp.url")
	}
	jc := &jwt.Config{Email: sa.ClientEmail, PrivateKey: []byte(sa.PrivateKey), PrivateKeyID: sa.PrivateKeyID,
		Subject: cfg.User, Scopes: cfg.Scopes, TokenURL: cfg.TokenURL}
	if jc.TokenURL == "" {
		jc.TokenURL = sa.TokenURI
	}
	if jc.TokenURL == "" {
		jc.TokenURL = googleTokenURL
	}
	if len(jc.Scopes) == 0 {
		jc.Scopes = []string{googleMailScope}
	}
	return func(ctx context.Context) (*oauth2.Token, error) {
		tok, err := jc.TokenSource(ctx).Token()
		return tok, explain(err, "oauth2.service_account_file, and the domain-wide delegation of its client ID to the scope "+strings.Join(jc.Scopes, " ")+" for "+cfg.User)
	}, nil
}

// userApp is the public client of a refresh token: the login and the renewals.
func userApp(cfg Config) (*oauth2.Config, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("oauth2.client_id: required: the application (client) ID of the app registration")
	}
	c := &oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Scopes: cfg.Scopes,
		Endpoint: oauth2.Endpoint{TokenURL: cfg.TokenURL, DeviceAuthURL: cfg.DeviceURL, AuthStyle: oauth2.AuthStyleInParams}}
	tenant := cfg.Tenant
	if tenant == "" {
		tenant = "organizations"
	}
	if c.Endpoint.TokenURL == "" {
		c.Endpoint.TokenURL = microsoftURL(tenant, "token")
	}
	if c.Endpoint.DeviceAuthURL == "" {
		c.Endpoint.DeviceAuthURL = microsoftURL(tenant, "devicecode")
	}
	if len(c.Scopes) == 0 {
		c.Scopes = MicrosoftDelegatedScopes
	}
	return c, nil
}

func refreshToken(cfg Config) (func(context.Context) (*oauth2.Token, error), error) {
	app, err := userApp(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.TokenFile == "" {
		return nil, errors.New("oauth2.token_file: required: the file \"parapheur oauth2 login\" stores the refresh token in")
	}
	return func(ctx context.Context) (*oauth2.Token, error) {
		data, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("oauth2.token_file: %w (run \"parapheur oauth2 login\")", err)
		}
		old := strings.TrimSpace(string(data))
		if old == "" {
			return nil, fmt.Errorf("oauth2.token_file: %s is empty (run \"parapheur oauth2 login\")", cfg.TokenFile)
		}
		tok, err := app.TokenSource(ctx, &oauth2.Token{RefreshToken: old}).Token()
		if err != nil {
			return nil, explain(err, "the refresh token in oauth2.token_file (run \"parapheur oauth2 login\" again) and oauth2.client_id")
		}
		// The identity platform may rotate the refresh token: keep the newest.
		if tok.RefreshToken != "" && tok.RefreshToken != old {
			if err := writeTokenFile(cfg.TokenFile, tok.RefreshToken); err != nil {
				return nil, err
			}
		}
		return tok, nil
	}, nil
}

// Login runs the device authorization grant (RFC 8628): it writes the prompt (where to go,
// which code to enter) to prompt, waits for the user to sign in and consent, and stores the
// refresh token in cfg.TokenFile, readable by its owner only.
func Login(ctx context.Context, cfg Config, prompt io.Writer) error {
	app, err := userApp(cfg)
	if err != nil {
		return err
	}
	if cfg.TokenFile == "" {
		return errors.New("oauth2.token_file: required: the file to store the refresh token in")
	}
	if cfg.HTTPClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, cfg.HTTPClient)
	}
	da, err := app.DeviceAuth(ctx)
	if err != nil {
		return explain(err, "oauth2.client_id and oauth2.tenant (and that the app registration allows public client flows)")
	}
	uri := da.VerificationURIComplete
	if uri == "" {
		uri = da.VerificationURI
	}
	fmt.Fprintf(prompt, "To let parapheur use the mailbox, sign in as its user at %s and enter the code %s\n", uri, da.UserCode)
	tok, err := app.DeviceAccessToken(ctx, da)
	if err != nil {
		return explain(err, "the sign-in, then run the login again")
	}
	if tok.RefreshToken == "" {
		return errors.New("oauth2.scopes: the identity platform gave no refresh token: add the offline_access scope")
	}
	return writeTokenFile(cfg.TokenFile, tok.RefreshToken)
}

// writeTokenFile replaces path with token, mode 0600, atomically.
func writeTokenFile(path, token string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".token-*")
	if err != nil {
		return fmt.Errorf("oauth2.token_file: %w", err)
	}
	_, err = f.WriteString(token + "\n")
	err = errors.Join(err, f.Chmod(0o600), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("oauth2.token_file: storing the refresh token: %w", err)
	}
	return nil
}

// explain turns the token endpoint's refusal into an error that says what to check.
func explain(err error, check string) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		if err != nil {
			return fmt.Errorf("oauth2: no access token: %w", err)
		}
		return nil
	}
	code, description := re.ErrorCode, re.ErrorDescription
	if code == "" {
		// x/oauth2/jwt leaves RFC 6749 §5.2's error object unread.
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(re.Body, &body) == nil {
			code, description = body.Error, body.Description
		}
	}
	what := code
	if what == "" {
		what = "HTTP " + re.Response.Status
	}
	if description != "" {
		what += ": " + firstLine(description)
	}
	return fmt.Errorf("oauth2: the token endpoint refused (%s); check %s", what, check)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}
