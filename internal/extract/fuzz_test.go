package extract

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzExtract: no input panics; success means valid JSON, a non-empty event
// id and a deterministic answer.
func FuzzExtract(f *testing.F) {
	for _, b := range Samples() {
		f.Add(b, false)
		f.Add(b, true)
	}
	for _, s := range []string{
		"", "{}", "[]", "null", `{"a":1}x`, `{"a":"\ud800"}`, `{"a":"\ud83d\ude00"}`,
		`{"id":"1","detail-type":"t","source":"s","detail":{"topicName":"v2.conversations.chats.8d2f7a8c-4b1e-4c55-9a3f-2e6d1b0c9f47.messages","eventBody":{"id":"m"}}}`,
		`{"id":1,"id":2}`, `{"a":[[[[[[]]]]]]}`, `{"a":-0.0e-0}`,
	} {
		f.Add([]byte(s), false)
	}
	withPointers := Rules{
		Kind:    KindGenesys,
		EventID: []string{"/eventBody/eventId", "/id", "/a/0"},
		Key:     []string{"/eventBody/participantId", "/a~1b"},
	}
	f.Fuzz(func(t *testing.T, body []byte, pointers bool) {
		for _, r := range []Rules{genesys, {Kind: KindGeneric}, withPointers} {
			if pointers {
				r.EventID, r.Key = withPointers.EventID, withPointers.Key
			}
			ids, err := Extract(body, r)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error does not wrap ErrMalformed: %v", err)
				}
				continue
			}
			if ids.EventID == "" {
				t.Fatalf("empty event id: %+v", ids)
			}
			if !json.Valid(body) {
				t.Fatalf("accepted invalid JSON: %+v", ids)
			}
			again, err := Extract(body, r)
			if err != nil || again != ids {
				t.Fatalf("not deterministic: %+v, then %+v, %v", ids, again, err)
			}
		}
	})
}
