package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/internal/syncbuf"
	"github.com/hookline/hookline/topics"
)

// rejectProduces makes the broker reject every produce request while the
// returned flag is set, with an error the client does not retry (the
// consumer's own loop must), and counts the rejected requests. Newer
// Produce versions name topics by id, so it fails them all.
func rejectProduces(e *env) (failing *atomic.Bool, rejected *atomic.Int32) {
	return rejectProducesWith(e, kerr.InvalidRecord)
}

// rejectProducesWith is rejectProduces with the given error.
func rejectProducesWith(e *env, code *kerr.Error) (failing *atomic.Bool, rejected *atomic.Int32) {
	failing, rejected = new(atomic.Bool), new(atomic.Int32)
	e.cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		if !failing.Load() {
			return nil, nil, false
		}
		rejected.Add(1)
		r := req.(*kmsg.ProduceRequest)
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode, rp.BaseOffset = p.Partition, code.Code, -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	return failing, rejected
}

// TestRetryProduceFailureKeepsOffset makes the broker reject every produce
// of the consumer (retry-1 and dedup records) for a while: the event must not be lost, and the main offset
// must not be committed past it until the retry record is acknowledged.
func TestRetryProduceFailureKeepsOffset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, 100*time.Millisecond)
	retry1 := e.plan.Names.Retry(1)
	failing, rejected := rejectProduces(e)
	var calls atomic.Int32
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		if calls.Add(1) == 1 {
			return errors.New("first try fails")
		}
		return nil
	})
	recs := e.produce(event("c", "fault", 0), event("c2", "after", 1))
	failing.Store(true)
	c, _ := e.start(Config{Handler: h, Group: "gf"})
	eventually(t, 10*time.Second, "retry produce rejected a few times", func() bool { return rejected.Load() >= 3 })
	time.Sleep(500 * time.Millisecond) // several commit intervals
	adm := kadm.NewClient(e.client())
	offs, err := adm.FetchOffsets(context.Background(), "gf")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(e.plan.Names.Base, 0); ok && o.At > recs[0].Offset {
		t.Fatalf("main offset committed at %d while the retry record of offset %d is not acknowledged", o.At, recs[0].Offset)
	}
	if v := counterValue(c.m.produceErrors.WithLabelValues(retry1)); v < 1 {
		t.Errorf("produce errors = %v", v)
	}
	failing.Store(false)
	eventually(t, 15*time.Second, "retried and processed", func() bool {
		return c.eventsCount(retry1, OutcomeProcessed) == 1
	})
	eventually(t, 5*time.Second, "main offset committed past both records", func() bool {
		offs, err := adm.FetchOffsets(context.Background(), "gf")
		if err != nil {
			return false
		}
		o, ok := offs.Lookup(e.plan.Names.Base, 0)
		return ok && o.At == recs[1].Offset+1
	})
}

// TestKeySuccessorWaitsForDedupAck holds back every dedup record's
// acknowledgement: a handled event frees its slot at once (another
// conversation is handled meanwhile), but the next event of its own
// conversation starts only after the dedup record was acknowledged, so a
// crash in between cannot replay the first after the second.
func TestKeySuccessorWaitsForDedupAck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, 100*time.Millisecond)
	failing, rejected := rejectProduces(e)
	var mu sync.Mutex
	var order []string
	h := HandlerFunc(func(_ context.Context, ev Event) error {
		mu.Lock()
		order = append(order, ev.EventID)
		mu.Unlock()
		return nil
	})
	handled := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(order)
	}
	e.produce(event("conv-a", "a1", 0), event("conv-a", "a2", 1), event("conv-b", "b1", 0))
	failing.Store(true)
	c, _ := e.start(Config{Handler: h})
	eventually(t, 10*time.Second, "a1 and b1 handled while dedup writes are rejected", func() bool {
		got := handled()
		return slices.Contains(got, "a1") && slices.Contains(got, "b1") && rejected.Load() >= 3
	})
	time.Sleep(300 * time.Millisecond)
	if got := handled(); slices.Contains(got, "a2") {
		t.Fatalf("a2 handled (%v) before a1's dedup record was acknowledged", got)
	}
	failing.Store(false)
	eventually(t, 10*time.Second, "a2 handled after the acknowledgement", func() bool {
		return slices.Contains(handled(), "a2")
	})
	eventually(t, 5*time.Second, "all three processed", func() bool {
		return c.eventsCount(e.plan.Names.Base, OutcomeProcessed) == 3
	})
	if got := handled(); len(got) != 3 {
		t.Errorf("handled %v, want each event once", got)
	}
}

// TestUnfinishedBoundsHandlersAheadOfDedupAcks holds back every dedup
// acknowledgement: handlers of other conversations keep starting after
// earlier ones returned, but only until MaxUnfinished records are started
// and unacknowledged, which bounds what a crash would re-run. Once the
// broker acknowledges again, the rest is handled, each event once.
func TestUnfinishedBoundsHandlersAheadOfDedupAcks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, 100*time.Millisecond)
	failing, rejected := rejectProduces(e)
	var calls atomic.Int32
	h := HandlerFunc(func(context.Context, Event) error {
		calls.Add(1)
		return nil
	})
	const maxInFlight, maxUnfinished, n = 2, 5, 20
	var evs []*kgo.Record
	for i := range n {
		evs = append(evs, event(fmt.Sprintf("conv-%d", i), fmt.Sprintf("e%d", i), 0))
	}
	e.produce(evs...)
	failing.Store(true)
	c, _ := e.start(Config{Handler: h, MaxInFlight: maxInFlight, MaxUnfinished: maxUnfinished})
	eventually(t, 10*time.Second, "MaxUnfinished events handled while dedup writes are rejected", func() bool {
		return calls.Load() >= maxUnfinished && rejected.Load() >= 3
	})
	time.Sleep(300 * time.Millisecond)
	if got := calls.Load(); got != maxUnfinished {
		t.Fatalf("%d handler calls with no dedup write acknowledged, want MaxUnfinished = %d", got, maxUnfinished)
	}
	failing.Store(false)
	eventually(t, 10*time.Second, "all processed after the acknowledgements", func() bool {
		return c.eventsCount(e.plan.Names.Base, OutcomeProcessed) == n
	})
	if got := calls.Load(); got != n {
		t.Errorf("%d handler calls for %d events", got, n)
	}
}

// TestNewDefaultsAndChecksMaxUnfinished: 0 means 32 × MaxInFlight, and a
// bound below MaxInFlight is refused with what to do.
func TestNewDefaultsAndChecksMaxUnfinished(t *testing.T) {
	plan, err := topics.NewPlan(topics.Config{Base: "t.events"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Kafka: kafkaconf.Config{Brokers: []string{"127.0.0.1:9"}}, Plan: plan, Group: "g",
		Handler: HandlerFunc(func(context.Context, Event) error { return nil })}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.maxUnf != 32*DefaultMaxInFlight {
		t.Errorf("default MaxUnfinished = %d, want %d", c.maxUnf, 32*DefaultMaxInFlight)
	}
	cfg.MaxInFlight, cfg.MaxUnfinished = 10, 9
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "at least MaxInFlight") {
		t.Errorf("MaxUnfinished below MaxInFlight: err = %v", err)
	}
}

// While the dedup state cannot be restored (here: the broker refuses to list
// the dedup topic's offsets), Ready says why, not only that it is restoring;
// once the broker answers, the restore finishes and the consumer is ready.
func TestReadySaysWhyTheRestoreIsStuck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, 100*time.Millisecond)
	var failing atomic.Bool
	failing.Store(true)
	dedup := e.plan.Names.Dedup
	e.cluster.ControlKey(int16(kmsg.ListOffsets), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		r := req.(*kmsg.ListOffsetsRequest)
		if !failing.Load() || len(r.Topics) == 0 || r.Topics[0].Topic != dedup {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewListOffsetsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewListOffsetsResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, kerr.TopicAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	c, _ := e.start(Config{Handler: HandlerFunc(func(context.Context, Event) error { return nil })})
	var why string
	eventually(t, 10*time.Second, "Ready to name the failing restore step", func() bool {
		_, why = c.Ready()
		return strings.Contains(why, "restoring dedup state") && strings.Contains(why, "failing: list end offsets") &&
			strings.Contains(why, "is Kafka reachable?")
	})
	failing.Store(false)
	eventually(t, 20*time.Second, "the consumer to become ready once the broker answers", func() bool {
		ok, _ := c.Ready()
		return ok
	})
	// A later restore (a rebalance) must not be blamed on the old failure.
	if f := c.dedup.recentFailure(); f != "" {
		t.Errorf("the recovered failure is still reported: %q", f)
	}
}

// TestReadySaysTheGroupMembershipIsLost: after a lost session (what the
// broker going away does) Ready says so, not "restoring dedup state" for
// partitions nobody restores, until the next assignment.
func TestReadySaysTheGroupMembershipIsLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, 100*time.Millisecond)
	h := HandlerFunc(func(context.Context, Event) error { return nil })
	c, _ := e.start(Config{Handler: h, Group: "gl"})
	eventually(t, 10*time.Second, "ready", func() bool { ok, _ := c.Ready(); return ok })
	// As franz-go does when the session is lost.
	c.onLost(context.Background(), c.cl, map[string][]int32{e.plan.Names.Base: {0, 1}})
	ok, why := c.Ready()
	if ok || !strings.Contains(why, "membership lost") || strings.Contains(why, "restoring") {
		t.Fatalf("Ready after a lost session = %v %q", ok, why)
	}
	// The next assignment (a member joining) makes it ready again.
	e.start(Config{Handler: h, Group: "gl"})
	eventually(t, 15*time.Second, "ready after the next assignment", func() bool { ok, _ := c.Ready(); return ok })
}

// TestAbandonedDedupWriteIsNotRemembered: an event is handled, but its dedup
// record is not acknowledged before its partition moves (a rebalance with
// the broker refusing writes), so that write is abandoned. When the event is
// delivered again it must be handled and recorded again: skipping it as a
// duplicate of the unacknowledged entry committed its offset with no dedup
// record anywhere (guarantee 2), and the next restart handled it again.
func TestAbandonedDedupWriteIsNotRemembered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, 100*time.Millisecond)
	failing, rejected := rejectProduces(e)
	h := newCountingHandler()
	e.produce(event("c", "lost-ack", 0))
	failing.Store(true)
	var logs syncbuf.Buffer
	e.start(Config{Handler: h, Group: "ga", ShutdownGrace: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	eventually(t, 10*time.Second, "handled, dedup write rejected", func() bool {
		return h.count("lost-ack") == 1 && rejected.Load() >= 2
	})
	// A member joins and leaves: the partition is revoked from c1 (its
	// unacknowledged write abandoned after the grace) and comes back.
	_, stop2 := e.start(Config{Handler: h, Group: "ga", ShutdownGrace: 300 * time.Millisecond})
	eventually(t, 15*time.Second, "c1 revoked", func() bool {
		return strings.Contains(logs.String(), `msg="partitions revoked"`)
	})
	stop2()
	failing.Store(false)
	eventually(t, 20*time.Second, "a processed dedup record for the event", func() bool {
		for _, r := range e.readAll(e.plan.Names.Dedup) {
			if string(r.Key) == "lost-ack" && strings.Contains(string(r.Value), outcomeProcessed) {
				return true
			}
		}
		return false
	})
	if n := h.count("lost-ack"); n < 2 {
		t.Errorf("handled %d times; the redelivery after the abandoned write must be handled", n)
	}
}

// TestPartitionsAddedToTheMainTopicOnlyWait: someone adds partitions to the
// main topic of a running pipeline. Its retry, DLQ and dedup topics have no
// such partitions, so the new ones are not consumed (their events wait,
// uncommitted); the consumer logs why with the fix and counts them in
// hookline_consumer_partitions_held, and stays ready for the others. Once
// every topic has the new count it consumes them, without a restart.
// Handling them would run the handler and then retry a dedup write to a
// partition that does not exist, forever.
func TestPartitionsAddedToTheMainTopicOnlyWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, 100*time.Millisecond)
	h := newCountingHandler()
	var logs syncbuf.Buffer
	c, err := New(Config{Kafka: e.kafka, Plan: e.plan, Handler: h, Group: "gp", CommitInterval: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c.heldRecheck = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 10*time.Second, "ready", func() bool { ok, _ := c.Ready(); return ok })

	adm := kadm.NewClient(e.client())
	if rs, err := adm.CreatePartitions(context.Background(), 2, e.plan.Names.Base); err != nil || rs.Error() != nil {
		t.Fatal(err, rs.Error())
	}
	// A member joining and leaving makes the group see the new count now
	// rather than at the next metadata refresh. (Another hookline consumer
	// would refuse to start: its startup check sees the mismatch.)
	joiner := e.client(kgo.ConsumerGroup("gp"), kgo.ConsumeTopics(e.plan.Names.Consumed()...),
		kgo.Balancers(CoPartitionBalancer()), kgo.DisableAutoCommit())
	eventually(t, 15*time.Second, "a rebalance with the joiner", func() bool {
		return strings.Count(logs.String(), `msg="partitions assigned"`) >= 2
	})
	joiner.Close()
	eventually(t, 15*time.Second, "the log to say the pipeline is not co-partitioned", func() bool {
		return strings.Contains(logs.String(), "no longer co-partitioned")
	})
	if l := logs.String(); !strings.Contains(l, "partitions 2 to 3 are not consumed") || !strings.Contains(l, "give every topic of the pipeline 4 partitions") {
		t.Errorf("log lacks the partitions or the fix:\n%s", l)
	}

	pin := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	newPart, oldPart := event("c-new", "in-new-partition", 0), event("c-old", "in-old-partition", 0)
	newPart.Topic, newPart.Partition = e.plan.Names.Base, 3
	oldPart.Topic, oldPart.Partition = e.plan.Names.Base, 0
	if err := pin.ProduceSync(context.Background(), newPart, oldPart).FirstErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the old partition's event handled, partitions held", func() bool {
		return h.count("in-old-partition") == 1 && counterValue(c.m.held) > 0
	})
	if ok, why := c.Ready(); !ok {
		t.Errorf("held partitions made the consumer unready (%q): in run that takes the receiver out of rotation", why)
	}
	time.Sleep(time.Second)
	if n := h.count("in-new-partition"); n != 0 {
		t.Fatalf("the event in partition 3, which has no dedup partition, was handled %d times", n)
	}
	offs, err := adm.FetchOffsets(context.Background(), "gp")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(e.plan.Names.Base, 3); ok && o.At > 0 {
		t.Fatalf("partition 3 committed at %d", o.At)
	}

	// The operator raises the other topics, the DLQ and dedup topics last
	// (nobody consumes those, so that alone causes no rebalance).
	others := append(e.plan.Names.Consumed()[1:], e.plan.Names.DLQ, e.plan.Names.Dedup)
	for _, name := range others {
		if rs, err := adm.UpdatePartitions(context.Background(), 4, name); err != nil || rs.Error() != nil {
			t.Fatal(err, rs.Error())
		}
	}
	eventually(t, 20*time.Second, "the held partition consumed once the counts agree", func() bool {
		return h.count("in-new-partition") == 1 && counterValue(c.m.held) == 0
	})
	// Its dedup record lands in the new partition 3 of the dedup topic at
	// once, not when the producer's metadata ages out (5 min), and the
	// offset is committed.
	eventually(t, 10*time.Second, "the dedup record in partition 3 and the offset committed", func() bool {
		found := false
		for _, r := range e.readAll(e.plan.Names.Dedup) {
			found = found || string(r.Key) == "in-new-partition" && r.Partition == 3
		}
		offs, err := adm.FetchOffsets(context.Background(), "gp")
		o, ok := offs.Lookup(e.plan.Names.Base, 3)
		return found && err == nil && ok && o.At == newPart.Offset+1
	})
}

// Extra partitions on the DLQ or dedup topic alone hold nothing back: no
// consumed partition lacks a place to write.
func TestExtraDedupPartitionsHoldNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, 100*time.Millisecond)
	c, _ := e.start(Config{Handler: newCountingHandler(), Group: "gx"})
	eventually(t, 10*time.Second, "ready", func() bool { ok, _ := c.Ready(); return ok })
	adm := kadm.NewClient(e.client())
	for _, name := range []string{e.plan.Names.Dedup, e.plan.Names.DLQ} {
		if rs, err := adm.UpdatePartitions(context.Background(), 4, name); err != nil || rs.Error() != nil {
			t.Fatal(err, rs.Error())
		}
	}
	if bad, why, err := c.unpartnered(c.cl); err != nil || len(bad) != 0 {
		t.Fatalf("held %v (%q, %v); want nothing", bad, why, err)
	}
	if rs, err := adm.UpdatePartitions(context.Background(), 3, e.plan.Names.Base); err != nil || rs.Error() != nil {
		t.Fatal(err, rs.Error())
	}
	if bad, _, err := c.unpartnered(c.cl); err != nil || len(bad) != 1 || !bad[2] {
		t.Fatalf("main raised to 3: held %v (%v); want partition 2", bad, err)
	}
}

// A consumer stopped while it starts returns nil, not "cannot reach
// Kafka": SIGTERM during start-up is not a failure.
func TestStopDuringStartIsClean(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	h := HandlerFunc(func(context.Context, Event) error { return nil })
	for i := range 30 {
		c, err := New(Config{Kafka: e.kafka, Plan: e.plan, Group: "gs", Handler: h, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i)*time.Millisecond)
		err = c.Run(ctx)
		cancel()
		if err != nil {
			t.Fatalf("stopped %d ms into its start: Run = %v, want nil", i, err)
		}
	}
}

// Two processes with one instance id: the one fenced off stops with an
// error that names the cause, instead of rejoining forever.
func TestDuplicateInstanceIDStopsTheFencedMember(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	h := HandlerFunc(func(context.Context, Event) error { return nil })
	c1, err := New(Config{Kafka: e.kafka, Plan: e.plan, Group: "gi", InstanceID: "pod-0", Handler: h, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c1.Run(ctx) }()
	eventually(t, 10*time.Second, "c1 ready", func() bool { ok, _ := c1.Ready(); return ok })
	e.start(Config{Group: "gi", InstanceID: "pod-0", Handler: h})
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), `same instance id "pod-0"`) {
			t.Fatalf("fenced member: Run = %v, want an error naming the shared instance id", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the fenced member still runs 30 s after another took its instance id")
	}
}

// TestTooLargeForTheTopicSaysToRaiseAndRestart: a record that cannot move to
// its retry tier because of the topic's max.message.bytes keeps its offset
// and says what to do, including the restart a raised limit needs (the
// producer reads the topics' limits at start).
func TestTooLargeForTheTopicSaysToRaiseAndRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, 100*time.Millisecond)
	failing, rejected := rejectProducesWith(e, kerr.MessageTooLarge)
	h := HandlerFunc(func(context.Context, Event) error { return errors.New("fails") })
	e.produce(event("c", "big", 0))
	failing.Store(true)
	var logs syncbuf.Buffer
	e.start(Config{Handler: h, Group: "gl", ShutdownGrace: 300 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	eventually(t, 10*time.Second, "the retry write rejected as too large", func() bool { return rejected.Load() >= 1 })
	eventually(t, 10*time.Second, "the log says what to do", func() bool {
		return strings.Contains(logs.String(), "max.message.bytes: raise it (hookline topics check shows the planned value), then restart this process")
	})
}

// TestExtraRetryTiersAreDrained: the pipeline ran with two tiers and now
// runs with one. Records left in retry-2 are still handled at their due
// time (not stranded until retention deletes them); one that fails again
// has no next tier and is dead-lettered as exhausted.
func TestExtraRetryTiersAreDrained(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, 50*time.Millisecond)
	old, err := topics.NewPlan(topics.Config{Base: "t.events", Partitions: 2, RetryDelays: []time.Duration{50 * time.Millisecond, time.Hour}, DedupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topics.Create(context.Background(), kadm.NewClient(e.client()), old); err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(300 * time.Millisecond)
	var left []*kgo.Record
	for i, id := range []string{"left-ok", "left-fails", "foreign"} {
		r := event("c"+id, id, 0)
		r.Topic, r.Partition = old.Names.Retry(2), int32(i%2)
		if id != "foreign" { // a retry of this pipeline names its main topic
			r.Headers = append(r.Headers,
				kgo.RecordHeader{Key: headers.OriginalTopic, Value: []byte(e.plan.Names.Base)},
				kgo.RecordHeader{Key: headers.Attempt, Value: []byte("2")},
				kgo.RecordHeader{Key: headers.DueAt, Value: []byte(headers.FormatTime(due))})
		}
		left = append(left, r)
	}
	if err := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner())).ProduceSync(context.Background(), left...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	at := map[string]time.Time{}
	h := HandlerFunc(func(_ context.Context, ev Event) error {
		mu.Lock()
		at[ev.EventID] = time.Now()
		mu.Unlock()
		if ev.EventID == "left-fails" {
			return errors.New("still failing")
		}
		return nil
	})
	var logs syncbuf.Buffer
	e.start(Config{Handler: h, Group: "gx", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	var dlq []*kgo.Record
	eventually(t, 10*time.Second, "left-fails dead-lettered", func() bool {
		dlq = e.readAll(e.plan.Names.DLQ)
		return len(dlq) == 1
	})
	if c := hdr(dlq[0], headers.ErrorClass); c != headers.ClassExhausted || hdr(dlq[0], headers.EventID) != "left-fails" {
		t.Errorf("dead letter %s class %s, want left-fails exhausted", hdr(dlq[0], headers.EventID), c)
	}
	eventually(t, 10*time.Second, "left-ok processed", func() bool {
		for _, r := range e.readAll(e.plan.Names.Dedup) {
			if string(r.Key) == "left-ok" {
				return true
			}
		}
		return false
	})
	eventually(t, 10*time.Second, "the foreign record skipped", func() bool {
		return strings.Contains(logs.String(), "is not a retry of this pipeline")
	})
	mu.Lock()
	defer mu.Unlock()
	if _, ok := at["foreign"]; ok {
		t.Error("a record that is not a retry of this pipeline reached the handler")
	}
	for id, tm := range at {
		if tm.Before(due) {
			t.Errorf("%s handled %s before its due time", id, due.Sub(tm))
		}
	}
	if !strings.Contains(logs.String(), "retry tier beyond the configured ones") || !strings.Contains(logs.String(), old.Names.Retry(2)) {
		t.Errorf("no warning naming %s:\n%s", old.Names.Retry(2), logs.String())
	}
	if n := len(e.readAll(old.Names.Retry(2))); n != 3 {
		t.Errorf("%d records in retry-2; nothing may be written there", n)
	}
}

// Until the member is in its group (its first assignment), Ready says it is
// joining: a rollout gated on /readyz must not move on while it waits, for
// instance for a crashed member's session to time out.
func TestReadyWaitsForTheFirstAssignment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, 100*time.Millisecond)
	release := make(chan struct{})
	var held atomic.Bool
	e.cluster.ControlKey(int16(kmsg.JoinGroup), func(kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		if held.CompareAndSwap(false, true) {
			e.cluster.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	c, _ := e.start(Config{Handler: HandlerFunc(func(context.Context, Event) error { return nil })})
	eventually(t, 10*time.Second, "the consumer to send its JoinGroup", held.Load)
	time.Sleep(100 * time.Millisecond)
	if ok, why := c.Ready(); ok || !strings.Contains(why, "joining the consumer group") {
		t.Errorf("before the first assignment: Ready() = %v, %q", ok, why)
	}
	close(release)
	eventually(t, 10*time.Second, "ready after the assignment", func() bool { ok, _ := c.Ready(); return ok })
}

// A static member that stops keeps its partitions in the group: its log says
// so instead of "partitions revoked", which reads as if others took them.
func TestStaticMemberStopSaysItKeepsItsPartitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, 100*time.Millisecond)
	var logs syncbuf.Buffer
	c, stop := e.start(Config{Group: "gs", InstanceID: "pod-1", Handler: HandlerFunc(func(context.Context, Event) error { return nil }),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	eventually(t, 10*time.Second, "ready", func() bool { ok, _ := c.Ready(); return ok })
	stop()
	if out := logs.String(); !strings.Contains(out, "partitions released while stopping; as a static member (--instance-id)") ||
		!strings.Contains(out, "instance_id=pod-1") || strings.Contains(out, `msg="partitions revoked"`) {
		t.Errorf("static member's stop:\n%s", out)
	}
}

// The consumer's last line says whether its final offset commit went
// through: after a broker outage it may not, and "offsets committed" would
// then be a claim the restart contradicts (it hands the events out again).
func TestFinalCommitOutcomeIsLogged(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"committed", "commit refused", "membership lost"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 1, time.Second)
			logs := &syncbuf.Buffer{}
			c, stop := e.start(Config{
				Handler:        HandlerFunc(func(context.Context, Event) error { return nil }),
				Group:          "gfinal",
				CommitInterval: time.Hour, // only the final commit
				SessionTimeout: 6 * time.Second,
				Logger:         slog.New(slog.NewTextHandler(logs, nil)),
			})
			e.produce(event("c", "final1", 0))
			eventually(t, 10*time.Second, "the event processed", func() bool {
				return c.eventsCount(e.plan.Names.Base, OutcomeProcessed) == 1
			})
			want := "consumer stopped; offsets committed"
			switch tc {
			case "commit refused":
				want = "the final offset commit failed"
				e.cluster.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
					e.cluster.KeepControl()
					r := req.(*kmsg.OffsetCommitRequest)
					resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
					for _, t := range r.Topics {
						rt := kmsg.NewOffsetCommitResponseTopic()
						rt.Topic = t.Topic
						for _, p := range t.Partitions {
							rp := kmsg.NewOffsetCommitResponseTopicPartition()
							rp.Partition, rp.ErrorCode = p.Partition, kerr.OffsetMetadataTooLarge.Code
							rt.Partitions = append(rt.Partitions, rp)
						}
						resp.Topics = append(resp.Topics, rt)
					}
					return resp, nil, true
				})
			case "membership lost":
				// The coordinator forgets the member, and will not
				// take it back: its partitions are lost, and what
				// it finished since its last commit stays uncommitted.
				want = "stopped while its group membership was lost"
				e.cluster.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
					e.cluster.KeepControl()
					resp := req.(*kmsg.HeartbeatRequest).ResponseKind().(*kmsg.HeartbeatResponse)
					resp.ErrorCode = kerr.UnknownMemberID.Code
					return resp, nil, true
				})
				e.cluster.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
					e.cluster.KeepControl()
					resp := req.(*kmsg.JoinGroupRequest).ResponseKind().(*kmsg.JoinGroupResponse)
					resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
					return resp, nil, true
				})
				eventually(t, 15*time.Second, "the partitions lost", func() bool { return strings.Contains(logs.String(), "partitions lost") })
			}
			stop()
			out := logs.String()
			if !strings.Contains(out, want) || (want != "consumer stopped; offsets committed" && strings.Contains(out, "offsets committed")) {
				t.Fatalf("%s: want %q as the consumer's last word, and no claim of committed offsets otherwise:\n%s", tc, want, out)
			}
		})
	}
}
