package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
)

// ErrMalformed reports DER that is not a CMS SignedData with one signer.
var ErrMalformed = errors.New("cms: malformed SignedData")

// Parsed is a SignedData read back for verification.
type Parsed struct {
	// Certificates are all certificates embedded in the SignedData.
	Certificates []*x509.Certificate
	// Signer is the certificate named by the SignerInfo's identifier, nil
	// when the SignedData does not embed it.
	Signer *x509.Certificate
	// Timestamp is the RFC 3161 signature time-stamp token found in the
	// unsigned attributes, nil when there is none.
	Timestamp []byte
	// HasSigningTime tells whether a signing-time signed attribute is
	// present, which PAdES baseline signatures must not have.
	HasSigningTime bool
	// HasSigningCertificateV2 tells whether the ESS signing-certificate-v2
	// attribute is present and names Signer.
	HasSigningCertificateV2 bool
	// EncapsulatedContent is the eContent, set for time-stamp tokens, which
	// encapsulate their TSTInfo, and nil for detached signatures.
	EncapsulatedContent []byte

	info signerInfo
}

// Parse decodes der, a DER ContentInfo holding a SignedData with exactly
// one SignerInfo. Bytes after the DER value (PDF /Contents padding) are
// ignored when they are all zero.
func Parse(der []byte) (*Parsed, error) {
	var ci contentInfo
	rest, err := asn1.Unmarshal(der, &ci)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(bytes.Trim(rest, "\x00")) != 0 {
		return nil, fmt.Errorf("%w: trailing data after the ContentInfo", ErrMalformed)
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, fmt.Errorf("%w: content type %v is not signedData", ErrMalformed, ci.ContentType)
	}
	var sd signedData
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(sd.SignerInfos) != 1 {
		return nil, fmt.Errorf("%w: %d signers, want 1", ErrMalformed, len(sd.SignerInfos))
	}
	p := &Parsed{info: sd.SignerInfos[0]}
	if len(sd.EncapContentInfo.EContent.Bytes) > 0 {
		var octets []byte
		if _, err := asn1.Unmarshal(sd.EncapContentInfo.EContent.Bytes, &octets); err != nil {
			return nil, fmt.Errorf("%w: eContent: %v", ErrMalformed, err)
		}
		p.EncapsulatedContent = octets
	}
	if len(sd.Certificates.Bytes) > 0 {
		p.Certificates, err = x509.ParseCertificates(sd.Certificates.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificates: %v", ErrMalformed, err)
		}
	}
	for _, c := range p.Certificates {
		if bytes.Equal(c.RawIssuer, p.info.SID.Issuer.FullBytes) && c.SerialNumber.Cmp(p.info.SID.Serial) == 0 {
			p.Signer = c
			break
		}
	}
	if err := p.readAttributes(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Parsed) readAttributes() error {
	attrs, err := parseAttributes(p.info.SignedAttrs.Bytes)
	if err != nil {
		return fmt.Errorf("%w: signed attributes: %v", ErrMalformed, err)
	}
	for _, a := range attrs {
		switch {
		case a.Type.Equal(oidAttrSigningTime):
			p.HasSigningTime = true
		case a.Type.Equal(oidAttrSigningCertV2) && p.Signer != nil:
			var sc signingCertificateV2
			if _, err := asn1.Unmarshal(a.Values.Bytes, &sc); err == nil && len(sc.Certs) > 0 {
				h := sha256.Sum256(p.Signer.Raw)
				p.HasSigningCertificateV2 = bytes.Equal(sc.Certs[0].CertHash, h[:])
			}
		}
	}
	unsigned, err := parseAttributes(p.info.UnsignedAttrs.Bytes)
	if err != nil {
		return fmt.Errorf("%w: unsigned attributes: %v", ErrMalformed, err)
	}
	for _, a := range unsigned {
		if a.Type.Equal(oidAttrSignatureTimeStamp) {
			p.Timestamp = a.Values.Bytes
		}
	}
	return nil
}

// parseAttributes decodes the content of a SET OF Attribute; each Values
// field keeps the SET's content in Bytes.
func parseAttributes(der []byte) ([]attribute, error) {
	var attrs []attribute
	for len(der) > 0 {
		var a attribute
		rest, err := asn1.Unmarshal(der, &a)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
		der = rest
	}
	return attrs, nil
}

// Signature returns the signature value, which a signature time-stamp
// token covers.
func (p *Parsed) Signature() []byte { return p.info.Signature }

// Verify checks that the signed attributes carry contentDigest (the
// SHA-256 of the detached content) and that the signer's key signed them.
func (p *Parsed) Verify(contentDigest []byte) error {
	if p.Signer == nil {
		return errors.New("cms: the signer's certificate is not embedded")
	}
	if !p.info.DigestAlgorithm.Algorithm.Equal(oidSHA256) {
		return fmt.Errorf("cms: digest algorithm %v, only SHA-256 is supported", p.info.DigestAlgorithm.Algorithm)
	}
	attrs, err := parseAttributes(p.info.SignedAttrs.Bytes)
	if err != nil || len(attrs) == 0 {
		return fmt.Errorf("%w: no signed attributes", ErrMalformed)
	}
	var digest []byte
	for _, a := range attrs {
		if a.Type.Equal(oidAttrMessageDigest) {
			if _, err := asn1.Unmarshal(a.Values.Bytes, &digest); err != nil {
				return fmt.Errorf("%w: message-digest: %v", ErrMalformed, err)
			}
		}
	}
	if !bytes.Equal(digest, contentDigest) {
		return errors.New("cms: message digest does not match the signed content")
	}
	setDER, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: p.info.SignedAttrs.Bytes})
	if err != nil {
		return err
	}
	h := sha256.Sum256(setDER)
	return verifySignature(p.Signer.PublicKey, p.info.SignatureAlgorithm.Algorithm, h[:], p.info.Signature)
}

func verifySignature(pub crypto.PublicKey, alg asn1.ObjectIdentifier, hashed, sig []byte) error {
	var err error
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch {
		case alg.Equal(oidRSAPSS):
			err = rsa.VerifyPSS(k, crypto.SHA256, hashed, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		case alg.Equal(oidSHA256WithRSA), alg.Equal(oidRSAEncryption):
			err = rsa.VerifyPKCS1v15(k, crypto.SHA256, hashed, sig)
		default:
			return fmt.Errorf("cms: signature algorithm %v does not fit an RSA key", alg)
		}
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, hashed, sig) {
			err = errors.New("ECDSA verification failed")
		}
	default:
		return fmt.Errorf("cms: unsupported public key type %T", pub)
	}
	if err != nil {
		return fmt.Errorf("cms: signature does not verify: %w", err)
	}
	return nil
}
