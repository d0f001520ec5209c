package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/internal/syncbuf"
	"github.com/hookline/hookline/topics"
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

// A --max-body the topics cannot store is capped, and the warning gives the
// commands that would let it through (not a hookline command that cannot).
func TestMaxBodyAboveTheTopicsLimitSaysHowToRaiseIt(t *testing.T) {
	c := fakeKafka(t)
	brokers := strings.Join(c.ListenAddrs(), ",")
	if code, out, errOut := call(t, nil, "topics", "create", "--brokers", brokers, "--base", "x.events", "--partitions", "1", "--retry-delays", "1s"); code != 0 {
		t.Fatalf("topics create: %d %s %s", code, out, errOut)
	}
	// serve starts with maxBody and returns its address and its warning.
	serve := func(maxBody string) (listen, warn string) {
		listen = freeLocalAddr(t)
		out := startCmd(t, nil, "serve", "--insecure-no-auth", "--listen", listen, "--brokers", brokers,
			"--base", "x.events", "--partitions", "1", "--retry-delays", "1s", "--max-body", maxBody)
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "receiver listening on"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("serve did not start:\n%s", out.String())
			}
		}
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, "--max-body is larger") {
				warn = l
			}
		}
		return listen, warn
	}
	// Beyond any record size: no command could help.
	if _, warn := serve("3000000000"); strings.Contains(warn, "kafka-configs") || !strings.Contains(warn, "lower --max-body to ") ||
		!strings.Contains(warn, "beyond what any Kafka record can be") {
		t.Errorf("a --max-body beyond any record size:\n%s", warn)
	}
	listen, warn := serve("2000000")
	need := fmt.Sprint(2000000 + topics.HeaderRoom)
	for _, topic := range []string{"x.events", "x.events.retry-1", "x.events.dlq"} {
		cmd := "kafka-configs --bootstrap-server " + brokers + " --alter --entity-type topics --entity-name " + topic + " --add-config max.message.bytes=" + need
		if !strings.Contains(warn, cmd) {
			t.Errorf("the warning does not give %q:\n%s", cmd, warn)
		}
	}
	if strings.Contains(warn, "x.events.dedup") || strings.Contains(warn, "topics check") {
		t.Errorf("the warning names the dedup topic or a command that cannot help:\n%s", warn)
	}
	accepted := int64(topics.DefaultMaxMessageBytes - topics.HeaderRoom)
	if !strings.Contains(warn, fmt.Sprintf("accepted=%d", accepted)) {
		t.Errorf("want accepted=%d in %s", accepted, warn)
	}
	for size, want := range map[int]int{int(accepted): http.StatusOK, int(accepted) + 1: http.StatusRequestEntityTooLarge} {
		body := `{"id":"` + strings.Repeat("x", size-9) + `"}`
		resp, err := http.Post("http://"+listen+"/webhooks/genesys", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%d-byte body: status %d, want %d", len(body), resp.StatusCode, want)
		}
	}
}
