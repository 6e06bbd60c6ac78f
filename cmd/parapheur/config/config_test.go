package config

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/signing/pki"
)

// validKeys is a complete, valid configuration as dotted key → TOML value.
func validKeys() map[string]string {
	return map[string]string{
		"address":                  "\"parapheur@org.example\"",
		"public_url":               "\"https://sign.org.example/\"",
		"imap.url":                 "\"imaps://parapheur@imap.org.example/INBOX\"",
		"imap.password":            "\"imap-secret\"",
		"smtp.url":                 "\"smtp://parapheur@smtp.org.example\"",
		"smtp.password":            "\"smtp-secret\"",
		"senders.allowed":          "[\"agent@org.example\", \"@Org.Example\"]",
		"circuits.direction.steps": `["Visa: Chef <chef@org.example>", "Signataire: dg@org.example"]`,
	}
}

// tomlText writes dotted keys as a TOML document, grouping them by table.
func tomlText(kv map[string]string) string {
	tables := map[string][]string{}
	for key, value := range kv {
		dot := strings.LastIndexByte(key, '.')
		table, name := "", key
		if dot >= 0 {
			table, name = key[:dot], key[dot+1:]
		}
		tables[table] = append(tables[table], name+" = "+value)
	}
	var b strings.Builder
	for _, table := range slices.Sorted(maps.Keys(tables)) {
		if table != "" {
			fmt.Fprintf(&b, "[%s]\n", table)
		}
		slices.Sort(tables[table])
		b.WriteString(strings.Join(tables[table], "\n") + "\n")
	}
	return b.String()
}

// writeFile writes content into a new file of t's temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadKeys(t *testing.T, kv map[string]string, environ ...string) (*Config, error) {
	t.Helper()
	return Load(writeFile(t, "parapheur.toml", tomlText(kv)), environ)
}

func TestLoadFileAndDefaults(t *testing.T) {
	c, err := loadKeys(t, validKeys())
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Address:   "parapheur@org.example",
		PublicURL: "https://sign.org.example",
		Listen:    ":8080",
		Language:  "fr",
		Location:  time.Local,
		Store:     Store{URL: "bolt:///var/lib/parapheur/parapheur.db"},
		IMAP: IMAP{
			URL:              "imaps://parapheur@imap.org.example/INBOX",
			Password:         "imap-secret",
			ProcessedFolder:  "Processed",
			QuarantineFolder: "Quarantine",
			Server:           Server{Host: "imap.org.example", Port: "993", Username: "parapheur", TLS: TLSImplicit},
			Mailbox:          "INBOX",
		},
		SMTP: SMTP{
			URL:      "smtp://parapheur@smtp.org.example",
			Password: "smtp-secret",
			Server:   Server{Host: "smtp.org.example", Port: "587", Username: "parapheur", TLS: TLSStartTLS},
		},
		Keys:      Keys{Dir: "/var/lib/parapheur/keys"},
		Senders:   Senders{Allowed: []string{"agent@org.example", "@org.example"}},
		Envelopes: Envelopes{DefaultDeadlineDays: 30, ReminderDays: 3, AllowDelegation: true},
		Limits:    Limits{MaxMessageBytes: 50 << 20, MaxDocumentBytes: 25 << 20, MaxRecipients: 50},
		Mail:      Mail{AttachmentLimitBytes: 10 << 20, DownloadLinkDays: 30},
		Log:       Log{Format: "json", Level: "info"},
		Circuits:  map[string]Circuit{"direction": {Steps: []string{"Visa: Chef <chef@org.example>", "Signataire: dg@org.example"}}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load:\n got %#v\nwant %#v", c, want)
	}
	if got := c.IMAP.Server.Addr(); got != "imap.org.example:993" {
		t.Errorf("IMAP Addr() = %q", got)
	}
}

func TestServerTLSModes(t *testing.T) {
	for _, tc := range []struct {
		key, url string
		want     Server
	}{
		{"imap.url", "imap://u@127.0.0.1:1143/Box", Server{Host: "127.0.0.1", Port: "1143", Username: "u", TLS: TLSNone}},
		{"imap.url", "imap://u@localhost/INBOX", Server{Host: "localhost", Port: "143", Username: "u", TLS: TLSNone}},
		{"imap.url", "imap://u@[::1]:143/", Server{Host: "::1", Port: "143", Username: "u", TLS: TLSNone}},
		{"imap.url", "imap://u@imap.example", Server{Host: "imap.example", Port: "143", Username: "u", TLS: TLSStartTLS}},
		{"smtp.url", "smtps://smtp.example", Server{Host: "smtp.example", Port: "465", TLS: TLSImplicit}},
		{"smtp.url", "smtp://127.0.0.1:2525", Server{Host: "127.0.0.1", Port: "2525", TLS: TLSNone}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			kv := validKeys()
			kv[tc.key] = fmt.Sprintf("%q", tc.url)
			if tc.key == "smtp.url" && tc.want.Username == "" {
				delete(kv, "smtp.password")
			}
			c, err := loadKeys(t, kv)
			if err != nil {
				t.Fatal(err)
			}
			got := c.SMTP.Server
			if tc.key == "imap.url" {
				got = c.IMAP.Server
			}
			if got != tc.want {
				t.Errorf("got %+v (%v), want %+v (%v)", got, got.TLS, tc.want, tc.want.TLS)
			}
		})
	}
	kv := validKeys()
	kv["imap.url"] = `"imaps://u@h.example/Archives/2026"`
	c, err := loadKeys(t, kv)
	if err != nil {
		t.Fatal(err)
	}
	if c.IMAP.Mailbox != "Archives/2026" {
		t.Errorf("Mailbox = %q, want Archives/2026", c.IMAP.Mailbox)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin",
		"PARAPHEUR_CONFIG=/ignored.toml",
		"PARAPHEUR_PORT=tcp://10.0.0.1:8080", // set by Kubernetes for a service named parapheur
		"PARAPHEUR_LISTEN=127.0.0.1:9000",
		"PARAPHEUR_LANGUAGE=en",
		"PARAPHEUR_IMAP_PROCESSED_FOLDER=Done",
		"PARAPHEUR_ENVELOPES_DEFAULT_DEADLINE_DAYS= 14 ",
		"PARAPHEUR_ENVELOPES_REMINDER_DAYS=0",
		"PARAPHEUR_LIMITS_MAX_MESSAGE_BYTES=1000",
		"PARAPHEUR_LIMITS_MAX_DOCUMENT_BYTES=900",
		"PARAPHEUR_LIMITS_MAX_RECIPIENTS=7",
		"PARAPHEUR_SENDERS_ALLOWED=a@x.example, @y.example",
		"PARAPHEUR_SENDERS_REQUIRE_AUTH=true",
		"PARAPHEUR_SENDERS_AUTHSERV_ID=mx.org.example",
		"PARAPHEUR_CIRCUITS_DIRECTION_GENERALE_STEPS=Visa: a@x.example\nSignataire: b@x.example; c@x.example",
		"PARAPHEUR_STORE_URL=redis-cluster://r1.example:6379?addr=r2.example:6379",
	}
	c, err := loadKeys(t, validKeys(), environ...)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9000" || c.Language != "en" || c.IMAP.ProcessedFolder != "Done" {
		t.Errorf("listen %q language %q processed %q", c.Listen, c.Language, c.IMAP.ProcessedFolder)
	}
	if c.Envelopes != (Envelopes{DefaultDeadlineDays: 14, ReminderDays: 0, AllowDelegation: true}) {
		t.Errorf("envelopes %+v", c.Envelopes)
	}
	if c.Limits != (Limits{MaxMessageBytes: 1000, MaxDocumentBytes: 900, MaxRecipients: 7}) {
		t.Errorf("limits %+v", c.Limits)
	}
	if !slices.Equal(c.Senders.Allowed, []string{"a@x.example", "@y.example"}) || !c.Senders.RequireAuth || c.Senders.AuthservID != "mx.org.example" {
		t.Errorf("senders %+v", c.Senders)
	}
	if c.Store.URL != "redis-cluster://r1.example:6379?addr=r2.example:6379" {
		t.Errorf("store %q", c.Store.URL)
	}
	dg, ok := c.Circuits["direction_generale"]
	if !ok || len(dg.Steps) != 2 || !strings.HasPrefix(dg.Steps[1], "Signataire:") {
		t.Errorf("circuit direction_generale from the environment: %+v (circuits %v)", dg, slices.Sorted(maps.Keys(c.Circuits)))
	}
	if _, ok := c.Circuits["direction"]; !ok {
		t.Errorf("circuit direction of the file lost")
	}

	// The environment alone is a whole configuration.
	var only []string
	for key, value := range validKeys() {
		value = strings.Trim(value, `"`)
		if strings.HasPrefix(value, "[") {
			value = strings.NewReplacer(`", "`, "\n", `["`, "", `"]`, "").Replace(value)
		}
		only = append(only, envName(key)+"="+value)
	}
	c, err = Load("", only)
	if err != nil {
		t.Fatalf("environment only: %v", err)
	}
	if c.Address != "parapheur@org.example" || len(c.Circuits["direction"].Steps) != 2 || len(c.Senders.Allowed) != 2 {
		t.Errorf("environment only: %+v", c)
	}
}

func TestSecretFiles(t *testing.T) {
	imapFile := writeFile(t, "imap", "from-file\n")
	smtpFile := writeFile(t, "smtp", "smtp from file\r\n\n")
	stepsFile := writeFile(t, "steps", "Visa: a@x.example\nSignataire: b@x.example\n")
	kv := validKeys()
	delete(kv, "imap.password")
	delete(kv, "smtp.password")
	kv["imap.password_file"] = fmt.Sprintf("%q", imapFile)
	kv["keys.passphrase_file"] = fmt.Sprintf("%q", imapFile)
	kv["circuits.direction.steps_file"] = fmt.Sprintf("%q", stepsFile)
	delete(kv, "circuits.direction.steps")
	c, err := loadKeys(t, kv, "PARAPHEUR_SMTP_PASSWORD_FILE="+smtpFile)
	if err != nil {
		t.Fatal(err)
	}
	if c.IMAP.Password != "from-file" || c.SMTP.Password != "smtp from file" || c.Keys.Passphrase != "from-file" {
		t.Errorf("secrets read: imap %q smtp %q keys %q", string(c.IMAP.Password), string(c.SMTP.Password), string(c.Keys.Passphrase))
	}
	if len(c.Circuits["direction"].Steps) != 2 {
		t.Errorf("steps_file: %+v", c.Circuits["direction"])
	}

	// The environment's K_file replaces the file's K_file: one key, two layers.
	other := writeFile(t, "other", "other\n")
	c, err = loadKeys(t, kv, "PARAPHEUR_SMTP_PASSWORD_FILE="+smtpFile, "PARAPHEUR_IMAP_PASSWORD_FILE="+other)
	if err != nil {
		t.Fatal(err)
	}
	if c.IMAP.Password != "other" {
		t.Errorf("PARAPHEUR_IMAP_PASSWORD_FILE did not override imap.password_file: %q", string(c.IMAP.Password))
	}

	// The environment overrides the file in the other form too: a secret
	// set directly over the file's K_file (whose file is then not read), a
	// K_file over the file's secret set directly.
	kv["keys.passphrase_file"] = `"/nonexistent/keys-passphrase"`
	kv["smtp.password"] = `"in the file"`
	c, err = loadKeys(t, kv, "PARAPHEUR_KEYS_PASSPHRASE=from the environment", "PARAPHEUR_SMTP_PASSWORD_FILE="+smtpFile)
	if err != nil {
		t.Fatal(err)
	}
	if c.Keys.Passphrase != "from the environment" || c.SMTP.Password != "smtp from file" {
		t.Errorf("across the layers: keys %q, smtp %q", string(c.Keys.Passphrase), string(c.SMTP.Password))
	}
}

// problem is an expected Problem: its key, and a part of its reason.
type problem struct{ key, reason string }

func TestProblems(t *testing.T) {
	empty := writeFile(t, "empty", "\n")
	big := writeFile(t, "big", strings.Repeat("x", maxSecretFileBytes+1))
	for _, tc := range []struct {
		name string
		set  map[string]string // TOML values over validKeys; "" deletes
		env  []string
		want []problem
	}{
		{"missing required", map[string]string{"address": "", "public_url": "", "imap.url": "", "imap.password": "", "smtp.url": "", "smtp.password": "", "senders.allowed": ""}, nil, []problem{
			{"address", "required"}, {"imap.url", "required"}, {"public_url", "required"}, {"senders.allowed", "required"}, {"smtp.url", "required"},
		}},
		{"unknown key", map[string]string{"imap.pasword": `"x"`}, nil, []problem{{"imap.pasword", "unknown key (did you mean imap.password?)"}}},
		{"unknown key in wrong table", map[string]string{"imap.authserv_id": `"x"`}, nil, []problem{{"imap.authserv_id", "did you mean senders.authserv_id?"}}},
		{"unknown far key", map[string]string{"colour": `"x"`}, nil, []problem{{"colour", "unknown key"}}},
		{"empty key", map[string]string{`""`: `"x"`}, nil, []problem{{`""`, "unknown key"}}},
		{"unknown circuit key", map[string]string{"circuits.direction.step": `"x"`}, nil, []problem{{"circuits.direction.step", "did you mean circuits.direction.steps?"}}},
		{"unknown variable", nil, []string{"PARAPHEUR_IMAP_PASWORD=x"}, []problem{{"PARAPHEUR_IMAP_PASWORD", "unknown variable (did you mean PARAPHEUR_IMAP_PASSWORD?)"}}},
		{"table as value", map[string]string{"imap": `"x"`, "imap.url": "", "imap.password": ""}, nil, []problem{{"imap", "want a table ([imap]), got a string"}, {"imap.url", "required"}}},
		{"value as table", map[string]string{"listen.port": "1"}, nil, []problem{{"listen", "want a string, got a table"}}},
		{"string wanted", map[string]string{"address": "42"}, nil, []problem{{"address", "want a string, got an integer"}}},
		{"integer wanted", map[string]string{"envelopes.reminder_days": `"3"`}, nil, []problem{{"envelopes.reminder_days", "want an integer, got a string"}}},
		{"integer from env", nil, []string{"PARAPHEUR_ENVELOPES_REMINDER_DAYS=three"}, []problem{{"envelopes.reminder_days", `want an integer, got "three"`}}},
		{"integer overflow", map[string]string{"envelopes.reminder_days": "99999999999999"}, nil, []problem{{"envelopes.reminder_days", "want 0 (no reminders) to 365 days"}}},
		{"boolean wanted", map[string]string{"senders.require_auth": `"yes"`}, nil, []problem{{"senders.require_auth", "want true or false, got a string"}}},
		{"boolean from env", nil, []string{"PARAPHEUR_SENDERS_REQUIRE_AUTH=oui"}, []problem{{"senders.require_auth", `want true or false, got "oui"`}}},
		{"list wanted", map[string]string{"senders.allowed": "3"}, nil, []problem{{"senders.allowed", "want a list of strings, got an integer"}}},
		{"list of strings wanted", map[string]string{"senders.allowed": `["a@b.example", 3]`}, nil, []problem{{"senders.allowed", "item 2: want a string, got an integer"}}},
		{"address with name", map[string]string{"address": `"Parapheur <p@org.example>"`}, nil, []problem{{"address", "want a bare address"}}},
		{"address bad", map[string]string{"address": `"parapheur"`}, nil, []problem{{"address", `address "parapheur": mail:`}}},
		{"address plus", map[string]string{"address": `"p+x@org.example"`}, nil, []problem{{"address", `must not contain "+"`}}},
		{"public_url http", map[string]string{"public_url": `"http://sign.org.example"`}, nil, []problem{{"public_url", "scheme http to non-loopback host sign.org.example: want https"}}},
		{"public_url scheme", map[string]string{"public_url": `"ftp://sign.org.example"`}, nil, []problem{{"public_url", `got scheme "ftp"`}}},
		{"public_url query", map[string]string{"public_url": `"https://sign.org.example/?a=b"`}, nil, []problem{{"public_url", "without ?query"}}},
		{"public_url no host", map[string]string{"public_url": `"https:///x"`}, nil, []problem{{"public_url", "want a host"}}},
		{"public_url not URL", map[string]string{"public_url": `"https://sign.org.example:x/"`}, nil, []problem{{"public_url", "not a URL"}}},
		{"listen", map[string]string{"listen": `"8080"`}, nil, []problem{{"listen", `want host:port or :port, e.g. ":8080", got "8080"`}}},
		{"listen port", map[string]string{"listen": `":http"`}, nil, []problem{{"listen", `port "http"`}}},
		{"language", map[string]string{"language": `"de"`}, nil, []problem{{"language", `want "fr" or "en", got "de"`}}},
		{"language env", nil, []string{"PARAPHEUR_LANGUAGE=es"}, []problem{{"language", `got "es"`}}},
		{"log format", map[string]string{"log.format": `"xml"`}, nil, []problem{{"log.format", `want "json" or "text", got "xml"`}}},
		{"log level env", nil, []string{"PARAPHEUR_LOG_LEVEL=loud"}, []problem{{"log.level", `got "loud"`}}},
		{"store scheme", map[string]string{"store.url": `"mysql://db"`}, nil, []problem{{"store.url", `unknown scheme "mysql"`}}},
		{"store bolt relative", map[string]string{"store.url": `"bolt://parapheur.db"`}, nil, []problem{{"store.url", "three slashes"}}},
		{"store bolt query", map[string]string{"store.url": `"bolt:///x.db?x=1"`}, nil, []problem{{"store.url", "no parameters"}}},
		{"store redis db", map[string]string{"store.url": `"redis://r.example/x"`}, nil, []problem{{"store.url", "invalid database number"}}},
		{"store redis option", map[string]string{"store.url": `"rediss://r.example/0?colour=red"`}, nil, []problem{{"store.url", "colour"}}},
		{"store redis no host", map[string]string{"store.url": `"redis:///0"`}, nil, []problem{{"store.url", "want a host"}}},
		{"store sentinel master", map[string]string{"store.url": `"redis-sentinel://s.example:26379"`}, nil, []problem{{"store.url", "needs ?master_name="}}},
		{"imap scheme", map[string]string{"imap.url": `"pop3://u@h.example"`}, nil, []problem{{"imap.url", `want scheme imaps (implicit TLS) or imap (STARTTLS), got "pop3"`}}},
		{"imap no user", map[string]string{"imap.url": `"imaps://h.example"`}, nil, []problem{{"imap.url", "names no user"}}},
		{"imap password in URL", map[string]string{"imap.url": `"imaps://u:pw@h.example"`}, nil, []problem{{"imap.url", "holds a password"}}},
		{"imap no password", map[string]string{"imap.password": ""}, nil, []problem{{"imap.password", "required to log in as parapheur"}}},
		{"timezone", map[string]string{"timezone": `"Europe/Pariss"`}, nil, []problem{{"timezone", `want an IANA time zone such as "Europe/Paris", got "Europe/Pariss"`}}},
		{"imap tls parameter", map[string]string{"imap.url": `"imap://u@127.0.0.1?tls=none"`}, nil, []problem{{"imap.url", `unknown parameter "tls"`}}},
		{"imap port of other scheme", map[string]string{"imap.url": `"imap://u@h.example:993"`}, nil, []problem{{"imap.url", "port 993 is implicit TLS: want imaps://h.example:993"}}},
		{"imap bad port", map[string]string{"imap.url": `"imaps://u@h.example:99999"`}, nil, []problem{{"imap.url", `port "99999"`}}},
		{"imap unknown parameter", map[string]string{"imap.url": `"imaps://u@h.example?x=1"`}, nil, []problem{{"imap.url", `unknown parameter "x"`}}},
		{"folders clash", map[string]string{"imap.processed_folder": `"inbox"`, "imap.quarantine_folder": `""`}, nil, []problem{{"imap.processed_folder", "already the polled mailbox"}, {"imap.quarantine_folder", "required"}}},
		{"folders same", map[string]string{"imap.quarantine_folder": `"processed"`}, nil, []problem{{"imap.quarantine_folder", "already imap.processed_folder"}}},
		{"smtp port", map[string]string{"smtp.url": `"smtps://u@h.example:587"`}, nil, []problem{{"smtp.url", "port 587 is STARTTLS: want smtp://h.example:587"}}},
		{"smtp path", map[string]string{"smtp.url": `"smtp://u@h.example/x"`}, nil, []problem{{"smtp.url", `want no path, got "/x"`}}},
		{"smtp password no user", map[string]string{"smtp.url": `"smtp://127.0.0.1:25"`}, nil, []problem{{"smtp.password", "names no user"}}},
		{"smtp user no password", map[string]string{"smtp.password": ""}, nil, []problem{{"smtp.password", "required to log in as parapheur"}}},
		{"keys dir", map[string]string{"keys.dir": `""`}, nil, []problem{{"keys.dir", "required"}}},
		{"tsa url", map[string]string{"tsa.url": `"tsa.example"`}, nil, []problem{{"tsa.url", "want an http:// or https:// URL"}}},
		{"sms http", map[string]string{"sms.url": `"http://sms.example/send"`}, nil, []problem{{"sms.url", "want https"}}},
		{"sms user in URL", map[string]string{"sms.url": `"https://u:p@sms.example/send"`}, nil, []problem{{"sms.url", "no user or password"}}},
		{"sms authorization alone", map[string]string{"sms.authorization": `"Bearer x"`}, nil, []problem{{"sms.authorization", "sms.url is not"}}},
		{"senders entries", map[string]string{"senders.allowed": `"bob@, @org..example, Al <al@x.example>"`}, nil, []problem{
			{"senders.allowed", `address "bob@"`}, {"senders.allowed", `"@org..example" is not a domain`}, {"senders.allowed", "want a bare address like al@x.example"},
		}},
		{"authserv_id", map[string]string{"senders.require_auth": "true"}, nil, []problem{{"senders.authserv_id", "required when senders.require_auth is true"}}},
		{"deadline", map[string]string{"envelopes.default_deadline_days": "0"}, nil, []problem{{"envelopes.default_deadline_days", "want 1 to 3650 days, got 0"}}},
		{"reminder", map[string]string{"envelopes.reminder_days": "-1"}, nil, []problem{{"envelopes.reminder_days", "got -1"}}},
		{"limits", map[string]string{"limits.max_message_bytes": "0", "limits.max_document_bytes": "-5"}, nil, []problem{
			{"limits.max_document_bytes", "want a positive number"}, {"limits.max_message_bytes", "want a positive number"},
		}},
		{"document over message", map[string]string{"limits.max_document_bytes": "60000000"}, nil, []problem{{"limits.max_document_bytes", "more than limits.max_message_bytes"}}},
		{"recipients", map[string]string{"limits.max_recipients": "0"}, nil, []problem{{"limits.max_recipients", "want a positive number of recipients per envelope, got 0"}}},
		{"attachment limit", map[string]string{"mail.attachment_limit_bytes": "-1"}, nil, []problem{{"mail.attachment_limit_bytes", "got -1"}}},
		{"download link days", map[string]string{"mail.download_link_days": "0"}, nil, []problem{{"mail.download_link_days", "want 1 to 3650 days, got 0"}}},
		{"download link days env", nil, []string{"PARAPHEUR_MAIL_DOWNLOAD_LINK_DAYS=3651"}, []problem{{"mail.download_link_days", "want 1 to 3650 days, got 3651"}}},
		{"circuit name", map[string]string{"circuits.Direction.steps": `["Signer: a@b.example"]`}, nil, []problem{{"circuits.Direction", `circuit name "Direction"`}}},
		{"circuit name env", nil, []string{"PARAPHEUR_CIRCUITS_A$B_STEPS=Signer: a@b.example"}, []problem{{"circuits.a$b", `circuit name "a$b"`}}},
		{"circuit not table", map[string]string{"circuits.x": `"y"`}, nil, []problem{{"circuits.x", "want a table"}}},
		{"circuits not table", map[string]string{"circuits": `"y"`, "circuits.direction.steps": ""}, nil, []problem{{"circuits", "want a table of circuits"}}},
		{"circuit of the verification address", map[string]string{"circuits.verifier.steps": `["Signer: a@b.example"]`}, nil, []problem{
			{"circuits.verifier.steps", "the names verifier and verify are reserved for the verification address"}}},
		{"circuit no steps", map[string]string{"circuits.direction.steps": "[]"}, nil, []problem{{"circuits.direction.steps", "required"}}},
		{"circuit empty table", map[string]string{"circuits.empty": "{}"}, nil, []problem{{"circuits.empty.steps", "required"}}},
		{"circuit bad lines", map[string]string{"circuits.direction.steps": `["Visa: x", "Signataire: dg@org.example"]`}, nil, []problem{
			{"circuits.direction.steps", `line 1 "Visa: x": "x" is not an email address`}}},
		{"both direct and file", map[string]string{"imap.password_file": `"/x"`}, nil, []problem{{"imap.password", "set both directly (in the file) and by imap.password_file (in the file); keep one"}}},
		{"both in the environment", nil, []string{"PARAPHEUR_SMTP_PASSWORD_FILE=/x", "PARAPHEUR_SMTP_PASSWORD=y"},
			[]problem{{"smtp.password", "set both directly (PARAPHEUR_SMTP_PASSWORD) and by smtp.password_file (PARAPHEUR_SMTP_PASSWORD_FILE); keep one"}}},
		{"missing secret file", map[string]string{"imap.password": "", "imap.password_file": `"/nonexistent/imap"`}, nil, []problem{{"imap.password_file", "no such file"}}},
		{"empty secret file", map[string]string{"imap.password": "", "imap.password_file": fmt.Sprintf("%q", empty)}, nil, []problem{{"imap.password_file", "is empty"}}},
		{"huge secret file", map[string]string{"imap.password": "", "imap.password_file": fmt.Sprintf("%q", big)}, nil, []problem{{"imap.password_file", "larger than 65536 bytes"}}},
		{"file key not a path", map[string]string{"imap.password": "", "imap.password_file": "3"}, nil, []problem{{"imap.password_file", "want the path of a file, got an integer"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := validKeys()
			for k, v := range tc.set {
				if v == "" {
					delete(kv, k)
				} else {
					kv[k] = v
				}
			}
			_, err := loadKeys(t, kv, tc.env...)
			checkProblems(t, err, tc.want)
		})
	}
}

// checkProblems wants err to be an *Error holding exactly the problems want, in order,
// each printed with its key first.
func checkProblems(t *testing.T, err error, want []problem) {
	t.Helper()
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("got error %v, want problems %v", err, want)
	}
	if len(cerr.Problems) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(cerr.Problems), len(want), err)
	}
	for i, p := range cerr.Problems {
		if p.Key != want[i].key || !strings.Contains(p.Reason, want[i].reason) {
			t.Errorf("problem %d: got %q, want key %q and reason containing %q", i, p, want[i].key, want[i].reason)
		}
		if !strings.HasPrefix(p.String(), p.Key+": ") && !strings.HasPrefix(p.String(), p.Key+" (") {
			t.Errorf("problem %q does not start with its key", p)
		}
	}
	if !strings.Contains(err.Error(), cerr.Problems[0].String()) {
		t.Errorf("Error() %q lacks the problems", err)
	}
}

func TestProblemNamesVariable(t *testing.T) {
	_, err := loadKeys(t, validKeys(), "PARAPHEUR_LANGUAGE=es")
	var cerr *Error
	if !errors.As(err, &cerr) || len(cerr.Problems) != 1 {
		t.Fatalf("got %v", err)
	}
	if got, want := cerr.Problems[0].String(), `language (PARAPHEUR_LANGUAGE): want "fr" or "en", got "es"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	secrets := []string{"hunter2", "s3cr3t-imap", "s3cr3t-smtp", "s3cr3t-pass", "Bearer s3cr3t-sms", "s3cr3t-store"}
	storeSecret := writeFile(t, "store", "redis://:hunter2@r.example/zz\n")
	kv := validKeys()
	kv["imap.url"] = `"imaps://u:s3cr3t-imap@h.example:x"`
	kv["smtp.url"] = `"smtp://127.0.0.1:25"` // no user: the password is a problem
	kv["smtp.password"] = `"s3cr3t-smtp"`
	kv["keys.passphrase"] = `"s3cr3t-pass"`
	kv["sms.authorization"] = `"Bearer s3cr3t-sms"`
	kv["store.url_file"] = fmt.Sprintf("%q", storeSecret)
	_, err := loadKeys(t, kv, "PARAPHEUR_IMAP_PASSWORD=s3cr3t-store")
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error shows secret %q:\n%v", s, err)
		}
	}

	kv = validKeys()
	kv["keys.passphrase"] = `"s3cr3t-pass"`
	kv["sms.url"] = `"https://sms.example/"`
	kv["sms.authorization"] = `"Bearer s3cr3t-sms"`
	c, err := loadKeys(t, kv)
	if err != nil {
		t.Fatal(err)
	}
	printed := fmt.Sprintf("%v %+v %#v %s", c, c, c, c.IMAP.Password)
	for _, s := range []string{"imap-secret", "smtp-secret", "s3cr3t-pass", "s3cr3t-sms"} {
		if strings.Contains(printed, s) {
			t.Errorf("printing the Config shows secret %q", s)
		}
	}
	if !strings.Contains(printed, redacted) {
		t.Errorf("printing the Config shows no %s", redacted)
	}
}

func TestSyntaxError(t *testing.T) {
	path := writeFile(t, "p.toml", "address = \"a@b.example\"\nlisten = = 3\n")
	_, err := Load(path, nil)
	if err == nil || !strings.Contains(err.Error(), path+": toml: line 2") {
		t.Errorf("got %v, want the file and line 2", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
}

func TestSendersAllows(t *testing.T) {
	s := Senders{Allowed: []string{"agent@org.example", "@partner.example"}}
	for addr, want := range map[string]bool{
		"agent@org.example":         true,
		"Agent@ORG.example":         true,
		"other@org.example":         false,
		"x@partner.example":         true,
		"x@sub.partner.example":     false,
		"x@partner.example.evil":    false,
		"agent@org.example.evil":    false,
		"no-at-sign":                false,
		"partner.example@evil.test": false,
	} {
		if got := s.Allows(addr); got != want {
			t.Errorf("Allows(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestEnvNames(t *testing.T) {
	for key, want := range map[string]string{
		"public_url":                      "PARAPHEUR_PUBLIC_URL",
		"imap.processed_folder":           "PARAPHEUR_IMAP_PROCESSED_FOLDER",
		"sms.authorization_file":          "PARAPHEUR_SMS_AUTHORIZATION_FILE",
		"envelopes.default_deadline_days": "PARAPHEUR_ENVELOPES_DEFAULT_DEADLINE_DAYS",
	} {
		if got := known.envKeys[want]; got != key {
			t.Errorf("%s maps to key %q, want %q", want, got, key)
		}
	}
	for name, want := range map[string]string{
		"PARAPHEUR_CIRCUITS_A_STEPS":        "circuits.a.steps",
		"PARAPHEUR_CIRCUITS_A_B_STEPS_FILE": "circuits.a_b.steps_file",
		"PARAPHEUR_CIRCUITS_X_STEPS_STEPS":  "circuits.x_steps.steps",
		"PARAPHEUR_CIRCUITS_STEPS":          "",
		"PARAPHEUR_CIRCUITS_A_COLOUR":       "",
	} {
		got, _ := known.circuitEnvKey(name)
		if got != want {
			t.Errorf("circuitEnvKey(%s) = %q, want %q", name, got, want)
		}
	}
	if len(known.envKeys) != len(known.byKey) {
		t.Errorf("%d environment names for %d keys: two keys share a name", len(known.envKeys), len(known.byKey))
	}
}

// samplePath is the commented sample configuration shipped for operators.
const samplePath = "../../../deploy/parapheur.toml"

func TestSampleConfig(t *testing.T) {
	secret := writeFile(t, "secret", "sample-secret\n")
	// The sample reads secrets from /etc/parapheur/secrets; point those keys elsewhere.
	c, err := Load(samplePath, []string{
		"PARAPHEUR_IMAP_PASSWORD_FILE=" + secret,
		"PARAPHEUR_SMTP_PASSWORD_FILE=" + secret,
		"PARAPHEUR_KEYS_PASSPHRASE_FILE=" + secret,
	})
	if err != nil {
		t.Fatalf("the sample configuration does not load: %v", err)
	}
	if len(c.Circuits) == 0 || !c.Senders.RequireAuth {
		t.Errorf("sample: circuits %v, require_auth %v", c.Circuits, c.Senders.RequireAuth)
	}

	// Every key is shown, set or commented out, under its table.
	data, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	header := regexp.MustCompile(`^#?\s*\[([a-z0-9_.]+)\]\s*$`)
	assignment := regexp.MustCompile(`^#?\s*([a-z_]+)\s*=`)
	shown := map[string]bool{}
	table := ""
	for line := range strings.SplitSeq(string(data), "\n") {
		if m := header.FindStringSubmatch(line); m != nil {
			table = m[1]
			if rest, ok := strings.CutPrefix(table, circuitsKey+"."); ok && !strings.Contains(rest, ".") {
				table = circuitsKey + ".NAME"
			}
		} else if m := assignment.FindStringSubmatch(line); m != nil {
			key := m[1]
			if table != "" {
				key = table + "." + key
			}
			shown[key] = true
		}
	}
	for _, key := range known.keys() {
		f := strings.TrimSuffix(key, fileSuffix)
		if key != f && !known.byKey[f].secret && !strings.HasPrefix(key, circuitsKey) {
			continue // K_file of a non-secret K needs no example of its own
		}
		if !shown[key] {
			t.Errorf("the sample does not show %s", key)
		}
	}
}

func TestDefaultFile(t *testing.T) {
	saved := DefaultPath
	t.Cleanup(func() { DefaultPath = saved })
	DefaultPath = filepath.Join(t.TempDir(), "parapheur.toml")

	for _, tc := range []struct {
		name    string
		environ []string
		want    string
	}{
		{"no file at the default path: the environment alone", []string{"PARAPHEUR_ADDRESS=a@b.example"}, ""},
		{"PARAPHEUR_CONFIG names a file, even a missing one", []string{"PARAPHEUR_CONFIG=/missing.toml"}, "/missing.toml"},
		{"the last PARAPHEUR_CONFIG wins", []string{"PARAPHEUR_CONFIG=/a.toml", "PARAPHEUR_CONFIG=/b.toml"}, "/b.toml"},
		{"an empty PARAPHEUR_CONFIG: the environment alone", []string{"PARAPHEUR_CONFIG="}, ""},
	} {
		if got := DefaultFile(tc.environ); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}

	if err := os.WriteFile(DefaultPath, []byte("listen = \":9090\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := DefaultFile(nil); got != DefaultPath {
		t.Errorf("a file at the default path: %q, want %q", got, DefaultPath)
	}
	if got := DefaultFile([]string{"PARAPHEUR_CONFIG="}); got != "" {
		t.Errorf("an empty PARAPHEUR_CONFIG over a file at the default path: %q, want the environment alone", got)
	}

	// A default path that is there but cannot be read is kept, so that Load says why.
	if err := os.Remove(DefaultPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(DefaultPath, 0o700); err != nil {
		t.Fatal(err)
	}
	path := DefaultFile(nil)
	if path != DefaultPath {
		t.Fatalf("a directory at the default path: %q, want %q", path, DefaultPath)
	}
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), DefaultPath) {
		t.Errorf("Load of a directory at the default path: %v, want an error naming it", err)
	}
}

// TestLoadEnvironmentAlone is a container's configuration: no file, the PARAPHEUR_*
// variables only, with the secrets in files.
func TestLoadEnvironmentAlone(t *testing.T) {
	secret := writeFile(t, "secret", "s3cret\n")
	c, err := Load("", []string{
		"PARAPHEUR_ADDRESS=parapheur@org.example",
		"PARAPHEUR_PUBLIC_URL=https://sign.org.example",
		"PARAPHEUR_IMAP_URL=imaps://parapheur@imap.org.example/INBOX",
		"PARAPHEUR_IMAP_PASSWORD_FILE=" + secret,
		"PARAPHEUR_SMTP_URL=smtps://parapheur@smtp.org.example",
		"PARAPHEUR_SMTP_PASSWORD_FILE=" + secret,
		"PARAPHEUR_KEYS_PASSPHRASE_FILE=" + secret,
		"PARAPHEUR_SENDERS_ALLOWED=@org.example",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.IMAP.Password != "s3cret" || c.SMTP.Password != "s3cret" || c.Keys.Passphrase != "s3cret" || c.Address != "parapheur@org.example" {
		t.Errorf("environment alone: address %q, secrets read %v %v %v", c.Address, c.IMAP.Password == "s3cret", c.SMTP.Password == "s3cret", c.Keys.Passphrase == "s3cret")
	}
}

// The web server's keys: proxies as addresses or prefixes, the TLS pair
// read from files and checked to belong together.
func TestHTTPKeys(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA(pkix.Name{CommonName: "test"}, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)

	kv := validKeys()
	kv["http.trusted_proxies"] = `["10.0.0.0/8", "192.0.2.7", "::1"]`
	kv["http.tls_cert_file"] = strconv.Quote(certFile)
	kv["http.tls_key_file"] = strconv.Quote(keyFile)
	c, err := loadKeys(t, kv)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("::1/128")}
	if !reflect.DeepEqual(c.HTTP.Proxies, want) {
		t.Errorf("proxies %v, want %v", c.HTTP.Proxies, want)
	}
	if c.HTTP.Certificate == nil {
		t.Error("no TLS certificate loaded")
	}

	kv = validKeys()
	kv["http.trusted_proxies"] = `"10.0.0.0/8, proxy.example"`
	kv["http.tls_cert_file"] = strconv.Quote(certFile)
	_, err = loadKeys(t, kv)
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("Load = %v, want problems", err)
	}
	got := fmt.Sprint(cerr.Problems)
	for _, want := range []string{`http.trusted_proxies: "proxy.example" is neither an IP address nor a CIDR prefix`, "http.tls_key: required with http.tls_cert"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %s lack %q", got, want)
		}
	}

	kv = validKeys()
	other, _ := pki.NewCA(pkix.Name{CommonName: "other"}, time.Hour, false)
	otherDER, _ := x509.MarshalPKCS8PrivateKey(other.Key)
	mismatched := filepath.Join(dir, "other.pem")
	os.WriteFile(mismatched, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: otherDER}), 0o600)
	kv["http.tls_cert_file"] = strconv.Quote(certFile)
	kv["http.tls_key_file"] = strconv.Quote(mismatched)
	if _, err := loadKeys(t, kv); err == nil || !strings.Contains(err.Error(), "http.tls_cert: the certificate and key do not make a TLS key pair") {
		t.Errorf("mismatched pair: %v", err)
	}
}
