package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/ksuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/extract"
	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/topics"
)

// partitions is the partition count of every benchmark pipeline (the
// default of a real one).
const partitions = 12

// runID keeps topic and group names of one run apart on a shared broker.
var runID = strconv.FormatInt(time.Now().UnixNano()%1e9, 36)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// broker is the Kafka a benchmark runs against: KAFKA_BROKERS when set,
// else an in-process kfake cluster started for this benchmark alone (and
// closed at its end, which frees its memory).
type broker struct {
	kafka    kafkaconf.Config
	cluster  *kfake.Cluster // nil with KAFKA_BROKERS
	external bool
	admin    *kadm.Client
}

func startBroker(b testing.TB) *broker {
	b.Helper()
	k := &broker{}
	if s := os.Getenv("KAFKA_BROKERS"); s != "" {
		k.kafka = kafkaconf.Config{Brokers: kafkaconf.ParseBrokers(s)}
		k.external = true
		setBroker("KAFKA_BROKERS=" + s + " (external; also the benchmark processes run on this machine)")
	} else {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		k.cluster = c
		k.kafka = kafkaconf.Config{Brokers: c.ListenAddrs()}
		setBroker("in-process kfake (franz-go pkg/kfake, 1 broker, in memory), started inside each benchmark; set KAFKA_BROKERS for a real broker")
	}
	cl := k.client(b)
	k.admin = kadm.NewClient(cl)
	return k
}

// client returns a Kafka client closed when the benchmark ends.
func (k *broker) client(b testing.TB, opts ...kgo.Opt) *kgo.Client {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kafkaconf.NewClient(ctx, k.kafka, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	return cl
}

// pipeline creates the topics of a pipeline named after name, with 12
// partitions and the given retry delays (nil: the defaults). On an external
// broker they are deleted when the benchmark ends.
func (k *broker) pipeline(b testing.TB, name string, delays []time.Duration) topics.Plan {
	b.Helper()
	plan, err := topics.NewPlan(topics.Config{Base: "bench." + name + "." + runID, Partitions: partitions, RetryDelays: delays})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := topics.Create(ctx, k.admin, plan); err != nil {
		b.Fatal(err)
	}
	if k.external {
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = k.admin.DeleteTopics(ctx, plan.Names.All()...)
		})
	}
	return plan
}

// deleteGroup removes a benchmark's consumer group from an external broker.
func (k *broker) deleteGroup(b testing.TB, group string) {
	if !k.external {
		return
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = k.admin.DeleteGroups(ctx, group)
	})
}

// sampleConversation is the conversation id in the sample bodies.
const sampleConversation = "8d2f7a8c-4b1e-4c55-9a3f-2e6d1b0c9f47"

// convID returns a UUID-shaped conversation id for i.
func convID(i int) string {
	u := uint64(i)*0x9E3779B97F4A7C15 + 1
	return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", uint32(i), uint16(u>>48), uint16(u>>32)&0xfff, uint16(u>>16)&0xfff, u&0xffffffffffff)
}

// payloads are realistic webhook bodies (the customer.start EventBridge
// sample) that differ in their conversation id, so keys spread over the
// partitions and every body has its own event id.
type payloads struct {
	bodies [][]byte
	convs  []string
}

func makePayloads(n int) payloads {
	sample := extract.Samples()["customer.start.eventbridge"]
	if !bytes.Contains(sample, []byte(sampleConversation)) {
		panic("bench: the customer.start.eventbridge sample no longer holds conversation " + sampleConversation)
	}
	p := payloads{bodies: make([][]byte, n), convs: make([]string, n)}
	for i := range n {
		c := convID(i)
		p.convs[i] = c
		p.bodies[i] = bytes.ReplaceAll(sample, []byte(sampleConversation), []byte(c))
	}
	return p
}

// receiverRecord builds a main-topic record as the receiver writes it: key =
// conversation id, value = the body, the every-record headers.
func receiverRecord(topic, conv string, body []byte, eventID string, at time.Time) *kgo.Record {
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(conv),
		Value: body,
		Headers: []kgo.RecordHeader{
			{Key: headers.EventID, Value: []byte(eventID)},
			{Key: headers.ReceiptID, Value: []byte(ksuid.New().String())},
			{Key: headers.Source, Value: []byte("genesys")},
			{Key: headers.ReceivedAt, Value: []byte(headers.FormatTime(at))},
			{Key: headers.ContentType, Value: []byte("application/json")},
			{Key: headers.ConversationID, Value: []byte(conv)},
		},
	}
}

// eventID is a SHA-256-hex id like the receiver's content hashes.
func eventID(prefix string, i int) string {
	s := sha256.Sum256(fmt.Appendf(nil, "%s-%d", prefix, i))
	return hex.EncodeToString(s[:])
}

// produceAll writes recs asynchronously through cl and waits for every
// acknowledgement.
func produceAll(b testing.TB, cl *kgo.Client, recs func(yield func(*kgo.Record) bool)) int {
	b.Helper()
	var failed atomic.Int64
	var firstErr atomic.Pointer[error]
	n := 0
	ctx := context.Background()
	for r := range recs {
		n++
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, &err)
			}
		})
	}
	fctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		b.Fatalf("flush: %v", err)
	}
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d records not produced: %v", f, n, *firstErr.Load())
	}
	return n
}

// metricSum sums the values of every series of the named counter or gauge
// in reg whose labels include want.
func metricSum(reg prometheus.Gatherer, name string, want map[string]string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return -1
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// eventsRegistry is a registry that also keeps the consumer's
// hookline_consumer_events_total vector when the consumer registers it, so
// that a benchmark can read one series directly. Polling that with a full
// Gather every 5 ms, as before, cost ~0.1 ms of CPU a time, took the
// consumer's lock (the in-flight gauge) and answered ~1.5 ms late mid-run,
// a delay that counted against hookline's measured span.
type eventsRegistry struct {
	*prometheus.Registry
	events *prometheus.CounterVec
}

func newEventsRegistry() *eventsRegistry {
	return &eventsRegistry{Registry: prometheus.NewRegistry()}
}

// Register registers c and keeps it when it is the events vector.
func (r *eventsRegistry) Register(c prometheus.Collector) error {
	if cv, ok := c.(*prometheus.CounterVec); ok && describes(c, "hookline_consumer_events_total") {
		r.events = cv
	}
	return r.Registry.Register(c)
}

// count returns hookline_consumer_events_total{topic, outcome}, or -1
// before the consumer registered it.
func (r *eventsRegistry) count(topic, outcome string) float64 {
	if r.events == nil {
		return -1
	}
	m, err := r.events.GetMetricWithLabelValues(topic, outcome)
	if err != nil {
		return -1
	}
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	return d.GetCounter().GetValue()
}

// describes reports whether c describes a metric named name.
func describes(c prometheus.Collector, name string) bool {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	found := false
	for d := range ch {
		found = found || strings.Contains(d.String(), `fqName: "`+name+`"`)
	}
	return found
}

// waitFor polls cond every step until it holds or timeout passes; it
// returns when cond first held.
func waitFor(b testing.TB, timeout, step time.Duration, what string, cond func() bool) time.Time {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return time.Now()
		}
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(step)
	}
}
