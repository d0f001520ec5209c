package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hookline/hookline/consumer"
	"github.com/hookline/hookline/internal/config"
	"github.com/hookline/hookline/internal/extract"
	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/internal/ratelog"
	"github.com/hookline/hookline/internal/verify"
	"github.com/hookline/hookline/producer"
	"github.com/hookline/hookline/topics"
)

// DefaultSecretHeader is the header the quick-path source checks --secret in.
const DefaultSecretHeader = "X-Hookline-Secret"

// appFlags are the flags of run, serve and consume: one place so the three
// agree on names, defaults and precedence (flag > HOOKLINE_* > YAML file).
type appFlags struct {
	fs       *flagSet
	kafka    *kafkaFlags
	pipeline *pipelineFlags

	configPath string
	logLevel   string
	logFormat  string

	// receiver
	listen         string
	secret         string
	previousSecret string
	secretHeader   string
	insecureNoAuth bool
	ackTimeout     time.Duration
	maxBody        int64
	maxInFlight    int
	drainDelay     time.Duration

	// consumer
	handlerURL     string
	handlerTimeout time.Duration
	handlerCA      string
	handlerHeaders headerList // checked by consumer.CheckHandlerHeader
	group          string
	concurrency    int
	perPartition   int
	maxUnfinished  int
	sessionTimeout time.Duration
	instanceID     string

	createTopics bool
}

func addAppFlags(fs *flagSet, withReceiver, withConsumer bool) *appFlags {
	a := &appFlags{fs: fs, kafka: addKafkaFlags(fs), pipeline: addPipelineFlags(fs)}
	fs.logsNotes = true // setup logs them with the other warnings
	a.handlerHeaders.check = consumer.CheckHandlerHeader
	fs.StringVar(&a.configPath, "config", "", "YAML file with sources and pipelines (see hookline.example.yaml)")
	fs.StringVar(&a.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&a.logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&a.createTopics, "create-topics", true, "create missing pipeline topics at startup (then check them)")
	if withReceiver {
		fs.StringVar(&a.listen, "listen", producer.DefaultListen, "HTTP listen address of the receiver")
		fs.StringVar(&a.secret, "secret", "", "shared secret of the default source \"genesys\" (prefer HOOKLINE_SECRET)")
		fs.StringVar(&a.secretHeader, "secret-header", DefaultSecretHeader, "header that carries --secret")
		fs.StringVar(&a.previousSecret, "previous-secret", "", "while rotating: the old secret, accepted besides --secret until every sender has the new one; then remove it (prefer HOOKLINE_PREVIOUS_SECRET)")
		fs.BoolVar(&a.insecureNoAuth, "insecure-no-auth", false, "accept unauthenticated webhooks on the default source (local testing only)")
		fs.DurationVar(&a.ackTimeout, "ack-timeout", producer.DefaultAckTimeout, "answer 503 when Kafka has not acknowledged within this budget")
		fs.Int64Var(&a.maxBody, "max-body", producer.DefaultMaxBodyBytes, "largest accepted body in bytes (larger: 413); capped at what the pipeline topics' max.message.bytes can store")
		fs.IntVar(&a.maxInFlight, "max-in-flight", producer.DefaultMaxInFlight, "concurrent webhooks before answering 429")
		fs.DurationVar(&a.drainDelay, "drain-delay", producer.DefaultDrainDelay, "on SIGTERM, keep listening this long answering /readyz and new webhooks 503 before closing; raise it to the load balancer's health-check interval (0: close once in-flight webhooks are answered)")
	}
	if withConsumer {
		fs.StringVar(&a.handlerURL, "handler-url", "", "URL the consumer POSTs each event to (the team's service)")
		fs.DurationVar(&a.handlerTimeout, "handler-timeout", 30*time.Second, "per-attempt handler timeout; overrun = retryable failure")
		fs.StringVar(&a.handlerCA, "handler-ca", "", "PEM file of the CA(s) trusted for an https --handler-url instead of the system roots (a private CA)")
		fs.headerVar(&a.handlerHeaders, "handler-header", "header sent with every forwarded request, as 'Name: value' (repeatable; in the environment one per line, the place for a secret: process lists show flags), e.g. 'Authorization: Bearer …'; never logged")
		fs.StringVar(&a.group, "group", "", "consumer group id (default hookline-<base>)")
		fs.IntVar(&a.concurrency, "concurrency", 0, fmt.Sprintf("events handled at once per process, for each pipeline it consumes (0: the consumer default, %d)", consumer.DefaultMaxInFlight))
		fs.IntVar(&a.perPartition, "partition-concurrency", 0, fmt.Sprintf("events handled at once per partition (0: the consumer default, %d)", consumer.DefaultMaxInFlightPerPartition))
		fs.IntVar(&a.maxUnfinished, "max-unfinished", 0, fmt.Sprintf("events started and not finished (running, or dedup write unacknowledged), for each pipeline: the most a crash re-runs; at least --concurrency (0: %d x --concurrency)", consumer.DefaultUnfinishedPerInFlight))
		fs.DurationVar(&a.sessionTimeout, "session-timeout", consumer.DefaultSessionTimeout, "how long a crashed consumer keeps its partitions before the group moves them")
		fs.StringVar(&a.instanceID, "instance-id", "", "static group membership id, unique and stable per process (e.g. the StatefulSet pod name): restarts keep their partitions without a rebalance")
	}
	return a
}

// pipelineSettings is one resolved pipeline.
type pipelineSettings struct {
	plan topics.Plan
	// fileBase is the base the file gave the pipeline, which sources name
	// even when --base renamed it.
	fileBase       string
	handlerURL     string
	handlerTimeout time.Duration
	handlerCA      string
	handlerHeaders http.Header
	// signatureHeaders: source → the header it signs bodies in, for the
	// pipeline's hmac-sha256 sources (consumer.HTTPSinkConfig).
	signatureHeaders map[string]string
	// partitionsAsked: --partitions (or its variable) or the file gave
	// the partition count, rather than the default.
	partitionsAsked bool
}

// settings is everything run/serve/consume need, resolved from flags,
// environment and file.
type settings struct {
	kafka  kafkaconf.Config
	listen string
	// listenFrom names where listen came from: --listen, HOOKLINE_LISTEN
	// or the file's listen key.
	listenFrom string
	pipelines  []pipelineSettings
	sources    []producer.Source
	// sourceNotes describe each source's verifier, without secrets.
	sourceNotes []string
	insecure    bool
	// defaulted lists ${NAME:-default} references of the file that fell
	// back to their default.
	defaulted []string
	// warnings lists flags that were set but that nothing uses, or that
	// change what the file says, each with why: logged on start.
	warnings []string
	// jsonLogs: --log-format json, so every line of output is a JSON log
	// record (see say).
	jsonLogs bool
}

// say writes one line for the person who started the command to w, or,
// with --log-format json, logs it at info: a log collector reads stdout and
// stderr as one stream of JSON lines.
func (s settings) say(w io.Writer, log *slog.Logger, line string) {
	if s.jsonLogs {
		log.Info(line)
		return
	}
	fmt.Fprintln(w, line)
}

// setup parses args and returns the logger and the resolved settings: the
// common start of run, serve and consume.
func (a *appFlags) setup(env *environment, args []string, u uses) (*slog.Logger, settings, error) {
	// Notes on misspelled variables go out with the warnings once there
	// is a logger (JSON lines with --log-format json); before it, beside
	// the error they may explain (HOOKLINE_SECRT: "no secret").
	failed := func(err error) (*slog.Logger, settings, error) {
		a.fs.printEnvNotes()
		return nil, settings{}, err
	}
	if err := a.fs.parse(args); err != nil {
		return failed(err)
	}
	if err := a.validate(); err != nil {
		return failed(err)
	}
	if conc := cmp.Or(a.concurrency, consumer.DefaultMaxInFlight); a.maxUnfinished != 0 && a.maxUnfinished < conc {
		return failed(usagef("--max-unfinished %d is below --concurrency %d: it counts running events too; raise it or leave it 0 (%d x --concurrency)", a.maxUnfinished, conc, consumer.DefaultUnfinishedPerInFlight))
	}
	log, err := a.logger(env)
	if err != nil {
		return failed(err)
	}
	for _, n := range a.fs.envNotes {
		log.Warn(n)
	}
	env.atExit = append(env.atExit, routeStdLog(log).Flush)
	note := func() {
		log.Info("stopping gracefully; a second signal stops at once (unfinished events are then redelivered)")
	}
	env.stopNote.Store(&note)
	s, err := a.resolve(env, u)
	if err != nil {
		return nil, settings{}, err
	}
	s.jsonLogs = a.logFormat == "json"
	for _, msg := range s.warnings {
		log.Warn(msg)
	}
	return log, s, nil
}

// validate refuses numbers outside their range, before anything connects,
// naming the flag (or its HOOKLINE_<FLAG> variable). Zero is refused where
// the help text does not give it a meaning: it used to fall back to the
// default silently. The pipeline flags check themselves in parse.
func (a *appFlags) validate() error {
	fs := a.fs
	if fs.Lookup("ack-timeout") != nil { // the receiver's flags
		if a.ackTimeout <= 0 {
			return fs.badValue("ack-timeout", fmt.Sprintf("must be positive, e.g. %s (the default); keep it below the sender's timeout", producer.DefaultAckTimeout))
		}
		if a.maxBody < 1 {
			return fs.badValue("max-body", fmt.Sprintf("must be at least 1 byte (default %d)", producer.DefaultMaxBodyBytes))
		}
		if a.maxInFlight < 1 {
			return fs.badValue("max-in-flight", fmt.Sprintf("must be at least 1 (default %d)", producer.DefaultMaxInFlight))
		}
		if a.drainDelay < 0 {
			return fs.badValue("drain-delay", fmt.Sprintf("must be 0 (no delay) or positive, e.g. %s (the default); match the load balancer's health-check interval", producer.DefaultDrainDelay))
		}
	}
	if fs.Lookup("handler-url") != nil { // the consumer's flags
		if a.handlerTimeout <= 0 {
			return fs.badValue("handler-timeout", "must be positive, e.g. 30s (the default)")
		}
		if a.concurrency < 0 {
			return fs.badValue("concurrency", fmt.Sprintf("must be 0 (the consumer default, %d) or positive", consumer.DefaultMaxInFlight))
		}
		if a.perPartition < 0 {
			return fs.badValue("partition-concurrency", fmt.Sprintf("must be 0 (the consumer default, %d) or positive", consumer.DefaultMaxInFlightPerPartition))
		}
		if a.maxUnfinished < 0 {
			return fs.badValue("max-unfinished", fmt.Sprintf("must be 0 (%d x --concurrency) or at least --concurrency", consumer.DefaultUnfinishedPerInFlight))
		}
		if a.sessionTimeout <= 0 {
			return fs.badValue("session-timeout", fmt.Sprintf("must be positive, e.g. %s (the default)", consumer.DefaultSessionTimeout))
		}
	}
	return nil
}

// producerDrainDelay is --drain-delay as producer.Config.DrainDelay wants
// it: the flag's 0 means no delay, which the producer spells negative (its
// zero is the default).
func (a *appFlags) producerDrainDelay() time.Duration {
	if a.drainDelay == 0 {
		return -1
	}
	return a.drainDelay
}

// validateFilePipeline refuses the numbers of a file pipeline that the
// flags' checks would refuse. Zero means "not in the file" (the flag's value
// applies), so only negative values are left to catch here.
func validateFilePipeline(path string, i int, fp config.Pipeline) error {
	where := fmt.Sprintf("config %s: pipelines[%d] (%s)", path, i, fp.Base)
	switch {
	case fp.Partitions < 0:
		return fmt.Errorf("%s: partitions %d: must be at least 1 (or leave it out for --partitions)", where, fp.Partitions)
	case fp.ReplicationFactor < -1:
		return fmt.Errorf("%s: replication_factor %d: must be -1 (the broker's default) or a replica count of 1 or more", where, fp.ReplicationFactor)
	case fp.DedupWindow < 0:
		return fmt.Errorf("%s: dedup_window %s: must be positive, e.g. 96h (or leave it out for --dedup-window)", where, time.Duration(fp.DedupWindow))
	case fp.Handler.Timeout < 0:
		return fmt.Errorf("%s: handler.timeout %s: must be positive, e.g. 30s (or leave it out for --handler-timeout)", where, time.Duration(fp.Handler.Timeout))
	}
	delays := make([]time.Duration, len(fp.RetryDelays))
	for i, d := range fp.RetryDelays {
		if d <= 0 {
			return fmt.Errorf("%s: retry_delays: %s: every delay must be positive, e.g. [10s, 1m, 10m]", where, time.Duration(d))
		}
		delays[i] = time.Duration(d)
	}
	if problem := decreasingDelay(delays); problem != "" {
		return fmt.Errorf("%s: retry_delays: %s, e.g. [10s, 1m, 10m]", where, problem)
	}
	return nil
}

func (a *appFlags) logger(env *environment) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
		return nil, usagef("--log-level %q: use debug, info, warn or error", a.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch a.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(env.stderr, opts)), nil
	case "json":
		// Durations as written on the command line ("30s"), not as
		// nanoseconds: the text format does the same.
		opts.ReplaceAttr = func(_ []string, at slog.Attr) slog.Attr {
			if at.Value.Kind() == slog.KindDuration {
				at.Value = slog.StringValue(at.Value.Duration().String())
			}
			return at
		}
		return slog.New(slog.NewJSONHandler(env.stderr, opts)), nil
	default:
		return nil, usagef("--log-format %q: use text or json", a.logFormat)
	}
}

// routeStdLog sends what libraries write with the standard log package
// (net/http's client and server do, e.g. "Unsolicited response received on
// idle HTTP channel") through log as rate-limited warnings, cut short and
// printable: unstructured lines would break --log-format json. The one that
// quotes a downstream's bytes loses them. The log package's output is
// process-wide; run, serve and consume set it once at start, and flush the
// returned limiter when they stop.
func routeStdLog(log *slog.Logger) *ratelog.Limiter {
	rl := ratelog.New(log, 10*time.Second)
	stdlog.SetFlags(0)
	stdlog.SetOutput(stdLogWriter{rl})
	return rl
}

type stdLogWriter struct{ rl *ratelog.Limiter }

// unsolicited starts net/http's line about bytes on an idle connection.
const unsolicited = "Unsolicited response received on idle HTTP channel"

func (w stdLogWriter) Write(p []byte) (int, error) {
	limit := 160
	if bytes.HasPrefix(p, []byte("http: panic serving")) {
		limit = 16 << 10 // keep the stack: a panic is a bug to report
	}
	msg := headers.Printable(headers.Cut(strings.TrimSpace(string(p)), limit))
	if bytes.HasPrefix(p, []byte(unsolicited)) {
		// Go quotes the stray bytes, often the service echoing the
		// event it got: payload, which the log never holds. Say what
		// it means instead.
		msg = unsolicited + ": the handler's service sent bytes after a complete answer on a keep-alive connection (a body on a 204 or 304, or more than its Content-Length); the client closed that connection and the event's outcome stands. Fix the service's answer"
	}
	// Keyed by the first words: one key per kind of message.
	words := strings.Fields(msg)
	key := strings.Join(words[:min(3, len(words))], " ")
	w.rl.Log(context.Background(), slog.LevelWarn, "stdlog:"+key, "library message", "text", msg)
	return len(p), nil
}

// uses says which parts of the settings a command runs: receivers
// (sources, listen), consumers (handlers), or neither (the topics
// commands). What it does not run is not checked, and an unset ${NAME} in
// the file there does not refuse the file.
type uses uint8

const (
	usesReceiver uses = 1 << iota
	usesConsumer
)

// resolve merges flags, environment and the YAML file for a command that
// runs what u says.
func (a *appFlags) resolve(env *environment, u uses) (settings, error) {
	var file config.File
	if a.configPath != "" {
		var unused config.Unused
		if u&usesReceiver == 0 {
			unused |= config.UnusedSources | config.UnusedListen
		}
		if u&usesConsumer == 0 {
			unused |= config.UnusedHandlers
		}
		if a.fs.set("handler-header") {
			unused |= config.UnusedHandlerHeaders // the flag replaces them
		}
		f, err := config.LoadFor(a.configPath, env.getenv, unused)
		if err != nil {
			if errors.Is(err, config.ErrRead) && a.fs.origin("config") != "--config" {
				// A variable left set in the shell or the unit file is
				// easy to forget: say where the path came from.
				return settings{}, fmt.Errorf("%w; the path comes from %s: correct it, or unset it to run without a file", err, a.fs.origin("config"))
			}
			return settings{}, err
		}
		file = f
	}
	s, err := a.resolveWith(env, u, file)
	if err != nil {
		// A value the file took from the environment is not quoted in the
		// error, which is printed and logged: a misplaced reference
		// (header: "${SECRET}") would show the secret.
		if msg := file.Scrub(err.Error()); msg != err.Error() {
			if errors.As(err, new(usageError)) {
				return settings{}, usageError{msg}
			}
			return settings{}, errors.New(msg)
		}
		return settings{}, err
	}
	return s, nil
}

// resolveWith is resolve once the file, if any, is loaded.
func (a *appFlags) resolveWith(env *environment, u uses, file config.File) (settings, error) {
	s := settings{kafka: a.kafka.config(env, file.Brokers), listen: a.listen, defaulted: file.Defaulted}
	s.listenFrom = a.fs.origin("listen")
	if !a.fs.set("listen") && file.Listen != "" {
		s.listen = file.Listen
		s.listenFrom = "the listen key of " + a.configPath
	}

	// Pipelines: from the file, or one from the flags.
	pipelineFlagNames := []string{"partitions", "replication-factor", "retry-delays", "dedup-window", "handler-url", "handler-timeout", "handler-ca", "handler-header"}
	pipelinesInFile := len(file.Pipelines) > 0
	if len(file.Pipelines) == 0 {
		file.Pipelines = []config.Pipeline{{Base: a.pipeline.base}}
	} else if len(file.Pipelines) > 1 {
		for _, n := range append(pipelineFlagNames, "base", "group") { // one group per pipeline: hookline-<base>
			if !a.fs.set(n) {
				continue
			}
			what := "set it per pipeline in the file (or unset it)"
			switch n {
			case "group":
				what = "each pipeline's group is hookline-<base>: unset it, or run one process per pipeline"
			case "base":
				what = "each pipeline names its base in the file: unset it"
			}
			return settings{}, usagef("%s is ambiguous with %d pipelines in %s: %s", a.fs.origin(n), len(file.Pipelines), a.configPath, what)
		}
	}
	for i, fp := range file.Pipelines {
		if err := validateFilePipeline(a.configPath, i, fp); err != nil {
			return settings{}, err
		}
		tc := topics.Config{
			Base:              fp.Base,
			Partitions:        fp.Partitions,
			ReplicationFactor: fp.ReplicationFactor,
			DedupWindow:       time.Duration(fp.DedupWindow),
		}
		for _, d := range fp.RetryDelays {
			tc.RetryDelays = append(tc.RetryDelays, time.Duration(d))
		}
		flagTC := a.pipeline.topicsConfig()
		// Flags and environment win over the file; unset flags fill gaps.
		if a.fs.set("base") || tc.Base == "" {
			if tc.Base != "" && tc.Base != flagTC.Base {
				s.warnings = append(s.warnings, fmt.Sprintf("%s renames the pipeline %s of %s to %s; sources that name %s write to %s",
					a.fs.origin("base"), tc.Base, a.configPath, flagTC.Base, tc.Base, flagTC.Base))
			}
			tc.Base = flagTC.Base
		}
		if a.fs.set("partitions") || tc.Partitions == 0 {
			tc.Partitions = flagTC.Partitions
		}
		if a.fs.set("replication-factor") || tc.ReplicationFactor == 0 {
			tc.ReplicationFactor = flagTC.ReplicationFactor
		}
		if a.fs.set("retry-delays") || tc.RetryDelays == nil {
			tc.RetryDelays = flagTC.RetryDelays
		}
		if a.fs.set("dedup-window") || tc.DedupWindow == 0 {
			tc.DedupWindow = flagTC.DedupWindow
		}
		plan, err := topics.NewPlan(tc)
		if err != nil {
			if pipelinesInFile {
				return settings{}, fmt.Errorf("config %s: pipelines[%d] (%s): %w", a.configPath, i, fp.Base, err)
			}
			return settings{}, fmt.Errorf("pipeline %s: %w", tc.Base, err)
		}
		inFile := func(key string, given bool) string {
			if given {
				return fmt.Sprintf("%s of pipelines[%d] in %s", key, i, a.configPath)
			}
			return ""
		}
		if err := dedupCoversRetries(tc,
			cmp.Or(inFile("dedup_window", !a.fs.set("dedup-window") && fp.DedupWindow != 0), flagOrigin(a.fs, "dedup-window")),
			cmp.Or(inFile("retry_delays", !a.fs.set("retry-delays") && fp.RetryDelays != nil), flagOrigin(a.fs, "retry-delays"))); err != nil {
			if u&usesConsumer != 0 {
				return settings{}, err
			}
			// Only a consumer acts on it: serve keeps taking webhooks
			// (a receiver that shares its environment with the consumers
			// must not stop on an upgrade), topics keeps working.
			s.warnings = append(s.warnings, err.Error())
		}
		ps := pipelineSettings{plan: plan, fileBase: fp.Base, handlerURL: fp.Handler.URL, handlerTimeout: time.Duration(fp.Handler.Timeout),
			partitionsAsked: a.fs.set("partitions") || fp.Partitions != 0}
		if a.fs.set("handler-url") || ps.handlerURL == "" {
			ps.handlerURL = a.handlerURL
		}
		if ps.handlerURL != "" && u&usesConsumer != 0 {
			// Checked before a broker starts or a topic is created.
			if err := consumer.CheckHandlerURL(ps.handlerURL); err != nil {
				if !a.fs.set("handler-url") && fp.Handler.URL != "" {
					return settings{}, usagef("config %s: pipelines[%d] (%s): handler.url: %v", a.configPath, i, tc.Base, err)
				}
				return settings{}, usagef("pipeline %s: %s: %v", tc.Base, a.fs.origin("handler-url"), err)
			}
		}
		if a.fs.set("handler-timeout") || ps.handlerTimeout == 0 {
			ps.handlerTimeout = a.handlerTimeout
		}
		ps.handlerCA = fp.Handler.CAFile
		if a.fs.set("handler-ca") || ps.handlerCA == "" {
			ps.handlerCA = a.handlerCA
		}
		if ps.handlerCA != "" && u&usesConsumer != 0 {
			if _, err := kafkaconf.CertPool(ps.handlerCA); err != nil {
				if !a.fs.set("handler-ca") && fp.Handler.CAFile != "" {
					return settings{}, fmt.Errorf("config %s: pipelines[%d] (%s): handler.ca_file: %w", a.configPath, i, tc.Base, err)
				}
				return settings{}, fmt.Errorf("pipeline %s: %s: %w", tc.Base, a.fs.origin("handler-ca"), err)
			}
			if ps.handlerURL != "" && !strings.HasPrefix(strings.ToLower(ps.handlerURL), "https://") {
				s.warnings = append(s.warnings, fmt.Sprintf("pipeline %s: the handler CA file is not used: its handler URL is not https", tc.Base))
			}
		}
		// The flag's headers replace the file's: mixing the two would
		// leave a stale Authorization in place.
		ps.handlerHeaders = a.handlerHeaders.h
		if !a.fs.set("handler-header") && len(fp.Handler.Headers) > 0 && u&usesConsumer != 0 {
			ps.handlerHeaders = http.Header{}
			for name, v := range fp.Handler.Headers {
				if err := consumer.CheckHandlerHeader(name, v); err != nil {
					return settings{}, fmt.Errorf("config %s: pipelines[%d] (%s): handler.headers: %w", a.configPath, i, tc.Base, err)
				}
				ps.handlerHeaders.Add(name, v)
			}
		}
		s.pipelines = append(s.pipelines, ps)
	}
	if err := distinctTopics(s.pipelines); err != nil {
		return settings{}, err
	}
	s.noteSignatureHeaders(file)
	if u&usesReceiver == 0 {
		return s, nil
	}
	return s, a.resolveSources(&s, file)
}

// flagOrigin names where flag name's value came from: the flag, its
// variable, or its default.
func flagOrigin(fs *flagSet, name string) string {
	if !fs.set(name) {
		return "the default of --" + name
	}
	return fs.origin(name)
}

// dedupCoversRetries refuses a dedup window shorter than the longest retry
// delay of the pipeline: a copy of an event that waits in a retry tier while
// another copy is processed is skipped when its turn comes only if the
// processed entry is still remembered then. windowFrom and delaysFrom say
// where the two values came from.
func dedupCoversRetries(tc topics.Config, windowFrom, delaysFrom string) error {
	if len(tc.RetryDelays) == 0 {
		return nil
	}
	longest := slices.Max(tc.RetryDelays)
	if tc.DedupWindow >= longest {
		return nil
	}
	return usagef("pipeline %s: the dedup window %s (%s) is shorter than the longest retry delay %s (%s): a copy of an event that waits in that tier while another copy is processed would reach the handler again once the window has passed; make the dedup window at least %s, or shorten the delays",
		tc.Base, topics.ShortDuration(tc.DedupWindow), windowFrom, topics.ShortDuration(longest), delaysFrom, topics.ShortDuration(longest))
}

// distinctTopics refuses pipelines that share a topic: a base that is
// another pipeline's <base>.dlq would re-handle its dead letters.
func distinctTopics(ps []pipelineSettings) error {
	owner := map[string]string{}
	byKey := map[string]string{} // topics.CollisionKey → topic
	for _, p := range ps {
		for _, t := range p.plan.Names.All() {
			if o, ok := owner[t]; ok {
				return usagef("pipelines %s and %s both use the topic %s: choose bases that are not another pipeline's topic (<base>.retry-K, <base>.dlq, <base>.dedup)", o, p.plan.Names.Base, t)
			}
			if other, ok := byKey[topics.CollisionKey(t)]; ok {
				return usagef("pipelines %s and %s have the topics %s and %s, which differ only in '.' versus '_': Kafka treats those alike and refuses the second; choose bases that differ in more", owner[other], p.plan.Names.Base, other, t)
			}
			owner[t] = p.plan.Names.Base
			byKey[topics.CollisionKey(t)] = t
		}
	}
	// A base named like another pipeline's tier beyond its configured
	// ones (p.retry-5 next to p with 3 tiers) would be read as p's
	// leftover tier (see consumer's extra tiers).
	for _, p := range ps {
		for _, o := range ps {
			if k, ok := o.plan.Names.RetryTier(p.plan.Names.Base); ok && p.plan.Names.Base != o.plan.Names.Base {
				return usagef("pipeline %s is named like retry tier %d of pipeline %s: choose a base that is not <base>.retry-K of another pipeline", p.plan.Names.Base, k, o.plan.Names.Base)
			}
		}
	}
	return nil
}

// pipeline finds the pipeline a source names: by its base, or by the base
// the file gave it; "" is the first.
func (s *settings) pipeline(base string) (topics.Names, bool) {
	if p := s.pipelineNamed(base); p != nil {
		return p.plan.Names, true
	}
	return topics.Names{}, false
}

// pipelineNamed is the pipeline a source names (see pipeline), or nil.
func (s *settings) pipelineNamed(base string) *pipelineSettings {
	if base == "" {
		return &s.pipelines[0]
	}
	for i := range s.pipelines {
		if p := &s.pipelines[i]; p.plan.Names.Base == base || p.fileBase == base {
			return p
		}
	}
	return nil
}

// noteSignatureHeaders gives each pipeline the headers its hmac-sha256
// sources sign bodies in, for its sink to forward the signatures the
// receiver keeps. Also where only consumers run: a verifier's type and
// header are no secrets. A header from an unset variable reads as the
// default here; the receiver, which has it, stores the real one, and a
// signature whose header differs is not forwarded. A header the sink may
// not send (consumer.CheckSignatureHeader) is left out with a warning.
func (s *settings) noteSignatureHeaders(file config.File) {
	for _, fs := range file.Sources {
		if fs.Verify.Type != verify.TypeHMACSHA256 {
			continue
		}
		p := s.pipelineNamed(fs.Pipeline)
		if p == nil {
			continue // refused by resolveSources where sources are used
		}
		name := http.CanonicalHeaderKey(cmp.Or(fs.Verify.Header, verify.DefaultHMACHeader))
		if err := consumer.CheckSignatureHeader(name); err != nil {
			// Not worth refusing the file over: the signature is still
			// kept with each record.
			s.warnings = append(s.warnings, fmt.Sprintf("source %s: its signatures are kept in Kafka but not forwarded to the handler: %v", fs.Name, err))
			continue
		}
		if p.signatureHeaders == nil {
			p.signatureHeaders = map[string]string{}
		}
		p.signatureHeaders[fs.Name] = name
	}
}

func (a *appFlags) resolveSources(s *settings, file config.File) error {
	srcs := file.Sources
	if len(srcs) == 0 {
		// The quick path: one Genesys source checking a shared secret.
		v := config.Verify{Type: "shared-secret", Header: a.secretHeader, Secret: a.secret, PreviousSecret: a.previousSecret}
		if a.previousSecret != "" && a.secret == "" {
			return usagef("%s without --secret: set the new secret with --secret (or HOOKLINE_SECRET) and keep the old one in --previous-secret while senders move over", a.fs.origin("previous-secret"))
		}
		if a.secret == "" {
			if !a.insecureNoAuth {
				return usagef("no secret for the default source \"genesys\": set --secret or HOOKLINE_SECRET, configure sources in --config, or pass --insecure-no-auth for local testing")
			}
			v = config.Verify{Type: "none"}
		}
		srcs = []config.Source{{Name: "genesys", Kind: string(extract.KindGenesys), Verify: v}}
	} else {
		if a.fs.set("secret") {
			// The secret flag (or HOOKLINE_SECRET) wins for a file source named genesys.
			used := false
			for i := range srcs {
				if srcs[i].Name == "genesys" && srcs[i].Verify.Type == "shared-secret" {
					if srcs[i].Verify.Secret != "" || srcs[i].Verify.SecretFile != "" {
						// Said, so that a leftover development secret does not
						// replace the production one unnoticed.
						s.warnings = append(s.warnings, a.fs.origin("secret")+" replaces the secret "+a.configPath+" gives the source genesys (flag and environment win over the file); unset it to use the file's")
					}
					srcs[i].Verify.Secret, srcs[i].Verify.SecretFile = a.secret, ""
					used = true
				}
			}
			if !used {
				s.warnings = append(s.warnings, a.fs.origin("secret")+" is ignored: it sets the secret of a file source named genesys with verify type shared-secret, and the file has none; set each source's verify in the file")
			}
		}
		if a.insecureNoAuth {
			s.warnings = append(s.warnings, a.fs.origin("insecure-no-auth")+" is ignored: the file defines the sources, and each one's verify decides (type none accepts anything)")
		}
		if a.fs.set("secret-header") {
			s.warnings = append(s.warnings, a.fs.origin("secret-header")+" is ignored: the file defines the sources; set verify.header of a source in the file")
		}
		if a.fs.set("previous-secret") {
			s.warnings = append(s.warnings, a.fs.origin("previous-secret")+" is ignored: the file defines the sources; set verify.previous_secret of a source in the file")
		}
	}
	for i, fs := range srcs {
		// Where a mistake is: the file's entry, or the quick path's flags.
		where := fmt.Sprintf("source %q", fs.Name)
		if len(file.Sources) > 0 {
			where = fmt.Sprintf("config %s: source %q (sources[%d])", a.configPath, fs.Name, i)
			if fs.Name == "genesys" && a.fs.set("secret") && fs.Verify.Type == "shared-secret" {
				where += " with the secret of " + a.fs.origin("secret")
			}
		}
		names, ok := s.pipeline(fs.Pipeline)
		if !ok {
			var bases []string
			for _, p := range s.pipelines {
				bases = append(bases, p.plan.Names.Base)
			}
			return fmt.Errorf("%s: pipeline %q is not configured: name one of %s, or leave pipeline out for the first", where, fs.Pipeline, strings.Join(bases, ", "))
		}
		kind := extract.Kind(fs.Kind)
		if kind == "" {
			kind = extract.KindGenesys
		}
		if kind != extract.KindGenesys && kind != extract.KindGeneric {
			return fmt.Errorf("%s: kind %q: use %q (EventBridge, notification or data-action bodies) or %q (JSON pointers in event_id and key)", where, fs.Kind, extract.KindGenesys, extract.KindGeneric)
		}
		for _, l := range []struct {
			key  string
			ptrs []string
		}{{"event_id", fs.EventID}, {"key", fs.Key}} {
			for j, p := range l.ptrs {
				if err := extract.CheckPointer(p); err != nil {
					return fmt.Errorf("%s: %s[%d] %q: %w (a JSON pointer such as /id or /channel/to/id)", where, l.key, j, p, err)
				}
			}
		}
		vc, err := fs.Verify.ReadSecrets()
		if err != nil {
			return fmt.Errorf("%s: verify: %w", where, err)
		}
		cfg := verify.Config{
			Type: vc.Type, Header: vc.Header, Secret: vc.Secret, PreviousSecret: vc.PreviousSecret,
			Username: vc.Username, Prefix: vc.Prefix, Encoding: vc.Encoding,
		}
		ver, err := verify.New(cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if cfg.Type == "none" {
			s.insecure = true
		}
		rules := extract.Rules{Kind: kind, EventID: fs.EventID, Key: fs.Key}
		if err := rules.Validate(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		s.sources = append(s.sources, producer.Source{Name: fs.Name, Topics: names, Rules: rules, Verifier: ver})
		// A reference misplaced where the note quotes a field (header:
		// "${SECRET}" is a valid header name) is named, not printed.
		note := cfg
		for _, f := range []*string{&note.Header, &note.Prefix, &note.Username} {
			if raw, ok := file.Ref(*f); ok {
				*f = raw
			}
		}
		s.sourceNotes = append(s.sourceNotes, file.Scrub(fmt.Sprintf("POST /webhooks/%s → %s (%s, verify %s)", fs.Name, names.Base, kind, note)))
	}
	return nil
}

// startupWarnings says loudly, on every start, that a source takes anything
// or that a secret came from a default written in the config file.
func startupWarnings(env *environment, log *slog.Logger, s settings) {
	for _, name := range s.defaulted {
		log.Warn("config: environment variable not set, using the default written in the config file; fine for trying hookline out, not for production", "variable", name)
	}
	if !s.insecure {
		return
	}
	msg := "INSECURE: a source accepts unauthenticated webhooks (verify type none); anyone who can reach this port can inject events"
	log.Warn(msg)
	if !s.jsonLogs {
		fmt.Fprintln(env.stderr, strings.Repeat("!", 20)+" "+msg)
	}
}
