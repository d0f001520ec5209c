package producer

import (
	"context"
	"sync"
	"sync/atomic"
)

// gate admits webhooks until shutdown begins and lets shutdown wait for the
// admitted ones while the listener still answers. A sync.WaitGroup cannot do
// this: requests keep arriving during the wait, and an Add that races with
// Wait is a misuse of it.
type gate struct {
	shut   atomic.Bool // closed, for readers on every request
	mu     sync.Mutex
	closed bool
	n      int
	empty  chan struct{} // closed once the gate is closed and n is 0
}

func newGate() *gate { return &gate{empty: make(chan struct{})} }

// enter admits one webhook; false once shutdown began. Every true is paired
// with a leave.
func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.closed && g.n == 0 {
		close(g.empty)
	}
}

// close stops admitting webhooks. Calling it again does nothing.
func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.closed = true
	g.shut.Store(true)
	if g.n == 0 {
		close(g.empty)
	}
}

func (g *gate) isClosed() bool { return g.shut.Load() }

// wait returns nil once the gate is closed and every admitted webhook left,
// or ctx's error when it ends first.
func (g *gate) wait(ctx context.Context) error {
	select {
	case <-g.empty:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
