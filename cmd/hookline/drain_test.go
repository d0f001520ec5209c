package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/hookline/hookline/producer"
)

// --drain-delay reaches the receiver: its default is the producer's, 0
// means no delay (the producer's negative), and HOOKLINE_DRAIN_DELAY sets it.
func TestDrainDelayFlag(t *testing.T) {
	for _, c := range []struct {
		vars map[string]string
		args []string
		want time.Duration
	}{
		{nil, nil, producer.DefaultDrainDelay},
		{nil, []string{"--drain-delay", "0"}, -1},
		{nil, []string{"--drain-delay", "15s"}, 15 * time.Second},
		{map[string]string{"HOOKLINE_DRAIN_DELAY": "10s"}, nil, 10 * time.Second},
		{map[string]string{"HOOKLINE_DRAIN_DELAY": "0s"}, nil, -1},
		{map[string]string{"HOOKLINE_DRAIN_DELAY": "10s"}, []string{"--drain-delay", "3s"}, 3 * time.Second},
	} {
		for _, cmd := range []string{"serve", "run"} {
			env := &environment{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: func(k string) string { return c.vars[k] }}
			fs := newFlagSet(env, cmd, cmd, "")
			a := addAppFlags(fs, true, cmd == "run")
			if err := fs.parse(c.args); err != nil {
				t.Fatalf("%s %v %v: %v", cmd, c.vars, c.args, err)
			}
			if err := a.validate(); err != nil {
				t.Fatalf("%s %v %v: refused: %v", cmd, c.vars, c.args, err)
			}
			if got := a.producerDrainDelay(); got != c.want {
				t.Errorf("%s %v %v: producer DrainDelay %s, want %s", cmd, c.vars, c.args, got, c.want)
			}
		}
	}
}
