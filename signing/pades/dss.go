package pades

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"os"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// ValidationData is what a verifier needs to check signatures long after
// certificates expired or revocation services went away (ETSI EN 319
// 142-1 §5.4.2).
type ValidationData struct {
	// Certs are the certificates of every path: signers', CAs', TSAs'.
	Certs []*x509.Certificate
	// CRLs are DER certificate revocation lists.
	CRLs [][]byte
	// OCSPs are DER OCSP responses.
	OCSPs [][]byte
}

// AddDSS writes in followed by an incremental update adding vd to the
// document security store (/DSS), merged with any /DSS already present.
func AddDSS(ctx context.Context, in []byte, out io.Writer, vd ValidationData, maxInput int64) error {
	return addDSS(ctx, source{data: in}, out, vd, maxInput)
}

// AddDSSFile is AddDSS for a document in a file, streamed as SignFile
// does.
func AddDSSFile(ctx context.Context, in *os.File, out io.Writer, vd ValidationData, maxInput int64) error {
	return withFile(in, maxInput, func(src source) error { return addDSS(ctx, src, out, vd, maxInput) })
}

// addDSS is AddDSS for a source.
func addDSS(ctx context.Context, src source, out io.Writer, vd ValidationData, maxInput int64) error {
	if err := checkSize(src.data, maxInput); err != nil {
		return err
	}
	copied := src.startCopy(out)
	defer copied.wait()
	d, err := withDocument(ctx, src.data, maxInput, func(d *document) error { return d.buildDSS(vd) })
	if err != nil {
		return err
	}
	defer d.f.Release()
	tail := d.write(int64(len(src.data)))
	if err := copied.finish(); err != nil {
		return err
	}
	_, err = out.Write(tail)
	return err
}

// buildDSS adds vd to the document's /DSS.
func (d *document) buildDSS(vd ValidationData) error {
	root := d.catalog()
	dss := types.Dict{"Type": types.Name("DSS")}
	if obj, found := root.Find("DSS"); found && obj != nil {
		old, err := d.f.Dict(obj)
		if err != nil || old == nil {
			return malformed(err, "/DSS is not a dictionary")
		}
		for k, v := range old {
			dss[k] = v
		}
	}
	var certs [][]byte
	for _, c := range vd.Certs {
		certs = append(certs, c.Raw)
	}
	for key, items := range map[string][][]byte{"Certs": certs, "CRLs": vd.CRLs, "OCSPs": vd.OCSPs} {
		if len(items) == 0 {
			continue
		}
		var arr types.Array
		if obj, found := dss.Find(key); found && obj != nil {
			var err error
			if arr, err = d.f.Array(obj); err != nil {
				return malformed(err, "/DSS /%s is not an array", key)
			}
		}
		for _, der := range dedupe(items) {
			ref, err := d.stream(der)
			if err != nil {
				return err
			}
			arr = append(arr, ref)
		}
		dss[key] = arr
	}
	root["DSS"] = d.newObject(dss)
	d.updateCatalog()
	return nil
}

// stream adds a Flate-compressed stream holding data.
func (d *document) stream(data []byte) (types.IndirectRef, error) {
	sd := types.StreamDict{
		Dict:           types.Dict{"Filter": types.Name("FlateDecode")},
		Content:        data,
		FilterPipeline: []types.PDFFilter{{Name: "FlateDecode"}},
	}
	if err := sd.Encode(); err != nil {
		return types.IndirectRef{}, fmt.Errorf("pades: DSS stream: %w", err)
	}
	return d.newObject(sd), nil
}

func dedupe(items [][]byte) [][]byte {
	var out [][]byte
next:
	for _, it := range items {
		for _, o := range out {
			if bytes.Equal(o, it) {
				continue next
			}
		}
		out = append(out, it)
	}
	return out
}
