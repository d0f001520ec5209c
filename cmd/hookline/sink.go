package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hookline/hookline/internal/recsink"
)

const sinkExamples = `  # a handler that takes 3 s like the original database call, and fails 20 %
  # of attempts with 503 and 1 % of events with 422
  hookline sink --listen 127.0.0.1:3000 --latency 3s --transient-rate 0.2 --permanent-rate 0.01
  hookline consume --brokers 127.0.0.1:9092 --handler-url http://127.0.0.1:3000/process

  # fast and reproducible, recording every request; counts on GET /stats
  hookline sink --latency 0-5ms --transient-rate 0.2 --seed 7 --record requests.jsonl
  curl -s http://127.0.0.1:3000/stats

  # script single events: {"<event id>": {"transient_attempts": [1, 2]}, "<id>": {"permanent": true}}
  hookline sink --script fates.json`

func runSink(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "sink", "sink [--listen ADDR] [flags]", sinkExamples)
	fs.ownEnv()
	listen := fs.String("listen", "127.0.0.1:3000", "address to serve on (deliveries on any path, GET /stats, GET /healthz)")
	var lat latencyRange
	fs.Var(&lat, "latency", "time to answer: a duration (3s) or a uniform range (0-5ms, 1s-4s)")
	transient := fs.Float64("transient-rate", 0, "probability (0-1) that an attempt is answered with --transient-status")
	permanent := fs.Float64("permanent-rate", 0, "probability (0-1) that an event is answered with --permanent-status on every attempt")
	tStatus := fs.Int("transient-status", recsink.DefaultTransientStatus, "status of a transient failure: 408, 425, 429 or a 5xx (hookline retries those, and 3xx, which the sink does not send)")
	pStatus := fs.Int("permanent-status", recsink.DefaultPermanentStatus, "status of a permanent failure: a 4xx other than 408, 425 and 429 (hookline dead-letters those at once)")
	seed := fs.Int64("seed", 0, "seed of the fates, deterministic per event id and attempt (0: random, printed)")
	script := fs.String("script", "", "JSON file of fates per event id: {\"<id>\": {\"transient_attempts\": [1,2]} | {\"permanent\": true}}")
	record := fs.String("record", "", "append every request as a JSON line to this file (written out every second and at exit)")
	interval := fs.Duration("interval", 0, "print the counts every interval (0: only at exit)")
	if err := fs.parse(args); err != nil {
		return err
	}
	cfg := recsink.Config{
		LatencyMin: lat.min, LatencyMax: lat.max,
		TransientRate: *transient, PermanentRate: *permanent,
		TransientStatus: *tStatus, PermanentStatus: *pStatus, Seed: *seed,
	}
	if *script != "" {
		b, err := os.ReadFile(*script)
		if err != nil {
			return fmt.Errorf("--script: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg.Script); err != nil {
			return usagef("--script %s: %v (want {\"<event id>\": {\"transient_attempts\": [1,2]}, …})", *script, err)
		}
	}
	var rec *jsonLines
	if *record != "" {
		f, err := os.OpenFile(*record, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("--record: %w", err)
		}
		defer f.Close()
		rec = &jsonLines{w: bufio.NewWriter(f)}
		cfg.OnRequest = rec.write
		defer rec.flush()
	}
	sink, err := recsink.New(cfg)
	if err != nil {
		return usagef("%v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("sink cannot listen on %s (choose another with --listen): %w", *listen, err)
	}
	srv := &http.Server{Handler: sink, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(env.stdout, "sink listening on %s (latency %s, transient %g → %d, permanent %g → %d, seed %d)\n",
		ln.Addr(), lat.String(), *transient, *tStatus, *permanent, *pStatus, sink.Seed())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var tick <-chan time.Time
	if *interval > 0 {
		t := time.NewTicker(*interval)
		defer t.Stop()
		tick = t.C
	}
	flush := time.NewTicker(time.Second)
	defer flush.Stop()
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("sink: serve: %w", err)
		case <-tick:
			fmt.Fprintln(env.stdout, statsLine(sink.Stats()))
		case <-flush.C:
			rec.flush()
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), max(lat.max, lat.min)+5*time.Second)
			err := srv.Shutdown(sctx)
			cancel()
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintf(env.stderr, "sink: shutdown: %v\n", err)
			}
			fmt.Fprintln(env.stdout, statsLine(sink.Stats()))
			return nil
		}
	}
}

func statsLine(s recsink.Stats) string {
	return fmt.Sprintf("requests=%d ok=%d transient=%d permanent=%d canceled=%d events=%d events_ok=%d duplicates=%d conversations=%d overlaps=%d order_violations=%d max_in_flight=%d",
		s.Requests, s.OK, s.Transient, s.Permanent, s.Canceled, s.Events, s.EventsOK, s.Duplicates,
		s.Conversations, s.Overlaps, s.OrderViolations, s.MaxInFlight)
}

// latencyRange is "3s" or "0-5ms".
type latencyRange struct{ min, max time.Duration }

func (l *latencyRange) String() string {
	if l == nil || l.min == l.max {
		if l == nil {
			return "0s"
		}
		return l.min.String()
	}
	return l.min.String() + "-" + l.max.String()
}

func (l *latencyRange) Set(s string) error {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	lo, hi = strings.TrimSpace(lo), strings.TrimSpace(hi)
	// "20-80ms": a bare number before the dash takes the unit of the upper
	// end, when that is one number and one unit ("1-2m30s" stays refused).
	if unit := strings.TrimLeft(hi, "0123456789."); isRange && lo != "" && strings.Trim(lo, "0123456789.") == "" &&
		unit != "" && !strings.ContainsAny(unit, "0123456789.") {
		lo += unit
	}
	a, err := time.ParseDuration(lo)
	if err != nil {
		return fmt.Errorf("%q: want a duration (3s) or a range (20-80ms, 1s-4s)", s)
	}
	b := a
	if isRange {
		if b, err = time.ParseDuration(hi); err != nil {
			return fmt.Errorf("%q: want a duration (3s) or a range (20-80ms, 1s-4s)", s)
		}
	}
	if b < a {
		return fmt.Errorf("%q: the range ends before it starts", s)
	}
	l.min, l.max = a, b
	return nil
}

// jsonLines writes values as JSON lines from many goroutines.
type jsonLines struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (j *jsonLines) write(r recsink.Request) {
	b, _ := json.Marshal(r)
	j.mu.Lock()
	j.w.Write(b)
	j.w.WriteByte('\n')
	j.mu.Unlock()
}

func (j *jsonLines) flush() {
	if j == nil {
		return
	}
	j.mu.Lock()
	j.w.Flush()
	j.mu.Unlock()
}
