package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// collectExprs walks decoded JSON or YAML and returns every "expr" string.
func collectExprs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && k == "expr" {
				out = append(out, s)
			}
			out = append(out, collectExprs(val)...)
		}
	case []any:
		for _, val := range x {
			out = append(out, collectExprs(val)...)
		}
	}
	return out
}

var metricName = regexp.MustCompile(`hookline_[a-z0-9_]+`)

// TestDashboardAndAlertsUseExportedMetrics checks that the Grafana dashboard
// and the alert rules are valid and name only metrics a running hookline
// exports on /metrics.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	var dash map[string]any
	raw, err := os.ReadFile("../docs/monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For string
				Annotations      map[string]string
			}
		}
	}
	raw, err = os.ReadFile("../docs/monitoring/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("alert rules are not valid YAML: %v", err)
	}
	exprs := collectExprs(dash)
	if len(exprs) < 10 {
		t.Fatalf("dashboard has only %d queries", len(exprs))
	}
	nrules := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			nrules++
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v lacks alert, expr or summary", r)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("rule %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			exprs = append(exprs, r.Expr)
		}
	}
	if nrules < 4 {
		t.Fatalf("only %d alert rules", nrules)
	}

	// A running hookline that has handled one event.
	handled := make(chan struct{}, 1)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case handled <- struct{}{}:
		default:
		}
	}))
	defer sink.Close()
	p := startCLI(t, []string{"HOOKLINE_BROKERS=", "HOOKLINE_SECRET=" + itSecret},
		"run", "--embedded-addr", freeAddr(t), "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0",
		"--partitions", "2", "--handler-url", sink.URL)
	addr := p.waitOutput(`receiver listening on (\S+)`, 30*time.Second)
	if r := post(t, "http://"+addr+"/webhooks/genesys", []byte(`{"topicName":"v2.detail.events.conversation.6f1e1f3c-1a2b-4c3d-8e9f-0a1b2c3d4e5f.user.end","eventBody":{"conversationId":"6f1e1f3c-1a2b-4c3d-8e9f-0a1b2c3d4e5f","eventTime":1764324000000}}`), itSecret); r.code != 200 {
		t.Fatalf("post: %d %s", r.code, r.body)
	}
	select {
	case <-handled:
	case <-time.After(30 * time.Second):
		t.Fatal("event not handled within 30s")
	}
	// Gauges refresh periodically; wait until the consumer's show up.
	var exported string
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		exported = string(b)
		if strings.Contains(exported, "hookline_consumer_lag{") || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	names := map[string]bool{}
	for _, line := range strings.Split(exported, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if m := metricName.FindString(line); m != "" && strings.HasPrefix(line, m) {
			names[m] = true
		}
	}
	for _, e := range exprs {
		for _, m := range metricName.FindAllString(e, -1) {
			if !names[m] {
				t.Errorf("%q names %s, which a running hookline does not export", e, m)
			}
		}
	}
}
