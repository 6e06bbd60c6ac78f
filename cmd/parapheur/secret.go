package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// gatewaySecretFile, in keys.dir, holds the gateway secret: secretSize
// random bytes from which the gateway derives its MAC keys. Every replica
// must read the same file: a return path tagged by one is checked by
// whichever polls the mailbox, a one-time code stored by one is checked by
// another.
const gatewaySecretFile = "gateway.key"

// secretSize is the length of the gateway secret, that of an HMAC-SHA-256 key
// of full strength.
const secretSize = 32

// createGatewaySecret writes a new gateway secret into dir, readable by its
// owner only, unless the file exists already; it reports whether it wrote
// one.
func createGatewaySecret(dir string) (bool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	f, err := os.OpenFile(filepath.Join(dir, gatewaySecretFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	secret := make([]byte, secretSize)
	rand.Read(secret)
	if _, err := f.Write(secret); err != nil {
		f.Close()
		return false, err
	}
	return true, f.Close()
}

// gatewayKeys are the keys derived from the gateway secret, one per use,
// so that no MAC made for one use is valid for another.
type gatewayKeys struct {
	// returnPath tags the VERP return paths (package mailid).
	returnPath []byte
	// code is the engine's key for one-time codes.
	code []byte
	// web keys the CSRF tokens of the pages' forms.
	web []byte
}

// loadGatewayKeys reads the gateway secret in dir and derives the keys
// from it, each the HMAC-SHA-256 of its label under the secret (the
// pseudo-random function of HKDF-Expand, RFC 5869 §2.3).
func loadGatewayKeys(dir string) (gatewayKeys, error) {
	path := filepath.Join(dir, gatewaySecretFile)
	secret, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return gatewayKeys{}, fmt.Errorf("the gateway secret %s does not exist: run \"parapheur ca init\", which writes it", path)
	}
	if err != nil {
		return gatewayKeys{}, fmt.Errorf("the gateway secret: %w", err)
	}
	if len(secret) != secretSize {
		return gatewayKeys{}, fmt.Errorf("the gateway secret %s holds %d bytes instead of %d: restore the file of the installation, or remove it and run \"parapheur ca init\" (bounces of the mails already sent and the one-time codes already sent are then not recognised)", path, len(secret), secretSize)
	}
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("parapheur " + label))
		return m.Sum(nil)
	}
	return gatewayKeys{returnPath: derive("return path tag"), code: derive("one-time code"), web: derive("web forms")}, nil
}
