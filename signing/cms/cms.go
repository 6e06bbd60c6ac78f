// Package cms builds and parses the CMS SignedData (RFC 5652) carried by a
// PAdES signature (ETSI EN 319 142-1, sub-filter ETSI.CAdES.detached, which
// uses the CAdES profile of ETSI EN 319 122-1).
//
// A signature made here is detached (no encapsulated content), uses SHA-256,
// and has exactly three signed attributes: content-type, message-digest and
// ESS signing-certificate-v2 (RFC 5035). It deliberately has no signing-time
// attribute: PAdES puts the claimed time in the signature dictionary's /M.
// A signature time-stamp token (RFC 3161) can be added afterwards as an
// unsigned attribute, which turns a B-B signature into a B-T one.
//
// Any crypto.Signer works (RSA PKCS #1 v1.5, RSASSA-PSS, ECDSA), so keys held
// in a hardware token sign exactly like software keys.
package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"sort"
)

// Object identifiers used by the PAdES CMS profile.
var (
	oidData                   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidAttrContentType        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidAttrMessageDigest      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidAttrSigningTime        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidAttrSigningCertV2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}
	oidAttrSignatureTimeStamp = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14}
	oidSHA256                 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSAEncryption          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256WithRSA          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidRSAPSS                 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1                   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidECDSAWithSHA256        = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	sha256AlgID               = pkix.AlgorithmIdentifier{Algorithm: oidSHA256, Parameters: asn1.NullRawValue}
)

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,tag:0"`
}

type signedData struct {
	Version          int
	DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
	EncapContentInfo encapContentInfo
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      []signerInfo  `asn1:"set"`
}

type encapContentInfo struct {
	EContentType asn1.ObjectIdentifier
	EContent     asn1.RawValue `asn1:"optional,explicit,tag:0"`
}

type signerInfo struct {
	Version            int
	SID                issuerAndSerial
	DigestAlgorithm    pkix.AlgorithmIdentifier
	SignedAttrs        asn1.RawValue `asn1:"optional,tag:0"`
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          []byte
	UnsignedAttrs      asn1.RawValue `asn1:"optional,tag:1"`
}

type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue
}

// essCertIDv2 omits hashAlgorithm: SHA-256 is its DER default (RFC 5035).
type essCertIDv2 struct {
	CertHash     []byte
	IssuerSerial issuerSerial
}

type issuerSerial struct {
	Issuer asn1.RawValue // GeneralNames holding one directoryName
	Serial *big.Int
}

type signingCertificateV2 struct {
	Certs []essCertIDv2
}

type pssParams struct {
	Hash       pkix.AlgorithmIdentifier `asn1:"explicit,tag:0"`
	MGF        pkix.AlgorithmIdentifier `asn1:"explicit,tag:1"`
	SaltLength int                      `asn1:"explicit,tag:2"`
}

// SignedData is a signature under construction: signed, and waiting for an
// optional time-stamp token before being encoded.
type SignedData struct {
	chain     []*x509.Certificate
	info      signerInfo
	timestamp []byte
}

// Options tune how the signature value is computed.
type Options struct {
	// PSS selects RSASSA-PSS (salt length 32) instead of RSA PKCS #1 v1.5 for
	// RSA keys; some policies and HSMs require it.
	PSS bool
}

// Sign signs contentDigest, the SHA-256 of the detached content (for PDF, of
// the ByteRange), with key. chain starts with the signer's certificate,
// whose public key must be key's; the rest (issuers) is embedded so that
// validators can build the path.
func Sign(contentDigest []byte, key crypto.Signer, chain []*x509.Certificate, opts Options) (*SignedData, error) {
	if len(contentDigest) != sha256.Size {
		return nil, fmt.Errorf("cms: content digest is %d bytes, SHA-256 needs %d", len(contentDigest), sha256.Size)
	}
	if len(chain) == 0 {
		return nil, errors.New("cms: no signer certificate")
	}
	cert := chain[0]
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("cms: signer certificate does not match the signing key")
	}
	sigAlg, signerOpts, err := signatureAlgorithm(key.Public(), opts)
	if err != nil {
		return nil, err
	}
	attrs, err := signedAttributes(contentDigest, cert)
	if err != nil {
		return nil, err
	}
	// The signature covers the DER SET OF encoding, not the [0] IMPLICIT
	// tagging used inside SignerInfo (RFC 5652 §5.4).
	setDER, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: attrs})
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(setDER)
	sig, err := key.Sign(rand.Reader, h[:], signerOpts)
	if err != nil {
		return nil, fmt.Errorf("cms: signing: %w", err)
	}
	return &SignedData{
		chain: chain,
		info: signerInfo{
			Version:            1,
			SID:                issuerAndSerial{Issuer: asn1.RawValue{FullBytes: cert.RawIssuer}, Serial: cert.SerialNumber},
			DigestAlgorithm:    sha256AlgID,
			SignedAttrs:        asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: attrs},
			SignatureAlgorithm: sigAlg,
			Signature:          sig,
		},
	}, nil
}

// Signature returns the signature value, which a signature time-stamp
// token must cover (ETSI EN 319 122-1 §5.3).
func (s *SignedData) Signature() []byte { return s.info.Signature }

// SetTimestamp attaches token, an RFC 3161 TimeStampToken over the
// signature value, as the unsigned attribute signature-time-stamp.
func (s *SignedData) SetTimestamp(token []byte) { s.timestamp = token }

// Bytes returns the DER encoding of the ContentInfo wrapping the SignedData.
func (s *SignedData) Bytes() ([]byte, error) {
	info := s.info
	if s.timestamp != nil {
		attr, err := encodeAttribute(oidAttrSignatureTimeStamp, asn1.RawValue{FullBytes: s.timestamp})
		if err != nil {
			return nil, err
		}
		info.UnsignedAttrs = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: attr}
	}
	var certs []byte
	for _, c := range s.chain {
		certs = append(certs, c.Raw...)
	}
	sd := signedData{
		Version:          1,
		DigestAlgorithms: []pkix.AlgorithmIdentifier{sha256AlgID},
		EncapContentInfo: encapContentInfo{EContentType: oidData},
		Certificates:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: certs},
		SignerInfos:      []signerInfo{info},
	}
	inner, err := asn1.Marshal(sd)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(contentInfo{ContentType: oidSignedData, Content: asn1.RawValue{FullBytes: explicit0(inner)}})
}

// explicit0 wraps der in an [0] EXPLICIT tag.
func explicit0(der []byte) []byte {
	b, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: der})
	return b
}

// MaxSize bounds the DER size of a signature by key and chain, plus
// timestampSize for a signature time-stamp token (0 for none). PDF writers
// must reserve this much before signing, since the signature covers the
// bytes around it.
func MaxSize(key crypto.PublicKey, chain []*x509.Certificate, timestampSize int) int {
	n := 600 // ContentInfo, SignedData and SignerInfo framing, attributes
	for _, c := range chain {
		n += len(c.Raw) + 8
	}
	if len(chain) > 0 {
		n += 2 * len(chain[0].RawIssuer)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		n += k.Size() + 8
	case *ecdsa.PublicKey:
		n += 2*((k.Params().BitSize+7)/8) + 16
	default:
		n += 1024
	}
	if timestampSize > 0 {
		n += timestampSize + 32
	}
	return n
}

func signatureAlgorithm(pub crypto.PublicKey, opts Options) (pkix.AlgorithmIdentifier, crypto.SignerOpts, error) {
	switch pub.(type) {
	case *rsa.PublicKey:
		if !opts.PSS {
			return pkix.AlgorithmIdentifier{Algorithm: oidSHA256WithRSA, Parameters: asn1.NullRawValue}, crypto.SHA256, nil
		}
		mgfParams, err := asn1.Marshal(sha256AlgID)
		if err != nil {
			return pkix.AlgorithmIdentifier{}, nil, err
		}
		params, err := asn1.Marshal(pssParams{
			Hash:       sha256AlgID,
			MGF:        pkix.AlgorithmIdentifier{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: mgfParams}},
			SaltLength: sha256.Size,
		})
		if err != nil {
			return pkix.AlgorithmIdentifier{}, nil, err
		}
		return pkix.AlgorithmIdentifier{Algorithm: oidRSAPSS, Parameters: asn1.RawValue{FullBytes: params}},
			&rsa.PSSOptions{SaltLength: sha256.Size, Hash: crypto.SHA256}, nil
	case *ecdsa.PublicKey:
		return pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA256}, crypto.SHA256, nil
	}
	return pkix.AlgorithmIdentifier{}, nil, fmt.Errorf("cms: unsupported key type %T (RSA or ECDSA needed)", pub)
}

// signedAttributes returns the DER of the signed attributes, sorted as DER
// requires for a SET OF.
func signedAttributes(contentDigest []byte, cert *x509.Certificate) ([]byte, error) {
	certHash := sha256.Sum256(cert.Raw)
	dirName, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: cert.RawIssuer})
	if err != nil {
		return nil, err
	}
	generalNames, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: dirName})
	if err != nil {
		return nil, err
	}
	essDER, err := asn1.Marshal(signingCertificateV2{Certs: []essCertIDv2{{
		CertHash:     certHash[:],
		IssuerSerial: issuerSerial{Issuer: asn1.RawValue{FullBytes: generalNames}, Serial: cert.SerialNumber},
	}}})
	if err != nil {
		return nil, err
	}
	ctDER, err := asn1.Marshal(oidData)
	if err != nil {
		return nil, err
	}
	mdDER, err := asn1.Marshal(contentDigest)
	if err != nil {
		return nil, err
	}
	var encoded [][]byte
	for _, a := range []struct {
		oid asn1.ObjectIdentifier
		der []byte
	}{{oidAttrContentType, ctDER}, {oidAttrMessageDigest, mdDER}, {oidAttrSigningCertV2, essDER}} {
		e, err := encodeAttribute(a.oid, asn1.RawValue{FullBytes: a.der})
		if err != nil {
			return nil, err
		}
		encoded = append(encoded, e)
	}
	sort.Slice(encoded, func(i, j int) bool { return bytes.Compare(encoded[i], encoded[j]) < 0 })
	return bytes.Join(encoded, nil), nil
}

// encodeAttribute returns the DER of an Attribute with one value.
func encodeAttribute(oid asn1.ObjectIdentifier, value asn1.RawValue) ([]byte, error) {
	set, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: value.FullBytes})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(attribute{Type: oid, Values: asn1.RawValue{FullBytes: set}})
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
