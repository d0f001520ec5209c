package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/extract"
	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/topics"
)

const itSecret = "it-secret-1234"

type postResult struct {
	code    int
	body    []byte
	hdr     http.Header
	elapsed time.Duration
}

func post(t testing.TB, url string, body []byte, secret string) postResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("X-Hookline-Secret", secret)
	}
	start := time.Now()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return postResult{resp.StatusCode, b, resp.Header, time.Since(start)}
}

// rewrap puts a bare Genesys notification in a new EventBridge envelope.
func rewrap(inner []byte, envelopeID string) []byte {
	return []byte(`{"version":"0","id":"` + envelopeID + `","detail-type":"v2.detail.events.conversation.customer.start",` +
		`"source":"aws.partner/genesys.com/cloud/org/it","account":"123456789012","time":"2026-11-28T10:00:00Z",` +
		`"region":"eu-west-1","resources":[],"detail":` + string(inner) + `}`)
}

func TestReceiverStoresGenesysEventsOnBroker(t *testing.T) {
	base := uniqueBase(t)
	plan := createPipeline(t, topics.Config{Base: base, Partitions: 3})
	p := startCLI(t, []string{"HOOKLINE_SECRET=" + itSecret}, "serve", "--base", base, "--partitions", "3", "--listen", "127.0.0.1:0")
	url := "http://" + p.waitOutput(`receiver listening on (\S+)`, 60*time.Second) + "/webhooks/genesys"

	samples := extract.Samples()
	body := samples["customer.start.eventbridge"]
	ids, err := extract.Extract(body, extract.Rules{Kind: extract.KindGenesys})
	if err != nil {
		t.Fatal(err)
	}
	r := post(t, url, body, itSecret)
	if r.code != http.StatusOK {
		t.Fatalf("customer.start: %d %s", r.code, r.body)
	}
	var resp struct{ Receipt, EventID string }
	if err := json.Unmarshal(r.body, &struct {
		Receipt *string `json:"receipt"`
		EventID *string `json:"event_id"`
	}{&resp.Receipt, &resp.EventID}); err != nil || resp.Receipt == "" || resp.EventID != ids.EventID {
		t.Fatalf("response %s (%v), want event id %s", r.body, err, ids.EventID)
	}
	if r.hdr.Get("X-Hookline-Receipt") != resp.Receipt {
		t.Fatal("X-Hookline-Receipt differs from the body's receipt")
	}

	recs := readAll(t, base)
	if len(recs) != 1 {
		t.Fatalf("%d records in %s, want 1", len(recs), base)
	}
	rec := recs[0]
	if string(rec.Key) != ids.ConversationID || !bytes.Equal(rec.Value, body) {
		t.Fatalf("key %q (want %q), value identical: %v", rec.Key, ids.ConversationID, bytes.Equal(rec.Value, body))
	}
	for k, want := range map[string]string{
		headers.EventID: ids.EventID, headers.ReceiptID: resp.Receipt, headers.Source: "genesys",
		headers.ContentType: "application/json", headers.ConversationID: ids.ConversationID,
	} {
		if got := headers.Value(rec.Headers, k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if _, err := headers.ParseTime(headers.Value(rec.Headers, headers.ReceivedAt)); err != nil {
		t.Errorf("received-at: %v", err)
	}

	// The same event re-wrapped keeps its event id.
	r2 := post(t, url, rewrap(samples["customer.start"], "6c1f0e1e-0000-4000-8000-000000000001"), itSecret)
	if r2.code != http.StatusOK || !strings.Contains(string(r2.body), ids.EventID) {
		t.Fatalf("re-wrapped event: %d %s, want event id %s", r2.code, r2.body, ids.EventID)
	}

	// Wrong secret: 401, nothing stored. Too large: 413. Unknown source: 404.
	before := endOffsets(t, base)
	if r := post(t, url, body, "wrong"); r.code != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", r.code)
	}
	if r := post(t, url, bytes.Repeat([]byte("a"), 2<<20), itSecret); r.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB: %d", r.code)
	}
	if r := post(t, strings.Replace(url, "/genesys", "/nope", 1), body, itSecret); r.code != http.StatusNotFound {
		t.Fatalf("unknown source: %d", r.code)
	}
	if after := endOffsets(t, base); after != before {
		t.Fatalf("end offsets moved from %d to %d on rejected requests", before, after)
	}
	if n := endOffsets(t, plan.Names.DLQ); n != 0 {
		t.Fatalf("DLQ has %d records before any malformed input", n)
	}

	// Malformed JSON with the right secret: 202 and one malformed DLQ record.
	bad := []byte(`{"topicName": "v2.detail.events.conversation`)
	if r := post(t, url, bad, itSecret); r.code != http.StatusAccepted {
		t.Fatalf("malformed: %d %s", r.code, r.body)
	}
	dlq := readAll(t, plan.Names.DLQ)
	if len(dlq) != 1 || headers.Value(dlq[0].Headers, headers.ErrorClass) != headers.ClassMalformed || !bytes.Equal(dlq[0].Value, bad) {
		t.Fatalf("DLQ: %d records; class %q", len(dlq), headers.Value(dlq[0].Headers, headers.ErrorClass))
	}

	// SIGTERM: graceful exit with status 0.
	if err := p.signal(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM", err)
	}
}

// kafkaScript is the script that runs the Maven-assembled Apache Kafka.
func kafkaScript(t *testing.T) string {
	path, err := filepath.Abs("kafka/kafka.sh")
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// defaultOwnBrokerPort is the PLAINTEXT port of ownBroker's private Kafka;
// its controller listens on the next port.
const defaultOwnBrokerPort = 19392

// ownBroker starts a second, private Apache Kafka that the test may stop and
// restart; it skips unless the Maven-assembled broker is available. port
// (optional, default 19392) is its PLAINTEXT port and port+1 its controller
// port: tests that may run at the same time as another ownBroker user (for
// example the chaos test) pass their own.
func ownBroker(t *testing.T, port ...int) (seeds string, ctl func(cmd string)) {
	t.Helper()
	p := defaultOwnBrokerPort
	if len(port) > 0 && port[0] > 0 {
		p = port[0]
	}
	if !broker.Real() {
		t.Skip("needs a real Apache Kafka (set KAFKA_BROKERS, e.g. make kafka-up); the kfake variant is a unit test in producer/")
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Skip("java not installed: cannot start a private Apache Kafka to stop and restart")
	}
	state := t.TempDir()
	env := append(os.Environ(), fmt.Sprintf("KAFKA_PORT=%d", p), fmt.Sprintf("KAFKA_CONTROLLER_PORT=%d", p+1), "HOOKLINE_KAFKA_STATE="+state)
	ctl = func(cmd string) {
		t.Helper()
		c := exec.Command("bash", kafkaScript(t), cmd)
		c.Env = env
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("kafka.sh %s: %v\n%s", cmd, err, out)
		}
	}
	ctl("up")
	t.Cleanup(func() { ctl("down") })
	return fmt.Sprintf("127.0.0.1:%d", p), ctl
}

func TestReceiverAnswers503WhileBrokerIsDownAndRecovers(t *testing.T) {
	seeds, ctl := ownBroker(t)
	const budget = time.Second
	p := startCLI(t, []string{"HOOKLINE_SECRET=" + itSecret, "HOOKLINE_BROKERS=" + seeds},
		"serve", "--partitions", "2", "--listen", "127.0.0.1:0", "--ack-timeout", budget.String())
	url := "http://" + p.waitOutput(`receiver listening on (\S+)`, 60*time.Second) + "/webhooks/genesys"
	body := extract.Samples()["user.end.eventbridge"]
	if r := post(t, url, body, itSecret); r.code != http.StatusOK {
		t.Fatalf("broker up: %d %s", r.code, r.body)
	}

	ctl("down")
	for i := 0; i < 5; i++ {
		r := post(t, url, body, itSecret)
		if r.code != http.StatusServiceUnavailable {
			t.Fatalf("broker down, POST %d: %d %s, want 503", i, r.code, r.body)
		}
		if r.hdr.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
		if r.elapsed > budget+200*time.Millisecond {
			t.Fatalf("503 after %s, budget %s + 200ms", r.elapsed, budget)
		}
	}

	ctl("start") // same data: the topics are still there
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := post(t, url, body, itSecret)
		if r.code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker back for 60s, receiver still answers %d %s", r.code, r.body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Every POST answered 200 is in the topic (the first and the last at least).
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds), kgo.ConsumeTopics(topics.DefaultBase), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	for n < 2 && ctx.Err() == nil {
		n += cl.PollFetches(ctx).NumRecords()
	}
	if n < 2 {
		t.Fatalf("found %d records after recovery, want at least 2", n)
	}
}

func TestEmbeddedBrokerKeepsRecordsAcrossRestarts(t *testing.T) {
	dataDir := t.TempDir()
	addr := freeAddr(t)
	env := []string{"HOOKLINE_BROKERS=", "HOOKLINE_SECRET=" + itSecret}
	args := []string{"run", "--embedded-addr", addr, "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--partitions", "3"}

	p := startCLI(t, env, args...)
	p.waitOutput(`bootstrap: `+addr, 30*time.Second)
	if !strings.Contains(p.output(), "development and single-host use") {
		t.Error("no warning that embedded mode is for development")
	}
	url := "http://" + p.waitOutput(`receiver listening on (\S+)`, 30*time.Second) + "/webhooks/genesys"
	samples := extract.Samples()
	for _, name := range []string{"customer.start", "acd.start", "user.end"} {
		if r := post(t, url, samples[name], itSecret); r.code != http.StatusOK {
			t.Fatalf("%s: %d %s", name, r.code, r.body)
		}
	}

	// A second run on the same address fails clearly instead of crashing.
	second := runCLI(t, env, append(args[:len(args):len(args)], "--data-dir", t.TempDir())...)
	if second.code == 0 || !strings.Contains(second.stderr, "port is taken") {
		t.Fatalf("second run on a taken port: exit %d\n%s", second.code, second.stderr)
	}

	if err := p.signal(syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatalf("run exited with %v after SIGTERM", err)
	}
	p2 := startCLI(t, env, args...)
	p2.waitOutput(`receiver listening on`, 30*time.Second)

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topics.DefaultBase), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < 3 && ctx.Err() == nil {
		got = append(got, cl.PollFetches(ctx).Records()...)
	}
	if len(got) != 3 {
		t.Fatalf("after restart %d records readable, want 3", len(got))
	}
}
