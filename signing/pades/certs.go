package pades

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"

	"github.com/parapheur/parapheur/signing/cms"
)

// SignatureCertificates returns the certificates the signatures of in
// embed (ISO 32000-1 §12.8.3.3), those of their signature time-stamp
// tokens (RFC 3161) and those of its document time-stamps, each once: the
// certificates whose validation data a later /DSS must hold for every
// signature of the document to be long-term (PAdES B-LT and B-LTA, ETSI EN
// 319 142-1 §5.4), not only the last one.
func SignatureCertificates(ctx context.Context, in []byte, maxInput int64) ([]*x509.Certificate, error) {
	if err := checkSize(in, maxInput); err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	d, err := withDocument(ctx, in, maxInput, func(d *document) error {
		var err error
		certs, err = d.signatureCertificates()
		return err
	})
	if d != nil {
		d.f.Release()
	}
	return certs, err
}

// SignatureCertificatesFile is SignatureCertificates for a document in a
// file, read as SignFile reads it.
func SignatureCertificatesFile(ctx context.Context, in *os.File, maxInput int64) (certs []*x509.Certificate, err error) {
	err = withFile(in, maxInput, func(src source) error {
		certs, err = SignatureCertificates(ctx, src.data, maxInput)
		return err
	})
	return certs, err
}

// signatureCertificates walks the form's fields for signature values.
func (d *document) signatureCertificates() ([]*x509.Certificate, error) {
	form, err := d.f.Dict(d.catalog()["AcroForm"])
	if err != nil {
		return nil, malformed(err, "the /AcroForm")
	}
	if form == nil {
		return nil, nil // no form, no signature
	}
	fields, err := d.f.Array(form["Fields"])
	if err != nil {
		return nil, malformed(err, "the form's /Fields")
	}
	var certs []*x509.Certificate
	seen := map[string]bool{}
	var add func(der []byte) error
	add = func(der []byte) error {
		p, err := cms.Parse(der)
		if err != nil {
			return err
		}
		for _, c := range p.Certificates {
			if !seen[string(c.Raw)] {
				seen[string(c.Raw)] = true
				certs = append(certs, c)
			}
		}
		if p.Timestamp != nil {
			return add(p.Timestamp)
		}
		return nil
	}
	// Fields form a tree (/Kids); depth bounds a malicious cycle.
	var walk func(fields types.Array, depth int) error
	walk = func(fields types.Array, depth int) error {
		if depth > 32 {
			return malformed(nil, "form fields nested more than 32 deep")
		}
		for _, o := range fields {
			field, err := d.f.Dict(o)
			if err != nil || field == nil {
				return malformed(err, "a form field")
			}
			if kids, err := d.f.Array(field["Kids"]); err != nil {
				return malformed(err, "a form field's /Kids")
			} else if err := walk(kids, depth+1); err != nil {
				return err
			}
			if ft := field.NameEntry("FT"); ft == nil || *ft != "Sig" {
				continue
			}
			v, err := d.f.Dict(field["V"])
			if err != nil {
				return malformed(err, "a signature field's /V")
			}
			if v == nil {
				continue // an empty signature field
			}
			der, err := contentsOf(d, v)
			if err != nil {
				return err
			}
			if err := add(der); err != nil {
				return fmt.Errorf("%w: a signature's /Contents: %w", ErrMalformed, err)
			}
		}
		return nil
	}
	return certs, walk(fields, 0)
}

// contentsOf returns the DER of a signature dictionary's /Contents, with
// the zero padding of its placeholder, which cms.Parse allows.
func contentsOf(d *document, v types.Dict) ([]byte, error) {
	o, err := d.f.Resolve(v["Contents"])
	if err != nil {
		return nil, malformed(err, "a signature's /Contents")
	}
	var der []byte
	switch s := o.(type) {
	case types.HexLiteral:
		der, err = s.Bytes()
	case types.StringLiteral:
		der, err = types.Unescape(s.Value())
	default:
		return nil, malformed(nil, "a signature's /Contents is %T, not a string", o)
	}
	if err != nil {
		return nil, malformed(err, "a signature's /Contents")
	}
	return der, nil
}
