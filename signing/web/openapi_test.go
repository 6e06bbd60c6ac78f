package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// openAPIChecker holds the OpenAPI document and checks answers against
// it, with a validator of the part of JSON Schema the document uses:
// $ref, type, required, properties, additionalProperties: false, items,
// enum, minimum, format date-time.
type openAPIChecker struct {
	t   *testing.T
	doc map[string]any
}

func newOpenAPIChecker(t *testing.T) *openAPIChecker {
	t.Helper()
	c := &openAPIChecker{t: t}
	if err := json.Unmarshal(openAPIDocument, &c.doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if v, _ := c.doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("openapi.json is OpenAPI %q, want 3.1", v)
	}
	return c
}

// paths returns the document's path templates and their operations by
// lower-case method.
func (c *openAPIChecker) paths() map[string]map[string]any {
	out := map[string]map[string]any{}
	for p, item := range c.doc["paths"].(map[string]any) {
		out[p] = map[string]any{}
		for m, op := range item.(map[string]any) {
			out[p][m] = op
		}
	}
	return out
}

// operation finds the operation of a request.
func (c *openAPIChecker) operation(method, path string) (map[string]any, bool) {
	for tmpl, ops := range c.paths() {
		if templateRE(tmpl).MatchString(path) {
			op, ok := ops[strings.ToLower(method)].(map[string]any)
			return op, ok
		}
	}
	return nil, false
}

// templateRE matches the paths of an OpenAPI path template.
func templateRE(tmpl string) *regexp.Regexp {
	parts := strings.Split(tmpl, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, "{") {
			parts[i] = "[^/]+"
		} else {
			parts[i] = regexp.QuoteMeta(p)
		}
	}
	return regexp.MustCompile("^" + strings.Join(parts, "/") + "$")
}

// checkAnswer checks that the answer's status is documented for its
// operation, with its content type, headers and body schema.
func (c *openAPIChecker) checkAnswer(r *http.Request, w *httptest.ResponseRecorder) {
	c.t.Helper()
	op, ok := c.operation(r.Method, r.URL.Path)
	if !ok {
		c.t.Errorf("openapi.json has no operation for %s %s", r.Method, r.URL.Path)
		return
	}
	resp, ok := op["responses"].(map[string]any)[fmt.Sprint(w.Code)].(map[string]any)
	if !ok {
		c.t.Errorf("openapi.json does not document status %d of %s %s (body %s)", w.Code, r.Method, r.URL.Path, w.Body)
		return
	}
	if headers, ok := resp["headers"].(map[string]any); ok {
		for name := range headers {
			if name == "Retry-After" && w.Header().Get(name) == "" && w.Code == http.StatusTooManyRequests {
				c.t.Errorf("%s %s: a %d without Retry-After", r.Method, r.URL.Path, w.Code)
			}
		}
	}
	mt, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type"))
	content, ok := resp["content"].(map[string]any)[mt].(map[string]any)
	if !ok {
		c.t.Errorf("%s %s: status %d answered %q, which openapi.json does not document", r.Method, r.URL.Path, w.Code, mt)
		return
	}
	if mt != "application/json" {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.UseNumber()
	var body any
	if err := dec.Decode(&body); err != nil {
		c.t.Errorf("%s %s: the answer is not JSON: %v", r.Method, r.URL.Path, err)
		return
	}
	if err := c.validate(content["schema"], body, "$"); err != nil {
		c.t.Errorf("%s %s: status %d: the answer does not match openapi.json: %v\n%s", r.Method, r.URL.Path, w.Code, err, w.Body)
	}
}

// validate checks v against schema.
func (c *openAPIChecker) validate(schema, v any, at string) error {
	s, ok := schema.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: the schema is not an object", at)
	}
	if ref, ok := s["$ref"].(string); ok {
		name, ok := strings.CutPrefix(ref, "#/components/schemas/")
		target := c.doc["components"].(map[string]any)["schemas"].(map[string]any)[name]
		if !ok || target == nil {
			return fmt.Errorf("%s: $ref %q names no schema", at, ref)
		}
		return c.validate(target, v, at)
	}
	if typ, ok := s["type"].(string); ok && !hasType(typ, v) {
		return fmt.Errorf("%s: %#v is not of type %s", at, v, typ)
	}
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, v) {
		return fmt.Errorf("%s: %#v is none of %v", at, v, enum)
	}
	if minimum, ok := s["minimum"].(float64); ok {
		if n, err := v.(json.Number).Float64(); err != nil || n < minimum {
			return fmt.Errorf("%s: %v is under the minimum %v", at, v, minimum)
		}
	}
	if s["format"] == "date-time" {
		if _, err := time.Parse(time.RFC3339, v.(string)); err != nil {
			return fmt.Errorf("%s: %q is not a date-time: %v", at, v, err)
		}
	}
	if items, ok := s["items"]; ok {
		list, _ := v.([]any)
		for i, e := range list {
			if err := c.validate(items, e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	}
	obj, isObj := v.(map[string]any)
	if !isObj {
		return nil
	}
	for _, name := range asStrings(s["required"]) {
		if _, ok := obj[name]; !ok {
			return fmt.Errorf("%s: no %q", at, name)
		}
	}
	props, _ := s["properties"].(map[string]any)
	for name, e := range obj {
		p, ok := props[name]
		if !ok {
			if s["additionalProperties"] == false {
				return fmt.Errorf("%s: %q is not in the schema", at, name)
			}
			continue
		}
		if err := c.validate(p, e, at+"."+name); err != nil {
			return err
		}
	}
	return nil
}

func hasType(typ string, v any) bool {
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		_, err := n.Int64()
		return ok && err == nil
	case "number":
		_, ok := v.(json.Number)
		return ok
	}
	return false
}

func asStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, e := range list {
		out = append(out, e.(string))
	}
	return out
}

// registeredAPIPatterns are the /api/v1 route patterns written in
// api.go, read from its source: ServeMux cannot list its routes.
func registeredAPIPatterns(t *testing.T) []string {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), "api.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	ast.Inspect(file, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if p, err := strconv.Unquote(lit.Value); err == nil && regexp.MustCompile(`^[A-Z]+ /api/v1/`).MatchString(p) {
				patterns = append(patterns, p)
			}
		}
		return true
	})
	return patterns
}

// TestOpenAPIDocumentsEveryRoute checks the document against the routes:
// every path and method it names is routed to a handler (the mux neither
// 404s nor 405s), and every /api/v1 route of api.go is in it.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	f := newAPIFixture(t)
	mux := http.NewServeMux()
	f.server.apiRoutes(mux)
	documented := map[string]bool{}
	for tmpl, ops := range f.schemas.paths() {
		path := strings.NewReplacer("{token}", "tok", "{n}", "0").Replace(tmpl)
		for method := range ops {
			r := httptest.NewRequest(strings.ToUpper(method), path, nil)
			_, pattern := mux.Handler(r)
			if pattern == "" {
				t.Errorf("openapi.json documents %s %s, which no route serves", strings.ToUpper(method), tmpl)
				continue
			}
			documented[pattern] = true
		}
	}
	routes := registeredAPIPatterns(t)
	if len(routes) < 7 {
		t.Fatalf("found %d routes in api.go: %v", len(routes), routes)
	}
	for _, p := range routes {
		if !documented[p] {
			t.Errorf("route %q is not in openapi.json", p)
		}
	}
}

// TestOpenAPIServed checks that the document is served as JSON.
func TestOpenAPIServed(t *testing.T) {
	f := newAPIFixture(t)
	w := f.get("/api/v1/openapi.json")
	if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), openAPIDocument) {
		t.Fatalf("GET openapi.json = %d, %d bytes", w.Code, w.Body.Len())
	}
}

// TestOpenAPIValidatorRefuses checks that the validator can fail: an
// answer that breaks each kind of rule is refused.
func TestOpenAPIValidatorRefuses(t *testing.T) {
	c := newOpenAPIChecker(t)
	state := func(edit func(map[string]any)) any {
		st := map[string]any{
			"envelope": map[string]any{"id": "E1", "title": "t", "state": "in_progress", "sender": "a@b", "language": "en",
				"deadline": "2026-01-02T03:04:05Z"},
			"recipient": map[string]any{"name": "n", "email": "e", "role": "signer", "state": "pending", "can_act": true,
				"verified": false, "can_delegate": true},
			"documents": []any{map[string]any{"index": json.Number("0"), "name": "d.pdf", "pages": json.Number("1"),
				"sha256": "ab", "size": json.Number("3"), "url": "u"}},
			"steps": []any{},
		}
		edit(st)
		return st
	}
	schema := map[string]any{"$ref": "#/components/schemas/State"}
	if err := c.validate(schema, state(func(map[string]any) {}), "$"); err != nil {
		t.Fatalf("a right state refused: %v", err)
	}
	for name, edit := range map[string]func(map[string]any){
		"required":   func(st map[string]any) { delete(st["envelope"].(map[string]any), "title") },
		"type":       func(st map[string]any) { st["recipient"].(map[string]any)["can_act"] = "yes" },
		"enum":       func(st map[string]any) { st["envelope"].(map[string]any)["state"] = "lost" },
		"date-time":  func(st map[string]any) { st["envelope"].(map[string]any)["deadline"] = "tomorrow" },
		"integer":    func(st map[string]any) { st["documents"].([]any)[0].(map[string]any)["pages"] = json.Number("1.5") },
		"minimum":    func(st map[string]any) { st["documents"].([]any)[0].(map[string]any)["index"] = json.Number("-1") },
		"items":      func(st map[string]any) { st["steps"] = []any{"step"} },
		"additional": func(st map[string]any) { st["recipient"].(map[string]any)["token"] = "x" },
	} {
		if err := c.validate(schema, state(edit), "$"); err == nil {
			t.Errorf("%s: a wrong state validated", name)
		}
	}
}
