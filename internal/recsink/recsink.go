// Package recsink is a recording HTTP sink: a stand-in for the team's slow
// handler that hookline's consumer forwards events to. It answers after a
// configurable latency, fails a configurable share of attempts transiently
// (5xx) and of events permanently (4xx), and records every request it gets.
//
// Fates are deterministic per event id for a given seed: whether attempt k
// of event E fails is a function of (seed, E, k), so two copies of one event
// at the same attempt meet the same fate, a run can be reproduced, and a
// test can predict ([Sink.Outcome]) or script ([Config.Script]) what happens
// to a given event, for example "fails transiently on attempts 1–2 only".
//
// The attempt of a request is X-Hookline-Attempt + 1 (hookline sends the
// number of failed attempts so far); without that header it is the sink's
// own count of requests for the event id.
//
// The conversation id and the sequence number are read from the body
// (detail.eventBody, eventBody or the top level: "conversationId" and
// "sequence", as the load-test simulator writes them), the conversation id
// else from X-Hookline-Conversation-Id. The event id of a request is its
// Idempotency-Key, else X-Hookline-Event-Id, else "<conversation id>/<sequence>"
// when the body has both (so a re-wrapped redelivery posted straight to the
// sink is still the same event), else the SHA-256 of the body.
//
// Routes: GET /stats (JSON counts), GET /healthz; any other request is a
// delivery.
package recsink

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hookline/hookline/consumer"
	"github.com/hookline/hookline/internal/ctxtime"
)

// Defaults of Config.
const (
	DefaultTransientStatus = http.StatusServiceUnavailable  // 503: hookline retries it
	DefaultPermanentStatus = http.StatusUnprocessableEntity // 422: hookline dead-letters it
	maxBody                = 10 << 20
)

// Outcome is the sink's answer to one attempt.
type Outcome string

// Outcomes. Canceled means the client went away before the answer.
const (
	OK        Outcome = "ok"
	Transient Outcome = "transient"
	Permanent Outcome = "permanent"
	Canceled  Outcome = "canceled"
)

// Fate scripts what happens to one event id.
type Fate struct {
	// TransientAttempts lists the 1-based attempts answered with the
	// transient status; the others succeed.
	TransientAttempts []int `json:"transient_attempts,omitempty"`
	// Permanent answers every attempt with the permanent status.
	Permanent bool `json:"permanent,omitempty"`
}

// Config configures a Sink. The zero value answers 200 at once.
type Config struct {
	// LatencyMin and LatencyMax: each request is answered after a uniform
	// random latency in [LatencyMin, LatencyMax] (LatencyMax < LatencyMin
	// means exactly LatencyMin). A client that goes away first is recorded
	// as canceled.
	LatencyMin, LatencyMax time.Duration
	// TransientRate is the probability (0–1) that an attempt is answered
	// with TransientStatus.
	TransientRate float64
	// PermanentRate is the probability (0–1) that an event is answered with
	// PermanentStatus on every attempt.
	PermanentRate float64
	// TransientStatus (default 503) must be one hookline's HTTP sink
	// retries (408, 425, 429, 5xx) and PermanentStatus (default 422) a 4xx
	// it dead-letters; New refuses others.
	TransientStatus, PermanentStatus int
	// Seed makes fates reproducible; 0 picks one at random (Sink.Seed).
	Seed int64
	// Script fixes the fate of the listed event ids (rates do not apply).
	Script map[string]Fate
	// KeepRequests makes Requests return every request; without it only
	// counts are kept (memory per distinct event id stays).
	KeepRequests bool
	// OnRequest, when set, is called with every finished request.
	OnRequest func(Request)
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Request is one delivery the sink received.
type Request struct {
	N       int64     `json:"n"`        // arrival order, from 1
	At      time.Time `json:"at"`       // arrival
	Done    time.Time `json:"done"`     // answer written (or client gone)
	Path    string    `json:"path"`     // request path
	EventID string    `json:"event_id"` // Idempotency-Key, X-Hookline-Event-Id, conversation/sequence or body hash
	// IdempotencyKey is the header as sent ("" when absent).
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// HookAttempt is X-Hookline-Attempt as sent, -1 when absent.
	HookAttempt int `json:"hookline_attempt"`
	// Attempt is the 1-based attempt the fate was decided for.
	Attempt        int     `json:"attempt"`
	ConversationID string  `json:"conversation_id,omitempty"`
	Sequence       int64   `json:"sequence"` // -1 when the body has none
	Status         int     `json:"status"`   // 0 when canceled
	Outcome        Outcome `json:"outcome"`
}

// Stats are the sink's counts (GET /stats).
type Stats struct {
	Requests    int64            `json:"requests"`
	InFlight    int64            `json:"in_flight"`
	MaxInFlight int64            `json:"max_in_flight"`
	OK          int64            `json:"ok"`
	Transient   int64            `json:"transient"`
	Permanent   int64            `json:"permanent"`
	Canceled    int64            `json:"canceled"`
	ByStatus    map[string]int64 `json:"by_status"`
	// Events counts distinct event ids, EventsOK those answered 2xx at
	// least once, Duplicates the 2xx answers beyond the first per event id
	// (the handler did the work twice).
	Events     int64 `json:"events"`
	EventsOK   int64 `json:"events_ok"`
	Duplicates int64 `json:"duplicates"`
	// Conversations counts distinct conversation ids; Overlaps counts
	// main-path requests (X-Hookline-Attempt 0 or absent) that arrived while
	// another main-path request of the same conversation was in flight
	// (hookline runs one event of a conversation at a time on the main
	// topic; retry tiers run beside it).
	Conversations int64 `json:"conversations"`
	Overlaps      int64 `json:"overlaps"`
	// OrderViolations counts first successes of an event whose sequence is
	// lower than that of an event of the same conversation that already
	// succeeded, over conversations none of whose requests failed or was a
	// retry (hookline only promises order on the main path).
	OrderViolations int64 `json:"order_violations"`
	// OrderedConversations is how many conversations that check covered.
	OrderedConversations int64     `json:"ordered_conversations"`
	Seed                 int64     `json:"seed"`
	First                time.Time `json:"first,omitzero"`
	Last                 time.Time `json:"last,omitzero"`
}

// Sink is the recording handler. Serve it with net/http (it is an
// http.Handler).
type Sink struct {
	cfg  Config
	seed uint64

	mu       sync.Mutex
	n        int64
	st       Stats
	perID    map[string]*idState
	perConv  map[string]*convState
	requests []Request
}

type idState struct {
	requests int32
	oks      int32
}

type convState struct {
	active     int32 // main-path requests in flight
	maxOKSeq   int64
	violations int32
	failed     bool // a request failed or was a retry: order is not promised
}

// New returns a Sink.
func New(cfg Config) (*Sink, error) {
	for _, p := range []float64{cfg.TransientRate, cfg.PermanentRate} {
		if p < 0 || p > 1 || math.IsNaN(p) {
			return nil, fmt.Errorf("rate %v: want a probability between 0 and 1", p)
		}
	}
	if cfg.LatencyMin < 0 || cfg.LatencyMax < 0 {
		return nil, errors.New("latency must not be negative")
	}
	if cfg.TransientStatus == 0 {
		cfg.TransientStatus = DefaultTransientStatus
	}
	if cfg.PermanentStatus == 0 {
		cfg.PermanentStatus = DefaultPermanentStatus
	}
	// The sink stands in for a team's service in front of hookline's HTTP
	// sink: a "transient" status hookline would dead-letter (or a
	// "permanent" one it would retry) makes every count after it wrong.
	if t := cfg.TransientStatus; t < 400 || t > 599 || !consumer.RetryableStatus(t) {
		return nil, fmt.Errorf("transient status %d: hookline does not retry it; want 408, 425, 429 or a 5xx", t)
	}
	if p := cfg.PermanentStatus; p < 400 || p > 499 || consumer.RetryableStatus(p) {
		return nil, fmt.Errorf("permanent status %d: hookline retries it or it is no failure; want a 4xx other than 408, 425 and 429", p)
	}
	if cfg.Seed == 0 {
		cfg.Seed = int64(rand.Uint64() >> 1)
		if cfg.Seed == 0 {
			cfg.Seed = 1
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Sink{cfg: cfg, seed: uint64(cfg.Seed), perID: map[string]*idState{}, perConv: map[string]*convState{}}
	s.st.ByStatus = map[string]int64{}
	s.st.Seed = cfg.Seed
	return s, nil
}

// Seed returns the seed in use.
func (s *Sink) Seed() int64 { return s.cfg.Seed }

// Outcome is the fate of the given 1-based attempt of an event: the script
// when it lists the id, else the rates under the seed.
func (s *Sink) Outcome(eventID string, attempt int) Outcome {
	if f, ok := s.cfg.Script[eventID]; ok {
		switch {
		case f.Permanent:
			return Permanent
		case slices.Contains(f.TransientAttempts, attempt):
			return Transient
		}
		return OK
	}
	h := hashID(eventID)
	if s.cfg.PermanentRate > 0 && unit(s.seed, h, 0) < s.cfg.PermanentRate {
		return Permanent
	}
	if s.cfg.TransientRate > 0 && unit(s.seed, h, uint64(attempt)) < s.cfg.TransientRate {
		return Transient
	}
	return OK
}

// TransientFailures is how many attempts in a row, from the first, fail
// transiently for eventID (at most limit), and whether the event fails
// permanently: what a test needs to predict an event's path.
func (s *Sink) TransientFailures(eventID string, limit int) (n int, permanent bool) {
	for a := 1; a <= limit; a++ {
		switch s.Outcome(eventID, a) {
		case Permanent:
			return n, true
		case Transient:
			n++
		default:
			return n, false
		}
	}
	return n, false
}

func hashID(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

// unit maps (seed, id hash, salt) to a uniform float in [0, 1).
func unit(seed, h, salt uint64) float64 {
	x := splitmix(seed ^ splitmix(h^splitmix(salt+0x51)))
	return float64(x>>11) / (1 << 53)
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// ServeHTTP serves GET /stats, GET /healthz and records any other request
// as a delivery.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		switch r.URL.Path {
		case "/stats":
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(s.Stats())
			return
		case "/healthz":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
			return
		}
	}
	s.deliver(w, r)
}

func (s *Sink) deliver(w http.ResponseWriter, r *http.Request) {
	at := s.cfg.Now()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		http.Error(w, "could not read the body", http.StatusBadRequest)
		return
	}
	req := Request{At: at, Path: r.URL.Path, HookAttempt: -1, Sequence: -1}
	req.IdempotencyKey = r.Header.Get("Idempotency-Key")
	req.EventID = req.IdempotencyKey
	if req.EventID == "" {
		req.EventID = r.Header.Get("X-Hookline-Event-Id")
	}
	if v := r.Header.Get("X-Hookline-Attempt"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			req.HookAttempt = n
		}
	}
	req.ConversationID, req.Sequence = parseBody(body)
	if req.EventID == "" && req.ConversationID != "" && req.Sequence >= 0 {
		req.EventID = req.ConversationID + "/" + strconv.FormatInt(req.Sequence, 10)
	}
	if req.EventID == "" {
		sum := sha256.Sum256(body)
		req.EventID = hex.EncodeToString(sum[:])
	}
	if req.ConversationID == "" {
		req.ConversationID = r.Header.Get("X-Hookline-Conversation-Id")
	}

	s.mu.Lock()
	s.n++
	req.N = s.n
	ids := s.perID[req.EventID]
	if ids == nil {
		ids = &idState{}
		s.perID[req.EventID] = ids
		s.st.Events++
	}
	ids.requests++
	if req.HookAttempt >= 0 {
		req.Attempt = req.HookAttempt + 1
	} else {
		req.Attempt = int(ids.requests)
	}
	var cs *convState
	if req.ConversationID != "" {
		cs = s.perConv[req.ConversationID]
		if cs == nil {
			cs = &convState{maxOKSeq: -1}
			s.perConv[req.ConversationID] = cs
			s.st.Conversations++
		}
		if req.HookAttempt <= 0 {
			if cs.active > 0 {
				s.st.Overlaps++
			}
			cs.active++
		}
		if req.Attempt > 1 {
			cs.failed = true
		}
	}
	s.st.Requests++
	s.st.InFlight++
	s.st.MaxInFlight = max(s.st.MaxInFlight, s.st.InFlight)
	if s.st.First.IsZero() {
		s.st.First = at
	}
	s.mu.Unlock()

	out := s.Outcome(req.EventID, req.Attempt)
	if ctxtime.Sleep(r.Context(), s.latency()) != nil {
		out = Canceled
	}
	switch out {
	case OK:
		req.Status = http.StatusOK
	case Transient:
		req.Status = s.cfg.TransientStatus
	case Permanent:
		req.Status = s.cfg.PermanentStatus
	}
	req.Outcome = out

	// Book the answer before writing it: once the client has it, the next
	// event of the conversation may arrive.
	s.mu.Lock()
	req.Done = s.cfg.Now()
	s.st.InFlight--
	s.st.Last = req.Done
	if cs != nil && req.HookAttempt <= 0 {
		cs.active--
	}
	switch out {
	case OK:
		s.st.OK++
		ids.oks++
		if ids.oks == 1 {
			s.st.EventsOK++
			if cs != nil && req.Sequence >= 0 {
				if req.Sequence < cs.maxOKSeq {
					cs.violations++
				}
				cs.maxOKSeq = max(cs.maxOKSeq, req.Sequence)
			}
		} else {
			s.st.Duplicates++
		}
	case Transient:
		s.st.Transient++
	case Permanent:
		s.st.Permanent++
	case Canceled:
		s.st.Canceled++
	}
	if (out == Transient || out == Permanent) && cs != nil {
		cs.failed = true
	}
	if req.Status != 0 {
		s.st.ByStatus[strconv.Itoa(req.Status)]++
	}
	if s.cfg.KeepRequests {
		s.requests = append(s.requests, req)
	}
	s.mu.Unlock()
	if s.cfg.OnRequest != nil {
		s.cfg.OnRequest(req)
	}
	if out == Canceled {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(req.Status)
	_, _ = fmt.Fprintf(w, `{"outcome":%q,"recorded_as":%q,"attempt":%d}`+"\n", out, req.EventID, req.Attempt)
}

func (s *Sink) latency() time.Duration {
	lo, hi := s.cfg.LatencyMin, s.cfg.LatencyMax
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rand.Int64N(int64(hi-lo)+1))
}

// Stats returns the counts so far.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.ByStatus = make(map[string]int64, len(s.st.ByStatus))
	for k, v := range s.st.ByStatus {
		st.ByStatus[k] = v
	}
	for _, cs := range s.perConv {
		if cs.failed {
			continue
		}
		st.OrderedConversations++
		st.OrderViolations += int64(cs.violations)
	}
	return st
}

// Requests returns a copy of every request recorded so far, in the order
// their answers were booked (with KeepRequests; nil without).
func (s *Sink) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// parseBody finds the conversation id and the sequence number.
func parseBody(body []byte) (conv string, seq int64) {
	type fields struct {
		ConversationID string          `json:"conversationId"`
		Sequence       json.RawMessage `json:"sequence"`
	}
	var b struct {
		fields
		EventBody *fields `json:"eventBody"`
		Detail    *struct {
			EventBody *fields `json:"eventBody"`
		} `json:"detail"`
	}
	seq = -1
	if json.Unmarshal(body, &b) != nil {
		return "", -1
	}
	var f *fields
	switch {
	case b.Detail != nil && b.Detail.EventBody != nil:
		f = b.Detail.EventBody
	case b.EventBody != nil:
		f = b.EventBody
	default:
		f = &b.fields
	}
	conv = f.ConversationID
	if len(f.Sequence) > 0 {
		if n, err := strconv.ParseInt(string(f.Sequence), 10, 64); err == nil && n >= 0 {
			seq = n
		}
	}
	return conv, seq
}
