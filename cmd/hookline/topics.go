package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/hookline/hookline/consumer"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/topics"
)

const topicsExamples = `  # create the default pipeline (hookline.events, 12 partitions, 3 retry tiers)
  hookline topics create --brokers kafka-1:9092,kafka-2:9092

  # check an existing pipeline; exits 1 and lists every problem on a mismatch
  HOOKLINE_BROKERS=127.0.0.1:9092 hookline topics check --base genesys.conversations

  # show partitions and configs of each topic, and the consumer group's lag per
  # topic, read without joining the group (--group for a group set with consume --group)
  hookline topics describe --brokers 127.0.0.1:9092 --retry-delays 30s,5m
  hookline topics describe --brokers 127.0.0.1:9092 --group crm-sync

  # create, then check, every pipeline of the file run/serve/consume read
  hookline topics create --config hookline.yaml
  HOOKLINE_CONFIG=hookline.yaml hookline topics check

Exit codes:
  0  create, check: the pipeline matches its plan; describe: it exists and is usable
     (other differences from the plan are listed under "problem:")
  1  create, check: any problem (listed on stderr); describe: a topic is missing, or the
     topics disagree on partition count (serve and consume would refuse it); for missing
     topics describe prints what create would make (a dry run)
  2  a usage error`

func runTopics(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintf(env.stdout, "Usage: hookline topics create|check|describe [flags]\n\nThe three take the same flags (see hookline topics create --help); describe also takes --group.\n\nExamples:\n%s\n", topicsExamples)
			return nil
		}
		if len(args) > 0 {
			return usagef("the subcommand comes first, then its flags: %s", subcommandFirst("topics", []string{"create", "check", "describe"}, args))
		}
		return usagef("which one: hookline topics create|check|describe (see --help)")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "create", "check", "describe":
	default:
		return usagef("unknown topics command %q: use create, check or describe", sub)
	}
	fs := newFlagSet(env, "topics "+sub, "topics "+sub+" [flags]", topicsExamples)
	kf := addKafkaFlags(fs)
	pf := addPipelineFlags(fs)
	configPath := fs.String("config", "", "YAML file of run/serve/consume: act on each of its pipelines, resolved as they resolve them (and use its brokers when --brokers is not set)")
	timeout := fs.positiveDuration("timeout", 30*time.Second, "give up talking to Kafka after this long")
	group := new(string)
	if sub == "describe" {
		group = fs.String("group", "", "consumer group whose committed offsets describe reads, without joining it; empty: hookline-<base>, the group consume uses")
	}
	if err := fs.parse(args); err != nil {
		return err
	}
	var (
		kc    kafkaconf.Config
		plans []topics.Plan
		// asked[i]: plans[i]'s partition count was asked for, by
		// --partitions or the file, and check compares it.
		asked []bool
	)
	if *configPath == "" {
		plan, err := topics.NewPlan(pf.topicsConfig())
		if err != nil {
			return usageError{err.Error()}
		}
		if err := dedupCoversRetries(pf.topicsConfig(), flagOrigin(fs, "dedup-window"), flagOrigin(fs, "retry-delays")); err != nil {
			fmt.Fprintln(env.stderr, "note: "+err.Error()) // refused by run and consume, which act on it
		}
		kc, plans, asked = kf.config(env, nil), []topics.Plan{plan}, []bool{fs.set("partitions")}
	} else {
		var err error
		if kc, plans, asked, err = filePlans(env, fs, kf, pf, *configPath); err != nil {
			return err
		}
	}
	if err := needBrokers(kc); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cl, err := kafkaconf.NewClient(ctx, kc)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	opt := pipelineOutput{createCmd: createCommand(fs, kc, pf, *configPath), group: *group}
	if len(plans) == 1 {
		opt.explicitPartitions = asked[0]
		return topicsPipeline(ctx, env, adm, sub, plans[0], opt)
	}
	opt.header = true
	// Several pipelines (from --config): each one's output in turn, its
	// problems on stderr as they are found, exit 1 if any has some.
	var failed []string
	for i, plan := range plans {
		if i > 0 && sub == "describe" {
			fmt.Fprintln(env.stdout)
		}
		opt.explicitPartitions = asked[i]
		if err := topicsPipeline(ctx, env, adm, sub, plan, opt); err != nil {
			fmt.Fprintf(env.stderr, "hookline topics: %v\n", err)
			failed = append(failed, plan.Names.Base)
		}
	}
	if len(failed) > 0 {
		return exitCode{1, fmt.Sprintf("%d of %d pipelines in %s have problems: %s", len(failed), len(plans), *configPath, strings.Join(failed, ", "))}
	}
	return nil
}

// pipelineOutput says how topicsPipeline reports on a pipeline.
type pipelineOutput struct {
	// explicitPartitions says --partitions (or HOOKLINE_PARTITIONS) or the
	// file's partitions gave the count: check then compares with it.
	explicitPartitions bool
	// header prints the pipeline's name before describe's table.
	header bool
	// createCmd is the `hookline topics create` command that creates this
	// pipeline's missing topics, as the operator would type it.
	createCmd string
	// group is describe's consumer group; "" for the pipeline's default.
	group string
}

// createCommand returns the `hookline topics create` command that acts on
// the same pipelines as this one: the same --config, or the pipeline flags
// that shape the plan, and the brokers.
func createCommand(fs *flagSet, kc kafkaconf.Config, pf *pipelineFlags, configPath string) string {
	args := []string{"hookline topics create"}
	if configPath == "" || fs.set("brokers") {
		args = append(args, "--brokers", strings.Join(kc.Brokers, ","))
	}
	if configPath != "" {
		args = append(args, "--config", configPath)
	}
	// With a file, pipeline flags given here apply to its one pipeline;
	// without, they are the plan.
	if configPath == "" || fs.set("base") {
		args = append(args, "--base", pf.base)
	}
	if configPath == "" || fs.set("retry-delays") {
		args = append(args, "--retry-delays", pf.retryDelays.String())
	}
	if fs.set("partitions") {
		args = append(args, "--partitions", fmt.Sprint(pf.partitions))
	}
	if fs.set("dedup-window") {
		args = append(args, "--dedup-window", topics.ShortDuration(pf.dedupWindow))
	}
	if fs.set("replication-factor") {
		args = append(args, "--replication-factor", fmt.Sprint(pf.rf))
	}
	cmd := strings.Join(args, " ")
	if kc.Secured() {
		cmd += " (with the same TLS and SASL settings)"
	}
	return cmd
}

// withCreateHint replaces the generic hint of missing topics by the exact
// command: in full on the first, by reference on the others.
func withCreateHint(rep topics.Report, createCmd string) topics.Report {
	rep.Problems = slices.Clone(rep.Problems)
	hint := "missing: `" + createCmd + "` creates it"
	for i, p := range rep.Problems {
		if p.Message == topics.MissingHint {
			rep.Problems[i].Message = hint
			hint = "missing: the same command creates it"
		}
	}
	return rep
}

// topicsPipeline runs topics create, check or describe on one pipeline.
func topicsPipeline(ctx context.Context, env *environment, adm *kadm.Client, sub string, plan topics.Plan, opt pipelineOutput) error {
	// check compares partitions with --partitions only when it was asked
	// for; otherwise it checks that the pipeline agrees with itself.
	var expect int32
	if opt.explicitPartitions {
		expect = plan.Partitions
	}
	switch sub {
	case "create":
		res, err := topics.Create(ctx, adm, plan)
		for _, r := range res {
			switch {
			case !r.Created:
				fmt.Fprintf(env.stdout, "%-8s %s\n", "exists", r.Topic)
			case r.Partitions != plan.Partitions:
				fmt.Fprintf(env.stdout, "%-8s %s with %s, the largest count among the pipeline's existing topics (not %d: a pipeline must be co-partitioned, and partitions can only be added)\n",
					"created", r.Topic, partitionsText(r.Partitions), plan.Partitions)
			default:
				fmt.Fprintf(env.stdout, "%-8s %s\n", "created", r.Topic)
			}
		}
		if err != nil {
			return fmt.Errorf("pipeline %s: %w", plan.Names.Base, err)
		}
		return reportCheck(ctx, env, adm, plan, expect, opt.createCmd)
	case "check":
		return reportCheck(ctx, env, adm, plan, expect, opt.createCmd)
	default:
		rep, err := topics.Inspect(ctx, adm, plan, expect)
		if err != nil {
			return fmt.Errorf("pipeline %s: %w", plan.Names.Base, err)
		}
		rep = withCreateHint(rep, opt.createCmd)
		if opt.header {
			fmt.Fprintf(env.stdout, "pipeline %s\n", plan.Names.Base)
		}
		printStates(env, rep)
		for _, p := range rep.Problems {
			fmt.Fprintf(env.stdout, "problem: %s\n", p)
		}
		missing := 0
		for _, st := range rep.Topics {
			if !st.Exists {
				missing++
			}
		}
		if missing > 0 {
			fmt.Fprintf(env.stdout, "\n%s would create (a dry run: nothing was created):\n", opt.createCmd)
			printPlanned(env, rep, plan)
		}
		if missing == 0 {
			printGroup(ctx, env, adm, plan, rep, opt.group)
		}
		switch {
		case missing > 0:
			return exitCode{1, fmt.Sprintf("pipeline %s is not usable: %d of its %d topics are missing; `%s` creates them as shown above",
				plan.Names.Base, missing, len(rep.Topics), opt.createCmd)}
		case rep.Unusable() != nil:
			return exitCode{1, fmt.Sprintf("pipeline %s is not usable: its topics disagree on partition count (see the problems above for the topics to raise)", plan.Names.Base)}
		}
		return nil
	}
}

// reportCheck prints ok, or returns exit 1 with every problem: "not usable"
// when serve and consume would refuse the pipeline (rep.Unusable), "differs
// from its plan" when they would start on it and log the problems.
func reportCheck(ctx context.Context, env *environment, adm *kadm.Client, plan topics.Plan, expect int32, createCmd string) error {
	rep, err := topics.Inspect(ctx, adm, plan, expect)
	if err != nil {
		return fmt.Errorf("pipeline %s: %w", plan.Names.Base, err)
	}
	rep = withCreateHint(rep, createCmd)
	if err := rep.Err(); err != nil {
		if unusable := rep.Unusable(); unusable != nil {
			return exitCode{1, fmt.Sprintf("pipeline %s is not usable: %v", plan.Names.Base, unusable)}
		}
		return exitCode{1, fmt.Sprintf("pipeline %s differs from its plan (serve and consume start on it and log these as warnings): %v", plan.Names.Base, err)}
	}
	fmt.Fprintf(env.stdout, "ok: pipeline %s has %d topics with %s each\n",
		plan.Names.Base, len(rep.Topics), partitionsText(rep.Topics[0].Partitions))
	return nil
}

// printPlanned prints the topics of plan that rep shows missing, as Create
// would make them: partitions, replication factor and configs.
func printPlanned(env *environment, rep topics.Report, plan topics.Plan) {
	parts := rep.NewTopicPartitions(plan)
	rf := "broker default"
	if plan.ReplicationFactor > 0 {
		rf = fmt.Sprint(plan.ReplicationFactor)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tROLE\tPARTITIONS\tREPLICAS\tCONFIGS")
	for _, st := range rep.Topics {
		if st.Exists {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", st.Name, st.Role, parts, rf, configList(st.Configs))
	}
	tw.Flush()
}

// configList prints configs as sorted key=value pairs.
func configList(configs map[string]string) string {
	keys := slices.Sorted(maps.Keys(configs))
	cfg := make([]string, 0, len(keys))
	for _, k := range keys {
		cfg = append(cfg, k+"="+configs[k])
	}
	return strings.Join(cfg, " ")
}

func printStates(env *environment, rep topics.Report) {
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tROLE\tPARTITIONS\tREPLICAS\tCONFIGS")
	for _, st := range rep.Topics {
		if !st.Exists {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\tmissing\n", st.Name, st.Role)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", st.Name, st.Role, st.Partitions, st.ReplicationFactor, configList(st.Actual))
	}
	for _, x := range rep.ExtraRetryTiers {
		held := fmt.Sprintf("%d records", x.Records)
		if x.Records < 0 {
			held = "records unknown"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t-\tbeyond the configured tiers: %s\n", x.Topic, "retry (extra)", x.Partitions, held)
	}
	tw.Flush()
}

// printGroup prints the pipeline's consumer group: its state and members,
// and per consumed topic how many records lie past its committed offsets
// (from the log start where a partition has no commit, as the consumer
// starts there). It only reads: a Kafka tool that joins the group to show
// its offsets (kcat -G) commits as it reads and skips unprocessed events.
// A failure to read is printed, not returned: the topics were described.
func printGroup(ctx context.Context, env *environment, adm *kadm.Client, plan topics.Plan, rep topics.Report, group string) {
	joinWith := " and --group " + group
	if group == "" {
		group, joinWith = consumer.DefaultGroup(plan.Names.Base), ""
	}
	consumed := plan.Names.Consumed()
	for _, x := range rep.ExtraRetryTiers {
		if rep.Consumable(x) {
			consumed = append(consumed, x.Topic) // the consumer reads them too
		}
	}
	fail := func(what string, err error) {
		var se *kadm.ShardErrors
		if errors.As(err, &se) && len(se.Errs) == 1 {
			err = se.Errs[0].Err // the broker's error, without franz-go's wrapping
		}
		next := "the topics above are unaffected; an ACL on the group, or a slow broker: try a longer --timeout"
		if errors.Is(err, kerr.CoordinatorNotAvailable) || errors.Is(err, kerr.CoordinatorLoadInProgress) {
			// A new cluster creates its offsets topic on first use.
			next = "the broker's group coordinator is not ready yet, as on a new cluster: run describe again in a few seconds"
		}
		fmt.Fprintf(env.stdout, "\nconsumer group %s: could not %s: %v (%s)\n", group, what, err, next)
	}
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		fail("describe it", err)
		return
	}
	d := described[group]
	if d.Err != nil && !errors.Is(d.Err, kerr.GroupIDNotFound) {
		// The group's own error code, which the call's error leaves out.
		fail("describe it", d.Err)
		return
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		fail("read its committed offsets", err)
		return
	}
	list := func(which string, f func(context.Context, ...string) (kadm.ListedOffsets, error)) kadm.ListedOffsets {
		offs, err := f(ctx, consumed...)
		if err == nil {
			err = offs.Error()
		}
		if err != nil {
			fail("list the topics' "+which+" offsets", err)
			return nil
		}
		return offs
	}
	starts := list("start", adm.ListStartOffsets)
	if starts == nil {
		return
	}
	ends := list("end", adm.ListEndOffsets)
	if ends == nil {
		return
	}
	status := fmt.Sprintf("%s, %d members (read without joining it)", d.State, len(d.Members))
	switch {
	case (d.State == "Dead" || errors.Is(d.Err, kerr.GroupIDNotFound)) && len(committed) == 0:
		// Its backlog still counts: a consumer starts at the log start.
		status = "does not exist yet (no consumer has joined it; `hookline consume` or `run` with this --base" + joinWith + " does, from the log start)"
	case d.State == "" || d.State == "Dead":
		status = "no members (read without joining it)"
	case len(d.Members) == 1:
		status = d.State + ", 1 member (read without joining it)"
	}
	fmt.Fprintf(env.stdout, "\nconsumer group %s: %s\n", group, status)
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tLAG\tPARTITIONS WITHOUT A COMMIT")
	var notes []string
	parts := func(ps []string) string {
		if len(ps) == 1 {
			return "partition " + ps[0]
		}
		return "partitions " + strings.Join(ps, ",")
	}
	for _, t := range consumed {
		var lag int64
		uncommitted := 0
		var pastEnd, belowStart []string
		ends.Each(func(end kadm.ListedOffset) {
			if end.Topic != t {
				return
			}
			start := int64(0)
			if s, ok := starts.Lookup(t, end.Partition); ok {
				start = s.Offset
			}
			from := start
			switch c, ok := committed.Lookup(t, end.Partition); {
			case !ok || c.Err != nil || c.At < 0:
				uncommitted++
			case c.At > end.Offset:
				// The consumer finds the offset out of range and
				// starts over from the log start.
				pastEnd = append(pastEnd, fmt.Sprint(end.Partition))
			case c.At < start:
				belowStart = append(belowStart, fmt.Sprint(end.Partition))
			default:
				from = c.At
			}
			lag += max(end.Offset-from, 0)
		})
		fmt.Fprintf(tw, "%s\t%d\t%d\n", t, lag, uncommitted)
		if len(pastEnd) > 0 {
			notes = append(notes, fmt.Sprintf("%s %s: committed past the end (topic recreated or truncated?); the consumer starts over from the log start, as counted",
				t, parts(pastEnd)))
		}
		if len(belowStart) > 0 {
			notes = append(notes, fmt.Sprintf("%s %s: committed below the log start: retention deleted records the group had not read",
				t, parts(belowStart)))
		}
	}
	tw.Flush()
	if len(plan.Names.Retries) > 0 {
		notes = append(notes, "a retry tier's lag includes the records waiting for their due time")
	}
	for _, n := range notes {
		fmt.Fprintf(env.stdout, "note: %s\n", n)
	}
}

// partitionsText is "1 partition" or "n partitions".
func partitionsText(n int32) string {
	if n == 1 {
		return "1 partition"
	}
	return fmt.Sprintf("%d partitions", n)
}
