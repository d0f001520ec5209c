package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/internal/syncbuf"
)

func TestLoadtestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"loadtest", "--soak", "1m"},
		{"loadtest", "--count", "0"},
		{"loadtest", "--soak", "1m", "--duration", "1m", "--rate", "5"},
		{"loadtest", "--url", "not-a-url", "--count", "1"},
		{"loadtest", "--duplicate-rate", "3"},
	} {
		if code, _, errOut := call(t, nil, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, errOut)
		}
	}
}

func TestLoadtestAgainstAReceiver(t *testing.T) {
	var mu sync.Mutex
	secrets := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		secrets[r.Header.Get("X-Hookline-Secret")]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "acked.jsonl")
	code, stdout, stderr := call(t, map[string]string{"HOOKLINE_SECRET": "s3cret"},
		"loadtest", "--url", srv.URL+"/webhooks/genesys", "--count", "50", "--acked-out", out, "--duplicate-rate", "0")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "50 sent, 50 acknowledged") || !strings.Contains(stdout, "p99") {
		t.Fatalf("summary:\n%s", stdout)
	}
	if secrets["s3cret"] != 50 {
		t.Fatalf("secrets seen: %v", secrets)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		var e struct {
			ConversationID string `json:"conversation_id"`
			Sequence       int    `json:"sequence"`
			EventID        string `json:"event_id"`
			Acknowledged   bool   `json:"acknowledged"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.ConversationID == "" || e.Sequence < 1 || len(e.EventID) != 64 || !e.Acknowledged {
			t.Fatalf("line %d: %s (%v)", n, sc.Bytes(), err)
		}
	}
	if n != 50 {
		t.Fatalf("%d lines in --acked-out", n)
	}

	// A receiver that refuses: exit 1, named.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer bad.Close()
	code, _, stderr = call(t, nil, "loadtest", "--url", bad.URL, "--count", "3", "--json")
	if code != 1 || !strings.Contains(stderr, "3 of 3 events were never acknowledged") {
		t.Fatalf("refusing receiver: exit %d\n%s", code, stderr)
	}
}

func TestLatencyRange(t *testing.T) {
	for in, want := range map[string]string{"3s": "3s", "0-5ms": "0s-5ms", "1s-4s": "1s-4s", " 100ms - 2s ": "100ms-2s", "20-80ms": "20ms-80ms", "1.5-2s": "1.5s-2s"} {
		var l latencyRange
		if err := l.Set(in); err != nil || l.String() != want {
			t.Errorf("%q: %q %v, want %q", in, l.String(), err, want)
		}
	}
	for _, in := range []string{"", "fast", "5ms-1ms", "1s-x", "1-2m30s"} {
		var l latencyRange
		if err := l.Set(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestSinkServesRecordsAndStops(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "fates.json")
	if err := os.WriteFile(script, []byte(`{"ev-1": {"transient_attempts": [1]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(dir, "requests.jsonl")
	var out, errb syncbuf.Buffer
	env := &environment{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- dispatch(ctx, env, []string{"sink", "--listen", "127.0.0.1:0", "--latency", "0-2ms", "--seed", "3", "--script", script, "--record", record})
	}()
	rx := regexp.MustCompile(`sink listening on (\S+)`)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := rx.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("sink did not start:\n%s\n%s", out.String(), errb.String())
	}
	post := func(attempt string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/process",
			strings.NewReader(`{"detail":{"eventBody":{"conversationId":"c","sequence":1}}}`))
		req.Header.Set("Idempotency-Key", "ev-1")
		req.Header.Set("X-Hookline-Attempt", attempt)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if a, b := post("0"), post("1"); a != 503 || b != 200 {
		t.Fatalf("scripted fate: %d then %d, want 503 then 200", a, b)
	}
	resp, err := http.Get("http://" + addr + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Requests, OK, Transient int64 }
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.Requests != 2 || st.OK != 1 || st.Transient != 1 {
		t.Fatalf("/stats: %+v %v", st, err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("sink exited %d\n%s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sink did not stop")
	}
	if !strings.Contains(out.String(), "requests=2 ok=1 transient=1") {
		t.Fatalf("final line:\n%s", out.String())
	}
	b, err := os.ReadFile(record)
	if err != nil || strings.Count(string(b), "\n") != 2 || !strings.Contains(string(b), `"conversation_id":"c"`) {
		t.Fatalf("--record file: %v\n%s", err, b)
	}
}
