package extract

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	convID  = "8d2f7a8c-4b1e-4c55-9a3f-2e6d1b0c9f47"
	otherID = "11111111-2222-4333-8444-555555555555"
)

var (
	genesys = Rules{Kind: KindGenesys}
	om      = Rules{Kind: KindGeneric, EventID: []string{"/id"}, Key: []string{"/channel/to/id"}}
)

// rulesFor returns the rules a source for sample name would use.
func rulesFor(name string) Rules {
	if name == "open-messaging" {
		return om
	}
	return genesys
}

// event returns the event a sample carries: NAME and NAME.eventbridge are
// the same event.
func event(name string) string { return strings.TrimSuffix(name, ".eventbridge") }

func TestSamples(t *testing.T) {
	samples := Samples()
	type want struct {
		shape, conv, topic string
		eventID            string // empty: the content hash
	}
	detail := func(ev string) string { return "v2.detail.events.conversation." + convID + "." + ev }
	tests := map[string]want{
		"customer.start":             {ShapeNotification, convID, detail("customer.start"), ""},
		"customer.start.eventbridge": {ShapeEventBridge, convID, detail("customer.start"), ""},
		"acd.start":                  {ShapeNotification, convID, detail("acd.start"), ""},
		"acd.start.eventbridge":      {ShapeEventBridge, convID, detail("acd.start"), ""},
		"user.end":                   {ShapeNotification, convID, detail("user.end"), ""},
		"user.end.eventbridge":       {ShapeEventBridge, convID, detail("user.end"), ""},
		"conversation":               {ShapeNotification, convID, "v2.conversations." + convID, ""},
		"conversation.eventbridge":   {ShapeEventBridge, convID, "v2.conversations." + convID, ""},
		"transcription":              {ShapeNotification, convID, "v2.conversations." + convID + ".transcription", ""},
		"transcription.eventbridge":  {ShapeEventBridge, convID, "v2.conversations." + convID + ".transcription", ""},
		"data-action":                {ShapeDataAction, convID, "", ""},
		"open-messaging":             {ShapeGeneric, "customer-7781", "", "c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4"},
	}
	for name := range samples {
		if _, ok := tests[name]; !ok {
			t.Errorf("sample %q has no test case", name)
		}
	}
	for name, w := range tests {
		t.Run(name, func(t *testing.T) {
			body, ok := samples[name]
			if !ok {
				t.Fatalf("no sample %q", name)
			}
			ids, err := Extract(body, rulesFor(name))
			if err != nil {
				t.Fatal(err)
			}
			if ids.Shape != w.shape || ids.ConversationID != w.conv || ids.Topic != w.topic {
				t.Errorf("got shape %q conversation %q topic %q, want %q %q %q",
					ids.Shape, ids.ConversationID, ids.Topic, w.shape, w.conv, w.topic)
			}
			if w.eventID == "" {
				w.eventID = refHash(t, innerOf(t, body, name != "open-messaging"))
			}
			if ids.EventID != w.eventID {
				t.Errorf("EventID = %q, want %q", ids.EventID, w.eventID)
			}
		})
	}
	// Samples hands out copies.
	samples["customer.start"][0] = 'x'
	if Samples()["customer.start"][0] != '{' {
		t.Error("Samples returned shared memory")
	}
}

func TestShapesAndFallbacks(t *testing.T) {
	notif := func(topic, eventBody string) string {
		return `{"topicName":"` + topic + `","version":"2","eventBody":` + eventBody + `,"metadata":{"CorrelationId":"x"}}`
	}
	eb := func(detail string) string {
		return `{"version":"0","id":"e1","detail-type":"t","source":"aws.partner/genesys.com/cloud/o/i","time":"2024-05-14T09:12:33Z","resources":[],"detail":` + detail + `}`
	}
	const msgID = "99999999-8888-4777-8666-555555555555"
	tests := []struct {
		name    string
		body    string
		rules   Rules
		shape   string
		conv    string
		eventID string // "hash:<json>" means the hash of that JSON
		topic   string
	}{
		{
			name:  "notification conversationId",
			body:  notif("v2.detail.events.conversation."+otherID+".customer.start", `{"conversationId":"`+convID+`","eventTime":1715677953120}`),
			rules: genesys, shape: ShapeNotification, conv: convID,
			topic: "v2.detail.events.conversation." + otherID + ".customer.start",
		},
		{
			name:  "topic segment after conversation",
			body:  notif("v2.detail.events.conversation."+convID+".user.end", `{"eventTime":"2024-05-14T09:12:33.120Z"}`),
			rules: genesys, shape: ShapeNotification, conv: convID,
			topic: "v2.detail.events.conversation." + convID + ".user.end",
		},
		{
			name:  "topic segment after conversations",
			body:  notif("v2.conversations."+convID+".transcription", `{}`),
			rules: genesys, shape: ShapeNotification, conv: convID,
			topic: "v2.conversations." + convID + ".transcription",
		},
		{
			// The message id is not the conversation id.
			name:  "chat message topic beats eventBody.id",
			body:  notif("v2.conversations.chats."+convID+".messages", `{"id":"`+msgID+`","body":"hi"}`),
			rules: genesys, shape: ShapeNotification, conv: convID,
			topic: "v2.conversations.chats." + convID + ".messages",
		},
		{
			name:  "v2.conversations without a uuid uses eventBody.id",
			body:  notif("v2.conversations.{id}", `{"id":"`+convID+`","participants":[]}`),
			rules: genesys, shape: ShapeNotification, conv: convID, topic: "v2.conversations.{id}",
		},
		{
			name:  "user conversations topic uses eventBody.id",
			body:  notif("v2.users."+otherID+".conversations.calls", `{"id":"`+convID+`","participants":[]}`),
			rules: genesys, shape: ShapeNotification, conv: convID,
			topic: "v2.users." + otherID + ".conversations.calls",
		},
		{
			name:  "eventBody.id is not used for other topics",
			body:  notif("v2.users."+otherID+".presence", `{"id":"`+convID+`"}`),
			rules: genesys, shape: ShapeNotification, conv: "",
			topic: "v2.users." + otherID + ".presence",
		},
		{
			name:  "numeric conversationId kept as written",
			body:  notif("v2.x", `{"conversationId":12.50}`),
			rules: genesys, shape: ShapeNotification, conv: "12.50", topic: "v2.x",
		},
		{
			name:  "configured key wins over built-in",
			body:  notif("v2.detail.events.conversation."+convID+".customer.start", `{"conversationId":"`+convID+`","participantId":"p-1"}`),
			rules: Rules{Kind: KindGenesys, Key: []string{"/missing", "/eventBody/participantId"}},
			shape: ShapeNotification, conv: "p-1",
			topic: "v2.detail.events.conversation." + convID + ".customer.start",
		},
		{
			name:  "configured key that does not resolve falls back",
			body:  notif("v2.detail.events.conversation."+convID+".customer.start", `{"participantId":""}`),
			rules: Rules{Kind: KindGenesys, Key: []string{"/eventBody/participantId", "/nope"}},
			shape: ShapeNotification, conv: convID,
			topic: "v2.detail.events.conversation." + convID + ".customer.start",
		},
		{
			name:    "configured event id",
			body:    notif("v2.x", `{"eventId":"ev-1"}`),
			rules:   Rules{Kind: KindGenesys, EventID: []string{"/eventBody/eventId"}},
			shape:   ShapeNotification,
			eventID: "ev-1", topic: "v2.x",
		},
		{
			name:    "configured event id not resolving hashes",
			body:    notif("v2.x", `{"eventId":null}`),
			rules:   Rules{Kind: KindGenesys, EventID: []string{"/eventBody/eventId", "/eventBody"}},
			shape:   ShapeNotification,
			eventID: "hash:" + notif("v2.x", `{"eventId":null}`), topic: "v2.x",
		},
		{
			name:    "eventbridge inner first, then whole body",
			body:    eb(notif("v2.x", `{"conversationId":"`+convID+`"}`)),
			rules:   Rules{Kind: KindGenesys, EventID: []string{"/eventBody/nope", "/id"}, Key: []string{"/source"}},
			shape:   ShapeEventBridge,
			conv:    "aws.partner/genesys.com/cloud/o/i",
			eventID: "e1", topic: "v2.x",
		},
		{
			name:    "eventbridge hash covers only detail",
			body:    eb(notif("v2.x", `{"conversationId":"`+convID+`"}`)),
			rules:   genesys,
			shape:   ShapeEventBridge,
			conv:    convID,
			eventID: "hash:" + notif("v2.x", `{"conversationId":"`+convID+`"}`), topic: "v2.x",
		},
		{
			name:    "eventbridge with a non-Genesys detail",
			body:    eb(`{"orderId":"o-1"}`),
			rules:   Rules{Kind: KindGenesys, Key: []string{"/orderId"}},
			shape:   ShapeEventBridge,
			conv:    "o-1",
			eventID: `hash:{"orderId":"o-1"}`, topic: "t",
		},
		{
			name:  "eventbridge without detail is a data action",
			body:  `{"id":"1","detail-type":"t","source":"s","conversationId":"c-1"}`,
			rules: genesys, shape: ShapeDataAction, conv: "c-1",
		},
		{
			name:  "data action pointers",
			body:  `{"request":{"conversation":{"id":"c-9"},"seq":[{"n":7}]}}`,
			rules: Rules{Kind: KindGenesys, EventID: []string{"/request/seq/0/n"}, Key: []string{"/request/conversation/id"}},
			shape: ShapeDataAction, conv: "c-9", eventID: "7",
		},
		{
			name:  "generic ignores Genesys fields",
			body:  notif("v2.conversations."+convID, `{"conversationId":"`+convID+`"}`),
			rules: Rules{Kind: KindGeneric},
			shape: ShapeGeneric, conv: "",
		},
		{
			name:  "generic pointers with escapes",
			body:  `{"a/b":{"m~n":"k-1"},"ids":["x","y"]}`,
			rules: Rules{Kind: KindGeneric, EventID: []string{"/ids/1"}, Key: []string{"/a~1b/m~0n"}},
			shape: ShapeGeneric, conv: "k-1", eventID: "y",
		},
		{
			// SendGrid-style batches: one POST, an array of events.
			name:  "generic array body with pointers into it",
			body:  `[{"sg_event_id":"e-1","email":"a@example.com"},{"sg_event_id":"e-2"}]`,
			rules: Rules{Kind: KindGeneric, EventID: []string{"/0/sg_event_id"}, Key: []string{"/0/email"}},
			shape: ShapeGeneric, conv: "a@example.com", eventID: "e-1",
		},
		{
			name:  "generic array body hashed without pointers",
			body:  `[ {"b":1, "a":[2, {"y":1,"x":0}]}, "s" ]`,
			rules: Rules{Kind: KindGeneric, EventID: []string{"/id"}, Key: []string{"/0/nope"}},
			shape: ShapeGeneric, conv: "",
		},
		{
			name: "unusable ids are skipped",
			body: `{"ctl":"a\nb","long":"` + strings.Repeat("x", MaxIDLength+1) + `","sur":"\ud800","obj":{},"ok":"fine"}`,
			rules: Rules{Kind: KindGeneric,
				EventID: []string{"/ctl", "/long", "/sur", "/obj", "/ok"}, Key: []string{"/ctl", "/sur"}},
			shape: ShapeGeneric, conv: "", eventID: "fine",
		},
		{
			// A blank id would make every such event one for dedup; and
			// HTTP drops surrounding white space from the headers that
			// carry ids to the handler, so " x " must be the id "x".
			name: "blank ids are skipped, padded ones trimmed",
			body: `{"sp":" ","nbsp":"\u00a0","mix":" \u2003\u3000","empty":"","id":" x\t","conv":"\u00a0c "}`,
			rules: Rules{Kind: KindGeneric,
				EventID: []string{"/sp", "/nbsp", "/mix", "/empty", "/id"}, Key: []string{"/sp", "/nbsp", "/conv"}},
			shape: ShapeGeneric, conv: "c", eventID: "x",
		},
		{
			name:  "a padded Genesys conversationId keys the conversation",
			body:  notif("v2.detail.events.conversation."+convID+".user.end", `{"conversationId":" `+convID+` "}`),
			rules: genesys, shape: ShapeNotification, conv: convID,
			topic: "v2.detail.events.conversation." + convID + ".user.end",
		},
		{
			name:  "a blank Genesys conversationId falls through to the topic",
			body:  notif("v2.detail.events.conversation."+convID+".user.end", `{"conversationId":"  "}`),
			rules: genesys, shape: ShapeNotification, conv: convID,
			topic: "v2.detail.events.conversation." + convID + ".user.end",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, err := Extract([]byte(tt.body), tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.eventID
			switch {
			case want == "":
				want = refHash(t, innerOf(t, []byte(tt.body), tt.rules.Kind == KindGenesys))
			case strings.HasPrefix(want, "hash:"):
				want = refHash(t, decode(t, []byte(strings.TrimPrefix(want, "hash:"))))
			}
			if ids.Shape != tt.shape || ids.ConversationID != tt.conv || ids.EventID != want || ids.Topic != tt.topic {
				t.Errorf("got %+v\nwant {EventID:%s ConversationID:%s Shape:%s Topic:%s}", ids, want, tt.conv, tt.shape, tt.topic)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct {
		name, body, reason string
		rules              Rules
	}{
		{"empty", "", "empty body", genesys},
		{"whitespace", " \n\t", "unexpected end of input", genesys},
		{"not json", "hello", "not JSON", genesys},
		{"form encoded", "a=1&b=2", "not JSON", genesys},
		{"null", "null", "top-level JSON value is null", genesys},
		{"number", "42", "top-level JSON value is a number", genesys},
		{"string", `"x"`, "top-level JSON value is a string", KindGeneric.rules()},
		{"array", `[{"id":"1"}]`, "top-level JSON value is an array, want an object", genesys},
		{"generic scalar", `7`, "top-level JSON value is a number, want an object or an array", KindGeneric.rules()},
		{"bool", "true", "top-level JSON value is a boolean", genesys},
		{"trailing garbage", `{"a":1}x`, "trailing data", genesys},
		{"two values", `{"a":1} {"a":2}`, "trailing data", genesys},
		{"truncated", `{"a":[1,2`, "unexpected end of input", genesys},
		{"trailing comma", `{"a":1,}`, "want an object key", genesys},
		{"single quotes", `{'a':1}`, "want an object key", genesys},
		{"leading zero", `{"a":01}`, "want ',' or '}'", genesys},
		{"bare dot", `{"a":.5}`, "want a value", genesys},
		{"no fraction digits", `{"a":1.}`, "digit after '.'", genesys},
		{"no exponent digits", `{"a":1e+}`, "digit in the exponent", genesys},
		{"minus alone", `{"a":-}`, "want a digit", genesys},
		{"NaN", `{"a":NaN}`, "want a value", genesys},
		{"bad literal", `{"a":nul}`, "want a value", genesys},
		{"bad escape", `{"a":"\x"}`, "bad escape", genesys},
		{"short unicode escape", `{"a":"\u12"}`, `bad \u escape`, genesys},
		{"raw control char", "{\"a\":\"x\ty\"}", "control character", genesys},
		{"raw control char after escape", "{\"a\":\"\\n\x01\"}", "control character", genesys},
		{"invalid utf-8", "{\"a\":\"\xff\"}", "invalid UTF-8", genesys},
		{"invalid utf-8 after escape", "{\"a\":\"\\n\xc3\"}", "invalid UTF-8", genesys},
		{"bom", "\xef\xbb\xbf{}", "byte order mark", genesys},
		{"duplicate key", `{"id":"1","x":2,"id":"2"}`, `duplicate key "id"`, KindGeneric.rules()},
		{"duplicate key via escape", `{"id":"1","\u0069d":"2"}`, `duplicate key "id"`, genesys},
		{"eventbridge detail string", `{"id":"1","detail-type":"t","source":"s","detail":"{}"}`, "detail is a string", genesys},
		{"eventbridge detail null", `{"id":"1","detail-type":"t","source":"s","detail":null}`, "detail is null", genesys},
		{"eventBody array", `{"topicName":"v2.x","eventBody":[]}`, "eventBody is an array", genesys},
		{"eventBody string in detail", `{"id":"1","detail-type":"t","source":"s","detail":{"topicName":"t","eventBody":"x"}}`, "eventBody is a string", genesys},
		{"too deep", strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1), "nesting deeper than 64", genesys},
		{"too deep arrays", `{"a":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + "}", "nesting deeper than 64", genesys},
		{"very deep", strings.Repeat("[", 1<<20), "nesting deeper than 64", genesys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, err := Extract([]byte(tt.body), tt.rules)
			if err == nil {
				t.Fatalf("no error, got %+v", ids)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
			if ids != (IDs{}) {
				t.Errorf("ids %+v on error", ids)
			}
		})
	}
	// The generic kind does not look at Genesys envelopes.
	if _, err := Extract([]byte(`{"topicName":"v2.x","eventBody":[]}`), KindGeneric.rules()); err != nil {
		t.Errorf("generic: %v", err)
	}
}

func (k Kind) rules() Rules { return Rules{Kind: k} }

func TestDepthLimit(t *testing.T) {
	nested := func(depth int) []byte {
		return []byte(strings.Repeat(`{"a":`, depth-1) + `{"id":"x"}` + strings.Repeat("}", depth-1))
	}
	if _, err := Extract(nested(MaxDepth), genesys); err != nil {
		t.Errorf("depth %d: %v", MaxDepth, err)
	}
	if _, err := Extract(nested(MaxDepth+1), genesys); !errors.Is(err, ErrMalformed) {
		t.Errorf("depth %d: err = %v, want malformed", MaxDepth+1, err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		rules Rules
		err   string // "" means valid
	}{
		{Rules{Kind: KindGenesys}, ""},
		{Rules{Kind: KindGeneric, EventID: []string{"/id", "/a~0b/~1c/0"}, Key: []string{"/"}}, ""},
		{Rules{}, "kind is empty"},
		{Rules{Kind: "Genesys"}, `unknown kind "Genesys"`},
		{Rules{Kind: KindGeneric, EventID: []string{"id"}}, `EventID[0] "id": JSON pointer must start with "/"`},
		{Rules{Kind: KindGeneric, EventID: []string{"/id", ""}}, `EventID[1] "": empty JSON pointer`},
		{Rules{Kind: KindGeneric, Key: []string{"/a~2"}}, `Key[0] "/a~2"`},
		{Rules{Kind: KindGeneric, Key: []string{"/a~"}}, `not followed by "0" or "1"`},
	}
	for _, tt := range tests {
		err := tt.rules.Validate()
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%+v: %v", tt.rules, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%+v: err = %v, want %q", tt.rules, err, tt.err)
		case tt.err != "":
			// Extract refuses invalid rules, and not as a malformed body.
			_, xerr := Extract([]byte(`{}`), tt.rules)
			if xerr == nil || errors.Is(xerr, ErrMalformed) {
				t.Errorf("%+v: Extract err = %v, want a non-malformed error", tt.rules, xerr)
			}
		}
	}
}

func TestPointer(t *testing.T) {
	d, err := parse([]byte(`{"a":[10,11,{"b":"x"}],"":{"":"empty"},"a/b":1,"m~n":2,"~1":3}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{ // pointer -> canonical JSON of the target, "" = unresolved
		"/a/0":                    "10",
		"/a/2/b":                  `"x"`,
		"/a/3":                    "",
		"/a/-":                    "",
		"/a/01":                   "",
		"/a/-1":                   "",
		"/a/b":                    "",
		"/a/0/x":                  "",
		"//":                      `"empty"`,
		"/":                       `{"":"empty"}`,
		"/a~1b":                   "1",
		"/m~0n":                   "2",
		"/~01":                    "3",
		"/nope/x":                 "",
		"/a/99999999999999999999": "",
	}
	for p, want := range tests {
		n, ok := d.resolve(d.root, p)
		got := ""
		if ok {
			got = string(d.appendCanonical(nil, n))
		}
		if got != want {
			t.Errorf("resolve(%q) = %q, want %q", p, got, want)
		}
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"b":1, "a":[true,false,null,-0.50e+10], "c":{}}`, `{"a":[true,false,null,-0.50e+10],"b":1,"c":{}}`},
		{`{"s":"\u00e9\/\"\\\b\f\n\r\t\u0001\u001f\u007f<>&\u2028"}`, "{\"s\":\"é/\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\x7f<>&\u2028\"}"},
		{`{"pair":"\ud83d\ude00","raw":"😀"}`, `{"pair":"😀","raw":"😀"}`},
		{`{"lone":"\uD800x","low":"\udc00","rev":"\ude00\ud83d"}`, `{"lone":"\ud800x","low":"\udc00","rev":"\ude00\ud83d"}`},
		// Keys sort by UTF-8 bytes: U+FF5E (EF BD 9E) before U+1F600 (F0 9F 98 80).
		{`{"😀":1,"～":2,"Z":3,"a":4,"":5}`, `{"":5,"Z":3,"a":4,"～":2,"😀":1}`},
		{"[ ]", "[]"},
	}
	for _, tt := range tests {
		d, err := parse([]byte(tt.in))
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if got := string(d.appendCanonical(nil, d.root)); got != tt.want {
			t.Errorf("canonical(%s)\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
	// A lone surrogate is distinct from U+FFFD and from its raw WTF-8 bytes
	// (which are not valid UTF-8 and so not valid input).
	a, _ := Extract([]byte(`{"x":"\ud800"}`), KindGeneric.rules())
	b, _ := Extract([]byte(`{"x":"\ufffd"}`), KindGeneric.rules())
	if a.EventID == "" || a.EventID == b.EventID {
		t.Errorf("lone surrogate and U+FFFD hash alike: %q %q", a.EventID, b.EventID)
	}
	if _, err := Extract([]byte("{\"x\":\"\xed\xa0\x80\"}"), KindGeneric.rules()); !errors.Is(err, ErrMalformed) {
		t.Errorf("raw surrogate bytes: err = %v, want malformed", err)
	}
}

// TestRewrap: the same notification in any EventBridge envelope, or bare, has
// one event id.
func TestRewrap(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for name, body := range Samples() {
		if name == "open-messaging" || name == "data-action" || strings.HasSuffix(name, ".eventbridge") {
			continue
		}
		bare, err := Extract(body, genesys)
		if err != nil {
			t.Fatal(err)
		}
		inner := decode(t, body)
		for i := 0; i < 20; i++ {
			env := map[string]any{
				"version":     "0",
				"id":          randUUID(rnd),
				"detail-type": inner.(map[string]any)["topicName"],
				"source":      "aws.partner/genesys.com/cloud/" + randUUID(rnd) + "/hookline",
				"account":     fmt.Sprint(rnd.Int64N(1e12)),
				"time":        time.Unix(rnd.Int64N(2e9), 0).UTC().Format(time.RFC3339),
				"region":      "eu-west-1",
				"resources":   []any{},
				"detail":      inner,
			}
			wrapped := reencode(env, rnd)
			ids, err := Extract(wrapped, genesys)
			if err != nil {
				t.Fatalf("%s: %v\n%s", name, err, wrapped)
			}
			if ids.EventID != bare.EventID || ids.ConversationID != bare.ConversationID || ids.Shape != ShapeEventBridge {
				t.Fatalf("%s rewrapped: %+v, bare: %+v", name, ids, bare)
			}
		}
	}
}

// TestPermutations: key order, whitespace and string escaping do not change
// the event id.
func TestPermutations(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for name, body := range Samples() {
		r := rulesFor(name)
		r.EventID = nil // always the hash
		want, err := Extract(body, r)
		if err != nil {
			t.Fatal(err)
		}
		v := decode(t, body)
		for i := 0; i < 20; i++ {
			b := reencode(v, rnd)
			got, err := Extract(b, r)
			if err != nil {
				t.Fatalf("%s: %v\n%s", name, err, b)
			}
			if got != want {
				t.Fatalf("%s permuted: %+v, want %+v\n%s", name, got, want, b)
			}
		}
	}
}

// TestDistinct: distinct events have distinct event ids; the forms of one
// event share one.
func TestDistinct(t *testing.T) {
	byEvent := map[string]string{}
	byID := map[string]string{}
	for name, body := range Samples() {
		ids, err := Extract(body, rulesFor(name))
		if err != nil {
			t.Fatal(err)
		}
		ev := event(name)
		if prev, ok := byEvent[ev]; ok && prev != ids.EventID {
			t.Errorf("%s: event id %s, other form of the event has %s", name, ids.EventID, prev)
		}
		byEvent[ev] = ids.EventID
		if other, ok := byID[ids.EventID]; ok && other != ev {
			t.Errorf("%s and %s share event id %s", name, other, ids.EventID)
		}
		byID[ids.EventID] = ev
	}
	if len(byEvent) != 7 {
		t.Errorf("%d distinct events, want 7", len(byEvent))
	}
}

func TestLargeBody(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"topicName":"v2.conversations.` + convID + `.transcription","eventBody":{"conversationId":"` + convID + `","transcripts":[`)
	for i := 0; b.Len() < 1<<20-200; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"utteranceId":"u-%d","confidence":0.9%d,"transcript":"ok so the caf\u00e9 order number is %d"}`, i, i%10, i)
	}
	b.WriteString(`]}}`)
	body := []byte(b.String())
	ids, err := Extract(body, genesys)
	if err != nil {
		t.Fatal(err)
	}
	if ids.ConversationID != convID || len(ids.EventID) != 64 {
		t.Errorf("got %+v", ids)
	}
	// A wide object with many members is fine too (sorted, not quadratic).
	b.Reset()
	b.WriteString(`{"id":"w"`)
	for i := 0; b.Len() < 1<<20-40; i++ {
		fmt.Fprintf(&b, `,"k%07d":%d`, (i*7919)%1000003, i)
	}
	b.WriteString(`}`)
	if _, err := Extract([]byte(b.String()), Rules{Kind: KindGeneric, EventID: []string{"/id"}}); err != nil {
		t.Error(err)
	}
}

func TestExtractCopies(t *testing.T) {
	body := []byte(`{"id":"ev-1","c":"conv-1","topicName":"v2.t","eventBody":{}}`)
	ids, err := Extract(body, Rules{Kind: KindGenesys, EventID: []string{"/id"}, Key: []string{"/c"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'x'
	}
	if ids.EventID != "ev-1" || ids.ConversationID != "conv-1" || ids.Topic != "v2.t" {
		t.Errorf("ids changed with the body: %+v", ids)
	}
}

func TestKey(t *testing.T) {
	if k := (IDs{EventID: "e", ConversationID: "c"}).Key(); k != "c" {
		t.Errorf("Key = %q", k)
	}
	if k := (IDs{EventID: "e"}).Key(); k != "e" {
		t.Errorf("Key = %q", k)
	}
}

func TestTopicConversation(t *testing.T) {
	tests := []struct {
		topic, id string
		convs     bool
	}{
		{"v2.detail.events.conversation." + convID + ".customer.start", convID, false},
		{"v2.conversations." + convID, convID, false},
		{"v2.conversations.chats." + convID + ".messages", convID, false},
		{"v2.users." + otherID + ".conversations", "", true},
		{"v2.routing.queues." + otherID + ".conversations.emails", "", true},
		{"v2.users." + otherID + ".presence", "", false},
		{"v2.conversation", "", false},
		{"", "", false},
		{"v2.conversations.8D2F7A8C-4B1E-4C55-9A3F-2E6D1B0C9F47", "8D2F7A8C-4B1E-4C55-9A3F-2E6D1B0C9F47", false},
		{"v2.conversations.8d2f7a8c-4b1e-4c55-9a3f-2e6d1b0c9f4", "", true},
	}
	for _, tt := range tests {
		id, convs := topicConversation(tt.topic)
		if id != tt.id || convs != tt.convs {
			t.Errorf("topicConversation(%q) = %q, %v; want %q, %v", tt.topic, id, convs, tt.id, tt.convs)
		}
	}
}

// ---- helpers: an independent reference built on encoding/json ----

func decode(t testing.TB, body []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// innerOf returns the decoded inner notification of a body.
func innerOf(t testing.TB, body []byte, genesysKind bool) any {
	v := decode(t, body)
	if m, ok := v.(map[string]any); ok && genesysKind {
		_, id := m["id"]
		_, dt := m["detail-type"]
		_, src := m["source"]
		if d, ok := m["detail"]; ok && id && dt && src {
			return d
		}
	}
	return v
}

// refHash is the documented canonical form, written with encoding/json.
func refHash(t testing.TB, v any) string {
	var b bytes.Buffer
	var enc func(v any)
	enc = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			slices.Sort(keys) // byte order
			b.WriteByte('{')
			for i, k := range keys {
				if i > 0 {
					b.WriteByte(',')
				}
				enc(k)
				b.WriteByte(':')
				enc(v[k])
			}
			b.WriteByte('}')
		case []any:
			b.WriteByte('[')
			for i, e := range v {
				if i > 0 {
					b.WriteByte(',')
				}
				enc(e)
			}
			b.WriteByte(']')
		case string:
			b.Write(appendString(nil, v))
		case json.Number:
			b.WriteString(string(v))
		default:
			out, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(out)
		}
	}
	enc(v)
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:])
}

// reencode writes v as JSON with random key order, random whitespace and
// random (valid) string escaping.
func reencode(v any, rnd *rand.Rand) []byte {
	var b bytes.Buffer
	ws := func() {
		for n := rnd.IntN(3); n > 0; n-- {
			b.WriteByte(" \t\r\n"[rnd.IntN(4)])
		}
	}
	var enc func(v any)
	enc = func(v any) {
		ws()
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			rnd.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
			b.WriteByte('{')
			for i, k := range keys {
				if i > 0 {
					b.WriteByte(',')
				}
				enc(k)
				ws()
				b.WriteByte(':')
				enc(v[k])
			}
			ws()
			b.WriteByte('}')
		case []any:
			b.WriteByte('[')
			for i, e := range v {
				if i > 0 {
					b.WriteByte(',')
				}
				enc(e)
			}
			ws()
			b.WriteByte(']')
		case string:
			b.WriteByte('"')
			for _, r := range v {
				switch {
				case r == '"' || r == '\\':
					b.WriteByte('\\')
					b.WriteRune(r)
				case r < 0x20 || rnd.IntN(4) == 0:
					if r >= 0x10000 {
						r1, r2 := 0xd800+(r-0x10000)>>10, 0xdc00+(r-0x10000)&0x3ff
						fmt.Fprintf(&b, `\u%04x\u%04X`, r1, r2)
					} else if r == '/' && rnd.IntN(2) == 0 {
						b.WriteString(`\/`)
					} else {
						fmt.Fprintf(&b, `\u%04X`, r)
					}
				default:
					b.WriteRune(r)
				}
			}
			b.WriteByte('"')
		case json.Number:
			b.WriteString(string(v))
		default:
			out, _ := json.Marshal(v)
			b.Write(out)
		}
		ws()
	}
	enc(v)
	return b.Bytes()
}

func randUUID(rnd *rand.Rand) string {
	var u [16]byte
	for i := range u {
		u[i] = byte(rnd.UintN(256))
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
