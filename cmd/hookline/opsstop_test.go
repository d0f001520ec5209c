package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/syncbuf"
)

func freeLocalAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func getStatus(url string) (int, string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// consume's --listen server (healthz, readyz, metrics) used to close the
// moment SIGTERM arrived, while the consumer went on for up to its grace
// (33.5 s by default) finishing in-flight handlers: during the whole
// graceful stop health checks met connection refused, the last metrics
// were never scraped, and the runbook's `shutting down` reason could not
// be seen. It must answer until the consumer stopped.
func TestConsumeOpsServerAnswersDuringTheGracefulStop(t *testing.T) {
	c := fakeKafka(t)
	brokers := strings.Join(c.ListenAddrs(), ",")
	started := make(chan struct{}, 16)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		started <- struct{}{}
		<-release // a slow handler, still running when the signal comes
	}))
	defer sink.Close()
	ops := freeLocalAddr(t)

	out := &syncbuf.Buffer{}
	env := &environment{stdout: out, stderr: out, stdin: strings.NewReader(""), getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- dispatch(ctx, env, []string{"consume", "--brokers", brokers, "--partitions", "2", "--handler-url", sink.URL, "--listen", ops})
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _, err := getStatus("http://" + ops + "/readyz"); err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consume not ready within 30s:\n%s", out.String())
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec := &kgo.Record{Topic: "hookline.events", Key: []byte("conv-1"), Value: []byte(`{"a":1}`), Headers: []kgo.RecordHeader{
		{Key: "hookline-event-id", Value: []byte("ev-1")}, {Key: "hookline-source", Value: []byte("genesys")},
		{Key: "hookline-conversation-id", Value: []byte("conv-1")}, {Key: "hookline-content-type", Value: []byte("application/json")},
	}}
	if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatalf("the handler was not called within 30s:\n%s", out.String())
	}

	cancel() // the signal: the handler is still running
	time.Sleep(300 * time.Millisecond)
	code, body, err := getStatus("http://" + ops + "/readyz")
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz during the graceful stop: %d %q %v, want 503 shutting down", code, body, err)
	}
	if code, _, err := getStatus("http://" + ops + "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz during the graceful stop: %d %v, want 200", code, err)
	}
	if code, body, err := getStatus("http://" + ops + "/metrics"); err != nil || code != http.StatusOK || !strings.Contains(body, "hookline_consumer_in_flight") {
		t.Errorf("/metrics during the graceful stop: %d %v, want 200 with the consumer's metrics", code, err)
	}
	select {
	case code := <-done:
		t.Fatalf("consume exited (%d) while its handler was still running:\n%s", code, out.String())
	default:
	}

	unblock()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after a graceful stop:\n%s", code, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("consume did not stop within 30s of its handler returning:\n%s", out.String())
	}
	if _, _, err := getStatus("http://" + ops + "/healthz"); err == nil {
		t.Errorf("the ops server still answers after consume returned")
	}
	// The last line tells a clean exit from a killed process.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "stopped cleanly") || !strings.Contains(last, "command=consume") {
		t.Errorf("last line %q, want the clean stop", last)
	}
}
