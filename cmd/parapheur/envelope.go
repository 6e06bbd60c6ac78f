package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
	"github.com/parapheur/parapheur/signing/completion"
	"github.com/parapheur/parapheur/signing/verify"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/backend"
	"github.com/parapheur/parapheur/store/bolt"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/engine"
)

var envelopeListCommand = &command{
	name:    "envelope list",
	summary: "list the envelopes",
	help: `
Envelope list prints the envelopes of the store, newest first, one a line: id,
state, sender, title, deadline, and the recipients who still have to act.
--state keeps the envelopes in one state: in_progress, completed, declined,
cancelled or expired.

With --stuck it prints instead the envelopes whose steps are all done but whose
completion (seals, certificate, final mails) has not ended --stuck-after after
the last step: since when, how many attempts failed and the last error (as
the running gateway recorded them), and when the sender was told of the delay.
An envelope with no failed attempt recorded waits for a running gateway.`,
	run: runEnvelopeList,
}

var envelopeShowCommand = &command{
	name:    "envelope show",
	args:    "ID",
	summary: "show an envelope and its audit trail",
	help: `
Envelope show prints envelope ID: its documents with their SHA-256, its steps
and each recipient's state, and its audit trail, whose hash chain it checks
against the head the envelope records. With --verify it prints only that check:
the event an edit, removal, insertion or reordering broke (its seq, type and
what is wrong), or the number of events and the head hash. Exit status 1 when
the chain is broken.`,
	run: runEnvelopeShow,
}

var envelopeCancelCommand = &command{
	name:    "envelope cancel",
	args:    "ID",
	summary: "cancel an envelope in progress",
	help: `
Envelope cancel ends envelope ID as cancelled, as its sender can by mail or on
the status page: its links stop working for action, and the sender and the
recipients who already acted are told. The cancellation is an audit event.

--reason is required: the mails quote it, and people who were asked to sign
deserve to know why they no longer are; it stays in the audit trail and on the
completion certificate's history. --by names who cancels (default "operator").
Cancelling an envelope cancelled already does nothing; one that is completing
(every step done) or ended otherwise cannot be cancelled.`,
	run: runEnvelopeCancel,
}

var envelopeRemindCommand = &command{
	name:    "envelope remind",
	args:    "ID",
	summary: "remind the pending recipients now",
	help: `
Envelope remind mails a reminder at once to every recipient of envelope ID who
has yet to act, whatever the reminder interval, and records it in the audit
trail.`,
	run: runEnvelopeRemind,
}

var envelopeResendCommand = &command{
	name:    "envelope resend",
	args:    "ID",
	summary: "send again the mail an address lost",
	help: `
Envelope resend queues again, for the address --to names, the mail it needs
now from envelope ID, when a person says it never came or was deleted:

  - a recipient whose turn it is: the invitation, with a new link (the old
    links keep working);
  - the sender of an envelope in progress: the acknowledgement, with a new
    status link;
  - anyone, once the envelope is completed: the completion mail, with the
    final documents and a new download link;
  - once declined, cancelled or expired: the notice of that end, to the sender
    and to those who had acted (who were told).

--to is required: a resend goes to one person, never to every party at once
(envelope remind reminds all who have yet to act). A recipient whose step has
not started, or who acted already, has no mail due and the command says so;
nothing is resent while the completion is under way, or past the deadline.
The running gateway sends the mail; the request and each delivery attempt are
recorded in the audit trail (envelope show ID).`,
	run: runEnvelopeResend,
}

// openStore opens the configured store for the envelope commands. The
// embedded (bbolt) store is locked by the process that has it open: while
// serve runs on it, they say so within bolt's lock timeout, and what to do.
func (inv *invocation) openStore() (store.Store, int) {
	cfg, err := config.LoadSections(*inv.configPath, inv.environ, "store", "limits")
	if err != nil {
		return nil, inv.fail(err)
	}
	// Like verify, they use the demo's store beside its folder when
	// nothing is configured, and never make an empty embedded store where
	// none is: a mistyped store.url would list nothing, silently.
	if dir, ok := inv.demoFolder("parapheur.db"); ok {
		cfg.Store.URL = demoStoreURL(dir)
		fmt.Fprintf(inv.stderr, "No configuration: using the demo's store in ./%s.\n", demoDir)
	}
	st, err := inv.openExistingStore(cfg)
	if err != nil {
		return nil, inv.fail(err)
	}
	return st, exitOK
}

// envelopeOf returns the envelope named by arg: its ID as written, else
// in capitals (the mails write IDs in capitals; a reader may type them in
// lower case). An unknown ID is told with how to find the right one.
func (inv *invocation) envelopeOf(st store.Store, arg string) (*workflow.Envelope, error) {
	env, err := st.Get(inv.ctx(), arg)
	if errors.Is(err, store.ErrNotFound) {
		if upper := strings.ToUpper(strings.TrimSpace(arg)); upper != arg {
			if e, uerr := st.Get(inv.ctx(), upper); uerr == nil {
				return e, nil
			}
		}
		return nil, fmt.Errorf("%w: no such envelope in this store; its ID (E…) is in the acknowledgement mail, and `parapheur envelope list` lists this store's envelopes", err)
	}
	return env, err
}

// openConfiguredStore opens the store of cfg, saying what to do when a
// running gateway holds the embedded store (a storeInUseError).
func (inv *invocation) openConfiguredStore(cfg *config.Config) (store.Store, error) {
	st, err := backend.Open(inv.ctx(), cfg.Store.URL, store.Options{MaxBlobBytes: cfg.Limits.MaxDocumentBytes})
	if errors.Is(err, bolt.ErrInUse) {
		// bbolt locks its file for one process: while serve runs, the
		// embedded store is its alone.
		return nil, &storeInUseError{url: cfg.Store.URL}
	}
	return st, err
}

// storeInUseError is the error of a command whose embedded store a running
// gateway holds; it is a bolt.ErrInUse.
type storeInUseError struct{ url string }

func (e *storeInUseError) Error() string {
	return fmt.Sprintf("the store %s is locked by another process, most likely a running `parapheur serve` "+
		"(the embedded store serves one process at a time): stop the gateway (systemctl stop parapheur), run the command, "+
		"and start it again; or move the store to Redis (store.url = \"redis://…\"), which the gateway and these commands share while it runs", e.url)
}

func (e *storeInUseError) Unwrap() error { return bolt.ErrInUse }

func runEnvelopeList(inv *invocation) int {
	inv.configFlag()
	state := inv.flags.String("state", "", "list only envelopes in this `STATE` ("+strings.Join(stateNames(), ", ")+")")
	stuck := inv.flags.Bool("stuck", false, "list only the envelopes whose completion has not ended --stuck-after their last step")
	stuckAfter := inv.flags.Duration("stuck-after", 10*time.Minute, "with --stuck, how long after the last step a completion counts as stuck (`DURATION`)")
	if code, ok := inv.parse(0, 0); !ok {
		return code
	}
	switch {
	case *state != "" && !slices.Contains(envelopeStates, workflow.State(*state)):
		return inv.usageError("--state %q: not a state; want one of %s", *state, strings.Join(stateNames(), ", "))
	case *stuck && *state != "" && workflow.State(*state) != workflow.StateInProgress:
		return inv.usageError("--stuck lists envelopes in progress; it does not go with --state %s", *state)
	}
	st, code := inv.openStore()
	if st == nil {
		return code
	}
	defer st.Close()
	if *stuck {
		return inv.table(st, store.ListQuery{State: workflow.StateInProgress}, stuckTable(inv, st, *stuckAfter, time.Now()))
	}
	return inv.table(st, store.ListQuery{State: workflow.State(*state)}, envelopeTable)
}

// envelopeStates are the states an envelope can be in, for --state.
var envelopeStates = []workflow.State{workflow.StateInProgress, workflow.StateCompleted,
	workflow.StateDeclined, workflow.StateCancelled, workflow.StateExpired}

func stateNames() []string {
	names := make([]string, len(envelopeStates))
	for i, s := range envelopeStates {
		names[i] = string(s)
	}
	return names
}

// The times of the tables, in the machine's zone, which they name: an
// operator reading them beside logs or mail in UTC must know which it is.
const (
	tableTime        = "2006-01-02 15:04 MST"
	tableTimeSeconds = "2006-01-02 15:04:05 MST"
)

// envelopeTable is the table of envelope list: its header and row.
var envelopeTable = tableRows{
	header: "ID\tSTATE\tCREATED\tDEADLINE\tSENDER\tTITLE\tWAITING FOR",
	row: func(w io.Writer, e *workflow.Envelope) error {
		_, err := fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.State, e.CreatedAt.Local().Format(tableTime),
			deadlineDay(e.Deadline), e.Sender.Email, e.Title, strings.Join(waitingFor(e), ", "))
		return err
	},
}

// deadlineDay is the day an envelope's deadline ends: the deadline is the
// end of that day (midnight after it) in the gateway's zone, which in
// the zone of a French server reads as the next day.
func deadlineDay(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Add(-time.Second).Format("2006-01-02")
}

// stuckTable is the table of envelope list --stuck: the envelopes whose
// completion began before now-after and has not ended, with the failures
// the gateway recorded.
func stuckTable(inv *invocation, st store.Store, after time.Duration, now time.Time) tableRows {
	return tableRows{
		header: "ID\tSTEPS DONE\tFOR\tATTEMPTS\tLAST ERROR\tSENDER TOLD\tTITLE",
		row: func(w io.Writer, e *workflow.Envelope) error {
			if e.CurrentStep < len(e.Steps) || e.StepsDoneAt.IsZero() || now.Sub(e.StepsDoneAt) < after {
				return nil
			}
			p, ok, err := completion.ReadProgress(inv.ctx(), st, e.ID)
			if err != nil {
				return err
			}
			attempts, last := "0", "no failure recorded: is the gateway running?"
			if ok {
				attempts, last = fmt.Sprint(p.Attempts), p.At.Local().Format(tableTimeSeconds)+": "+p.LastError
			}
			told := "no"
			if !e.DelayNoticeAt.IsZero() {
				told = e.DelayNoticeAt.Local().Format(tableTime)
			}
			_, err = fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.StepsDoneAt.Local().Format(tableTimeSeconds),
				now.Sub(e.StepsDoneAt).Round(time.Second), attempts, oneLine(last), told, e.Title)
			return err
		},
	}
}

// tableRows is a table of envelopes: its header, and the row of an
// envelope, which writes nothing for an envelope the table leaves out.
type tableRows struct {
	header string
	row    func(io.Writer, *workflow.Envelope) error
}

// table prints the table t of the envelopes q selects, newest first.
func (inv *invocation) table(st store.Store, q store.ListQuery, t tableRows) int {
	w := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, t.header)
	for {
		page, err := st.List(inv.ctx(), q)
		if err != nil {
			return inv.fail(err)
		}
		for _, e := range page.Envelopes {
			if err := t.row(w, e); err != nil {
				return inv.fail(err)
			}
		}
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	if err := w.Flush(); err != nil {
		return inv.fail(err)
	}
	return exitOK
}

// oneLine keeps an error on its table row.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// waitingFor lists the recipients of the running step who have not acted.
func waitingFor(e *workflow.Envelope) []string {
	if e.State.Final() || e.CurrentStep >= len(e.Steps) {
		return nil
	}
	var who []string
	for _, id := range e.Steps[e.CurrentStep].Recipients {
		if r := e.Recipient(id); !r.Acted() {
			who = append(who, r.Email)
		}
	}
	return who
}

func runEnvelopeShow(inv *invocation) int {
	inv.configFlag()
	only := inv.flags.Bool("verify", false, "print only the check of the audit trail's hash chain")
	if code, ok := inv.parse(1, 1); !ok {
		return code
	}
	st, code := inv.openStore()
	if st == nil {
		return code
	}
	defer st.Close()
	e, err := inv.envelopeOf(st, inv.args[0])
	if err != nil {
		return inv.fail(err)
	}
	var check verify.Trail
	trail, err := st.AuditTrail(inv.ctx(), e.ID)
	var corrupt *store.CorruptError
	switch {
	case errors.As(err, &corrupt):
		// A record that no longer decodes is a broken trail, not a
		// failure of the command.
		check = verify.Trail{Name: "of envelope " + e.ID, Problem: corrupt.Error()}
	case err != nil:
		return inv.fail(err)
	default:
		check = verify.CheckTrail("of envelope "+e.ID, trail, &e.Audit)
	}
	if !*only {
		writeEnvelope(inv.stdout, e, trail, check.Broken)
	}
	check.WriteText(inv.stdout)
	if !check.Intact() {
		return exitFailure
	}
	return exitOK
}

// writeEnvelope prints the envelope and its trail, marking the broken
// event if there is one.
func writeEnvelope(out io.Writer, e *workflow.Envelope, trail []audit.Record, broken *audit.Record) {
	fmt.Fprintf(out, "envelope %s: %s\n  title     %s\n  sender    %s (%s)\n  created   %s\n  deadline  %s\n",
		e.ID, e.State, e.Title, e.Sender.Email, e.SenderAuth, e.CreatedAt.Local().Format(time.RFC3339), e.Deadline.Local().Format(time.RFC3339))
	if e.Reason != "" {
		fmt.Fprintf(out, "  reason    %s\n", e.Reason)
	}
	fmt.Fprintln(out, "documents:")
	for i, d := range e.Documents {
		current := "current "
		if d.Sealed {
			current = "sealed  "
		}
		fmt.Fprintf(out, "  %d. %s, %d page(s)\n     original sha256 %s\n     %s sha256 %s\n", i+1, d.Name, d.Pages, d.Original, current, d.Current)
	}
	if e.Certificate != "" {
		fmt.Fprintf(out, "completion certificate sha256 %s\n", e.Certificate)
	}
	fmt.Fprintln(out, "recipients:")
	for _, r := range e.Recipients {
		step := "-"
		if r.Step >= 0 {
			step = fmt.Sprint(r.Step + 1)
		}
		fmt.Fprintf(out, "  step %s  %-9s %-9s %s", step, r.Role, r.State, r.Email)
		if r.DeliveryFailure != "" {
			fmt.Fprintf(out, "  (delivery failed: %s)", r.DeliveryFailure)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out, "audit trail:")
	for i, rec := range trail {
		mark := " "
		// By position, not seq: a tampered trail may hold a seq twice.
		if broken != nil && broken == &trail[i] {
			mark = "!"
		}
		fmt.Fprintf(out, "%s %3d %s %-16s %s", mark, rec.Seq, rec.Time.Local().Format("2006-01-02 15:04:05 MST"), rec.Type, rec.Actor)
		if rec.IP != "" {
			fmt.Fprintf(out, " from %s", rec.IP)
		}
		for _, k := range slices.Sorted(maps.Keys(rec.Details)) {
			fmt.Fprintf(out, " %s=%q", k, rec.Details[k])
		}
		fmt.Fprintln(out)
	}
}

func runEnvelopeCancel(inv *invocation) int {
	return inv.operatorEvent("reason", "the `REASON` told to the sender and to those who already acted (required)",
		"it is quoted in the mails to the sender and to those who already acted, and kept in the audit trail",
		func(reason, by string, now time.Time) workflow.Event {
			return workflow.Cancelled{Meta: workflow.Meta{At: now}, By: by, Reason: reason}
		}, said("cancelled"))
}

func runEnvelopeRemind(inv *invocation) int {
	inv.configFlag()
	if code, ok := inv.parse(1, 1); !ok {
		return code
	}
	return inv.envelopeEvent(func(now time.Time) workflow.Event {
		return workflow.ReminderDue{Meta: workflow.Meta{At: now}}
	}, func(_ store.Store, env *workflow.Envelope) (string, error) {
		return "reminder queued for " + strings.Join(waitingFor(env), ", "), nil
	})
}

func runEnvelopeResend(inv *invocation) int {
	return inv.operatorEvent("to", "the `EMAIL` address whose mail was lost (required)",
		"name the address whose mail was lost (envelope show ID lists the sender and the recipients)",
		func(to, by string, now time.Time) workflow.Event {
			return workflow.Resend{Meta: workflow.Meta{At: now}, By: by, Email: to}
		}, inv.resent)
}

// resent says which mails a resend queued, from the audit record it wrote,
// the envelope's head (the running gateway may have added records since).
func (inv *invocation) resent(st store.Store, env *workflow.Envelope) (string, error) {
	trail, err := st.AuditTrail(inv.ctx(), env.ID)
	if err != nil {
		return "", err
	}
	for _, rec := range slices.Backward(trail) {
		if rec.Seq == env.Audit.Seq && rec.Type == audit.Resent {
			return fmt.Sprintf("%s queued for %s", strings.ReplaceAll(rec.Details["mail"], ",", " and "), rec.Details["to"]), nil
		}
	}
	return "", fmt.Errorf("envelope %s changed before its resend could be read back: see envelope show %s", env.ID, env.ID)
}

// operatorEvent runs an envelope command whose event needs the flag name
// (required, for the reason why) and names who acts (--by, "operator" by
// default).
func (inv *invocation) operatorEvent(name, usage, why string, mk func(value, by string, now time.Time) workflow.Event,
	report func(store.Store, *workflow.Envelope) (string, error)) int {
	inv.configFlag()
	value := inv.flags.String(name, "", usage)
	by := inv.flags.String("by", "operator", "who acts, recorded in the audit trail")
	if code, ok := inv.parse(1, 1); !ok {
		return code
	}
	if strings.TrimSpace(*value) == "" {
		return inv.usageError("--%s is required: %s", name, why)
	}
	return inv.envelopeEvent(func(now time.Time) workflow.Event { return mk(*value, *by, now) }, report)
}

// said is the report of an operator's event that always says the same.
func said(done string) func(store.Store, *workflow.Envelope) (string, error) {
	return func(store.Store, *workflow.Envelope) (string, error) { return done, nil }
}

// operatorEngine is the engine of an operator's event on st. The links and
// codes of the mails it queues are sealed with the gateway's key, for serve
// to open: it reads gateway.key in keys.dir (the demo's, when nothing is
// configured and the store is the demo's).
func (inv *invocation) operatorEngine(st store.Store) (*engine.Engine, error) {
	cfg, err := config.LoadSections(*inv.configPath, inv.environ, "keys")
	if err != nil {
		return nil, err
	}
	dir := cfg.Keys.Dir
	if demo, ok := inv.demoFolder("parapheur.db"); ok {
		dir = filepath.Join(demo, "keys")
	}
	keys, err := loadGatewayKeys(dir)
	if err != nil {
		return nil, fmt.Errorf("the mails this command queues carry links sealed with the gateway's key (keys.dir, as serve has it): %w", err)
	}
	return &engine.Engine{Store: st, CodeKey: keys.code}, nil
}

// envelopeEvent applies an operator's event to the envelope named by the
// argument and prints what report says of it; the mails it causes are
// queued for the running gateway to send.
func (inv *invocation) envelopeEvent(mk func(time.Time) workflow.Event, report func(store.Store, *workflow.Envelope) (string, error)) int {
	st, code := inv.openStore()
	if st == nil {
		return code
	}
	defer st.Close()
	e, err := inv.operatorEngine(st)
	if err != nil {
		return inv.fail(err)
	}
	named, err := inv.envelopeOf(st, inv.args[0])
	if err != nil {
		return inv.fail(err)
	}
	env, err := e.Event(inv.ctx(), named.ID, mk(e.Now()))
	if err != nil {
		return inv.fail(err)
	}
	done, err := report(st, env)
	if err != nil {
		return inv.fail(err)
	}
	fmt.Fprintf(inv.stdout, "envelope %s: %s (now %s)\n", env.ID, done, env.State)
	return exitOK
}
