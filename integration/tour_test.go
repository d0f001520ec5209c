package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadmeTour walks the README's five-minute tour on the embedded broker
// (other ports than the README's defaults, so it can run next to anything)
// and checks what each step shows.
func TestReadmeTour(t *testing.T) {
	kafkaAddr, sinkAddr := freeAddr(t), freeAddr(t)
	noBroker := []string{"HOOKLINE_BROKERS="}

	// A service that fails everything.
	sink := startCLI(t, nil, "sink", "--listen", sinkAddr, "--transient-rate", "1")
	sink.waitOutput(`sink listening on`, 20*time.Second)

	// 1. Everything in one process on the embedded broker.
	run := startCLI(t, append(noBroker, "HOOKLINE_SECRET=dev-secret"),
		"run", "--embedded-addr", kafkaAddr, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0",
		"--retry-delays", "1s,1s,1s", "--partitions", "3", "--handler-url", "http://"+sinkAddr+"/process")
	run.waitOutput(`bootstrap: `+kafkaAddr, 30*time.Second)
	url := "http://" + run.waitOutput(`receiver listening on (\S+)`, 30*time.Second) + "/webhooks/genesys"

	// 2. Post a sample the way Genesys would.
	sent := runCLI(t, noBroker, "send", "--url", url, "--secret", "dev-secret", "--sample", "user.end")
	if sent.code != 0 || !strings.Contains(sent.stdout, "200 OK") || !strings.Contains(sent.stdout, "receipt: ") {
		t.Fatalf("send: exit %d\n%s%s", sent.code, sent.stdout, sent.stderr)
	}
	var ack struct {
		EventID string `json:"event_id"`
	}
	lines := strings.Split(strings.TrimSpace(sent.stdout), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &ack); err != nil || ack.EventID == "" {
		t.Fatalf("send printed no event id: %v\n%s", err, sent.stdout)
	}
	if bad := runCLI(t, noBroker, "send", "--url", url, "--secret", "wrong", "--sample", "user.end"); bad.code == 0 || !strings.Contains(bad.stdout, "401") {
		t.Fatalf("wrong secret: exit %d\n%s", bad.code, bad.stdout)
	}

	// 3. The failing service pushes it through the retry tiers into the DLQ.
	brokers := []string{"HOOKLINE_BROKERS=" + kafkaAddr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ls := runCLI(t, brokers, "dlq", "ls", "--json")
		if ls.code == 0 && strings.Contains(ls.stdout, ack.EventID) {
			var row map[string]any
			if err := json.Unmarshal([]byte(strings.SplitN(ls.stdout, "\n", 2)[0]), &row); err != nil {
				t.Fatalf("dlq ls --json: %v\n%s", err, ls.stdout)
			}
			if !strings.Contains(ls.stdout, `"exhausted"`) {
				t.Fatalf("dead letter is not exhausted:\n%s", ls.stdout)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter after 60s; last dlq ls: exit %d\n%s%s", ls.code, ls.stdout, ls.stderr)
		}
		time.Sleep(time.Second)
	}
	show := runCLI(t, brokers, "dlq", "show", ack.EventID)
	if show.code != 0 || !strings.Contains(show.stdout, "hookline-error-class") || !strings.Contains(show.stdout, "conversationId") {
		t.Fatalf("dlq show: exit %d\n%s%s", show.code, show.stdout, show.stderr)
	}

	// 4. A healthy service; replay; a second replay skips it.
	if err := sink.signal(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Logf("sink exit: %v", err)
	}
	healthy := startCLI(t, nil, "sink", "--listen", sinkAddr)
	healthy.waitOutput(`sink listening on`, 20*time.Second)
	dry := runCLI(t, brokers, "replay", "--error-class", "exhausted", "--dry-run")
	if dry.code != 0 || !strings.Contains(dry.stdout, "would replay 1") {
		t.Fatalf("replay --dry-run: exit %d\n%s%s", dry.code, dry.stdout, dry.stderr)
	}
	rep := runCLI(t, brokers, "replay", "--error-class", "exhausted")
	if rep.code != 0 || !strings.Contains(rep.stdout, "replayed 1") {
		t.Fatalf("replay: exit %d\n%s%s", rep.code, rep.stdout, rep.stderr)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		stats := sinkStats(t, "http://"+sinkAddr+"/stats")
		if stats["events_ok"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replayed event not handled: %v", stats)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The dedup record of the replay lands right after the handler answered.
	deadline = time.Now().Add(20 * time.Second)
	for {
		again := runCLI(t, brokers, "replay", "--error-class", "exhausted")
		if again.code == 0 && strings.Contains(again.stdout, "skipped 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second replay did not skip the processed event: exit %d\n%s%s", again.code, again.stdout, again.stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := run.signal(syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatalf("run exited with %v after SIGTERM", err)
	}
}

func sinkStats(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("sink /stats: %v\n%s", err, b)
	}
	out := map[string]float64{}
	for k, v := range raw {
		if f, ok := v.(float64); ok {
			out[k] = f
		}
	}
	return out
}
