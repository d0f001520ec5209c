package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseExpandsEnvAndDefaults(t *testing.T) {
	raw := []byte(`
brokers: [k1:9092]
pipelines:
  - base: a.events
    retry_delays: [1s, 2m]
    dedup_window: 1h
    handler: {url: "http://h/x", timeout: 5s}
sources:
  - name: s1
    verify: {type: shared-secret, secret: "${S1}"}
  - name: s2
    pipeline: a.events
    verify: {type: bearer, secret: "${S2:-fallback-token}"}
`)
	f, err := Parse(raw, env(map[string]string{"S1": "from-env"}))
	if err != nil {
		t.Fatal(err)
	}
	if f.Sources[0].Verify.Secret != "from-env" || f.Sources[1].Verify.Secret != "fallback-token" {
		t.Fatalf("secrets: %q %q", f.Sources[0].Verify.Secret, f.Sources[1].Verify.Secret)
	}
	if len(f.Defaulted) != 1 || f.Defaulted[0] != "S2" {
		t.Fatalf("Defaulted = %v", f.Defaulted)
	}
	p := f.Pipelines[0]
	if time.Duration(p.RetryDelays[1]) != 2*time.Minute || time.Duration(p.DedupWindow) != time.Hour || time.Duration(p.Handler.Timeout) != 5*time.Second {
		t.Fatalf("durations: %+v", p)
	}
	f, err = Parse(raw, env(map[string]string{"S1": "x", "S2": "set"}))
	if err != nil || f.Sources[1].Verify.Secret != "set" || len(f.Defaulted) != 0 {
		t.Fatalf("a set variable wins over the default: %v %+v", err, f.Defaulted)
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"unset variable":   "sources:\n  - name: a\n    verify: {secret: \"${NOPE}\"}\n",
		"unknown key":      "pipelines:\n  - base: a\n    partitons: 3\n",
		"bad duration":     "pipelines:\n  - base: a\n    dedup_window: forever\n",
		"duplicate source": "sources:\n  - name: a\n  - name: a\n",
		"unknown pipeline": "pipelines:\n  - base: a\nsources:\n  - name: s\n    pipeline: b\n",
		"nameless source":  "sources:\n  - kind: genesys\n",
		"slash in a name":  "sources:\n  - name: a/b\n",
		"space in a name":  "sources:\n  - name: a b\n",
		"dot-dot name":     "sources:\n  - name: ..\n",
	}
	for name, raw := range cases {
		if _, err := Parse([]byte(raw), env(nil)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if f, err := Parse(nil, env(nil)); err != nil || len(f.Sources) != 0 {
		t.Fatalf("empty file: %v", err)
	}
}

func TestReadSecrets(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s")
	os.WriteFile(p, []byte("file-secret\n"), 0o600)
	v, err := Verify{SecretFile: p, PreviousSecretFile: p}.ReadSecrets()
	if err != nil || v.Secret != "file-secret" || v.PreviousSecret != "file-secret" {
		t.Fatalf("%+v %v", v, err)
	}
	if _, err := (Verify{Secret: "x", SecretFile: p}).ReadSecrets(); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("secret and secret_file: %v", err)
	}
}

// LoadFor(UnusedSources) expands an unset ${NAME} to "" and names it; Load
// refuses the same file.
func TestLoadForAllowsUnsetReferencesInUnusedParts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.yaml")
	body := "brokers: [\"${KAFKA:-127.0.0.1:9092}\"]\npipelines:\n  - base: a.events\nsources:\n  - name: s\n    verify: {type: shared-secret, secret: \"${NOT_SET_HERE}\"}\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(string) string { return "" }
	if _, err := Load(path, getenv); err == nil || !strings.Contains(err.Error(), "NOT_SET_HERE") {
		t.Fatalf("Load: %v, want the unset variable refused", err)
	}
	f, err := LoadFor(path, getenv, UnusedSources)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Unset) != 1 || f.Unset[0] != "NOT_SET_HERE" || f.Sources[0].Verify.Secret != "" ||
		len(f.Brokers) != 1 || f.Brokers[0] != "127.0.0.1:9092" || f.Pipelines[0].Base != "a.events" {
		t.Fatalf("LoadFor: %+v", f)
	}
}

// A variable's text is used exactly as set: references are expanded in the
// parsed values, so YAML never reads a secret's #, quote or backslash.
func TestReferencesKeepTheVariableExactly(t *testing.T) {
	raw := []byte(`# ${IN_A_COMMENT} is not expanded
pipelines:
  - base: a.events
    partitions: ${PARTS}
    dedup_window: ${WINDOW}
sources:
  - name: quoted
    verify: {type: shared-secret, secret: "${TAB}"}
  - name: plain
    verify:
      type: shared-secret
      secret: ${HASH}
  - name: quote
    verify: {type: bearer, secret: '${QUOTE}'}
  - name: null-looking
    verify:
      type: bearer
      secret: ${NULLISH}
  - name: mixed
    verify: {type: basic, username: "u-${TAB}-x", secret: x}
`)
	vars := map[string]string{"PARTS": "6", "WINDOW": "2h", "TAB": `ab\tcd`, "HASH": "pass #word", "QUOTE": `a"b'c`, "NULLISH": "null"}
	f, err := Parse(raw, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if f.Pipelines[0].Partitions != 6 || time.Duration(f.Pipelines[0].DedupWindow) != 2*time.Hour {
		t.Fatalf("plain references to a number and a duration: %+v", f.Pipelines[0])
	}
	want := []string{`ab\tcd`, "pass #word", `a"b'c`, "null", "x"}
	for i, w := range want {
		if got := f.Sources[i].Verify.Secret; got != w {
			t.Errorf("sources[%d] secret = %q, want %q", i, got, w)
		}
	}
	if got := f.Sources[4].Verify.Username; got != `u-ab\tcd-x` {
		t.Errorf("reference inside a value: %q", got)
	}
}

func TestParseRefusals(t *testing.T) {
	cases := []struct{ name, raw, want string }{
		{"second document", "pipelines:\n  - base: a\n---\nsources:\n  - name: s\n", "more than one YAML document"},
		{"typo, with its line", "pipelines:\n  - base: a\n    handler:\n      timout: 5s\n", `line 4: unknown key "timout" (pipelines[0].handler.timout)`},
		{"unset, with where", "brokers: [\"${NOPE}\"]\n", "NOPE (at brokers[0], line 1)"},
		{"a YAML list in a variable", "brokers: ${LIST}\n", `brokers: "[k1:9092, k2:9092]" is not a host:port list: write brokers comma-separated`},
		{"unquoted in flow style", "sources:\n  - name: s\n    verify: {type: bearer, secret: ${B}}\n", `line 3: inside { } or [ ] a reference must be quoted: "${NAME}"`},
		{"unquoted in a flow list", "brokers: [${B}]\n", `line 1: inside { } or [ ] a reference must be quoted`},
		{"reserved source name", "sources:\n  - name: unknown\n", `sources[0]: name "unknown" is reserved`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.raw), env(map[string]string{"B": "k1:9092", "LIST": "[k1:9092, k2:9092]"}))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// LoadFor leaves only the unused parts empty: an unset variable in a part
// the command uses (the brokers, a consumer's handler URL) is still refused.
func TestLoadForRefusesUnsetInUsedParts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.yaml")
	body := "brokers: [\"${KAFKA_SEEDS}\"]\nlisten: \"${PORT}\"\npipelines:\n  - base: a.events\n    handler: {url: \"${HANDLER}\"}\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	unset := func(string) string { return "" }
	_, err := LoadFor(path, unset, UnusedSources|UnusedListen)
	if err == nil || !strings.Contains(err.Error(), "KAFKA_SEEDS (at brokers[0], line 1)") || !strings.Contains(err.Error(), "HANDLER (at pipelines[0].handler.url, line 5)") || strings.Contains(err.Error(), "PORT") {
		t.Fatalf("a consumer's load: %v", err)
	}
	set := func(k string) string { return map[string]string{"KAFKA_SEEDS": "k:9092"}[k] }
	f, err := LoadFor(path, set, UnusedSources|UnusedListen|UnusedHandlers)
	if err != nil || len(f.Unset) != 2 || f.Brokers[0] != "k:9092" {
		t.Fatalf("a topics command's load: %+v %v", f, err)
	}
}

// The example file in the repository loads as it is, with nothing set.
func TestExampleFileLoads(t *testing.T) {
	f, err := Load("../../hookline.example.yaml", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Sources) == 0 || len(f.Defaulted) != len(f.Sources) {
		t.Fatalf("sources %d, defaulted %v", len(f.Sources), f.Defaulted)
	}
}

// Anchors, aliases and merge keys work as YAML has them, and a key in an
// anchor is checked where the anchor is used.
func TestAnchorsAndMergeKeys(t *testing.T) {
	raw := []byte(`
pipelines:
  - &p
    base: a.events
    partitions: ${PARTS}
    handler: {url: "http://h/x"}
  - <<: *p
    base: b.events
sources:
  - name: s
    verify: &v {type: bearer, secret: "${TOKEN}"}
  - name: s2
    verify: *v
`)
	f, err := Parse(raw, env(map[string]string{"PARTS": "3", "TOKEN": "t#1"}))
	if err != nil {
		t.Fatal(err)
	}
	if p := f.Pipelines[1]; p.Base != "b.events" || p.Partitions != 3 || p.Handler.URL != "http://h/x" || f.Sources[1].Verify.Secret != "t#1" {
		t.Fatalf("merged: %+v %+v", f.Pipelines, f.Sources)
	}
	bad := []byte("pipelines:\n  - &p\n    base: a\n    partitons: 3\n  - <<: *p\n    base: b\n")
	if _, err := Parse(bad, env(nil)); err == nil || !strings.Contains(err.Error(), "partitons") {
		t.Fatalf("typo in an anchor: %v", err)
	}
}

// An empty trailing document is fine; a broken one is a parse error.
func TestTrailingDocuments(t *testing.T) {
	if _, err := Parse([]byte("listen: ':1'\n---\n"), env(nil)); err != nil {
		t.Fatalf("empty trailing document: %v", err)
	}
	if _, err := Parse([]byte("listen: ':1'\n---\n[unclosed\n"), env(nil)); err == nil || strings.Contains(err.Error(), "more than one") {
		t.Fatalf("broken second document: %v", err)
	}
}

// A variable set to "" counts as missing, and the message says so.
func TestEmptyVariableIsRefused(t *testing.T) {
	_, err := Parse([]byte("brokers: [\"${EMPTY}\"]\n"), func(k string) string { return map[string]string{"EMPTY": ""}[k] })
	if err == nil || !strings.Contains(err.Error(), "unset or empty: EMPTY (at brokers[0], line 1)") {
		t.Fatalf("a variable set to \"\": %v", err)
	}
}

// A quoted reference stays a string, which a number field refuses: the
// error says to write it unquoted in block style.
func TestQuotedReferenceInANumberFieldSaysToUnquote(t *testing.T) {
	vars := env(map[string]string{"P": "4", "RF": "3"})
	for _, raw := range []string{
		"pipelines:\n  - base: a\n    partitions: \"${P}\"\n",
		"pipelines:\n  - base: a\n    partitions: '${P}'\n",
		"pipelines:\n  - {base: a, partitions: \"${P}\"}\n",
	} {
		_, err := Parse([]byte(raw), vars)
		if err == nil || !strings.Contains(err.Error(), "pipelines[0].partitions") || !strings.Contains(err.Error(), "`partitions: ${P}`") ||
			!strings.Contains(err.Error(), "unquoted") {
			t.Errorf("%q: %v", raw, err)
		}
	}
	_, err := Parse([]byte("pipelines:\n  - {base: a, replication_factor: \"${RF}\"}\n"), vars)
	if err == nil || !strings.Contains(err.Error(), "`replication_factor: ${RF}`") || !strings.Contains(err.Error(), "block style") {
		t.Errorf("replication_factor: %v", err)
	}
	// A type error of a value that is not a reference gets no such hint.
	_, err = Parse([]byte("pipelines:\n  - {base: \"${P}\", partitions: \"x\"}\n"), vars)
	if err == nil || strings.Contains(err.Error(), "quoted reference") {
		t.Errorf("a quoted literal: %v", err)
	}
	// Unquoted in block style it is a number.
	f, err := Parse([]byte("pipelines:\n  - base: a\n    partitions: ${P}\n"), vars)
	if err != nil || f.Pipelines[0].Partitions != 4 {
		t.Errorf("unquoted: %v %+v", err, f.Pipelines)
	}
}

// brokers takes one comma-separated string, as --brokers and
// HOOKLINE_BROKERS do, as well as a list; every entry is split at commas.
func TestBrokersAsACommaSeparatedString(t *testing.T) {
	vars := env(map[string]string{"K1": "127.0.0.1:9092", "SEEDS": "k1:9092, k2:9092,"})
	for raw, want := range map[string]string{
		"brokers: ${K1}\n":                "127.0.0.1:9092",
		"brokers: \"${SEEDS}\"\n":         "k1:9092 k2:9092",
		"brokers: k1:9092,k2:9092\n":      "k1:9092 k2:9092",
		"brokers: [\"${SEEDS}\", k3:1]\n": "k1:9092 k2:9092 k3:1",
		"brokers:\n  - ${K1}\n":           "127.0.0.1:9092",
		"brokers:\n":                      "",
	} {
		f, err := Parse([]byte(raw), vars)
		if err != nil || strings.Join(f.Brokers, " ") != want {
			t.Errorf("%q: %q %v, want %q", raw, f.Brokers, err, want)
		}
	}
}

// An explicitly empty retry_delays is refused: a pipeline has at least one
// retry tier, and [] must not quietly mean the default three.
func TestEmptyRetryDelaysIsRefused(t *testing.T) {
	_, err := Parse([]byte("pipelines:\n  - base: a.events\n    retry_delays: []\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "pipelines[0] (a.events): retry_delays is an empty list") || !strings.Contains(err.Error(), "leave the key out") {
		t.Fatalf("retry_delays: []: %v", err)
	}
	f, err := Parse([]byte("pipelines:\n  - base: a.events\n    retry_delays:\n"), env(nil))
	if err != nil || f.Pipelines[0].RetryDelays != nil {
		t.Fatalf("retry_delays with no value means the default: %v %+v", err, f.Pipelines)
	}
}

// A reference in a place that cannot take a string is an error that
// names the reference, never the variable's value: YAML quotes the start
// of the value, which may be a secret, and the error is printed and logged.
func TestTypeErrorDoesNotQuoteAVariable(t *testing.T) {
	const secret = "S3CRETvalue-0123456789"
	vars := env(map[string]string{"OM_SECRET": secret, "N": "1234567890123", "BT": "S3CR`ETvalue-0123456789"})
	for _, raw := range []string{
		"sources:\n  - name: a\n    verify: \"${OM_SECRET}\"\n",
		"sources:\n  - name: a\n    verify: ${OM_SECRET}\n",
		"sources:\n  - name: a\n    verify: ${N}\n",
		"sources:\n  - {name: a, verify: \"${OM_SECRET}\"}\n",
		"pipelines:\n  - base: a\n    partitions: \"${OM_SECRET}\"\n",
		"pipelines:\n  - base: a\n    partitions: \"${BT}\"\n",      // a backtick in the value
		"pipelines:\n  - base: a\n    dedup_window: ${OM_SECRET}\n", // Duration's own error
		"pipelines:\n  - base: a\n    handler: {url: \"http://x\", timeout: \"${N}\"}\n",
	} {
		_, err := Parse([]byte(raw), vars)
		if err == nil {
			t.Fatalf("%q: no error", raw)
		}
		for _, leak := range []string{secret[:4], "1234"} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("%q: the error quotes the variable's value: %v", raw, err)
			}
		}
		if !strings.Contains(err.Error(), "${") {
			t.Errorf("%q: the error does not name the reference: %v", raw, err)
		}
	}
	// A literal written in the file is still quoted, as YAML writes it.
	_, err := Parse([]byte("pipelines:\n  - base: a\n    partitions: many\n"), vars)
	if err == nil || !strings.Contains(err.Error(), "`many`") {
		t.Errorf("literal: %v", err)
	}
}

// A parse error in a file whose references are all quoted (or in block
// style) gets no hint about quoting them.
func TestParseErrorHintsAtReferencesOnlyWhenOneIsUnquotedInFlowStyle(t *testing.T) {
	raw := "pipelines:\n  - base: a\n    handler: {url: \"${H}\"}\nsources:\n  - name: s\n   bad_indent: x\n    verify: {type: bearer, secret: \"${B}\"} # a ${COMMENT} [\nlisten: ${PORT}\n"
	_, err := Parse([]byte(raw), env(map[string]string{"H": "http://h/", "B": "b", "PORT": ":1"}))
	if err == nil || !strings.Contains(err.Error(), "parse YAML") || strings.Contains(err.Error(), "must be quoted") {
		t.Errorf("mis-indented file with quoted references: %v, want a parse error without the quoting hint", err)
	}
}
