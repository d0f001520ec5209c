package extract

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
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
		// Inputs of a payload probe: ids a sender may get wrong, escapes
		// that hide duplicates or controls, envelopes of the wrong shape.
		"\xef\xbb\xbf{\"id\":\"x\"}", "\xff\xfe{\x00}\x00", `{"id":"caf` + "\xe9" + `"}`,
		`{"id":"x","\u0069d":"y"}`, `{"id":1e400}`, `{"id":12345678901234567890}`, `{"id":-0}`,
		`{"id":"a\nb"}`, `{"id":"a\u0000b","conv":"\u001b[31m"}`, `{"id":"\u00a0\u3000"}`, `{"id":"\u0085"}`,
		`{"id":"ok\u007f"}`, `{"id":{"a":1}}`, `{"id":[1]}`, `{"id":true}`, `{"id":"  "}`,
		`{"id":"x"} // c`, `/*c*/{"id":"x"}`, `{"id":NaN}`,
		`{"id":"e","detail-type":"t","source":"s","detail":"{\"topicName\":\"v2.x\"}"}`,
		`{"id":"e","detail-type":"t","source":"s","detail":null}`,
		`{"topicName":"v2.conversations.foo","eventBody":{"id":"conv-x","participants":[{"id":"p"}]}}`,
		`{"topicName":"v2.x","eventBody":"x"}`,
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
			// Ids become Kafka headers, the record key, HTTP headers of
			// the forward sink and log fields.
			for _, id := range []string{ids.EventID, ids.ConversationID} {
				if len(id) > MaxIDLength || !utf8.ValidString(id) || strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
					t.Fatalf("unsafe id %q in %+v", id, ids)
				}
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
