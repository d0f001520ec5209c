// Package producer is hookline's webhook receiver: it verifies the sender,
// finds the event and conversation ids, produces the raw body to Kafka keyed
// by conversation id through an idempotent producer with acks=all, and answers
// 200 only after the broker acknowledged the record.
//
// Routes: POST /webhooks/:source, GET /healthz, GET /readyz, GET /metrics.
package producer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/ctxtime"
	"github.com/hookline/hookline/internal/ratelog"
	"github.com/hookline/hookline/topics"
)

// UnknownSource is the source label of requests to no configured source
// (other paths, other methods); no source may take the name.
const UnknownSource = "unknown"

// Defaults of Config.
const (
	DefaultListen       = ":8080"
	DefaultMaxBodyBytes = 1 << 20
	DefaultAckTimeout   = 1500 * time.Millisecond
	DefaultMaxInFlight  = 1024
	// DefaultRetryAfter is what 429 and 503 answers tell the sender to wait.
	DefaultRetryAfter = 2 * time.Second
	// DefaultDrainDelay is how long a stopping receiver keeps answering 503
	// before it closes its listener; see Config.DrainDelay.
	DefaultDrainDelay = 2 * time.Second
)

// Timeouts of the server Serve runs; see Config.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
)

// Source is one sender, served at POST /webhooks/<Name>.
type Source struct {
	// Name is the :source segment of the webhook URL; required, unique.
	Name string
	// Topics is the pipeline its events go to (Plan.Names of
	// topics.NewPlan); its main topic and DLQ must exist (topics.Create).
	Topics topics.Names
	// Rules says how to find the ids in its bodies; Rules.Kind is required
	// (KindGenesys or KindGeneric).
	Rules Rules
	// Verifier authenticates its requests. Required: build one with
	// NewVerifier, or NewVerifier(VerifierConfig{Type: VerifierNone}) to
	// accept every request.
	Verifier Verifier
}

// Config configures a Receiver. Zero values mean the documented defaults.
//
// Serve bounds every request: its headers must arrive within 5 s and its
// headers and body within 10 s, so a sender that trickles its body cannot
// hold an in-flight slot; a body that does not arrive in time gets 408 (a
// client-side failure: neither a produce error nor an ERROR log). The ack
// budget starts only after that, so a slow upload is never blamed on Kafka.
type Config struct {
	// Kafka holds the broker connection; Kafka.Brokers is required.
	Kafka KafkaConfig
	// Sources are the senders served at POST /webhooks/<Source.Name>; at
	// least one is required.
	Sources []Source
	// Listen is the address Run listens on; default DefaultListen (":8080").
	// Serve and Handler do not use it.
	Listen string

	MaxBodyBytes int64 // default DefaultMaxBodyBytes (1 MiB); larger bodies get 413
	// AckTimeout is the budget for the broker's acknowledgement, measured
	// from the start of the produce (after the body was read, verified and
	// its ids found); no ack within it → 503. Default DefaultAckTimeout (1.5 s).
	AckTimeout  time.Duration
	MaxInFlight int           // default DefaultMaxInFlight; more concurrent webhooks get 429
	RetryAfter  time.Duration // default DefaultRetryAfter

	// DrainDelay is how long Serve keeps its listener open once shutdown
	// began, answering /readyz and new webhooks 503 (with Retry-After) so
	// that load balancers and senders see the instance leave instead of
	// connection refused; raise it to the load balancer's health-check
	// interval. In-flight webhooks are answered normally meanwhile, and
	// after the delay Serve still waits for the ones left. Default
	// DefaultDrainDelay (2 s) when zero; a negative value means no delay:
	// the listener closes as soon as in-flight webhooks were answered.
	DrainDelay time.Duration

	// Ready, when set, is asked by /readyz besides the receiver's own checks
	// (for example, the consumer of the same process restoring state).
	Ready func() (ok bool, reason string)

	Logger   *slog.Logger         // default slog.Default()
	Registry *prometheus.Registry // metrics are registered here and served on /metrics; default: a new registry

	// ExtraProducerOpts are appended to the producer client's options.
	// By default a produce batch holds at most 1,048,588 bytes, Kafka's
	// default max.message.bytes (and less when MaxBodyBytes + 16 KiB is
	// less), so a body up to ~1 MiB minus its headers goes through on any
	// topic with the default limit. Pass topics.Report.ProducerBatchMaxBytes
	// to follow each topic's max.message.bytes instead (hookline's commands
	// do): needed for larger bodies, on topics that allow them.
	ExtraProducerOpts []kgo.Opt
}

// defaultBatchMaxBytes is the default producer batch limit (see
// Config.ExtraProducerOpts): MaxBodyBytes plus room for a record's
// headers, key and batch framing (a receiver's record carries a few short
// headers; an error text only on the DLQ path, cut to 1 KiB), at most
// Kafka's default max.message.bytes. More would let franz-go pack small
// records into batches a default topic refuses whole (MESSAGE_TOO_LARGE,
// a 413 for every webhook in them); franz-go's own default, 1,000,012,
// refused bodies near 1 MiB.
func defaultBatchMaxBytes(maxBody int64) int32 {
	const headerRoom, kafkaDefault = 16 << 10, 1_048_588
	if maxBody >= kafkaDefault-headerRoom {
		return kafkaDefault
	}
	return int32(maxBody + headerRoom)
}

// Receiver is the HTTP webhook receiver. Create it with New, then either
// serve it with Run or Serve and stop it by cancelling their context, or
// mount Handler in your own server and stop it with Shutdown.
type Receiver struct {
	cfg     Config
	log     *slog.Logger
	errs    *ratelog.Limiter
	client  *kgo.Client
	adm     *kadm.Client
	sources map[string]*Source
	metrics *metrics
	// srcMetrics holds each source's metric children, looked up once.
	srcMetrics map[string]*sourceMetrics
	router     *httprouter.Router
	sem        chan struct{}
	bufs       sync.Pool // *bytes.Buffer for request bodies

	// gate admits webhooks until shutdown and counts the admitted ones.
	gate  *gate
	ready atomic.Pointer[readiness]
	// produceDown is when a produce last failed for the broker's sake
	// (unix ns; 0 when the last one succeeded). /readyz turns 503 at once
	// instead of at the next broker check; see noteProduce.
	produceDown atomic.Int64
	now         func() time.Time

	// The broker check behind /readyz runs from the first Handler or Serve
	// call until Shutdown or the end of Serve.
	checkOnce   sync.Once
	checkCtx    context.Context
	checkCancel context.CancelFunc
	checker     sync.WaitGroup
	closeOnce   sync.Once
	shutOnce    sync.Once
	shutErr     error
}

type readiness struct {
	ok     bool
	reason string
}

// New validates cfg and creates the producer client. It does not contact the
// broker: /readyz says when the broker is reachable.
func New(cfg Config) (*Receiver, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	switch {
	case cfg.DrainDelay == 0:
		cfg.DrainDelay = DefaultDrainDelay
	case cfg.DrainDelay < 0:
		cfg.DrainDelay = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if len(cfg.Sources) == 0 {
		return nil, errors.New("receiver: no sources configured")
	}
	r := &Receiver{
		cfg:     cfg,
		log:     cfg.Logger,
		errs:    ratelog.New(cfg.Logger, 10*time.Second),
		sources: map[string]*Source{},
		sem:     make(chan struct{}, cfg.MaxInFlight),
		gate:    newGate(),
		now:     time.Now,
	}
	r.bufs.New = func() any { return new(bytes.Buffer) }
	r.checkCtx, r.checkCancel = context.WithCancel(context.Background())
	for i := range cfg.Sources {
		s := &cfg.Sources[i]
		if s.Name == "" {
			return nil, errors.New("receiver: a source has no name")
		}
		if s.Name == UnknownSource {
			return nil, fmt.Errorf("receiver: source name %q is reserved: requests to paths of no source are counted under it (hookline_receiver_requests_total{source=%q}); choose another name", s.Name, s.Name)
		}
		if s.Verifier == nil {
			return nil, fmt.Errorf("receiver: source %q has no verifier: configure one, or type none explicitly", s.Name)
		}
		if s.Topics.Base == "" || s.Topics.DLQ == "" {
			// Else every webhook would get 503 "retry", blaming Kafka.
			return nil, fmt.Errorf("receiver: source %q has no Topics: set it to the Names of its pipeline's plan (topics.NewPlan(...).Names)", s.Name)
		}
		if err := s.Rules.Validate(); err != nil {
			return nil, fmt.Errorf("receiver: source %q: %w", s.Name, err)
		}
		if _, dup := r.sources[s.Name]; dup {
			return nil, fmt.Errorf("receiver: source %q configured twice", s.Name)
		}
		r.sources[s.Name] = s
	}
	m, err := newMetrics(cfg.Registry, func() bool {
		if r.ready.Load() == nil { // registered before New stores the first readiness
			return false
		}
		ok, _ := r.Ready()
		return ok
	})
	if err != nil {
		return nil, err
	}
	r.metrics = m
	r.srcMetrics = map[string]*sourceMetrics{}
	for name := range r.sources {
		// Series exist at zero from the start, so rate() and alerts work
		// before the first error; the hot path uses the children directly.
		r.srcMetrics[name] = m.forSource(name)
	}

	opts, err := cfg.Kafka.Opts()
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		// Idempotence is on by default in franz-go and requires acks=all;
		// both are spelled out because the 200 depends on them.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Records wait for the next batch at most this long: webhooks
		// arrive one by one and each waits for its ack.
		kgo.ProducerLinger(0),
		// The ack budget bounds each request; the client must not keep
		// retrying a record forever after its sender got a 503. franz-go
		// checks this only around produce requests: while the broker is
		// unreachable, records stay buffered and may still be written
		// after it is back (a probe saw 90 s), as the 503 allows.
		kgo.RecordDeliveryTimeout(max(cfg.AckTimeout*4, 10*time.Second)),
		kgo.MaxBufferedRecords(cfg.MaxInFlight*2),
		// So that memory stays bounded during an outage too: 2 x
		// MaxInFlight buffered 1 MiB bodies would be 2 GiB. A full buffer
		// makes new webhooks wait (their ack budget, then 503), not grow.
		kgo.MaxBufferedBytes(maxBufferedBytes(cfg.MaxBodyBytes)),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		// hookline's commands replace it with each topic's
		// max.message.bytes (ExtraProducerOpts).
		kgo.ProducerBatchMaxBytes(defaultBatchMaxBytes(cfg.MaxBodyBytes)),
	)
	opts = append(opts, cfg.ExtraProducerOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("receiver: kafka producer: %w", err)
	}
	r.client = cl
	r.adm = kadm.NewClient(cl)
	r.ready.Store(&readiness{false, "not checked the broker yet"})

	rt := httprouter.New()
	// No redirects: a sender posting to /webhooks/x/ would get an empty 307
	// that many senders do not follow, and a client that follows it (curl
	// -L, hookline send) would hide the wrong URL. A 404 says what is wrong.
	rt.RedirectTrailingSlash, rt.RedirectFixedPath = false, false
	rt.POST("/webhooks/:source", r.webhook)
	metricsHandler := promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})
	for _, m := range []string{http.MethodGet, http.MethodHead} { // HEAD: some load balancers' health checks, and probes
		rt.Handle(m, "/healthz", r.healthz)
		rt.Handle(m, "/readyz", r.readyz)
		rt.Handler(m, "/metrics", metricsHandler)
	}
	rt.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.metrics.requests.WithLabelValues(UnknownSource, "404").Inc()
		msg := "no such route: webhooks go to POST /webhooks/<source>"
		if p := path.Clean("/" + req.URL.Path); p != req.URL.Path {
			if h, _, _ := rt.Lookup(req.Method, p); h != nil {
				msg += "; did you mean " + p + "?"
			}
		}
		closeBodyOnWire(w, req)
		writeError(w, http.StatusNotFound, msg)
	})
	// httprouter has set the Allow header.
	rt.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.metrics.requests.WithLabelValues(UnknownSource, "405").Inc()
		closeBodyOnWire(w, req)
		writeError(w, http.StatusMethodNotAllowed, "method "+req.Method+" not allowed here; allowed: "+w.Header().Get("Allow"))
	})
	r.router = rt
	return r, nil
}

// maxBufferedBytes bounds the bytes the producer buffers: 256 MiB, or room
// for four of the largest records when bodies may be larger (franz-go
// fails a record larger than the bound at once).
func maxBufferedBytes(maxBody int64) int {
	return int(max(256<<20, 4*(maxBody+topics.HeaderRoom)))
}

// Handler returns the receiver's routes (POST /webhooks/:source, /healthz,
// /readyz, /metrics), for mounting in another server instead of Run or
// Serve. It starts the background broker check that /readyz answers from.
// When the server stops, call Shutdown before the server's own Shutdown: it
// turns /readyz and new webhooks 503, waits for the in-flight ones, and
// flushes and closes the producer.
//
// Give the server a ReadHeaderTimeout and a ReadTimeout (Serve uses 5 s and
// 10 s), or a sender trickling its body holds an in-flight slot.
func (r *Receiver) Handler() http.Handler {
	r.startCheck()
	return http.HandlerFunc(r.serveHTTP)
}

// startCheck starts the broker check once; stopCheck ends it.
func (r *Receiver) startCheck() {
	r.checkOnce.Do(func() { r.checker.Go(func() { r.checkLoop(r.checkCtx) }) })
}

func (r *Receiver) stopCheck() {
	r.checkCancel()
	// Orders a concurrent startCheck's Add before this Wait, and makes a
	// later startCheck (Handler after Shutdown) start nothing.
	r.checkOnce.Do(func() {})
	r.checker.Wait()
}

// Shutdown stops a receiver served by another server through Handler:
// /readyz and new webhooks get 503 with Retry-After at once (answers say
// Connection: close, so keep-alive senders reconnect elsewhere), and it waits
// Config.DrainDelay (so load balancers see the instance leave) and then
// until every in-flight webhook was answered or ctx ends. Then it flushes
// and closes the producer; a webhook still running at that point gets 503,
// never a 200 without an acknowledgement. The flush may take up to
// Config.AckTimeout + 2s more, also when ctx has ended. Call the server's
// Shutdown after it. Calling it again returns the first call's result.
// Serve and Run shut down by themselves when their context ends.
func (r *Receiver) Shutdown(ctx context.Context) error {
	r.shutOnce.Do(func() { r.shutErr = r.shutdownMounted(ctx) })
	return r.shutErr
}

func (r *Receiver) shutdownMounted(ctx context.Context) error {
	r.gate.close()
	var err error
	if d := r.cfg.DrainDelay; d > 0 {
		r.log.Info("draining: answering 503 before shutting down", "delay", d)
		err = ctxtime.Sleep(ctx, d)
	}
	if err == nil {
		err = r.gate.wait(ctx)
	}
	if err != nil {
		err = fmt.Errorf("receiver: shutdown: webhooks still in flight (they get 503): %w", err)
	}
	r.stopCheck()
	r.closeClient(ctx)
	return err
}

// closeClient flushes and closes the producer client once.
func (r *Receiver) closeClient(ctx context.Context) {
	r.closeOnce.Do(func() {
		// Records whose webhook got 503 may still be buffered; writing them
		// is harmless (the sender retries, dedup absorbs).
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.AckTimeout+2*time.Second)
		defer cancel()
		if err := r.client.Flush(flushCtx); err != nil {
			r.log.Warn("receiver: flush on shutdown did not finish", "err", err)
		}
		r.client.Close()
		r.errs.Flush() // a burst of errors in the last seconds is still summarised
	})
}

// Client is the producer client (for tests and the CLI's readiness output).
func (r *Receiver) Client() *kgo.Client { return r.client }

// Run listens on cfg.Listen and serves until ctx is cancelled; see Serve.
func (r *Receiver) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", r.cfg.Listen)
	if err != nil {
		r.client.Close()
		return fmt.Errorf("receiver: listen on %s (choose another address in Config.Listen, --listen in the CLI): %w", r.cfg.Listen, err)
	}
	return r.Serve(ctx, ln)
}

// Serve serves on ln until ctx is cancelled, then shuts down gracefully:
// /readyz turns 503 and new webhooks get 503 with Retry-After at once, while
// the listener stays open for Config.DrainDelay (so load balancers see the
// instance leave) and then until every in-flight webhook was answered (or
// the grace of the ack budget plus 2 s ran out), so senders get an answer
// they retry rather than connection refused. Then the server closes, the
// producer is flushed and closed.
func (r *Receiver) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           http.HandlerFunc(r.serveHTTP),
		ReadHeaderTimeout: readHeaderTimeout,
		// A sender that trickles its body must not hold a slot forever:
		// the body read fails and the webhook gets 408.
		ReadTimeout: readTimeout,
		// The write deadline starts after the headers: it covers the rest
		// of the body and the ack budget.
		WriteTimeout: r.cfg.AckTimeout + readTimeout,
		IdleTimeout:  90 * time.Second,
	}
	r.startCheck()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var err error
	drain := r.cfg.DrainDelay
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("receiver: serve: %w", err)
		drain = 0 // the listener failed: nobody can be told anything
	}
	// In-flight webhooks finish within their ack budget; give a little more,
	// counted from the end of the drain delay.
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain+r.cfg.AckTimeout+2*time.Second)
	defer cancel()
	if e := r.shutdown(shutCtx, srv, drain); e != nil && err == nil {
		err = e
	}
	// Past the grace a webhook may still run (its body read and ack budget
	// bound it); it must not produce on a closed client.
	_ = r.gate.wait(context.Background())
	r.stopCheck()
	// A fresh deadline for the flush: the wait above may have used up
	// shutCtx.
	r.closeClient(ctx)
	return err
}

// serveHTTP serves the routes; once shutdown began, every answer closes
// its connection after it is written.
func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if r.gate.isClosed() {
		w.Header().Set("Connection", "close")
	}
	r.router.ServeHTTP(w, req)
}

// shutdown answers /readyz and new webhooks 503 but keeps the listener open
// for the drain delay, then until the admitted webhooks were answered or ctx
// ends; only then does srv.Shutdown close the listener and the idle
// connections.
func (r *Receiver) shutdown(ctx context.Context, srv *http.Server, drain time.Duration) error {
	// From here answers say Connection: close (serveHTTP), so keep-alive
	// senders reconnect, through the load balancer, to an instance that is
	// not stopping. Idle kept-alive connections stay open until
	// srv.Shutdown: closing them now (as SetKeepAlivesEnabled(false) does)
	// would meet a sender's next webhook with a reset instead of the 503.
	r.gate.close()
	if drain > 0 {
		// Without this window an idle receiver closes its listener within
		// milliseconds: load balancers and senders would only ever see
		// connection refused, never the 503 that takes it out of rotation.
		r.log.Info("draining: answering 503 before closing", "delay", drain)
		_ = ctxtime.Sleep(ctx, drain)
	}
	if err := r.gate.wait(ctx); err != nil {
		r.log.Warn("receiver: in-flight webhooks still running at the shutdown deadline; closing the listener", "err", err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("receiver: shutdown: %w", err)
	}
	return nil
}

// checkLoop refreshes the broker part of readiness every few seconds, so
// /readyz answers from memory and never blocks on the broker.
func (r *Receiver) checkLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		r.checkBroker(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Receiver) checkBroker(ctx context.Context) {
	started := r.now().UnixNano()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	want := map[string]bool{}
	for _, s := range r.sources {
		want[s.Topics.Base], want[s.Topics.DLQ] = true, true
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	details, err := r.adm.ListTopics(ctx, names...)
	if err != nil {
		r.ready.Store(&readiness{false, "kafka unreachable: " + err.Error()})
		return
	}
	for _, n := range names {
		if d, ok := details[n]; !ok || d.Err != nil {
			r.ready.Store(&readiness{false, "topic " + n + " missing: restart hookline (it creates missing topics unless --create-topics=false) or run hookline topics create (from Go, topics.Create)"})
			return
		}
	}
	r.ready.Store(&readiness{true, ""})
	// A produce failure older than this successful check no longer keeps
	// /readyz at 503: without traffic (the load balancer took us out) no
	// acknowledged record would ever clear it.
	if t := r.produceDown.Load(); t != 0 && t < started {
		r.produceDown.CompareAndSwap(t, 0)
	}
}

// noteProduce records the outcome of a produce for /readyz. Only failures
// that are the broker's count: a record too large for its topic says
// nothing about the broker.
func (r *Receiver) noteProduce(err error) {
	switch {
	case err == nil:
		// Load first: a store on every webhook would bounce the cache
		// line between cores.
		if r.produceDown.Load() != 0 {
			r.produceDown.Store(0)
		}
	case errors.Is(err, kerr.MessageTooLarge):
	default:
		r.produceDown.Store(r.now().UnixNano())
	}
}

// Ready reports what /readyz reports.
func (r *Receiver) Ready() (bool, string) {
	if r.gate.isClosed() {
		return false, "shutting down"
	}
	if rd := r.ready.Load(); !rd.ok {
		return false, rd.reason
	}
	if r.produceDown.Load() != 0 {
		return false, "kafka did not acknowledge the last webhook"
	}
	if r.cfg.Ready != nil {
		return r.cfg.Ready()
	}
	return true, ""
}

func (r *Receiver) healthz(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"ok"}` + "\n"))
}

func (r *Receiver) readyz(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	ok, reason := r.Ready()
	if !ok {
		// status as in the ready answer; error as in every other error answer.
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": reason})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"ready"}` + "\n"))
}

// contentHash is the event id of a body that could not be parsed: the same
// bytes redelivered get the same id.
func contentHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}
