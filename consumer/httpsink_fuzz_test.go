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

// FuzzSignatureToForward: whatever a record's signature headers hold, what
// the sink forwards is one well-formed header line that none of the
// request's own headers can be changed by.
func FuzzSignatureToForward(f *testing.F) {
	f.Add("X-Hub-Signature-256", "sha256=c2ln")
	f.Add("host", "evil")
	f.Add("X-Sig", "a\r\nX-Injected: 1")
	f.Add("X-Hookline-Attempt", "9")
	f.Add("Content-Length", "0")
	f.Add("x sig", "v")
	f.Fuzz(func(t *testing.T, name, value string) {
		hs := []kgo.RecordHeader{{Key: headers.SignatureHeader, Value: []byte(name)}, {Key: headers.Signature, Value: []byte(value)}}
		n, v, ok := signatureToForward(hs)
		if !ok {
			return
		}
		req, err := http.NewRequest(http.MethodPost, "http://downstream.test/x", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(n, v)
		req.Header.Set(HeaderIdempotencyKey, "ev")
		req.Header.Set(HeaderAttempt, "0")
		var buf bytes.Buffer
		if err := req.Write(&buf); err != nil {
			t.Fatalf("forwarded %q: %q cannot be sent: %v", n, v, err)
		}
		got, err := http.ReadRequest(bufio.NewReader(&buf))
		if err != nil {
			t.Fatalf("forwarded %q: %q made an unreadable request: %v", n, v, err)
		}
		if got.Host != "downstream.test" || got.ContentLength != 2 || got.Header.Get(HeaderIdempotencyKey) != "ev" ||
			got.Header.Get(HeaderAttempt) != "0" || len(got.Header.Values(n)) != 1 {
			t.Fatalf("forwarding %q: %q changed the request: host %q, length %d, headers %v", n, v, got.Host, got.ContentLength, got.Header)
		}
	})
}
