package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
	"github.com/parapheur/parapheur/signing/ceremony"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/signing/verify"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
)

var verifyCommand = &command{
	name:    "verify",
	args:    "FILE",
	summary: "check the signatures of a PDF, or an audit trail's chain",
	help: `
Verify lists each signature of FILE, a PDF: signer, time, PAdES level, whether
it is intact, whether this gateway's CA (keys.dir) issued it, and whether the
file was changed after it; then the envelope the gateway's signatures name,
and, from the store (store.url), whether FILE is that envelope's final version.
Without a configured keys.dir it still checks the signatures, but cannot say
which the gateway issued; with nothing configured, run from the folder where
"parapheur demo" keeps its state, it uses the demo's keys and store. When the
PDF embeds an
audit trail (an attachment named audit-*.json, as the completion certificate
does), verify also checks its hash chain.

FILE may also be an audit trail itself (audit-ENVELOPEID.json, as archivists
receive it, or any file that holds a JSON array): verify checks its chain and
names the first event edited, removed, inserted or moved, or prints the number
of events and the head hash. The chain alone cannot show events cut off at its
end: compare it with the certificate, whose trail ends at its "number of
events" with the hash it states. The trail archivists receive by mail goes on
past that event (the completion and its mails): there, the event of that
number carries the certificate's hash.

Exit status: 0 when every signature is valid and every trail intact, 1 when one
is not (or a PDF has no signature), 2 when the file cannot be read.`,
	run: runVerify,
}

func runVerify(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(1, 1); !ok {
		return code
	}
	file := inv.args[0]
	data, err := os.ReadFile(file)
	if err != nil {
		return inv.unreadable(fmt.Errorf("%w: %v", verify.ErrUnreadable, err))
	}
	if isTrailFile(file, data) {
		return inv.verifyTrail(file, data)
	}
	var ca *x509.Certificate
	cfg, err := config.LoadSections(*inv.configPath, inv.environ, "keys", "store", "limits")
	if err == nil && cfg.Keys.Dir != "" {
		ca, _ = pki.LoadCACert(cfg.Keys.Dir) // no CA: the report says so
	}
	if err == nil && ca == nil {
		ca = inv.demoInstead(cfg)
	}
	report, err := verify.Verify(data, ca)
	if errors.Is(err, verify.ErrUnreadable) {
		return inv.unreadable(err)
	}
	if err != nil {
		return inv.fail(err)
	}
	report.WriteText(inv.stdout, ca != nil)
	if ca != nil {
		inv.writePlacement(cfg, data, report)
	}
	return report.ExitCode()
}

// demoInstead points cfg at the demo's keys and store, and returns its CA,
// when nothing configures the gateway and ./parapheur-demo holds a demo's
// keys (see demoFolder). It says so.
func (inv *invocation) demoInstead(cfg *config.Config) *x509.Certificate {
	dir, ok := inv.demoFolder("keys")
	if !ok {
		return nil
	}
	ca, err := pki.LoadCACert(filepath.Join(dir, "keys"))
	if err != nil {
		return nil
	}
	cfg.Keys.Dir = filepath.Join(dir, "keys")
	cfg.Store.URL = demoStoreURL(dir)
	fmt.Fprintf(inv.stdout, "No configuration: checked against the demo's keys and store in ./%s.\n\n", demoDir)
	return ca
}

// demoFolder returns the absolute path of ./parapheur-demo when nothing
// configures the gateway (no file; keys.dir and store.url not in the
// environment) and the folder holds what (its keys, its store): someone who
// tried the demo runs verify and the envelope commands from the same folder.
func (inv *invocation) demoFolder(what string) (string, bool) {
	if *inv.configPath != "" || slices.ContainsFunc(inv.environ, func(kv string) bool {
		return strings.HasPrefix(kv, "PARAPHEUR_KEYS_DIR=") || strings.HasPrefix(kv, "PARAPHEUR_STORE_URL=")
	}) {
		return "", false
	}
	dir, err := filepath.Abs(demoDir)
	if err != nil {
		return "", false
	}
	if _, err := os.Stat(filepath.Join(dir, what)); err != nil {
		return "", false
	}
	return dir, true
}

// demoStoreURL is the store.url of the demo keeping its state in dir.
func demoStoreURL(dir string) string {
	return "bolt://" + filepath.ToSlash(filepath.Join(dir, "parapheur.db"))
}

// writePlacement says which envelope the PDF data belongs to and whether it
// is its final version, in the words of the page PUBLIC_URL/verify (SPEC
// §6). The store is opened only when a signature of the gateway names an
// envelope; when it cannot be read (a running gateway holds the embedded
// store), the envelope is still named and the reason told.
func (inv *invocation) writePlacement(cfg *config.Config, data []byte, report *verify.Report) {
	f := &storeFinder{open: func() (store.Store, error) { return inv.openExistingStore(cfg) }}
	defer f.close()
	sum := sha256.Sum256(data)
	out := verdict.File{SHA256: hex.EncodeToString(sum[:])}
	c := verdict.Checker{Finder: f, Log: slog.New(slog.DiscardHandler)}
	c.Place(inv.ctx(), &out, report, "en")
	if f.err != nil {
		fmt.Fprintf(inv.stdout, "Envelope %s, named by the gateway's signature; whether this file is its final version is unknown: %v\n", f.envelope, f.err)
		if errors.Is(f.err, bolt.ErrInUse) {
			// The running gateway can answer: it holds the store.
			fmt.Fprintln(inv.stdout, "The running gateway tells it meanwhile: its page PUBLIC_URL/verify, or a mail with the PDF to its address parapheur+verifier@… .")
		}
		return
	}
	for _, line := range []string{out.Envelope, out.Placement} {
		if line != "" {
			fmt.Fprintln(inv.stdout, line)
		}
	}
}

// openExistingStore opens the store of cfg if it exists: verify must not
// make an empty embedded store where the gateway has none.
func (inv *invocation) openExistingStore(cfg *config.Config) (store.Store, error) {
	if u, err := url.Parse(cfg.Store.URL); err == nil && u.Scheme == "bolt" {
		if _, err := os.Stat(u.Path); err != nil {
			return nil, fmt.Errorf("no store at %s (store.url): %w; name the gateway's store with --config FILE "+
				"or PARAPHEUR_STORE_URL, or run the command from the folder where the demo keeps parapheur-demo, "+
				"with the demo stopped", cfg.Store.URL, err)
		}
	}
	return inv.openConfiguredStore(cfg)
}

// storeFinder finds a verified file's envelope in the store, opened at the
// first lookup; err keeps why it could not be, and envelope the envelope
// looked for.
type storeFinder struct {
	open     func() (store.Store, error)
	st       store.Store
	err      error
	envelope string
}

func (*storeFinder) EnvelopeOfReason(r string) (string, bool) { return ceremony.EnvelopeOfReason(r) }

func (f *storeFinder) FindDocument(ctx context.Context, envelopeID, sum string) (verdict.Placement, error) {
	f.envelope = envelopeID
	if f.st == nil {
		if f.st, f.err = f.open(); f.err != nil {
			return verdict.Placement{}, f.err
		}
	}
	env, err := f.st.Get(ctx, envelopeID)
	if err != nil {
		return verdict.Placement{}, err
	}
	return verdict.Locate(env, sum), nil
}

func (f *storeFinder) close() {
	if f.st != nil {
		f.st.Close()
	}
}

// isTrailFile tells whether the file to verify is an audit trail: named
// *.json, or a JSON array whatever its name (a PDF starts with %PDF-).
func isTrailFile(name string, data []byte) bool {
	return strings.EqualFold(filepath.Ext(name), ".json") || bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("["))
}

// verifyTrail checks the chain of the audit trail file name holding data.
func (inv *invocation) verifyTrail(name string, data []byte) int {
	recs, err := verify.ReadTrail(data)
	if err != nil {
		return inv.unreadable(fmt.Errorf("%s: %w", name, err))
	}
	t := verify.CheckTrail(filepath.Base(name), recs, nil)
	t.WriteText(inv.stdout)
	if !t.Intact() {
		return verify.ExitInvalid
	}
	return verify.ExitValid
}

// unreadable reports a file verify cannot check at all.
func (inv *invocation) unreadable(err error) int {
	fmt.Fprintf(inv.stderr, "parapheur verify: %v\n", err)
	return verify.ExitUnreadable
}
