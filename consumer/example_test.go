package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/consumer"
	"github.com/hookline/hookline/topics"
)

// ExampleNew builds a consumer with a Go handler instead of the HTTP
// forward sink, and runs it until SIGTERM or Ctrl-C. Every zero field of
// Config takes its documented default.
func ExampleNew() {
	plan, err := topics.NewPlan(topics.Config{Base: "crm.events"}) // retry tiers 10s, 1m, 10m
	if err != nil {
		log.Fatal(err)
	}
	c, err := consumer.New(consumer.Config{
		Kafka: consumer.KafkaConfig{Brokers: []string{"kafka-1:9092"}},
		Plan:  plan,
		Handler: consumer.HandlerFunc(func(ctx context.Context, ev consumer.Event) error {
			// ev.Value is the webhook body as received; ev.EventID is the
			// idempotency key. Honour ctx: it ends at HandlerTimeout.
			return saveToCRM(ctx, ev.EventID, ev.Value)
		}),
		HandlerTimeout: 10 * time.Second, // default 30s
	})
	if err != nil {
		log.Fatal(err)
	}
	// On SIGTERM, Run stops fetching, lets in-flight handlers finish
	// (within ShutdownGrace), commits, leaves the group and returns nil.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := c.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

func saveToCRM(ctx context.Context, eventID string, body []byte) error { return nil }

// errUnknownCustomer and errRateLimited stand for what a team's downstream
// answers.
var (
	errUnknownCustomer = errors.New("unknown customer")
	errRateLimited     = errors.New("rate limited")
)

// ExampleConsumer_Run runs a Go handler that succeeds, fails permanently,
// fails retryably and asks for a longer wait, against an in-process fake
// broker. A nil error marks the event processed; Permanent sends it to the
// DLQ at once; any other error sends it to the next retry tier; RetryAfter
// skips to the first tier whose delay covers the wait.
func ExampleConsumer_Run() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// A fake broker in the process; a real program uses its cluster's
	// addresses instead.
	fake, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		log.Fatal(err)
	}
	defer fake.Close()
	brokers := fake.ListenAddrs()

	// The pipeline: short retry tiers so the example is quick.
	plan, err := topics.NewPlan(topics.Config{
		Base:        "example.events",
		Partitions:  1,
		RetryDelays: []time.Duration{100 * time.Millisecond, 300 * time.Millisecond},
	})
	if err != nil {
		log.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	if _, err := topics.Create(ctx, kadm.NewClient(cl), plan); err != nil {
		log.Fatal(err)
	}

	// Four events of one conversation, as the receiver writes them: the
	// body as value, the conversation id as key, ids in hookline-* headers.
	for _, id := range []string{"ok", "bad", "flaky", "busy"} {
		rec := &kgo.Record{Topic: plan.Names.Base, Key: []byte("conv-1"), Value: []byte(`{"id":"` + id + `"}`),
			Headers: []kgo.RecordHeader{{Key: "hookline-event-id", Value: []byte(id)}}}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			log.Fatal(err)
		}
	}

	done := make(chan struct{}, 8)
	handler := consumer.HandlerFunc(func(ctx context.Context, ev consumer.Event) error {
		defer func() { done <- struct{}{} }()
		fmt.Printf("%s attempt %d from %s\n", ev.EventID, ev.Attempt, ev.Topic)
		switch {
		case ev.EventID == "bad":
			return consumer.Permanent(errUnknownCustomer)
		case ev.EventID == "flaky" && ev.Attempt == 0:
			return errors.New("database busy") // retryable: to retry-1
		case ev.EventID == "busy" && ev.Attempt == 0:
			return consumer.RetryAfter(errRateLimited, 200*time.Millisecond) // skips to retry-2
		}
		return nil
	})
	c, err := consumer.New(consumer.Config{
		Kafka:   consumer.KafkaConfig{Brokers: brokers},
		Plan:    plan,
		Handler: handler,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(runCtx) }()
	for range 6 { // four first attempts and two retries
		<-done
	}
	stop() // as on SIGTERM: finish, commit, leave the group
	if err := <-ran; err != nil {
		log.Fatal(err)
	}

	// The dead letter carries the reason in its headers.
	dlq, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(plan.Names.DLQ))
	if err != nil {
		log.Fatal(err)
	}
	defer dlq.Close()
	rec := dlq.PollRecords(ctx, 1).Records()[0]
	for _, h := range rec.Headers {
		if h.Key == "hookline-error-class" || h.Key == "hookline-error" {
			fmt.Printf("dead letter %s: %s\n", h.Key, h.Value)
		}
	}
	// Output:
	// ok attempt 0 from example.events
	// bad attempt 0 from example.events
	// flaky attempt 0 from example.events
	// busy attempt 0 from example.events
	// flaky attempt 1 from example.events.retry-1
	// busy attempt 1 from example.events.retry-2
	// dead letter hookline-error: unknown customer
	// dead letter hookline-error-class: permanent
}

// ExamplePermanent shows the three kinds of handler errors.
func ExamplePermanent() {
	err := consumer.Permanent(fmt.Errorf("customer %s: %w", "c-42", errUnknownCustomer))
	fmt.Println(consumer.IsPermanent(err), errors.Is(err, errUnknownCustomer))
	fmt.Println(consumer.IsPermanent(errors.New("database busy")))
	fmt.Println(consumer.IsPermanent(consumer.RetryAfter(errRateLimited, time.Minute)))
	// Output:
	// true true
	// false
	// false
}

// ExampleRetryAfter: with the default tiers (10s, 1m, 10m), a first failure
// that asks for 5 minutes skips retry-1 and retry-2 and waits in retry-3.
func ExampleRetryAfter() {
	h := consumer.HandlerFunc(func(ctx context.Context, ev consumer.Event) error {
		if err := callPartner(ctx, ev.Value); err != nil {
			var rl *rateLimitError
			if errors.As(err, &rl) {
				return consumer.RetryAfter(err, rl.wait)
			}
			return err
		}
		return nil
	})
	_ = h
}

type rateLimitError struct{ wait time.Duration }

func (e *rateLimitError) Error() string { return "rate limited" }

func callPartner(ctx context.Context, body []byte) error { return nil }
