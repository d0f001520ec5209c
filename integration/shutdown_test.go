package integration

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookline/hookline/topics"
)

// A second SIGTERM (or Ctrl-C) stops a process at once, even while the
// first one's graceful shutdown still waits out --drain-delay.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	base := uniqueBase(t)
	p := startCLI(t, nil, "serve", "--base", base, "--partitions", "1", "--insecure-no-auth",
		"--listen", freeAddr(t), "--drain-delay", "10m")
	t.Cleanup(func() { deleteTopics(topics.For(base, 3).All()...) })
	p.waitOutput(`receiver listening on`, 90*time.Second)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitOutput(`draining: answering 503`, 30*time.Second)
	// hookline's own line, not a library message through the standard log.
	p.waitOutput(`level=INFO msg="stopping gracefully; a second signal stops at once`, 10*time.Second)
	if out := p.output(); strings.Index(out, "stopping gracefully") > strings.Index(out, "draining: answering 503") {
		t.Errorf("the shutdown's first line must be the note about a second signal:\n%s", out)
	}
	select {
	case <-p.done:
		t.Fatalf("serve exited during its 10m drain delay after one SIGTERM:\n%s", p.output())
	case <-time.After(500 * time.Millisecond):
	}
	// signal fails the test unless the process exits within the bound,
	// far below the drain delay.
	_ = p.signal(syscall.SIGTERM, 30*time.Second)
}
