package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/syncbuf"
)

// countingHandler counts calls per event id.
type countingHandler struct {
	mu    sync.Mutex
	calls map[string]int
	fail  func(ev Event) error
	total atomic.Int32
}

func newCountingHandler() *countingHandler { return &countingHandler{calls: map[string]int{}} }

func (h *countingHandler) Handle(ctx context.Context, ev Event) error {
	time.Sleep(20 * time.Millisecond) // keep copies in flight together
	h.mu.Lock()
	h.calls[ev.EventID]++
	h.mu.Unlock()
	h.total.Add(1)
	if h.fail != nil {
		return h.fail(ev)
	}
	return nil
}

func (h *countingHandler) count(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[id]
}

func TestDedupCopiesInFlightHandledOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3, time.Second)
	h := newCountingHandler()
	var recs []*kgo.Record
	for range 5 {
		recs = append(recs, event("conv-1", "same-event", 1))
	}
	// Copies under different keys too: the event id alone orders them.
	recs = append(recs, event("conv-1", "other", 2))
	e.produce(recs...)
	c, _ := e.start(Config{Handler: h})
	eventually(t, 10*time.Second, "all copies finished", func() bool {
		return c.eventsCount(e.plan.Names.Base, OutcomeProcessed)+c.eventsCount(e.plan.Names.Base, OutcomeDuplicate) == 6
	})
	if n := h.count("same-event"); n != 1 {
		t.Errorf("handler saw the event %d times, want 1", n)
	}
	if v := counterValue(c.m.duplicates); v != 4 {
		t.Errorf("hookline_consumer_duplicates_total = %v, want 4", v)
	}
	if v := c.eventsCount(e.plan.Names.Base, OutcomeDuplicate); v != 4 {
		t.Errorf("events_total{outcome=duplicate} = %v, want 4", v)
	}
	dd := e.readAll(e.plan.Names.Dedup)
	if len(dd) != 2 {
		t.Fatalf("dedup topic holds %d records, want 2", len(dd))
	}
	for _, r := range dd {
		if string(r.Key) == "same-event" {
			if r.Partition != recs[0].Partition {
				t.Errorf("dedup record in partition %d, want the event's partition %d", r.Partition, recs[0].Partition)
			}
			if !strings.Contains(string(r.Value), `"outcome":"processed"`) || !strings.Contains(string(r.Value), `"at":"`) {
				t.Errorf("dedup value %s", r.Value)
			}
		}
	}
}

func TestDedupSurvivesRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3, time.Second)
	h := newCountingHandler()
	e.produce(event("conv-r", "restart-event", 1))
	c1, stop := e.start(Config{Handler: h, Group: "gr"})
	eventually(t, 10*time.Second, "processed", func() bool {
		return c1.eventsCount(e.plan.Names.Base, OutcomeProcessed) == 1
	})
	stop()

	// A new consumer restores the state and skips the redelivered event;
	// one line says what it remembers.
	var logs syncbuf.Buffer
	c2, _ := e.start(Config{Handler: h, Group: "gr", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	eventually(t, 10*time.Second, "ready", func() bool { ok, _ := c2.Ready(); return ok })
	// Written after the last partition was marked ready.
	eventually(t, 10*time.Second, "the restore line", func() bool { return strings.Contains(logs.String(), `msg="dedup state restored"`) })
	if n, full := strings.Count(logs.String(), `level=INFO msg="dedup state restored"`),
		strings.Count(logs.String(), `topic=`+e.plan.Names.Dedup+` partitions="[0 1 2]" records_read=1 entries=1 took=`); n != 1 || full != 1 {
		t.Errorf("%d restore lines, %d with the counts, want 1:\n%s", n, full, logs.String())
	}
	e.produce(event("conv-r", "restart-event", 1), event("conv-r", "fresh-event", 2))
	eventually(t, 10*time.Second, "fresh event processed", func() bool {
		return c2.eventsCount(e.plan.Names.Base, OutcomeProcessed) == 1
	})
	if n := h.count("restart-event"); n != 1 {
		t.Errorf("event handled %d times across the restart, want 1", n)
	}
	if v := counterValue(c2.m.duplicates); v != 1 {
		t.Errorf("duplicates after restart = %v, want 1", v)
	}

	// A different group reading from the start restores too: nothing is
	// handled again.
	c3, _ := e.start(Config{Handler: h, Group: "other-group"})
	eventually(t, 10*time.Second, "other group skipped everything", func() bool {
		return c3.eventsCount(e.plan.Names.Base, OutcomeDuplicate) == 3
	})
	if n := h.count("fresh-event"); n != 1 {
		t.Errorf("fresh event handled %d times, want 1", n)
	}
}

func TestDedupWindowExpiresAndTombstones(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, time.Second)
	e.plan.DedupWindow = 2 * time.Second
	h := newCountingHandler()
	recs := e.produce(event("conv-w", "windowed", 1))
	c, _ := e.start(Config{Handler: h})
	eventually(t, 10*time.Second, "processed", func() bool {
		return c.eventsCount(e.plan.Names.Base, OutcomeProcessed) == 1
	})
	// Within the window: skipped.
	e.produce(event("conv-w", "windowed", 1))
	eventually(t, 10*time.Second, "duplicate", func() bool { return counterValue(c.m.duplicates) == 1 })

	eventually(t, 10*time.Second, "a tombstone for the expired entry", func() bool {
		for _, r := range e.readAll(e.plan.Names.Dedup) {
			if string(r.Key) == "windowed" && r.Value == nil {
				if r.Partition != recs[0].Partition {
					t.Errorf("tombstone in partition %d, want %d", r.Partition, recs[0].Partition)
				}
				return true
			}
		}
		return false
	})
	if n := c.dedup.entries(); n != 0 {
		t.Errorf("%d entries remembered after expiry, want 0", n)
	}
	e.produce(event("conv-w", "windowed", 1))
	eventually(t, 10*time.Second, "handled again after the window", func() bool { return h.count("windowed") == 2 })
}

func TestDedupDeadLetteredAndReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, time.Second)
	h := newCountingHandler()
	h.fail = func(ev Event) error {
		if _, ok := headers.Get(ev.Headers, headers.ReplayedFrom); ok {
			return nil
		}
		return Permanent(errors.New("bad payload"))
	}
	e.produce(event("conv-d", "dead", 1))
	c, _ := e.start(Config{Handler: h})
	eventually(t, 10*time.Second, "dead-lettered", func() bool {
		return c.eventsCount(e.plan.Names.Base, OutcomeDeadLettered) == 1
	})
	var found bool
	for _, r := range e.readAll(e.plan.Names.Dedup) {
		found = found || (string(r.Key) == "dead" && strings.Contains(string(r.Value), `"dead-lettered"`))
	}
	if !found {
		t.Error("no dead-lettered dedup record")
	}
	// The sender redelivers: skipped.
	e.produce(event("conv-d", "dead", 1))
	eventually(t, 10*time.Second, "duplicate", func() bool { return counterValue(c.m.duplicates) == 1 })
	// An operator replays the dead letter: handled.
	r := event("conv-d", "dead", 1)
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: headers.ReplayedFrom, Value: []byte("t.events.dlq/0/0")})
	e.produce(r)
	eventually(t, 10*time.Second, "replay processed", func() bool {
		return c.eventsCount(e.plan.Names.Base, OutcomeProcessed) == 1
	})
	if n := h.count("dead"); n != 2 {
		t.Errorf("handled %d times, want 2 (first try, replay)", n)
	}
	// Now processed: a second plain replay is a duplicate, a forced one runs.
	e.produce(r)
	eventually(t, 10*time.Second, "plain replay skipped", func() bool { return counterValue(c.m.duplicates) == 2 })
	forced := event("conv-d", "dead", 1)
	forced.Headers = append(forced.Headers,
		kgo.RecordHeader{Key: headers.ReplayedFrom, Value: []byte("t.events.dlq/0/0")},
		kgo.RecordHeader{Key: headers.ReplayForce, Value: []byte("true")})
	e.produce(forced)
	eventually(t, 10*time.Second, "forced replay processed", func() bool {
		return c.eventsCount(e.plan.Names.Base, OutcomeProcessed) == 2
	})
	if n := h.count("dead"); n != 3 {
		t.Errorf("handled %d times, want 3 (first try, replay, forced replay)", n)
	}
}

func TestDedupRestoreGatesHandling(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, time.Second)
	// Pre-fill the dedup topic, including the id we post.
	cl := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	now := time.Now()
	for i := range 20000 {
		recs = append(recs, &kgo.Record{Topic: e.plan.Names.Dedup, Partition: int32(i % 2),
			Key: fmt.Appendf(nil, "old-%d", i), Value: dedupValue(outcomeProcessed, now)})
	}
	main := e.produce(event("conv-g", "old-7", 1))
	for _, r := range recs {
		if string(r.Key) == "old-7" {
			r.Partition = main[0].Partition
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	h := newCountingHandler()
	c, _ := e.start(Config{Handler: h})
	eventually(t, 20*time.Second, "duplicate skipped", func() bool { return counterValue(c.m.duplicates) == 1 })
	if h.total.Load() != 0 {
		t.Errorf("handler ran %d times before the state was restored", h.total.Load())
	}
	if ok, why := c.Ready(); !ok {
		t.Errorf("not ready after restore: %s", why)
	}
	if n := c.dedup.entries(); n != 20000 {
		t.Errorf("%d entries restored, want 20000", n)
	}
}

// TestDedupBytesPerEntry prints the heap cost of one remembered event id.
func TestDedupBytesPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~60 MB")
	}
	const n = 1_000_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st := newDedupPart()
	exp := time.Now().Add(time.Hour).UnixMilli()
	for i := range n {
		st.m[digestOf(fmt.Appendf(nil, "event-%d", i))] = makeEntry(exp, false)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("dedup state: %.1f heap bytes per entry (%d entries)", per, len(st.m))
	runtime.KeepAlive(st)
}

// BenchmarkDedupRestore measures applying dedup records as a restore does:
// 1,000,000 entries per op (digest, parse "at", insert).
func BenchmarkDedupRestore(b *testing.B) {
	const n = 1_000_000
	now := time.Now()
	val := dedupValue(outcomeProcessed, now)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Key: fmt.Appendf(nil, "0123456789abcdef0123456789abcdef0123456789abcdef%016d", i), Value: val, Offset: int64(i)}
	}
	nowMs := now.UnixMilli()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		st := newDedupPart()
		st.mu.Lock()
		for _, r := range recs {
			st.apply(r, time.Hour, nowMs)
		}
		st.mu.Unlock()
		if len(st.m) != n {
			b.Fatal(len(st.m))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
}

// BenchmarkDedupRestoreKfake measures a restore end to end from an
// in-process broker: 200,000 entries in one partition, read and applied.
func BenchmarkDedupRestoreKfake(b *testing.B) {
	const n = 200_000
	e := newEnv(b, 1, time.Second)
	cl := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(n))
	now := time.Now()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: e.plan.Names.Dedup, Partition: 0, Key: fmt.Appendf(nil, "event-%d", i), Value: dedupValue(outcomeProcessed, now)}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{Kafka: e.kafka, Plan: e.plan, Handler: HandlerFunc(func(context.Context, Event) error { return nil }), Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	c.prod = cl
	b.ResetTimer()
	for b.Loop() {
		d := newDedupState(c)
		d.assignedSync([]int32{0})
		if got := d.entries(); got != n {
			b.Fatalf("restored %d, want %d", got, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
}

// assignedSync restores partitions synchronously (benchmarks).
func (d *dedupState) assignedSync(parts []int32) {
	d.mu.Lock()
	d.gen++
	for _, p := range parts {
		d.parts[p] = newDedupPart()
	}
	gen := d.gen
	d.mu.Unlock()
	d.restore(context.Background(), gen, parts)
}

// A restart tombstones an entry that expired while no consumer ran, once,
// and does not tombstone again what is tombstoned already (the sweep used
// to re-read the log from offset 0 after every restore).
func TestRestartTombstonesEachExpiredEntryOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, time.Second)
	e.plan.DedupWindow = 2 * time.Second
	h := newCountingHandler()
	tombstones := func() int {
		n := 0
		for _, r := range e.readAll(e.plan.Names.Dedup) {
			if string(r.Key) == "expiring" && r.Value == nil {
				n++
			}
		}
		return n
	}
	e.produce(event("conv-x", "expiring", 1))
	c1, stop1 := e.start(Config{Handler: h, Group: "g"})
	eventually(t, 10*time.Second, "first tombstone", func() bool { return tombstones() == 1 })
	// Handled again after the window; stopped before this entry expires.
	e.produce(event("conv-x", "expiring", 1))
	eventually(t, 10*time.Second, "handled again", func() bool { return h.count("expiring") == 2 })
	eventually(t, 10*time.Second, "second entry acknowledged", func() bool {
		return c1.eventsCount(e.plan.Names.Base, OutcomeProcessed) == 2
	})
	stop1()
	if n := tombstones(); n != 1 {
		t.Fatalf("%d tombstones before the restart, want 1 (the test's timing is off)", n)
	}
	time.Sleep(2500 * time.Millisecond) // the second entry expires while nothing runs

	for i, want := range []int{2, 2} {
		c, stop := e.start(Config{Handler: h, Group: "g"})
		eventually(t, 10*time.Second, "ready", func() bool { ok, _ := c.Ready(); return ok })
		time.Sleep(time.Second) // several sweeps (every 250 ms with this window)
		eventually(t, 10*time.Second, "tombstones written", func() bool { return tombstones() >= want })
		stop()
		if n := tombstones(); n != want {
			t.Errorf("restart %d: %d tombstones for the key, want %d", i+1, n, want)
		}
	}
}

// TestDigestOf: an id of 64 lowercase hex digits is hashed from its
// decoded bytes, any other id as it is, and the two kinds never share a
// digest. Ids that share digits, or differ only in a digit's top bit, keep
// distinct digests.
func TestDigestOf(t *testing.T) {
	sum := sha256.Sum256([]byte("orders-42"))
	hexID := hex.EncodeToString(sum[:])
	want := sha256.Sum256(sum[:])
	want[0] |= 0x80
	if d := digestOf([]byte(hexID)); d != digest(want[:16]) {
		t.Errorf("digestOf(64 hex digits) = %x, want SHA-256 of the decoded bytes with the top bit set, %x", d, want[:16])
	}
	if got, d := digestOfString(hexID), digestOf([]byte(hexID)); got != d {
		t.Errorf("digestOfString = %x, digestOf = %x", got, d)
	}
	// The decoded bytes as an id of their own: hashed to the same
	// SHA-256, told apart by the top bit.
	if a, b := digestOf(sum[:]), digestOf([]byte(hexID)); a == b || a[0]&0x80 != 0 {
		t.Errorf("raw-bytes id %x and its hex spelling %x must differ in the top bit", a, b)
	}

	// Not 64 lowercase hex digits: hashed as they are.
	for _, id := range []string{
		strings.ToUpper(hexID),
		hexID[:63],
		hexID + "0",
		hexID[:40] + "g" + hexID[41:],
		hexID[:3] + "x" + hexID[4:],
		"",
	} {
		h := sha256.Sum256([]byte(id))
		h[0] &^= 0x80
		if got := digestOf([]byte(id)); got != digest(h[:16]) {
			t.Errorf("digestOf(%q) = %x, want the hashed %x", id, got, h[:16])
		}
	}

	// Sender-chosen hex ids (two UUIDs without dashes, say) that share
	// their first 32 or 63 digits, or differ only in the top bit of one.
	prefix := strings.Repeat("0123456789abcdef", 2)
	seen := map[digest]string{}
	for _, id := range []string{
		prefix + strings.Repeat("1", 32), prefix + strings.Repeat("2", 32),
		hexID[:63] + "0", hexID[:63] + "1",
		"0" + hexID[1:], "8" + hexID[1:], "7" + hexID[1:], "f" + hexID[1:],
	} {
		d := digestOf([]byte(id))
		if other, dup := seen[d]; dup {
			t.Errorf("%s and %s share the digest %x", other, id, d)
		}
		seen[d] = id
	}
}

// TestDedupTellsApartHexIdsThatSharePrefixes: events whose ids are 64 hex
// digits sharing their first half (as ids built from two UUIDs do) are
// different events, each handled once.
func TestDedupTellsApartHexIdsThatSharePrefixes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, time.Second)
	h := newCountingHandler()
	org := strings.Repeat("5a0c", 8)
	ids := []string{org + strings.Repeat("1", 32), org + strings.Repeat("2", 32), org + strings.Repeat("3", 32)}
	for i, id := range ids {
		e.produce(event("conv-h", id, i+1))
	}
	c, _ := e.start(Config{Handler: h})
	eventually(t, 10*time.Second, "every event finished", func() bool {
		return c.eventsCount(e.plan.Names.Base, OutcomeProcessed)+c.eventsCount(e.plan.Names.Base, OutcomeDuplicate) == float64(len(ids))
	})
	for _, id := range ids {
		if n := h.count(id); n != 1 {
			t.Errorf("event %s handled %d times, want 1", id, n)
		}
	}
}

// TestItemOfDrec: the dedup write's promise finds its item from the record.
func TestItemOfDrec(t *testing.T) {
	it := &item{ev: Event{EventID: "x"}}
	if got := itemOfDrec(&it.drec); got != it {
		t.Fatalf("itemOfDrec = %p, want %p", got, it)
	}
}

// TestRestoreTombstonesManyExpiredEntries: more expired entries than one
// chunk of tombstones in flight each get exactly one tombstone.
func TestRestoreTombstonesManyExpiredEntries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, time.Second)
	e.plan.DedupWindow = 2 * time.Second
	const n = 2*tombChunk + 500
	old := dedupValue(outcomeProcessed, time.Now().Add(-time.Hour))
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: e.plan.Names.Dedup, Partition: 0, Key: fmt.Appendf(nil, "old-%d", i), Value: old})
	}
	if err := e.client().ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.start(Config{Handler: newCountingHandler()})
	per := map[string]int{}
	eventually(t, 20*time.Second, "a tombstone for every expired entry", func() bool {
		clear(per)
		for _, r := range e.readAll(e.plan.Names.Dedup) {
			if r.Value == nil {
				per[string(r.Key)]++
			}
		}
		return len(per) == n
	})
	for k, c := range per {
		if c != 1 {
			t.Errorf("%s: %d tombstones, want 1", k, c)
		}
	}
}
