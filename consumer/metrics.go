package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes counted in hookline_consumer_events_total.
const (
	OutcomeProcessed    = "processed"
	OutcomeRetried      = "retried"
	OutcomeDeadLettered = "dead_lettered"
	OutcomeDuplicate    = "duplicate"
)

type metrics struct {
	events        *prometheus.CounterVec   // topic, outcome
	duplicates    prometheus.Counter       //
	latency       *prometheus.HistogramVec // topic
	inFlight      prometheus.Gauge
	waiting       *prometheus.GaugeVec // tier
	oldestDue     *prometheus.GaugeVec // tier
	lag           *prometheus.GaugeVec // topic
	produceErrors *prometheus.CounterVec
	commitErrors  prometheus.Counter
	dedupEntries  prometheus.Gauge
	restoreSecs   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookline_consumer_events_total",
			Help: "Records finished by the consumer, by topic read and outcome (processed, retried, dead_lettered, duplicate).",
		}, []string{"topic", "outcome"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_consumer_duplicates_total",
			Help: "Records skipped because their event id was already processed or dead-lettered within the dedup window.",
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookline_consumer_handler_duration_seconds",
			Help:    "Time spent in the handler per attempt, by topic read.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 60},
		}, []string{"topic"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookline_consumer_in_flight",
			Help: "Records being handled or forwarded right now.",
		}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookline_consumer_retry_waiting",
			Help: "Records fetched from a retry tier and waiting for their due time or for an earlier record of their key.",
		}, []string{"tier"}),
		oldestDue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookline_consumer_retry_oldest_due_timestamp_seconds",
			Help: "Earliest hookline-due-at (unix seconds) among the waiting records of a retry tier; 0 when none wait.",
		}, []string{"tier"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookline_consumer_lag",
			Help: "Records not yet finished on the partitions this member owns (high watermark minus commit point), by topic.",
		}, []string{"topic"}),
		produceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookline_consumer_produce_errors_total",
			Help: "Failed produce attempts of retry, DLQ and dedup records (each is retried until acknowledged), by target topic.",
		}, []string{"topic"}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_consumer_commit_errors_total",
			Help: "Offset commits that failed (the next commit covers them).",
		}),
		dedupEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookline_consumer_dedup_entries",
			Help: "Event ids remembered for dedup on the partitions this member owns.",
		}),
		restoreSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookline_consumer_dedup_restore_seconds",
			Help:    "Time to restore the dedup state of one partition.",
			Buckets: []float64{.01, .05, .1, .5, 1, 2, 5, 10, 30, 60},
		}),
	}
	for _, c := range []prometheus.Collector{m.events, m.duplicates, m.latency, m.inFlight, m.waiting,
		m.oldestDue, m.lag, m.produceErrors, m.commitErrors, m.dedupEntries, m.restoreSecs} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("consumer metrics are already registered on this Registerer (one consumer per registry, or wrap it with prometheus.WrapRegistererWith): %w", err)
			}
			return nil, fmt.Errorf("register consumer metrics: %w", err)
		}
	}
	return m, nil
}

// rateLimitedLog logs one message per key at most once per interval and
// reports how many were suppressed in between.
type rateLimitedLog struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	last     map[string]*logState
}

type logState struct {
	at         time.Time
	suppressed int
}

func newRateLimitedLog(l *slog.Logger, interval time.Duration) *rateLimitedLog {
	return &rateLimitedLog{log: l, interval: interval, last: map[string]*logState{}}
}

// Log logs msg at level unless the same key was logged within the interval.
func (r *rateLimitedLog) Log(level slog.Level, key, msg string, args ...any) {
	r.mu.Lock()
	st := r.last[key]
	now := time.Now()
	if st != nil && now.Sub(st.at) < r.interval {
		st.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := 0
	if st == nil {
		if len(r.last) > 1000 { // bound the key set
			clear(r.last)
		}
		st = &logState{}
		r.last[key] = st
	} else {
		suppressed = st.suppressed
	}
	st.at, st.suppressed = now, 0
	r.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	r.log.Log(context.Background(), level, msg, args...)
}
