// Package ratelog keeps repeated error logs from flooding: the first message
// of a kind is logged, and repeats within the interval are counted. When the
// interval ends, the last repeat is logged with the count of the others, so
// a burst that stops still says how big it was, and each line's text is its
// own. Such a delayed line is written when the interval ends and says when
// its message happened ("last_at"), since the condition may be over by then.
package ratelog

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Limiter logs at most one message per key per interval.
type Limiter struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu    sync.Mutex
	state map[string]*entry
}

type entry struct {
	last       time.Time
	suppressed int      // repeats dropped since last
	pending    *message // the latest of them, logged when the interval ends
	timer      *time.Timer
	gen        int // bumped by each timer and each line that gets through
}

type message struct {
	level slog.Level
	msg   string
	args  []any
	at    time.Time // when it was logged
}

// New returns a Limiter writing to log (slog.Default() when nil) that lets one
// message per key through every interval (default 10s).
func New(log *slog.Logger, interval time.Duration) *Limiter {
	if log == nil {
		log = slog.Default()
	}
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return &Limiter{log: log, interval: interval, now: time.Now, state: map[string]*entry{}}
}

// Log logs msg at level unless a message with the same key was logged within
// the interval. The key is usually the message plus a bounded label such as
// the source name. Repeats within the interval are dropped; when it ends,
// the latest of them is logged with "suppressed": the number of the others,
// and "last_at": when it was logged.
// A message that gets through otherwise carries "suppressed" too, when
// repeats were dropped since the last line.
func (l *Limiter) Log(ctx context.Context, level slog.Level, key, msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	e := l.state[key]
	if e == nil {
		if len(l.state) > 10_000 { // bound memory if keys are unbounded
			clear(l.state) // pending timers see their entry gone
		}
		e = &entry{}
		l.state[key] = e
	} else if now.Sub(e.last) < l.interval {
		e.suppressed++
		e.pending = &message{level, msg, args, now}
		if e.timer == nil {
			e.gen++
			gen := e.gen
			e.timer = time.AfterFunc(e.last.Add(l.interval).Sub(now), func() { l.flush(key, e, gen) })
		}
		l.mu.Unlock()
		return
	}
	n := e.suppressed
	e.last, e.suppressed, e.pending = now, 0, nil
	e.gen++ // a timer that fired already finds itself outdated (flush)
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	l.mu.Unlock()
	l.write(ctx, now, level, msg, args, n, time.Time{})
}

// Flush logs now, for every key, the latest repeat still waiting for its
// interval to end, with the count of the others, and stops their timers.
// Call it when the owner stops, so that a burst in the last interval
// before a shutdown is still summarised (and no timer outlives the owner).
// The Limiter stays usable; a later repeat within the interval of a
// flushed line is held back as usual.
func (l *Limiter) Flush() {
	type due struct {
		m  *message
		n  int
		at time.Time
	}
	var out []due
	l.mu.Lock()
	for _, e := range l.state {
		if e.timer != nil {
			e.timer.Stop()
			e.timer = nil
		}
		if e.pending != nil {
			e.last = l.now()
			out = append(out, due{e.pending, e.suppressed - 1, e.last})
			e.suppressed, e.pending = 0, nil
			e.gen++ // a timer that fired already finds itself outdated
		}
	}
	l.mu.Unlock()
	for _, d := range out {
		l.write(context.Background(), d.at, d.m.level, d.m.msg, d.m.args, d.n, d.m.at)
	}
}

// write logs one line, with "suppressed" when repeats were dropped, stamped
// at, the time the limiter let it through: a clock read after that (as
// slog.Logger.Log does) can put two lines of one key closer together than
// the interval that separated them, when a goroutine is preempted between.
// A line held back until the interval ended has its own time as "last_at",
// so that a reader does not take a condition that ended meanwhile (a lost
// connection, since restored) for the current state.
func (l *Limiter) write(ctx context.Context, at time.Time, level slog.Level, msg string, args []any, suppressed int, lastAt time.Time) {
	h := l.log.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	if suppressed > 0 {
		args = append(slices.Clip(args), "suppressed", suppressed)
	}
	if !lastAt.IsZero() {
		args = append(slices.Clip(args), "last_at", lastAt.Round(time.Millisecond))
	}
	r := slog.NewRecord(at, level, msg, 0)
	r.Add(args...)
	_ = h.Handle(ctx, r) // as slog.Logger.Log: a handler's error has nowhere to go
}

// flush logs the latest repeat of key's interval, with the count of the
// others, unless a message got through meanwhile: then e.gen moved past
// gen, and that message carried the count.
func (l *Limiter) flush(key string, e *entry, gen int) {
	l.mu.Lock()
	if l.state[key] != e || e.gen != gen || e.pending == nil {
		l.mu.Unlock()
		return
	}
	m, n := e.pending, e.suppressed-1
	e.last, e.suppressed, e.pending, e.timer = l.now(), 0, nil, nil
	at := e.last
	l.mu.Unlock()
	l.write(context.Background(), at, m.level, m.msg, m.args, n, m.at)
}
