package integration

// Issue 6 (dead letters: inspection and replay) through the hookline binary
// against the test broker.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/topics"
)

// dlqService is the team's service in the DLQ tests: until healthy, it
// answers 400 (permanent) to bodies marked "permanent" and 500 (retryable)
// to the rest; once healthy, 200 to everything, counting calls per event id.
type dlqService struct {
	healthy atomic.Bool
	url     string

	mu       sync.Mutex
	calls    map[string]int    // event id → calls while healthy
	attempts map[string]string // event id → X-Hookline-Attempt of the last healthy call
}

func newDlqService(t *testing.T) *dlqService {
	s := &dlqService{calls: map[string]int{}, attempts: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("X-Hookline-Event-Id")
		if !s.healthy.Load() {
			if strings.Contains(string(body), `"permanent"`) {
				http.Error(w, "unknown customer: will never work", http.StatusBadRequest)
				return
			}
			http.Error(w, "database unavailable", http.StatusInternalServerError)
			return
		}
		s.mu.Lock()
		s.calls[id]++
		s.attempts[id] = r.Header.Get("X-Hookline-Attempt")
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/process"
	return s
}

func (s *dlqService) snapshot() (map[string]int, map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	calls, attempts := map[string]int{}, map[string]string{}
	for k, v := range s.calls {
		calls[k] = v
	}
	for k, v := range s.attempts {
		attempts[k] = v
	}
	return calls, attempts
}

// dlqPost posts a webhook to the insecure default source and returns the
// event id from the answer; want is the expected status.
func dlqPost(t *testing.T, addr, body string, want int) string {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/webhooks/genesys", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("post: %d %s, want %d", resp.StatusCode, b, want)
	}
	var r struct {
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.EventID == "" {
		t.Fatalf("post: answer %s: %v", b, err)
	}
	return r.EventID
}

// dlqNotification is a Genesys notification for conversation conv; kind
// "permanent" makes the unhealthy service refuse it for good.
func dlqNotification(conv, kind string, n int) string {
	return fmt.Sprintf(`{"topicName":"v2.detail.events.conversation.%s.customer.start","version":"2",`+
		`"eventBody":{"eventTime":%d,"conversationId":%q,"participantId":"p-%d","kind":%q},`+
		`"metadata":{"CorrelationId":"corr-%s-%d"}}`, conv, time.Now().UnixMilli(), conv, n, kind, conv, n)
}

// dlqLs runs `dlq ls --json` with extra args and returns the objects.
func dlqLs(t *testing.T, base string, args ...string) []map[string]any {
	t.Helper()
	r := runCLI(t, nil, append([]string{"dlq", "ls", "--base", base, "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("dlq ls %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
	}
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("dlq ls --json line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// latestDedup returns the latest dedup value per event id ("" = tombstone).
func latestDedup(t *testing.T, topic string) map[string]string {
	out := map[string]string{}
	for _, r := range readAll(t, topic) {
		out[string(r.Key)] = string(r.Value)
	}
	return out
}

// allEnds returns the end offsets of every topic of a plan.
func allEnds(t *testing.T, names topics.Names) map[string]map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := admin(t).ListEndOffsets(ctx, names.All()...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	return out
}

func sameEnds(a, b map[string]map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for topic, ps := range a {
		if len(ps) != len(b[topic]) {
			return false
		}
		for p, o := range ps {
			if b[topic][p] != o {
				return false
			}
		}
	}
	return true
}

// TestDlqReplayExhaustedThroughPipeline runs the real pipeline (`hookline
// run`: receiver + consumer) against a failing service until the DLQ holds
// the three classes, inspects it with `dlq ls` and `dlq show`, then makes the
// service healthy and replays the exhausted events: each is handled once, the
// DLQ keeps the originals, and a second replay skips them as processed.
func TestDlqReplayExhaustedThroughPipeline(t *testing.T) {
	base := uniqueBase(t)
	plan, err := topics.NewPlan(topics.Config{Base: base, Partitions: 3, RetryDelays: []time.Duration{200 * time.Millisecond, 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	names := plan.Names
	t.Cleanup(func() { deleteTopics(names.All()...) })
	svc := newDlqService(t)
	addr := freeAddr(t)
	p := startCLI(t, nil, "run", "--base", base, "--partitions", "3", "--retry-delays", "200ms,200ms",
		"--insecure-no-auth", "--listen", addr, "--handler-url", svc.url, "--handler-timeout", "5s", "--log-level", "warn")
	p.waitOutput(`receiver listening on`, 90*time.Second)

	var exhausted, permanent []string
	for i := range 3 {
		exhausted = append(exhausted, dlqPost(t, addr, dlqNotification(fmt.Sprintf("conv-ex-%d", i), "flaky", i), http.StatusOK))
	}
	for i := range 2 {
		permanent = append(permanent, dlqPost(t, addr, dlqNotification(fmt.Sprintf("conv-pm-%d", i), "permanent", i), http.StatusOK))
	}
	malformed := dlqPost(t, addr, `{"not": "a genesys event"`, http.StatusAccepted)

	deadline := time.Now().Add(90 * time.Second)
	for endOffsets(t, names.DLQ) < 6 {
		if time.Now().After(deadline) {
			t.Fatalf("DLQ holds %d records after 90s, want 6", endOffsets(t, names.DLQ))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// dlq ls --error-class exhausted --json: exactly the exhausted ones.
	got := dlqLs(t, base, "--error-class", "exhausted")
	if len(got) != len(exhausted) {
		t.Fatalf("dlq ls --error-class exhausted: %d lines, want %d: %v", len(got), len(exhausted), got)
	}
	want := map[string]bool{}
	for _, id := range exhausted {
		want[id] = true
	}
	for _, m := range got {
		if !want[m["event_id"].(string)] || m["error_class"] != "exhausted" || m["attempts"] != float64(3) ||
			m["source"] != "genesys" || !strings.HasPrefix(m["conversation_id"].(string), "conv-ex-") {
			t.Errorf("unexpected line %v", m)
		}
		delete(want, m["event_id"].(string))
	}
	if all := dlqLs(t, base); len(all) != 6 {
		t.Fatalf("dlq ls: %d dead letters, want 6", len(all))
	}
	if pm := dlqLs(t, base, "--error-class", "permanent,malformed"); len(pm) != 3 {
		t.Fatalf("permanent+malformed: %v", pm)
	}
	table := runCLI(t, nil, "dlq", "ls", "--base", base)
	if table.code != 0 || !strings.Contains(table.stdout, "EVENT ID") || strings.Count(table.stdout, "\n") != 7 ||
		!strings.Contains(table.stdout, "500") || !strings.Contains(table.stderr, "6 dead letter(s)") {
		t.Fatalf("dlq ls table: exit %d\n%s%s", table.code, table.stdout, table.stderr)
	}

	// dlq show: headers, error and the indented payload.
	show := runCLI(t, nil, "dlq", "show", exhausted[0], "--base", base)
	for _, s := range []string{"hookline-event-id", exhausted[0], "hookline-error-class", "exhausted", "hookline-attempt",
		"error (exhausted after 3 attempt(s))", "500", "payload (application/json", "\n  \"eventBody\": {", "conv-ex-0"} {
		if !strings.Contains(show.stdout, s) {
			t.Errorf("dlq show lacks %q", s)
		}
	}
	if show.code != 0 || t.Failed() {
		t.Fatalf("dlq show: exit %d\n%s%s", show.code, show.stdout, show.stderr)
	}
	mf := dlqLs(t, base, "--event-id", malformed)
	if len(mf) != 1 || mf[0]["error_class"] != "malformed" {
		t.Fatalf("malformed: %v", mf)
	}
	pos := fmt.Sprintf("%v:%v", mf[0]["partition"], mf[0]["offset"])
	show = runCLI(t, nil, "dlq", "show", "--base", base, pos)
	if show.code != 0 || !strings.Contains(show.stdout, `{"not": "a genesys event"`) || !strings.Contains(show.stdout, "malformed") {
		t.Fatalf("dlq show %s: exit %d\n%s%s", pos, show.code, show.stdout, show.stderr)
	}

	// The service is fixed: replay what ran out of retries.
	svc.healthy.Store(true)
	dlqBefore := readAll(t, names.DLQ)
	r := runCLI(t, nil, "replay", "--base", base, "--error-class", "exhausted")
	if r.code != 0 || !strings.Contains(r.stdout, "matched 3, replayed 3, skipped 0") {
		t.Fatalf("replay: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Each exhausted event reaches the service, as a fresh first attempt,
	// and ends processed in the dedup state.
	deadline = time.Now().Add(60 * time.Second)
	for {
		calls, _ := svc.snapshot()
		dd := latestDedup(t, names.Dedup)
		done := 0
		for _, id := range exhausted {
			if calls[id] > 0 && strings.Contains(dd[id], `"processed"`) {
				done++
			}
		}
		if done == len(exhausted) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: calls %v, dedup %v", calls, dd)
		}
		time.Sleep(200 * time.Millisecond)
	}
	main := readAll(t, names.Base)
	var replayed int
	for _, rec := range main {
		if _, ok := headers.Get(rec.Headers, headers.ReplayedFrom); !ok {
			continue
		}
		replayed++
		from := headers.Value(rec.Headers, headers.ReplayedFrom)
		if !strings.HasPrefix(from, names.DLQ+"/"+strconv.Itoa(int(rec.Partition))+"/") || headers.Value(rec.Headers, headers.ReplayCount) != "1" {
			t.Errorf("replayed record in partition %d: replayed-from %q, count %q", rec.Partition, from, headers.Value(rec.Headers, headers.ReplayCount))
		}
		if _, ok := headers.Get(rec.Headers, headers.Attempt); ok {
			t.Errorf("replayed record keeps %s", headers.Attempt)
		}
	}
	if replayed != 3 {
		t.Fatalf("main topic holds %d replayed records, want 3", replayed)
	}

	// The DLQ is untouched.
	dlqAfter := readAll(t, names.DLQ)
	if len(dlqAfter) != len(dlqBefore) {
		t.Fatalf("DLQ holds %d records after the replay, %d before", len(dlqAfter), len(dlqBefore))
	}
	key := func(r *kgo.Record) string {
		return fmt.Sprintf("%d/%d/%s/%s", r.Partition, r.Offset, headers.Value(r.Headers, headers.EventID), r.Value)
	}
	seen := map[string]bool{}
	for _, rec := range dlqBefore {
		seen[key(rec)] = true
	}
	for _, rec := range dlqAfter {
		if !seen[key(rec)] {
			t.Errorf("DLQ record changed: %s", key(rec))
		}
	}

	// The same replay again: all three are processed, nothing is written.
	mainEnds := endOffsets(t, names.Base)
	r = runCLI(t, nil, "replay", "--base", base, "--error-class", "exhausted")
	if r.code != 0 || !strings.Contains(r.stdout, "matched 3, replayed 0, skipped 3 (3 already processed)") ||
		strings.Count(r.stdout, "already processed at") != 3 {
		t.Fatalf("second replay: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := endOffsets(t, names.Base); n != mainEnds {
		t.Fatalf("second replay wrote to %s: end offsets %d -> %d", names.Base, mainEnds, n)
	}

	calls, attempts := svc.snapshot()
	for _, id := range exhausted {
		if calls[id] != 1 || attempts[id] != "0" {
			t.Errorf("exhausted event %s: %d healthy calls (attempt %q), want 1 (attempt 0)", id, calls[id], attempts[id])
		}
	}
	for _, id := range append(permanent, malformed) {
		if calls[id] != 0 {
			t.Errorf("event %s was not replayed but reached the service %d times", id, calls[id])
		}
	}
}

// dlqFill writes n dead letters per class directly to <base>.dlq with the
// headers the consumer (or, for malformed, the receiver) writes, spread over
// the partitions; it returns them as written.
func dlqFill(t *testing.T, names topics.Names, partitions int32, n int, classes ...string) []*kgo.Record {
	t.Helper()
	cl := client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(100000))
	now := time.Now()
	var recs []*kgo.Record
	for _, class := range classes {
		for i := range n {
			id := fmt.Sprintf("%s-%04d", class, i)
			conv := fmt.Sprintf("conv-%s-%d", class, i%7)
			source := "genesys"
			if i%2 == 1 {
				source = "messaging"
			}
			var hs []kgo.RecordHeader
			add := func(k, v string) { hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
			add(headers.EventID, id)
			add(headers.ReceiptID, "rcpt-"+id)
			add(headers.Source, source)
			add(headers.ReceivedAt, headers.FormatTime(now.Add(-time.Hour)))
			add(headers.ContentType, "application/json")
			add(headers.ConversationID, conv)
			add(headers.Attempt, "3")
			add(headers.OriginalTopic, names.Base)
			add(headers.FirstFailedAt, headers.FormatTime(now.Add(-50*time.Minute)))
			add(headers.FailedAt, headers.FormatTime(now.Add(-time.Duration(n-i)*time.Minute)))
			add(headers.Error, "handler answered 500\nbody: database unavailable")
			add(headers.ErrorClass, class)
			recs = append(recs, &kgo.Record{
				Topic: names.DLQ, Partition: int32(i) % partitions, Key: []byte(conv),
				Value:   fmt.Appendf(nil, `{"eventBody":{"conversationId":%q,"n":%d}}`, conv, i),
				Headers: hs,
			})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestReplayNeedsScopeAndDryRunWritesNothing(t *testing.T) {
	base := uniqueBase(t)
	plan := createPipeline(t, topics.Config{Base: base, Partitions: 3})
	dlqFill(t, plan.Names, 3, 4, headers.ClassExhausted, headers.ClassPermanent, headers.ClassMalformed)
	before := allEnds(t, plan.Names)

	r := runCLI(t, nil, "replay", "--base", base)
	if r.code == 0 || !strings.Contains(r.stderr, "--all") {
		t.Fatalf("replay without a scope: exit %d, stderr must mention --all:\n%s", r.code, r.stderr)
	}
	// --all leaves the 4 malformed dead letters out, and says so.
	r = runCLI(t, nil, "replay", "--base", base, "--all", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "matched 8, would replay 8, would skip 0") ||
		!strings.Contains(r.stdout, "4 malformed dead letter(s) left out; select them with --error-class malformed") ||
		!strings.Contains(r.stdout, "nothing was written") || strings.Count(r.stdout, "\nreplay ") != 8 {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "replay", "--base", base, "--all", "--error-class", "malformed", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "matched 4, would replay 4") || strings.Contains(r.stdout, "left out") {
		t.Fatalf("dry run of the malformed ones: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "replay", "--base", base, "--error-class", "permanent", "--source", "messaging", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "matched 2, would replay 2") {
		t.Fatalf("filtered dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if after := allEnds(t, plan.Names); !sameEnds(before, after) {
		t.Fatalf("a dry run changed end offsets:\nbefore %v\nafter  %v", before, after)
	}

	// The filters of dlq ls through the binary.
	if got := dlqLs(t, base, "--conversation", "conv-exhausted-0"); len(got) != 1 {
		t.Errorf("--conversation: %v", got)
	}
	if got := dlqLs(t, base, "--since", "150s"); len(got) != 6 { // failed 4, 3, 2, 1 min ago per class: the last two of each
		t.Errorf("--since 150s: %d lines", len(got))
	}
	if got := dlqLs(t, base, "--until", "2026-01-01T00:00:00Z"); len(got) != 0 {
		t.Errorf("--until in the past: %d lines", len(got))
	}
	if got := dlqLs(t, base, "--limit", "5"); len(got) != 5 {
		t.Errorf("--limit 5: %d lines", len(got))
	}
	if r := runCLI(t, nil, "dlq", "ls", "--base", base, "--error-class", "exhaused"); r.code != 2 || !strings.Contains(r.stderr, "exhausted") {
		t.Errorf("a misspelt class: exit %d %s", r.code, r.stderr)
	}
	if r := runCLI(t, nil, "dlq", "show", "--base", base, "nope-nope"); r.code != 1 || !strings.Contains(r.stderr, "no dead letter") {
		t.Errorf("show of an unknown id: exit %d %s", r.code, r.stderr)
	}
}

// TestReplayRateLimited replays 500 dead letters at 50 per second: it takes
// at least 9 s, and every record lands in its partition of the main topic.
func TestReplayRateLimited(t *testing.T) {
	base := uniqueBase(t)
	plan := createPipeline(t, topics.Config{Base: base, Partitions: 3})
	recs := dlqFill(t, plan.Names, 3, 500, headers.ClassExhausted)
	start := time.Now()
	r := runCLI(t, nil, "replay", "--base", base, "--all", "--rate", "50")
	took := time.Since(start)
	if r.code != 0 || !strings.Contains(r.stdout, "matched 500, replayed 500, skipped 0") {
		t.Fatalf("replay: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if took < 9*time.Second {
		t.Fatalf("500 records at --rate 50 took %s, want at least 9s", took)
	}
	t.Logf("500 records at --rate 50 took %s", took)
	perPart := map[int32]int{}
	for _, rec := range recs {
		perPart[rec.Partition]++
	}
	got := readAll(t, plan.Names.Base)
	for _, rec := range got {
		perPart[rec.Partition]--
	}
	for p, n := range perPart {
		if n != 0 {
			t.Errorf("partition %d: %d records more in the DLQ than replayed to it", p, n)
		}
	}
	if len(got) != 500 {
		t.Fatalf("main topic holds %d records, want 500", len(got))
	}
}
