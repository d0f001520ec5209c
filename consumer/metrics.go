package consumer

import (
	"errors"
	"fmt"
	"github.com/hookline/hookline/topics"

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
	inFlight      prometheus.GaugeFunc
	waiting       *prometheus.GaugeVec // tier
	oldestDue     *prometheus.GaugeVec // tier
	lag           *prometheus.GaugeVec // topic
	produceErrors *prometheus.CounterVec
	commitErrors  prometheus.Counter
	dedupEntries  prometheus.Gauge
	restoreSecs   prometheus.Histogram
	held          prometheus.Gauge
}

// newMetrics registers the consumer's metrics on reg; inFlight reports the
// records in flight when scraped.
func newMetrics(reg prometheus.Registerer, inFlight func() float64) (*metrics, error) {
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
			Help:    "Time spent in the handler per attempt, by topic read (an attempt given up on after its timeout counts when its handler returns).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 60},
		}, []string{"topic"}),
		inFlight: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hookline_consumer_in_flight",
			Help: "Records being handled or forwarded right now.",
		}, inFlight),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookline_consumer_retry_waiting",
			Help: "Records of a retry tier not started yet: fetched ones waiting for their due time or for an earlier record of their key, and those behind them not fetched yet.",
		}, []string{"tier"}),
		oldestDue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookline_consumer_retry_oldest_due_timestamp_seconds",
			Help: "Earliest hookline-due-at (unix seconds) among the fetched waiting records of a retry tier; 0 when none wait.",
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
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookline_consumer_partitions_held",
			Help: "Assigned partitions not consumed because other topics of the pipeline lack that partition number (not co-partitioned); their events wait.",
		}),
		restoreSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookline_consumer_dedup_restore_seconds",
			Help:    "Time to restore the dedup state of one partition.",
			Buckets: []float64{.01, .05, .1, .5, 1, 2, 5, 10, 30, 60},
		}),
	}
	for _, c := range []prometheus.Collector{m.events, m.duplicates, m.latency, m.inFlight, m.waiting,
		m.oldestDue, m.lag, m.produceErrors, m.commitErrors, m.dedupEntries, m.restoreSecs, m.held} {
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

// init creates every label set the pipeline can produce, at zero, so that
// dashboards and rate() see the series before the first event of a kind.
func (m *metrics) init(names topics.Names) {
	for _, t := range names.Consumed() {
		for _, o := range []string{OutcomeProcessed, OutcomeRetried, OutcomeDeadLettered, OutcomeDuplicate} {
			m.events.WithLabelValues(t, o)
		}
		m.latency.WithLabelValues(t)
	}
	for _, t := range append(append([]string{}, names.Retries...), names.DLQ, names.Dedup) {
		m.produceErrors.WithLabelValues(t)
	}
}

// registerReady registers hookline_consumer_ready, reading ready (the
// consumer's Ready) at each scrape. It exists from New on, at 0 until the
// consumer runs, so that "not ready for 5m" sees a consumer that never got
// ready, not only one that stopped being ready.
func registerReady(reg prometheus.Registerer, ready func() (bool, string)) error {
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hookline_consumer_ready",
		Help: "1 when the consumer is handling events (its /readyz would answer 200), else 0.",
	}, func() float64 {
		if ok, _ := ready(); ok {
			return 1
		}
		return 0
	})
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("register consumer metrics: %w", err)
	}
	return nil
}
