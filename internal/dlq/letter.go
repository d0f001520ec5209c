// Package dlq reads, filters and replays the dead letters of a hookline
// pipeline (<base>.dlq).
//
// The dead-letter topic is an append-only audit: nothing in this package
// writes to it. Reading is bounded: every scan reads up to the end offsets
// listed when it starts and never waits for new records.
//
// Replay republishes dead letters to the main topic (or a retry tier) as
// fresh events: same key, same partition number, the record's identity
// headers kept, its failure headers dropped, and hookline-replayed-from /
// hookline-replay-count added. See [Replay].
package dlq

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/headers"
)

// Position is a record's place in a topic: partition and offset.
// Positions order partition-major, the order in which [Replay] works.
type Position struct {
	Partition int32
	Offset    int64
}

// String formats p as "partition:offset".
func (p Position) String() string { return fmt.Sprintf("%d:%d", p.Partition, p.Offset) }

// Less reports whether p comes before q (partition, then offset).
func (p Position) Less(q Position) bool {
	if p.Partition != q.Partition {
		return p.Partition < q.Partition
	}
	return p.Offset < q.Offset
}

// ParsePosition parses "partition:offset".
func ParsePosition(s string) (Position, error) {
	ps, offs, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return Position{}, fmt.Errorf("%q is not partition:offset", s)
	}
	p, err1 := strconv.ParseInt(ps, 10, 32)
	o, err2 := strconv.ParseInt(offs, 10, 64)
	if err1 != nil || err2 != nil || p < 0 || o < 0 {
		return Position{}, fmt.Errorf("%q is not partition:offset (two non-negative numbers, e.g. 3:1200)", s)
	}
	return Position{int32(p), o}, nil
}

// Letter is one dead letter: the record and what its headers say.
type Letter struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time // the record's timestamp
	Key       []byte
	Value     []byte // nil in listings; see Size
	Headers   []kgo.RecordHeader
	Size      int // bytes of the value

	EventID        string
	ReceiptID      string
	Source         string
	ConversationID string
	ContentType    string
	ErrorClass     string
	Error          string
	Attempt        int // failed attempts before it was dead-lettered
	ReplayCount    int // times it was replayed before (0: never)
	ReceivedAt     time.Time
	FailedAt       time.Time // hookline-failed-at; zero when absent
}

// FromRecord reads a dead letter's headers. The record's slices are shared,
// not copied.
func FromRecord(r *kgo.Record) Letter {
	hs := r.Headers
	l := Letter{
		Topic:          r.Topic,
		Partition:      r.Partition,
		Offset:         r.Offset,
		Timestamp:      r.Timestamp,
		Key:            r.Key,
		Value:          r.Value,
		Headers:        hs,
		Size:           len(r.Value),
		EventID:        headers.Value(hs, headers.EventID),
		ReceiptID:      headers.Value(hs, headers.ReceiptID),
		Source:         headers.Value(hs, headers.Source),
		ConversationID: headers.Value(hs, headers.ConversationID),
		ContentType:    headers.Value(hs, headers.ContentType),
		ErrorClass:     headers.Value(hs, headers.ErrorClass),
		Error:          headers.Value(hs, headers.Error),
		Attempt:        headers.Int(hs, headers.Attempt, 0),
		ReplayCount:    max(headers.Int(hs, headers.ReplayCount, 0), 0),
	}
	l.ReceivedAt = timeHeader(hs, headers.ReceivedAt)
	l.FailedAt = timeHeader(hs, headers.FailedAt)
	return l
}

func timeHeader(hs []kgo.RecordHeader, key string) time.Time {
	if v, ok := headers.Get(hs, key); ok {
		if t, err := headers.ParseTime(v); err == nil {
			return t
		}
	}
	return time.Time{}
}

// Pos returns the letter's position in the dead-letter topic.
func (l *Letter) Pos() Position { return Position{l.Partition, l.Offset} }

// Time is when the event was dead-lettered: hookline-failed-at, else the
// record's timestamp. Filters and listings use it.
func (l *Letter) Time() time.Time {
	if !l.FailedAt.IsZero() {
		return l.FailedAt
	}
	return l.Timestamp
}

// ErrorLine returns the first line of the error.
func (l *Letter) ErrorLine() string {
	line, _, _ := strings.Cut(l.Error, "\n")
	return strings.TrimSpace(line)
}

// Classes are the values of hookline-error-class a filter accepts.
var Classes = []string{headers.ClassExhausted, headers.ClassPermanent, headers.ClassMalformed, headers.ClassRetryable}

// Filter selects dead letters. Every set field must match (and); a field
// with several values matches any of them (or). The zero Filter matches
// everything.
type Filter struct {
	Since, Until    time.Time // by [Letter.Time]: Since ≤ t < Until; zero = open
	Sources         []string
	ErrorClasses    []string
	ConversationIDs []string
	EventIDs        []string
}

// IsZero reports whether f selects everything.
func (f Filter) IsZero() bool {
	return f.Since.IsZero() && f.Until.IsZero() && len(f.Sources) == 0 && len(f.ErrorClasses) == 0 &&
		len(f.ConversationIDs) == 0 && len(f.EventIDs) == 0
}

// Validate rejects unknown error classes and an empty time range.
func (f Filter) Validate() error {
	for _, c := range f.ErrorClasses {
		if !slices.Contains(Classes, c) {
			return fmt.Errorf("unknown error class %q: use %s", c, strings.Join(Classes, ", "))
		}
	}
	for _, id := range f.EventIDs {
		if EventIDRef(id) == "" {
			return fmt.Errorf("event id %q is empty", id)
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return fmt.Errorf("empty time range: since %s is not before until %s", f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))
	}
	return nil
}

// Match reports whether l passes f. An event id of f may be a prefix of
// MinPrefix or more characters, as [Client.Find] takes it.
func (f Filter) Match(l *Letter) bool {
	if t := l.Time(); (!f.Since.IsZero() && t.Before(f.Since)) || (!f.Until.IsZero() && !t.Before(f.Until)) {
		return false
	}
	return anyOf(f.Sources, l.Source) && anyOf(f.ErrorClasses, l.ErrorClass) &&
		anyOf(f.ConversationIDs, l.ConversationID) &&
		(len(f.EventIDs) == 0 || matchesAnyRef(f.EventIDs, l.EventID))
}

func anyOf(set []string, v string) bool { return len(set) == 0 || slices.Contains(set, v) }

// EventIDRef is an event id as a person gives it: trimmed, and a table cell
// copied with its ellipsis ("9c1d0b7e4f2a…" or "9c1d0b7e4f2a...") is a
// prefix.
func EventIDRef(s string) string {
	return strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "…"), "...")
}

// matchesRef reports whether id is the event id ref names: ref itself, or,
// when ref has at least MinPrefix characters, an id starting with it.
func matchesRef(ref, id string) bool {
	return id == ref || (len(ref) >= MinPrefix && strings.HasPrefix(id, ref))
}

// matchesAnyRef reports whether one of refs (event ids as a person gives
// them, see EventIDRef) names id.
func matchesAnyRef(refs []string, id string) bool {
	return slices.ContainsFunc(refs, func(ref string) bool { return matchesRef(EventIDRef(ref), id) })
}

// refSelects reports whether ref selects id, given named, the event ids that
// some ref matches: a ref that is one of them exactly selects that id only,
// any other ref every id it matches.
func refSelects(ref, id string, named map[string]bool) bool {
	if named[ref] {
		return id == ref
	}
	return matchesRef(ref, id)
}

// String describes f for messages, e.g. "error class exhausted, since 2h ago".
func (f Filter) String() string {
	var parts []string
	add := func(name string, vs []string) {
		if len(vs) > 0 {
			parts = append(parts, name+" "+strings.Join(vs, "|"))
		}
	}
	add("source", f.Sources)
	add("error class", f.ErrorClasses)
	add("conversation", f.ConversationIDs)
	add("event id", f.EventIDs)
	if !f.Since.IsZero() {
		parts = append(parts, "since "+f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "until "+f.Until.UTC().Format(time.RFC3339))
	}
	if len(parts) == 0 {
		return "all dead letters"
	}
	return strings.Join(parts, ", ")
}

// ParseTimeBound parses a --since/--until value: an RFC 3339 time
// (2026-03-01T10:00:00Z), a date (2026-03-01, UTC midnight), or a duration
// meaning "that long before now" (90m, 2h, 3d).
func ParseTimeBound(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("empty time")
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	d, err := parseAgo(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-03-01T10:00:00Z), a date (2026-03-01) nor a duration ago (30m, 2h, 3d)", s)
	}
	return now.Add(-d), nil
}

// parseAgo is time.ParseDuration plus a "d" (24h) unit, positive only.
func parseAgo(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 {
			return 0, errors.New("bad days")
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("bad duration")
	}
	return d, nil
}
