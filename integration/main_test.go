package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/topics"
)

// Shared by every test of the package: the broker and the hookline binary.
var (
	broker *Broker
	binary string
)

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b, err := Acquire(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: no broker: %v\n", err)
		os.Exit(1)
	}
	broker = b
	fmt.Printf("integration: broker %s at %s\n", b.Kind, strings.Join(b.Seeds, ","))

	dir, err := os.MkdirTemp("", "hookline-it-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "hookline")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/hookline")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: build hookline: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	b.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// uniqueBase returns a pipeline base name no other test (or earlier run
// against the same external broker) uses.
func uniqueBase(t testing.TB) string {
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	if len(name) > 60 {
		name = name[:60]
	}
	return fmt.Sprintf("it.%s.%d", name, time.Now().UnixNano()%1e9)
}

// admin returns a kadm client on the test broker.
func admin(t testing.TB) *kadm.Client {
	t.Helper()
	cl := client(t)
	return kadm.NewClient(cl)
}

// client returns a plain franz-go client on the test broker, closed at cleanup.
func client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base, err := broker.KafkaConfig().Opts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createPipeline creates the topics of a pipeline directly (not via the CLI).
func createPipeline(t testing.TB, cfg topics.Config) topics.Plan {
	t.Helper()
	plan, err := topics.NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := topics.Create(ctx, admin(t), plan); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteTopics(plan.Names.All()...) })
	return plan
}

// deleteTopics removes test topics from an external broker so repeated runs
// do not pile up; errors are ignored.
func deleteTopics(names ...string) {
	if !broker.Real() {
		return
	}
	cl, err := kafkaconf.NewClient(context.Background(), broker.KafkaConfig())
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _ = kadm.NewClient(cl).DeleteTopics(ctx, names...)
}

// endOffsets sums the end offsets of topic over its partitions.
func endOffsets(t testing.TB, topic string) int64 {
	t.Helper()
	return sumOffsets(endsOf(t, topic))
}

// readAll reads every record of topic up to its current end offsets.
func readAll(t testing.TB, topic string) []*kgo.Record {
	t.Helper()
	total := endOffsets(t, topic)
	if total == 0 {
		return nil
	}
	cl := client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []*kgo.Record
	for int64(len(out)) < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %d of %d records", topic, len(out), total)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// cliResult is the outcome of one hookline invocation.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the hookline binary to completion with the test broker in
// HOOKLINE_BROKERS (unless env overrides it).
func runCLI(t testing.TB, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(append(os.Environ(), "HOOKLINE_BROKERS="+strings.Join(broker.Seeds, ",")), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("hookline %v: %v", args, err)
	}
	return cliResult{code, out.String(), errb.String()}
}

// process is a long-running hookline subprocess (run, serve, consume).
type process struct {
	t    testing.TB
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer // stdout and stderr, interleaved
	done chan struct{}
	err  error
}

// startCLI starts hookline in the background; it is killed at cleanup.
func startCLI(t testing.TB, env []string, args ...string) *process {
	t.Helper()
	return startBinary(t, binary, env, args...)
}

// startBinary is startCLI with another hookline binary (e.g. one built
// without -race).
func startBinary(t testing.TB, bin string, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "HOOKLINE_BROKERS="+strings.Join(broker.Seeds, ",")), env...)
	p := &process{t: t, cmd: cmd, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of hookline %v:\n%s", args, p.output())
		}
	})
	return p
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitOutput waits until the output matches re and returns the first
// submatch (or the whole match).
func (p *process) waitOutput(re string, timeout time.Duration) string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := rx.FindStringSubmatch(p.output()); m != nil {
			if len(m) > 1 {
				return m[1]
			}
			return m[0]
		}
		select {
		case <-p.done:
			p.t.Fatalf("hookline exited (%v) before printing %q:\n%s", p.err, re, p.output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	p.t.Fatalf("hookline did not print %q within %s:\n%s", re, timeout, p.output())
	return ""
}

// signal sends sig and waits for the process to exit (up to timeout).
func (p *process) signal(sig syscall.Signal, timeout time.Duration) error {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.t.Fatalf("hookline did not exit within %s after %v:\n%s", timeout, sig, p.output())
		return nil
	}
}

func (p *process) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
