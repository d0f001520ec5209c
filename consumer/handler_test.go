package consumer

import (
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/headers"
)

// eventOfReference is eventOf as plainly written: one headers lookup per
// field. eventOf's single pass must give the same Event.
func eventOfReference(r *kgo.Record, mainTopic bool) Event {
	hs := r.Headers
	ev := Event{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Headers: hs,
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

func TestEventOfMatchesHeaderLookups(t *testing.T) {
	names := []string{headers.EventID, headers.ReceiptID, headers.Source, headers.ConversationID,
		headers.ContentType, headers.ReceivedAt, headers.Attempt, headers.DueAt, "x-other"}
	values := []string{"", "a", "ev-1", "2", "-3", "x7", "2026-11-28T14:37:10.123Z", "2026-11-28T14:37:10Z", "not a time", "9999999999999999999999"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		var hs []kgo.RecordHeader
		for range rng.IntN(10) {
			hs = append(hs, kgo.RecordHeader{Key: names[rng.IntN(len(names))], Value: []byte(values[rng.IntN(len(values))])})
		}
		r := &kgo.Record{Topic: "t", Partition: 3, Offset: int64(i), Key: []byte("k"), Value: []byte("v"), Headers: hs}
		for _, main := range []bool{true, false} {
			got, want := eventOf(r, main), eventOfReference(r, main)
			if !got.ReceivedAt.Equal(want.ReceivedAt) {
				t.Fatalf("headers %v main=%v: ReceivedAt %v, want %v", hs, main, got.ReceivedAt, want.ReceivedAt)
			}
			type fields struct {
				topic, id, receipt, source, conv, ct string
				part                                 int32
				off                                  int64
				attempt                              int
			}
			f := func(e Event) fields {
				return fields{e.Topic, e.EventID, e.ReceiptID, e.Source, e.ConversationID, e.ContentType, e.Partition, e.Offset, e.Attempt}
			}
			if f(got) != f(want) || len(got.Headers) != len(hs) || string(got.Key) != "k" || string(got.Value) != "v" {
				t.Fatalf("headers %v main=%v:\n got %+v\nwant %+v", hs, main, got, want)
			}
		}
	}
}
