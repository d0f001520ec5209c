package producer

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookline/hookline/topics"
)

// TestHandlerMountedInAnotherServer serves the receiver through Handler in
// the caller's own server: /readyz must turn ready (the broker check runs
// without Serve), webhooks are stored, and Shutdown answers new webhooks 503
// and closes the producer.
func TestHandlerMountedInAnotherServer(t *testing.T) {
	names := topics.For("m.events", 1)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, names.All()...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ver, err := NewVerifier(VerifierConfig{Type: VerifierSharedSecret, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := New(Config{
		Kafka:      KafkaConfig{Brokers: c.ListenAddrs()},
		Sources:    []Source{{Name: "genesys", Topics: names, Rules: Rules{Kind: KindGenesys}, Verifier: ver}},
		DrainDelay: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", rcv.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := get("/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz of a mounted receiver still %d %s after 5s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var closed bool // the last answer said Connection: close
	post := func() int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/genesys", bytes.NewReader([]byte(`{"conversationId":"c-1","n":1}`)))
		req.Header.Set("X-Hookline-Secret", testSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		closed = resp.Close
		return resp.StatusCode
	}
	if code := post(); code != http.StatusOK {
		t.Fatalf("webhook: %d, want 200", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rcv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if code := post(); code != http.StatusServiceUnavailable || !closed {
		t.Errorf("webhook after Shutdown: %d (Connection: close %v), want 503 closing the connection, so the sender reconnects elsewhere", code, closed)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz after Shutdown: %d, want 503", code)
	}
	if err := rcv.Client().Ping(ctx); err == nil {
		t.Error("the producer client still works after Shutdown; want it closed")
	}
}
