package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hookline/hookline/internal/syncbuf"
)

type alertRule struct {
	Alert, Expr, For string
	Labels           map[string]string
	Annotations      map[string]string
}

// monitoringFiles reads the shipped alert rules and every query of the
// shipped dashboard.
func monitoringFiles(t *testing.T) (rules []alertRule, dashExprs []string) {
	t.Helper()
	raw, err := os.ReadFile("../../docs/monitoring/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct{ Rules []alertRule }
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	for _, g := range file.Groups {
		rules = append(rules, g.Rules...)
	}
	raw, err = os.ReadFile("../../docs/monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if s, ok := val.(string); ok && k == "expr" {
					dashExprs = append(dashExprs, s)
				}
				walk(val)
			}
		case []any:
			for _, val := range x {
				walk(val)
			}
		}
	}
	walk(dash)
	if len(rules) < 10 || len(dashExprs) < 10 {
		t.Fatalf("%d rules, %d dashboard queries: the files were not read right", len(rules), len(dashExprs))
	}
	return rules, dashExprs
}

// Every alert names, in its runbook annotation, a section of
// docs/operations.md that exists and mentions the alert (or is Sizing, whose
// items name theirs); and "Alerts worth having" lists every rule with its
// exact expression, duration and severity.
func TestAlertsMatchTheirDocs(t *testing.T) {
	rules, _ := monitoringFiles(t)
	raw, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	sections := map[string]string{} // heading → body
	for _, part := range strings.Split(doc, "\n## ")[1:] {
		heading, body, _ := strings.Cut(part, "\n")
		sections[heading] = body
	}
	alertsDoc := sections["Alerts worth having"]
	rows := map[string][]string{}
	for line := range strings.Lines(alertsDoc) {
		if !strings.HasPrefix(line, "| `Hookline") {
			continue
		}
		// Split on " | ": expressions hold no such sequence.
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), " | ")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows[strings.Trim(cells[0], "`")] = cells
	}
	seen := map[string]bool{}
	for _, r := range rules {
		seen[r.Alert] = true
		heading, ok := strings.CutPrefix(r.Annotations["runbook"], "docs/operations.md: ")
		if !ok {
			t.Errorf("%s: runbook annotation %q, want \"docs/operations.md: <section heading>\"", r.Alert, r.Annotations["runbook"])
		} else if body, ok := sections[heading]; !ok {
			t.Errorf("%s: runbook section %q does not exist in docs/operations.md", r.Alert, heading)
		} else if !strings.Contains(body, r.Alert) {
			t.Errorf("%s: runbook section %q does not mention the alert", r.Alert, heading)
		}
		if strings.Contains(r.Annotations["description"], "runbook") {
			t.Errorf("%s: description names a runbook; the runbook annotation does", r.Alert)
		}
		cells := rows[r.Alert]
		if len(cells) != 5 {
			t.Errorf("%s: no row of 5 cells in \"Alerts worth having\" (got %q)", r.Alert, cells)
			continue
		}
		if cells[1] != r.Labels["severity"] {
			t.Errorf("%s: documented severity %q, rule %q", r.Alert, cells[1], r.Labels["severity"])
		}
		if !strings.HasPrefix(cells[2], "`"+r.Expr+"`") {
			t.Errorf("%s: documented condition %q does not start with the rule's expression `%s`", r.Alert, cells[2], r.Expr)
		}
		wantFor := r.For
		if wantFor == "" {
			wantFor = "–"
		}
		if cells[3] != wantFor {
			t.Errorf("%s: documented for %q, rule %q", r.Alert, cells[3], wantFor)
		}
	}
	for name := range rows {
		if !seen[name] {
			t.Errorf("\"Alerts worth having\" lists %s, which alerts.yaml does not have", name)
		}
	}
}

var hooklineMetric = regexp.MustCompile(`hookline_[a-z0-9_]+`)

// exportedNames returns the metric names of a /metrics page, histograms
// by their series names (_bucket, _sum, _count).
func exportedNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	names := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		if m := hooklineMetric.FindString(line); m != "" && strings.HasPrefix(line, m) {
			names[m] = true
		}
	}
	return names
}

// startCmd runs the CLI in-process until the test ends and returns its
// output as it grows.
func startCmd(t *testing.T, vars map[string]string, args ...string) *syncbuf.Buffer {
	t.Helper()
	out := &syncbuf.Buffer{}
	env := &environment{stdout: out, stderr: out, stdin: strings.NewReader(""), getenv: func(k string) string { return vars[k] }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- dispatch(ctx, env, args) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("%v did not stop within 30s", args)
		}
	})
	return out
}

// Every metric the shipped alert rules and dashboard name is exported by a
// running hookline: `run` (receiver and consumer on one /metrics) and
// `consume --listen` (a consumer alone), against an in-process Kafka.
func TestMonitoringNamesExportedMetrics(t *testing.T) {
	rules, exprs := monitoringFiles(t)
	for _, r := range rules {
		exprs = append(exprs, r.Expr)
	}
	c := fakeKafka(t)
	brokers := strings.Join(c.ListenAddrs(), ",")
	handled := make(chan struct{}, 1)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case handled <- struct{}{}:
		default:
		}
	}))
	defer sink.Close()
	const secret = "monitoring-test-secret"
	vars := map[string]string{"HOOKLINE_SECRET": secret}

	out := startCmd(t, vars, "run", "--brokers", brokers, "--listen", "127.0.0.1:0", "--partitions", "2", "--handler-url", sink.URL, "--drain-delay", "0")
	re := regexp.MustCompile(`receiver listening on (\S+)`)
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == ""; time.Sleep(50 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("run did not start within 30s:\n%s", out.String())
		}
	}
	body := []byte(`{"topicName":"v2.detail.events.conversation.6f1e1f3c-1a2b-4c3d-8e9f-0a1b2c3d4e5f.user.end","eventBody":{"conversationId":"6f1e1f3c-1a2b-4c3d-8e9f-0a1b2c3d4e5f","eventTime":1764324000000}}`)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/genesys", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Hookline-Secret", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook answered %d", resp.StatusCode)
		}
	}
	select {
	case <-handled:
	case <-time.After(30 * time.Second):
		t.Fatalf("event not handled within 30s:\n%s", out.String())
	}
	// The consumer's gauges refresh periodically.
	var fromRun map[string]bool
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		fromRun = exportedNames(t, "http://"+addr+"/metrics")
		if fromRun["hookline_consumer_lag"] || time.Now().After(deadline) {
			break
		}
	}

	opsAddr := freeLocalAddr(t)
	out2 := startCmd(t, vars, "consume", "--brokers", brokers, "--listen", opsAddr, "--partitions", "2", "--handler-url", sink.URL, "--group", "monitoring-test")
	var fromConsume map[string]bool
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		resp, err := http.Get("http://" + opsAddr + "/metrics")
		if err == nil {
			resp.Body.Close()
			fromConsume = exportedNames(t, "http://"+opsAddr+"/metrics")
			if fromConsume["hookline_consumer_lag"] {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("consume --listen exported no lag within 30s: %v\n%s", fromConsume, out2.String())
		}
	}

	for _, e := range exprs {
		for _, m := range hooklineMetric.FindAllString(e, -1) {
			if !fromRun[m] {
				t.Errorf("%q names %s, which `run` does not export", e, m)
			}
			if strings.HasPrefix(m, "hookline_consumer_") && !fromConsume[m] {
				t.Errorf("%q names %s, which `consume --listen` does not export", e, m)
			}
		}
	}
	for _, m := range []string{"hookline_receiver_ready", "hookline_consumer_ready"} {
		if !fromRun[m] {
			t.Errorf("run does not export %s", m)
		}
	}
}

// A downstream that fails most attempts alerts within minutes: the retry
// tiers hide it from HooklineDeadLetters until the first event exhausted
// them (over 11 minutes with the default delays), and from every alert
// when events succeed on a later attempt.
func TestAlertsWatchFailingHandlerAttempts(t *testing.T) {
	rules, _ := monitoringFiles(t)
	for _, r := range rules {
		if strings.Contains(r.Expr, `outcome="retried"`) || strings.Contains(r.Expr, `outcome!="processed"`) {
			if d, err := time.ParseDuration(r.For); err != nil || d == 0 || d > 5*time.Minute {
				t.Errorf("%s: for %q, want at most 5m (failed attempts come in bursts)", r.Alert, r.For)
			}
			return
		}
	}
	t.Error("no alert rule watches hookline_consumer_events_total's failed attempts (outcome retried)")
}

// The alert rules evaluated by Prometheus's own engine: promtool checks
// them and runs docs/monitoring/alerts_test.yaml (synthetic series, when
// each alert fires and with which labels). promtool is not a Go module;
// .ci/run installs it from the Debian archive, and elsewhere the test
// skips unless HOOKLINE_REQUIRE_PROMTOOL is set.
func TestAlertRulesUnderPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("HOOKLINE_REQUIRE_PROMTOOL") != "" {
			t.Fatalf("promtool not on PATH but HOOKLINE_REQUIRE_PROMTOOL is set: %v", err)
		}
		t.Skip("promtool not on PATH (Debian: apt-get install prometheus); .ci/run installs it")
	}
	for _, args := range [][]string{
		{"check", "rules", "alerts.yaml"},
		{"test", "rules", "alerts_test.yaml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../docs/monitoring"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
