package integration

// Issue 4 (consumer) end to end against the test broker: retry tiers, the
// DLQ, per-key order, concurrency, a SIGKILLed process and a hand-over
// between two processes of one group.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/consumer"
	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/topics"
)

// everyRecordHeaders are on every record (DESIGN.md, Record format).
var everyRecordHeaders = []string{headers.EventID, headers.ReceiptID, headers.Source, headers.ReceivedAt, headers.ContentType, headers.ConversationID}

// failureHeaders are added on retry and DLQ records.
var failureHeaders = []string{headers.Attempt, headers.OriginalTopic, headers.OriginalPartition, headers.OriginalOffset,
	headers.OriginalTimestamp, headers.FirstFailedAt, headers.FailedAt, headers.Error, headers.ErrorClass, headers.ConsumerGroup}

// checkForwarded checks a retry or DLQ record r made from the main-topic
// record orig: same partition, key and value, the original headers kept, and
// the failure headers present and pointing at orig.
func checkForwarded(t *testing.T, r, orig *kgo.Record, group string, attempt int, class string) {
	t.Helper()
	where := fmt.Sprintf("%s[%d]@%d", r.Topic, r.Partition, r.Offset)
	if r.Partition != orig.Partition {
		t.Errorf("%s: partition %d, want the main partition %d", where, r.Partition, orig.Partition)
	}
	if !bytes.Equal(r.Key, orig.Key) || !bytes.Equal(r.Value, orig.Value) {
		t.Errorf("%s: key/value changed: %q/%q, want %q/%q", where, r.Key, r.Value, orig.Key, orig.Value)
	}
	for _, h := range orig.Headers {
		if got := recHeader(r, h.Key); got != string(h.Value) {
			t.Errorf("%s: original header %s = %q, want %q", where, h.Key, got, h.Value)
		}
	}
	for _, k := range append(slices.Clone(everyRecordHeaders), failureHeaders...) {
		if _, ok := headers.Get(r.Headers, k); !ok || recHeader(r, k) == "" {
			t.Errorf("%s: header %s missing or empty", where, k)
		}
	}
	want := map[string]string{
		headers.Attempt:           fmt.Sprint(attempt),
		headers.OriginalTopic:     orig.Topic,
		headers.OriginalPartition: fmt.Sprint(orig.Partition),
		headers.OriginalOffset:    fmt.Sprint(orig.Offset),
		headers.OriginalTimestamp: headers.FormatTime(orig.Timestamp),
		headers.ErrorClass:        class,
		headers.ConsumerGroup:     group,
	}
	for k, v := range want {
		if got := recHeader(r, k); got != v {
			t.Errorf("%s: %s = %q, want %q", where, k, got, v)
		}
	}
	first, err1 := headers.ParseTime(recHeader(r, headers.FirstFailedAt))
	failed, err2 := headers.ParseTime(recHeader(r, headers.FailedAt))
	if err1 != nil || err2 != nil {
		t.Errorf("%s: first-failed-at %q / failed-at %q do not parse: %v %v", where, recHeader(r, headers.FirstFailedAt), recHeader(r, headers.FailedAt), err1, err2)
	} else if failed.Before(first) {
		t.Errorf("%s: failed-at %s before first-failed-at %s", where, failed, first)
	}
}

// recordsWithID returns the records of topic carrying event id id.
func recordsWithID(t *testing.T, topic, id string) []*kgo.Record {
	t.Helper()
	return byEventID(readAll(t, topic))[id]
}

func TestConsumeRetryTiersThenSuccess(t *testing.T) {
	base := uniqueBase(t)
	delays := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	plan := createPipeline(t, pipelineConfig(base, 2, delays, 0))
	group := base + ".g"
	sk := newSink(t, sinkOptions{Status: func(id string, n int) int {
		if id == "flaky" && n < 2 {
			return 503
		}
		return 0
	}})
	recs := produceEvents(t, base, []testEvent{{Conv: "conv-flaky", ID: "flaky"}, {Conv: "conv-steady", ID: "steady"}})
	orig := recs[0]

	startConsume(t, "--handler-url", sk.URL+"/process", "--base", base, "--partitions", "2",
		"--retry-delays", "1s,2s,3s", "--group", group)
	waitFor(t, 40*time.Second, "flaky and steady handled successfully", func() (bool, string) {
		ok := sk.okIDs()
		return ok["flaky"] >= 1 && ok["steady"] >= 1, "\n" + sk.describe(20)
	})
	waitCaughtUp(t, group, plan.Names.Retry(2), 15*time.Second)
	waitCaughtUp(t, group, base, 15*time.Second)
	time.Sleep(500 * time.Millisecond) // room for a wrong extra attempt

	calls := sk.byID()
	if c := calls["steady"]; len(c) != 1 || !c[0].ok() || c[0].Attempt != 0 {
		t.Errorf("steady: %d call(s) %+v, want one successful first attempt", len(c), c)
	}
	flaky := calls["flaky"]
	if len(flaky) != 3 {
		t.Fatalf("flaky reached the handler %d time(s), want 3 (main, retry-1, retry-2):\n%s", len(flaky), sk.describe(20))
	}
	wantStatus := []int{503, 503, 200}
	for i, c := range flaky {
		if c.Attempt != i || c.Status != wantStatus[i] {
			t.Errorf("flaky call %d: X-Hookline-Attempt %d status %d, want %d and %d", i, c.Attempt, c.Status, i, wantStatus[i])
		}
		if c.IdempotencyKey != "flaky" || c.EventID != "flaky" || c.Receipt != "rcpt-flaky" || c.Source != "genesys" ||
			c.ConversationID != "conv-flaky" || c.ContentType != "application/json" || !bytes.Equal(c.Body, orig.Value) {
			t.Errorf("flaky call %d: forwarded request %+v does not carry the event's body and ids", i, c)
		}
	}

	for k := 1; k <= 2; k++ {
		rs := readAll(t, plan.Names.Retry(k))
		if len(rs) != 1 {
			t.Fatalf("%s holds %d records, want 1", plan.Names.Retry(k), len(rs))
		}
		r := rs[0]
		checkForwarded(t, r, orig, group, k, headers.ClassRetryable)
		if e := recHeader(r, headers.Error); !strings.Contains(e, "status 503") {
			t.Errorf("retry-%d hookline-error %q does not say what the handler answered", k, e)
		}
		due, err := headers.ParseTime(recHeader(r, headers.DueAt))
		if err != nil {
			t.Fatalf("retry-%d hookline-due-at %q: %v", k, recHeader(r, headers.DueAt), err)
		}
		failed, _ := headers.ParseTime(recHeader(r, headers.FailedAt))
		if d := due.Sub(failed); d != delays[k-1] {
			t.Errorf("retry-%d: due-at − failed-at = %s, want the tier delay %s", k, d, delays[k-1])
		}
		// Delays are never early: the attempt from retry-k reached the
		// handler at or after the record's due time, and at least the
		// tier delay after the previous attempt started (due-at is cut to
		// milliseconds, hence 1 ms).
		c := flaky[k]
		if c.Start.Before(due) {
			t.Errorf("attempt %d reached the handler at %s, before its hookline-due-at %s", k,
				c.Start.UTC().Format(headers.TimeLayout), recHeader(r, headers.DueAt))
		}
		if gap := c.Start.Sub(flaky[k-1].Start); gap < delays[k-1]-time.Millisecond {
			t.Errorf("attempt %d started %s after attempt %d, want at least %s", k, gap, k-1, delays[k-1])
		}
		t.Logf("attempt %d: due %s, reached the handler %s later", k, recHeader(r, headers.DueAt), c.Start.Sub(due))
	}
	if k1, k2 := readAll(t, plan.Names.Retry(1))[0], readAll(t, plan.Names.Retry(2))[0]; recHeader(k1, headers.FirstFailedAt) != recHeader(k2, headers.FirstFailedAt) {
		t.Errorf("first-failed-at changed between hops: %s vs %s", recHeader(k1, headers.FirstFailedAt), recHeader(k2, headers.FirstFailedAt))
	}
	if n := endOffsets(t, plan.Names.Retry(3)); n != 0 {
		t.Errorf("%s holds %d records, want 0", plan.Names.Retry(3), n)
	}
	if n := endOffsets(t, plan.Names.DLQ); n != 0 {
		t.Errorf("%s holds %d records, want 0", plan.Names.DLQ, n)
	}
	// Processed once: one dedup record, in the event's main partition.
	if ds := recordsWithID(t, plan.Names.Dedup, "flaky"); len(ds) != 1 || ds[0].Partition != orig.Partition ||
		!strings.Contains(string(ds[0].Value), `"outcome":"processed"`) {
		t.Errorf("dedup records for flaky: %v, want one processed record in partition %d", describeRecords(ds), orig.Partition)
	}
}

func describeRecords(rs []*kgo.Record) string {
	var b strings.Builder
	for _, r := range rs {
		v := fmt.Sprintf("%q", r.Value)
		if r.Value == nil {
			v = "<nil: tombstone>"
		}
		fmt.Fprintf(&b, "\n  %s[%d]@%d key=%q value=%s", r.Topic, r.Partition, r.Offset, r.Key, v)
	}
	return b.String()
}

func TestConsumeDeadLetters(t *testing.T) {
	base := uniqueBase(t)
	delays := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 600 * time.Millisecond}
	plan := createPipeline(t, pipelineConfig(base, 3, delays, 0))
	group := base + ".g"
	sk := newSink(t, sinkOptions{Status: func(id string, n int) int {
		switch id {
		case "always":
			return 503
		case "rejected":
			return 400
		}
		return 0
	}})
	recs := produceEvents(t, base, []testEvent{
		{Conv: "conv-always", ID: "always"}, {Conv: "conv-rejected", ID: "rejected"}, {Conv: "conv-fine", ID: "fine"},
	})
	startConsume(t, "--handler-url", sk.URL+"/process", "--base", base, "--partitions", "3",
		"--retry-delays", delaysFlag(delays), "--group", group)

	waitFor(t, 40*time.Second, "two dead letters and fine handled", func() (bool, string) {
		n := endOffsets(t, plan.Names.DLQ)
		return n >= 2 && sk.okIDs()["fine"] >= 1, fmt.Sprintf("%d DLQ record(s); sink:\n%s", n, sk.describe(20))
	})
	for _, topic := range plan.Names.Consumed() {
		waitCaughtUp(t, group, topic, 15*time.Second)
	}
	time.Sleep(500 * time.Millisecond)

	dlq := byEventID(readAll(t, plan.Names.DLQ))
	if len(dlq) != 2 || len(dlq["always"]) != 1 || len(dlq["rejected"]) != 1 {
		t.Fatalf("DLQ by event id: %v, want exactly one record for always and one for rejected", dlq)
	}
	calls := sk.byID()

	// Always failing: main + 3 retry hops = 4 attempts, then exhausted.
	always := calls["always"]
	if len(always) != 4 {
		t.Errorf("always reached the handler %d time(s), want 4 (main and 3 retry tiers)", len(always))
	}
	for i, c := range always {
		if c.Attempt != i || c.Status != 503 {
			t.Errorf("always call %d: attempt %d status %d", i, c.Attempt, c.Status)
		}
	}
	for k := 1; k <= 3; k++ {
		if rs := recordsWithID(t, plan.Names.Retry(k), "always"); len(rs) != 1 || recHeader(rs[0], headers.Attempt) != fmt.Sprint(k) {
			t.Errorf("%s records for always: %d, want one with attempt %d", plan.Names.Retry(k), len(rs), k)
		}
	}
	// hookline-attempt counts failed attempts so far: main + 3 tiers = 4.
	d := dlq["always"][0]
	checkForwarded(t, d, recs[0], group, 4, headers.ClassExhausted)
	if _, ok := headers.Get(d.Headers, headers.DueAt); ok {
		t.Errorf("exhausted DLQ record carries hookline-due-at %q", recHeader(d, headers.DueAt))
	}
	if !strings.Contains(recHeader(d, headers.Error), "status 503") {
		t.Errorf("exhausted DLQ record: hookline-error %q", recHeader(d, headers.Error))
	}
	if r1 := recordsWithID(t, plan.Names.Retry(1), "always"); len(r1) == 1 && recHeader(r1[0], headers.FirstFailedAt) != recHeader(d, headers.FirstFailedAt) {
		t.Errorf("first-failed-at of the DLQ record %s, want the first failure's %s", recHeader(d, headers.FirstFailedAt), recHeader(r1[0], headers.FirstFailedAt))
	}

	// Permanent (400): straight from main to the DLQ.
	if c := calls["rejected"]; len(c) != 1 || c[0].Status != 400 || c[0].Attempt != 0 {
		t.Errorf("rejected: calls %+v, want exactly one answered 400", c)
	}
	p := dlq["rejected"][0]
	checkForwarded(t, p, recs[1], group, 1, headers.ClassPermanent)
	if !strings.Contains(recHeader(p, headers.Error), "status 400") {
		t.Errorf("permanent DLQ record: hookline-error %q", recHeader(p, headers.Error))
	}
	for k := 1; k <= 3; k++ {
		if rs := recordsWithID(t, plan.Names.Retry(k), "rejected"); len(rs) != 0 {
			t.Errorf("%s holds %d record(s) for the permanently failed event, want none", plan.Names.Retry(k), len(rs))
		}
	}

	// Both end dead-lettered in the dedup topic; fine was processed once.
	dd := byEventID(readAll(t, plan.Names.Dedup))
	for i, id := range []string{"always", "rejected"} {
		if rs := dd[id]; len(rs) != 1 || rs[0].Partition != recs[i].Partition || !strings.Contains(string(rs[0].Value), `"outcome":"dead-lettered"`) {
			t.Errorf("dedup records for %s: %s, want one dead-lettered record in partition %d", id, describeRecords(rs), recs[i].Partition)
		}
	}
	if c := calls["fine"]; len(c) != 1 {
		t.Errorf("fine reached the handler %d time(s), want 1", len(c))
	}
}

// logBuffer collects a package-level consumer's logs and prints them when
// the test fails.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	if len(s) > 16<<10 {
		s = "…" + s[len(s)-16<<10:]
	}
	return s
}

// runConsumer runs a consumer of the public package until the test ends.
// It returns when the consumer is ready (dedup state restored).
func runConsumer(t *testing.T, plan topics.Plan, group string, h consumer.Handler) *consumer.Consumer {
	t.Helper()
	logs := &logBuffer{}
	c, err := consumer.New(consumer.Config{
		Kafka:   broker.KafkaConfig(),
		Plan:    plan,
		Group:   group,
		Handler: h,
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("consumer Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("consumer Run did not return within 30s of cancel")
		}
		if t.Failed() {
			t.Logf("consumer log:\n%s", logs.String())
		}
	})
	return c
}

func httpSink(t *testing.T, url string) consumer.Handler {
	t.Helper()
	h, err := consumer.NewHTTPSink(consumer.HTTPSinkConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestConsumerPerKeyOrder(t *testing.T) {
	base := uniqueBase(t)
	plan := createPipeline(t, pipelineConfig(base, 6, []time.Duration{time.Second}, 0))
	evs := conversations("ord", 50, 40)
	recs := produceEvents(t, base, evs)
	offset := map[string]int64{} // event id → main offset
	for _, r := range recs {
		offset[recHeader(r, headers.EventID)] = r.Offset
	}
	sk := newSink(t, sinkOptions{Latency: func(*sinkCall) time.Duration {
		return time.Duration(rand.IntN(21)) * time.Millisecond
	}})
	start := time.Now()
	runConsumer(t, plan, base+".g", httpSink(t, sk.URL+"/process"))
	waitFor(t, 90*time.Second, "all 2000 events handled", func() (bool, string) {
		n := len(sk.okIDs())
		return n == len(evs), fmt.Sprintf("%d of %d handled", n, len(evs))
	})
	t.Logf("2000 events in 6 partitions handled in %s, peak %d in flight", time.Since(start).Round(time.Millisecond), sk.peakInFlight())
	time.Sleep(300 * time.Millisecond)

	if errs := sk.overlapErrors(); len(errs) > 0 {
		t.Errorf("%d overlapping handler calls of one conversation, e.g. %s", len(errs), errs[0])
	}
	if calls := sk.count(); calls != len(evs) {
		t.Errorf("handler called %d times for %d events, want each once", calls, len(evs))
	}
	perConv := map[string][]sinkCall{}
	for _, c := range sk.snapshot() {
		perConv[c.ConversationID] = append(perConv[c.ConversationID], c)
	}
	if len(perConv) != 50 {
		t.Fatalf("%d conversations reached the handler, want 50", len(perConv))
	}
	bad := 0
	for conv, cs := range perConv {
		for i, c := range cs {
			seq := bodySeq(t, c.Body)
			if seq != i || (i > 0 && offset[c.EventID] <= offset[cs[i-1].EventID]) {
				if bad++; bad <= 5 {
					t.Errorf("conversation %s: call %d was event %s (seq %d, offset %d), out of offset order", conv, i, c.EventID, seq, offset[c.EventID])
				}
			}
			if i > 0 && c.Start.Before(cs[i-1].End) {
				t.Errorf("conversation %s: event %s started before %s finished", conv, c.EventID, cs[i-1].EventID)
			}
		}
	}
	if sk.peakInFlight() < 2 {
		t.Errorf("peak %d handler call(s) in flight: the order was never put to the test", sk.peakInFlight())
	}
}

func TestConsumerConcurrency(t *testing.T) {
	base := uniqueBase(t)
	plan := createPipeline(t, pipelineConfig(base, 4, []time.Duration{time.Second}, 0))
	evs := conversations("conc", 50, 4)
	produceEvents(t, base, evs)
	sk := newSink(t, sinkOptions{Latency: func(*sinkCall) time.Duration { return time.Second }})

	start := time.Now()
	runConsumer(t, plan, base+".g", httpSink(t, sk.URL+"/process"))
	waitFor(t, 40*time.Second, "200 events handled", func() (bool, string) {
		n := len(sk.okIDs())
		return n == len(evs), fmt.Sprintf("%d of %d handled after %s", n, len(evs), time.Since(start).Round(time.Millisecond))
	})
	took := time.Since(start)
	var first, last time.Time
	for _, c := range sk.snapshot() {
		if first.IsZero() || c.Start.Before(first) {
			first = c.Start
		}
		if c.End.After(last) {
			last = c.End
		}
	}
	t.Logf("200 events × 1 s handler over 50 conversations: %s from start (%s from the first call), peak %d in flight",
		took.Round(time.Millisecond), last.Sub(first).Round(time.Millisecond), sk.peakInFlight())
	if took >= 20*time.Second {
		t.Errorf("took %s, want under 20 s: conversations are not handled concurrently", took)
	}
	if errs := sk.overlapErrors(); len(errs) > 0 {
		t.Errorf("%d overlapping handler calls of one conversation, e.g. %s", len(errs), errs[0])
	}
	if sk.peakInFlight() < 25 {
		t.Errorf("peak %d calls in flight, want most of the 50 conversations at once", sk.peakInFlight())
	}
	if n := sk.count(); n != len(evs) {
		t.Errorf("handler called %d times for %d events", n, len(evs))
	}
}

func TestConsumeKilledAndRestarted(t *testing.T) {
	base := uniqueBase(t)
	const parts, perPartition = 4, 2
	plan := createPipeline(t, pipelineConfig(base, parts, []time.Duration{time.Second, time.Second, time.Second}, 0))
	group := base + ".g"
	evs := conversations("kill", 30, 10) // 300 events
	permanent := map[string]bool{}
	for i, e := range evs {
		if i%15 == 7 {
			permanent[e.ID] = true
		}
	}
	sk := newSink(t, sinkOptions{
		Latency: func(*sinkCall) time.Duration { return 100 * time.Millisecond },
		Status: func(id string, _ int) int {
			if permanent[id] {
				return 400
			}
			return 0
		},
	})
	recs := produceEvents(t, base, evs)
	args := []string{"--handler-url", sk.URL + "/process", "--base", base, "--partitions", fmt.Sprint(parts),
		"--retry-delays", "1s,1s,1s", "--group", group,
		"--partition-concurrency", fmt.Sprint(perPartition), "--concurrency", fmt.Sprint(parts * perPartition),
		"--max-unfinished", fmt.Sprint(parts * perPartition)}
	// Handlers running plus handled events whose dedup record is not
	// acknowledged yet: the most a kill can make the next process re-run.
	const maxUnfinished = parts * perPartition

	first := startConsume(t, args...)
	// Kill mid-run, once offsets were committed and well before the end.
	waitFor(t, 60*time.Second, "a third of the events handled and committed", func() (bool, string) {
		n, c := sk.count(), sumOffsets(committed(t, group, base))
		return n >= 100 && c >= 50, fmt.Sprintf("%d handler calls, %d committed", n, c)
	})
	if err := first.signal(syscall.SIGKILL, 10*time.Second); err == nil {
		t.Fatal("hookline consume exited cleanly on SIGKILL?")
	}
	killedAt := time.Now()
	before := map[string]bool{}
	for _, c := range sk.snapshot() {
		before[c.EventID] = true
	}
	time.Sleep(300 * time.Millisecond) // a commit already on the wire lands
	atKill := committed(t, group, base)
	t.Logf("killed after %d handler calls; committed on %s: %v (total %d of %d)", len(before), base, atKill, sumOffsets(atKill), len(recs))
	if len(before) >= len(evs) {
		t.Fatal("every event was handled before the kill: the test did not kill mid-run")
	}

	evictGroupMembers(t, group)
	listen := freeAddr(t)
	second := startConsume(t, append(args, "--listen", listen)...)
	_ = second

	// Every event ends handled (2xx) or dead-lettered.
	waitFor(t, 90*time.Second, "every event handled or dead-lettered", func() (bool, string) {
		ok := sk.okIDs()
		missing := 0
		for _, e := range evs {
			if !permanent[e.ID] && ok[e.ID] == 0 {
				missing++
			}
		}
		dl := endOffsets(t, plan.Names.DLQ)
		return missing == 0 && dl >= int64(len(permanent)), fmt.Sprintf("%d not handled, %d DLQ records of %d", missing, dl, len(permanent))
	})
	waitCaughtUp(t, group, base, 20*time.Second)
	t.Logf("restart caught up %s after the kill", time.Since(killedAt).Round(time.Millisecond))

	dlq := byEventID(readAll(t, plan.Names.DLQ))
	for id := range permanent {
		if len(dlq[id]) == 0 {
			t.Errorf("permanently failing event %s is not in the DLQ", id)
		}
	}
	var dlqTotal int
	for id, rs := range dlq {
		if !permanent[id] {
			t.Errorf("event %s is in the DLQ but never failed permanently", id)
		}
		dlqTotal += len(rs)
	}

	// Resumed from the committed offsets: the restarted process read exactly
	// the records after them, and handled again only what was in flight.
	var after []sinkCall
	for _, c := range sk.snapshot() {
		if c.Start.After(killedAt) {
			after = append(after, c)
		}
	}
	var rehandled []string
	for _, c := range after {
		if before[c.EventID] {
			rehandled = append(rehandled, c.EventID)
		}
	}
	t.Logf("after restart: %d handler calls, %d of them for events the killed process had started: %v", len(after), len(rehandled), rehandled)
	if len(rehandled) > maxUnfinished {
		t.Errorf("%d events handled again after the restart, more than the %d (--max-unfinished) the killed process could have left unfinished", len(rehandled), maxUnfinished)
	}
	if dlqTotal > len(permanent)+maxUnfinished {
		t.Errorf("%d DLQ records for %d permanent failures", dlqTotal, len(permanent))
	}
	metrics := "http://" + listen + "/metrics"
	var read float64
	for _, o := range []string{consumer.OutcomeProcessed, consumer.OutcomeRetried, consumer.OutcomeDeadLettered, consumer.OutcomeDuplicate} {
		v, _ := metricValue(t, metrics, "hookline_consumer_events_total", "topic", base, "outcome", o)
		read += v
	}
	if want := float64(int64(len(recs)) - sumOffsets(atKill)); read != want {
		t.Errorf("the restarted process finished %v main-topic records, want %v (the %d records after the committed offsets %v)",
			read, want, int(want), atKill)
	}
	dups, _ := metricValue(t, metrics, "hookline_consumer_duplicates_total")
	t.Logf("restarted process: %v main-topic records read, %v skipped as duplicates", read, dups)
}

func TestConsumeTwoProcessesSplitAndHandOver(t *testing.T) {
	base := uniqueBase(t)
	const parts = 4
	plan := createPipeline(t, pipelineConfig(base, parts, []time.Duration{time.Second, time.Second, time.Second}, 0))
	group := base + ".g"
	sk := newSink(t, sinkOptions{Latency: func(c *sinkCall) time.Duration {
		if strings.HasPrefix(c.EventID, "b2-") {
			return 300 * time.Millisecond
		}
		return 20 * time.Millisecond
	}})
	args := func(name string) []string {
		return []string{"--handler-url", sk.URL + "/" + name, "--client-id", "it-" + name, "--base", base,
			"--partitions", fmt.Sprint(parts), "--retry-delays", "1s,1s,1s", "--group", group}
	}
	a := startConsume(t, args("a")...)
	startConsume(t, args("b")...)
	owned := waitGroup(t, group, base, 45*time.Second, "it-a", "it-b")
	t.Logf("partitions of %s: %v", base, owned)
	owner := map[int32]string{}
	for id, ps := range owned {
		for _, p := range ps {
			if prev, dup := owner[p]; dup {
				t.Fatalf("partition %d assigned to both %s and %s", p, prev, id)
			}
			owner[p] = strings.TrimPrefix(id, "it-")
		}
	}
	if len(owner) != parts {
		t.Fatalf("assigned partitions %v, want all %d split between the two", owned, parts)
	}
	// Co-partitioned: each member owns the same partition numbers of every
	// consumed topic.
	_, members := describeGroup(t, group)
	for _, m := range members {
		for _, topic := range plan.Names.Consumed() {
			if !slices.Equal(m.Parts[topic], m.Parts[base]) {
				t.Errorf("%s owns %v of %s but %v of %s", m.ClientID, m.Parts[topic], topic, m.Parts[base], base)
			}
		}
	}

	// Batch 1: each event is handled by its partition's owner.
	b1 := produceEvents(t, base, conversations("b1", 24, 5))
	waitFor(t, 30*time.Second, "batch 1 handled", func() (bool, string) {
		ok := sk.okIDs()
		n := 0
		for _, r := range b1 {
			if ok[recHeader(r, headers.EventID)] > 0 {
				n++
			}
		}
		return n == len(b1), fmt.Sprintf("%d of %d", n, len(b1))
	})
	partOf := map[string]int32{}
	for _, r := range b1 {
		partOf[recHeader(r, headers.EventID)] = r.Partition
	}
	paths := map[string]int{}
	for _, c := range sk.snapshot() {
		p := partOf[c.EventID]
		paths[c.Path]++
		if want := "/" + owner[p]; c.Path != want {
			t.Errorf("event %s of partition %d was handled by %s, want its owner %s", c.EventID, p, c.Path, want)
		}
	}
	if paths["/a"] == 0 || paths["/b"] == 0 {
		t.Errorf("handled per process: %v, want both to work", paths)
	}

	// Batch 2 (slow handler): SIGTERM a while it works on it; b takes over
	// a's partitions and every event is still handled.
	b2 := produceEvents(t, base, conversations("b2", 24, 5))
	waitFor(t, 30*time.Second, "a working on batch 2", func() (bool, string) {
		n := 0
		for _, c := range sk.snapshot() {
			if c.Path == "/a" && strings.HasPrefix(c.EventID, "b2-") {
				n++
			}
		}
		return n >= 5, fmt.Sprintf("%d batch-2 calls on a", n)
	})
	stopped := time.Now()
	if err := a.signal(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("hookline consume (a) on SIGTERM: %v", err)
	}
	t.Logf("a stopped in %s", time.Since(stopped).Round(time.Millisecond))
	b2ids := map[string]int32{}
	for _, r := range b2 {
		b2ids[recHeader(r, headers.EventID)] = r.Partition
	}
	waitFor(t, 60*time.Second, "batch 2 handled", func() (bool, string) {
		ok := sk.okIDs()
		n := 0
		for id := range b2ids {
			if ok[id] > 0 {
				n++
			}
		}
		return n == len(b2ids), fmt.Sprintf("%d of %d", n, len(b2ids))
	})
	if got := waitGroup(t, group, base, 30*time.Second, "it-b"); len(got["it-b"]) != parts {
		t.Errorf("after a left, b owns %v, want all %d partitions", got["it-b"], parts)
	}
	waitCaughtUp(t, group, base, 20*time.Second)

	takenOver := 0
	for _, c := range sk.snapshot() {
		p, ok := b2ids[c.EventID]
		if !ok {
			continue
		}
		// Graceful: a let every call it had started finish (none was cut
		// off, which would show as an unanswered request).
		if c.Path == "/a" && c.Status == 0 {
			t.Errorf("a abandoned %s (started %s after SIGTERM was sent) instead of finishing it", c.EventID, c.Start.Sub(stopped))
		}
		if owner[p] == "a" && c.Path == "/b" {
			takenOver++
		}
	}
	if takenOver == 0 {
		t.Errorf("b handled none of the batch-2 events of a's partitions")
	}
	t.Logf("b handled %d batch-2 events of a's former partitions", takenOver)
	// Nothing lost, nothing handled twice (a finished its in-flight events
	// and committed before leaving; dedup covers the rest).
	ok := sk.okIDs()
	for _, r := range append(b1, b2...) {
		id := recHeader(r, headers.EventID)
		if ok[id] != 1 {
			t.Errorf("event %s handled successfully %d times, want 1", id, ok[id])
		}
	}
	if errs := sk.overlapErrors(); len(errs) > 0 {
		t.Errorf("%d overlapping calls of one conversation, e.g. %s", len(errs), errs[0])
	}
}
