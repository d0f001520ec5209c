// Package ratelog keeps repeated error logs from flooding: the first message
// of a kind is logged, repeats within the interval are counted and summarised
// in the next message of that kind that gets through.
package ratelog

import (
	"context"
	"log/slog"
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
	suppressed int
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
// the source name. A message that gets through carries "suppressed": the
// number of repeats dropped since the last one.
func (l *Limiter) Log(ctx context.Context, level slog.Level, key, msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	e := l.state[key]
	if e == nil {
		if len(l.state) > 10_000 { // bound memory if keys are unbounded
			clear(l.state)
		}
		e = &entry{}
		l.state[key] = e
	} else if now.Sub(e.last) < l.interval {
		e.suppressed++
		l.mu.Unlock()
		return
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	l.log.Log(ctx, level, msg, args...)
}
