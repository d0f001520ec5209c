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

// Out-of-range flags are usage errors naming the flag, refused before the
// banner announces a run.
func TestLoadtestRefusesOutOfRangeFlags(t *testing.T) {
	cases := []struct {
		vars map[string]string
		args []string
		want string
	}{
		{nil, []string{"--concurrency", "0"}, "--concurrency 0: must be at least 1"},
		{nil, []string{"--conversations", "0"}, "--conversations 0: must be at least 1"},
		{nil, []string{"--max-attempts", "0"}, "--max-attempts 0: must be at least 1"},
		{nil, []string{"--timeout", "0"}, "--timeout 0s: must be positive"},
		{nil, []string{"--backoff-min", "2s", "--backoff-max", "1s"}, "--backoff-max 1s: must be at least --backoff-min (2s)"},
		{nil, []string{"--backoff-min", "0"}, "--backoff-min 0s: must be positive"},
		{nil, []string{"--max-retry-time", "0"}, "--max-retry-time 0s: must be positive"},
		{nil, []string{"--count", "-1"}, "--count -1: must be 0"},
		{nil, []string{"--rate", "-5"}, "--rate -5: must be 0"},
		{nil, []string{"--interval", "0"}, "--interval 0s: must be positive"},
		{map[string]string{"HOOKLINE_LOADTEST_CONCURRENCY": "0"}, nil, "--concurrency 0 (from HOOKLINE_LOADTEST_CONCURRENCY): must be at least 1"},
		{nil, []string{"--url", "not-a-url"}, `URL "not-a-url" is not an absolute http(s) URL`},
	}
	for _, c := range cases {
		args := append([]string{"loadtest", "--url", "http://127.0.0.1:1/webhooks/genesys", "--count", "1"}, c.args...)
		code, out, errOut := call(t, c.vars, args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v %v: exit %d, want 2 and %q in:\n%s", c.vars, c.args, code, c.want, errOut)
		}
		if strings.Contains(out+errOut, "loadtest: POST") {
			t.Errorf("%v: the banner came before the error:\n%s", c.args, errOut)
		}
	}
}

// A run ended by a signal exits 130 with the partial summary, saying it was
// interrupted.
func TestLoadtestInterruptedExits130(t *testing.T) {
	var mu sync.Mutex
	n := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		n++
		if n == 40 {
			cancel() // the signal
		}
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	var out, errb syncbuf.Buffer
	env := &environment{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), getenv: func(string) string { return "" }}
	code := dispatch(ctx, env, []string{"loadtest", "--url", srv.URL + "/webhooks/genesys", "--count", "100000", "--concurrency", "4"})
	if code != 130 {
		t.Fatalf("exit %d, want 130\n%s\n%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "INTERRUPTED after") || !strings.Contains(out.String(), "acknowledged") {
		t.Fatalf("no partial summary saying it was interrupted:\n%s", out.String())
	}
	if !strings.Contains(errb.String(), "interrupted after") || !strings.Contains(errb.String(), "covers only the part that ran") {
		t.Fatalf("stderr:\n%s", errb.String())
	}
	if code, out, _ := call(t, nil, "loadtest", "--help"); code != 0 || !strings.Contains(out, "130 interrupted") {
		t.Fatalf("--help does not document exit 130:\n%s", out)
	}
}

// A run that most answers refuse with a telling status says what to check.
func TestLoadtestHintsAtTheCause(t *testing.T) {
	for status, want := range map[int]string{
		401: "a shared-secret verifier takes --secret and --secret-header",
		404: "check --url",
		413: "max.message.bytes",
		429: "--max-in-flight",
		503: "--ack-timeout",
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(status)
		}))
		code, out, errOut := call(t, nil, "loadtest", "--url", srv.URL+"/webhooks/nope", "--count", "3",
			"--max-attempts", "2", "--backoff-min", "1ms", "--backoff-max", "2ms", "--duplicate-rate", "0")
		srv.Close()
		if code != 1 || !strings.Contains(out, "hint:") || !strings.Contains(out, want) || !strings.Contains(errOut, "see the hint above") {
			t.Errorf("all %d: exit %d, want 1 and a hint with %q:\n%s\n%s", status, code, want, out, errOut)
		}
		// With --json, the hint is in the JSON and on stderr.
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
		code, out, errOut = call(t, nil, "loadtest", "--url", srv.URL, "--count", "2", "--json",
			"--max-attempts", "2", "--backoff-min", "1ms", "--backoff-max", "2ms")
		srv.Close()
		var js struct{ Hints []string }
		if err := json.Unmarshal([]byte(out), &js); err != nil || len(js.Hints) != 1 || !strings.Contains(errOut, want) {
			t.Errorf("all %d with --json: exit %d %v %+v\n%s", status, code, err, js, errOut)
		}
	}
}

// -H works as in send (the flag package reads -H and --H alike), on the
// command line and as HOOKLINE_LOADTEST_H with one header per line.
func TestLoadtestShortHeaderFlag(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		got[r.Header.Get("Authorization")+"|"+r.Header.Get("X-Team")]++
		mu.Unlock()
	}))
	defer srv.Close()
	if code, _, errOut := call(t, nil, "loadtest", "--url", srv.URL, "--count", "2", "--duplicate-rate", "0", "-H", "Authorization: Bearer t0ken", "-H", "X-Team: a"); code != 0 {
		t.Fatalf("-H: exit %d %s", code, errOut)
	}
	if code, _, errOut := call(t, map[string]string{"HOOKLINE_LOADTEST_H": "Authorization: Bearer env\nX-Team: b"}, "loadtest", "--url", srv.URL, "--count", "2", "--duplicate-rate", "0"); code != 0 {
		t.Fatalf("HOOKLINE_LOADTEST_H: exit %d %s", code, errOut)
	}
	mu.Lock()
	defer mu.Unlock()
	if got["Bearer t0ken|a"] != 2 || got["Bearer env|b"] != 2 {
		t.Fatalf("headers seen: %v", got)
	}
}
