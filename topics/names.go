// Package topics derives, creates and checks the Kafka topics of a hookline
// pipeline.
//
// A pipeline has a base name (default "hookline.events") and every other topic
// name is derived from it by [For], the one place that knows the naming scheme:
//
//	<base>                      accepted events, key = conversation id
//	<base>.retry-1 … retry-N    delayed retry tiers
//	<base>.dlq                  dead letters (append-only audit)
//	<base>.dedup                compacted dedup state, key = event id
//
// All topics of a pipeline are co-partitioned: they have the same partition
// count, and a record that moves between them keeps its partition number.
package topics

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultBase is the base topic name used when none is configured.
const DefaultBase = "hookline.events"

// Role says what a topic of a pipeline is for.
type Role string

// The roles of a pipeline's topics.
const (
	RoleMain  Role = "main"
	RoleRetry Role = "retry"
	RoleDLQ   Role = "dlq"
	RoleDedup Role = "dedup"
)

// Names holds every topic name of one pipeline.
type Names struct {
	Base    string   // accepted events
	Retries []string // Retries[k-1] is <base>.retry-k
	DLQ     string
	Dedup   string
}

// maxTopicLen is Kafka's limit on a topic name.
const maxTopicLen = 249

// ValidateBase reports whether base can be the base name of a pipeline: legal
// Kafka topic characters, and short enough that every derived name is legal.
func ValidateBase(base string) error {
	if base == "" {
		return fmt.Errorf("topic base name is empty: set --base (from Go, Config.Base; default %q)", DefaultBase)
	}
	if base == "." || base == ".." {
		return fmt.Errorf("topic base name %q is not allowed by Kafka", base)
	}
	for _, r := range base {
		ok := r == '.' || r == '_' || r == '-' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("topic base name %q has %q: Kafka allows only letters, digits, '.', '_' and '-'", base, r)
		}
	}
	// ".retry-NNN" is the longest suffix we derive.
	if len(base)+len(".retry-999") > maxTopicLen {
		return fmt.Errorf("topic base name %q is too long: derived names must fit Kafka's %d characters", base, maxTopicLen)
	}
	return nil
}

// CollisionKey is name as Kafka compares topic names for collisions: a '.'
// counts as a '_' (both become '_' in metric names), so Kafka refuses to
// create a topic whose key equals an existing topic's, e.g. orders.dlq next
// to orders_dlq.
func CollisionKey(name string) string { return strings.ReplaceAll(name, ".", "_") }

// For derives the topic names of the pipeline with the given base and number
// of retry tiers. It does not validate base; see [ValidateBase].
func For(base string, retryTiers int) Names {
	n := Names{Base: base, DLQ: base + ".dlq", Dedup: base + ".dedup"}
	for k := 1; k <= retryTiers; k++ {
		n.Retries = append(n.Retries, base+".retry-"+strconv.Itoa(k))
	}
	return n
}

// Retry returns the name of retry tier k (1-based).
func (n Names) Retry(k int) string { return n.Retries[k-1] }

// RetryTier says whether topic is named as a retry tier of this pipeline,
// <base>.retry-K with K a decimal of 1 or more without leading zeros, and
// returns K. Unlike [Names.RoleOf] it accepts tiers beyond len(n.Retries):
// topics left behind by a pipeline that ran with more tiers.
func (n Names) RetryTier(topic string) (k int, ok bool) {
	rest, found := strings.CutPrefix(topic, n.Base+".retry-")
	if !found || rest == "" || rest[0] < '1' || rest[0] > '9' {
		return 0, false
	}
	k, err := strconv.Atoi(rest)
	if err != nil || strconv.Itoa(k) != rest {
		return 0, false
	}
	return k, true
}

// All returns every topic of the pipeline: main, retries, dlq, dedup.
func (n Names) All() []string {
	all := []string{n.Base}
	all = append(all, n.Retries...)
	return append(all, n.DLQ, n.Dedup)
}

// Consumed returns the topics the consumer group reads: main and retries.
func (n Names) Consumed() []string {
	return append([]string{n.Base}, n.Retries...)
}

// RoleOf says which role topic plays in this pipeline and, for retry topics,
// which tier (1-based) it is. ok is false for a topic outside the pipeline.
func (n Names) RoleOf(topic string) (role Role, tier int, ok bool) {
	switch topic {
	case n.Base:
		return RoleMain, 0, true
	case n.DLQ:
		return RoleDLQ, 0, true
	case n.Dedup:
		return RoleDedup, 0, true
	}
	if rest, found := strings.CutPrefix(topic, n.Base+".retry-"); found {
		k, err := strconv.Atoi(rest)
		if err == nil && k >= 1 && k <= len(n.Retries) && n.Retries[k-1] == topic {
			return RoleRetry, k, true
		}
	}
	return "", 0, false
}
