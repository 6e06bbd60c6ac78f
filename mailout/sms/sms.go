// Package sms sends one-time codes as text messages through the SMS gateway
// of SPEC §3: an HTTP POST (RFC 9110) of the JSON object (RFC 8259)
// {"to": "+33612345678", "message": "…"} to sms.url, with the configured
// Authorization header; any 2xx answer means the gateway accepted it.
//
// Workers claim items of the store's SMS queue (engine.SMSQueue) and settle
// them with the outbox's policy (package workflow/outbox), as mail is: every
// attempt is recorded in the envelope's audit trail; a 5xx answer, 408, 429 or no
// answer at all defers the item with the doubling backoff; any other
// answer (4xx: the gateway refuses this request, and would again) fails
// it at once. As with mail, delivery is at least once: a crash after the
// gateway's answer and before the acknowledgement sends the code again.
package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox"
)

// Gateway is the SMS gateway's HTTP endpoint.
type Gateway struct {
	// URL receives the POST; https, or http to a loopback host only, since
	// the body carries a code.
	URL string
	// Authorization, when set, is sent as the Authorization header.
	Authorization string
	// HTTP is the client; nil means one with a 30-second timeout.
	HTTP *http.Client
}

// Error is a non-2xx answer of the gateway.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Answer is the status line and the start of the body.
	Answer string
}

// Error tells what the gateway answered.
func (e *Error) Error() string { return "SMS gateway answered " + e.Answer }

// request is the body of the POST, as SPEC §3 fixes it.
type request struct {
	To      string `json:"to"`
	Message string `json:"message"`
}

// check validates g's URL.
func (g *Gateway) check() error {
	u, err := url.Parse(g.URL)
	if err != nil {
		return fmt.Errorf("sms: gateway URL %q: %w", g.URL, err)
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	loopback := host == "localhost" || ip != nil && ip.IsLoopback()
	if host == "" || !(u.Scheme == "https" || u.Scheme == "http" && loopback) {
		return fmt.Errorf("sms: gateway URL %q: want https://host/…, or http:// to a loopback host", g.URL)
	}
	return nil
}

// Send posts one message to the number to (E.164) and returns the gateway's
// answer ("HTTP 202 Accepted"), or an *Error for a non-2xx answer, or the
// transport's error.
func (g *Gateway) Send(ctx context.Context, to, message string) (string, error) {
	body, err := json.Marshal(request{To: to, Message: message})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("sms: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if g.Authorization != "" {
		req.Header.Set("Authorization", g.Authorization)
	}
	client := g.HTTP
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	// The start of the body says why, for the audit trail; the rest is
	// read so that the connection can be reused.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	answer := "HTTP " + resp.Status
	if text := strings.Join(strings.Fields(string(head)), " "); text != "" && resp.StatusCode/100 != 2 {
		answer += ": " + text
	}
	if resp.StatusCode/100 != 2 {
		return "", &Error{Status: resp.StatusCode, Answer: answer}
	}
	return answer, nil
}

// outcome judges an attempt's error.
func outcome(err error) workflow.Outcome {
	var e *Error
	switch {
	case err == nil:
		return workflow.OutcomeDelivered
	case errors.As(err, &e) && e.Status/100 != 5 && e.Status != http.StatusRequestTimeout && e.Status != http.StatusTooManyRequests:
		return workflow.OutcomeFailed
	default:
		return workflow.OutcomeDeferred
	}
}

// Texts of the code message, by language; %s is the code, %d the minutes
// it is valid.
var texts = map[string]string{
	"fr": "Parapheur : votre code de signature est %s. Il est valable %d minutes. Ne le communiquez à personne.",
	"en": "Parapheur: your signing code is %s. It is valid for %d minutes. Do not share it.",
}

// Config configures a Sender.
type Config struct {
	// Gateway is where messages are posted.
	Gateway Gateway
	// Outbox claims and settles the items; its Name defaults to
	// engine.SMSQueue.
	Outbox outbox.Queue
	// Language is the language of envelopes that name none; default "fr".
	Language string
	// Workers is how many messages are posted at once; default 2.
	Workers int
	// Holder names this process in item leases; default host/pid.
	Holder string
	// Poll is how often an empty queue is looked at again when no wake-up
	// came (see outbox.Queue.Work); default outbox.DefaultPoll.
	Poll time.Duration
}

// Sender works the SMS queue.
type Sender struct {
	cfg Config
}

// New checks cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	if err := cfg.Gateway.check(); err != nil {
		return nil, err
	}
	if cfg.Outbox.Store == nil || cfg.Outbox.Engine == nil {
		return nil, errors.New("sms: the outbox needs a store and an engine")
	}
	if cfg.Outbox.Name == "" {
		cfg.Outbox.Name = engine.SMSQueue
	}
	if cfg.Language == "" {
		cfg.Language = "fr"
	}
	if _, ok := texts[cfg.Language]; !ok {
		return nil, fmt.Errorf("sms: no texts in language %q", cfg.Language)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Holder == "" {
		cfg.Holder = store.Holder()
	}
	if cfg.Poll <= 0 {
		cfg.Poll = outbox.DefaultPoll
	}
	return &Sender{cfg: cfg}, nil
}

// Run works the queue with Config.Workers workers until ctx is cancelled;
// each finishes the item in hand.
func (s *Sender) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range s.cfg.Workers {
		w := s.Worker(fmt.Sprintf("%s/sms%d", s.cfg.Holder, i))
		wg.Go(func() { s.cfg.Outbox.Work(ctx, w.holder, w, s.cfg.Poll, nil) })
	}
	wg.Wait()
}

// Worker returns a worker holding items as holder. A Worker is not safe
// for concurrent use.
func (s *Sender) Worker(holder string) *Worker {
	return &Worker{s: s, holder: holder}
}

// Worker posts items one at a time: it is the outbox.Task of the SMS
// queue.
type Worker struct {
	s      *Sender
	holder string
	to     string // the number of the prepared message
	text   string // the prepared message
}

// Step claims the next due item and carries it out. It reports false when
// no item was due.
func (w *Worker) Step(ctx context.Context) (bool, error) {
	return w.s.cfg.Outbox.Step(ctx, w.holder, w)
}

// Prepare implements outbox.Task: it finds the recipient's number and
// writes the text.
func (w *Worker) Prepare(ctx context.Context, it *store.Item) (outbox.Delivery, error) {
	job, d, err := outbox.DecodeJob(w.s.cfg.Outbox.Engine, it)
	if err != nil {
		return d, err
	}
	if job.Notice != engine.NoticeCode || job.Code == "" {
		return d, fmt.Errorf("sms: item %s is a %q job, not a one-time code", it.ID, job.Notice)
	}
	env, err := w.s.cfg.Outbox.Store.Get(ctx, job.EnvelopeID)
	if err != nil {
		return d, outbox.StoreError(fmt.Errorf("sms: item %s: %w", it.ID, err))
	}
	r := env.Recipient(job.To)
	if r == nil || r.Phone == "" {
		return d, fmt.Errorf("sms: item %s: envelope %s has no recipient %q with a mobile number", it.ID, env.ID, job.To)
	}
	lang := env.Language
	if _, ok := texts[lang]; !ok {
		lang = w.s.cfg.Language
	}
	w.to, w.text = r.Phone, fmt.Sprintf(texts[lang], job.Code, int(workflow.CodeTTL/time.Minute))
	return d, nil
}

// Attempt implements outbox.Task: it posts the prepared message. The post
// in hand is finished even when the worker is being stopped, as the mail
// sender's transaction is: cut off, it might have reached the gateway and
// be sent again. The client's timeout bounds the wait.
func (w *Worker) Attempt(ctx context.Context) outbox.Attempt {
	start := time.Now()
	answer, err := w.s.cfg.Gateway.Send(context.WithoutCancel(ctx), w.to, w.text)
	var refused *Error
	switch {
	case errors.As(err, &refused):
		answer = refused.Answer
	case err != nil:
		answer = err.Error()
	}
	return outbox.Attempt{Outcome: outcome(err), Answer: answer, Took: time.Since(start)}
}
