package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/kafkaconf"
)

// topicsCluster is an empty in-process Kafka: its brokers and an admin client.
func topicsCluster(t *testing.T) (string, *kadm.Client) {
	t.Helper()
	c := fakeKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kafkaconf.NewClient(ctx, kafkaconf.Config{Brokers: c.ListenAddrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return strings.Join(c.ListenAddrs(), ","), kadm.NewClient(cl)
}

// partitionsOf returns each existing topic's partition count.
func partitionsOf(t *testing.T, adm *kadm.Client) map[string]int {
	t.Helper()
	details, err := adm.ListTopics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for name, d := range details {
		out[name] = len(d.Partitions)
	}
	return out
}

func wantAll(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

// topics create|check|describe --config act on every pipeline of the file,
// each resolved as run/serve/consume resolve it, brokers included; so does
// HOOKLINE_CONFIG.
func TestTopicsConfigActsOnEveryPipeline(t *testing.T) {
	brokers, adm := topicsCluster(t)
	cfg := filepath.Join(t.TempDir(), "hookline.yaml")
	yaml := "brokers: [" + brokers + "]\npipelines:\n" +
		"  - base: a.events\n    partitions: 2\n    retry_delays: [5s]\n" +
		"  - base: b.events\n    partitions: 3\n    retry_delays: [1m, 10m]\n    dedup_window: 48h\n" +
		"    handler: {url: \"http://127.0.0.1:1/x\"}\n" +
		// A secret that is not deployed where topics are managed must not
		// stop the topics commands, which use no source.
		"sources:\n  - name: genesys\n    kind: genesys\n    pipeline: a.events\n" +
		"    verify: {type: shared-secret, header: X-Hookline-Secret, secret: \"${HOOKLINE_IT_UNSET_SECRET}\"}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := call(t, nil, "topics", "create", "--config", cfg)
	if code != 0 {
		t.Fatalf("create --config: exit %d\n%s%s", code, out, errOut)
	}
	wantAll(t, "create --config", out, "created  a.events.retry-1", "created  b.events.retry-2",
		"ok: pipeline a.events has 4 topics with 2 partitions each",
		"ok: pipeline b.events has 5 topics with 3 partitions each")
	parts := partitionsOf(t, adm)
	if parts["a.events.dedup"] != 2 || parts["b.events.retry-2"] != 3 || parts["b.events.dedup"] != 3 {
		t.Errorf("topics as created: %v", parts)
	}
	if _, ok := parts["hookline.events"]; ok || len(parts) != 9 {
		t.Errorf("only the file's pipelines may be created: %v", parts)
	}

	for name, c := range map[string]struct {
		vars map[string]string
		args []string
	}{
		"check --config":  {nil, []string{"topics", "check", "--config", cfg}},
		"HOOKLINE_CONFIG": {map[string]string{"HOOKLINE_CONFIG": cfg}, []string{"topics", "check"}},
	} {
		code, out, errOut := call(t, c.vars, c.args...)
		if code != 0 {
			t.Errorf("%s: exit %d\n%s%s", name, code, out, errOut)
		}
		wantAll(t, name, out, "ok: pipeline a.events has 4 topics with 2 partitions each", "ok: pipeline b.events has 5 topics with 3 partitions each")
	}
	code, out, errOut = call(t, map[string]string{"HOOKLINE_CONFIG": cfg}, "topics", "describe")
	if code != 0 {
		t.Fatalf("describe: exit %d\n%s%s", code, out, errOut)
	}
	wantAll(t, "describe", out, "pipeline a.events\n", "pipeline b.events\n", "b.events.dedup", "retention.ms=")

	// One pipeline drifts: its problem, the other's ok, exit 1.
	if _, err := adm.AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Name: "cleanup.policy", Value: kadm.StringPtr("compact")}}, "a.events.dlq"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = call(t, map[string]string{"HOOKLINE_CONFIG": cfg}, "topics", "check")
	if code != 1 {
		t.Fatalf("check with a drifted pipeline: exit %d\n%s%s", code, out, errOut)
	}
	wantAll(t, "check stdout", out, "ok: pipeline b.events")
	wantAll(t, "check stderr", errOut, "pipeline a.events differs from its plan", `a.events.dlq: cleanup.policy is "compact"`, "1 of 2 pipelines", "a.events")

	// A pipeline flag is as ambiguous here as for run/serve/consume.
	if code, _, errOut := call(t, nil, "topics", "check", "--config", cfg, "--partitions", "4"); code != 2 || !strings.Contains(errOut, "--partitions is ambiguous") {
		t.Errorf("--partitions with two pipelines: exit %d %s", code, errOut)
	}
}

// A single-pipeline file takes the pipeline flags as run does: they win
// over the file.
func TestTopicsConfigWithPipelineFlags(t *testing.T) {
	brokers, adm := topicsCluster(t)
	cfg := filepath.Join(t.TempDir(), "one.yaml")
	if err := os.WriteFile(cfg, []byte("pipelines:\n  - base: one.events\n    partitions: 2\n    retry_delays: [5s]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := call(t, map[string]string{"HOOKLINE_BROKERS": brokers, "HOOKLINE_PARTITIONS": "4"}, "topics", "create", "--config", cfg)
	if code != 0 || !strings.Contains(out, "ok: pipeline one.events has 4 topics with 4 partitions each") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if p := partitionsOf(t, adm); p["one.events.retry-1"] != 4 || len(p) != 4 {
		t.Fatalf("topics: %v", p)
	}
}

// check says "not usable" only when serve and consume would refuse to
// start; config or partition differences they accept "differ from the plan".
func TestTopicsCheckSaysUnusableOnlyWhenItIs(t *testing.T) {
	brokers, adm := topicsCluster(t)
	base := []string{"--brokers", brokers, "--base", "w.events"}
	if code, out, errOut := call(t, nil, append([]string{"topics", "create", "--partitions", "2"}, base...)...); code != 0 {
		t.Fatalf("create: exit %d\n%s%s", code, out, errOut)
	}
	for _, sub := range []string{"create", "check"} {
		code, out, errOut := call(t, nil, append([]string{"topics", sub, "--partitions", "12"}, base...)...)
		if code != 1 || strings.Contains(errOut, "not usable") {
			t.Errorf("%s --partitions 12 on a 2-partition pipeline: exit %d %q; want 1 without \"not usable\"", sub, code, errOut)
		}
		wantAll(t, sub+" --partitions 12", errOut, "pipeline w.events differs from its plan", "has 2 partitions, expected 12",
			"keep 2", "give every topic of the pipeline 12 partitions (kafka-topics --bootstrap-server "+brokers+" --alter")
		if strings.Contains(out, "created") {
			t.Errorf("%s created something:\n%s", sub, out)
		}
	}
	if _, err := adm.DeleteTopics(context.Background(), "w.events.retry-2"); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := call(t, nil, append([]string{"topics", "check"}, base...)...)
	if code != 1 {
		t.Fatalf("missing topic: exit %d %s", code, errOut)
	}
	wantAll(t, "check with a missing topic", errOut, "pipeline w.events is not usable", "w.events.retry-2: missing")
}

// dlq ls|show and replay do not read the config file: with HOOKLINE_CONFIG
// set and no --base they say so, once, on stderr.
func TestDlqAndReplayNoteTheyIgnoreTheConfig(t *testing.T) {
	brokers := replayCluster(t, []string{"ev-1"})
	withConfig := map[string]string{"HOOKLINE_CONFIG": "/etc/hookline.yaml", "HOOKLINE_BROKERS": brokers}
	note := "does not read the config file (HOOKLINE_CONFIG=/etc/hookline.yaml): it uses --base, default hookline.events"
	for cmd, args := range map[string][]string{
		"dlq ls":   {"dlq", "ls"},
		"dlq show": {"dlq", "show", "0:0"},
		"replay":   {"replay", "--all", "--dry-run"},
	} {
		_, _, errOut := call(t, withConfig, args...)
		if strings.Count(errOut, "note: "+cmd+" "+note) != 1 {
			t.Errorf("%v with HOOKLINE_CONFIG: want one note %q:\n%s", args, "note: "+cmd+" "+note, errOut)
		}
		// --base (flag or HOOKLINE_BASE) given, or no HOOKLINE_CONFIG: no note.
		withBase := append(args[:len(args):len(args)], "--base", "t.events")
		for _, c := range []struct {
			vars map[string]string
			args []string
		}{
			{withConfig, withBase},
			{map[string]string{"HOOKLINE_CONFIG": "/etc/hookline.yaml", "HOOKLINE_BROKERS": brokers, "HOOKLINE_BASE": "t.events"}, args},
			{map[string]string{"HOOKLINE_BROKERS": brokers}, args},
		} {
			if _, _, errOut := call(t, c.vars, c.args...); strings.Contains(errOut, "note:") {
				t.Errorf("%v %v: unexpected note:\n%s", c.vars, c.args, errOut)
			}
		}
	}
}

// An absurd retry delay is refused as a usage error naming the bound, before
// any topic is created with a retention that overflowed.
func TestTopicsRefuseAnAbsurdRetryDelay(t *testing.T) {
	brokers, adm := topicsCluster(t)
	code, out, errOut := call(t, nil, "topics", "create", "--brokers", brokers, "--base", "abs.events", "--retry-delays", "1m,10s,10s,1500000h")
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s%s", code, out, errOut)
	}
	wantAll(t, "stderr", errOut, "--retry-delays 1m,10s,10s,1500000h", "at most 720h (30 days)")
	if p := partitionsOf(t, adm); len(p) != 0 {
		t.Fatalf("created %v", p)
	}
}

// The kafka-configs and kafka-topics commands check suggests carry
// --bootstrap-server with the brokers in use, ready to paste.
func TestTopicsCheckCommandsNameTheBrokers(t *testing.T) {
	brokers, adm := topicsCluster(t)
	if code, out, errOut := call(t, nil, "topics", "create", "--brokers", brokers, "--base", "bs.events", "--partitions", "2"); code != 0 {
		t.Fatalf("create: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := adm.AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Name: "cleanup.policy", Value: kadm.StringPtr("compact")}}, "bs.events.dlq"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreatePartitions(context.Background(), 1, "bs.events.retry-1"); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := call(t, nil, "topics", "check", "--brokers", brokers, "--base", "bs.events")
	if code != 1 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	wantAll(t, "check stderr", errOut,
		"kafka-configs --bootstrap-server "+brokers+" --alter --entity-type topics --entity-name bs.events.dlq --add-config cleanup.policy=delete",
		"kafka-topics --bootstrap-server "+brokers+" --alter --topic ")
}

// A pipeline created with three tiers and checked with one: check fails on
// the tiers left behind, naming what they hold; describe lists them.
func TestTopicsCheckReportsRetryTiersBeyondTheConfiguredOnes(t *testing.T) {
	brokers, _ := topicsCluster(t)
	args := []string{"--brokers", brokers, "--base", "st.events", "--partitions", "1"}
	if code, out, errOut := call(t, nil, append([]string{"topics", "create", "--retry-delays", "1s,2s,60s"}, args...)...); code != 0 {
		t.Fatalf("create: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := call(t, nil, append([]string{"topics", "check", "--retry-delays", "1s"}, args...)...)
	if code != 1 || strings.Contains(out, "ok:") {
		t.Fatalf("check --retry-delays 1s: exit %d, want 1\n%s%s", code, out, errOut)
	}
	wantAll(t, "check stderr", errOut, "pipeline st.events differs from its plan",
		"st.events.retry-2: retry tier 2 exists but the pipeline has 1", "st.events.retry-3: retry tier 3 exists", "it is empty and can be deleted")
	code, out, errOut = call(t, nil, append([]string{"topics", "describe", "--retry-delays", "1s"}, args...)...)
	if code != 0 {
		t.Fatalf("describe: exit %d\n%s%s", code, out, errOut)
	}
	wantAll(t, "describe", out, "st.events.retry-3", "retry (extra)", "beyond the configured tiers: 0 records")
}

// create on a pipeline whose topics disagree gives new topics the largest
// count and exits 1 naming the topics to raise.
func TestTopicsCreateOnAMixedPipelineNamesWhatToRaise(t *testing.T) {
	brokers, adm := topicsCluster(t)
	args := []string{"--brokers", brokers, "--base", "p2", "--partitions", "4"}
	if code, out, errOut := call(t, nil, append([]string{"topics", "create"}, args...)...); code != 0 {
		t.Fatalf("create: exit %d\n%s%s", code, out, errOut)
	}
	ctx := context.Background()
	if _, err := adm.DeleteTopics(ctx, "p2", "p2.dlq"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreatePartitions(ctx, 2, "p2.retry-2"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := call(t, nil, append([]string{"topics", "create"}, args...)...)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	wantAll(t, "create stdout", out, "created  p2 with 6 partitions, the largest count among the pipeline's existing topics (not 4")
	wantAll(t, "create stderr", errOut, "pipeline p2: the pipeline's topics are not co-partitioned",
		"raise p2.retry-1, p2.retry-3, p2.dedup to 6 partitions (kafka-topics --bootstrap-server "+brokers+" --alter")
}

// describe of a pipeline that does not exist shows what create would make
// (partitions, replication, configs per topic) and exits 1, as its help
// says; the hint names the exact create command, --config included, and
// never sends a user to --create-topics (the default already).
func TestTopicsDescribeOfAMissingPipelineIsADryRun(t *testing.T) {
	brokers, adm := topicsCluster(t)
	code, out, errOut := call(t, nil, "topics", "describe", "--brokers", brokers, "--base", "none.events", "--retry-delays", "5s,1m", "--partitions", "3")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	create := "hookline topics create --brokers " + brokers + " --base none.events --retry-delays 5s,1m --partitions 3"
	wantAll(t, "describe stdout", out,
		"none.events.retry-2  retry  -",
		create+" would create (a dry run: nothing was created):",
		"none.events.dedup    dedup  3           broker default  cleanup.policy=compact",
		"none.events.retry-2  retry  3           broker default  cleanup.policy=delete max.message.bytes=1114112 retention.ms=604800000",
		"problem: none.events: missing: `"+create+"` creates it")
	wantAll(t, "describe stderr", errOut, "pipeline none.events is not usable: 5 of its 5 topics are missing; `"+create+"` creates them")
	if p := partitionsOf(t, adm); len(p) != 0 {
		t.Fatalf("describe created %v", p)
	}
	if code, _, _ := call(t, nil, "topics", "describe", "--help"); code != 0 {
		t.Fatal("help")
	} else if _, help, _ := call(t, nil, "topics", "describe", "--help"); !strings.Contains(help, "Exit codes:") {
		t.Errorf("--help does not document the exit codes:\n%s", help)
	}

	// check: the same command, and no --create-topics advice.
	code, _, errOut = call(t, nil, "topics", "check", "--brokers", brokers, "--base", "none.events", "--retry-delays", "5s,1m")
	if code != 1 || strings.Contains(errOut, "start with --create-topics") {
		t.Fatalf("check: exit %d\n%s", code, errOut)
	}
	wantAll(t, "check stderr", errOut, "none.events: missing: `hookline topics create --brokers "+brokers+" --base none.events --retry-delays 5s,1m` creates it", "none.events.dlq: missing: the same command creates it",
		"unless started with --create-topics=false")

	// With a file: the hint is the file, which names the pipelines.
	cfg := filepath.Join(t.TempDir(), "h.yaml")
	if err := os.WriteFile(cfg, []byte("brokers: ["+brokers+"]\npipelines:\n  - base: f.events\n    retry_delays: [5s]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = call(t, nil, "topics", "describe", "--config", cfg)
	if code != 1 {
		t.Fatalf("describe --config: exit %d\n%s%s", code, out, errOut)
	}
	wantAll(t, "describe --config", out+errOut, "`hookline topics create --config "+cfg+"` creates it", "f.events.retry-1  retry  12")
}

// One partition is "1 partition", not "1 partitions".
func TestTopicsSaysOnePartition(t *testing.T) {
	brokers, _ := topicsCluster(t)
	code, out, errOut := call(t, map[string]string{"HOOKLINE_BROKERS": brokers}, "topics", "create", "--base", "single.events", "--partitions", "1")
	if code != 0 || !strings.Contains(out, "ok: pipeline single.events has 6 topics with 1 partition each") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

// describe shows the pipeline's consumer group and how far its commits are
// behind, per consumed topic, without joining the group or moving its
// offsets (kcat -G, the usual way to look, commits as it reads).
func TestTopicsDescribeShowsTheGroupsLagWithoutJoining(t *testing.T) {
	brokers, adm := topicsCluster(t)
	args := []string{"--brokers", brokers, "--base", "lag.events", "--partitions", "2", "--retry-delays", "1s"}
	if code, out, errOut := call(t, nil, append([]string{"topics", "create"}, args...)...); code != 0 {
		t.Fatalf("create: exit %d\n%s%s", code, out, errOut)
	}

	ctx := context.Background()
	cl, err := kafkaconf.NewClient(ctx, kafkaconf.Config{Brokers: strings.Split(brokers, ",")}, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// 5 records in each main partition, 3 in retry-1 partition 1.
	for p := range int32(2) {
		for range 5 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "lag.events", Partition: p, Value: []byte("x")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "lag.events.retry-1", Partition: 1, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Before any consumer: the group does not exist, and its backlog is
	// everything (a consumer starts at the log start).
	code, out, errOut := call(t, nil, append([]string{"topics", "describe"}, args...)...)
	if code != 0 {
		t.Fatalf("describe: exit %d\n%s%s", code, out, errOut)
	}
	wantAll(t, "describe before any consumer", out, "consumer group hookline-lag.events: does not exist yet",
		"lag.events          10   2", "lag.events.retry-1  3    2")
	// The group committed 4 of partition 0 and nothing of partition 1; on
	// retry-1, an offset past the end of partition 0 (a recreated topic).
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "lag.events", Partition: 0, At: 4, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "lag.events.retry-1", Partition: 0, At: 100, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, "hookline-lag.events", offs); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = call(t, nil, append([]string{"topics", "describe"}, args...)...)
	if code != 0 {
		t.Fatalf("describe: exit %d\n%s%s", code, out, errOut)
	}
	wantAll(t, "describe", out, "consumer group hookline-lag.events: Empty, 0 members (read without joining it)",
		"note: lag.events.retry-1 partition 0: committed past the end", "note: a retry tier's lag includes the records waiting")
	lines := map[string]string{}
	for l := range strings.Lines(out) {
		if f := strings.Fields(l); len(f) == 3 {
			lines[f[0]] = f[1] + " " + f[2]
		}
	}
	// main: 1 left in partition 0, all 5 of the uncommitted partition 1.
	for topic, want := range map[string]string{"lag.events": "6 1", "lag.events.retry-1": "3 1"} {
		if lines[topic] != want {
			t.Errorf("%s: lag and partitions without a commit %q, want %q\n%s", topic, lines[topic], want, out)
		}
	}
	// Read only: the commit is where it was, and nothing else was committed.
	got, err := adm.FetchOffsets(ctx, "hookline-lag.events")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := got.Lookup("lag.events", 0); o.At != 4 || len(got.Offsets()["lag.events"]) != 1 || len(got.Offsets()) != 2 {
		t.Errorf("committed offsets after describe: %v, want only the two committed above", got.Offsets())
	}

	// Another group, named.
	code, out, errOut = call(t, nil, append([]string{"topics", "describe", "--group", "crm-sync"}, args...)...)
	if code != 0 || !strings.Contains(out, "consumer group crm-sync: does not exist yet") {
		t.Errorf("describe --group crm-sync: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := call(t, nil, append([]string{"topics", "check", "--group", "x"}, args...)...); code != 2 {
		t.Errorf("check --group: exit %d, want 2 (describe only)\n%s", code, errOut)
	}
}
