package topics

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// CreateResult says what Create did with one topic.
type CreateResult struct {
	Topic   string
	Created bool // false: it existed already
}

// Create creates every topic of the plan that does not exist yet, with the
// plan's partitions, replication factor and configs. Existing topics are left
// untouched (run [Check] to compare them with the plan), so Create is
// idempotent.
func Create(ctx context.Context, adm *kadm.Client, p Plan) ([]CreateResult, error) {
	var out []CreateResult
	for _, s := range p.Topics {
		configs := make(map[string]*string, len(s.Configs))
		for k, v := range s.Configs {
			configs[k] = kadm.StringPtr(v)
		}
		_, err := adm.CreateTopic(ctx, p.Partitions, p.ReplicationFactor, configs, s.Name)
		switch {
		case err == nil:
			out = append(out, CreateResult{Topic: s.Name, Created: true})
		case errors.Is(err, kerr.TopicAlreadyExists):
			out = append(out, CreateResult{Topic: s.Name})
		default:
			return out, fmt.Errorf("create topic %s (%d partitions): %w", s.Name, p.Partitions, err)
		}
	}
	return out, waitVisible(ctx, adm, p.Names.All())
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
				err = fmt.Errorf("topic %s created but not visible in metadata yet", missing)
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
	Actual            map[string]string // the planned config keys as the broker reports them
}

// Problem is one way a topic differs from its plan.
type Problem struct {
	Topic   string
	Message string
}

func (p Problem) String() string { return p.Topic + ": " + p.Message }

// Report is the result of [Inspect].
type Report struct {
	Topics   []State
	Problems []Problem
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

// Inspect compares the cluster with the plan. It reports every mismatch: a
// missing topic, partition counts that differ inside the pipeline (or from
// expectPartitions when it is > 0), a wrong cleanup.policy, and a retry topic
// whose retention is shorter than its delay. Only a failure to ask the cluster
// is returned as an error.
func Inspect(ctx context.Context, adm *kadm.Client, p Plan, expectPartitions int32) (Report, error) {
	names := p.Names.All()
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return Report{}, fmt.Errorf("list topics: %w", err)
	}
	var existing []string
	for _, n := range names {
		if d, ok := details[n]; ok && d.Err == nil {
			existing = append(existing, n)
		}
	}
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
			r.Problems = append(r.Problems, Problem{s.Name, "missing: run `hookline topics create` with the same --base and --retry-delays"})
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
					if _, planned := s.Configs[c.Key]; planned && c.Value != nil {
						st.Actual[c.Key] = *c.Value
					}
				}
			}
		}
		r.Topics = append(r.Topics, st)
	}
	r.Problems = append(r.Problems, partitionProblems(r.Topics, expectPartitions)...)
	for _, st := range r.Topics {
		r.Problems = append(r.Problems, configProblems(st, p)...)
	}
	return r, nil
}

// partitionProblems reports partition counts that break co-partitioning.
func partitionProblems(states []State, expect int32) []Problem {
	counts := map[int32][]string{}
	for _, st := range states {
		if st.Exists {
			counts[st.Partitions] = append(counts[st.Partitions], st.Name)
		}
	}
	var out []Problem
	if expect > 0 {
		for _, st := range states {
			if st.Exists && st.Partitions != expect {
				out = append(out, Problem{st.Name, fmt.Sprintf("has %d partitions, expected %d (--partitions)", st.Partitions, expect)})
			}
		}
		return out
	}
	if len(counts) <= 1 {
		return nil
	}
	// Name the majority as the reference so the message points at the odd ones.
	var ref int32
	for n, ts := range counts {
		if len(ts) > len(counts[ref]) || (len(ts) == len(counts[ref]) && n > ref) {
			ref = n
		}
	}
	for _, st := range states {
		if st.Exists && st.Partitions != ref {
			out = append(out, Problem{st.Name, fmt.Sprintf(
				"has %d partitions but the rest of the pipeline has %d: all topics of a pipeline must be co-partitioned; add partitions with kafka-topics --alter, or recreate the pipeline",
				st.Partitions, ref)})
		}
	}
	return out
}

func configProblems(st State, p Plan) []Problem {
	if !st.Exists {
		return nil
	}
	var out []Problem
	want := st.Configs["cleanup.policy"]
	got, known := st.Actual["cleanup.policy"]
	if known && normalizePolicy(got) != want {
		out = append(out, Problem{st.Name, fmt.Sprintf("cleanup.policy is %q, expected %q: kafka-configs --alter --entity-type topics --entity-name %s --add-config cleanup.policy=%s",
			got, want, st.Name, want)})
	}
	if st.Role == RoleRetry {
		if v, ok := st.Actual["retention.ms"]; ok {
			if msv, err := strconv.ParseInt(v, 10, 64); err == nil && msv >= 0 {
				delay := p.RetryDelays[st.Tier-1]
				if time.Duration(msv)*time.Millisecond <= delay {
					out = append(out, Problem{st.Name, fmt.Sprintf("retention.ms %d is not longer than the tier's delay %s: waiting retries would be deleted", msv, delay)})
				}
			}
		}
	}
	return out
}

func normalizePolicy(v string) string {
	parts := strings.Split(strings.ReplaceAll(v, " ", ""), ",")
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
