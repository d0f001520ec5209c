package ratelog

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
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
