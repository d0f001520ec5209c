package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/hookline/hookline/internal/loadtest"
)

const loadtestExamples = `  # 10,000 Genesys events to a local receiver, as EventBridge would send them
  hookline loadtest --url http://127.0.0.1:8080/webhooks/genesys --secret s3cret --count 10000

  # soak: 100 new events/s for 10 minutes, one line every 10 s
  hookline loadtest --secret s3cret --soak 10m --rate 100

  # keep the list of acknowledged events to compare with what the handler saw
  hookline loadtest --secret s3cret --count 5000 --acked-out acked.jsonl --seed 42

  # shorter retries than EventBridge's (1 s … 1 m, 185 attempts, 24 h)
  hookline loadtest --secret s3cret --count 1000 --backoff-min 100ms --backoff-max 2s --max-retry-time 2m

  # a receiver whose source checks a bearer token (-H and --H are the same flag)
  hookline loadtest --url http://127.0.0.1:8080/webhooks/crm -H 'Authorization: Bearer t0ken' --count 100

  # exit status: 0 every event acknowledged; 1 some never acknowledged (the summary
  # says why, with a hint when most answers were 401, 404, 413, 429 or 503);
  # 2 a usage error; 130 interrupted (SIGINT or SIGTERM): the partial summary is
  # printed and says so`

// exitInterrupted is loadtest's exit status when a signal ended the run
// early (128 + SIGINT, as a shell reports it).
const exitInterrupted = 130

func runLoadtest(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "loadtest", "loadtest [--url URL] (--count N | --duration D | --soak D --rate R) [flags]", loadtestExamples)
	fs.ownEnv("secret", "secret-header")
	url := fs.String("url", "http://127.0.0.1:8080/webhooks/genesys", "receiver URL to POST to")
	secret := fs.String("secret", "", "shared secret to send (prefer HOOKLINE_SECRET)")
	secretHeader := fs.String("secret-header", DefaultSecretHeader, "header that carries --secret")
	var extra headerList
	fs.headerVar(&extra, "H", "extra header 'Name: value', written -H or --H (repeatable; in the environment one per line)")
	count := fs.Int("count", 1000, "distinct events to send (0: no bound; default 0 with --duration or --soak)")
	duration := fs.Duration("duration", 0, "stop starting new events after this long (0: no bound)")
	soak := fs.Duration("soak", 0, "soak mode: run this long at --rate, printing a line every --interval")
	rate := fs.Float64("rate", 0, "new events per second (0: as fast as --concurrency allows; required with --soak)")
	interval := fs.Duration("interval", 10*time.Second, "progress line interval (soak mode, or when set)")
	concurrency := fs.Int("concurrency", loadtest.DefaultConcurrency, "requests in flight at once")
	conversations := fs.Int("conversations", loadtest.DefaultConversations, "conversations open at once")
	dupRate := fs.Float64("duplicate-rate", 0.02, "after each acknowledgement, the probability of re-sending an acknowledged event of the same conversation (picked at random, so one event may be sent several times) in a new envelope")
	timeout := fs.Duration("timeout", loadtest.DefaultTimeout, "per-request timeout (EventBridge: 5s)")
	maxAttempts := fs.Int("max-attempts", loadtest.DefaultMaxAttempts, "tries per event, the first included (EventBridge: 185)")
	maxRetryTime := fs.Duration("max-retry-time", loadtest.DefaultMaxRetryTime, "give an event up this long after its first try (EventBridge: 24h)")
	backoffMin := fs.Duration("backoff-min", loadtest.DefaultBackoffMin, "first retry delay (doubles per try, with jitter)")
	backoffMax := fs.Duration("backoff-max", loadtest.DefaultBackoffMax, "largest retry delay")
	seed := fs.Int64("seed", 0, "seed for ids and decisions (0: random, printed); the same seed sends the same conversations, and with --concurrency 1 the same events (with more workers, where --count cuts them off depends on timing)")
	ackedOut := fs.String("acked-out", "", "write every event as a JSON line to this file: conversation_id, sequence, type, event_id, acknowledged, attempts (its requests, deliberate duplicates included), duplicates (sends after it was acknowledged), failure, acked_at")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	fs.check(func() error {
		switch {
		case *count < 0:
			return fs.badValue("count", "must be 0 (no bound, for --duration or --soak) or more")
		case *duration < 0:
			return fs.badValue("duration", "must not be negative (0: no bound)")
		case *soak < 0:
			return fs.badValue("soak", "must be positive, e.g. 10m")
		case *rate < 0 || math.IsNaN(*rate) || math.IsInf(*rate, 0):
			return fs.badValue("rate", "must be 0 (as fast as --concurrency allows) or a positive number of new events per second")
		case *interval <= 0:
			return fs.badValue("interval", "must be positive, e.g. 10s")
		case *concurrency < 1:
			return fs.badValue("concurrency", "must be at least 1 (requests in flight at once)")
		case *conversations < 1:
			return fs.badValue("conversations", "must be at least 1 (conversations open at once)")
		case *dupRate < 0 || *dupRate > 1 || math.IsNaN(*dupRate):
			return fs.badValue("duplicate-rate", "must be a probability from 0 to 1, e.g. 0.02")
		case *timeout <= 0:
			return fs.badValue("timeout", "must be positive, e.g. 5s (EventBridge's)")
		case *maxAttempts < 1:
			return fs.badValue("max-attempts", "must be at least 1 (1: no retries; EventBridge: 185)")
		case *maxRetryTime <= 0:
			return fs.badValue("max-retry-time", "must be positive, e.g. 24h (EventBridge's)")
		case *backoffMin <= 0:
			return fs.badValue("backoff-min", "must be positive, e.g. 1s")
		case *backoffMax <= 0:
			return fs.badValue("backoff-max", "must be positive, e.g. 1m")
		case *backoffMax < *backoffMin:
			return fs.badValue("backoff-max", fmt.Sprintf("must be at least --backoff-min (%s): raise it or lower --backoff-min", *backoffMin))
		}
		return nil
	})
	if err := fs.parse(args); err != nil {
		return err
	}
	cfg := loadtest.Config{
		URL: *url, Secret: *secret, SecretHeader: *secretHeader,
		Count: *count, Duration: *duration, Rate: *rate,
		Concurrency: *concurrency, Conversations: *conversations, DuplicateRate: *dupRate,
		Timeout: *timeout, MaxAttempts: *maxAttempts, MaxRetryTime: *maxRetryTime,
		BackoffMin: *backoffMin, BackoffMax: *backoffMax, Seed: *seed,
	}
	cfg.Header = extra.h
	if *soak > 0 {
		if *duration > 0 {
			return usagef("use --soak or --duration, not both")
		}
		if *rate <= 0 {
			return usagef("--soak needs --rate (new events per second), e.g. --soak %s --rate 100", *soak)
		}
		cfg.Duration = *soak
	}
	if cfg.Duration > 0 && !fs.set("count") {
		cfg.Count = 0
	}
	if cfg.Count == 0 && cfg.Duration == 0 {
		return usagef("unbounded run: give --count N, --duration D or --soak D")
	}
	if *soak > 0 || fs.set("interval") {
		cfg.Interval = *interval
		cfg.Progress = func(s loadtest.Snapshot) { fmt.Fprintln(env.stdout, s.Line()) }
	}
	// Everything is checked before the banner: a refused run announces
	// nothing.
	if err := cfg.Validate(); err != nil {
		return usagef("%v; run hookline loadtest --help for the flags", err)
	}
	var out *bufio.Writer
	if *ackedOut != "" {
		f, err := os.Create(*ackedOut)
		if err != nil {
			return fmt.Errorf("--acked-out: %w", err)
		}
		defer f.Close()
		out = bufio.NewWriter(f)
		cfg.KeepEvents = true
	}
	bound := fmt.Sprintf("%d events", cfg.Count)
	switch {
	case cfg.Count == 0:
		bound = cfg.Duration.String()
	case cfg.Duration > 0:
		bound += " or " + cfg.Duration.String()
	}
	pace := "as fast as possible"
	if cfg.Rate > 0 {
		pace = fmt.Sprintf("%g new events/s", cfg.Rate)
	}
	fmt.Fprintf(env.stderr, "loadtest: POST %s, %s, %s, %d in flight, %d open conversations\n",
		*url, bound, pace, max(cfg.Concurrency, 1), max(cfg.Conversations, 1))

	res, err := loadtest.Run(ctx, cfg)
	if err != nil {
		return usagef("%v", err)
	}
	hints := res.Hints()
	if out != nil {
		enc := json.NewEncoder(out)
		for _, e := range res.Events {
			if err := enc.Encode(e); err != nil {
				return fmt.Errorf("--acked-out: %w", err)
			}
		}
		if err := out.Flush(); err != nil {
			return fmt.Errorf("--acked-out: %w", err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Seed        int64    `json:"seed"`
			Elapsed     float64  `json:"elapsed_seconds"`
			Interrupted bool     `json:"interrupted"`
			Hints       []string `json:"hints,omitempty"`
			loadtest.Stats
		}{res.Seed, res.Elapsed.Seconds(), res.Interrupted, hints, res.Stats}); err != nil {
			return fmt.Errorf("write the summary: %w", err)
		}
	} else {
		fmt.Fprint(env.stdout, res.Summary())
	}
	// The text summary shows the hints; after --json, the last line on
	// stderr carries them.
	why := ""
	if len(hints) > 0 {
		why = " (see the hint above)"
		if *asJSON {
			why = ": " + strings.Join(hints, "; ")
		}
	}
	if res.Interrupted {
		return exitCode{exitInterrupted, fmt.Sprintf("interrupted after %s: %d of %d events started were acknowledged, %d gave up, %d unfinished; the summary covers only the part that ran%s",
			res.Elapsed.Round(time.Millisecond), res.Acknowledged, res.Sent, res.GaveUp, res.Unfinished, why)}
	}
	if res.GaveUp > 0 {
		return exitCode{1, fmt.Sprintf("%d of %d events were never acknowledged%s", res.GaveUp, res.Sent, why)}
	}
	return nil
}
