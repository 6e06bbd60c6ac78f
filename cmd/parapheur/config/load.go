package config

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// maxSecretFileBytes bounds a _file read, so that a path like /dev/zero fails instead of
// exhausting memory.
const maxSecretFileBytes = 64 << 10

// setting is one value given for a key, before conversion to the field's type.
type setting struct {
	value  any    // a TOML value from the file; a string from the environment or a _file
	source string // "" for the file, else the environment variable
	text   bool   // value is text to parse by the field's type: from the environment or a _file
}

// loader gathers the settings of one Load and the problems found in them.
type loader struct {
	settings map[string]setting
	problems []Problem
	readFile func(path string) ([]byte, error)
}

// Load reads the TOML file at path (none when path is empty), applies the PARAPHEUR_*
// variables of environ (in os.Environ's form) over it, reads the _file keys, and validates
// the result. A configuration with any problem returns an *Error listing them all.
//
// Environment variables that name no key are ignored unless they look like a misspelt one:
// orchestrators such as Kubernetes set PARAPHEUR_PORT and the like on their own.
// PARAPHEUR_CONFIG, which names the file for the command, is no key.
func Load(path string, environ []string) (*Config, error) {
	c, err := loadFile(path, environ)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LoadSections is Load for a command that uses only some sections of the
// configuration ("keys", "tsa", "store"…): the problems of other keys are
// not reported, so that `parapheur seal` works with a configuration that
// names only the keys. Use only those sections of the result.
func LoadSections(path string, environ []string, sections ...string) (*Config, error) {
	c, err := loadFile(path, environ)
	var cerr *Error
	if !errors.As(err, &cerr) {
		return c, err
	}
	kept := cerr.Problems[:0]
	for _, p := range cerr.Problems {
		for _, s := range sections {
			if p.Key == s || strings.HasPrefix(p.Key, s+".") {
				kept = append(kept, p)
				break
			}
		}
	}
	if len(kept) > 0 {
		return nil, &Error{Path: path, Problems: kept}
	}
	return c, nil
}

// loadFile reads the file and loads it; with problems it returns both the
// configuration as far as it could be read and the *Error.
func loadFile(path string, environ []string) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	return load(path, data, environ, readSecretFile)
}

// load is loadFile on the file's content, with the _file reader given, for
// fuzzing. With problems it returns the configuration as far as it could be
// read, and the *Error.
func load(path string, data []byte, environ []string, readFile func(string) ([]byte, error)) (*Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			// Error() gives the line and the last key; ErrorWithPosition would quote the
			// line, which may hold a secret.
			err = errors.New(perr.Error())
		}
		return nil, fmt.Errorf("%s: %w", pathOrDefault(path), err)
	}
	l := &loader{settings: map[string]setting{}, readFile: readFile}
	l.table(raw, "")
	l.environment(environ)

	c := defaults()
	cv := reflect.ValueOf(c).Elem()
	for _, f := range known.fields {
		l.assign(f.key, f, cv.FieldByIndex(f.index))
	}
	for _, name := range l.circuitNames() {
		var circuit Circuit
		v := reflect.ValueOf(&circuit).Elem()
		for _, f := range known.circuitFields {
			l.assign(circuitsKey+"."+name+"."+f.key, f, v.FieldByIndex(f.index))
		}
		c.Circuits[name] = circuit
	}

	// A key that could not be read is not validated too: its problem is already told.
	unread := map[string]bool{}
	for _, p := range l.problems {
		unread[strings.TrimSuffix(p.Key, fileSuffix)] = true
	}
	v := validator{c: c}
	v.validate()
	for _, p := range v.problems {
		if unread[p.Key] {
			continue
		}
		p.Source = l.settings[p.Key].source
		l.problems = append(l.problems, p)
	}
	if len(l.problems) > 0 {
		sort.SliceStable(l.problems, func(i, j int) bool { return l.problems[i].Key < l.problems[j].Key })
		return c, &Error{Path: path, Problems: l.problems}
	}
	return c, nil
}

func pathOrDefault(path string) string {
	if path == "" {
		return "configuration"
	}
	return path
}

// defaults is the configuration before the file and the environment apply.
func defaults() *Config {
	return &Config{
		Listen:   ":8080",
		Language: "fr",
		Store:    Store{URL: "bolt:///var/lib/parapheur/parapheur.db"},
		IMAP:     IMAP{ProcessedFolder: "Processed", QuarantineFolder: "Quarantine"},
		Keys:     Keys{Dir: "/var/lib/parapheur/keys"},
		Envelopes: Envelopes{
			DefaultDeadlineDays: 30,
			ReminderDays:        3,
			AllowDelegation:     true,
		},
		Limits: Limits{
			MaxMessageBytes:  50 << 20,
			MaxDocumentBytes: 25 << 20,
			MaxRecipients:    50,
		},
		Mail:     Mail{AttachmentLimitBytes: 10 << 20, DownloadLinkDays: 30},
		Log:      Log{Format: "json", Level: "info"},
		Circuits: map[string]Circuit{},
	}
}

func (l *loader) problem(key, source, format string, args ...any) {
	l.problems = append(l.problems, Problem{Key: key, Source: source, Reason: fmt.Sprintf(format, args...)})
}

// table records the settings of a decoded TOML table at prefix ("" for the top).
func (l *loader) table(m map[string]any, prefix string) {
	for _, k := range sortedKeys(m) {
		key, v := prefix+k, m[k]
		if k == "" {
			key = prefix + `""` // TOML allows an empty quoted key; name it visibly
		}
		switch {
		case key == circuitsKey:
			circuits, ok := v.(map[string]any)
			if !ok {
				l.problem(key, "", "want a table of circuits ([circuits.NAME]), got %s", tomlType(v))
				continue
			}
			for _, name := range sortedKeys(circuits) {
				l.circuit(name, circuits[name])
			}
		case known.tables[key]:
			sub, ok := v.(map[string]any)
			if !ok {
				l.problem(key, "", "want a table ([%s]), got %s", key, tomlType(v))
				continue
			}
			l.table(sub, key+".")
		default:
			if _, ok := known.byKey[key]; !ok {
				l.unknownKey(key)
				continue
			}
			l.settings[key] = setting{value: v}
		}
	}
}

// circuitName is what a circuit name may be: it also appears in addresses (address+NAME)
// and in environment variable names.
var circuitName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

func (l *loader) circuit(name string, v any) {
	prefix := circuitsKey + "." + name
	if !circuitName.MatchString(name) {
		l.problem(prefix, "", "circuit name %q: want lower-case letters, digits, - and _ (it is used as address+NAME)", name)
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		l.problem(prefix, "", "want a table ([%s] with steps = [...]), got %s", prefix, tomlType(v))
		return
	}
	if len(m) == 0 {
		l.settings[prefix] = setting{} // so that the circuit exists and its validation says what is missing
	}
	for _, rel := range sortedKeys(m) {
		if _, ok := known.circuitField(rel); !ok {
			l.unknownKey(prefix + "." + rel)
			continue
		}
		l.settings[prefix+"."+rel] = setting{value: m[rel]}
	}
}

func (l *loader) unknownKey(key string) {
	candidates := known.keys()
	if rest, ok := strings.CutPrefix(key, circuitsKey+"."); ok {
		if name, _, ok := strings.Cut(rest, "."); ok {
			for i, c := range candidates {
				candidates[i] = strings.Replace(c, ".NAME.", "."+name+".", 1)
			}
		}
	}
	if s := suggest(key, candidates); s != "" {
		l.problem(key, "", "unknown key (did you mean %s?)", s)
		return
	}
	l.problem(key, "", "unknown key")
}

// environment records the PARAPHEUR_* variables over the file's settings.
func (l *loader) environment(environ []string) {
	var envNames []string
	for name := range known.envKeys {
		envNames = append(envNames, name)
	}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || name == EnvConfig {
			continue
		}
		key, ok := known.envKeys[name]
		if !ok {
			key, ok = known.circuitEnvKey(name)
		}
		if !ok {
			if s := suggest(name, envNames); s != "" {
				l.problem(name, "", "unknown variable (did you mean %s?)", s)
			}
			continue
		}
		if strings.HasPrefix(key, circuitsKey+".") {
			circuit := strings.Split(key, ".")[1]
			if !circuitName.MatchString(circuit) {
				l.problem(circuitsKey+"."+circuit, name, "circuit name %q: want lower-case letters, digits, - and _ (it is used as address+NAME)", circuit)
				continue
			}
		}
		l.settings[key] = setting{value: value, source: name, text: true}
	}
}

// circuitNames lists the circuits that have any setting, sorted.
func (l *loader) circuitNames() []string {
	seen := map[string]bool{}
	for key := range l.settings {
		if rest, ok := strings.CutPrefix(key, circuitsKey+"."); ok {
			name, _, _ := strings.Cut(rest, ".")
			seen[name] = true
		}
	}
	return sortedKeys(seen)
}

// assign sets dst from the setting of key or of key_file, if any.
func (l *loader) assign(key string, f field, dst reflect.Value) {
	direct, hasDirect := l.settings[key]
	viaFile, hasFile := l.settings[key+fileSuffix]
	if hasDirect && hasFile && (direct.source == "") != (viaFile.source == "") {
		// One in the file, one in the environment: the environment
		// overrides the file, in either form (SPEC §7).
		if direct.source == "" {
			hasDirect = false
		} else {
			hasFile = false
		}
	}
	switch {
	case hasDirect && hasFile:
		l.problem(key, "", "set both directly (%s) and by %s (%s); keep one", describe(direct.source), key+fileSuffix, describe(viaFile.source))
		return
	case hasDirect && direct.source == "" && f.notInFile:
		l.problem(key, "", "a secret, refused in the configuration file: set %s to a file only the gateway reads, or %s in the environment", key+fileSuffix, envName(key))
		return
	case hasFile:
		path, ok := viaFile.value.(string)
		if !ok || path == "" {
			l.problem(key+fileSuffix, viaFile.source, "want the path of a file, got %s", tomlType(viaFile.value))
			return
		}
		content, err := l.readFile(path)
		if err != nil {
			l.problem(key+fileSuffix, viaFile.source, "%v", err)
			return
		}
		text := strings.TrimRight(string(content), "\r\n")
		if text == "" {
			l.problem(key+fileSuffix, viaFile.source, "%s is empty", path)
			return
		}
		direct = setting{value: text, source: viaFile.source, text: true}
	case !hasDirect:
		return
	}
	if err := convert(direct, f, dst); err != nil {
		errs := []error{err}
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			errs = joined.Unwrap()
		}
		for _, err := range errs {
			l.problem(key, direct.source, "%v", err)
		}
	}
	if direct.source != "" {
		// Validation problems about key name the variable that set it.
		l.settings[key] = direct
	}
}

func describe(source string) string {
	if source == "" {
		return "in the file"
	}
	return source
}

// readSecretFile reads a _file, at most maxSecretFileBytes of it.
func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSecretFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSecretFileBytes)
	}
	return b, nil
}

// convert stores a setting into dst: a TOML value of the field's type, or text parsed by it.
// A string where the file wants a number or a boolean is a mistake, not text. Its errors
// never quote a secret.
func convert(set setting, f field, dst reflect.Value) error {
	v := set.value
	switch dst.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a string, got %s", tomlType(v))
		}
		dst.SetString(s)
	case reflect.Bool:
		if text, ok := v.(string); ok && set.text {
			b, err := strconv.ParseBool(strings.TrimSpace(text))
			if err != nil {
				return fmt.Errorf("want true or false, got %q", text)
			}
			v = b
		}
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("want true or false, got %s", tomlType(v))
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int64:
		if text, ok := v.(string); ok && set.text {
			n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
			if err != nil {
				return fmt.Errorf("want an integer, got %q", text)
			}
			v = n
		}
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("want an integer, got %s", tomlType(v))
		}
		if dst.OverflowInt(n) {
			return fmt.Errorf("%d is out of range", n)
		}
		dst.SetInt(n)
	case reflect.Slice:
		return convertList(v, f, dst)
	default:
		panic(fmt.Sprintf("config: field %s has unsupported type %s", f.key, dst.Type()))
	}
	return nil
}

// convertList stores a TOML array of strings, or one string split at newlines and f.sep, into the slice
// dst, whose elements are strings or encoding.TextUnmarshalers.
func convertList(v any, f field, dst reflect.Value) error {
	var items []string
	switch v := v.(type) {
	case string:
		for _, item := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || strings.ContainsRune(f.sep, r) }) {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
	case []any:
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("item %d: want a string, got %s", i+1, tomlType(e))
			}
			items = append(items, s)
		}
	default:
		return fmt.Errorf("want a list of strings, got %s", tomlType(v))
	}
	list := reflect.MakeSlice(dst.Type(), len(items), len(items))
	var errs []error
	for i, item := range items {
		e := list.Index(i)
		if u, ok := e.Addr().Interface().(encoding.TextUnmarshaler); ok {
			if err := u.UnmarshalText([]byte(item)); err != nil {
				errs = append(errs, fmt.Errorf("item %d: %w", i+1, err))
			}
			continue
		}
		e.SetString(strings.TrimSpace(item))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	dst.Set(list)
	return nil
}

// tomlType names the TOML type of a decoded value, for problems.
func tomlType(v any) string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return "an empty string"
		}
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	}
	return "a date-time"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
