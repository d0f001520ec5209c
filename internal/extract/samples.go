package extract

import (
	"embed"
	"io/fs"
	"strings"
)

// The samples ship in the binary for `hookline send --sample NAME` and serve
// as fixtures for tests in other packages.
//
//go:embed samples/*.json
var samplesFS embed.FS

// Samples returns realistic webhook bodies keyed by name; each call returns
// fresh copies that the caller may modify.
//
// Genesys notifications, each bare (NAME) and in an EventBridge envelope
// (NAME.eventbridge), for one conversation:
//
//   - "customer.start": v2.detail.events.conversation.{id}.customer.start
//   - "acd.start": v2.detail.events.conversation.{id}.acd.start
//   - "user.end": v2.detail.events.conversation.{id}.user.end
//   - "conversation": v2.conversations.{id} (eventBody is the conversation)
//   - "transcription": v2.conversations.{id}.transcription (eventTime is an
//     ISO string, unlike the epoch milliseconds of the detail events)
//
// Others:
//
//   - "data-action": a workflow data-action request body (kind genesys)
//   - "open-messaging": a Genesys Open Messaging outbound message (kind
//     generic, event id /id, key /channel/to/id)
//
// A bare notification and its EventBridge form carry the same event, so they
// have the same event id.
func Samples() map[string][]byte {
	entries, err := fs.ReadDir(samplesFS, "samples")
	if err != nil {
		panic("extract: embedded samples: " + err.Error()) // the embed is fixed at build time
	}
	m := make(map[string][]byte, len(entries))
	for _, e := range entries {
		b, err := samplesFS.ReadFile("samples/" + e.Name())
		if err != nil {
			panic("extract: embedded samples: " + err.Error())
		}
		m[strings.TrimSuffix(e.Name(), ".json")] = b
	}
	return m
}
