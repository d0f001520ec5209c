package dlq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/kafkaconf"
)

// sinceSlack widens a --since lookup by record timestamp: a dead letter's
// failed-at is taken just before it is produced, so its record timestamp is
// normally later, but another member's clock (or LogAppendTime) may differ.
const sinceSlack = 5 * time.Minute

// Client reads dead letters and replays them. It holds one metadata/admin
// connection; every scan opens its own short-lived consuming client.
type Client struct {
	kc  kafkaconf.Config
	cl  *kgo.Client
	adm *kadm.Client
	// stall is how long a scan waits without a record while ranges are
	// left before it gives up (DefaultScanStall; 0: never).
	stall time.Duration
}

// DefaultScanStall is how long a read of dead letters (or dedup records)
// waits for the next record before it gives up with an error instead of
// hanging: the broker went away mid-read, or records listed a moment ago
// were deleted since.
const DefaultScanStall = 30 * time.Second

// Dial connects to Kafka (failing fast with a helpful message when no
// broker answers within ctx).
func Dial(ctx context.Context, kc kafkaconf.Config) (*Client, error) {
	cl, err := kafkaconf.NewClient(ctx, kc)
	if err != nil {
		return nil, err
	}
	return &Client{kc: kc, cl: cl, adm: kadm.NewClient(cl), stall: DefaultScanStall}, nil
}

// Close releases the connection.
func (c *Client) Close() { c.cl.Close() }

// span is a half-open offset range [from, until) of one partition.
type span struct{ from, until int64 }

// partitions returns the partition count of topic, or an error that says
// the topic does not exist.
func (c *Client) partitions(ctx context.Context, topic string) (int, error) {
	details, err := c.adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("describe topic %s: %w", topic, err)
	}
	d, ok := details[topic]
	if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return 0, fmt.Errorf("topic %s does not exist (is --base right? `hookline topics create` creates a pipeline)", topic)
	}
	if d.Err != nil {
		return 0, fmt.Errorf("describe topic %s: %w", topic, d.Err)
	}
	return len(d.Partitions), nil
}

// spans lists, for each partition of topic, the range to read now: from the
// log start (or the first offset at or after since, less a slack) to the
// end offset. Partitions with nothing to read are left out.
func (c *Client) spans(ctx context.Context, topic string, since time.Time) (map[int32]span, error) {
	if _, err := c.partitions(ctx, topic); err != nil {
		return nil, err
	}
	ends, err := c.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	var starts kadm.ListedOffsets
	if since.IsZero() {
		starts, err = c.adm.ListStartOffsets(ctx, topic)
	} else {
		starts, err = c.adm.ListOffsetsAfterMilli(ctx, since.Add(-sinceSlack).UnixMilli(), topic)
	}
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	out := map[int32]span{}
	ends.Each(func(e kadm.ListedOffset) {
		s, ok := starts.Lookup(topic, e.Partition)
		from := int64(0)
		if ok && s.Offset >= 0 {
			from = s.Offset
		}
		if from < e.Offset {
			out[e.Partition] = span{from, e.Offset}
		}
	})
	return out, nil
}

// errStop ends a scan early without an error.
var errStop = errors.New("stop scan")

// scan reads the given ranges of topic and calls fn for every record, in
// offset order within a partition (partitions interleave). It returns when
// every range is read, fn returns an error (errStop: nil), or ctx is done.
func (c *Client) scan(ctx context.Context, topic string, spans map[int32]span, fn func(*kgo.Record) error) error {
	offs := map[int32]kgo.Offset{}
	for p, s := range spans {
		if s.from < s.until {
			offs[p] = kgo.NewOffset().At(s.from)
		}
	}
	if len(offs) == 0 {
		return nil
	}
	cl, err := kafkaconf.NewReader(ctx, c.kc,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		// Records deleted by retention since the offsets were listed: go on
		// from the new log start.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.FetchMaxPartitionBytes(8<<20),
		kgo.FetchMaxBytes(32<<20),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	left := len(offs)
	done := map[int32]bool{}
	finish := func(p int32) {
		done[p] = true
		left--
		cl.PauseFetchPartitions(map[string][]int32{topic: {p}})
	}
	next := map[int32]int64{} // per partition left: the offset to read next
	for p := range offs {
		next[p] = spans[p].from
	}
	// Only time spent waiting for records counts towards a stall, not fn's
	// (a replay's --rate may make it slow).
	var idle time.Duration
	var lastErr error // the last retried fetch error, for a stall
	for left > 0 {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if c.stall > 0 {
			pctx, cancel = context.WithTimeout(ctx, c.stall-idle)
		}
		t0 := time.Now()
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil && fatalFetch(err) {
				ferr = fmt.Errorf("read %s partition %d: %w", t, p, err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				lastErr = err
			}
		})
		if ferr != nil {
			return ferr
		}
		if fs.NumRecords() > 0 {
			idle = 0
		} else if idle += time.Since(t0); c.stall > 0 && idle >= c.stall {
			return stalled(topic, idle, spans, next, done, lastErr)
		}
		var stop error
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			s, ok := spans[fp.Partition]
			if !ok || done[fp.Partition] || stop != nil {
				return
			}
			if n := len(fp.Records); n > 0 {
				next[fp.Partition] = fp.Records[n-1].Offset + 1
			}
			for _, r := range fp.Records {
				if r.Offset >= s.until {
					finish(fp.Partition)
					return
				}
				if err := fn(r); err != nil {
					stop = err
					return
				}
				if r.Offset+1 >= s.until {
					finish(fp.Partition)
					return
				}
			}
		})
		if errors.Is(stop, errStop) {
			return nil
		}
		if stop != nil {
			return stop
		}
	}
	return nil
}

// stalled is the error of a scan that got no record for waited while
// ranges were left: it names the first such partition and where it was.
func stalled(topic string, waited time.Duration, spans map[int32]span, next map[int32]int64, done map[int32]bool, lastErr error) error {
	var parts []int32
	for p := range next {
		if !done[p] {
			parts = append(parts, p)
		}
	}
	slices.Sort(parts)
	p := parts[0]
	cause := ""
	if lastErr != nil {
		cause = " (last error: " + lastErr.Error() + ")"
	}
	return fmt.Errorf("read %s: no record for %s with %d partition(s) not read to the end, e.g. partition %d at offset %d of %d%s: check that the broker is up and reachable (--brokers), then run the command again",
		topic, waited.Round(time.Second), len(parts), p, next[p], spans[p].until, cause)
}

// fatalFetch reports whether a fetch error will not go away by retrying
// (the client retries the others by itself).
func fatalFetch(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) ||
		errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kgo.ErrClientClosed)
}

// summary returns l without its value and raw headers, so a listing does
// not hold every payload (and the fetch buffers behind them) in memory.
func summary(l Letter) Letter {
	l.Key = slices.Clone(l.Key)
	l.Value, l.Headers = nil, nil
	return l
}

// byTime orders letters by when they were dead-lettered, then by position.
func byTime(a, b Letter) int {
	if c := a.Time().Compare(b.Time()); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
}

// List returns the dead letters of topic that match f, oldest first (by
// [Letter.Time]), without their values and raw headers. limit > 0 keeps the
// first limit of them; matched is the count before the limit.
func (c *Client) List(ctx context.Context, topic string, f Filter, limit int) (letters []Letter, matched int, err error) {
	spans, err := c.spans(ctx, topic, f.Since)
	if err != nil {
		return nil, 0, err
	}
	// named: every event id some --event-id ref matches, whatever the other
	// filters say; a ref that is one of them exactly lists that id only.
	named := map[string]bool{}
	err = c.scan(ctx, topic, spans, func(r *kgo.Record) error {
		l := FromRecord(r)
		if matchesAnyRef(f.EventIDs, l.EventID) {
			named[l.EventID] = true
		}
		if f.Match(&l) {
			letters = append(letters, summary(l))
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if len(f.EventIDs) > 0 {
		letters = slices.DeleteFunc(letters, func(l Letter) bool {
			return !slices.ContainsFunc(f.EventIDs, func(ref string) bool { return refSelects(EventIDRef(ref), l.EventID, named) })
		})
	}
	slices.SortFunc(letters, byTime)
	matched = len(letters)
	if limit > 0 && len(letters) > limit {
		letters = letters[:limit:limit]
	}
	return letters, matched, nil
}

// MinPrefix is the shortest event-id prefix [Client.Find] accepts.
const MinPrefix = 6

// Find returns the dead letters ref names, with values and headers: ref is
// "partition:offset", or an event id (every dead letter of that event, oldest
// first), or an unambiguous prefix of at least MinPrefix characters of one.
func (c *Client) Find(ctx context.Context, topic, ref string) ([]Letter, error) {
	ref = EventIDRef(ref)
	if pos, err := ParsePosition(ref); err == nil {
		return c.findAt(ctx, topic, pos)
	}
	spans, err := c.spans(ctx, topic, time.Time{})
	if err != nil {
		return nil, err
	}
	var exact, prefixed []Letter
	err = c.scan(ctx, topic, spans, func(r *kgo.Record) error {
		l := FromRecord(r)
		switch {
		case l.EventID == ref:
			exact = append(exact, l)
		case matchesRef(ref, l.EventID):
			prefixed = append(prefixed, l)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	found := exact
	if len(found) == 0 {
		found = prefixed
		ids := map[string]bool{}
		for _, l := range found {
			ids[l.EventID] = true
		}
		if len(ids) > 1 {
			list := make([]string, 0, len(ids))
			for id := range ids {
				list = append(list, id)
			}
			slices.Sort(list)
			return nil, fmt.Errorf("%q is the prefix of %d event ids in %s; give more of it: %s", ref, len(ids), topic, strings.Join(list, ", "))
		}
	}
	if len(found) == 0 {
		hint := ""
		if len(ref) < MinPrefix {
			hint = fmt.Sprintf(" (a prefix needs at least %d characters)", MinPrefix)
		}
		return nil, fmt.Errorf("no dead letter in %s has event id %q%s", topic, ref, hint)
	}
	slices.SortFunc(found, byTime)
	return found, nil
}

func (c *Client) findAt(ctx context.Context, topic string, pos Position) ([]Letter, error) {
	n, err := c.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	if int(pos.Partition) >= n {
		return nil, fmt.Errorf("%s has %d partitions (0..%d): there is no partition %d", topic, n, n-1, pos.Partition)
	}
	spans, err := c.spans(ctx, topic, time.Time{})
	if err != nil {
		return nil, err
	}
	s, ok := spans[pos.Partition]
	if !ok || pos.Offset < s.from || pos.Offset >= s.until {
		held := "no records"
		if ok {
			held = fmt.Sprintf("offsets %d..%d", s.from, s.until-1)
		}
		return nil, fmt.Errorf("no dead letter at %s: partition %d of %s holds %s", pos, pos.Partition, topic, held)
	}
	var out []Letter
	err = c.scan(ctx, topic, map[int32]span{pos.Partition: {pos.Offset, pos.Offset + 1}}, func(r *kgo.Record) error {
		if r.Offset == pos.Offset {
			out = append(out, FromRecord(r))
		}
		return errStop
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no dead letter at %s in %s (deleted by retention?)", pos, topic)
	}
	return out, nil
}
