package pki

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// InitOptions describe a new installation's CA and seal.
type InitOptions struct {
	// Organisation names the organisation in both certificates.
	Organisation string
	// Country is the ISO 3166 code put in both subjects, if set.
	Country string
	// SealName is the seal certificate's common name; empty means
	// "<Organisation> seal".
	SealName string
	// Passphrase protects both PKCS #12 key files; it is required.
	Passphrase string
	// CAValidity defaults to 10 years, SealValidity to 3 years.
	CAValidity, SealValidity time.Duration
	// RSA selects RSA-3072 keys instead of ECDSA P-256.
	RSA bool
	// CRLURL goes in the seal certificate's CRL distribution points, and
	// OCSPURL in its authority information access, when set.
	CRLURL, OCSPURL string
}

// ErrExists is InitCA's refusal to overwrite a key or certificate file.
var ErrExists = errors.New("already exists")

// InitCA creates, in dir, a signing CA and an organisation seal
// certificate issued by it: the files named by CACertFile, CAKeyFile,
// SealCertFile and SealKeyFile. It never overwrites an existing file.
func InitCA(dir string, opts InitOptions) error {
	if opts.Organisation == "" {
		return errors.New("pki: the organisation name is required")
	}
	if opts.Passphrase == "" {
		return errors.New("pki: a passphrase is required to protect the keys")
	}
	for _, name := range []string{CACertFile, CAKeyFile, SealCertFile, SealKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("pki: %s %w, not overwriting", filepath.Join(dir, name), ErrExists)
		}
	}
	if opts.CAValidity == 0 {
		opts.CAValidity = 10 * 365 * 24 * time.Hour
	}
	if opts.SealValidity == 0 {
		opts.SealValidity = 3 * 365 * 24 * time.Hour
	}
	if opts.SealName == "" {
		opts.SealName = opts.Organisation + " seal"
	}
	var country []string
	if opts.Country != "" {
		country = []string{opts.Country}
	}
	org := []string{opts.Organisation}
	ca, err := NewCA(pkix.Name{CommonName: opts.Organisation + " signing CA", Organization: org, Country: country}, opts.CAValidity, opts.RSA)
	if err != nil {
		return err
	}
	ca.CRLURL, ca.OCSPURL = opts.CRLURL, opts.OCSPURL
	sealKey, err := newKey(opts.RSA)
	if err != nil {
		return err
	}
	sealCert, err := ca.Issue(pkix.Name{CommonName: opts.SealName, Organization: org, Country: country}, nil, sealKey.Public(), opts.SealValidity)
	if err != nil {
		return err
	}
	caP12, err := pkcs12.Modern.Encode(ca.Key, ca.Cert, nil, opts.Passphrase)
	if err != nil {
		return fmt.Errorf("pki: encoding CA key: %w", err)
	}
	sealP12, err := pkcs12.Modern.Encode(sealKey, sealCert, []*x509.Certificate{ca.Cert}, opts.Passphrase)
	if err != nil {
		return fmt.Errorf("pki: encoding seal key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	files := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{CACertFile, certsPEM(ca.Cert), 0o644},
		{CAKeyFile, caP12, 0o600},
		{SealCertFile, certsPEM(sealCert, ca.Cert), 0o644},
		{SealKeyFile, sealP12, 0o600},
	}
	for _, f := range files {
		if err := writeNew(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}

// LoadCA opens the signing CA in dir with passphrase.
func LoadCA(dir, passphrase string) (*CA, error) {
	kp, err := LoadPKCS12(filepath.Join(dir, CAKeyFile), passphrase)
	if err != nil {
		return nil, err
	}
	if !kp.Chain[0].IsCA {
		return nil, fmt.Errorf("pki: %s holds no CA certificate", filepath.Join(dir, CAKeyFile))
	}
	return &CA{Cert: kp.Chain[0], Key: kp.Key}, nil
}

// LoadSeal opens the organisation's seal key and chain in dir.
func LoadSeal(dir, passphrase string) (*KeyPair, error) {
	return LoadPKCS12(filepath.Join(dir, SealKeyFile), passphrase)
}

// LoadCACert reads the CA certificate in dir, for verification, which
// needs no passphrase.
func LoadCACert(dir string) (*x509.Certificate, error) {
	certs, err := ReadCertificates(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// LoadPKCS12 reads a PKCS #12 file holding a private key, its certificate
// and optionally the issuers.
func LoadPKCS12(path, passphrase string) (*KeyPair, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	key, cert, cas, err := pkcs12.DecodeChain(data, passphrase)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return nil, fmt.Errorf("%w: %s", ErrBadPassphrase, path)
		}
		return nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	return keyPair(path, key, append([]*x509.Certificate{cert}, cas...))
}

// LoadPEM reads an unencrypted PEM private key (PKCS #8, PKCS #1 or SEC 1)
// and a PEM certificate chain, signer first. Keys that need protection at
// rest belong in PKCS #12 files or tokens.
func LoadPEM(keyPath, certPath string) (*KeyPair, error) {
	data, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("pki: %s: no PEM block", keyPath)
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("pki: %s: encrypted PEM keys are not supported, use a PKCS #12 file", keyPath)
	default:
		return nil, fmt.Errorf("pki: %s: PEM block %q is not a private key", keyPath, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", keyPath, err)
	}
	chain, err := ReadCertificates(certPath)
	if err != nil {
		return nil, err
	}
	return keyPair(keyPath, key, chain)
}

// ReadCertificates reads the PEM certificates in path, in file order.
func ReadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("pki: %s: no PEM certificate", path)
	}
	return certs, nil
}

func keyPair(path string, key any, chain []*x509.Certificate) (*KeyPair, error) {
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s: key type %T cannot sign", path, key)
	}
	pub, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(signer.Public()) {
		return nil, fmt.Errorf("pki: %s: the certificate does not match the private key", path)
	}
	return &KeyPair{Key: signer, Chain: chain}, nil
}

func certsPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("pki: %w", err)
	}
	return f.Close()
}
