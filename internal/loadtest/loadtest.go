// Package loadtest simulates Genesys Cloud delivering conversation events
// through an Amazon EventBridge API destination, for load, soak and chaos
// tests of a hookline receiver (or any webhook endpoint).
//
// What it imitates:
//
//   - Payloads: Genesys detail events (v2.detail.events.conversation.{id}.*)
//     in EventBridge envelopes (id, detail-type, source, time, detail), many
//     conversations at once, each a realistic lifecycle (customer.start,
//     acd.start, acd.end, user.start, [transfer], customer.end, user.end,
//     acw.start, acw.end). eventBody carries conversationId and a "sequence"
//     field: the event's 1-based position in its conversation.
//   - One conversation's events are sent one after the other: the next is
//     sent only after the previous was acknowledged or given up, so an
//     acknowledged conversation is in order at the receiver.
//   - The client: 5 s timeout per request; retries 401, 407, 409, 429, 5xx,
//     timeouts and connection errors with exponential backoff and jitter,
//     bounded by attempts (default 185) and time since the first try
//     (default 24 h), as EventBridge does. Other answers are final.
//   - Every attempt wraps the same inner notification in a fresh envelope
//     (new envelope id and time): the receiver must recognise a redelivery
//     by content. That is harder than EventBridge, whose retries resend
//     the same envelope; a new one comes when Genesys publishes an event
//     again.
//   - Duplicates: after an acknowledgement, with probability DuplicateRate,
//     an already acknowledged event of the same conversation is sent once
//     more (again in a fresh envelope), as at-least-once delivery does.
//
// It records which events were acknowledged (2xx) and counts requests,
// retries, 429/503/other answers, timeouts and latency percentiles.
package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookline/hookline/internal/ctxtime"
	"github.com/hookline/hookline/internal/extract"
)

// Defaults of Config.
const (
	DefaultSecretHeader  = "X-Hookline-Secret"
	DefaultConcurrency   = 32
	DefaultConversations = 200
	DefaultTimeout       = 5 * time.Second // EventBridge API destinations
	DefaultMaxAttempts   = 185             // EventBridge: up to 185 attempts
	DefaultMaxRetryTime  = 24 * time.Hour  // EventBridge: for up to 24 hours
	DefaultBackoffMin    = time.Second
	DefaultBackoffMax    = time.Minute
	// UserAgent is what EventBridge API destinations send.
	UserAgent = "Amazon/EventBridge/ApiDestinations"
)

// Config configures a run. Count or Duration (or both) must bound it.
type Config struct {
	// URL receives the POSTs, e.g. http://127.0.0.1:8080/webhooks/genesys.
	URL string
	// Secret is sent in SecretHeader when not empty.
	Secret       string
	SecretHeader string // default X-Hookline-Secret
	// Header holds extra headers for every request (e.g. Authorization).
	Header http.Header

	// Count is how many distinct events to send; 0: no bound.
	Count int
	// Duration stops starting new events after this long; 0: no bound.
	Duration time.Duration
	// Drain is how long events still being retried when Duration ends may
	// go on; default Timeout. Events not acknowledged by then are counted
	// as unfinished.
	Drain time.Duration
	// Rate is how many new events start per second over all workers; 0: as
	// fast as Concurrency allows. Retries and duplicates are not paced.
	Rate float64

	// Concurrency is how many requests are in flight at once; default 32.
	Concurrency int
	// Conversations is how many conversations are open at once (a finished
	// conversation is replaced by a new one); default 200.
	Conversations int
	// DuplicateRate is the probability (0–1) that, after an
	// acknowledgement, an acknowledged event of the same conversation is
	// sent once more in a fresh envelope.
	DuplicateRate float64

	// Timeout bounds one request; default 5s.
	Timeout time.Duration
	// MaxAttempts bounds the tries of one send, the first included;
	// default 185.
	MaxAttempts int
	// MaxRetryTime bounds one send from its first try; default 24h.
	MaxRetryTime time.Duration
	// BackoffMin and BackoffMax bound the exponential backoff between
	// tries (doubling from BackoffMin, with jitter); default 1s and 1m.
	BackoffMin, BackoffMax time.Duration

	// Seed makes payloads and decisions (duplicates, transfers)
	// reproducible: with a seed, event times start at a fixed date instead
	// of now, and two runs with Concurrency 1 send the same events (with
	// more workers, the same conversations, interleaved differently), which
	// a receiver dedups. 0 picks a seed at random (Result.Seed) and uses the
	// wall clock.
	Seed int64

	// Progress, when set, is called every Interval (default 10s) with the
	// totals so far and the last interval's numbers.
	Progress func(Snapshot)
	Interval time.Duration

	// KeepEvents makes Result.Events list every event (memory grows with
	// Count); OnAck, when set, is called once per event when it is first
	// acknowledged (from worker goroutines).
	KeepEvents bool
	OnAck      func(Event)

	// Client replaces the built-in client (Timeout still applies per
	// request).
	Client *http.Client
}

// Event is one distinct event the simulator sent.
type Event struct {
	ConversationID string `json:"conversation_id"`
	Sequence       int    `json:"sequence"`
	Type           string `json:"type"` // e.g. "customer.start"
	// EventID is the id a hookline receiver gives the event (the hash of
	// the inner notification), computed from the content.
	EventID string `json:"event_id"`
	// Acknowledged: at least one send got a 2xx.
	Acknowledged bool `json:"acknowledged"`
	// Attempts counts the event's requests, duplicates included.
	Attempts int `json:"attempts"`
	// Duplicates counts sends after it was acknowledged.
	Duplicates int `json:"duplicates"`
	// Failure says why it was not acknowledged ("" when it was).
	Failure string `json:"failure,omitempty"`
	// AckedAt is when the first 2xx arrived.
	AckedAt time.Time `json:"acked_at,omitzero"`
}

// Stats are the counters of a run.
type Stats struct {
	Sent         int64 `json:"sent"`         // distinct events sent
	Acknowledged int64 `json:"acknowledged"` // distinct events with a 2xx
	GaveUp       int64 `json:"gave_up"`      // not acknowledged: final answer or retry bounds
	Unfinished   int64 `json:"unfinished"`   // still being retried when the run ended

	Requests        int64 `json:"requests"`
	Retries         int64 `json:"retries"` // requests after a failed try of the same send
	DuplicatesSent  int64 `json:"duplicates_sent"`
	DuplicatesAcked int64 `json:"duplicates_acked"`

	Status2xx   int64   `json:"status_2xx"`
	Status429   int64   `json:"status_429"`
	Status503   int64   `json:"status_503"`
	Status5xx   int64   `json:"status_5xx_other"`
	Status4xx   int64   `json:"status_4xx"` // other than 429; the next three are among them
	Status401   int64   `json:"status_401"`
	Status404   int64   `json:"status_404"`
	Status413   int64   `json:"status_413"`
	Timeouts    int64   `json:"timeouts"`
	ConnErrors  int64   `json:"connection_errors"`
	IDMismatch  int64   `json:"event_id_mismatches"` // 2xx whose event_id differs from the content hash
	InFlight    int64   `json:"in_flight"`
	Latency     Latency `json:"latency"`
	RequestRate float64 `json:"requests_per_second"`
}

// Snapshot is what Progress receives.
type Snapshot struct {
	Elapsed  time.Duration
	Total    Stats
	Interval Stats // counters of the last interval only
}

// Result is the outcome of Run.
type Result struct {
	Seed    int64
	Elapsed time.Duration
	// Interrupted: the ctx given to Run was cancelled (a signal) before the
	// run reached its end, so the numbers cover only the part that ran.
	Interrupted bool
	Stats
	// Events lists every event in start order (with KeepEvents).
	Events []Event
}

// Run sends events until Count is reached or Duration has passed, then
// waits for the sends in progress (bounded by Drain after Duration) and
// returns the totals. It returns an error only for a bad Config; a
// cancelled ctx ends the run early with what was counted so far.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	r, err := newRunner(cfg)
	if err != nil {
		return nil, err
	}
	return r.run(ctx), nil
}

type runner struct {
	cfg  Config
	ids  ids
	cl   *http.Client
	rule extract.Rules

	claimed  atomic.Int64 // events claimed
	inFlight atomic.Int64
	stopNew  atomic.Bool

	mu       sync.Mutex
	total    counters
	interval counters
	records  []*Event

	pace *pacer
	// epoch, when set (explicit seed), fixes event times so a seed
	// reproduces the same payloads; else they follow the wall clock.
	epoch time.Time
}

// counters is Stats plus latency histograms, guarded by runner.mu.
type counters struct {
	Stats
	lat hist
}

// Validate reports what Run would refuse in cfg, so a caller can check
// before it announces a run. Zero values mean the defaults.
func (cfg Config) Validate() error {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("URL %q is not an absolute http(s) URL (e.g. http://127.0.0.1:8080/webhooks/genesys)", cfg.URL)
	}
	if cfg.Count < 0 || cfg.Duration < 0 || cfg.Rate < 0 || cfg.Concurrency < 0 || cfg.Conversations < 0 ||
		cfg.Timeout < 0 || cfg.MaxAttempts < 0 || cfg.MaxRetryTime < 0 || cfg.BackoffMin < 0 || cfg.BackoffMax < 0 || cfg.Drain < 0 ||
		math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) {
		return errors.New("counts, rates and durations must not be negative")
	}
	if cfg.Count == 0 && cfg.Duration == 0 {
		return errors.New("unbounded run: set a count or a duration")
	}
	if cfg.DuplicateRate < 0 || cfg.DuplicateRate > 1 || math.IsNaN(cfg.DuplicateRate) {
		return fmt.Errorf("duplicate rate %v: want a probability between 0 and 1", cfg.DuplicateRate)
	}
	if cfg.BackoffMin > 0 && cfg.BackoffMax > 0 && cfg.BackoffMax < cfg.BackoffMin {
		return fmt.Errorf("backoff max %s is below backoff min %s: raise the max or lower the min", cfg.BackoffMax, cfg.BackoffMin)
	}
	return nil
}

func newRunner(cfg Config) (*runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SecretHeader == "" {
		cfg.SecretHeader = DefaultSecretHeader
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Conversations == 0 {
		cfg.Conversations = DefaultConversations
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxRetryTime == 0 {
		cfg.MaxRetryTime = DefaultMaxRetryTime
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = cfg.BackoffMin
	}
	if cfg.Drain == 0 {
		cfg.Drain = cfg.Timeout
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	var epoch time.Time
	if cfg.Seed == 0 {
		cfg.Seed = int64(rand.Uint64() >> 1)
		if cfg.Seed == 0 {
			cfg.Seed = 1
		}
	} else {
		epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(uint64(cfg.Seed)%(1<<20)) * time.Minute)
	}
	r := &runner{cfg: cfg, ids: ids{uint64(cfg.Seed)}, rule: extract.Rules{Kind: extract.KindGenesys}, epoch: epoch}
	r.cl = cfg.Client
	if r.cl == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = cfg.Concurrency * 2
		tr.MaxIdleConnsPerHost = cfg.Concurrency * 2
		tr.MaxConnsPerHost = 0
		tr.DialContext = (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext
		r.cl = &http.Client{
			Transport: tr,
			// EventBridge does not follow redirects of a POST.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if cfg.Rate > 0 {
		r.pace = &pacer{every: time.Duration(float64(time.Second) / cfg.Rate)}
	}
	return r, nil
}

// slot is one open conversation and what a worker needs to continue it.
type slot struct {
	idx  int
	n    int // conversations started in this slot
	conv *conversation
	rng  *rand.Rand
}

func (r *runner) run(parent context.Context) *Result {
	start := time.Now()
	// hard ends every request (Duration + Drain); soft stops new events.
	hard, cancel := context.WithCancel(parent)
	defer cancel()
	if r.cfg.Duration > 0 {
		var stopHard context.CancelFunc
		hard, stopHard = context.WithDeadline(hard, start.Add(r.cfg.Duration+r.cfg.Drain))
		defer stopHard()
		t := time.AfterFunc(r.cfg.Duration, func() { r.stopNew.Store(true) })
		defer t.Stop()
	}

	ready := make(chan *slot, r.cfg.Conversations)
	for i := 0; i < r.cfg.Conversations; i++ {
		ready <- &slot{idx: i, rng: rand.New(rand.NewPCG(uint64(r.cfg.Seed), uint64(i)+1))}
	}

	progDone := make(chan struct{})
	stopProg := make(chan struct{})
	go func() {
		defer close(progDone)
		if r.cfg.Progress == nil {
			return
		}
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-stopProg:
				return
			case <-t.C:
				r.cfg.Progress(r.snapshot(start, true))
			}
		}
	}()

	var wg sync.WaitGroup
	for w := 0; w < r.cfg.Concurrency; w++ {
		wg.Go(func() { r.worker(hard, ready) })
	}
	wg.Wait()
	close(stopProg)
	<-progDone

	res := &Result{Seed: r.cfg.Seed, Elapsed: time.Since(start), Interrupted: parent.Err() != nil}
	r.mu.Lock()
	res.Stats = r.total.Stats
	res.Latency = r.total.lat.summary()
	res.InFlight = 0
	if secs := res.Elapsed.Seconds(); secs > 0 {
		res.RequestRate = float64(res.Requests) / secs
	}
	if r.cfg.KeepEvents {
		res.Events = make([]Event, len(r.records))
		for i, e := range r.records {
			res.Events[i] = *e
		}
	}
	r.mu.Unlock()
	return res
}

// snapshot returns the totals and, when reset, the interval counters since
// the last snapshot (then starts a new interval).
func (r *runner) snapshot(start time.Time, reset bool) Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Snapshot{Elapsed: time.Since(start), Total: r.total.Stats, Interval: r.interval.Stats}
	s.Total.Latency = r.total.lat.summary()
	s.Interval.Latency = r.interval.lat.summary()
	s.Total.InFlight = r.inFlight.Load()
	s.Interval.InFlight = s.Total.InFlight
	if secs := s.Elapsed.Seconds(); secs > 0 {
		s.Total.RequestRate = float64(s.Total.Requests) / secs
	}
	s.Interval.RequestRate = float64(s.Interval.Requests) / r.cfg.Interval.Seconds()
	if reset {
		r.interval = counters{}
	}
	return s
}

// claim reserves one new event, or reports that the run is over.
func (r *runner) claim() bool {
	if r.stopNew.Load() {
		return false
	}
	n := r.claimed.Add(1)
	if r.cfg.Count > 0 && n > int64(r.cfg.Count) {
		return false
	}
	return true
}

// worker continues open conversations until no new event may start.
func (r *runner) worker(ctx context.Context, ready chan *slot) {
	for {
		var s *slot
		select {
		case s = <-ready:
		case <-ctx.Done():
			return
		}
		if (r.pace != nil && r.pace.wait(ctx) != nil) || !r.claim() {
			ready <- s // keep the pool full so no worker blocks on it
			return
		}
		if s.conv == nil || s.conv.done() {
			start := time.Now()
			if !r.epoch.IsZero() {
				start = r.epoch.Add(time.Duration(s.n)*10*time.Minute + time.Duration(s.idx)*time.Second)
			}
			s.conv = newConversation(r.ids, s.rng, s.idx, s.n, start)
			s.n++
		}
		ev := s.conv.nextEvent(r.ids)
		r.register(ev)
		r.send(ctx, ev, s.rng, false)
		if ev.acked && r.cfg.DuplicateRate > 0 && s.rng.Float64() < r.cfg.DuplicateRate {
			acked := s.conv.acked
			dup := acked[s.rng.IntN(len(acked))]
			r.send(ctx, dup, s.rng, true)
		}
		ready <- s
	}
}

// register computes the event id and records the event.
func (r *runner) register(ev *event) {
	body := envelope(ev.detail, "v2.detail.events.conversation."+ev.conv.id+"."+ev.typ, "00000000-0000-4000-8000-000000000000", time.Now())
	if ids, err := extract.Extract(body, r.rule); err == nil {
		ev.eventID = ids.EventID
	}
	r.mu.Lock()
	r.total.Sent++
	r.interval.Sent++
	if r.cfg.KeepEvents {
		ev.rec = &Event{ConversationID: ev.conv.id, Sequence: ev.seq, Type: ev.typ, EventID: ev.eventID}
		r.records = append(r.records, ev.rec)
	}
	r.mu.Unlock()
}

// outcome of one request.
type outcome int

const (
	outAcked outcome = iota
	outRetry
	outFinal // a non-retryable answer
)

// send delivers ev until acknowledged, refused for good or out of bounds.
func (r *runner) send(ctx context.Context, ev *event, rng *rand.Rand, duplicate bool) {
	first := time.Now()
	backoff := r.cfg.BackoffMin
	topic := "v2.detail.events.conversation." + ev.conv.id + "." + ev.typ
	var failure string
	ended := false
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			ended = true
			break
		}
		body := envelope(ev.detail, topic, r.ids.uuid(10, rng.Uint64(), rng.Uint64()), time.Now())
		out, why := r.request(ctx, ev, body, attempt > 1, duplicate)
		if out == outAcked {
			r.acked(ev, duplicate)
			return
		}
		if ctx.Err() != nil {
			ended = true
			break
		}
		failure = why
		if out == outFinal {
			break
		}
		if attempt >= r.cfg.MaxAttempts {
			failure = fmt.Sprintf("gave up after %d attempts: %s", attempt, why)
			break
		}
		// Exponential backoff with equal jitter: [d/2, d).
		d := backoff/2 + time.Duration(rng.Int64N(int64(backoff/2)+1))
		backoff = min(backoff*2, r.cfg.BackoffMax)
		if time.Since(first)+d > r.cfg.MaxRetryTime {
			failure = fmt.Sprintf("gave up after %s: %s", r.cfg.MaxRetryTime, why)
			break
		}
		_ = ctxtime.Sleep(ctx, d) // a cancelled run ends the loop at its next check
	}
	if duplicate {
		return // the event was acknowledged before; a failed duplicate changes nothing
	}
	r.mu.Lock()
	if ended {
		failure = "unfinished when the run ended"
		r.total.Unfinished++
		r.interval.Unfinished++
	} else {
		r.total.GaveUp++
		r.interval.GaveUp++
	}
	if ev.rec != nil {
		ev.rec.Failure = failure
	}
	r.mu.Unlock()
}

func (r *runner) acked(ev *event, duplicate bool) {
	r.mu.Lock()
	first := !ev.acked
	if duplicate {
		r.total.DuplicatesAcked++
		r.interval.DuplicatesAcked++
	}
	if first {
		ev.acked = true
		ev.conv.acked = append(ev.conv.acked, ev)
		r.total.Acknowledged++
		r.interval.Acknowledged++
	}
	var rec Event
	if ev.rec != nil {
		if first {
			ev.rec.Acknowledged = true
			ev.rec.AckedAt = time.Now()
		}
		rec = *ev.rec
	}
	r.mu.Unlock()
	if first && r.cfg.OnAck != nil {
		if ev.rec == nil {
			rec = Event{ConversationID: ev.conv.id, Sequence: ev.seq, Type: ev.typ, EventID: ev.eventID, Acknowledged: true, AckedAt: time.Now()}
		}
		r.cfg.OnAck(rec)
	}
}

// request does one POST and classifies the answer.
func (r *runner) request(ctx context.Context, ev *event, body []byte, retry, duplicate bool) (outcome, string) {
	rctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, r.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return outFinal, err.Error()
	}
	for k, vs := range r.cfg.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", UserAgent)
	if r.cfg.Secret != "" {
		req.Header.Set(r.cfg.SecretHeader, r.cfg.Secret)
	}
	r.inFlight.Add(1)
	start := time.Now()
	resp, err := r.cl.Do(req)
	var rb []byte
	if err == nil {
		rb, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
	elapsed := time.Since(start)
	r.inFlight.Add(-1)

	code := 0
	if err == nil {
		code = resp.StatusCode
	}
	out, why := outRetry, ""
	switch {
	case err != nil && ctx.Err() != nil:
		out, why = outRetry, "run ended"
	case err != nil && (errors.Is(err, context.DeadlineExceeded) || isTimeout(err)):
		why = fmt.Sprintf("timeout after %s", r.cfg.Timeout)
	case err != nil:
		why = "connection error: " + errText(err)
	case code >= 200 && code < 300:
		out = outAcked
	case code == 401, code == 407, code == 409, code == 429, code >= 500:
		why = fmt.Sprintf("status %d", code)
	default:
		out, why = outFinal, fmt.Sprintf("status %d: %s", code, strings.TrimSpace(string(rb)))
	}

	mismatch := false
	if out == outAcked && ev.eventID != "" && len(rb) > 0 {
		var ack struct {
			EventID string `json:"event_id"`
		}
		if json.Unmarshal(rb, &ack) == nil && ack.EventID != "" && ack.EventID != ev.eventID {
			mismatch = true
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.rec != nil {
		ev.rec.Attempts++
		if duplicate {
			ev.rec.Duplicates++
		}
	}
	for _, c := range []*counters{&r.total, &r.interval} {
		if why == "run ended" && err != nil {
			continue // not a request the receiver answered or failed
		}
		c.Requests++
		if retry {
			c.Retries++
		}
		if duplicate && !retry {
			c.DuplicatesSent++
		}
		switch {
		case err != nil && strings.HasPrefix(why, "timeout"):
			c.Timeouts++
		case err != nil:
			c.ConnErrors++
		case code >= 200 && code < 300:
			c.Status2xx++
		case code == 429:
			c.Status429++
		case code == 503:
			c.Status503++
		case code >= 500:
			c.Status5xx++
		default:
			c.Status4xx++
			switch code {
			case 401:
				c.Status401++
			case 404:
				c.Status404++
			case 413:
				c.Status413++
			}
		}
		if mismatch {
			c.IDMismatch++
		}
		c.lat.add(elapsed)
	}
	return out, why
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errText drops the *url.Error wrapper (method and URL) from err.
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// pacer spaces new events evenly at a fixed rate.
type pacer struct {
	mu    sync.Mutex
	next  time.Time
	every time.Duration
}

func (p *pacer) wait(ctx context.Context) error {
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(p.every)
	p.mu.Unlock()
	return ctxtime.Sleep(ctx, time.Until(at))
}

// Summary formats the totals for people, several lines.
func (r *Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "events:    %d sent, %d acknowledged, %d gave up, %d unfinished (seed %d, %s)\n",
		r.Sent, r.Acknowledged, r.GaveUp, r.Unfinished, r.Seed, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "requests:  %d (%.0f/s), %d retries, %d duplicates sent (%d acknowledged)\n",
		r.Requests, r.RequestRate, r.Retries, r.DuplicatesSent, r.DuplicatesAcked)
	var of4xx []string
	for _, c := range []struct {
		code string
		n    int64
	}{{"401", r.Status401}, {"404", r.Status404}, {"413", r.Status413}} {
		if c.n > 0 {
			of4xx = append(of4xx, fmt.Sprintf("%s: %d", c.code, c.n))
		}
	}
	fourxx := fmt.Sprint(r.Status4xx)
	if len(of4xx) > 0 {
		fourxx += " (" + strings.Join(of4xx, ", ") + ")"
	}
	fmt.Fprintf(&b, "answers:   2xx %d, 429 %d, 503 %d, other 5xx %d, 4xx %s, timeouts %d, connection errors %d\n",
		r.Status2xx, r.Status429, r.Status503, r.Status5xx, fourxx, r.Timeouts, r.ConnErrors)
	fmt.Fprintf(&b, "latency:   p50 %s, p99 %s, max %s\n", roundLat(r.Latency.P50), roundLat(r.Latency.P99), roundLat(r.Latency.Max))
	if r.IDMismatch > 0 {
		fmt.Fprintf(&b, "WARNING:   %d acknowledgements named an event id that differs from the content hash\n", r.IDMismatch)
	}
	for _, h := range r.Hints() {
		fmt.Fprintf(&b, "hint:      %s\n", h)
	}
	if r.Interrupted {
		fmt.Fprintf(&b, "INTERRUPTED after %s: these numbers cover only the part that ran; %d events were still being sent\n",
			r.Elapsed.Round(time.Millisecond), r.Unfinished)
	}
	return b.String()
}

// Hints say what to check when most answers were one telling status (more
// than half of the requests): a run that got only 401s or 404s usually
// points at the wrong secret or URL, not at the receiver's capacity.
func (s Stats) Hints() []string {
	if s.Requests == 0 {
		return nil
	}
	most := func(n int64) bool { return n*2 > s.Requests }
	var hints []string
	switch {
	case most(s.Status401):
		hints = append(hints, fmt.Sprintf("%d of %d answers were 401 (unauthenticated): %s", s.Status401, s.Requests, StatusAdvice(401)))
	case most(s.Status404):
		hints = append(hints, fmt.Sprintf("%d of %d answers were 404: %s", s.Status404, s.Requests, StatusAdvice(404)))
	case most(s.Status413):
		hints = append(hints, fmt.Sprintf("%d of %d answers were 413 (body too large): %s", s.Status413, s.Requests, StatusAdvice(413)))
	case most(s.Status429):
		hints = append(hints, fmt.Sprintf("%d of %d answers were 429 (receiver at its in-flight bound): lower --concurrency or --rate, or raise the receiver's --max-in-flight", s.Status429, s.Requests))
	case most(s.Status503):
		hints = append(hints, fmt.Sprintf("%d of %d answers were 503 (Kafka did not acknowledge within the receiver's --ack-timeout, or the receiver is shutting down): %s, or lower --rate", s.Status503, s.Requests, StatusAdvice(503)))
	case most(s.Timeouts):
		hints = append(hints, fmt.Sprintf("%d of %d requests timed out: check that the receiver at --url is up and not overloaded, or raise --timeout", s.Timeouts, s.Requests))
	case most(s.ConnErrors):
		hints = append(hints, fmt.Sprintf("%d of %d requests could not connect: check --url (host and port) and that the receiver runs", s.ConnErrors, s.Requests))
	}
	return hints
}

// StatusAdvice says what to check after the receiver answered code to a
// client (hookline send, loadtest); "" when the status tells nothing.
func StatusAdvice(code int) string {
	switch code {
	case 401:
		return "check the credentials against the source's verify settings on the receiver: a shared-secret verifier takes --secret and --secret-header; a bearer or basic one -H 'Authorization: …'; an hmac-sha256 one (hookline send only) --hmac-secret, with --hmac-header, --hmac-encoding and --hmac-prefix as the verifier expects them"
	case 404:
		return "check --url; the receiver serves POST /webhooks/<source> for the sources it is configured with (default source: genesys)"
	case 413:
		return "the answer names the receiver's limit: raise its --max-body; the limit is also capped by the topics' max.message.bytes (the receiver's start-up log says so when it is), see docs/operations.md#topics"
	case 429:
		return "the receiver is at its in-flight bound (--max-in-flight): send again after Retry-After"
	case 503:
		return "check the receiver's log and /readyz and the brokers"
	}
	return ""
}

// Line formats a snapshot as one progress line.
func (s Snapshot) Line() string {
	i := s.Interval
	return fmt.Sprintf("t=%-6s sent=%d acked=%d req/s=%.0f retries=%d dup=%d 503=%d 429=%d timeouts=%d conn_err=%d gave_up=%d p50=%s p99=%s in_flight=%d total_acked=%d",
		s.Elapsed.Round(time.Second), i.Sent, i.Acknowledged, i.RequestRate, i.Retries, i.DuplicatesSent,
		i.Status503, i.Status429, i.Timeouts, i.ConnErrors, i.GaveUp, roundLat(i.Latency.P50), roundLat(i.Latency.P99),
		s.Total.InFlight, s.Total.Acknowledged)
}

func roundLat(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
