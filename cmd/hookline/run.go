package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hookline/hookline/internal/embedded"
	"github.com/hookline/hookline/topics"
)

const runExamples = `  # everything on this machine: embedded broker, receiver on :8080, consumer
  # forwarding to the team's service
  hookline run --secret "$HOOKLINE_SECRET" --handler-url http://127.0.0.1:3000/process

  # receiver only (events wait in Kafka until a consumer runs), local testing
  hookline run --insecure-no-auth --data-dir /tmp/hookline

  # against an existing cluster
  hookline run --brokers kafka-1:9092 --config hookline.yaml`

func runRun(ctx context.Context, env *environment, args []string) (err error) {
	fs := newFlagSet(env, "run", "run [flags]", runExamples)
	a := addAppFlags(fs, true, true)
	embeddedAddr := fs.String("embedded-addr", embedded.DefaultAddr, "address of the embedded broker (used when no --brokers)")
	dataDir := fs.String("data-dir", embedded.DefaultDataDir, "data directory of the embedded broker")
	log, s, err := a.setup(env, args, usesReceiver|usesConsumer)
	if err != nil {
		return err
	}
	sayStopped(env, log, "run", &err)
	startupWarnings(env, log, s)
	if len(s.kafka.Brokers) > 0 {
		// Brokers from --brokers, HOOKLINE_BROKERS or the file: a data
		// dir or address meant for the embedded broker would be ignored
		// without a word, and the operator believe events are kept there.
		for _, n := range []string{"data-dir", "embedded-addr"} {
			if fs.set(n) {
				log.Warn(fs.origin(n)+" is ignored: brokers are configured, so no embedded broker starts; remove it, or the brokers for the embedded one", "brokers", strings.Join(s.kafka.Brokers, ","))
			}
		}
	}
	if err := checkListen(s.listen, "receiver", s.listenFrom); err != nil {
		return err
	}
	embeddedBroker := len(s.kafka.Brokers) == 0
	if embeddedBroker {
		if err := checkPortsApart(s.listen, s.listenFrom, *embeddedAddr, fs.origin("embedded-addr")); err != nil {
			return err
		}
		b, err := startEmbedded(env, log, &s, *embeddedAddr, *dataDir)
		if err != nil {
			return err
		}
		defer b.Close()
	}
	reps, err := prepareTopics(ctx, log, s.kafka, s, a.createTopics, true)
	if err != nil {
		if embeddedBroker && errors.Is(err, topics.ErrMissing) {
			// The usual advice, hookline topics create, cannot reach it.
			return fmt.Errorf("%w\nthe embedded broker runs only inside this run: start run without --create-topics=false and it creates them", err)
		}
		return err
	}
	reg := newRegistry()
	// Pipelines with a handler get a consumer; the others only receive.
	comps, ready, err := newConsumers(a, s, log, reg, false)
	if err != nil {
		return err
	}
	for _, p := range s.pipelines {
		if p.handlerURL == "" {
			what := "no --handler-url"
			switch {
			case len(s.pipelines) > 1:
				what = "pipeline " + p.plan.Names.Base + " has no handler"
			case a.configPath != "":
				what = "pipeline " + p.plan.Names.Base + " has no handler (handler.url in " + a.configPath + ", or --handler-url)"
			}
			s.say(env.stderr, log, what+": running its receiver only; its events wait in Kafka until a consumer runs")
		}
	}
	rcv, err := newReceiver(a, s, reps, log, reg, ready)
	if err != nil {
		return err
	}
	ln, err := listen(s.listen, "receiver", s.listenFrom)
	if err != nil {
		rcv.Client().Close()
		return err
	}
	comps["receiver"] = func(ctx context.Context) error { return rcv.Serve(ctx, ln) }
	for _, n := range s.sourceNotes {
		s.say(env.stdout, log, n)
	}
	s.say(env.stdout, log, fmt.Sprintf("receiver listening on %s", ln.Addr()))
	return runAll(ctx, comps, nil)
}
