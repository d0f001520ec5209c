package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Retry delays that decrease are refused, from a flag, its variable or the
// file: a Retry-After that a tier does not cover moves the event on to a
// later tier, which must not wait less.
func TestRetryDelaysMustNotDecrease(t *testing.T) {
	serve := []string{"serve", "--brokers", "127.0.0.1:1", "--insecure-no-auth"}
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, append(serve, "--retry-delays", "10m,1m,10s"), "--retry-delays 10m,1m,10s: delay 2 (1m) is shorter than delay 1 (10m)"},
		{map[string]string{"HOOKLINE_RETRY_DELAYS": "1s,5s,2s"}, serve, "--retry-delays 1s,5s,2s (from HOOKLINE_RETRY_DELAYS): delay 3 (2s) is shorter than delay 2 (5s)"},
		{nil, []string{"topics", "check", "--brokers", "127.0.0.1:1", "--retry-delays", "1m,10s"}, "delay 2 (10s) is shorter than delay 1 (1m)"},
	} {
		if code, _, errOut := call(t, c.env, c.args...); code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v %v: exit %d %q; want 2 and %q", c.env, c.args, code, errOut, c.want)
		}
	}
	// Equal delays are fine.
	if code, _, errOut := call(t, nil, append(serve, "--retry-delays", "1s,1s,1s", "--create-topics=false")...); code == 2 {
		t.Errorf("1s,1s,1s refused: %s", errOut)
	}

	dir := t.TempDir()
	path := writeFile(t, dir, "order.yaml", "pipelines:\n  - base: o.events\n    retry_delays: [10m, 1m, 10s]\n")
	_, err := resolveFor(t, map[string]string{"HOOKLINE_SECRET": "abc"}, "--config", path)
	if err == nil || !strings.Contains(err.Error(), "order.yaml") || !strings.Contains(err.Error(), "retry_delays: delay 2 (1m) is shorter than delay 1 (10m)") {
		t.Fatalf("decreasing retry_delays in the file: %v; want an error naming the file, the key and the delays", err)
	}
}

// A dedup window shorter than the longest retry delay is refused wherever
// the two values come from, naming both origins: a copy of an event that
// waits in that tier while another copy is processed would otherwise reach
// the handler again.
func TestDedupWindowCoversTheLongestRetryDelay(t *testing.T) {
	consume := []string{"consume", "--brokers", "127.0.0.1:1", "--handler-url", "http://127.0.0.1:1/process"}
	serve := []string{"serve", "--brokers", "127.0.0.1:1", "--insecure-no-auth", "--create-topics=false"}
	for _, c := range []struct {
		env     map[string]string
		args    []string
		refused bool // else a warning: only a consumer acts on the window
		want    []string
	}{
		{nil, append(consume, "--dedup-window", "5m"), true, []string{"dedup window 5m (--dedup-window)", "longest retry delay 10m (the default of --retry-delays)", "at least 10m"}},
		{map[string]string{"HOOKLINE_DEDUP_WINDOW": "1h"}, append(consume, "--retry-delays", "10s,2h"), true, []string{"dedup window 1h (HOOKLINE_DEDUP_WINDOW)", "retry delay 2h (--retry-delays)"}},
		{nil, append(serve, "--dedup-window", "5m"), false, []string{"dedup window 5m (--dedup-window)", "at least 10m"}},
		{nil, []string{"topics", "create", "--brokers", "127.0.0.1:1", "--timeout", "1ms", "--retry-delays", "1m,200h"}, false, []string{"dedup window 96h (the default of --dedup-window)", "retry delay 200h (--retry-delays)"}},
	} {
		code, _, errOut := call(t, c.env, c.args...)
		if (code == 2) != c.refused {
			t.Errorf("%v %v: exit %d %q; refused (2) should be %v", c.env, c.args, code, errOut, c.refused)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v %v: %q; want %q", c.env, c.args, errOut, w)
			}
		}
	}

	dir := t.TempDir()
	path := writeFile(t, dir, "window.yaml", "pipelines:\n  - base: w.events\n    retry_delays: [10s, 1h]\n    dedup_window: 10m\n")
	_, err := resolveFor(t, map[string]string{"HOOKLINE_SECRET": "abc"}, "--config", path)
	if err == nil || !strings.Contains(err.Error(), "dedup_window of pipelines[0] in "+path) || !strings.Contains(err.Error(), "retry_delays of pipelines[0] in "+path) {
		t.Fatalf("dedup_window 10m with a 1h delay in the file: %v; want an error naming both keys and the file", err)
	}
	// The flag wins over the file, and its value is what is checked.
	if _, err := resolveFor(t, map[string]string{"HOOKLINE_SECRET": "abc"}, "--config", path, "--dedup-window", "1h"); err != nil {
		t.Fatalf("--dedup-window 1h over the file's 10m: %v", err)
	}
	// Equal is enough.
	if code, _, errOut := call(t, nil, append(serve, "--dedup-window", "10m", "--create-topics=false")...); code == 2 {
		t.Errorf("--dedup-window equal to the longest delay refused: %s", errOut)
	}
}

// A mistake in a source or pipeline of the file names the file, the entry
// and the key, and says what would work; one in a value a flag put there
// says so.
func TestFileMistakesNameFileEntryAndKey(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"HOOKLINE_SECRET": "abc"}
	for _, c := range []struct {
		yaml string
		args []string
		want []string
	}{
		{"sources:\n  - name: s\n    kind: genesis\n    verify: {type: none}\n", nil,
			[]string{`: source "s" (sources[0]): kind "genesis": use "genesys"`}},
		{"sources:\n  - name: s\n    kind: generic\n    key: [/a, b]\n    verify: {type: none}\n", nil,
			[]string{`: source "s" (sources[0]): key[1] "b": JSON pointer must start with "/"`}},
		{"sources:\n  - name: a\n    verify: {type: none}\n  - name: w\n    verify: {type: basic, secret: pw}\n", nil,
			[]string{`: source "w" (sources[1]): verify: basic: username is empty`}},
		{"sources:\n  - name: s\n    verify: {type: bearer, secret_file: no/such/file}\n", nil,
			[]string{`: source "s" (sources[0]): verify: secret_file: open no/such/file`, "working directory"}},
		{"sources:\n  - name: s\n    pipeline: other.events\n    verify: {type: none}\n", nil,
			[]string{`: source "s" (sources[0]): pipeline "other.events" is not configured: name one of hookline.events`}},
		{"pipelines:\n  - base: \"crm events/v1\"\n", nil,
			[]string{`: pipelines[0] (crm events/v1): topic base name`}},
		{"sources:\n  - name: genesys\n    verify: {type: shared-secret, secret: file-secret}\n", []string{"--secret", " padded "},
			[]string{`: source "genesys" (sources[0]) with the secret of --secret: verify: shared-secret`}},
	} {
		path := writeFile(t, dir, "c.yaml", c.yaml)
		_, err := resolveFor(t, vars, append([]string{"--config", path}, c.args...)...)
		if err == nil {
			t.Errorf("%q: no error", c.yaml)
			continue
		}
		for _, w := range append(c.want, "config "+path) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: %v; want %q", c.yaml, err, w)
			}
		}
	}
}

// A --timeout of 0 or less is a usage error naming the flag, not a "cannot
// reach Kafka" after giving up before trying.
func TestKafkaTimeoutMustBePositive(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"topics", "check", "--brokers", "127.0.0.1:1", "--timeout", "0s"}, "--timeout 0s: must be positive, e.g. 30s"},
		{nil, []string{"topics", "describe", "--brokers", "127.0.0.1:1", "--timeout", "-1s"}, "--timeout -1s: must be positive"},
		{nil, []string{"dlq", "ls", "--brokers", "127.0.0.1:1", "--timeout", "0s"}, "--timeout 0s: must be positive, e.g. 2m"},
		{map[string]string{"HOOKLINE_TIMEOUT": "-5s"}, []string{"dlq", "show", "--brokers", "127.0.0.1:1", "3:1"}, "--timeout -5s (from HOOKLINE_TIMEOUT): must be positive"},
	} {
		if code, _, errOut := call(t, c.env, c.args...); code != 2 || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "cannot reach Kafka") {
			t.Errorf("%v %v: exit %d %q; want 2 and %q", c.env, c.args, code, errOut, c.want)
		}
	}
}

// A config path that is missing or a directory says so and what to do,
// and, when the path came from HOOKLINE_CONFIG, that it did.
func TestUnreadableConfigSaysWhatAndWhere(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		env  map[string]string
		args []string
		want []string
		not  string
	}{
		{nil, []string{"serve", "--config", dir + "/nope.yaml"}, []string{"cannot read the config file", "nope.yaml", "check the path"}, "HOOKLINE_CONFIG"},
		{nil, []string{"serve", "--config", dir}, []string{dir + " is a directory", "give the path of the YAML file"}, "HOOKLINE_CONFIG"},
		{map[string]string{"HOOKLINE_CONFIG": dir + "/old.yaml"}, []string{"consume"}, []string{"old.yaml", "the path comes from HOOKLINE_CONFIG"}, ""},
		{map[string]string{"HOOKLINE_CONFIG": dir}, []string{"topics", "check"}, []string{"is a directory", "the path comes from HOOKLINE_CONFIG"}, ""},
	} {
		code, _, errOut := call(t, c.env, c.args...)
		if code == 0 {
			t.Errorf("%v %v: exit 0", c.env, c.args)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v %v: %q; want %q", c.env, c.args, errOut, w)
			}
		}
		if c.not != "" && strings.Contains(errOut, c.not) {
			t.Errorf("%v %v: %q names %s, which was not used", c.env, c.args, errOut, c.not)
		}
	}
}

// An address the receiver cannot listen on names where it came from (the
// file's listen key is not --listen), and a bare port says how to write it.
func TestListenErrorNamesItsOrigin(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "l.yaml", "listen: 8080\nsources:\n  - name: s\n    verify: {type: bearer, secret: t}\n")
	code, _, errOut := call(t, nil, "serve", "--config", path, "--brokers", "127.0.0.1:1")
	for _, w := range []string{"cannot listen on 8080 (from the listen key of " + path + ")", "write :8080"} {
		if code == 0 || !strings.Contains(errOut, w) {
			t.Errorf("listen: 8080 in the file: exit %d %q; want %q", code, errOut, w)
		}
	}
	code, _, errOut = call(t, map[string]string{"HOOKLINE_LISTEN": "127.0.0.1:http-x"}, "serve", "--config", path, "--brokers", "127.0.0.1:1")
	if code == 0 || !strings.Contains(errOut, "choose another with HOOKLINE_LISTEN") {
		t.Errorf("HOOKLINE_LISTEN over the file: exit %d %q; want it named", code, errOut)
	}
}

// topics check --config compares each pipeline's existing partition count
// with the file's partitions, as it does with --partitions: a file raised
// from 2 to 4 partitions is a problem to report (run keeps the existing 2
// and warns), not "ok".
func TestTopicsCheckConfigComparesTheFilePartitions(t *testing.T) {
	brokers, _ := topicsCluster(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "p.yaml", "brokers: ["+brokers+"]\npipelines:\n  - base: a.events\n    partitions: 2\n    retry_delays: [5s]\n  - base: b.events\n    retry_delays: [5s]\n")
	if code, out, errOut := call(t, nil, "topics", "create", "--config", cfg); code != 0 {
		t.Fatalf("create: exit %d\n%s%s", code, out, errOut)
	}
	raised := writeFile(t, dir, "raised.yaml", "brokers: ["+brokers+"]\npipelines:\n  - base: a.events\n    partitions: 4\n    retry_delays: [5s]\n  - base: b.events\n    retry_delays: [5s]\n")
	code, out, errOut := call(t, nil, "topics", "check", "--config", raised)
	if code != 1 || !strings.Contains(errOut, "a.events: has 2 partitions, expected 4") || strings.Contains(out, "ok: pipeline a.events") {
		t.Errorf("check with partitions 2 -> 4 in the file: exit %d\n%s%s; want 1 and the difference", code, out, errOut)
	}
	// b.events gives no count: the default 12 is not compared.
	if !strings.Contains(out, "ok: pipeline b.events has 4 topics with 12 partitions each") {
		t.Errorf("b.events: %s%s", out, errOut)
	}
	if code, out, errOut := call(t, nil, "topics", "check", "--config", cfg); code != 0 {
		t.Errorf("check with the file's own count: exit %d\n%s%s", code, out, errOut)
	}
}

// An error about a value the file took from the environment names the
// reference, not the value: a misplaced "${SECRET}" (in a header, a kind,
// a name) would otherwise print the secret.
func TestErrorsDoNotQuoteValuesFromTheEnvironment(t *testing.T) {
	const secret = "s3cr3t value!"
	dir := t.TempDir()
	for _, yaml := range []string{
		"sources:\n  - name: s\n    verify: {type: shared-secret, header: \"${TOK}\", secret: x}\n",
		"sources:\n  - name: s\n    kind: \"${TOK}\"\n    verify: {type: none}\n",
		"sources:\n  - name: s\n    kind: generic\n    event_id: [\"${TOK}\"]\n    verify: {type: none}\n",
		"sources:\n  - name: \"${TOK}\"\n    verify: {type: none}\n",
		"pipelines:\n  - base: \"${TOK}\"\n",
	} {
		path := writeFile(t, dir, "c.yaml", yaml)
		code, _, errOut := call(t, map[string]string{"TOK": secret}, "serve", "--config", path, "--brokers", "127.0.0.1:1")
		if code == 0 || strings.Contains(errOut, "s3cr3t") || !strings.Contains(errOut, `"${TOK}"`) {
			t.Errorf("%q: exit %d %q; want an error naming \"${TOK}\", not its value", yaml, code, errOut)
		}
	}
}

// run with brokers configured starts no embedded broker: a --data-dir or
// --embedded-addr (or their variables) given anyway is said to be ignored.
func TestRunSaysEmbeddedFlagsAreIgnoredWithBrokers(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "b.yaml", "brokers: [127.0.0.1:1]\nlisten: 127.0.0.1:0\nsources:\n  - name: s\n    verify: {type: bearer, secret: t}\n")
	_, _, errOut := call(t, map[string]string{"HOOKLINE_DATA_DIR": dir + "/data"}, "run", "--config", path, "--embedded-addr", "127.0.0.1:0", "--create-topics=false")
	for _, w := range []string{"HOOKLINE_DATA_DIR is ignored: brokers are configured", "--embedded-addr is ignored"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("%q; want %q", errOut, w)
		}
	}
	// Without them, no such warning.
	if _, _, errOut := call(t, nil, "run", "--config", path, "--create-topics=false"); strings.Contains(errOut, "is ignored") {
		t.Errorf("warned without the embedded flags: %q", errOut)
	}
}

// A handler url or ca_file of the file that is refused names the file, the
// pipeline and the key; one from a flag names the flag.
func TestHandlerMistakesNameTheirOrigin(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"HOOKLINE_SECRET": "abc"}
	path := writeFile(t, dir, "h.yaml", "pipelines:\n  - base: h.events\n    handler: {url: \"crm:3000/x\"}\n")
	if _, err := resolveFor(t, vars, "--config", path); err == nil || !strings.Contains(err.Error(), "config "+path+": pipelines[0] (h.events): handler.url: ") {
		t.Errorf("handler.url in the file: %v", err)
	}
	ca := writeFile(t, dir, "ca.yaml", "pipelines:\n  - base: h.events\n    handler: {url: \"https://crm/x\", ca_file: "+dir+"/none.pem}\n")
	if _, err := resolveFor(t, vars, "--config", ca); err == nil || !strings.Contains(err.Error(), "config "+ca+": pipelines[0] (h.events): handler.ca_file: ") {
		t.Errorf("handler.ca_file in the file: %v", err)
	}
	if _, err := resolveFor(t, map[string]string{"HOOKLINE_SECRET": "abc", "HOOKLINE_HANDLER_CA": dir + "/none.pem"}, "--config", ca); err == nil || !strings.Contains(err.Error(), "pipeline h.events: HOOKLINE_HANDLER_CA: ") {
		t.Errorf("HOOKLINE_HANDLER_CA over the file: %v", err)
	}
	if _, err := resolveFor(t, vars, "--handler-url", "crm:3000/x"); err == nil || !strings.Contains(err.Error(), "pipeline hookline.events: --handler-url: ") {
		t.Errorf("--handler-url: %v", err)
	}
}

// topics --help, which lists no flags, says where they are.
func TestTopicsHelpPointsAtTheFlags(t *testing.T) {
	code, out, _ := call(t, nil, "topics", "--help")
	if code != 0 || !strings.Contains(out, "hookline topics create --help") {
		t.Errorf("topics --help: exit %d\n%s", code, out)
	}
}

// Pipelines whose topics differ only in '.' versus '_' (orders.dlq next to
// orders_dlq) are refused before anything connects: Kafka would refuse the
// second with an INVALID_TOPIC_EXCEPTION that does not say why.
func TestPipelinesWhoseTopicsCollideAreRefused(t *testing.T) {
	path := writeFile(t, t.TempDir(), "c.yaml", "pipelines:\n  - base: orders\n  - base: orders_dlq\n")
	_, err := resolveFor(t, map[string]string{"HOOKLINE_SECRET": "abc"}, "--config", path)
	if err == nil || !strings.Contains(err.Error(), "orders.dlq and orders_dlq, which differ only in '.' versus '_'") {
		t.Fatalf("orders and orders_dlq: %v", err)
	}
}

// A reference misplaced where no error is raised (a hex secret is a valid
// header name) is not printed by the start-up note that describes the
// source's verifier either. A short value is not replaced where it is not
// quoted: it would garble unrelated words of a message (a pipeline list).
func TestNotesDoNotQuoteValuesFromTheEnvironment(t *testing.T) {
	// Long, short (the docs' example secret), and changed by the header's
	// canonical case on the way; in the header and in the hmac prefix.
	for _, secret := range []string{"9f86d081884c7d659a2feaa0c55ad015", "s3cret", "supersecretvalue1"} {
		for _, verify := range []string{
			`{type: shared-secret, header: "${GH_SECRET}", secret: x}`,
			`{type: hmac-sha256, prefix: "${GH_SECRET}", secret: x}`,
			`{type: basic, username: "${GH_SECRET}", secret: x}`,
		} {
			path := writeFile(t, t.TempDir(), "n.yaml", "sources:\n  - name: s\n    verify: "+verify+"\n")
			s, err := resolveAs(t, map[string]string{"GH_SECRET": secret}, "serve", usesReceiver, "--config", path)
			if err != nil {
				t.Fatal(err)
			}
			if notes := strings.Join(s.sourceNotes, "\n"); strings.Contains(strings.ToLower(notes), strings.ToLower(secret)) || !strings.Contains(notes, "${GH_SECRET}") {
				t.Errorf("%s with %q: source notes %q; want ${GH_SECRET}, not its value", verify, secret, notes)
			}
		}
	}

	path := writeFile(t, t.TempDir(), "p.yaml", "pipelines:\n  - base: hookline.events\nsources:\n  - name: s\n    pipeline: other.events\n    verify: {type: shared-secret, secret: \"${S}\"}\n")
	_, err := resolveAs(t, map[string]string{"S": "events"}, "serve", usesReceiver, "--config", path)
	if err == nil || !strings.Contains(err.Error(), `pipeline "other.events"`) {
		t.Errorf("unknown pipeline with a 6-byte secret: %v; want the pipeline named as written", err)
	}
}

// Each pipeline's sink forwards the signatures of its own hmac-sha256
// sources, under the header each signs in; also for consume, where the
// sources' secrets need not be set.
func TestSignatureHeadersPerPipeline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.yaml")
	yaml := `pipelines:
  - base: a.events
    handler: {url: "http://a:3000/x"}
  - base: b.events
    handler: {url: "http://b:3000/x"}
sources:
  - name: om
    kind: generic
    verify: {type: hmac-sha256, prefix: "sha256=", encoding: base64, secret: "${OM_SECRET}"}
  - name: gh
    kind: generic
    pipeline: b.events
    verify: {type: hmac-sha256, header: x-github-sig, secret: "${GH_SECRET}"}
  - name: genesys
    pipeline: b.events
    verify: {type: shared-secret, secret: "${G_SECRET}"}
  - name: odd
    kind: generic
    pipeline: b.events
    verify: {type: hmac-sha256, header: Cookie, secret: "${GH_SECRET}"}
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	all := map[string]string{"OM_SECRET": "o", "GH_SECRET": "g", "G_SECRET": "s"}
	for _, c := range []struct {
		cmd  string
		u    uses
		vars map[string]string
	}{{"run", usesReceiver | usesConsumer, all}, {"consume", usesConsumer, nil}} {
		s, err := resolveAs(t, c.vars, c.cmd, c.u, "--config", path)
		if err != nil {
			t.Fatalf("%s: %v", c.cmd, err)
		}
		got := map[string]map[string]string{}
		for _, p := range s.pipelines {
			got[p.plan.Names.Base] = p.signatureHeaders
		}
		want := map[string]map[string]string{"a.events": {"om": "X-Hub-Signature-256"}, "b.events": {"gh": "X-Github-Sig"}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: signature headers %v, want %v", c.cmd, got, want)
		}
		if !strings.Contains(strings.Join(s.warnings, "\n"), "source odd: its signatures are kept in Kafka but not forwarded") {
			t.Errorf("%s: no warning for a signature header the sink may not send: %q", c.cmd, s.warnings)
		}
	}
}
