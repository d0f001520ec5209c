package consumer

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/headers"
)

// FuzzSignatureToForward: whatever a record holds, and whichever header a
// source is configured to sign in (if the sink accepts it), the forwarded
// signature is one well-formed header line that touches none of the
// request's own headers.
func FuzzSignatureToForward(f *testing.F) {
	f.Add("X-Hub-Signature-256", "X-Hub-Signature-256", "sha256=c2ln")
	f.Add("host", "host", "evil")
	f.Add("X-Sig", "X-Sig", "a\r\nX-Injected: 1")
	f.Add("X-Hookline-Attempt", "x-hookline-attempt", "9")
	f.Add("X-Sig", "X-Forwarded-For", "127.0.0.1")
	f.Add("x sig", "x sig", "v")
	f.Fuzz(func(t *testing.T, configured, recorded, value string) {
		if CheckSignatureHeader(configured) != nil {
			return // NewHTTPSink refuses it
		}
		sigs := map[string]string{"om": http.CanonicalHeaderKey(configured)}
		ev := Event{Source: "om", Headers: []kgo.RecordHeader{{Key: headers.SignatureHeader, Value: []byte(recorded)}, {Key: headers.Signature, Value: []byte(value)}}}
		n, v, ok := signatureToForward(ev, sigs)
		if !ok {
			return
		}
		if n != sigs["om"] || v != value {
			t.Fatalf("forwarded %q: %q, want the configured header and the record's value", n, v)
		}
		req, err := http.NewRequest(http.MethodPost, "http://downstream.test/x", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		own := map[string]string{"Content-Type": "application/json", HeaderIdempotencyKey: "ev", HeaderEventID: "ev", HeaderReceipt: "r",
			HeaderAttempt: "0", HeaderSource: "om", HeaderConversationID: "c"}
		for k, val := range own {
			req.Header.Set(k, val)
		}
		if req.Header.Get(n) != "" {
			t.Fatalf("forwarded %q, one of the request's own headers", n)
		}
		req.Header.Set(n, v)
		var buf bytes.Buffer
		if err := req.Write(&buf); err != nil {
			t.Fatalf("forwarded %q: %q cannot be sent: %v", n, v, err)
		}
		got, err := http.ReadRequest(bufio.NewReader(&buf))
		if err != nil {
			t.Fatalf("forwarded %q: %q made an unreadable request: %v", n, v, err)
		}
		if got.Host != "downstream.test" || got.ContentLength != 2 || len(got.Header.Values(n)) != 1 {
			t.Fatalf("forwarding %q: %q changed the request: host %q, length %d, headers %v", n, v, got.Host, got.ContentLength, got.Header)
		}
		for k, val := range own {
			if got.Header.Get(k) != val {
				t.Fatalf("forwarding %q: %q changed %s: %v", n, v, k, got.Header)
			}
		}
	})
}
