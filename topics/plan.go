package topics

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// Defaults of a pipeline plan.
var (
	// DefaultRetryDelays are the delays of retry tiers 1..3.
	DefaultRetryDelays = []time.Duration{10 * time.Second, time.Minute, 10 * time.Minute}
)

const (
	// DefaultPartitions is the partition count of every pipeline topic.
	DefaultPartitions = 12
	// DefaultRetention keeps main and retry records for 7 days.
	DefaultRetention = 7 * 24 * time.Hour
	// DefaultDLQRetention keeps dead letters for 30 days: they wait for a person.
	DefaultDLQRetention = 30 * 24 * time.Hour
	// DefaultDedupWindow is how long a processed event id is remembered:
	// Genesys re-sends to EventBridge for up to four days.
	DefaultDedupWindow = 96 * time.Hour
	// DefaultMaxMessageBytes is the max.message.bytes Create sets on the
	// main, retry and DLQ topics: the receiver's default 1 MiB body limit
	// plus HeaderRoom, and some slack for the record batch around it.
	// Kafka's own default (1,048,588) is below a 1 MiB body with its
	// headers.
	DefaultMaxMessageBytes = 1<<20 + 64<<10
	// HeaderRoom is what a pipeline record needs beyond its body: the key
	// and hookline's headers, including those a retry, DLQ or replay hop
	// adds (the error text is cut to 1 KiB). The largest body a pipeline
	// can carry is its smallest max.message.bytes minus HeaderRoom.
	HeaderRoom = 16 << 10
	// KafkaDefaultMaxMessageBytes is Kafka's default message.max.bytes,
	// assumed for a topic whose max.message.bytes cannot be read.
	KafkaDefaultMaxMessageBytes = 1048588
	// DedupMaxMessageBytes is the max.message.bytes Create sets on the
	// dedup topic: Kafka's default, set on the topic so that a lower
	// broker-wide message.max.bytes does not shrink it.
	DedupMaxMessageBytes = KafkaDefaultMaxMessageBytes
	// MinDedupMaxMessageBytes is the least max.message.bytes check accepts
	// on the dedup topic. A dedup record is an event id (at most 1 KiB) and
	// a JSON outcome of some 50 bytes, plus about 100 bytes of record and
	// batch framing; 64 KiB fits it with a wide margin. Below what a record
	// needs, the consumer cannot record outcomes, commits nothing and
	// stalls.
	MinDedupMaxMessageBytes = 64 << 10
	// MinRetention is the least retention check accepts on the main topic,
	// and on a retry tier beyond its delay: the time an event may wait for
	// a consumer that is down or behind before Kafka deletes it
	// (acknowledged, never handled: lost). See [Plan].
	MinRetention = 24 * time.Hour
	// MaxRetryDelay is the longest delay of one retry tier (30 days). A
	// longer wait is not a retry: dead-letter the event and replay it.
	// NewPlan refuses more, which also keeps the retention arithmetic far
	// from overflowing.
	MaxRetryDelay = 30 * 24 * time.Hour
)

// Config describes a pipeline's topics. The zero value of each field means
// its default.
type Config struct {
	Base              string          // default DefaultBase
	Partitions        int32           // default DefaultPartitions
	MaxMessageBytes   int32           // max.message.bytes of main, retry and DLQ topics; default DefaultMaxMessageBytes
	ReplicationFactor int16           // default -1: the broker's default.replication.factor
	RetryDelays       []time.Duration // nil: DefaultRetryDelays; its length is the tier count, so an empty non-nil slice means no retry tier (a retryable failure goes to the DLQ as exhausted); each in (0, MaxRetryDelay]
	DedupWindow       time.Duration   // default DefaultDedupWindow
	Retention         time.Duration   // main and retry topics; default DefaultRetention; at least MinRetention
	DLQRetention      time.Duration   // default DefaultDLQRetention, or the dedup window + 48h if longer
}

// Spec is one topic of a plan.
type Spec struct {
	Name    string
	Role    Role
	Tier    int // retry tier (1-based); 0 for other roles
	Configs map[string]string
}

// Plan is the full set of topics of one pipeline, with the settings they need.
//
// Retention: Create gives the main topic Config.Retention (default 7 days),
// each retry tier the longest of that and 2 x the longest retry delay +
// 24h, and the DLQ Config.DLQRetention. [Inspect] reports a finite
// retention.ms (-1, forever, always passes) shorter than:
//   - MinRetention (24h) on the main topic: events wait there while
//     consumers are down, and one deleted before it is handled is lost
//     although the sender was told it was stored;
//   - the tier's delay + MinRetention on a retry tier: a retry waits its
//     delay, then as long as a main-topic event for a consumer that is down;
//   - the dedup window + 24h on the DLQ: dedup skips redeliveries of a
//     dead-lettered event for the window, so its dead letter must outlive it.
//
// The planned retentions pass these rules; the fix check suggests restores
// the planned value.
type Plan struct {
	Names             Names
	Partitions        int32
	ReplicationFactor int16 // -1: broker default
	RetryDelays       []time.Duration
	DedupWindow       time.Duration
	Topics            []Spec // in Names.All order
}

// NewPlan validates c, fills in defaults and returns the plan.
func NewPlan(c Config) (Plan, error) {
	if c.Base == "" {
		c.Base = DefaultBase
	}
	if err := ValidateBase(c.Base); err != nil {
		return Plan{}, err
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxMessageBytes < 2*HeaderRoom {
		return Plan{}, fmt.Errorf("max.message.bytes must be at least %d, got %d", 2*HeaderRoom, c.MaxMessageBytes)
	}
	if c.Partitions < 1 {
		return Plan{}, fmt.Errorf("partitions must be at least 1, got %d", c.Partitions)
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.ReplicationFactor < -1 {
		return Plan{}, fmt.Errorf("replication factor must be positive or -1 (broker default), got %d", c.ReplicationFactor)
	}
	if c.RetryDelays == nil {
		c.RetryDelays = DefaultRetryDelays
	}
	if len(c.RetryDelays) > 99 {
		return Plan{}, fmt.Errorf("at most 99 retry tiers, got %d", len(c.RetryDelays))
	}
	for i, d := range c.RetryDelays {
		if d <= 0 {
			return Plan{}, fmt.Errorf("retry delay %d (of --retry-delays / retry_delays / Config.RetryDelays) is %s: every delay must be positive", i+1, d)
		}
		if d > MaxRetryDelay {
			return Plan{}, fmt.Errorf("retry delay %d (of --retry-delays / retry_delays / Config.RetryDelays) is %s: at most %gh (30 days) per tier; a longer wait is not a retry: give the tiers shorter delays, let the event go to the DLQ, and replay it (hookline replay) when it can succeed",
				i+1, d, MaxRetryDelay.Hours())
		}
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.DedupWindow < 0 {
		return Plan{}, fmt.Errorf("dedup window must be positive, got %s", c.DedupWindow)
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.Retention < MinRetention || c.DLQRetention < 0 {
		return Plan{}, fmt.Errorf("retention must be at least %s on the main and retry topics (got %s) and positive on the DLQ (got %s); 0 means the default",
			ShortDuration(MinRetention), c.Retention, c.DLQRetention)
	}
	if c.DLQRetention == 0 {
		// Dead letters must outlive the dedup window, which skips their
		// events' redeliveries meanwhile (topics check reports less).
		c.DLQRetention = max(DefaultDLQRetention, addSat(c.DedupWindow, 48*time.Hour))
	}
	// A retry record must outlive its delay by a wide margin, or it could be
	// deleted while it waits (for example while the consumer is down).
	maxDelay := slices.Max(append([]time.Duration{0}, c.RetryDelays...))
	retryRetention := max(c.Retention, addSat(addSat(maxDelay, maxDelay), 24*time.Hour))

	n := For(c.Base, len(c.RetryDelays))
	p := Plan{
		Names:             n,
		Partitions:        c.Partitions,
		ReplicationFactor: c.ReplicationFactor,
		RetryDelays:       slices.Clone(c.RetryDelays),
		DedupWindow:       c.DedupWindow,
	}
	p.Topics = append(p.Topics, Spec{Name: n.Base, Role: RoleMain, Configs: deleteConfigs(c.Retention, c.MaxMessageBytes)})
	for k, name := range n.Retries {
		p.Topics = append(p.Topics, Spec{Name: name, Role: RoleRetry, Tier: k + 1, Configs: deleteConfigs(retryRetention, c.MaxMessageBytes)})
	}
	p.Topics = append(p.Topics, Spec{Name: n.DLQ, Role: RoleDLQ, Configs: deleteConfigs(c.DLQRetention, c.MaxMessageBytes)})
	p.Topics = append(p.Topics, Spec{Name: n.Dedup, Role: RoleDedup, Configs: dedupConfigs(c.DedupWindow)})
	return p, nil
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// addSat returns a+b for non-negative durations, or the longest duration
// when the sum would overflow: a retention that long is as good as
// forever, where an overflowed one would be negative or wrapped.
func addSat(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// maxMessageBytes is the topic config that bounds one record batch.
const maxMessageBytes = "max.message.bytes"

func deleteConfigs(retention time.Duration, maxMessage int32) map[string]string {
	return map[string]string{
		"cleanup.policy": "delete",
		"retention.ms":   ms(retention),
		maxMessageBytes:  strconv.Itoa(int(maxMessage)),
	}
}

// dedupConfigs makes compaction actually run on a topic that is written
// slowly: the log cleaner never touches the active segment, so segments roll
// hourly; a low dirty ratio lets the cleaner start early; and tombstones stay
// for a day so a member restoring state sees the delete before it vanishes.
// max.message.bytes is DedupMaxMessageBytes.
func dedupConfigs(window time.Duration) map[string]string {
	return map[string]string{
		"cleanup.policy":            "compact",
		"segment.ms":                ms(time.Hour),
		"min.cleanable.dirty.ratio": "0.1",
		"delete.retention.ms":       ms(24 * time.Hour),
		// Bound how long a dirty entry may wait for the cleaner, so the
		// topic stays near one record per live event id.
		"max.compaction.lag.ms": ms(max(window/4, time.Hour)),
		// Set, not inherited: every consumer writes here, and a broker
		// default lowered for other topics must not stall it.
		maxMessageBytes: strconv.Itoa(DedupMaxMessageBytes),
	}
}

// Spec returns the spec of the named topic, or false.
func (p Plan) Spec(name string) (Spec, bool) {
	for _, s := range p.Topics {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}
