package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

// Concurrent writers and a reader: run with -race; every write lands whole.
func TestConcurrentWritesAndReads(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("line\n"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "line\n"); n != 400 {
		t.Fatalf("%d lines, want 400", n)
	}
}

// With a Limit, writes past it are dropped but reported as written.
func TestLimitDropsLaterWrites(t *testing.T) {
	b := Buffer{Limit: 10}
	for range 5 {
		if n, err := b.Write([]byte("12345678")); n != 8 || err != nil {
			t.Fatalf("Write: %d %v", n, err)
		}
	}
	if got := b.String(); got != "1234567812345678" {
		t.Fatalf("kept %q, want the writes up to the limit", got)
	}
}
