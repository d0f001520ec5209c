package config

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse: no YAML file, however broken, panics the parser, and a refused
// one gets a message, with the error path's hints (tabs, unquoted
// references in flow style) computed on any input.
func FuzzParse(f *testing.F) {
	if ex, err := os.ReadFile("../../hookline.example.yaml"); err == nil {
		f.Add(string(ex))
	}
	f.Add("sources:\n  - name: s\n    verify: {type: bearer, secret: ${B}}\n")
	f.Add("pipelines:\n  - base: a\n    handler: {url: \"${H}\"}\nsources:\n  - name: s\n   bad: x\n")
	f.Add("brokers: ${LIST}\n")
	f.Add("pipelines:\n\t- base: a\n")
	f.Add("brokers: [\"${NOPE}\"]\nlisten: '${PORT}' # ${X} [\n")
	vars := env(map[string]string{"B": "k1:9092", "LIST": "k1:9092,k2:9092", "H": "http://h:3000/x", "PORT": ":8080"})
	f.Fuzz(func(t *testing.T, raw string) {
		_, err := Parse([]byte(raw), vars)
		if err != nil && strings.TrimSpace(err.Error()) == "" {
			t.Fatalf("an empty error for %q", raw)
		}
		if n := unquotedFlowReference([]byte(raw)); n < 0 || n > strings.Count(raw, "\n")+1 {
			t.Fatalf("unquotedFlowReference = %d for %d lines", n, strings.Count(raw, "\n")+1)
		}
	})
}
