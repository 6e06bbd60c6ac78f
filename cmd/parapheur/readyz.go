package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
	"github.com/parapheur/parapheur/store"
)

// readiness answers /readyz: whether the parts the gateway cannot work
// without answer — the store, the IMAP server and the SMTP relay. The
// checks are cheap (a store read, a server's greeting), bounded by
// readyTimeout, and their result is kept for readyCacheFor, so that
// probes from many load balancers do not hammer the servers: at most one
// round of checks runs every readyCacheFor, whatever the probe rate.
type readiness struct {
	parts []readyPart
	now   func() time.Time

	mu      sync.Mutex // held while checking, so that concurrent probes wait for one round
	checked time.Time
	report  readyReport
}

// readyPart is one thing /readyz checks.
type readyPart struct {
	name  string
	check func(ctx context.Context) error
}

// readyReport is the body of /readyz.
type readyReport struct {
	Ready bool `json:"ready"`
	// Parts holds, by part, "ok" or why it failed.
	Parts map[string]string `json:"parts"`
	// Checked is when the checks ran; the answer is reused until
	// Checked+readyCacheFor.
	Checked time.Time `json:"checked"`
}

const (
	readyTimeout  = 2 * time.Second
	readyCacheFor = 5 * time.Second
)

// newReadiness checks st, the mail servers of cfg (the SMTP relay only while
// mail.paused is off) and, when the mailboxes log in with OAuth2, that their access tokens can be had.
func newReadiness(cfg *config.Config, st store.Store, oauth oauthSources) *readiness {
	r := &readiness{now: time.Now, parts: []readyPart{
		{"store", func(ctx context.Context) error {
			_, err := st.Cursor(ctx, "readyz")
			return err
		}},
		{"imap", func(ctx context.Context) error {
			return greeted(ctx, cfg.IMAP.Server, func(c net.Conn) error {
				return imapclient.New(c, nil).WaitGreeting()
			})
		}},
	}}
	if !cfg.Mail.Paused { // a paused sender needs no relay (mail.paused)
		r.parts = append(r.parts, readyPart{"smtp", func(ctx context.Context) error {
			return greeted(ctx, cfg.SMTP.Server, func(c net.Conn) error {
				cl := smtp.NewClient(c)
				// The client sets a deadline of its own on each command.
				cl.CommandTimeout = readyTimeout
				if err := cl.Noop(); err != nil {
					return err
				}
				return cl.Quit()
			})
		}})
	}
	if oauth.imap != nil || oauth.smtp != nil {
		r.parts = append(r.parts, readyPart{"oauth2", func(ctx context.Context) error {
			if err := oauth.check(ctx); err != nil {
				return fmt.Errorf("no OAuth2 access token: %w", err)
			}
			return nil
		}})
	}
	return r
}

// greeted connects to s (with TLS for implicit TLS) and runs greet on the
// connection: enough to know the server is there and speaks, without
// logging in.
func greeted(ctx context.Context, s config.Server, greet func(net.Conn) error) error {
	var d interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	} = &net.Dialer{}
	if s.TLS == config.TLSImplicit {
		d = &tls.Dialer{Config: &tls.Config{ServerName: s.Host, MinVersion: tls.VersionTLS12}}
	}
	c, err := d.DialContext(ctx, "tcp", s.Addr())
	if err != nil {
		return err
	}
	defer c.Close()
	if deadline, ok := ctx.Deadline(); ok {
		c.SetDeadline(deadline)
	}
	if err := greet(c); err != nil {
		return fmt.Errorf("%s: %w", s.Addr(), err)
	}
	return nil
}

// check returns the report of the last round of checks, running a new
// round when that is older than readyCacheFor.
func (r *readiness) check(ctx context.Context) readyReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); !r.checked.IsZero() && now.Sub(r.checked) < readyCacheFor {
		return r.report
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
	defer cancel()
	// A check that overstays its timeout (a library that sets its own
	// deadlines) is not waited for.
	type result struct {
		part int
		err  error
	}
	results := make(chan result, len(r.parts))
	for i, p := range r.parts {
		go func() { results <- result{i, p.check(ctx)} }()
	}
	errs := make([]error, len(r.parts))
	for i := range errs {
		errs[i] = fmt.Errorf("no answer within %v", readyTimeout)
	}
wait:
	for range r.parts {
		select {
		case res := <-results:
			errs[res.part] = res.err
		case <-ctx.Done():
			break wait
		}
	}
	rep := readyReport{Ready: true, Parts: map[string]string{}, Checked: r.now()}
	for i, p := range r.parts {
		rep.Parts[p.name] = "ok"
		if errs[i] != nil {
			rep.Ready = false
			rep.Parts[p.name] = errs[i].Error()
		}
	}
	r.checked, r.report = rep.Checked, rep
	return rep
}

// ServeHTTP answers 200 when every part answers, else 503, with the report
// as JSON.
func (r *readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rep := r.check(req.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rep.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(rep)
}
