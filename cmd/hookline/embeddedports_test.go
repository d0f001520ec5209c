package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --listen and --embedded-addr on one port are each free on their own, so
// the receiver's early bind check passed, the broker started and created
// the pipeline's topics under --data-dir, and only then did the receiver
// fail to bind. The clash is refused before anything starts, naming both.
func TestRunRefusesReceiverAndEmbeddedBrokerOnOnePort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	for _, listen := range []string{"127.0.0.1:" + port, ":" + port, "0.0.0.0:" + port, "localhost:" + port} {
		t.Run(listen, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			code, _, stderr := call(t, nil, "run", "--insecure-no-auth", "--listen", listen,
				"--embedded-addr", "127.0.0.1:"+port, "--data-dir", dataDir)
			if code != 1 || !strings.Contains(stderr, "--listen "+listen) || !strings.Contains(stderr, "--embedded-addr 127.0.0.1:"+port) ||
				!strings.Contains(stderr, "choose another port") {
				t.Fatalf("exit %d, want 1 with both flags and the next step:\n%s", code, stderr)
			}
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Fatalf("the data dir was created before the clash was found (stat: %v)", err)
			}
		})
	}
}

func TestHostsOverlap(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1", "127.0.0.1", true},
		{"", "127.0.0.1", true},
		{"::", "::1", true},
		{"0.0.0.0", "10.0.0.1", true},
		{"localhost", "127.0.0.1", true},
		{"127.0.0.1", "::1", false},
		{"127.0.0.1", "127.0.0.2", false},
	} {
		if got := hostsOverlap(c.a, c.b); got != c.want {
			t.Errorf("hostsOverlap(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// On the embedded broker, missing topics cannot be created with hookline
// topics create (the broker exists only inside run): the error says how.
func TestRunOnEmbeddedBrokerWithoutCreatingTopicsSaysHow(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	code, _, stderr := call(t, nil, "run", "--insecure-no-auth", "--listen", freeLocalAddr(t), "--embedded-addr", freeLocalAddr(t),
		"--data-dir", dataDir, "--base", "nothere", "--create-topics=false")
	if code != 1 || !strings.Contains(stderr, "pipeline topics are missing") || !strings.Contains(stderr, "start run without --create-topics=false") {
		t.Fatalf("exit %d, want 1 with how to get the topics on the embedded broker:\n%s", code, stderr)
	}
}
