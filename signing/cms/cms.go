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
	"slices"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"
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
	sha256AlgIDDER            = mustMarshal(sha256AlgID)
)

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

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

// Options tune how the signature value is computed.
type Options struct {
	// PSS selects RSASSA-PSS (salt length 32) instead of RSA PKCS #1 v1.5 for
	// RSA keys; some policies and HSMs require it.
	PSS bool
}

// Signer makes signatures with one key and certificate chain. NewSigner
// does once the work that does not depend on the signed content (the
// checks, the signer's identifiers, the signing-certificate attribute), so
// that a PDF signer, which learns the digest last, has the least left to
// do once it is known.
type Signer struct {
	key   crypto.Signer
	chain []*x509.Certificate
	opts  crypto.SignerOpts
	// sigAlg and sid are the DER of the SignerInfo's signature algorithm
	// and of its IssuerAndSerialNumber.
	sigAlg, sid []byte
	// contentType and signingCert are the DER of the two signed
	// attributes that are the same for every signature.
	contentType, signingCert []byte
}

// NewSigner checks that chain starts with key's certificate and prepares
// signatures by key. The rest of chain (issuers) is embedded in each
// signature so that validators can build the path.
func NewSigner(key crypto.Signer, chain []*x509.Certificate, opts Options) (*Signer, error) {
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
	s := &Signer{key: key, chain: chain, opts: signerOpts}
	if s.sigAlg, err = asn1.Marshal(sigAlg); err != nil {
		return nil, err
	}
	s.sid, err = der(func(b *cryptobyte.Builder) {
		b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(cert.RawIssuer)
			b.AddASN1BigInt(cert.SerialNumber)
		})
	})
	if err != nil {
		return nil, err
	}
	if s.contentType, err = encodeAttribute(oidAttrContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) }); err != nil {
		return nil, err
	}
	// SigningCertificateV2 holding one ESSCertIDv2 without hashAlgorithm,
	// SHA-256 being its DER default (RFC 5035), whose IssuerSerial names
	// the issuer as GeneralNames with one directoryName.
	certHash := sha256.Sum256(cert.Raw)
	s.signingCert, err = encodeAttribute(oidAttrSigningCertV2, func(b *cryptobyte.Builder) {
		b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1OctetString(certHash[:])
					b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(casn1.Tag(4).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
								b.AddBytes(cert.RawIssuer)
							})
						})
						b.AddASN1BigInt(cert.SerialNumber)
					})
				})
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Sign signs contentDigest, the SHA-256 of the detached content (for PDF,
// of the ByteRange), with key; see NewSigner.
func Sign(contentDigest []byte, key crypto.Signer, chain []*x509.Certificate, opts Options) (*SignedData, error) {
	s, err := NewSigner(key, chain, opts)
	if err != nil {
		return nil, err
	}
	return s.Sign(contentDigest)
}

// Sign signs contentDigest, the SHA-256 of the detached content.
func (s *Signer) Sign(contentDigest []byte) (*SignedData, error) {
	if len(contentDigest) != sha256.Size {
		return nil, fmt.Errorf("cms: content digest is %d bytes, SHA-256 needs %d", len(contentDigest), sha256.Size)
	}
	messageDigest, err := encodeAttribute(oidAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(contentDigest) })
	if err != nil {
		return nil, err
	}
	// A SET OF is sorted in DER (X.690 §11.6).
	attrs := [][]byte{s.contentType, messageDigest, s.signingCert}
	slices.SortFunc(attrs, bytes.Compare)
	signedAttrs := bytes.Join(attrs, nil)
	// The signature covers the DER SET OF encoding, not the [0] IMPLICIT
	// tagging used inside SignerInfo (RFC 5652 §5.4).
	set, err := der(func(b *cryptobyte.Builder) {
		b.AddASN1(casn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(signedAttrs) })
	})
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(set)
	sig, err := s.key.Sign(rand.Reader, h[:], s.opts)
	if err != nil {
		return nil, fmt.Errorf("cms: signing: %w", err)
	}
	return &SignedData{signer: s, signedAttrs: signedAttrs, signature: sig}, nil
}

// SignedData is a signature under construction: signed, and waiting for an
// optional time-stamp token before being encoded.
type SignedData struct {
	signer *Signer
	// signedAttrs is the content of the signed attributes' SET.
	signedAttrs, signature, timestamp []byte
}

// Signature returns the signature value, which a signature time-stamp
// token must cover (ETSI EN 319 122-1 §5.3).
func (sd *SignedData) Signature() []byte { return sd.signature }

// SetTimestamp attaches token, an RFC 3161 TimeStampToken over the
// signature value, as the unsigned attribute signature-time-stamp.
func (sd *SignedData) SetTimestamp(token []byte) { sd.timestamp = token }

// Bytes returns the DER encoding of the ContentInfo wrapping the
// SignedData (RFC 5652 §3, §5.1, §5.3).
func (sd *SignedData) Bytes() ([]byte, error) {
	s := sd.signer
	var unsigned []byte
	if sd.timestamp != nil {
		var err error
		unsigned, err = encodeAttribute(oidAttrSignatureTimeStamp, func(b *cryptobyte.Builder) { b.AddBytes(sd.timestamp) })
		if err != nil {
			return nil, err
		}
	}
	return der(func(b *cryptobyte.Builder) {
		b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
			b.AddASN1ObjectIdentifier(oidSignedData)
			b.AddASN1(casn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
					b.AddASN1Int64(1)
					b.AddASN1(casn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(sha256AlgIDDER) })
					b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) })
					b.AddASN1(casn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						for _, c := range s.chain {
							b.AddBytes(c.Raw)
						}
					})
					b.AddASN1(casn1.SET, func(b *cryptobyte.Builder) {
						b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
							b.AddASN1Int64(1)
							b.AddBytes(s.sid)
							b.AddBytes(sha256AlgIDDER)
							b.AddASN1(casn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(sd.signedAttrs) })
							b.AddBytes(s.sigAlg)
							b.AddASN1OctetString(sd.signature)
							if unsigned != nil {
								b.AddASN1(casn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(unsigned) })
							}
						})
					})
				})
			})
		})
	})
}

// der returns what build adds, or the first error it met.
func der(build cryptobyte.BuilderContinuation) ([]byte, error) {
	var b cryptobyte.Builder
	build(&b)
	return b.Bytes()
}

// encodeAttribute returns the DER of an Attribute of type oid with the one
// value that value adds.
func encodeAttribute(oid asn1.ObjectIdentifier, value cryptobyte.BuilderContinuation) ([]byte, error) {
	return der(func(b *cryptobyte.Builder) {
		b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1(casn1.SET, value)
		})
	})
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

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
