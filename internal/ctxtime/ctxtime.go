// Package ctxtime waits for a duration or a context, whichever ends first.
package ctxtime

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx is done. It returns ctx.Err() when ctx ended
// first, else nil; d ≤ 0 returns nil at once. Unlike time.After, the timer
// is stopped when ctx wins, so a cancelled wait leaves nothing behind.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
