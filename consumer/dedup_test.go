package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/headers"
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

	// A new consumer restores the state and skips the redelivered event.
	c2, _ := e.start(Config{Handler: h, Group: "gr"})
	eventually(t, 10*time.Second, "ready", func() bool { ok, _ := c2.Ready(); return ok })
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

// TestDigestOf: an id of 64 lowercase hex digits (the receiver's SHA-256
// ids) is its own digest, any other id is hashed, and the two kinds never
// share a digest, also when an id spells the hash of another in hex.
func TestDigestOf(t *testing.T) {
	sum := sha256.Sum256([]byte("orders-42"))
	hexID := hex.EncodeToString(sum[:])
	d := digestOf([]byte(hexID))
	want := digest(sum[:16])
	want[0] |= 0x80
	if d != want {
		t.Errorf("digestOf(64 hex digits) = %x, want the first 16 bytes with the top bit set, %x", d, want)
	}
	if got := digestOfString(hexID); got != d {
		t.Errorf("digestOfString = %x, digestOf = %x", got, d)
	}

	hashed := digestOf([]byte("orders-42"))
	if hashed[0]&0x80 != 0 {
		t.Errorf("digest of a hashed id has the top bit set: %x", hashed)
	}
	// hex(sha256(id)) is what digestOf hashes "orders-42" to: the hex
	// spelling must not take that digest.
	if [15]byte(d[1:]) != [15]byte(hashed[1:]) || d == hashed {
		t.Errorf("hex id %x and hashed id %x should differ in the top bit only", d, hashed)
	}

	// Not 64 lowercase hex digits: hashed.
	for _, id := range []string{
		strings.ToUpper(hexID),        // uppercase
		hexID[:63],                    // short
		hexID + "0",                   // long
		hexID[:40] + "g" + hexID[41:], // a non-digit in the second half
		hexID[:3] + "x" + hexID[4:],   // a non-digit in the first half
		"",
	} {
		h := sha256.Sum256([]byte(id))
		w := digest(h[:16])
		w[0] &^= 0x80
		if got := digestOf([]byte(id)); got != w {
			t.Errorf("digestOf(%q) = %x, want the hashed %x", id, got, w)
		}
	}
}

// TestItemOfDrec: the dedup write's promise finds its item from the record.
func TestItemOfDrec(t *testing.T) {
	it := &item{id: "x"}
	if got := itemOfDrec(&it.drec); got != it {
		t.Fatalf("itemOfDrec = %p, want %p", got, it)
	}
}
