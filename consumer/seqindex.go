package consumer

// seqIndex maps a 64-bit hash (of a key or an event id) to the sequence
// number of the last record a lane enqueued with it (see lane.popped).
// The lane reads it through lastOf and swapLast.
//
// Entries are not deleted when their record finishes. The lane recognises
// a finished record on lookup (popped off lane.items, or done), and the
// entries of popped records are dropped when the table needs room, or all
// at once when the lane has no records left (reset). So finishing a record
// costs no delete, enqueueing one costs one probe per index, and the table
// holds no pointers (it keeps no finished record alive). Go maps with a
// delete per finished record cost the no-op consumer ~0.7 µs of CPU per
// event more on one core (docs/benchmarks.md, Findings, 2026-11-29
// 11:30-12:30).
//
// Open addressing with linear probing. Hash 0 marks an empty slot and is
// stored as 1: the two share a queue, which only orders records that
// needed no order (see lane.byKey). The hashes are seeded (Consumer.seed),
// so senders cannot pick keys that pile up in one probe run. The zero
// value is an empty index.
type seqIndex struct {
	slots []seqSlot // len a power of two, or 0
	n     int       // slots in use, popped records' included
}

type seqSlot struct{ h, seq uint64 }

// minSeqSlots is the smallest table. A table is at most 3/4 full, and
// after a rebuild at most 1/4.
const minSeqSlots = 16

func seqKey(h uint64) uint64 { return max(h, 1) }

// get returns the sequence number stored for h, if any.
func (x *seqIndex) get(h uint64) (seq uint64, ok bool) {
	if x.n == 0 {
		return 0, false
	}
	h = seqKey(h)
	mask := uint64(len(x.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.h == h {
			return s.seq, true
		}
		if s.h == 0 {
			return 0, false
		}
	}
}

// swap stores seq for h and returns what was stored before, if anything.
// A full table first drops the entries below live (the records popped off
// the lane), so an old value below live may be gone.
func (x *seqIndex) swap(h, seq, live uint64) (old uint64, had bool) {
	if 4*(x.n+1) > 3*len(x.slots) {
		x.rebuild(live)
	}
	h = seqKey(h)
	mask := uint64(len(x.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.h == h {
			old, s.seq = s.seq, seq
			return old, true
		}
		if s.h == 0 {
			*s = seqSlot{h, seq}
			x.n++
			return 0, false
		}
	}
}

// rebuild keeps the entries at or above live in a new table at most 1/4
// full with one more entry: the next rebuild is at least half a table of
// new entries away, so each costs O(1) per entry added.
func (x *seqIndex) rebuild(live uint64) {
	n := 1
	for _, s := range x.slots {
		if s.h != 0 && s.seq >= live {
			n++
		}
	}
	size := minSeqSlots
	for size < 4*n {
		size *= 2
	}
	old := x.slots
	x.slots, x.n = make([]seqSlot, size), 0
	mask := uint64(size - 1)
	for _, s := range old {
		if s.h == 0 || s.seq < live {
			continue
		}
		i := s.h & mask
		for x.slots[i].h != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = s
		x.n++
	}
}

// reset empties x, for a lane with no records left. A large table is
// dropped (a burst's table is not kept by an idle lane), a small one
// cleared for reuse.
func (x *seqIndex) reset() {
	if x.n == 0 {
		return
	}
	if len(x.slots) > 8*minSeqSlots {
		x.slots = nil
	} else {
		clear(x.slots)
	}
	x.n = 0
}
