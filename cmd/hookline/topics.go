package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/topics"
)

const topicsExamples = `  # create the default pipeline (hookline.events, 12 partitions, 3 retry tiers)
  hookline topics create --brokers kafka-1:9092,kafka-2:9092

  # check an existing pipeline; exits 1 and lists every problem on a mismatch
  HOOKLINE_BROKERS=127.0.0.1:9092 hookline topics check --base genesys.conversations

  # show partitions and configs of each topic
  hookline topics describe --brokers 127.0.0.1:9092 --retry-delays 30s,5m

  # create, then check, every pipeline of the file run/serve/consume read
  hookline topics create --config hookline.yaml
  HOOKLINE_CONFIG=hookline.yaml hookline topics check`

func runTopics(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintf(env.stdout, "Usage: hookline topics create|check|describe [flags]\n\nExamples:\n%s\n", topicsExamples)
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
	timeout := fs.Duration("timeout", 30*time.Second, "give up talking to Kafka after this long")
	if err := fs.parse(args); err != nil {
		return err
	}
	var (
		kc    kafkaconf.Config
		plans []topics.Plan
	)
	if *configPath == "" {
		plan, err := topics.NewPlan(pf.topicsConfig())
		if err != nil {
			return usageError{err.Error()}
		}
		kc, plans = kf.config(env, nil), []topics.Plan{plan}
	} else {
		var err error
		if kc, plans, err = filePlans(env, fs, kf, pf, *configPath); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cl, err := kafkaconf.NewClient(ctx, kc)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	if len(plans) == 1 {
		return topicsPipeline(ctx, env, adm, sub, plans[0], fs.set("partitions"), false)
	}
	// Several pipelines (from --config): each one's output in turn, its
	// problems on stderr as they are found, exit 1 if any has some.
	var failed []string
	for i, plan := range plans {
		if i > 0 && sub == "describe" {
			fmt.Fprintln(env.stdout)
		}
		if err := topicsPipeline(ctx, env, adm, sub, plan, fs.set("partitions"), true); err != nil {
			fmt.Fprintf(env.stderr, "hookline topics: %v\n", err)
			failed = append(failed, plan.Names.Base)
		}
	}
	if len(failed) > 0 {
		return exitCode{1, fmt.Sprintf("%d of %d pipelines in %s have problems: %s", len(failed), len(plans), *configPath, strings.Join(failed, ", "))}
	}
	return nil
}

// topicsPipeline runs topics create, check or describe on one pipeline.
// explicitPartitions says --partitions (or HOOKLINE_PARTITIONS) was given;
// header prints the pipeline's name before describe's table.
func topicsPipeline(ctx context.Context, env *environment, adm *kadm.Client, sub string, plan topics.Plan, explicitPartitions, header bool) error {
	// check compares partitions with --partitions only when it was asked
	// for; otherwise it checks that the pipeline agrees with itself.
	var expect int32
	if explicitPartitions {
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
				fmt.Fprintf(env.stdout, "%-8s %s with %d partitions, the largest count among the pipeline's existing topics (not %d: a pipeline must be co-partitioned, and partitions can only be added)\n",
					"created", r.Topic, r.Partitions, plan.Partitions)
			default:
				fmt.Fprintf(env.stdout, "%-8s %s\n", "created", r.Topic)
			}
		}
		if err != nil {
			return fmt.Errorf("pipeline %s: %w", plan.Names.Base, err)
		}
		return reportCheck(ctx, env, adm, plan, expect)
	case "check":
		return reportCheck(ctx, env, adm, plan, expect)
	default:
		rep, err := topics.Inspect(ctx, adm, plan, expect)
		if err != nil {
			return err
		}
		if header {
			fmt.Fprintf(env.stdout, "pipeline %s\n", plan.Names.Base)
		}
		printStates(env, rep)
		for _, p := range rep.Problems {
			fmt.Fprintf(env.stdout, "problem: %s\n", p)
		}
		return nil
	}
}

// reportCheck prints ok, or returns exit 1 with every problem: "not usable"
// when serve and consume would refuse the pipeline (rep.Unusable), "differs
// from its plan" when they would start on it and log the problems.
func reportCheck(ctx context.Context, env *environment, adm *kadm.Client, plan topics.Plan, expect int32) error {
	rep, err := topics.Inspect(ctx, adm, plan, expect)
	if err != nil {
		return err
	}
	if err := rep.Err(); err != nil {
		if unusable := rep.Unusable(); unusable != nil {
			return exitCode{1, fmt.Sprintf("pipeline %s is not usable: %v", plan.Names.Base, unusable)}
		}
		return exitCode{1, fmt.Sprintf("pipeline %s differs from its plan (serve and consume start on it and log these as warnings): %v", plan.Names.Base, err)}
	}
	fmt.Fprintf(env.stdout, "ok: pipeline %s has %d topics with %d partitions each\n",
		plan.Names.Base, len(rep.Topics), rep.Topics[0].Partitions)
	return nil
}

func printStates(env *environment, rep topics.Report) {
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tROLE\tPARTITIONS\tREPLICAS\tCONFIGS")
	for _, st := range rep.Topics {
		if !st.Exists {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\tmissing\n", st.Name, st.Role)
			continue
		}
		keys := make([]string, 0, len(st.Actual))
		for k := range st.Actual {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var cfg []string
		for _, k := range keys {
			cfg = append(cfg, k+"="+st.Actual[k])
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", st.Name, st.Role, st.Partitions, st.ReplicationFactor, strings.Join(cfg, " "))
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
