//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A closing terminal or SSH session sends SIGHUP to `hookline run &`. Its
// default action killed the process at once (exit 129: running handlers
// abandoned, the embedded broker not closed); it starts the graceful stop
// as SIGTERM does.
func TestSIGHUPStopsGracefully(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			var errb bytes.Buffer
			env := &environment{stdout: &bytes.Buffer{}, stderr: &errb, stdin: strings.NewReader(""), getenv: func(string) string { return "" }}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stopOnSignal(ctx, env, cancel)
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
		})
	}
}
