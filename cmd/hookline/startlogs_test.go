package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/internal/syncbuf"
)

// One fact at start-up is one warning: a retry tier beyond the configured
// ones was logged three times by consume and run (twice as a difference
// from the plan, by the command and by the consumer, then as the tier the
// consumer adopts), and serve, which starts no consumer, must still say it.
func TestExtraRetryTierIsLoggedOnceAtStart(t *testing.T) {
	c := fakeKafka(t)
	brokers := strings.Join(c.ListenAddrs(), ",")
	if code, out, errOut := call(t, nil, "topics", "create", "--brokers", brokers, "--base", "x.events", "--partitions", "2", "--retry-delays", "1s,2s,3s"); code != 0 {
		t.Fatalf("topics create: %d %s %s", code, out, errOut)
	}
	for _, cmd := range [][]string{
		{"consume", "--handler-url", "http://127.0.0.1:1/x"},
		{"run", "--handler-url", "http://127.0.0.1:1/x", "--insecure-no-auth", "--listen", freeLocalAddr(t)},
		{"serve", "--insecure-no-auth", "--listen", freeLocalAddr(t)},
	} {
		out := &syncbuf.Buffer{}
		env := &environment{stdout: out, stderr: out, stdin: strings.NewReader(""), getenv: func(string) string { return "" }}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		args := append(cmd, "--brokers", brokers, "--base", "x.events", "--partitions", "2", "--retry-delays", "1s")
		go func() { done <- dispatch(ctx, env, args) }()
		want := "consumer started"
		if cmd[0] == "serve" {
			want = "receiver listening on"
		}
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), want); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("%s did not start:\n%s", cmd[0], out.String())
			}
		}
		cancel()
		<-done
		for _, tier := range []string{"x.events.retry-2", "x.events.retry-3"} {
			var lines []string
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.Contains(l, tier) && (strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR")) {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 {
				t.Errorf("%s: %d log lines about %s, want 1:\n%s", cmd[0], len(lines), tier, strings.Join(lines, "\n"))
			}
		}
	}
}
