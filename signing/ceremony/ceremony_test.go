package ceremony_test

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parapheur/parapheur/signing/ceremony"
	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/pades"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/signtest"
	"github.com/parapheur/parapheur/signing/tsa"
	"github.com/parapheur/parapheur/signing/verify"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
	"github.com/parapheur/parapheur/workflow/outbox/outboxtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pdftest.Cleanup()
	os.Exit(code)
}

// rig is a ceremony on a real bbolt store, with a test CA.
type rig struct {
	c     *ceremony.Ceremony
	st    store.Store
	ca    *pki.CA
	caPEM string // the CA certificate in a PEM file, for openssl
	// links and codes read from the mails queued so far, by recipient ID
	// (workflow.SenderID for the sender's status link).
	mu     sync.Mutex
	tokens map[string]string
	codes  map[string]string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "parapheur.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newRigOn(t, st)
}

// newRigOn is newRig on st, which may wrap a real store.
func newRigOn(t *testing.T, st store.Store) *rig {
	t.Helper()
	ca, err := pki.NewCA(pkix.Name{CommonName: "Parapheur Test Signing CA", Organization: []string{"Org"}}, 24*time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	eng := &engine.Engine{Store: st, CodeKey: []byte("0123456789abcdef0123456789abcdef")}
	return &rig{
		c:  &ceremony.Ceremony{Engine: eng, CA: ca, Holder: "test", TempDir: t.TempDir()},
		st: st, ca: ca, caPEM: pdftest.CAFile(t, ca.Cert),
		tokens: map[string]string{}, codes: map[string]string{},
	}
}

// mail reads the mails queued so far (acknowledging them as sent) and
// keeps the links and codes they carry.
func (r *rig) mail(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, job := range outboxtest.Deliver(t, r.c.Engine, engine.MailQueue, time.Now()) {
		if job.Token != "" {
			r.tokens[job.To] = job.Token
		}
		if job.Code != "" {
			r.codes[job.To] = job.Code
		}
	}
}

func (r *rig) token(t *testing.T, rid string) string {
	t.Helper()
	r.mail(t)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tokens[rid] == "" {
		t.Fatalf("no link was mailed to %s", rid)
	}
	return r.tokens[rid]
}

// code asks for a one-time code with rid's link and reads it from the mail.
func (r *rig) code(t *testing.T, rid string) string {
	t.Helper()
	if _, err := r.c.SendCode(context.Background(), r.token(t, rid), client); err != nil {
		t.Fatalf("SendCode for %s: %v", rid, err)
	}
	r.mail(t)
	r.mu.Lock()
	defer r.mu.Unlock()
	code := r.codes[rid]
	delete(r.codes, rid)
	if code == "" {
		t.Fatalf("no code was mailed to %s", rid)
	}
	return code
}

var client = workflow.Client{IP: "192.0.2.7", UserAgent: "ceremony-test"}

// document stores the corpus file name and returns it as a document.
func (r *rig) document(t *testing.T, name string) workflow.Document {
	t.Helper()
	path := pdftest.Corpus(t)[name]
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pages, err := pades.Inspect(context.Background(), data, 0)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blob, err := r.c.Engine.PutDocument(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return workflow.Document{Name: name + ".pdf", Pages: pages, Original: blob.SHA256, Size: blob.Size}
}

// create makes an envelope with docs and steps (one step per list of
// parties, the role first).
func (r *rig) create(t *testing.T, id string, docs []workflow.Document, steps ...workflow.DraftStep) *workflow.Envelope {
	t.Helper()
	env, err := r.c.Engine.Create(context.Background(), workflow.Draft{
		ID: id, Title: "Convention de partenariat", Language: "fr",
		Sender:    workflow.Party{Name: "Agent", Email: "agent@org.example"},
		Documents: docs, Steps: steps,
		Copies:   []workflow.Party{{Email: "copie@org.example"}},
		Deadline: time.Now().Add(10 * 24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func signers(parties ...workflow.Party) workflow.DraftStep {
	return workflow.DraftStep{Role: workflow.Signer, Parties: parties}
}

// act signs (or approves) with rid's link and a fresh code.
func (r *rig) act(t *testing.T, rid string) *workflow.Envelope {
	t.Helper()
	code := r.code(t, rid)
	l, err := r.c.Act(context.Background(), r.token(t, rid), ceremony.Action{Kind: ceremony.Sign, Code: code, Consent: true}, client)
	if err != nil {
		t.Fatalf("%s: Act(Sign): %v", rid, err)
	}
	return l.Envelope
}

// current writes the current version of document n of env to a file.
func (r *rig) current(t *testing.T, env *workflow.Envelope, n int) string {
	t.Helper()
	rc, _, err := r.c.Document(context.Background(), ceremony.Link{Envelope: env}, n)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), fmt.Sprintf("%s-%d.pdf", env.ID, n))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// signersOf returns who signed the PDF at path, in order, checked by
// package verify: each signature intact and its certificate issued by the
// CA.
func (r *rig) signersOf(t *testing.T, path string) []verify.Signature {
	t.Helper()
	rep, err := verify.File(path, r.ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range rep.Signatures {
		if !s.Intact || !s.IssuedByCA {
			t.Errorf("%s: signature %d (%s): intact %v, issued by the CA %v: %s", filepath.Base(path), i+1, s.Signer, s.Intact, s.IssuedByCA, s.Problem)
		}
	}
	return rep.Signatures
}

func wfCode(err error) string {
	var we *workflow.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return ""
}

// TestWholeEnvelope acts a whole envelope through the Ceremony by link
// tokens: an approver, then two signers in parallel, then one signer, on
// two documents. Approval signs nothing; each signature is valid for
// every independent validator, with the earlier ones; each signer's name
// and address are in a certificate of the CA; the stamps are on the last
// page, inside it, and do not overlap.
func TestWholeEnvelope(t *testing.T) {
	r := newRig(t)
	docs := []workflow.Document{r.document(t, "mutool"), r.document(t, "qpdf-objstm")}
	env := r.create(t, "EWHOLE", docs,
		workflow.DraftStep{Role: workflow.Approver, Parties: []workflow.Party{{Name: "Anne Visa", Email: "anne@org.example"}}},
		signers(workflow.Party{Name: "Hélène Dupont", Email: "helene@partner.example"}, workflow.Party{Name: "Bob Martin", Email: "bob@partner.example"}),
		signers(workflow.Party{Email: "dir@org.example"}),
	)
	want := []struct{ name, email string }{ // in signing order
		{"Bob Martin", "bob@partner.example"}, {"Hélène Dupont", "helene@partner.example"}, {"dir@org.example", "dir@org.example"},
	}

	env = r.act(t, "r1")
	if got := env.Recipient("r1").State; got != workflow.HasApproved {
		t.Fatalf("approver is %s, want approved", got)
	}
	for i, d := range env.Documents {
		if d.Current != docs[i].Original {
			t.Errorf("approval changed %s: %s, was %s", d.Name, d.Current, docs[i].Original)
		}
	}
	// The second step, out of order on purpose; then the last.
	for i, rid := range []string{"r3", "r2", "r4"} {
		before := env.Documents
		env = r.act(t, rid)
		rec := env.Recipient(rid)
		if rec.State != workflow.HasSigned || rec.Signature == nil {
			t.Fatalf("%s is %s after signing", rid, rec.State)
		}
		for n, d := range env.Documents {
			if d.Current == before[n].Current {
				t.Errorf("%s: %s has no new version", rid, d.Name)
			}
			v := rec.Signature.Documents[n]
			if v.Previous != before[n].Current || v.SHA256 != d.Current {
				t.Errorf("%s: %s: version %+v, documents went %s → %s", rid, d.Name, v, before[n].Current, d.Current)
			}
			path := r.current(t, env, n)
			sigs := r.signersOf(t, path)
			if len(sigs) != i+1 {
				t.Fatalf("%s after %s: %d signatures, want %d", d.Name, rid, len(sigs), i+1)
			}
			for k, s := range sigs {
				if s.Signer != want[k].name || s.Email != want[k].email {
					t.Errorf("%s: signature %d names %q <%s>, want %q <%s>", d.Name, k+1, s.Signer, s.Email, want[k].name, want[k].email)
				}
			}
			if i == 0 || i == 2 {
				pdftest.Validate(t, path, pdftest.Expect{Signatures: i + 1, CAFile: r.caPEM})
			}
			stamps := pdftest.Stamps(t, path, d.Pages)
			if len(stamps.Rects) != i+1 {
				t.Errorf("%s: %d signature widgets on the last page, want %d", d.Name, len(stamps.Rects), i+1)
			}
			for a, ra := range stamps.Rects {
				if !pdftest.Inside(ra, stamps.Box) {
					t.Errorf("%s: stamp %d at %v is not inside the page %v", d.Name, a+1, ra, stamps.Box)
				}
				for b, rb := range stamps.Rects[:a] {
					if pdftest.Overlap(ra, rb) {
						t.Errorf("%s: stamps %d %v and %d %v overlap", d.Name, b+1, rb, a+1, ra)
					}
				}
			}
		}
	}
	if env.CurrentStep != len(env.Steps) {
		t.Errorf("every step done, yet the current step is %d of %d", env.CurrentStep+1, len(env.Steps))
	}
	trail, err := r.st.AuditTrail(context.Background(), env.ID)
	if err != nil {
		t.Fatal(err)
	}
	count := map[audit.Type]int{}
	for _, rec := range trail {
		count[rec.Type]++
		if (rec.Type == audit.Signed || rec.Type == audit.Approved) && (rec.IP != client.IP || rec.UserAgent != client.UserAgent) {
			t.Errorf("%s record without the client: %+v", rec.Type, rec)
		}
	}
	if count[audit.Signed] != 3 || count[audit.Approved] != 1 {
		t.Errorf("audit trail has %d signatures and %d approvals, want 3 and 1", count[audit.Signed], count[audit.Approved])
	}
}

// TestCodeRules: acting needs a code, a wrong code is counted, signing
// needs consent (which costs no code), and a code is used once.
func TestCodeRules(t *testing.T) {
	r := newRig(t)
	env := r.create(t, "ECODES", []workflow.Document{r.document(t, "mutool")},
		signers(workflow.Party{Name: "Marie", Email: "marie@partner.example"}))
	ctx := context.Background()
	tok := r.token(t, "r1")

	_, err := r.c.Act(ctx, tok, ceremony.Action{Kind: ceremony.Sign, Consent: true}, client)
	if wfCode(err) != workflow.ErrNotVerified.Code {
		t.Fatalf("Act without a code: %v, want %s", err, workflow.ErrNotVerified.Code)
	}
	code := r.code(t, "r1")
	wrong := fmt.Sprintf("%06d", (mustAtoi(t, code)+1)%1_000_000)
	if _, err := r.c.Act(ctx, tok, ceremony.Action{Kind: ceremony.Sign, Code: wrong, Consent: true}, client); !errors.Is(err, workflow.ErrWrongCode) {
		t.Fatalf("Act with a wrong code: %v, want ErrWrongCode", err)
	}
	stored, err := r.c.Engine.Envelope(ctx, env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c := stored.Recipient("r1").Code; c == nil || c.Failures != 1 {
		t.Fatalf("after a wrong code the outstanding code is %+v, want 1 failure", c)
	}
	if _, err := r.c.Act(ctx, tok, ceremony.Action{Kind: ceremony.Sign, Code: code}, client); !errors.Is(err, ceremony.ErrConsent) {
		t.Fatalf("Act without consent: %v, want ErrConsent", err)
	}
	l, err := r.c.Act(ctx, tok, ceremony.Action{Kind: ceremony.Sign, Code: code, Consent: true}, client)
	if err != nil {
		t.Fatalf("Act with the code and consent (refused before without consent): %v", err)
	}
	if l.Recipient().State != workflow.HasSigned {
		t.Fatalf("signer is %s", l.Recipient().State)
	}
	if _, err := r.c.Act(ctx, tok, ceremony.Action{Kind: ceremony.Sign, Code: code, Consent: true}, client); wfCode(err) != workflow.ErrAlreadyActed.Code {
		t.Fatalf("Act again with the used code: %v, want %s", err, workflow.ErrAlreadyActed.Code)
	}
	if n := len(r.signersOf(t, r.current(t, l.Envelope, 0))); n != 1 {
		t.Fatalf("%d signatures, want 1", n)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLinksActOnlyForTheirHolder: a recipient's link acts for that
// recipient only (another's code is wrong for it, and leaves the other's
// code untouched); the sender's status link opens Status, Remind and
// Cancel and none of the signing operations; a signer's link opens none
// of the status operations.
func TestLinksActOnlyForTheirHolder(t *testing.T) {
	r := newRig(t)
	env := r.create(t, "ELINKS", []workflow.Document{r.document(t, "mutool")},
		signers(workflow.Party{Email: "a@partner.example"}, workflow.Party{Email: "b@partner.example"}))
	ctx := context.Background()
	codeA, codeB := r.code(t, "r1"), r.code(t, "r2")
	for codeB == codeA { // one time in a million: b would sign with a's code
		codeB = r.code(t, "r2")
	}
	tokA, tokB, tokS := r.token(t, "r1"), r.token(t, "r2"), r.token(t, workflow.SenderID)

	if _, err := r.c.Act(ctx, tokB, ceremony.Action{Kind: ceremony.Sign, Code: codeA, Consent: true}, client); !errors.Is(err, workflow.ErrWrongCode) {
		t.Fatalf("b's link with a's code: %v, want ErrWrongCode", err)
	}
	stored, _ := r.c.Engine.Envelope(ctx, env.ID)
	if a := stored.Recipient("r1"); a.State != workflow.Pending || a.Code == nil || a.Code.Failures != 0 {
		t.Fatalf("a after b tried a's code: %s, code %+v", a.State, a.Code)
	}
	l, err := r.c.Act(ctx, tokA, ceremony.Action{Kind: ceremony.Sign, Code: codeA, Consent: true}, client)
	if err != nil || l.RecipientID != "r1" || l.Recipient().State != workflow.HasSigned {
		t.Fatalf("a signs with a's link and code: %v", err)
	}
	if st := l.Envelope.Recipient("r2").State; st != workflow.Pending {
		t.Fatalf("b is %s after a signed", st)
	}

	// The sender's link is no signing link.
	for name, op := range map[string]func() error{
		"Open":     func() error { _, err := r.c.Open(ctx, tokS); return err },
		"View":     func() error { _, err := r.c.View(ctx, tokS, client); return err },
		"SendCode": func() error { _, err := r.c.SendCode(ctx, tokS, client); return err },
		"Act": func() error {
			_, err := r.c.Act(ctx, tokS, ceremony.Action{Kind: ceremony.Decline, Reason: "no"}, client)
			return err
		},
	} {
		if err := op(); !errors.Is(err, ceremony.ErrNoLink) {
			t.Errorf("%s with the sender's link: %v, want ErrNoLink", name, err)
		}
	}
	// A signer's link is no status link.
	for name, op := range map[string]func() error{
		"OpenStatus": func() error { _, err := r.c.OpenStatus(ctx, tokB); return err },
		"Status":     func() error { _, _, err := r.c.Status(ctx, tokB); return err },
		"Remind":     func() error { _, err := r.c.Remind(ctx, tokB, client); return err },
		"Cancel":     func() error { _, err := r.c.Cancel(ctx, tokB, "no", client); return err },
	} {
		if err := op(); !errors.Is(err, ceremony.ErrNoLink) {
			t.Errorf("%s with a signer's link: %v, want ErrNoLink", name, err)
		}
	}
	for _, tok := range []string{"", "not-a-token", string(make([]byte, 200))} {
		if _, err := r.c.Open(ctx, tok); !errors.Is(err, ceremony.ErrNoLink) {
			t.Errorf("Open(%.10q): %v, want ErrNoLink", tok, err)
		}
	}

	// The sender's link does what it is for.
	sl, trail, err := r.c.Status(ctx, tokS)
	if err != nil || sl.RecipientID != workflow.SenderID || len(trail) == 0 {
		t.Fatalf("Status: %v (%d records)", err, len(trail))
	}
	r.mail(t)
	if _, err := r.c.Remind(ctx, tokS, client); err != nil {
		t.Fatalf("Remind: %v", err)
	}
	oldB := r.tokens["r2"]
	r.mail(t)
	if r.tokens["r2"] == oldB {
		t.Error("Remind mailed b no new link")
	}
	cl, err := r.c.Cancel(ctx, tokS, "plus d'actualité", client)
	if err != nil || cl.Envelope.State != workflow.StateCancelled {
		t.Fatalf("Cancel: %v, state %s", err, cl.Envelope.State)
	}
	if _, err := r.c.Act(ctx, tokB, ceremony.Action{Kind: ceremony.Sign, Code: codeB, Consent: true}, client); wfCode(err) != workflow.ErrEnded.Code {
		t.Fatalf("b signs after the cancellation: %v, want %s", err, workflow.ErrEnded.Code)
	}
}

// TestParallelSigners: the two signers of a step sign at the same moment,
// round after round. Both signatures are in the documents, once each:
// none lost (made on a version the other replaced), none doubled.
func TestParallelSigners(t *testing.T) {
	r := newRig(t)
	doc := r.document(t, "mutool")
	rounds := 12
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		env := r.create(t, fmt.Sprintf("EPAR%02d", round), []workflow.Document{doc},
			signers(workflow.Party{Name: "Left Signer", Email: "left@partner.example"}, workflow.Party{Name: "Right Signer", Email: "right@partner.example"}))
		codes := map[string]string{"r1": r.code(t, "r1"), "r2": r.code(t, "r2")}
		toks := map[string]string{"r1": r.token(t, "r1"), "r2": r.token(t, "r2")}
		start := make(chan struct{})
		errs := make(chan error, 2)
		for _, rid := range []string{"r1", "r2"} {
			go func() {
				<-start
				_, err := r.c.Act(context.Background(), toks[rid], ceremony.Action{Kind: ceremony.Sign, Code: codes[rid], Consent: true}, client)
				errs <- err
			}()
		}
		close(start)
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		stored, err := r.c.Engine.Envelope(context.Background(), env.ID)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, s := range r.signersOf(t, r.current(t, stored, 0)) {
			seen[s.Email]++
		}
		if seen["left@partner.example"] != 1 || seen["right@partner.example"] != 1 || len(seen) != 2 {
			t.Fatalf("round %d: signatures by address %v, want one each", round, seen)
		}
		if stored.CurrentStep != 1 {
			t.Fatalf("round %d: step %d after both signed", round, stored.CurrentStep)
		}
	}
}

// failingStore fails the Update that would record a signature, once,
// after the new versions were stored: a crash between the two.
type failingStore struct {
	store.Store
	mu    sync.Mutex
	armed bool
}

var errCrash = errors.New("simulated crash before the Signed event was stored")

func (s *failingStore) Update(ctx context.Context, env *workflow.Envelope, w store.Writes) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rec := range w.Audit {
		if rec.Type == audit.Signed && s.armed {
			s.armed = false
			return errCrash
		}
	}
	return s.Store.Update(ctx, env, w)
}

// TestCrashBeforeSignedEvent: the new versions are stored, the Signed
// event is not. Nothing is recorded; the retry (its code still good for
// one action) signs once; the document carries that signature once.
func TestCrashBeforeSignedEvent(t *testing.T) {
	base, err := bolt.Open(filepath.Join(t.TempDir(), "parapheur.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	fs := &failingStore{Store: base}
	r := newRigOn(t, fs)
	env := r.create(t, "ECRASH", []workflow.Document{r.document(t, "qpdf-classic")},
		signers(workflow.Party{Name: "Marie Curie", Email: "marie@partner.example"}), signers(workflow.Party{Email: "next@partner.example"}))
	ctx := context.Background()
	tok, code := r.token(t, "r1"), r.code(t, "r1")

	fs.mu.Lock()
	fs.armed = true
	fs.mu.Unlock()
	if _, err := r.c.Act(ctx, tok, ceremony.Action{Kind: ceremony.Sign, Code: code, Consent: true}, client); !errors.Is(err, errCrash) {
		t.Fatalf("Act during the crash: %v", err)
	}
	stored, err := r.c.Engine.Envelope(ctx, env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec := stored.Recipient("r1"); rec.State != workflow.Pending || rec.Signature != nil || stored.Documents[0].Current != env.Documents[0].Original {
		t.Fatalf("after the crash: %s, signature %+v, document %s", rec.State, rec.Signature, stored.Documents[0].Current)
	}
	r.mail(t)
	if _, ok := r.tokens["r2"]; ok {
		t.Fatal("the next step was invited though no signature was recorded")
	}

	l, err := r.c.Act(ctx, tok, ceremony.Action{Kind: ceremony.Sign, Consent: true}, client)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if l.Recipient().State != workflow.HasSigned {
		t.Fatalf("after the retry: %s", l.Recipient().State)
	}
	sigs := r.signersOf(t, r.current(t, l.Envelope, 0))
	if len(sigs) != 1 || sigs[0].Email != "marie@partner.example" {
		t.Fatalf("signatures after the retry: %+v, want Marie's once", sigs)
	}
	if l.Recipient().Signature.Documents[0].Previous != env.Documents[0].Original {
		t.Errorf("the signature was made on %s, not on the original", l.Recipient().Signature.Documents[0].Previous)
	}
}

// TestBusy: while another holder makes a signature of the envelope past
// SignWait, Act gives ErrBusy and uses nothing up: once the envelope is
// free, the same verification signs.
func TestBusy(t *testing.T) {
	r := newRig(t)
	r.c.SignWait = 100 * time.Millisecond
	reg := prometheus.NewPedanticRegistry()
	r.c.Metrics = ceremony.NewMetrics(reg)
	env := r.create(t, "EBUSY", []workflow.Document{r.document(t, "mutool")},
		signers(workflow.Party{Email: "marie@partner.example"}))
	ctx := context.Background()
	tok, code := r.token(t, "r1"), r.code(t, "r1")
	lease := "sign/" + env.ID
	if ok, err := r.st.AcquireLease(ctx, lease, "other-replica", time.Now(), time.Minute); err != nil || !ok {
		t.Fatalf("taking the lease: %v %v", ok, err)
	}
	if _, err := r.c.Act(ctx, tok, ceremony.Action{Kind: ceremony.Sign, Code: code, Consent: true}, client); !errors.Is(err, ceremony.ErrBusy) {
		t.Fatalf("Act while another holds the envelope: %v, want ErrBusy", err)
	}
	stored, _ := r.c.Engine.Envelope(ctx, env.ID)
	if stored.Recipient("r1").State != workflow.Pending || stored.Documents[0].Current != env.Documents[0].Current {
		t.Fatal("a busy envelope was signed")
	}
	if err := r.st.ReleaseLease(ctx, lease, "other-replica"); err != nil {
		t.Fatal(err)
	}
	l, err := r.c.Act(ctx, tok, ceremony.Action{Kind: ceremony.Sign, Consent: true}, client)
	if err != nil || l.Recipient().State != workflow.HasSigned {
		t.Fatalf("Act once free: %v", err)
	}
	// The lease is given back: another holder takes it at once.
	if ok, err := r.st.AcquireLease(ctx, lease, "other-replica", time.Now(), time.Minute); err != nil || !ok {
		t.Fatalf("the signature kept the envelope's lease: %v %v", ok, err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if f.GetName() == "parapheur_signature_duration_seconds" {
				got["timed"] = float64(m.GetHistogram().GetSampleCount())
			} else {
				got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if want := map[string]float64{"signed": 1, "failed": 1, "timed": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("signature metrics %v, want %v", got, want)
	}
}

// heldTSA is a time-stamp authority client that, once, waits for the test
// before asking the real one: a signature caught in the middle.
type heldTSA struct {
	tsa     pades.Timestamper
	asked   chan struct{} // closed at the first request
	release chan struct{} // closed by the test to let it through
	once    sync.Once
}

func (h *heldTSA) Token(ctx context.Context, digest []byte) ([]byte, error) {
	h.once.Do(func() {
		close(h.asked)
		<-h.release
	})
	return h.tsa.Token(ctx, digest)
}

// TestSignLeaseRenewed: a signature slower than SignLease (its time-stamp
// authority holds the answer) keeps its envelope all along, renewing the
// lease, and gives it back at the end. The lease is short so that a
// replica killed while signing frees the envelope soon; without the
// renewal another signature could start on the same version meanwhile.
// Here it is short, but not so short that a renewal (a store write,
// every third of it) held up on a loaded machine under the race detector
// lets the envelope go: 300 ms left it to a 200 ms stall.
func TestSignLeaseRenewed(t *testing.T) {
	r := newRig(t)
	r.c.SignLease = 2 * time.Second
	held := &heldTSA{tsa: &tsa.Client{URL: signtest.StartTSA(t, r.ca).URL}, asked: make(chan struct{}), release: make(chan struct{})}
	r.c.TSA = held
	env := r.create(t, "ELEASE", []workflow.Document{r.document(t, "mutool")},
		signers(workflow.Party{Email: "marie@partner.example"}))
	ctx := context.Background()
	tok, code := r.token(t, "r1"), r.code(t, "r1")
	signed := make(chan error, 1)
	go func() {
		_, err := r.c.Act(ctx, tok, ceremony.Action{Kind: ceremony.Sign, Code: code, Consent: true}, client)
		signed <- err
	}()
	select {
	case <-held.asked:
	case err := <-signed:
		t.Fatalf("the signature ended before its time-stamp: %v", err)
	}
	// Three lease periods: the lease would have run out twice over.
	lease := "sign/" + env.ID
	for end := time.Now().Add(3 * r.c.SignLease); time.Now().Before(end); {
		if ok, err := r.st.AcquireLease(ctx, lease, "other-replica", time.Now(), time.Minute); err != nil || ok {
			close(held.release)
			t.Fatalf("another replica took the lease of a signature in progress: %v %v", ok, err)
		}
		<-time.After(20 * time.Millisecond)
	}
	close(held.release)
	if err := <-signed; err != nil {
		t.Fatal(err)
	}
	if ok, err := r.st.AcquireLease(ctx, lease, "other-replica", time.Now(), time.Minute); err != nil || !ok {
		t.Fatalf("the signature kept the envelope's lease: %v %v", ok, err)
	}
}
