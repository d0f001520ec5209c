package integration

// Helpers for the consumer and dedup tests: a recording HTTP sink standing in
// for the team's slow handler, event producers that write records the way the
// receiver does, and small waits on group offsets, group membership and
// /metrics.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/topics"
)

// sinkCall is one request the recording sink received.
type sinkCall struct {
	Path           string
	EventID        string // X-Hookline-Event-Id
	IdempotencyKey string // Idempotency-Key
	Attempt        int    // X-Hookline-Attempt
	Receipt        string
	Source         string
	ConversationID string
	ContentType    string
	Signature      string // X-Hub-Signature-256: a signature kept by the receiver
	Body           []byte
	Start, End     time.Time // arrival, and when the answer was written (zero: never)
	Status         int       // answered status; 0 when the client went away first
}

func (c sinkCall) ok() bool { return c.Status >= 200 && c.Status < 300 }

// sinkOptions script the sink. Zero values: answer 200 at once.
type sinkOptions struct {
	// Latency is how long the sink works on a request before answering.
	Latency func(c *sinkCall) time.Duration
	// Status returns the answer for the n-th request (0-based) carrying
	// eventID; 0 means 200.
	Status func(eventID string, n int) int
}

// sink is a recording HTTP handler: it records every request's headers,
// body, arrival and answer, checks that no two requests of one conversation
// overlap, and answers as scripted.
type sink struct {
	t   testing.TB
	srv *httptest.Server
	URL string
	opt sinkOptions

	mu          sync.Mutex
	calls       []*sinkCall
	perID       map[string]int
	active      map[string]int // in-flight requests per conversation
	overlaps    []string
	inFlight    int
	maxInFlight int
}

func newSink(t testing.TB, opt sinkOptions) *sink {
	t.Helper()
	s := &sink{t: t, opt: opt, perID: map[string]int{}, active: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
		if t.Failed() {
			t.Logf("sink received %d request(s):\n%s", len(s.snapshot()), s.describe(60))
		}
	})
	return s
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c := &sinkCall{
		Path:           r.URL.Path,
		EventID:        r.Header.Get("X-Hookline-Event-Id"),
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
		Receipt:        r.Header.Get("X-Hookline-Receipt"),
		Source:         r.Header.Get("X-Hookline-Source"),
		ConversationID: r.Header.Get("X-Hookline-Conversation-Id"),
		ContentType:    r.Header.Get("Content-Type"),
		Signature:      r.Header.Get("X-Hub-Signature-256"),
		Body:           body,
		Start:          time.Now(),
	}
	c.Attempt, _ = strconv.Atoi(r.Header.Get("X-Hookline-Attempt"))
	s.mu.Lock()
	n := s.perID[c.EventID]
	s.perID[c.EventID]++
	s.calls = append(s.calls, c)
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	if c.ConversationID != "" {
		if s.active[c.ConversationID] > 0 {
			s.overlaps = append(s.overlaps, fmt.Sprintf("conversation %s: event %s started while another of its events was in the handler", c.ConversationID, c.EventID))
		}
		s.active[c.ConversationID]++
	}
	s.mu.Unlock()

	status := http.StatusOK
	if s.opt.Status != nil {
		if st := s.opt.Status(c.EventID, n); st != 0 {
			status = st
		}
	}
	gone := false
	if s.opt.Latency != nil {
		if d := s.opt.Latency(c); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				gone = true
			}
		}
	}
	s.mu.Lock()
	s.inFlight--
	if c.ConversationID != "" {
		s.active[c.ConversationID]--
	}
	if !gone {
		c.Status, c.End = status, time.Now()
	}
	s.mu.Unlock()
	if !gone {
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"status":%d}`, status)
	}
}

// snapshot returns a copy of the calls so far, in arrival order.
func (s *sink) snapshot() []sinkCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sinkCall, len(s.calls))
	for i, c := range s.calls {
		out[i] = *c
	}
	return out
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// byID groups the calls by event id.
func (s *sink) byID() map[string][]sinkCall {
	out := map[string][]sinkCall{}
	for _, c := range s.snapshot() {
		out[c.EventID] = append(out[c.EventID], c)
	}
	return out
}

// okIDs returns the event ids answered with a 2xx, with how often.
func (s *sink) okIDs() map[string]int {
	out := map[string]int{}
	for _, c := range s.snapshot() {
		if c.ok() {
			out[c.EventID]++
		}
	}
	return out
}

func (s *sink) overlapErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.overlaps)
}

func (s *sink) peakInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// describe lists up to max calls for a failure message.
func (s *sink) describe(max int) string {
	var b strings.Builder
	for i, c := range s.snapshot() {
		if i == max {
			b.WriteString("  …\n")
			break
		}
		fmt.Fprintf(&b, "  %s %s event=%s conv=%s attempt=%d status=%d\n",
			c.Start.Format("15:04:05.000"), c.Path, shortID(c.EventID), c.ConversationID, c.Attempt, c.Status)
	}
	return b.String()
}

func shortID(id string) string {
	if len(id) > 16 {
		return id[:16] + "…"
	}
	return id
}

// waitFor polls cond every 50 ms until it holds; on timeout it fails with
// what and the description cond returns.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testEvent is one event of a conversation.
type testEvent struct {
	Conv string
	ID   string
	Seq  int
}

// produceEvents writes events to topic the way the receiver does (key =
// conversation id, value = the body, the every-record headers, acks=all via
// the default client) and returns the records with partition and offset.
func produceEvents(t testing.TB, topic string, evs []testEvent) []*kgo.Record {
	t.Helper()
	now := headers.FormatTime(time.Now())
	recs := make([]*kgo.Record, len(evs))
	for i, e := range evs {
		recs[i] = &kgo.Record{
			Topic: topic,
			Key:   []byte(e.Conv),
			Value: fmt.Appendf(nil, `{"topicName":"v2.detail.events.conversation.%s.test","eventBody":{"conversationId":%q,"seq":%d,"id":%q}}`, e.Conv, e.Conv, e.Seq, e.ID),
			Headers: []kgo.RecordHeader{
				{Key: headers.EventID, Value: []byte(e.ID)},
				{Key: headers.ReceiptID, Value: []byte("rcpt-" + e.ID)},
				{Key: headers.Source, Value: []byte("genesys")},
				{Key: headers.ReceivedAt, Value: []byte(now)},
				{Key: headers.ContentType, Value: []byte("application/json")},
				{Key: headers.ConversationID, Value: []byte(e.Conv)},
			},
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := client(t).ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d events to %s: %v", len(recs), topic, err)
	}
	return recs
}

// conversations builds convs × perConv events named <prefix>-c<i>-e<j>.
func conversations(prefix string, convs, perConv int) []testEvent {
	var evs []testEvent
	for j := 0; j < perConv; j++ {
		for i := 0; i < convs; i++ {
			conv := fmt.Sprintf("%s-c%03d", prefix, i)
			evs = append(evs, testEvent{Conv: conv, ID: fmt.Sprintf("%s-e%03d", conv, j), Seq: j})
		}
	}
	return evs
}

// bodySeq returns the "seq" of a body written by produceEvents.
func bodySeq(t testing.TB, body []byte) int {
	var v struct {
		EventBody struct {
			Seq int `json:"seq"`
		} `json:"eventBody"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("sink body %q: %v", body, err)
	}
	return v.EventBody.Seq
}

// pipelineConfig is the topics.Config the CLI derives from --base,
// --partitions, --retry-delays and --dedup-window.
func pipelineConfig(base string, partitions int32, delays []time.Duration, window time.Duration) topics.Config {
	return topics.Config{Base: base, Partitions: partitions, RetryDelays: delays, DedupWindow: window}
}

// delaysFlag formats delays for --retry-delays.
func delaysFlag(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

// committed returns the group's committed offsets on topic, per partition
// (partitions without a commit are absent).
func committed(t testing.TB, group, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	offs, err := admin(t).FetchOffsetsForTopics(ctx, group, topic)
	// A broker that just started may still be loading the offsets topic
	// (COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS): ask again.
	for kerr.IsRetriable(err) && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		offs, err = admin(t).FetchOffsetsForTopics(ctx, group, topic)
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{} // kfake: no commit yet
	}
	if err != nil {
		t.Fatalf("fetch offsets of group %s: %v", group, err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.Topic == topic && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// endsOf returns topic's end offsets per partition.
func endsOf(t testing.TB, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := admin(t).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func sumOffsets(m map[int32]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// waitCaughtUp waits until group has committed topic up to its end offsets:
// every record there is finished.
func waitCaughtUp(t testing.TB, group, topic string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "group "+group+" to commit "+topic+" to its end", func() (bool, string) {
		ends, got := endsOf(t, topic), committed(t, group, topic)
		for p, e := range ends {
			if e > 0 && got[p] != e {
				return false, fmt.Sprintf("end offsets %v, committed %v", ends, got)
			}
		}
		return true, ""
	})
}

// groupMember is one member of a consumer group as the coordinator sees it.
type groupMember struct {
	MemberID, ClientID string
	Parts              map[string][]int32 // assigned topic → partitions
}

// describeGroup returns the group's state and members.
func describeGroup(t testing.TB, group string) (string, []groupMember) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ds, err := admin(t).DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("describe group %s: %v", group, err)
	}
	d, ok := ds[group]
	if !ok || d.Err != nil {
		return "unknown", nil
	}
	var out []groupMember
	for _, m := range d.Members {
		gm := groupMember{MemberID: m.MemberID, ClientID: m.ClientID, Parts: map[string][]int32{}}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, tp := range a.Topics {
				ps := slices.Clone(tp.Partitions)
				slices.Sort(ps)
				gm.Parts[tp.Topic] = ps
			}
		}
		out = append(out, gm)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return d.State, out
}

// waitGroup waits until group is Stable with exactly the given client ids as
// members, each assigned at least one partition of topic, and returns the
// partitions of topic per client id.
func waitGroup(t testing.TB, group, topic string, timeout time.Duration, clientIDs ...string) map[string][]int32 {
	t.Helper()
	var owned map[string][]int32
	waitFor(t, timeout, fmt.Sprintf("group %s stable with members %v", group, clientIDs), func() (bool, string) {
		state, ms := describeGroup(t, group)
		desc := fmt.Sprintf("state %s, members %+v", state, ms)
		if state != "Stable" || len(ms) != len(clientIDs) {
			return false, desc
		}
		owned = map[string][]int32{}
		for _, m := range ms {
			if !slices.Contains(clientIDs, m.ClientID) || len(m.Parts[topic]) == 0 {
				return false, desc
			}
			owned[m.ClientID] = m.Parts[topic]
		}
		return len(owned) == len(clientIDs), desc
	})
	return owned
}

// evictGroupMembers removes every member of group with a LeaveGroup by member
// id (what AdminClient.removeMembersFromConsumerGroup does). The tests call
// it after SIGKILLing a group's only member: the coordinator would otherwise
// keep the dead member until its session times out (franz-go default 45 s,
// not configurable through the CLI), and the restarted process would wait
// that long in its first join. Nothing else about the restart changes: the
// committed offsets and the dedup topic are what the dead process left.
// HOOKLINE_IT_NO_EVICT=1 skips the eviction to watch the unassisted restart
// (the kill tests then take about 45 s longer).
func evictGroupMembers(t testing.TB, group string) {
	t.Helper()
	if os.Getenv("HOOKLINE_IT_NO_EVICT") != "" {
		t.Logf("HOOKLINE_IT_NO_EVICT set: the restarted process waits for the dead member's session to time out")
		return
	}
	_, ms := describeGroup(t, group)
	if len(ms) == 0 {
		return
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = group
	for _, m := range ms {
		lm := kmsg.NewLeaveGroupRequestMember()
		lm.MemberID = m.MemberID
		req.Members = append(req.Members, lm)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, client(t))
	if err != nil {
		t.Fatalf("leave group %s for the dead members: %v", group, err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("leave group %s: error code %d", group, resp.ErrorCode)
	}
}

// metricValue scrapes url (a /metrics endpoint) for the sample named name
// whose labels include every pair of labels ("k", "v", …); ok is false when
// there is none.
func metricValue(t testing.TB, url, name string, labels ...string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var total float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue // a longer metric name
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(rest, labels[i]+`="`+labels[i+1]+`"`) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		total += v
		found = true
	}
	return total, found
}

// hdr returns header k of r ("" when absent).
func recHeader(r *kgo.Record, k string) string { return headers.Value(r.Headers, k) }

// byEventID groups records by hookline-event-id (or by key for dedup records).
func byEventID(recs []*kgo.Record) map[string][]*kgo.Record {
	out := map[string][]*kgo.Record{}
	for _, r := range recs {
		id := recHeader(r, headers.EventID)
		if id == "" {
			id = string(r.Key)
		}
		out[id] = append(out[id], r)
	}
	return out
}

// startConsume starts `hookline consume` and waits until it says it is
// consuming. args follow the subcommand.
func startConsume(t testing.TB, args ...string) *process {
	t.Helper()
	p := startCLI(t, nil, append([]string{"consume"}, args...)...)
	p.waitOutput(`consuming 1 pipeline\(s\)`, 60*time.Second)
	return p
}
