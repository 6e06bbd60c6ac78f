package message

import (
	"io"
	"net/url"
	"strings"

	gomessage "github.com/emersion/go-message"
)

// fromWindows1252 decodes s as windows-1252, which also covers the
// printable iso-8859-1 characters.
func fromWindows1252(s string) string {
	r, err := gomessage.CharsetReader("windows-1252", strings.NewReader(s))
	if err != nil {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// toUTF8Params rewrites the extended parameters (name*=charset'lang'value
// and the continuations name*0*=…, name*1*=…) of a header value into UTF-8.
// Only segment 0 names the charset; the others use it too.
func toUTF8Params(v string) string {
	segments := strings.Split(v, ";")
	charsets := map[string]string{}
	for i, seg := range segments {
		key, value, ok := strings.Cut(seg, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok || !strings.HasSuffix(key, "*") {
			continue
		}
		base, _, _ := strings.Cut(key, "*")
		value = strings.TrimSpace(value)
		charset, ok := charsets[base]
		if parts := strings.SplitN(value, "'", 3); len(parts) == 3 {
			charset, value, ok = strings.ToLower(parts[0]), parts[2], true
			charsets[base] = charset
		}
		if !ok || charset == "" || charset == "utf-8" || charset == "us-ascii" {
			continue
		}
		raw, err := url.PathUnescape(value)
		if err != nil {
			continue
		}
		r, err := gomessage.CharsetReader(charset, strings.NewReader(raw))
		if err != nil {
			continue
		}
		decoded, err := io.ReadAll(r)
		if err != nil {
			continue
		}
		enc := strings.ReplaceAll(url.QueryEscape(string(decoded)), "+", "%20")
		if strings.HasSuffix(key, "*0*") || !strings.Contains(strings.TrimSuffix(key, "*"), "*") {
			enc = "utf-8''" + enc
		}
		segments[i] = " " + key + "=" + enc
	}
	return strings.Join(segments, ";")
}
