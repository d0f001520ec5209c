//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookline/hookline/internal/syncbuf"
)

// A closing terminal or SSH session sends SIGHUP to `hookline run &`. Its
// default action killed the process at once (exit 129: running handlers
// abandoned, the embedded broker not closed); it starts the graceful stop
// as SIGTERM does. A second signal stops at once, with 128 + its number.
func TestSignalsStopGracefullyThenAtOnce(t *testing.T) {
	hupIgnored := signal.Ignored(syscall.SIGHUP) // the tests run under nohup
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			if sig == syscall.SIGHUP && hupIgnored {
				t.Skip("SIGHUP is ignored (nohup): hookline leaves it alone, see TestNohupKeepsRunning")
			}
			var errb syncbuf.Buffer
			env := &environment{stdout: &bytes.Buffer{}, stderr: &errb, stdin: strings.NewReader(""), getenv: func(string) string { return "" }}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			exited := make(chan int, 1)
			stop := stopOnSignal(ctx, env, cancel, func(code int) { exited <- code })
			defer stop()
			if err := syscall.Kill(os.Getpid(), sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
				t.Fatalf("%v did not start a graceful stop", sig)
			}
			if !strings.Contains(errb.String(), "stopping") {
				t.Fatalf("no note of the stop:\n%s", errb.String())
			}
			select {
			case code := <-exited:
				t.Fatalf("exit(%d) after the first signal", code)
			case <-time.After(50 * time.Millisecond):
			}
			if err := syscall.Kill(os.Getpid(), sig); err != nil {
				t.Fatal(err)
			}
			select {
			case code := <-exited:
				if code != 128+int(sig) {
					t.Fatalf("second %v: exit(%d), want %d", sig, code, 128+int(sig))
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("a second %v did not stop at once", sig)
			}
			if !strings.Contains(errb.String(), "stopping at once") {
				t.Fatalf("no note of the second signal:\n%s", errb.String())
			}
		})
	}
}

// Started with SIGHUP ignored (nohup), a closing session must not stop it.
func TestNohupKeepsRunning(t *testing.T) {
	signal.Ignore(syscall.SIGHUP)
	defer signal.Reset(syscall.SIGHUP)
	if slices.Contains(stopSignals(), os.Signal(syscall.SIGHUP)) {
		t.Fatalf("stop signals %v include SIGHUP although it is ignored", stopSignals())
	}
	env := &environment{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, stdin: strings.NewReader(""), getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := stopOnSignal(ctx, env, cancel, func(int) { t.Error("exit called") })
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
		t.Fatal("SIGHUP stopped a process that started with it ignored (nohup)")
	case <-time.After(200 * time.Millisecond):
	}
}
