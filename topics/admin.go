package topics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// CreateResult says what Create did with one topic.
type CreateResult struct {
	Topic      string
	Created    bool  // false: it existed already
	Partitions int32 // of a created topic
}

// ErrNotCoPartitioned is wrapped by the error Create returns when, after it
// created topics, the pipeline's topics disagree on partition count.
var ErrNotCoPartitioned = errors.New("the pipeline's topics are not co-partitioned")

// Create creates every topic of the plan that does not exist yet, with the
// plan's replication factor and configs. Existing topics are left untouched
// (run [Inspect] to compare them with the plan), so Create is idempotent.
// adm is kadm.NewClient over any franz-go client of the cluster (its
// options can come from producer.KafkaConfig.Opts); Create does not close it.
//
// New topics get the plan's partition count, unless topics of the pipeline
// exist already: then they get the largest count among them, because a
// pipeline whose topics disagree on partition count cannot run and
// partitions can only be added (a smaller count would leave more topics to
// raise). Adding a retry tier to a running pipeline therefore just works; a
// CreateResult with Partitions != p.Partitions tells the caller the plan's
// count was not used.
//
// When Create created a topic and the pipeline's topics disagree on
// partition count afterwards (they disagreed before, or another Create with
// another count ran at the same time), it returns the results with an error
// wrapping ErrNotCoPartitioned that names the topics to raise and the
// kafka-topics command.
func Create(ctx context.Context, adm *kadm.Client, p Plan) ([]CreateResult, error) {
	md, err := listTopics(ctx, adm)
	if err != nil {
		return nil, err
	}
	if err := collisions(md, p); err != nil {
		return nil, err
	}
	before := partitionsOf(md, p)
	parts := newTopicPartitions(slices.Collect(maps.Values(before)), p)
	var out []CreateResult
	created := false
	for _, s := range p.Topics {
		configs := make(map[string]*string, len(s.Configs))
		for k, v := range s.Configs {
			configs[k] = kadm.StringPtr(v)
		}
		_, err := adm.CreateTopic(ctx, parts, p.ReplicationFactor, configs, s.Name)
		switch {
		case err == nil:
			created = true
			out = append(out, CreateResult{Topic: s.Name, Created: true, Partitions: parts})
		case errors.Is(err, kerr.TopicAlreadyExists):
			out = append(out, CreateResult{Topic: s.Name})
		case errors.Is(err, kerr.InvalidReplicationFactor):
			return out, fmt.Errorf("create topic %s (%d partitions, replication factor %d): %w: %s", s.Name, parts, p.ReplicationFactor, err, replicationAdvice(ctx, adm))
		default:
			return out, fmt.Errorf("create topic %s (%d partitions): %w", s.Name, parts, err)
		}
	}
	if err := waitVisible(ctx, adm, p.Names.All()); err != nil {
		return out, err
	}
	if !created {
		return out, nil
	}
	after, bootstrap, err := pipelinePartitions(ctx, adm, p)
	if err != nil {
		return out, fmt.Errorf("re-read the pipeline after creating topics: %w", err)
	}
	return out, notCoPartitioned(p, before, after, parts, bootstrap)
}

// newTopicPartitions is the count Create gives a new topic when the
// pipeline's existing topics have counts: the largest, else the plan's.
func newTopicPartitions(counts []int32, p Plan) int32 {
	var n int32
	for _, c := range counts {
		n = max(n, c)
	}
	if n == 0 {
		return p.Partitions
	}
	return n
}

// NewTopicPartitions returns the partition count [Create] would give a
// topic of p that is missing, as far as r (a report on p) shows: the
// largest count among the pipeline's existing topics, else p.Partitions.
func (r Report) NewTopicPartitions(p Plan) int32 {
	var counts []int32
	for _, st := range r.Topics {
		if st.Exists {
			counts = append(counts, st.Partitions)
		}
	}
	return newTopicPartitions(counts, p)
}

// collisions refuses, before anything is created, a missing topic of p
// whose name Kafka would refuse as colliding with an existing topic (see
// CollisionKey): the broker's answer, INVALID_TOPIC_EXCEPTION, does not
// say why, and topics created before it would be left half a pipeline.
// md lists every topic of the cluster.
func collisions(md kadm.Metadata, p Plan) error {
	byKey := map[string]string{}
	for name := range md.Topics {
		byKey[CollisionKey(name)] = name
	}
	for _, n := range p.Names.All() {
		if _, exists := md.Topics[n]; exists {
			continue
		}
		if other, ok := byKey[CollisionKey(n)]; ok {
			return fmt.Errorf("topic %s collides with the existing topic %s: Kafka treats '.' and '_' in topic names alike and refuses it; choose a base whose topics differ from every existing topic in more than '.' versus '_'", n, other)
		}
	}
	return nil
}

// pipelinePartitions returns the partition count of each existing topic of
// the pipeline, and the brokers as a --bootstrap-server value.
func pipelinePartitions(ctx context.Context, adm *kadm.Client, p Plan) (map[string]int32, string, error) {
	md, err := listTopics(ctx, adm)
	if err != nil {
		return nil, "", err
	}
	return partitionsOf(md, p), bootstrapServers(md.Brokers), nil
}

// listTopics returns the metadata of every topic: asking for missing ones
// by name makes the client retry the metadata request for seconds. Fresh,
// not the client's cache: the counts after creating must include what
// others just created.
func listTopics(ctx context.Context, adm *kadm.Client) (kadm.Metadata, error) {
	md, err := adm.Metadata(fresh(ctx))
	if err != nil {
		return kadm.Metadata{}, fmt.Errorf("list topics: %w", err)
	}
	return md, nil
}

// partitionsOf returns the partition count of each topic of p in md.
func partitionsOf(md kadm.Metadata, p Plan) map[string]int32 {
	counts := map[string]int32{}
	for _, n := range p.Names.All() {
		if d, ok := md.Topics[n]; ok && d.Err == nil && len(d.Partitions) > 0 {
			counts[n] = int32(len(d.Partitions))
		}
	}
	return counts
}

// fresh makes kadm's metadata calls ask the broker instead of answering
// from the client's cache (up to 5 s old): kadm bypasses the cache when it
// asks for authorized operations, which cost the broker little.
func fresh(ctx context.Context) context.Context { return kadm.WithAuthorizedOps(ctx) }

// notCoPartitioned returns nil when every topic in after has the same
// count, else an error naming the counts, the likely cause and the fix.
// used is the count Create gave the topics it created.
func notCoPartitioned(p Plan, before, after map[string]int32, used int32, bootstrap string) error {
	var top int32
	distinct := map[int32]bool{}
	for _, n := range after {
		top = max(top, n)
		distinct[n] = true
	}
	if len(distinct) <= 1 {
		return nil
	}
	var have, below []string
	for _, name := range p.Names.All() {
		if n, ok := after[name]; ok {
			have = append(have, fmt.Sprintf("%s %d", name, n))
			if n < top {
				below = append(below, name)
			}
		}
	}
	cause := "another `topics create` (or a starting serve, consume or run) with another --partitions probably created topics at the same time"
	disagreed := map[int32]bool{}
	for _, n := range before {
		disagreed[n] = true
	}
	if len(disagreed) > 1 {
		cause = fmt.Sprintf("they disagreed before this create, which gave its new topics the largest existing count, %d", used)
	}
	return fmt.Errorf("%w: partitions per topic after creating: %s (%s); raise %s to %d partitions (%s, for each; conversations that hash to a new partition lose their order across the change), then run `hookline topics check`",
		ErrNotCoPartitioned, strings.Join(have, ", "), cause, strings.Join(below, ", "), top, kafkaTopicsAlter(bootstrap, "<topic>", top))
}

// waitVisible waits until metadata shows every topic with leaders: a real
// broker answers CreateTopics before the new topics reach every metadata
// cache, and a check or produce right after would not find them.
func waitVisible(ctx context.Context, adm *kadm.Client, names []string) error {
	backoff := 50 * time.Millisecond
	for {
		details, err := adm.ListTopics(ctx, names...)
		missing := ""
		if err == nil {
			for _, n := range names {
				d, ok := details[n]
				if !ok || d.Err != nil || len(d.Partitions) == 0 {
					missing = n
					break
				}
				for _, pd := range d.Partitions {
					if pd.Leader < 0 || pd.Err != nil {
						missing = n
					}
				}
			}
			if missing == "" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				// The cause comes along, so that callers tell a requested
				// stop (Canceled) from a broker too slow (DeadlineExceeded).
				err = fmt.Errorf("topic %s created but not visible in metadata yet: %w", missing, ctx.Err())
			}
			return fmt.Errorf("wait for new topics: %w", err)
		case <-time.After(backoff):
			backoff = min(backoff*2, time.Second)
		}
	}
}

// State is what the cluster says about one topic of a plan.
type State struct {
	Spec
	Exists            bool
	Partitions        int32
	ReplicationFactor int               // of partition 0
	Actual            map[string]string // the planned config keys, and max.message.bytes, as the broker reports them
}

// MissingHint is the Problem message of a topic of the plan that does not
// exist. Callers that know the exact command (the CLI) may replace it.
const MissingHint = "missing: create it with `hookline topics create` and this pipeline's settings (the same --config, or the same --base and --retry-delays)"

// Problem is one way a topic differs from its plan.
type Problem struct {
	Topic   string
	Message string
}

func (p Problem) String() string { return p.Topic + ": " + p.Message }

// ErrMissing is wrapped by the error of [Report.Unusable] when topics of
// the pipeline do not exist.
var ErrMissing = errors.New("pipeline topics are missing")

// Report is the result of [Inspect].
type Report struct {
	Topics   []State // one per topic of the plan, in Plan.Topics order
	Problems []Problem
	// ExtraRetryTiers are the existing topics named <base>.retry-K with K
	// greater than the plan's tier count (len(Plan.RetryDelays)), by
	// ascending K; empty when there are none. A topic so named that has a
	// .dlq and a .dedup of its own is taken for another pipeline's base
	// and left out. A pipeline that ran with
	// more retry tiers leaves them behind, and records in them are
	// handled by no configured tier. Each also has a Problem (which does
	// not make the pipeline Unusable).
	ExtraRetryTiers []ExtraTier
}

// ExtraTier is a retry topic of the pipeline beyond the plan's tiers.
type ExtraTier struct {
	Topic      string // <base>.retry-K
	Tier       int    // K, greater than len(Plan.RetryDelays)
	Partitions int32
	// Records is what the topic held when Inspect looked: the sum over its
	// partitions of the end offset minus the start offset (records
	// already deleted by retention are not counted). 0: empty. -1: its
	// offsets could not be listed.
	Records int64
}

// Consumable reports whether the consumer reads extra tier x: only when it
// has the pipeline's partition count, since its records must keep their
// partition number on every hop (true when r has no topics to compare).
func (r Report) Consumable(x ExtraTier) bool {
	return len(r.Topics) == 0 || x.Partitions == r.Topics[0].Partitions
}

// OK reports whether no problem was found.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Err returns nil when r is OK, else one error listing every problem and what
// to do about it.
func (r Report) Err() error {
	if r.OK() {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d topic problem(s):", len(r.Problems))
	for _, p := range r.Problems {
		b.WriteString("\n  - " + p.String())
	}
	return errors.New(b.String())
}

// Unusable returns an error when the pipeline cannot run at all: a topic is
// missing, or its topics disagree on partition count (so partition p of
// every topic cannot go to one consumer). Other problems, such as configs
// that differ from the plan, leave the pipeline usable: callers log them.
func (r Report) Unusable() error {
	counts := map[int32]bool{}
	missing := false
	for _, st := range r.Topics {
		if !st.Exists {
			missing = true
			continue
		}
		counts[st.Partitions] = true
	}
	switch {
	case len(counts) > 1:
		return fmt.Errorf("the pipeline's topics are not co-partitioned (partition counts differ), so partition p of every topic cannot go to one consumer: %w", r.Err())
	case missing:
		return fmt.Errorf("%w: create them with `hookline topics create` and this pipeline's settings (run, serve and consume create missing topics at startup unless started with --create-topics=false; from Go, topics.Create): %w", ErrMissing, r.Err())
	}
	return nil
}

// Inspect compares the cluster with the plan. It reports every mismatch: a
// missing topic, partition counts that differ inside the pipeline (or from
// expectPartitions when it is > 0), a wrong cleanup.policy, a
// max.message.bytes below the plan's (on the dedup topic: below
// MinDedupMaxMessageBytes), and a retention shorter than the
// rules of [Plan] allow. Suggested kafka-configs and kafka-topics commands
// name the brokers of the cluster's metadata as --bootstrap-server. Only a
// failure to ask the cluster is returned as an error.
func Inspect(ctx context.Context, adm *kadm.Client, p Plan, expectPartitions int32) (Report, error) {
	names := p.Names.All()
	// Every topic (retry tiers beyond the plan's are found among them) and
	// the brokers (suggested kafka-configs and kafka-topics commands name
	// them as --bootstrap-server). Listing all rather than asking by name:
	// for a topic the client has seen and that was deleted since, kgo
	// retries a by-name request for seconds. Fresh, not the client's cache:
	// a check right after a change (or a create) must see it.
	ctx = fresh(ctx)
	md, err := adm.Metadata(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("list topics: %w", err)
	}
	details := md.Topics
	var existing []string
	for _, n := range names {
		if d, ok := details[n]; ok && d.Err == nil {
			existing = append(existing, n)
		}
	}
	bootstrap := bootstrapServers(md.Brokers)
	var configs kadm.ResourceConfigs
	if len(existing) > 0 {
		configs, err = adm.DescribeTopicConfigs(ctx, existing...)
		if err != nil {
			return Report{}, fmt.Errorf("describe topic configs: %w", err)
		}
	}

	var r Report
	for _, s := range p.Topics {
		st := State{Spec: s, Actual: map[string]string{}}
		d, ok := details[s.Name]
		switch {
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			r.Problems = append(r.Problems, Problem{s.Name, MissingHint})
		case d.Err != nil:
			r.Problems = append(r.Problems, Problem{s.Name, fmt.Sprintf("cannot be described: %v (check the client's ACLs)", d.Err)})
		default:
			st.Exists = true
			st.Partitions = int32(len(d.Partitions))
			if p0, ok := d.Partitions[0]; ok {
				st.ReplicationFactor = len(p0.Replicas)
			}
			if rc, err := configs.On(s.Name, nil); err == nil {
				for _, c := range rc.Configs {
					// max.message.bytes always: producers size their
					// batches to it, the dedup topic's included.
					if _, planned := s.Configs[c.Key]; (planned || c.Key == maxMessageBytes) && c.Value != nil {
						st.Actual[c.Key] = *c.Value
					}
				}
			}
		}
		r.Topics = append(r.Topics, st)
	}
	r.Problems = append(r.Problems, partitionProblems(r.Topics, expectPartitions, bootstrap)...)
	for _, st := range r.Topics {
		r.Problems = append(r.Problems, configProblems(st, p, bootstrap)...)
	}
	r.ExtraRetryTiers = extraTiers(ctx, adm, p, md.Topics)
	for _, x := range r.ExtraRetryTiers {
		r.Problems = append(r.Problems, extraTierProblem(x, p, bootstrap))
	}
	return r, nil
}

// extraTiers finds the retry topics of p's base beyond its tiers and counts
// their records. A failure to list offsets leaves Records at -1. A topic
// named like a tier that has a .dlq and a .dedup of its own is the base of
// another pipeline (hookline allows a base such as <base>.retry-5 next to
// <base> with fewer tiers), not a tier of this one.
func extraTiers(ctx context.Context, adm *kadm.Client, p Plan, all kadm.TopicDetails) []ExtraTier {
	var out []ExtraTier
	for name, d := range all {
		if all.Has(name+".dlq") && all.Has(name+".dedup") {
			continue
		}
		if k, ok := p.Names.RetryTier(name); ok && k > len(p.RetryDelays) && d.Err == nil {
			out = append(out, ExtraTier{Topic: name, Tier: k, Partitions: int32(len(d.Partitions)), Records: -1})
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.SortFunc(out, func(a, b ExtraTier) int { return cmp.Compare(a.Tier, b.Tier) })
	names := make([]string, len(out))
	for i, x := range out {
		names[i] = x.Topic
	}
	starts, err := adm.ListStartOffsets(ctx, names...)
	if err != nil {
		return out
	}
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return out
	}
	for i, x := range out {
		var n int64
		known := len(ends[x.Topic]) > 0
		for part, end := range ends[x.Topic] {
			start, ok := starts.Lookup(x.Topic, part)
			if end.Err != nil || !ok || start.Err != nil || end.Offset < 0 || start.Offset < 0 {
				known = false
				break
			}
			n += max(end.Offset-start.Offset, 0)
		}
		if known {
			out[i].Records = n
		}
	}
	return out
}

// extraTierProblem says what to do with a retry tier beyond the plan's.
func extraTierProblem(x ExtraTier, p Plan, bootstrap string) Problem {
	head := fmt.Sprintf("retry tier %d exists but the pipeline has %d (--retry-delays / retry_delays)", x.Tier, len(p.RetryDelays))
	del := fmt.Sprintf("kafka-topics --bootstrap-server %s --delete --topic %s", orBrokers(bootstrap), x.Topic)
	drain := fmt.Sprintf("consumers (run, consume) handle what waits there, and the group's lag on it (hookline_consumer_lag) says whether any still does; once that is 0 and no process runs with %d or more tiers, delete the topic: %s",
		x.Tier, del)
	switch {
	case x.Records == 0:
		return Problem{x.Topic, fmt.Sprintf("%s; it is empty and can be deleted once no process runs with %d or more tiers: %s", head, x.Tier, del)}
	case x.Records < 0:
		return Problem{x.Topic, fmt.Sprintf("%s; it holds records (their count could not be read), handled or not: %s", head, drain)}
	default:
		return Problem{x.Topic, fmt.Sprintf("%s; it holds %d record(s), handled or not: %s", head, x.Records, drain)}
	}
}

// CoPartitionFix says how to repair a pipeline whose topics disagree on
// partition count when the largest count is top. Kafka cannot remove
// partitions, so the others are raised. The command it suggests names the
// brokers as <brokers>; [CoPartitionFixAt] fills them in.
func CoPartitionFix(top int32) string { return CoPartitionFixAt(top, "") }

// CoPartitionFixAt is [CoPartitionFix] with the kafka-topics command's
// --bootstrap-server set to bootstrap (comma-separated host:port; "" writes
// <brokers>).
func CoPartitionFixAt(top int32, bootstrap string) string {
	return fmt.Sprintf("give every topic of the pipeline %d partitions (%s; conversations that hash to a new partition lose their order across the change, and their earlier events' redeliveries are not deduplicated), or move to a new pipeline (a new --base): see docs/operations.md",
		top, kafkaTopicsAlter(bootstrap, "<topic>", top))
}

// bootstrapServers lists the brokers of a metadata response as a
// --bootstrap-server value: host:port, comma-separated, by node id.
func bootstrapServers(brokers kadm.BrokerDetails) string {
	bs := slices.Clone(brokers)
	slices.SortFunc(bs, func(a, b kadm.BrokerDetail) int { return cmp.Compare(a.NodeID, b.NodeID) })
	addrs := make([]string, 0, len(bs))
	for _, b := range bs {
		addrs = append(addrs, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
	}
	return strings.Join(addrs, ",")
}

// kafkaConfigsAlter is the Kafka CLI command that sets one topic config.
func kafkaConfigsAlter(bootstrap, topic, key, value string) string {
	return fmt.Sprintf("kafka-configs --bootstrap-server %s --alter --entity-type topics --entity-name %s --add-config %s=%s",
		orBrokers(bootstrap), topic, key, value)
}

// kafkaTopicsAlter is the Kafka CLI command that raises a topic's
// partition count.
func kafkaTopicsAlter(bootstrap, topic string, partitions int32) string {
	return fmt.Sprintf("kafka-topics --bootstrap-server %s --alter --topic %s --partitions %d", orBrokers(bootstrap), topic, partitions)
}

func orBrokers(bootstrap string) string {
	if bootstrap == "" {
		return "<brokers>"
	}
	return bootstrap
}

// partitionProblems reports partition counts that break co-partitioning,
// and, when expect > 0 (--partitions or the config file gave a count),
// counts that differ from it. A pipeline that is not co-partitioned gets the co-partitioning fix
// (raise every topic to the largest count, or to expect if larger) and the
// list of topics that need raising; one that is co-partitioned with another
// count than expect is told that partitions cannot be removed.
func partitionProblems(states []State, expect int32, bootstrap string) []Problem {
	counts := map[int32][]string{}
	for _, st := range states {
		if st.Exists {
			counts[st.Partitions] = append(counts[st.Partitions], st.Name)
		}
	}
	var out []Problem
	if len(counts) == 1 {
		if expect <= 0 {
			return nil
		}
		// Every existing topic has the same count: one problem, on the
		// first of them, rather than the same one per topic.
		for have, ts := range counts {
			if have != expect {
				out = append(out, Problem{ts[0], expectFix(have, expect, len(ts), bootstrap)})
			}
		}
		return out
	}
	if len(counts) == 0 {
		return nil
	}
	// Name the majority as the reference so the message points at the odd ones.
	var ref int32
	for n, ts := range counts {
		if len(ts) > len(counts[ref]) || (len(ts) == len(counts[ref]) && n > ref) {
			ref = n
		}
	}
	// Raise everything to the largest count (partitions cannot be
	// removed), or to --partitions when that is larger still.
	target := max(ref, expect)
	for n := range counts {
		target = max(target, n)
	}
	var below []string
	for _, st := range states {
		if st.Exists && st.Partitions < target {
			below = append(below, st.Name)
		}
	}
	asked := ""
	if expect > 0 {
		asked = fmt.Sprintf(" (--partitions, or partitions in the config file, asks for %d)", expect)
	}
	for _, st := range states {
		if st.Exists && st.Partitions != ref {
			out = append(out, Problem{st.Name, fmt.Sprintf(
				"has %d partitions but the rest of the pipeline has %d%s: all topics of a pipeline must be co-partitioned; %s; the topics below %d: %s",
				st.Partitions, ref, asked, CoPartitionFixAt(target, bootstrap), target, strings.Join(below, ", "))})
		}
	}
	return out
}

// expectFix says what to do about a co-partitioned pipeline of have
// partitions when --partitions asks for want; topics is how many topics of
// the pipeline exist (all with have partitions).
func expectFix(have, want int32, topics int, bootstrap string) string {
	head := fmt.Sprintf("has %d partitions, expected %d (--partitions, or partitions in the config file)", have, want)
	if topics > 1 {
		head += fmt.Sprintf(", as have all %d existing topics of the pipeline", topics)
	}
	keep := fmt.Sprintf("keep %d (an existing pipeline keeps its count: create and startup use it; set --partitions or the file's partitions to %d, or leave them out)", have, have)
	if have > want {
		return fmt.Sprintf("%s: Kafka cannot remove partitions; %s, or create a %d-partition pipeline under a new --base and drain this one",
			head, keep, want)
	}
	return fmt.Sprintf("%s: %s, or give every topic of the pipeline %d partitions (%s for each topic; conversations that hash to a new partition lose their order across the change, and their earlier events' redeliveries are not deduplicated)",
		head, keep, want, kafkaTopicsAlter(bootstrap, "<topic>", want))
}

func configProblems(st State, p Plan, bootstrap string) []Problem {
	if !st.Exists {
		return nil
	}
	var out []Problem
	want := st.Configs["cleanup.policy"]
	got, known := st.Actual["cleanup.policy"]
	if known && normalizePolicy(got) != want {
		out = append(out, Problem{st.Name, fmt.Sprintf("cleanup.policy is %q, expected %q: %s",
			got, want, kafkaConfigsAlter(bootstrap, st.Name, "cleanup.policy", want))})
	}
	if got, ok := st.Actual[maxMessageBytes]; ok && st.Role == RoleDedup && atoi(got) < MinDedupMaxMessageBytes {
		out = append(out, Problem{st.Name, fmt.Sprintf("max.message.bytes is %s, below %d: a dedup record (an event id of up to 1 KiB and its outcome) may not fit, and then the consumer cannot record outcomes, commits nothing and stalls; %s (the planned value)",
			got, MinDedupMaxMessageBytes, kafkaConfigsAlter(bootstrap, st.Name, maxMessageBytes, strconv.Itoa(DedupMaxMessageBytes)))})
	}
	if want, planned := st.Configs[maxMessageBytes]; planned && st.Role != RoleDedup {
		if got, ok := st.Actual[maxMessageBytes]; ok && atoi(got) < atoi(want) {
			out = append(out, Problem{st.Name, fmt.Sprintf("max.message.bytes is %s, below the planned %s: bodies above %d bytes are refused with 413; %s",
				got, want, atoi(got)-HeaderRoom, kafkaConfigsAlter(bootstrap, st.Name, maxMessageBytes, want))})
		}
	}
	if st.Role == RoleDLQ {
		// The dedup state says "dead-lettered" for the window and skips a
		// sender's redelivery meanwhile: a dead letter deleted sooner
		// leaves the event nowhere.
		if r, ok := retention(st); ok {
			if floor := addSat(p.DedupWindow, 24*time.Hour).Truncate(time.Millisecond); r < floor {
				out = append(out, Problem{st.Name, fmt.Sprintf("retention.ms %d is shorter than the dedup window + 24h (%s): dead letters would be deleted while redeliveries of their events are still skipped; %s (the planned retention)",
					r.Milliseconds(), floor, kafkaConfigsAlter(bootstrap, st.Name, "retention.ms", st.Configs["retention.ms"]))})
			}
		}
	}
	if st.Role == RoleMain {
		if r, ok := retention(st); ok && r < MinRetention {
			out = append(out, Problem{st.Name, fmt.Sprintf("retention.ms %d is shorter than %s: events wait here while consumers are down or behind, and one deleted before it is handled is lost although its sender got 200; %s (the planned retention)",
				r.Milliseconds(), ShortDuration(MinRetention), kafkaConfigsAlter(bootstrap, st.Name, "retention.ms", st.Configs["retention.ms"]))})
		}
	}
	if st.Role == RoleRetry {
		if r, ok := retention(st); ok {
			delay := p.RetryDelays[st.Tier-1]
			if floor := addSat(delay, MinRetention).Truncate(time.Millisecond); r < floor {
				out = append(out, Problem{st.Name, fmt.Sprintf("retention.ms %d is shorter than the tier's delay + %s (%s): a retry waits its delay and then, while consumers are down or behind, as long as an event in the main topic; it would be deleted before it is handled; %s (the planned retention: 2 x the longest retry delay + 24h, or the main topic's if longer)",
					r.Milliseconds(), ShortDuration(MinRetention), ShortDuration(floor), kafkaConfigsAlter(bootstrap, st.Name, "retention.ms", st.Configs["retention.ms"]))})
			}
		}
	}
	return out
}

// retention returns the topic's retention.ms as read from the cluster, when
// it is known and finite (not -1).
func retention(st State) (time.Duration, bool) {
	v, ok := st.Actual["retention.ms"]
	if !ok {
		return 0, false
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// ShortDuration writes d as a person would: 24h instead of 24h0m0s, 1m
// instead of 1m0s.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// atoi parses a numeric config value; 0 when it is not a number.
func atoi(v string) int {
	n, _ := strconv.Atoi(v)
	return n
}

// FranzDefaultBatchMaxBytes is franz-go's own produce batch limit, used for
// a topic whose max.message.bytes is unknown.
const FranzDefaultBatchMaxBytes = 1_000_012

// messageBytes parses a max.message.bytes value as a franz-go batch limit:
// 0 when it is not a positive number, at most 1 GiB (franz-go's ceiling).
func messageBytes(v string) int32 {
	return int32(min(max(atoi(v), 0), 1<<30))
}

// MaxMessageBytes returns the max.message.bytes of the named topic as
// Inspect read it, or KafkaDefaultMaxMessageBytes when it is unknown.
func (r Report) MaxMessageBytes(topic string) int32 {
	for _, st := range r.Topics {
		if st.Name == topic {
			if n := messageBytes(st.Actual[maxMessageBytes]); n > 0 {
				return n
			}
		}
	}
	return KafkaDefaultMaxMessageBytes
}

// TopicMaxMessageBytes asks the cluster for one topic's max.message.bytes;
// KafkaDefaultMaxMessageBytes when the broker does not say.
func TopicMaxMessageBytes(ctx context.Context, adm *kadm.Client, topic string) (int32, error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("describe configs of %s: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		return 0, fmt.Errorf("describe configs of %s: %w", topic, err)
	}
	for _, c := range rc.Configs {
		if c.Key == maxMessageBytes && c.Value != nil {
			if n := messageBytes(*c.Value); n > 0 {
				return n, nil
			}
		}
	}
	return KafkaDefaultMaxMessageBytes, nil
}

// MaxBodyBytes is the largest body every hop of the pipeline can carry: the
// smallest max.message.bytes of its main, retry and DLQ topics, minus
// HeaderRoom.
func (r Report) MaxBodyBytes() int64 {
	limit := int32(math.MaxInt32)
	for _, st := range r.Topics {
		if st.Role != RoleDedup {
			limit = min(limit, r.MaxMessageBytes(st.Name))
		}
	}
	if limit == math.MaxInt32 {
		limit = KafkaDefaultMaxMessageBytes
	}
	return int64(limit) - HeaderRoom
}

// RaiseForBody returns the kafka-configs commands that let every hop of the
// pipeline carry a body of maxBody bytes: one per main, retry or DLQ topic
// whose max.message.bytes is below maxBody + HeaderRoom, with bootstrap as
// --bootstrap-server ("" writes <brokers>). Nil when no max.message.bytes
// (an int32) is that large.
func (r Report) RaiseForBody(maxBody int64, bootstrap string) []string {
	need := maxBody + HeaderRoom
	if need > math.MaxInt32 {
		return nil
	}
	var cmds []string
	for _, st := range r.Topics {
		if st.Role != RoleDedup && int64(r.MaxMessageBytes(st.Name)) < need {
			cmds = append(cmds, kafkaConfigsAlter(bootstrap, st.Name, maxMessageBytes, strconv.FormatInt(need, 10)))
		}
	}
	return cmds
}

// ProducerBatchMaxBytes returns the franz-go option that caps produce
// batches to each pipeline topic at its max.message.bytes as the broker
// reported it (other topics, and topics whose limit is unknown: franz-go's
// default, 1,000,012). Without it franz-go refuses any record
// above its default, whatever the topic allows.
func (r Report) ProducerBatchMaxBytes() kgo.ProducerOpt {
	limits := make(map[string]int32, len(r.Topics))
	for _, st := range r.Topics {
		if n := messageBytes(st.Actual[maxMessageBytes]); n > 0 {
			limits[st.Name] = n
		}
	}
	return kgo.ProducerBatchMaxBytesFn(func(topic string) int32 {
		if n, ok := limits[topic]; ok {
			return n
		}
		return FranzDefaultBatchMaxBytes
	})
}

func normalizePolicy(v string) string {
	parts := strings.Split(strings.ReplaceAll(v, " ", ""), ",")
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// replicationAdvice is the next step after the broker refused a
// replication factor: it names how many brokers the cluster has.
func replicationAdvice(ctx context.Context, adm *kadm.Client) string {
	const fix = "give --replication-factor (replication_factor in the file) at most that, or -1 for the broker's default"
	m, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return "the cluster has fewer brokers than that: " + fix
	}
	return fmt.Sprintf("the cluster has %d broker(s): %s", len(m.Brokers), fix)
}
