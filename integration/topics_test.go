package integration

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestTopicsCreateTwiceThenCheck(t *testing.T) {
	base := uniqueBase(t)
	t.Cleanup(func() {
		deleteTopics(base, base+".retry-1", base+".retry-2", base+".retry-3", base+".dlq", base+".dedup")
	})
	for i := 0; i < 2; i++ {
		r := runCLI(t, nil, "topics", "create", "--base", base, "--partitions", "4")
		if r.code != 0 {
			t.Fatalf("topics create #%d: exit %d\n%s%s", i+1, r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, "ok: pipeline "+base+" has 6 topics with 4 partitions") {
			t.Fatalf("create #%d output:\n%s", i+1, r.stdout)
		}
	}

	// A separate client sees the six topics, co-partitioned, dedup compacted.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := admin(t)
	names := []string{base, base + ".retry-1", base + ".retry-2", base + ".retry-3", base + ".dlq", base + ".dedup"}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		d, ok := details[n]
		if !ok || d.Err != nil || len(d.Partitions) != 4 {
			t.Errorf("topic %s: present=%v err=%v partitions=%d, want 4", n, ok, d.Err, len(d.Partitions))
		}
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, base+".dedup", base)
	if err != nil {
		t.Fatal(err)
	}
	policy := map[string]string{}
	for _, rc := range cfgs {
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil {
				policy[rc.Name] = *c.Value
			}
		}
	}
	if policy[base+".dedup"] != "compact" || policy[base] != "delete" {
		t.Fatalf("cleanup.policy: %v", policy)
	}

	if r := runCLI(t, nil, "topics", "check", "--base", base); r.code != 0 {
		t.Fatalf("check on a fresh pipeline: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, nil, "topics", "describe", "--base", base); r.code != 0 || !strings.Contains(r.stdout, "cleanup.policy=compact") {
		t.Fatalf("describe: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestTopicsCheckFailsOnDeletedTopic(t *testing.T) {
	base := uniqueBase(t)
	if r := runCLI(t, nil, "topics", "create", "--base", base, "--partitions", "2"); r.code != 0 {
		t.Fatalf("create: %s%s", r.stdout, r.stderr)
	}
	t.Cleanup(func() {
		deleteTopics(base, base+".retry-1", base+".retry-2", base+".retry-3", base+".dlq", base+".dedup")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin(t).DeleteTopics(ctx, base+".retry-2"); err != nil {
		t.Fatal(err)
	}
	r := checkUntilFails(t, base)
	if r.code != 1 {
		t.Fatalf("check after deleting retry-2: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{base + ".retry-2: missing", "hookline topics create"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

func TestTopicsCheckFailsOnPartitionMismatch(t *testing.T) {
	base := uniqueBase(t)
	if r := runCLI(t, nil, "topics", "create", "--base", base, "--partitions", "3"); r.code != 0 {
		t.Fatalf("create: %s%s", r.stdout, r.stderr)
	}
	t.Cleanup(func() {
		deleteTopics(base, base+".retry-1", base+".retry-2", base+".retry-3", base+".dlq", base+".dedup")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin(t).CreatePartitions(ctx, 2, base+".retry-1"); err != nil {
		t.Fatal(err)
	}
	r := checkUntilFails(t, base)
	if r.code != 1 {
		t.Fatalf("check with a 5-partition retry-1: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	if want := base + ".retry-1: has 5 partitions but the rest of the pipeline has 3"; !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr lacks %q:\n%s", want, r.stderr)
	}
}

// checkUntilFails runs `topics check` until it fails or 30 s pass: topic
// deletion and partition changes reach a real broker's metadata
// asynchronously.
func checkUntilFails(t *testing.T, base string) cliResult {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := runCLI(t, nil, "topics", "check", "--base", base)
		if r.code != 0 || time.Now().After(deadline) {
			return r
		}
		time.Sleep(500 * time.Millisecond)
	}
}
