package main

import (
	"sort"
	"strings"
	"testing"
	"time"
)

// commandPaths lists every command, and every subcommand as its own path
// (topics create, dlq ls), sorted.
func commandPaths() [][]string {
	var paths [][]string
	for name := range commands() {
		if subs, ok := subcommands[name]; ok {
			for _, s := range subs {
				paths = append(paths, []string{name, s})
			}
			continue
		}
		paths = append(paths, []string{name})
	}
	sort.Slice(paths, func(i, j int) bool { return strings.Join(paths[i], " ") < strings.Join(paths[j], " ") })
	return paths
}

// A mistyped flag is one line on stderr, naming the flag and the --help to
// run, for every subcommand: not the whole usage on stdout, not the error
// twice.
func TestFlagErrorIsOneLineOnStderr(t *testing.T) {
	for _, path := range commandPaths() {
		cmd := strings.Join(path, " ")
		code, out, errOut := call(t, nil, append(path, "--jsn")...)
		lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
		if code != 2 || out != "" || len(lines) != 1 || !strings.Contains(errOut, "unknown flag --jsn") ||
			!strings.Contains(errOut, "run hookline "+cmd+" --help") {
			t.Errorf("%s --jsn: exit %d\nstdout %q\nstderr %q\nwant exit 2, nothing on stdout, one line on stderr", cmd, code, out, errOut)
		}
	}
	// A near miss names the flag meant; a far one does not guess.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--secert", "x"}, "unknown flag --secert (did you mean --secret?)"},
		{[]string{"consume", "--handler-ulr", "x"}, "unknown flag --handler-ulr (did you mean --handler-url?)"},
		{[]string{"dlq", "ls", "--jsn"}, "unknown flag --jsn (did you mean --json?)"},
		{[]string{"run", "--zz"}, "unknown flag --zz; run"},
		{[]string{"send", "--x"}, "unknown flag --x; run"}, // not "did you mean --H"
	} {
		if code, _, errOut := call(t, nil, c.args...); code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d %q, want 2 and %q", c.args, code, errOut, c.want)
		}
	}
	if code, out, _ := call(t, nil, "--version"); code != 0 || !strings.HasPrefix(out, "hookline ") {
		t.Errorf("--version: exit %d %q, want what hookline version prints", code, out)
	}
	code, _, errOut := call(t, nil, "replay", "--limit", "x")
	if code != 2 || !strings.Contains(errOut, "for flag --limit") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("a bad value: exit %d %q", code, errOut)
	}
	// A value the flag package cannot parse says what the flag wants,
	// from the command line and from the environment alike.
	for _, c := range []struct {
		vars map[string]string
		args []string
		want string
	}{
		{nil, []string{"topics", "check", "--partitions", "3.5"}, "(it wants a whole number, e.g. 12)"},
		{nil, []string{"run", "--create-topics=maybe"}, "(it wants true or false)"},
		{nil, []string{"run", "--handler-timeout", "5"}, "(it wants a duration with its unit, e.g. 30s)"},
		{map[string]string{"HOOKLINE_PARTITIONS": "abc"}, []string{"topics", "check"}, `HOOKLINE_PARTITIONS="abc": --partitions wants a whole number`},
		{map[string]string{"HOOKLINE_CREATE_TOPICS": "yes"}, []string{"serve"}, `HOOKLINE_CREATE_TOPICS="yes": --create-topics wants true or false`},
		{map[string]string{"HOOKLINE_DEDUP_WINDOW": "5"}, []string{"topics", "check"}, "--dedup-window wants a duration with its unit, e.g. 96h;"},
		// A whole number out of range is not told to be a whole number.
		{map[string]string{"HOOKLINE_PARTITIONS": "99999999999999999999"}, []string{"topics", "check"}, "value out of range (for --partitions)"},
	} {
		code, _, errOut := call(t, c.vars, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v %v: exit %d %q; want 2 and %q", c.vars, c.args, code, errOut, c.want)
		}
	}
	// --help still prints the usage, on stdout.
	if code, out, errOut := call(t, nil, "dlq", "ls", "--help"); code != 0 || !strings.Contains(out, "Usage: hookline dlq ls") || errOut != "" {
		t.Errorf("dlq ls --help: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
}

// A word that is not a flag stops the flag package, which would drop every
// flag after it: each subcommand that takes flags only refuses it (exit 2)
// instead of starting without them, e.g. without the secret in
// `run --insecure-no-auth false --secret x`.
func TestStrayArgumentIsRefused(t *testing.T) {
	for _, path := range commandPaths() {
		cmd := strings.Join(path, " ")
		if cmd == "dlq show" {
			continue // takes an event id
		}
		code, out, errOut := call(t, nil, append(path, "stray", "--brokers", "127.0.0.1:1")...)
		next := "run hookline " + cmd + " --help"
		if cmd == "version" { // no flags to point at
			next = "version takes no arguments; run hookline version\n"
		}
		if code != 2 || out != "" || !strings.Contains(errOut, `unexpected argument "stray"`) || strings.Count(errOut, "\n") != 1 ||
			!strings.Contains(errOut, next) {
			t.Errorf("%s stray --brokers …: exit %d\nstdout %q\nstderr %q\nwant exit 2 and one line naming the argument", cmd, code, out, errOut)
		}
	}
	code, _, errOut := call(t, nil, "run", "--insecure-no-auth", "false", "--secret", "x")
	if code != 2 || !strings.Contains(errOut, "--insecure-no-auth=false") {
		t.Errorf("run --insecure-no-auth false: exit %d %q; want 2 and the --flag=false spelling", code, errOut)
	}
	// --secret took --tls as its value: "true" is not --tls's.
	code, _, errOut = call(t, nil, "serve", "--secret", "--tls", "true")
	if code != 2 || strings.Contains(errOut, "--tls=true") {
		t.Errorf("serve --secret --tls true: exit %d %q; want 2 without a hint for --tls", code, errOut)
	}
	// dlq show still takes its event id before or after flags.
	code, _, errOut = call(t, nil, "dlq", "show", "3:17", "--brokers", "127.0.0.1:1", "extra")
	if code != 2 || !strings.Contains(errOut, "give one event id") {
		t.Errorf("dlq show with two ids: exit %d %q", code, errOut)
	}
}

// A deployment's HOOKLINE_LISTEN must not move the development sink, nor
// its HOOKLINE_TIMEOUT change send's; their own variables and the shared
// secrets still work.
func TestToolsReadTheirOwnVariables(t *testing.T) {
	env := &environment{getenv: func(k string) string {
		return map[string]string{"HOOKLINE_LISTEN": "127.0.0.1:8080", "HOOKLINE_SINK_INTERVAL": "2s",
			"HOOKLINE_TIMEOUT": "2m", "HOOKLINE_SECRET": "shared"}[k]
	}}
	fs := newFlagSet(env, "sink", "sink", "")
	fs.ownEnv()
	listen := fs.String("listen", "127.0.0.1:3000", "")
	interval := fs.Duration("interval", 0, "")
	if err := fs.parse(nil); err != nil || *listen != "127.0.0.1:3000" || *interval != 2*time.Second {
		t.Errorf("sink: listen %s interval %s, %v; want the default and HOOKLINE_SINK_INTERVAL", *listen, *interval, err)
	}
	fs = newFlagSet(env, "send", "send", "")
	fs.ownEnv("secret")
	timeout := fs.Duration("timeout", 10*time.Second, "")
	secret := fs.String("secret", "", "")
	if err := fs.parse(nil); err != nil || *timeout != 10*time.Second || *secret != "shared" {
		t.Errorf("send: timeout %s secret %q, %v; want the default and HOOKLINE_SECRET", *timeout, *secret, err)
	}
	if got := fs.origin("secret"); got != "HOOKLINE_SECRET" {
		t.Errorf("origin of the secret: %s", got)
	}
	if got := fs.envName("timeout"); got != "HOOKLINE_SEND_TIMEOUT" {
		t.Errorf("send's timeout variable: %s", got)
	}
}
