package topics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestForDerivesEveryName(t *testing.T) {
	n := For("genesys.conversations", 3)
	want := []string{
		"genesys.conversations",
		"genesys.conversations.retry-1", "genesys.conversations.retry-2", "genesys.conversations.retry-3",
		"genesys.conversations.dlq", "genesys.conversations.dedup",
	}
	if got := n.All(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("All() = %v, want %v", got, want)
	}
	if got := n.Consumed(); len(got) != 4 || got[3] != "genesys.conversations.retry-3" {
		t.Fatalf("Consumed() = %v", got)
	}
	for _, tc := range []struct {
		topic string
		role  Role
		tier  int
		ok    bool
	}{
		{"genesys.conversations", RoleMain, 0, true},
		{"genesys.conversations.retry-2", RoleRetry, 2, true},
		{"genesys.conversations.retry-4", "", 0, false},
		{"genesys.conversations.retry-x", "", 0, false},
		{"genesys.conversations.dlq", RoleDLQ, 0, true},
		{"genesys.conversations.dedup", RoleDedup, 0, true},
		{"other", "", 0, false},
	} {
		role, tier, ok := n.RoleOf(tc.topic)
		if role != tc.role || tier != tc.tier || ok != tc.ok {
			t.Errorf("RoleOf(%q) = %q,%d,%v; want %q,%d,%v", tc.topic, role, tier, ok, tc.role, tc.tier, tc.ok)
		}
	}
}

func TestRetryTierAcceptsTiersBeyondTheNames(t *testing.T) {
	n := For("b", 1)
	for topic, want := range map[string]int{"b.retry-1": 1, "b.retry-4": 4, "b.retry-120": 120,
		"b.retry-0": 0, "b.retry-04": 0, "b.retry-": 0, "b.retry-+4": 0, "b.retry-4.dlq": 0, "bb.retry-4": 0, "b.dlq": 0} {
		k, ok := n.RetryTier(topic)
		if k != want || ok != (want > 0) {
			t.Errorf("RetryTier(%q) = %d,%v; want %d", topic, k, ok, want)
		}
	}
}

func TestValidateBase(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "has space", "slash/x", strings.Repeat("a", 245)} {
		if ValidateBase(bad) == nil {
			t.Errorf("ValidateBase(%q) accepted", bad)
		}
	}
	for _, good := range []string{"hookline.events", "a_b-c.D9"} {
		if err := ValidateBase(good); err != nil {
			t.Errorf("ValidateBase(%q) = %v", good, err)
		}
	}
}

func TestPlanDefaultsAndConfigs(t *testing.T) {
	p, err := NewPlan(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Names.Base != DefaultBase || p.Partitions != 12 || p.ReplicationFactor != -1 || len(p.Names.Retries) != 3 || p.DedupWindow != 96*time.Hour {
		t.Fatalf("defaults: %+v", p)
	}
	dedup, _ := p.Spec(p.Names.Dedup)
	if dedup.Configs["cleanup.policy"] != "compact" || dedup.Configs["segment.ms"] == "" {
		t.Fatalf("dedup configs %v", dedup.Configs)
	}
	for _, name := range append(p.Names.Consumed(), p.Names.DLQ) {
		s, _ := p.Spec(name)
		if s.Configs["cleanup.policy"] != "delete" {
			t.Errorf("%s cleanup.policy = %q", name, s.Configs["cleanup.policy"])
		}
	}
	if _, err := NewPlan(Config{RetryDelays: []time.Duration{time.Second, -1}}); err == nil {
		t.Error("negative delay accepted")
	}
	if _, err := NewPlan(Config{Partitions: -3}); err == nil {
		t.Error("negative partitions accepted")
	}
}

func newAdmin(t *testing.T) (*kadm.Client, *kfake.Cluster) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl), c
}

func TestCreateIsIdempotentAndInspectFindsProblems(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, _ := newAdmin(t)
	p, err := NewPlan(Config{Base: "t.events", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Create(ctx, adm, p)
	if err != nil || len(res) != 6 || !res[0].Created {
		t.Fatalf("first create: %v %+v", err, res)
	}
	res, err = Create(ctx, adm, p)
	if err != nil || len(res) != 6 || res[0].Created {
		t.Fatalf("second create must succeed and create nothing: %v %+v", err, res)
	}
	rep, err := Inspect(ctx, adm, p, 3)
	if err != nil || !rep.OK() {
		t.Fatalf("fresh pipeline not OK: %v %v", err, rep.Err())
	}
	if got := rep.Topics[5].Actual["cleanup.policy"]; got != "compact" {
		t.Fatalf("dedup cleanup.policy as reported = %q", got)
	}

	// A retry topic with more partitions breaks co-partitioning.
	if _, err := adm.CreatePartitions(ctx, 2, "t.events.retry-1"); err != nil {
		t.Fatal(err)
	}
	// The DLQ turned compacted by mistake.
	setConfig(ctx, t, adm, "t.events.dlq", "cleanup.policy", "compact")
	// A deleted topic.
	if _, err := adm.DeleteTopics(ctx, "t.events.retry-3"); err != nil {
		t.Fatal(err)
	}
	rep, err = Inspect(ctx, adm, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	msg := rep.Err().Error()
	for _, want := range []string{
		"t.events.retry-1: has 5 partitions but the rest of the pipeline has 3",
		"t.events.retry-3: missing",
		`t.events.dlq: cleanup.policy is "compact", expected "delete"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("report lacks %q:\n%s", want, msg)
		}
	}
}

// Adding a retry tier to an existing pipeline, with a --partitions that
// differs from the existing topics, must not break co-partitioning: the new
// topic gets the pipeline's existing count.
func TestCreateKeepsTheExistingPartitionCount(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, _ := newAdmin(t)
	small, err := NewPlan(Config{Base: "mix", Partitions: 3, RetryDelays: []time.Duration{time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, adm, small); err != nil {
		t.Fatal(err)
	}
	wider, err := NewPlan(Config{Base: "mix", Partitions: 6, RetryDelays: []time.Duration{time.Second, 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Create(ctx, adm, wider)
	if err != nil {
		t.Fatal(err)
	}
	var created []CreateResult
	for _, r := range res {
		if r.Created {
			created = append(created, r)
		}
	}
	if len(created) != 1 || created[0].Topic != "mix.retry-2" || created[0].Partitions != 3 {
		t.Fatalf("created %+v, want only mix.retry-2 with the existing 3 partitions", created)
	}
	rep, err := Inspect(ctx, adm, wider, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Unusable(); err != nil {
		t.Fatalf("pipeline unusable after adding a tier: %v", err)
	}
	if rep.Topics[2].Partitions != 3 {
		t.Fatalf("retry-2 has %d partitions", rep.Topics[2].Partitions)
	}
}

// The main, retry and DLQ topics are created with room for a 1 MiB body and
// its headers; a topic left at Kafka's default is reported with the fix, and
// the limits the receiver and producers derive follow what the broker says.
func TestMaxMessageBytesIsPlannedCheckedAndReported(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, _ := newAdmin(t)
	p, err := NewPlan(Config{Base: "big", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, adm, p); err != nil {
		t.Fatal(err)
	}
	rep, err := Inspect(ctx, adm, p, 0)
	if err != nil || !rep.OK() {
		t.Fatalf("fresh pipeline: %v %v", err, rep.Err())
	}
	if got := rep.MaxMessageBytes("big"); got != DefaultMaxMessageBytes {
		t.Fatalf("main topic max.message.bytes %d, want %d", got, DefaultMaxMessageBytes)
	}
	if got := rep.MaxBodyBytes(); got < 1<<20 {
		t.Fatalf("a fresh pipeline carries bodies up to %d bytes, less than the receiver's 1 MiB default", got)
	}
	if st := rep.Topics[len(rep.Topics)-1]; st.Role != RoleDedup || st.Actual["max.message.bytes"] == "" {
		t.Fatalf("the dedup topic's max.message.bytes was not read (producers size its batches to it): %+v", st)
	}
	if n, err := TopicMaxMessageBytes(ctx, adm, "big.retry-2"); err != nil || n != DefaultMaxMessageBytes {
		t.Fatalf("TopicMaxMessageBytes = %d, %v", n, err)
	}

	// An operator (or an older hookline) left the DLQ at Kafka's default.
	setConfig(ctx, t, adm, "big.dlq", "max.message.bytes", "1048588")
	rep, err = Inspect(ctx, adm, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Unusable(); err != nil {
		t.Fatalf("a config difference must not make the pipeline unusable: %v", err)
	}
	if msg := fmt.Sprint(rep.Err()); !strings.Contains(msg, "big.dlq: max.message.bytes is 1048588, below the planned") ||
		!strings.Contains(msg, "--add-config max.message.bytes=") {
		t.Fatalf("report: %s", msg)
	}
	if got, want := rep.MaxBodyBytes(), int64(1048588-HeaderRoom); got != want {
		t.Fatalf("MaxBodyBytes = %d, want the DLQ's limit minus HeaderRoom = %d", got, want)
	}
}

// A retry topic whose retention no longer covers its delay + 24h is reported with
// the command that restores the planned retention (2 x the longest delay +
// 24h here, above the 7-day default), as the cleanup.policy problem is.
func TestShortRetryRetentionSaysHowToFixIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, c := newAdmin(t)
	bootstrap := strings.Join(c.ListenAddrs(), ",")
	p, err := NewPlan(Config{Base: "slow", Partitions: 2, RetryDelays: []time.Duration{time.Hour, 100 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := p.Spec("slow.retry-2")
	planned := spec.Configs["retention.ms"]
	if want := fmt.Sprint((224 * time.Hour).Milliseconds()); planned != want {
		t.Fatalf("planned retry retention.ms %s, want %s (2 x 100h + 24h)", planned, want)
	}
	if _, err := Create(ctx, adm, p); err != nil {
		t.Fatal(err)
	}
	short := fmt.Sprint((50 * time.Hour).Milliseconds())
	setConfig(ctx, t, adm, "slow.retry-2", "retention.ms", short)
	rep, err := Inspect(ctx, adm, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Unusable(); err != nil {
		t.Fatalf("a short retention must not make the pipeline unusable: %v", err)
	}
	want := "slow.retry-2: retention.ms " + short + " is shorter than the tier's delay + 24h (124h): a retry waits its delay and then, " +
		"while consumers are down or behind, as long as an event in the main topic; it would be deleted before it is handled; " +
		"kafka-configs --bootstrap-server " + bootstrap + " --alter --entity-type topics --entity-name slow.retry-2 --add-config retention.ms=" + planned
	if msg := fmt.Sprint(rep.Err()); !strings.Contains(msg, want) {
		t.Fatalf("report lacks %q:\n%s", want, msg)
	}
}

// A DLQ whose retention is shorter than the dedup window loses dead letters
// whose redeliveries dedup still skips: check reports it, with the fix.
func TestShortDLQRetentionIsReported(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, _ := newAdmin(t)
	p, err := NewPlan(Config{Base: "dl", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, adm, p); err != nil {
		t.Fatal(err)
	}
	rep, err := Inspect(ctx, adm, p, 0)
	if err != nil || rep.Err() != nil {
		t.Fatalf("as planned: %v %v", err, rep.Err())
	}
	for _, v := range []string{"60000", fmt.Sprint((96 * time.Hour).Milliseconds())} {
		setConfig(ctx, t, adm, "dl.dlq", "retention.ms", v)
		rep, err := Inspect(ctx, adm, p, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := "dl.dlq: retention.ms " + v + " is shorter than the dedup window + 24h (120h0m0s)"
		if msg := fmt.Sprint(rep.Err()); !strings.Contains(msg, want) || !strings.Contains(msg, "--add-config retention.ms=2592000000") {
			t.Fatalf("report lacks %q and the fix:\n%s", want, msg)
		}
		if rep.Unusable() != nil {
			t.Fatal("a short DLQ retention must not make the pipeline unusable")
		}
	}
	// A dedup window past 30 days plans a DLQ that outlives it, so a new
	// pipeline passes its own check.
	long, err := NewPlan(Config{Base: "dl-long", Partitions: 1, DedupWindow: 40 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, adm, long); err != nil {
		t.Fatal(err)
	}
	if rep, err := Inspect(ctx, adm, long, 0); err != nil || rep.Err() != nil {
		t.Fatalf("a 40-day window: %v %v", err, rep.Err())
	}
	// A week, longer than the window: an operator's choice, not a problem.
	week := fmt.Sprint((7 * 24 * time.Hour).Milliseconds())
	setConfig(ctx, t, adm, "dl.dlq", "retention.ms", week)
	if rep, err := Inspect(ctx, adm, p, 0); err != nil || rep.Err() != nil {
		t.Fatalf("a week: %v %v", err, rep.Err())
	}
}

// setConfig sets one config of topic, failing the test on any error,
// including one the broker reports for that config alone.
func setConfig(ctx context.Context, t *testing.T, adm *kadm.Client, topic, key, value string) {
	t.Helper()
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: key, Value: kadm.StringPtr(value)}}, topic)
	if err == nil {
		for _, r := range rs {
			err = errors.Join(err, r.Err)
		}
	}
	if err != nil {
		t.Fatalf("set %s=%s on %s: %v", key, value, topic, err)
	}
}

// A retry delay is bounded (30 days): an absurd one is refused by name
// instead of overflowing 2 x delay into a retention that wraps around.
// Retention arithmetic saturates where the inputs are unbounded (the dedup
// window).
func TestRetryDelaysAreBoundedAndRetentionDoesNotOverflow(t *testing.T) {
	_, err := NewPlan(Config{RetryDelays: []time.Duration{time.Minute, 10 * time.Second, 10 * time.Second, 1500000 * time.Hour}})
	if err == nil || !strings.Contains(err.Error(), "retry delay 4") || !strings.Contains(err.Error(), "at most 720h (30 days)") {
		t.Fatalf("a 1500000h delay: %v", err)
	}
	p, err := NewPlan(Config{RetryDelays: []time.Duration{MaxRetryDelay}})
	if err != nil {
		t.Fatalf("a delay of exactly MaxRetryDelay: %v", err)
	}
	spec, _ := p.Spec(p.Names.Retry(1))
	if got, want := spec.Configs["retention.ms"], fmt.Sprint((2*MaxRetryDelay + 24*time.Hour).Milliseconds()); got != want {
		t.Fatalf("retry retention.ms %s, want %s", got, want)
	}
	// A dedup window near the largest duration: the DLQ's retention and the
	// check's floor saturate instead of turning negative.
	huge := time.Duration(math.MaxInt64 - int64(time.Hour))
	p, err = NewPlan(Config{DedupWindow: huge})
	if err != nil {
		t.Fatal(err)
	}
	dlq, _ := p.Spec(p.Names.DLQ)
	if n, err := strconv.ParseInt(dlq.Configs["retention.ms"], 10, 64); err != nil || n < huge.Milliseconds() {
		t.Fatalf("DLQ retention.ms %q with a %s dedup window", dlq.Configs["retention.ms"], huge)
	}
	st := State{Spec: dlq, Exists: true, Actual: map[string]string{"retention.ms": dlq.Configs["retention.ms"], "cleanup.policy": "delete"}}
	if probs := configProblems(st, p, ""); len(probs) != 0 {
		t.Fatalf("the planned DLQ fails its own check: %v", probs)
	}
}

// Every command check suggests names the brokers it talked to, so it can be
// pasted as is.
func TestSuggestedCommandsNameTheBrokers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, c := newAdmin(t)
	bootstrap := strings.Join(c.ListenAddrs(), ",")
	p, err := NewPlan(Config{Base: "bs", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, adm, p); err != nil {
		t.Fatal(err)
	}
	setConfig(ctx, t, adm, "bs.dlq", "cleanup.policy", "compact")
	setConfig(ctx, t, adm, "bs.retry-1", "max.message.bytes", "1048588")
	if _, err := adm.CreatePartitions(ctx, 1, "bs.retry-2"); err != nil {
		t.Fatal(err)
	}
	rep, err := Inspect(ctx, adm, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	msg := fmt.Sprint(rep.Err())
	for _, want := range []string{
		"bs.dlq: cleanup.policy is \"compact\", expected \"delete\": kafka-configs --bootstrap-server " + bootstrap + " --alter --entity-type topics --entity-name bs.dlq --add-config cleanup.policy=delete",
		"kafka-configs --bootstrap-server " + bootstrap + " --alter --entity-type topics --entity-name bs.retry-1 --add-config max.message.bytes=",
		"kafka-topics --bootstrap-server " + bootstrap + " --alter --topic <topic> --partitions 3",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("report lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "kafka-configs --alter") || strings.Contains(msg, "kafka-topics --alter") {
		t.Errorf("a command without --bootstrap-server:\n%s", msg)
	}
}

// The main topic's retention is checked (24h at least: events wait there
// while consumers are down), and a retry tier needs its delay + 24h, not
// just more than its delay.
func TestMainAndRetryRetentionNeedADayOfMargin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, _ := newAdmin(t)
	p, err := NewPlan(Config{Base: "ret", Partitions: 1, RetryDelays: []time.Duration{time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, adm, p); err != nil {
		t.Fatal(err)
	}
	if rep, err := Inspect(ctx, adm, p, 0); err != nil || rep.Err() != nil {
		t.Fatalf("as planned: %v %v", err, rep.Err())
	}
	setConfig(ctx, t, adm, "ret", "retention.ms", "1000")
	setConfig(ctx, t, adm, "ret.retry-1", "retention.ms", "61000")
	rep, err := Inspect(ctx, adm, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	msg := fmt.Sprint(rep.Err())
	for _, want := range []string{
		"ret: retention.ms 1000 is shorter than 24h: events wait here while consumers are down or behind",
		"--entity-name ret --add-config retention.ms=604800000",
		"ret.retry-1: retention.ms 61000 is shorter than the tier's delay + 24h (24h1m)",
		"--entity-name ret.retry-1 --add-config retention.ms=604800000",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("report lacks %q:\n%s", want, msg)
		}
	}
	if rep.Unusable() != nil {
		t.Fatal("a short retention must not make the pipeline unusable")
	}
	// Exactly the floors pass; so does -1 (forever).
	setConfig(ctx, t, adm, "ret", "retention.ms", fmt.Sprint(MinRetention.Milliseconds()))
	setConfig(ctx, t, adm, "ret.retry-1", "retention.ms", fmt.Sprint((time.Minute + MinRetention).Milliseconds()))
	if rep, err := Inspect(ctx, adm, p, 0); err != nil || rep.Err() != nil {
		t.Fatalf("at the floors: %v %v", err, rep.Err())
	}
	setConfig(ctx, t, adm, "ret", "retention.ms", "-1")
	if rep, err := Inspect(ctx, adm, p, 0); err != nil || rep.Err() != nil {
		t.Fatalf("forever: %v %v", err, rep.Err())
	}
	if _, err := NewPlan(Config{Retention: time.Hour}); err == nil || !strings.Contains(err.Error(), "at least 24h") {
		t.Fatalf("a plan below its own check: %v", err)
	}
}

// The dedup topic's max.message.bytes is planned, and one too small for a
// dedup record (the consumer would stall) is reported with the fix; a value
// between the floor and the plan is an operator's choice.
func TestDedupMaxMessageBytesIsPlannedAndChecked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, _ := newAdmin(t)
	p, err := NewPlan(Config{Base: "dd", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	if spec, _ := p.Spec("dd.dedup"); spec.Configs["max.message.bytes"] != "1048588" {
		t.Fatalf("planned dedup configs %v", spec.Configs)
	}
	if _, err := Create(ctx, adm, p); err != nil {
		t.Fatal(err)
	}
	if rep, err := Inspect(ctx, adm, p, 0); err != nil || rep.Err() != nil {
		t.Fatalf("as planned: %v %v", err, rep.Err())
	}
	setConfig(ctx, t, adm, "dd.dedup", "max.message.bytes", "60")
	rep, err := Inspect(ctx, adm, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := "dd.dedup: max.message.bytes is 60, below 65536: a dedup record"
	// "413" as a word: the broker's random port (127.0.0.1:41301) may
	// hold those digits.
	if msg := fmt.Sprint(rep.Err()); !strings.Contains(msg, want) || !strings.Contains(msg, "--entity-name dd.dedup --add-config max.message.bytes=1048588") ||
		regexp.MustCompile(`\b413\b|bod(y|ies)`).MatchString(msg) {
		t.Fatalf("report lacks %q and the fix (and must not speak of bodies):\n%s", want, msg)
	}
	setConfig(ctx, t, adm, "dd.dedup", "max.message.bytes", "65536")
	if rep, err := Inspect(ctx, adm, p, 0); err != nil || rep.Err() != nil {
		t.Fatalf("at the floor: %v %v", err, rep.Err())
	}
}

// A pipeline created with three tiers and run with one leaves retry-2 and
// retry-3 behind: Inspect finds them, counts what they hold, and says what
// to do; the pipeline stays usable.
func TestInspectFindsRetryTiersBeyondThePlan(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, c := newAdmin(t)
	bootstrap := strings.Join(c.ListenAddrs(), ",")
	three, err := NewPlan(Config{Base: "x", Partitions: 2, RetryDelays: []time.Duration{time.Second, 2 * time.Second, time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, adm, three); err != nil {
		t.Fatal(err)
	}
	// Names that only look like tiers are not the pipeline's.
	if _, err := adm.CreateTopics(ctx, 1, -1, nil, "x.retry-07", "x.retry-2.dlq", "xy.retry-5"); err != nil {
		t.Fatal(err)
	}
	// Neither is another pipeline whose base is named like a tier.
	other, err := NewPlan(Config{Base: "x.retry-9", Partitions: 2, RetryDelays: []time.Duration{time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, adm, other); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 3 {
		r := &kgo.Record{Topic: "x.retry-2", Partition: int32(i % 2), Value: []byte("stranded")}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	one, err := NewPlan(Config{Base: "x", Partitions: 2, RetryDelays: []time.Duration{time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Inspect(ctx, adm, one, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []ExtraTier{{Topic: "x.retry-2", Tier: 2, Partitions: 2, Records: 3}, {Topic: "x.retry-3", Tier: 3, Partitions: 2, Records: 0}}
	if fmt.Sprint(rep.ExtraRetryTiers) != fmt.Sprint(want) {
		t.Fatalf("ExtraRetryTiers = %+v, want %+v", rep.ExtraRetryTiers, want)
	}
	msg := fmt.Sprint(rep.Err())
	for _, w := range []string{
		"x.retry-2: retry tier 2 exists but the pipeline has 1 (--retry-delays / retry_delays); it holds 3 record(s), handled or not: consumers (run, consume) handle what waits there, and the group's lag on it (hookline_consumer_lag) says whether any still does",
		"kafka-topics --bootstrap-server " + bootstrap + " --delete --topic x.retry-2",
		"x.retry-3: retry tier 3 exists but the pipeline has 1 (--retry-delays / retry_delays); it is empty and can be deleted",
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("report lacks %q:\n%s", w, msg)
		}
	}
	for _, odd := range []string{"x.retry-07", "x.retry-2.dlq", "xy.retry-5", "x.retry-9"} {
		if strings.Contains(msg, odd+":") {
			t.Errorf("%s reported as a tier:\n%s", odd, msg)
		}
	}
	if err := rep.Unusable(); err != nil {
		t.Fatalf("extra tiers must not make the pipeline unusable: %v", err)
	}
	// With all three tiers planned, nothing is extra.
	if rep, err := Inspect(ctx, adm, three, 0); err != nil || rep.Err() != nil || len(rep.ExtraRetryTiers) != 0 {
		t.Fatalf("the full plan: %v %v %+v", err, rep.Err(), rep.ExtraRetryTiers)
	}
}

// With --partitions, a mismatch says what to do: partitions cannot be
// removed (keep the count or use a new --base), a smaller pipeline may be
// raised, and a pipeline that is not co-partitioned keeps the advice to
// give every topic the same count, naming the topics to raise.
func TestPartitionMismatchWithExpectSaysWhatToDo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, c := newAdmin(t)
	bootstrap := strings.Join(c.ListenAddrs(), ",")
	p, err := NewPlan(Config{Base: "pm", Partitions: 4, RetryDelays: []time.Duration{time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, adm, p); err != nil {
		t.Fatal(err)
	}
	msgOf := func(expect int32) string {
		t.Helper()
		rep, err := Inspect(ctx, adm, p, expect)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(rep.Err())
	}
	msg := msgOf(2)
	wantAll := func(msg string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(msg, w) {
				t.Errorf("report lacks %q:\n%s", w, msg)
			}
		}
	}
	wantAll(msg, "pm: has 4 partitions, expected 2 (--partitions, or partitions in the config file), as have all 4 existing topics of the pipeline: Kafka cannot remove partitions; keep 4", "a new --base")
	if strings.Count(msg, "expected 2 (--partitions, or partitions in the config file)") != 1 {
		t.Errorf("one problem for the pipeline, not one per topic:\n%s", msg)
	}
	wantAll(msgOf(8), "pm: has 4 partitions, expected 8 (--partitions, or partitions in the config file), as have all 4 existing topics of the pipeline: keep 4",
		"give every topic of the pipeline 8 partitions (kafka-topics --bootstrap-server "+bootstrap+" --alter --topic <topic> --partitions 8")

	// retry-1 raised to 6: not co-partitioned; the usual advice, whatever
	// --partitions says, and which topics need raising.
	if _, err := adm.CreatePartitions(ctx, 2, "pm.retry-1"); err != nil {
		t.Fatal(err)
	}
	for _, expect := range []int32{0, 4} {
		wantAll(msgOf(expect), "pm.retry-1: has 6 partitions but the rest of the pipeline has 4",
			"give every topic of the pipeline 6 partitions (kafka-topics --bootstrap-server "+bootstrap+" --alter --topic <topic> --partitions 6",
			"the topics below 6: pm, pm.dlq, pm.dedup")
	}
}

// Create gives new topics the largest existing count (partitions can only
// be added) and, when the pipeline still disagrees afterwards, says which
// topics to raise.
func TestCreateUsesTheLargestExistingCountAndNamesWhatToRaise(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, c := newAdmin(t)
	bootstrap := strings.Join(c.ListenAddrs(), ",")
	p, err := NewPlan(Config{Base: "mx", Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, adm, p); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.DeleteTopics(ctx, "mx"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreatePartitions(ctx, 2, "mx.retry-2"); err != nil {
		t.Fatal(err)
	}
	if rep, err := Inspect(ctx, adm, p, 0); err != nil || rep.NewTopicPartitions(p) != 6 {
		t.Fatalf("NewTopicPartitions = %d (%v), want 6 as Create will use", rep.NewTopicPartitions(p), err)
	}
	res, err := Create(ctx, adm, p)
	if len(res) == 0 || !res[0].Created || res[0].Partitions != 6 {
		t.Fatalf("created %+v: the main topic needs the largest existing count, 6", res)
	}
	if !errors.Is(err, ErrNotCoPartitioned) {
		t.Fatalf("err = %v, want ErrNotCoPartitioned", err)
	}
	for _, want := range []string{
		"partitions per topic after creating: mx 6, mx.retry-1 4, mx.retry-2 6, mx.retry-3 4, mx.dlq 4, mx.dedup 4",
		"they disagreed before this create, which gave its new topics the largest existing count, 6",
		"raise mx.retry-1, mx.retry-3, mx.dlq, mx.dedup to 6 partitions (kafka-topics --bootstrap-server " + bootstrap + " --alter --topic <topic> --partitions 6",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// Nothing to create: nothing to say (Inspect reports the disagreement).
	if _, err := Create(ctx, adm, p); err != nil {
		t.Fatalf("a create that created nothing: %v", err)
	}
}

// Two creates with different counts racing on an empty cluster leave a
// mixed pipeline; the one that notices says so and what to do. The race is
// played by kfake: retry-1's CreateTopics is rewritten to 6 partitions, as
// if another create had made it first.
func TestCreateReportsAConcurrentCreateWithAnotherCount(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, c := newAdmin(t)
	c.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		for i, tp := range req.(*kmsg.CreateTopicsRequest).Topics {
			if tp.Topic == "race.retry-1" {
				req.(*kmsg.CreateTopicsRequest).Topics[i].NumPartitions = 6
			}
		}
		return nil, nil, false
	})
	p, err := NewPlan(Config{Base: "race", Partitions: 4, RetryDelays: []time.Duration{time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Create(ctx, adm, p)
	if !errors.Is(err, ErrNotCoPartitioned) {
		t.Fatalf("err = %v, want ErrNotCoPartitioned", err)
	}
	for _, want := range []string{"race 4, race.retry-1 6, race.dlq 4, race.dedup 4", "with another --partitions probably created topics at the same time",
		"raise race, race.dlq, race.dedup to 6 partitions", "then run `hookline topics check`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// Cancelled while waiting for new topics to show in metadata (a signal
// during startup), the error says so: callers tell a requested stop from a
// broker problem with errors.Is(err, context.Canceled).
func TestWaitVisibleCanceledWrapsTheCause(t *testing.T) {
	adm, _ := newAdmin(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	err := waitVisible(ctx, adm, []string{"never-created"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want it to wrap context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "never-created") {
		t.Errorf("err does not name the topic it waited for: %v", err)
	}
}

// A replication factor above the cluster's broker count is refused by the
// broker; the error says how many brokers there are and what to give.
func TestReplicationFactorAboveBrokersSaysWhatToDo(t *testing.T) {
	adm, _ := newAdmin(t)
	plan, err := NewPlan(Config{Base: "rf.events", Partitions: 1, ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Create(context.Background(), adm, plan)
	if err == nil || !strings.Contains(err.Error(), "the cluster has 1 broker(s)") || !strings.Contains(err.Error(), "--replication-factor") {
		t.Fatalf("err = %v, want it to name the broker count and the flag", err)
	}
}

// A topic whose name differs from an existing one only in '.' versus '_'
// is refused before anything is created, naming both: Kafka refuses it
// with a bare INVALID_TOPIC_EXCEPTION, after the pipeline's earlier topics
// were created.
func TestCreateRefusesACollidingName(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, _ := newAdmin(t)
	orders, err := NewPlan(Config{Base: "orders", Partitions: 1, RetryDelays: []time.Duration{time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, adm, orders); err != nil {
		t.Fatal(err)
	}
	clash, err := NewPlan(Config{Base: "orders_dlq", Partitions: 1, RetryDelays: []time.Duration{time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Create(ctx, adm, clash)
	if err == nil || !strings.Contains(err.Error(), "topic orders_dlq collides with the existing topic orders.dlq") {
		t.Fatalf("create orders_dlq next to orders.dlq: %v", err)
	}
	if len(res) != 0 {
		t.Fatalf("created %v before refusing", res)
	}
	md, err := adm.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range clash.Names.All() {
		if _, ok := md.Topics[n]; ok {
			t.Errorf("%s was created", n)
		}
	}
}
