// Package consumer reads a hookline pipeline's main and retry topics as one
// consumer group, hands each event to a [Handler] (by default the HTTP
// forward sink, [NewHTTPSink]) and routes failures through the delayed retry
// tiers to the DLQ.
//
// Guarantees (see DESIGN.md):
//
//   - Co-partitioned assignment ([CoPartitionBalancer]): partition p of every
//     pipeline topic goes to one member. Run refuses a pipeline whose topics
//     disagree on partition count.
//   - Key-ordered concurrency: within a partition, records with different
//     keys run concurrently (bounded per partition and in total); records of
//     one key, and records with one event id, run one at a time in offset
//     order. A later record starts only after the earlier one finished (its
//     dedup record acknowledged) or was moved to a retry topic. Copies of
//     one event id on the topics of one partition number (a main record
//     redelivered after a crash next to its retry copy) never run at once,
//     unless a handler ignores its context past its timeout (the overrun
//     is routed as failed while the call goes on).
//   - A handled record's slot is free as soon as its handler returns; its
//     dedup record is written asynchronously (batched by a 1 ms linger), so
//     the broker's acknowledgement delays commits and the record's
//     successors of its key, not other handlers. A pool of long-lived
//     workers runs the handlers: no goroutine per record.
//   - A source offset is committed only after every record it caused (retry,
//     DLQ, dedup) was acknowledged by the broker, and only up to the lowest
//     unfinished offset of the partition.
//   - Retry records are never handled before their hookline-due-at; waiting
//     pauses the partition and arms a timer.
//   - Dedup: an event id that was processed or dead-lettered within the plan's
//     dedup window is not handed to the handler again, across restarts and
//     rebalances (state in <base>.dedup).
package consumer

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookline/hookline/internal/ctxtime"
	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/internal/ratelog"
	"github.com/hookline/hookline/topics"
)

// Defaults of [Config].
const (
	// DefaultHandlerTimeout bounds one handler attempt.
	DefaultHandlerTimeout = 30 * time.Second
	// DefaultMaxInFlightPerPartition bounds concurrent records of one
	// partition. With a 3 s handler, 64 per partition gives ~21 events/s per
	// partition and, over 12 partitions, more than the 100 events/s target.
	DefaultMaxInFlightPerPartition = 64
	// DefaultMaxInFlight bounds concurrent records per consumer: ~170
	// events/s with a 3 s handler.
	DefaultMaxInFlight = 512
	// DefaultUnfinishedPerInFlight: MaxUnfinished defaults to this many
	// times MaxInFlight (16,384 with the defaults). Fast handlers run
	// ahead of their dedup acknowledgements by throughput × ack latency:
	// the acknowledgement of a dedup record took 6-8 ms in make bench row
	// 2 (the producer's then 5 ms linger plus the broker), and at 8 × (4,096)
	// the no-op consumer stalled on the bound at ~300k events/s (ratio to
	// a raw consumer 0.51, 0.54); at 32 × it ran at 0.60-0.63.
	DefaultUnfinishedPerInFlight = 32
	// DefaultCommitInterval is how often finished offsets are committed.
	DefaultCommitInterval = time.Second
	// DefaultSessionTimeout is how long a crashed member keeps its
	// partitions before the group moves them.
	DefaultSessionTimeout = 15 * time.Second
)

// Flow control. The usual brake is the poll gate: the consumer stops polling
// while it holds pollGateRecords or pollGateBytes of records that could
// start at once (see waitPollGate). Per partition, as a backstop for records that cannot start
// (behind one busy conversation, or while the dedup state is restored),
// fetching of a partition pauses when it holds holdBytes or holdRecords of
// fetched records that have not started, or keepRecords unfinished ones
// (including handled records whose dedup record awaits the broker's
// acknowledgement), and resumes once all are below half: a resumed partition
// waits for the broker's in-flight fetch (up to FetchMaxWait), and half a
// hold is work in hand meanwhile. Pausing at a few hundred records stalled a
// backlog after every fetch (franz-go fetches up to 1 MiB per partition at
// once). Memory bound: ~holdBytes of payload per owned partition.
const (
	holdBytes   = 4 << 20
	holdRecords = 4096
	keepRecords = 8192
)

// The poll gate (see waitPollGate): about two fetches (each at most
// fetchMaxBytes, up to 1 MiB per partition) of 1 KiB events, so that a
// fetch is in flight while the last one is worked through. At 2 ×
// MaxInFlight (1,024 records) the consumer waited for fetches: make bench
// row 2 ran at 230-270k events/s, at 32k records at 250-325k.
const (
	pollGateRecords = 16384
	pollGateBytes   = 16 << 20
	fetchMaxBytes   = 8 << 20
)

// attemptGranules: attempts of one partition that start within
// HandlerTimeout/attemptGranules of each other share one deadline context
// (one timer) instead of each paying for a context.WithTimeout; an attempt's
// deadline is HandlerTimeout plus at most one granule.
const attemptGranules = 64

// handlerSlack is how long a handler that ignores its context's deadline is
// waited for before its attempt counts as timed out anyway.
const handlerSlack = time.Second

// Config configures a [Consumer]. Zero values mean the documented default.
type Config struct {
	// Kafka holds the broker connection; Kafka.Brokers is required.
	Kafka KafkaConfig
	// Plan names the pipeline's topics and holds its retry delays and dedup
	// window (build it with topics.NewPlan). Required. Its topics must
	// exist with one partition count (topics.Create makes them): Run
	// refuses to start otherwise.
	Plan topics.Plan
	// Group is the consumer group; default DefaultGroup(Plan.Names.Base).
	Group string
	// Handler does the work. Required; see NewHTTPSink for the default one.
	// When Run returns it calls the handler's CloseIdleConnections method,
	// if it has one (the HTTP sink has: it closes the idle connections of
	// its client, also of an HTTPSinkConfig.Client shared with other code),
	// so that no keep-alive connection outlives Run; a handler used again
	// reconnects.
	Handler Handler
	// HandlerTimeout bounds one attempt; default 30s. An overrun is a
	// retryable failure. Attempts starting close together share one
	// deadline, so an attempt may get up to HandlerTimeout/64 more.
	HandlerTimeout time.Duration
	// MaxInFlightPerPartition bounds concurrent records per partition;
	// default 64.
	MaxInFlightPerPartition int
	// MaxInFlight bounds concurrent records per consumer; default 512.
	MaxInFlight int
	// MaxUnfinished bounds records started and not finished: running, or
	// handled with their dedup record not yet acknowledged by the broker.
	// A crash re-runs at most this many handled records (the rest were
	// committed or are skipped as duplicates). Handler slots are freed at
	// handler return, so fast handlers keep running while dedup writes are
	// on the wire; this is how far ahead of the broker they may get.
	// Default DefaultUnfinishedPerInFlight × MaxInFlight; at least
	// MaxInFlight. Handled records awaiting their ack hold their fetched
	// bytes: ~27 MiB at the default with 1 KiB events.
	MaxUnfinished int
	// ShutdownGrace is how long shutdown and a revoking rebalance wait for
	// in-flight records before abandoning them (they are redelivered).
	// Default HandlerTimeout + 1/64 of it + 3s: time for every attempt to
	// end, by its handler or its deadline, and to be routed. A shorter
	// grace makes the partition's next owner start an abandoned event
	// while the downstream may still be working on it: two events of one
	// key at once. The group's rebalance timeout is ShutdownGrace+50s.
	ShutdownGrace time.Duration
	// SessionTimeout is how long the group coordinator waits for a silent
	// member (a crashed process) before handing its partitions to the
	// others; default 15s (Kafka's default of 45s leaves a crashed member's
	// conversations stalled three times as long).
	SessionTimeout time.Duration
	// InstanceID, when set, makes this member static (KIP-345): a restart
	// with the same id within SessionTimeout gets its partitions back
	// without a rebalance of the whole group. Use a stable per-process name
	// such as a StatefulSet pod name; two live processes must never share it.
	InstanceID string
	// CommitInterval is how often finished offsets are committed; default 1s.
	// Offsets are also committed on revoke and on shutdown.
	CommitInterval time.Duration
	// Logger receives the consumer's logs; default slog.Default(). The
	// happy path is quiet; repeated errors are rate-limited.
	Logger *slog.Logger
	// Registerer receives the hookline_consumer_* metrics. Default: a
	// private registry (metrics are not exported). Nothing is registered
	// on the global registry. Pass the receiver's producer.Config.Registry
	// to serve them on its /metrics, wrapped with a "pipeline" label of
	// the base topic as hookline's commands do:
	// prometheus.WrapRegistererWith(prometheus.Labels{"pipeline": base}, reg).
	// The shipped alerts and dashboard group by that label, and several
	// consumers on one registry need a distinguishing label anyway.
	Registerer prometheus.Registerer
}

// Consumer is a pipeline's consumer-group member. Create it with [New] and
// start it with [Consumer.Run].
type Consumer struct {
	cfg    Config
	names  topics.Names
	group  string
	maxPer int
	maxAll int
	maxUnf int // MaxUnfinished: bound of inFlight+acking
	gran   time.Duration
	log    *slog.Logger
	rl     *ratelog.Limiter
	m      *metrics
	// dlqNext is what a dead-letter log line tells the operator to run:
	// the CLI commands for this pipeline and these brokers.
	dlqNext string

	cl   *kgo.Client // group consumer
	prod *kgo.Client // retry, DLQ and dedup producer (ManualPartitioner)

	// read lists the topics the group reads: main, the plan's retry tiers
	// and the extra tiers it drains (see adoptExtraTiers), whose tiers
	// extra maps; maxTier is the highest tier read. Set by Run before the
	// group client exists, read-only after.
	read    []string
	extra   map[string]int
	maxTier int

	// base is the parent of every lane context; it outlives Run's ctx so
	// in-flight work can finish during the shutdown grace.
	base       context.Context
	cancelBase context.CancelFunc

	mu       sync.Mutex
	lanes    map[tp]*lane
	ends     map[tp]int64  // end offsets of consumed partitions, refreshed by tick every 5 s
	inFlight int           // records started and not released (queued for a worker, handled, or forwarded)
	acking   int           // handled records whose dedup record awaits the broker's ack
	starved  bool          // a lane may be waiting for a MaxInFlight or MaxUnfinished slot: the next finish or ack looks at the others
	stopping bool          // no new work starts
	idle     chan struct{} // closed when stopping and inFlight and acking reach 0

	// groups holds the lanes of each partition number (see laneGroup).
	groups map[int32]*laneGroup

	// Workers run started records. They live until the base context
	// ends, so a record costs a queue hand-off rather than new goroutines
	// and grown stacks, and a worker that frees a slot takes the record
	// that slot started itself instead of waking another (see dispatch).
	// All guarded by c.mu.
	runq      []task // started records no worker took yet, FIFO from runHead
	runHead   int
	wake      *sync.Cond
	workers   int  // live workers
	idleW     int  // workers waiting on wake and not signaled
	takers    int  // workers signaled or spawned that have not looked at runq yet
	maxTakers int  // bound on takers: GOMAXPROCS
	stuck     int  // workers inside a handler the watchdog gave up on
	selfTake  bool // the worker holding c.mu takes the next record itself

	// Records that may start as soon as a slot is free (due, first of
	// their key and id) and their approximate bytes, summed over the
	// lanes; poll waits while there are pollGate of them or
	// pollGateBytes (see waitPollGate). All c.mu.
	runnable      int
	runnableBytes int
	pollGate      int
	pollWaiting   bool
	pollWake      chan struct{} // capacity 1

	seed maphash.Seed // for lane.byKey and lane.byID

	onProcessed func(*kgo.Record, error) // c.processedAcked, made once

	dedup *dedupState
	acks  ackQueue

	commitMu sync.Mutex
	phase    atomic.Int32
	started  atomic.Bool
	// memberLost is set from a lost session (the broker away, usually)
	// until the next assignment: Ready says so instead of "ready".
	memberLost atomic.Bool
	// joined is set by the first assignment (franz-go calls onAssigned
	// after every join, also with nothing assigned): before it the member
	// is not in its group yet, and a rollout gated on Ready must wait.
	joined atomic.Bool
	// held is what the last assignment held back (see unpartnered); nil
	// when this member holds nothing.
	held atomic.Pointer[heldParts]
	// heldRecheck is how often held-back partitions look at the counts
	// again: 30 s (tests shorten it).
	heldRecheck time.Duration
}

// heldParts are assigned partitions this member does not consume because
// other topics of the pipeline lack their partition number.
type heldParts struct {
	parts   map[int32]bool // partition numbers held back
	n       int            // assigned topic-partitions held back
	why     string
	checked time.Time // when the counts were last looked at (tick)
}

const (
	phaseNew int32 = iota
	phaseStarting
	phaseRunning
	phaseStopping
	phaseStopped
)

// tp is a topic partition.
type tp struct {
	topic string
	part  int32
}

type itemState uint8

const (
	stateWaiting itemState = iota
	stateRunning
	stateAcking // handled; its dedup record awaits the broker's ack
	stateDone
)

// Handler states of an item (item.hstate), for the overrun watchdog.
const (
	hIdle     int32 = iota // queued, not called yet
	hRunning               // inside Handler.Handle
	hReturned              // Handle returned and its worker goes on with the record
	hDetached              // the watchdog gave up on the attempt and routed it
)

// item is one fetched record that is not finished yet.
type item struct {
	rec            *kgo.Record
	ev             Event     // what the handler gets, made from rec; ev.EventID is its event id
	due            time.Time // retry records: hookline-due-at; zero on main
	state          itemState
	ready          bool   // in its lane's ready heap
	size           int32  // recordBytes(rec), kept so start does not read rec
	kh, ih         uint64 // hashes of key and event id (see lane.byKey)
	kNext, iNext   *item  // the next record of its key, of its event id
	kFirst, iFirst bool   // first of its key, of its event id (always true without an id)

	// iHead, on the last record of an event id's queue (the one
	// lane.byID points at), is the first of that queue when that is
	// another record: the one that may have started (see startedElsewhere).
	iHead *item

	// Set by start (c.mu held) before the record goes to a worker.
	hctx     context.Context // the attempt's context, shared within a granule
	deadline time.Time       // hctx's deadline
	dp       *dedupPart      // the partition's dedup state
	hstate   atomic.Int32

	drec     kgo.Record // its "processed" dedup record, once handled
	lane     *lane      // set with drec, for drec's promise
	dig      digest     // digest of id, remembered when drec is acknowledged
	handedMs int64      // when the handler returned (unix ms): drec's "at"
	acked    bool       // the outcome of drec's write came before handled ran (c.mu)
	ackErr   error
}

// task is a started record on its way to a worker.
type task struct {
	l  *lane
	it *item
}

// readyHeap is a min-heap by offset of a lane's waiting records that are
// first of their key and of their event id: exactly the records the key/id
// rule allows to start. Entries carry the offset, so sifting does not touch
// the items.
type readyHeap []readyEnt

type readyEnt struct {
	off int64
	it  *item
}

func (h *readyHeap) push(it *item) {
	it.ready = true
	*h = append(*h, readyEnt{it.rec.Offset, it})
	q := *h
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if q[p].off <= q[i].off {
			break
		}
		q[p], q[i] = q[i], q[p]
		i = p
	}
}

// peek returns the record with the lowest offset; the heap is not empty.
func (h readyHeap) peek() *item { return h[0].it }

func (h *readyHeap) pop() *item {
	q := *h
	it := q[0].it
	n := len(q) - 1
	q[0] = q[n]
	q[n] = readyEnt{}
	q = q[:n]
	i := 0
	for {
		l, m := 2*i+1, i
		if l < n && q[l].off < q[m].off {
			m = l
		}
		if r := l + 1; r < n && q[r].off < q[m].off {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	it.ready = false
	return it
}

// lane is the state of one assigned topic partition.
type lane struct {
	tp
	role topics.Role
	tier int // retry tier, 0 on main

	// The records not popped yet, in the order fetched (offset order,
	// except that offsets repeat after a data loss); done ones are popped
	// from the front by advance. add appends, advance pops, nothing else
	// changes it: the index's sequence numbers (see popped) rely on that.
	items []*item
	// Per key and per event id (by their 64-bit hashes), the last
	// unfinished record (see lastOf): with the items' links (item.kNext,
	// item.iNext) the queue of that key's (id's) records in offset order,
	// of which only the first may run. Two keys with one hash share a
	// queue: that only orders records that needed no order, and costs
	// nothing else.
	byKey, byID  seqIndex
	popped       uint64    // records ever popped off the front of items: items[i] has sequence number popped+i
	ready        readyHeap // waiting records first of their key and id, by offset
	waiting      int       // items not started
	waitingBytes int       // their keys and values
	inFlight     int
	acking       int   // items handled, dedup record not yet acknowledged
	runnable     int   // its share of Consumer.runnable
	runnableB    int   // its share of Consumer.runnableBytes
	next         int64 // next offset expected from fetches
	hw           int64 // last high watermark seen

	commitAt int64 // offset to commit (one past the last finished prefix); -1 unknown
	epoch    int32
	dirty    bool // commitAt moved since the last commit

	paused    bool
	timer     *time.Timer
	timerAt   time.Time
	revoked   bool
	abandoned bool
	drained   chan struct{} // closed when revoked and inFlight and acking are 0

	ctx    context.Context // canceled when the lane's work is abandoned
	cancel context.CancelFunc

	dp *dedupPart // the partition's dedup state once restored; nothing starts before

	// The shared attempt context of the current granule (see attemptCtx)
	// and the watchdog timers of the granules not over yet.
	hctx      context.Context
	hdeadline time.Time
	watchdogs []*time.Timer

	m laneMetrics

	// leftover: a retry tier beyond the plan's (see adoptExtraTiers),
	// whose records must name this pipeline's main topic as their origin.
	leftover bool

	// g is the lanes of this partition number on every topic the
	// consumer reads; deferred says a due record of l waits because a
	// copy of its event runs on one of them (see startedElsewhere).
	g           *laneGroup
	deferred    bool
	deferredIDs []uint64 // event-id hashes of those records (item.ih)
}

// laneGroup is the lanes of one partition number: its main topic and
// retry tiers. Two of them can hold copies of one event: after a crash
// (or a lost session) the main record of an event that had failed and
// moved to retry-1 is redelivered, and its retry-1 copy may be due at the
// same time. They must not run at once (see startedElsewhere).
type laneGroup struct {
	lanes    []*lane
	deferred int // lanes with deferred set
}

// laneMetrics are the per-event metric children of a lane's topic, looked up
// once.
type laneMetrics struct {
	processed, duplicate prometheus.Counter
	latency              prometheus.Observer
}

// DefaultGroup is the consumer group of the pipeline with base topic base
// when Config.Group is empty: "hookline-" + base.
func DefaultGroup(base string) string { return "hookline-" + base }

// New validates cfg and returns a Consumer. It does not contact Kafka; Run
// does.
func New(cfg Config) (*Consumer, error) {
	if cfg.Handler == nil {
		return nil, errors.New("consumer: no Handler configured (use NewHTTPSink for the HTTP forward sink)")
	}
	if cfg.Plan.Names.Base == "" {
		return nil, errors.New("consumer: Plan is empty: build it with topics.NewPlan")
	}
	if len(cfg.Plan.RetryDelays) != len(cfg.Plan.Names.Retries) {
		return nil, fmt.Errorf("consumer: plan has %d retry delays for %d retry topics", len(cfg.Plan.RetryDelays), len(cfg.Plan.Names.Retries))
	}
	if _, err := cfg.Kafka.Opts(); err != nil {
		return nil, err
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup(cfg.Plan.Names.Base)
	}
	if cfg.Plan.DedupWindow <= 0 {
		cfg.Plan.DedupWindow = topics.DefaultDedupWindow
	}
	if cfg.HandlerTimeout < 0 || cfg.MaxInFlight < 0 || cfg.MaxInFlightPerPartition < 0 || cfg.MaxUnfinished < 0 || cfg.ShutdownGrace < 0 || cfg.CommitInterval < 0 {
		return nil, errors.New("consumer: timeouts and limits must not be negative")
	}
	if cfg.HandlerTimeout == 0 {
		cfg.HandlerTimeout = DefaultHandlerTimeout
	}
	if cfg.MaxInFlightPerPartition == 0 {
		cfg.MaxInFlightPerPartition = DefaultMaxInFlightPerPartition
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxUnfinished == 0 {
		cfg.MaxUnfinished = DefaultUnfinishedPerInFlight * cfg.MaxInFlight
	}
	if cfg.MaxUnfinished < cfg.MaxInFlight {
		return nil, fmt.Errorf("consumer: MaxUnfinished (%d) must be at least MaxInFlight (%d): raise it or leave it 0 for the default", cfg.MaxUnfinished, cfg.MaxInFlight)
	}
	if cfg.ShutdownGrace == 0 {
		// An attempt's deadline is at most a granule past HandlerTimeout,
		// the watchdog ends an overrunning one handlerSlack after that,
		// and then its retry record is written.
		cfg.ShutdownGrace = cfg.HandlerTimeout + cfg.HandlerTimeout/attemptGranules + handlerSlack + 2*time.Second
	}
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = DefaultCommitInterval
	}
	if cfg.SessionTimeout < 0 {
		return nil, errors.New("consumer: SessionTimeout must not be negative")
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	// Read at scrape time: a gauge moved by every start and release cost
	// two atomic updates of one shared cache line per event. A scrape
	// may come before New has made the consumer.
	var made atomic.Pointer[Consumer]
	inFlight := func() float64 {
		c := made.Load()
		if c == nil {
			return 0
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return float64(c.inFlight)
	}
	m, err := newMetrics(cfg.Registerer, inFlight)
	if err != nil {
		return nil, err
	}
	m.init(cfg.Plan.Names)
	log := cfg.Logger.With("component", "consumer", "group", cfg.Group)
	c := &Consumer{
		cfg:         cfg,
		names:       cfg.Plan.Names,
		group:       cfg.Group,
		maxPer:      cfg.MaxInFlightPerPartition,
		maxAll:      cfg.MaxInFlight,
		maxUnf:      cfg.MaxUnfinished,
		heldRecheck: 30 * time.Second,
		gran:        max(cfg.HandlerTimeout/attemptGranules, time.Millisecond),
		log:         log,
		rl:          ratelog.New(log, 10*time.Second),
		m:           m,
		lanes:       map[tp]*lane{},
		groups:      map[int32]*laneGroup{},
	}
	where := "--base " + c.names.Base
	if len(cfg.Kafka.Brokers) > 0 {
		where += " --brokers " + strings.Join(cfg.Kafka.Brokers, ",")
	}
	c.dlqNext = "fix what err names, then `hookline dlq ls " + where + "` and `hookline replay " + where + " --event-id <id>` (or --since, --all)"
	if cfg.Kafka.Secured() {
		c.dlqNext += ", with the same TLS and SASL settings"
	}
	c.wake = sync.NewCond(&c.mu)
	c.pollGate = max(2*c.maxAll, pollGateRecords)
	c.maxTakers = max(runtime.GOMAXPROCS(0), 2)
	c.pollWake = make(chan struct{}, 1)
	c.seed = maphash.MakeSeed()
	c.onProcessed = c.processedAcked
	c.acks.wake = make(chan struct{}, 1)
	c.base, c.cancelBase = context.WithCancel(context.Background())
	c.dedup = newDedupState(c)
	if err := registerReady(cfg.Registerer, c.Ready); err != nil {
		return nil, err
	}
	made.Store(c)
	return c, nil
}

// Ready reports whether the consumer is handling events, with the reason
// when it is not (for /readyz): "starting", "joining the consumer group",
// "restoring dedup state", "shutting down", "stopped". A member is ready
// from its first assignment on, also when that gave it no partition.
func (c *Consumer) Ready() (bool, string) {
	switch c.phase.Load() {
	case phaseNew:
		return false, "not started"
	case phaseStarting:
		return false, "starting: checking topics and joining the consumer group"
	case phaseStopping:
		return false, "shutting down"
	case phaseStopped:
		return false, "stopped"
	}
	if !c.joined.Load() {
		return false, "starting: joining the consumer group (a member that crashed moments ago is waited for until its session times out)"
	}
	if c.memberLost.Load() {
		return false, "consumer group membership lost; rejoining (is Kafka reachable?)"
	}
	if n := c.dedup.restoring(); n > 0 {
		if f := c.dedup.recentFailure(); f != "" {
			return false, fmt.Sprintf("restoring dedup state (%d partition(s)), failing: %s (is Kafka reachable?)", n, f)
		}
		return false, fmt.Sprintf("restoring dedup state (%d partition(s))", n)
	}
	return true, ""
}

// Run checks the pipeline's topics, joins the group and handles events until
// ctx is done (then it shuts down gracefully and returns nil) or a fatal error
// occurs. Run may be called once.
func (c *Consumer) Run(ctx context.Context) (err error) {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("consumer: Run called twice")
	}
	c.phase.Store(phaseStarting)
	defer func() {
		c.phase.Store(phaseStopped)
		c.rl.Flush() // also when Run ends early
		c.cancelBase()
		c.mu.Lock()
		c.takers += c.idleW // idle workers wake, see the base context ended and exit
		c.idleW = 0
		c.wake.Broadcast()
		c.mu.Unlock()
		// Idle keep-alive connections would otherwise stay open (with
		// their goroutines) for the transport's idle timeout, 90 s for
		// the HTTP sink, after Run returned.
		if h, ok := c.cfg.Handler.(interface{ CloseIdleConnections() }); ok {
			h.CloseIdleConnections()
		}
	}()

	rep, err := c.checkTopics(ctx)
	if err != nil {
		if stopped(ctx) {
			return nil
		}
		return err
	}
	c.adoptExtraTiers(rep)

	c.prod, err = kafkaconf.NewClient(ctx, c.cfg.Kafka,
		// franz-go's default batch limit (1,000,012 bytes) is below a
		// 1 MiB body with headers: follow each topic's max.message.bytes,
		// or a record the receiver stored could not move to a retry tier.
		rep.ProducerBatchMaxBytes(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(15*time.Second),
		// Dedup records come one per event from many workers: a short
		// linger gathers them into batches. It delays acknowledgements,
		// so commits and the next event of the same conversation, which
		// waits for its predecessor's: a backlog of one conversation
		// drained at ~177 events/s with 5 ms, ~800 with 1 ms (in-process
		// kfake; ~150 and ~600 against Apache Kafka). Throughput of many
		// conversations was the same with both (16 alternating runs in
		// one process, median/mean of 1 ms over 5 ms: 1.00/1.01 on kfake,
		// 0.98/0.97 against Apache Kafka, within the noise). Linger 0
		// drained one conversation faster still (~13k events/s on kfake,
		// ~2,500 against Apache Kafka) at the same throughput, but cost
		// 24 % more CPU per event against Apache Kafka (smaller produce
		// requests); an early build got only ~100k events/s from a real
		// broker with 0, ~180k with 5 ms.
		kgo.ProducerLinger(time.Millisecond),
		// What it writes are copies of main-topic records, which the
		// receiver stores uncompressed, and ~100-byte dedup records:
		// snappy cost 2 % of the no-op consumer's CPU (make bench row 2
		// profile) and the broker's to check each batch.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	if err != nil {
		if stopped(ctx) {
			return nil // stopped while starting: not "cannot reach Kafka"
		}
		return err
	}
	defer c.prod.Close()

	groupOpts := []kgo.Opt{
		kgo.ConsumerGroup(c.group),
		kgo.ConsumeTopics(c.read...),
		kgo.Balancers(CoPartitionBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RebalanceTimeout(c.cfg.ShutdownGrace + 50*time.Second),
		kgo.SessionTimeout(c.cfg.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, c.cfg.SessionTimeout/3)),
		// A resumed partition waits for the broker's in-flight fetch to
		// return, and while every main partition with a backlog is paused
		// (holding its limit of records) that fetch covers only idle
		// partitions and waits the full FetchMaxWait. Keep it short: at 1 s
		// a backlog of 1 KB events drained at only 5-9k events/s (a 1 s
		// stall after every fetch, seen in make bench); at 100 ms an idle
		// consumer still costs well under 1 % of a core, and a due retry
		// record starts within ~100 ms.
		kgo.FetchMaxWait(100 * time.Millisecond),
		// franz-go's default (50 MiB) lets a fetch of 12 backlogged
		// partitions reach 12 MiB. Every event of a fetch is touched again
		// by prepare, the workers and the dedup producer, and at 8 MiB
		// more of it is still in the cache: CPU per no-op event -11 to
		// -17 % (make bench row 2 on kfake, A/B in one process, 3 × 16
		// runs), events/s +0 to +9 %; against Apache Kafka 4.1.2 the
		// same events/s or more (281k and 394k vs 276k and 366k). Each
		// partition still gets up to 1 MiB, and the held records stay
		// bounded by holdBytes.
		kgo.FetchMaxBytes(fetchMaxBytes),
	}
	if c.cfg.InstanceID != "" {
		groupOpts = append(groupOpts, kgo.InstanceID(c.cfg.InstanceID))
	}
	c.cl, err = kafkaconf.NewClient(ctx, c.cfg.Kafka, groupOpts...)
	if err != nil {
		if stopped(ctx) {
			return nil
		}
		return err
	}
	c.phase.Store(phaseRunning)
	c.log.Info("consumer started", "topics", c.read, "max_in_flight", c.maxAll,
		"max_in_flight_per_partition", c.maxPer, "handler_timeout", c.cfg.HandlerTimeout)

	go c.applyAcks()
	tickDone := make(chan struct{})
	tickCtx, stopTick := context.WithCancel(context.Background())
	go func() {
		defer close(tickDone)
		c.tick(tickCtx)
	}()

	fatal := c.poll(ctx)

	c.phase.Store(phaseStopping)
	stopTick()
	<-tickDone
	c.shutdown()
	if fatal != nil {
		return fatal
	}
	return nil
}

// stopped reports whether ctx is done, or past its deadline: a dial that
// timed out at the deadline can return before ctx's own timer marks it done.
func stopped(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// adoptExtraTiers reads, besides the plan's topics, the retry tiers beyond
// its tiers that exist (left by a run with more tiers): their records would
// be stranded, handled by nobody until retention deletes them. Read here,
// each is handled at its due time, and one that fails again has no next
// tier and goes to the DLQ as exhausted. A tier whose partition count
// differs from the pipeline's cannot be co-partitioned and is only logged.
func (c *Consumer) adoptExtraTiers(rep topics.Report) {
	c.read = c.names.Consumed()
	c.extra = map[string]int{}
	c.maxTier = len(c.names.Retries)
	for _, x := range rep.ExtraRetryTiers {
		if !rep.Consumable(x) {
			c.log.Error("retry tier beyond the configured ones, with another partition count: its records are not handled",
				"topic", x.Topic, "partitions", x.Partitions, "records", x.Records,
				"next", "run with retry delays that include this tier, after giving it the pipeline's partition count (hookline topics check)")
			continue
		}
		c.read = append(c.read, x.Topic)
		c.extra[x.Topic] = x.Tier
		c.maxTier = max(c.maxTier, x.Tier)
		c.log.Warn("retry tier beyond the configured ones: handling its records, which go to the DLQ if they fail again",
			"topic", x.Topic, "records", x.Records, "next", "delete the topic once it is empty and no process runs with that many tiers")
	}
}

// roleOf is Names.RoleOf for the topics c reads, extra tiers included.
func (c *Consumer) roleOf(topic string) (topics.Role, int, bool) {
	if k, ok := c.extra[topic]; ok {
		return topics.RoleRetry, k, true
	}
	return c.names.RoleOf(topic)
}

// checkTopics refuses a pipeline with missing topics or topics that disagree
// on partition count; other differences from the plan are logged.
func (c *Consumer) checkTopics(ctx context.Context) (topics.Report, error) {
	cl, err := kafkaconf.NewClient(ctx, c.cfg.Kafka)
	if err != nil {
		return topics.Report{}, err
	}
	defer cl.Close()
	rep, err := topics.Inspect(ctx, kadm.NewClient(cl), c.cfg.Plan, 0)
	if err != nil {
		return topics.Report{}, fmt.Errorf("consumer: check pipeline topics: %w", err)
	}
	if err := rep.Unusable(); err != nil {
		return topics.Report{}, fmt.Errorf("consumer refuses to start: %w", err)
	}
	for _, p := range rep.Problems {
		// adoptExtraTiers says what becomes of an extra tier.
		if !slices.ContainsFunc(rep.ExtraRetryTiers, func(x topics.ExtraTier) bool { return x.Topic == p.Topic }) {
			c.log.Warn("pipeline topic differs from its plan", "problem", p.String())
		}
	}
	return rep, nil
}

// poll fetches until ctx is done or a fatal error.
func (c *Consumer) poll(ctx context.Context) error {
	var batch []fetched
	for {
		if c.waitPollGate(ctx) != nil {
			return nil
		}
		fs := c.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			c.cl.AllowRebalance()
			return nil
		}
		var fatal error
		fs.EachError(func(t string, p int32, err error) {
			if f := c.fetchError(t, p, err); f != nil && fatal == nil {
				fatal = f
			}
		})
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			batch = append(batch, fetched{fp, c.prepare(fp)})
		})
		for _, f := range batch {
			c.mu.Lock() // per partition: workers wait for c.mu meanwhile
			c.add(f.fp, f.items)
			c.mu.Unlock()
		}
		clear(batch)
		batch = batch[:0]
		c.cl.AllowRebalance()
		if fatal != nil {
			c.log.Error("fatal consumer error", "err", fatal)
			return fatal
		}
	}
}

// fetchError logs a fetch error of topic t, partition p (t "" for the
// client's own), or returns it as the error that stops the consumer.
func (c *Consumer) fetchError(t string, p int32, err error) (fatal error) {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	if errors.Is(err, kerr.FencedInstanceID) {
		// Rejoining would fight the other process for the slot.
		return fmt.Errorf("consumer: another process joined group %s with the same instance id %q and took over its partitions: give every process its own (Config.InstanceID, --instance-id in the CLI; e.g. the pod name); this one stops", c.group, c.cfg.InstanceID)
	}
	if errors.Is(err, kerr.InconsistentGroupProtocol) {
		// Retrying cannot help while the other members stay.
		return fmt.Errorf("consumer: group %s is in use by another application (its members assign partitions with another protocol than hookline's %q), so this consumer cannot join it: give the pipeline a group of its own (Config.Group, --group in the CLI; default hookline-<base>); never share a group with other consumers: %w", c.group, CoPartitionProtocol, err)
	}
	if isFatal(err) {
		return fmt.Errorf("consumer: fetch %s[%d]: %w", t, p, err)
	}
	if dl := (*kgo.ErrDataLoss)(nil); errors.As(err, &dl) {
		c.dataLoss(dl)
		return nil
	}
	if t == "" { // the client's own error (e.g. no broker reachable), not one partition's
		c.rl.Log(context.Background(), slog.LevelWarn, "fetch:", "fetch failed; the client retries (is Kafka reachable?)", "err", err)
		return nil
	}
	c.rl.Log(context.Background(), slog.LevelWarn, "fetch:"+t, "fetch failed; the client retries", "topic", t, "partition", p, "err", err)
	return nil
}

// dataLoss handles the broker's log of a partition ending before the
// offset this consumer had read to (a damaged embedded --data-dir, an
// unclean leader election). franz-go reads on from dl.ResetTo, where the
// records written from now on reuse the lost offsets: the lane takes them
// (it skipped offsets below what it had read) and its commit point goes
// back with them, so that a crash does not skip them either.
func (c *Consumer) dataLoss(dl *kgo.ErrDataLoss) {
	c.mu.Lock()
	if l := c.lanes[tp{dl.Topic, dl.Partition}]; l != nil && dl.ResetTo >= 0 && dl.ResetTo < l.next {
		l.next = dl.ResetTo
		if l.commitAt > dl.ResetTo {
			l.commitAt, l.epoch, l.dirty = dl.ResetTo, dl.ResetToEpoch, true
		}
	}
	c.mu.Unlock()
	// Not "the client retries": acknowledged events may be gone.
	c.rl.Log(context.Background(), slog.LevelError, fmt.Sprintf("dataloss:%s/%d", dl.Topic, dl.Partition),
		"Kafka's log of a partition now ends before the offset this consumer had read to: records the broker had acknowledged may be gone (a damaged embedded --data-dir, or an unclean leader election); the consumer reads on from resumed_at, where new records reuse the lost offsets",
		"topic", dl.Topic, "partition", dl.Partition, "consumed_to", dl.ConsumedTo, "resumed_at", dl.ResetTo,
		"next", "find the cause in the broker's log; have the senders re-deliver the events of that time (dedup skips those already processed), or restore the data from a backup")
}

func isFatal(err error) bool {
	return errors.Is(err, kerr.GroupAuthorizationFailed) ||
		errors.Is(err, kerr.TopicAuthorizationFailed) ||
		errors.Is(err, kerr.SaslAuthenticationFailed)
}

// fetched is a fetched partition and its records made into items.
type fetched struct {
	fp    kgo.FetchTopicPartition
	items []item
}

// prepare makes the items of fp's records, without c.mu: workers and acks
// go on meanwhile (under c.mu, a 10k-record fetch held them up for ~10 ms).
// The Event and the id's digest are made here, where the headers are read
// for the id's hash anyway, rather than on a worker: there, reading them
// again cost ~0.5 µs of cache misses per event (make bench row 2 profile).
// The items of one fetched partition share one allocation, and so do
// their event ids: see packIDs.
func (c *Consumer) prepare(fp kgo.FetchTopicPartition) []item {
	role, _, ok := c.roleOf(fp.Topic)
	if !ok || len(fp.Records) == 0 {
		return nil
	}
	items := make([]item, len(fp.Records))
	idBytes := 0
	for i, r := range fp.Records {
		it := &items[i]
		it.rec = r
		it.size = int32(recordBytes(r))
		it.ev = eventOf(r, role == topics.RoleMain)
		it.kh = maphash.Bytes(c.seed, r.Key)
		if it.ev.EventID != "" {
			it.ih = maphash.String(c.seed, it.ev.EventID)
			it.dig = digestOfString(it.ev.EventID)
		}
		if role == topics.RoleRetry {
			it.due = c.dueOf(r)
		}
		idBytes += len(it.ev.EventID)
	}
	packIDs(items, idBytes)
	return items
}

// packIDs copies the event ids of items, n bytes in all, into one buffer
// and points the Events at it. Each id is the key of its dedup record, and
// the producer reads it a millisecond or more after the fetch: in the
// fetch buffer, one id per ~1 KB record, that read missed the cache: 6 %
// of the no-op consumer's CPU went to copying the keys into produce
// requests (make bench row 2 profile). Packed, consecutive ids share cache
// lines: CPU per event -1 to -5 % in six A/B runs (docs/benchmarks.md),
// events/s within the noise.
func packIDs(items []item, n int) {
	buf := make([]byte, 0, n)
	for i := range items {
		ev := &items[i].ev
		if ev.EventID != "" {
			at := len(buf)
			buf = append(buf, ev.EventID...)
			ev.EventID = bytesView(buf[at:])
		}
	}
}

// add appends fp's records, made into items by prepare, to their lane and
// schedules it. c.mu is held.
func (c *Consumer) add(fp kgo.FetchTopicPartition, items []item) {
	l := c.lanes[tp{fp.Topic, fp.Partition}]
	if l == nil || l.revoked || l.abandoned {
		return // the next owner fetches them from the committed offset
	}
	if fp.HighWatermark > l.hw {
		l.hw = fp.HighWatermark
	}
	for i := range items {
		it := &items[i]
		r := it.rec
		if r.Offset < l.next {
			continue
		}
		l.next = r.Offset + 1
		l.items = append(l.items, it)
		l.waiting++
		l.waitingBytes += int(it.size)
		l.enqueue(it)
	}
	c.schedule(l)
}

// enqueue adds a new waiting record to its key and id queues and, when it is
// first of both, to the ready heap. c.mu is held.
func (l *lane) enqueue(it *item) {
	seq := l.popped + uint64(len(l.items)) - 1 // it is the last of l.items
	if last := l.swapLast(&l.byKey, it.kh, seq); last != nil {
		last.kNext = it
	} else {
		it.kFirst = true
	}
	it.iFirst = true
	if it.ev.EventID != "" {
		if last := l.swapLast(&l.byID, it.ih, seq); last != nil {
			last.iNext = it
			it.iFirst = false
			it.iHead = last.iHead
			if it.iHead == nil {
				it.iHead = last
			}
			last.iHead = nil
		}
	}
	if it.kFirst && it.iFirst {
		l.ready.push(it)
	}
}

// lastOf returns the last unfinished record of l that x holds for h, or nil.
func (l *lane) lastOf(x *seqIndex, h uint64) *item {
	seq, ok := x.get(h)
	return l.unfinishedAt(seq, ok)
}

// swapLast makes the record with sequence number seq the last of h in x
// and returns the unfinished record that was, or nil.
func (l *lane) swapLast(x *seqIndex, h, seq uint64) *item {
	return l.unfinishedAt(x.swap(h, seq, l.popped))
}

// unfinishedAt returns the record with sequence number seq when ok and it
// is not finished.
func (l *lane) unfinishedAt(seq uint64, ok bool) *item {
	if !ok || seq < l.popped {
		return nil
	}
	it := l.items[seq-l.popped]
	if it.state == stateDone {
		return nil
	}
	return it
}

// dequeue removes a finished record (the first of its key and of its id)
// from its queues and makes the records now first of both ready; it reports
// whether it made any. c.mu is held.
func (l *lane) dequeue(it *item) (readied bool) {
	// Without a next record it was the last of its queue, and the
	// index's entry stays: lastOf ignores a finished record.
	next := it.kNext
	if next != nil {
		next.kFirst = true
	}
	nextID := it.iNext
	if nextID != nil {
		nextID.iFirst = true
		if last := l.lastOf(&l.byID, it.ih); last == nextID {
			last.iHead = nil
		} else if last != nil {
			last.iHead = nextID
		}
	}
	it.kNext, it.iNext = nil, nil
	for _, n := range [2]*item{next, nextID} {
		if n != nil && n.kFirst && n.iFirst && !n.ready && n.state == stateWaiting {
			l.ready.push(n)
			readied = true
		}
	}
	return readied
}

// recordBytes is what flow control counts of r.
func recordBytes(r *kgo.Record) int { return len(r.Key) + len(r.Value) }

// dueOf reads hookline-due-at; a missing or unparseable header means now.
func (c *Consumer) dueOf(r *kgo.Record) time.Time {
	v, ok := headers.Get(r.Headers, headers.DueAt)
	if !ok {
		return time.Time{}
	}
	t, err := headers.ParseTime(v)
	if err != nil {
		c.rl.Log(context.Background(), slog.LevelWarn, "due:"+r.Topic, "retry record has an unparseable due time; handling it now",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
		return time.Time{}
	}
	return t
}

// schedule starts every record of l that may start, arms the due timer and
// pauses or resumes fetching. c.mu is held.
func (c *Consumer) schedule(l *lane) { c.scheduleAt(l, time.Time{}) }

// scheduleAt is schedule with the current time, when the caller has it
// (zero: read the clock). c.mu is held.
func (c *Consumer) scheduleAt(l *lane, now time.Time) {
	if l.revoked || l.abandoned || c.stopping {
		c.setRunnable(l, 0)
		return
	}
	if l.dp == nil { // dedup state not restored yet
		c.setRunnable(l, 0)
		c.setPaused(l, l.overHeld())
		return
	}
	if now.IsZero() {
		now = time.Now()
	}
	var nextDue time.Time
	var notDue []*item
	l.deferredIDs = l.deferredIDs[:0]
	full := false
	for len(l.ready) > 0 {
		it := l.ready.peek()
		if !it.due.IsZero() && now.Before(it.due) {
			l.ready.pop()
			notDue = append(notDue, it)
			if nextDue.IsZero() || it.due.Before(nextDue) {
				nextDue = it.due
			}
			continue
		}
		if c.startedElsewhere(l, it) {
			// Set aside like a record not due; the end of the copy
			// schedules l again (wakeDeferred).
			l.ready.pop()
			notDue = append(notDue, it)
			l.deferredIDs = append(l.deferredIDs, it.ih)
			continue
		}
		if l.inFlight >= c.maxPer {
			full = true
			break
		}
		if c.full() {
			c.starved = true
			full = true
			break
		}
		l.ready.pop()
		c.start(l, it, now)
	}
	c.setRunnable(l, len(l.ready))
	for _, it := range notDue {
		l.ready.push(it)
	}
	l.setDeferred(len(l.deferredIDs) > 0)
	if !full || !nextDue.IsZero() {
		c.armTimer(l, nextDue)
	}
	// A retry partition holding a record that is not due yet stops
	// fetching until the timer fires; any partition stops when it holds
	// too many records.
	c.setPaused(l, l.overHeld() || !nextDue.IsZero())
}

// setRunnable notes that l holds n records that may start as soon as a
// slot is free, and lets poll fetch more once the consumer holds fewer than
// pollGate of them. c.mu is held.
func (c *Consumer) setRunnable(l *lane, n int) {
	b := 0
	if n > 0 && l.waiting > 0 {
		b = n * (l.waitingBytes / l.waiting) // the lane's average waiting record
	}
	c.runnable += n - l.runnable
	c.runnableBytes += b - l.runnableB
	l.runnable, l.runnableB = n, b
	if c.pollWaiting && !c.gateClosed() {
		c.pollWaiting = false
		select {
		case c.pollWake <- struct{}{}:
		default:
		}
	}
}

// startedElsewhere reports whether a copy of it's event (same event id)
// is running, or handled and awaiting its dedup record's ack, on another
// topic of its partition number: a main record redelivered after a crash
// and its retry copy, or two retry copies. Started there first, it runs
// there alone; this one starts once it finished, and then usually finds it
// processed or dead-lettered and is skipped as a duplicate. c.mu is held.
func (c *Consumer) startedElsewhere(l *lane, it *item) bool {
	if it.ev.EventID == "" || l.g == nil {
		return false
	}
	for _, o := range l.g.lanes {
		if o == l || o.byID.n == 0 {
			continue
		}
		// Of the records of that id on o, only the first may have
		// started (they run one at a time, in offset order).
		x := o.lastOf(&o.byID, it.ih)
		if x == nil {
			continue
		}
		if x.iHead != nil {
			x = x.iHead
		}
		if x.state != stateWaiting && x.ev.EventID == it.ev.EventID {
			return true
		}
	}
	return false
}

// setDeferred notes whether l holds a due record deferred behind a copy on
// another lane of its group. c.mu is held.
func (l *lane) setDeferred(d bool) {
	if l.g == nil || d == l.deferred {
		return
	}
	l.deferred = d
	if d {
		l.g.deferred++
	} else {
		l.g.deferred--
	}
}

// wakeDeferred schedules the lanes of l's group that deferred a record of
// it's event id (by hash) behind it, which just left its queues; it nil:
// every lane that deferred a record (l is dropped). Only those: a wake
// walks the lane's ready heap, and a retry lane may hold a fetch of records
// not due. c.mu is held.
func (c *Consumer) wakeDeferred(l *lane, it *item, now time.Time) {
	if l.g == nil || l.g.deferred == 0 || (it != nil && it.ev.EventID == "") {
		return
	}
	for _, o := range l.g.lanes {
		if o != l && o.deferred && (it == nil || slices.Contains(o.deferredIDs, it.ih)) {
			c.scheduleAt(o, now)
		}
	}
}

// gateClosed reports whether the consumer holds enough runnable records
// not to poll. c.mu is held.
func (c *Consumer) gateClosed() bool {
	return c.runnable >= c.pollGate || c.runnableBytes >= pollGateBytes
}

// waitPollGate waits until the consumer holds fewer runnable records than
// the gate (pollGateRecords, at least 2 × MaxInFlight, or pollGateBytes):
// fetching more would only hold them in memory. Not polling is
// franz-go's own back-pressure (it buffers one fetch per broker until
// polled), and unlike pausing partitions it costs no stall: that fetch is
// ready when poll takes it. The error is ctx's.
func (c *Consumer) waitPollGate(ctx context.Context) error {
	for {
		c.mu.Lock()
		if !c.gateClosed() || c.stopping {
			c.pollWaiting = false
			c.mu.Unlock()
			return nil
		}
		c.pollWaiting = true
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.pollWake:
		}
	}
}

// overHeld reports whether l holds too much to keep fetching (see
// holdBytes). c.mu is held.
func (l *lane) overHeld() bool {
	if l.paused { // stay paused until below half
		return l.waitingBytes >= holdBytes/2 || l.waiting >= holdRecords/2 || len(l.items) >= keepRecords/2
	}
	return l.waitingBytes >= holdBytes || l.waiting >= holdRecords || len(l.items) >= keepRecords
}

// setPaused pauses or resumes fetching of l. c.mu is held.
func (c *Consumer) setPaused(l *lane, pause bool) {
	if pause == l.paused {
		return
	}
	l.paused = pause
	m := map[string][]int32{l.topic: {l.part}}
	if pause {
		c.cl.PauseFetchPartitions(m)
	} else {
		c.cl.ResumeFetchPartitions(m)
	}
}

// armTimer makes sure l is scheduled again at due (zero: no timer).
func (c *Consumer) armTimer(l *lane, due time.Time) {
	if due.IsZero() {
		if l.timer != nil {
			l.timer.Stop()
			l.timer, l.timerAt = nil, time.Time{}
		}
		return
	}
	if l.timer != nil {
		if l.timerAt.Equal(due) {
			return
		}
		l.timer.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(time.Until(due)+time.Millisecond, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if l.timer != t {
			return
		}
		l.timer, l.timerAt = nil, time.Time{}
		c.schedule(l)
	})
	l.timer, l.timerAt = t, due
}

// start hands it to a worker. c.mu is held.
func (c *Consumer) start(l *lane, it *item, now time.Time) {
	it.state = stateRunning
	it.hctx, it.deadline = c.attemptCtx(l, now)
	it.dp = l.dp
	l.waiting--
	l.waitingBytes -= int(it.size)
	l.inFlight++
	c.inFlight++
	if c.full() {
		// This took the last slot. Other lanes may hold records that now
		// wait for one, and schedule only notices when it is asked to
		// start one of them: without this, a lane that takes the last slot
		// and reaches its own MaxInFlightPerPartition at once would leave
		// them waiting until its records finish.
		c.starved = true
	}
	c.runq = append(c.runq, task{l, it})
	c.dispatch()
}

// dispatch makes sure some worker will take each queued record: the worker
// holding c.mu when it frees a slot (selfTake), workers already signaled or
// starting, then idle workers, then new ones, keeping at least one worker
// not stuck per record in flight. At most GOMAXPROCS workers are on their
// way at once; each wakes the next when records remain (work), so a burst
// of fast records is run by a few busy workers instead of hundreds of
// goroutines taking turns on c.mu. c.mu is held.
func (c *Consumer) dispatch() {
	need := len(c.runq) - c.runHead - c.takers
	if c.selfTake {
		need--
	}
	need = min(need, c.maxTakers-c.takers)
	for ; need > 0 && c.idleW > 0; need-- {
		c.idleW--
		c.takers++
		c.wake.Signal()
	}
	for ; need > 0 && c.workers-c.stuck < c.inFlight; need-- {
		c.workers++
		c.takers++
		go c.work()
	}
}

// attemptCtx returns the context and deadline for an attempt of l starting
// now: HandlerTimeout from now, rounded up to the granule, and shared by the
// attempts of l that start within that granule. c.mu is held.
func (c *Consumer) attemptCtx(l *lane, now time.Time) (context.Context, time.Time) {
	earliest := now.Add(c.cfg.HandlerTimeout)
	if l.hctx != nil && !l.hdeadline.Before(earliest) && l.hdeadline.Sub(earliest) <= c.gran {
		return l.hctx, l.hdeadline
	}
	d := earliest.Add(c.gran)
	// The context is released when its deadline passes or the lane's
	// context ends, whichever is first; nothing else may cancel it while
	// attempts share it.
	ctx, cancel := context.WithDeadline(l.ctx, d)
	l.hctx, l.hdeadline = ctx, d
	// One watchdog per granule rather than per attempt: it gives up on the
	// attempts of this granule whose handler ignores the deadline. The
	// lane keeps it, so dropping the lane stops it.
	var t *time.Timer
	t = time.AfterFunc(time.Until(d)+handlerSlack, func() {
		cancel()
		c.detachOverruns(l, d, t)
	})
	l.watchdogs = append(l.watchdogs, t)
	return ctx, d
}

// detachOverruns gives up on l's attempts with the given deadline whose
// handler is still running handlerSlack after it: each fails retryably on
// its own goroutine, and the worker stuck in the handler is replaced (the
// handler's result, whenever it returns, is dropped).
func (c *Consumer) detachOverruns(l *lane, deadline time.Time, t *time.Timer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(l.watchdogs, t); i >= 0 {
		l.watchdogs = slices.Delete(l.watchdogs, i, i+1)
	}
	if l.abandoned || l.inFlight == 0 {
		return
	}
	for _, it := range l.items {
		if it.state != stateRunning || !it.deadline.Equal(deadline) || !it.hstate.CompareAndSwap(hRunning, hDetached) {
			continue
		}
		c.stuck++
		err := fmt.Errorf("handler timed out after %s: it ignored its context and had not returned %s after its deadline", c.cfg.HandlerTimeout, handlerSlack)
		go c.failed(l, it, it.ev, err, false)
	}
}

// work runs started records until the consumer's base context ends.
func (c *Consumer) work() {
	c.mu.Lock()
	taker := true // spawned or signaled by dispatch
	for {
		if taker {
			c.takers--
			taker = false
		}
		if c.runHead == len(c.runq) {
			if c.base.Err() != nil {
				c.workers--
				c.mu.Unlock()
				return
			}
			c.idleW++
			c.wake.Wait()
			taker = true
			continue
		}
		t := c.runq[c.runHead]
		c.runq[c.runHead] = task{}
		c.runHead++
		if c.runHead == len(c.runq) {
			c.runq, c.runHead = c.runq[:0], 0
		} else {
			c.dispatch() // more queued: pass the baton
		}
		c.mu.Unlock()
		c.process(t.l, t.it) // returns holding c.mu: one lock per record
	}
}

// release gives back a record's in-flight slot on l. c.mu is held.
func (c *Consumer) release(l *lane) {
	l.inFlight--
	c.inFlight--
}

// finish records the end of it; done says it is finished for good (skipped
// as a duplicate, or moved to another topic and acknowledged). onWorker says
// the caller is a worker: it takes the next queued record itself, and
// finish returns still holding c.mu for that (see work).
func (c *Consumer) finish(l *lane, it *item, done, onWorker bool) {
	c.mu.Lock()
	c.release(l)
	dequeued := done && !l.abandoned
	if dequeued {
		it.state = stateDone
		l.dequeue(it)
		l.advance()
	}
	c.selfTake = onWorker
	c.settleAt(l, time.Time{})
	c.selfTake = false
	if dequeued {
		c.wakeDeferred(l, it, time.Time{})
	}
	if !onWorker {
		c.mu.Unlock()
	}
}

// handled records, on the worker, that it was handled and its dedup record
// is on its way: its slot is free for other keys, but the next record of
// its key and id starts, and its offset counts as finished, only once acked
// says the record is acknowledged. Releasing the key earlier would let a
// crash in between re-run it after its successor (the successor would not
// be deduplicated yet either): per-key order must hold across redelivery
// too. It returns holding c.mu (see work).
func (c *Consumer) handled(l *lane, it *item, now time.Time) {
	c.mu.Lock()
	c.release(l)
	dequeued := false
	switch {
	case !it.acked:
		l.acking++
		c.acking++
		// Also on an abandoned lane (abandoned after process checked it):
		// acked counts acking down only for a record in this state.
		it.state = stateAcking
	case it.ackErr == nil && !l.abandoned: // acknowledged already
		it.state = stateDone
		l.dequeue(it)
		l.advance()
		dequeued = true
	}
	c.selfTake = true
	c.settleAt(l, now)
	c.selfTake = false
	if dequeued {
		c.wakeDeferred(l, it, now)
	}
}

// acked records the outcome of a handled record's dedup write: err is nil
// once the broker acknowledged it, else the lane's work was abandoned. The
// write starts before handled runs, so the outcome may come first: then
// handled finishes the record. now is the current time. c.mu is held.
func (c *Consumer) acked(l *lane, it *item, err error, now time.Time) {
	if err == nil {
		l.m.processed.Inc()
	}
	if it.state == stateRunning {
		it.acked, it.ackErr = true, err
		return
	}
	l.acking--
	c.acking--
	c.drainedCheck(l)
	if err == nil && !l.abandoned {
		it.state = stateDone
		readied := l.dequeue(it)
		l.advance()
		// The next record of its key and id may start, and fewer
		// records held may resume fetching. Its slot was freed by
		// handled, and slots freed by acks are handed out by
		// applyAcks's wakeStarved: nothing else changed for l.
		if readied || (l.paused && !l.overHeld()) {
			c.scheduleAt(l, now)
		}
		c.wakeDeferred(l, it, now)
	}
}

// advance moves l's commit point past its finished prefix, never past an
// unfinished record (after a data loss, records read again reuse the
// offsets of ones read before: see dataLoss). c.mu is held.
func (l *lane) advance() {
	for len(l.items) > 0 && l.items[0].state == stateDone {
		r := l.items[0].rec
		l.commitAt, l.epoch, l.dirty = r.Offset+1, r.LeaderEpoch, true
		l.items[0] = nil
		l.items = l.items[1:]
		l.popped++
	}
	if len(l.items) == 0 {
		// Every entry is of a popped record.
		l.byKey.reset()
		l.byID.reset()
	}
	if len(l.items) > 0 && l.items[0].rec.Offset < l.commitAt {
		r := l.items[0].rec
		l.commitAt, l.epoch, l.dirty = r.Offset, r.LeaderEpoch, true
	}
}

// drainedCheck wakes whoever waits for l or the consumer to drain. c.mu is
// held.
func (c *Consumer) drainedCheck(l *lane) {
	if l.inFlight == 0 && l.acking == 0 && l.drained != nil {
		close(l.drained)
		l.drained = nil
	}
	if c.stopping && c.inFlight == 0 && c.acking == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// settleAt wakes whoever waits for l or the consumer to drain and starts
// what may start now; now is the current time (zero: read the clock). c.mu
// is held.
func (c *Consumer) settleAt(l *lane, now time.Time) {
	c.drainedCheck(l)
	c.scheduleAt(l, now)
	c.wakeStarved(l, now)
}

// full says no record may start: MaxInFlight records run, or MaxUnfinished
// are started and not finished. c.mu is held.
func (c *Consumer) full() bool {
	return c.inFlight >= c.maxAll || c.inFlight+c.acking >= c.maxUnf
}

// wakeStarved starts waiting records of lanes other than l once a slot is
// free again after the consumer was full. c.mu is held.
func (c *Consumer) wakeStarved(l *lane, now time.Time) {
	if !c.starved || c.full() {
		return
	}
	c.starved = false
	for _, o := range c.lanes {
		if o != l && o.waiting > 0 {
			c.scheduleAt(o, now)
		}
		if c.full() {
			break
		}
	}
}

// process handles one record on a worker and routes it on failure. It
// returns holding c.mu, so the worker takes its next record without locking
// again (see work).
func (c *Consumer) process(l *lane, it *item) {
	const onWorker = true
	ctx := l.ctx
	if ctx.Err() != nil {
		c.finish(l, it, false, onWorker) // abandoned while queued
		return
	}
	r := it.rec
	if l.leftover && headers.Value(r.Headers, headers.OriginalTopic) != c.names.Base {
		// Not a retry of this pipeline: most likely the main topic of a
		// pipeline whose base is named like this tier, caught before its
		// .dlq and .dedup existed. Its own consumers handle it.
		c.rl.Log(context.Background(), slog.LevelWarn, "foreign:"+r.Topic, "record in a leftover retry tier is not a retry of this pipeline; skipped",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "original_topic", headers.Printable(headers.Value(r.Headers, headers.OriginalTopic)),
			"next", "if it belongs to another pipeline, nothing to do; else delete the topic once the pipeline runs with the tiers it needs")
		c.finish(l, it, true, true)
		return
	}
	ev := it.ev
	start := time.Now()
	if it.ev.EventID != "" && c.dedup.seen(it.dp, it.dig, ev, start) {
		l.m.duplicate.Inc()
		c.m.duplicates.Inc()
		c.finish(l, it, true, onWorker)
		return
	}

	herr, ok := c.call(l, it, ev)
	// time.Now reads the wall and the monotonic clock, time.Since only
	// the latter: 3.38 -> 3.29 µs of CPU per no-op event on one core.
	took := time.Since(start)
	// Also an attempt the watchdog gave up on: its handler has only now
	// returned, and its whole time is the one worth seeing when lag grows.
	l.m.latency.Observe(took.Seconds())
	if !ok {
		return // the watchdog routed the attempt; c.mu held
	}
	end := start.Add(took)
	if ctx.Err() != nil {
		c.finish(l, it, false, onWorker) // abandoned: the partition's next owner gets it again
		return
	}
	if herr != nil {
		c.failed(l, it, ev, herr, true)
		return
	}
	if it.ev.EventID == "" {
		l.m.processed.Inc() // nothing to remember
		c.finish(l, it, true, onWorker)
		return
	}
	// The slot is free now. The id is remembered, and the offset may be
	// committed, only once the dedup record is acknowledged (guarantee 2):
	// an entry for an abandoned write would make this member skip the
	// event's redelivery as a duplicate, with no dedup record anywhere.
	// Records of this id in this lane wait for that acknowledgement.
	c.writeProcessed(l, it, end)
	c.handled(l, it, end)
}

// failed routes a failed attempt to the next retry tier or the DLQ and
// finishes it once the broker acknowledged that record.
func (c *Consumer) failed(l *lane, it *item, ev Event, herr error, onWorker bool) {
	ctx := l.ctx
	r := it.rec
	fwd, outcome := c.forward(l, r, ev, herr, time.Now())
	if err := c.produce(ctx, fwd); err != nil {
		c.finish(l, it, false, onWorker)
		return
	}
	if outcome == OutcomeDeadLettered {
		if err := c.dedup.record(ctx, r.Partition, ev.EventID, outcomeDeadLettered); err != nil {
			c.finish(l, it, false, onWorker)
			return
		}
		c.rl.Log(context.Background(), slog.LevelWarn, "dlq:"+headers.Value(fwd.Headers, headers.ErrorClass), "event dead-lettered",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "event_id", ev.EventID,
			"class", headers.Value(fwd.Headers, headers.ErrorClass), "err", LogText(herr),
			"next", c.dlqNext)
	} else {
		// Rate-limited per tier: a failing downstream shows up in the log
		// within one interval, not once per event.
		args := []any{"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "event_id", ev.EventID,
			"to", fwd.Topic, "due_at", headers.Value(fwd.Headers, headers.DueAt), "err", LogText(herr)}
		// Without this, a due_at before the asked-for time reads as a bug.
		if _, k, _ := c.names.RoleOf(fwd.Topic); k >= 1 && k <= len(c.cfg.Plan.RetryDelays) {
			if ra, d := retryAfterOf(herr), c.cfg.Plan.RetryDelays[k-1]; ra > d {
				args = append(args, "note", fmt.Sprintf("the service asked for %s (Retry-After), longer than any retry delay from here on; the event waits %s, the delay of retry-%d. Raise the last --retry-delays entry to give it that", ra, d, k))
			}
		}
		c.rl.Log(context.Background(), slog.LevelWarn, "retry:"+fwd.Topic, "handler failed; event sent to a retry tier", args...)
	}
	c.m.events.WithLabelValues(r.Topic, outcome).Inc()
	c.finish(l, it, true, onWorker)
}

// call runs the handler under the attempt's context, turning a panic or an
// overrun into a retryable error. ok is false when the watchdog gave up on
// the attempt meanwhile: the record is no longer this worker's.
func (c *Consumer) call(l *lane, it *item, ev Event) (err error, ok bool) {
	it.hstate.Store(hRunning)
	err = c.invoke(it.hctx, ev)
	if !it.hstate.CompareAndSwap(hRunning, hReturned) {
		c.mu.Lock() // kept: see work
		c.stuck--
		return nil, false
	}
	if err != nil && l.ctx.Err() == nil && errors.Is(it.hctx.Err(), context.DeadlineExceeded) {
		// An overrun is retryable, whatever the handler made of it.
		return &overrunError{c.cfg.HandlerTimeout, err}, true
	}
	return err, true
}

// overrunError is an attempt that outlived its deadline: retryable, so it
// hides the handler's Permanent or RetryAfter mark, but a downstream's
// response stays findable for LogText, which leaves its body out of logs.
type overrunError struct {
	timeout time.Duration
	err     error
}

func (e *overrunError) Error() string {
	return fmt.Sprintf("handler timed out after %s: %v", e.timeout, e.err)
}

func (e *overrunError) As(target any) bool {
	if t, ok := target.(**responseError); ok {
		return errors.As(e.err, t)
	}
	return false
}

// invoke calls the handler, turning a panic into an error.
func (c *Consumer) invoke(ctx context.Context, ev Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.rl.Log(context.Background(), slog.LevelError, "panic", "handler panicked; the event is retried",
				"topic", ev.Topic, "partition", ev.Partition, "offset", ev.Offset, "panic", fmt.Sprint(p),
				"stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return c.cfg.Handler.Handle(ctx, ev)
}

// forward builds the retry or DLQ record for a failed attempt.
func (c *Consumer) forward(l *lane, r *kgo.Record, ev Event, herr error, now time.Time) (*kgo.Record, string) {
	hs := slices.Clone(r.Headers)
	fromMain := l.role == topics.RoleMain
	if _, ok := headers.Get(hs, headers.OriginalTopic); fromMain || !ok {
		hs = headers.Set(hs, headers.OriginalTopic, r.Topic)
		hs = headers.Set(hs, headers.OriginalPartition, strconv.Itoa(int(r.Partition)))
		hs = headers.Set(hs, headers.OriginalOffset, strconv.FormatInt(r.Offset, 10))
		hs = headers.Set(hs, headers.OriginalTimestamp, headers.FormatTime(r.Timestamp))
	}
	if _, ok := headers.Get(hs, headers.FirstFailedAt); fromMain || !ok {
		hs = headers.Set(hs, headers.FirstFailedAt, headers.FormatTime(now))
	}
	hs = headers.Set(hs, headers.Attempt, strconv.Itoa(ev.Attempt+1))
	hs = headers.Set(hs, headers.FailedAt, headers.FormatTime(now))
	hs = headers.Set(hs, headers.Error, headers.Cut(herr.Error(), headers.MaxErrorLen))
	hs = headers.Set(hs, headers.ConsumerGroup, c.group)

	out := &kgo.Record{Partition: r.Partition, Key: r.Key, Value: r.Value}
	nextTier := l.tier + 1
	var class, outcome string
	switch {
	case IsPermanent(herr):
		out.Topic, class, outcome = c.names.DLQ, headers.ClassPermanent, OutcomeDeadLettered
	case nextTier > len(c.names.Retries):
		out.Topic, class, outcome = c.names.DLQ, headers.ClassExhausted, OutcomeDeadLettered
	default:
		// A Retry-After longer than the next tier's delay moves the event
		// to the first later tier whose delay covers it (else the last):
		// every record of a tier then waits that tier's delay, so due
		// times stay in offset order and one long wait never holds up
		// the partition behind it.
		delays := c.cfg.Plan.RetryDelays
		tier := nextTier
		for ra := retryAfterOf(herr); tier < len(delays) && delays[tier-1] < ra; tier++ {
		}
		out.Topic, class, outcome = c.names.Retry(tier), headers.ClassRetryable, OutcomeRetried
		hs = headers.Set(hs, headers.DueAt, headers.FormatTime(now.Add(delays[tier-1])))
	}
	if outcome == OutcomeDeadLettered {
		hs = headers.Del(hs, headers.DueAt)
	}
	hs = headers.Set(hs, headers.ErrorClass, class)
	out.Headers = hs
	return out, outcome
}

// produce writes rec and waits for the broker's acknowledgement, retrying
// with backoff until it succeeds or ctx (the lane) is done.
func (c *Consumer) produce(ctx context.Context, rec *kgo.Record) error {
	return retryBackoff(ctx, func() error {
		r := &kgo.Record{Topic: rec.Topic, Partition: rec.Partition, Key: rec.Key, Value: rec.Value, Headers: rec.Headers}
		return c.prod.ProduceSync(ctx, r).FirstErr()
	}, func(err error) { c.produceFailed(rec, err) })
}

// produceFailed counts and logs (rate-limited) a failed try to write rec.
func (c *Consumer) produceFailed(rec *kgo.Record, err error) {
	c.m.produceErrors.WithLabelValues(rec.Topic).Inc()
	if strings.Contains(err.Error(), "invalid record partitioning choice") {
		// franz-go's error for a partition its metadata does not know yet
		// (partitions were added): ask now rather than in 5 minutes.
		c.prod.ForceMetadataRefresh()
	}
	msg := "cannot write record; retrying, the source offset stays uncommitted"
	if errors.Is(err, kerr.MessageTooLarge) {
		// The producer's batch limit follows the topics' max.message.bytes
		// as read at start: a raised limit takes effect on a restart.
		msg += "; the record is larger than the topic's max.message.bytes: raise it (hookline topics check shows the planned value), then restart this process, which reads the limit at start"
	}
	c.rl.Log(context.Background(), slog.LevelWarn, "produce:"+rec.Topic, msg,
		"topic", rec.Topic, "partition", rec.Partition, "err", err)
}

// retryBackoff runs fn until it succeeds or ctx is done, calling failed after
// each failure and waiting between tries: 100 ms, doubling up to 5 s.
func retryBackoff(ctx context.Context, fn func() error, failed func(error)) error {
	backoff := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		failed(err)
		if err := ctxtime.Sleep(ctx, backoff); err != nil {
			return err
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// writeProcessed writes the "processed" dedup record of it without waiting: its
// outcome (nil once acknowledged, or the lane context's error) goes to
// applyAcks. Failed tries are retried with backoff, as produce does.
func (c *Consumer) writeProcessed(l *lane, it *item, now time.Time) {
	// The record lives in the item (one allocation less per event); its
	// key is the id's packed copy (packIDs), which nothing writes.
	c.dedup.processedRecord(&it.drec, it.rec.Partition, stringBytes(it.ev.EventID), now)
	it.handedMs = now.UnixMilli()
	it.lane = l
	c.prod.Produce(l.ctx, &it.drec, c.onProcessed)
}

// processedAcked is the promise of every "processed" dedup record (see
// writeProcessed); one method value for all of them rather than two
// closures per event (~2 % of the no-op consumer's CPU).
func (c *Consumer) processedAcked(rec *kgo.Record, err error) {
	it := itemOfDrec(rec)
	ctx := it.lane.ctx
	if err != nil && ctx.Err() == nil {
		c.retryAsync(ctx, rec, err, func(err error) { c.processedDone(it, err) })
		return
	}
	if err != nil {
		err = ctx.Err()
	}
	c.processedDone(it, err)
}

// processedDone hands the outcome of the dedup write of it to applyAcks.
func (c *Consumer) processedDone(it *item, err error) {
	c.acks.push(ackEv{it.lane, it, err})
}

// rememberProcessed remembers the ids of the acknowledged dedup writes in
// evs, one lock per run of one partition's (acks come in produce-response
// order, by partition): a lock per ack on the producer's goroutine
// contended with the workers' dedup lookups.
func (c *Consumer) rememberProcessed(evs []ackEv) {
	var st *dedupPart
	for _, ev := range evs {
		if ev.err != nil || ev.it.dp == nil {
			continue
		}
		if ev.it.dp != st {
			if st != nil {
				st.mu.Unlock()
			}
			st = ev.it.dp
			st.mu.Lock()
		}
		st.put(ev.it.dig, c.dedup.expiryMs(ev.it.handedMs), false)
	}
	if st != nil {
		st.mu.Unlock()
	}
}

// itemOfDrec returns the item whose drec field rec is.
func itemOfDrec(rec *kgo.Record) *item {
	return (*item)(unsafe.Add(unsafe.Pointer(rec), -int(unsafe.Offsetof(item{}.drec))))
}

// retryAsync continues a failed asynchronous produce of rec on its own
// goroutine, as produce does (backoff, until acknowledged or ctx is done),
// and calls done with the outcome.
func (c *Consumer) retryAsync(ctx context.Context, rec *kgo.Record, err error, done func(error)) {
	c.produceFailed(rec, err)
	go func() {
		if err := ctxtime.Sleep(ctx, 100*time.Millisecond); err != nil {
			done(err)
			return
		}
		done(c.produce(ctx, rec))
	}()
}

// ackEv is the outcome of a handled record's dedup write.
type ackEv struct {
	l   *lane
	it  *item
	err error
}

// ackQueue collects dedup-write outcomes from the producer's callbacks, so
// that one goroutine applies each batch of them under one c.mu lock.
type ackQueue struct {
	mu   sync.Mutex
	q    []ackEv
	wake chan struct{} // capacity 1
}

// push queues an outcome for applyAcks.
func (a *ackQueue) push(ev ackEv) {
	a.mu.Lock()
	a.q = append(a.q, ev)
	first := len(a.q) == 1
	a.mu.Unlock()
	if first {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// applyAcks applies queued dedup-write outcomes until the base context
// ends (Run's shutdown has waited for them by then).
func (c *Consumer) applyAcks() {
	var batch []ackEv
	for {
		select {
		case <-c.acks.wake:
		case <-c.base.Done():
			return
		}
		c.acks.mu.Lock()
		batch, c.acks.q = c.acks.q, batch[:0]
		c.acks.mu.Unlock()
		now := time.Now() // one clock read per batch
		// In chunks: a batch can hold thousands of acks, and the workers
		// wait for c.mu meanwhile.
		for lo := 0; lo < len(batch); lo += ackChunk {
			hi := min(lo+ackChunk, len(batch))
			// Before the acks are applied, which lets the next record
			// of each id start.
			c.rememberProcessed(batch[lo:hi])
			c.mu.Lock()
			for i := lo; i < hi; i++ {
				ev := batch[i]
				c.acked(ev.l, ev.it, ev.err, now)
				batch[i] = ackEv{}
			}
			c.wakeStarved(nil, now) // once per chunk: acks free MaxUnfinished room
			c.mu.Unlock()
		}
	}
}

// ackChunk is how many acks applyAcks applies under one c.mu lock.
const ackChunk = 256

// onAssigned creates lanes for new partitions and starts restoring their
// dedup state.
func (c *Consumer) onAssigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	defer c.joined.Store(true) // after the lanes and the dedup restore are set up
	c.memberLost.Store(false)
	unpartnered, why, err := c.unpartnered(cl)
	if prev := c.held.Load(); err != nil && prev != nil {
		unpartnered, why = prev.parts, prev.why // fail closed; tick asks again
	}
	held := map[string][]int32{}
	c.mu.Lock()
	parts := map[int32]bool{}
	for t, ps := range assigned {
		role, tier, ok := c.roleOf(t)
		if !ok {
			continue
		}
		for _, p := range ps {
			if unpartnered[p] {
				// No retry, DLQ or dedup partition p to write to: its
				// events wait, uncommitted, until the counts agree.
				held[t] = append(held[t], p)
				continue
			}
			k := tp{t, p}
			if old := c.lanes[k]; old != nil {
				c.dropLane(old)
			}
			ctx, cancel := context.WithCancel(c.base)
			_, leftover := c.extra[t]
			l := &lane{tp: k, role: role, tier: tier, leftover: leftover, commitAt: -1, epoch: -1, ctx: ctx, cancel: cancel,
				m: laneMetrics{
					processed: c.m.events.WithLabelValues(t, OutcomeProcessed),
					duplicate: c.m.events.WithLabelValues(t, OutcomeDuplicate),
					latency:   c.m.latency.WithLabelValues(t),
				}}
			c.lanes[k] = l
			g := c.groups[p]
			if g == nil {
				g = &laneGroup{}
				c.groups[p] = g
			}
			g.lanes = append(g.lanes, l)
			l.g = g
			parts[p] = true
		}
	}
	// The dedup state of these partition numbers is restored again: lanes
	// already owning one (on another topic) wait for it too.
	for k, l := range c.lanes {
		if parts[k.part] {
			l.dp = nil
		}
	}
	c.mu.Unlock()
	// A partition paused by an earlier assignment must not stay paused.
	cl.ResumeFetchPartitions(assigned)
	c.holdBack(cl, held, unpartnered, why)
	c.dedup.assigned(parts)
	// Info: only on a rebalance, and the one place an operator sees which
	// member owns what.
	c.log.Info("partitions assigned", "partitions", sortedParts(parts), "owned", sortedParts(c.ownedParts()))
}

// sortedParts lists the partition numbers of a set in order.
func sortedParts(set map[int32]bool) []int32 {
	out := make([]int32, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// onRevoked stops new work on the revoked partitions, waits for their
// in-flight records up to ShutdownGrace (then abandons them), commits what
// finished and forgets the partitions.
func (c *Consumer) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	ls, drained := c.markRevoked(revoked)
	if len(ls) > 0 {
		deadline := time.NewTimer(c.cfg.ShutdownGrace)
		defer deadline.Stop()
	wait:
		for _, ch := range drained {
			select {
			case <-ch:
			case <-deadline.C:
				c.log.Warn("revoke grace expired; abandoning in-flight events of revoked partitions, they will be redelivered")
				break wait
			}
		}
	}
	if err := c.commitAndDrop(ctx, ls); err != nil {
		c.rl.Log(context.Background(), slog.LevelWarn, "commit:revoked", "offset commit of revoked partitions failed: their next owner starts at the offsets committed before, and dedup skips the events already processed", "err", err)
	}
	cl.ResumeFetchPartitions(revoked)
	owned := c.ownedParts()
	c.dedup.revoked(owned)
	revokedParts := map[int32]bool{}
	for _, ps := range revoked {
		for _, p := range ps {
			revokedParts[p] = true
		}
	}
	if len(revokedParts) > 0 {
		if c.phase.Load() == phaseStopping && c.cfg.InstanceID != "" {
			// franz-go releases them locally on close, but a static
			// member stays in the group: nobody else takes them yet.
			c.log.Info("partitions released while stopping; as a static member (--instance-id) this process keeps them in the group until it is back or its session times out",
				"partitions", sortedParts(revokedParts), "instance_id", c.cfg.InstanceID, "session_timeout", c.cfg.SessionTimeout.String())
			return
		}
		c.log.Info("partitions revoked", "partitions", sortedParts(revokedParts), "owned", sortedParts(owned))
	}
}

// commitAndDrop commits what finished on ls (bounded to 10 s) and then
// forgets the lanes. It returns the commit's error.
func (c *Consumer) commitAndDrop(ctx context.Context, ls []*lane) error {
	var err error
	if len(ls) > 0 { // commit(nil) would mean every lane
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = c.commit(cctx, ls)
		cancel()
	}
	c.dropLanes(ls)
	return err
}

// unpartnered returns the partition numbers that exist on a consumed topic
// of the pipeline but not on all of its topics (someone added partitions
// to part of it while it ran): records there could be handled but their
// retry, DLQ or dedup record could not be written. why says so for the
// log, with the fix. Extra partitions of the DLQ or dedup topic alone
// harm nothing and are not reported.
func (c *Consumer) unpartnered(cl *kgo.Client) (map[int32]bool, string, error) {
	ctx, cancel := context.WithTimeout(c.base, 5*time.Second)
	defer cancel()
	// A metadata request of its own: kadm's answers from a cache up to 5 s
	// old, which can predate the change that caused this rebalance.
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range append(c.names.All(), c.read[1+len(c.names.Retries):]...) { // + extra tiers
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, "", fmt.Errorf("partition counts: %w", err)
	}
	consumed := map[string]bool{}
	for _, name := range c.read {
		consumed[name] = true
	}
	var counts []string
	lo, hi, top := int32(math.MaxInt32), int32(0), int32(0)
	for _, t := range resp.Topics {
		if t.ErrorCode != 0 || t.Topic == nil {
			continue
		}
		n := int32(len(t.Partitions))
		lo, top = min(lo, n), max(top, n)
		if consumed[*t.Topic] {
			hi = max(hi, n)
		}
		counts = append(counts, fmt.Sprintf("%s: %d", *t.Topic, n))
	}
	if lo >= hi {
		return nil, "", nil
	}
	slices.Sort(counts)
	bad := map[int32]bool{}
	for p := lo; p < hi; p++ {
		bad[p] = true
	}
	return bad, fmt.Sprintf("pipeline %s is no longer co-partitioned (%s): partitions %d to %d are not consumed and their events wait; %s",
		c.names.Base, strings.Join(counts, ", "), lo, hi-1, topics.CoPartitionFixAt(top, strings.Join(c.cfg.Kafka.Brokers, ","))), nil
}

// holdBack pauses the assigned partitions in held (by topic) and notes
// them for tick, the log and hookline_consumer_partitions_held. Ready is
// not affected: the other partitions are consumed, and in run a consumer's
// Ready also gates the receiver, which keeps storing events.
func (c *Consumer) holdBack(cl *kgo.Client, held map[string][]int32, parts map[int32]bool, why string) {
	n := 0
	for _, ps := range held {
		n += len(ps)
	}
	c.m.held.Set(float64(n))
	if n == 0 {
		c.held.Store(nil)
		return
	}
	cl.PauseFetchPartitions(held)
	c.held.Store(&heldParts{parts: parts, n: n, why: why, checked: time.Now()})
	c.log.Error(why, "held", held)
}

// recheckHeld looks at the partition counts again while partitions are held
// back, and asks for a rebalance once they agree (raising the DLQ or dedup
// topic, which nobody consumes, would not cause one).
func (c *Consumer) recheckHeld() {
	h := c.held.Load()
	if h == nil || time.Since(h.checked) < c.heldRecheck {
		return
	}
	bad, why, err := c.unpartnered(c.cl)
	switch {
	case err != nil:
		why = h.why // unknown: still held
	case len(bad) == 0:
		c.log.Info("pipeline co-partitioned again; rebalancing to consume the held partitions")
		c.held.Store(nil)
		// The producer must learn the new partitions too, or it refuses
		// records for them until its metadata ages out (5 min).
		c.prod.ForceMetadataRefresh()
		c.cl.ForceRebalance()
		return
	}
	c.held.Store(&heldParts{parts: h.parts, n: h.n, why: why, checked: time.Now()})
	c.rl.Log(context.Background(), slog.LevelError, "held", why, "held_partitions", h.n)
}

// dropLanes forgets ls.
func (c *Consumer) dropLanes(ls []*lane) {
	c.mu.Lock()
	for _, l := range ls {
		c.dropLane(l)
	}
	c.mu.Unlock()
}

// onLost abandons lost partitions at once: another member may own them
// already, so nothing is committed.
func (c *Consumer) onLost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	c.memberLost.Store(true)
	ls, _ := c.markRevoked(lost)
	c.dropLanes(ls)
	cl.ResumeFetchPartitions(lost)
	c.dedup.revoked(c.ownedParts())
	// franz-go also calls this with nothing lost, on every failed
	// rejoin while the broker is away: once is enough to say that.
	if len(lost) == 0 {
		c.rl.Log(context.Background(), slog.LevelWarn, "lost:none", "consumer group membership lost (is Kafka reachable?); rejoining")
		return
	}
	c.log.Warn("partitions lost; their in-flight work is abandoned and will be redelivered", "partitions", lost)
}

// markRevoked stops new work on the given partitions and returns their lanes
// and, for lanes with work in flight, channels closed when it is done.
func (c *Consumer) markRevoked(m map[string][]int32) ([]*lane, []chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ls []*lane
	var drained []chan struct{}
	for t, ps := range m {
		for _, p := range ps {
			l := c.lanes[tp{t, p}]
			if l == nil {
				continue
			}
			l.revoked = true
			if l.timer != nil {
				l.timer.Stop()
				l.timer = nil
			}
			if l.inFlight > 0 || l.acking > 0 {
				if l.drained == nil {
					l.drained = make(chan struct{})
				}
				drained = append(drained, l.drained)
			}
			ls = append(ls, l)
		}
	}
	return ls, drained
}

// dropLane abandons l's remaining work and forgets it. c.mu is held.
func (c *Consumer) dropLane(l *lane) {
	l.revoked, l.abandoned = true, true
	c.setRunnable(l, 0)
	for _, t := range l.watchdogs {
		t.Stop()
	}
	l.watchdogs = nil
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	l.cancel()
	if c.lanes[l.tp] == l {
		delete(c.lanes, l.tp)
	}
	if g := l.g; g != nil {
		l.setDeferred(false)
		if i := slices.Index(g.lanes, l); i >= 0 {
			g.lanes = slices.Delete(g.lanes, i, i+1)
		}
		if len(g.lanes) == 0 && c.groups[l.part] == g {
			delete(c.groups, l.part)
		}
		// Its abandoned records no longer hold back their copies.
		c.wakeDeferred(l, nil, time.Time{})
		l.g = nil
	}
}

// ownedParts returns the partition numbers this member owns on any topic.
func (c *Consumer) ownedParts() map[int32]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int32]bool{}
	for k := range c.lanes {
		out[k.part] = true
	}
	return out
}

// commit commits the finished offsets of the given lanes, or of every live
// lane when ls is nil.
func (c *Consumer) commit(ctx context.Context, ls []*lane) error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.mu.Lock()
	if ls == nil {
		for _, l := range c.lanes {
			if !l.revoked {
				ls = append(ls, l)
			}
		}
	}
	offs := map[string]map[int32]kgo.EpochOffset{}
	var sent []*lane
	for _, l := range ls {
		if !l.dirty || l.commitAt < 0 {
			continue
		}
		if offs[l.topic] == nil {
			offs[l.topic] = map[int32]kgo.EpochOffset{}
		}
		offs[l.topic][l.part] = kgo.EpochOffset{Epoch: l.epoch, Offset: l.commitAt}
		l.dirty = false
		sent = append(sent, l)
	}
	c.mu.Unlock()
	if len(sent) == 0 {
		return nil
	}
	var cerr error
	c.cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerr.ErrorForCode(p.ErrorCode); e != nil && cerr == nil {
					cerr = fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, e)
				}
			}
		}
	})
	if cerr != nil {
		c.m.commitErrors.Inc()
		c.mu.Lock()
		for _, l := range sent {
			l.dirty = true
		}
		c.mu.Unlock()
	}
	return cerr
}

// tick commits periodically and refreshes the gauges.
func (c *Consumer) tick(ctx context.Context) {
	t := time.NewTicker(c.cfg.CommitInterval)
	defer t.Stop()
	gauges := time.NewTicker(5 * time.Second)
	defer gauges.Stop()
	var refresh sync.WaitGroup
	defer refresh.Wait() // before Run closes the client
	var refreshing atomic.Bool
	c.updateGauges()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := c.commit(cctx, nil); err != nil {
				c.rl.Log(context.Background(), slog.LevelWarn, "commit", "offset commit failed; the next commit covers it", "err", err)
			}
			cancel()
		case <-gauges.C:
			if refreshing.CompareAndSwap(false, true) {
				// Off this goroutine: a slow broker must not delay commits.
				refresh.Go(func() {
					defer refreshing.Store(false)
					if ends := c.endOffsets(ctx); ends != nil {
						c.mu.Lock()
						c.ends = ends
						c.mu.Unlock()
					}
				})
			}
			c.updateGauges()
			c.recheckHeld()
		}
		c.dedup.maintain(ctx)
	}
}

// updateGauges refreshes lag and the retry-tier waiting gauges.
func (c *Consumer) updateGauges() {
	lag := map[string]int64{}
	waiting := make([]int64, c.maxTier+1)
	oldest := make([]time.Time, c.maxTier+1)
	c.mu.Lock()
	for key, l := range c.lanes {
		pos := l.next
		switch {
		case len(l.items) > 0:
			pos = l.items[0].rec.Offset
		case l.commitAt >= 0:
			pos = l.commitAt
		case l.next == 0:
			// No record fetched since the assignment, but a fetch said
			// where the log ends: a fetch below the end returns records,
			// so this one was at the end. (Counting from 0 made a restart
			// report a tier's whole history as lag and as waiting.)
			pos = l.hw
		}
		// A paused partition's last fetch is old: records written since
		// count through the log's end offset, once the lane's position is
		// known (before its first record, pos is not).
		end := l.hw
		if len(l.items) > 0 || l.commitAt >= 0 {
			end = max(end, c.ends[key])
		}
		if end > pos {
			lag[l.topic] += end - pos
		}
		if l.role == topics.RoleRetry {
			started := int64(0) // running, acking, or done past an unfinished one
			for _, it := range l.items {
				if it.state != stateWaiting {
					started++
					continue
				}
				if !it.due.IsZero() && (oldest[l.tier].IsZero() || it.due.Before(oldest[l.tier])) {
					oldest[l.tier] = it.due
				}
			}
			waiting[l.tier] += max(end-pos-started, 0)
		}
	}
	c.mu.Unlock()
	for _, t := range c.read {
		c.m.lag.WithLabelValues(t).Set(float64(lag[t]))
	}
	for k := 1; k <= c.maxTier; k++ {
		tier := strconv.Itoa(k)
		c.m.waiting.WithLabelValues(tier).Set(float64(waiting[k]))
		v := 0.0
		if !oldest[k].IsZero() {
			v = float64(oldest[k].UnixMilli()) / 1000
		}
		c.m.oldestDue.WithLabelValues(tier).Set(v)
	}
	c.m.dedupEntries.Set(float64(c.dedup.entries()))
}

// endOffsets returns the end offset of every consumed partition it could
// get within 3 s (the fetched high watermarks stand in for the rest), or
// nil.
func (c *Consumer) endOffsets(ctx context.Context) map[tp]int64 {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	listed, err := kadm.NewClient(c.cl).ListEndOffsets(ctx, c.read...)
	if err != nil {
		return nil
	}
	m := map[tp]int64{}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			m[tp{o.Topic, o.Partition}] = o.Offset
		}
	})
	return m
}

// shutdown stops new work, waits up to ShutdownGrace for in-flight records,
// commits what finished and leaves the group.
func (c *Consumer) shutdown() {
	c.mu.Lock()
	c.stopping = true
	for _, l := range c.lanes {
		if l.timer != nil {
			l.timer.Stop()
			l.timer = nil
		}
	}
	var idle chan struct{}
	if c.inFlight > 0 || c.acking > 0 {
		idle = make(chan struct{})
		c.idle = idle
	}
	inFlight, acking := c.inFlight, c.acking
	c.mu.Unlock()

	if idle != nil {
		c.log.Info("shutting down: waiting for in-flight events", "in_flight", inFlight, "awaiting_dedup_ack", acking, "grace", c.cfg.ShutdownGrace.Round(100*time.Millisecond).String())
		t := time.NewTimer(c.cfg.ShutdownGrace)
		select {
		case <-idle:
			t.Stop()
		case <-t.C:
			c.mu.Lock()
			n, a := c.inFlight, c.acking
			c.mu.Unlock()
			c.log.Warn("shutdown grace expired; abandoning in-flight events, they will be redelivered", "in_flight", n, "awaiting_dedup_ack", a)
		}
	}
	c.mu.Lock()
	for _, l := range c.lanes {
		l.revoked = true
	}
	ls := make([]*lane, 0, len(c.lanes))
	for _, l := range c.lanes {
		ls = append(ls, l)
	}
	c.mu.Unlock()
	cerr := c.commitAndDrop(context.Background(), ls)
	c.dedup.stop()
	c.cl.AllowRebalance()
	c.cl.Close() // leaves the group
	c.rl.Flush() // the last burst of warnings is summarised before the last line
	// Nothing is lost when the final commit cannot be made: what finished
	// is in the dedup state.
	switch {
	case !c.joined.Load():
		c.log.Info("consumer stopped before it was assigned partitions; nothing to commit")
	case c.memberLost.Load():
		c.log.Warn("consumer stopped while its group membership was lost (Kafka unreachable?): nothing could be committed at stop; after a restart the events since the last committed offsets are handed out again, and dedup skips the ones already processed")
	case cerr != nil:
		c.log.Warn("consumer stopped, but the final offset commit failed: after a restart the events since the last committed offsets are handed out again, and dedup skips the ones already processed",
			"err", cerr)
	default:
		c.log.Info("consumer stopped; offsets committed")
	}
}
