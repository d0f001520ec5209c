package loadtest

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Genesys Cloud detail events of one voice conversation, in the order Genesys
// emits them. A conversation is a lifecycle of these; an occasional transfer
// repeats the queue and agent legs.
var (
	lifecycleHead     = []string{"customer.start", "acd.start", "acd.end", "user.start"}
	lifecycleTransfer = []string{"user.end", "acd.start", "acd.end", "user.start"}
	lifecycleTail     = []string{"customer.end", "user.end", "acw.start", "acw.end"}
)

// transferRate is the share of conversations with one transfer (13 events
// instead of 9).
const transferRate = 0.2

// source is the EventBridge partner event source Genesys writes to.
const (
	ebSource  = "aws.partner/genesys.com/cloud/5e3a5d7b-1f0c-4a6e-9c2d-8b7f0e1a2c3d/hookline-loadtest"
	ebAccount = "123456789012"
	ebRegion  = "us-east-1"
)

// conversation is one simulated Genesys conversation: its ids and the detail
// event types still to send.
type conversation struct {
	id       string
	customer string // participant ids
	agent    string
	queue    string
	session  string
	division string
	types    []string
	next     int       // index into types of the next event
	start    time.Time // event time of the first event
	acked    []*event  // events of it acknowledged so far
}

// ids derives stable, distinct UUIDs from the run's seed, the conversation
// slot and the slot's n-th conversation, so runs with different seeds never
// share an event (and never dedup each other).
type ids struct{ seed uint64 }

func (g ids) uuid(parts ...uint64) string {
	x := g.seed
	for _, p := range parts {
		x = splitmix(x ^ splitmix(p+0x9e3779b97f4a7c15))
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], splitmix(x))
	binary.BigEndian.PutUint64(b[8:], splitmix(x+1))
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// newConversation starts the n-th conversation of slot.
func newConversation(g ids, rng *rand.Rand, slot, n int, now time.Time) *conversation {
	s, k := uint64(slot), uint64(n)
	c := &conversation{
		id:       g.uuid(1, s, k),
		customer: g.uuid(2, s, k),
		agent:    g.uuid(3, s, k),
		session:  g.uuid(4, s, k),
		queue:    g.uuid(5, s%8), // a few queues
		division: g.uuid(6),
		start:    now,
	}
	c.types = append(c.types, lifecycleHead...)
	if rng.Float64() < transferRate {
		c.types = append(c.types, lifecycleTransfer...)
	}
	c.types = append(c.types, lifecycleTail...)
	return c
}

// done reports whether every event of c was generated.
func (c *conversation) done() bool { return c.next >= len(c.types) }

// event is one detail event of a conversation. detail is the inner
// notification, fixed for the event's life; every send wraps it in a fresh
// EventBridge envelope.
type event struct {
	conv    *conversation
	seq     int // 1-based position in the conversation
	typ     string
	detail  []byte
	eventID string // as the receiver computes it from the content
	rec     *Event // the public record, when kept
	acked   bool
}

// nextEvent generates c's next detail event (sequence = position, from 1).
func (c *conversation) nextEvent(g ids) *event {
	typ := c.types[c.next]
	c.next++
	seq := c.next
	// Event times move forward through the call, 1.5 s apart.
	et := c.start.Add(time.Duration(seq) * 1500 * time.Millisecond)
	topic := "v2.detail.events.conversation." + c.id + "." + typ
	participant := c.customer
	switch typ {
	case "acd.start", "acd.end":
		participant = g.uuid(7, uint64(len(c.acked)), uint64(seq)) // the ACD participant
	case "user.start", "user.end", "acw.start", "acw.end":
		participant = c.agent
	}
	b := make([]byte, 0, 900)
	b = append(b, `{"version":"2","topicName":"`...)
	b = append(b, topic...)
	b = append(b, `","metadata":{"CorrelationId":"`...)
	b = append(b, g.uuid(8, hashString(c.id), uint64(seq))...)
	b = append(b, `"},"timestamp":"`...)
	b = et.Add(120*time.Millisecond).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, `","eventBody":{"eventTime":`...)
	b = strconv.AppendInt(b, et.UnixMilli(), 10)
	b = append(b, `,"conversationId":"`...)
	b = append(b, c.id...)
	b = append(b, `","participantId":"`...)
	b = append(b, participant...)
	b = append(b, `","sessionId":"`...)
	b = append(b, c.session...)
	b = append(b, `","mediaType":"VOICE","provider":"Edge","direction":"INBOUND","ani":"tel:+14155550123","dnis":"tel:+18005550199","addressTo":"tel:+18005550199","addressFrom":"tel:+14155550123"`...)
	switch typ {
	case "acd.start":
		b = append(b, `,"queueId":"`...)
		b = append(b, c.queue...)
		b = append(b, `","routingPriority":0,"requestedRoutingSkillIds":[],"requestedLanguageId":null`...)
	case "acd.end":
		b = append(b, `,"queueId":"`...)
		b = append(b, c.queue...)
		b = append(b, `","acdOutcome":"ANSWERED","connectedDurationMs":`...)
		b = strconv.AppendInt(b, int64(4000+seq*37), 10)
	case "user.start", "user.end", "acw.start", "acw.end":
		b = append(b, `,"userId":"`...)
		b = append(b, g.uuid(9, uint64(seq%3))...)
		b = append(b, `","queueId":"`...)
		b = append(b, c.queue...)
		b = append(b, '"')
		if typ == "user.end" {
			b = append(b, `,"disconnectType":"PEER","interactingDurationMs":`...)
			b = strconv.AppendInt(b, int64(60000+seq*911), 10)
		}
		if typ == "acw.end" {
			b = append(b, `,"wrapupCode":"e2f3a4b5-c6d7-4e8f-9a0b-1c2d3e4f5a6b","wrapupDurationSeconds":42`...)
		}
	case "customer.end":
		b = append(b, `,"disconnectType":"CLIENT"`...)
	}
	b = append(b, `,"divisionId":"`...)
	b = append(b, c.division...)
	// The simulator's marker: the event's position in its conversation, so
	// a downstream can check per-conversation order. Genesys adds fields to
	// detail events over time; consumers ignore unknown ones.
	b = append(b, `","sequence":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `}}`...)
	return &event{conv: c, seq: seq, typ: typ, detail: b}
}

func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// envelope wraps detail in an EventBridge envelope with a fresh id and time,
// as Genesys does when it publishes an event again. Its detail-type is what
// Genesys sets: the topic filter, with "{id}" for the conversation id
// ("v2.detail.events.conversation.{id}.customer.start"), not the topic name.
func envelope(detail []byte, topic string, envelopeID string, now time.Time) []byte {
	b := make([]byte, 0, len(detail)+400)
	b = append(b, `{"version":"0","id":"`...)
	b = append(b, envelopeID...)
	b = append(b, `","detail-type":"`...)
	b = append(b, topicFilter(topic)...)
	b = append(b, `","source":"`+ebSource+`","account":"`+ebAccount+`","time":"`...)
	b = now.UTC().AppendFormat(b, "2006-01-02T15:04:05Z")
	b = append(b, `","region":"`+ebRegion+`","resources":[],"detail":`...)
	b = append(b, detail...)
	b = append(b, '}')
	return b
}

// topicFilter writes each 36-byte id segment of a topic name as "{id}".
func topicFilter(topic string) string {
	segs := strings.Split(topic, ".")
	for i, seg := range segs {
		if len(seg) == 36 && strings.Count(seg, "-") == 4 {
			segs[i] = "{id}"
		}
	}
	return strings.Join(segs, ".")
}
