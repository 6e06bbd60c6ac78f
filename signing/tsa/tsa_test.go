package tsa_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/parapheur/parapheur/signing/internal/pkitest"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/tsa"
)

func TestToken(t *testing.T) {
	ca, err := pki.NewCA(pkix.Name{CommonName: "TSA CA"}, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	srv := pkitest.StartTSA(t, ca)
	d := sha256.Sum256([]byte("document"))
	tok, err := (&tsa.Client{URL: srv.URL}).Token(context.Background(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	ts, err := timestamp.Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	if string(ts.HashedMessage) != string(d[:]) || time.Since(ts.Time) > time.Minute || len(ts.Certificates) == 0 || !ts.Certificates[0].Equal(srv.Cert) {
		t.Errorf("token: %+v", ts)
	}

	for name, tamper := range map[string]func(*timestamp.Timestamp){
		"other digest": func(ts *timestamp.Timestamp) { ts.HashedMessage = make([]byte, 32) },
		"no nonce":     func(ts *timestamp.Timestamp) { ts.Nonce = nil },
	} {
		srv.Tamper.Store(&tamper)
		if _, err := (&tsa.Client{URL: srv.URL}).Token(context.Background(), d[:]); err == nil {
			t.Errorf("%s: token accepted", name)
		}
	}
	srv.Tamper.Store(nil)

	if _, err := (&tsa.Client{URL: srv.URL}).Token(context.Background(), d[:10]); err == nil {
		t.Error("a short digest was accepted")
	}
	for name, h := range map[string]http.HandlerFunc{
		"error status": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) },
		"garbage":      func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("not DER")) },
		"rejection": func(w http.ResponseWriter, r *http.Request) {
			resp, _ := timestamp.CreateErrorResponse(timestamp.Rejection, timestamp.BadAlgorithm)
			w.Write(resp)
		},
	} {
		bad := httptest.NewServer(h)
		_, err := (&tsa.Client{URL: bad.URL}).Token(context.Background(), d[:])
		bad.Close()
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
