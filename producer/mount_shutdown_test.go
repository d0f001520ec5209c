package producer

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookline/hookline/internal/syncbuf"
	"github.com/hookline/hookline/topics"
)

// mounted returns a receiver for a one-partition pipeline on a fresh fake
// broker, logging into the returned buffer; it is not served yet.
func mounted(t *testing.T, drain time.Duration) (*Receiver, *syncbuf.Buffer) {
	t.Helper()
	names := topics.For("m.events", 1)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, names.All()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ver, err := NewVerifier(VerifierConfig{Type: VerifierSharedSecret, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	var buf syncbuf.Buffer
	rcv, err := New(Config{
		Kafka:      KafkaConfig{Brokers: c.ListenAddrs()},
		Sources:    []Source{{Name: "genesys", Topics: names, Rules: Rules{Kind: KindGenesys}, Verifier: ver}},
		DrainDelay: drain,
		Logger:     slog.New(slog.NewTextHandler(&buf, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return rcv, &buf
}

// Handler and Shutdown may race (a signal during start-up): no data race
// on the broker check, and a Handler after Shutdown starts nothing.
func TestHandlerRacingShutdown(t *testing.T) {
	for range 40 {
		rcv, _ := mounted(t, -1)
		var wg sync.WaitGroup
		wg.Go(func() { rcv.Handler() })
		wg.Go(func() { _ = rcv.Shutdown(context.Background()) })
		wg.Wait()
		rcv.Handler() // after Shutdown: must not start a check that nothing stops
		rcv.checker.Wait()
	}
}

// A second Shutdown returns the first one's result without draining again.
func TestShutdownTwiceDrainsOnce(t *testing.T) {
	rcv, buf := mounted(t, 50*time.Millisecond)
	rcv.Handler()
	if err := rcv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := rcv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "draining"); n != 1 {
		t.Fatalf("drained %d times, want once:\n%s", n, buf.String())
	}
}

// Mounted in an HTTP/2 server, a 401 ends only its own stream: the
// connection, which a proxy may share among senders, carries on.
func TestUnauthorizedKeepsAnHTTP2Connection(t *testing.T) {
	rcv, _ := mounted(t, -1)
	srv := httptest.NewUnstartedServer(rcv.Handler())
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	post := func(secret string) (int, bool) {
		var reused bool
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
		})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/webhooks/genesys", strings.NewReader(`{"conversationId":"c-1","n":1}`))
		req.Header.Set("X-Hookline-Secret", secret)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("served over %s, want HTTP/2", resp.Proto)
		}
		return resp.StatusCode, reused
	}
	if code, _ := post("wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d, want 401", code)
	}
	time.Sleep(50 * time.Millisecond) // a GOAWAY would have arrived by now
	if code, reused := post(testSecret); code != http.StatusOK || !reused {
		t.Fatalf("next webhook: %d on a reused connection %v, want 200 on the same connection", code, reused)
	}
}
