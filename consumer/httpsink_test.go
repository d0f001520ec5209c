package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/syncbuf"
)

func TestHTTPSinkClassification(t *testing.T) {
	t.Parallel()
	var status atomic.Int32
	var last atomic.Pointer[http.Request]
	var lastBody atomic.Pointer[string]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s := string(b)
		lastBody.Store(&s)
		last.Store(r)
		if c := status.Load(); c >= 300 && c < 400 {
			w.Header().Set("Location", "https://moved.example/process?token=secret")
		}
		w.WriteHeader(int(status.Load()))
		io.WriteString(w, "reason: "+strings.Repeat("z", 1000))
	}))
	defer srv.Close()
	h, err := NewHTTPSink(HTTPSinkConfig{URL: srv.URL + "/process?token=secret"})
	if err != nil {
		t.Fatal(err)
	}
	ev := Event{Value: []byte(`{"a":1}`), EventID: "ev-1", ReceiptID: "rc-1", Source: "genesys",
		ConversationID: "conv-1", Attempt: 2}
	cases := []struct {
		code     int
		ok, perm bool
	}{
		{200, true, false}, {201, true, false}, {204, true, false},
		{408, false, false}, {425, false, false}, {429, false, false},
		{500, false, false}, {502, false, false}, {503, false, false},
		{400, false, true}, {401, false, true}, {404, false, true}, {409, false, true}, {422, false, true},
		{301, false, false}, {307, false, false}, {308, false, false},
	}
	for _, c := range cases {
		status.Store(int32(c.code))
		err := h.Handle(context.Background(), ev)
		if c.ok {
			if err != nil {
				t.Errorf("%d: %v, want nil", c.code, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%d: nil error", c.code)
			continue
		}
		if IsPermanent(err) != c.perm {
			t.Errorf("%d: permanent=%v, want %v (%v)", c.code, IsPermanent(err), c.perm, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "status ") || !strings.Contains(msg, "reason: zzz") || len(msg) > 400 {
			t.Errorf("%d: error %q should carry the status and a short body snippet", c.code, msg)
		}
		if strings.Contains(msg, "secret") {
			t.Errorf("%d: error leaks the URL query: %q", c.code, msg)
		}
		if c.code >= 300 && c.code < 400 && !strings.Contains(msg, "redirect to https://moved.example/process") {
			t.Errorf("%d: error %q should name where the redirect points", c.code, msg)
		}
	}
	r := last.Load()
	want := map[string]string{
		"Content-Type": "application/json", "Idempotency-Key": "ev-1", "X-Hookline-Event-Id": "ev-1",
		"X-Hookline-Receipt": "rc-1", "X-Hookline-Attempt": "2", "X-Hookline-Source": "genesys",
		"X-Hookline-Conversation-Id": "conv-1",
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if *lastBody.Load() != `{"a":1}` {
		t.Errorf("body %q", *lastBody.Load())
	}
	ev.ContentType = "application/x-www-form-urlencoded"
	status.Store(200)
	if err := h.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if got := last.Load().Header.Get("Content-Type"); got != ev.ContentType {
		t.Errorf("content type %q", got)
	}
}

func TestHTTPSinkTimeoutsAndConnectionErrorsAreRetryable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
	}))
	defer srv.Close()
	h, err := NewHTTPSink(HTTPSinkConfig{URL: srv.URL, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = h.Handle(context.Background(), Event{Value: []byte("{}")})
	if err == nil || IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %v (permanent=%v)", err, IsPermanent(err))
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h2, _ := NewHTTPSink(HTTPSinkConfig{URL: "http://" + addr + "/x"})
	err = h2.Handle(context.Background(), Event{Value: []byte("{}")})
	if err == nil || IsPermanent(err) {
		t.Errorf("connection refused: %v (permanent=%v)", err, IsPermanent(err))
	}
}

func TestHTTPSinkConfigErrors(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "ftp://x", "/relative", "http://"} {
		if _, err := NewHTTPSink(HTTPSinkConfig{URL: u}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
	if _, err := NewHTTPSink(HTTPSinkConfig{URL: "https://x", CAFile: "/nonexistent"}); err == nil {
		t.Error("missing CA file accepted")
	}
}

func TestHTTPSinkTLSWithCAFile(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ca := t.TempDir() + "/ca.pem"
	if err := writeCert(ca, srv); err != nil {
		t.Fatal(err)
	}
	h, err := NewHTTPSink(HTTPSinkConfig{URL: srv.URL, CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(context.Background(), Event{Value: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	h2, _ := NewHTTPSink(HTTPSinkConfig{URL: srv.URL})
	if err := h2.Handle(context.Background(), Event{Value: []byte("{}")}); err == nil || !strings.Contains(err.Error(), "--handler-ca") {
		t.Fatalf("untrusted certificate without the CA file: %v, want an error that names --handler-ca", err)
	}
}

// A retryable answer with Retry-After carries the wait, in seconds or as an
// HTTP date; without the header, or on a permanent answer, there is none.
func TestHTTPSinkRetryAfter(t *testing.T) {
	t.Parallel()
	var status atomic.Int32
	var after atomic.Pointer[string]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := after.Load(); a != nil && *a != "" {
			w.Header().Set("Retry-After", *a)
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	h, err := NewHTTPSink(HTTPSinkConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		code   int32
		header string
		min    time.Duration
		max    time.Duration
		perm   bool
	}{
		{429, "7", 7 * time.Second, 7 * time.Second, false},
		{503, time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat), 88 * time.Second, 91 * time.Second, false},
		{503, "", 0, 0, false},
		{429, "soon", 0, 0, false},
		{400, "30", 0, 0, true},
	} {
		status.Store(c.code)
		after.Store(&c.header)
		err := h.Handle(context.Background(), Event{Value: []byte(`{}`), EventID: "ev"})
		got := retryAfterOf(err)
		if err == nil || got < c.min || got > c.max || IsPermanent(err) != c.perm {
			t.Errorf("%d Retry-After %q: wait %s (permanent %v, %v), want %s-%s", c.code, c.header, got, IsPermanent(err), err, c.min, c.max)
		}
	}
}

// An HTTP-date Retry-After is never shortened: the date has whole seconds,
// and the wait runs to it or past it, never to half a second before.
func TestRetryAfterDateIsNotEarly(t *testing.T) {
	now := time.Date(2026, 11, 29, 15, 47, 35, 847e6, time.UTC)
	for _, c := range []struct {
		at   time.Time
		want time.Duration
	}{
		{time.Date(2026, 11, 29, 15, 47, 38, 0, time.UTC), 3 * time.Second}, // 2.153 s away
		{time.Date(2026, 11, 29, 15, 47, 36, 0, time.UTC), time.Second},     // 0.153 s away
		{now.Truncate(time.Second).Add(2 * time.Second), 2 * time.Second},   // 1.153 s away
	} {
		got := retryAfterHeader(c.at.Format(http.TimeFormat), now)
		if got != c.want || now.Add(got).Before(c.at) {
			t.Errorf("Retry-After %s at %s: %s, want %s (not before the date)", c.at.Format(http.TimeFormat), now.Format(time.RFC3339Nano), got, c.want)
		}
	}
	if got := retryAfterHeader(now.Add(-time.Second).Format(http.TimeFormat), now); got != 0 {
		t.Errorf("a past date: %s, want 0", got)
	}
}

// Delay-seconds are clamped a year out, also past int64: a service asking
// for an absurd wait gets the longest tier, not the first (a parse failure
// would read as no Retry-After at all).
func TestRetryAfterSecondsClamped(t *testing.T) {
	now := time.Now()
	const year = 365 * 24 * time.Hour
	for v, want := range map[string]time.Duration{
		"120": 2 * time.Minute, " 7 ": 7 * time.Second, "0": 0, "-5": 0,
		"99999999999": year, "99999999999999999999999": year, "-99999999999999999999999": 0,
		"soon": 0, "": 0,
	} {
		if got := retryAfterHeader(v, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
}

// A user name alone may be an API token: errors show no user info at all.
func TestHTTPSinkHidesUserInfo(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "http://sk_live_LOC@elsewhere.example/p")
		w.WriteHeader(http.StatusFound)
	}))
	defer srv.Close()
	for _, u := range []string{
		strings.Replace(srv.URL, "http://", "http://sk_live_TOKEN@", 1) + "/p",
		strings.Replace(srv.URL, "http://", "http://user:sk_live_TOKEN@", 1) + "/p",
	} {
		h, err := NewHTTPSink(HTTPSinkConfig{URL: u})
		if err != nil {
			t.Fatal(err)
		}
		err = h.Handle(context.Background(), Event{Value: []byte("{}")})
		if err == nil || strings.Contains(err.Error(), "sk_live") || !strings.Contains(err.Error(), "xxxxx@") {
			t.Errorf("%s: error %v should hide the user info of both URLs", u, err)
		}
	}
	err := CheckHandlerURL("ftp://sk_live_TOKEN@127.0.0.1:1/p")
	if err == nil || strings.Contains(err.Error(), "sk_live") {
		t.Errorf("CheckHandlerURL: %v", err)
	}
}

// Once the status is known, a body that trickles in neither holds the
// attempt until its deadline nor turns a permanent answer into a retried
// timeout; a slow 2xx body is a success.
func TestHTTPSinkSlowBodyKeepsTheStatus(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusUnprocessableEntity
		if r.URL.Path == "/ok" {
			code = http.StatusOK
		}
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(code)
		io.WriteString(w, "invalid conversation")
		w.(http.Flusher).Flush()
		select { // the other 80 bytes never come
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	h, _ := NewHTTPSink(HTTPSinkConfig{URL: srv.URL + "/bad"})
	start := time.Now()
	err := h.Handle(ctx, Event{Value: []byte("{}")})
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "status 422: invalid conversation") || ctx.Err() != nil {
		t.Errorf("422 with a trickling body: %v (permanent %v, after %s), want the permanent 422 with what came of its body",
			err, IsPermanent(err), time.Since(start))
	}
	h2, _ := NewHTTPSink(HTTPSinkConfig{URL: srv.URL + "/ok"})
	if err := h2.Handle(ctx, Event{Value: []byte("{}")}); err != nil || ctx.Err() != nil {
		t.Errorf("200 with a trickling body: %v, want success before the deadline", err)
	}
}

// The downstream's response body reaches the retry or DLQ record, made
// printable, but not the logs: a downstream may echo the payload.
func TestHTTPSinkResponseBodyInRecordNotLogs(t *testing.T) {
	t.Parallel()
	srv := echoServer(t, "\x1b[2J\x1b[31mbad request: \u202e")
	h, _ := NewHTTPSink(HTTPSinkConfig{URL: srv.URL})
	err := h.Handle(context.Background(), Event{Value: []byte(`{"card":"4111-PAYLOAD"}`)})
	if err == nil {
		t.Fatal("400 accepted")
	}
	rec := err.Error()
	if !strings.Contains(rec, `?[2J?[31mbad request: ?{"card":"4111-PAYLOAD"}`) || strings.ContainsAny(rec, "\x1b\u202e") {
		t.Errorf("record text %q: want the snippet with control and format characters replaced", rec)
	}
	logged := LogText(Permanent(fmt.Errorf("wrapped: %w", err)))
	if strings.Contains(logged, "PAYLOAD") || !strings.Contains(logged, "status 400") {
		t.Errorf("log text %q: want the status without the response body", logged)
	}
}

// headerRecorder is a downstream that answers 200 and keeps the headers of
// the last request, which last returns.
func headerRecorder(t *testing.T) (srv *httptest.Server, last func() http.Header) {
	var got atomic.Pointer[http.Header]
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		got.Store(&h)
	}))
	t.Cleanup(srv.Close)
	return srv, func() http.Header { return *got.Load() }
}

// Extra headers reach the downstream on every request; names hookline sets
// itself are refused.
func TestHTTPSinkExtraHeaders(t *testing.T) {
	t.Parallel()
	srv, last := headerRecorder(t)
	h, err := NewHTTPSink(HTTPSinkConfig{URL: srv.URL, Header: http.Header{"Authorization": {"Bearer t"}, "X-Team": {"a", "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(context.Background(), Event{Value: []byte("{}"), EventID: "ev"}); err != nil {
		t.Fatal(err)
	}
	if g := last(); g.Get("Authorization") != "Bearer t" || len(g["X-Team"]) != 2 || g.Get(HeaderEventID) != "ev" {
		t.Errorf("downstream got %v", g)
	}
	for _, hd := range []http.Header{{"X-Hookline-Attempt": {"7"}}, {"idempotency-key": {"x"}}, {"Upgrade": {"h2c"}}, {"Content-Type": {"text/plain"}}, {"Bad Name": {"x"}}, {"X-Ok": {"a\nb"}}} {
		if _, err := NewHTTPSink(HTTPSinkConfig{URL: srv.URL, Header: hd}); err == nil {
			t.Errorf("header %v accepted", hd)
		}
	}
}

// The sender's signature kept with the record goes out under the header
// its source signs in, so that the service checks the body as it checked
// direct deliveries; a record's headers must not choose what the request
// carries, so nothing else is forwarded.
func TestHTTPSinkForwardsTheSendersSignature(t *testing.T) {
	t.Parallel()
	srv, last := headerRecorder(t)
	h, err := NewHTTPSink(HTTPSinkConfig{URL: srv.URL,
		Header:           http.Header{"x-team-sig": {"configured"}}, // not canonical: must still win
		SignatureHeaders: map[string]string{"om": "x-hub-signature-256", "team": "X-Team-Sig"}})
	if err != nil {
		t.Fatal(err)
	}
	send := func(source, name, value string) http.Header {
		t.Helper()
		ev := Event{Value: []byte("{}"), Source: source, Headers: []kgo.RecordHeader{
			{Key: headers.SignatureHeader, Value: []byte(name)}, {Key: headers.Signature, Value: []byte(value)}}}
		if err := h.Handle(context.Background(), ev); err != nil {
			t.Fatalf("%s %s: %v", source, name, err)
		}
		return last()
	}
	if g := send("om", "X-Hub-Signature-256", "sha256=c2lnbmF0dXJl"); g.Get("X-Hub-Signature-256") != "sha256=c2lnbmF0dXJl" {
		t.Errorf("signature not forwarded: %v", g)
	}
	if g := send("team", "X-Team-Sig", "from-the-record"); len(g["X-Team-Sig"]) != 1 || g.Get("X-Team-Sig") != "configured" {
		t.Errorf("a configured header did not win: %v", g)
	}
	for _, c := range []struct{ source, name, value string }{
		{"other", "X-Hub-Signature-256", "sha256=c2ln"},         // a source without a signature header
		{"", "X-Hub-Signature-256", "sha256=c2ln"},              // no source
		{"om", "X-Forwarded-For", "127.0.0.1"},                  // not the source's header
		{"om", "X-Hookline-Conversation-Id", "c"},               // one the sink sets only when it has one
		{"om", "X-Hookline-Receipt", "r"},                       //
		{"om", "Idempotency-Key", "k"},                          // the event has no id here
		{"om", "X-Hub-Signature-256", strings.Repeat("a", 257)}, // too long for a signature
		{"om", "X-Hub-Signature-256", "sha256=\u00e9t\u00e9"},   // not printable ASCII
		{"om", "X-Hub-Signature-256", "a\r\nX-Injected: 1"},     // a line break
	} {
		g := send(c.source, c.name, c.value)
		for k, vs := range g {
			if slices.Contains(vs, c.value) {
				t.Errorf("%+v forwarded as %s", c, k)
			}
		}
		if g.Get("X-Injected") != "" {
			t.Errorf("%+v: injected a header", c)
		}
	}
	for _, name := range []string{"Authorization", "Cookie", "Host", "Content-Length", "Connection", "Te", "Upgrade", "X-Hookline-Attempt", "Idempotency-Key", "Bad Name"} {
		if _, err := NewHTTPSink(HTTPSinkConfig{URL: srv.URL, SignatureHeaders: map[string]string{"s": name}}); err == nil {
			t.Errorf("signature header %q accepted", name)
		}
	}
}

// Wired through the consumer: the downstream's response body reaches the
// DLQ or retry record but not the log, also when the attempt overran its
// deadline (which makes it retryable and rewraps the error).
func TestResponseBodyStaysOutOfConsumerLogs(t *testing.T) {
	t.Parallel()
	srv := echoServer(t, "")
	sink, err := NewHTTPSink(HTTPSinkConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 1, time.Minute)
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		if ev.EventID == "overrun" {
			<-ctx.Done()
			return sink.Handle(context.Background(), ev)
		}
		return sink.Handle(ctx, ev)
	})
	r1, r2 := event("c1", "permanent", 0), event("c2", "overrun", 1)
	r1.Value, r2.Value = []byte(`{"card":"PAYLOAD-MARK"}`), []byte(`{"card":"PAYLOAD-MARK"}`)
	e.produce(r1, r2)
	var logs syncbuf.Buffer
	e.start(Config{Handler: h, HandlerTimeout: 300 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	eventually(t, 15*time.Second, "one dead letter and one retry record", func() bool {
		return len(e.readAll(e.plan.Names.DLQ)) == 1 && len(e.readAll(e.plan.Names.Retry(1))) == 1
	})
	for _, r := range append(e.readAll(e.plan.Names.DLQ), e.readAll(e.plan.Names.Retry(1))...) {
		if !strings.Contains(hdr(r, headers.Error), "status 400: {") {
			t.Errorf("%s record: error %q should quote the response", r.Topic, hdr(r, headers.Error))
		}
	}
	eventually(t, 5*time.Second, "both failures logged", func() bool {
		return strings.Contains(logs.String(), "event dead-lettered") && strings.Contains(logs.String(), "sent to a retry tier")
	})
	if strings.Contains(logs.String(), "PAYLOAD-MARK") {
		t.Errorf("the log quotes the downstream's echo of the payload:\n%s", logs.String())
	}
}

// echoServer answers 400 with prefix and the request body, as a downstream
// that echoes what it was sent in its error.
func echoServer(t *testing.T, prefix string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(prefix))
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A service that reads a request and drops the connection without an
// answer (a Go handler that panics, a proxy whose upstream died) must get
// one event once per attempt, or twice at most (one resend covers a
// keep-alive connection the service closed while idle): not once per
// pooled connection in a tight loop, which a crashing service gets
// hundreds of times per event after a busy spell.
func TestHTTPSinkAbruptCloseIsNotResentPerPooledConn(t *testing.T) {
	t.Parallel()
	var crash, crashOnce atomic.Bool
	var crashed atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if crash.Load() || crashOnce.Swap(false) {
			crashed.Add(1)
			panic(http.ErrAbortHandler) // closes the connection, no answer
		}
		time.Sleep(50 * time.Millisecond) // a busy spell: many connections open at once
	}))
	srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	defer srv.Close()
	h, err := NewHTTPSink(HTTPSinkConfig{URL: srv.URL + "/process"})
	if err != nil {
		t.Fatal(err)
	}
	ev := Event{Value: []byte(`{"a":1}`), EventID: "ev-1"}
	const busy = 32
	errs := make(chan error, busy)
	for range busy {
		go func() { errs <- h.Handle(context.Background(), ev) }()
	}
	for range busy {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	crash.Store(true)
	err = h.Handle(context.Background(), ev)
	if err == nil || IsPermanent(err) {
		t.Fatalf("abrupt close: %v (permanent=%v), want a retryable error", err, IsPermanent(err))
	}
	if n := crashed.Load(); n > 2 {
		t.Errorf("the service got the event %d times in one attempt, want at most 2", n)
	}
	if msg := err.Error(); !strings.Contains(msg, "closed the connection without answering") {
		t.Errorf("error %q should say the service closed the connection without an answer", msg)
	}

	// One close (as of a keep-alive connection the service dropped while
	// idle) is still covered by the resend.
	crash.Store(false)
	for range busy {
		go func() { errs <- h.Handle(context.Background(), ev) }()
	}
	for range busy {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	crashed.Store(0)
	crashOnce.Store(true)
	if err := h.Handle(context.Background(), ev); err != nil {
		t.Errorf("one close on a pooled connection: %v, want the resend to succeed", err)
	}
	if n := crashed.Load(); n != 1 {
		t.Errorf("%d closes, want 1", n)
	}
}

// A connection error says what to do next in the log line and the retry
// or dead-letter record, as a 3xx or an unknown CA does.
func TestHTTPSinkConnectionErrorsSayWhatToDo(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-hang
	}))
	defer srv.Close()
	defer close(hang)
	cases := []struct{ url, want string }{
		{"http://" + addr + "/process", "nothing listens there: start the service"},
		{srv.URL + "/process", "make the service answer within --handler-timeout"},
	}
	for _, c := range cases {
		h, err := NewHTTPSink(HTTPSinkConfig{URL: c.url})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = h.Handle(ctx, Event{Value: []byte("{}")})
		cancel()
		if err == nil || IsPermanent(err) {
			t.Errorf("%s: %v (permanent=%v), want a retryable error", c.url, err, IsPermanent(err))
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want it to say %q", c.url, err, c.want)
		}
	}
}

// The statuses a wrong handler configuration brings (an expired token, a
// mistyped path) dead-letter every event at once: the error says what to
// fix, ahead of the response body.
func TestHTTPSinkConfigurationStatusesSayWhatToDo(t *testing.T) {
	t.Parallel()
	var status atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		io.WriteString(w, "nope")
	}))
	defer srv.Close()
	h, err := NewHTTPSink(HTTPSinkConfig{URL: srv.URL + "/process"})
	if err != nil {
		t.Fatal(err)
	}
	for code, want := range map[int]string{
		401: "credentials refused: check --handler-header", 403: "credentials refused: check --handler-header", 407: "credentials refused: check --handler-header",
		404: "wrong path in the handler URL?", 405: "wrong path in the handler URL?",
	} {
		status.Store(int32(code))
		err := h.Handle(context.Background(), Event{Value: []byte("{}")})
		if err == nil || !IsPermanent(err) {
			t.Errorf("%d: %v, want a permanent error", code, err)
			continue
		}
		if msg := LogText(err); !strings.Contains(msg, want) {
			t.Errorf("%d: logged %q, want it to say %q", code, msg, want)
		}
		if msg := err.Error(); !strings.Contains(msg, want) || !strings.HasSuffix(msg, ": nope") {
			t.Errorf("%d: error %q, want %q and then the body", code, msg, want)
		}
	}
	// With a forwarded signature, a refusal may be the service checking it
	// with a key rotated since the sender signed: say so.
	h, err = NewHTTPSink(HTTPSinkConfig{URL: srv.URL + "/process", SignatureHeaders: map[string]string{"om": "X-Hub-Signature-256"}})
	if err != nil {
		t.Fatal(err)
	}
	status.Store(401)
	signed := Event{Value: []byte("{}"), Source: "om", Headers: []kgo.RecordHeader{
		{Key: headers.SignatureHeader, Value: []byte("X-Hub-Signature-256")}, {Key: headers.Signature, Value: []byte("sha256=c2ln")}}}
	if err := h.Handle(context.Background(), signed); err == nil || !strings.Contains(err.Error(), "forwarded X-Hub-Signature-256, it must accept the key the sender signed with") {
		t.Errorf("401 to a signed event: %v, want a word on the forwarded signature", err)
	}
}

// The sink's keep-alive connections do not outlive Run: a library user
// starting and stopping consumers (in tests, say) would otherwise keep two
// goroutines per connection for the transport's 90 s idle timeout.
func TestRunClosesTheSinksIdleConnections(t *testing.T) {
	t.Parallel()
	var open atomic.Int32
	var handled atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		handled.Add(1)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	defer srv.Close()
	h, err := NewHTTPSink(HTTPSinkConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 2, time.Second)
	e.produce(event("c1", "idle1", 0), event("c2", "idle2", 0))
	_, stop := e.start(Config{Handler: h, Group: "gidle"})
	eventually(t, 10*time.Second, "both events forwarded", func() bool { return handled.Load() == 2 })
	if open.Load() == 0 {
		t.Fatal("no connection open after forwarding: the test shows nothing")
	}
	stop()
	eventually(t, 5*time.Second, "the sink's connections closed after Run returned", func() bool { return open.Load() == 0 })
}
