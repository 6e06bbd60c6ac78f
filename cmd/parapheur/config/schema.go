package config

import (
	"reflect"
	"sort"
	"strings"
)

// field is one key of the configuration, found by walking Config's toml tags so that a new
// field needs no other registration.
type field struct {
	key    string // dotted: "imap.password"; relative to the circuit for circuit fields
	index  []int  // reflect index path from the struct walked
	sep    string // separators of a list written as one string, besides newlines
	secret bool   // the value is never quoted in a problem
	// notInFile: the value may come from key_file or the environment, never from the
	// file itself (tag `secret:"no-file"`), for secrets that give a mailbox away.
	notInFile bool
}

// schema is the set of keys Load knows.
type schema struct {
	fields        []field          // Config's keys, except circuits
	circuitFields []field          // a circuit's keys, relative: "steps"
	tables        map[string]bool  // "imap", "store"…
	byKey         map[string]field // fields by key, and by key+"_file"
	envKeys       map[string]string
}

// circuitsKey is the only table whose sub-table names are free: the circuits' names.
const circuitsKey = "circuits"

// fileSuffix marks a key whose value is read from the named file.
const fileSuffix = "_file"

var known = newSchema()

func newSchema() *schema {
	s := &schema{tables: map[string]bool{}, byKey: map[string]field{}, envKeys: map[string]string{}}
	s.fields = walk(reflect.TypeFor[Config](), "", nil, s.tables)
	s.circuitFields = walk(reflect.TypeFor[Circuit](), "", nil, nil)
	for _, f := range s.fields {
		for _, k := range []string{f.key, f.key + fileSuffix} {
			s.byKey[k] = f
			s.envKeys[envName(k)] = k
		}
	}
	return s
}

// walk lists the leaf keys of the struct type t. Nested structs are tables, recorded in
// tables; maps (the circuits) are handled by the loader.
func walk(t reflect.Type, prefix string, index []int, tables map[string]bool) []field {
	var fields []field
	for i := range t.NumField() {
		sf := t.Field(i)
		name := sf.Tag.Get("toml")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		idx := append(append([]int(nil), index...), i)
		switch sf.Type.Kind() {
		case reflect.Map:
			continue
		case reflect.Struct:
			tables[key] = true
			fields = append(fields, walk(sf.Type, key+".", idx, tables)...)
		default:
			fields = append(fields, field{
				key:       key,
				index:     idx,
				sep:       sf.Tag.Get("sep"),
				secret:    sf.Type == reflect.TypeFor[Secret](),
				notInFile: sf.Tag.Get("secret") == "no-file",
			})
		}
	}
	return fields
}

// envName is the environment variable of a key: "imap.password_file" is
// PARAPHEUR_IMAP_PASSWORD_FILE.
func envName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// circuitField finds the circuit field of a relative key, "steps" or "steps_file".
func (s *schema) circuitField(rel string) (field, bool) {
	for _, f := range s.circuitFields {
		if rel == f.key || rel == f.key+fileSuffix {
			return f, true
		}
	}
	return field{}, false
}

// circuitEnvKey maps PARAPHEUR_CIRCUITS_NAME_STEPS to circuits.name.steps. The circuit name
// is what lies between the prefix and a known field's suffix, so underscores in it are kept.
func (s *schema) circuitEnvKey(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, envName(circuitsKey)+"_")
	if !ok {
		return "", false
	}
	for _, f := range s.circuitFields {
		for _, rel := range []string{f.key + fileSuffix, f.key} {
			circuit, ok := strings.CutSuffix(rest, "_"+strings.ToUpper(rel))
			if ok && circuit != "" {
				return circuitsKey + "." + strings.ToLower(circuit) + "." + rel, true
			}
		}
	}
	return "", false
}

// keys lists every key a file may hold, circuits shown with NAME, sorted.
func (s *schema) keys() []string {
	var keys []string
	for k := range s.byKey {
		keys = append(keys, k)
	}
	for _, f := range s.circuitFields {
		keys = append(keys, circuitsKey+".NAME."+f.key, circuitsKey+".NAME."+f.key+fileSuffix)
	}
	sort.Strings(keys)
	return keys
}

// suggest returns the candidate that key most likely misspells, or "" when none is close:
// within two edits, or the same last element in another table ("imap.authserv_id").
func suggest(key string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(key, c); d < bestDist && d*3 < len(key) {
			best, bestDist = c, d
		}
	}
	if best != "" {
		return best
	}
	last := key[strings.LastIndexByte(key, '.')+1:]
	for _, c := range candidates {
		if strings.Contains(key, ".") && c[strings.LastIndexByte(c, '.')+1:] == last {
			return c
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
