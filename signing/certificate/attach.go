package certificate

import (
	"bytes"
	"compress/zlib"
	"crypto/md5"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// fpdf writes its one revision with a classic cross-reference table and
// this trailer; its catalog ends with the /Names dictionary.
var (
	trailerRE   = regexp.MustCompile(`trailer\n<<\n/Size (\d+)\n/Root (\d+) 0 R\n/Info (\d+) 0 R\n>>\nstartxref\n(\d+)\n%%EOF\n?$`)
	namesOfRoot = "\n/Names <<"
)

// associatedFilesVersion is the PDF version the catalog declares over
// fpdf's 1.3 header: PDF/A-3 associates files (/AF, /AFRelationship) in
// files of PDF 1.7 (ISO 19005-3 annex E; ISO 32000-2 took them in).
const associatedFilesVersion = "1.7"

// attach appends to pdf an incremental update (ISO 32000-1 §7.5.6) that
// embeds content as the file name: an /EmbeddedFile stream, its file
// specification with /AFRelationship /Data, and a new catalog that names it
// in /Names /EmbeddedFiles and in /AF, as PDF/A-3 associates files. fpdf
// writes neither /AF nor /AFRelationship, hence the update; it keeps
// fpdf's revision untouched and the whole output deterministic.
func attach(pdf []byte, name string, content []byte, at time.Time) ([]byte, error) {
	m := trailerRE.FindSubmatch(pdf)
	if m == nil {
		return nil, fmt.Errorf("certificate: the PDF does not end with the trailer fpdf writes")
	}
	size, _ := strconv.Atoi(string(m[1]))
	root, _ := strconv.Atoi(string(m[2]))
	info, _ := strconv.Atoi(string(m[3]))
	prev, _ := strconv.Atoi(string(m[4]))
	catalog, err := catalogEntries(pdf, root)
	if err != nil {
		return nil, err
	}

	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(content) // a bytes.Buffer does not fail
	zw.Close()
	sum := md5.Sum(content) // /CheckSum is MD5 by definition (ISO 32000-1 table 46)

	out := bytes.NewBuffer(append(make([]byte, 0, len(pdf)+z.Len()+1024), pdf...))
	if !bytes.HasSuffix(pdf, []byte("\n")) {
		out.WriteByte('\n')
	}
	stream, spec := size, size+1
	offsets := map[int]int{}
	offsets[stream] = out.Len()
	fmt.Fprintf(out, "%d 0 obj\n<< /Type /EmbeddedFile /Subtype /application#2Fjson /Filter /FlateDecode /Length %d "+
		"/Params << /Size %d /CheckSum <%x> /CreationDate %s /ModDate %s >> >>\nstream\n",
		stream, z.Len(), len(content), sum, pdfDate(at), pdfDate(at))
	out.Write(z.Bytes())
	out.WriteString("\nendstream\nendobj\n")
	offsets[spec] = out.Len()
	fmt.Fprintf(out, "%d 0 obj\n<< /Type /Filespec /F %s /UF %s /Desc %s /AFRelationship /Data /EF << /F %d 0 R /UF %d 0 R >> >>\nendobj\n",
		spec, literal(asciiName(name)), textString(name), textString("Audit trail (JSON)"), stream, stream)
	offsets[root] = out.Len()
	fmt.Fprintf(out, "%d 0 obj\n<<%s\n/Version /%s\n/Names << /EmbeddedFiles << /Names [%s %d 0 R] >> >>\n/AF [%d 0 R]\n>>\nendobj\n",
		root, catalog, associatedFilesVersion, textString(name), spec, spec)

	xref := out.Len()
	out.WriteString("xref\n0 1\n0000000000 65535 f \n")
	fmt.Fprintf(out, "%d 1\n%010d 00000 n \n", root, offsets[root])
	fmt.Fprintf(out, "%d 2\n%010d 00000 n \n%010d 00000 n \n", stream, offsets[stream], offsets[spec])
	fmt.Fprintf(out, "trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n",
		spec+1, root, info, prev, xref)
	return out.Bytes(), nil
}

// catalogEntries returns the entries of fpdf's catalog object root but its
// /Names dictionary, which fpdf writes last and the update replaces.
func catalogEntries(pdf []byte, root int) (string, error) {
	head := fmt.Sprintf("\n%d 0 obj\n<<", root)
	start := bytes.LastIndex(pdf, []byte(head))
	if start < 0 {
		return "", fmt.Errorf("certificate: the PDF has no catalog object %d", root)
	}
	body := pdf[start+len(head):]
	end := bytes.Index(body, []byte("\nendobj"))
	names := bytes.Index(body, []byte(namesOfRoot))
	if end < 0 || names < 0 || names > end {
		return "", fmt.Errorf("certificate: the PDF's catalog is not the one fpdf writes")
	}
	return string(body[:names]), nil
}

// pdfDate writes t as a PDF date (ISO 32000-1 §7.9.4), in UTC.
func pdfDate(t time.Time) string {
	return "(D:" + t.UTC().Format("20060102150405") + "Z)"
}

// asciiName is name for the legacy /F entry, which is not Unicode: other
// characters become '_'.
func asciiName(name string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '_'
		}
		return r
	}, name)
}

// literal writes an ASCII string as a PDF literal string.
func literal(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `(`, `\(`, `)`, `\)`)
	return "(" + r.Replace(s) + ")"
}

// textString writes s as a PDF text string in UTF-16BE with its byte order
// mark, as a hex string (ISO 32000-1 §7.9.2.2).
func textString(s string) string {
	var b strings.Builder
	b.WriteString("<FEFF")
	for _, u := range utf16.Encode([]rune(s)) {
		fmt.Fprintf(&b, "%04X", u)
	}
	b.WriteString(">")
	return b.String()
}
