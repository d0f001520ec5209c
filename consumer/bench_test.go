package consumer

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkConsumerThroughput measures events/s through the whole consumer
// (fetch, key-ordered scheduling, no-op handler, dedup record, commit) on an
// in-process kfake broker: 20,000 events over 1,000 conversations in 6
// partitions per op.
func BenchmarkConsumerThroughput(b *testing.B) {
	const n = 20_000
	for b.Loop() {
		b.StopTimer()
		e := newEnv(b, 6, time.Second)
		var recs []*kgo.Record
		for i := range n {
			recs = append(recs, event(fmt.Sprintf("conv-%d", i%1000), fmt.Sprintf("ev-%d", i), i))
		}
		e.produce(recs...)
		var done atomic.Int64
		c, err := New(Config{Kafka: e.kafka, Plan: e.plan, Logger: testLogger(),
			Handler: HandlerFunc(func(context.Context, Event) error { done.Add(1); return nil })})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { errc <- c.Run(ctx) }()
		for c.eventsCount(e.plan.Names.Base, OutcomeProcessed) < n {
			time.Sleep(5 * time.Millisecond)
		}
		el := time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n)/el.Seconds(), "events/s")
		b.StartTimer()
	}
}
