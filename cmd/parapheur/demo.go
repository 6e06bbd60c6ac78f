package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
	"github.com/parapheur/parapheur/cmd/parapheur/demo"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow/engine"
)

var demoCommand = &command{
	name:    "demo",
	summary: "try the gateway with no setup",
	help: `
Demo runs the whole gateway on embedded defaults, with nothing to install or
configure, and prints the one URL to open in a browser. Its store, its keys
(a signing CA and a seal made on the first start) and every mail it sent are
kept in ./parapheur-demo between runs; --reset starts over. An in-process
IMAP server is the gateway's mailbox, an in-process SMTP server keeps every
mail the gateway sends, and a web mailbox at /demo/mail shows them (its JSON
twin is /demo/api/messages). On its first start the demo mails a sample
convention to the gateway, from an agent, for an approver and two signers:
read the invitations and the codes in the web mailbox and sign, up to the
final mail. The page /demo also sends documents of your own. It reads no
configuration and is meant for a first look, never for production.`,
	run: runDemo,
}

// demoDir holds everything the demo keeps between runs, in the working
// directory.
const demoDir = "parapheur-demo"

// demoAuthservID names the demo's MTA in the Authentication-Results of
// the mail it delivers to the gateway, which the configuration trusts.
const demoAuthservID = "mx." + demo.Domain

// The bounds of the web mailbox: the newest mails within both are kept.
const (
	demoMaxMails = 1000
	demoMaxBytes = 512 << 20
)

func runDemo(inv *invocation) int {
	reset := inv.flags.Bool("reset", false, "start over: remove ./"+demoDir+" (store, keys, mail) first")
	listen := inv.flags.String("listen", "127.0.0.1:8080", "the `HOST:PORT` of the web pages, a loopback address")
	language := inv.flags.String("language", "fr", "the `LANGUAGE` of the mails and pages: fr or en")
	if code, ok := inv.parse(0, 0); !ok {
		return code
	}
	if *language != "fr" && *language != "en" {
		return inv.usageError("--language %q: want fr or en", *language)
	}
	host, port, err := net.SplitHostPort(*listen)
	if err != nil || port == "0" {
		return inv.usageError("--listen %q: want HOST:PORT with a port, e.g. 127.0.0.1:8080", *listen)
	}
	if host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		host = "localhost"
	}
	publicURL := "http://" + net.JoinHostPort(host, port)
	if *reset {
		if err := os.RemoveAll(demoDir); err != nil {
			return inv.fail(err)
		}
	}
	dir, err := filepath.Abs(demoDir)
	if err != nil {
		return inv.fail(err)
	}
	log := slog.New(slog.NewTextHandler(inv.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := demoKeys(filepath.Join(dir, "keys"), publicURL); err != nil {
		return inv.fail(err)
	}
	mailbox, err := demo.OpenMailbox(filepath.Join(dir, "mail"), demoMaxMails, demoMaxBytes)
	if err != nil {
		return inv.fail(err)
	}
	gatewayAddress := "parapheur@" + demo.Domain
	office, err := demo.StartPostOffice(mailbox, gatewayAddress, demoAuthservID, log)
	if err != nil {
		return inv.fail(err)
	}
	defer office.Close()
	cfg, err := config.Load("", []string{
		"PARAPHEUR_ADDRESS=" + gatewayAddress,
		"PARAPHEUR_PUBLIC_URL=" + publicURL,
		"PARAPHEUR_LISTEN=" + *listen,
		"PARAPHEUR_LANGUAGE=" + *language,
		// The demo's organisation is French: its times are Paris times.
		"PARAPHEUR_TIMEZONE=Europe/Paris",
		"PARAPHEUR_STORE_URL=" + demoStoreURL(dir),
		"PARAPHEUR_IMAP_URL=imap://" + office.IMAPUser + "@" + office.IMAPAddr() + "/INBOX",
		"PARAPHEUR_IMAP_PASSWORD=" + office.IMAPPassword,
		"PARAPHEUR_SMTP_URL=smtp://" + office.SMTPAddr(),
		"PARAPHEUR_KEYS_DIR=" + filepath.Join(dir, "keys"),
		"PARAPHEUR_KEYS_PASSPHRASE=" + demoPassphrase,
		"PARAPHEUR_SENDERS_ALLOWED=@" + demo.Domain,
		"PARAPHEUR_SENDERS_REQUIRE_AUTH=true",
		"PARAPHEUR_SENDERS_AUTHSERV_ID=" + demoAuthservID,
	})
	if err != nil {
		return inv.fail(err)
	}
	g, err := newGateway(inv.ctx(), cfg, log)
	if err != nil {
		return inv.fail(err)
	}
	sample, err := demo.SamplePDF()
	if err != nil {
		g.store.Close()
		return inv.fail(err)
	}
	site := &demo.Site{Office: office, PublicURL: publicURL, Language: *language, Location: cfg.Location, Envelopes: g.engine,
		SampleEnvelope: engine.EnvelopeID(demo.SampleMessageID), SamplePDF: sample,
		MaxUpload: cfg.Limits.MaxDocumentBytes, Log: log}
	pages, err := site.Handler()
	if err != nil {
		g.store.Close()
		return inv.fail(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/demo", pages)
	mux.Handle("/demo/", pages)
	mux.Handle("GET /{$}", http.RedirectHandler("/demo", http.StatusFound))
	mux.Handle("/", g.http.Handler)
	g.http.Handler = mux

	if err := submitSample(inv.ctx(), g, office, *language); err != nil {
		g.store.Close()
		return inv.fail(err)
	}
	go announce(inv.ctx(), inv, publicURL, office)
	if err := g.run(inv.ctx()); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			err = fmt.Errorf("%w: choose another port with --listen", err)
		}
		return inv.fail(err)
	}
	return exitOK
}

// demoPassphrase protects the demo's keys, which are a demo's: anyone
// with the directory may use them.
const demoPassphrase = "parapheur demo"

// demoKeys makes the gateway secret, the signing CA and the seal in dir
// on the first start, as "ca init" does, and keeps those made before.
func demoKeys(dir, publicURL string) error {
	if _, err := createGatewaySecret(dir); err != nil {
		return fmt.Errorf("the gateway secret: %w", err)
	}
	err := pki.InitCA(dir, pki.InitOptions{Organisation: "Commune de Démo", Country: "FR", Passphrase: demoPassphrase,
		CRLURL: crlURL(publicURL)})
	if errors.Is(err, pki.ErrExists) {
		return nil
	}
	return err
}

// submitSample mails the sample convention to the gateway, as the agent
// would, unless the gateway has its envelope already: on the first start,
// or after --reset.
func submitSample(ctx context.Context, g *gateway, office *demo.PostOffice, language string) error {
	_, err := g.engine.Envelope(ctx, engine.EnvelopeID(demo.SampleMessageID))
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	s, err := demo.SampleSubmission(office.Gateway, language)
	if err != nil {
		return err
	}
	raw, err := s.Mail(time.Now())
	if err != nil {
		return err
	}
	_, err = office.Deliver(s.From.Email, []string{office.Gateway}, raw)
	return err
}

// announce prints the URL to open once the pages answer there, and where
// the demo's mail server takes mail: a script that sends the gateway its
// own mails (SPEC §2 shapes) needs the port, which is drawn at each start.
func announce(ctx context.Context, inv *invocation, publicURL string, office *demo.PostOffice) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		resp, err := http.Get(publicURL + "/healthz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		fmt.Fprintf(inv.stdout, "parapheur demo: open %s/demo in your browser (Ctrl-C stops; ./%s keeps the state, --reset starts over)\n", publicURL, demoDir)
		local, domain, _ := strings.Cut(office.Gateway, "@")
		fmt.Fprintf(inv.stdout, "parapheur demo: its mail server takes mail at smtp://%s (no TLS, no login): mail to %s, or to a plus-address such as %s+verifier@%s, goes to the gateway, and every mail shows in %s/demo/mail\n",
			office.SMTPAddr(), office.Gateway, local, domain, publicURL)
		return
	}
}
