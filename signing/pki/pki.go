// Package pki manages the gateway's X.509 certificates and keys (RFC
// 5280): the signing CA, the organisation's seal certificate, the one-time
// certificates issued to each signer for one signature, and the key
// sources: PEM files, PKCS #12 files (RFC 7292) and, in a build with cgo,
// PKCS #11 tokens.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/mail"
	"time"
)

// File names InitCA writes and LoadCA / LoadSeal read.
const (
	CACertFile   = "ca.crt"   // the signing CA certificate, PEM
	CAKeyFile    = "ca.p12"   // the CA key and certificate, PKCS #12
	SealCertFile = "seal.crt" // the seal certificate then the CA's, PEM
	SealKeyFile  = "seal.p12" // the seal key and chain, PKCS #12
)

// DefaultOneTimeValidity is how long a one-time certificate is valid: long
// enough for clock skew and for the signature to be completed, short
// enough that a leaked key is worthless.
const DefaultOneTimeValidity = time.Hour

// ErrBadPassphrase reports a key file that the passphrase does not open.
var ErrBadPassphrase = errors.New("pki: wrong passphrase or corrupt key file")

// CA is a certification authority whose key is at hand.
type CA struct {
	// Cert is the CA's certificate.
	Cert *x509.Certificate
	// Key is the CA's private key.
	Key crypto.Signer
	// CRLURL, when set, goes in the CRL distribution points of issued
	// certificates, so validators can check revocation.
	CRLURL string
	// OCSPURL, when set, names the CA's OCSP responder (RFC 6960) in the
	// authority information access of issued certificates.
	OCSPURL string
}

// KeyPair is a signing key with its certificate chain, signer first.
type KeyPair struct {
	// Key is the private key; it may live in a hardware token.
	Key crypto.Signer
	// Chain is the key's certificate followed by its issuers.
	Chain []*x509.Certificate
}

// NewCA makes a self-signed CA with a new ECDSA P-256 key (RSA-3072 when
// rsaKey is set), valid for validity from now.
func NewCA(subject pkix.Name, validity time.Duration, rsaKey bool) (*CA, error) {
	key, err := newKey(rsaKey)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               subject,
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	cert, err := create(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Issue certifies pub for document signing under subject, for validity
// from now; emails go in the subject alternative name.
func (ca *CA) Issue(subject pkix.Name, emails []string, pub crypto.PublicKey, validity time.Duration) (*x509.Certificate, error) {
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		Subject:        subject,
		EmailAddresses: emails,
		NotBefore:      now.Add(-5 * time.Minute),
		NotAfter:       notAfter,
		// Non-repudiation (content commitment) marks a signature that
		// commits its signer, as a document signature does.
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
	ca.revocationPointers(tmpl)
	return create(tmpl, ca.Cert, pub, ca.Key)
}

// revocationPointers tells, in tmpl, where to check its revocation.
func (ca *CA) revocationPointers(tmpl *x509.Certificate) {
	if ca.CRLURL != "" {
		tmpl.CRLDistributionPoints = []string{ca.CRLURL}
	}
	if ca.OCSPURL != "" {
		tmpl.OCSPServer = []string{ca.OCSPURL}
	}
}

// IssueOneTime makes a fresh key and a certificate naming the signer, for
// one signature. The key exists only in the returned value: callers sign
// and drop it, never store it.
func (ca *CA) IssueOneTime(name, email string, validity time.Duration) (*KeyPair, error) {
	if name == "" {
		return nil, errors.New("pki: a one-time certificate needs the signer's name")
	}
	if _, err := mail.ParseAddress(email); err != nil {
		return nil, fmt.Errorf("pki: signer email %q: %w", email, err)
	}
	if validity <= 0 {
		validity = DefaultOneTimeValidity
	}
	key, err := newKey(false)
	if err != nil {
		return nil, err
	}
	subject := pkix.Name{CommonName: name, Organization: ca.Cert.Subject.Organization}
	cert, err := ca.Issue(subject, []string{email}, key.Public(), validity)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Key: key, Chain: []*x509.Certificate{cert, ca.Cert}}, nil
}

// CRL returns a DER certificate revocation list signed by ca, listing
// revoked, valid from now for validity.
func (ca *CA) CRL(number int64, revoked []x509.RevocationListEntry, validity time.Duration) ([]byte, error) {
	now := time.Now()
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(number),
		ThisUpdate:                now.Add(-time.Minute),
		NextUpdate:                now.Add(validity),
		RevokedCertificateEntries: revoked,
	}, ca.Cert, ca.Key)
}

// SerialHex writes cert's serial number as OpenSSL, Windows and PDF
// readers show it: the bytes of its DER integer in hex, two digits a byte,
// so a serial such as 03 44 18… keeps its leading zero. big.Int's Text(16)
// drops it, and a reader comparing the certificate of completion with the
// signature panel would not find the same number.
func SerialHex(cert *x509.Certificate) string {
	b := cert.SerialNumber.Bytes()
	if len(b) == 0 || b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return hex.EncodeToString(b)
}

// IssuedBy tells whether cert was issued by ca's certificate.
func IssuedBy(cert, ca *x509.Certificate) bool {
	return cert.CheckSignatureFrom(ca) == nil
}

func newKey(rsaKey bool) (crypto.Signer, error) {
	if rsaKey {
		return rsa.GenerateKey(rand.Reader, 3072)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("pki: creating certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}
