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

// Headers on the records of a source whose verifier checks a signature of
// the body (hmac-sha256): the signature header's name and its value as the
// sender sent it, so that a downstream holding the key can verify the
// stored body again. Headers that carry a secret (shared-secret, basic,
// bearer) are never stored.
const (
	SignatureHeader = "hookline-signature-header"
	Signature       = "hookline-signature"
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

// TimeLen is the length of FormatTime's result for years 0 to 9999.
const TimeLen = len("2006-01-02T15:04:05.000Z")

// FormatTime formats t as TimeLayout in UTC.
func FormatTime(t time.Time) string {
	var b [TimeLen]byte
	return string(AppendTime(b[:0], t))
}

// AppendTime appends FormatTime(t) to b. Years 0 to 9999 are written
// directly (time.Format was ~1.5 µs of the receiver's ~25 µs per webhook in
// make bench row 1's profile); others go through time.Format.
func AppendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	h, mi, sec := t.Clock()
	ms := t.Nanosecond() / 1e6 // truncated, as Format does
	digits := func(b []byte, v, n int) []byte {
		for i := n - 1; i >= 0; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
		return b[n:]
	}
	// Over a template: each field's digits, then past its separator.
	n := len(b)
	b = append(b, "0000-00-00T00:00:00.000Z"...)
	w := b[n:]
	w = digits(w, y, 4)[1:]
	w = digits(w, int(mo), 2)[1:]
	w = digits(w, d, 2)[1:]
	w = digits(w, h, 2)[1:]
	w = digits(w, mi, 2)[1:]
	w = digits(w, sec, 2)[1:]
	digits(w, ms, 3)
	return b
}

// ParseTime parses a time written by FormatTime (any RFC 3339 time works).
// FormatTime's own form is read directly: time.Parse took ~5 % of the no-op
// consumer's CPU (make bench row 2 profile), which reads it from every
// record.
func ParseTime(s string) (time.Time, error) {
	if t, ok := parseUTCMillis(s); ok {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// parseUTCMillis parses "2006-01-02T15:04:05.000Z" with every field in
// range; anything else is left to time.Parse, which gives the same result
// or the error.
func parseUTCMillis(s string) (time.Time, bool) {
	if len(s) != TimeLen || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	y, mo, d := num(0, 4), num(5, 2), num(8, 2)
	h, mi, sec, ms := num(11, 2), num(14, 2), num(17, 2), num(20, 3)
	if y < 0 || mo < 1 || mo > 12 || d < 1 || d > daysIn(mo, y) || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 || ms < 0 {
		return time.Time{}, false
	}
	// Days from 1970-01-01 to y-mo-d in the proleptic Gregorian calendar
	// (H. Hinnant's days_from_civil).
	if mo <= 2 {
		y--
	}
	era := y / 400
	if y < 0 { // January or February of year 0: round the era down
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (mo + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days := int64(era)*146097 + int64(doe) - 719468
	unixMs := ((days*24+int64(h))*60+int64(mi))*60*1000 + int64(sec)*1000 + int64(ms)
	return time.UnixMilli(unixMs).UTC(), true
}

// daysIn returns the number of days of month m (1-12) of year y.
func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

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
