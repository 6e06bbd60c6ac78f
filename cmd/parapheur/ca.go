package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
	"github.com/parapheur/parapheur/signing/pki"
)

var caInitCommand = &command{
	name:    "ca init",
	summary: "create the gateway secret, the signing CA and the seal certificate",
	help: `
"ca init" creates, for a new installation, the signing CA that issues a one-time
certificate to each signer and the organisation's seal key and certificate, and
writes them to keys.dir, the private keys in PKCS#12 files protected by
keys.passphrase (required). It also writes gateway.key, the secret from which
the gateway derives the keys that recognise its own bounces and one-time codes
(32 random bytes, readable by its owner only; serve needs it), unless the file
exists. It refuses to overwrite existing keys; with --if-missing it keeps
them and succeeds, as a container's first-start step does on every start.

With public_url in the configuration, the seal certificate names
PUBLIC_URL/ca.crl as its CRL distribution point, where serve publishes the
signing CA's certificate revocation list, so that validators can check the
seal's chain for the long term. Without it the seal certificate names none.`,
	run: runCAInit,
}

func runCAInit(inv *invocation) int {
	inv.configFlag()
	org := inv.flags.String("organisation", "", "the organisation `NAME` written in both certificates (required)")
	country := inv.flags.String("country", "", "the ISO 3166 country `CODE` of the organisation, e.g. FR")
	rsa := inv.flags.Bool("rsa", false, "make RSA-3072 keys instead of ECDSA P-256")
	ifMissing := inv.flags.Bool("if-missing", false, "keep the CA and seal already in keys.dir and succeed, instead of failing")
	if code, ok := inv.parse(0, 0); !ok {
		return code
	}
	if *org = strings.TrimSpace(*org); *org == "" {
		return inv.usageError("--organisation is required")
	}
	if *country != "" {
		c := strings.ToUpper(strings.TrimSpace(*country))
		if len(c) != 2 || strings.Trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			return inv.usageError("--country %q: want the organisation's two-letter ISO 3166 code, e.g. FR", *country)
		}
		*country = c
	}
	cfg, err := config.LoadSections(*inv.configPath, inv.environ, "keys")
	if err != nil {
		return inv.fail(err)
	}
	if cfg.PublicURL != "" {
		// public_url is optional here, but when given it goes into the
		// seal certificate for years: load again to report its problems
		// and have it normalised.
		if cfg, err = config.LoadSections(*inv.configPath, inv.environ, "keys", "public_url"); err != nil {
			return inv.fail(err)
		}
	}
	if err := passphraseGiven(cfg); err != nil {
		return inv.fail(err)
	}
	wrote, err := createGatewaySecret(cfg.Keys.Dir)
	if err != nil {
		return inv.fail(fmt.Errorf("the gateway secret: %w", err))
	}
	if wrote {
		fmt.Fprintln(inv.stdout, "wrote", filepath.Join(cfg.Keys.Dir, gatewaySecretFile))
	}
	opts := pki.InitOptions{Organisation: *org, Country: *country, Passphrase: string(cfg.Keys.Passphrase), RSA: *rsa,
		CRLURL: crlURL(cfg.PublicURL)}
	if err := pki.InitCA(cfg.Keys.Dir, opts); err != nil {
		if errors.Is(err, pki.ErrExists) && (wrote || *ifMissing) {
			// An installation made before the gateway secret existed (it
			// needed only the secret), or one whose keys the operator
			// asked to keep: both keep their CA and seal.
			fmt.Fprintf(inv.stdout, "kept the CA and seal already in %s\n", cfg.Keys.Dir)
			return exitOK
		}
		return inv.fail(err)
	}
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile, pki.SealCertFile, pki.SealKeyFile} {
		fmt.Fprintln(inv.stdout, "wrote", filepath.Join(cfg.Keys.Dir, f))
	}
	if opts.CRLURL != "" {
		fmt.Fprintln(inv.stdout, "the seal certificate names the CRL that serve publishes at", opts.CRLURL)
	} else {
		fmt.Fprintln(inv.stdout, "the seal certificate names no CRL: without public_url, validators cannot check its revocation")
	}
	return exitOK
}

// crlURL is where serve publishes the signing CA's CRL under publicURL,
// which the certificates the CA issues name; "" without publicURL.
func crlURL(publicURL string) string {
	if publicURL == "" {
		return ""
	}
	return publicURL + crlPath
}

// passphraseRequired says why keys.passphrase is needed and how to give it.
const passphraseRequired = "required: \"parapheur ca init\" encrypts the keys with it, and the gateway reads them with it " +
	"(set keys.passphrase_file, keys.passphrase or PARAPHEUR_KEYS_PASSPHRASE)"

// passphraseGiven refuses a configuration without keys.passphrase.
func passphraseGiven(cfg *config.Config) error {
	if cfg.Keys.Passphrase == "" {
		return errors.New("keys.passphrase: " + passphraseRequired)
	}
	return nil
}
