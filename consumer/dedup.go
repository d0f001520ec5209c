package consumer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/kafkaconf"
)

// Dedup outcomes written to <base>.dedup.
const (
	outcomeProcessed    = "processed"
	outcomeDeadLettered = "dead-lettered"
)

// Sweep bounds: expired dedup entries are looked for every DedupWindow/8,
// clamped to [minSweepEvery, maxSweepEvery].
const (
	minSweepEvery = 200 * time.Millisecond
	maxSweepEvery = time.Minute
)

// digest is what the dedup state keeps of an event id: 16 bytes of a
// SHA-256 (collisions are out of reach, also for a sender who picks ids).
type digest [16]byte

// digestOf returns id's digest. An id of 64 lowercase hex digits (as every
// id the receiver derives is) is hashed from its 32 decoded bytes: one
// SHA-256 block instead of two. Any other id is hashed as it is. The top bit
// tells the two kinds apart, so that an id made of another's decoded bytes
// cannot take its digest. Decoded ids are hashed too, not used as they are:
// ids chosen by senders (event_id pointers) can share their first digits.
func digestOf(id []byte) digest {
	var sum [sha256.Size]byte
	var raw [32]byte
	if len(id) == 64 && decodeHex(&raw, id) {
		sum = sha256.Sum256(raw[:])
		sum[0] |= 0x80
	} else {
		sum = sha256.Sum256(id)
		sum[0] &^= 0x80
	}
	return digest(sum[:16])
}

// decodeHex decodes the 64 digits of s into raw when all are lowercase hex.
// Not encoding/hex, which takes upper case too: "AB…" and "ab…" are two ids
// and must not share a digest.
func decodeHex(raw *[32]byte, s []byte) bool {
	for i := range raw {
		hi, lo := hexVal[s[2*i]], hexVal[s[2*i+1]]
		if hi|lo > 15 {
			return false
		}
		raw[i] = hi<<4 | lo
	}
	return true
}

// hexVal maps a lowercase hex digit to its value and anything else to 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, ch := range "0123456789abcdef" {
		t[ch] = byte(i)
	}
	return t
}()

// digestOfString is digestOf without copying s.
func digestOfString(s string) digest {
	return digestOf(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// entry packs an entry's expiry (unix ms) and whether the event was
// dead-lettered (low bit) into 8 bytes.
type entry uint64

func makeEntry(expiryMs int64, deadLettered bool) entry {
	e := entry(expiryMs) << 1
	if deadLettered {
		e |= 1
	}
	return e
}

func (e entry) expiryMs() int64    { return int64(e >> 1) }
func (e entry) deadLettered() bool { return e&1 == 1 }

// dedupPart is the dedup state of one partition number.
type dedupPart struct {
	mu sync.Mutex
	m  map[digest]entry

	// Owned by dedupState.mu:
	ready bool
	owned bool // assigned and not revoked since: a restore is wanted

	// Owned by the restore and sweep goroutines (one at a time, see
	// dedupState.ioMu):
	readTo      int64 // next offset of <base>.dedup to apply on restore
	sweepFrom   int64 // first offset that may hold an entry not yet tombstoned
	nextSweepMs int64 // no entry expires before this (unix ms); 0: unknown, sweep
	// scan is kept while a restore reads the log from its start (also
	// across a restore that was cut short and resumed).
	scan *restoreScan
}

// restoreScan is what a restore from the start of the log learns for the
// sweep: which expired entries still need a tombstone, and where the first
// live one is. Without it a sweep after each restart would re-read the log
// from offset 0 and tombstone again every expired record that compaction
// had not yet removed, also those tombstoned already.
type restoreScan struct {
	stale   map[digest][]byte // expired entries whose last record is a value: key
	live    int64             // offset of the first live record; -1: none yet
	liveExp int64             // its expiry (unix ms)
}

func (sc *restoreScan) note(r *kgo.Record, k digest, exp, nowMs int64) {
	switch {
	case r.Value == nil:
		delete(sc.stale, k)
	case exp <= nowMs:
		sc.stale[k] = bytes.Clone(r.Key)
	default:
		delete(sc.stale, k)
		if sc.live < 0 {
			sc.live, sc.liveExp = r.Offset, exp
		}
	}
}

// dedupState remembers processed and dead-lettered event ids per partition,
// backed by the compacted <base>.dedup topic.
type dedupState struct {
	c          *Consumer
	topic      string
	window     time.Duration
	sweepEvery time.Duration

	mu            sync.Mutex
	parts         map[int32]*dedupPart
	gen           int // assignment generation, guards ready flags of stale restores
	cancelRestore context.CancelFunc
	lastSweep     time.Time
	sweeping      bool
	sweepCtx      context.Context // canceled by stop
	stopSweeps    context.CancelFunc

	// ioMu serializes restores and sweeps: they share each part's cursors.
	ioMu sync.Mutex

	// The value of "processed" dedup records of the current millisecond,
	// shared by the records written within it.
	val atomic.Pointer[msValue]

	// failure is the last failed restore step, for Ready to say why a
	// restore is not finishing (usually: Kafka is away).
	failure atomic.Pointer[restoreFailure]
}

// restoreFailure is a failed restore step and when it failed.
type restoreFailure struct {
	at  time.Time
	err string
}

// noteFailure remembers a failed restore step for Ready.
func (d *dedupState) noteFailure(what string, err error) {
	d.failure.Store(&restoreFailure{at: time.Now(), err: what + ": " + err.Error()})
}

// recentFailure returns the last restore failure of the past 30 s that no
// successful step has followed, or "".
func (d *dedupState) recentFailure() string {
	if f := d.failure.Load(); f != nil && time.Since(f.at) < 30*time.Second {
		return f.err
	}
	return ""
}

// msValue is a dedup record value and the millisecond it says.
type msValue struct {
	ms  int64
	val []byte
}

func newDedupState(c *Consumer) *dedupState {
	w := c.cfg.Plan.DedupWindow
	d := &dedupState{
		c:          c,
		topic:      c.names.Dedup,
		window:     w,
		sweepEvery: min(max(w/8, minSweepEvery), maxSweepEvery),
		parts:      map[int32]*dedupPart{},
	}
	d.sweepCtx, d.stopSweeps = context.WithCancel(c.base)
	return d
}

func newDedupPart() *dedupPart {
	return &dedupPart{m: map[digest]entry{}, scan: newRestoreScan()}
}

func newRestoreScan() *restoreScan { return &restoreScan{stale: map[digest][]byte{}, live: -1} }

// restoring returns how many owned partitions are still being restored.
func (d *dedupState) restoring() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, p := range d.parts {
		if p.owned && !p.ready {
			n++
		}
	}
	return n
}

func (d *dedupState) part(p int32) *dedupPart {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.parts[p]
}

// entries returns the number of remembered event ids.
func (d *dedupState) entries() int {
	d.mu.Lock()
	ps := make([]*dedupPart, 0, len(d.parts))
	for _, p := range d.parts {
		ps = append(ps, p)
	}
	d.mu.Unlock()
	n := 0
	for _, p := range ps {
		p.mu.Lock()
		n += len(p.m)
		p.mu.Unlock()
	}
	return n
}

// seen reports whether the event id with digest k (of ev) was processed or
// dead-lettered within the window (as of now), in the partition state st. A
// replayed record (hookline-replayed-from) of a dead-lettered event is not a
// duplicate: replaying dead letters is the point.
func (d *dedupState) seen(st *dedupPart, k digest, ev Event, now time.Time) bool {
	if st == nil {
		return false
	}
	st.mu.Lock()
	e, ok := st.m[k]
	st.mu.Unlock()
	if !ok || e.expiryMs() <= now.UnixMilli() {
		return false
	}
	if _, replayed := headers.Get(ev.Headers, headers.ReplayedFrom); replayed {
		// A replay of a dead letter is wanted work; a replay of an event
		// that was processed runs only when the operator forced it.
		if e.deadLettered() || headers.Value(ev.Headers, headers.ReplayForce) == "true" {
			return false
		}
	}
	return true
}

// dedupValue is the JSON value of a dedup record.
func dedupValue(outcome string, at time.Time) []byte {
	// outcome and the timestamp need no JSON escaping.
	b := make([]byte, 0, 64)
	b = append(b, `{"outcome":"`...)
	b = append(b, outcome...)
	b = append(b, `","at":"`...)
	b = append(b, headers.FormatTime(at)...)
	return append(b, `"}`...)
}

// record writes the dedup record of a terminal outcome, waits for the
// broker's acknowledgement and remembers the id. It fails only when ctx is
// done.
func (d *dedupState) record(ctx context.Context, p int32, id, outcome string) error {
	if id == "" {
		return ctx.Err()
	}
	now := time.Now()
	rec := &kgo.Record{Topic: d.topic, Partition: p, Key: []byte(id), Value: dedupValue(outcome, now)}
	if err := d.c.produce(ctx, rec); err != nil {
		return err
	}
	// A partition no longer owned has no state here: its next owner
	// restores the record from the topic.
	d.remember(d.part(p), digestOf(rec.Key), outcome == outcomeDeadLettered, now)
	return nil
}

// processedRecord sets rec to the "processed" dedup record of the event
// whose id is key, read from partition p.
func (d *dedupState) processedRecord(rec *kgo.Record, p int32, key []byte, now time.Time) {
	// A set timestamp spares the producer a clock read per record.
	*rec = kgo.Record{Topic: d.topic, Partition: p, Key: key, Value: d.processedValue(now), Timestamp: now}
}

// processedValue returns dedupValue(outcomeProcessed, now), shared by the
// records of one millisecond (the resolution of the "at" field).
func (d *dedupState) processedValue(now time.Time) []byte {
	ms := now.UnixMilli()
	if v := d.val.Load(); v != nil && v.ms == ms {
		return v.val
	}
	v := &msValue{ms, dedupValue(outcomeProcessed, time.UnixMilli(ms))}
	d.val.Store(v)
	return v.val
}

// remember notes a dedup entry for digest k in the partition state st (nil:
// not owned, nothing to do).
func (d *dedupState) remember(st *dedupPart, k digest, deadLettered bool, now time.Time) {
	if st == nil {
		return
	}
	st.mu.Lock()
	st.put(k, d.expiryMs(now.UnixMilli()), deadLettered)
	st.mu.Unlock()
}

// expiryMs is when an entry remembered at unix ms nowMs expires.
func (d *dedupState) expiryMs(nowMs int64) int64 { return nowMs + d.window.Milliseconds() }

// put sets the entry of digest k. st.mu is held.
func (st *dedupPart) put(k digest, exp int64, deadLettered bool) {
	st.m[k] = makeEntry(exp, deadLettered)
	if st.nextSweepMs != 0 && exp < st.nextSweepMs { // 0 means a sweep is due anyway
		st.nextSweepMs = exp
	}
}

// apply applies one record of <base>.dedup read from the log. st.mu is held.
// It returns the record's digest and, for a value, its expiry.
func (st *dedupPart) apply(r *kgo.Record, window time.Duration, nowMs int64) (k digest, exp int64) {
	k = digestOf(r.Key)
	if r.Value == nil {
		delete(st.m, k)
		return k, 0
	}
	exp = recordAt(r).Add(window).UnixMilli()
	if exp <= nowMs {
		// Expired. Anything earlier for this id is older still.
		delete(st.m, k)
		return k, exp
	}
	st.m[k] = makeEntry(exp, bytes.Contains(r.Value, []byte(`"`+outcomeDeadLettered+`"`)))
	return k, exp
}

var atField = []byte(`"at":"`)

// recordAt returns the "at" time of a dedup record, or its timestamp when
// the value has none.
func recordAt(r *kgo.Record) time.Time {
	v := r.Value
	if i := bytes.Index(v, atField); i >= 0 {
		v = v[i+len(atField):]
		if j := bytes.IndexByte(v, '"'); j > 0 {
			if t, err := time.Parse(time.RFC3339Nano, string(v[:j])); err == nil {
				return t
			}
		}
	}
	return r.Timestamp
}

// assigned starts restoring the dedup state of the newly owned partition
// numbers and forgets the state of partitions no longer owned.
func (d *dedupState) assigned(parts map[int32]bool) {
	d.mu.Lock()
	for p := range d.parts {
		if !parts[p] {
			delete(d.parts, p)
		}
	}
	if d.cancelRestore != nil {
		d.cancelRestore()
	}
	d.gen++
	gen := d.gen
	var todo []int32
	for p := range parts {
		st := d.parts[p]
		if st == nil {
			st = newDedupPart()
			d.parts[p] = st
		}
		st.ready, st.owned = false, true
		todo = append(todo, p)
	}
	ctx, cancel := context.WithCancel(d.c.base)
	d.cancelRestore = cancel
	d.mu.Unlock()
	if len(todo) > 0 {
		go d.restore(ctx, gen, todo)
	}
}

// revoked stops restoring partitions that are no longer owned. Their state
// is kept until the next assignment, which reads only what was written since.
func (d *dedupState) revoked(owned map[int32]bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for p, st := range d.parts {
		if !owned[p] {
			st.ready, st.owned = false, false
		}
	}
	if len(owned) == 0 && d.cancelRestore != nil {
		d.cancelRestore()
		d.cancelRestore = nil
	}
}

// stop cancels a running restore or sweep.
func (d *dedupState) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopSweeps()
	if d.cancelRestore != nil {
		d.cancelRestore()
		d.cancelRestore = nil
	}
}

// markReady marks p restored (if the assignment did not change meanwhile)
// and schedules its lanes.
func (d *dedupState) markReady(gen int, p int32, took time.Duration) {
	d.mu.Lock()
	st := d.parts[p]
	if d.gen != gen || st == nil {
		d.mu.Unlock()
		return
	}
	st.ready = true
	d.mu.Unlock()
	d.failure.Store(nil)
	d.c.m.restoreSecs.Observe(took.Seconds())
	c := d.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, l := range c.lanes {
		if k.part == p {
			l.dp = st
			c.schedule(l)
		}
	}
}

// retry runs fn until it succeeds or ctx is done, backing off between tries.
func (d *dedupState) retry(ctx context.Context, what string, fn func() error) error {
	return retryBackoff(ctx, func() error {
		err := fn()
		if err == nil {
			d.failure.Store(nil) // the step works again: Ready must not blame it
		}
		return err
	}, func(err error) {
		d.noteFailure(what, err)
		d.c.rl.Log(context.Background(), slog.LevelWarn, "dedup:"+what, "dedup state: "+what+" failed; retrying", "topic", d.topic, "err", err)
	})
}

// endOffsets returns the high watermarks of the dedup topic's partitions.
func (d *dedupState) endOffsets(ctx context.Context) (map[int32]int64, error) {
	var out map[int32]int64
	err := d.retry(ctx, "list end offsets", func() error {
		ends, err := kadm.NewClient(d.c.prod).ListEndOffsets(ctx, d.topic)
		if err != nil {
			return err
		}
		if err := ends.Error(); err != nil {
			return err
		}
		out = map[int32]int64{}
		ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
		return nil
	})
	return out, err
}

// read consumes the dedup topic's partitions from the given offsets until
// each reaches its end offset or fn returns stop for it; fn runs for each
// record in offset order. done is called once per partition when it ends.
func (d *dedupState) read(ctx context.Context, from, until map[int32]int64,
	fn func(p int32, r *kgo.Record) (stop bool), done func(p int32)) error {
	offs := map[int32]kgo.Offset{}
	for p, o := range from {
		if o >= until[p] {
			done(p)
			continue
		}
		offs[p] = kgo.NewOffset().At(o)
	}
	if len(offs) == 0 {
		return nil
	}
	var cl *kgo.Client
	err := d.retry(ctx, "connect", func() (err error) {
		cl, err = kafkaconf.NewReader(ctx, d.c.cfg.Kafka,
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{d.topic: offs}),
			kgo.FetchMaxPartitionBytes(8<<20),
			kgo.FetchMaxBytes(64<<20),
		)
		return err
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(offs) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fs.EachError(func(t string, p int32, err error) {
			d.noteFailure("fetch", err)
			d.c.rl.Log(context.Background(), slog.LevelWarn, "dedup:fetch", "dedup state: fetch failed; the client retries", "topic", t, "partition", p, "err", err)
		})
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			p := fp.Partition
			if _, ok := offs[p]; !ok {
				return
			}
			for _, r := range fp.Records {
				if fn(p, r) || r.Offset+1 >= until[p] {
					delete(offs, p)
					cl.PauseFetchPartitions(map[string][]int32{d.topic: {p}})
					done(p)
					return
				}
			}
		})
	}
	return nil
}

// restore reads the dedup topic's partitions parts from where this member
// last read up to their high watermarks.
func (d *dedupState) restore(ctx context.Context, gen int, parts []int32) {
	d.ioMu.Lock()
	defer d.ioMu.Unlock()
	start := time.Now()
	ends, err := d.endOffsets(ctx)
	if err != nil {
		return
	}
	from, until := map[int32]int64{}, map[int32]int64{}
	sts := map[int32]*dedupPart{}
	for _, p := range parts {
		st := d.part(p)
		if st == nil {
			continue
		}
		end := ends[p]
		if st.readTo > end {
			// The topic was recreated or truncated: start over.
			st.mu.Lock()
			clear(st.m)
			st.mu.Unlock()
			st.readTo, st.sweepFrom, st.nextSweepMs = 0, 0, 0
			st.scan = newRestoreScan()
		}
		sts[p] = st
		from[p], until[p] = st.readTo, end
	}
	nowMs := time.Now().UnixMilli()
	var tombs []tomb
	scanned := map[int32]*restoreScan{}
	var read, entries int64
	var restored []int32
	err = d.read(ctx, from, until, func(p int32, r *kgo.Record) bool {
		read++
		st := sts[p]
		st.mu.Lock()
		k, exp := st.apply(r, d.window, nowMs)
		st.mu.Unlock()
		if st.scan != nil {
			st.scan.note(r, k, exp, nowMs)
		}
		st.readTo = r.Offset + 1
		return false
	}, func(p int32) {
		st := sts[p]
		st.mu.Lock()
		if sc := st.scan; sc != nil {
			// The whole log was read: the sweep starts at the first live
			// entry, and the expired ones are tombstoned below.
			for k, key := range sc.stale {
				tombs = append(tombs, tomb{p, key, k})
			}
			st.sweepFrom, st.nextSweepMs = st.readTo, noSweepMs
			if sc.live >= 0 {
				st.sweepFrom, st.nextSweepMs = sc.live, sc.liveExp
			}
			scanned[p], st.scan = sc, nil
		} else {
			st.nextSweepMs = 0 // look for expired entries once after a restore
		}
		n := len(st.m)
		st.mu.Unlock()
		entries += int64(n)
		restored = append(restored, p)
		d.markReady(gen, p, time.Since(start))
	})
	if err != nil && ctx.Err() == nil {
		d.c.log.Warn("dedup restore failed", "err", err)
	}
	if len(restored) > 0 {
		// Once per assignment, after the partitions were marked ready one
		// by one: after a restart it is the line that says what the
		// consumer remembers.
		slices.Sort(restored)
		d.c.log.Info("dedup state restored", "topic", d.topic, "partitions", restored, "records_read", read,
			"entries", entries, "took", time.Since(start).Round(time.Millisecond).String())
	}
	// An id handled again since the read (its partition is ready) has a
	// live entry now: a tombstone written after its record would delete it.
	nowMs = time.Now().UnixMilli()
	keep := tombs[:0]
	for _, t := range tombs {
		st := sts[t.p]
		st.mu.Lock()
		e, ok := st.m[t.dig]
		st.mu.Unlock()
		if !ok || e.expiryMs() <= nowMs {
			keep = append(keep, t)
		}
	}
	tombs = keep
	if len(tombs) == 0 {
		return
	}
	if err := d.writeTombstones(ctx, tombs); err != nil {
		// Not written: the sweep looks at the whole log again.
		for p := range scanned {
			st := sts[p]
			st.mu.Lock()
			st.sweepFrom, st.nextSweepMs = 0, 0
			st.mu.Unlock()
		}
		return
	}
	d.c.log.Debug("dedup entries expired while not owned", "tombstones", len(tombs))
}

// noSweepMs is nextSweepMs when nothing live is left in the log: the next
// remembered entry sets it.
const noSweepMs = 1<<62 - 1

// tomb is a tombstone to write: the key of an expired entry in partition p.
type tomb struct {
	p   int32
	key []byte
	dig digest // of key, as the restore and the sweep computed it
}

// tombChunk is how many tombstones writeTombstones has in flight at once.
const tombChunk = 1000

// writeTombstones writes tombs with up to tombChunk of them in flight (not
// one at a time: each would wait out the producer's linger), retrying failed
// ones with backoff (retryBackoff) until ctx ends. A tombstone written twice
// does no harm.
func (d *dedupState) writeTombstones(ctx context.Context, tombs []tomb) error {
	return retryBackoff(ctx, func() error {
		var (
			mu      sync.Mutex
			failed  []tomb
			lastErr error
			wg      sync.WaitGroup
		)
		// At most tombChunk at a time: the producer's buffer (franz-go's
		// 50,000 records) is shared with the workers' dedup records, and
		// a sweep after a long stop can expire far more entries.
		for lo := 0; lo < len(tombs); lo += tombChunk {
			for _, t := range tombs[lo:min(lo+tombChunk, len(tombs))] {
				wg.Add(1)
				d.c.prod.Produce(ctx, &kgo.Record{Topic: d.topic, Partition: t.p, Key: t.key}, func(_ *kgo.Record, err error) {
					if err != nil {
						mu.Lock()
						failed, lastErr = append(failed, t), err
						mu.Unlock()
					}
					wg.Done()
				})
			}
			wg.Wait()
		}
		tombs = failed // the next try writes only these
		return lastErr
	}, func(err error) { d.c.produceFailed(&kgo.Record{Topic: d.topic, Partition: tombs[0].p}, err) })
}

// maintain starts a sweep for expired entries when one is due.
func (d *dedupState) maintain(context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sweeping || d.sweepCtx.Err() != nil || time.Since(d.lastSweep) < d.sweepEvery {
		return
	}
	d.sweeping = true
	d.lastSweep = time.Now()
	go func() {
		d.sweep(d.sweepCtx)
		d.mu.Lock()
		d.sweeping = false
		d.mu.Unlock()
	}()
}

// sweep forgets expired entries and writes their tombstones, reading the
// dedup log from each ready partition's sweep cursor up to the first entry
// that is still live (the log is in time order).
func (d *dedupState) sweep(ctx context.Context) {
	d.ioMu.Lock()
	defer d.ioMu.Unlock()
	nowMs := time.Now().UnixMilli()
	d.mu.Lock()
	sts := map[int32]*dedupPart{}
	for p, st := range d.parts {
		if !st.ready {
			continue
		}
		st.mu.Lock()
		due := st.nextSweepMs == 0 || st.nextSweepMs <= nowMs
		st.mu.Unlock()
		if due {
			sts[p] = st
		}
	}
	d.mu.Unlock()
	if len(sts) == 0 {
		return
	}
	ends, err := d.endOffsets(ctx)
	if err != nil {
		return
	}
	from, until := map[int32]int64{}, map[int32]int64{}
	for p, st := range sts {
		from[p], until[p] = st.sweepFrom, ends[p]
	}
	var tombs []tomb
	next := map[int32]int64{} // new sweep cursor per partition
	nextMs := map[int32]int64{}
	err = d.read(ctx, from, until, func(p int32, r *kgo.Record) bool {
		if r.Value == nil {
			next[p] = r.Offset + 1
			return false
		}
		exp := recordAt(r).Add(d.window).UnixMilli()
		if exp > nowMs {
			next[p], nextMs[p] = r.Offset, exp
			return true
		}
		st := sts[p]
		k := digestOf(r.Key)
		st.mu.Lock()
		e, ok := st.m[k]
		newer := ok && e.expiryMs() > nowMs
		if !newer {
			delete(st.m, k)
		}
		st.mu.Unlock()
		if !newer {
			tombs = append(tombs, tomb{p, r.Key, k})
		}
		next[p] = r.Offset + 1
		return false
	}, func(int32) {})
	if err != nil {
		return
	}
	if err := d.writeTombstones(ctx, tombs); err != nil {
		return // cursors stay; the next sweep tries again
	}
	for p, st := range sts {
		if o, ok := next[p]; ok {
			st.sweepFrom = o
		}
		st.mu.Lock()
		if ms, ok := nextMs[p]; ok {
			st.nextSweepMs = ms
		} else if st.nextSweepMs <= nowMs {
			// Nothing live left in the log: wait for the next record.
			st.nextSweepMs = noSweepMs
		}
		st.mu.Unlock()
	}
	if len(tombs) > 0 {
		d.c.log.Debug("dedup entries expired", "tombstones", len(tombs))
	}
}
