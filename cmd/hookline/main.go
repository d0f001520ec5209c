// Command hookline runs and operates a hookline pipeline: a webhook receiver
// that makes every acknowledged event durable in Kafka, and a consumer group
// that hands events to the team's code with retries, dead letters and dedup.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
)

// command is one subcommand. Run gets the arguments after its name.
type command struct {
	summary string
	run     func(ctx context.Context, env *environment, args []string) error
}

// environment is what a subcommand may touch of the process: no globals.
type environment struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string
	// environ lists the environment as NAME=value (os.Environ); nil in
	// tests that do not need it. Only names are read: see
	// noteMisspelledEnv.
	environ func() []string

	// stopNote, when set, says on the first signal that the command stops
	// (the long-running ones log it); else noteStop writes a line to stderr.
	stopNote atomic.Pointer[func()]
	// atExit runs, in order, when the command returned: e.g. the summary
	// of log lines held back in its last seconds.
	atExit []func()
}

// noteStop says, once the first signal arrived, that the command stops and
// that a second signal stops it at once.
func (e *environment) noteStop() {
	if f := e.stopNote.Load(); f != nil {
		(*f)()
		return
	}
	fmt.Fprintln(e.stderr, "hookline: stopping; a second signal stops at once")
}

func commands() map[string]command {
	return map[string]command{
		"run":     {"receiver + consumer in one process (embedded broker when no --brokers)", runRun},
		"serve":   {"the webhook receiver only", runServe},
		"consume": {"the consumer group only", runConsume},
		"topics":  {"create, check or describe a pipeline's topics", runTopics},
		"send":    {"post a sample or a file to a receiver (smoke test)", runSend},
		"dlq":     {"list and inspect dead letters (ls, show)", runDlq},
		"replay":  {"republish dead letters to the main topic or a retry tier", runReplay},
		"version": {"print the version", runVersion},

		"loadtest": {"simulate Genesys via EventBridge: many conversations, retries, duplicates", runLoadtest},
		"sink":     {"a recording handler with latency and failure rates, for tests", runSink},
	}
}

// subcommands lists the commands that take a further word (without
// aliases such as dlq list); every other command of commands() is one
// word. The docs test documents each path, and `help` uses it.
var subcommands = map[string][]string{
	"topics": {"create", "check", "describe"},
	"dlq":    {"ls", "show"},
}

const mainUsage = `hookline: durable webhook intake for Genesys Cloud and friends, with Kafka in the middle.

Usage:
  hookline <command> [flags]

Commands:
%s
Every command has --help with examples. Flags can also be set as HOOKLINE_<FLAG>
environment variables (--retry-delays → HOOKLINE_RETRY_DELAYS; send, sink and
loadtest: HOOKLINE_<COMMAND>_<FLAG>, secrets as the others); flags win.

Quick start (embedded broker, no Kafka needed):
  hookline run --secret s3cret --handler-url http://127.0.0.1:3000/process
  hookline send --url http://127.0.0.1:8080/webhooks/genesys --secret s3cret --sample customer.start
`

func usage(w io.Writer) {
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	var list string
	for _, n := range names {
		list += fmt.Sprintf("  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintf(w, mainUsage, list)
}

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := &environment{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, getenv: os.Getenv, environ: os.Environ}
	stopOnSignal(ctx, env, cancel, os.Exit)
	os.Exit(dispatch(ctx, env, os.Args[1:]))
}

// stopSignals are the signals that start a graceful stop: SIGINT, SIGTERM
// and SIGHUP. SIGHUP because a terminal or SSH session that closes sends
// it to `hookline run &`, whose default action would kill the process at
// once, abandoning running handlers and skipping the embedded broker's
// orderly close; but not when the process started with SIGHUP ignored, as
// `nohup hookline run` does: that is the operator saying a closing session
// must not stop it.
func stopSignals() []os.Signal {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	return sigs
}

// stopOnSignal calls cancel on the first of stopSignals, after noting the
// stop (the note comes first, so it is the first line of the shutdown). A
// second signal calls exit at once with 128 + its number, as a shell
// reports a process killed by it: unfinished work is redelivered, never
// lost. It exits itself rather than restoring the signal's default action,
// which is to do nothing for a SIGINT the process started with ignored
// (`hookline run &` from a script). The returned func stops listening.
func stopOnSignal(ctx context.Context, env *environment, cancel context.CancelFunc, exit func(code int)) (stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, stopSignals()...)
	quit := make(chan struct{})
	go func() {
		defer signal.Stop(sigs)
		select {
		case <-sigs:
		case <-ctx.Done():
			return
		case <-quit:
			return
		}
		env.noteStop()
		cancel()
		select {
		case sig := <-sigs:
			fmt.Fprintf(env.stderr, "hookline: a second signal (%v): stopping at once; unfinished events are redelivered to the next consumer\n", sig)
			code := 1
			if n, ok := sig.(syscall.Signal); ok {
				code = 128 + int(n)
			}
			exit(code)
		case <-quit:
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit) }) }
}

// dispatch runs the subcommand named by args[0] and returns the exit code.
func dispatch(ctx context.Context, env *environment, args []string) int {
	if len(args) > 1 && args[0] == "help" { // help run, help dlq ls: that command's --help
		if _, ok := commands()[args[1]]; ok {
			// --help right after the command (and its subcommand), so
			// that nothing after it is parsed first.
			n := 2
			if len(args) > 2 && slices.Contains(subcommands[args[1]], args[2]) {
				n = 3
			}
			return dispatch(ctx, env, slices.Concat(args[1:n], []string{"--help"}, args[n:]))
		}
		return dispatch(ctx, env, args[1:2]) // unknown command
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = append([]string{"version"}, args[1:]...)
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(env.stderr, "hookline: unknown command %q\n\n", args[0])
		usage(env.stderr)
		return 2
	}
	err := cmd.run(ctx, env, args[1:])
	for _, f := range env.atExit {
		f()
	}
	if stoppedWhileStarting(ctx, args[0], err) {
		// The step it was at tells why a start-up took long enough to be
		// stopped (a broker that does not answer, say).
		fmt.Fprintf(env.stderr, "hookline %s: stopped by a signal while starting (before it received or handled anything); it was at: %v\n", args[0], err)
		return 0
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(env.stderr, "hookline %s: %v\n", args[0], err)
		return 2
	default:
		var ec exitCode
		if errors.As(err, &ec) {
			if ec.msg != "" {
				fmt.Fprintf(env.stderr, "hookline %s: %s\n", args[0], ec.msg)
			}
			return ec.code
		}
		fmt.Fprintf(env.stderr, "hookline %s: %v\n", args[0], err)
		return 1
	}
}

// stoppedWhileStarting tells whether a long-running command returned
// because a signal cancelled ctx during its startup (connecting, creating
// or checking topics): what was asked for, not a failure. Once running,
// these commands return nil on a signal (runAll drops context.Canceled), so
// a Canceled error comes from before the receiver listened or the consumer
// joined.
func stoppedWhileStarting(ctx context.Context, cmd string, err error) bool {
	switch cmd {
	case "run", "serve", "consume":
		return err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled)
	}
	return false
}

// usageError is a mistake in the command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// exitCode ends the command with a specific code after printing msg.
type exitCode struct {
	code int
	msg  string
}

func (e exitCode) Error() string { return e.msg }
