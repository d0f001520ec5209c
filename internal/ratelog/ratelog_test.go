package ratelog

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/internal/syncbuf"
)

func TestLimiterSuppressesRepeats(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Minute)
	now := time.Unix(0, 0)
	l.now = func() time.Time { return now }
	for i := 0; i < 5; i++ {
		l.Log(context.Background(), slog.LevelError, "k", "broker down")
	}
	l.Log(context.Background(), slog.LevelError, "other", "other error")
	if got := strings.Count(buf.String(), "broker down"); got != 1 {
		t.Fatalf("logged %d times within the interval, want 1:\n%s", got, buf.String())
	}
	now = now.Add(2 * time.Minute)
	l.Log(context.Background(), slog.LevelError, "k", "broker down")
	if !strings.Contains(buf.String(), "suppressed=4") {
		t.Fatalf("want suppressed=4 in:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "other error") {
		t.Fatal("a different key must not be suppressed")
	}
}

// A burst that stops still says how big it was: when the interval ends, the
// latest repeat is logged with the count of the others, under its own text.
func TestBurstIsSummarisedWhenTheIntervalEnds(t *testing.T) {
	var buf syncbuf.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), 100*time.Millisecond)
	for i := range 5 {
		l.Log(context.Background(), slog.LevelWarn, "k", "dead-lettered", "n", i)
	}
	l.Log(context.Background(), slog.LevelWarn, "k", "another reason", "n", 5)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "another reason") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "msg=dead-lettered n=0") || strings.Contains(lines[0], "suppressed") ||
		!strings.Contains(lines[1], `msg="another reason" n=5 suppressed=4 last_at=`) || strings.Contains(lines[0], "last_at") {
		t.Fatalf("want the first line, then the last repeat with suppressed=4 and its own time as last_at:\n%s", buf.String())
	}
	// last_at is when "another reason" happened, before the line's own
	// time (the end of the interval).
	var lineAt, lastAt time.Time
	for f := range strings.FieldsSeq(lines[1]) {
		if v, ok := strings.CutPrefix(f, "time="); ok {
			lineAt, _ = time.Parse(time.RFC3339Nano, v)
		}
		if v, ok := strings.CutPrefix(f, "last_at="); ok {
			lastAt, _ = time.Parse(time.RFC3339Nano, v)
		}
	}
	if lastAt.IsZero() || lineAt.Sub(lastAt) < 50*time.Millisecond {
		t.Fatalf("last_at %s, line written at %s: want the message's time, about 100ms before the line", lastAt, lineAt)
	}
	time.Sleep(250 * time.Millisecond) // nothing more to say
	if n := strings.Count(strings.TrimSpace(buf.String()), "\n"); n != 1 {
		t.Fatalf("more lines after the summary:\n%s", buf.String())
	}
}

// Under contention no two lines of one key come closer than the interval:
// a timer that fired while a line got through must not log as well.
func TestNoTwoLinesWithinTheInterval(t *testing.T) {
	var buf syncbuf.Buffer
	const interval = 2 * time.Millisecond
	l := New(slog.New(slog.NewJSONHandler(&buf, nil)), interval)
	var wg sync.WaitGroup
	stop := time.Now().Add(500 * time.Millisecond)
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				l.Log(context.Background(), slog.LevelWarn, "k", "down")
			}
		})
	}
	wg.Wait()
	time.Sleep(10 * interval)
	var prev time.Time
	close, lines := 0, 0
	for line := range strings.Lines(buf.String()) {
		lines++
		var rec struct{ Time time.Time }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if !prev.IsZero() && rec.Time.Sub(prev) < interval/4 {
			close++
		}
		prev = rec.Time
	}
	// A line's time is taken after the limiter let it through, so a
	// goroutine preempted in between can rarely land one close to the
	// next; a stale timer's flush did it to a fifth of the lines.
	if close > lines/20 {
		t.Errorf("%d of %d lines came within %s of the one before (interval %s)", close, lines, interval/4, interval)
	}
}

// A burst in the last interval before its owner stops is still summarised:
// Flush logs the pending repeat at once, and no timer logs it again.
func TestFlushSummarisesTheLastBurst(t *testing.T) {
	var buf syncbuf.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), 200*time.Millisecond)
	for i := range 4 {
		l.Log(context.Background(), slog.LevelWarn, "k", "dead-lettered", "n", i)
	}
	l.Log(context.Background(), slog.LevelWarn, "quiet", "once")
	l.Flush()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(buf.String(), "msg=dead-lettered n=3 suppressed=2 last_at=") {
		t.Fatalf("want the first line, the other key, and the last repeat with suppressed=2 (the repeats between) at once:\n%s", buf.String())
	}
	time.Sleep(400 * time.Millisecond) // the stopped timer stays quiet
	if got := strings.Count(strings.TrimSpace(buf.String()), "\n"); got != 2 {
		t.Fatalf("a line after Flush:\n%s", buf.String())
	}
	// Still usable: a repeat right after the flushed line is held back.
	l.Log(context.Background(), slog.LevelWarn, "k", "dead-lettered", "n", 4)
	l.Flush()
	if !strings.Contains(buf.String(), "n=4") || strings.Contains(buf.String(), "n=4 suppressed") {
		t.Fatalf("want n=4 once, without a count, after the second Flush:\n%s", buf.String())
	}
}
