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
  hookline topics describe --brokers 127.0.0.1:9092 --retry-delays 30s,5m`

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
	timeout := fs.Duration("timeout", 30*time.Second, "give up talking to Kafka after this long")
	if err := fs.parse(args); err != nil {
		return err
	}
	plan, err := topics.NewPlan(pf.topicsConfig())
	if err != nil {
		return usageError{err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cl, err := kafkaconf.NewClient(ctx, kf.config(env, nil))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// check compares partitions with --partitions only when it was asked
	// for; otherwise it checks that the pipeline agrees with itself.
	var expect int32
	if fs.set("partitions") {
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
				fmt.Fprintf(env.stdout, "%-8s %s with %d partitions, as the pipeline's existing topics (not %d: a pipeline must be co-partitioned)\n",
					"created", r.Topic, r.Partitions, plan.Partitions)
			default:
				fmt.Fprintf(env.stdout, "%-8s %s\n", "created", r.Topic)
			}
		}
		if err != nil {
			return err
		}
		return reportCheck(ctx, env, adm, plan, expect)
	case "check":
		return reportCheck(ctx, env, adm, plan, expect)
	default:
		rep, err := topics.Inspect(ctx, adm, plan, expect)
		if err != nil {
			return err
		}
		printStates(env, rep)
		for _, p := range rep.Problems {
			fmt.Fprintf(env.stdout, "problem: %s\n", p)
		}
		return nil
	}
}

func reportCheck(ctx context.Context, env *environment, adm *kadm.Client, plan topics.Plan, expect int32) error {
	rep, err := topics.Inspect(ctx, adm, plan, expect)
	if err != nil {
		return err
	}
	if err := rep.Err(); err != nil {
		return exitCode{1, fmt.Sprintf("pipeline %s is not usable: %v", plan.Names.Base, err)}
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
	tw.Flush()
}
