package config

import (
	"strings"
	"testing"
)

// A tab in the indentation gets a message that says so, naming the line
// that has it (yaml's own message names another line at times, and says
// "found character that cannot start any token").
func TestTabIndentationIsNamed(t *testing.T) {
	for raw, line := range map[string]string{
		"pipelines:\n\t- base: a.b\n":                                  "line 2 is indented with a tab",
		"pipelines:\n  - base: a.b\n\t  partitions: 3\n":               "line 3 is indented with a tab",
		"sources:\n  - name: x\n    verify:\n\t  type: none\n":         "line 4 is indented with a tab",
		"sources:\n  - name: x\n    verify: {secret: \"${S}\"}\n\tx\n": "line 4 is indented with a tab",
	} {
		_, err := Parse([]byte(raw), env(map[string]string{"S": "s"}))
		if err == nil || !strings.Contains(err.Error(), line) || !strings.Contains(err.Error(), "spaces") {
			t.Errorf("%q: %v; want %q and what to do", raw, err, line)
		}
	}
	// A tab after the indentation (in a value) is YAML's business.
	if _, err := Parse([]byte("pipelines:\n  - base: a.b\n    partitions:\t3\n"), env(nil)); err != nil {
		t.Errorf("a tab after the key: %v", err)
	}
}
