package producer

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/internal/extract"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/internal/syncbuf"
	"github.com/hookline/hookline/internal/verify"
	"github.com/hookline/hookline/topics"
)

// stopServe cancels Serve's context (the test then waits for Serve itself)
// and returns when it did, once the gate is closed.
func (h *harness) stopServe() time.Time {
	h.t.Helper()
	cancel := h.cancel
	h.cancel = nil
	started := time.Now()
	cancel()
	deadline := started.Add(5 * time.Second)
	for !h.rcv.gate.isClosed() {
		if time.Now().After(deadline) {
			h.t.Fatal("shutdown never closed the gate")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return started
}

// waitServe returns how long after started Serve returned.
func (h *harness) waitServe(started time.Time, within time.Duration) time.Duration {
	h.t.Helper()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Fatalf("Serve: %v", err)
		}
		return time.Since(started)
	case <-time.After(within):
		h.t.Fatalf("Serve did not return within %s", within)
		return 0
	}
}

// An idle receiver used to close its listener within milliseconds of
// SIGTERM: load balancers and senders saw connection refused, never the 503
// the docs promise. The drain delay keeps it answering.
func TestDrainDelayAnswers503BeforeClosing(t *testing.T) {
	const delay = 300 * time.Millisecond
	logs := &syncbuf.Buffer{}
	h := newHarness(t, func(c *Config) {
		c.DrainDelay = delay
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	h.waitReadyz(http.StatusOK, 10*time.Second)
	body := extract.Samples()["user.end"]

	started := h.stopServe()
	if a := send(h.url, bytes.NewReader(body)); a.err != nil || a.code != http.StatusServiceUnavailable || a.retryAfter == "" {
		t.Fatalf("new webhook during the drain delay: %+v, want 503 with Retry-After", a)
	}
	resp, err := http.Get(h.url + "/readyz")
	if err != nil {
		t.Fatalf("readyz during the drain delay: %v, want 503", err)
	}
	reason, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(reason), "shutting down") {
		t.Fatalf("readyz during the drain delay: %d %s, want 503 shutting down", resp.StatusCode, reason)
	}
	if took := h.waitServe(started, 5*time.Second); took < delay {
		t.Fatalf("Serve returned %s after shutdown began, before the %s drain delay", took, delay)
	}
	if _, err := http.Get(h.url + "/healthz"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
	if n := strings.Count(logs.String(), `msg="draining: answering 503 before closing" delay=300ms`); n != 1 {
		t.Fatalf("want one drain log line, got %d:\n%s", n, logs)
	}
}

// A webhook admitted before shutdown is answered normally during the drain
// delay, and its answer does not end the delay early.
func TestDrainDelayAnswersInFlightWebhooks(t *testing.T) {
	const delay = time.Second
	h := newHarness(t, func(c *Config) {
		c.DrainDelay = delay
		c.AckTimeout = 3 * time.Second
		c.Logger = slog.New(slog.DiscardHandler)
	})
	h.waitReadyz(http.StatusOK, 10*time.Second)
	body := extract.Samples()["user.end"]
	first, release := h.heldWebhook(body)

	started := h.stopServe()
	close(release)
	if a := <-first; a.code != http.StatusOK {
		t.Fatalf("in-flight webhook during the drain delay: %+v, want 200", a)
	}
	if time.Since(started) >= delay {
		t.Fatalf("the in-flight webhook was answered only after the drain delay")
	}
	if a := send(h.url, bytes.NewReader(body)); a.err != nil || a.code != http.StatusServiceUnavailable {
		t.Fatalf("new webhook after the in-flight one, still within the drain delay: %+v, want 503", a)
	}
	if took := h.waitServe(started, 5*time.Second); took < delay {
		t.Fatalf("Serve returned %s after shutdown began, before the %s drain delay", took, delay)
	}
}

func TestDrainDelayDefaultAndNone(t *testing.T) {
	ver, err := verify.New(verify.Config{Type: "none"})
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := New(Config{
		Kafka:   kafkaconf.Config{Brokers: []string{"127.0.0.1:1"}}, // never contacted
		Sources: []Source{{Name: "genesys", Topics: topics.For("t.events", 3), Rules: extract.Rules{Kind: extract.KindGenesys}, Verifier: ver}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rcv.Client().Close()
	if rcv.cfg.DrainDelay != DefaultDrainDelay {
		t.Fatalf("DrainDelay 0 became %s, want the default %s", rcv.cfg.DrainDelay, DefaultDrainDelay)
	}

	// Negative: no delay, the listener closes as soon as nothing is in flight.
	logs := &syncbuf.Buffer{}
	h := newHarness(t, func(c *Config) {
		c.DrainDelay = -1
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	h.waitReadyz(http.StatusOK, 10*time.Second)
	started := h.stopServe()
	if took := h.waitServe(started, 5*time.Second); took >= time.Second {
		t.Fatalf("with no drain delay Serve took %s to return", took)
	}
	if strings.Contains(logs.String(), "draining") {
		t.Fatalf("drain logged without a drain delay:\n%s", logs)
	}
}
