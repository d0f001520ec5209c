package dlq

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/topics"
)

// env is an in-process kfake cluster with one pipeline.
type env struct {
	t       *testing.T
	cluster *kfake.Cluster
	kc      kafkaconf.Config
	names   topics.Names
	cl      *Client
	prod    *kgo.Client
}

func newEnv(t *testing.T, partitions int32) *env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	plan, err := topics.NewPlan(topics.Config{Base: "t.events", Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cluster: c, kc: kafkaconf.Config{Brokers: c.ListenAddrs()}, names: plan.Names}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.prod, err = kafkaconf.NewClient(ctx, e.kc, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.prod.Close)
	if _, err := topics.Create(ctx, kadm.NewClient(e.prod), plan); err != nil {
		t.Fatal(err)
	}
	e.cl, err = Dial(ctx, e.kc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cl.Close)
	return e
}

// dl describes a dead letter to write.
type dl struct {
	part     int32
	id, conv string
	source   string
	class    string
	attempt  int
	at       time.Time // failed-at
	err      string
	body     string
	replays  int // hookline-replay-count, 0: absent
}

// record builds a DLQ record the way the consumer (or, for malformed, the
// receiver) writes it.
func (e *env) record(d dl) *kgo.Record {
	if d.source == "" {
		d.source = "genesys"
	}
	if d.at.IsZero() {
		d.at = time.Now()
	}
	if d.body == "" {
		d.body = fmt.Sprintf(`{"eventBody":{"conversationId":%q,"id":%q}}`, d.conv, d.id)
	}
	if d.err == "" {
		d.err = "handler answered 500 Internal Server Error\nsecond line"
	}
	key := d.conv
	if key == "" {
		key = d.id
	}
	var hs []kgo.RecordHeader
	add := func(k, v string) { hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(headers.EventID, d.id)
	add(headers.ReceiptID, "rcpt-"+d.id)
	add(headers.Source, d.source)
	add(headers.ReceivedAt, headers.FormatTime(d.at.Add(-time.Minute)))
	add(headers.ContentType, "application/json")
	if d.conv != "" {
		add(headers.ConversationID, d.conv)
	}
	add("x-custom", "kept")
	if d.class != headers.ClassMalformed {
		add(headers.OriginalTopic, e.names.Base)
		add(headers.OriginalPartition, strconv.Itoa(int(d.part)))
		add(headers.OriginalOffset, "7")
		add(headers.OriginalTimestamp, headers.FormatTime(d.at.Add(-time.Minute)))
		add(headers.ConsumerGroup, "hookline-t.events")
	}
	if d.replays > 0 {
		add(headers.ReplayedFrom, e.names.DLQ+"/0/0")
		add(headers.ReplayCount, strconv.Itoa(d.replays))
	}
	add(headers.Attempt, strconv.Itoa(d.attempt))
	add(headers.FirstFailedAt, headers.FormatTime(d.at.Add(-30*time.Second)))
	add(headers.FailedAt, headers.FormatTime(d.at))
	add(headers.Error, d.err)
	add(headers.ErrorClass, d.class)
	return &kgo.Record{Topic: e.names.DLQ, Partition: d.part, Key: []byte(key), Value: []byte(d.body), Headers: hs}
}

// put writes dead letters and returns them as written (with offsets).
func (e *env) put(ds ...dl) []*kgo.Record {
	e.t.Helper()
	var recs []*kgo.Record
	for _, d := range ds {
		recs = append(recs, e.record(d))
	}
	res := e.prod.ProduceSync(context.Background(), recs...)
	if err := res.FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	return recs
}

// dedup writes a dedup record (outcome "" = tombstone).
func (e *env) dedup(part int32, id, outcome string, at time.Time) {
	e.t.Helper()
	r := &kgo.Record{Topic: e.names.Dedup, Partition: part, Key: []byte(id)}
	if outcome != "" {
		r.Value = fmt.Appendf(nil, `{"outcome":%q,"at":%q}`, outcome, headers.FormatTime(at))
	}
	if err := e.prod.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// ends returns the end offset of every partition of topic.
func (e *env) ends(topic string) map[int32]int64 {
	e.t.Helper()
	offs, err := kadm.NewClient(e.prod).ListEndOffsets(context.Background(), topic)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// read returns every record of topic, in partition then offset order.
func (e *env) read(topic string) []*kgo.Record {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spans, err := e.cl.spans(ctx, topic, time.Time{})
	if err != nil {
		e.t.Fatal(err)
	}
	byPart := map[int32][]*kgo.Record{}
	if err := e.cl.scan(ctx, topic, spans, func(r *kgo.Record) error {
		byPart[r.Partition] = append(byPart[r.Partition], r)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	var out []*kgo.Record
	for p := int32(0); p < 64; p++ {
		out = append(out, byPart[p]...)
	}
	return out
}

func (e *env) replay(cfg ReplayConfig) (Result, []Step, error) {
	e.t.Helper()
	if cfg.DLQ == "" {
		cfg.DLQ = e.names.DLQ
	}
	if cfg.Dedup == "" {
		cfg.Dedup = e.names.Dedup
	}
	if cfg.To == "" {
		cfg.To = e.names.Base
	}
	var steps []Step
	cfg.OnStep = func(s Step) { steps = append(steps, s) }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := e.cl.Replay(ctx, cfg)
	return res, steps, err
}

func eventIDs(recs []*kgo.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, headers.Value(r.Headers, headers.EventID))
	}
	return out
}
