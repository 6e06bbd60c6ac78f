package config

import (
	"errors"
	"strings"
	"testing"
)

// oauth2Keys is a valid configuration whose logins use OAuth2.
func oauth2Keys() map[string]string {
	kv := validKeys()
	delete(kv, "imap.password")
	delete(kv, "smtp.password")
	kv["imap.auth"], kv["smtp.auth"] = `"oauth2"`, `"oauth2"`
	kv["oauth2.provider"], kv["oauth2.tenant"], kv["oauth2.client_id"] = `"microsoft"`, `"org.example"`, `"app"`
	return kv
}

// The OAuth2 secrets come from their _file keys or the environment, never from the file.
func TestOAuth2SecretsNotInTheFile(t *testing.T) {
	secretFile := writeFile(t, "secret", "from-file\n")
	kv := oauth2Keys()
	kv["oauth2.client_secret_file"] = `"` + secretFile + `"`
	kv["oauth2.mechanism"] = `"oauthbearer"`
	c, err := loadKeys(t, kv)
	if err != nil {
		t.Fatal(err)
	}
	if c.OAuth2.ClientSecret != "from-file" || c.OAuth2.Mechanism != "OAUTHBEARER" || c.IMAP.Auth != "oauth2" {
		t.Errorf("oauth2 read as %+v", c.OAuth2)
	}
	delete(kv, "oauth2.client_secret_file")
	if c, err = loadKeys(t, kv, "PARAPHEUR_OAUTH2_CLIENT_SECRET=from-env"); err != nil || c.OAuth2.ClientSecret != "from-env" {
		t.Errorf("from the environment: %v", err)
	}

	for _, key := range []string{"oauth2.client_secret", "oauth2.client_certificate", "oauth2.service_account"} {
		kv := oauth2Keys()
		kv[key] = `"hunter2"`
		_, err := loadKeys(t, kv)
		var cerr *Error
		if !errors.As(err, &cerr) || len(cerr.Problems) != 1 || cerr.Problems[0].Key != key ||
			!strings.Contains(cerr.Problems[0].Reason, key+"_file") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s in the file: %v, want one problem naming %s_file, without the secret", key, err, key)
		}
	}
}
