package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// readyGauge returns hookline_consumer_ready as gathered from reg, and the
// labels it carries; -1 when it is missing.
func readyGauge(t *testing.T, reg *prometheus.Registry) (float64, map[string]string) {
	return gaugeOf(t, reg, "hookline_consumer_ready")
}

// gaugeOf returns the single-series gauge name as gathered from reg, and
// the labels it carries; -1 when it is missing.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name string) (float64, map[string]string) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		return m.GetGauge().GetValue(), labels
	}
	return -1, nil
}

// hookline_consumer_ready follows Ready: 0 before the consumer runs (so
// "not ready for 5m" also catches one that never gets ready), 1 while it
// handles events, 0 once stopped; it carries the labels of the Registerer
// (cmd adds pipeline).
func TestReadyGaugeFollowsReady(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	reg := prometheus.NewRegistry()
	h := HandlerFunc(func(context.Context, Event) error { return nil })
	c, stop := e.start(Config{Handler: h, Group: "gr",
		Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"pipeline": e.plan.Names.Base}, reg)})
	eventually(t, 10*time.Second, "ready", func() bool { ok, _ := c.Ready(); return ok })
	if v, labels := readyGauge(t, reg); v != 1 || labels["pipeline"] != e.plan.Names.Base {
		t.Errorf("hookline_consumer_ready while ready: %v %v, want 1 with pipeline=%s", v, labels, e.plan.Names.Base)
	}
	stop()
	if v, _ := readyGauge(t, reg); v != 0 {
		t.Errorf("hookline_consumer_ready after stop: %v, want 0", v)
	}

	reg2 := prometheus.NewRegistry()
	if _, err := New(Config{Kafka: e.kafka, Plan: e.plan, Handler: h, Registerer: reg2}); err != nil {
		t.Fatal(err)
	}
	if v, _ := readyGauge(t, reg2); v != 0 {
		t.Errorf("hookline_consumer_ready before Run: %v, want 0", v)
	}
}

// hookline_consumer_in_flight counts the records inside the handler when
// scraped, and drops to 0 once they return.
func TestInFlightGaugeCountsRunningRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	reg := prometheus.NewRegistry()
	release := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, _ Event) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	const n = 5
	for i := range n {
		e.produce(event(fmt.Sprintf("conv-%d", i), fmt.Sprintf("ev-%d", i), 1))
	}
	c, _ := e.start(Config{Handler: h, Registerer: reg})
	eventually(t, 10*time.Second, "every record in the handler", func() bool {
		v, _ := gaugeOf(t, reg, "hookline_consumer_in_flight")
		return v == n
	})
	close(release)
	eventually(t, 10*time.Second, "processed", func() bool { return c.eventsCount(e.plan.Names.Base, OutcomeProcessed) == n })
	if v, _ := gaugeOf(t, reg, "hookline_consumer_in_flight"); v != 0 {
		t.Errorf("hookline_consumer_in_flight after the handlers returned: %v, want 0", v)
	}
}
