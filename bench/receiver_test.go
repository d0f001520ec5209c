package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/extract"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/internal/verify"
	"github.com/hookline/hookline/producer"
)

// Load shape of the receiver benchmark.
const (
	recvConns     = 32                     // closed-loop connections
	recvRounds    = 6                      // rounds per side, interleaved
	recvRoundDur  = 750 * time.Millisecond // per side and round
	recvWarmup    = 700 * time.Millisecond // per side, not counted
	recvLimit     = 200_000                // request bound per round
	openRate      = 2000                   // requests/s of the open-loop run
	openDur       = 3 * time.Second        // per side
	benchSecret   = "bench-shared-secret"
	payloadBodies = 8192
)

// BenchmarkReceiver compares the receiver with a bare httprouter handler
// that does ProduceSync and answers 200, on the same broker, with the same
// topic layout and the same load generator: throughput and latency with 32
// connections (closed loop), then latency at a fixed 2,000 requests/s (open
// loop).
func BenchmarkReceiver(b *testing.B) {
	// The benchmarks before this one leave ~1 GB of garbage (their kfake
	// logs). Collected and returned to the OS here, not in the middle of
	// a latency measurement: after BenchmarkConsumer, make bench's open-loop
	// p99 was 30-50 ms against ~2 ms when this benchmark ran alone.
	debug.FreeOSMemory()
	k := startBroker(b)
	planH := k.pipeline(b, "recv", nil)
	planB := k.pipeline(b, "bare", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// hookline: the receiver with a shared-secret verifier.
	ver, err := verify.New(verify.Config{Type: verify.TypeSharedSecret, Secret: benchSecret})
	if err != nil {
		b.Fatal(err)
	}
	rcv, err := producer.New(producer.Config{
		Kafka:   k.kafka,
		Sources: []producer.Source{{Name: "genesys", Topics: planH.Names, Rules: extract.Rules{Kind: extract.KindGenesys}, Verifier: ver}},
		Logger:  quietLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	lnH := listen(b)
	served := make(chan error, 1)
	go func() { served <- rcv.Serve(ctx, lnH) }()
	defer func() { cancel(); <-served }()

	// baseline: bare ProduceSync then 200.
	lnB := listen(b)
	bare := newBare(b, k.kafka, planB.Names.Base)
	srvB := &http.Server{Handler: bare}
	go func() { _ = srvB.Serve(lnB) }()
	defer srvB.Close()

	p := makePayloads(payloadBodies)
	urlH := "http://" + lnH.Addr().String() + "/webhooks/genesys"
	urlB := "http://" + lnB.Addr().String() + "/webhooks/genesys"
	th := newTarget("hookline", urlH, p, benchSecret, recvConns)
	tb := newTarget("baseline", urlB, p, benchSecret, recvConns)

	// Warm up both (connections, producer id, metadata, JIT of the caches).
	for _, t := range []*target{th, tb} {
		if code := t.post(0); code != http.StatusOK {
			b.Fatalf("%s answered %d to a valid webhook", t.name, code)
		}
		closedLoop(t, recvConns, recvWarmup, recvLimit, 0)
	}

	// Closed loop, interleaved B H | H B | B H ... so drift in the machine's
	// load hits both sides alike.
	var resH, resB loadResult
	var cpuH, cpuB time.Duration // CPU of the whole benchmark process
	from := 1000
	for round := range recvRounds {
		order := []*target{tb, th}
		if round%2 == 1 {
			order = []*target{th, tb}
		}
		for _, t := range order {
			c0 := processCPU()
			r := closedLoop(t, recvConns, recvRoundDur, recvLimit, from)
			c := processCPU() - c0
			from += r.ok + r.failed
			if t == th {
				resH.merge(r)
				cpuH += c
			} else {
				resB.merge(r)
				cpuB += c
			}
		}
	}

	// Open loop at a fixed rate, on fresh connection pools that do not cap
	// concurrency.
	oh := newTarget("hookline", urlH, p, benchSecret, 512)
	ob := newTarget("baseline", urlB, p, benchSecret, 512)
	var openH, openB loadResult
	for i, t := range []*target{ob, oh, oh, ob} { // B H H B, half the time each
		r := openLoop(t, openRate, openDur/2, from+i*openRate*10)
		if t == oh {
			openH.merge(r)
		} else {
			openB.merge(r)
		}
	}

	rh, rb := resH.rate(), resB.rate()
	addRow(row{order: 10, metric: fmt.Sprintf("receiver throughput, %d conns closed loop (req/s)", recvConns),
		hookline: num(rh), baseline: num(rb), ratio: ratio(rh, rb), target: ">= 0.85 (ratio)", met: metFlag(rh >= 0.85*rb)})
	addRow(row{order: 11, metric: "receiver p50 latency, closed loop",
		hookline: ms(resH.pct(50)), baseline: ms(resB.pct(50)), ratio: ratio(float64(resH.pct(50)), float64(resB.pct(50))), target: "-", met: "-"})
	addRow(row{order: 11, metric: "receiver p99 latency, closed loop",
		hookline: ms(resH.pct(99)), baseline: ms(resB.pct(99)), ratio: ratio(float64(resH.pct(99)), float64(resB.pct(99))), target: "-", met: "-"})
	perH := cpuH / time.Duration(max(resH.ok+resH.failed, 1))
	perB := cpuB / time.Duration(max(resB.ok+resB.failed, 1))
	addRow(row{order: 12, metric: "receiver CPU per request, closed loop (whole process)",
		hookline: fmt.Sprintf("%.0f us", float64(perH.Nanoseconds())/1000), baseline: fmt.Sprintf("%.0f us", float64(perB.Nanoseconds())/1000),
		ratio: ratio(float64(perH), float64(perB)), target: "-", met: "-"})
	addRow(row{order: 14, metric: fmt.Sprintf("receiver p50 latency at %s req/s open loop", num(openRate)),
		hookline: ms(openH.pct(50)), baseline: ms(openB.pct(50)), ratio: ratio(float64(openH.pct(50)), float64(openB.pct(50))), target: "-", met: "-"})
	addRow(row{order: 15, metric: fmt.Sprintf("receiver p99 latency at %s req/s open loop", num(openRate)),
		hookline: ms(openH.pct(99)), baseline: ms(openB.pct(99)), ratio: ratio(float64(openH.pct(99)), float64(openB.pct(99))),
		target: "< 25 ms (hookline)", met: metFlag(openH.ok > 0 && openH.pct(99) < 25*time.Millisecond)})
	addNote("1: %d rounds x %s per side, interleaved, after a %s warm-up; %d keep-alive connections from an in-process Go client on 127.0.0.1; "+
		"%s bodies = extract.Samples()[\"customer.start.eventbridge\"] (%d B) with varied conversation ids. hookline: producer.Receiver with a shared-secret verifier "+
		"(%d OK, %d other answers%s); baseline: httprouter POST handler, io.ReadAll, ProduceSync keyed by the conversation id from a header, empty 200, "+
		"with the receiver's producer settings (acks=all, idempotent, linger 0, no compression) (%d OK, %d other%s). Latency = client-side, request to full answer (includes the ack). "+
		"Open loop: %d s per side in two halves (B H H B), latency from the scheduled send time, %d + %d requests.",
		recvRounds, recvRoundDur, recvWarmup, recvConns, num(payloadBodies), len(p.bodies[0]),
		resH.ok, resH.failed, codes(resH.codes), resB.ok, resB.failed, codes(resB.codes),
		int(openDur/time.Second), len(openH.lat), len(openB.lat))
	if openH.failed+openB.failed > 0 {
		addNote("1: open loop answers other than 200: hookline %d%s, baseline %d%s", openH.failed, codes(openH.codes), openB.failed, codes(openB.codes))
	}
	b.ReportMetric(rh, "hookline-req/s")
	b.ReportMetric(rb, "baseline-req/s")
	b.ReportMetric(float64(openH.pct(99).Microseconds())/1000, "open-p99-ms")
}

// processCPU is the user+system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func codes(m map[int]int) string {
	if len(m) == 0 {
		return ""
	}
	var ks []int
	for c := range m {
		ks = append(ks, c)
	}
	sort.Ints(ks)
	var parts []string
	for _, c := range ks {
		name := fmt.Sprint(c)
		if c == 0 {
			name = "transport error"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, m[c]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func listen(b testing.TB) net.Listener {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return ln
}

// newBare is the baseline: the least a "produce, then 200" webhook handler
// does, with the same producer settings as the receiver.
func newBare(b testing.TB, kc kafkaconf.Config, topic string) http.Handler {
	b.Helper()
	opts, err := kc.Opts()
	if err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	rt := httprouter.New()
	rt.POST("/webhooks/:source", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rec := &kgo.Record{Topic: topic, Key: []byte(r.Header.Get("X-Bench-Key")), Value: body}
		if err := cl.ProduceSync(r.Context(), rec).FirstErr(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	return rt
}
