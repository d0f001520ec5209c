// Package integration runs hookline's pipeline against a real broker.
//
// The broker is chosen in this order, and the choice is logged:
//  1. KAFKA_BROKERS (comma-separated seeds), e.g. the Apache Kafka that
//     `make kafka-up` or .ci/run starts from Maven Central jars;
//  2. a testcontainers-go Kafka container, when a Docker engine answers;
//  3. franz-go's kfake in-process, saying so.
package integration

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookline/hookline/internal/kafkaconf"
)

// Kinds of broker a harness can run against.
const (
	KindExternal       = "external (KAFKA_BROKERS)"
	KindTestcontainers = "testcontainers"
	KindKfake          = "kfake (in-process fake; set KAFKA_BROKERS for a real broker)"
)

// Broker is the broker the integration tests use.
type Broker struct {
	Seeds []string
	Kind  string
	// Fake is the in-process cluster when Kind is KindKfake, for fault
	// injection; nil for real brokers.
	Fake *kfake.Cluster

	close func()
}

// Real reports whether the broker is a real Apache Kafka.
func (b *Broker) Real() bool { return b.Fake == nil }

// Close stops a broker the harness started; an external one is left alone.
func (b *Broker) Close() {
	if b.close != nil {
		b.close()
	}
}

// KafkaConfig returns client settings for the broker.
func (b *Broker) KafkaConfig() kafkaconf.Config {
	return kafkaconf.Config{Brokers: b.Seeds, ClientID: "hookline-it"}
}

// Acquire picks and starts the broker.
func Acquire(ctx context.Context) (*Broker, error) {
	if seeds := kafkaconf.ParseBrokers(os.Getenv("KAFKA_BROKERS")); len(seeds) > 0 {
		return &Broker{Seeds: seeds, Kind: KindExternal}, nil
	}
	if dockerAnswers(ctx) {
		b, err := startContainer(ctx)
		if err == nil {
			return b, nil
		}
		fmt.Fprintf(os.Stderr, "integration: Docker answers but the Kafka container failed (%v); falling back to kfake\n", err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	return &Broker{Seeds: c.ListenAddrs(), Kind: KindKfake, Fake: c, close: c.Close}, nil
}

// dockerAnswers probes the Docker provider under recover: without an engine,
// testcontainers-go panics inside provider lookup ("rootless Docker not found").
func dockerAnswers(ctx context.Context) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	p, err := testcontainers.ProviderDocker.GetProvider()
	if err != nil {
		return false
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return p.Health(ctx) == nil
}

func startContainer(ctx context.Context) (b *Broker, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testcontainers panicked: %v", r)
		}
	}()
	c, err := tckafka.Run(ctx, "confluentinc/confluent-local:7.5.0", tckafka.WithClusterID("hookline-it"))
	if err != nil {
		return nil, err
	}
	seeds, err := c.Brokers(ctx)
	if err != nil {
		_ = testcontainers.TerminateContainer(c)
		return nil, err
	}
	return &Broker{Seeds: seeds, Kind: KindTestcontainers, close: func() { _ = testcontainers.TerminateContainer(c) }}, nil
}
