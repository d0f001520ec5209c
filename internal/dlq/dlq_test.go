package dlq

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookline/hookline/internal/headers"
)

func TestParsePositionAndTimeBound(t *testing.T) {
	p, err := ParsePosition("3:1200")
	if err != nil || p != (Position{3, 1200}) || p.String() != "3:1200" {
		t.Fatalf("ParsePosition: %v %v", p, err)
	}
	for _, bad := range []string{"3", "a:1", "1:-2", "-1:0", ":", "1:2:3"} {
		if _, err := ParsePosition(bad); err == nil {
			t.Errorf("ParsePosition(%q) accepted", bad)
		}
	}
	if !(Position{1, 9}).Less(Position{2, 0}) || (Position{2, 0}).Less(Position{1, 9}) || !(Position{2, 1}).Less(Position{2, 2}) {
		t.Error("Position.Less is not partition-major")
	}

	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Time{
		"2h":                          now.Add(-2 * time.Hour),
		"90m":                         now.Add(-90 * time.Minute),
		"3d":                          now.Add(-72 * time.Hour),
		"2026-02-28T10:00:00Z":        time.Date(2026, 2, 28, 10, 0, 0, 0, time.UTC),
		"2026-02-28T10:00:00.5+01:00": time.Date(2026, 2, 28, 9, 0, 0, 5e8, time.UTC),
		"2026-02-27":                  time.Date(2026, 2, 27, 0, 0, 0, 0, time.UTC),
	}
	for in, want := range cases {
		got, err := ParseTimeBound(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTimeBound(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-2h", "2026-13-01"} {
		if _, err := ParseTimeBound(bad, now); err == nil {
			t.Errorf("ParseTimeBound(%q) accepted", bad)
		}
	}
}

func TestFilterMatchAndValidate(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := Letter{EventID: "e1", Source: "genesys", ConversationID: "c1", ErrorClass: "exhausted", FailedAt: at}
	yes := []Filter{
		{},
		{ErrorClasses: []string{"permanent", "exhausted"}},
		{Sources: []string{"genesys"}, ConversationIDs: []string{"c1"}, EventIDs: []string{"e1"}},
		{Since: at, Until: at.Add(time.Second)},
	}
	no := []Filter{
		{ErrorClasses: []string{"malformed"}},
		{Sources: []string{"other"}},
		{ConversationIDs: []string{"c2"}},
		{EventIDs: []string{"e"}}, // exact, not prefix
		{Since: at.Add(time.Millisecond)},
		{Until: at}, // until is exclusive
	}
	for i, f := range yes {
		if !f.Match(&l) {
			t.Errorf("yes[%d] %v did not match", i, f)
		}
	}
	for i, f := range no {
		if f.Match(&l) {
			t.Errorf("no[%d] %v matched", i, f)
		}
	}
	// Without failed-at, the record timestamp counts.
	l2 := Letter{Timestamp: at}
	if !(Filter{Since: at}).Match(&l2) || (Filter{Since: at.Add(time.Second)}).Match(&l2) {
		t.Error("timestamp fallback")
	}
	if err := (Filter{ErrorClasses: []string{"exhaused"}}).Validate(); err == nil || !strings.Contains(err.Error(), "exhausted") {
		t.Errorf("a typo in the class must be refused, naming the classes: %v", err)
	}
	if err := (Filter{Since: at, Until: at}).Validate(); err == nil {
		t.Error("empty time range accepted")
	}
	if !(Filter{}).IsZero() || (Filter{Until: at}).IsZero() {
		t.Error("IsZero")
	}
}

func TestReplayRecordHeaders(t *testing.T) {
	e := &env{}
	e.names.Base, e.names.DLQ = "t.events", "t.events.dlq"
	r := e.record(dl{part: 4, id: "ev-1", conv: "conv-1", class: headers.ClassExhausted, attempt: 4, replays: 2})
	r.Offset = 99
	l := FromRecord(r)
	if l.Attempt != 4 || l.ReplayCount != 2 || l.ErrorLine() != "handler answered 500 Internal Server Error" {
		t.Fatalf("letter: %+v", l)
	}
	out := ReplayRecord(&l, "t.events", time.Time{})
	if out.Topic != "t.events" || out.Partition != 4 || string(out.Key) != "conv-1" || string(out.Value) != string(r.Value) {
		t.Fatalf("record: %+v", out)
	}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: headers.SignatureHeader, Value: []byte("X-Hub-Signature-256")},
		kgo.RecordHeader{Key: headers.Signature, Value: []byte("sha256=c2ln")})
	l = FromRecord(r)
	out = ReplayRecord(&l, "t.events", time.Time{})
	keep := []string{headers.EventID, headers.ReceiptID, headers.Source, headers.ReceivedAt, headers.ContentType, headers.ConversationID,
		headers.SignatureHeader, headers.Signature, "x-custom"}
	for _, k := range keep {
		if headers.Value(out.Headers, k) != headers.Value(r.Headers, k) {
			t.Errorf("header %s not kept", k)
		}
	}
	for _, k := range []string{headers.Attempt, headers.OriginalTopic, headers.OriginalPartition, headers.OriginalOffset,
		headers.OriginalTimestamp, headers.FirstFailedAt, headers.FailedAt, headers.Error, headers.ErrorClass,
		headers.ConsumerGroup, headers.DueAt} {
		if _, ok := headers.Get(out.Headers, k); ok {
			t.Errorf("header %s kept on a replay", k)
		}
	}
	if got := headers.Value(out.Headers, headers.ReplayedFrom); got != "t.events.dlq/4/99" {
		t.Errorf("replayed-from %q", got)
	}
	if got := headers.Value(out.Headers, headers.ReplayCount); got != "3" {
		t.Errorf("replay-count %q, want 3", got)
	}
	n := 0
	for _, h := range out.Headers {
		if h.Key == headers.ReplayedFrom || h.Key == headers.ReplayCount {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d replay headers, want one of each", n)
	}
	due := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if got := headers.Value(ReplayRecord(&l, "t.events.retry-1", due).Headers, headers.DueAt); got != "2026-03-01T12:00:00.000Z" {
		t.Errorf("due-at %q", got)
	}
}

func TestListFiltersAndOrder(t *testing.T) {
	e := newEnv(t, 3)
	base := time.Now().Add(-3 * time.Hour).Truncate(time.Millisecond)
	e.put(
		dl{part: 2, id: "ex-1", conv: "c1", class: "exhausted", attempt: 4, at: base.Add(30 * time.Minute)},
		dl{part: 0, id: "ex-2", conv: "c2", class: "exhausted", attempt: 4, at: base},
		dl{part: 1, id: "pm-1", conv: "c1", class: "permanent", attempt: 1, at: base.Add(2 * time.Hour), source: "crm"},
		dl{part: 1, id: "mf-1", class: "malformed", attempt: 0, at: base.Add(150 * time.Minute), body: "not json"},
	)
	ctx := context.Background()
	list := func(f Filter, limit int) ([]string, int) {
		t.Helper()
		ls, n, err := e.cl.List(ctx, e.names.DLQ, f, limit)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, l := range ls {
			if l.Value != nil || l.Headers != nil {
				t.Error("List keeps payloads")
			}
			ids = append(ids, l.EventID)
		}
		return ids, n
	}
	if ids, n := list(Filter{}, 0); !slices.Equal(ids, []string{"ex-2", "ex-1", "pm-1", "mf-1"}) || n != 4 {
		t.Errorf("all, by time: %v (%d)", ids, n)
	}
	if ids, _ := list(Filter{ErrorClasses: []string{"exhausted"}}, 0); !slices.Equal(ids, []string{"ex-2", "ex-1"}) {
		t.Errorf("exhausted: %v", ids)
	}
	if ids, _ := list(Filter{Sources: []string{"crm"}}, 0); !slices.Equal(ids, []string{"pm-1"}) {
		t.Errorf("source: %v", ids)
	}
	if ids, _ := list(Filter{ConversationIDs: []string{"c1"}}, 0); !slices.Equal(ids, []string{"ex-1", "pm-1"}) {
		t.Errorf("conversation: %v", ids)
	}
	if ids, _ := list(Filter{EventIDs: []string{"mf-1", "ex-1"}}, 0); !slices.Equal(ids, []string{"ex-1", "mf-1"}) {
		t.Errorf("event ids: %v", ids)
	}
	if ids, _ := list(Filter{Since: base.Add(time.Hour), Until: base.Add(150 * time.Minute)}, 0); !slices.Equal(ids, []string{"pm-1"}) {
		t.Errorf("time range: %v", ids)
	}
	if ids, n := list(Filter{}, 2); !slices.Equal(ids, []string{"ex-2", "ex-1"}) || n != 4 {
		t.Errorf("limit 2: %v of %d", ids, n)
	}
	ls, _, _ := e.cl.List(ctx, e.names.DLQ, Filter{EventIDs: []string{"ex-1"}}, 0)
	if l := ls[0]; l.Partition != 2 || l.Offset != 0 || l.Attempt != 4 || l.ConversationID != "c1" || l.Source != "genesys" ||
		!l.FailedAt.Equal(base.Add(30*time.Minute)) || string(l.Key) != "c1" {
		t.Errorf("letter fields: %+v", l)
	}
	if _, _, err := e.cl.List(ctx, "t.nope.dlq", Filter{}, 0); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing topic: %v", err)
	}
}

func TestFind(t *testing.T) {
	e := newEnv(t, 2)
	now := time.Now()
	e.put(
		dl{part: 1, id: "abcdef-111", conv: "c1", class: "exhausted", at: now.Add(-time.Hour)},
		dl{part: 1, id: "abcdef-222", conv: "c2", class: "permanent", at: now},
		dl{part: 1, id: "abcdef-111", conv: "c1", class: "permanent", at: now, replays: 1},
	)
	ctx := context.Background()
	ls, err := e.cl.Find(ctx, e.names.DLQ, "1:1")
	if err != nil || len(ls) != 1 || ls[0].EventID != "abcdef-222" || ls[0].Value == nil || len(ls[0].Headers) == 0 {
		t.Fatalf("by position: %+v %v", ls, err)
	}
	ls, err = e.cl.Find(ctx, e.names.DLQ, "abcdef-111")
	if err != nil || len(ls) != 2 || ls[0].ErrorClass != "exhausted" || ls[1].ReplayCount != 1 {
		t.Fatalf("by event id, both dead letters oldest first: %+v %v", ls, err)
	}
	if ls, err = e.cl.Find(ctx, e.names.DLQ, "abcdef-2"); err != nil || len(ls) != 1 || ls[0].EventID != "abcdef-222" {
		t.Fatalf("by prefix: %+v %v", ls, err)
	}
	if _, err = e.cl.Find(ctx, e.names.DLQ, "abcdef"); err == nil || !strings.Contains(err.Error(), "abcdef-111, abcdef-222") {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	for ref, want := range map[string]string{"1:3": "offsets 0..2", "0:0": "no records", "5:0": "2 partitions", "nope": "no dead letter"} {
		if _, err := e.cl.Find(ctx, e.names.DLQ, ref); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Find(%q): %v, want %q", ref, err, want)
		}
	}
}

func TestReplayToMainKeepsKeyPartitionAndDLQ(t *testing.T) {
	e := newEnv(t, 3)
	now := time.Now()
	e.put(
		dl{part: 2, id: "ex-1", conv: "c1", class: "exhausted", attempt: 4, at: now.Add(-3 * time.Minute)},
		dl{part: 0, id: "ex-2", conv: "c2", class: "exhausted", attempt: 4, at: now.Add(-2 * time.Minute)},
		dl{part: 2, id: "pm-1", conv: "c1", class: "permanent", attempt: 1, at: now.Add(-time.Minute)},
		dl{part: 2, id: "ex-3", conv: "c1", class: "exhausted", attempt: 4, at: now, replays: 1},
	)
	dlqBefore := e.ends(e.names.DLQ)
	var plan Plan
	res, steps, err := e.replay(ReplayConfig{Filter: Filter{ErrorClasses: []string{"exhausted"}}, OnPlan: func(p Plan) { plan = p }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Matched != 3 || res.Selected != 3 || res.Replayed != 3 || res.Skipped() != 0 || res.Stopped != nil || plan != res.Plan {
		t.Fatalf("result %+v plan %+v", res, plan)
	}
	if len(steps) != 3 || steps[2].Done != 3 || steps[2].Total != 3 {
		t.Fatalf("steps %+v", steps)
	}
	got := e.read(e.names.Base)
	// Partition-major: partition 0, then partition 2 in offset order.
	if ids := eventIDs(got); !slices.Equal(ids, []string{"ex-2", "ex-1", "ex-3"}) {
		t.Fatalf("main topic holds %v", ids)
	}
	want := map[string]struct {
		part  int32
		from  string
		count string
	}{
		"ex-2": {0, e.names.DLQ + "/0/0", "1"},
		"ex-1": {2, e.names.DLQ + "/2/0", "1"},
		"ex-3": {2, e.names.DLQ + "/2/2", "2"},
	}
	for _, r := range got {
		id := headers.Value(r.Headers, headers.EventID)
		w := want[id]
		if r.Partition != w.part || headers.Value(r.Headers, headers.ReplayedFrom) != w.from || headers.Value(r.Headers, headers.ReplayCount) != w.count {
			t.Errorf("%s: partition %d, headers %v", id, r.Partition, r.Headers)
		}
		if _, ok := headers.Get(r.Headers, headers.Attempt); ok {
			t.Errorf("%s: attempt header kept", id)
		}
		if string(r.Key) != headers.Value(r.Headers, headers.ConversationID) {
			t.Errorf("%s: key %q", id, r.Key)
		}
	}
	if after := e.ends(e.names.DLQ); !mapsEqual(after, dlqBefore) {
		t.Fatalf("the DLQ changed: %v -> %v", dlqBefore, after)
	}
	// A retry tier as target: due now.
	res, _, err = e.replay(ReplayConfig{To: e.names.Retry(1), DueAt: true, Force: true, Filter: Filter{EventIDs: []string{"pm-1"}}})
	if err != nil || res.Replayed != 1 {
		t.Fatalf("to retry-1: %+v %v", res, err)
	}
	r1 := e.read(e.names.Retry(1))
	if len(r1) != 1 || r1[0].Partition != 2 {
		t.Fatalf("retry-1: %v", r1)
	}
	if due, err := headers.ParseTime(headers.Value(r1[0].Headers, headers.DueAt)); err != nil || time.Since(due) > time.Minute {
		t.Errorf("due-at %v %v", due, err)
	}
	if _, _, err := e.replay(ReplayConfig{To: e.names.DLQ, Force: true}); err == nil {
		t.Error("replaying into the DLQ must be refused")
	}
}

func mapsEqual(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestReplaySkipsProcessedUnlessForced(t *testing.T) {
	e := newEnv(t, 2)
	now := time.Now()
	e.put(
		dl{part: 0, id: "processed", conv: "c1", class: "exhausted"},
		dl{part: 0, id: "dead", conv: "c1", class: "exhausted"},
		dl{part: 1, id: "expired", conv: "c2", class: "exhausted"},
		dl{part: 1, id: "failed-again", conv: "c2", class: "exhausted"},
		dl{part: 1, id: "never", conv: "c2", class: "exhausted"},
		dl{part: 1, id: "other-part", conv: "c2", class: "exhausted"},
	)
	e.dedup(0, "dead", "dead-lettered", now)
	e.dedup(0, "processed", "dead-lettered", now.Add(-time.Hour))
	e.dedup(0, "processed", "processed", now.Add(-time.Minute))
	e.dedup(1, "expired", "processed", now.Add(-time.Hour))
	e.dedup(1, "expired", "", time.Time{}) // tombstone
	e.dedup(1, "failed-again", "processed", now.Add(-time.Hour))
	e.dedup(1, "failed-again", "dead-lettered", now)
	e.dedup(0, "other-part", "processed", now) // another partition: not this event's state

	res, steps, err := e.replay(ReplayConfig{Filter: Filter{ErrorClasses: []string{"exhausted"}}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 5 || res.SkippedProcessed != 1 {
		t.Fatalf("dry run: %+v", res)
	}
	var skipped []string
	for _, s := range steps {
		if s.Action == SkippedProcessed {
			skipped = append(skipped, s.Letter.EventID)
			if time.Since(s.ProcessedAt) > 2*time.Minute {
				t.Errorf("processed at %v", s.ProcessedAt)
			}
		}
	}
	if !slices.Equal(skipped, []string{"processed"}) {
		t.Fatalf("skipped %v", skipped)
	}
	if n := len(e.read(e.names.Base)); n != 0 {
		t.Fatalf("dry run wrote %d records", n)
	}
	res, _, err = e.replay(ReplayConfig{Filter: Filter{ErrorClasses: []string{"exhausted"}}})
	if err != nil || res.Replayed != 5 || res.SkippedProcessed != 1 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	if ids := eventIDs(e.read(e.names.Base)); slices.Contains(ids, "processed") || len(ids) != 5 {
		t.Fatalf("main: %v", ids)
	}
	res, _, err = e.replay(ReplayConfig{Filter: Filter{EventIDs: []string{"processed"}}, Force: true})
	if err != nil || res.Replayed != 1 || res.SkippedProcessed != 0 {
		t.Fatalf("forced: %+v %v", res, err)
	}
}

func TestReplaySameEventOnceAndDryRun(t *testing.T) {
	e := newEnv(t, 1)
	e.put(
		dl{id: "twice", conv: "c1", class: "exhausted"},
		dl{id: "other", conv: "c1", class: "permanent"},
		dl{id: "twice", conv: "c1", class: "permanent", replays: 1},
	)
	before := e.ends(e.names.Base)
	res, steps, err := e.replay(ReplayConfig{DryRun: true})
	if err != nil || res.Replayed != 2 || res.SkippedDuplicate != 1 {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	// The newest dead letter of "twice" (0:2) is the one replayed.
	if steps[0].Action != SkippedDuplicate || steps[0].Pos != (Position{0, 0}) || steps[2].Action != WouldReplay {
		t.Fatalf("steps %+v", steps)
	}
	if after := e.ends(e.names.Base); !mapsEqual(after, before) {
		t.Fatalf("dry run wrote to %s: %v -> %v", e.names.Base, before, after)
	}
	res, _, err = e.replay(ReplayConfig{})
	if err != nil || res.Replayed != 2 || res.SkippedDuplicate != 1 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	if ids := eventIDs(e.read(e.names.Base)); !slices.Equal(ids, []string{"other", "twice"}) {
		t.Fatalf("main: %v", ids)
	}
}

// An event that fails again after a replay gets a newer dead letter: the
// next replay uses it, so hookline-replay-count goes 1, 2, 3 and
// hookline-replayed-from points at the latest failure, as dlq show --raw
// picks it. Older dead letters of the event are reported as duplicates,
// also in a limited or resumed replay.
func TestReplayUsesNewestDeadLetterOfAnEvent(t *testing.T) {
	e := newEnv(t, 1)
	start := time.Now().Add(-time.Hour)
	e.put(dl{id: "ev", conv: "c", class: "exhausted", at: start})
	for n := 1; n <= 3; n++ {
		res, steps, err := e.replay(ReplayConfig{Filter: Filter{EventIDs: []string{"ev"}}})
		if err != nil || res.Replayed != 1 || res.SkippedDuplicate != n-1 {
			t.Fatalf("replay %d: %+v %v", n, res, err)
		}
		main := e.read(e.names.Base)
		last := main[len(main)-1]
		newest := int64(n - 1) // the dead letter written after replay n-1
		if got := headers.Value(last.Headers, headers.ReplayCount); got != strconv.Itoa(n) {
			t.Errorf("replay %d: hookline-replay-count %s, want %d", n, got, n)
		}
		if got, want := headers.Value(last.Headers, headers.ReplayedFrom), ReplayedFrom(e.names.DLQ, 0, newest); got != want {
			t.Errorf("replay %d: hookline-replayed-from %s, want %s", n, got, want)
		}
		if s := steps[len(steps)-1]; s.Action != Replayed || s.Pos.Offset != newest {
			t.Errorf("replay %d: last step %s %s", n, s.Action, s.Pos)
		}
		// The consumer fails it again: a newer dead letter, count n.
		e.put(dl{id: "ev", conv: "c", class: "permanent", at: start.Add(time.Duration(n) * time.Minute), replays: n})
	}
	// --limit 1 and --resume-from pick the newest too.
	res, steps, err := e.replay(ReplayConfig{Limit: 1, DryRun: true})
	if err != nil || res.Replayed != 1 || steps[len(steps)-1].Pos.Offset != 3 {
		t.Fatalf("limit 1: %+v %+v %v", res, steps, err)
	}
	res, steps, err = e.replay(ReplayConfig{ResumeFrom: &Position{0, 2}, DryRun: true})
	if err != nil || res.Replayed != 1 || res.SkippedDuplicate != 1 || steps[1].Pos.Offset != 3 || steps[1].Action != WouldReplay {
		t.Fatalf("resume from 0:2: %+v %+v %v", res, steps, err)
	}
	// A partition the topic does not have (a typo, another pipeline's
	// position) is an error, not a replay that quietly skips everything.
	_, _, err = e.replay(ReplayConfig{ResumeFrom: &Position{7, 3}})
	if err == nil || !strings.Contains(err.Error(), "there is no partition 7") {
		t.Fatalf("resume from 7:3 on a 1-partition topic: %v, want an error naming partition 7", err)
	}
}

func TestReplayLimitAndResume(t *testing.T) {
	e := newEnv(t, 2)
	now := time.Now()
	// Oldest first by failed-at: a3 (p1), a1 (p0), a2 (p0), a4 (p1).
	e.put(
		dl{part: 0, id: "a1", conv: "c", class: "exhausted", at: now.Add(-3 * time.Minute)},
		dl{part: 0, id: "a2", conv: "c", class: "exhausted", at: now.Add(-2 * time.Minute)},
		dl{part: 1, id: "a3", conv: "d", class: "exhausted", at: now.Add(-4 * time.Minute)},
		dl{part: 1, id: "a4", conv: "d", class: "exhausted", at: now.Add(-1 * time.Minute)},
	)
	res, steps, err := e.replay(ReplayConfig{Limit: 2, DryRun: true})
	if err != nil || res.Matched != 4 || res.Selected != 2 || res.Replayed != 2 {
		t.Fatalf("limit: %+v %v", res, err)
	}
	var ids []string
	for _, s := range steps {
		ids = append(ids, s.Letter.EventID)
	}
	if !slices.Equal(ids, []string{"a1", "a3"}) { // the two oldest, replayed partition-major
		t.Fatalf("limit 2 replays %v", ids)
	}
	// Skipped dead letters do not count: with a3 processed, the limit of 2
	// reaches a2.
	e.dedup(1, "a3", "processed", now)
	res, steps, err = e.replay(ReplayConfig{Limit: 2})
	ids = nil
	for _, s := range steps {
		ids = append(ids, s.Action.String()+" "+s.Letter.EventID)
	}
	if err != nil || res.Selected != 3 || res.Replayed != 2 || res.SkippedProcessed != 1 ||
		!slices.Equal(ids, []string{"replayed a1", "replayed a2", "skipped: already processed a3"}) {
		t.Fatalf("limit 2 with a3 processed: %+v %v %v", res, ids, err)
	}
	res, steps, err = e.replay(ReplayConfig{ResumeFrom: &Position{0, 1}, DryRun: true, Force: true})
	ids = nil
	for _, s := range steps {
		ids = append(ids, s.Letter.EventID)
	}
	if err != nil || res.Matched != 4 || res.Selected != 3 || !slices.Equal(ids, []string{"a2", "a3", "a4"}) {
		t.Fatalf("resume from 0:1: %+v %v %v", res, ids, err)
	}
}

func TestReplayRate(t *testing.T) {
	e := newEnv(t, 2)
	var ds []dl
	for i := range 20 {
		ds = append(ds, dl{part: int32(i % 2), id: "r" + string(rune('a'+i)), conv: "c", class: "exhausted"})
	}
	e.put(ds...)
	start := time.Now()
	res, _, err := e.replay(ReplayConfig{Rate: 100})
	took := time.Since(start)
	if err != nil || res.Replayed != 20 {
		t.Fatalf("%+v %v", res, err)
	}
	if took < 190*time.Millisecond {
		t.Fatalf("20 records at 100/s took %s, want ≥ 190ms", took)
	}
	if n := len(e.read(e.names.Base)); n != 20 {
		t.Fatalf("main holds %d", n)
	}
}

// TestReplayPartialFailureAndResume makes the broker reject the writes to
// partition 1: the replay stops, says where, and a resumed replay finishes
// without writing anything twice beyond the records it reported.
func TestReplayPartialFailureAndResume(t *testing.T) {
	e := newEnv(t, 3)
	var ds []dl
	for p := range int32(3) {
		for i := range 5 {
			ds = append(ds, dl{part: p, id: string(rune('a'+p)) + string(rune('0'+i)), conv: "c", class: "exhausted"})
		}
	}
	e.put(ds...)
	var failing atomic.Bool
	failing.Store(true)
	e.cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		r := req.(*kmsg.ProduceRequest)
		hit := false
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				hit = hit || p.Partition == 1
			}
		}
		if !failing.Load() || !hit {
			return nil, nil, false
		}
		return refusal(r), nil, true
	})
	res, steps, err := e.replay(ReplayConfig{})
	if err == nil || res.Stopped == nil {
		t.Fatalf("want a partial failure: %+v %v", res, err)
	}
	// Progress counts what finished: a failed write is not done, so the
	// last progress agrees with the summary's count.
	if last := steps[len(steps)-1]; last.Done != res.Replayed+res.Skipped() {
		t.Errorf("last step %s: done %d, but %d replayed and %d skipped", last.Action, last.Done, res.Replayed, res.Skipped())
	}
	if !strings.Contains(err.Error(), "write to "+e.names.Base+" failed") {
		t.Errorf("error: %v", err)
	}
	stop := *res.Stopped
	t.Logf("stopped at %s (%d replayed, %d after the stop): %v", stop, res.Replayed, res.ReplayedAfterStop, err)
	// Partitions are finished one after the other: partition 0 is done,
	// partition 2 never started.
	if stop != (Position{1, 0}) || res.Replayed != 5 || res.ReplayedAfterStop != 0 {
		t.Fatalf("stopped at %s with %d replayed (%d after the stop), want 1:0 with 5", stop, res.Replayed, res.ReplayedAfterStop)
	}
	// Everything before the stop position is in the main topic.
	written := map[string]int{}
	for _, r := range e.read(e.names.Base) {
		written[headers.Value(r.Headers, headers.ReplayedFrom)]++
	}
	dlq := e.read(e.names.DLQ)
	for _, r := range dlq {
		pos := Position{r.Partition, r.Offset}
		if pos.Less(stop) && written[ReplayedFrom(r.Topic, r.Partition, r.Offset)] != 1 {
			t.Errorf("%s is before the stop %s but not replayed", pos, stop)
		}
	}
	failing.Store(false)
	res2, _, err := e.replay(ReplayConfig{ResumeFrom: &stop})
	if err != nil || res2.Stopped != nil {
		t.Fatalf("resume: %+v %v", res2, err)
	}
	written = map[string]int{}
	total := 0
	for _, r := range e.read(e.names.Base) {
		written[headers.Value(r.Headers, headers.ReplayedFrom)]++
		total++
	}
	for _, r := range dlq {
		if written[ReplayedFrom(r.Topic, r.Partition, r.Offset)] == 0 {
			t.Errorf("%d:%d never replayed", r.Partition, r.Offset)
		}
	}
	if total != len(dlq)+res.ReplayedAfterStop {
		t.Fatalf("main holds %d records, want %d + %d replayed after the stop", total, len(dlq), res.ReplayedAfterStop)
	}
}

func TestReplayInterrupted(t *testing.T) {
	e := newEnv(t, 1)
	var ds []dl
	for i := range 10 {
		ds = append(ds, dl{id: "i" + string(rune('0'+i)), conv: "c", class: "exhausted"})
	}
	e.put(ds...)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	res, err := e.cl.Replay(ctx, ReplayConfig{DLQ: e.names.DLQ, Dedup: e.names.Dedup, To: e.names.Base, Rate: 20,
		OnStep: func(s Step) {
			if n++; n == 3 {
				cancel()
			}
		}})
	if err == nil || res.Stopped == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("%+v %v", res, err)
	}
	if res.Stopped.Offset < 3 || res.Stopped.Offset > 4 {
		t.Fatalf("stopped at %s after 3 acknowledged", res.Stopped)
	}
	if got := len(e.read(e.names.Base)); int64(got) != res.Stopped.Offset+int64(res.ReplayedAfterStop) {
		t.Fatalf("main holds %d, stopped at %s", got, res.Stopped)
	}
}

// Replay's --event-id takes what dlq show takes: an id, an unambiguous
// prefix of MinPrefix+ characters, or a table cell with its ellipsis.
func TestReplayEventIDPrefix(t *testing.T) {
	e := newEnv(t, 1)
	e.put(
		dl{id: "9c1d0b7e4f2a-111", class: "exhausted"},
		dl{id: "9c1d0b7e4f2a-222", class: "exhausted"},
		dl{id: "77aa00", class: "exhausted"},
		dl{id: "77aa00-longer", class: "permanent"},
	)
	for _, c := range []struct {
		refs []string
		want []string
	}{
		{[]string{"9c1d0b7e4f2a-111"}, []string{"9c1d0b7e4f2a-111"}},
		{[]string{"9c1d0b7e4f2a-2"}, []string{"9c1d0b7e4f2a-222"}},
		{[]string{"9c1d0b7e4f2a-2…"}, []string{"9c1d0b7e4f2a-222"}},     // copied from the table
		{[]string{" 9c1d0b7e4f2a-2... "}, []string{"9c1d0b7e4f2a-222"}}, // ASCII ellipsis
		{[]string{"77aa00"}, []string{"77aa00"}},                        // an exact id wins over the ids it prefixes
		{[]string{"9c1d0b7e4f2a-1", "77aa00-l"}, []string{"9c1d0b7e4f2a-111", "77aa00-longer"}},
		{[]string{"9c1d0"}, nil}, // too short for a prefix: exact only
	} {
		res, steps, err := e.replay(ReplayConfig{DryRun: true, Filter: Filter{EventIDs: c.refs}})
		var got []string
		for _, s := range steps {
			got = append(got, s.Letter.EventID)
		}
		if err != nil || res.Matched != len(c.want) || !slices.Equal(got, c.want) {
			t.Errorf("--event-id %q: matched %d %v (%v); want %v", c.refs, res.Matched, got, err, c.want)
		}
	}
	_, steps, err := e.replay(ReplayConfig{DryRun: true, Filter: Filter{EventIDs: []string{"9c1d0b7e4f2a"}}})
	if err == nil || len(steps) != 0 || !strings.Contains(err.Error(), "9c1d0b7e4f2a-111, 9c1d0b7e4f2a-222") {
		t.Fatalf("an ambiguous prefix must be refused, naming the ids, before anything is replayed: %v %v", steps, err)
	}
	if err := (Filter{EventIDs: []string{"…"}}).Validate(); err == nil {
		t.Error("an event id that is only an ellipsis was accepted")
	}
	// An exact id stays exact when another filter drops it: it must not be
	// read as the prefix of a longer id that passes the filter.
	res, steps, err := e.replay(ReplayConfig{DryRun: true, Filter: Filter{EventIDs: []string{"77aa00"}, ErrorClasses: []string{"permanent"}}})
	if err != nil || res.Matched != 0 || len(steps) != 0 {
		t.Fatalf("--event-id 77aa00 --error-class permanent: matched %d, %d steps (%v); want nothing", res.Matched, len(steps), err)
	}
}

// dlq ls --event-id takes what dlq show takes: an id, or a prefix of 6+
// characters, maybe copied from the table with its ellipsis. Listing only
// reads, so a prefix may match several events.
func TestListTakesEventIDPrefixes(t *testing.T) {
	e := newEnv(t, 1)
	e.put(dl{id: "abcdef-111", class: "exhausted"}, dl{id: "abcdef-222", class: "exhausted"}, dl{id: "other-event", class: "exhausted"},
		dl{id: "abcdef-1111", class: "exhausted"})
	for _, c := range []struct {
		refs []string
		want []string
	}{
		{[]string{"abcdef-111"}, []string{"abcdef-111"}}, // an exact id lists that id, not the longer ones
		{[]string{"abcdef-1…"}, []string{"abcdef-111", "abcdef-1111"}},
		{[]string{"abcdef"}, []string{"abcdef-111", "abcdef-222", "abcdef-1111"}},
		{[]string{"abc"}, nil}, // too short for a prefix: exact only
	} {
		ls, _, err := e.cl.List(context.Background(), e.names.DLQ, Filter{EventIDs: c.refs}, 0)
		var got []string
		for _, l := range ls {
			got = append(got, l.EventID)
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("--event-id %q: %v (%v), want %v", c.refs, got, err, c.want)
		}
	}
}

// holdProduce makes the broker hold every produce request that writes to
// partition part while hold is set, until release is closed, and then drop
// it: the writes are never acknowledged, and the client hears nothing back
// while the replay waits.
func (e *env) holdProduce(part int32, hold *atomic.Bool, release <-chan struct{}) {
	e.cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		hit := false
		for _, t := range req.(*kmsg.ProduceRequest).Topics {
			for _, p := range t.Partitions {
				hit = hit || p.Partition == part
			}
		}
		if !hold.Load() || !hit {
			return nil, nil, false
		}
		e.cluster.SleepControl(func() { <-release })
		return nil, errors.New("held write dropped"), true
	})
}

// TestReplayStopIsNeverPastAnUnacknowledgedWrite: the broker never answers
// the writes of partition 1. The replay must not go on as if they were
// written: it stops at the first of them (not at a position after them),
// reports nothing after it returned, and a replay resumed from the printed
// position writes every dead letter exactly once overall.
func TestReplayStopIsNeverPastAnUnacknowledgedWrite(t *testing.T) {
	e := newEnv(t, 3)
	var ds []dl
	for p := range int32(3) {
		for i := range 5 {
			ds = append(ds, dl{part: p, id: string(rune('a'+p)) + string(rune('0'+i)), conv: "c", class: "exhausted"})
		}
	}
	e.put(ds...)
	var hold atomic.Bool
	hold.Store(true)
	release := make(chan struct{})
	defer close(release)
	e.holdProduce(1, &hold, release)

	var mu sync.Mutex
	var steps []Step
	returned := false
	cfg := ReplayConfig{DLQ: e.names.DLQ, Dedup: e.names.Dedup, To: e.names.Base, DeliveryTimeout: time.Second,
		OnStep: func(s Step) {
			mu.Lock()
			defer mu.Unlock()
			if returned {
				t.Errorf("step %s %s reported after Replay returned", s.Action, s.Pos)
			}
			steps = append(steps, s)
		}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := e.cl.Replay(ctx, cfg)
	mu.Lock()
	returned = true
	mu.Unlock()
	if err == nil || res.Stopped == nil {
		t.Fatalf("want a stop: %+v %v", res, err)
	}
	t.Logf("stopped at %s, %d replayed (%d after the stop): %v", res.Stopped, res.Replayed, res.ReplayedAfterStop, err)
	if *res.Stopped != (Position{1, 0}) || res.Replayed != 5 || res.ReplayedAfterStop != 0 {
		t.Fatalf("stopped at %s with %d replayed (%d after the stop); want 1:0, the first unacknowledged write, with 5", res.Stopped, res.Replayed, res.ReplayedAfterStop)
	}
	if !strings.Contains(err.Error(), "did not acknowledge") {
		t.Errorf("error does not say the broker did not answer: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // a late callback would report now
	mu.Lock()
	for i := 1; i < len(steps); i++ {
		if !steps[i-1].Pos.Less(steps[i].Pos) {
			t.Errorf("steps out of DLQ order: %s before %s", steps[i-1].Pos, steps[i].Pos)
		}
	}
	mu.Unlock()

	hold.Store(false)
	stop := *res.Stopped
	res2, _, err := e.replay(ReplayConfig{ResumeFrom: &stop})
	if err != nil || res2.Stopped != nil || res2.Replayed != 10 {
		t.Fatalf("resume from %s: %+v %v", stop, res2, err)
	}
	written := map[string]int{}
	for _, r := range e.read(e.names.Base) {
		written[headers.Value(r.Headers, headers.ReplayedFrom)]++
	}
	for _, r := range e.read(e.names.DLQ) {
		if n := written[ReplayedFrom(r.Topic, r.Partition, r.Offset)]; n != 1 {
			t.Errorf("%d:%d replayed %d times overall, want once", r.Partition, r.Offset, n)
		}
	}
}

// Skips are known at once, writes only when the broker answers: steps are
// still reported in DLQ order (replay --verbose prints them as they come).
func TestReplayReportsStepsInDLQOrder(t *testing.T) {
	e := newEnv(t, 1)
	e.put(
		dl{id: "w1", conv: "c", class: "exhausted"},
		dl{id: "p1", conv: "c", class: "exhausted"},
		dl{id: "w2", conv: "c", class: "exhausted"},
		dl{id: "p2", conv: "c", class: "exhausted"},
	)
	e.dedup(0, "p1", "processed", time.Now())
	e.dedup(0, "p2", "processed", time.Now())
	e.cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		e.cluster.SleepControl(func() { time.Sleep(100 * time.Millisecond) }) // a slow acknowledgement
		return nil, nil, false
	})
	res, steps, err := e.replay(ReplayConfig{})
	if err != nil || res.Replayed != 2 || res.SkippedProcessed != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	var got []string
	for i, s := range steps {
		got = append(got, s.Pos.String()+" "+s.Action.String())
		if s.Done != i+1 {
			t.Errorf("step %d says done %d", i, s.Done)
		}
	}
	want := []string{"0:0 replayed", "0:1 skipped: already processed", "0:2 replayed", "0:3 skipped: already processed"}
	if !slices.Equal(got, want) {
		t.Fatalf("steps %q, want %q", got, want)
	}
}

// A malformed dead letter holds a body the receiver could not parse: a
// replay hands it to the handler only when the filter names the class.
func TestReplayLeavesOutMalformedUnlessNamed(t *testing.T) {
	e := newEnv(t, 1)
	e.put(
		dl{id: "ex-1", conv: "c", class: "exhausted"},
		dl{id: "mf-1", class: "malformed", body: "not json"},
		dl{id: "pm-1", conv: "c", class: "permanent"},
	)
	res, steps, err := e.replay(ReplayConfig{DryRun: true}) // --all
	var ids []string
	for _, s := range steps {
		ids = append(ids, s.Letter.EventID)
	}
	if err != nil || res.Matched != 2 || res.LeftOutMalformed != 1 || !slices.Equal(ids, []string{"ex-1", "pm-1"}) {
		t.Fatalf("all: %+v %v %v", res, ids, err)
	}
	res, _, err = e.replay(ReplayConfig{DryRun: true, Filter: Filter{EventIDs: []string{"mf-1"}}})
	if err != nil || res.Matched != 0 || res.LeftOutMalformed != 1 {
		t.Fatalf("--event-id mf-1 alone: %+v %v", res, err)
	}
	res, _, err = e.replay(ReplayConfig{DryRun: true, Filter: Filter{ErrorClasses: []string{"exhausted"}}})
	if err != nil || res.Matched != 1 || res.LeftOutMalformed != 0 {
		t.Fatalf("exhausted: %+v %v", res, err)
	}
	res, _, err = e.replay(ReplayConfig{Filter: Filter{ErrorClasses: []string{"malformed", "permanent"}}})
	if err != nil || res.Replayed != 2 || res.LeftOutMalformed != 0 {
		t.Fatalf("malformed named: %+v %v", res, err)
	}
	if ids := eventIDs(e.read(e.names.Base)); !slices.Equal(ids, []string{"mf-1", "pm-1"}) {
		t.Fatalf("main: %v", ids)
	}
}

// A malformed dead letter whose event was replayed with --error-class
// malformed and failed again has a newer dead letter of another class. A
// replay of that class writes the event; it must not also count the old
// malformed letter as left out and suggest --error-class malformed, which
// would write the same event once more.
func TestReplayDoesNotReportMalformedOfAReplayedEventAsLeftOut(t *testing.T) {
	e := newEnv(t, 1)
	now := time.Now()
	e.put(
		dl{id: "mf-1", class: "malformed", body: "not json", at: now.Add(-time.Hour)},
		dl{id: "mf-2", class: "malformed", body: "not json either", at: now.Add(-time.Hour)},
		dl{id: "mf-1", class: "exhausted", body: "not json", attempt: 3, replays: 1, at: now},
	)
	res, steps, err := e.replay(ReplayConfig{DryRun: true}) // --all
	if err != nil || res.Matched != 1 || len(steps) != 1 || steps[0].Letter.EventID != "mf-1" {
		t.Fatalf("all: %+v %d steps, %v", res, len(steps), err)
	}
	if res.LeftOutMalformed != 1 {
		t.Fatalf("%d malformed reported left out, want 1 (mf-2; mf-1 is replayed from its newer dead letter)", res.LeftOutMalformed)
	}
}

// Interrupted between the plan and the first write, a replay still says
// where to resume (not "cannot reach Kafka").
func TestReplayInterruptedBeforeTheFirstWrite(t *testing.T) {
	e := newEnv(t, 2)
	e.put(dl{part: 1, id: "a", conv: "c", class: "exhausted"}, dl{part: 1, id: "b", conv: "c", class: "exhausted"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := e.cl.Replay(ctx, ReplayConfig{DLQ: e.names.DLQ, Dedup: e.names.Dedup, To: e.names.Base,
		OnPlan: func(Plan) { cancel() }})
	if err == nil || !strings.Contains(err.Error(), "interrupted") || res.Stopped == nil || *res.Stopped != (Position{1, 0}) {
		t.Fatalf("%+v %v; want interrupted, stopped at 1:0", res, err)
	}
}

// TestReplayStopsReadingWhenAWriteFails: a dead-letter partition too large
// for one fetch, a broker that refuses the replayed writes and stops
// answering fetches (as when it hangs or dies mid-replay). The replay must
// stop once the write failed, not wait for the rest of the partition to be
// read: that wait lasts as long as the broker is gone, with nothing printed.
func TestReplayStopsReadingWhenAWriteFails(t *testing.T) {
	e := newEnv(t, 1)
	var ds []dl
	for i := range 14 { // ~9.8 MiB: more than the scan's 8 MiB per fetch
		pad := make([]byte, 525<<10) // random: the producer compresses
		rand.Read(pad)
		body := `{"pad":"` + base64.StdEncoding.EncodeToString(pad) + `"}`
		ds = append(ds, dl{id: "big" + strconv.Itoa(i), conv: "c", class: "exhausted", body: body})
	}
	for _, d := range ds { // one request each: the producer's batch limit is 1 MB
		e.put(d)
	}

	var holdFetches atomic.Bool
	release := make(chan struct{})
	defer close(release)
	e.cluster.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		if !holdFetches.Load() {
			return nil, nil, false
		}
		for _, t := range req.(*kmsg.FetchRequest).Topics {
			for _, p := range t.Partitions {
				if p.FetchOffset > 0 { // the rest of the partition: never answered
					e.cluster.SleepControl(func() { <-release })
					return nil, errors.New("held fetch dropped"), true
				}
			}
		}
		return nil, nil, false
	})
	e.cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		r := req.(*kmsg.ProduceRequest)
		if !holdFetches.Load() {
			return nil, nil, false
		}
		// Refused only once the scan read what the first fetch brought.
		e.cluster.SleepControl(func() { time.Sleep(300 * time.Millisecond) })
		return refusal(r), nil, true
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	res, err := e.cl.Replay(ctx, ReplayConfig{DLQ: e.names.DLQ, Dedup: e.names.Dedup, To: e.names.Base, DeliveryTimeout: time.Second,
		OnPlan: func(Plan) { holdFetches.Store(true) }}) // from pass 3 on
	took := time.Since(start)
	t.Logf("returned after %s: %+v %v", took.Round(time.Millisecond), res, err)
	if err == nil || !strings.Contains(err.Error(), "write to "+e.names.Base+" failed") {
		t.Fatalf("error %v, want the failed write", err)
	}
	if res.Stopped == nil || *res.Stopped != (Position{0, 0}) || res.Replayed != 0 {
		t.Fatalf("stopped at %v with %d replayed, want 0:0 with none", res.Stopped, res.Replayed)
	}
	if took > 10*time.Second {
		t.Fatalf("took %s to notice the failed write", took)
	}
}

// TestReplayBuffersBoundedBytes: while the broker is slow to acknowledge,
// a replay must not read the dead-letter topic far ahead of its writes.
// Every record read and not yet acknowledged holds its payload: bounded
// only by a record count (1000), a DLQ of 1 MiB bodies made a replay hold
// up to 1 GiB (a probe held 194 of 200 dead letters of ~0.9 MiB).
func TestReplayBuffersBoundedBytes(t *testing.T) {
	defer func(b int) { replayBufferBytes = b }(replayBufferBytes)
	replayBufferBytes = 0 // the floor: two records of the topic's largest size

	e := newEnv(t, 1)
	const n = 50 // ~35 MiB: more than two fetches ahead of the writes
	for i := range n {
		pad := make([]byte, 525<<10) // random: the producer compresses
		rand.Read(pad)
		e.put(dl{id: "big" + strconv.Itoa(i), conv: "c", class: "exhausted", body: `{"pad":"` + base64.StdEncoding.EncodeToString(pad) + `"}`})
	}
	var writing atomic.Bool // from the plan on, until the writes are let through
	var readTo atomic.Int64 // highest offset the replay asked the DLQ for meanwhile
	released := make(chan struct{})
	e.cluster.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		if writing.Load() {
			for _, t := range req.(*kmsg.FetchRequest).Topics {
				for _, p := range t.Partitions {
					for o := readTo.Load(); p.FetchOffset > o && !readTo.CompareAndSwap(o, p.FetchOffset); o = readTo.Load() {
					}
				}
			}
		}
		return nil, nil, false
	})
	e.cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		select {
		case <-released:
		default:
			e.cluster.SleepControl(func() { <-released }) // acknowledged only once released
		}
		return nil, nil, false
	})
	// From the plan on, give the replay time to read as far as it will
	// without an acknowledgement, then let the writes through.
	hold := func() {
		defer close(released)
		defer writing.Store(false)
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) && readTo.Load() < n-10 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	res, _, err := e.replay(ReplayConfig{OnPlan: func(Plan) { writing.Store(true); go hold() }})
	if err != nil || res.Replayed != n {
		t.Fatalf("%+v %v", res, err)
	}
	// The scan reads ahead up to two fetches of 8 MiB (~22 of these
	// records); the writes may buffer two more.
	if got := readTo.Load(); got >= 30 {
		t.Fatalf("read up to offset %d of %d before any write was acknowledged: the replay buffers without a byte bound", got, n)
	}
}

// TestReplayReturnsWhenTheBrokerHangsWithItsBufferFull: the broker takes
// the replayed writes and never answers. Once the replay holds as many
// unacknowledged writes as it may (1000 records, or the byte bound), it
// must still give up after the delivery timeout (or on an interrupt) and
// say where to resume, not wait in the producer for room that never comes.
func TestReplayReturnsWhenTheBrokerHangsWithItsBufferFull(t *testing.T) {
	for _, tc := range []struct {
		name      string
		n         int
		bytes     int // pad per record
		interrupt bool
	}{
		{"records", 1100, 0, false},
		{"bytes", 8, 525 << 10, false},
		{"interrupted", 1100, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(b int) { replayBufferBytes = b }(replayBufferBytes)
			replayBufferBytes = 0 // two records of the topic's largest size

			e := newEnv(t, 1)
			var ds []dl
			for i := range tc.n {
				d := dl{id: "ev" + strconv.Itoa(i), conv: "c", class: "exhausted"}
				if tc.bytes > 0 {
					pad := make([]byte, tc.bytes)
					rand.Read(pad)
					d.body = `{"pad":"` + base64.StdEncoding.EncodeToString(pad) + `"}`
					e.put(d) // one request each: the producer's batch limit is 1 MB
					continue
				}
				ds = append(ds, d)
			}
			if len(ds) > 0 {
				e.put(ds...)
			}
			var hold atomic.Bool
			hold.Store(true)
			release := make(chan struct{})
			defer close(release)
			e.holdProduce(0, &hold, release)

			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			ictx, interrupt := context.WithCancel(ctx)
			defer interrupt()
			cfg := ReplayConfig{DLQ: e.names.DLQ, Dedup: e.names.Dedup, To: e.names.Base, DeliveryTimeout: time.Second}
			want := "did not acknowledge"
			if tc.interrupt {
				cfg.OnPlan = func(Plan) { time.AfterFunc(time.Second, interrupt) }
				want = "interrupted"
			}
			start := time.Now()
			res, err := e.cl.Replay(ictx, cfg)
			took := time.Since(start)
			t.Logf("returned after %s: stopped at %v, %d replayed: %v", took.Round(time.Millisecond), res.Stopped, res.Replayed, err)
			if ctx.Err() != nil || err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v (context: %v), want %q", err, ctx.Err(), want)
			}
			if res.Stopped == nil || *res.Stopped != (Position{0, 0}) || res.Replayed != 0 {
				t.Fatalf("stopped at %v with %d replayed, want 0:0 with none", res.Stopped, res.Replayed)
			}
		})
	}
}

// refusal answers every partition of r with INVALID_RECORD, which the
// client does not retry: the write fails at once.
func refusal(r *kmsg.ProduceRequest) *kmsg.ProduceResponse {
	resp := r.ResponseKind().(*kmsg.ProduceResponse)
	for _, t := range r.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = kerr.InvalidRecord.Code
			rp.BaseOffset = -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// A read that gets no record while ranges are left gives up after the stall
// timeout with an error that says where it was, instead of hanging: the
// broker went away mid-read, or listed records were deleted since.
func TestScanGivesUpWhenNoRecordComes(t *testing.T) {
	e := newEnv(t, 2)
	e.put(dl{part: 1, id: "ev-1", conv: "c-1", class: headers.ClassExhausted, attempt: 4})
	e.cl.stall = 300 * time.Millisecond
	// Partition 1 holds offset 0 only; the range asks up to 5.
	spans := map[int32]span{1: {0, 5}}
	got := 0
	start := time.Now()
	err := e.cl.scan(context.Background(), e.names.DLQ, spans, func(*kgo.Record) error { got++; return nil })
	if err == nil || !strings.Contains(err.Error(), "no record for") || !strings.Contains(err.Error(), "partition 1 at offset 1 of 5") {
		t.Fatalf("scan: %v, want a stall error naming partition 1 at offset 1 of 5", err)
	}
	if got != 1 {
		t.Fatalf("%d records before the stall, want 1", got)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("gave up after %s, stall timeout 300ms", d)
	}
}
