package extract

import (
	"encoding/json"
	"strings"
	"testing"
)

// topicFilter is the topic name with each UUID segment written as "{id}":
// the form Genesys puts in an EventBridge event's detail-type (the topic
// filter the integration subscribed), for example
// "v2.conversations.{id}.transcription" for the topic
// "v2.conversations.97b9dcb3-c182-4d1f-8123-76a4b5cf1f5a.transcription".
func topicFilter(topic string) string {
	segs := strings.Split(topic, ".")
	for i, s := range segs {
		if isUUID(s) {
			segs[i] = "{id}"
		}
	}
	return strings.Join(segs, ".")
}

// TestSampleEnvelopesAsGenesysSendsThem: the EventBridge samples carry the
// detail-type Genesys sets, the topic filter with {id} placeholders, not the
// concrete topic name; the topic hookline reports still comes from
// detail.topicName.
func TestSampleEnvelopesAsGenesysSendsThem(t *testing.T) {
	for name, body := range Samples() {
		if !strings.HasSuffix(name, ".eventbridge") {
			continue
		}
		var env struct {
			DetailType string `json:"detail-type"`
			Detail     struct {
				TopicName string `json:"topicName"`
			} `json:"detail"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := topicFilter(env.Detail.TopicName); env.DetailType != want {
			t.Errorf("%s: detail-type %q, Genesys sends %q", name, env.DetailType, want)
		}
		ids, err := Extract(body, genesys)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ids.Topic != env.Detail.TopicName {
			t.Errorf("%s: Topic %q, want the detail's topicName %q", name, ids.Topic, env.Detail.TopicName)
		}
	}
}

// TestGenesysCorpus: shapes Genesys sends that the samples do not cover, with
// the key hookline derives, and the redelivery and distinctness properties
// dedup relies on. Shapes follow public material: an EventBridge
// transcription event captured from a live integration (detail-type
// "v2.conversations.{id}.transcription"), the topic lists of
// https://help.mypurecloud.com/articles/overview-of-triggers/ and
// https://splunk.github.io/terraform-genesyscloud-aws/GenesysCloudTopics, the
// platform API models of user presence and routing status, and the trigger
// data formats of https://help.mypurecloud.com/articles/create-a-trigger/.
func TestGenesysCorpus(t *testing.T) {
	const (
		conv = "97b9dcb3-c182-4d1f-8123-76a4b5cf1f5a"
		user = "2a9c4e6f-8b1d-4f3a-a5c7-0e9d8b7c6a54"
		q    = "b7d1e4c2-9a3f-4e61-8c05-1f2a3b4c5d6e"
	)
	eb := func(envID, filter, detail string) string {
		return `{"version":"0","id":"` + envID + `","detail-type":"` + filter + `","source":"aws.partner/genesys.com/cloud/cf6cb7d5-d0ea-45b5-b0cf-73ad5f5b8721/hookline","account":"765425735388","time":"2026-03-19T22:04:48Z","region":"us-east-2","resources":[],"detail":` + detail + `}`
	}
	notif := func(topic, body, corr string) string {
		return `{"topicName":"` + topic + `","version":"2","eventBody":` + body + `,"metadata":{"CorrelationId":"` + corr + `"},"timestamp":"2026-03-19T22:04:48.128Z"}`
	}
	presence := func(modified, sp string) string {
		return `{"source":"PURECLOUD","presenceDefinition":{"id":"6a3af858-942f-489d-9700-5f9bcdcdae9b","systemPresence":"` + sp + `"},"primary":true,"message":"","modifiedDate":"` + modified + `"}`
	}
	transcription := notif("v2.conversations."+conv+".transcription",
		`{"eventTime":"2026-03-19T22:04:48.128Z","organizationId":"cf6cb7d5-d0ea-45b5-b0cf-73ad5f5b8721","conversationId":"`+conv+`","communicationId":"7dd98c4f-61ab-33a2-9bc3-18eefd1a0824","sessionStartTimeMs":1773957594383,"transcripts":[{"utteranceId":"5b778cb0-3745-4243-b703-688f8b6597a0","isFinal":true,"channel":"EXTERNAL"}],"status":{"offsetMs":278620,"status":"SESSION_ONGOING"}}`,
		"d1ab36e9-af51-4b3c-ab96-98d7349e75b4")
	presence1 := notif("v2.users."+user+".presence", presence("2026-03-19T22:04:48.128Z", "Available"), "c-1")
	presence2 := notif("v2.users."+user+".presence", presence("2026-03-19T22:04:49.128Z", "Away"), "c-2")
	start := func(c string) string {
		return notif("v2.detail.events.conversation."+c+".customer.start", `{"eventTime":1715677953120,"conversationId":"`+c+`","mediaType":"VOICE"}`, "c-3")
	}
	tests := []struct {
		name, body string
		key        string // "" means the event id
	}{
		{"transcription via EventBridge", eb("6efd5506-3fd6-09a1-5599-09ae48bd6dd8", "v2.conversations.{id}.transcription", transcription), conv},
		{"queue conversation snapshot", notif("v2.routing.queues."+q+".conversations", `{"id":"`+conv+`","participants":[]}`, "c-4"), conv},
		{"user conversation snapshot", notif("v2.users."+user+".conversations", `{"id":"`+conv+`","participants":[]}`, "c-5"), conv},
		{"quality evaluation", notif("v2.quality.evaluations", `{"id":"e-1","conversationId":"`+conv+`","agentId":"`+user+`"}`, "c-6"), conv},
		{"trigger jsonData in a data action", `{"eventTime":1715677953120,"conversationId":"` + conv + `","participantId":"p-1"}`, conv},
		// No conversation: keyed by the event id (DESIGN.md, record format).
		{"presence", eb("e-1", "v2.users.{id}.presence", presence1), ""},
		{"routing status", eb("e-2", "v2.users.{id}.routingStatus", notif("v2.users."+user+".routingStatus", `{"routingStatus":{"userId":"`+user+`","status":"IDLE","startTime":"2026-03-19T22:04:48.128Z"}}`, "c-7")), ""},
		{"user activity (eventBody.id is the user)", notif("v2.users."+user+".activity", `{"id":"`+user+`","routingStatus":{"status":"IDLE"}}`, "c-8"), ""},
		{"audit", notif("v2.audits.entitytype.Queue.entityid."+q, `{"id":"a-1","userId":"`+user+`","entityId":"`+q+`","entityType":"Queue","action":"Update"}`, "c-9"), ""},
	}
	for _, tt := range tests {
		ids, err := Extract([]byte(tt.body), genesys)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		want := tt.key
		if want == "" {
			want = ids.EventID
		}
		if ids.Key() != want || tt.key == "" && ids.ConversationID != "" {
			t.Errorf("%s: key %q (conversation %q), want %q", tt.name, ids.Key(), ids.ConversationID, want)
		}
	}

	id := func(body string) string {
		t.Helper()
		ids, err := Extract([]byte(body), genesys)
		if err != nil {
			t.Fatal(err)
		}
		return ids.EventID
	}
	// Redeliveries: a new envelope (id, time), or the notification bare.
	if a, b, c := id(eb("e-1", "v2.users.{id}.presence", presence1)), id(eb("e-9", "v2.users.{id}.presence", strings.ReplaceAll(presence1, `,"`, ` , "`))), id(presence1); a != b || a != c {
		t.Errorf("one presence event has ids %s %s %s", a, b, c)
	}
	// Distinct events: one user's presence changes a second apart; the
	// customer.start of two conversations at the same millisecond.
	if id(presence1) == id(presence2) {
		t.Error("two presence changes share an event id")
	}
	if id(start(conv)) == id(start(q)) {
		t.Error("customer.start of two conversations share an event id")
	}
}
