package recsink

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newSink(t *testing.T, cfg Config) (*Sink, *httptest.Server) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

// deliver posts body like hookline's HTTP sink; attempt < 0 omits the
// attempt header, id == "" the id headers.
func deliver(t *testing.T, url, id string, attempt int, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/process", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if id != "" {
		req.Header.Set("Idempotency-Key", id)
		req.Header.Set("X-Hookline-Event-Id", id)
	}
	if attempt >= 0 {
		req.Header.Set("X-Hookline-Attempt", strconv.Itoa(attempt))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func eb(conv string, seq int) string {
	return fmt.Sprintf(`{"version":"0","id":"e-%d","detail-type":"v2.detail.events.conversation.%s.acd.start","source":"aws.partner/genesys.com/x","detail":{"topicName":"v2.detail.events.conversation.%s.acd.start","eventBody":{"conversationId":%q,"sequence":%d}}}`, seq, conv, conv, conv, seq)
}

func TestFatesAreDeterministicPerSeedAndMatchTheRates(t *testing.T) {
	a, _ := New(Config{Seed: 42, TransientRate: 0.2, PermanentRate: 0.01})
	b, _ := New(Config{Seed: 42, TransientRate: 0.2, PermanentRate: 0.01})
	c, _ := New(Config{Seed: 43, TransientRate: 0.2, PermanentRate: 0.01})
	const n = 20000
	var transient, permanent, differ int
	for i := range n {
		id := fmt.Sprintf("event-%d", i)
		for attempt := 1; attempt <= 3; attempt++ {
			oa := a.Outcome(id, attempt)
			if ob := b.Outcome(id, attempt); oa != ob {
				t.Fatalf("%s attempt %d: %s vs %s with the same seed", id, attempt, oa, ob)
			}
			if c.Outcome(id, attempt) != oa {
				differ++
			}
			if attempt == 1 {
				switch oa {
				case Transient:
					transient++
				case Permanent:
					permanent++
				}
			}
			if oa == Permanent && a.Outcome(id, attempt+1) != Permanent {
				t.Fatalf("%s: permanent on attempt %d but not on the next", id, attempt)
			}
		}
	}
	if f := float64(transient) / n; f < 0.18 || f > 0.22 {
		t.Errorf("transient share of first attempts %.3f, want about 0.2×0.99", f)
	}
	if f := float64(permanent) / n; f < 0.006 || f > 0.014 {
		t.Errorf("permanent share %.4f, want about 0.01", f)
	}
	if differ == 0 {
		t.Error("another seed gives the same fates")
	}
	// Attempts are independent: some events fail on 1 and succeed on 2.
	recovered := 0
	for i := range 1000 {
		id := fmt.Sprintf("event-%d", i)
		if n, perm := a.TransientFailures(id, 4); n == 1 && !perm {
			recovered++
		}
	}
	if recovered < 100 || recovered > 250 {
		t.Errorf("%d of 1000 events fail exactly once, want about 160", recovered)
	}
}

func TestScriptedFateByHookAttempt(t *testing.T) {
	s, srv := newSink(t, Config{
		TransientRate: 1, // the script wins over the rates
		Script: map[string]Fate{
			"flaky": {TransientAttempts: []int{1, 2}},
			"bad":   {Permanent: true},
		},
		KeepRequests: true,
	})
	var got []int
	for attempt := range 4 {
		got = append(got, deliver(t, srv.URL, "flaky", attempt, eb("c1", 1)))
	}
	if fmt.Sprint(got) != "[503 503 200 200]" {
		t.Fatalf("flaky: %v, want [503 503 200 200]", got)
	}
	if code := deliver(t, srv.URL, "bad", 0, eb("c2", 1)); code != 422 {
		t.Fatalf("bad: %d", code)
	}
	if code := deliver(t, srv.URL, "other", 0, eb("c3", 1)); code != 503 {
		t.Fatalf("unscripted with transient rate 1: %d", code)
	}
	st := s.Stats()
	if st.Requests != 6 || st.OK != 2 || st.Transient != 3 || st.Permanent != 1 || st.Events != 3 || st.EventsOK != 1 || st.Duplicates != 1 {
		t.Fatalf("stats %+v", st)
	}
	if st.ByStatus["503"] != 3 || st.ByStatus["200"] != 2 || st.ByStatus["422"] != 1 {
		t.Fatalf("by status %v", st.ByStatus)
	}
	reqs := s.Requests()
	if len(reqs) != 6 {
		t.Fatalf("%d requests recorded", len(reqs))
	}
	r := reqs[2]
	if r.EventID != "flaky" || r.IdempotencyKey != "flaky" || r.HookAttempt != 2 || r.Attempt != 3 || r.ConversationID != "c1" ||
		r.Sequence != 1 || r.Status != 200 || r.Outcome != OK || r.N != 3 || r.At.IsZero() || r.Done.Before(r.At) || r.Path != "/process" {
		t.Fatalf("request %+v", r)
	}
}

func TestEventIDWithoutHeaders(t *testing.T) {
	s, srv := newSink(t, Config{KeepRequests: true})
	// Two envelopes of one event (conversation c, sequence 4): one event id.
	deliver(t, srv.URL, "", -1, eb("c", 4))
	deliver(t, srv.URL, "", -1, strings.Replace(eb("c", 4), `"id":"e-4"`, `"id":"other-envelope"`, 1))
	deliver(t, srv.URL, "", -1, `{"no":"ids"}`)
	reqs := s.Requests()
	if reqs[0].EventID != "c/4" || reqs[1].EventID != "c/4" || reqs[1].Attempt != 2 || len(reqs[2].EventID) != 64 {
		t.Fatalf("requests %+v", reqs)
	}
	if st := s.Stats(); st.Events != 2 || st.Duplicates != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAttemptWithoutHeaderCountsRequests(t *testing.T) {
	_, srv := newSink(t, Config{Script: map[string]Fate{"k": {TransientAttempts: []int{1}}}})
	if a, b := deliver(t, srv.URL, "k", -1, `{}`), deliver(t, srv.URL, "k", -1, `{}`); a != 503 || b != 200 {
		t.Fatalf("got %d then %d, want 503 then 200", a, b)
	}
}

func TestBodyParsing(t *testing.T) {
	for body, want := range map[string]string{
		eb("conv-a", 7): "conv-a/7",
		`{"topicName":"v2.detail.events.conversation.x.user.end","eventBody":{"conversationId":"conv-b","sequence":3}}`: "conv-b/3",
		`{"conversationId":"conv-c","sequence":12}`: "conv-c/12",
		`{"eventBody":{"conversationId":"conv-d"}}`: "conv-d/-1",
		`not json`: "/-1",
	} {
		c, s := parseBody([]byte(body))
		if got := fmt.Sprintf("%s/%d", c, s); got != want {
			t.Errorf("%s: %s, want %s", body, got, want)
		}
	}
}

func TestStatsCountDuplicatesOrderAndOverlaps(t *testing.T) {
	s, srv := newSink(t, Config{KeepRequests: true, Script: map[string]Fate{"c2-2": {TransientAttempts: []int{1}}}})
	// Conversation c1: 1, 2, 3 in order, then 2 again (a duplicate, not an
	// order violation), then 5 before 4: one violation.
	for _, step := range []struct {
		id  string
		seq int
	}{{"c1-1", 1}, {"c1-2", 2}, {"c1-3", 3}, {"c1-2", 2}, {"c1-5", 5}, {"c1-4", 4}} {
		deliver(t, srv.URL, step.id, 0, eb("c1", step.seq))
	}
	// Conversation c2 has a retry: its order is not checked.
	deliver(t, srv.URL, "c2-2", 0, eb("c2", 2))
	deliver(t, srv.URL, "c2-3", 0, eb("c2", 3))
	deliver(t, srv.URL, "c2-2", 1, eb("c2", 2))
	st := s.Stats()
	if st.Duplicates != 1 || st.OrderViolations != 1 || st.OrderedConversations != 1 || st.Conversations != 2 || st.Overlaps != 0 {
		t.Fatalf("stats %+v", st)
	}

	// GET /stats serves the same as JSON.
	resp, err := http.Get(srv.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var js Stats
	if err := json.NewDecoder(resp.Body).Decode(&js); err != nil {
		t.Fatal(err)
	}
	if js.Requests != 9 || js.Duplicates != 1 || js.OrderViolations != 1 {
		t.Fatalf("/stats %+v", js)
	}
	if len(s.Requests()) != 9 {
		t.Fatal("GET /stats was recorded as a delivery")
	}
}

func TestLatencyOverlapsAndCanceledClients(t *testing.T) {
	s, srv := newSink(t, Config{LatencyMin: 300 * time.Millisecond, LatencyMax: 300 * time.Millisecond, KeepRequests: true})
	// Two main-path requests of one conversation at once: an overlap.
	done := make(chan int, 2)
	for i := range 2 {
		go func() { done <- deliver(t, srv.URL, fmt.Sprintf("o-%d", i), 0, eb("busy", i+1)) }()
	}
	start := time.Now()
	<-done
	<-done
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("answered after %s, latency is 300ms", el)
	}
	// A client that gives up before the answer.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/process", strings.NewReader(eb("gone", 1)))
	req.Header.Set("Idempotency-Key", "gone-1")
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("request did not time out")
	}
	deadline := time.Now().Add(2 * time.Second)
	for s.Stats().Canceled == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := s.Stats()
	if st.Overlaps != 1 || st.Canceled != 1 || st.OK != 2 || st.MaxInFlight < 2 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
	if r := s.Requests()[2]; r.Outcome != Canceled || r.Status != 0 {
		t.Fatalf("canceled request %+v", r)
	}
}

func TestConfigErrors(t *testing.T) {
	// Statuses hookline would classify the other way round are refused:
	// the counts of a sink that sends them would be wrong.
	for _, cfg := range []Config{{TransientRate: 1.5}, {PermanentRate: -0.1}, {LatencyMin: -1}, {TransientStatus: 200},
		{TransientStatus: 404}, {TransientStatus: 422}, {PermanentStatus: 503}, {PermanentStatus: 429}, {PermanentStatus: 408}, {PermanentStatus: 302}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	for _, cfg := range []Config{{TransientStatus: 408, PermanentStatus: 400}, {TransientStatus: 425, PermanentStatus: 410}, {TransientStatus: 429}, {TransientStatus: 599}} {
		if _, err := New(cfg); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	s, _ := New(Config{})
	if s.Seed() == 0 {
		t.Error("no random seed picked")
	}
}
