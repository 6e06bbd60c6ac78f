package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/parapheur/parapheur/signing/pki"
)

// crlPath is where, under public_url, the gateway publishes its signing
// CA's certificate revocation list (RFC 5280 §5), which the seal
// certificate and every one-time certificate name as their CRL
// distribution point: a validator needs it to accept the chain, years
// after the signature too (PAdES B-LT and B-LTA embed it).
const crlPath = "/ca.crl"

const (
	// crlValidity is how long a validator may rely on a CRL: its nextUpdate.
	crlValidity = 7 * 24 * time.Hour
	// crlRenewal is the age at which a new CRL is signed, well before
	// nextUpdate, so that a cached copy is never stale.
	crlRenewal = 24 * time.Hour
)

// crlPublisher serves the signing CA's CRL, signing a new one when the one
// it keeps is crlRenewal old rather than on every request. Replicas sign
// their own: their lists differ in numbers and times only, and each is
// valid.
type crlPublisher struct {
	ca  *pki.CA
	log *slog.Logger
	now func() time.Time

	mu     sync.Mutex
	der    []byte    // the current CRL
	number int64     // its CRL number
	signed time.Time // when it was signed, by now
}

// newCRLPublisher signs the first CRL at once, so that a CA key that
// cannot sign one stops the gateway at start rather than a validator later.
func newCRLPublisher(ca *pki.CA, log *slog.Logger, now func() time.Time) (*crlPublisher, error) {
	p := &crlPublisher{ca: ca, log: log, now: now}
	if _, _, err := p.current(); err != nil {
		return nil, err
	}
	return p, nil
}

// current returns the CRL to serve and when it was signed, signing a new
// one when the kept one is due for renewal.
func (p *crlPublisher) current() ([]byte, time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.der != nil && now.Sub(p.signed) < crlRenewal {
		return p.der, p.signed, nil
	}
	// CRL numbers must grow (RFC 5280 §5.2.3), across restarts and
	// replicas too: the time in nanoseconds does, and one more than the
	// last keeps them growing should the clock step back.
	number := max(now.UnixNano(), p.number+1)
	// The list is empty: the gateway revokes no certificate today (a
	// one-time certificate lives an hour and its key is never stored). A
	// validator still needs a current list signed by the CA to accept
	// the chain.
	der, err := p.ca.CRL(number, nil, crlValidity)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("signing the CA's CRL: %w", err)
	}
	p.der, p.number, p.signed = der, number, now
	p.log.Debug("parapheur: signed the CA's CRL", "number", number, "next_update", now.Add(crlValidity))
	return der, now, nil
}

// ServeHTTP answers the CRL in DER, as RFC 5280 §4.2.1.13 asks of an HTTP
// distribution point, cacheable until this replica renews it.
func (p *crlPublisher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	der, signed, err := p.current()
	if err != nil {
		p.log.Error("parapheur: the CRL cannot be served", "err", err)
		http.Error(w, "the certificate revocation list cannot be signed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	fresh := max(crlRenewal-p.now().Sub(signed), 0)
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(fresh/time.Second)))
	http.ServeContent(w, r, "", signed, bytes.NewReader(der))
}
