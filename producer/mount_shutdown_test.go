package producer

import (
	"context"
	"log/slog"
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
