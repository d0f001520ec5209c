package producer_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/consumer"
	"github.com/hookline/hookline/producer"
	"github.com/hookline/hookline/topics"
)

// ExampleReceiver_Handler mounts the receiver in the program's own
// http.Server, next to its other routes, and stops it with Shutdown before
// the server's own Shutdown.
func ExampleReceiver_Handler() {
	ctx := context.Background()
	fake, err := kfake.NewCluster(kfake.NumBrokers(1)) // your brokers instead
	if err != nil {
		log.Fatal(err)
	}
	defer fake.Close()
	kafka := producer.KafkaConfig{Brokers: fake.ListenAddrs()}

	plan, err := topics.NewPlan(topics.Config{Base: "crm.events", Partitions: 3})
	if err != nil {
		log.Fatal(err)
	}
	opts, err := kafka.Opts()
	if err != nil {
		log.Fatal(err)
	}
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		log.Fatal(err)
	}
	_, err = topics.Create(ctx, kadm.NewClient(admin), plan)
	admin.Close()
	if err != nil {
		log.Fatal(err)
	}

	verifier, err := producer.NewVerifier(producer.VerifierConfig{
		Type:   producer.VerifierSharedSecret, // header X-Hookline-Secret by default
		Secret: "s3cret",                      // from your secret store, never a literal
	})
	if err != nil {
		log.Fatal(err)
	}
	rcv, err := producer.New(producer.Config{
		Kafka: kafka,
		Sources: []producer.Source{{
			Name:     "crm", // POST /webhooks/crm
			Topics:   plan.Names,
			Rules:    producer.Rules{Kind: producer.KindGeneric, EventID: []string{"/id"}, Key: []string{"/conversation"}},
			Verifier: verifier,
		}},
		// On shutdown, 503 to /readyz and new webhooks this long before the
		// listener may close: your load balancer's health-check interval
		// (default 2s; short here to keep the example quick).
		DrainDelay: 100 * time.Millisecond,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/webhooks/", rcv.Handler())
	mux.Handle("/readyz", rcv.Handler())
	mux.HandleFunc("/hello", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hi") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)

	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/webhooks/crm", strings.NewReader(`{"id":"evt-1","conversation":"c-9"}`))
	req.Header.Set("X-Hookline-Secret", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("webhook:", resp.Status) // 200 only once Kafka acknowledged it

	// On SIGTERM: the receiver first (503 to new webhooks for DrainDelay,
	// in-flight ones answered, producer flushed), then the server.
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rcv.Shutdown(stopCtx); err != nil {
		log.Print(err)
	}
	if err := srv.Shutdown(stopCtx); err != nil {
		log.Print(err)
	}
	// Output:
	// webhook: 200 OK
}

// ExampleNewVerifier checks an HMAC-SHA256 signature the way Genesys Open
// Messaging sends it: X-Hub-Signature-256: sha256=<base64>.
func ExampleNewVerifier() {
	v, err := producer.NewVerifier(producer.VerifierConfig{
		Type:     producer.VerifierHMACSHA256, // header X-Hub-Signature-256 by default
		Prefix:   "sha256=",
		Encoding: "base64",
		Secret:   "om-secret",
	})
	if err != nil {
		log.Fatal(err)
	}
	body := []byte(`{"id":"m-1"}`)
	mac := hmac.New(sha256.New, []byte("om-secret"))
	mac.Write(body)
	h := http.Header{}
	h.Set("X-Hub-Signature-256", "sha256="+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	fmt.Println(v.Verify(h, body))
	err = v.Verify(h, []byte(`{"id":"m-2"}`))
	fmt.Println(errors.Is(err, producer.ErrUnauthorized))

	_, err = producer.NewVerifier(producer.VerifierConfig{})
	fmt.Println(err != nil) // no type: authentication is never off by default
	// Output:
	// <nil>
	// true
	// true
}

// Example_embedding is a team's whole main: the receiver on Run's own
// server and a consumer with a Go handler in one process, sharing the
// metrics registry and readiness, both stopped gracefully on SIGTERM.
func Example_embedding() {
	kafka := producer.KafkaConfig{Brokers: strings.Split(os.Getenv("KAFKA_BROKERS"), ",")}
	kafka.FillFromEnv() // SASL credentials from HOOKLINE_SASL_USERNAME / _PASSWORD, if any
	plan, err := topics.NewPlan(topics.Config{Base: "crm.events"})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	// Topics: create what is missing, refuse what cannot run.
	opts, err := kafka.Opts()
	if err != nil {
		log.Fatal(err)
	}
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := topics.Create(ctx, kadm.NewClient(admin), plan); err != nil {
		log.Fatal(err)
	}
	rep, err := topics.Inspect(ctx, kadm.NewClient(admin), plan, 0)
	admin.Close()
	if err != nil {
		log.Fatal(err)
	}
	if err := rep.Unusable(); err != nil {
		log.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	c, err := consumer.New(consumer.Config{
		Kafka: kafka, // producer.KafkaConfig and consumer.KafkaConfig are one type
		Plan:  plan,
		Handler: consumer.HandlerFunc(func(ctx context.Context, ev consumer.Event) error {
			return nil // the team's work; see the consumer package's examples
		}),
		// The pipeline label, as hookline's commands add it: the shipped
		// alerts and dashboard (docs/monitoring) group by it.
		Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"pipeline": plan.Names.Base}, reg),
	})
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := producer.NewVerifier(producer.VerifierConfig{Type: producer.VerifierSharedSecret, Secret: os.Getenv("WEBHOOK_SECRET")})
	if err != nil {
		log.Fatal(err)
	}
	rcv, err := producer.New(producer.Config{
		Kafka:   kafka,
		Sources: []producer.Source{{Name: "genesys", Topics: plan.Names, Rules: producer.Rules{Kind: producer.KindGenesys}, Verifier: verifier}},
		Listen:  ":8080",
		// /metrics serves the consumer's metrics too; /readyz asks it.
		Registry: reg,
		Ready:    c.Ready,
		// Batches as large as the topics take, as hookline's commands do.
		ExtraProducerOpts: []kgo.Opt{rep.ProducerBatchMaxBytes()},
	})
	if err != nil {
		log.Fatal(err)
	}

	// Both stop when ctx ends (SIGTERM) and return nil; if one fails, stop
	// the other.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{rcv.Run, c.Run} {
		wg.Go(func() {
			if err := run(ctx); err != nil {
				log.Print(err)
			}
			cancel()
		})
	}
	wg.Wait()
}
