package dlq

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/ctxtime"
	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/topics"
)

// DefaultDeliveryTimeout bounds how long one replayed record may wait for
// the broker's acknowledgement before the replay stops as a partial failure.
const DefaultDeliveryTimeout = 30 * time.Second

// keptHeaders are the hookline headers a replayed record keeps: the identity
// of the event as the receiver recorded it. Every other hookline-* header
// (attempt, original-*, failed-at, error, error-class, consumer-group,
// due-at, earlier replay headers) describes the failed life and is dropped,
// so the consumer sees a fresh event: attempt 0, new original-* on its
// first failure. Headers without the hookline- prefix are kept as they are.
var keptHeaders = map[string]bool{
	headers.EventID:         true,
	headers.ReceiptID:       true,
	headers.Source:          true,
	headers.ReceivedAt:      true,
	headers.ContentType:     true,
	headers.ConversationID:  true,
	headers.SignatureHeader: true,
	headers.Signature:       true,
}

// ReplayedFrom formats the hookline-replayed-from value of a dead letter:
// "<topic>/<partition>/<offset>".
func ReplayedFrom(topic string, partition int32, offset int64) string {
	return topic + "/" + strconv.Itoa(int(partition)) + "/" + strconv.FormatInt(offset, 10)
}

// ReplayRecord builds the record that replays l into topic to: same key,
// value and partition number, headers per keptHeaders plus
// hookline-replayed-from and hookline-replay-count (l's count + 1). dueAt,
// when not zero, sets hookline-due-at (for a retry tier: due at once).
func ReplayRecord(l *Letter, to string, dueAt time.Time) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(l.Headers)+3)
	for _, h := range l.Headers {
		if strings.HasPrefix(h.Key, "hookline-") && !keptHeaders[h.Key] {
			continue
		}
		hs = append(hs, kgo.RecordHeader{Key: h.Key, Value: bytes.Clone(h.Value)})
	}
	hs = append(hs,
		kgo.RecordHeader{Key: headers.ReplayedFrom, Value: []byte(ReplayedFrom(l.Topic, l.Partition, l.Offset))},
		kgo.RecordHeader{Key: headers.ReplayCount, Value: []byte(strconv.Itoa(l.ReplayCount + 1))},
	)
	if !dueAt.IsZero() {
		hs = append(hs, kgo.RecordHeader{Key: headers.DueAt, Value: []byte(headers.FormatTime(dueAt))})
	}
	return &kgo.Record{
		Topic:     to,
		Partition: l.Partition,
		Key:       bytes.Clone(l.Key),
		Value:     bytes.Clone(l.Value),
		Headers:   hs,
	}
}

// Action is what Replay did with one selected dead letter.
type Action int

// The actions of a replay step.
const (
	Replayed         Action = iota // written to the target and acknowledged
	WouldReplay                    // dry run: would be written
	SkippedProcessed               // the dedup state says the event was processed
	SkippedDuplicate               // a newer dead letter of the same event id is replayed instead
	SkippedGone                    // deleted by retention between selecting and replaying
	Failed                         // the broker did not acknowledge it
)

func (a Action) String() string {
	switch a {
	case Replayed:
		return "replayed"
	case WouldReplay:
		return "would replay"
	case SkippedProcessed:
		return "skipped: already processed"
	case SkippedDuplicate:
		return "skipped: a newer dead letter of the same event id is replayed instead"
	case SkippedGone:
		return "skipped: deleted by retention"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// Step reports one selected dead letter's outcome.
type Step struct {
	Action      Action
	Letter      *Letter   // nil for SkippedGone (Pos is set)
	Pos         Position  // position in the dead-letter topic
	ProcessedAt time.Time // SkippedProcessed: the "at" of the dedup record
	Err         error     // Failed
	Done, Total int       // selected dead letters finished (not Failed) so far, of Total
}

// ReplayConfig says what to replay where.
type ReplayConfig struct {
	DLQ   string // the dead-letter topic read, <base>.dlq
	Dedup string // <base>.dedup, read to skip processed events; required unless Force
	To    string // target topic: <base> or one of its retry tiers
	// DueAt sets hookline-due-at to the replay time (for a retry-tier
	// target: due at once, not after the tier's delay; the consumer still
	// handles it after the records waiting ahead of it in its partition).
	DueAt bool

	// Filter selects the dead letters. Those of class malformed are
	// selected only when Filter.ErrorClasses names malformed: a handler
	// gets such a body only when someone asked for it.
	Filter Filter
	// Limit > 0 writes at most Limit records: the oldest matching dead
	// letters that are not skipped (skipped ones do not count), so running
	// the same limited replay again continues with the next ones once the
	// consumer has processed the first.
	Limit int
	// ResumeFrom skips the matching dead letters before it (partition-major
	// order), as printed by a replay that stopped part way.
	ResumeFrom *Position
	Force      bool // replay even events the dedup state marks processed
	DryRun     bool // select and report, write nothing
	// Rate limits writes to this many records per second (0: unlimited).
	Rate            float64
	DeliveryTimeout time.Duration // default DefaultDeliveryTimeout

	// OnPlan is called once the selection is known (before any write).
	OnPlan func(Plan)
	// OnStep is called for each selected dead letter once it and every
	// dead letter before it finished (so in the order of pass 3), from one
	// goroutine at a time, and never after Replay returned.
	OnStep func(Step)
}

// Plan is the selection a replay works through.
type Plan struct {
	Matched  int // dead letters matching the filter
	Selected int // after ResumeFrom and Limit: replayed or skipped
	// LeftOutMalformed counts the dead letters of class malformed (bodies
	// the receiver could not parse) that matched the other filters but
	// were left out because Filter.ErrorClasses does not name malformed,
	// except those of an event replayed from a selected dead letter of
	// another class; they are not in Matched.
	LeftOutMalformed int
}

// Result counts what a replay did.
type Result struct {
	Plan
	Replayed         int // acknowledged (dry run: would be replayed)
	SkippedProcessed int
	SkippedDuplicate int
	SkippedGone      int
	// Stopped is set when the replay did not finish: the first selected
	// dead letter (partition-major) not known to be replayed. Rerunning the
	// same replay with ResumeFrom = *Stopped finishes it.
	Stopped *Position
	// ReplayedAfterStop counts records after Stopped that were replayed
	// anyway (in flight when the replay stopped); a resumed replay writes
	// them again, and the consumer's dedup absorbs the copies once one is
	// processed.
	ReplayedAfterStop int
}

// Skipped is the number of selected dead letters not replayed on purpose.
func (r Result) Skipped() int { return r.SkippedProcessed + r.SkippedDuplicate + r.SkippedGone }

// candidate is a matching dead letter remembered between the passes: small,
// so a replay of a large dead-letter topic does not hold the payloads.
type candidate struct {
	pos       Position
	t         int64 // unix ms of Letter.Time
	id        string
	malformed bool // class malformed
	// dup: a newer matching dead letter of the same event id exists; it is
	// the one replayed.
	dup bool
}

// newer orders candidates as dlq show does: by Letter.Time, then position.
func newer(a, b candidate) int {
	return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.pos.Partition, b.pos.Partition), cmp.Compare(a.pos.Offset, b.pos.Offset))
}

// markDuplicates marks every candidate but the newest of each event id.
// The newest dead letter of an event carries its latest error and replay
// count, so replaying it continues hookline-replay-count and points
// hookline-replayed-from at the latest failure; the older ones are reported
// as duplicates.
func markDuplicates(cands []candidate) map[string]Position {
	newest := map[string]int{}
	for i, cd := range cands {
		if cd.id == "" {
			continue
		}
		if j, ok := newest[cd.id]; !ok || newer(cd, cands[j]) > 0 {
			newest[cd.id] = i
		}
	}
	out := make(map[string]Position, len(newest))
	for i := range cands {
		if j, ok := newest[cands[i].id]; ok {
			cands[i].dup = j != i
			out[cands[i].id] = cands[j].pos
		}
	}
	return out
}

// Replay republishes the dead letters selected by cfg. It works in passes,
// each bounded by the end offsets when it starts:
//
//  1. scan the dead-letter topic, remember the position, time and event id
//     of each match; drop those before ResumeFrom;
//  2. unless Force, read the dedup partitions of the matches and note the
//     event ids whose latest entry says "processed"; with a Limit, keep the
//     oldest matches up to the Limit-th that would be written;
//  3. per partition in ascending order, read the selected records again and
//     write each to cfg.To (same key and partition number; idempotent
//     producer, acks=all), paced by Rate, skipping processed events and,
//     of an event id with several matching dead letters, all but the newest
//     (by Letter.Time, as dlq show --raw picks); a partition's writes are
//     acknowledged before the next partition starts.
//
// The dead-letter topic is never written to. On a write failure (or when
// ctx is done) Replay stops issuing writes, waits for the outcome of those
// in flight (closing its producer when the broker has not answered within
// the delivery timeout and a slack, which fails them), and returns an error
// with Result.Stopped set to the lowest selected position not acknowledged.
func (c *Client) Replay(ctx context.Context, cfg ReplayConfig) (Result, error) {
	var res Result
	if err := cfg.Filter.Validate(); err != nil {
		return res, err
	}
	if cfg.To == "" || cfg.To == cfg.DLQ || (cfg.To == cfg.Dedup && cfg.Dedup != "") {
		return res, fmt.Errorf("replay target %q: must be the main topic or a retry tier, not the dead-letter or dedup topic", cfg.To)
	}
	if cfg.Dedup == "" && !cfg.Force {
		return res, errors.New("replay needs the dedup topic to skip processed events (or Force)")
	}
	if cfg.Rate < 0 {
		return res, fmt.Errorf("rate %v: must be 0 (unlimited) or positive", cfg.Rate)
	}
	dlqParts, err := c.partitions(ctx, cfg.DLQ)
	if err != nil {
		return res, err
	}
	if rf := cfg.ResumeFrom; rf != nil && int(rf.Partition) >= dlqParts {
		// Everything would sort before it: the replay would quietly do
		// nothing. A typo, or a position printed for another pipeline.
		have := fmt.Sprintf("%d partitions (0..%d)", dlqParts, dlqParts-1)
		if dlqParts == 1 {
			have = "1 partition (0)"
		}
		return res, fmt.Errorf("resume position %s: %s has %s, there is no partition %d; use the position the stopped replay of this pipeline printed",
			rf, cfg.DLQ, have, rf.Partition)
	}
	toParts, err := c.partitions(ctx, cfg.To)
	if err != nil {
		return res, err
	}

	// Pass 1: select. Event ids are given as to Find: an id, or a prefix
	// of at least MinPrefix characters, maybe copied from a table with its
	// ellipsis.
	f, refs := cfg.Filter, make([]string, len(cfg.Filter.EventIDs))
	for i, id := range f.EventIDs {
		refs[i] = EventIDRef(id)
	}
	f.EventIDs = nil
	spans, err := c.spans(ctx, cfg.DLQ, f.Since)
	if err != nil {
		return res, err
	}
	var cands []candidate
	// named: every event id a ref matches, whatever the other filters say,
	// so that an exact id is never read as the prefix of a longer one that
	// happens to pass them.
	named := map[string]bool{}
	err = c.scan(ctx, cfg.DLQ, spans, func(r *kgo.Record) error {
		l := FromRecord(r)
		if len(refs) > 0 {
			if !matchesAnyRef(refs, l.EventID) {
				return nil
			}
			named[l.EventID] = true
		}
		if f.Match(&l) {
			cands = append(cands, candidate{pos: l.Pos(), t: l.Time().UnixMilli(), id: l.EventID, malformed: l.ErrorClass == headers.ClassMalformed})
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("read %s: %w", cfg.DLQ, err)
	}
	if cands, err = narrowEventIDs(cfg.DLQ, refs, named, cands); err != nil {
		return res, err
	}
	if !slices.Contains(f.ErrorClasses, headers.ClassMalformed) {
		// A malformed letter of an event that has a selected letter of
		// another class (it was replayed and failed again) is not left
		// out: the event is replayed, from that newer letter.
		replayed := map[string]bool{}
		for _, cd := range cands {
			if !cd.malformed && cd.id != "" {
				replayed[cd.id] = true
			}
		}
		cands = slices.DeleteFunc(cands, func(cd candidate) bool {
			if cd.malformed && (cd.id == "" || !replayed[cd.id]) {
				res.LeftOutMalformed++
			}
			return cd.malformed
		})
	}
	// Before ResumeFrom and Limit, so a resumed or limited replay picks
	// the same dead letter of an event as a whole one.
	newest := markDuplicates(cands)
	res.Matched = len(cands)
	if rf := cfg.ResumeFrom; rf != nil {
		cands = slices.DeleteFunc(cands, func(c candidate) bool { return c.pos.Less(*rf) })
	}

	// Pass 2: dedup state.
	var processed map[dedupKey]time.Time
	if !cfg.Force && len(cands) > 0 {
		processed, err = c.processed(ctx, cfg.Dedup, cands)
		if err != nil {
			return res, err
		}
	}

	// The limit counts what would be written, oldest first: skipped dead
	// letters before the limit is reached are selected (and reported), the
	// rest is not.
	if cfg.Limit > 0 {
		slices.SortFunc(cands, newer)
		n := 0
		for i, cd := range cands {
			writable := !cd.dup
			if cd.id != "" && writable {
				_, done := processed[dedupKey{cd.pos.Partition, cd.id}]
				writable = !done
			}
			if writable {
				if n++; n == cfg.Limit {
					cands = cands[:i+1]
					break
				}
			}
		}
		// An older dead letter is reported as a duplicate only in the run
		// that replays the newest (which sorts after it).
		kept := map[Position]bool{}
		for _, cd := range cands {
			kept[cd.pos] = true
		}
		cands = slices.DeleteFunc(cands, func(cd candidate) bool { return cd.dup && !kept[newest[cd.id]] })
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.pos.Partition, b.pos.Partition), cmp.Compare(a.pos.Offset, b.pos.Offset))
	})
	res.Selected = len(cands)
	for _, cd := range cands {
		if int(cd.pos.Partition) >= toParts {
			return res, fmt.Errorf("%s has %d partitions but the dead letter at %s is in partition %d of %s (%d partitions): the pipeline is not co-partitioned; run `hookline topics check`",
				cfg.To, toParts, cd.pos, cd.pos.Partition, cfg.DLQ, dlqParts)
		}
	}
	if cfg.OnPlan != nil {
		cfg.OnPlan(res.Plan)
	}
	if len(cands) == 0 {
		return res, nil
	}

	// Pass 3: replay, partition by partition.
	r := &replayer{c: c, cfg: cfg, res: &res, processed: processed}
	return res, r.run(ctx, cands)
}

// narrowEventIDs resolves the event-id refs of a replay as Find does: a ref
// that is an event id of the dead-letter topic (named: every id some ref
// matches) selects that id only; otherwise it is a prefix and must name a
// single event id, since a replay writes.
func narrowEventIDs(topic string, refs []string, named map[string]bool, cands []candidate) ([]candidate, error) {
	if len(refs) == 0 {
		return cands, nil
	}
	keep := map[string]bool{}
	for _, ref := range refs {
		if named[ref] {
			keep[ref] = true
			continue
		}
		var ids []string
		for id := range named {
			if matchesRef(ref, id) {
				ids = append(ids, id)
			}
		}
		if len(ids) > 1 {
			slices.Sort(ids)
			return nil, fmt.Errorf("event id %q is the prefix of %d event ids in %s; give more of it: %s", ref, len(ids), topic, strings.Join(ids, ", "))
		}
		for _, id := range ids {
			keep[id] = true
		}
	}
	return slices.DeleteFunc(cands, func(cd candidate) bool { return !keep[cd.id] }), nil
}

// dedupRecord is the value of a <base>.dedup record.
type dedupRecord struct {
	Outcome string `json:"outcome"`
	At      string `json:"at"`
}

// dedupKey names an event's dedup entry: the dedup topic is co-partitioned,
// so the entry of a dead letter in partition p lives in partition p.
type dedupKey struct {
	part int32
	id   string
}

// processed reads the dedup partitions of cands and returns the entries (of
// cands) whose latest dedup record says "processed" and is not deleted by a
// tombstone, with the record's "at" time. Outcome "dead-lettered" does not
// count: the consumer handles a replayed copy of a dead-lettered event.
func (c *Client) processed(ctx context.Context, topic string, cands []candidate) (map[dedupKey]time.Time, error) {
	ids := map[int32]map[string]bool{}
	for _, cd := range cands {
		if cd.id == "" {
			continue
		}
		if ids[cd.pos.Partition] == nil {
			ids[cd.pos.Partition] = map[string]bool{}
		}
		ids[cd.pos.Partition][cd.id] = true
	}
	if len(ids) == 0 {
		return nil, nil
	}
	all, err := c.spans(ctx, topic, time.Time{})
	if err != nil {
		return nil, fmt.Errorf("dedup state (use --force to replay without checking it): %w", err)
	}
	spans := map[int32]span{}
	for p := range ids {
		if s, ok := all[p]; ok {
			spans[p] = s
		}
	}
	type state struct {
		processed bool
		at        time.Time
	}
	latest := map[dedupKey]state{}
	err = c.scan(ctx, topic, spans, func(r *kgo.Record) error {
		if !ids[r.Partition][string(r.Key)] {
			return nil
		}
		k := dedupKey{r.Partition, string(r.Key)}
		if r.Value == nil {
			delete(latest, k)
			return nil
		}
		var v dedupRecord
		if json.Unmarshal(r.Value, &v) != nil {
			return nil // not a dedup value; the consumer ignores it too
		}
		at, err := headers.ParseTime(v.At)
		if err != nil {
			at = r.Timestamp
		}
		latest[k] = state{processed: v.Outcome == "processed", at: at}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read dedup state %s: %w", topic, err)
	}
	out := map[dedupKey]time.Time{}
	for k, s := range latest {
		if s.processed {
			out[k] = s.at
		}
	}
	return out, nil
}

// replayBufferBytes bounds the bytes of the records a replay has written
// and not yet seen acknowledged (at least two of the target's largest), so
// a broker slower than the reading does not make the replay hold a whole
// dead-letter partition of large payloads in memory.
var replayBufferBytes = 32 << 20

// replayBufferRecords bounds the number of those records.
const replayBufferRecords = 1000

// errNoRoom: the writes in flight fill the buffer and the broker has
// acknowledged none of them within the delivery timeout and flushSlack.
var errNoRoom = errors.New("no acknowledgement frees room for the next write")

// flushSlack is how much longer than the delivery timeout a replay waits
// for the acknowledgements of a partition's writes: the timeout fails a
// record only between attempts, not while a produce request is in flight.
const flushSlack = 5 * time.Second

// closeWait bounds the wait for the outcomes of the writes the producer
// fails when it is closed (its callbacks run on another goroutine).
const closeWait = 10 * time.Second

// errNoOutcome is the error of a write whose outcome never came.
var errNoOutcome = errors.New("no outcome from the producer: the record may or may not have been written")

// replayer is pass 3 of one replay.
type replayer struct {
	c         *Client
	cfg       ReplayConfig
	res       *Result
	processed map[dedupKey]time.Time

	prod      *kgo.Client // nil in a dry run
	closeOnce sync.Once
	timedOut  error // set by settle when the broker did not answer in time
	// stopReading ends the reading of the dead-letter topic (and the wait
	// of the pacer) once a write failed: the rest of a partition may be
	// unreadable for as long as the broker is gone.
	stopReading context.CancelFunc

	mu sync.Mutex // guards the fields below and OnStep calls
	// queue holds the steps not reported yet, in DLQ order. A step is
	// reported once it and every step before it are known, so OnStep sees
	// the dead letters in the order they were read, whenever their writes
	// are acknowledged.
	queue    []*slot
	done     int
	failed   *Position // lowest failed position
	failErr  error
	acked    []Position // replayed positions, for ReplayedAfterStop
	finished bool       // finish ran: nothing is reported any more
	// unresolved counts the writes whose outcome has not come, of
	// unresolvedBytes in all; resolved, when set, is closed once it
	// reaches 0 (see settle).
	unresolved      int
	unresolvedBytes int
	resolved        chan struct{}
	// bufferBytes bounds unresolvedBytes (see room); freed is signalled
	// when an outcome comes.
	bufferBytes int
	freed       chan struct{}
}

// slot is one selected dead letter's step: known, or awaiting the outcome
// of its write (of size bytes).
type slot struct {
	s     Step
	known bool
	size  int
}

// add queues a step whose outcome is known.
func (r *replayer) add(s Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue = append(r.queue, &slot{s: s, known: true})
	r.noteLocked(s)
	r.reportLocked()
}

// await queues the step of a write of size bytes about to be issued;
// resolve completes it.
func (r *replayer) await(l *Letter, size int) *slot {
	r.mu.Lock()
	defer r.mu.Unlock()
	sl := &slot{s: Step{Action: Failed, Letter: l, Pos: l.Pos(), Err: errNoOutcome}, size: size}
	r.queue = append(r.queue, sl)
	r.unresolved++
	r.unresolvedBytes += size
	return sl
}

// room waits until a write of size bytes fits beside the writes whose
// outcome has not come (replayBufferRecords, bufferBytes; a write always
// fits when none is pending). The producer's own limits would block its
// Produce call instead, beyond the reach of an interrupt and of the
// delivery timeout while the broker holds the writes unanswered. room
// returns ctx's error, or errNoRoom after budget without an outcome.
func (r *replayer) room(ctx context.Context, size int, budget time.Duration) error {
	var t *time.Timer
	for {
		r.mu.Lock()
		fits := r.unresolved == 0 ||
			(r.unresolved < replayBufferRecords && r.unresolvedBytes+size <= r.bufferBytes)
		r.mu.Unlock()
		if fits {
			return nil
		}
		if t == nil {
			t = time.NewTimer(budget)
			defer t.Stop()
		}
		select {
		case <-r.freed:
			t.Reset(budget) // progress: the broker answers
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return errNoRoom
		}
	}
}

// resolve records the outcome of a write.
func (r *replayer) resolve(sl *slot, s Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unresolvedBytes -= sl.size
	if r.unresolved--; r.unresolved == 0 && r.resolved != nil {
		close(r.resolved)
		r.resolved = nil
	}
	select {
	case r.freed <- struct{}{}:
	default:
	}
	if r.finished {
		return
	}
	sl.s, sl.known = s, true
	r.noteLocked(s)
	r.reportLocked()
}

// noteLocked tracks failures and acknowledgements as soon as they are
// known (a report may wait for an earlier write).
func (r *replayer) noteLocked(s Step) {
	switch s.Action {
	case Replayed, WouldReplay:
		r.acked = append(r.acked, s.Pos)
	case Failed:
		if r.stopReading != nil {
			r.stopReading()
		}
		if r.failed == nil || s.Pos.Less(*r.failed) {
			p := s.Pos
			r.failed = &p
			r.failErr = s.Err
		}
	}
}

// reportLocked counts and reports the known steps at the head of the queue.
func (r *replayer) reportLocked() {
	n := 0
	for ; n < len(r.queue) && r.queue[n].known; n++ {
		s := r.queue[n].s
		if s.Action != Failed { // not finished: a resumed replay writes it
			r.done++
		}
		switch s.Action {
		case Replayed, WouldReplay:
			r.res.Replayed++
		case SkippedProcessed:
			r.res.SkippedProcessed++
		case SkippedDuplicate:
			r.res.SkippedDuplicate++
		case SkippedGone:
			r.res.SkippedGone++
		}
		s.Done, s.Total = r.done, r.res.Selected
		if r.cfg.OnStep != nil {
			r.cfg.OnStep(s)
		}
	}
	clear(r.queue[:n])
	r.queue = r.queue[n:]
}

func (r *replayer) hasFailed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed != nil
}

func (r *replayer) closeProducer() {
	if r.prod != nil {
		r.closeOnce.Do(r.prod.Close)
	}
}

// settle waits until the outcome of every write issued so far is known. It
// flushes the producer; when the broker has not answered within the
// delivery timeout and flushSlack, it closes the producer, which fails the
// writes still in flight, and waits for those failures to be recorded. So
// a stop position is never chosen while a write before it is in flight.
func (r *replayer) settle() error {
	if r.prod == nil || r.timedOut != nil {
		return r.timedOut
	}
	budget := r.budget()
	fctx, cancel := context.WithTimeout(context.Background(), budget)
	err := r.prod.Flush(fctx)
	cancel()
	if err == nil {
		return nil // every callback has run: franz-go calls them before Flush returns
	}
	return r.abandon(budget)
}

// budget is how long the replay waits for the broker to acknowledge
// anything: the delivery timeout and flushSlack.
func (r *replayer) budget() time.Duration {
	return cmp.Or(r.cfg.DeliveryTimeout, DefaultDeliveryTimeout) + flushSlack
}

// abandon gives up on the broker after it answered nothing for budget: it
// closes the producer, which fails the writes still in flight, and waits
// for those failures to be recorded.
func (r *replayer) abandon(budget time.Duration) error {
	r.timedOut = fmt.Errorf("the broker did not acknowledge every write to %s within %s (is Kafka reachable? --delivery-timeout sets the wait)", r.cfg.To, budget)
	r.closeProducer()
	r.mu.Lock()
	var wait chan struct{}
	if r.unresolved > 0 {
		wait = make(chan struct{})
		r.resolved = wait
	}
	r.mu.Unlock()
	if wait != nil { // the closed producer fails them; bounded all the same
		t := time.NewTimer(closeWait)
		defer t.Stop()
		select {
		case <-wait:
		case <-t.C:
		}
	}
	return r.timedOut
}

func (r *replayer) run(ctx context.Context, cands []candidate) error {
	if !r.cfg.DryRun {
		timeout := cmp.Or(r.cfg.DeliveryTimeout, DefaultDeliveryTimeout)
		// franz-go's default batch limit (1,000,012 bytes) is below what a
		// pipeline topic accepts: a dead letter with a 1 MiB body could
		// not be replayed.
		limit, err := topics.TopicMaxMessageBytes(ctx, r.c.adm, r.cfg.To)
		if err != nil {
			// Most likely no DescribeConfigs permission: replay as
			// before, with franz-go's default; only a dead letter near
			// 1 MiB would then fail, with the broker's message.
			limit = topics.FranzDefaultBatchMaxBytes
		}
		r.prod, err = kafkaconf.NewClient(ctx, r.c.kc,
			kgo.ProducerBatchMaxBytes(limit),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent writes are franz-go's default
			kgo.RecordDeliveryTimeout(timeout),
			// room keeps the writes below these limits: Produce does not
			// block (a blocked Produce heeds neither an interrupt nor
			// the delivery timeout).
			kgo.MaxBufferedRecords(2*replayBufferRecords),
		)
		r.bufferBytes = max(replayBufferBytes, 2*int(limit))
		r.freed = make(chan struct{}, 1)
		if err != nil {
			if ctx.Err() != nil { // interrupted before the first write
				return r.finish(fmt.Errorf("interrupted: %w", ctx.Err()), &cands[0].pos)
			}
			return err
		}
		defer r.closeProducer()
	}
	pace := newPacer(r.cfg.Rate)
	if r.cfg.DryRun {
		pace = newPacer(0)
	}
	// Writes in flight keep going when ctx ends (an interrupt stops new
	// writes only), bounded by the delivery timeout.
	wctx := context.WithoutCancel(ctx)
	// Reading (and pacing) ends on an interrupt or a failed write.
	rctx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	r.mu.Lock()
	r.stopReading = stopReading
	r.mu.Unlock()

	var stopAt *Position // first selected dead letter not issued
	var interrupted error
	for i := 0; i < len(cands) && stopAt == nil; {
		part := cands[i].pos.Partition
		j := i
		for j < len(cands) && cands[j].pos.Partition == part {
			j++
		}
		offsets := cands[i:j]
		next := 0 // index into offsets of the next selected record
		sp := map[int32]span{part: {offsets[0].pos.Offset, offsets[len(offsets)-1].pos.Offset + 1}}
		err := r.c.scan(rctx, r.cfg.DLQ, sp, func(rec *kgo.Record) error {
			for next < len(offsets) && offsets[next].pos.Offset < rec.Offset {
				r.add(Step{Action: SkippedGone, Pos: offsets[next].pos})
				next++
			}
			if next >= len(offsets) {
				return errStop
			}
			if offsets[next].pos.Offset != rec.Offset {
				return nil
			}
			cd := offsets[next]
			next++
			if r.hasFailed() {
				p := Position{rec.Partition, rec.Offset}
				stopAt = &p
				return errStop
			}
			l := FromRecord(rec)
			if id := l.EventID; id != "" {
				if at, ok := r.processed[dedupKey{l.Partition, id}]; ok {
					r.add(Step{Action: SkippedProcessed, Letter: &l, Pos: l.Pos(), ProcessedAt: at})
					return nil
				}
			}
			if cd.dup {
				r.add(Step{Action: SkippedDuplicate, Letter: &l, Pos: l.Pos()})
				return nil
			}
			if r.cfg.DryRun {
				r.add(Step{Action: WouldReplay, Letter: &l, Pos: l.Pos()})
				return nil
			}
			if err := pace.wait(rctx); err != nil {
				p := l.Pos()
				stopAt = &p
				return err
			}
			var due time.Time
			if r.cfg.DueAt {
				due = time.Now()
			}
			out := ReplayRecord(&l, r.cfg.To, due)
			if r.cfg.Force {
				out.Headers = append(out.Headers, kgo.RecordHeader{Key: headers.ReplayForce, Value: []byte("true")})
			}
			size := recordSize(out)
			if err := r.room(rctx, size, r.budget()); err != nil {
				p := l.Pos()
				stopAt = &p
				return err
			}
			// The callback gets a summary: the payload is not needed after
			// the write and must not be kept alive by the reporter.
			sum := summary(l)
			sl := r.await(&sum, size)
			r.prod.Produce(wctx, out, func(_ *kgo.Record, err error) {
				if err != nil {
					r.resolve(sl, Step{Action: Failed, Letter: &sum, Pos: sum.Pos(), Err: err})
					return
				}
				r.resolve(sl, Step{Action: Replayed, Letter: &sum, Pos: sum.Pos()})
			})
			return nil
		})
		if err != nil {
			// The first selected dead letter not yet handled.
			if stopAt == nil {
				switch {
				case next < len(offsets):
					stopAt = &offsets[next].pos
				case j < len(cands):
					stopAt = &cands[j].pos
				}
			}
			if ctx.Err() != nil {
				interrupted = ctx.Err()
				break
			}
			if r.hasFailed() { // reading stopped for the failed write: finish reports it
				return r.finish(nil, stopAt)
			}
			if errors.Is(err, errNoRoom) { // the broker answers nothing
				r.abandon(r.budget())
				return r.finish(nil, stopAt)
			}
			return r.finish(fmt.Errorf("read %s partition %d: %w", r.cfg.DLQ, part, err), stopAt)
		}
		// Selected records the scan never reached were deleted meanwhile
		// (or lie beyond a truncated log end).
		if stopAt == nil {
			for ; next < len(offsets); next++ {
				r.add(Step{Action: SkippedGone, Pos: offsets[next].pos})
			}
		}
		// Finish the partition before starting the next, so a failure stops
		// the replay at an exact partition-major position: no write of a
		// later partition is issued while one of this partition may fail.
		if err := r.settle(); err != nil {
			if stopAt == nil && j < len(cands) {
				stopAt = &cands[j].pos
			}
			return r.finish(err, stopAt)
		}
		i = j
	}
	var why error
	if interrupted != nil && stopAt != nil { // else everything was issued before the interrupt
		why = fmt.Errorf("interrupted: %w", interrupted)
	}
	return r.finish(why, stopAt)
}

// finish waits for the outcome of every write issued (see settle) and turns
// failures into the error and Result.Stopped: the lowest selected position
// whose write was not acknowledged, or stopAt, the first one not issued,
// whichever comes first. Nothing is reported after finish returns.
func (r *replayer) finish(why error, stopAt *Position) error {
	if err := r.settle(); err != nil && why == nil {
		why = err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// A write whose callback did not come even after the producer was
	// closed is not known to be replayed.
	for _, sl := range r.queue {
		if !sl.known {
			sl.known = true
			r.noteLocked(sl.s)
		}
	}
	r.reportLocked()
	r.finished = true
	stop := stopAt
	if r.failed != nil && (stop == nil || r.failed.Less(*stop)) {
		stop = r.failed
		// When the producer was closed for want of an answer, its
		// failures say "client closed": the timeout is the reason.
		if r.timedOut == nil || !(errors.Is(r.failErr, kgo.ErrClientClosed) || errors.Is(r.failErr, errNoOutcome)) {
			why = fmt.Errorf("write to %s failed: %w", r.cfg.To, r.failErr)
		}
	}
	if stop == nil {
		return why
	}
	if why == nil {
		why = errors.New("stopped")
	}
	p := *stop
	r.res.Stopped = &p
	for _, a := range r.acked {
		if p.Less(a) {
			r.res.ReplayedAfterStop++
		}
	}
	return why
}

// recordSize approximates the bytes a record holds in the producer.
func recordSize(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// pacer spaces writes 1/rate apart (a token bucket of depth one); it does
// not burst to catch up after a slow stretch.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return &pacer{}
	}
	return &pacer{interval: time.Duration(float64(time.Second) / rate)}
}

func (p *pacer) wait(ctx context.Context) error {
	if p.interval <= 0 {
		return ctx.Err()
	}
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	if err := ctxtime.Sleep(ctx, p.next.Sub(now)); err != nil {
		return err
	}
	p.next = p.next.Add(p.interval)
	return nil
}
