package main

import (
	"sort"
	"strings"
	"testing"
)

// A mistyped flag is one line on stderr, naming the flag and the --help to
// run, for every subcommand: not the whole usage on stdout, not the error
// twice.
func TestFlagErrorIsOneLineOnStderr(t *testing.T) {
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
	for _, path := range paths {
		cmd := strings.Join(path, " ")
		code, out, errOut := call(t, nil, append(path, "--jsn")...)
		lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
		if code != 2 || out != "" || len(lines) != 1 || !strings.Contains(errOut, "unknown flag --jsn") ||
			!strings.Contains(errOut, "run hookline "+cmd+" --help") {
			t.Errorf("%s --jsn: exit %d\nstdout %q\nstderr %q\nwant exit 2, nothing on stdout, one line on stderr", cmd, code, out, errOut)
		}
	}
	code, _, errOut := call(t, nil, "replay", "--limit", "x")
	if code != 2 || !strings.Contains(errOut, "for flag --limit") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("a bad value: exit %d %q", code, errOut)
	}
	// --help still prints the usage, on stdout.
	if code, out, errOut := call(t, nil, "dlq", "ls", "--help"); code != 0 || !strings.Contains(out, "Usage: hookline dlq ls") || errOut != "" {
		t.Errorf("dlq ls --help: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
}
