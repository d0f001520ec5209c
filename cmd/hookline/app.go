package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/embedded"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/producer"
	"github.com/hookline/hookline/topics"
)

// newRegistry is the metrics registry of one process: Go runtime and process
// metrics plus whatever the components register.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// startEmbedded starts the in-process broker and points s.kafka at it.
func startEmbedded(env *environment, log *slog.Logger, s *settings, addr, dataDir string) (*embedded.Broker, error) {
	b, err := embedded.Start(embedded.Config{Addr: addr, DataDir: dataDir, Logger: log.With("component", "embedded-broker")})
	if err != nil {
		return nil, err
	}
	s.kafka.Brokers = []string{b.Addr()}
	if !s.jsonLogs {
		fmt.Fprintf(env.stderr, "embedded Kafka broker on %s (data in %s): for development and single-host use only; pass --brokers for a real cluster\n", b.Addr(), dataDir)
		fmt.Fprintf(env.stdout, "bootstrap: %s   (e.g. kcat -b %s -L)\n", b.Addr(), b.Addr())
	}
	log.Info("embedded broker started", "addr", b.Addr(), "data_dir", dataDir)
	return b, nil
}

// listen binds addr for what, naming flag when it cannot.
func listen(addr, what, flag string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if _, perr := strconv.ParseUint(addr, 10, 16); perr == nil {
			// listen: 8080, a common slip (net says "missing port").
			return nil, fmt.Errorf("%s cannot listen on %s (from %s): a port alone is not an address: write :%s (every interface) or 127.0.0.1:%s", what, addr, flag, addr, addr)
		}
		return nil, fmt.Errorf("%s cannot listen on %s (choose another with %s): %w", what, addr, flag, err)
	}
	return ln, nil
}

// checkListen binds addr and lets it go, before anything else starts (an
// embedded broker, topics created), so that a wrong or taken address fails
// with nothing done. The port is bound for good only when the server can
// answer: bound during a slow start, senders' connections would wait
// unanswered in the backlog instead of being refused and retried.
func checkListen(addr, what, flag string) error {
	ln, err := listen(addr, what, flag)
	if err != nil {
		return err
	}
	return ln.Close()
}

// checkPortsApart refuses a receiver address and an embedded broker
// address that would bind the same port. Each is free on its own, so
// checkListen passes; without this check the broker would start and create
// its topics under --data-dir before the receiver failed to bind.
func checkPortsApart(listenAddr, listenFrom, brokerAddr, brokerFrom string) error {
	lh, lp, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return nil // listen reports the malformed address
	}
	bh, bp, err := net.SplitHostPort(brokerAddr)
	if err != nil {
		return nil // embedded.Start reports it
	}
	if lp != bp || lp == "0" || !hostsOverlap(lh, bh) {
		return nil
	}
	return fmt.Errorf("the receiver (%s %s) and the embedded broker (%s %s) would share port %s: each needs its own: choose another port for one of them",
		listenFrom, listenAddr, brokerFrom, brokerAddr, lp)
}

// hostsOverlap tells whether binding a and b on one port would collide:
// the same host, or either one every interface.
func hostsOverlap(a, b string) bool {
	norm := func(h string) string {
		if h == "localhost" {
			return "127.0.0.1"
		}
		if ip := net.ParseIP(h); ip != nil {
			if ip.IsUnspecified() {
				return ""
			}
			return ip.String()
		}
		return h
	}
	a, b = norm(a), norm(b)
	return a == "" || b == "" || a == b
}

// prepareTopics creates missing topics (when asked), refuses pipelines
// whose topics are missing or not co-partitioned, and warns about the other
// differences from the plan unless consumers start on them (consumed): a
// consumer checks its pipeline again at its start and logs them itself,
// extra retry tiers with what it does about them. It returns one report per
// pipeline, in s.pipelines order. A pipeline that exists with another
// partition count than --partitions or the file asked for is worth a
// warning, since its existing count wins.
func prepareTopics(ctx context.Context, log *slog.Logger, kc kafkaconf.Config, s settings, create, consumed bool) ([]topics.Report, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cl, err := kafkaconf.NewClient(ctx, kc)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var reps []topics.Report
	for _, p := range s.pipelines {
		if create {
			res, err := topics.Create(ctx, adm, p.plan)
			if err != nil {
				return nil, err
			}
			for _, r := range res {
				if r.Created {
					log.Info("created topic", "topic", r.Topic, "partitions", r.Partitions)
				}
			}
		}
		rep, err := topics.Inspect(ctx, adm, p.plan, 0)
		if err != nil {
			return nil, err
		}
		if err := rep.Unusable(); err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", p.plan.Names.Base, err)
		}
		if !consumed {
			for _, pr := range rep.Problems {
				log.Warn("pipeline topic differs from its plan", "problem", pr.String())
			}
		}
		if n := rep.Topics[0].Partitions; p.partitionsAsked && n != p.plan.Partitions {
			log.Warn("pipeline exists with another partition count; using it (partitions cannot be removed, and adding some moves conversations)",
				"pipeline", p.plan.Names.Base, "partitions", n, "asked", p.plan.Partitions)
		}
		reps = append(reps, rep)
	}
	return reps, nil
}

// newReceiver builds the receiver from settings. The body limit is capped at
// what every pipeline's topics can store (max.message.bytes minus room for
// headers), so that a body the receiver accepts can also take every retry
// and DLQ hop; the producer's batch limit follows each topic's
// max.message.bytes.
func newReceiver(a *appFlags, s settings, reps []topics.Report, log *slog.Logger, reg *prometheus.Registry, ready func() (bool, string)) (*producer.Receiver, error) {
	maxBody := a.maxBody
	all := topics.Report{}
	for i, rep := range reps {
		all.Topics = append(all.Topics, rep.Topics...)
		fit := rep.MaxBodyBytes()
		raise := ""
		if cmds := rep.RaiseForBody(a.maxBody, strings.Join(s.kafka.Brokers, ",")); cmds != nil {
			raise = "raise max.message.bytes of its topics: " + strings.Join(cmds, "; ") +
				" (add --command-config with your TLS or SASL client properties where the cluster needs them)"
		}
		if fit < 1 {
			if raise == "" {
				raise = fmt.Sprintf("lower --max-body, and raise max.message.bytes of its topics above %d", topics.HeaderRoom)
			}
			return nil, fmt.Errorf("pipeline %s: its topics take records of at most %d bytes, no room for a body next to hookline's headers (%d bytes); next: %s",
				s.pipelines[i].plan.Names.Base, fit+topics.HeaderRoom, topics.HeaderRoom, raise)
		}
		if fit < maxBody {
			next := "lower --max-body to " + strconv.FormatInt(fit, 10)
			if raise != "" {
				next = raise + ", then restart; or " + next
			} else {
				next += " (with hookline's headers, --max-body is beyond what any Kafka record can be)"
			}
			log.Warn("--max-body is larger than the pipeline's topics can store: larger bodies get 413",
				"pipeline", s.pipelines[i].plan.Names.Base, "max_body", a.maxBody, "accepted", fit, "next", next)
			maxBody = fit
		}
	}
	return producer.New(producer.Config{
		Kafka:             s.kafka,
		Sources:           s.sources,
		Listen:            s.listen,
		MaxBodyBytes:      maxBody,
		AckTimeout:        a.ackTimeout,
		MaxInFlight:       a.maxInFlight,
		DrainDelay:        a.producerDrainDelay(),
		Ready:             ready,
		Logger:            log,
		Registry:          reg,
		ExtraProducerOpts: []kgo.Opt{all.ProducerBatchMaxBytes()},
	})
}

// sayStopped arranges that, when a long-running command returns without
// an error (stopped by a signal, after its graceful stop), the last log
// line says it stopped cleanly: it tells a clean exit from a killed
// process. It runs at exit (env.atExit), after the command's deferred
// closes (the embedded broker's) and the summary of held-back log lines.
// err is the command's named result.
func sayStopped(env *environment, log *slog.Logger, cmd string, err *error) {
	what := map[string]string{
		"serve":   "webhooks in flight answered",
		"consume": "handlers finished or their events left for redelivery",
		"run":     "webhooks in flight answered, handlers finished or their events left for redelivery",
	}[cmd]
	env.atExit = append(env.atExit, func() {
		if *err == nil {
			log.Info("stopped cleanly: "+what, "command", cmd)
		}
	})
}

// runAll runs every component until ctx is cancelled or one of them fails,
// then cancels the rest and waits for all of them. The components in after
// (the health and metrics server) keep running until the others returned,
// so that /healthz, /readyz ("shutting down") and /metrics answer during a
// graceful stop; one of them failing stops everything, as any component.
func runAll(ctx context.Context, comps, after map[string]func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lateCtx, cancelLate := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelLate()
	var (
		wg, lateWG sync.WaitGroup
		mu         sync.Mutex
		first      error
	)
	note := func(name string, err error) {
		if err != nil && !errors.Is(err, context.Canceled) {
			mu.Lock()
			if first == nil {
				first = fmt.Errorf("%s: %w", name, err)
			}
			mu.Unlock()
		}
		cancel()
	}
	for name, run := range after {
		lateWG.Go(func() { note(name, run(lateCtx)) })
	}
	for name, run := range comps {
		wg.Go(func() { note(name, run(ctx)) })
	}
	wg.Wait()
	cancelLate()
	lateWG.Wait()
	return first
}
