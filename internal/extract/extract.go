// Package extract finds the event id and the conversation id in a webhook body.
//
// The receiver stores every accepted body unchanged; extract only reads it to
// decide two things: the event id (the dedup key, see DESIGN.md guarantee 3)
// and the conversation id (the record key, guarantee 4). Bodies are parsed by
// a small strict JSON parser that never hard-types a field: a Genesys
// eventTime may be epoch milliseconds or an ISO string, and numbers are kept
// exactly as written.
//
// # Genesys bodies (KindGenesys)
//
// The shape is detected per request:
//
//   - "eventbridge": a top-level object with "id", "detail-type", "source" and
//     "detail". The inner notification is "detail", which must be an object.
//   - "notification": a top-level object with "topicName" and "eventBody"
//     (Genesys also sends "metadata" and "timestamp"; both are optional here).
//     The inner notification is the body itself.
//   - "data-action": any other JSON object, for example the request body of a
//     workflow data action. The inner notification is the body itself.
//
// Wherever an inner notification has both "topicName" and "eventBody",
// "eventBody" must be an object. The topic (IDs.Topic, and the topicName used
// below) is the inner "topicName", or, in an EventBridge envelope whose detail
// has none, "detail-type". Genesys sets detail-type to the topic filter the
// integration subscribed, with "{id}" where the topic name has an id
// ("v2.conversations.{id}.transcription"), so it names the kind of event but
// never the conversation: Genesys detail always carries the concrete
// topicName, which is what the rules below read.
//
// The conversation id is the first usable value of:
//
//  1. the Rules.Key pointers, each tried against the inner notification and
//     then against the whole body;
//  2. eventBody.conversationId;
//  3. the first UUID segment after a "conversation" or "conversations"
//     segment of topicName, as in v2.detail.events.conversation.{id}.customer.start,
//     v2.conversations.{id}.transcription or v2.conversations.chats.{id}.messages;
//  4. eventBody.id when topicName has a "conversations" segment with no UUID
//     after it (v2.conversations.{id} written without a UUID,
//     v2.users.{id}.conversations, v2.routing.queues.{id}.conversations.calls):
//     there the event body is the conversation itself;
//  5. a top-level "conversationId" of the inner notification (the usual field
//     of a data-action request template).
//
// When nothing matches, ConversationID is empty and [IDs.Key] falls back to
// the event id.
//
// The topic segment (3) is preferred over eventBody.id (4) for v2.conversations.*
// topics because on topics such as v2.conversations.chats.{id}.messages the
// event body is a message whose id is not the conversation id; where the event
// body is the conversation, both agree.
//
// The event id is the first usable value of the Rules.EventID pointers (tried
// like the Key pointers), else the lowercase hex SHA-256 of the canonical JSON
// (below) of the inner notification. Because the envelope is not
// part of the hash, the same notification re-wrapped in a new EventBridge
// envelope (new envelope id and time) or posted bare keeps its event id, so
// redeliveries dedup. That holds for Genesys notifications; other
// EventBridge events with equal details (a scheduled rule's "detail": {})
// share one id, and want an EventID pointer ("/id": the detail's id, else
// the envelope's).
//
// # Generic bodies (KindGeneric)
//
// The body must be a JSON object or array (some senders post a batch of
// events as one array). Pointers reach into arrays ("/0/id"), but an id
// taken from one element makes a whole batch one event for dedup: batch
// sources are better left to the content hash. The
// event id is the first usable value of the Rules.EventID pointers, else the
// SHA-256 of the canonical JSON of the whole body; the conversation id is
// the first usable value of the Rules.Key pointers, else empty. Shape is
// "generic" and Topic is empty.
//
// # Usable ids
//
// A pointer or built-in field yields an id when it resolves to a string or a
// number. Numbers are used as written (1.50 stays "1.50"). A string loses
// its leading and trailing white space (Unicode; HTTP would drop the spaces
// and tabs from the headers that carry the id to the handler anyway): " a "
// and "a" are one id. It is then skipped, as if the field were absent, when
// it is empty, longer than [MaxIDLength] bytes, not valid UTF-8 (a lone
// surrogate escape), or contains an ASCII control character: such a value
// would be a poor Kafka key and an unsafe header or log field, and a blank
// id would make distinct events one for dedup.
//
// # Canonical JSON
//
// The content hash is taken over a canonical form that does not depend on
// key order, whitespace or string escaping in the input:
//
//   - no insignificant whitespace;
//   - object members sorted by the bytes of their UTF-8 keys (not by UTF-16
//     code units as RFC 8785 does; the orders differ only for keys mixing
//     U+E000–U+FFFF with supplementary characters);
//   - strings written as UTF-8 with only '"', '\\' and control characters
//     escaped: \b \f \n \r \t, other controls as \u00xx (lowercase hex);
//     "\u00e9" and "é" are the same string. A lone surrogate escape is kept as
//     \udxxx (lowercase), so distinct inputs never collapse into one hash;
//   - numbers exactly as written: 1.0, 1 and 1e0 are different. Keeping the
//     literal avoids float rounding; the cost is that a sender that re-formats
//     numbers between redeliveries would defeat dedup, which Genesys does not.
//
// Duplicate keys in an object make a body malformed: which of the two values
// counts differs between JSON parsers, so neither can be trusted as an id.
package extract

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Kind is the kind of a webhook source: which built-in rules apply.
type Kind string

const (
	// KindGenesys detects Genesys Cloud notifications, bare or in an
	// EventBridge envelope, and workflow data-action bodies.
	KindGenesys Kind = "genesys"
	// KindGeneric uses only the configured pointers and the content hash.
	KindGeneric Kind = "generic"
)

// Shapes reported in IDs.Shape.
const (
	ShapeEventBridge  = "eventbridge"
	ShapeNotification = "notification"
	ShapeDataAction   = "data-action"
	ShapeGeneric      = "generic"
)

// MaxDepth is the deepest nesting of objects and arrays accepted; deeper
// bodies are malformed. The top-level object is depth 1. Real Genesys bodies
// stay under 10.
const MaxDepth = 64

// MaxIDLength is the longest id, in bytes, taken from a body. Longer values
// are skipped as unusable.
const MaxIDLength = 1024

// ErrMalformed is wrapped by every error Extract returns for a body that
// cannot be used: not JSON, not an object, an envelope of the wrong shape, or
// nested too deep. The receiver stores such bodies in the DLQ with
// hookline-error-class: malformed (DESIGN.md guarantee 6).
var ErrMalformed = errors.New("malformed payload")

// Rules says how to find ids in bodies from one source.
//
// The zero value is not valid: Kind must be set. Rules are safe to share
// between goroutines; Extract does not modify them.
type Rules struct {
	// Kind selects the built-in rules. Required.
	Kind Kind
	// EventID holds JSON pointers (RFC 6901) tried in order; the first that
	// resolves to a usable string or number is the event id. Empty means the
	// content hash. For Genesys bodies each pointer is tried against the
	// inner notification first, then against the whole body.
	EventID []string
	// Key holds JSON pointers for the conversation id (the record key), tried
	// like EventID. When one resolves it wins over the built-in Genesys rules.
	Key []string
}

// IDs are the ids found in one body.
type IDs struct {
	EventID        string // never empty on success
	ConversationID string // may be empty (then the record key falls back to EventID)
	Shape          string // "eventbridge", "notification", "data-action", "generic"
	Topic          string // Genesys topicName when present (for logs/metrics); EventBridge detail-type (the topic filter, with {id}) otherwise
}

// Key returns the record key: ConversationID, else EventID.
func (i IDs) Key() string {
	if i.ConversationID != "" {
		return i.ConversationID
	}
	return i.EventID
}

// Validate reports whether r can be used: Kind must be KindGenesys or
// KindGeneric, and every pointer must be a non-empty RFC 6901 pointer (it
// starts with "/" and "~" is only followed by "0" or "1"). Call it when a
// source is configured; Extract checks again and refuses invalid rules with an
// error that does not wrap ErrMalformed.
func (r Rules) Validate() error {
	switch r.Kind {
	case KindGenesys, KindGeneric:
	case "":
		return fmt.Errorf("extract: rules: kind is empty (want %q or %q)", KindGenesys, KindGeneric)
	default:
		return fmt.Errorf("extract: rules: unknown kind %q (want %q or %q)", string(r.Kind), KindGenesys, KindGeneric)
	}
	for i, p := range r.EventID {
		if err := checkPointer(p); err != nil {
			return fmt.Errorf("extract: rules: EventID[%d] %q: %w", i, p, err)
		}
	}
	for i, p := range r.Key {
		if err := checkPointer(p); err != nil {
			return fmt.Errorf("extract: rules: Key[%d] %q: %w", i, p, err)
		}
	}
	return nil
}

// Extract finds the ids in body according to r.
//
// Errors for unusable bodies wrap ErrMalformed and say why (with a byte
// offset for syntax errors); they never quote more than a short key of the
// body. Invalid rules give an error that does not wrap ErrMalformed: that is a
// configuration bug, not bad input.
//
// Extract runs in time linear in len(body) (n log n for objects with many
// members), never panics, and does not retain or modify body: the returned
// strings are copies.
func Extract(body []byte, r Rules) (IDs, error) {
	if err := r.Validate(); err != nil {
		return IDs{}, err
	}
	if len(body) == 0 {
		return IDs{}, malformed("empty body")
	}
	if bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
		// RFC 8259 allows refusing it, and the handler gets the body as
		// sent: many JSON parsers (Go's among them) refuse it too.
		return IDs{}, malformed("not JSON: the body starts with a UTF-8 byte order mark; have the sender leave it out")
	}
	p := parserPool.Get().(*parser)
	defer p.release()
	if err := p.parse(body); err != nil {
		return IDs{}, err
	}
	d := &p.doc
	var err error
	if k := d.nodes[d.root].kind; k != kObject && (r.Kind != KindGeneric || k != kArray) {
		want := "an object"
		if r.Kind == KindGeneric {
			want = "an object or an array"
		}
		return IDs{}, malformed("top-level JSON value is %s, want %s", k, want)
	}

	var ids IDs
	inner := d.root
	if r.Kind == KindGeneric {
		ids.Shape = ShapeGeneric
	} else {
		inner, ids.Shape, err = d.genesysShape()
		if err != nil {
			return IDs{}, err
		}
		if t, ok := d.member(inner, "topicName"); ok && d.nodes[t].kind == kString {
			ids.Topic = d.str(d.nodes[t].text)
		} else if t, ok := d.member(d.root, "detail-type"); ok && ids.Shape == ShapeEventBridge && d.nodes[t].kind == kString {
			// Genesys sets detail-type to the subscribed topic filter
			// ("v2.detail.events.conversation.{id}.customer.start").
			ids.Topic = d.str(d.nodes[t].text)
		}
	}

	ids.EventID = d.firstPointer(r.EventID, inner)
	if ids.EventID == "" {
		ids.EventID = d.hash(inner)
	} else {
		ids.EventID = strings.Clone(ids.EventID)
	}
	ids.ConversationID = d.firstPointer(r.Key, inner)
	if ids.ConversationID == "" && r.Kind == KindGenesys {
		ids.ConversationID = d.genesysConversation(inner, ids.Topic)
	}
	// Clone so that a small id does not pin the copy of a large body.
	ids.ConversationID = strings.Clone(ids.ConversationID)
	ids.Topic = strings.Clone(ids.Topic)
	return ids, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("extract: %w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// genesysShape detects the Genesys envelope of the top-level object and
// returns the inner notification.
func (d *doc) genesysShape() (inner int32, shape string, err error) {
	root := d.root
	inner, shape = root, ShapeDataAction
	if d.has(root, "id") && d.has(root, "detail-type") && d.has(root, "source") {
		if detail, ok := d.member(root, "detail"); ok {
			if k := d.nodes[detail].kind; k != kObject {
				return 0, "", malformed("eventbridge envelope: detail is %s, want an object", k)
			}
			inner, shape = detail, ShapeEventBridge
		}
	}
	if d.has(inner, "topicName") {
		if body, ok := d.member(inner, "eventBody"); ok {
			if k := d.nodes[body].kind; k != kObject {
				return 0, "", malformed("notification: eventBody is %s, want an object", k)
			}
			if shape == ShapeDataAction {
				shape = ShapeNotification
			}
		}
	}
	return inner, shape, nil
}

// genesysConversation applies the built-in conversation id rules 2–5 (see the
// package documentation) to the inner notification.
func (d *doc) genesysConversation(inner int32, topic string) string {
	body, hasBody := d.member(inner, "eventBody")
	if hasBody {
		if v, ok := d.member(body, "conversationId"); ok {
			if id := d.id(v); id != "" {
				return id
			}
		}
	}
	seg, convs := topicConversation(topic)
	if seg != "" {
		return seg
	}
	if convs && hasBody {
		if v, ok := d.member(body, "id"); ok {
			if id := d.id(v); id != "" {
				return id
			}
		}
	}
	if v, ok := d.member(inner, "conversationId"); ok {
		return d.id(v)
	}
	return ""
}

// topicConversation returns the first UUID segment after a "conversation" or
// "conversations" segment of a Genesys topic name, and whether the topic has
// a "conversations" segment not followed by any UUID (the event body is then
// a conversation).
func topicConversation(topic string) (id string, convs bool) {
	after := false // seen a conversation(s) segment
	for topic != "" {
		seg, rest, _ := strings.Cut(topic, ".")
		topic = rest
		switch {
		case seg == "conversation":
			after = true
		case seg == "conversations":
			after, convs = true, true
		case after && isUUID(seg):
			return seg, false
		}
	}
	return "", convs
}

// isUUID reports whether s has the 8-4-4-4-12 hex form Genesys uses for ids
// (any case, any version).
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// firstPointer returns the first usable id found by ptrs, each tried against
// inner and then, when it differs, the whole document.
func (d *doc) firstPointer(ptrs []string, inner int32) string {
	for _, p := range ptrs {
		if v, ok := d.resolve(inner, p); ok {
			if id := d.id(v); id != "" {
				return id
			}
		}
		if inner != d.root {
			if v, ok := d.resolve(d.root, p); ok {
				if id := d.id(v); id != "" {
					return id
				}
			}
		}
	}
	return ""
}

// id returns the value of node n as an id, or "" when it is not usable.
func (d *doc) id(n int32) string {
	nd := &d.nodes[n]
	switch nd.kind {
	case kNumber:
		if s := d.str(nd.text); len(s) <= MaxIDLength {
			return s
		}
	case kString:
		// HTTP drops surrounding spaces and tabs from header values, so
		// the handler would see "a" for " a " in X-Hookline-Event-Id and
		// Idempotency-Key: two ids that differ only there are one id
		// downstream, and a padded conversation id would split its
		// conversation over two partitions. Unicode white space goes
		// too: no sender means it as part of an id.
		if s := strings.TrimSpace(d.str(nd.text)); usableID(s) {
			return s
		}
	}
	return ""
}

// usableID reports whether s, trimmed, can serve as an id.
func usableID(s string) bool {
	if len(s) > MaxIDLength || s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return false
		}
		if c >= 0x80 {
			// Strings from the parser are valid UTF-8 except for WTF-8
			// encoded lone surrogates (ED A0..BF xx).
			if c == 0xed && i+1 < len(s) && s[i+1] >= 0xa0 {
				return false
			}
		}
	}
	return true
}
