//go:build unix

package embedded

import (
	"strings"
	"testing"
)

// Two brokers on one data directory would corrupt each other's segments:
// the second is refused with a message that says what to do, and the
// directory is free again once the first one closes.
func TestDataDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	first, err := Start(Config{Addr: "127.0.0.1:0", DataDir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(Config{Addr: "127.0.0.1:0", DataDir: dir, NoSync: true})
	if err == nil || !strings.Contains(err.Error(), "in use by another hookline process") || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("second broker on %s: %v", dir, err)
	}
	first.Close()
	again, err := Start(Config{Addr: "127.0.0.1:0", DataDir: dir, NoSync: true})
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	again.Close()
}
