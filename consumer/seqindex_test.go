package consumer

import (
	"hash/maphash"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// seqIndex against a map: what it returns for an entry at or above live is
// exactly what was stored; an entry below live may be gone but is never
// wrong; rebuilds keep the table at most 3/4 full, and reset empties it.
func TestSeqIndexModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var x seqIndex
	model := map[uint64]uint64{}
	var seq, live uint64
	check := func(step int, h uint64, got uint64, ok bool) {
		t.Helper()
		want, in := model[seqKey(h)]
		switch {
		case in && want >= live && (!ok || got != want):
			t.Fatalf("step %d: hash %d gives (%d, %v); want %d (live from %d)", step, h, got, ok, want, live)
		case ok && (!in || got != want):
			t.Fatalf("step %d: hash %d gives (%d, true); stored: %d, %v", step, h, got, want, in)
		}
	}
	for step := range 300_000 {
		h := uint64(r.IntN(2000)) // 0 and 1 share an entry
		if r.IntN(8) == 0 {
			h = r.Uint64()
		}
		switch op := r.IntN(100); {
		case op < 50:
			seq++
			old, had := x.swap(h, seq, live)
			check(step, h, old, had)
			model[seqKey(h)] = seq
		case op < 90:
			got, ok := x.get(h)
			check(step, h, got, ok)
		case op < 99:
			live = min(seq, live+uint64(r.IntN(40)))
		default:
			if r.IntN(50) == 0 { // the lane has no records left
				live = seq + 1
				x.reset()
				if x.n != 0 {
					t.Fatalf("step %d: %d entries after reset", step, x.n)
				}
			}
		}
		if x.n > 0 && 4*x.n > 3*len(x.slots) {
			t.Fatalf("step %d: %d entries in %d slots", step, x.n, len(x.slots))
		}
	}
}

// queueLane is a lane for tests of its key and id queues.
type queueLane struct {
	*lane
	seed maphash.Seed
}

func newQueueLane() queueLane {
	return queueLane{&lane{tp: tp{"t.events", 0}}, maphash.MakeSeed()}
}

// add appends a record of key and event id (none when empty) as the
// consumer's add does.
func (l queueLane) add(key, id string) *item {
	it := &item{rec: &kgo.Record{Topic: l.topic, Offset: int64(l.popped) + int64(len(l.items)), Key: []byte(key)},
		ev: Event{EventID: id}, kh: maphash.String(l.seed, key)}
	if id != "" {
		it.ih = maphash.String(l.seed, id)
	}
	l.items = append(l.items, it)
	l.waiting++
	l.enqueue(it)
	return it
}

// finish ends it as finish does for a record handled for good.
func (l queueLane) finish(it *item) {
	if !it.kFirst || !it.iFirst {
		panic("finishing a record that could not have started")
	}
	if it.ready { // started: out of the ready heap
		var rest []*item
		for len(l.ready) > 0 {
			if p := l.ready.pop(); p != it {
				rest = append(rest, p)
			}
		}
		for _, p := range rest {
			l.ready.push(p)
		}
	}
	it.state = stateDone
	l.dequeue(it)
	l.advance()
}

// A key or id whose last record finished starts a new queue: also when
// that record is still in the lane behind an unfinished one (not popped),
// and after the lane emptied. The index never links a new record behind a
// finished one, which would never start.
func TestQueuesSkipFinishedRecords(t *testing.T) {
	l := newQueueLane()
	x := l.add("slow", "x")
	a1 := l.add("k", "a1")
	a2 := l.add("k", "a2")
	if !x.ready || !a1.ready || a2.ready {
		t.Fatalf("ready: x %v, a1 %v, a2 %v; want true, true, false (a2 waits for a1)", x.ready, a1.ready, a2.ready)
	}
	l.finish(a1)
	if !a2.ready {
		t.Fatal("a2 not ready after a1, the record before it of its key, finished")
	}
	l.finish(a2) // finished, not popped: x is unfinished
	if len(l.items) != 3 {
		t.Fatalf("%d records in the lane; want 3 (x unfinished holds the rest)", len(l.items))
	}
	b := l.add("k", "a2") // same key and same id as the finished a2
	if !b.ready || !b.kFirst || !b.iFirst || a2.kNext != nil || a2.iNext != nil {
		t.Fatalf("record after a finished one of its key and id: ready %v kFirst %v iFirst %v, linked %v; want a new queue",
			b.ready, b.kFirst, b.iFirst, a2.kNext != nil || a2.iNext != nil)
	}
	c := l.add("k", "c")
	if c.ready {
		t.Fatal("c ready while b, the record before it of its key, is unfinished")
	}
	for _, it := range []*item{x, b, c} {
		l.finish(it)
	}
	if len(l.items) != 0 || l.byKey.n != 0 || l.byID.n != 0 {
		t.Fatalf("empty lane keeps %d records, %d key and %d id entries", len(l.items), l.byKey.n, l.byID.n)
	}
	if d := l.add("k", "c"); !d.ready {
		t.Fatal("record of a key seen before the lane emptied is not ready")
	}
}

// Many keys, records finished in a scrambled order: every key's records
// start one at a time in offset order, through the index's rebuilds.
func TestQueuesKeepKeyOrderThroughRebuilds(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	l := newQueueLane()
	last := map[string]int64{} // per key, the offset of its last finished record
	var running []*item
	for round := range 200 {
		for range r.IntN(200) {
			k := string(rune('a' + r.IntN(26)))
			if r.IntN(3) == 0 {
				k += string(rune('a'+r.IntN(26))) + string(rune('0'+round%10))
			}
			l.add(k, "")
		}
		for len(l.ready) > 0 {
			running = append(running, l.ready.pop())
		}
		r.Shuffle(len(running), func(i, j int) { running[i], running[j] = running[j], running[i] })
		n := r.IntN(len(running) + 1)
		for _, it := range running[:n] {
			k := string(it.rec.Key)
			if prev, ok := last[k]; ok && prev > it.rec.Offset {
				t.Fatalf("key %q: offset %d finished after %d", k, it.rec.Offset, prev)
			}
			last[k] = it.rec.Offset
			l.finish(it)
		}
		running = running[n:]
	}
	if l.byKey.n > 0 && 4*l.byKey.n > 3*len(l.byKey.slots) {
		t.Fatalf("%d key entries in %d slots", l.byKey.n, len(l.byKey.slots))
	}
}

// A copy of an event on another topic of the partition holds this one back
// while it runs or awaits its dedup ack, not once it finished.
func TestStartedElsewhereIgnoresFinishedCopies(t *testing.T) {
	main, retry := newQueueLane(), newQueueLane()
	retry.seed = main.seed
	retry.tp = tp{"t.events.retry-1", 0}
	g := &laneGroup{lanes: []*lane{main.lane, retry.lane}}
	main.g, retry.g = g, g
	c := new(Consumer)

	other := main.add("slow", "other") // keeps the finished copy in the lane
	orig := main.add("k", "e")
	orig.state = stateRunning
	cp := retry.add("k", "e")
	if !c.startedElsewhere(retry.lane, cp) {
		t.Fatal("retry copy may start while the main copy runs")
	}
	orig.state = stateAcking
	if !c.startedElsewhere(retry.lane, cp) {
		t.Fatal("retry copy may start while the main copy awaits its dedup ack")
	}
	orig.state = stateWaiting
	main.finish(orig)
	if c.startedElsewhere(retry.lane, cp) {
		t.Fatal("retry copy held back by a main copy that finished")
	}
	_ = other
}
