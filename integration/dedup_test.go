package integration

// Issue 5 (dedup) end to end: Genesys events posted through the receiver of
// the hookline binary, handled by `hookline run` or `hookline consume`
// processes, against the test broker.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/extract"
	"github.com/hookline/hookline/internal/headers"
)

const dedupSecret = "it-secret"

// receipt is the receiver's 200 answer.
type receipt struct {
	Receipt string `json:"receipt"`
	EventID string `json:"event_id"`
}

// postWebhook posts body to the receiver at addr as the genesys source and
// requires a 200.
func postWebhook(t *testing.T, addr string, body []byte) receipt {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/genesys", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hookline-Secret", dedupSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post webhook: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post webhook: %d %s", resp.StatusCode, b)
	}
	var r receipt
	if err := json.Unmarshal(b, &r); err != nil || r.EventID == "" || r.Receipt == "" {
		t.Fatalf("post webhook: answer %s: %v", b, err)
	}
	return r
}

// genesysForms returns the customer.start sample bare, in its EventBridge
// envelope, and re-wrapped by hand in a new EventBridge envelope (new
// envelope id and time): three deliveries of one Genesys event.
func genesysForms(t *testing.T) (bare, eventBridge, rewrapped []byte) {
	t.Helper()
	s := extract.Samples()
	bare, eventBridge = bytes.TrimSpace(s["customer.start"]), s["customer.start.eventbridge"]
	if bare == nil || eventBridge == nil {
		t.Fatal("extract.Samples has no customer.start / customer.start.eventbridge")
	}
	var n struct {
		TopicName string `json:"topicName"`
	}
	if err := json.Unmarshal(bare, &n); err != nil || n.TopicName == "" {
		t.Fatalf("customer.start sample has no topicName: %v", err)
	}
	u := make([]byte, 16)
	_, _ = rand.Read(u)
	id := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
	rewrapped = fmt.Appendf(nil, `{"version":"0","id":%q,"detail-type":%q,"source":"aws.partner/genesys.com/cloud/5e3a5d7b-1f0c-4a6e-9c2d-8b7f0e1a2c3d/hookline-conversations","account":"123456789012","time":%q,"region":"us-east-1","resources":[],"detail":%s}`,
		id, n.TopicName, time.Now().UTC().Format(time.RFC3339), bare)
	return bare, eventBridge, rewrapped
}

// startReceiver starts `hookline serve` or `hookline run` (cmd) on a free
// port with the test secret and returns the process and its address.
func startReceiver(t *testing.T, cmd string, args ...string) (*process, string) {
	t.Helper()
	addr := freeAddr(t)
	p := startCLI(t, nil, append([]string{cmd, "--secret", dedupSecret, "--listen", addr}, args...)...)
	p.waitOutput(`receiver listening on`, 60*time.Second)
	return p, addr
}

// dedupRecords returns the records of the dedup topic keyed id, in offset
// order.
func dedupRecords(t *testing.T, topic, id string) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	for _, r := range readAll(t, topic) {
		if string(r.Key) == id {
			out = append(out, r)
		}
	}
	return out
}

func TestDedupFiveDeliveriesThroughReceiver(t *testing.T) {
	base := uniqueBase(t)
	plan := createPipeline(t, pipelineConfig(base, 2, []time.Duration{time.Second, time.Second, time.Second}, 0))
	group := base + ".g"
	sk := newSink(t, sinkOptions{})
	_, addr := startReceiver(t, "run", "--handler-url", sk.URL+"/process", "--base", base, "--partitions", "2",
		"--retry-delays", "1s,1s,1s", "--group", group)

	bare, eb, rewrapped := genesysForms(t)
	deliveries := [][]byte{bare, eb, rewrapped, bare, eb}
	var id string
	receipts := map[string]bool{}
	for i, body := range deliveries {
		r := postWebhook(t, addr, body)
		if i == 0 {
			id = r.EventID
		} else if r.EventID != id {
			t.Fatalf("delivery %d got event id %s, want %s (same Genesys event)", i+1, r.EventID, id)
		}
		receipts[r.Receipt] = true
	}
	if len(receipts) != len(deliveries) {
		t.Errorf("%d distinct receipts for %d deliveries", len(receipts), len(deliveries))
	}
	metrics := "http://" + addr + "/metrics"
	waitFor(t, 30*time.Second, "one handled and four duplicates", func() (bool, string) {
		d, _ := metricValue(t, metrics, "hookline_consumer_duplicates_total", "pipeline", base)
		return d >= 4 && sk.okIDs()[id] >= 1, fmt.Sprintf("duplicates %v; sink:\n%s", d, sk.describe(10))
	})
	waitCaughtUp(t, group, base, 15*time.Second)
	time.Sleep(300 * time.Millisecond)

	main := readAll(t, base)
	if len(main) != 5 {
		t.Fatalf("%s holds %d records, want the 5 deliveries", base, len(main))
	}
	for _, r := range main {
		if recHeader(r, headers.EventID) != id || r.Partition != main[0].Partition {
			t.Errorf("record %s[%d]@%d: event id %s, want %s in one partition", r.Topic, r.Partition, r.Offset, recHeader(r, headers.EventID), id)
		}
	}
	calls := sk.snapshot()
	if len(calls) != 1 {
		t.Fatalf("the handler was called %d times for 5 deliveries of one event, want once:\n%s", len(calls), sk.describe(10))
	}
	c := calls[0]
	if c.IdempotencyKey != id || c.EventID != id || !bytes.Equal(c.Body, bare) {
		t.Errorf("handled request: Idempotency-Key %q, event id %q, body %.60q…; want %s and the first delivery's body", c.IdempotencyKey, c.EventID, c.Body, id)
	}
	if d, _ := metricValue(t, metrics, "hookline_consumer_duplicates_total", "pipeline", base); d != 4 {
		t.Errorf("hookline_consumer_duplicates_total = %v, want 4", d)
	}
	if d, _ := metricValue(t, metrics, "hookline_consumer_events_total", "pipeline", base, "topic", base, "outcome", "duplicate"); d != 4 {
		t.Errorf("hookline_consumer_events_total{outcome=duplicate} = %v, want 4", d)
	}
	if ds := dedupRecords(t, plan.Names.Dedup, id); len(ds) != 1 || !strings.Contains(string(ds[0].Value), `"outcome":"processed"`) {
		t.Errorf("dedup records for %s: %s, want one processed record", id, describeRecords(ds))
	}
}

func TestDedupSurvivesConsumerKill(t *testing.T) {
	base := uniqueBase(t)
	plan := createPipeline(t, pipelineConfig(base, 2, []time.Duration{time.Second, time.Second, time.Second}, 0))
	group := base + ".g"
	sk := newSink(t, sinkOptions{})
	_, addr := startReceiver(t, "serve", "--base", base, "--partitions", "2", "--retry-delays", "1s,1s,1s")
	args := []string{"--handler-url", sk.URL + "/process", "--base", base, "--partitions", "2", "--retry-delays", "1s,1s,1s", "--group", group}

	bare, eb, _ := genesysForms(t)
	first := startConsume(t, args...)
	id := postWebhook(t, addr, bare).EventID
	waitFor(t, 30*time.Second, "the event handled and its dedup record written", func() (bool, string) {
		n := endOffsets(t, plan.Names.Dedup)
		return sk.okIDs()[id] == 1 && n >= 1, fmt.Sprintf("%d dedup record(s); sink:\n%s", n, sk.describe(10))
	})
	if err := first.signal(syscall.SIGKILL, 10*time.Second); err == nil {
		t.Fatal("hookline consume exited cleanly on SIGKILL?")
	}
	time.Sleep(300 * time.Millisecond)
	atKill := sumOffsets(committed(t, group, base))
	t.Logf("killed; committed on %s: %d of 1", base, atKill)

	evictGroupMembers(t, group)
	listen := freeAddr(t)
	startConsume(t, append(args, "--listen", listen)...)
	if again := postWebhook(t, addr, eb).EventID; again != id {
		t.Fatalf("redelivery has event id %s, want %s", again, id)
	}
	waitCaughtUp(t, group, base, 75*time.Second) // HOOKLINE_IT_NO_EVICT: ~45 s session timeout first
	time.Sleep(300 * time.Millisecond)

	if n := sk.count(); n != 1 {
		t.Fatalf("the handler was called %d times, want once: the restarted consumer forgot the event:\n%s", n, sk.describe(10))
	}
	// The restarted process read every record after the committed offset
	// (the redelivery, and the original when its offset was not committed
	// yet) and skipped each as a duplicate.
	d, _ := metricValue(t, "http://"+listen+"/metrics", "hookline_consumer_duplicates_total", "pipeline", base)
	if want := float64(2 - atKill); d != want {
		t.Errorf("restarted consumer: hookline_consumer_duplicates_total = %v, want %v", d, want)
	}
}

func TestDedupSurvivorSkipsAfterHandOver(t *testing.T) {
	base := uniqueBase(t)
	plan := createPipeline(t, pipelineConfig(base, 2, []time.Duration{time.Second, time.Second, time.Second}, 0))
	group := base + ".g"
	sk := newSink(t, sinkOptions{})
	_, addr := startReceiver(t, "serve", "--base", base, "--partitions", "2", "--retry-delays", "1s,1s,1s")
	procs, listens := map[string]*process{}, map[string]string{}
	for _, name := range []string{"a", "b"} {
		listens[name] = freeAddr(t)
		procs[name] = startConsume(t, "--handler-url", sk.URL+"/"+name, "--client-id", "it-"+name, "--listen", listens[name],
			"--base", base, "--partitions", "2", "--retry-delays", "1s,1s,1s", "--group", group)
	}
	owned := waitGroup(t, group, base, 45*time.Second, "it-a", "it-b")

	bare, _, rewrapped := genesysForms(t)
	id := postWebhook(t, addr, bare).EventID
	main := readAll(t, base)
	if len(main) != 1 {
		t.Fatalf("%s holds %d records, want 1", base, len(main))
	}
	p := main[0].Partition
	owner, survivor := "a", "b"
	if slices.Contains(owned["it-b"], p) {
		owner, survivor = "b", "a"
	}
	t.Logf("event %s in partition %d, owned by %s (assignment %v)", shortID(id), p, owner, owned)
	waitFor(t, 30*time.Second, "the event handled", func() (bool, string) {
		return sk.okIDs()[id] == 1 && endOffsets(t, plan.Names.Dedup) >= 1, sk.describe(10)
	})
	if c := sk.snapshot()[0]; c.Path != "/"+owner {
		t.Errorf("the event was handled by %s, want %s, the owner of partition %d", c.Path, "/"+owner, p)
	}

	if err := procs[owner].signal(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("SIGTERM %s: %v", owner, err)
	}
	if again := postWebhook(t, addr, rewrapped).EventID; again != id {
		t.Fatalf("redelivery has event id %s, want %s", again, id)
	}
	waitCaughtUp(t, group, base, 45*time.Second)
	if got := waitGroup(t, group, base, 30*time.Second, "it-"+survivor); len(got["it-"+survivor]) != 2 {
		t.Errorf("survivor owns %v, want both partitions", got)
	}
	time.Sleep(300 * time.Millisecond)

	if n := sk.count(); n != 1 {
		t.Fatalf("the handler was called %d times, want once: the survivor handled the redelivery again:\n%s", n, sk.describe(10))
	}
	d, _ := metricValue(t, "http://"+listens[survivor]+"/metrics", "hookline_consumer_duplicates_total", "pipeline", base)
	if d != 1 {
		t.Errorf("survivor %s: hookline_consumer_duplicates_total = %v, want 1 (the redelivery skipped)", survivor, d)
	}
}

func TestDedupWindowExpiresWithTombstone(t *testing.T) {
	base := uniqueBase(t)
	const window = 2 * time.Second
	plan := createPipeline(t, pipelineConfig(base, 2, []time.Duration{time.Second, time.Second, time.Second}, window))
	group := base + ".g"
	sk := newSink(t, sinkOptions{})
	_, addr := startReceiver(t, "run", "--handler-url", sk.URL+"/process", "--base", base, "--partitions", "2",
		"--retry-delays", "1s,1s,1s", "--dedup-window", window.String(), "--group", group)
	metrics := "http://" + addr + "/metrics"

	// Two deliveries back to back: the second is checked right after the
	// first's dedup record is written, well within the window, and skipped.
	bare, eb, rewrapped := genesysForms(t)
	id := postWebhook(t, addr, bare).EventID
	if again := postWebhook(t, addr, eb).EventID; again != id {
		t.Fatalf("redelivery has event id %s, want %s", again, id)
	}
	waitFor(t, 30*time.Second, "the event handled and the redelivery within the window skipped", func() (bool, string) {
		d, _ := metricValue(t, metrics, "hookline_consumer_duplicates_total", "pipeline", base)
		return sk.okIDs()[id] == 1 && d == 1, fmt.Sprintf("duplicates %v; sink:\n%s", d, sk.describe(10))
	})
	firstAt := sk.snapshot()[0].Start
	if n := sk.count(); n != 1 {
		t.Fatalf("redelivery within the %s window reached the handler (%d calls)", window, n)
	}

	// Past the window: the entry is tombstoned, and a redelivery is new.
	waitFor(t, 20*time.Second, "a tombstone for the event id in "+plan.Names.Dedup, func() (bool, string) {
		ds := dedupRecords(t, plan.Names.Dedup, id)
		return len(ds) >= 2 && ds[len(ds)-1].Value == nil, describeRecords(ds)
	})
	t.Logf("tombstone written within %s of the first handling", time.Since(firstAt).Round(time.Millisecond))
	postWebhook(t, addr, rewrapped)
	waitFor(t, 20*time.Second, "the redelivery past the window handled", func() (bool, string) {
		return sk.okIDs()[id] == 2, sk.describe(10)
	})
	waitCaughtUp(t, group, base, 15*time.Second)
	time.Sleep(300 * time.Millisecond)

	calls := sk.snapshot()
	if len(calls) != 2 {
		t.Fatalf("the handler was called %d times, want 2 (first delivery, then past the window):\n%s", len(calls), sk.describe(10))
	}
	if gap := calls[1].Start.Sub(firstAt); gap < window {
		t.Errorf("handled again %s after the first time, inside the %s window", gap, window)
	}
	// Up to the second entry's own expiry: once its window has passed too
	// (a slow catch-up on a loaded machine), its tombstone follows, which
	// is right and not what this checks.
	var ds []*kgo.Record
	for _, r := range dedupRecords(t, plan.Names.Dedup, id) {
		if r.Timestamp.Before(calls[1].Start.Add(window)) {
			ds = append(ds, r)
		}
	}
	if len(ds) != 3 || !strings.Contains(string(ds[0].Value), `"processed"`) || ds[1].Value != nil || !strings.Contains(string(ds[2].Value), `"processed"`) {
		t.Fatalf("dedup records for %s: %s\nwant processed, tombstone (nil value), processed", shortID(id), describeRecords(ds))
	}
	for _, r := range ds {
		if r.Partition != readAll(t, base)[0].Partition {
			t.Errorf("dedup record %s[%d]@%d is not in the event's main partition", r.Topic, r.Partition, r.Offset)
		}
	}
	if d, _ := metricValue(t, metrics, "hookline_consumer_duplicates_total", "pipeline", base); d != 1 {
		t.Errorf("hookline_consumer_duplicates_total = %v, want 1", d)
	}
}
