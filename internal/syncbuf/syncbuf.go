// Package syncbuf is a text buffer that one goroutine may write (a logger, a
// command's output) while another reads it: the tests' way to watch a
// running component's output.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer safe for concurrent Write and String. The zero
// value is ready to use and keeps everything.
type Buffer struct {
	// Limit > 0 keeps about the first Limit bytes: once the buffer holds
	// that many, later writes are dropped (and reported as written), so a
	// long-running process's output cannot grow without bound.
	Limit int

	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p, or drops it once Limit is reached.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Limit > 0 && s.b.Len() >= s.Limit {
		return len(p), nil
	}
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
