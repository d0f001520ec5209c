package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A deploy or an operator may send SIGTERM while a long-running command is
// still starting (creating topics on a slow broker took 1.5-6 s in a
// probe against a real Kafka). That stop is what was asked for: exit 0
// with a line that says so, not exit 1 with "cannot reach Kafka" or a
// topic error that sends the operator looking for a broker problem.
func TestSignalWhileStartingIsAStopNotAFailure(t *testing.T) {
	for _, cmd := range []string{"run", "serve", "consume"} {
		t.Run(cmd, func(t *testing.T) {
			c := fakeKafka(t)
			// Hold every CreateTopics until the test ends: the command is
			// stuck in its startup, as behind a slow controller.
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			c.ControlKey(int16(kmsg.CreateTopics), func(kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				c.SleepControl(func() { <-release })
				return nil, nil, false
			})
			args := []string{cmd, "--brokers", strings.Join(c.ListenAddrs(), ","), "--base", "startstop", "--partitions", "2"}
			switch cmd {
			case "run":
				args = append(args, "--insecure-no-auth", "--listen", "127.0.0.1:0", "--handler-url", "http://127.0.0.1:1/")
			case "serve":
				args = append(args, "--insecure-no-auth", "--listen", "127.0.0.1:0")
			case "consume":
				args = append(args, "--handler-url", "http://127.0.0.1:1/")
			}
			var out, errb bytes.Buffer
			env := &environment{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), getenv: func(string) string { return "" }}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			time.AfterFunc(500*time.Millisecond, cancel) // the signal
			done := make(chan int, 1)
			go func() { done <- dispatch(ctx, env, args) }()
			var code int
			select {
			case code = <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("%s did not stop within 20 s of the signal while starting", cmd)
			}
			if code != 0 {
				t.Errorf("exit %d after a signal while starting, want 0:\n%s", code, errb.String())
			}
			// Said first, then the step it was at (why start-up took that
			// long), not as a failure of its own.
			if !strings.Contains(errb.String(), "stopped by a signal while starting (before it received or handled anything); it was at: ") {
				t.Errorf("stderr should say it was stopped while starting, and where:\n%s", errb.String())
			}
		})
	}
}
