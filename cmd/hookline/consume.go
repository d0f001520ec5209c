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

func runConsume(ctx context.Context, env *environment, args []string) (err error) {
	fs := newFlagSet(env, "consume", "consume --handler-url URL [flags]", consumeExamples)
	a := addAppFlags(fs, false, true)
	fs.StringVar(&a.listen, "listen", "", "serve /healthz, /readyz and /metrics on this address (e.g. :9090); off when empty")
	log, s, err := a.setup(env, args, usesConsumer)
	if err != nil {
		return err
	}
	sayStopped(env, log, "consume", &err)
	if err := needBrokers(s.kafka); err != nil {
		return err
	}
	// What can be refused is refused before a topic is created.
	reg := newRegistry()
	comps, ready, err := newConsumers(a, s, log, reg, true)
	if err != nil {
		return err
	}
	const ops = "the health and metrics server"
	if a.listen != "" {
		if err := checkListen(a.listen, ops, "--listen"); err != nil {
			return err
		}
	}
	if _, err := prepareTopics(ctx, log, s.kafka, s, a.createTopics, true); err != nil {
		return err
	}
	after := map[string]func(context.Context) error{}
	if a.listen != "" {
		ln, err := listen(a.listen, ops, "--listen")
		if err != nil {
			return err
		}
		// Up until the consumers stopped: health checks and scrapes see
		// a graceful stop ("shutting down"), not connection refused.
		after["ops"] = opsServer(ln, reg, ready)
	}
	s.say(env.stdout, log, fmt.Sprintf("consuming %d pipeline(s)", len(s.pipelines)))
	return runAll(ctx, comps, after)
}

// newConsumers builds one consumer per pipeline that has a handler URL; a
// pipeline without one is refused when every pipeline needs one, else
// skipped. It contacts nothing. ready reports not-ready while any of them
// is not.
func newConsumers(a *appFlags, s settings, log *slog.Logger, reg prometheus.Registerer, everyPipeline bool) (map[string]func(context.Context) error, func() (bool, string), error) {
	comps := map[string]func(context.Context) error{}
	var all []*consumer.Consumer
	for _, p := range s.pipelines {
		if p.handlerURL == "" {
			if !everyPipeline {
				continue
			}
			hint := "set --handler-url (or handler.url in the file)"
			if len(s.pipelines) > 1 {
				hint = "set handler.url for it in " + a.configPath
			}
			return nil, nil, usagef("pipeline %s has no handler: %s", p.plan.Names.Base, hint)
		}
		// One idle connection per concurrent event (0: the default 512), so
		// a --concurrency above 512 does not churn connections.
		sink, err := consumer.NewHTTPSink(consumer.HTTPSinkConfig{URL: p.handlerURL, CAFile: p.handlerCA, Header: p.handlerHeaders,
			SignatureHeaders: p.signatureHeaders, MaxConns: a.concurrency})
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
