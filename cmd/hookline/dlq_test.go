package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// ttyBuffer is a bytes.Buffer that says it is a terminal.
type ttyBuffer struct{ bytes.Buffer }

type ttyInfo struct{ os.FileInfo }

func (ttyInfo) Mode() os.FileMode { return os.ModeDevice | os.ModeCharDevice }

func (*ttyBuffer) Stat() (os.FileInfo, error) { return ttyInfo{}, nil }

func TestProgressBarOnTerminalLinesOtherwise(t *testing.T) {
	var tty ttyBuffer
	var out bytes.Buffer
	env := &environment{stdout: &out, stderr: &tty}
	p := newProgress(env, "replay")
	if !p.tty || isTerminal(&out) {
		t.Fatal("terminal detection")
	}
	p.begin(10)
	p.start = time.Now().Add(-time.Second) // past the quiet start
	p.update(5, 1)
	if s := tty.String(); !strings.HasPrefix(s, "\r\033[K") || !strings.Contains(s, "5/10") || !strings.Contains(s, "50%") {
		t.Fatalf("bar: %q", s)
	}
	p.printf(&out, "skip 0:1\n")
	if !strings.HasSuffix(tty.String(), "\r\033[K") || out.String() != "skip 0:1\n" {
		t.Fatalf("a line must clear the bar first: %q / %q", tty.String(), out.String())
	}
	p.update(10, 1)
	p.finish()
	if !strings.Contains(tty.String(), "10/10") || !strings.HasSuffix(tty.String(), "\r\033[K") {
		t.Fatalf("finish: %q", tty.String())
	}

	var plain bytes.Buffer
	p = newProgress(&environment{stdout: &out, stderr: &plain}, "replay")
	p.begin(500)
	p.update(1, 0)
	if plain.Len() != 0 {
		t.Fatalf("a plain line at once: %q", plain.String())
	}
	p.start = time.Now().Add(-6 * time.Second)
	p.update(300, 2)
	p.update(301, 2) // within lineEvery of the last line: quiet
	p.update(500, 2)
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "300/500 done (2 skipped)") || !strings.Contains(lines[1], "500/500") || strings.Contains(plain.String(), "\r") {
		t.Fatalf("plain lines: %q", plain.String())
	}

	// A short replay shows nothing.
	plain.Reset()
	p = newProgress(&environment{stdout: &out, stderr: &plain}, "replay")
	p.begin(3)
	p.update(3, 0)
	p.finish()
	if plain.Len() != 0 {
		t.Fatalf("short replay: %q", plain.String())
	}
}

func TestReplayRefusesBeforeConnecting(t *testing.T) {
	cases := []struct {
		vars map[string]string
		args []string
		want string
	}{
		{nil, []string{"replay"}, "--all"},
		{nil, []string{"replay", "--limit", "10"}, "--all"},
		{map[string]string{"HOOKLINE_ALL": "true"}, []string{"replay"}, "HOOKLINE_ALL is set in the environment"},
		{map[string]string{"HOOKLINE_FORCE": "1"}, []string{"replay", "--all"}, "HOOKLINE_FORCE"},
		{nil, []string{"replay", "--all", "--to", "dlq"}, "--to \"dlq\""},
		{nil, []string{"replay", "--all", "--resume-from", "3"}, "partition:offset"},
		{nil, []string{"replay", "--all", "--rate", "-1"}, "--rate"},
		{nil, []string{"replay", "--error-class", "exhaused"}, "unknown error class"},
		{nil, []string{"replay", "--since", "yesterday"}, "--since"},
		{nil, []string{"replay", "--all", "--base", "bad name"}, "--base"},
		{nil, []string{"dlq"}, "ls|show"},
		{nil, []string{"dlq", "rm"}, "unknown dlq command"},
		{nil, []string{"dlq", "show"}, "give one event id"},
		{nil, []string{"dlq", "ls", "extra"}, "unexpected argument"},
	}
	for _, c := range cases {
		code, _, errOut := call(t, c.vars, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v (env %v): exit %d, stderr %q; want 2 and %q", c.args, c.vars, code, errOut, c.want)
		}
	}
	// HOOKLINE_* still works for the other flags, e.g. a filter.
	code, _, errOut := call(t, map[string]string{"HOOKLINE_ERROR_CLASS": "exhausted", "HOOKLINE_BROKERS": "127.0.0.1:1"}, "replay", "--dry-run")
	if code != 1 || strings.Contains(errOut, "no scope") {
		t.Errorf("HOOKLINE_ERROR_CLASS as the scope: exit %d %s", code, errOut)
	}
}

func TestReplayTarget(t *testing.T) {
	for to, want := range map[string]string{"": "b", "main": "b", "b": "b", "retry-1": "b.retry-1", "retry-12": "b.retry-12", "b.retry-2": "b.retry-2"} {
		got, retry, err := replayTarget("b", to)
		if err != nil || got != want || retry != strings.Contains(want, "retry") {
			t.Errorf("--to %q: %q %v %v, want %q", to, got, retry, err, want)
		}
	}
	for _, bad := range []string{"dlq", "b.dlq", "b.dedup", "retry-0", "retry-x", "other.retry-1"} {
		if _, _, err := replayTarget("b", bad); err == nil {
			t.Errorf("--to %q accepted", bad)
		}
	}
}

func TestFormatPayload(t *testing.T) {
	if got := formatPayload([]byte(`{"a":[1,2]}`)); got != "{\n  \"a\": [\n    1,\n    2\n  ]\n}" {
		t.Errorf("json: %q", got)
	}
	if got := formatPayload([]byte("not json {")); got != "not json {" {
		t.Errorf("text: %q", got)
	}
	if got := formatPayload([]byte{0, 1, 2, 0xff}); !strings.Contains(got, "00 01 02 ff") {
		t.Errorf("binary: %q", got)
	}
	if got := formatPayload(nil); got != "(empty)" {
		t.Errorf("empty: %q", got)
	}
}
