package producer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookline/hookline/internal/extract"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/internal/syncbuf"
	"github.com/hookline/hookline/internal/verify"
	"github.com/hookline/hookline/topics"
)

// holdProduces makes the fake broker sit on every produce request until the
// returned channel is closed.
func holdProduces(c *kfake.Cluster) chan struct{} {
	release := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	return release
}

// slowProduces makes the fake broker answer every produce request d late
// while the returned flag is set.
func slowProduces(c *kfake.Cluster, d time.Duration) *atomic.Bool {
	slow := new(atomic.Bool)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if slow.Load() {
			c.SleepControl(func() { time.Sleep(d) })
		}
		return nil, nil, false
	})
	return slow
}

// answer is what a client saw: a status, or the error of a refused connection.
type answer struct {
	code       int
	retryAfter string
	body       string
	err        error
}

// send posts body to /webhooks/genesys on url without failing the test, so
// it can run in a goroutine and report connection errors as values.
func send(url string, body io.Reader) answer {
	req, _ := http.NewRequest(http.MethodPost, url+"/webhooks/genesys", body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hookline-Secret", testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b)}
}

func (h *harness) readyz() (int, error) {
	resp, err := http.Get(h.url + "/readyz")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (h *harness) waitReadyz(want int, within time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if code, err := h.readyz(); err == nil && code == want {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("readyz never answered %d within %s", want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric returns the /metrics line that starts with series, or "".
func (h *harness) metric(series string) string {
	h.t.Helper()
	for line := range strings.Lines(string(h.metrics())) {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// heldWebhook posts body while the broker holds every produce, and returns
// once the receiver admitted it: its answer arrives on the channel after
// release is closed.
func (h *harness) heldWebhook(body []byte) (<-chan answer, chan struct{}) {
	release := holdProduces(h.cluster)
	first := make(chan answer, 1)
	go func() { first <- send(h.url, bytes.NewReader(body)) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(h.rcv.sem) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return first, release
}

func TestShutdownKeepsListeningUntilInFlightWebhooksAreAnswered(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AckTimeout = 3 * time.Second })
	h.waitReadyz(http.StatusOK, 10*time.Second)
	body := extract.Samples()["user.end"]
	first, release := h.heldWebhook(body)

	cancel := h.cancel
	h.cancel = nil // this test waits for Serve itself
	cancel()
	for deadline := time.Now().Add(5 * time.Second); !h.rcv.gate.isClosed() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if code, err := h.readyz(); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("readyz while draining: %d %v, want 503", code, err)
	}
	if a := send(h.url, bytes.NewReader(body)); a.err != nil || a.code != http.StatusServiceUnavailable || a.retryAfter == "" {
		t.Fatalf("new webhook while draining: %+v, want 503 with Retry-After", a)
	}
	select {
	case err := <-h.done:
		t.Fatalf("Serve returned with a webhook in flight: %v", err)
	default:
	}

	close(release)
	if a := <-first; a.code != http.StatusOK {
		t.Fatalf("in-flight webhook: %+v, want 200", a)
	}
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the last webhook was answered")
	}
	if _, err := http.Get(h.url + "/healthz"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}

// trickle returns a body that sends half of b, pauses, then sends the rest.
func trickle(b []byte, pause time.Duration) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		if _, err := pw.Write(b[:len(b)/2]); err != nil {
			return
		}
		time.Sleep(pause)
		if _, err := pw.Write(b[len(b)/2:]); err != nil {
			return
		}
		pw.Close()
	}()
	return pr
}

func TestSlowUploadIsNotBlamedOnKafka(t *testing.T) {
	logs := &syncbuf.Buffer{}
	h := newHarness(t, func(c *Config) {
		c.AckTimeout = 200 * time.Millisecond
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	body := extract.Samples()["user.end"]
	if a := send(h.url, bytes.NewReader(body)); a.code != http.StatusOK { // connect the producer
		t.Fatalf("warm-up: %+v", a)
	}
	if a := send(h.url, trickle(body, 400*time.Millisecond)); a.code != http.StatusOK {
		t.Fatalf("body paused 400ms with a 200ms ack budget: %+v, want 200", a)
	}
	if got := h.metric(`hookline_receiver_produce_errors_total{source="genesys"}`); !strings.HasSuffix(got, " 0") {
		t.Fatalf("produce errors: %q, want 0", got)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("slow upload logged at ERROR:\n%s", logs)
	}
}

func TestBodyPastTheReadTimeoutAnswers408(t *testing.T) {
	logs := &syncbuf.Buffer{}
	h := newHarness(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	// The same handler behind a server with a short read timeout.
	srv := &http.Server{Handler: h.rcv.Handler(), ReadTimeout: 300 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	a := send("http://"+ln.Addr().String(), trickle(extract.Samples()["user.end"], 600*time.Millisecond))
	if a.code != http.StatusRequestTimeout {
		t.Fatalf("body past the read timeout: %+v, want 408", a)
	}
	if got := h.metric(`hookline_receiver_produce_errors_total{source="genesys"}`); !strings.HasSuffix(got, " 0") {
		t.Fatalf("produce errors: %q, want 0", got)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("read timeout logged at ERROR:\n%s", logs)
	}
}

// A body that cannot be read (here a broken chunked encoding) is answered
// 400 and logged, with the transport's reason and none of the body.
func TestUnreadableBodyAnswers400AndLogsWhy(t *testing.T) {
	logs := &syncbuf.Buffer{}
	h := newHarness(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	got := sendHead(t, h, "POST /webhooks/genesys HTTP/1.1\r\nHost: x\r\nX-Hookline-Secret: "+testSecret+
		"\r\nTransfer-Encoding: chunked\r\n", "5\r\n{\"a\":\r\nzz-not-a-chunk-size\r\n", 3*time.Second)
	if !strings.HasPrefix(got, "HTTP/1.1 400") {
		t.Fatalf("broken chunked body: first answer %q, want 400", got)
	}
	// Counted once the handler returned, just after the answer went out.
	for i := 0; ; i++ {
		got := h.metric(`hookline_receiver_requests_total{code="400",source="genesys"}`)
		if strings.HasSuffix(got, " 1") {
			break
		}
		if i == 100 {
			t.Fatalf("requests counted: %q, want 1 with code 400", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if l := logs.String(); !strings.Contains(l, "answered 400") || !strings.Contains(l, "chunk") || strings.Contains(l, `{"a"`) {
		t.Fatalf("400 log line: want the reason and no body bytes:\n%s", l)
	}
}

// padded is a valid EventBridge body of about n bytes.
func padded(n int) []byte {
	b := extract.Samples()["customer.start.eventbridge"]
	return append([]byte(`{"pad":"`+strings.Repeat("x", max(0, n-len(b)))+`",`), b[1:]...)
}

func TestRecordLargerThanTheTopicAccepts413(t *testing.T) {
	const limit = 20000
	setups := map[string]func(*testing.T) *harness{
		"topic max.message.bytes": func(t *testing.T) *harness {
			h := newHarness(t, nil)
			v := "20000"
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rs, err := h.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: &v}}, h.names.Base, h.names.DLQ)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if r.Err != nil {
					t.Fatalf("alter %s: %v", r.Name, r.Err)
				}
			}
			return h
		},
		"producer batch limit": func(t *testing.T) *harness {
			return newHarness(t, func(c *Config) {
				c.ExtraProducerOpts = []kgo.Opt{kgo.ProducerBatchMaxBytes(limit)}
			})
		},
	}
	for name, setup := range setups {
		t.Run(name, func(t *testing.T) {
			h := setup(t)
			h.waitReadyz(http.StatusOK, 10*time.Second)
			for _, tc := range []struct {
				body  []byte
				topic string
			}{
				{padded(2 * limit), h.names.Base},
				{bytes.Repeat([]byte("{"), 2*limit), h.names.DLQ}, // malformed: to the DLQ
			} {
				a := send(h.url, bytes.NewReader(tc.body))
				if a.code != http.StatusRequestEntityTooLarge || !strings.Contains(a.body, tc.topic) || !strings.Contains(a.body, "max.message.bytes") {
					t.Fatalf("%d-byte body for %s: %+v, want 413 naming the topic and max.message.bytes", len(tc.body), tc.topic, a)
				}
			}
			if a := send(h.url, bytes.NewReader(padded(limit/4))); a.code != http.StatusOK {
				t.Fatalf("small body: %+v, want 200", a)
			}
			if a := send(h.url, strings.NewReader("{")); a.code != http.StatusAccepted {
				t.Fatalf("small malformed body: %+v, want 202", a)
			}
			if got := h.metric(`hookline_receiver_requests_total{code="413",source="genesys"}`); !strings.HasSuffix(got, " 2") {
				t.Fatalf("413 requests: %q, want 2", got)
			}
			if got := h.metric(`hookline_receiver_produce_errors_total{source="genesys"}`); !strings.HasSuffix(got, " 0") {
				t.Fatalf("produce errors: %q, want 0", got)
			}
			if ok, reason := h.rcv.Ready(); !ok {
				t.Fatalf("a too-large record made the receiver unready: %s", reason)
			}
		})
	}
}

func TestReadyzFollowsTheLastProduce(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AckTimeout = 300 * time.Millisecond })
	// While down, the broker answers produce requests after the ack budget,
	// like one that is unreachable; metadata still works.
	down := slowProduces(h.cluster, 500*time.Millisecond)
	body := extract.Samples()["user.end"]
	h.waitReadyz(http.StatusOK, 10*time.Second)
	if a := send(h.url, bytes.NewReader(body)); a.code != http.StatusOK {
		t.Fatalf("healthy broker: %+v", a)
	}

	// failAndCheck makes one webhook fail and returns what /readyz says
	// right after. A broker check that starts in between clears the
	// failure; checks run 5 s apart, so a second try cannot meet one.
	failAndCheck := func() (code int) {
		t.Helper()
		down.Store(true)
		defer down.Store(false)
		for range 2 {
			if a := send(h.url, bytes.NewReader(body)); a.code != http.StatusServiceUnavailable {
				t.Fatalf("broker down: %+v, want 503", a)
			}
			if code, _ = h.readyz(); code == http.StatusServiceUnavailable {
				break
			}
		}
		return code
	}

	if code := failAndCheck(); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz after a failed produce: %d, want 503", code)
	}
	deadline := time.Now().Add(15 * time.Second)
	for send(h.url, bytes.NewReader(body)).code != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("broker back but webhooks still fail")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, err := h.readyz(); code != http.StatusOK {
		t.Fatalf("readyz after an acknowledged webhook: %d %v, want 200", code, err)
	}

	// Without traffic, the next successful broker check makes it ready again:
	// a load balancer that took the instance out sends nothing that could.
	if code := failAndCheck(); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz after a failed produce: %d, want 503", code)
	}
	h.waitReadyz(http.StatusOK, 8*time.Second)
}

// A sender that hangs up while Kafka is still confirming does not cancel the
// produce (franz-go would fail the records batched behind it, other senders'
// webhooks): the record is written, readiness stays, no produce error.
func TestSenderHangUpIsNotAKafkaFailure(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AckTimeout = time.Second })
	slow := slowProduces(h.cluster, 400*time.Millisecond)
	body := extract.Samples()["user.end"]
	h.waitReadyz(http.StatusOK, 10*time.Second)
	slow.Store(true)
	impatient := &http.Client{Timeout: 100 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodPost, h.url+"/webhooks/genesys", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hookline-Secret", testSecret)
	if resp, err := impatient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the impatient sender got %d; the produce should have outlasted its timeout", resp.StatusCode)
	}
	time.Sleep(600 * time.Millisecond) // the handler sees the hang-up and returns
	slow.Store(false)
	if code, err := h.readyz(); code != http.StatusOK {
		t.Fatalf("readyz after a sender hung up: %d %v, want 200", code, err)
	}
	if got := h.metric(`hookline_receiver_produce_errors_total{source="genesys"}`); !strings.HasSuffix(got, " 0") {
		t.Fatalf("produce errors after a hang-up: %q", got)
	}
}

// A library user who leaves ExtraProducerOpts empty still gets bodies
// near 1 MiB through to a topic with Kafka's default max.message.bytes:
// franz-go's own batch limit (1,000,012 bytes) refused them with a 413
// that blamed the topic.
func TestDefaultBatchLimitTakesABodyNear1MiB(t *testing.T) {
	h := newHarness(t, nil)
	h.waitReadyz(http.StatusOK, 10*time.Second)
	body := padded(DefaultMaxBodyBytes - 4096)
	if a := send(h.url, bytes.NewReader(body)); a.code != http.StatusOK {
		t.Fatalf("%d-byte body: %+v, want 200", len(body), a)
	}
}

// Nor may the default limit let franz-go pack small webhooks into a batch
// larger than a default topic takes: the broker refuses the batch whole,
// and every webhook in it would get a 413. Produce requests are slowed so
// that the webhooks queue up behind one and are batched.
func TestDefaultBatchLimitFitsADefaultTopic(t *testing.T) {
	h := newHarness(t, nil)
	h.waitReadyz(http.StatusOK, 10*time.Second)
	h.cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		h.cluster.KeepControl()
		h.cluster.SleepControl(func() { time.Sleep(100 * time.Millisecond) })
		return nil, nil, false
	})
	const n = 24
	codes := make(chan int, n)
	for range n {
		go func() { codes <- send(h.url, bytes.NewReader(padded(150_000))).code }()
	}
	for range n {
		if code := <-codes; code != http.StatusOK {
			t.Fatalf("a 150 kB webhook among %d at once: %d, want 200", n, code)
		}
	}
}

// A large MaxBodyBytes still makes a receiver: the default batch limit stays
// at Kafka's default (franz-go refuses one above 100 MiB or 1 GiB).
func TestLargeMaxBodyBytesIsAccepted(t *testing.T) {
	ver, err := verify.New(verify.Config{Type: "none"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{101 << 20, 2 << 30, math.MaxInt64} {
		if got := defaultBatchMaxBytes(n); got != 1_048_588 {
			t.Errorf("defaultBatchMaxBytes(%d) = %d, want 1,048,588", n, got)
		}
		rcv, err := New(Config{Kafka: kafkaconf.Config{Brokers: []string{"127.0.0.1:1"}}, MaxBodyBytes: n, DrainDelay: -1,
			Sources: []Source{{Name: "a", Topics: topics.For("x", 1), Rules: extract.Rules{Kind: extract.KindGenesys}, Verifier: ver}}})
		if err != nil {
			t.Fatalf("MaxBodyBytes %d: %v", n, err)
		}
		rcv.Client().Close()
	}
	if got := defaultBatchMaxBytes(64 << 10); got != 80<<10 {
		t.Errorf("defaultBatchMaxBytes(64 KiB) = %d, want 80 KiB", got)
	}
}

// A context deadline in a produce's outcome is said as the ack budget it
// was: the webhook's own, or that of an earlier record of its partition
// (franz-go fails the records behind a timed-out one with its error). The
// log never shows a bare "context deadline exceeded".
func TestAckErrorNamesTheBudget(t *testing.T) {
	wrapped := fmt.Errorf("produce: %w", context.DeadlineExceeded)
	other := errors.New("NOT_ENOUGH_REPLICAS")
	for _, c := range []struct {
		err  error
		over bool
		want error
	}{
		{context.DeadlineExceeded, true, errAckTimeout},
		{wrapped, true, errAckTimeout},
		{context.DeadlineExceeded, false, errBehindAckTimeout},
		{other, true, other},
		{nil, false, nil},
	} {
		if got := ackError(c.err, c.over); got != c.want {
			t.Errorf("ackError(%v, %v) = %v, want %v", c.err, c.over, got, c.want)
		}
	}
}
