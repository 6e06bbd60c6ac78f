package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/signing/ceremony"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/web"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
	"github.com/parapheur/parapheur/store/redis"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// signersOptions are the flags of the signers scenario.
type signersOptions struct {
	// workers is how many signers act at once.
	workers int
	// views is how many page views to make in all; signs how many
	// signatures.
	views, signs int
	// view is what a view loads: "page" (GET /s/TOKEN) or "api" (GET
	// /api/v1/sign/TOKEN).
	view string
	// raw is how many pades.SignFile runs to time.
	raw int
	// rate, when positive, is how many signers per second start their
	// code-then-sign flow (an open loop); 0 lets every worker start its
	// next flow as soon as its last one ended (a closed loop).
	rate float64
	// memory, for the completion scenario, starts the completion worker
	// once every envelope is signed and reports the memory it took.
	memory bool
	// attachLimit is the completion scenario's mail.attachment_limit_bytes.
	attachLimit int64
	// profile, when set, is the directory that receives the CPU, block
	// and mutex profiles of the signers scenario's signing phase.
	profile string
}

// signers measures the signing door over HTTP on loopback, in this process:
// the web handler, the ceremony, the engine and the store (a bbolt file, or
// a private redis-server), with o.n envelopes of one signer each on pdf.
// First the raw pades signature time of pdf, alone; then sopts.workers
// signers load their signing pages (views/s); then each asks for a code,
// reads it from the outbox as the mail sender would, and signs (latency of
// the sign request).
func signers(o options, pdfPath string, so signersOptions) error {
	ctx := context.Background()
	ws, err := newWorkspace(ctx, o.store, pdfPath, "signers")
	if err != nil {
		return err
	}
	defer ws.close()
	pdf, pages, dir, st := ws.pdf, ws.pages, ws.dir, ws.st
	ca, err := pki.NewCA(pkix.Name{CommonName: "Bench Signing CA", Organization: []string{"Bench"}}, 24*time.Hour, false)
	if err != nil {
		return err
	}

	raw, err := rawSign(ctx, ca, pdfPath, pages, so.raw)
	if err != nil {
		return err
	}

	eng, base, stopDoor, err := startDoor(st, ca, dir)
	if err != nil {
		return err
	}
	defer stopDoor()

	post := newPostman(eng)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Each mail taken is two store writes (claim, acknowledgement): one
	// postman alone would make the codes, not the door, the bottleneck.
	for range postmen {
		go post.run(pctx)
	}

	start := time.Now()
	links, err := createEnvelopes(ctx, eng, post, pdf, pages, o.n)
	if err != nil {
		return err
	}
	fmt.Printf("signers: %d envelopes of one signer on %s (%d bytes, %d pages), store %s, made in %.1f s\n",
		len(links), filepath.Base(pdfPath), len(pdf), pages, o.store, time.Since(start).Seconds())
	fmt.Printf("  raw pades.SignFile, %d runs one at a time: p50 %.1f ms  p99 %.1f ms\n", len(raw), ms(quantile(raw, 0.5)), ms(quantile(raw, 0.99)))

	b := bench{base: base, client: newClient(so.workers), post: post, links: links}
	n, took, err := b.views(ctx, so.workers, so.views, so.view)
	if err != nil {
		return err
	}
	fmt.Printf("  views (%s), %d workers: %d in %.2f s = %.0f views/s\n", so.view, so.workers, n, took.Seconds(), float64(n)/took.Seconds())
	stopProfiles, err := startProfiles(so.profile)
	if err != nil {
		return err
	}
	signs, took, err := b.signs(ctx, so.workers, min(so.signs, len(links)), so.rate)
	if perr := stopProfiles(); err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	slices.Sort(signs)
	pace := "each worker at once again"
	if so.rate > 0 {
		pace = fmt.Sprintf("%g started a second", so.rate)
	}
	fmt.Printf("  code then signature over HTTP, %d workers (%s): %d in %.2f s = %.1f/s; sign request p50 %.0f ms  p99 %.0f ms  max %.0f ms\n",
		so.workers, pace, len(signs), took.Seconds(), float64(len(signs))/took.Seconds(),
		ms(quantile(signs, 0.5)), ms(quantile(signs, 0.99)), ms(signs[len(signs)-1]))
	return nil
}

// startProfiles starts the CPU profile and the block and mutex
// sampling when dir is set; the returned stop writes cpu.pprof,
// block.pprof and mutex.pprof into dir. With no dir both do nothing.
func startProfiles(dir string) (stop func() error, err error) {
	if dir == "" {
		return func() error { return nil }, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cpu, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		return nil, err
	}
	// Every blocking event and every contended lock is sampled: the
	// question is where a signature waits, not what sampling costs.
	runtime.SetBlockProfileRate(1)
	runtime.SetMutexProfileFraction(1)
	return func() error {
		pprof.StopCPUProfile()
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
		errs := []error{cpu.Close()}
		for _, name := range []string{"block", "mutex"} {
			f, err := os.Create(filepath.Join(dir, name+".pprof"))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, pprof.Lookup(name).WriteTo(f, 0), f.Close())
		}
		return errors.Join(errs...)
	}, nil
}

// startDoor serves the signing pages and API of a ceremony on st, whose
// one-time certificates ca issues, on loopback; it returns the engine,
// the base URL and how to stop the server.
func startDoor(st store.Store, ca *pki.CA, dir string) (*engine.Engine, string, func(), error) {
	codeKey := make([]byte, 32)
	rand.Read(codeKey)
	eng := &engine.Engine{Store: st, CodeKey: codeKey}
	cer := &ceremony.Ceremony{Engine: eng, CA: ca, Holder: "bench", TempDir: dir, MaxDocumentBytes: 64 << 20}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	base := "http://" + ln.Addr().String()
	secret := make([]byte, 32)
	rand.Read(secret)
	srv, err := web.New(web.Config{PublicURL: base, SecretKey: secret,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, cer, nil)
	if err != nil {
		ln.Close()
		return nil, "", nil, err
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	return eng, base, func() { hs.Close() }, nil
}

// workspace is what a scenario runs on: the PDF to sign, a temporary
// directory, and a store in it.
type workspace struct {
	pdf   []byte
	pages int
	dir   string
	st    store.Store
	// close closes the store and removes the directory.
	close func()
}

// newWorkspace reads the PDF at pdfPath and opens a store of kind in a new
// temporary directory named after the scenario.
func newWorkspace(ctx context.Context, kind, pdfPath, scenario string) (*workspace, error) {
	pdf, err := os.ReadFile(pdfPath)
	if err != nil {
		return nil, err
	}
	pages, err := pades.Inspect(ctx, pdf, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pdfPath, err)
	}
	dir, err := os.MkdirTemp("", "parapheur-bench-"+scenario+"-")
	if err != nil {
		return nil, err
	}
	st, stop, err := openStore(ctx, kind, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &workspace{pdf: pdf, pages: pages, dir: dir, st: st, close: func() {
		stop()
		os.RemoveAll(dir)
	}}, nil
}

// openStore opens the store of kind in dir; stop closes it (and stops the
// redis-server).
func openStore(ctx context.Context, kind, dir string) (store.Store, func(), error) {
	switch kind {
	case "bolt":
		st, err := bolt.Open(filepath.Join(dir, "parapheur.db"), store.Options{})
		if err != nil {
			return nil, nil, err
		}
		return st, func() { st.Close() }, nil
	case "redis":
		srv, err := testrig.StartRedis(filepath.Join(dir, "redis"), testrig.RedisOptions{})
		if err != nil {
			return nil, nil, err
		}
		st, err := redis.Open(ctx, srv.URL(), store.Options{})
		if err != nil {
			srv.Stop()
			return nil, nil, err
		}
		return st, func() {
			st.Close()
			if err := srv.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "parapheur-bench:", err)
			}
		}, nil
	}
	return nil, nil, fmt.Errorf("-store %q: want bolt or redis", kind)
}

// rawSign times n signatures of the file at path by pades.SignFile alone,
// as the ceremony makes them (a one-time certificate, a mark on the last
// page), one at a time; the certificate is issued outside the timing.
func rawSign(ctx context.Context, ca *pki.CA, path string, pages, n int) ([]time.Duration, error) {
	in, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	took := make([]time.Duration, 0, n)
	for i := range n {
		kp, err := ca.IssueOneTime("Raw Signer", "raw@partner.example", 0)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		err = pades.SignFile(ctx, in, io.Discard, pades.Options{Signer: pades.Signer{Key: kp.Key, Chain: kp.Chain},
			Name: "Raw Signer", Reason: "bench", Stamp: &pades.Stamp{Page: pages, Slot: i % 3, Name: "Raw Signer"}})
		if err != nil {
			return nil, fmt.Errorf("pades.SignFile %s: %w", path, err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	return took, nil
}

// link is one envelope's signing link.
type link struct {
	envelopeID, token string
	// ip is the signer's address, sent as X-Forwarded-For through the
	// trusted loopback proxy, so that each signer is a client of its own.
	ip string
}

// createEnvelopes makes n envelopes of one signer each on pdf, stored once,
// and returns their signing links, read from the invitations.
func createEnvelopes(ctx context.Context, eng *engine.Engine, post *postman, pdf []byte, pages, n int) ([]link, error) {
	blob, err := eng.PutDocument(ctx, bytes.NewReader(pdf))
	if err != nil {
		return nil, err
	}
	run := time.Now().UnixNano()
	links := make([]link, n)
	errs := make(chan error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				id := engine.EnvelopeID(fmt.Sprintf("<bench-%d-%d@example.com>", run, i))
				_, err := eng.Create(ctx, workflow.Draft{
					ID: id, Title: fmt.Sprintf("Convention %d", i), Language: "fr",
					Sender:    workflow.Party{Name: "Bob Agent", Email: agent},
					Documents: []workflow.Document{{Name: "convention.pdf", Pages: pages, Original: blob.SHA256, Size: blob.Size}},
					Steps: []workflow.DraftStep{{Role: workflow.Signer,
						Parties: []workflow.Party{{Name: fmt.Sprintf("Signer %d", i), Email: fmt.Sprintf("signer%d@partner.example", i)}}}},
					Deadline: time.Now().Add(7 * 24 * time.Hour),
				})
				if err != nil {
					errs <- err
					return
				}
				token, err := post.token(ctx, id)
				if err != nil {
					errs <- err
					return
				}
				links[i] = link{envelopeID: id, token: token, ip: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return links, nil
}

// postmen is how many mail senders take the mails at once.
const postmen = 32

// postman plays the mail sender: it takes every mail the gateway queues
// and hands the links and codes they carry to whoever waits for them.
type postman struct {
	st  store.Store
	eng *engine.Engine // opens the jobs' sealed links and codes
	mu  sync.Mutex
	// tokens and codes wait by envelope ID.
	tokens, codes map[string]chan string
}

func newPostman(eng *engine.Engine) *postman {
	return &postman{st: eng.Store, eng: eng, tokens: map[string]chan string{}, codes: map[string]chan string{}}
}

func (p *postman) box(m map[string]chan string, envID string) chan string {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := m[envID]
	if !ok {
		c = make(chan string, 4)
		m[envID] = c
	}
	return c
}

// run delivers until ctx ends.
func (p *postman) run(ctx context.Context) {
	wake := p.st.Wakeups(ctx, engine.MailQueue)
	for ctx.Err() == nil {
		it, err := p.st.Claim(ctx, engine.MailQueue, "bench-postman", time.Now(), time.Minute)
		if errors.Is(err, store.ErrEmpty) {
			select {
			case <-wake:
			case <-time.After(5 * time.Millisecond):
			case <-ctx.Done():
			}
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "parapheur-bench: postman:", err)
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		if job, err := p.eng.OpenJob(it); err == nil {
			p.take(job)
		}
		p.st.Ack(ctx, it)
	}
}

// take hands the link or the code a mail carries to whoever waits for it.
func (p *postman) take(job engine.Job) {
	if job.To == engine.SenderAddressee {
		return
	}
	switch {
	case job.Code != "":
		p.box(p.codes, job.EnvelopeID) <- job.Code
	case job.Notice == workflow.Invitation:
		p.box(p.tokens, job.EnvelopeID) <- job.Token
	}
}

func (p *postman) wait(ctx context.Context, m map[string]chan string, envID, what string) (string, error) {
	select {
	case v := <-p.box(m, envID):
		return v, nil
	case <-time.After(time.Minute):
		return "", fmt.Errorf("no %s for envelope %s after a minute: %w", what, envID, errTimeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (p *postman) token(ctx context.Context, envID string) (string, error) {
	return p.wait(ctx, p.tokens, envID, "invitation")
}

func (p *postman) code(ctx context.Context, envID string) (string, error) {
	return p.wait(ctx, p.codes, envID, "one-time code")
}

// newClient is the HTTP client of workers signers at once.
func newClient(workers int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers}, Timeout: time.Minute}
}

// bench drives the door over HTTP.
type bench struct {
	base   string
	client *http.Client
	post   *postman
	links  []link
}

// do sends a request as l's signer and checks the answer is 200.
func (b *bench) do(ctx context.Context, l link, method, path string, body any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Forwarded-For", l.ip)
	req.Header.Set("User-Agent", "parapheur-bench")
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %.300s", method, strings.Replace(path, l.token, "TOKEN", 1), resp.Status, answer)
	}
	return nil
}

// views makes total views with workers at once, going through the links
// in turn (so each signer's page is loaded total/len(links) times, evenly
// spread over the run: the first view of each is recorded, reloads by the
// same client within workflow.ViewEvery are not).
func (b *bench) views(ctx context.Context, workers, total int, kind string) (int, time.Duration, error) {
	path := map[string]string{"page": "/s/", "api": "/api/v1/sign/"}[kind]
	if path == "" {
		return 0, 0, fmt.Errorf("-view %q: want page or api", kind)
	}
	var done atomic.Int64
	start := time.Now()
	err := b.each(workers, func(int) error {
		for k := int(done.Add(1)); k <= total; k = int(done.Add(1)) {
			l := b.links[k%len(b.links)]
			if err := b.do(ctx, l, http.MethodGet, path+l.token, nil); err != nil {
				return err
			}
		}
		return nil
	})
	return total, time.Since(start), err
}

// signs makes n signatures with workers at once: each worker, for each of
// its links, asks for a code, reads it from the outbox and signs; only the
// sign request is timed. With a positive rate, flows start at that rate.
func (b *bench) signs(ctx context.Context, workers, n int, rate float64) ([]time.Duration, time.Duration, error) {
	var mu sync.Mutex
	took := make([]time.Duration, 0, n)
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	tickets := pace(tctx, rate)
	start := time.Now()
	err := b.each(workers, func(w int) error {
		for i := w; i < n; i += workers {
			if tickets != nil {
				<-tickets
			}
			l := b.links[i]
			if err := b.do(ctx, l, http.MethodPost, "/api/v1/sign/"+l.token+"/code", nil); err != nil {
				return err
			}
			code, err := b.post.code(ctx, l.envelopeID)
			if err != nil {
				return err
			}
			t0 := time.Now()
			if err := b.do(ctx, l, http.MethodPost, "/api/v1/sign/"+l.token+"/sign", map[string]any{"code": code, "consent": true}); err != nil {
				return err
			}
			mu.Lock()
			took = append(took, time.Since(t0))
			mu.Unlock()
		}
		return nil
	})
	return took, time.Since(start), err
}

// pace hands out rate tickets a second until ctx ends; with no rate it is nil, and
// whoever waits on no tickets goes at once.
func pace(ctx context.Context, rate float64) <-chan struct{} {
	if rate <= 0 {
		return nil
	}
	tickets := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				select {
				case tickets <- struct{}{}:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return tickets
}

// each runs f for workers 0..workers-1 at once and returns the first error.
func (b *bench) each(workers int, f func(w int) error) error {
	errs := make(chan error, workers)
	for w := range workers {
		go func() { errs <- f(w) }()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// pdfcpuTestPDF is pdfcpu's test document name (in the module cache, found
// with the go command), the 1 MB default of the signers scenario.
func pdfcpuTestPDF(name string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/pdfcpu/pdfcpu").Output()
	if err != nil {
		return "", fmt.Errorf("locating pdfcpu's test documents with the go command (name a PDF with -pdf): %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "pkg", "testdata", name), nil
}
