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

// LoadWithoutSecrets expands an unset ${NAME} to "" and names it; Load
// refuses the same file.
func TestLoadWithoutSecretsAllowsUnsetReferences(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.yaml")
	body := "brokers: [\"${KAFKA:-127.0.0.1:9092}\"]\npipelines:\n  - base: a.events\nsources:\n  - name: s\n    verify: {type: shared-secret, secret: \"${NOT_SET_HERE}\"}\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(string) string { return "" }
	if _, err := Load(path, getenv); err == nil || !strings.Contains(err.Error(), "NOT_SET_HERE") {
		t.Fatalf("Load: %v, want the unset variable refused", err)
	}
	f, err := LoadWithoutSecrets(path, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Unset) != 1 || f.Unset[0] != "NOT_SET_HERE" || f.Sources[0].Verify.Secret != "" ||
		len(f.Brokers) != 1 || f.Brokers[0] != "127.0.0.1:9092" || f.Pipelines[0].Base != "a.events" {
		t.Fatalf("LoadWithoutSecrets: %+v", f)
	}
}
