package loadtest

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/internal/extract"
)

// delivery is one request a test receiver got.
type delivery struct {
	envelopeID, eventID, conv, detailType string
	seq                                   int
	secret, ua                            string
}

// receiver is a test webhook endpoint: it extracts ids the way hookline does
// and answers what answer says (200 with the event id by default).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(d delivery, n int) (status int, sleep time.Duration)

	mu    sync.Mutex
	got   []delivery
	perID map[string]int
}

func newReceiver(t *testing.T, answer func(d delivery, n int) (int, time.Duration)) *receiver {
	t.Helper()
	r := &receiver{t: t, answer: answer, perID: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	ids, err := extract.Extract(body, extract.Rules{Kind: extract.KindGenesys})
	if err != nil {
		r.t.Errorf("body does not parse as a Genesys event: %v\n%s", err, body)
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	var env struct {
		ID         string `json:"id"`
		DetailType string `json:"detail-type"`
		Detail     struct {
			TopicName string `json:"topicName"`
			EventBody struct {
				ConversationID string `json:"conversationId"`
				Sequence       int    `json:"sequence"`
			} `json:"eventBody"`
		} `json:"detail"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		r.t.Errorf("envelope: %v", err)
	}
	d := delivery{envelopeID: env.ID, eventID: ids.EventID, conv: env.Detail.EventBody.ConversationID,
		detailType: env.DetailType, seq: env.Detail.EventBody.Sequence,
		secret: req.Header.Get("X-Hookline-Secret"), ua: req.Header.Get("User-Agent")}
	if ids.ConversationID != d.conv {
		r.t.Errorf("hookline finds conversation %q, body has %q", ids.ConversationID, d.conv)
	}
	if want := strings.Replace(env.Detail.TopicName, d.conv, "{id}", 1); env.DetailType != want {
		r.t.Errorf("detail-type %q, want the topic filter %q", env.DetailType, want)
	}
	d.detailType = env.Detail.TopicName
	r.mu.Lock()
	n := r.perID[d.eventID]
	r.perID[d.eventID]++
	r.got = append(r.got, d)
	r.mu.Unlock()
	status, sleep := http.StatusOK, time.Duration(0)
	if r.answer != nil {
		status, sleep = r.answer(d, n)
	}
	if sleep > 0 {
		select {
		case <-time.After(sleep):
		case <-req.Context().Done():
			return
		}
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"event_id": d.eventID})
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func fast(cfg Config) Config {
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = time.Millisecond
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 5 * time.Millisecond
	}
	return cfg
}

func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, fast(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestEventsAreRealisticAndInOrderPerConversation(t *testing.T) {
	rcv := newReceiver(t, nil)
	res := run(t, Config{URL: rcv.srv.URL, Secret: "s3cret", Count: 300, Concurrency: 8, Conversations: 20, KeepEvents: true})
	if res.Sent != 300 || res.Acknowledged != 300 || res.GaveUp != 0 || res.Requests != 300 || res.Status2xx != 300 {
		t.Fatalf("stats: %+v", res.Stats)
	}
	if res.IDMismatch != 0 {
		t.Fatalf("%d event id mismatches: the simulator's event id differs from hookline's", res.IDMismatch)
	}
	if len(res.Events) != 300 {
		t.Fatalf("%d events kept", len(res.Events))
	}
	ds := rcv.deliveries()
	last := map[string]int{}
	types := map[string]bool{}
	for _, d := range ds {
		if d.secret != "s3cret" || d.ua != UserAgent {
			t.Fatalf("headers: secret %q, user agent %q", d.secret, d.ua)
		}
		if d.seq != last[d.conv]+1 {
			t.Fatalf("conversation %s: sequence %d after %d", d.conv, d.seq, last[d.conv])
		}
		last[d.conv] = d.seq
		types[d.detailType[strings.LastIndex(d.detailType, d.conv)+len(d.conv)+1:]] = true
	}
	if len(last) < 20 {
		t.Fatalf("%d conversations, want at least the 20 open ones", len(last))
	}
	for _, want := range []string{"customer.start", "acd.start", "acd.end", "user.start", "customer.end", "user.end", "acw.start", "acw.end"} {
		if !types[want] {
			t.Errorf("no %s event among %v", want, types)
		}
	}
	for _, e := range res.Events {
		if !e.Acknowledged || e.EventID == "" || e.Attempts != 1 || e.AckedAt.IsZero() {
			t.Fatalf("event %+v", e)
		}
	}
	if res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 || res.Latency.Max < res.Latency.P99 {
		t.Fatalf("latency %+v", res.Latency)
	}
}

func TestRetriesUseFreshEnvelopesAndCountAnswers(t *testing.T) {
	// Every event: 503, then 429, then 500, then 200.
	rcv := newReceiver(t, func(d delivery, n int) (int, time.Duration) {
		return []int{503, 429, 500, 200, 200}[min(n, 4)], 0
	})
	res := run(t, Config{URL: rcv.srv.URL, Count: 40, Concurrency: 4, Conversations: 4})
	if res.Acknowledged != 40 || res.GaveUp != 0 {
		t.Fatalf("stats: %+v", res.Stats)
	}
	if res.Requests != 160 || res.Retries != 120 || res.Status503 != 40 || res.Status429 != 40 || res.Status5xx != 40 || res.Status2xx != 40 {
		t.Fatalf("stats: %+v", res.Stats)
	}
	envs := map[string]map[string]bool{}
	for _, d := range rcv.deliveries() {
		if envs[d.eventID] == nil {
			envs[d.eventID] = map[string]bool{}
		}
		envs[d.eventID][d.envelopeID] = true
	}
	for id, e := range envs {
		if len(e) != 4 {
			t.Fatalf("event %s: %d distinct envelope ids over 4 attempts", id, len(e))
		}
	}
}

func TestTimeoutsAreRetried(t *testing.T) {
	rcv := newReceiver(t, func(d delivery, n int) (int, time.Duration) {
		if n == 0 {
			return 200, time.Second // past the client timeout
		}
		return 200, 0
	})
	res := run(t, Config{URL: rcv.srv.URL, Count: 5, Concurrency: 5, Timeout: 100 * time.Millisecond})
	if res.Acknowledged != 5 || res.Timeouts != 5 || res.Retries != 5 {
		t.Fatalf("stats: %+v", res.Stats)
	}
}

func TestGivesUpOnFinalAnswersAndBounds(t *testing.T) {
	t.Run("final 4xx", func(t *testing.T) {
		rcv := newReceiver(t, func(delivery, int) (int, time.Duration) { return 400, 0 })
		res := run(t, Config{URL: rcv.srv.URL, Count: 3, KeepEvents: true})
		if res.GaveUp != 3 || res.Requests != 3 || res.Status4xx != 3 || res.Acknowledged != 0 {
			t.Fatalf("stats: %+v", res.Stats)
		}
		if !strings.Contains(res.Events[0].Failure, "status 400") {
			t.Fatalf("failure %q", res.Events[0].Failure)
		}
	})
	t.Run("401 is retried like EventBridge does", func(t *testing.T) {
		rcv := newReceiver(t, func(delivery, int) (int, time.Duration) { return 401, 0 })
		res := run(t, Config{URL: rcv.srv.URL, Count: 2, MaxAttempts: 3, KeepEvents: true})
		if res.GaveUp != 2 || res.Requests != 6 || res.Retries != 4 {
			t.Fatalf("stats: %+v", res.Stats)
		}
		if !strings.Contains(res.Events[0].Failure, "after 3 attempts") {
			t.Fatalf("failure %q", res.Events[0].Failure)
		}
	})
	t.Run("retry time", func(t *testing.T) {
		rcv := newReceiver(t, func(delivery, int) (int, time.Duration) { return 503, 0 })
		res := run(t, Config{URL: rcv.srv.URL, Count: 1, MaxRetryTime: 200 * time.Millisecond,
			BackoffMin: 20 * time.Millisecond, BackoffMax: 40 * time.Millisecond, KeepEvents: true})
		if res.GaveUp != 1 || res.Requests < 3 || res.Requests > 15 {
			t.Fatalf("stats: %+v", res.Stats)
		}
		if !strings.Contains(res.Events[0].Failure, "gave up after 200ms") {
			t.Fatalf("failure %q", res.Events[0].Failure)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		res := run(t, Config{URL: "http://" + addr + "/webhooks/genesys", Count: 2, MaxAttempts: 2})
		if res.GaveUp != 2 || res.ConnErrors != 4 {
			t.Fatalf("stats: %+v", res.Stats)
		}
	})
}

func TestDuplicatesResendAcknowledgedEventsInNewEnvelopes(t *testing.T) {
	rcv := newReceiver(t, nil)
	res := run(t, Config{URL: rcv.srv.URL, Count: 100, Concurrency: 4, Conversations: 8, DuplicateRate: 1, KeepEvents: true})
	if res.Acknowledged != 100 || res.DuplicatesSent != 100 || res.DuplicatesAcked != 100 || res.Requests != 200 {
		t.Fatalf("stats: %+v", res.Stats)
	}
	seen := map[string]map[string]bool{}
	convOf := map[string]string{}
	for _, d := range rcv.deliveries() {
		if seen[d.eventID] == nil {
			seen[d.eventID] = map[string]bool{}
		}
		seen[d.eventID][d.envelopeID] = true
		convOf[d.eventID] = d.conv
	}
	if len(seen) != 100 {
		t.Fatalf("%d distinct event ids, want 100", len(seen))
	}
	extra := 0
	for _, envs := range seen {
		extra += len(envs) - 1
	}
	if extra != 100 {
		t.Fatalf("%d redelivered envelopes, want 100", extra)
	}
	var dups int
	for _, e := range res.Events {
		dups += e.Duplicates
	}
	if dups != 100 {
		t.Fatalf("events record %d duplicates", dups)
	}
}

func TestRateAndDurationBoundTheRun(t *testing.T) {
	var mu sync.Mutex
	var lines []Snapshot
	rcv := newReceiver(t, nil)
	start := time.Now()
	res := run(t, Config{URL: rcv.srv.URL, Duration: 600 * time.Millisecond, Rate: 100, Interval: 200 * time.Millisecond,
		Progress: func(s Snapshot) { mu.Lock(); lines = append(lines, s); mu.Unlock() }})
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("run took %s", el)
	}
	if res.Sent < 40 || res.Sent > 75 || res.Acknowledged != res.Sent {
		t.Fatalf("600ms at 100/s: %+v", res.Stats)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) < 2 {
		t.Fatalf("%d progress snapshots", len(lines))
	}
	if !strings.Contains(lines[0].Line(), "sent=") || lines[0].Interval.Sent == 0 {
		t.Fatalf("progress: %s", lines[0].Line())
	}
}

func TestUnfinishedWhenDurationEnds(t *testing.T) {
	rcv := newReceiver(t, func(delivery, int) (int, time.Duration) { return 503, 0 })
	res := run(t, Config{URL: rcv.srv.URL, Duration: 200 * time.Millisecond, Drain: 100 * time.Millisecond, Concurrency: 2,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	if res.Unfinished == 0 || res.GaveUp != 0 || res.Acknowledged != 0 || res.Unfinished != res.Sent {
		t.Fatalf("stats: %+v", res.Stats)
	}
}

func TestSeedReproducesEvents(t *testing.T) {
	ids := func(seed int64) []string {
		rcv := newReceiver(t, nil)
		res := run(t, Config{URL: rcv.srv.URL, Count: 30, Concurrency: 1, Conversations: 3, Seed: seed, KeepEvents: true})
		var out []string
		for _, e := range res.Events {
			out = append(out, e.EventID)
		}
		return out
	}
	a, b, c := ids(7), ids(7), ids(8)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatal("same seed, different events")
	}
	if a[0] == c[0] {
		t.Fatal("different seeds, same first event")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{URL: "127.0.0.1:8080", Count: 1},
		{URL: "http://x/", Count: 0},
		{URL: "http://x/", Count: 1, DuplicateRate: 2},
		{URL: "http://x/", Count: -1},
		{URL: "http://x/", Count: 1, BackoffMin: 2 * time.Second, BackoffMax: time.Second},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	within := func(got, want time.Duration) bool {
		return got >= want*93/100 && got <= want*107/100
	}
	if p := h.quantile(0.5); !within(p, 500*time.Millisecond) {
		t.Errorf("p50 %s", p)
	}
	if p := h.quantile(0.99); !within(p, 990*time.Millisecond) {
		t.Errorf("p99 %s", p)
	}
	if h.max != time.Second || h.quantile(1) > time.Second {
		t.Errorf("max %s, q1 %s", h.max, h.quantile(1))
	}
	for us := uint64(0); us < 1<<20; us += 7 {
		if b := bucketOf(us); lowerOf(b) > us || lowerOf(b+1) <= us {
			t.Fatalf("%dus in bucket %d [%d, %d)", us, b, lowerOf(b), lowerOf(b+1))
		}
	}
}

// A cancelled ctx (a signal) ends the run early, and the result says so.
func TestInterruptedRunSaysSo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rcv := newReceiver(t, func(_ delivery, n int) (int, time.Duration) { return 200, 0 })
	go func() {
		for len(rcv.deliveries()) < 20 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	res, err := Run(ctx, fast(Config{URL: rcv.srv.URL, Count: 1_000_000, Concurrency: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Sent >= 1_000_000 || !strings.Contains(res.Summary(), "INTERRUPTED after") {
		t.Fatalf("interrupted run: %v %+v\n%s", res.Interrupted, res.Stats, res.Summary())
	}
	if done := run(t, Config{URL: rcv.srv.URL, Count: 3}); done.Interrupted || strings.Contains(done.Summary(), "INTERRUPTED") {
		t.Fatalf("a run that reached its count is not interrupted:\n%s", done.Summary())
	}
}

// Most answers one telling status: the summary says what to check; a mix
// of answers gives no hint.
func TestHints(t *testing.T) {
	for status, want := range map[int]string{401: "--secret", 404: "--url", 413: "--max-body", 429: "--concurrency", 503: "--ack-timeout"} {
		rcv := newReceiver(t, func(delivery, int) (int, time.Duration) { return status, 0 })
		res := run(t, Config{URL: rcv.srv.URL, Count: 4, MaxAttempts: 2})
		if h := res.Hints(); len(h) != 1 || !strings.Contains(h[0], want) || !strings.Contains(res.Summary(), "hint:") {
			t.Errorf("all %d: hints %q, want one naming %s\n%s", status, h, want, res.Summary())
		}
	}
	// HMAC signing is --hmac-secret (hookline send), not a -H header.
	if a := StatusAdvice(401); !strings.Contains(a, "--hmac-secret") || strings.Contains(a, "HMAC verifiers") {
		t.Errorf("401 advice %q: want --hmac-secret for HMAC", a)
	}
	rcv := newReceiver(t, func(_ delivery, n int) (int, time.Duration) { return 200, 0 })
	if res := run(t, Config{URL: rcv.srv.URL, Count: 4}); len(res.Hints()) != 0 || strings.Contains(res.Summary(), "hint:") {
		t.Fatalf("hints for a clean run: %q", res.Hints())
	}
	if h := (Stats{Requests: 10, Status401: 5, Status404: 5, Status4xx: 10}).Hints(); len(h) != 0 {
		t.Fatalf("no status is most of the answers: %q", h)
	}
	rcv = newReceiver(t, func(delivery, int) (int, time.Duration) { return 401, 0 })
	if res := run(t, Config{URL: rcv.srv.URL, Count: 2, MaxAttempts: 1}); !strings.Contains(res.Summary(), "4xx 2 (401: 2)") {
		t.Fatalf("the answers line does not break 4xx down:\n%s", res.Summary())
	}
}
