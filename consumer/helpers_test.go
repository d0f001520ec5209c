package consumer

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/topics"
)

// testLogger is quiet unless HOOKLINE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("HOOKLINE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type env struct {
	t       testing.TB
	cluster *kfake.Cluster
	kafka   kafkaconf.Config
	plan    topics.Plan
}

// newEnv starts an in-process kfake cluster and creates the pipeline.
func newEnv(t testing.TB, partitions int32, delays ...time.Duration) *env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	plan, err := topics.NewPlan(topics.Config{Base: "t.events", Partitions: partitions, RetryDelays: delays, DedupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cluster: c, kafka: kafkaconf.Config{Brokers: c.ListenAddrs()}, plan: plan}
	e.createTopics()
	return e
}

func (e *env) client(opts ...kgo.Opt) *kgo.Client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kafkaconf.NewClient(ctx, e.kafka, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return cl
}

func (e *env) createTopics() {
	e.t.Helper()
	cl := e.client()
	if _, err := topics.Create(context.Background(), kadm.NewClient(cl), e.plan); err != nil {
		e.t.Fatal(err)
	}
}

// event builds a record as the receiver writes it: key = conversation id,
// value = body, the every-record headers.
func event(conv, eventID string, seq int) *kgo.Record {
	body := fmt.Sprintf(`{"conversationId":%q,"seq":%d,"id":%q}`, conv, seq, eventID)
	return &kgo.Record{
		Key:   []byte(conv),
		Value: []byte(body),
		Headers: []kgo.RecordHeader{
			{Key: headers.EventID, Value: []byte(eventID)},
			{Key: headers.ReceiptID, Value: []byte("rcpt-" + eventID)},
			{Key: headers.Source, Value: []byte("genesys")},
			{Key: headers.ReceivedAt, Value: []byte(headers.FormatTime(time.Now()))},
			{Key: headers.ContentType, Value: []byte("application/json")},
			{Key: headers.ConversationID, Value: []byte(conv)},
		},
	}
}

// produce writes records to the main topic with key hashing, like the
// receiver, and returns them with their partitions and offsets.
func (e *env) produce(recs ...*kgo.Record) []*kgo.Record {
	e.t.Helper()
	cl := e.client()
	for _, r := range recs {
		r.Topic = e.plan.Names.Base
	}
	res := cl.ProduceSync(context.Background(), recs...)
	if err := res.FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	return recs
}

// readAll returns every record of topic (all partitions) up to the current
// high watermarks.
func (e *env) readAll(topic string) []*kgo.Record {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(e.client())
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		e.t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil
	}
	cl := e.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("readAll %s: timed out, still waiting for %v", topic, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// start runs a consumer until the test ends (or stop is called).
func (e *env) start(cfg Config) (*Consumer, func()) {
	e.t.Helper()
	cfg.Kafka = e.kafka
	cfg.Plan = e.plan
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = 200 * time.Millisecond
	}
	c, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				e.t.Error("Run did not return within 30s of cancel")
			}
		})
	}
	e.t.Cleanup(stop)
	return c, stop
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hdr(r *kgo.Record, k string) string { return headers.Value(r.Headers, k) }

func hdrInt(t *testing.T, r *kgo.Record, k string) int {
	t.Helper()
	n, err := strconv.Atoi(hdr(r, k))
	if err != nil {
		t.Fatalf("header %s=%q: %v", k, hdr(r, k), err)
	}
	return n
}

// counter returns the value of hookline_consumer_events_total{topic,outcome}.
func (c *Consumer) eventsCount(topic, outcome string) float64 {
	return counterValue(c.m.events.WithLabelValues(topic, outcome))
}

func writeCert(path string, srv *httptest.Server) error {
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return os.WriteFile(path, b, 0o600)
}
