// Package tsa is an RFC 3161 (Time-Stamp Protocol) client over HTTP
// (RFC 3161 §3.4), used for PAdES signature time-stamps (B-T) and document
// time-stamps (B-LTA).
package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"

	"github.com/digitorus/timestamp"
)

// maxResponse bounds a TSA answer; real tokens are a few kilobytes.
const maxResponse = 1 << 20

// Client asks one time-stamp authority for tokens.
type Client struct {
	// URL is the TSA's HTTP endpoint.
	URL string
	// HTTP is the client used for requests; nil means a client with a
	// 30-second timeout.
	HTTP *http.Client
}

// Token returns a TimeStampToken (DER ContentInfo) over digest, a SHA-256
// hash. The token's signature, message imprint and nonce are checked.
func (c *Client) Token(ctx context.Context, digest []byte) ([]byte, error) {
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("tsa: digest is %d bytes, SHA-256 needs %d", len(digest), sha256.Size)
	}
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	req := timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: digest, Certificates: true, Nonce: nonce}
	der, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("tsa: encoding request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(der))
	if err != nil {
		return nil, fmt.Errorf("tsa: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/timestamp-query")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("tsa: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("tsa: reading answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("tsa: %s answered %s", c.URL, resp.Status)
	}
	if len(body) > maxResponse {
		return nil, errors.New("tsa: answer larger than 1 MiB")
	}
	ts, err := timestamp.ParseResponse(body)
	if err != nil {
		return nil, fmt.Errorf("tsa: bad answer: %w", err)
	}
	if !bytes.Equal(ts.HashedMessage, digest) || ts.HashAlgorithm != crypto.SHA256 {
		return nil, errors.New("tsa: token does not cover the requested digest")
	}
	if ts.Nonce == nil || ts.Nonce.Cmp(nonce) != 0 {
		return nil, errors.New("tsa: token nonce differs from the request's")
	}
	return ts.RawToken, nil
}
