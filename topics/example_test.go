package topics_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/topics"
)

// ExampleNewPlan derives a pipeline's topic names and settings; it contacts
// nothing. Zero fields take their defaults (12 partitions, tiers 10s, 1m,
// 10m, a 96h dedup window).
func ExampleNewPlan() {
	plan, err := topics.NewPlan(topics.Config{Base: "crm.events", RetryDelays: []time.Duration{30 * time.Second, 5 * time.Minute}})
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range plan.Topics {
		fmt.Println(s.Name, s.Role, s.Configs["cleanup.policy"])
	}
	fmt.Println(plan.Partitions, plan.DedupWindow)
	// Output:
	// crm.events main delete
	// crm.events.retry-1 retry delete
	// crm.events.retry-2 retry delete
	// crm.events.dlq dlq delete
	// crm.events.dedup dedup compact
	// 12 96h0m0s
}

// ExampleCreate creates a pipeline's topics (idempotently: a second call
// creates nothing) and checks them with Inspect, against an in-process fake
// broker.
func ExampleCreate() {
	ctx := context.Background()
	fake, err := kfake.NewCluster(kfake.NumBrokers(1)) // your brokers instead
	if err != nil {
		log.Fatal(err)
	}
	defer fake.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(fake.ListenAddrs()...))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	plan, err := topics.NewPlan(topics.Config{Base: "crm.events", Partitions: 6})
	if err != nil {
		log.Fatal(err)
	}
	res, err := topics.Create(ctx, adm, plan)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res {
		fmt.Println(r.Topic, r.Created, r.Partitions)
	}
	res, err = topics.Create(ctx, adm, plan)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created again:", res[0].Created)

	rep, err := topics.Inspect(ctx, adm, plan, 0)
	if err != nil {
		log.Fatal(err)
	}
	// Unusable: missing topics or partition counts that differ (the
	// consumer refuses to start). Err: every difference from the plan.
	fmt.Println(rep.Unusable(), rep.Err())
	// Output:
	// crm.events true 6
	// crm.events.retry-1 true 6
	// crm.events.retry-2 true 6
	// crm.events.retry-3 true 6
	// crm.events.dlq true 6
	// crm.events.dedup true 6
	// created again: false
	// <nil> <nil>
}

// ExampleInspect shows what a pipeline whose topics are missing reports.
func ExampleInspect() {
	ctx := context.Background()
	fake, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		log.Fatal(err)
	}
	defer fake.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(fake.ListenAddrs()...))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	plan, err := topics.NewPlan(topics.Config{Base: "crm.events", RetryDelays: []time.Duration{time.Minute}})
	if err != nil {
		log.Fatal(err)
	}
	rep, err := topics.Inspect(ctx, kadm.NewClient(cl), plan, 0)
	if err != nil {
		log.Fatal(err) // only when the cluster could not be asked
	}
	fmt.Println(rep.OK())
	for _, p := range rep.Problems {
		fmt.Println(p.Topic)
	}
	// Output:
	// false
	// crm.events
	// crm.events.retry-1
	// crm.events.dlq
	// crm.events.dedup
}
