package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	stdlog "log"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookline/hookline/internal/syncbuf"
	"github.com/hookline/hookline/internal/verify"
)

// fakeKafka starts an in-process one-broker Kafka, closed when the test
// (and its other cleanups registered later) ended.
func fakeKafka(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// call runs the CLI in-process with the given environment variables.
func call(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &environment{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), getenv: func(k string) string { return vars[k] },
		environ: func() []string {
			var kv []string
			for k, v := range vars {
				kv = append(kv, k+"="+v)
			}
			return kv
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = dispatch(ctx, env, args)
	return code, out.String(), errb.String()
}

// `hookline help <command>` is that command's --help, as the top-level
// usage suggests; an unknown one is named.
func TestHelpCommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"help", "run"}, "run"},
		{[]string{"help", "dlq", "ls"}, "dlq ls"},
		{[]string{"help", "replay"}, "replay"},
		// Words after the command do not get in the way.
		{[]string{"help", "version", "extra"}, "version"},
		{[]string{"help", "dlq", "show", "x"}, "dlq show"},
	} {
		code, out, _ := call(t, nil, c.args...)
		if want := "Usage: hookline " + c.want; code != 0 || !strings.HasPrefix(out, want) {
			t.Errorf("%v: exit %d, stdout %.80q; want 0 and %q", c.args, code, out, want)
		}
	}
	if code, _, errOut := call(t, nil, "help", "rnu"); code != 2 || !strings.Contains(errOut, `unknown command "rnu"`) {
		t.Errorf("help rnu: exit %d %q", code, errOut)
	}
}

func TestEverySubcommandHelpShowsAnExample(t *testing.T) {
	for name := range commands() {
		args := []string{name, "--help"}
		if name == "topics" {
			args = []string{"topics", "create", "--help"}
		}
		code, out, _ := call(t, nil, args...)
		if code != 0 {
			t.Errorf("%s --help: exit %d", name, code)
		}
		if !strings.Contains(out, "Examples:") || !strings.Contains(out, "hookline ") {
			t.Errorf("%s --help has no example:\n%s", name, out)
		}
	}
	// Durations as one writes them: --dedup-window 96h, not 96h0m0s.
	if _, out, _ := call(t, nil, "run", "--help"); !strings.Contains(out, "(default 96h) [HOOKLINE_DEDUP_WINDOW]") || strings.Contains(out, "0m0s") {
		t.Errorf("run --help writes durations as time.Duration prints them:\n%s", out)
	}
	if code, out, _ := call(t, nil, "--help"); code != 0 || !strings.Contains(out, "Commands:") {
		t.Fatalf("top-level help: %d\n%s", code, out)
	}
	if code, _, errOut := call(t, nil, "bogus"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: %d %s", code, errOut)
	}
}

// writeFile writes body to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// resolveFor parses args for run and resolves settings.
func resolveFor(t *testing.T, vars map[string]string, args ...string) (settings, error) {
	t.Helper()
	return resolveAs(t, vars, "run", usesReceiver|usesConsumer, args...)
}

// resolveAs resolves args as command cmd, which runs what u says (and has
// the consumer's flags when it runs one).
func resolveAs(t *testing.T, vars map[string]string, cmd string, u uses, args ...string) (settings, error) {
	t.Helper()
	env := &environment{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: func(k string) string { return vars[k] }}
	fs := newFlagSet(env, cmd, cmd, "")
	a := addAppFlags(fs, true, u&usesConsumer != 0)
	if err := fs.parse(args); err != nil {
		return settings{}, err
	}
	return a.resolve(env, u)
}

func TestPrecedenceFlagOverEnvOverFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hookline.yaml")
	yaml := `
brokers: [file-broker:9092]
listen: ":7000"
pipelines:
  - base: file.events
    partitions: 6
    retry_delays: [5s]
    handler: {url: "http://file-handler/x", timeout: 5s}
sources:
  - name: genesys
    kind: genesys
    verify: {type: shared-secret, header: X-Hookline-Secret, secret: "${FILE_SECRET}"}
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"FILE_SECRET": "from-file", "HOOKLINE_PARTITIONS": "8", "HOOKLINE_LISTEN": ":7100"}
	s, err := resolveFor(t, vars, "--config", cfg, "--listen", ":7200")
	if err != nil {
		t.Fatal(err)
	}
	p := s.pipelines[0]
	if s.listen != ":7200" { // flag beats env and file
		t.Errorf("listen %q, want :7200 from the flag", s.listen)
	}
	if p.plan.Partitions != 8 { // env beats file
		t.Errorf("partitions %d, want 8 from HOOKLINE_PARTITIONS", p.plan.Partitions)
	}
	if p.plan.Names.Base != "file.events" || len(p.plan.RetryDelays) != 1 || p.handlerURL != "http://file-handler/x" || p.handlerTimeout != 5*time.Second {
		t.Errorf("file values lost: %+v %s %s", p.plan.Names, p.handlerURL, p.handlerTimeout)
	}
	if strings.Join(s.kafka.Brokers, ",") != "file-broker:9092" {
		t.Errorf("brokers %v, want the file's", s.kafka.Brokers)
	}
	if len(s.sources) != 1 || s.sources[0].Topics.Base != "file.events" {
		t.Fatalf("sources %+v", s.sources)
	}
	s, err = resolveFor(t, map[string]string{"FILE_SECRET": "x", "HOOKLINE_BROKERS": "env-broker:1"}, "--config", cfg)
	if err != nil || strings.Join(s.kafka.Brokers, ",") != "env-broker:1" {
		t.Fatalf("HOOKLINE_BROKERS must beat the file: %v %v", s.kafka.Brokers, err)
	}
}

func TestStartupRefusals(t *testing.T) {
	if _, err := resolveFor(t, nil); err == nil || !strings.Contains(err.Error(), "--insecure-no-auth") {
		t.Fatalf("no secret: %v", err)
	}
	s, err := resolveFor(t, nil, "--insecure-no-auth")
	if err != nil || !s.insecure {
		t.Fatalf("insecure opt-in: %v", err)
	}
	if s, err := resolveFor(t, map[string]string{"HOOKLINE_SECRET": "abc"}); err != nil || s.insecure || len(s.sources) != 1 {
		t.Fatalf("HOOKLINE_SECRET: %v", err)
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("sources:\n  - name: crm\n    kind: generic\n    verify: {type: hmac-sha256, encoding: base32, secret: x}\n"), 0o600)
	if _, err := resolveFor(t, nil, "--config", bad); err == nil || !strings.Contains(err.Error(), `source "crm"`) {
		t.Fatalf("misconfigured verifier must name the source: %v", err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	os.WriteFile(missing, []byte("sources:\n  - name: a\n    verify: {type: bearer, secret: \"${NOT_SET_ANYWHERE}\"}\n"), 0o600)
	if _, err := resolveFor(t, nil, "--config", missing); err == nil || !strings.Contains(err.Error(), "NOT_SET_ANYWHERE") {
		t.Fatalf("unset ${ENV} must be an error naming it: %v", err)
	}
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte("pipelines:\n  - base: x\n    partitons: 3\n"), 0o600)
	if _, err := resolveFor(t, map[string]string{"HOOKLINE_SECRET": "abc"}, "--config", typo); err == nil || !strings.Contains(err.Error(), "partitons") {
		t.Fatalf("a typo in the file must be an error: %v", err)
	}
	if code, _, errOut := call(t, nil, "topics", "check", "--retry-delays", "10s,bogus"); code != 2 || !strings.Contains(errOut, "bogus") {
		t.Fatalf("bad --retry-delays: exit %d %s", code, errOut)
	}
	if code, _, errOut := call(t, nil, "topics", "check"); code != 2 || !strings.Contains(errOut, "HOOKLINE_BROKERS") {
		t.Fatalf("topics without brokers: exit %d %s", code, errOut)
	}
	// Refused before any connection: the brokers here do not exist.
	for _, c := range []struct {
		env  map[string]string
		args []string
	}{
		{nil, []string{"consume", "--brokers", "127.0.0.1:1", "--handler-url", "http://127.0.0.1:1/", "--concurrency", "8", "--max-unfinished", "5"}},
		{map[string]string{"HOOKLINE_MAX_UNFINISHED": "100"}, []string{"consume", "--brokers", "127.0.0.1:1", "--handler-url", "http://127.0.0.1:1/"}},
	} {
		if code, _, errOut := call(t, c.env, c.args...); code != 2 || !strings.Contains(errOut, "--max-unfinished") {
			t.Errorf("%v %v: exit %d %s; want 2 naming --max-unfinished", c.env, c.args, code, errOut)
		}
	}

	// Numbers out of range: refused before connecting (exit 2), naming the
	// flag, the value and the range, whether from a flag or HOOKLINE_<FLAG>,
	// instead of silently becoming the default or a nameless consumer error.
	serve := []string{"serve", "--brokers", "127.0.0.1:1", "--insecure-no-auth"}
	consume := []string{"consume", "--brokers", "127.0.0.1:1", "--handler-url", "http://127.0.0.1:1/"}
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, append(serve, "--ack-timeout", "-1s"), "--ack-timeout -1s: must be positive"},
		{nil, append(serve, "--ack-timeout", "0s"), "--ack-timeout 0s: must be positive"},
		{nil, append(serve, "--max-body", "0"), "--max-body 0: must be at least 1"},
		{nil, append(serve, "--max-body", "-1"), "--max-body -1: must be at least 1"},
		{nil, append(serve, "--max-in-flight", "0"), "--max-in-flight 0: must be at least 1"},
		{nil, append(serve, "--max-in-flight", "-1"), "--max-in-flight -1: must be at least 1"},
		{nil, append(serve, "--drain-delay", "-1s"), "--drain-delay -1s: must be 0 (no delay) or positive"},
		{nil, []string{"run", "--brokers", "127.0.0.1:1", "--insecure-no-auth", "--drain-delay", "-500ms"}, "--drain-delay -500ms: must be 0"},
		{nil, append(serve, "--partitions", "0"), "--partitions 0: must be at least 1"},
		{nil, append(consume, "--partitions", "-2"), "--partitions -2: must be at least 1"},
		{nil, append(serve, "--replication-factor", "0"), "--replication-factor 0: must be -1"},
		{nil, append(serve, "--dedup-window", "0s"), "--dedup-window 0s: must be positive"},
		{nil, append(serve, "--retry-delays", "10s,0s"), "--retry-delays 10s,0s: every delay must be positive"},
		{nil, append(serve, "--retry-delays", "10s,800h"), "--retry-delays 10s,800h: every delay must be at most 720h (30 days)"},
		{nil, append(consume, "--handler-timeout", "-1s"), "--handler-timeout -1s: must be positive"},
		{nil, append(consume, "--concurrency", "-3"), "--concurrency -3: must be 0 (the consumer default"},
		{nil, append(consume, "--partition-concurrency", "-1"), "--partition-concurrency -1: must be 0"},
		{nil, append(consume, "--max-unfinished", "-1"), "--max-unfinished -1: must be 0"},
		{nil, append(consume, "--session-timeout", "-1s"), "--session-timeout -1s: must be positive"},
		{map[string]string{"HOOKLINE_ACK_TIMEOUT": "0s"}, serve, "--ack-timeout 0s (from HOOKLINE_ACK_TIMEOUT): must be positive"},
		{map[string]string{"HOOKLINE_MAX_BODY": "-1"}, serve, "--max-body -1 (from HOOKLINE_MAX_BODY)"},
		{map[string]string{"HOOKLINE_DRAIN_DELAY": "-2s"}, serve, "--drain-delay -2s (from HOOKLINE_DRAIN_DELAY): must be 0"},
		{map[string]string{"HOOKLINE_PARTITIONS": "0"}, consume, "--partitions 0 (from HOOKLINE_PARTITIONS)"},
		{map[string]string{"HOOKLINE_CONCURRENCY": "-3"}, consume, "--concurrency -3 (from HOOKLINE_CONCURRENCY)"},
		{nil, []string{"topics", "check", "--brokers", "127.0.0.1:1", "--partitions", "0"}, "--partitions 0: must be at least 1"},
		// The sink must answer what hookline classifies the same way.
		{nil, []string{"sink", "--listen", "127.0.0.1:0", "--transient-status", "404"}, "transient status 404: hookline does not retry it"},
		{nil, []string{"sink", "--listen", "127.0.0.1:0", "--permanent-status", "503"}, "permanent status 503: hookline retries it"},
	} {
		if code, _, errOut := call(t, c.env, c.args...); code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v %v: exit %d %q; want 2 and %q", c.env, c.args, code, errOut, c.want)
		}
	}
	// 0 keeps its documented meaning (the consumer's default): no refusal
	// from the checks, the (absent) broker is what fails.
	if code, _, errOut := call(t, nil, append(consume, "--concurrency", "0", "--partition-concurrency", "0", "--max-unfinished", "0", "--create-topics=false")...); code == 2 {
		t.Errorf("0 for the consumer limits refused: %s", errOut)
	}
	// The file's values get the same checks, naming the file and the key.
	for key, yaml := range map[string]string{
		"handler.timeout -1s":  "pipelines:\n  - base: f.events\n    handler: {url: \"http://h/x\", timeout: -1s}\n",
		"partitions -2":        "pipelines:\n  - base: f.events\n    partitions: -2\n",
		"dedup_window -1h0m0s": "pipelines:\n  - base: f.events\n    dedup_window: -1h\n",
	} {
		path := filepath.Join(dir, "neg.yaml")
		os.WriteFile(path, []byte(yaml), 0o600)
		if _, err := resolveFor(t, map[string]string{"HOOKLINE_SECRET": "abc"}, "--config", path); err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "neg.yaml") {
			t.Errorf("file %q: %v; want an error naming %q and the file", yaml, err, key)
		}
	}
}

func TestSendReportsStatusAndFailsOnNon2xx(t *testing.T) {
	code, out, _ := call(t, nil, "send", "--list-samples")
	if code != 0 || !strings.Contains(out, "customer.start.eventbridge") {
		t.Fatalf("list-samples: %d\n%s", code, out)
	}
	if code, _, errOut := call(t, nil, "send", "--url", "http://127.0.0.1:1/webhooks/x", "--sample", "nope"); code != 2 || !strings.Contains(errOut, "--list-samples") {
		t.Fatalf("unknown sample: %d %s", code, errOut)
	}
	if code, _, errOut := call(t, nil, "send", "--url", "http://127.0.0.1:1/webhooks/x", "--sample", "user.end"); code != 1 || !strings.Contains(errOut, "receiver running") {
		t.Fatalf("connection refused: %d %s", code, errOut)
	}
}

func TestExampleConfigWorksAsIs(t *testing.T) {
	s, err := resolveFor(t, nil, "--config", "../../hookline.example.yaml")
	if err != nil {
		t.Fatalf("hookline.example.yaml: %v", err)
	}
	if len(s.sources) != 3 || len(s.pipelines) != 1 || s.pipelines[0].handlerURL == "" || len(s.kafka.Brokers) != 0 {
		t.Fatalf("example: %d sources, %d pipelines, brokers %v", len(s.sources), len(s.pipelines), s.kafka.Brokers)
	}
	if len(s.defaulted) != 3 {
		t.Fatalf("defaulted %v: every example secret should fall back to its dev default", s.defaulted)
	}
}

// File pipelines against flags: --base renames the file's only pipeline
// (its sources follow it), pipelines may not share a topic, a bad handler
// URL is refused before anything starts, and flags that nothing uses say so.
func TestFilePipelinesAndFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string { return writeFile(t, dir, name, body) }
	one := write("one.yaml", "pipelines:\n  - base: a.events\nsources:\n  - name: s\n    pipeline: a.events\n    verify: {type: bearer, secret: tok}\n")
	for _, c := range []struct {
		vars map[string]string
		args []string
	}{
		{nil, []string{"--config", one, "--base", "b.events"}},
		{map[string]string{"HOOKLINE_BASE": "b.events"}, []string{"--config", one}},
	} {
		s, err := resolveFor(t, c.vars, c.args...)
		if err != nil {
			t.Fatalf("%v %v: %v", c.vars, c.args, err)
		}
		if s.pipelines[0].plan.Names.Base != "b.events" || s.sources[0].Topics.Base != "b.events" {
			t.Fatalf("%v %v: pipeline %s, source writes to %s; want both b.events", c.vars, c.args, s.pipelines[0].plan.Names.Base, s.sources[0].Topics.Base)
		}
	}

	clash := write("clash.yaml", "pipelines:\n  - base: x\n  - base: x.dlq\nsources:\n  - name: s\n    pipeline: x\n    verify: {type: bearer, secret: tok}\n")
	if _, err := resolveFor(t, nil, "--config", clash); err == nil || !strings.Contains(err.Error(), "pipelines x and x.dlq both use the topic x.dlq") {
		t.Fatalf("a base that is another pipeline's DLQ: %v", err)
	}
	clashRetry := write("clash2.yaml", "pipelines:\n  - base: y.retry-1\n  - base: y\n    retry_delays: [1s]\n")
	if _, err := resolveFor(t, map[string]string{"HOOKLINE_SECRET": "x"}, "--config", clashRetry); err == nil || !strings.Contains(err.Error(), "both use the topic y.retry-1") {
		t.Fatalf("a base that is another pipeline's retry tier: %v", err)
	}
	beyond := write("clash3.yaml", "pipelines:\n  - base: z.retry-5\n  - base: z\n    retry_delays: [1s]\n")
	if _, err := resolveFor(t, map[string]string{"HOOKLINE_SECRET": "x"}, "--config", beyond); err == nil || !strings.Contains(err.Error(), "pipeline z.retry-5 is named like retry tier 5 of pipeline z") {
		t.Fatalf("a base named like a tier beyond another pipeline's: %v", err)
	}

	badURL := write("url.yaml", "pipelines:\n  - base: u.events\n    handler: {url: \"not a url\"}\n")
	if code, _, errOut := call(t, map[string]string{"HOOKLINE_SECRET": "x"}, "run", "--config", badURL, "--data-dir", filepath.Join(dir, "data"), "--embedded-addr", "127.0.0.1:0"); code != 2 || !strings.Contains(errOut, `handler URL "not a url" is not an absolute`) {
		t.Fatalf("a bad handler URL must be refused before the broker starts: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Fatal("the embedded broker started before the handler URL was checked")
	}

	two := write("two.yaml", "pipelines:\n  - base: p1\n  - base: p2\n")
	if _, err := resolveFor(t, map[string]string{"HOOKLINE_DEDUP_WINDOW": "3s", "HOOKLINE_SECRET": "x"}, "--config", two); err == nil || !strings.Contains(err.Error(), "HOOKLINE_DEDUP_WINDOW is ambiguous") {
		t.Fatalf("an ambiguous pipeline setting must name where it came from: %v", err)
	}

	renamed, err := resolveFor(t, nil, "--config", one, "--base", "b.events")
	if err != nil || !strings.Contains(strings.Join(renamed.warnings, "\n"), "--base renames the pipeline a.events of "+one+" to b.events") {
		t.Fatalf("a rename must be said: %v %q", err, renamed.warnings)
	}

	// What a command does not run is not checked: serve ignores a handler
	// URL, and the topics commands an unset ${…} in a handler or source.
	asServe := func(vars map[string]string, u uses, args ...string) error {
		_, err := resolveAs(t, vars, "serve", u, args...)
		return err
	}
	if err := asServe(map[string]string{"HOOKLINE_SECRET": "x"}, usesReceiver, "--config", badURL); err != nil {
		t.Fatalf("serve refused a handler URL it does not use: %v", err)
	}
	unsetHandler := write("unset.yaml", "pipelines:\n  - base: v.events\n    handler: {url: \"${NOT_SET_HERE}\"}\nsources:\n  - name: s\n    verify: {type: bearer, secret: \"${NOR_HERE}\"}\n")
	if err := asServe(nil, 0, "--config", unsetHandler); err != nil {
		t.Fatalf("a topics command refused unset references it does not use: %v", err)
	}
	if err := asServe(nil, usesReceiver, "--config", unsetHandler); err == nil || !strings.Contains(err.Error(), "NOR_HERE") || strings.Contains(err.Error(), "NOT_SET_HERE") {
		t.Fatalf("serve must refuse only the unset secret: %v", err)
	}

	s, err := resolveFor(t, map[string]string{"HOOKLINE_SECRET": "x"}, "--config", one, "--insecure-no-auth")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.warnings, "\n"); !strings.Contains(got, "HOOKLINE_SECRET is ignored") || !strings.Contains(got, "--insecure-no-auth is ignored") {
		t.Fatalf("ignored flags: %q", got)
	}
}

// The forward sink's CA file and extra headers come from the flags (which
// replace the file's headers) or from the file, with ${VAR} expanded; a
// missing CA file or a header hookline sets itself is refused before
// anything starts.
func TestHandlerCAAndHeaders(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	srv.Close()
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "hookline.yaml")
	yaml := `
pipelines:
  - base: h.events
    handler:
      url: https://crm.internal/hooks
      ca_file: ` + ca + `
      headers: {Authorization: "Bearer ${CRM_TOKEN}", X-Team: crm}
`
	write := func(y string) {
		if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(yaml)
	vars := map[string]string{"CRM_TOKEN": "t0k#en"}
	s, err := resolveFor(t, vars, "--config", cfg, "--insecure-no-auth")
	if err != nil {
		t.Fatal(err)
	}
	p := s.pipelines[0]
	if p.handlerCA != ca || p.handlerHeaders.Get("Authorization") != "Bearer t0k#en" || p.handlerHeaders.Get("X-Team") != "crm" {
		t.Errorf("from the file: CA %q, headers %v", p.handlerCA, p.handlerHeaders)
	}

	vars["HOOKLINE_HANDLER_HEADER"] = "Authorization: Bearer from-env\nX-Other: 1"
	delete(vars, "CRM_TOKEN") // unset: the headers it is in are replaced
	s, err = resolveFor(t, vars, "--config", cfg, "--insecure-no-auth")
	if err != nil {
		t.Fatal(err)
	}
	p = s.pipelines[0]
	if p.handlerHeaders.Get("Authorization") != "Bearer from-env" || p.handlerHeaders.Get("X-Other") != "1" || p.handlerHeaders.Get("X-Team") != "" {
		t.Errorf("flags replace the file's headers: %v", p.handlerHeaders)
	}

	s, err = resolveFor(t, nil, "--insecure-no-auth", "--handler-url", "http://127.0.0.1:1/", "--handler-ca", ca)
	if err != nil || len(s.warnings) != 1 || !strings.Contains(s.warnings[0], "CA file is not used") {
		t.Errorf("a CA file for an http handler: %v, warnings %q", err, s.warnings)
	}
	if _, err := resolveFor(t, vars, "--config", cfg, "--insecure-no-auth", "--handler-ca", filepath.Join(dir, "nope.pem")); err == nil || !strings.Contains(err.Error(), "nope.pem") {
		t.Errorf("a missing CA file: %v", err)
	}
	write(strings.Replace(yaml, ca, filepath.Join(dir, "nope.pem"), 1))
	if _, err := resolveAs(t, vars, "topics", 0, "--config", cfg); err != nil {
		t.Errorf("topics does not read the CA file: %v", err)
	}

	for _, bad := range []string{"Idempotency-Key: x", "x-hookline-attempt: 9", "Content-Type: text/plain", "no colon", "Bad Name: x", ": x"} {
		_, err := resolveFor(t, nil, "--insecure-no-auth", "--handler-url", "http://127.0.0.1:1/", "--handler-header", bad)
		if err == nil || !strings.Contains(err.Error(), "handler-header") {
			t.Errorf("--handler-header %q: %v, want a usage error naming the flag", bad, err)
		}
	}
	for _, bad := range []string{"Authorization: Bearer secret-\x1bvalue", "X-Api-Key secret-part:tail"} {
		_, err = resolveFor(t, nil, "--insecure-no-auth", "--handler-url", "http://127.0.0.1:1/", "--handler-header", bad)
		if err == nil || strings.Contains(err.Error(), "secret-") {
			t.Errorf("--handler-header %q: %v, want an error that does not show the value", bad, err)
		}
	}
	write(strings.Replace(yaml, "X-Team", "X-Hookline-Source", 1))
	if _, err := resolveFor(t, map[string]string{"CRM_TOKEN": "x"}, "--config", cfg, "--insecure-no-auth"); err == nil || !strings.Contains(err.Error(), "handler.headers") {
		t.Errorf("a reserved header in the file: %v", err)
	}
}

// Lines libraries write with the standard log package (net/http does) come
// out as rate-limited, printable warnings of the structured log.
func TestStandardLogIsStructured(t *testing.T) {
	var buf bytes.Buffer
	rl := routeStdLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { stdlog.SetOutput(os.Stderr); stdlog.SetFlags(stdlog.LstdFlags) })
	stdlog.Printf("http: TLS handshake error from 127.0.0.1:5000: %s", "\x1b[2J"+strings.Repeat("p", 500))
	stdlog.Printf("http: TLS handshake error from 127.0.0.1:5001: %s", "again")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"level":"WARN"`) || !strings.Contains(lines[0], "TLS handshake error") ||
		strings.Contains(lines[0], `\u001b`) || strings.Contains(lines[0], strings.Repeat("p", 200)) {
		t.Errorf("want one JSON warning, cut short and printable, the repeat suppressed; got:\n%s", buf.String())
	}
	rl.Flush() // as the command does when it returns: the held repeat comes out
	if !strings.Contains(buf.String(), `again`) {
		t.Errorf("the held repeat was not logged on flush:\n%s", buf.String())
	}
	// The bytes a service sent after its answer are often the event it
	// echoes: they are not logged, what they mean is.
	buf.Reset()
	stdlog.Printf("Unsolicited response received on idle HTTP channel starting with %q; err=%v", `{"received":{"conversationId":"c-secret-1"`, nil)
	if got := buf.String(); strings.Contains(got, "c-secret-1") || !strings.Contains(got, "a body on a 204") {
		t.Errorf("the stray bytes were logged, or not explained:\n%s", got)
	}
	buf.Reset()
	stdlog.Printf("http: panic serving 127.0.0.1:5000: boom\ngoroutine 7 [running]:\n%send-of-stack", strings.Repeat("frame\n", 300))
	if !strings.Contains(buf.String(), "end-of-stack") {
		t.Errorf("a panic's stack was cut:\n%s", buf.String())
	}
}

// Several pipelines: run consumes those with a handler (whichever comes
// first in the file), consume refuses one without before creating any
// topic, --group is refused like the other per-pipeline flags, and a
// listen address that cannot work fails before anything starts.
func TestSeveralPipelinesAndEarlyRefusals(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string { return writeFile(t, dir, name, body) }
	second := write("second.yaml", "pipelines:\n  - base: p1\n  - base: p2\n    partitions: 6\n    handler: {url: \"http://127.0.0.1:9/x\"}\n")
	vars := map[string]string{"HOOKLINE_SECRET": "x"}
	s, err := resolveFor(t, vars, "--config", second, "--brokers", "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if s.pipelines[0].partitionsAsked || !s.pipelines[1].partitionsAsked {
		t.Errorf("partitions asked: %v %v, want false (default) and true (the file's 6)", s.pipelines[0].partitionsAsked, s.pipelines[1].partitionsAsked)
	}
	a := addAppFlags(newFlagSet(&environment{getenv: func(string) string { return "" }}, "run", "run", ""), true, true)
	a.configPath = second
	comps, _, err := newConsumers(a, s, slog.New(slog.DiscardHandler), newRegistry(), false)
	if _, ok := comps["consumer p2"]; err != nil || len(comps) != 1 || !ok {
		t.Errorf("run: consumers %v, %v; want one, for p2", slices.Collect(maps.Keys(comps)), err)
	}
	if _, _, err := newConsumers(a, s, slog.New(slog.DiscardHandler), newRegistry(), true); err == nil || !strings.Contains(err.Error(), "pipeline p1 has no handler: set handler.url for it in "+second) {
		t.Errorf("consume: %v", err)
	}
	// The broker at 127.0.0.1:1 is never asked: the refusal comes first.
	if code, _, errOut := call(t, nil, "consume", "--config", second, "--brokers", "127.0.0.1:1"); code != 2 || !strings.Contains(errOut, "pipeline p1 has no handler") {
		t.Errorf("consume with a pipeline lacking a handler: exit %d %s", code, errOut)
	}
	if _, err := resolveFor(t, vars, "--config", second, "--group", "g"); err == nil || !strings.Contains(err.Error(), "--group is ambiguous with 2 pipelines") ||
		!strings.Contains(err.Error(), "hookline-<base>") || strings.Contains(err.Error(), "per pipeline in the file") {
		t.Errorf("--group with two pipelines: %v", err)
	}
	data := filepath.Join(dir, "data")
	if code, _, errOut := call(t, vars, "run", "--listen", "127.0.0.1:99999", "--data-dir", data, "--embedded-addr", "127.0.0.1:0"); code == 0 || !strings.Contains(errOut, "receiver cannot listen on 127.0.0.1:99999 (choose another with --listen)") {
		t.Errorf("run with a bad --listen: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(data); err == nil {
		t.Error("the embedded broker started before the listen address was tried")
	}
}

// A secret from the flag or environment that replaces the file's is said;
// so is a --secret-header the file's sources do not use.
func TestSecretOverridesAreSaid(t *testing.T) {
	p := writeFile(t, t.TempDir(), "g.yaml", "sources:\n  - name: genesys\n    verify: {type: shared-secret, secret: \"${GS}\"}\n")
	s, err := resolveFor(t, map[string]string{"GS": "file-secret-value", "HOOKLINE_SECRET": "dev-secret-value"}, "--config", p, "--secret-header", "X-Other")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(s.warnings, "\n")
	if !strings.Contains(got, "HOOKLINE_SECRET replaces the secret "+p+" gives the source genesys") || !strings.Contains(got, "--secret-header is ignored") {
		t.Errorf("warnings: %q", got)
	}
	if strings.Contains(got, "secret-value") {
		t.Errorf("a warning shows a secret: %q", got)
	}
}

// The quick path rotates a secret without a file: --previous-secret is
// accepted besides --secret until it is removed.
func TestPreviousSecretOnTheQuickPath(t *testing.T) {
	s, err := resolveFor(t, map[string]string{"HOOKLINE_SECRET": "new-secret", "HOOKLINE_PREVIOUS_SECRET": "old-secret"})
	if err != nil {
		t.Fatal(err)
	}
	hv, ok := s.sources[0].Verifier.(verify.HeaderVerifier)
	if !ok {
		t.Fatalf("the default source's verifier %T checks no header", s.sources[0].Verifier)
	}
	for secret, want := range map[string]bool{"new-secret": true, "old-secret": true, "other": false} {
		err := hv.VerifyHeader(http.Header{DefaultSecretHeader: {secret}})
		if (err == nil) != want {
			t.Errorf("secret %q: %v, want accepted %v", secret, err, want)
		}
	}
	if _, err := resolveFor(t, map[string]string{"HOOKLINE_PREVIOUS_SECRET": "old-secret"}); err == nil || !strings.Contains(err.Error(), "HOOKLINE_PREVIOUS_SECRET without --secret") {
		t.Errorf("a previous secret alone: %v", err)
	}
}

// With --log-format json, everything run writes, on stdout and stderr, is
// a JSON log record (a collector reads both as one stream), and durations
// read as on the command line.
func TestJSONLogFormatIsJSONLines(t *testing.T) {
	var out, errb syncbuf.Buffer
	// A misspelled variable's note is a JSON line too.
	env := &environment{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), getenv: func(string) string { return "" },
		environ: func() []string { return []string{"HOOKLINE_PARTITION=24"} }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- dispatch(ctx, env, []string{"run", "--log-format", "json", "--insecure-no-auth", "--data-dir", t.TempDir(),
			"--embedded-addr", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--handler-url", "http://127.0.0.1:9/x", "--partitions", "1"})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String()+errb.String(), "receiver listening on") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { stdlog.SetOutput(os.Stderr); stdlog.SetFlags(stdlog.LstdFlags) })
	// A library's repeated line is held back by the rate limit; the
	// command's exit still writes it (env.atExit).
	stdlog.Print("probe held back 1")
	stdlog.Print("probe held back 2")
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit %d\n%s%s", c, out.String(), errb.String())
	}
	all := out.String() + errb.String()
	if !strings.Contains(all, "receiver listening on") || !strings.Contains(all, `"delay":"2s"`) {
		t.Errorf("missing the listening line or a duration as text:\n%s", all)
	}
	if !strings.Contains(all, "does not read HOOKLINE_PARTITION") {
		t.Errorf("no note on the misspelled variable:\n%s", all)
	}
	if !strings.Contains(all, "probe held back 1") || !strings.Contains(all, "probe held back 2") {
		t.Errorf("the held-back library line was not written when the command returned:\n%s", all)
	}
	for line := range strings.Lines(all) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not a JSON line: %q", line)
		}
	}
}

// A misspelled variable is not silently ignored: the command names the one
// it probably meant. Unrelated HOOKLINE_* variables (kafka.sh's) get no note.
func TestMisspelledEnvironmentVariableIsNamed(t *testing.T) {
	vars := map[string]string{"HOOKLINE_PARTITION": "24", "HOOKLINE_KAFKA_STATE": "/tmp/k", "HOOKLINE_LISTN": ":1"}
	_, _, errOut := call(t, vars, "topics", "create", "--brokers", "127.0.0.1:1", "--timeout", "1ms")
	if !strings.Contains(errOut, "note: hookline topics create does not read HOOKLINE_PARTITION; did you mean HOOKLINE_PARTITIONS (--partitions)?") {
		t.Errorf("no note for HOOKLINE_PARTITION:\n%s", errOut)
	}
	if strings.Contains(errOut, "HOOKLINE_KAFKA_STATE") || strings.Contains(errOut, "HOOKLINE_LISTN") {
		t.Errorf("note for a variable topics has no near match for:\n%s", errOut)
	}
	_, _, errOut = call(t, vars, "serve") // refused (no secret) after the flags are read
	if !strings.Contains(errOut, "did you mean HOOKLINE_LISTEN (--listen)?") {
		t.Errorf("serve: no note for HOOKLINE_LISTN:\n%s", errOut)
	}
	// The tools read HOOKLINE_<TOOL>_<FLAG>: the bare name is named, unless
	// the setting came from the flag or the tool's own variable anyway.
	bare := map[string]string{"HOOKLINE_URL": "http://127.0.0.1:1/x", "HOOKLINE_SECRET": "s"}
	_, _, errOut = call(t, bare, "send", "--sample", "nope")
	if !strings.Contains(errOut, "note: hookline send does not read HOOKLINE_URL; its --url comes from HOOKLINE_SEND_URL") ||
		strings.Contains(errOut, "HOOKLINE_SECRET") {
		t.Errorf("send with HOOKLINE_URL: no note, or one for the shared HOOKLINE_SECRET:\n%s", errOut)
	}
	for _, args := range [][]string{{"send", "--sample", "nope", "--url", "http://127.0.0.1:1/y"}} {
		if _, _, errOut := call(t, bare, args...); strings.Contains(errOut, "HOOKLINE_URL") {
			t.Errorf("%v: a note though --url was given:\n%s", args, errOut)
		}
	}
	bare["HOOKLINE_SEND_URL"] = "http://127.0.0.1:1/z"
	if _, _, errOut := call(t, bare, "send", "--sample", "nope"); strings.Contains(errOut, "HOOKLINE_URL") {
		t.Errorf("a note though HOOKLINE_SEND_URL was set:\n%s", errOut)
	}
	// A deployment's own variables, which the tools ignore by design, get none.
	deployed := map[string]string{"HOOKLINE_LISTEN": "127.0.0.1:1", "HOOKLINE_CONCURRENCY": "4", "HOOKLINE_SINK_SCRIPT": "/nonexistent"}
	if _, _, errOut := call(t, deployed, "sink"); strings.Contains(errOut, "HOOKLINE_LISTEN") || strings.Contains(errOut, "HOOKLINE_CONCURRENCY") {
		t.Errorf("sink noted a deployment variable:\n%s", errOut)
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"a", "", 1}, {"PARTITION", "PARTITIONS", 1}, {"LISTN", "LISTEN", 1}, {"KAFKA_STATE", "BASE", 8}, {"abc", "acb", 2}} {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
