package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
	"github.com/parapheur/parapheur/mailin/ingest"
	"github.com/parapheur/parapheur/mailin/instructions"
	"github.com/parapheur/parapheur/mailin/policy"
	"github.com/parapheur/parapheur/mailin/poller"
	"github.com/parapheur/parapheur/mailout/compose"
	mailsender "github.com/parapheur/parapheur/mailout/sender"
	"github.com/parapheur/parapheur/mailout/sms"
	"github.com/parapheur/parapheur/signing/ceremony"
	"github.com/parapheur/parapheur/signing/completion"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/tsa"
	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/signing/web"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/backend"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox"
)

// gateway is the running product: the inbox poller and its handler, the
// timers, the mail and SMS senders, and the HTTP server, around one store.
// Every part is stateless but for the store, so replicas may run side by
// side: the poller takes a lease, the queues lease their items.
type gateway struct {
	cfg     *config.Config
	log     *slog.Logger
	store   store.Store
	engine  *engine.Engine
	poller  *poller.Poller
	mail    *mailsender.Sender
	sms     *sms.Sender // nil without sms.url
	http    *http.Server
	holder  string
	metrics *prometheus.Registry
	keys    gatewayKeys
	ca      *pki.CA
	// seal is the organisation's seal; completion applies it to the
	// documents and the certificate of every completed envelope.
	seal       *pki.KeyPair
	completion *completion.Worker
	// crashAfter is the test hook of crashAfterVariable, nil when unset.
	crashAfter func(step string)
	// oauth are the token sources of the OAuth2 logins, checked by /readyz.
	oauth oauthSources
}

// loadKeys reads what serve cannot start without: the gateway secret; the
// signing CA, which issues every signer's one-time certificate, so that
// without it no one can sign; and the seal, without which no envelope can
// complete (better not to start than to find out at the first completion).
func loadKeys(cfg *config.Config) (gatewayKeys, *pki.CA, *pki.KeyPair, error) {
	keys, err := loadGatewayKeys(cfg.Keys.Dir)
	if err != nil {
		return keys, nil, nil, err
	}
	ca, err := pki.LoadCA(cfg.Keys.Dir, string(cfg.Keys.Passphrase))
	if err != nil {
		return keys, nil, nil, fmt.Errorf("the signing CA in %s: %w (run \"parapheur ca init\" to make one, or set keys.passphrase)", cfg.Keys.Dir, err)
	}
	ca.CRLURL = crlURL(cfg.PublicURL)
	seal, err := loadSeal(cfg.Keys.Dir, string(cfg.Keys.Passphrase), time.Now())
	return keys, ca, seal, err
}

// timerPoll is how often due envelope timers (expiry, reminders) are looked for.
const timerPoll = 15 * time.Second

// newGateway reads the gateway secret, opens the store and assembles the
// parts from the configuration.
func newGateway(ctx context.Context, cfg *config.Config, log *slog.Logger) (*gateway, error) {
	keys, ca, seal, err := loadKeys(cfg)
	if err != nil {
		return nil, err
	}
	st, err := backend.Open(ctx, cfg.Store.URL, store.Options{MaxBlobBytes: cfg.Limits.MaxDocumentBytes})
	if err != nil {
		return nil, err
	}
	g := &gateway{cfg: cfg, log: log, store: st, engine: &engine.Engine{Store: st, CodeKey: keys.code}, holder: store.Holder(),
		metrics: prometheus.NewRegistry(), keys: keys, ca: ca, seal: seal}
	g.engine.DownloadTTL = time.Duration(cfg.Mail.DownloadLinkDays) * 24 * time.Hour
	g.engine.Metrics = engine.NewMetrics(g.metrics)
	g.engine.Log = log
	g.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		outbox.NewCollector(st, log, engine.MailQueue, engine.SMSQueue, engine.TimerQueue, engine.CompletionQueue))
	if err := g.assemble(); err != nil {
		st.Close()
		return nil, err
	}
	return g, nil
}

func (g *gateway) assemble() error {
	cfg := g.cfg
	senders, err := policy.NewPolicy(cfg.Senders.Allowed, cfg.Senders.RequireAuth, cfg.Senders.AuthservID)
	if err != nil {
		return fmt.Errorf("senders: %w", err)
	}
	lines := map[string][]string{}
	for name, c := range cfg.Circuits {
		lines[name] = c.Steps
	}
	circuits, err := instructions.CompileCircuits(lines)
	if err != nil {
		return fmt.Errorf("circuits: %w", err)
	}
	// The verification address reports as the page does; the envelopes
	// are the ceremony's, made below.
	checker := &verdict.Checker{CA: g.ca.Cert, Location: cfg.Location, Log: g.log}
	handler := ingest.New(ingest.Config{
		Gateway: cfg.Address, Senders: senders, Circuits: circuits,
		DeadlineDays: cfg.Envelopes.DefaultDeadlineDays, ReminderDays: cfg.Envelopes.ReminderDays,
		Language: cfg.Language, MaxMessageBytes: cfg.Limits.MaxMessageBytes, MaxRecipients: cfg.Limits.MaxRecipients, Location: cfg.Location,
		AllowDelegation: cfg.Envelopes.AllowDelegation,
		SMS:             cfg.SMS.URL != "",
		ReturnPathKey:   g.keys.returnPath,
		Inspect: func(pdf []byte) (int, error) {
			return pades.Inspect(context.Background(), pdf, cfg.Limits.MaxDocumentBytes)
		},
		Verify:  checker.Check,
		Metrics: ingest.NewMetrics(g.metrics),
	}, g.engine, g.log)
	if g.oauth, err = newOAuthSources(cfg, g.log); err != nil {
		return err
	}
	g.poller, err = poller.New(poller.Config{
		URL:      mailURL(cfg.IMAP.Server, "imaps", "imap", cfg.IMAP.Server.Username) + "/" + cfg.IMAP.Mailbox,
		Password: string(cfg.IMAP.Password),
		OAuth2:   g.oauth.imap, Mechanism: cfg.OAuth2.Mechanism,
		ProcessedFolder: cfg.IMAP.ProcessedFolder, QuarantineFolder: cfg.IMAP.QuarantineFolder,
		MaxMessageBytes: cfg.Limits.MaxMessageBytes, Holder: g.holder,
	}, g.store, handler, g.log, poller.NewMetrics(g.metrics))
	if err != nil {
		return err
	}

	domain := cfg.Address[strings.LastIndexByte(cfg.Address, '@')+1:]
	composer, err := compose.New(compose.Config{Address: cfg.Address, Name: "Parapheur", PublicURL: cfg.PublicURL,
		Domain: domain, Language: cfg.Language, AttachmentLimit: cfg.Mail.AttachmentLimitBytes, Location: cfg.Location,
		ReturnPathKey: g.keys.returnPath})
	if err != nil {
		return err
	}
	mails := &mailsender.Mails{Composer: composer, Store: g.store, Domain: domain, PublicURL: cfg.PublicURL}
	relay := mailsender.Relay{URL: mailURL(cfg.SMTP.Server, "smtps", "smtp", ""), Username: cfg.SMTP.Server.Username,
		Password: string(cfg.SMTP.Password)}
	if g.oauth.smtp != nil {
		relay.OAuth2, relay.AuthMechanism = g.oauth.smtp, cfg.OAuth2.Mechanism
	}
	g.mail, err = mailsender.New(mailsender.Config{Relay: relay, Composer: mails, Holder: g.holder, Accepted: g.mailAccepted,
		Outbox: outbox.Queue{Store: g.store, Engine: g.engine, Name: engine.MailQueue, Log: g.log, Now: g.engine.Now,
			Metrics: outbox.NewMetrics(g.metrics, "parapheur_mail")}})
	if err != nil {
		return err
	}
	if cfg.SMS.URL != "" {
		g.sms, err = sms.New(sms.Config{Gateway: sms.Gateway{URL: cfg.SMS.URL, Authorization: string(cfg.SMS.Authorization)},
			Language: cfg.Language, Holder: g.holder,
			Outbox: outbox.Queue{Store: g.store, Engine: g.engine, Name: engine.SMSQueue, Log: g.log, Now: g.engine.Now,
				Metrics: outbox.NewMetrics(g.metrics, "parapheur_sms")}})
		if err != nil {
			return err
		}
	}
	cer := &ceremony.Ceremony{Engine: g.engine, Gateway: cfg.Address, CA: g.ca, MaxDocumentBytes: cfg.Limits.MaxDocumentBytes, Holder: g.holder,
		Metrics: ceremony.NewMetrics(g.metrics)}
	if cfg.TSA.URL != "" {
		cer.TSA = &tsa.Client{URL: cfg.TSA.URL}
	}
	checker.Finder = cer
	pages, err := web.New(web.Config{PublicURL: cfg.PublicURL, Language: cfg.Language, Location: cfg.Location,
		TrustedProxies: cfg.HTTP.Proxies, SecretKey: g.keys.web,
		CACert: g.ca.Cert, MaxUpload: cfg.Limits.MaxDocumentBytes}, cer, g.log)
	if err != nil {
		return err
	}
	crl, err := newCRLPublisher(g.ca, g.log, time.Now)
	if err != nil {
		return err
	}
	g.completion = &completion.Worker{Engine: g.engine, Seal: g.seal, TSAURL: cfg.TSA.URL, PublicURL: cfg.PublicURL,
		Location: cfg.Location, MaxDocumentBytes: cfg.Limits.MaxDocumentBytes, Holder: g.holder, Log: g.log,
		Metrics: completion.NewMetrics(g.metrics, time.Now), CrashAfter: g.crash}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("GET "+crlPath, crl)
	mux.Handle("GET /readyz", newReadiness(cfg, g.store, g.oauth))
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics, promhttp.HandlerOpts{}))
	mux.Handle("/", pages.Handler())
	g.http = &http.Server{Addr: cfg.Listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	if c := cfg.HTTP.Certificate; c != nil {
		g.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*c}, MinVersion: tls.VersionTLS12}
	}
	return nil
}

// crash runs the test hook of crashAfterVariable after step.
func (g *gateway) crash(step string) {
	if g.crashAfter != nil {
		g.crashAfter(step)
	}
}

// mailAccepted runs the test hook after the relay accepted a final mail.
func (g *gateway) mailAccepted(notice workflow.Notice) {
	if notice == workflow.CompletionMail {
		g.crash(stepFinalMail)
	}
}

// mailURL writes a mail server's URL back from the parsed configuration,
// with the scheme of its TLS mode and, when not empty, the user.
func mailURL(s config.Server, implicit, starttls, user string) string {
	scheme := starttls
	if s.TLS == config.TLSImplicit {
		scheme = implicit
	}
	if user != "" {
		user += "@"
	}
	return scheme + "://" + user + net.JoinHostPort(s.Host, s.Port)
}

// shutdownTimeout bounds how long a stopping gateway waits for the work
// in flight: the requests being answered (a signature being made) and the
// items the workers hold (a mail being sent, a document being sealed).
const shutdownTimeout = 30 * time.Second

// run runs every part until ctx ends, then stops them and closes the store.
// Stopping takes no new work: the listener closes and the workers stop
// claiming. What is in flight finishes: http.Server.Shutdown waits for
// the handlers, whose contexts do not end with ctx, so a signature is
// made whole or not at all; the outbox and completion workers settle the
// item they hold, or hand it back due at once (outbox.Queue.Release); the
// poller releases its lease, so that another replica polls at once.
func (g *gateway) run(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return err
	}
	g.log.Info("parapheur: serving", "listen", ln.Addr().String(), "tls", g.http.TLSConfig != nil, "public_url", g.cfg.PublicURL, "address", g.cfg.Address)
	// The workers stop with ctx, or with the server should it fail.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { g.poller.Run(ctx) })
	if g.cfg.Mail.Paused {
		g.log.Warn("parapheur: mail.paused is set: this process sends no mail; the mails wait in the outbox")
	} else {
		wg.Go(func() { g.mail.Run(ctx) })
	}
	wg.Go(func() { g.completion.Run(ctx, outbox.DefaultPoll) })
	if g.sms != nil {
		wg.Go(func() { g.sms.Run(ctx) })
	}
	wg.Go(func() {
		outbox.Loop(ctx, g.log, timerPoll, g.store.Wakeups(ctx, engine.TimerQueue), func(ctx context.Context) (bool, error) {
			n, err := g.engine.FireDueTimers(ctx, g.holder)
			return n > 0, err
		}, nil)
	})
	httpErr := make(chan error, 1)
	go func() {
		if g.http.TLSConfig != nil {
			httpErr <- g.http.ServeTLS(ln, "", "")
			return
		}
		httpErr <- g.http.Serve(ln)
	}()
	select {
	case <-ctx.Done():
	case err = <-httpErr:
		cancel()
	}
	g.log.Info("parapheur: stopping; finishing the work in flight", "within", shutdownTimeout)
	start := time.Now()
	shutdown, cancelShutdown := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancelShutdown()
	if herr := g.http.Shutdown(shutdown); herr != nil {
		g.log.Error("parapheur: requests still in flight when the shutdown time ran out", "err", herr)
	}
	stopped := make(chan struct{})
	go func() {
		wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
		g.log.Info("parapheur: stopped", "took", time.Since(start))
	case <-shutdown.Done():
		// Their leases give what they hold to another replica in time.
		g.log.Error("parapheur: workers still busy when the shutdown time ran out; their items go back to the queue when their lease ends")
		if err == nil {
			err = errors.New("the work in flight did not finish within " + shutdownTimeout.String())
		}
	}
	g.store.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
