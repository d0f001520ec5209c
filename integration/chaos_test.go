package integration

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/loadtest"
	"github.com/hookline/hookline/internal/recsink"
	"github.com/hookline/hookline/topics"
)

// chaosBrokerPort is the chaos test's private Kafka (controller on +1), apart
// from ownBroker's default so the two can run at the same time.
const chaosBrokerPort = 19492

// chaosPlan is what one variant of TestChaos does.
type chaosPlan struct {
	events        int
	conversations int // open at once in the simulator
	kills         int // consumer SIGKILL + restart
	brokerRestart bool
	partitions    int
	// consumer bound of --concurrency and --max-unfinished: what one crash
	// may leave handled but not yet recorded in the dedup topic (records
	// running, or handled and waiting for their dedup record's ack).
	inFlight int
}

// TestChaos drives events from the Genesys/EventBridge simulator through
// `hookline serve` → Kafka → `hookline consume` → a recording sink that
// fails 20 % of attempts transiently and 1 % of events permanently, while the
// consumer is SIGKILLed and restarted and (on a real broker) the broker is
// restarted; then it accounts for every acknowledged event.
//
// On a real broker (KAFKA_BROKERS) it runs the full variant on a private
// Apache Kafka it can stop (20,000 events, two consumer kills, one broker
// restart); on kfake a reduced one (3,000 events, consumer kills only).
func TestChaos(t *testing.T) {
	plan := chaosPlan{events: 20000, conversations: 1000, kills: 2, brokerRestart: true, partitions: 6, inFlight: 64}
	var seeds string
	var ctl func(string)
	_, noJava := exec.LookPath("java")
	if broker.Real() && noJava == nil {
		seeds, ctl = ownBroker(t, chaosBrokerPort)
		t.Logf("chaos: full variant on a private Apache Kafka at %s", seeds)
	} else {
		plan = chaosPlan{events: 3000, conversations: 200, kills: 2, partitions: 4, inFlight: 64}
		seeds = strings.Join(broker.Seeds, ",")
		why := "on kfake; set KAFKA_BROKERS for the full one"
		if broker.Real() {
			why = "on the shared broker: no java to run a private Kafka that can be restarted"
		}
		t.Logf("chaos: REDUCED variant (%d events, consumer kills only, no broker restart) %s", plan.events, why)
	}
	start := time.Now()

	// The package's binary is built with -race, several times slower; the
	// throughput this test needs comes from a plain build of the same code.
	bin := filepath.Join(t.TempDir(), "hookline")
	build := exec.Command("go", "build", "-o", bin, "../cmd/hookline")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build hookline without -race: %v", err)
	}
	t.Logf("chaos: built a non-race hookline in %s", time.Since(start).Round(time.Millisecond))

	// The team's handler: 0–5 ms, 20 % of attempts fail with 503, 1 % of
	// events with 422, deterministic per event id and attempt.
	sink, err := recsink.New(recsink.Config{
		LatencyMax: 5 * time.Millisecond, TransientRate: 0.20, PermanentRate: 0.01, KeepRequests: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	sinkSrv := httptest.NewServer(sink)
	defer sinkSrv.Close()

	base := uniqueBase(t)
	group := "hookline-" + base
	// Short retry tiers keep the run short.
	tp, err := topics.NewPlan(topics.Config{Base: base, Partitions: int32(plan.partitions),
		RetryDelays: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	names := tp.Names
	if ctl == nil {
		// On the shared broker: remove the topics `hookline serve` creates.
		t.Cleanup(func() { deleteTopics(names.All()...) })
	}
	delays := "1s,2s,3s"
	env := []string{"HOOKLINE_BROKERS=" + seeds, "HOOKLINE_SECRET=" + itSecret, "HOOKLINE_LOG_LEVEL=warn"}
	pipeline := []string{"--base", base, "--partitions", fmt.Sprint(plan.partitions), "--retry-delays", delays}

	rcv := startBinary(t, bin, env, append([]string{"serve", "--listen", "127.0.0.1:0"}, pipeline...)...)
	url := "http://" + rcv.waitOutput(`receiver listening on (\S+)`, 90*time.Second) + "/webhooks/genesys"
	consumeArgs := append([]string{"consume", "--handler-url", sinkSrv.URL + "/process",
		"--concurrency", fmt.Sprint(plan.inFlight), "--max-unfinished", fmt.Sprint(plan.inFlight),
		"--partition-concurrency", "16"}, pipeline...)
	var consumers []*process
	startConsumer := func() *process {
		p := startBinary(t, bin, env, consumeArgs...)
		p.waitOutput(`consuming 1 pipeline`, 90*time.Second)
		consumers = append(consumers, p)
		return p
	}
	cons := startConsumer()

	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(seeds, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// The sender: Genesys through EventBridge, with short backoff so the
	// broker outage costs seconds, not minutes.
	var acked atomic.Int64
	ltCfg := loadtest.Config{
		URL: url, Secret: itSecret, Count: plan.events,
		Concurrency: 32, Conversations: plan.conversations, DuplicateRate: 0.02,
		Timeout: 5 * time.Second, BackoffMin: 100 * time.Millisecond, BackoffMax: 2 * time.Second,
		MaxRetryTime: 3 * time.Minute, KeepEvents: true,
		OnAck: func(loadtest.Event) { acked.Add(1) },
	}
	ltCtx, stopLT := context.WithTimeout(context.Background(), 6*time.Minute)
	defer stopLT()
	type ltOut struct {
		res *loadtest.Result
		err error
	}
	ltDone := make(chan ltOut, 1)
	go func() {
		res, err := loadtest.Run(ltCtx, ltCfg)
		ltDone <- ltOut{res, err}
	}()

	// The chaos, triggered by progress: consumer kills by what the sink has
	// handled (so there is work in flight), the broker restart by what the
	// simulator has had acknowledged (so senders are mid-run and see 503).
	type step struct {
		name       string
		due        func() bool
		do         func()
		needsSends bool // meaningless once the simulator is done
	}
	var steps []step
	kills, restarts := 0, 0
	type crash struct {
		name string
		at   time.Time
	}
	var crashes []crash
	kill := func() {
		n := sink.Stats().OK
		crashes = append(crashes, crash{fmt.Sprintf("kill %d", kills+1), time.Now()})
		cons.kill() // SIGKILL: no commit, no leave, no flush
		// The dead member would hold its partitions until its session
		// times out (45 s, not settable through the CLI); remove it the
		// way an operator's AdminClient.removeMembersFromConsumerGroup
		// would. Offsets and dedup state stay as the dead process left them.
		chaosEvict(t, cl, adm, group)
		kills++
		t.Logf("chaos: t=%s consumer SIGKILLed after %d sink successes (kill %d); restarting", time.Since(start).Round(time.Millisecond), n, kills)
		cons = startConsumer()
	}
	for i := 1; i <= plan.kills; i++ {
		at := int64(plan.events) * int64(15+45*(i-1)) / 100 // 15 %, 60 %
		steps = append(steps, step{name: fmt.Sprintf("kill %d", i), due: func() bool { return sink.Stats().OK >= at }, do: kill})
	}
	if plan.brokerRestart {
		at := int64(plan.events) * 35 / 100
		steps = append(steps, step{name: "broker restart", needsSends: true, due: func() bool { return acked.Load() >= at }, do: func() {
			t.Logf("chaos: t=%s broker down after %d acknowledged", time.Since(start).Round(time.Millisecond), acked.Load())
			crashes = append(crashes, crash{"broker restart", time.Now()})
			ctl("down")
			time.Sleep(3 * time.Second) // senders get 503 and back off
			ctl("start")
			restarts++
			t.Logf("chaos: t=%s broker up again (%d acknowledged)", time.Since(start).Round(time.Millisecond), acked.Load())
		}})
	}
	var lt ltOut
	ltFinished := false
	deadline := time.Now().Add(6 * time.Minute)
	for !ltFinished || len(steps) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("chaos: not done after 6 minutes: simulator finished %v, steps left %d, acknowledged %d, sink %+v",
				ltFinished, len(steps), acked.Load(), sink.Stats())
		}
		for i, s := range steps {
			if s.due() {
				s.do()
				steps = slices.Delete(steps, i, i+1)
				break
			}
		}
		if !ltFinished {
			select {
			case lt = <-ltDone:
				ltFinished = true
				if lt.err != nil {
					t.Fatal(lt.err)
				}
				t.Logf("chaos: t=%s simulator done: %s", time.Since(start).Round(time.Millisecond),
					strings.ReplaceAll(strings.TrimSpace(lt.res.Summary()), "\n", "; "))
				for _, s := range steps {
					if s.needsSends {
						t.Fatalf("chaos: the simulator finished before %q (%d acknowledged): senders never saw it", s.name, acked.Load())
					}
				}
			case <-time.After(50 * time.Millisecond):
			}
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	res := lt.res

	// Quiet: every record of the main and retry topics handled and committed
	// (a retry record is committed only after its own handling).
	chaosWaitQuiet(t, adm, group, names.Consumed(), 3*time.Minute)
	t.Logf("chaos: t=%s consumer caught up", time.Since(start).Round(time.Millisecond))
	if err := cons.signal(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Errorf("consume exited with %v after SIGTERM", err)
	}
	if err := rcv.signal(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Errorf("serve exited with %v after SIGTERM", err)
	}

	// The accounting.
	dlq := chaosReadAll(t, seeds, names.DLQ)
	deadLettered := map[string]string{} // event id → error class
	for _, r := range dlq {
		deadLettered[headers.Value(r.Headers, headers.EventID)] = headers.Value(r.Headers, headers.ErrorClass)
	}
	reqs := sink.Requests()
	okCount := map[string]int{}
	for _, r := range reqs {
		if r.Outcome == recsink.OK {
			okCount[r.EventID]++
		}
	}
	var ackedIDs []loadtest.Event
	for _, e := range res.Events {
		if e.Acknowledged {
			ackedIDs = append(ackedIDs, e)
		}
	}
	var lost, both, processed, deadCount, wrongFate []string
	for _, e := range ackedIDs {
		_, ok := okCount[e.EventID]
		class, dead := deadLettered[e.EventID]
		switch {
		case ok && dead:
			both = append(both, e.EventID)
		case ok:
			processed = append(processed, e.EventID)
		case dead:
			deadCount = append(deadCount, e.EventID)
		default:
			lost = append(lost, fmt.Sprintf("%s (conversation %s seq %d)", e.EventID, e.ConversationID, e.Sequence))
		}
		// The sink's fates are deterministic per attempt: an event that
		// fails on all 4 attempts (1 + 3 retry tiers) is exhausted, a
		// permanent one goes to the DLQ at once, every other one succeeds.
		n, perm := sink.TransientFailures(e.EventID, 4)
		want := ""
		switch {
		case perm:
			want = headers.ClassPermanent
		case n == 4:
			want = headers.ClassExhausted
		}
		if (want == "" && !ok) || (want != "" && class != want) {
			wrongFate = append(wrongFate, fmt.Sprintf("%s: expected %q, processed=%v dlq=%q", e.EventID, want, ok, class))
		}
	}
	// Duplicates: successes beyond the first per event id, each put down to
	// the last crash before it. A crash may leave at most the consumer's
	// --max-unfinished records handled but not yet recorded in the dedup
	// topic (with the default of 32 x --concurrency it would be 2,048); a
	// duplicate before any crash has no such excuse. The broker restart
	// counts as a crash: while the broker is down, franz-go runs out of
	// heartbeat retries after a few seconds and reports every partition lost
	// (kgo consumer_group.go, manageFailWait → OnPartitionsLost); the
	// consumer's onLost abandons in-flight work, so events whose handler
	// succeeded but whose dedup record could not be written yet are handled
	// again after the rejoin.
	duplicates := 0
	perCrash := map[string]int{}
	seenOK := map[string]bool{}
	for _, r := range reqs {
		if r.Outcome != recsink.OK {
			continue
		}
		if !seenOK[r.EventID] {
			seenOK[r.EventID] = true
			continue
		}
		duplicates++
		cause := "before any crash"
		for _, c := range crashes {
			if !r.At.Before(c.at) {
				cause = c.name
			}
		}
		perCrash[cause]++
	}

	// Order: by sequence number at the sink, over conversations none of
	// whose events went through a retry (no failed answer, no attempt > 1).
	retried := map[string]bool{}
	for _, r := range reqs {
		if r.Outcome == recsink.Transient || r.Outcome == recsink.Permanent || r.Attempt > 1 {
			retried[r.ConversationID] = true
		}
	}
	firstOK := map[string]bool{}
	lastSeq := map[string]int64{}
	checked := map[string]bool{}
	var orderErrs []string
	for _, r := range reqs { // in the order the sink answered them
		if r.Outcome != recsink.OK || firstOK[r.EventID] || retried[r.ConversationID] {
			continue
		}
		firstOK[r.EventID] = true
		checked[r.ConversationID] = true
		if r.Sequence < lastSeq[r.ConversationID] {
			orderErrs = append(orderErrs, fmt.Sprintf("conversation %s: sequence %d first handled after %d", r.ConversationID, r.Sequence, lastSeq[r.ConversationID]))
		}
		lastSeq[r.ConversationID] = max(lastSeq[r.ConversationID], r.Sequence)
	}

	st := sink.Stats()
	t.Logf("chaos: duplicates per cause: %v", perCrash)
	for i, p := range consumers {
		// Why work was redelivered without a crash of this process.
		var lines []string
		for _, l := range strings.Split(p.output(), "\n") {
			if strings.Contains(l, "partitions lost") || strings.Contains(l, "grace expired") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 {
			t.Logf("chaos: consumer %d:\n%s", i+1, strings.Join(lines[:min(len(lines), 5)], "\n"))
		}
	}
	t.Logf("chaos: simulator requests=%d retries=%d 503=%d 429=%d timeouts=%d conn_errors=%d duplicates_sent=%d gave_up=%d p50=%s p99=%s; sink requests=%d ok=%d transient=%d permanent=%d canceled=%d overlaps=%d; dlq records=%d; crashes=%d (kills %d, broker restarts %d); conversations order-checked=%d of %d; seeds loadtest=%d sink=%d",
		res.Requests, res.Retries, res.Status503, res.Status429, res.Timeouts, res.ConnErrors, res.DuplicatesSent, res.GaveUp,
		res.Latency.P50, res.Latency.P99, st.Requests, st.OK, st.Transient, st.Permanent, st.Canceled, st.Overlaps,
		len(dlq), len(crashes), kills, restarts, len(checked), st.Conversations, res.Seed, sink.Seed())
	summary := fmt.Sprintf("chaos: sent=%d acknowledged=%d processed=%d dead_lettered=%d duplicates=%d lost=%d",
		res.Sent, len(ackedIDs), len(processed), len(deadCount), duplicates, len(lost))
	fmt.Println(summary)
	t.Logf("%s (%s)", summary, time.Since(start).Round(time.Second))

	if len(lost) > 0 {
		t.Errorf("%d acknowledged events neither processed nor dead-lettered, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
	// Guarantee 2: each terminal state is recorded in the dedup topic, or a
	// later redelivery would be handled again (a broker restart once left
	// handled events without their record).
	outcome := map[string]string{}
	for _, r := range chaosReadAll(t, seeds, names.Dedup) {
		if r.Value != nil {
			outcome[string(r.Key)] = string(r.Value)
		}
	}
	var unrecorded []string
	for _, ids := range []struct {
		ids  []string
		want string
	}{{processed, `"processed"`}, {deadCount, `"dead-lettered"`}} {
		for _, id := range ids.ids {
			if !strings.Contains(outcome[id], ids.want) {
				unrecorded = append(unrecorded, fmt.Sprintf("%s (want %s, dedup value %q)", id, ids.want, outcome[id]))
			}
		}
	}
	if len(unrecorded) > 0 {
		t.Errorf("%d events without their dedup record, e.g. %v", len(unrecorded), unrecorded[:min(5, len(unrecorded))])
	}
	if len(both) > 0 {
		t.Errorf("%d events both processed and dead-lettered, e.g. %v", len(both), both[:min(5, len(both))])
	}
	if len(wrongFate) > 0 {
		t.Errorf("%d events ended otherwise than the sink's fate says, e.g. %v", len(wrongFate), wrongFate[:min(5, len(wrongFate))])
	}
	for cause, n := range perCrash {
		if cause == "before any crash" || n > plan.inFlight {
			t.Errorf("%d duplicate successes at the sink after %s; a crash may cause at most the in-flight bound %d, and nothing else may", n, cause, plan.inFlight)
		}
	}
	if bound := len(crashes) * plan.inFlight; duplicates > bound {
		t.Errorf("%d duplicate successes at the sink, more than %d crashes × %d in flight = %d", duplicates, len(crashes), plan.inFlight, bound)
	}
	if len(orderErrs) > 0 {
		t.Errorf("%d order violations, e.g. %v", len(orderErrs), orderErrs[:min(5, len(orderErrs))])
	}
	if len(checked) == 0 {
		t.Error("no conversation went through without a retry: the order check checked nothing")
	}
	if res.IDMismatch != 0 {
		t.Errorf("%d acknowledgements named another event id than the content hash", res.IDMismatch)
	}
	if res.GaveUp != 0 || int(res.Acknowledged) != len(ackedIDs) || res.Sent != int64(plan.events) {
		t.Errorf("simulator: %d events, %d acknowledged, %d gave up; want all %d acknowledged", res.Sent, res.Acknowledged, res.GaveUp, plan.events)
	}
	if plan.brokerRestart && res.Status503 == 0 && res.Timeouts == 0 {
		t.Error("the broker restart produced no 503 or timeout: senders never saw it")
	}
	if kills != plan.kills || (plan.brokerRestart && restarts != 1) {
		t.Errorf("did %d kills and %d broker restarts, planned %d and %v", kills, restarts, plan.kills, plan.brokerRestart)
	}
}

// chaosEvict removes every member of group with a LeaveGroup by member id.
func chaosEvict(t *testing.T, cl *kgo.Client, adm *kadm.Client, group string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("describe group %s: %v", group, err)
	}
	d, ok := ds[group]
	if !ok || d.Err != nil || len(d.Members) == 0 {
		return
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = group
	for _, m := range d.Members {
		lm := kmsg.NewLeaveGroupRequestMember()
		lm.MemberID = m.MemberID
		req.Members = append(req.Members, lm)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("evict the dead members of %s: %v", group, err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("evict the dead members of %s: error code %d", group, resp.ErrorCode)
	}
}

// chaosWaitQuiet waits until group has committed the end offset of every
// partition of the given topics.
func chaosWaitQuiet(t *testing.T, adm *kadm.Client, group string, names []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	quietSince := time.Time{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ends, err1 := adm.ListEndOffsets(ctx, names...)
		comm, err2 := adm.FetchOffsets(ctx, group)
		cancel()
		lag := int64(-1)
		if err1 == nil && err2 == nil {
			lag = 0
			var parts []string
			ends.Each(func(o kadm.ListedOffset) {
				c, ok := comm.Lookup(o.Topic, o.Partition)
				at := int64(0)
				if ok && c.Err == nil {
					at = c.At
				}
				if o.Offset > at {
					lag += o.Offset - at
					parts = append(parts, fmt.Sprintf("%s[%d]=%d", o.Topic, o.Partition, o.Offset-at))
				}
			})
			sort.Strings(parts)
			last = strings.Join(parts, " ")
		} else {
			last = fmt.Sprintf("offsets: %v %v", err1, err2)
		}
		if lag == 0 {
			if quietSince.IsZero() {
				quietSince = time.Now()
			}
			// Quiet for a moment: nothing new was produced meanwhile.
			if time.Since(quietSince) >= 1500*time.Millisecond {
				return
			}
		} else {
			quietSince = time.Time{}
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s did not catch up within %s; lag: %s", group, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// chaosReadAll reads every record of topic up to its end offsets.
func chaosReadAll(t *testing.T, seeds, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rd, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(seeds, ",")...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ends, err := kadm.NewClient(rd).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total == 0 {
		return nil
	}
	var out []*kgo.Record
	for int64(len(out)) < total {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %d of %d records", topic, len(out), total)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}
