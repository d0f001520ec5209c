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
