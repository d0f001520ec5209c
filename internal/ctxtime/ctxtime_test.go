package ctxtime

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSleepWaitsOrStopsWithTheContext(t *testing.T) {
	start := time.Now()
	if err := Sleep(context.Background(), 20*time.Millisecond); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Fatalf("full wait: err %v after %s", err, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start = time.Now()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Fatalf("cancelled: err %v after %s", err, time.Since(start))
	}
	if err := Sleep(ctx, 0); err != nil {
		t.Fatalf("d = 0 with a done context: %v, want nil at once", err)
	}
}
