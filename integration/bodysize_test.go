package integration

// The receiver's default body limit (1 MiB) end to end: a body of exactly
// that size is accepted, travels every retry tier into the DLQ untouched and
// can be replayed; one byte more is refused with 413. Before the pipeline
// topics got a max.message.bytes with room for headers, such a body got 503
// forever (the sender retried for a day, then the event was lost).

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/topics"
)

// paddedNotification is a Genesys notification of exactly size bytes.
func paddedNotification(t *testing.T, conv string, size int) []byte {
	t.Helper()
	head := fmt.Sprintf(`{"topicName":"v2.detail.events.conversation.%s.customer.start","eventBody":{"conversationId":%q,"eventTime":%d,"pad":"`,
		conv, conv, time.Now().UnixMilli())
	tail := `"}}`
	pad := size - len(head) - len(tail)
	if pad < 0 {
		t.Fatalf("size %d too small", size)
	}
	return []byte(head + strings.Repeat("x", pad) + tail)
}

func TestLargestBodyTravelsEveryHop(t *testing.T) {
	base := uniqueBase(t)
	plan, err := topics.NewPlan(topics.Config{Base: base, Partitions: 1, RetryDelays: []time.Duration{200 * time.Millisecond, 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	names := plan.Names
	t.Cleanup(func() { deleteTopics(names.All()...) })
	svc := newDlqService(t) // answers 500 until healthy
	addr := freeAddr(t)
	p := startCLI(t, nil, "run", "--base", base, "--partitions", "1", "--retry-delays", "200ms,200ms",
		"--insecure-no-auth", "--listen", addr, "--handler-url", svc.url, "--log-level", "warn")
	p.waitOutput(`receiver listening on`, 90*time.Second)

	const maxBody = 1 << 20 // the default --max-body
	body := paddedNotification(t, "conv-big", maxBody)
	id := dlqPost(t, addr, string(body), http.StatusOK)
	resp, err := http.Post("http://"+addr+"/webhooks/genesys", "application/json", bytes.NewReader(paddedNotification(t, "conv-big", maxBody+1)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body one byte over --max-body: %d, want 413", resp.StatusCode)
	}

	deadline := time.Now().Add(60 * time.Second)
	for endOffsets(t, names.DLQ) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter after 60s; retry-1 holds %d, retry-2 %d records\n%s",
				endOffsets(t, names.Retries[0]), endOffsets(t, names.Retries[1]), p.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, topic := range []string{names.Base, names.Retries[0], names.Retries[1], names.DLQ} {
		rs := recordsWithID(t, topic, id)
		if len(rs) != 1 || !bytes.Equal(rs[0].Value, body) {
			t.Fatalf("%s: %d records of the event, or its body changed", topic, len(rs))
		}
	}
	dl := recordsWithID(t, names.DLQ, id)[0]
	if c := headers.Value(dl.Headers, headers.ErrorClass); c != headers.ClassExhausted {
		t.Fatalf("dead letter class %q", c)
	}

	// The service is fixed: the 1 MiB dead letter can be replayed and is
	// handled.
	svc.healthy.Store(true)
	r := runCLI(t, nil, "replay", "--base", base, "--event-id", id)
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 1") {
		t.Fatalf("replay: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if calls, _ := svc.snapshot(); calls[id] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replayed event was not handled within 30s\n%s", p.output())
		}
	}
}
