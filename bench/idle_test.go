package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/consumer"
	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/internal/syncbuf"
	"github.com/hookline/hookline/topics"
)

// Shape of the idle benchmark.
const (
	idleRecords = 10_000
	// userHZ is the unit of utime/stime in /proc/<pid>/stat (USER_HZ, 100
	// on every Linux architecture Go supports).
	userHZ = 100
)

// idleWindow is how long CPU is measured: 30 s, as in the acceptance
// criterion; HOOKLINE_BENCH_IDLE_WINDOW overrides it (e.g. 10s).
func idleWindow() time.Duration {
	if v := os.Getenv("HOOKLINE_BENCH_IDLE_WINDOW"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d
		}
	}
	return 30 * time.Second
}

// Helper subprocess modes (TestMain runs them when envChild is set).
const (
	envChild     = "HOOKLINE_BENCH_CHILD"
	envBrokers   = "HOOKLINE_BENCH_BROKERS"
	envBase      = "HOOKLINE_BENCH_BASE"
	envListen    = "HOOKLINE_BENCH_LISTEN"
	childConsume = "consume" // the consumer, as hookline consume runs it (fallback when the binary does not build)
	childRaw     = "raw"     // a raw franz-go group consumer of the same topics
)

// BenchmarkIdleRetries measures the CPU of a consumer process whose only
// work is 10,000 records parked in the retry tiers, none due for a day. The
// consumer runs as a subprocess (the hookline binary, `hookline consume`) so
// the in-process broker's CPU is not counted; a raw franz-go group consumer
// of the same topics runs next to it as the baseline.
func BenchmarkIdleRetries(b *testing.B) {
	k := startBroker(b)
	plan := k.pipeline(b, "idle", nil)

	// Park 10,000 retry records, spread over tiers and partitions.
	p := makePayloads(1000)
	now := time.Now()
	due := headers.FormatTime(now.Add(24 * time.Hour))
	prod := k.client(b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	produceAll(b, prod, func(yield func(*kgo.Record) bool) {
		for i := range idleRecords {
			tier := 1 + i%len(plan.Names.Retries)
			c := i % len(p.bodies)
			r := receiverRecord(plan.Names.Retry(tier), p.convs[c], p.bodies[c], eventID("i", i), now)
			r.Partition = int32(i/len(plan.Names.Retries)) % partitions
			ts := headers.FormatTime(now)
			r.Headers = append(r.Headers,
				kgo.RecordHeader{Key: headers.Attempt, Value: []byte(strconv.Itoa(tier))},
				kgo.RecordHeader{Key: headers.OriginalTopic, Value: []byte(plan.Names.Base)},
				kgo.RecordHeader{Key: headers.OriginalPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
				kgo.RecordHeader{Key: headers.OriginalOffset, Value: []byte(strconv.Itoa(i))},
				kgo.RecordHeader{Key: headers.OriginalTimestamp, Value: []byte(ts)},
				kgo.RecordHeader{Key: headers.FirstFailedAt, Value: []byte(ts)},
				kgo.RecordHeader{Key: headers.FailedAt, Value: []byte(ts)},
				kgo.RecordHeader{Key: headers.Error, Value: []byte("bench: 503 from the handler")},
				kgo.RecordHeader{Key: headers.ErrorClass, Value: []byte(headers.ClassRetryable)},
				kgo.RecordHeader{Key: headers.ConsumerGroup, Value: []byte("hookline-" + plan.Names.Base)},
				kgo.RecordHeader{Key: headers.DueAt, Value: []byte(due)},
			)
			if !yield(r) {
				return
			}
		}
	})

	k.deleteGroup(b, "hookline-"+plan.Names.Base) // hookline consume's default group
	k.deleteGroup(b, rawIdleGroup(plan.Names.Base))
	hlPort, rawPort := freePort(b), freePort(b)
	brokers := strings.Join(k.kafka.Brokers, ",")
	how := "hookline binary (go build ./cmd/hookline), `hookline consume`"
	bin, buildErr := buildHookline(b)
	var hl *exec.Cmd
	if buildErr == nil {
		hl = exec.Command(bin, "consume",
			"--brokers", brokers, "--base", plan.Names.Base, "--partitions", strconv.Itoa(partitions),
			"--retry-delays", "10s,1m,10m", "--create-topics=false",
			"--handler-url", "http://127.0.0.1:9/never-called", "--listen", hlPort, "--log-level", "warn")
	} else {
		how = "the benchmark binary re-run as a helper running consumer.New+Run like `hookline consume` (the hookline binary did not build: " + firstLine(buildErr.Error()) + ")"
		hl = selfCommand(b, childConsume, brokers, plan.Names.Base, hlPort)
	}
	raw := selfCommand(b, childRaw, brokers, plan.Names.Base, rawPort)
	// Capped: the processes run for the whole window.
	hlOut, rawOut := syncbuf.Buffer{Limit: 1 << 20}, syncbuf.Buffer{Limit: 1 << 20}
	hl.Stdout, hl.Stderr = &hlOut, &hlOut
	raw.Stdout, raw.Stderr = &rawOut, &rawOut
	for _, cmd := range []*exec.Cmd{hl, raw} {
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { stopChild(cmd) })
	}

	// Steady state: every parked record fetched and waiting (the consumer's
	// gauges refresh every 5 s), and the raw consumer has read them all.
	checkAlive := func(when string) {
		for _, c := range []*exec.Cmd{hl, raw} {
			if c.ProcessState != nil || !alive(c) {
				b.Fatalf("%s: a helper process exited early.\nhookline output:\n%s\nraw output:\n%s", when, hlOut.String(), rawOut.String())
			}
		}
	}
	waitFor(b, 90*time.Second, 250*time.Millisecond, "the consumer to hold every parked retry record", func() bool {
		checkAlive("waiting for the parked records")
		return scrape(hlPort, "hookline_consumer_retry_waiting") >= idleRecords &&
			scrape(rawPort, "bench_raw_records_total") >= idleRecords
	})
	time.Sleep(2 * time.Second) // let start-up work (commits, sweeps scheduled at start) pass

	win := idleWindow()
	h0, err1 := cpuTicks(hl.Process.Pid)
	r0, err2 := cpuTicks(raw.Process.Pid)
	t0 := time.Now()
	time.Sleep(win)
	h1, err3 := cpuTicks(hl.Process.Pid)
	r1, err4 := cpuTicks(raw.Process.Pid)
	el := time.Since(t0)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		b.Fatal(err)
	}
	checkAlive("after the window")
	handled := scrape(hlPort, "hookline_consumer_events_total")
	waiting := scrape(hlPort, "hookline_consumer_retry_waiting")

	pct := func(ticks int64) float64 { return float64(ticks) / userHZ / el.Seconds() * 100 }
	hp, rp := pct(h1-h0), pct(r1-r0)
	addRow(row{order: 40, metric: fmt.Sprintf("idle CPU, %s retries parked, %s window (%% of one core)", num(idleRecords), win),
		hookline: fmt.Sprintf("%.2f %%", hp), baseline: fmt.Sprintf("%.2f %%", rp), ratio: ratio(hp, rp),
		target: "< 5 % (hookline)", met: metFlag(hp < 5)})
	addNote("4: %s records in %s.retry-1..3 over %d partitions, hookline-due-at = now + 24h. hookline: %s, a separate process; "+
		"CPU = utime+stime of /proc/<pid>/stat over %s after every record was held (retry_waiting gauge = %.0f, events handled %.0f). "+
		"baseline: a raw franz-go group consumer of the same 4 topics in its own process, all records read, idle in long-poll fetches. "+
		"The broker (in the benchmark process or external) is not counted. Tick resolution 10 ms = %.3f %% over the window.",
		num(idleRecords), plan.Names.Base, partitions, how, el.Round(time.Millisecond), waiting, handled, 1.0/userHZ/el.Seconds()*100)
	b.ReportMetric(hp, "hookline-cpu-%")
	b.ReportMetric(rp, "raw-cpu-%")
}

// buildHookline builds the hookline binary into a temporary directory.
func buildHookline(b testing.TB) (string, error) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "hookline")
	gobin := "go"
	if g := os.Getenv("GO"); g != "" {
		gobin = g
	}
	cmd := exec.Command(gobin, "build", "-o", bin, "github.com/hookline/hookline/cmd/hookline")
	cmd.Dir = ".." // the module root (go test runs in the package directory)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	return bin, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

// selfCommand re-runs the benchmark binary as a helper.
func selfCommand(b testing.TB, mode, brokers, base, listen string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envChild+"="+mode, envBrokers+"="+brokers, envBase+"="+base, envListen+"="+listen)
	return cmd
}

func stopChild(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func alive(cmd *exec.Cmd) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return false
	}
	// A zombie (state Z) has exited.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}

// cpuTicks returns utime+stime of pid (all threads) in USER_HZ ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return u + st, nil
}

func freePort(b testing.TB) string {
	ln := listen(b)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// scrape sums every series of a counter or gauge on http://addr/metrics
// (-1 when it cannot be read), as metricSum does for a registry.
func scrape(addr, name string) float64 {
	return metricSum(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(resp.Body)
		return slices.Collect(maps.Values(mfs)), err
	}), name, nil)
}

// runChild runs a helper subprocess until SIGTERM.
func runChild(mode string) int {
	ctx, stop := signalContext()
	defer stop()
	kc := kafkaconf.Config{Brokers: kafkaconf.ParseBrokers(os.Getenv(envBrokers))}
	plan, err := topics.NewPlan(topics.Config{Base: os.Getenv(envBase), Partitions: partitions})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	reg := prometheus.NewRegistry()
	ln, err := net.Listen("tcp", os.Getenv(envListen))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	switch mode {
	case childConsume:
		sink, err := consumer.NewHTTPSink(consumer.HTTPSinkConfig{URL: "http://127.0.0.1:9/never-called"})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c, err := consumer.New(consumer.Config{Kafka: kc, Plan: plan, Handler: sink, Logger: quietLogger(), Registerer: reg})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := c.Run(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case childRaw:
		n := prometheus.NewCounter(prometheus.CounterOpts{Name: "bench_raw_records_total", Help: "records read"})
		reg.MustRegister(n)
		opts, err := kc.Opts()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cl, err := kgo.NewClient(append(opts,
			kgo.ConsumerGroup(rawIdleGroup(plan.Names.Base)),
			kgo.ConsumeTopics(plan.Names.Consumed()...),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		)...)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer cl.Close()
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil || fs.IsClientClosed() {
				return 0
			}
			n.Add(float64(fs.NumRecords()))
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", envChild, mode)
		return 2
	}
}

func rawIdleGroup(base string) string { return "bench-raw-idle-" + base }

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
