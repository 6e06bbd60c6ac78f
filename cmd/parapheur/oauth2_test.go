package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parapheur/parapheur/deploy/testrig"
)

// oauth2Example is one of the example configurations in testdata, with the secrets its
// _file keys name written to files of the test, and the token endpoint at tokens.
type oauth2Example struct {
	path string
	env  []string
}

func writeSecret(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// edited writes the example at path with the replacements applied.
func edited(t *testing.T, path string, replacements ...string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer(replacements...).Replace(string(data))
	if text == string(data) && len(replacements) > 0 {
		t.Fatalf("the replacements %q change nothing in %s", replacements, path)
	}
	return writeSecret(t, filepath.Base(path), []byte(text))
}

// checkProblems runs config check and wants each of want among its lines, and no secret.
func checkProblems(t *testing.T, config string, env []string, want ...string) {
	t.Helper()
	r := parapheur(t, env, "--config", config, "config", "check")
	if len(want) == 0 {
		if r.code != exitOK || !strings.HasPrefix(r.stdout, "config OK") {
			t.Errorf("exit %d, stdout %q, stderr %q; want OK", r.code, r.stdout, r.stderr)
		}
		return
	}
	if r.code != exitFailure {
		t.Errorf("exit %d, want %d", r.code, exitFailure)
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("no %q in the problems:\n%s", w, r.stdout)
		}
	}
	for _, secret := range []string{"right-secret", "wrong-secret", "PRIVATE KEY"} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("config check shows a secret:\n%s%s", r.stdout, r.stderr)
		}
	}
}

func TestConfigCheckMicrosoft365(t *testing.T) {
	tokens := testrig.StartOAuth2()
	defer tokens.Close()
	tokens.AddClient("00000000-0000-0000-0000-000000000001", "right-secret", "parapheur@org.example")
	example, _ := filepath.Abs("testdata/oauth2-microsoft.toml")
	env := func(secret string) []string {
		return []string{"PARAPHEUR_OAUTH2_TOKEN_URL=" + tokens.TokenURL(),
			"PARAPHEUR_OAUTH2_CLIENT_SECRET_FILE=" + writeSecret(t, "secret", []byte(secret+"\n"))}
	}
	t.Run("good", func(t *testing.T) { checkProblems(t, example, env("right-secret")) })
	t.Run("wrong secret", func(t *testing.T) {
		checkProblems(t, example, env("wrong-secret"), "invalid_client", "Invalid client secret provided", "check oauth2.client_secret_file")
	})
	t.Run("missing keys", func(t *testing.T) {
		bad := edited(t, example, `tenant = "org.example"`, ``, `client_id = "00000000-0000-0000-0000-000000000001"`, ``,
			`client_secret_file = "/etc/parapheur/secrets/oauth2-client-secret"`, ``)
		checkProblems(t, bad, nil, "oauth2.tenant: required", "oauth2.client_id: required", "oauth2.client_secret_file: required")
	})
	t.Run("wrong keys", func(t *testing.T) {
		bad := edited(t, example, `provider = "microsoft"`, `provider = "azure"`, `[imap]`, "[imap]\npassword = \"right-secret\"",
			`auth = "oauth2"`+"\n\n[oauth2]", `auth = "token"`+"\n\n[oauth2]\nmechanism = \"plain\"")
		checkProblems(t, bad, env("right-secret"), `oauth2.provider: want "microsoft", "google" or "refresh_token", got "azure"`,
			"imap.password: set, but imap.auth is oauth2", `smtp.auth: want "password" or "oauth2", got "token"`,
			`oauth2.mechanism: want "xoauth2" or "oauthbearer", got "PLAIN"`)
	})
	t.Run("unknown application", func(t *testing.T) {
		bad := edited(t, example, `client_id = "00000000-0000-0000-0000-000000000001"`, `client_id = "00000000-0000-0000-0000-000000000002"`)
		checkProblems(t, bad, env("right-secret"), "unauthorized_client", "oauth2.client_id")
	})
}

func TestConfigCheckGoogleWorkspace(t *testing.T) {
	tokens := testrig.StartOAuth2()
	defer tokens.Close()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	account := func(kind, email string) string {
		data, _ := json.Marshal(map[string]string{"type": kind, "client_email": email, "private_key_id": "k1",
			"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "token_uri": tokens.TokenURL()})
		return "PARAPHEUR_OAUTH2_SERVICE_ACCOUNT_FILE=" + writeSecret(t, "account.json", data)
	}
	tokens.AddServiceAccount("parapheur@project.iam.gserviceaccount.com", &key.PublicKey)
	example, _ := filepath.Abs("testdata/oauth2-google.toml")
	t.Run("good", func(t *testing.T) {
		checkProblems(t, example, []string{account("service_account", "parapheur@project.iam.gserviceaccount.com")})
	})
	t.Run("unknown service account", func(t *testing.T) {
		checkProblems(t, example, []string{account("service_account", "other@project.iam.gserviceaccount.com")},
			"invalid_grant", "check oauth2.service_account_file, and the domain-wide delegation")
	})
	t.Run("not a service account", func(t *testing.T) {
		checkProblems(t, example, []string{account("authorized_user", "parapheur@project.iam.gserviceaccount.com")},
			`oauth2.service_account_file: the key's type is "authorized_user", want "service_account"`)
	})
	t.Run("missing keys", func(t *testing.T) {
		bad := edited(t, example, `provider = "google"`, ``,
			`service_account_file = "/etc/parapheur/secrets/google-service-account.json"`, ``)
		checkProblems(t, bad, nil, `oauth2.provider: required by imap.auth or smtp.auth = "oauth2"`)
		bad = edited(t, example, `service_account_file = "/etc/parapheur/secrets/google-service-account.json"`, ``)
		checkProblems(t, bad, nil, "oauth2.service_account_file: required")
	})
}

// The device login prints where to sign in, waits for the sign-in, stores the refresh
// token mode 0600, and the configuration then checks: its token works.
func TestOAuth2Login(t *testing.T) {
	tokens := testrig.StartOAuth2()
	defer tokens.Close()
	example, _ := filepath.Abs("testdata/oauth2-refresh-token.toml")
	tokenFile := filepath.Join(t.TempDir(), "refresh-token")
	env := []string{"PARAPHEUR_OAUTH2_TOKEN_URL=" + tokens.TokenURL(), "PARAPHEUR_OAUTH2_DEVICE_URL=" + tokens.DeviceURL(),
		"PARAPHEUR_OAUTH2_TOKEN_FILE=" + tokenFile}

	// Before the login, config check says what to run.
	checkProblems(t, example, env, "oauth2.token_file: open "+tokenFile, `run "parapheur oauth2 login"`)

	cmd := exec.Command(binary, "--config", example, "oauth2", "login")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		t.Fatalf("no prompt; stderr %q", &stderr)
	}
	prompt := lines.Text()
	words := strings.Fields(prompt)
	if !strings.Contains(prompt, tokens.DeviceURL()[:len(tokens.DeviceURL())-len("code")]) || !tokens.Approve(words[len(words)-1], "parapheur") {
		t.Fatalf("the prompt %q names no pending code at the server's sign-in page", prompt)
	}
	lines.Scan()
	if err := cmd.Wait(); err != nil || lines.Text() != "refresh token stored in "+tokenFile {
		t.Fatalf("login: %v, said %q, stderr %q", err, lines.Text(), &stderr)
	}
	st, err := os.Stat(tokenFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the token file: %v, %v; want mode 0600", st, err)
	}
	checkProblems(t, example, env)
}

// "parapheur serve" with both logins on OAuth2, against Dovecot's oauth2 passdb and
// Postfix: a submission is answered; when the grant is revoked, /readyz and the log say
// so, the gateway keeps running, and no secret or token is ever logged.
func TestServeOAuth2(t *testing.T) {
	tokens := testrig.StartOAuth2()
	defer tokens.Close()
	rig, err := testrig.StartMail(t.TempDir(), testrig.MailOptions{OAuth2Introspection: tokens.IntrospectionURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rig.Stop(); err != nil {
			t.Error(err)
		}
	})
	tokens.AddClient("gateway-app", "right-secret", "parapheur")

	storeURL, keys := "bolt://"+filepath.Join(t.TempDir(), "parapheur.db"), initKeys(t)
	secret := writeSecret(t, "secret", []byte("right-secret\n"))
	s := startServeEnv(t, func(listen string) []string {
		var env []string
		for _, kv := range serveEnv(rig, storeURL, keys, listen) {
			if !strings.HasPrefix(kv, "PARAPHEUR_IMAP_PASSWORD=") && !strings.HasPrefix(kv, "PARAPHEUR_SMTP_URL=") {
				env = append(env, kv)
			}
		}
		return append(env, "PARAPHEUR_SMTP_URL=smtp://parapheur@"+rig.SMTPAddr(), "PARAPHEUR_IMAP_AUTH=oauth2", "PARAPHEUR_SMTP_AUTH=oauth2",
			"PARAPHEUR_OAUTH2_PROVIDER=microsoft", "PARAPHEUR_OAUTH2_TENANT=org.example", "PARAPHEUR_OAUTH2_CLIENT_ID=gateway-app",
			"PARAPHEUR_OAUTH2_CLIENT_SECRET_FILE="+secret, "PARAPHEUR_OAUTH2_TOKEN_URL="+tokens.TokenURL())
	})

	submission, msgID := newSubmission(t, "Convention OAuth2")
	sendMail(t, rig.SMTPAddr(), "bob@example.com", "parapheur@org.example", submission)
	if _, err := rig.WaitMessage("bob", "In-Reply-To", msgID, 60*time.Second); err != nil {
		t.Fatal(err)
	}

	tokens.Revoke("parapheur")
	if err := rig.Kick("parapheur"); err != nil {
		t.Fatal(err)
	}
	var body []byte
	eventually(t, 30*time.Second, "/readyz reporting the revoked grant", func() bool {
		var resp *http.Response
		resp, body = getResponse(t, "http://"+s.listen+"/readyz")
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if !strings.Contains(string(body), "no OAuth2 access token") || !strings.Contains(string(body), "invalid_grant") {
		t.Errorf("/readyz says %q, want the token endpoint's refusal", body)
	}
	if !strings.Contains(s.logs.String(), "has been revoked") {
		t.Errorf("the log does not report the revocation:\n%s", s.logs)
	}
	select {
	case err := <-s.exited:
		t.Fatalf("serve exited: %v", err)
	default:
	}
	for _, secret := range []string{"right-secret", "access-"} {
		if strings.Contains(s.logs.String(), secret) {
			t.Errorf("the log shows %q", secret)
		}
	}
}
