package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/headers"
)

// Handler does the work for one event. It is called concurrently for
// different keys, and never concurrently for two records of one key (or one
// event id) within a partition.
//
// A nil error means the event is done. Any other error is retryable and sends
// the event to the next retry tier (or, after the last tier, to the DLQ with
// class "exhausted"), unless it was wrapped with [Permanent], which sends it
// to the DLQ at once. A handler that overruns its timeout or panics failed
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
	Key       []byte // conversation id (or event id when the payload had none)
	Value     []byte // the request body exactly as received
	Headers   []kgo.RecordHeader

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
// [Permanent].
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// eventOf builds the Event for a record.
func eventOf(r *kgo.Record, mainTopic bool) Event {
	hs := r.Headers
	ev := Event{
		Topic:          r.Topic,
		Partition:      r.Partition,
		Offset:         r.Offset,
		Key:            r.Key,
		Value:          r.Value,
		Headers:        hs,
		EventID:        headers.Value(hs, headers.EventID),
		ReceiptID:      headers.Value(hs, headers.ReceiptID),
		Source:         headers.Value(hs, headers.Source),
		ConversationID: headers.Value(hs, headers.ConversationID),
		ContentType:    headers.Value(hs, headers.ContentType),
	}
	if !mainTopic {
		ev.Attempt = max(headers.Int(hs, headers.Attempt, 0), 0)
	}
	if v, ok := headers.Get(hs, headers.ReceivedAt); ok {
		if t, err := headers.ParseTime(v); err == nil {
			ev.ReceivedAt = t
		}
	}
	return ev
}
