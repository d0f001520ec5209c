package consumer

import (
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

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

// wantHeldBack fails t unless startedElsewhere holds the copy cp on retry
// back (want) or not.
func wantHeldBack(t *testing.T, retry queueLane, cp *item, want bool, why string) {
	t.Helper()
	if got := new(Consumer).startedElsewhere(retry.lane, cp); got != want {
		t.Fatalf("%s: copy held back %v, want %v", why, got, want)
	}
}

// newLaneGroup returns the lanes of partition 0 of a main topic and its
// retry-1 tier, as a group (see startedElsewhere).
func newLaneGroup() (main, retry queueLane) {
	main, retry = newQueueLane(), newQueueLane()
	retry.seed = main.seed
	retry.tp = tp{"t.events.retry-1", 0}
	g := &laneGroup{lanes: []*lane{main.lane, retry.lane}}
	main.g, retry.g = g, g
	return main, retry
}

// add appends a record of key and event id (none when empty) as the
// consumer's add does.
func (l queueLane) add(key, id string) *item {
	var ih uint64
	if id != "" {
		ih = maphash.String(l.seed, id)
	}
	return l.addHashed(maphash.String(l.seed, key), ih, id)
}

// addHashed is add with the hashes given.
func (l queueLane) addHashed(kh, ih uint64, id string) *item {
	it := &item{rec: &kgo.Record{Topic: l.topic, Offset: int64(l.popped) + int64(len(l.items))},
		ev: Event{EventID: id}, kh: kh, ih: ih}
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

// Random records over few key and id hashes (0 and 1 among them, which
// share a queue), started lowest offset first and finished in a random
// order, through the index's rebuilds and resets: after every step the
// ready heap holds exactly the waiting records that are the first
// unfinished one of their key and of their id, and the lane drains.
func TestQueuesMatchAModel(t *testing.T) {
	for seed := range uint64(8) {
		r := rand.New(rand.NewPCG(seed, 7))
		l := newQueueLane()
		hash := func() uint64 {
			if r.IntN(4) == 0 {
				return r.Uint64() // new hashes grow the tables
			}
			return uint64(r.IntN(6))
		}
		var running []*item
		for step := range 3000 {
			switch op := r.IntN(10); {
			case op < 5 && step < 2500:
				id := ""
				if r.IntN(3) > 0 {
					id = "id"
				}
				l.addHashed(hash(), hash(), id)
			case op < 7 && len(l.ready) > 0:
				it := l.ready.pop()
				it.state = stateRunning
				l.waiting--
				running = append(running, it)
			case len(running) > 0:
				i := r.IntN(len(running))
				it := running[i]
				running = slices.Delete(running, i, i+1)
				l.finish(it)
			case step >= 2500:
				for len(l.ready) > 0 {
					it := l.ready.pop()
					it.state = stateRunning
					l.waiting--
					running = append(running, it)
				}
			}
			checkQueues(t, seed, step, l.lane)
		}
		for len(running) > 0 || len(l.ready) > 0 {
			for len(l.ready) > 0 {
				it := l.ready.pop()
				it.state = stateRunning
				l.waiting--
				running = append(running, it)
			}
			it := running[0]
			running = running[1:]
			l.finish(it)
			checkQueues(t, seed, -1, l.lane)
		}
		if len(l.items) != 0 || l.waiting != 0 || l.byKey.n != 0 || l.byID.n != 0 {
			t.Fatalf("seed %d: lane not drained: %d records (%d waiting), %d key and %d id entries",
				seed, len(l.items), l.waiting, l.byKey.n, l.byID.n)
		}
	}
}

// checkQueues compares l's ready heap with the model: a waiting record may
// start when no earlier unfinished record shares its key hash or, having
// an id, its id hash (hashes 0 and 1 are one).
func checkQueues(t *testing.T, seed uint64, step int, l *lane) {
	t.Helper()
	firstK, firstI := map[uint64]*item{}, map[uint64]*item{}
	for _, it := range l.items {
		if it.state == stateDone {
			continue
		}
		if firstK[seqKey(it.kh)] == nil {
			firstK[seqKey(it.kh)] = it
		}
		if it.ev.EventID != "" && firstI[seqKey(it.ih)] == nil {
			firstI[seqKey(it.ih)] = it
		}
	}
	inHeap := map[*item]bool{}
	for _, e := range l.ready {
		inHeap[e.it] = true
	}
	for i, it := range l.items {
		want := it.state == stateWaiting && firstK[seqKey(it.kh)] == it &&
			(it.ev.EventID == "" || firstI[seqKey(it.ih)] == it)
		if inHeap[it] != want {
			t.Fatalf("seed %d step %d: record %d (state %d) ready %v, want %v", seed, step, i, it.state, inHeap[it], want)
		}
	}
	if len(inHeap) != len(l.ready) {
		t.Fatalf("seed %d step %d: ready heap holds a record twice", seed, step)
	}
}

// The id queue's head: with three records of one event id under three
// keys, the last one's iHead follows the first unfinished one, which is
// what startedElsewhere asks about a copy on another topic.
func TestIDQueueHeadFollowsItsFirstRecord(t *testing.T) {
	main, retry := newLaneGroup()

	a, b, d := main.add("ka", "e"), main.add("kb", "e"), main.add("kc", "e")
	cp := retry.add("k", "e")
	head := func() *item {
		last := main.lastOf(&main.byID, a.ih)
		if last != d {
			t.Fatalf("last record of the id is %p; want the third, %p", last, d)
		}
		if d.iHead == nil {
			return d
		}
		return d.iHead
	}
	if !a.ready || b.ready || d.ready || head() != a {
		t.Fatalf("ready %v %v %v, head is the first: %v; want only the first ready and the head", a.ready, b.ready, d.ready, head() == a)
	}
	a.state = stateRunning
	wantHeldBack(t, retry, cp, true, "first record running")
	a.state = stateWaiting
	main.finish(a)
	if !b.ready || head() != b {
		t.Fatalf("after the first finished: second ready %v, head is the second %v", b.ready, head() == b)
	}
	wantHeldBack(t, retry, cp, false, "no record of the id running")
	b.state = stateRunning
	wantHeldBack(t, retry, cp, true, "second record running")
	b.state = stateWaiting
	main.finish(b)
	if !d.ready || d.iHead != nil {
		t.Fatalf("after the second finished: third ready %v, iHead %p; want ready, nil", d.ready, d.iHead)
	}
}

// A copy of an event on another topic of the partition holds this one back
// while it runs or awaits its dedup ack, not once it finished.
func TestStartedElsewhereIgnoresFinishedCopies(t *testing.T) {
	main, retry := newLaneGroup()

	other := main.add("slow", "other") // keeps the finished copy in the lane
	orig := main.add("k", "e")
	orig.state = stateRunning
	cp := retry.add("k", "e")
	wantHeldBack(t, retry, cp, true, "main copy running")
	orig.state = stateAcking
	wantHeldBack(t, retry, cp, true, "main copy awaiting its dedup ack")
	orig.state = stateWaiting
	main.finish(orig)
	wantHeldBack(t, retry, cp, false, "main copy finished")
	_ = other
}

// TestPackIDs: the packed ids read as the originals (an empty one stays
// empty), no longer alias the fetched header bytes, and lie back to back in
// one buffer, which is what spares the dedup producer its cache misses.
func TestPackIDs(t *testing.T) {
	hdr := []byte("id-one" + "id-two" + "three")
	items := []item{
		{ev: Event{EventID: bytesView(hdr[0:6])}},
		{ev: Event{}},
		{ev: Event{EventID: bytesView(hdr[6:12])}},
		{ev: Event{EventID: bytesView(hdr[12:])}},
	}
	packIDs(items, len(hdr))
	want := []string{"id-one", "", "id-two", "three"}
	for i := range items {
		if got := items[i].ev.EventID; got != want[i] {
			t.Fatalf("item %d: id %q, want %q", i, got, want[i])
		}
	}
	copy(hdr, "XXXXXXXXXXXXXXXXX")
	if items[0].ev.EventID != "id-one" || items[3].ev.EventID != "three" {
		t.Fatalf("ids still alias the header bytes: %q, %q", items[0].ev.EventID, items[3].ev.EventID)
	}
	first := unsafe.StringData(items[0].ev.EventID)
	if unsafe.StringData(items[2].ev.EventID) != (*byte)(unsafe.Add(unsafe.Pointer(first), 6)) ||
		unsafe.StringData(items[3].ev.EventID) != (*byte)(unsafe.Add(unsafe.Pointer(first), 12)) {
		t.Fatal("ids are not packed back to back")
	}
}
