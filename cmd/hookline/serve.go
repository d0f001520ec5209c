package main

import (
	"context"
	"fmt"
)

const serveExamples = `  # receive Genesys webhooks on :8080, checking X-Hookline-Secret
  HOOKLINE_SECRET=s3cret hookline serve --brokers kafka-1:9092,kafka-2:9092

  # several sources and pipelines from a file
  hookline serve --config hookline.yaml

  # then, from the sender's side
  hookline send --url http://127.0.0.1:8080/webhooks/genesys --secret s3cret --sample customer.start`

func runServe(ctx context.Context, env *environment, args []string) (err error) {
	fs := newFlagSet(env, "serve", "serve [flags]", serveExamples)
	a := addAppFlags(fs, true, false)
	log, s, err := a.setup(env, args, usesReceiver)
	if err != nil {
		return err
	}
	sayStopped(env, log, "serve", &err)
	if err := needBrokers(s.kafka); err != nil {
		return err
	}
	startupWarnings(env, log, s)
	if err := checkListen(s.listen, "receiver", s.listenFrom); err != nil {
		return err
	}
	reps, err := prepareTopics(ctx, log, s.kafka, s, a.createTopics, false)
	if err != nil {
		return err
	}
	rcv, err := newReceiver(a, s, reps, log, newRegistry(), nil)
	if err != nil {
		return err
	}
	ln, err := listen(s.listen, "receiver", s.listenFrom)
	if err != nil {
		rcv.Client().Close()
		return err
	}
	for _, n := range s.sourceNotes {
		s.say(env.stdout, log, n)
	}
	s.say(env.stdout, log, fmt.Sprintf("receiver listening on %s", ln.Addr()))
	return rcv.Serve(ctx, ln)
}
