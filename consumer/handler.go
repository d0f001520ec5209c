package consumer

import (
	"context"
	"errors"
	"strconv"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/headers"
)

// Handler does the work for one event. It is called concurrently for
// different keys, and never concurrently for two records of one key (or one
// event id) within a partition, nor for two copies of one event id on the
// main and retry topics of one partition number (after a crash, a main
// record redelivered next to its retry copy). The one exception is a
// handler that ignores its context past HandlerTimeout: the consumer then
// routes the attempt as failed and moves on while the call still runs.
//
// A nil error means the event is done. Any other error is retryable and sends
// the event to the next retry tier (or, after the last tier, to the DLQ with
// class "exhausted"), unless it was wrapped with [Permanent], which sends it
// to the DLQ at once; [RetryAfter] asks for a longer wait than the tier's. A handler that overruns its timeout or panics failed
// retryably.
//
// Handlers should be idempotent on [Event.EventID]: dedup cannot close the
// window between a handler's success and the broker's acknowledgement of the
// dedup record.
type Handler interface {
	Handle(ctx context.Context, ev Event) error
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, ev Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, ev Event) error { return f(ctx, ev) }

// Event is one record handed to a [Handler]. Key, Value and Headers alias the
// consumed record: the handler must not modify them.
type Event struct {
	Topic     string // the topic the record was read from (main or a retry tier)
	Partition int32
	Offset    int64
	Key       []byte             // conversation id (or event id when the payload had none)
	Value     []byte             // the request body exactly as received
	Headers   []kgo.RecordHeader // also hookline-signature(-header) from an hmac-sha256 source

	EventID        string    // hookline-event-id
	ReceiptID      string    // hookline-receipt-id
	Source         string    // hookline-source
	ConversationID string    // hookline-conversation-id, "" when unknown
	ContentType    string    // hookline-content-type, "" when absent
	Attempt        int       // failed attempts so far: 0 on the first try
	ReceivedAt     time.Time // hookline-received-at; zero when absent
}

// permanentError marks an error as not worth retrying.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: the event goes to the DLQ at once with
// class "permanent" instead of to a retry tier. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// [Permanent]; for errors.Join, whether any of the joined ones was.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// retryAfterError asks for the next attempt no sooner than after.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e retryAfterError) Error() string { return e.err.Error() }
func (e retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks the retryable err with the least time the downstream
// asked for before the next attempt (an HTTP Retry-After). When the next
// retry tier's delay is shorter than d, the event skips to the first later
// tier whose delay is at least d (the last tier when none is), and waits
// that tier's delay: a tier's records all wait the same delay, because a
// retry partition is worked in order and one longer wait would hold up the
// records behind it. Skipped tiers are attempts the event does not get.
// RetryAfter(nil, d) is nil; d <= 0 changes nothing. The HTTP sink uses it
// for any retryable answer that carries Retry-After.
func RetryAfter(err error, d time.Duration) error {
	if err == nil || d <= 0 {
		return err
	}
	return retryAfterError{err, d}
}

// retryAfterOf returns the wait err asked for with [RetryAfter], or 0.
func retryAfterOf(err error) time.Duration {
	var r retryAfterError
	if errors.As(err, &r) {
		return r.after
	}
	return 0
}

// eventOf builds the Event for a record. Its strings alias the record's
// header bytes, which nothing writes once fetched (Event's contract forbids
// handlers to, and franz-go does not reuse fetched buffers without
// kgo.WithPools, which hookline does not set).
func eventOf(r *kgo.Record, mainTopic bool) Event {
	hs := r.Headers
	ev := Event{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   hs,
	}
	// One pass, the last header of a name winning (as headers.Value).
	var attempt, receivedAt string
	for _, h := range hs {
		switch h.Key {
		case headers.EventID:
			ev.EventID = bytesView(h.Value)
		case headers.ReceiptID:
			ev.ReceiptID = bytesView(h.Value)
		case headers.Source:
			ev.Source = bytesView(h.Value)
		case headers.ConversationID:
			ev.ConversationID = bytesView(h.Value)
		case headers.ContentType:
			ev.ContentType = bytesView(h.Value)
		case headers.ReceivedAt:
			receivedAt = bytesView(h.Value)
		case headers.Attempt:
			attempt = bytesView(h.Value)
		}
	}
	if !mainTopic && attempt != "" {
		if n, err := strconv.Atoi(attempt); err == nil && n > 0 {
			ev.Attempt = n
		}
	}
	if receivedAt != "" {
		if t, err := headers.ParseTime(receivedAt); err == nil {
			ev.ReceivedAt = t
		}
	}
	return ev
}

// bytesView returns b as a string without a copy; b must never be written
// afterwards.
func bytesView(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// stringBytes returns the bytes of s without a copy: they must not be
// written (for strings from bytesView, the bytes they alias).
func stringBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
