//go:build cgo

// PKCS #11 keys load the token's C library, which needs cgo: a static build
// (CGO_ENABLED=0, as deploy/Dockerfile makes) has every other kind of key.

package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// PKCS11Config names a private key in a PKCS #11 token (an HSM, a smart
// card, or SoftHSM).
type PKCS11Config struct {
	// Module is the path of the token's PKCS #11 library.
	Module string
	// TokenLabel selects the token.
	TokenLabel string
	// PIN is the user PIN.
	PIN string
	// KeyLabel is the CKA_LABEL of the private key, and of its
	// certificate when the token stores one.
	KeyLabel string
	// Chain is the key's certificate and issuers, signer first; when
	// empty, the certificate labelled KeyLabel is read from the token.
	Chain []*x509.Certificate
}

// PKCS11Key is a private key that stays in its token; it implements
// crypto.Signer for RSA (PKCS #1 v1.5 and PSS) and ECDSA keys.
type PKCS11Key struct {
	// Chain is the key's certificate chain, signer first.
	Chain []*x509.Certificate

	mu      sync.Mutex // a session runs one operation at a time
	ctx     *pkcs11.Ctx
	session pkcs11.SessionHandle
	key     pkcs11.ObjectHandle
}

// OpenPKCS11 logs in to the token and finds the key. The module stays
// loaded for the life of the process; Close ends the session.
func OpenPKCS11(cfg PKCS11Config) (*PKCS11Key, error) {
	p := pkcs11.New(cfg.Module)
	if p == nil {
		return nil, fmt.Errorf("pki: cannot load PKCS #11 module %s", cfg.Module)
	}
	if err := p.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		return nil, fmt.Errorf("pki: PKCS #11 initialise: %w", err)
	}
	slot, err := findToken(p, cfg.TokenLabel)
	if err != nil {
		return nil, err
	}
	session, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return nil, fmt.Errorf("pki: PKCS #11 session: %w", err)
	}
	k := &PKCS11Key{ctx: p, session: session, Chain: cfg.Chain}
	if err := p.Login(session, pkcs11.CKU_USER, cfg.PIN); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		p.CloseSession(session)
		return nil, fmt.Errorf("pki: PKCS #11 login to %q: %w", cfg.TokenLabel, err)
	}
	if err := k.find(cfg.KeyLabel); err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

func findToken(p *pkcs11.Ctx, label string) (uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("pki: PKCS #11 slots: %w", err)
	}
	for _, s := range slots {
		info, err := p.GetTokenInfo(s)
		if err == nil && strings.TrimRight(info.Label, " \x00") == label {
			return s, nil
		}
	}
	return 0, fmt.Errorf("pki: no PKCS #11 token labelled %q", label)
}

// find locates the private key and, without a configured chain, its
// certificate.
func (k *PKCS11Key) find(label string) error {
	keys, err := k.objects(pkcs11.CKO_PRIVATE_KEY, label)
	if err != nil {
		return err
	}
	if len(keys) != 1 {
		return fmt.Errorf("pki: %d private keys labelled %q in the token, want 1", len(keys), label)
	}
	k.key = keys[0]
	if len(k.Chain) == 0 {
		certs, err := k.objects(pkcs11.CKO_CERTIFICATE, label)
		if err != nil {
			return err
		}
		if len(certs) == 0 {
			return fmt.Errorf("pki: no certificate labelled %q in the token and none configured", label)
		}
		attrs, err := k.ctx.GetAttributeValue(k.session, certs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if err != nil {
			return fmt.Errorf("pki: reading the token's certificate: %w", err)
		}
		cert, err := x509.ParseCertificate(attrs[0].Value)
		if err != nil {
			return fmt.Errorf("pki: the token's certificate: %w", err)
		}
		k.Chain = []*x509.Certificate{cert}
	}
	switch k.Chain[0].PublicKey.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		return nil
	}
	return fmt.Errorf("pki: unsupported token key type %T", k.Chain[0].PublicKey)
}

func (k *PKCS11Key) objects(class uint, label string) ([]pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}
	if err := k.ctx.FindObjectsInit(k.session, tmpl); err != nil {
		return nil, fmt.Errorf("pki: PKCS #11 search: %w", err)
	}
	objs, _, err := k.ctx.FindObjects(k.session, 4)
	if ferr := k.ctx.FindObjectsFinal(k.session); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("pki: PKCS #11 search: %w", err)
	}
	return objs, nil
}

// KeyPair returns k with its chain.
func (k *PKCS11Key) KeyPair() *KeyPair { return &KeyPair{Key: k, Chain: k.Chain} }

// Public implements crypto.Signer.
func (k *PKCS11Key) Public() crypto.PublicKey { return k.Chain[0].PublicKey }

// sha256DigestInfo is the DER DigestInfo prefix for SHA-256 (RFC 8017
// §9.2), which CKM_RSA_PKCS expects before the hash.
var sha256DigestInfo = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// Sign implements crypto.Signer for SHA-256 digests.
func (k *PKCS11Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != crypto.SHA256 || len(digest) != 32 {
		return nil, errors.New("pki: the PKCS #11 signer supports SHA-256 only")
	}
	var mech *pkcs11.Mechanism
	input := digest
	_, ec := k.Public().(*ecdsa.PublicKey)
	switch o := opts.(type) {
	case *rsa.PSSOptions:
		if ec {
			return nil, errors.New("pki: PSS options for an ECDSA key")
		}
		salt := o.SaltLength
		if salt == rsa.PSSSaltLengthAuto || salt == rsa.PSSSaltLengthEqualsHash {
			salt = 32
		}
		mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, pkcs11.NewPSSParams(pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, uint(salt)))
	default:
		if ec {
			mech = pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)
		} else {
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
			input = append(append([]byte(nil), sha256DigestInfo...), digest...)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.ctx.SignInit(k.session, []*pkcs11.Mechanism{mech}, k.key); err != nil {
		return nil, fmt.Errorf("pki: PKCS #11 sign: %w", err)
	}
	sig, err := k.ctx.Sign(k.session, input)
	if err != nil {
		return nil, fmt.Errorf("pki: PKCS #11 sign: %w", err)
	}
	if !ec {
		return sig, nil
	}
	// CKM_ECDSA returns r‖s; X.509 and CMS want the DER SEQUENCE.
	if len(sig)%2 != 0 {
		return nil, errors.New("pki: odd-length ECDSA signature from the token")
	}
	n := len(sig) / 2
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])})
}

// Close logs out and ends the session.
func (k *PKCS11Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ctx.Logout(k.session)
	return k.ctx.CloseSession(k.session)
}
