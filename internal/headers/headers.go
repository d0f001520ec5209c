// Package headers names the Kafka record headers hookline writes and reads,
// and formats their values. Every header is a UTF-8 string prefixed
// "hookline-" so any Kafka tool (kcat, kafka-console-consumer) can read it.
// It also holds the header syntax hookline checks and shows: HTTP header
// names and values (the receiver's verifiers, the forward sink's extra
// headers) and text made safe for a terminal.
package headers

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers on every record.
const (
	EventID        = "hookline-event-id"
	ReceiptID      = "hookline-receipt-id"
	Source         = "hookline-source"
	ReceivedAt     = "hookline-received-at"
	ContentType    = "hookline-content-type"
	ConversationID = "hookline-conversation-id"
)

// Headers added on retry and DLQ records.
const (
	Attempt           = "hookline-attempt"
	OriginalTopic     = "hookline-original-topic"
	OriginalPartition = "hookline-original-partition"
	OriginalOffset    = "hookline-original-offset"
	OriginalTimestamp = "hookline-original-timestamp"
	FirstFailedAt     = "hookline-first-failed-at"
	FailedAt          = "hookline-failed-at"
	Error             = "hookline-error"
	ErrorClass        = "hookline-error-class"
	ConsumerGroup     = "hookline-consumer-group"
	DueAt             = "hookline-due-at" // retry records only
)

// Headers on replayed records.
const (
	ReplayedFrom = "hookline-replayed-from"
	ReplayCount  = "hookline-replay-count"
	// ReplayForce "true" marks a replay made with --force: the consumer
	// handles it even when dedup says the event was processed.
	ReplayForce = "hookline-replay-force"
)

// Values of ErrorClass.
const (
	ClassRetryable = "retryable"
	ClassPermanent = "permanent"
	ClassExhausted = "exhausted"
	ClassMalformed = "malformed"
)

// MaxErrorLen bounds the Error header: the last error, cut to 1 KiB.
const MaxErrorLen = 1024

// TimeLayout is RFC 3339 with milliseconds, in UTC.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// FormatTime formats t as TimeLayout in UTC.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// ParseTime parses a time written by FormatTime (any RFC 3339 time works).
func ParseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// Bytes returns the value of the last header named key, not copied, and
// whether it exists.
func Bytes(hs []kgo.RecordHeader, key string) ([]byte, bool) {
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].Key == key {
			return hs[i].Value, true
		}
	}
	return nil, false
}

// Get returns the value of the last header named key, and whether it exists.
func Get(hs []kgo.RecordHeader, key string) (string, bool) {
	v, ok := Bytes(hs, key)
	return string(v), ok
}

// Value returns the value of the last header named key, or "".
func Value(hs []kgo.RecordHeader, key string) string {
	v, _ := Get(hs, key)
	return v
}

// Int returns the header as an int, or def when it is missing or not a number.
func Int(hs []kgo.RecordHeader, key string, def int) int {
	v, ok := Get(hs, key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def
	}
	return n
}

// Set replaces every header named key with one holding value, appending it
// when absent. It returns the new slice.
func Set(hs []kgo.RecordHeader, key, value string) []kgo.RecordHeader {
	return append(Del(hs, key), kgo.RecordHeader{Key: key, Value: []byte(value)})
}

// Cut shortens s to at most n bytes without splitting a UTF-8 sequence.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i]
}

// Printable returns s with what a terminal would act on replaced by '?':
// control characters other than newline and tab (ESC, CR, C1 codes), format
// characters (bidi overrides) and invalid UTF-8. Header values come from
// senders, downstream services and other tools; hookline dlq prints them.
func Printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !PrintableRune(r) }) < 0 {
		return s // valid UTF-8 too: RuneError is not printable
	}
	return strings.Map(func(r rune) rune {
		if PrintableRune(r) {
			return r
		}
		return '?'
	}, s)
}

// PrintableRune reports whether Printable keeps r (utf8.RuneError, which
// ranging over invalid UTF-8 yields, is not kept).
func PrintableRune(r rune) bool {
	return r == '\n' || r == '\t' || (r != utf8.RuneError && unicode.IsPrint(r))
}

// ValidHTTPName reports whether s is a valid HTTP header name: a non-empty
// RFC 9110 token.
func ValidHTTPName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return s != ""
}

// HasHTTPControl reports whether s holds a byte no HTTP header value may
// carry: a control character other than tab, or DEL.
func HasHTTPControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// Del removes every header named key. It returns the new slice and never
// modifies hs in place.
func Del(hs []kgo.RecordHeader, key string) []kgo.RecordHeader {
	out := hs[:0:0]
	for _, h := range hs {
		if h.Key != key {
			out = append(out, h)
		}
	}
	return out
}
