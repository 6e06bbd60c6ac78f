package oauth

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/emersion/go-sasl"
)

// The SASL mechanisms that carry a bearer token.
const (
	// XOAUTH2 is the mechanism of Google and Microsoft, the only one Exchange Online has.
	XOAUTH2 = "XOAUTH2"
	// OAUTHBEARER is RFC 7628's mechanism.
	OAUTHBEARER = sasl.OAuthBearer
)

// Challenge is the JSON error a server sends before failing a token (RFC 7628 §3.2.2;
// XOAUTH2 sends the same object).
type Challenge struct {
	// Status is the error: "invalid_token", or an HTTP status such as "401" for XOAUTH2.
	Status string `json:"status"`
	// Schemes are the HTTP authentication schemes the server accepts ("bearer").
	Schemes string `json:"schemes,omitempty"`
	// Scope is the scope a token needs for this service.
	Scope string `json:"scope,omitempty"`
	// OpenIDConfiguration is where the server's OpenID discovery document lives.
	OpenIDConfiguration string `json:"openid-configuration,omitempty"`
}

// ParseChallenge reads a server's failure challenge: a JSON object whose status is set.
func ParseChallenge(b []byte) (*Challenge, error) {
	var c Challenge
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("oauth: the server's SASL challenge %q is not the JSON error object of RFC 7628 §3.2.2: %w", clip(b), err)
	}
	if c.Status == "" {
		return nil, fmt.Errorf("oauth: the server's SASL challenge %q has no status", clip(b))
	}
	return &c, nil
}

func (c *Challenge) String() string {
	s := "status " + c.Status
	if c.Scope != "" {
		s += ", scope " + c.Scope
	}
	return s
}

// clip shortens server data quoted in an error.
func clip(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

// Client is a SASL client of one of the bearer-token mechanisms. After a failed
// authentication, Failure holds the server's challenge, if it sent one.
type Client struct {
	mech    string
	initial []byte
	Failure *Challenge
}

// NewClient returns a SASL client that presents token for user with mech, XOAUTH2 or
// OAUTHBEARER.
func NewClient(mech, user, token string) (*Client, error) {
	c := &Client{mech: mech}
	switch mech {
	case XOAUTH2:
		c.initial = []byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
	case OAUTHBEARER:
		_, ir, err := sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: user, Token: token}).Start()
		if err != nil {
			return nil, err
		}
		c.initial = ir
	default:
		return nil, fmt.Errorf("oauth: SASL mechanism %q: want %s or %s", mech, XOAUTH2, OAUTHBEARER)
	}
	return c, nil
}

// Start implements sasl.Client: the token goes in the initial response.
func (c *Client) Start() (string, []byte, error) { return c.mech, c.initial, nil }

// Next implements sasl.Client. The only challenge after the initial response is the
// failure object: it is kept, and answered with the dummy response of RFC 7628 §3.2.3,
// %x01, so that the server ends with its own failure. XOAUTH2 asks for an empty response,
// which go-imap cannot send (it writes "=", a syntax error to Dovecot); servers fail the
// exchange on any response, so %x01 serves both.
func (c *Client) Next(challenge []byte) ([]byte, error) {
	if c.Failure != nil {
		return nil, errors.New("oauth: the server sent a second challenge after the failure")
	}
	ch, err := ParseChallenge(challenge)
	if err != nil {
		return nil, err
	}
	c.Failure = ch
	return []byte{1}, nil
}
