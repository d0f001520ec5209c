package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/internal/syncbuf"
	"github.com/hookline/hookline/topics"
)

func counterValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	return 0
}

// attemptLog records handler calls.
type attemptLog struct {
	mu    sync.Mutex
	calls []call
}

type call struct {
	ev  Event
	at  time.Time
	due string // hookline-due-at of the record handled
}

func (a *attemptLog) add(ev Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, call{ev: ev, at: time.Now(), due: headers.Value(ev.Headers, headers.DueAt)})
}

func (a *attemptLog) snapshot() []call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

func (a *attemptLog) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.calls)
}

func TestRetryTiersThenSuccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3, time.Second, 2*time.Second, 3*time.Second)
	var log attemptLog
	var ok atomic.Int32
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		log.add(ev)
		if ev.EventID == "flaky" && ev.Attempt < 2 {
			return fmt.Errorf("downstream said no (attempt %d)", ev.Attempt)
		}
		ok.Add(1)
		return nil
	})
	recs := e.produce(event("conv-a", "flaky", 1), event("conv-b", "steady", 1))
	c, _ := e.start(Config{Handler: h})

	eventually(t, 20*time.Second, "both events processed", func() bool { return ok.Load() == 2 })
	time.Sleep(300 * time.Millisecond) // nothing more should happen

	var flaky []call
	for _, cl := range log.snapshot() {
		if cl.ev.EventID == "flaky" {
			flaky = append(flaky, cl)
		}
	}
	if len(flaky) != 3 {
		t.Fatalf("flaky handled %d times, want 3 (main, retry-1, retry-2)", len(flaky))
	}
	wantTopics := []string{e.plan.Names.Base, e.plan.Names.Retry(1), e.plan.Names.Retry(2)}
	for i, cl := range flaky {
		if cl.ev.Topic != wantTopics[i] || cl.ev.Attempt != i {
			t.Errorf("call %d: topic %s attempt %d, want %s attempt %d", i, cl.ev.Topic, cl.ev.Attempt, wantTopics[i], i)
		}
		if cl.ev.Partition != recs[0].Partition {
			t.Errorf("call %d: partition %d, want the main partition %d", i, cl.ev.Partition, recs[0].Partition)
		}
		if i == 0 {
			continue
		}
		due, err := headers.ParseTime(cl.due)
		if err != nil {
			t.Fatalf("call %d: due-at %q: %v", i, cl.due, err)
		}
		if cl.at.Before(due) {
			t.Errorf("call %d started at %s, before its due time %s", i, cl.at.Format(time.RFC3339Nano), cl.due)
		}
		if gap := cl.at.Sub(flaky[i-1].at); gap < e.plan.RetryDelays[i-1]-5*time.Millisecond {
			t.Errorf("call %d came %s after the previous one, want at least the delay %s", i, gap, e.plan.RetryDelays[i-1])
		}
	}

	for k := 1; k <= 2; k++ {
		rs := e.readAll(e.plan.Names.Retry(k))
		if len(rs) != 1 {
			t.Fatalf("retry-%d holds %d records, want 1", k, len(rs))
		}
		r := rs[0]
		if got := hdrInt(t, r, headers.Attempt); got != k {
			t.Errorf("retry-%d attempt = %d, want %d", k, got, k)
		}
		checkRetryHeaders(t, r, recs[0], c.group)
		if !strings.Contains(hdr(r, headers.Error), fmt.Sprintf("attempt %d", k-1)) {
			t.Errorf("retry-%d error header %q does not carry the handler's error", k, hdr(r, headers.Error))
		}
		if hdr(r, headers.ErrorClass) != headers.ClassRetryable {
			t.Errorf("retry-%d class %q", k, hdr(r, headers.ErrorClass))
		}
		due, err := headers.ParseTime(hdr(r, headers.DueAt))
		if err != nil {
			t.Fatalf("retry-%d due-at: %v", k, err)
		}
		failed, _ := headers.ParseTime(hdr(r, headers.FailedAt))
		if d := due.Sub(failed); d != e.plan.RetryDelays[k-1] {
			t.Errorf("retry-%d due-at - failed-at = %s, want %s", k, d, e.plan.RetryDelays[k-1])
		}
	}
	if rs := e.readAll(e.plan.Names.Retry(3)); len(rs) != 0 {
		t.Errorf("retry-3 holds %d records, want 0", len(rs))
	}
	if rs := e.readAll(e.plan.Names.DLQ); len(rs) != 0 {
		t.Errorf("DLQ holds %d records, want 0", len(rs))
	}
	if v := c.eventsCount(e.plan.Names.Base, OutcomeRetried); v != 1 {
		t.Errorf("retried on main = %v, want 1", v)
	}
	if v := c.eventsCount(e.plan.Names.Retry(2), OutcomeProcessed); v != 1 {
		t.Errorf("processed on retry-2 = %v, want 1", v)
	}
}

// checkRetryHeaders checks the headers every retry and DLQ record carries.
func checkRetryHeaders(t *testing.T, r, orig *kgo.Record, group string) {
	t.Helper()
	if r.Partition != orig.Partition {
		t.Errorf("%s: partition %d, want the main partition %d", r.Topic, r.Partition, orig.Partition)
	}
	if string(r.Key) != string(orig.Key) || string(r.Value) != string(orig.Value) {
		t.Errorf("%s: key/value changed", r.Topic)
	}
	for _, h := range orig.Headers {
		if hdr(r, h.Key) != string(h.Value) {
			t.Errorf("%s: original header %s = %q, want %q", r.Topic, h.Key, hdr(r, h.Key), h.Value)
		}
	}
	want := map[string]string{
		headers.OriginalTopic:     orig.Topic,
		headers.OriginalPartition: fmt.Sprint(orig.Partition),
		headers.OriginalOffset:    fmt.Sprint(orig.Offset),
		headers.OriginalTimestamp: headers.FormatTime(orig.Timestamp),
		headers.ConsumerGroup:     group,
	}
	for k, v := range want {
		if got := hdr(r, k); got != v {
			t.Errorf("%s: %s = %q, want %q", r.Topic, k, got, v)
		}
	}
	for _, k := range []string{headers.FirstFailedAt, headers.FailedAt} {
		if _, err := headers.ParseTime(hdr(r, k)); err != nil {
			t.Errorf("%s: %s = %q: %v", r.Topic, k, hdr(r, k), err)
		}
	}
	if hdr(r, headers.Error) == "" {
		t.Errorf("%s: no error header", r.Topic)
	}
}

func TestAlwaysFailingIsExhausted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4, 100*time.Millisecond, 200*time.Millisecond, 300*time.Millisecond)
	var calls atomic.Int32
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		calls.Add(1)
		return errors.New(strings.Repeat("x", 3000)) // longer than the header limit
	})
	var recs []*kgo.Record
	for i := range 8 {
		recs = append(recs, event(fmt.Sprintf("conv-%d", i), fmt.Sprintf("ev-%d", i), 1))
	}
	e.produce(recs...)
	var logs syncbuf.Buffer
	c, _ := e.start(Config{Handler: h, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	eventually(t, 20*time.Second, "all events dead-lettered", func() bool {
		return c.eventsCount(e.plan.Names.Retry(3), OutcomeDeadLettered) == 8
	})
	// A failing handler is visible in the log (rate-limited) before the
	// first dead letter: once per tier, with the event and the cut error.
	for k := 1; k <= 3; k++ {
		from := e.plan.Names.Base
		if k > 1 {
			from = e.plan.Names.Retry(k - 1)
		}
		found := false
		for _, line := range strings.Split(logs.String(), "\n") {
			found = found || strings.Contains(line, `msg="handler failed; event sent to a retry tier"`) &&
				strings.Contains(line, " topic="+from+" ") && strings.Contains(line, " event_id=ev-")
		}
		if !found {
			t.Errorf("log lacks a retry line from %s:\n%.2000s", from, logs.String())
		}
	}
	// Which partitions this member owns is in the log, once per rebalance.
	assignedLine := false
	for _, line := range strings.Split(logs.String(), "\n") {
		assignedLine = assignedLine || strings.Contains(line, `msg="partitions assigned"`) && strings.Contains(line, `owned="[0 1 2 3]"`)
	}
	if !assignedLine {
		t.Errorf("log lacks the assigned partitions:\n%.1500s", logs.String())
	}
	if !strings.Contains(logs.String(), "event dead-lettered") || strings.Contains(logs.String(), strings.Repeat("x", headers.MaxErrorLen+1)) {
		t.Errorf("log lacks the dead letter, or carries the handler's error uncut")
	}
	// What to run next names this pipeline and these brokers, so that it
	// works as it is, also against `hookline run`'s embedded broker.
	if want := "`hookline dlq ls --base " + e.plan.Names.Base + " --brokers " + strings.Join(e.kafka.Brokers, ",") + "`"; !strings.Contains(logs.String(), want) {
		t.Errorf("dead-letter line lacks %s:\n%.1500s", want, logs.String())
	}
	if strings.Contains(logs.String(), "same TLS and SASL settings") {
		t.Errorf("a plaintext pipeline's dead-letter line asks for TLS and SASL settings")
	}
	// Against a secured cluster the commands need the same settings.
	secured := e.kafka
	secured.TLS = true
	sc, err := New(Config{Kafka: secured, Plan: e.plan, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(sc.dlqNext, ", with the same TLS and SASL settings") {
		t.Errorf("TLS pipeline: dead-letter next %q", sc.dlqNext)
	}
	time.Sleep(200 * time.Millisecond)
	if n := calls.Load(); n != 8*4 {
		t.Errorf("handler called %d times, want %d (main + 3 tiers per event)", n, 8*4)
	}
	byID := map[string]*kgo.Record{}
	for _, r := range recs {
		byID[hdr(r, headers.EventID)] = r
	}
	for k := 1; k <= 3; k++ {
		rs := e.readAll(e.plan.Names.Retry(k))
		if len(rs) != 8 {
			t.Errorf("retry-%d holds %d records, want 8", k, len(rs))
		}
		for _, r := range rs {
			checkRetryHeaders(t, r, byID[hdr(r, headers.EventID)], c.group)
		}
	}
	dlq := e.readAll(e.plan.Names.DLQ)
	if len(dlq) != 8 {
		t.Fatalf("DLQ holds %d records, want 8 (one per event)", len(dlq))
	}
	for _, r := range dlq {
		orig := byID[hdr(r, headers.EventID)]
		checkRetryHeaders(t, r, orig, c.group)
		if got := hdr(r, headers.ErrorClass); got != headers.ClassExhausted {
			t.Errorf("DLQ class %q, want exhausted", got)
		}
		if got := hdrInt(t, r, headers.Attempt); got != 4 {
			t.Errorf("DLQ attempt %d, want 4", got)
		}
		if _, ok := headers.Get(r.Headers, headers.DueAt); ok {
			t.Errorf("DLQ record carries a due-at header")
		}
		if n := len(hdr(r, headers.Error)); n != headers.MaxErrorLen {
			t.Errorf("error header is %d bytes, want it cut to %d", n, headers.MaxErrorLen)
		}
		first, _ := headers.ParseTime(hdr(r, headers.FirstFailedAt))
		last, _ := headers.ParseTime(hdr(r, headers.FailedAt))
		if !first.Before(last) {
			t.Errorf("first-failed-at %v is not before failed-at %v", first, last)
		}
	}
}

func TestPermanentGoesStraightToDLQ(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, 100*time.Millisecond)
	var calls atomic.Int32
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		calls.Add(1)
		return Permanent(errors.New("unknown conversation"))
	})
	recs := e.produce(event("conv-p", "perm-1", 1))
	c, _ := e.start(Config{Handler: h})
	eventually(t, 10*time.Second, "dead-lettered", func() bool {
		return c.eventsCount(e.plan.Names.Base, OutcomeDeadLettered) == 1
	})
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
	if rs := e.readAll(e.plan.Names.Retry(1)); len(rs) != 0 {
		t.Errorf("retry-1 holds %d records, want 0", len(rs))
	}
	dlq := e.readAll(e.plan.Names.DLQ)
	if len(dlq) != 1 {
		t.Fatalf("DLQ holds %d records, want 1", len(dlq))
	}
	checkRetryHeaders(t, dlq[0], recs[0], c.group)
	if got := hdr(dlq[0], headers.ErrorClass); got != headers.ClassPermanent {
		t.Errorf("class %q, want permanent", got)
	}
	if got := hdrInt(t, dlq[0], headers.Attempt); got != 1 {
		t.Errorf("attempt %d, want 1", got)
	}
	if !strings.Contains(hdr(dlq[0], headers.Error), "unknown conversation") {
		t.Errorf("error header %q", hdr(dlq[0], headers.Error))
	}
}

func TestPanicAndTimeoutAreRetryable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, 100*time.Millisecond)
	var mu sync.Mutex
	seen := map[string][]int{}
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		mu.Lock()
		seen[ev.EventID] = append(seen[ev.EventID], ev.Attempt)
		mu.Unlock()
		if ev.Attempt > 0 {
			return nil
		}
		switch ev.EventID {
		case "panics":
			panic("boom")
		case "slow":
			<-ctx.Done()
			return Permanent(ctx.Err()) // an overrun stays retryable
		case "ignores-ctx":
			time.Sleep(1500 * time.Millisecond)
			return nil
		}
		return nil
	})
	e.produce(event("c1", "panics", 1), event("c2", "slow", 1), event("c3", "ignores-ctx", 1))
	c, _ := e.start(Config{Handler: h, HandlerTimeout: 200 * time.Millisecond})
	eventually(t, 15*time.Second, "all retried and processed", func() bool {
		return c.eventsCount(e.plan.Names.Retry(1), OutcomeProcessed) == 3
	})
	rs := e.readAll(e.plan.Names.Retry(1))
	errs := map[string]string{}
	for _, r := range rs {
		errs[hdr(r, headers.EventID)] = hdr(r, headers.Error)
	}
	if !strings.Contains(errs["panics"], "panicked: boom") {
		t.Errorf("panic error header %q", errs["panics"])
	}
	if !strings.Contains(errs["slow"], "timed out") {
		t.Errorf("timeout error header %q", errs["slow"])
	}
	if !strings.Contains(errs["ignores-ctx"], "timed out") {
		t.Errorf("ignored-context error header %q", errs["ignores-ctx"])
	}
	if rs := e.readAll(e.plan.Names.DLQ); len(rs) != 0 {
		t.Errorf("DLQ holds %d records, want 0", len(rs))
	}
	// Every first attempt is in the handler's time, also the one given up
	// on while its handler slept: that is the time worth seeing.
	var m dto.Metric
	eventually(t, 5*time.Second, "three first attempts timed", func() bool {
		o, _ := c.m.latency.GetMetricWithLabelValues(e.plan.Names.Base)
		o.(prometheus.Metric).Write(&m)
		return m.GetHistogram().GetSampleCount() == 3
	})
	if s := m.GetHistogram().GetSampleSum(); s < 1.5 {
		t.Errorf("first attempts took %.2fs in all, want at least the 1.5s one handler slept", s)
	}
}

func TestPerKeyOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, 100*time.Millisecond)
	const convs, per = 50, 40
	var mu sync.Mutex
	got := map[string][]int{}
	running := map[string]bool{}
	var overlap atomic.Int32
	var total atomic.Int32
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		conv := string(ev.Key)
		mu.Lock()
		if running[conv] {
			overlap.Add(1)
		}
		running[conv] = true
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		var seq int
		fmt.Sscanf(ev.EventID, "%*[^#]#%d", &seq)
		mu.Lock()
		running[conv] = false
		got[conv] = append(got[conv], seq)
		mu.Unlock()
		total.Add(1)
		return nil
	})
	c, _ := e.start(Config{Handler: h})
	// Produce while the consumer runs, in a few batches.
	var recs []*kgo.Record
	for s := 0; s < per; s++ {
		for i := 0; i < convs; i++ {
			conv := fmt.Sprintf("conv-%02d", i)
			recs = append(recs, event(conv, fmt.Sprintf("%s#%d", conv, s), s))
		}
	}
	for i := 0; i < len(recs); i += 500 {
		e.produce(recs[i:min(i+500, len(recs))]...)
	}
	eventually(t, 40*time.Second, "all events handled", func() bool { return total.Load() == convs*per })
	if n := overlap.Load(); n != 0 {
		t.Errorf("%d times two events of one conversation ran at once", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for conv, seqs := range got {
		if len(seqs) != per {
			t.Errorf("%s handled %d events, want %d", conv, len(seqs), per)
		}
		if !slices.IsSorted(seqs) {
			t.Errorf("%s handled out of order: %v", conv, seqs)
		}
	}
	// Counted once the dedup record is acknowledged, shortly after the
	// handler returned.
	eventually(t, 10*time.Second, "every event counted processed", func() bool {
		return c.eventsCount(e.plan.Names.Base, OutcomeProcessed) == convs*per
	})
}

func TestConcurrencyWithSlowHandler(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, time.Second)
	var done atomic.Int32
	var cur, peak atomic.Int32
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Second)
		cur.Add(-1)
		done.Add(1)
		return nil
	})
	var recs []*kgo.Record
	for s := range 4 {
		for i := range 50 {
			recs = append(recs, event(fmt.Sprintf("c%d", i), fmt.Sprintf("c%d-%d", i, s), s))
		}
	}
	e.produce(recs...)
	start := time.Now()
	e.start(Config{Handler: h})
	eventually(t, 20*time.Second, "200 one-second events", func() bool { return done.Load() == 200 })
	t.Logf("200 events of 1 s over 50 conversations took %s, peak concurrency %d", time.Since(start).Round(10*time.Millisecond), peak.Load())
	if peak.Load() < 20 {
		t.Errorf("peak concurrency %d: different keys do not run concurrently", peak.Load())
	}
}

func TestTwoConsumersCoPartitioned(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, 200*time.Millisecond, 300*time.Millisecond)
	var mu sync.Mutex
	handled := map[string]int{}
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		time.Sleep(5 * time.Millisecond)
		if ev.Attempt == 0 && strings.HasSuffix(ev.EventID, "-r") {
			return errors.New("retry me")
		}
		mu.Lock()
		handled[ev.EventID]++
		mu.Unlock()
		return nil
	})
	a, stopA := e.start(Config{Handler: h, Group: "g2"})
	b, _ := e.start(Config{Handler: h, Group: "g2"})
	nTopics := len(e.plan.Names.Consumed())
	eventually(t, 20*time.Second, "both members assigned", func() bool {
		la, lb := a.ownedParts(), b.ownedParts()
		return len(la) > 0 && len(lb) > 0 && len(la)+len(lb) == 6 && len(a.laneKeys())+len(b.laneKeys()) == 6*nTopics
	})
	pa, pb := a.ownedParts(), b.ownedParts()
	for p := range pa {
		if pb[p] {
			t.Errorf("partition %d owned by both members", p)
		}
	}
	for _, c := range []*Consumer{a, b} {
		owned := c.ownedParts()
		keys := c.laneKeys()
		for p := range owned {
			for _, tn := range e.plan.Names.Consumed() {
				if !keys[tp{tn, p}] {
					t.Errorf("member owns partition %d but not %s[%d]: not co-partitioned", p, tn, p)
				}
			}
		}
	}

	var recs []*kgo.Record
	for i := range 300 {
		id := fmt.Sprintf("e%03d", i)
		if i%5 == 0 {
			id += "-r"
		}
		recs = append(recs, event(fmt.Sprintf("conv-%d", i%37), id, i))
	}
	e.produce(recs[:150]...)
	eventually(t, 10*time.Second, "some events handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) > 20
	})
	stopA()
	e.produce(recs[150:]...)
	eventually(t, 30*time.Second, "every event handled after the hand-over", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == len(recs)
	})
	if len(b.ownedParts()) != 6 {
		t.Errorf("remaining member owns %d partitions, want 6", len(b.ownedParts()))
	}
	if rs := e.readAll(e.plan.Names.DLQ); len(rs) != 0 {
		t.Errorf("DLQ holds %d records", len(rs))
	}
	mu.Lock()
	dups := 0
	for _, n := range handled {
		if n > 1 {
			dups++
		}
	}
	mu.Unlock()
	t.Logf("events handled more than once across the hand-over: %d of %d", dups, len(recs))
}

func (c *Consumer) laneKeys() map[tp]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[tp]bool{}
	for k := range c.lanes {
		out[k] = true
	}
	return out
}

func TestPartitionMismatchRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3, time.Second)
	// Recreate the setup with a retry topic of a different size.
	plan, err := topics.NewPlan(topics.Config{Base: "odd.events", Partitions: 3, RetryDelays: []time.Duration{time.Second, 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(e.client())
	ctx := context.Background()
	for _, name := range plan.Names.All() {
		n := int32(3)
		if name == plan.Names.Retry(2) {
			n = 5
		}
		if _, err := adm.CreateTopic(ctx, n, -1, nil, name); err != nil {
			t.Fatal(err)
		}
	}
	c, err := New(Config{Kafka: e.kafka, Plan: plan, Handler: HandlerFunc(func(context.Context, Event) error { return nil }), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = c.Run(rctx)
	if err == nil || !strings.Contains(err.Error(), "co-partitioned") || !strings.Contains(err.Error(), plan.Names.Retry(2)) {
		t.Fatalf("Run = %v, want a refusal naming the odd topic", err)
	}
	t.Logf("refusal: %v", err)

	// Missing topics are refused too.
	plan2, _ := topics.NewPlan(topics.Config{Base: "missing.events", Partitions: 3})
	c2, _ := New(Config{Kafka: e.kafka, Plan: plan2, Handler: HandlerFunc(func(context.Context, Event) error { return nil }), Logger: testLogger()})
	if err := c2.Run(rctx); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Run with missing topics = %v", err)
	}
}

func TestShutdownFinishesInFlightAndCommits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, time.Second)
	var started, finished atomic.Int32
	var mu sync.Mutex
	seen := map[string]int{}
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		started.Add(1)
		time.Sleep(500 * time.Millisecond)
		mu.Lock()
		seen[ev.EventID]++
		mu.Unlock()
		finished.Add(1)
		return nil
	})
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, event(fmt.Sprintf("c%d", i), fmt.Sprintf("s%d", i), 0))
	}
	e.produce(recs...)
	_, stop := e.start(Config{Handler: h, Group: "gs"})
	eventually(t, 10*time.Second, "handlers started", func() bool { return started.Load() == 10 })
	stop() // in-flight handlers finish within the grace
	if n := finished.Load(); n != 10 {
		t.Fatalf("%d handlers finished before Run returned, want 10", n)
	}
	// A new member of the same group must not see them again.
	e.start(Config{Handler: h, Group: "gs"})
	time.Sleep(2 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
		}
	}
}

func TestShutdownGraceAbandonsAndRedelivers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, time.Second)
	var calls atomic.Int32
	block := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		if calls.Add(1) == 1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-block:
			}
		}
		return nil
	})
	e.produce(event("c", "stuck", 0))
	c1, stop := e.start(Config{Handler: h, Group: "gg", ShutdownGrace: 300 * time.Millisecond})
	eventually(t, 10*time.Second, "handler started", func() bool { return calls.Load() == 1 })
	stop()
	close(block)
	if v := c1.eventsCount(e.plan.Names.Base, OutcomeRetried); v != 0 {
		t.Errorf("abandoned event was routed to retry")
	}
	c2, _ := e.start(Config{Handler: h, Group: "gg"})
	eventually(t, 10*time.Second, "redelivered", func() bool {
		return c2.eventsCount(e.plan.Names.Base, OutcomeProcessed) == 1
	})
}

func TestBalancerIsCoPartitionedAndDeterministic(t *testing.T) {
	t.Parallel()
	topicsMap := map[string]int32{"b": 5, "b.retry-1": 5, "b.retry-2": 5}
	for members := 1; members <= 7; members++ {
		ms := fakeMembers(members, []string{"b", "b.retry-1", "b.retry-2"})
		plan1 := balance(t, ms, topicsMap)
		plan2 := balance(t, slices.Clone(ms), topicsMap)
		if fmt.Sprint(plan1) != fmt.Sprint(plan2) {
			t.Fatalf("not deterministic:\n%v\n%v", plan1, plan2)
		}
		owner := map[int32]string{}
		count := 0
		for m, ts := range plan1 {
			for tn, ps := range ts {
				for _, p := range ps {
					count++
					if o, ok := owner[p]; ok && o != m {
						t.Errorf("%d members: partition %d of %s goes to %s, but %s owns it elsewhere", members, p, tn, m, o)
					}
					owner[p] = m
				}
			}
		}
		if count != 15 {
			t.Errorf("%d members: %d partitions assigned, want 15", members, count)
		}
	}
}

// A handler's RetryAfter longer than the next tier's delay moves the event
// to the first tier whose delay covers it (else the last), due after that
// tier's delay: every record of a tier waits the same, so none holds up the
// partition behind it.
func TestRetryAfterSkipsToATierThatCoversIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, 100*time.Millisecond, time.Second, 2*time.Second)
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		if ev.Attempt > 0 {
			return nil
		}
		switch ev.EventID {
		case "ev-short":
			return RetryAfter(errors.New("busy"), 50*time.Millisecond)
		case "ev-mid":
			return RetryAfter(errors.New("busy"), 800*time.Millisecond)
		case "ev-long":
			return RetryAfter(errors.New("busy"), time.Hour)
		}
		return nil
	})
	e.produce(event("conv-a", "ev-short", 1), event("conv-b", "ev-mid", 1), event("conv-c", "ev-long", 1))
	var logs syncbuf.Buffer
	c, _ := e.start(Config{Handler: h, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	eventually(t, 10*time.Second, "all three events retried", func() bool {
		return c.eventsCount(e.plan.Names.Base, OutcomeRetried) == 3
	})
	// Only the wait that was cut says so (its due_at is before the asked-for time).
	notes, longLines := 0, 0
	for _, l := range strings.Split(logs.String(), "\n") {
		noted := strings.Contains(l, "the service asked for 1h0m0s (Retry-After), longer than any retry delay from here on; the event waits 2s, the delay of retry-3")
		long := strings.Contains(l, "event_id=ev-long")
		if noted != long {
			t.Errorf("the cut Retry-After note is on the wrong line: %s", l)
		}
		if long {
			longLines++
		}
		if noted {
			notes++
		}
	}
	if notes != 1 || longLines != 1 {
		t.Errorf("%d notes, %d lines about ev-long; want 1 of each:\n%s", notes, longLines, logs.String())
	}
	want := map[string]struct {
		tier  int
		delay time.Duration
	}{"ev-short": {1, 100 * time.Millisecond}, "ev-mid": {2, time.Second}, "ev-long": {3, 2 * time.Second}}
	for id, w := range want {
		rs := recordsOf(e.readAll(e.plan.Names.Retry(w.tier)), id)
		if len(rs) != 1 {
			t.Errorf("%s: %d records in retry-%d, want 1", id, len(rs), w.tier)
			continue
		}
		failed, _ := headers.ParseTime(hdr(rs[0], headers.FailedAt))
		due, _ := headers.ParseTime(hdr(rs[0], headers.DueAt))
		if got := due.Sub(failed); got != w.delay {
			t.Errorf("%s: due %s after its failure, want %s", id, got, w.delay)
		}
	}
}

// recordsOf returns the records of rs with event id id.
func recordsOf(rs []*kgo.Record, id string) []*kgo.Record {
	var out []*kgo.Record
	for _, r := range rs {
		if hdr(r, headers.EventID) == id {
			out = append(out, r)
		}
	}
	return out
}

// A rebalance waits for a handler that runs longer than the old fixed 10 s
// grace (16 s here; the revoke starts within a heartbeat, 3 s) but within
// HandlerTimeout: the partition's next owner must not start the event while
// the first call still runs (guarantee 4), nor run it a second time.
func TestRebalanceWaitsForASlowHandler(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits out a 16 s handler")
	}
	e := newEnv(t, 2, time.Second)
	var calls, overlaps atomic.Int32
	var running sync.Map // event id -> *atomic.Int32
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		calls.Add(1)
		r, _ := running.LoadOrStore(ev.EventID, new(atomic.Int32))
		if r.(*atomic.Int32).Add(1) > 1 {
			overlaps.Add(1)
		}
		defer r.(*atomic.Int32).Add(-1)
		select {
		case <-time.After(16 * time.Second):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	e.produce(event("c0", "slow-0", 0), event("c1", "slow-1", 1))
	c1, _ := e.start(Config{Handler: h, Group: "gw"})
	eventually(t, 10*time.Second, "both handlers started", func() bool { return calls.Load() == 2 })
	c2, _ := e.start(Config{Handler: h, Group: "gw"}) // takes one partition
	eventually(t, 40*time.Second, "both events processed", func() bool {
		return c1.eventsCount(e.plan.Names.Base, OutcomeProcessed)+c2.eventsCount(e.plan.Names.Base, OutcomeProcessed) == 2
	})
	time.Sleep(time.Second) // a re-run would have started by now
	if n, o := calls.Load(), overlaps.Load(); n != 2 || o != 0 {
		t.Errorf("%d handler calls (%d overlapping another), want 2 and 0: the rebalance abandoned a running event", n, o)
	}
}

func TestShutdownGraceCoversTheHandlerTimeout(t *testing.T) {
	e := newEnv(t, 1)
	for _, ht := range []time.Duration{0, 2 * time.Second, 10 * time.Minute} {
		c, err := New(Config{Kafka: e.kafka, Plan: e.plan, Handler: HandlerFunc(func(context.Context, Event) error { return nil }), HandlerTimeout: ht})
		if err != nil {
			t.Fatal(err)
		}
		if g, min := c.cfg.ShutdownGrace, c.cfg.HandlerTimeout+c.cfg.HandlerTimeout/attemptGranules+handlerSlack; g <= min {
			t.Errorf("HandlerTimeout %s: default ShutdownGrace %s, want above %s", c.cfg.HandlerTimeout, g, min)
		}
	}
}

// Records written to a retry partition after it paused for a record not
// yet due count as waiting and as lag, though no fetch has seen them.
func TestWaitingCountsRecordsBehindAPausedPartition(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, time.Minute)
	retry := func(id string) *kgo.Record {
		r := event("c-"+id, id, 0)
		r.Topic = e.plan.Names.Retry(1)
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: headers.DueAt, Value: []byte(headers.FormatTime(time.Now().Add(time.Hour)))},
			kgo.RecordHeader{Key: headers.Attempt, Value: []byte("1")})
		return r
	}
	cl := e.client()
	write := func(ids ...string) {
		for _, id := range ids {
			if err := cl.ProduceSync(context.Background(), retry(id)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("r0")
	c, _ := e.start(Config{Handler: HandlerFunc(func(context.Context, Event) error { return nil })})
	gauge := func() (float64, float64) {
		return counterValue(c.m.waiting.WithLabelValues("1")), counterValue(c.m.lag.WithLabelValues(e.plan.Names.Retry(1)))
	}
	eventually(t, 15*time.Second, "the first retry record waiting", func() bool { w, _ := gauge(); return w == 1 })
	write("r1", "r2", "r3", "r4")
	eventually(t, 30*time.Second, "five waiting", func() bool { w, l := gauge(); return w == 5 && l == 5 })
}

// After a restart, partitions whose records were all handled before show
// no lag and nothing waiting, though their end offsets are far from 0.
func TestNoLagAfterARestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, time.Second)
	h := HandlerFunc(func(context.Context, Event) error { return nil })
	var recs []*kgo.Record
	for i := range 5 {
		recs = append(recs, event("c", fmt.Sprintf("done-%d", i), i))
	}
	e.produce(recs...)
	retry := event("c", "retried", 9)
	retry.Topic = e.plan.Names.Retry(1)
	if err := e.client().ProduceSync(context.Background(), retry).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c1, stop := e.start(Config{Handler: h, Group: "gr"})
	eventually(t, 15*time.Second, "all handled", func() bool {
		return c1.eventsCount(e.plan.Names.Base, OutcomeProcessed) == 5 && c1.eventsCount(e.plan.Names.Retry(1), OutcomeProcessed) == 1
	})
	stop()
	c2, _ := e.start(Config{Handler: h, Group: "gr"})
	eventually(t, 10*time.Second, "c2 ready", func() bool { ok, _ := c2.Ready(); return ok })
	time.Sleep(6 * time.Second) // one gauge refresh with end offsets, and one using them
	c2.updateGauges()
	lag := counterValue(c2.m.lag.WithLabelValues(e.plan.Names.Base)) + counterValue(c2.m.lag.WithLabelValues(e.plan.Names.Retry(1)))
	if w := counterValue(c2.m.waiting.WithLabelValues("1")); lag != 0 || w != 0 {
		t.Errorf("after a restart with nothing left: lag %v, retry waiting %v, want 0 and 0", lag, w)
	}
}

// TestNoRetryLagWhileMainHasABacklog: restarted with a backlog on the main
// topic, a consumer must not report the retry tiers' whole history as lag
// (a fetch that returned nothing there tells where it stands: at the end).
func TestNoRetryLagWhileMainHasABacklog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, time.Second)
	fail := map[string]bool{"r-0": true, "r-1": true, "r-2": true}
	var mu sync.Mutex
	h := HandlerFunc(func(context.Context, Event) error { return nil })
	first := HandlerFunc(func(_ context.Context, ev Event) error {
		mu.Lock()
		defer mu.Unlock()
		if fail[ev.EventID] {
			delete(fail, ev.EventID)
			return errors.New("once")
		}
		return nil
	})
	e.produce(event("c0", "r-0", 0), event("c1", "r-1", 0), event("c2", "r-2", 0))
	c1, stop := e.start(Config{Handler: first, Group: "gb"})
	eventually(t, 15*time.Second, "the retried events handled", func() bool {
		return c1.eventsCount(e.plan.Names.Retry(1), OutcomeProcessed) == 3
	})
	stop()
	var backlog []*kgo.Record
	for i := range 3000 {
		backlog = append(backlog, event(fmt.Sprintf("b%d", i%50), fmt.Sprintf("b-%d", i), i))
	}
	e.produce(backlog...)
	slow := HandlerFunc(func(ctx context.Context, _ Event) error {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
		return h.Handle(ctx, Event{})
	})
	c2, _ := e.start(Config{Handler: slow, Group: "gb", MaxInFlight: 4, ShutdownGrace: 300 * time.Millisecond})
	eventually(t, 10*time.Second, "c2 working on the backlog", func() bool { return c2.eventsCount(e.plan.Names.Base, OutcomeProcessed) > 10 })
	time.Sleep(6 * time.Second) // gauge refreshes, with end offsets
	c2.updateGauges()
	if lag, w := counterValue(c2.m.lag.WithLabelValues(e.plan.Names.Retry(1))), counterValue(c2.m.waiting.WithLabelValues("1")); lag != 0 || w != 0 {
		t.Errorf("retry-1 fully handled before the restart: lag %v, waiting %v; want 0 and 0", lag, w)
	}
	if lag := counterValue(c2.m.lag.WithLabelValues(e.plan.Names.Base)); lag == 0 {
		t.Error("the main topic's backlog shows no lag")
	}
}

// Dead letters in the last seconds before a shutdown are still counted in
// the log: Run's return summarises the repeats its rate limit held back.
func TestLastBurstIsSummarisedOnStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, 100*time.Millisecond)
	var buf syncbuf.Buffer
	h := HandlerFunc(func(context.Context, Event) error { return Permanent(errors.New("unknown conversation")) })
	for i := range 5 {
		e.produce(event("conv-b", fmt.Sprintf("burst-%d", i), i))
	}
	c, stop := e.start(Config{Handler: h, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	eventually(t, 10*time.Second, "5 dead letters", func() bool {
		return c.eventsCount(e.plan.Names.Base, OutcomeDeadLettered) == 5
	})
	stop() // well within the 10 s interval of the first line
	if got := strings.Count(buf.String(), "event dead-lettered"); got != 2 || !strings.Contains(buf.String(), "suppressed=3") {
		t.Fatalf("want the first dead letter's line and, on stop, the last one's with suppressed=3; got %d lines:\n%s", got, buf.String())
	}
	if !strings.Contains(buf.String(), "hookline replay --base "+e.plan.Names.Base+" --brokers "+strings.Join(e.kafka.Brokers, ",")+" --event-id") {
		t.Errorf("the dead-letter line does not say how to replay:\n%s", buf.String())
	}
}

// A group shared with another application (its members use another
// assignment protocol) can never be joined: Run stops with an error that
// says so, instead of retrying forever with "is Kafka reachable?".
func TestGroupOfAnotherApplicationIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	other := e.client(kgo.ConsumerGroup("shared"), kgo.ConsumeTopics(e.plan.Names.Base))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		other.PollFetches(ctx) // joins the group with franz-go's default protocols
	}()
	eventually(t, 10*time.Second, "the other application to join", func() bool {
		g, err := kadm.NewClient(other).DescribeGroups(context.Background(), "shared")
		return err == nil && len(g["shared"].Members) == 1
	})
	c, err := New(Config{Kafka: e.kafka, Plan: e.plan, Group: "shared", Logger: testLogger(),
		Handler: HandlerFunc(func(context.Context, Event) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = c.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "in use by another application") || !strings.Contains(err.Error(), "--group") {
		t.Fatalf("Run in a group of another application: %v, want an error naming the problem and the flag", err)
	}
}

// After a crash, the main record of an event that had failed and moved to
// retry-1 is redelivered (its offset was not committed), and its retry-1
// copy is due by the time the next owner gets the partition: the two
// copies must not run at once (two concurrent calls with one
// Idempotency-Key). The one started first runs alone; the other waits and
// is then skipped as a duplicate.
func TestCopiesOfOneEventNeverRunAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, time.Hour)
	// The state a crash leaves: both copies in partition 0, neither
	// committed, the retry copy due.
	main := event("conv-1", "dup-1", 0)
	main.Topic = e.plan.Names.Base
	retry := e.dueRetryCopy("conv-1", "dup-1")
	other := e.dueRetryCopy("conv-2", "other-1") // another event: not held back
	if err := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner())).ProduceSync(context.Background(), main, retry, other).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	active := map[string]int{}
	calls := map[string]int{}
	var overlaps atomic.Int32
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		mu.Lock()
		active[ev.EventID]++
		calls[ev.EventID]++
		if active[ev.EventID] > 1 {
			overlaps.Add(1)
		}
		mu.Unlock()
		defer func() {
			mu.Lock()
			active[ev.EventID]--
			mu.Unlock()
		}()
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
		}
		return nil
	})
	c, _ := e.start(Config{Handler: h})
	eventually(t, 15*time.Second, "both copies finished and the other event handled", func() bool {
		return c.eventsCount(e.plan.Names.Base, OutcomeProcessed)+c.eventsCount(e.plan.Names.Base, OutcomeDuplicate) == 1 &&
			c.eventsCount(e.plan.Names.Retry(1), OutcomeProcessed)+c.eventsCount(e.plan.Names.Retry(1), OutcomeDuplicate) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if n := overlaps.Load(); n > 0 {
		t.Errorf("two copies of one event ran at once (%d overlap(s)); want one at a time", n)
	}
	if calls["dup-1"] != 1 || calls["other-1"] != 1 {
		t.Errorf("handler calls %v; want dup-1 once (its second copy skipped as a duplicate) and other-1 once", calls)
	}
}

// A sender that retried a webhook answered 503 leaves several copies of
// one event on the main topic (common after a broker outage); they run one
// at a time, and a retry copy that comes due while the first of them runs
// must wait too, although the last of them has not started.
func TestRetryCopyWaitsForTheRunningOneOfSeveralMainCopies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, time.Hour)
	pin := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	a, b := event("conv-1", "dup-1", 0), event("conv-1", "dup-1", 0)
	a.Topic, b.Topic = e.plan.Names.Base, e.plan.Names.Base
	if err := pin.ProduceSync(context.Background(), a, b).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	active, calls := 0, 0
	var overlaps atomic.Int32
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		mu.Lock()
		active++
		calls++
		if active > 1 {
			overlaps.Add(1)
		}
		mu.Unlock()
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		mu.Lock()
		active--
		mu.Unlock()
		return nil
	})
	c, _ := e.start(Config{Handler: h})
	select {
	case <-started: // the first main copy runs; the second waits behind it
	case <-time.After(15 * time.Second):
		t.Fatal("the first main copy did not start")
	}
	r := e.dueRetryCopy("conv-1", "dup-1")
	if err := pin.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the retry copy fetched", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		l := c.lanes[tp{e.plan.Names.Retry(1), 0}]
		return l != nil && len(l.items) == 1
	})
	time.Sleep(300 * time.Millisecond) // time to start it, if it would
	close(release)
	eventually(t, 10*time.Second, "all three copies finished", func() bool {
		return c.eventsCount(e.plan.Names.Base, OutcomeProcessed)+c.eventsCount(e.plan.Names.Base, OutcomeDuplicate) == 2 &&
			c.eventsCount(e.plan.Names.Retry(1), OutcomeProcessed)+c.eventsCount(e.plan.Names.Retry(1), OutcomeDuplicate) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if n := overlaps.Load(); n > 0 || calls != 1 {
		t.Errorf("%d call(s), %d overlap(s); want one call (the other copies skipped as duplicates) and no overlap", calls, n)
	}
}

// A lane abandoned after a worker checked it but before the record's
// handled bookkeeping (a revoke past its grace, a lost session) must still
// count the record's dedup write down when its outcome comes: a leaked
// count held one MaxUnfinished slot for good and made every shutdown wait
// its whole grace for work that had ended.
func TestAbandonedLaneCountsItsDedupWriteDown(t *testing.T) {
	c, err := New(Config{Kafka: kafkaconf.Config{Brokers: []string{"127.0.0.1:1"}}, Plan: newEnvPlan(t),
		Handler: HandlerFunc(func(context.Context, Event) error { return nil }), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := &lane{tp: tp{"t.events", 0}, ctx: ctx, cancel: cancel}
	it := &item{rec: &kgo.Record{Topic: "t.events", Key: []byte("k"), Value: []byte("{}")}, ev: Event{EventID: "ev-1"}, state: stateRunning}
	l.items = []*item{it}
	l.enqueue(it)
	l.inFlight, c.inFlight = 1, 1

	c.mu.Lock()
	l.abandoned = true // between process's ctx check and handled
	c.mu.Unlock()
	c.handled(l, it, time.Now()) // returns holding c.mu
	c.acked(l, it, context.Canceled, time.Now())
	acking, lacking := c.acking, l.acking
	c.mu.Unlock()
	if acking != 0 || lacking != 0 {
		t.Fatalf("after the dedup write's outcome: consumer acking %d, lane acking %d; want 0 and 0", acking, lacking)
	}
}

// newEnvPlan is a pipeline plan for tests that need no broker.
func newEnvPlan(t *testing.T) topics.Plan {
	t.Helper()
	plan, err := topics.NewPlan(topics.Config{Base: "t.events", Partitions: 1, DedupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// Records lost by the broker below what the consumer read are an error
// that says so and what to do, not a fetch "the client retries"; and the
// records written after the loss, which reuse the lost offsets, are
// handled, with the commit point back at them until they are.
func TestDataLossIsLoggedAndReusedOffsetsAreRead(t *testing.T) {
	logs := &syncbuf.Buffer{}
	c, err := New(Config{Kafka: kafkaconf.Config{Brokers: []string{"127.0.0.1:1"}}, Plan: newEnvPlan(t),
		Handler: HandlerFunc(func(context.Context, Event) error { return nil }), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Read and finished up to 1517; committed at 1518.
	l := &lane{tp: tp{"t.events", 1}, ctx: ctx, cancel: cancel,
		next: 1518, commitAt: 1518, epoch: 3}
	c.lanes[l.tp] = l

	loss := &kgo.ErrDataLoss{Topic: "t.events", Partition: 1, ConsumedTo: 1518, ConsumedToEpoch: 3, ResetTo: 1517, ResetToEpoch: 4}
	if fatal := c.fetchError("t.events", 1, loss); fatal != nil {
		t.Fatalf("data loss stops the consumer: %v", fatal)
	}
	out := logs.String()
	for _, w := range []string{"level=ERROR", "Kafka's log of a partition now ends before", "consumed_to=1518", "resumed_at=1517", "re-deliver"} {
		if !strings.Contains(out, w) {
			t.Errorf("log %q; want %q", out, w)
		}
	}
	if strings.Contains(out, "the client retries") {
		t.Errorf("data loss logged as a retried fetch: %s", out)
	}

	// The records written since: offsets 1517 and 1518 of the new log.
	rec := func(off int64, id string) *kgo.Record {
		return &kgo.Record{Topic: "t.events", Partition: 1, Offset: off, LeaderEpoch: 4, Key: []byte("k-" + id), Value: []byte("{}"),
			Headers: []kgo.RecordHeader{{Key: headers.EventID, Value: []byte(id)}}}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.commitAt != 1517 || !l.dirty {
		t.Errorf("commit point %d (dirty %v) after the loss; want 1517, to be committed", l.commitAt, l.dirty)
	}
	fp := kgo.FetchTopicPartition{Topic: "t.events", FetchPartition: kgo.FetchPartition{Partition: 1, Records: []*kgo.Record{rec(1517, "new-1"), rec(1518, "new-2")}}}
	c.add(fp, c.prepare(fp))
	if len(l.items) != 2 || l.items[0].rec.Offset != 1517 {
		t.Fatalf("lane holds %d records after the loss; want the 2 written since, from offset 1517", len(l.items))
	}
	l.advance()
	if l.commitAt != 1517 {
		t.Errorf("commit point %d with offset 1517 unfinished; want 1517", l.commitAt)
	}
}

// dueRetryCopy is the retry-1 record of event id in partition 0, due a
// second ago, as the consumer writes it after a first failed attempt.
func (e *env) dueRetryCopy(conv, id string) *kgo.Record {
	r := event(conv, id, 0)
	r.Topic = e.plan.Names.Retry(1)
	r.Headers = append(r.Headers,
		kgo.RecordHeader{Key: headers.OriginalTopic, Value: []byte(e.plan.Names.Base)},
		kgo.RecordHeader{Key: headers.Attempt, Value: []byte("1")},
		kgo.RecordHeader{Key: headers.DueAt, Value: []byte(headers.FormatTime(time.Now().Add(-time.Second)))})
	return r
}
