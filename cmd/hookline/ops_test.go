package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The consume --listen server answers HEAD on every route (load balancers
// and probes use it) and says "status" whether ready or not, as the
// receiver does.
func TestOpsServerHeadAndReadyzBodies(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var ready atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- opsServer(ln, prometheus.NewRegistry(), func() (bool, string) {
			if ready.Load() {
				return true, ""
			}
			return false, "starting: checking topics"
		})(ctx)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	url := "http://" + ln.Addr().String()
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Head(url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotFound {
			t.Errorf("HEAD %s: %d", p, resp.StatusCode)
		}
	}
	readyz := func() (int, map[string]string) {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("readyz body: %v", err)
		}
		return resp.StatusCode, m
	}
	if code, m := readyz(); code != http.StatusServiceUnavailable || m["status"] != "not ready" || m["error"] != "starting: checking topics" {
		t.Errorf("readyz when not ready: %d %v, want 503 with status \"not ready\" and the reason in error", code, m)
	}
	ready.Store(true)
	if code, m := readyz(); code != http.StatusOK || m["status"] != "ready" {
		t.Errorf("readyz when ready: %d %v, want 200 status ready", code, m)
	}
}
