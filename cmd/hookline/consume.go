package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookline/hookline/consumer"
)

const consumeExamples = `  # forward every event of the default pipeline to the team's service
  hookline consume --brokers kafka-1:9092 --handler-url http://crm-sync:3000/process

  # a slower handler, fewer events at once, a custom group
  hookline consume --brokers 127.0.0.1:9092 --handler-url http://127.0.0.1:3000/process \
    --handler-timeout 10s --concurrency 128 --group crm-sync`

func runConsume(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "consume", "consume --handler-url URL [flags]", consumeExamples)
	a := addAppFlags(fs, false, true)
	fs.StringVar(&a.listen, "listen", "", "serve /healthz, /readyz and /metrics on this address (e.g. :9090); off when empty")
	log, s, err := a.setup(env, args, usesConsumer)
	if err != nil {
		return err
	}
	if len(s.kafka.Brokers) == 0 {
		return usagef("no brokers: set --brokers or HOOKLINE_BROKERS (or use `hookline run` for the embedded broker)")
	}
	if _, err := prepareTopics(ctx, log, s.kafka, s, a.createTopics, fs.set("partitions")); err != nil {
		return err
	}
	reg := newRegistry()
	comps, ready, err := newConsumers(a, s, log, reg)
	if err != nil {
		return err
	}
	if a.listen != "" {
		comps["ops"] = opsServer(a.listen, reg, ready)
	}
	fmt.Fprintf(env.stdout, "consuming %d pipeline(s)\n", len(s.pipelines))
	return runAll(ctx, comps)
}

// newConsumers builds one consumer per pipeline that has a handler URL.
// ready reports not-ready while any of them is not.
func newConsumers(a *appFlags, s settings, log *slog.Logger, reg prometheus.Registerer) (map[string]func(context.Context) error, func() (bool, string), error) {
	comps := map[string]func(context.Context) error{}
	var all []*consumer.Consumer
	for _, p := range s.pipelines {
		if p.handlerURL == "" {
			return nil, nil, usagef("pipeline %s has no handler: set --handler-url (or handler.url in the file)", p.plan.Names.Base)
		}
		sink, err := consumer.NewHTTPSink(consumer.HTTPSinkConfig{URL: p.handlerURL, CAFile: p.handlerCA, Header: p.handlerHeaders})
		if err != nil {
			return nil, nil, fmt.Errorf("pipeline %s: %w", p.plan.Names.Base, err)
		}
		group := a.group
		if len(s.pipelines) > 1 {
			group = "" // one group per pipeline: hookline-<base>
		}
		c, err := consumer.New(consumer.Config{
			Kafka:                   s.kafka,
			Plan:                    p.plan,
			Group:                   group,
			Handler:                 sink,
			HandlerTimeout:          p.handlerTimeout,
			MaxInFlight:             a.concurrency,
			MaxInFlightPerPartition: a.perPartition,
			MaxUnfinished:           a.maxUnfinished,
			SessionTimeout:          a.sessionTimeout,
			InstanceID:              a.instanceID,
			Logger:                  log.With("pipeline", p.plan.Names.Base),
			Registerer:              prometheus.WrapRegistererWith(prometheus.Labels{"pipeline": p.plan.Names.Base}, reg),
		})
		if err != nil {
			return nil, nil, fmt.Errorf("pipeline %s: %w", p.plan.Names.Base, err)
		}
		all = append(all, c)
		comps["consumer "+p.plan.Names.Base] = c.Run
	}
	ready := func() (bool, string) {
		for _, c := range all {
			if ok, why := c.Ready(); !ok {
				return false, why
			}
		}
		return true, ""
	}
	return comps, ready, nil
}
