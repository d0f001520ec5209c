package config

import (
	"os"
	"path/filepath"
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

// A value of the wrong kind is named by its key, with what the key wants:
// yaml's message names only the line and a Go type (int32,
// []config.Duration), and a quoted reference gets the unquote advice only
// where a number is wanted.
func TestTypeErrorsNameTheKeyAndWhatItWants(t *testing.T) {
	vars := env(map[string]string{"S": "s3cret-value", "N": "3.5"})
	for raw, want := range map[string]string{
		"pipelines:\n  - base: a\n    partitions: ${N}\n":                   "pipelines[0].partitions (line 3) wants a whole number",
		"pipelines:\n  - base: a\n    partitions: three\n":                  "pipelines[0].partitions (line 3) wants a whole number",
		"pipelines:\n  - base: a\n    retry_delays: 10s\n":                  "pipelines[0].retry_delays (line 3) wants a list of durations",
		"sources:\n  - name: a\n    verify: \"${S}\"\n":                     "sources[0].verify (line 3) wants a mapping",
		"sources:\n  - name: a\n    verify: {type: [bearer]}\n":             "sources[0].verify.type (line 3) wants a single value",
		"sources:\n  - name: a\n    event_id: {a: b}\n":                     "sources[0].event_id (line 3) wants a list",
		"pipelines:\n  - base: a\n    handler: {url: x, headers: [a]}\n":    "pipelines[0].handler.headers (line 3) wants a mapping of names to values",
		"pipelines:\n  base: a\n":                                           "pipelines (line 2) wants a list of entries",
		"pipelines:\n  - base: a\n  - base: b\n    replication_factor: x\n": "pipelines[1].replication_factor (line 4) wants a whole number",
		// yaml.v3 would decode these as 3, 1, 10 and 16.
		"pipelines:\n  - base: a\n    partitions: 3.5\n":         "pipelines[0].partitions (line 3) wants a whole number in decimal digits (e.g. 12), not 3.5",
		"pipelines:\n  - base: a\n    replication_factor: 1.7\n": "pipelines[0].replication_factor (line 3) wants a whole number",
		"pipelines:\n  - base: a\n    partitions: 1e1\n":         "not 1e1",
		"pipelines:\n  - base: a\n    partitions: 0x10\n":        "not 0x10",
		"pipelines:\n  - base: a\n    partitions: 010\n":         "not 010",
		// A duration field keeps its own message.
		"pipelines:\n  - base: a\n    dedup_window: 1.5\n": `line 3: "1.5" is not a duration (use e.g. 10s`,
	} {
		_, err := Parse([]byte(raw), vars)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want %q", raw, err, want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: the error quotes the variable's value: %v", raw, err)
		}
		if strings.Contains(err.Error(), "quoted reference") {
			t.Errorf("%q: advice for a number field on a value that is not one: %v", raw, err)
		}
	}
}

// previous_secret and previous_secret_file together are refused, as secret
// and secret_file are: the file's content used to replace the inline value
// without a word.
func TestPreviousSecretAndItsFileAreRefusedTogether(t *testing.T) {
	p := filepath.Join(t.TempDir(), "old")
	if err := os.WriteFile(p, []byte("old-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Verify{Secret: "new", PreviousSecret: "old-inline", PreviousSecretFile: p}.ReadSecrets()
	if err == nil || !strings.Contains(err.Error(), "previous_secret or previous_secret_file, not both") {
		t.Fatalf("previous_secret with previous_secret_file: %v", err)
	}
	v, err := Verify{Secret: "new", PreviousSecretFile: p}.ReadSecrets()
	if err != nil || v.PreviousSecret != "old-from-file" {
		t.Fatalf("previous_secret_file alone: %+v %v", v, err)
	}
}
