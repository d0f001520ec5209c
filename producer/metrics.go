package producer

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests      *prometheus.CounterVec
	ackLatency    *prometheus.HistogramVec
	produceErrors *prometheus.CounterVec
	malformed     *prometheus.CounterVec
	inFlight      prometheus.Gauge
	ready         prometheus.GaugeFunc
}

// sourceMetrics are one source's children of the labelled metrics.
// Every status a sender can get has its series from the start, at 0, so
// that rate() (the throttling and 503 alerts) sees the first increase.
type sourceMetrics struct {
	ok, accepted, unauthorized, unavailable prometheus.Counter
	throttled, tooLarge                     prometheus.Counter
	ackLatency                              prometheus.Observer
	produceErrors, malformed                prometheus.Counter
}

func (m *metrics) forSource(name string) *sourceMetrics {
	return &sourceMetrics{
		ok:            m.requests.WithLabelValues(name, "200"),
		accepted:      m.requests.WithLabelValues(name, "202"),
		unauthorized:  m.requests.WithLabelValues(name, "401"),
		unavailable:   m.requests.WithLabelValues(name, "503"),
		throttled:     m.requests.WithLabelValues(name, "429"),
		tooLarge:      m.requests.WithLabelValues(name, "413"),
		ackLatency:    m.ackLatency.WithLabelValues(name),
		produceErrors: m.produceErrors.WithLabelValues(name),
		malformed:     m.malformed.WithLabelValues(name),
	}
}

// countRequest counts one answered webhook of source.
func (m *metrics) countRequest(sm *sourceMetrics, source string, code int) {
	switch code {
	case http.StatusOK:
		sm.ok.Inc()
	case http.StatusAccepted:
		sm.accepted.Inc()
	case http.StatusUnauthorized:
		sm.unauthorized.Inc()
	case http.StatusServiceUnavailable:
		sm.unavailable.Inc()
	case http.StatusTooManyRequests:
		sm.throttled.Inc()
	case http.StatusRequestEntityTooLarge:
		sm.tooLarge.Inc()
	default:
		m.requests.WithLabelValues(source, strconv.Itoa(code)).Inc()
	}
}

// newMetrics registers the receiver's metrics on reg; ready reports what
// /readyz would answer, for hookline_receiver_ready.
func newMetrics(reg prometheus.Registerer, ready func() bool) (*metrics, error) {
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
		// A gauge, not a count of 503s: during an outage load balancers
		// take unready receivers out, the 503s stop, and only this says so.
		ready: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hookline_receiver_ready",
			Help: "1 when /readyz would answer 200 (Kafka acknowledging, not shutting down, and in `run` the consumers ready), else 0.",
		}, func() float64 {
			if ready() {
				return 1
			}
			return 0
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.ackLatency, m.produceErrors, m.malformed, m.inFlight, m.ready} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register receiver metrics: %w", err)
		}
	}
	return m, nil
}
