package producer

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookline/hookline/internal/extract"
	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/internal/syncbuf"
	"github.com/hookline/hookline/internal/verify"
	"github.com/hookline/hookline/topics"
)

const testSecret = "s3cret-for-tests"

type harness struct {
	t       *testing.T
	cluster *kfake.Cluster
	rcv     *Receiver
	url     string
	names   topics.Names
	adm     *kadm.Client
	cancel  context.CancelFunc
	done    chan error
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	names := topics.For("t.events", 3)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, names.All()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ver, err := verify.New(verify.Config{Type: "shared-secret", Header: "X-Hookline-Secret", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Kafka:   kafkaconf.Config{Brokers: c.ListenAddrs()},
		Sources: []Source{{Name: "genesys", Topics: names, Rules: extract.Rules{Kind: extract.KindGenesys}, Verifier: ver}},
		// No drain window, so every test's stop is quick; the drain tests
		// set their own.
		DrainDelay: -1,
	}
	if mod != nil {
		mod(&cfg)
	}
	rcv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, cluster: c, rcv: rcv, url: "http://" + ln.Addr().String(), names: names, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- rcv.Serve(ctx, ln) }()
	t.Cleanup(h.stop)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	h.adm = kadm.NewClient(cl)
	return h
}

func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		h.cancel = nil
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			h.t.Error("receiver did not stop within 10s")
		}
	}
}

func (h *harness) post(source string, body []byte, secret string) (*http.Response, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/webhooks/"+source, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("X-Hookline-Secret", secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// records reads every record of topic from the start up to its end offsets.
func (h *harness) records(topic string) []*kgo.Record {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := h.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		h.t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.cluster.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for int64(len(out)) < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatalf("read %s: got %d of %d records", topic, len(out), total)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// metrics returns the receiver's /metrics page.
func (h *harness) metrics() []byte {
	h.t.Helper()
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func (h *harness) endOffsetSum(topic string) int64 {
	ends, err := h.adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		h.t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	return total
}

func TestEventBridgeCustomerStartIsStoredWithEveryHeader(t *testing.T) {
	h := newHarness(t, nil)
	body := extract.Samples()["customer.start.eventbridge"]
	ids, err := extract.Extract(body, extract.Rules{Kind: extract.KindGenesys})
	if err != nil || ids.ConversationID == "" {
		t.Fatalf("fixture: %v %+v", err, ids)
	}
	resp, rb := h.post("genesys", body, testSecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, rb)
	}
	var got receiptBody
	if err := json.Unmarshal(rb, &got); err != nil || got.Receipt == "" || got.EventID != ids.EventID {
		t.Fatalf("response %s: %v", rb, err)
	}
	if resp.Header.Get("X-Hookline-Receipt") != got.Receipt {
		t.Fatalf("X-Hookline-Receipt %q != body receipt %q", resp.Header.Get("X-Hookline-Receipt"), got.Receipt)
	}
	recs := h.records(h.names.Base)
	if len(recs) != 1 {
		t.Fatalf("%d records in %s, want 1", len(recs), h.names.Base)
	}
	r := recs[0]
	if string(r.Key) != ids.ConversationID {
		t.Errorf("key %q, want conversation id %q", r.Key, ids.ConversationID)
	}
	if !bytes.Equal(r.Value, body) {
		t.Error("value is not byte-identical to the request body")
	}
	want := map[string]string{
		headers.EventID:        ids.EventID,
		headers.ReceiptID:      got.Receipt,
		headers.Source:         "genesys",
		headers.ContentType:    "application/json",
		headers.ConversationID: ids.ConversationID,
	}
	for k, v := range want {
		if g := headers.Value(r.Headers, k); g != v {
			t.Errorf("header %s = %q, want %q", k, g, v)
		}
	}
	at, err := headers.ParseTime(headers.Value(r.Headers, headers.ReceivedAt))
	if err != nil || time.Since(at) > time.Minute {
		t.Errorf("received-at %q: %v", headers.Value(r.Headers, headers.ReceivedAt), err)
	}
	if len(r.Headers) != len(want)+1 {
		t.Errorf("%d headers, want %d: %v", len(r.Headers), len(want)+1, r.Headers)
	}
	if n := h.endOffsetSum(h.names.DLQ); n != 0 {
		t.Errorf("%d records in the DLQ", n)
	}
}

func TestSameEventInTwoEnvelopesKeepsItsEventID(t *testing.T) {
	h := newHarness(t, nil)
	inner := extract.Samples()["acd.start"]
	wrap := func(id string) []byte {
		return []byte(`{"version":"0","id":"` + id + `","detail-type":"v2.detail.events.conversation","source":"aws.partner/genesys.com/cloud/x/y","account":"1","time":"2026-11-28T10:00:0` + id[:1] + `Z","region":"eu-west-1","resources":[],"detail":` + string(inner) + `}`)
	}
	var ids []string
	for _, b := range [][]byte{wrap("1a"), wrap("2b"), inner} {
		resp, rb := h.post("genesys", b, testSecret)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, rb)
		}
		var got receiptBody
		_ = json.Unmarshal(rb, &got)
		ids = append(ids, got.EventID)
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("event ids differ across envelopes: %v", ids)
	}
	recs := h.records(h.names.Base)
	if len(recs) != 3 || recs[0].Partition != recs[2].Partition {
		t.Fatalf("want 3 records in one partition, got %d", len(recs))
	}
}

func TestBadInput(t *testing.T) {
	h := newHarness(t, nil)
	body := extract.Samples()["customer.start"]

	for _, secret := range []string{"", "wrong"} {
		resp, _ := h.post("genesys", body, secret)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("secret %q: status %d, want 401", secret, resp.StatusCode)
		}
	}
	big := bytes.Repeat([]byte("x"), 2<<20)
	if resp, _ := h.post("genesys", big, testSecret); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB body: status %d, want 413", resp.StatusCode)
	}
	if resp, rb := h.post("nope", body, testSecret); resp.StatusCode != http.StatusNotFound || strings.Contains(string(rb), "did you mean") ||
		!strings.Contains(string(rb), "/webhooks/<source>") {
		t.Fatalf("unknown source: status %d %s, want 404 with a readable path and no guess", resp.StatusCode, rb)
	}
	if resp, rb := h.post("GENESYS", body, testSecret); resp.StatusCode != http.StatusNotFound || !strings.Contains(string(rb), "did you mean /webhooks/genesys?") {
		t.Fatalf("source in the wrong case: status %d %s, want 404 naming /webhooks/genesys", resp.StatusCode, rb)
	}
	for _, topic := range []string{h.names.Base, h.names.DLQ} {
		if n := h.endOffsetSum(topic); n != 0 {
			t.Fatalf("rejected requests stored %d records in %s", n, topic)
		}
	}

	bad := []byte(`{"topicName": "v2.detail.events.conversation.x", `)
	resp, rb := h.post("genesys", bad, testSecret)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("malformed JSON: status %d, want 202: %s", resp.StatusCode, rb)
	}
	dlq := h.records(h.names.DLQ)
	if len(dlq) != 1 {
		t.Fatalf("%d DLQ records, want 1", len(dlq))
	}
	if c := headers.Value(dlq[0].Headers, headers.ErrorClass); c != headers.ClassMalformed {
		t.Fatalf("error class %q", c)
	}
	if !bytes.Equal(dlq[0].Value, bad) || headers.Value(dlq[0].Headers, headers.Error) == "" {
		t.Fatal("DLQ record must keep the body and say why")
	}
	var rcpt receiptBody
	if err := json.Unmarshal(rb, &rcpt); err != nil || !rcpt.DeadLettered || rcpt.Error != headers.Value(dlq[0].Headers, headers.Error) {
		t.Fatalf("the 202 answer must say why, as the DLQ record does: %s", rb)
	}
	// Keyed and named by the content hash; the failure headers of a first
	// attempt, failed when it was received.
	d := dlq[0]
	if id := headers.Value(d.Headers, headers.EventID); id != contentHash(bad) || string(d.Key) != id || rcpt.EventID != id {
		t.Errorf("event id %q, key %q, answer %q: want the content hash %q for all three", id, d.Key, rcpt.EventID, contentHash(bad))
	}
	rcv := headers.Value(d.Headers, headers.ReceivedAt)
	if at, err := headers.ParseTime(rcv); err != nil || time.Since(at) > time.Minute {
		t.Errorf("received-at %q: %v", rcv, err)
	}
	for k, v := range map[string]string{headers.Attempt: "0", headers.FirstFailedAt: rcv, headers.FailedAt: rcv,
		headers.Source: "genesys", headers.ReceiptID: rcpt.Receipt} {
		if g := headers.Value(d.Headers, k); g != v {
			t.Errorf("DLQ header %s = %q, want %q", k, g, v)
		}
	}
	if n := h.endOffsetSum(h.names.Base); n != 0 {
		t.Fatal("malformed body reached the main topic")
	}

	// A compressed body is stored as sent; its error names the encoding.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(body)
	zw.Close()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/webhooks/genesys", bytes.NewReader(gz.Bytes()))
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("X-Hookline-Secret", testSecret)
	gresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	gresp.Body.Close()
	if gresp.StatusCode != http.StatusAccepted {
		t.Fatalf("gzip body: status %d, want 202", gresp.StatusCode)
	}
	dlq = h.records(h.names.DLQ)
	i := slices.IndexFunc(dlq, func(r *kgo.Record) bool { return bytes.Equal(r.Value, gz.Bytes()) })
	if len(dlq) != 2 || i < 0 || !strings.Contains(headers.Value(dlq[i].Headers, headers.Error), "Content-Encoding: gzip") {
		t.Fatalf("gzip body: %d DLQ records; one must keep the bytes and name the encoding in its error", len(dlq))
	}
}

// TestMalformedBodyNamesItsContentType: a body in another encoding than
// UTF-8, or a form instead of JSON, is stored as sent, and its error names
// what the sender declared, so the operator (and the sender, in the 202)
// sees the fix.
func TestMalformedBodyNamesItsContentType(t *testing.T) {
	h := newHarness(t, nil)
	latin1 := []byte("{\"conversationId\":\"caf\xe9\"}")
	utf16 := []byte("{\x00}\x00")
	form := []byte("payload=%7B%22conversationId%22%3A%22c-1%22%7D")
	const utf8Hint, formHint = "; hookline reads bodies as UTF-8", "; hookline reads JSON bodies"
	for _, tc := range []struct {
		ct   string
		body []byte
		hint string // "" when the error must name neither charset nor Content-Type
	}{
		{"application/json; charset=ISO-8859-1", latin1, "charset=ISO-8859-1" + utf8Hint},
		{`application/json; charset="utf-16le"`, utf16, "charset=utf-16le" + utf8Hint},
		{"application/json; charset=UTF-8", latin1, ""},
		{"application/json", latin1, ""},
		{"application/json; charset=", latin1, ""},
		{"application/x-www-form-urlencoded", form, "Content-Type is application/x-www-form-urlencoded" + formHint},
		{"multipart/form-data; boundary=x", form, "Content-Type is multipart/form-data" + formHint},
		{"text/plain", form, ""},
		// Well-formed JSON refused for its shape: neither header mangled it.
		{"application/json; charset=ISO-8859-1", []byte(`[{"conversationId":"c-1"}]`), ""},
		{"application/x-www-form-urlencoded", []byte(`[{"conversationId":"c-1"}]`), ""},
	} {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/webhooks/genesys", bytes.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.ct)
		req.Header.Set("X-Hookline-Secret", testSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var rcpt receiptBody
		if resp.StatusCode != http.StatusAccepted || json.Unmarshal(rb, &rcpt) != nil || !rcpt.DeadLettered {
			t.Fatalf("%s: %d %s, want 202 dead-lettered", tc.ct, resp.StatusCode, rb)
		}
		dlq := h.records(h.names.DLQ)
		i := slices.IndexFunc(dlq, func(r *kgo.Record) bool { return headers.Value(r.Headers, headers.ReceiptID) == rcpt.Receipt })
		if i < 0 {
			t.Fatalf("%s: no DLQ record with receipt %s", tc.ct, rcpt.Receipt)
		}
		r := dlq[i]
		stored := headers.Value(r.Headers, headers.Error)
		if !bytes.Equal(r.Value, tc.body) || stored != rcpt.Error {
			t.Fatalf("%s: DLQ record must keep the body and the answer's error: %q vs %q", tc.ct, stored, rcpt.Error)
		}
		if tc.hint == "" && strings.Contains(stored, " (the request") || tc.hint != "" && !strings.Contains(stored, tc.hint) {
			t.Errorf("%s: error %q, want hint %q", tc.ct, stored, tc.hint)
		}
	}
}

// brokerDown makes the fake broker drop every produce request while down is
// set, like an unreachable broker.
func brokerDown(c *kfake.Cluster, down *atomic.Bool) {
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if down.Load() {
			return nil, errors.New("injected: broker unreachable"), true
		}
		return nil, nil, false
	})
}

func TestBrokerDownAnswers503WithinBudgetThenRecovers(t *testing.T) {
	const budget = 500 * time.Millisecond
	h := newHarness(t, func(c *Config) { c.AckTimeout = budget })
	var down atomic.Bool
	brokerDown(h.cluster, &down)
	body := extract.Samples()["user.end"]
	if resp, _ := h.post("genesys", body, testSecret); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthy broker: status %d", resp.StatusCode)
	}

	down.Store(true)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	var slowest time.Duration
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			start := time.Now()
			resp, _ := h.post("genesys", body, testSecret)
			el := time.Since(start)
			mu.Lock()
			codes[resp.StatusCode]++
			slowest = max(slowest, el)
			if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusServiceUnavailable] != 8 {
		t.Fatalf("with the broker down: codes %v, want 8×503", codes)
	}
	if slowest > budget+200*time.Millisecond {
		t.Fatalf("slowest 503 took %s, budget %s + 200ms", slowest, budget)
	}

	down.Store(false)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, rb := h.post("genesys", body, testSecret)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker back but still %d: %s", resp.StatusCode, rb)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestInFlightBoundAnswers429(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxInFlight = 1; c.AckTimeout = 3 * time.Second })
	body := extract.Samples()["user.end"]
	release, first := h.holdTheOnlySlot(body)
	resp, _ := h.post("genesys", body, testSecret)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the bound: status %d retry-after %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(release)
	if code := <-first; code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}
}

func TestShutdownTurnsReadyzAndWebhooksTo503(t *testing.T) {
	h := newHarness(t, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(h.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.rcv.gate.close() // the first step of shutdown
	resp, err := http.Get(h.url + "/readyz")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz while closing: %v %v", resp.StatusCode, err)
	}
	if resp, _ := h.post("genesys", extract.Samples()["user.end"], testSecret); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("webhook while closing: %d, want 503", resp.StatusCode)
	}
	h.stop()
	if _, err := http.Get(h.url + "/healthz"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}

func TestMetricsAndHealth(t *testing.T) {
	h := newHarness(t, nil)
	h.post("genesys", extract.Samples()["user.end"], testSecret)
	h.post("genesys", extract.Samples()["user.end"], "bad")
	b := h.metrics()
	for _, want := range []string{
		`hookline_receiver_requests_total{code="200",source="genesys"} 1`,
		`hookline_receiver_requests_total{code="401",source="genesys"} 1`,
		// At 0 before the first one, so that rate() sees the first burst.
		`hookline_receiver_requests_total{code="429",source="genesys"} 0`,
		`hookline_receiver_requests_total{code="503",source="genesys"} 0`,
		`hookline_receiver_requests_total{code="413",source="genesys"} 0`,
		`hookline_receiver_ack_latency_seconds_bucket`,
		`hookline_receiver_in_flight 0`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if resp, err := http.Get(h.url + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v", err)
	}
}

func TestNewRejectsMisconfiguredSources(t *testing.T) {
	names := topics.For("x", 1)
	ver, _ := verify.New(verify.Config{Type: "none"})
	cases := map[string][]Source{
		"no verifier": {{Name: "a", Topics: names, Rules: extract.Rules{Kind: extract.KindGenesys}}},
		"bad rules":   {{Name: "a", Topics: names, Rules: extract.Rules{Kind: "xml"}, Verifier: ver}},
		"no topics":   {{Name: "a", Rules: extract.Rules{Kind: extract.KindGenesys}, Verifier: ver}},
		"duplicate": {
			{Name: "a", Topics: names, Rules: extract.Rules{Kind: extract.KindGenesys}, Verifier: ver},
			{Name: "a", Topics: names, Rules: extract.Rules{Kind: extract.KindGenesys}, Verifier: ver},
		},
	}
	for name, srcs := range cases {
		_, err := New(Config{Kafka: kafkaconf.Config{Brokers: []string{"127.0.0.1:1"}}, Sources: srcs})
		if err == nil || !strings.Contains(err.Error(), `"a"`) {
			t.Errorf("%s: error %v should name the source", name, err)
		}
		if name == "no topics" && (err == nil || !strings.Contains(err.Error(), "has no Topics")) {
			t.Errorf("no topics: %v", err)
		}
	}
	// The metrics count requests to no source under "unknown".
	_, err := New(Config{Kafka: kafkaconf.Config{Brokers: []string{"127.0.0.1:1"}},
		Sources: []Source{{Name: UnknownSource, Topics: names, Rules: extract.Rules{Kind: extract.KindGenesys}, Verifier: ver}}})
	if err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("a source named %q: %v, want refused as reserved", UnknownSource, err)
	}
}

func TestWriteReceiptIsValidJSON(t *testing.T) {
	for _, id := range []string{"abc123", `quote"back\slash`, "ctl\x01\x1f", "ünï\u2028\U000e0001"} {
		rec := httptest.NewRecorder()
		writeReceipt(rec, http.StatusAccepted, "2Dk", id, "why: "+id)
		var got map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%q: invalid JSON %s: %v", id, rec.Body.Bytes(), err)
		}
		if got["event_id"] != id || got["receipt"] != "2Dk" || got["dead_lettered"] != true || got["error"] != "why: "+id {
			t.Fatalf("%q: decoded %v", id, got)
		}
	}
}

// receiptBody is the 200/202 answer of the receiver.
type receiptBody struct {
	Receipt      string `json:"receipt"`
	EventID      string `json:"event_id"`
	DeadLettered bool   `json:"dead_lettered"`
	Error        string `json:"error"`
}

// TestSenderHeadersStayBounded: a sender's Content-Type (Go accepts ~1 MiB
// of headers) must not fill the record's header room. A record that fits
// the main topic but not a retry or DLQ hop, which adds headers, would stop
// its partition there. Nor may a long Content-Encoding flood the log.
func TestSenderHeadersStayBounded(t *testing.T) {
	logs := &syncbuf.Buffer{}
	h := newHarness(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	long := "application/json; x=" + strings.Repeat("b", 64<<10) + "\xff\xfe"
	for _, tc := range []struct {
		body     []byte
		encoding string
		topic    string
	}{
		{extract.Samples()["customer.start.eventbridge"], "", h.names.Base},
		{[]byte("not json"), strings.Repeat("gzip, ", 30<<10), h.names.DLQ},
	} {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/webhooks/genesys", bytes.NewReader(tc.body))
		req.Header.Set("Content-Type", long)
		req.Header.Set("X-Hookline-Secret", testSecret)
		if tc.encoding != "" {
			req.Header.Set("Content-Encoding", tc.encoding)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status %d", resp.StatusCode)
		}
		recs := h.records(tc.topic)
		r := recs[len(recs)-1]
		ct := headers.Value(r.Headers, headers.ContentType)
		if len(ct) > maxContentTypeLen || !utf8.ValidString(ct) || !strings.HasPrefix(ct, "application/json; x=bbb") {
			t.Errorf("stored content type: %d bytes, valid UTF-8 %v, %.30q", len(ct), utf8.ValidString(ct), ct)
		}
		n := 0
		for _, hd := range r.Headers {
			n += len(hd.Key) + len(hd.Value)
		}
		// What a retry or DLQ hop adds is bounded too (the error text by
		// headers.MaxErrorLen): together well inside topics.HeaderRoom.
		if n > 4<<10 {
			t.Errorf("stored headers take %d bytes", n)
		}
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if len(line) > 4<<10 {
			t.Errorf("log line of %d bytes: %.200s", len(line), line)
		}
	}
	if !strings.Contains(logs.String(), "Content-Encoding: gzip, gzip") {
		t.Errorf("the malformed webhook's log does not name its Content-Encoding:\n%.2000s", logs.String())
	}
}

// TestRoutesAnswerPlainly: a near-miss path gets a 404 that names the right
// one, not an empty redirect a sender may not follow (or follow silently);
// other methods get a JSON 405; health checks answer HEAD; all are counted.
func TestRoutesAnswerPlainly(t *testing.T) {
	h := newHarness(t, nil)
	body := extract.Samples()["user.end"]
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, body []byte) (*http.Response, map[string]string) {
		t.Helper()
		req, _ := http.NewRequest(method, h.url+path, bytes.NewReader(body))
		req.Header.Set("X-Hookline-Secret", testSecret)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]string
		b, _ := io.ReadAll(resp.Body)
		if method != http.MethodHead && json.Unmarshal(b, &m) != nil {
			t.Errorf("%s %s: %d with a body that is not JSON: %q", method, path, resp.StatusCode, b)
		}
		return resp, m
	}
	for _, p := range []string{"/webhooks/genesys/", "//webhooks/genesys", "/webhooks//genesys"} {
		resp, m := do(http.MethodPost, p, body)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(m["error"], "did you mean /webhooks/genesys?") {
			t.Errorf("POST %s: %d %q, want 404 naming /webhooks/genesys", p, resp.StatusCode, m["error"])
		}
	}
	if resp, m := do(http.MethodGet, "/webhooks/genesys", nil); resp.StatusCode != http.StatusMethodNotAllowed ||
		!strings.Contains(resp.Header.Get("Allow"), "POST") || !strings.Contains(m["error"], "allowed: ") {
		t.Errorf("GET /webhooks/genesys: %d Allow %q %q, want a JSON 405", resp.StatusCode, resp.Header.Get("Allow"), m["error"])
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if resp, _ := do(http.MethodHead, p, nil); resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotFound {
			t.Errorf("HEAD %s: %d", p, resp.StatusCode)
		}
	}
	if n := h.endOffsetSum(h.names.Base); n != 0 {
		t.Errorf("%d records stored through wrong paths", n)
	}
	b := h.metrics()
	for _, want := range []string{
		`hookline_receiver_requests_total{code="404",source="unknown"} 3`,
		`hookline_receiver_requests_total{code="405",source="unknown"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// hookline_receiver_ready follows /readyz, so that an outage can be
// alerted on after load balancers took the receivers out and the 503s
// stopped; /readyz says "status" whether ready or not, with the reason
// in "error".
func TestReadyGaugeAndReadyzBody(t *testing.T) {
	h := newHarness(t, nil)
	h.waitReadyz(http.StatusOK, 10*time.Second)
	if got := h.metric("hookline_receiver_ready"); got != "hookline_receiver_ready 1" {
		t.Errorf("hookline_receiver_ready while ready: %q, want 1", got)
	}
	h.rcv.gate.close() // the first step of shutdown
	resp, err := http.Get(h.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || m["status"] != "not ready" || m["error"] != "shutting down" {
		t.Errorf("readyz while closing: %d %v %v, want 503 with status \"not ready\" and error \"shutting down\"", resp.StatusCode, m, err)
	}
	if got := h.metric("hookline_receiver_ready"); got != "hookline_receiver_ready 0" {
		t.Errorf("hookline_receiver_ready while closing: %q, want 0", got)
	}
}

// Rejections in the last seconds before a shutdown are still counted in the
// log: Serve's return summarises the repeats its rate limit held back.
func TestLastBurstIsSummarisedOnStop(t *testing.T) {
	var buf syncbuf.Buffer
	h := newHarness(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&buf, nil)) })
	for range 4 {
		resp, _ := h.post("genesys", []byte(`{"eventId":"e-1"}`), "wrong secret")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
	}
	h.stop()
	if got := strings.Count(buf.String(), "verification failed"); got != 2 || !strings.Contains(buf.String(), "suppressed=2") {
		t.Fatalf("want the first rejection's line and, on stop, the last one's with suppressed=2; got %d:\n%s", got, buf.String())
	}
}

// holdTheOnlySlot posts body with its produce held, and returns once that
// request holds the receiver's only in-flight slot (MaxInFlight 1). Closing
// release lets the produce through; first gets that request's status.
func (h *harness) holdTheOnlySlot(body []byte) (release chan struct{}, first chan int) {
	release = holdProduces(h.cluster)
	first = make(chan int, 1)
	go func() {
		resp, _ := h.post("genesys", body, testSecret)
		first <- resp.StatusCode
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(h.rcv.sem) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return release, first
}
