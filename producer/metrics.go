package producer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests      *prometheus.CounterVec
	ackLatency    *prometheus.HistogramVec
	produceErrors *prometheus.CounterVec
	malformed     *prometheus.CounterVec
	inFlight      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookline_receiver_requests_total",
			Help: "Webhook requests by source and HTTP status code (source=unknown for unconfigured paths).",
		}, []string{"source", "code"}),
		ackLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookline_receiver_ack_latency_seconds",
			Help:    "Time from request start until the broker acknowledged (or the ack budget ran out).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 1.5, 2.5, 5},
		}, []string{"source"}),
		produceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookline_receiver_produce_errors_total",
			Help: "Webhooks answered 503 because Kafka did not acknowledge within the ack budget.",
		}, []string{"source"}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookline_receiver_malformed_total",
			Help: "Authenticated webhooks without usable ids, stored in the dead-letter topic.",
		}, []string{"source"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookline_receiver_in_flight",
			Help: "Webhooks being handled now.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.ackLatency, m.produceErrors, m.malformed, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register receiver metrics: %w", err)
		}
	}
	return m, nil
}
