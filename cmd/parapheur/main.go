// Command parapheur is the mail-integrated e-signing gateway: agents email PDFs with an
// instruction block, recipients sign them (PAdES, ETSI EN 319 142) through a personal link,
// and everyone receives the sealed result. Its subcommands are those of SPEC §7.
//
// Each subcommand is a command value and a run function in its own file; main.go only
// dispatches. Exit codes: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	// The zone database is built in: timezone = "Europe/Paris" must work in
	// a container image that has no /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/parapheur/parapheur/cmd/parapheur/config"
)

// Exit codes of every subcommand.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// commands are the subcommands, in the order the overview lists them.
var commands = []*command{
	serveCommand,
	demoCommand,
	sealCommand,
	verifyCommand,
	envelopeListCommand,
	envelopeShowCommand,
	envelopeCancelCommand,
	envelopeRemindCommand,
	envelopeResendCommand,
	caInitCommand,
	configCheckCommand,
	oauth2LoginCommand,
}

// command is one subcommand.
type command struct {
	// name is the words that select it: "seal", "envelope show".
	name string
	// args describes the arguments after the flags: "IN.pdf OUT.pdf".
	args string
	// summary is one line for the overview.
	summary string
	// help is the paragraph of "--help": what the command does, and what it needs.
	help string
	// run declares the command's flags on inv, parses, and does the work; it returns the
	// exit code.
	run func(inv *invocation) int
}

// invocation is one run of a command.
type invocation struct {
	context        context.Context // ends on an interrupt
	cmd            *command
	flags          *flag.FlagSet
	args           []string // before parse: the command line after the command's name
	stdout, stderr io.Writer
	environ        []string
	configPath     *string // set by configFlag
	globalConfig   string  // --config before the command name, or its default
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}

// run is the whole program, apart from the process: it returns the exit code. ctx ends on
// an interrupt.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) int {
	top := flag.NewFlagSet("parapheur", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	configPath := top.String("config", config.DefaultFile(environ), "")
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			overview(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "parapheur: %v\n\n", err)
		overview(stderr)
		return exitUsage
	}
	words := top.Args()
	if len(words) == 0 {
		overview(stderr)
		return exitUsage
	}
	if words[0] == "help" {
		if len(words) == 1 {
			overview(stdout)
			return exitOK
		}
		words = append(words[1:], "--help")
	}
	cmd, rest := lookup(words)
	if cmd == nil {
		return unknown(words, stdout, stderr)
	}
	inv := &invocation{
		context:      ctx,
		cmd:          cmd,
		flags:        flag.NewFlagSet("parapheur "+cmd.name, flag.ContinueOnError),
		args:         rest,
		stdout:       stdout,
		stderr:       stderr,
		environ:      environ,
		globalConfig: *configPath,
	}
	inv.flags.SetOutput(io.Discard)
	return cmd.run(inv)
}

// lookup finds the command named by the first one or two words, and the words after it.
func lookup(words []string) (*command, []string) {
	for _, c := range commands {
		n := strings.Count(c.name, " ") + 1
		if len(words) >= n && strings.Join(words[:n], " ") == c.name {
			return c, words[n:]
		}
	}
	return nil, nil
}

// unknown answers words that select no command: the list of a group's commands for
// "envelope" or "envelope --help", else an error.
func unknown(words []string, stdout, stderr io.Writer) int {
	var group []*command
	for _, c := range commands {
		if strings.HasPrefix(c.name, words[0]+" ") {
			group = append(group, c)
		}
	}
	if len(group) > 0 && len(words) >= 2 && isHelp(words[1]) {
		listCommands(stdout, group)
		return exitOK
	}
	switch {
	case len(group) > 0 && len(words) == 1:
		fmt.Fprintf(stderr, "parapheur %s: missing subcommand\n\n", words[0])
	case len(group) > 0:
		fmt.Fprintf(stderr, "parapheur %s: unknown subcommand %q\n\n", words[0], words[1])
	default:
		fmt.Fprintf(stderr, "parapheur: unknown command %q\n\n", words[0])
		group = commands
	}
	listCommands(stderr, group)
	return exitUsage
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help"
}

// overview is the program's help.
func overview(w io.Writer) {
	fmt.Fprint(w, `usage: parapheur [--config FILE] COMMAND [ARGS]

parapheur is a mail-integrated e-signing gateway. Agents email PDFs to its
mailbox with a short instruction block naming who approves and who signs; the
gateway mails each recipient a personal link, collects PAdES signatures, seals
the result and sends it, with a certificate of completion, to everyone.

`)
	listCommands(w, commands)
	fmt.Fprintf(w, `
--config FILE is the TOML configuration: by default $%s, else
%s when it exists; an empty FILE, or none, means the
environment alone.
PARAPHEUR_* environment variables override its keys (a.b_c is PARAPHEUR_A_B_C)
and K_file reads key K from a file: see deploy/parapheur.toml.

Run "parapheur COMMAND --help" for the details of a command.
`, config.EnvConfig, config.DefaultPath)
}

func listCommands(w io.Writer, cmds []*command) {
	fmt.Fprintln(w, "commands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-24s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
}

// configFlag declares --config, defaulting to the global one, for the commands that read
// the configuration.
func (inv *invocation) configFlag() {
	inv.configPath = inv.flags.String("config", inv.globalConfig, "the TOML configuration `FILE`; empty for the environment alone")
}

// parse parses inv.args against the flags declared so far, and wants between min and max
// arguments (max < 0: no limit) after them. When ok is false, the command is over: help was
// printed (code 0) or a usage error (code 2).
func (inv *invocation) parse(min, max int) (code int, ok bool) {
	err := inv.flags.Parse(inv.args)
	// Flags may also follow the arguments, as in "envelope cancel ID
	// --reason …": the flag package stops at the first argument, and
	// would count the flags after it as too many arguments.
	var positional []string
	for err == nil && inv.flags.NArg() > 0 {
		rest := inv.flags.Args()
		if n := len(inv.args) - len(rest); n > 0 && inv.args[n-1] == "--" {
			break // after "--", everything is an argument
		}
		i := 0
		for i < len(rest) && (rest[i] == "-" || !strings.HasPrefix(rest[i], "-")) {
			i++
		}
		if i == len(rest) {
			break // no flag after the arguments
		}
		positional = append(positional, rest[:i]...)
		inv.args = rest[i:]
		err = inv.flags.Parse(inv.args)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		inv.usage(inv.stdout)
		return exitOK, false
	case err != nil:
		return inv.usageError("%v", err), false
	}
	inv.args = append(positional, inv.flags.Args()...)
	switch n := len(inv.args); {
	case n < min:
		return inv.usageError("missing arguments: want %s", inv.cmd.args), false
	case max >= 0 && n > max:
		return inv.usageError("too many arguments: want %s", inv.cmd.args), false
	}
	return exitOK, true
}

// usage prints the command's help.
func (inv *invocation) usage(w io.Writer) {
	synopsis := "parapheur " + inv.cmd.name
	hasFlags := false
	inv.flags.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		synopsis += " [flags]"
	}
	fmt.Fprintf(w, "usage: %s\n\n%s\n", strings.TrimSpace(synopsis+" "+inv.cmd.args), strings.TrimSpace(inv.cmd.help))
	if hasFlags {
		fmt.Fprint(w, "\nflags:\n")
		inv.flags.SetOutput(w)
		inv.flags.PrintDefaults()
		inv.flags.SetOutput(io.Discard)
	}
}

func (inv *invocation) usageError(format string, args ...any) int {
	fmt.Fprintf(inv.stderr, "parapheur %s: %s\n\n", inv.cmd.name, fmt.Sprintf(format, args...))
	inv.usage(inv.stderr)
	return exitUsage
}

// ctx is the command's context: it ends when the user interrupts the program.
func (inv *invocation) ctx() context.Context { return inv.context }

// fail ends a command that could not do its work, saying why.
func (inv *invocation) fail(err error) int {
	fmt.Fprintf(inv.stderr, "parapheur %s: %v\n", inv.cmd.name, err)
	return exitFailure
}
