package producer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/internal/extract"
	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/syncbuf"
	"github.com/hookline/hookline/internal/verify"
)

// sendHead opens a connection to h, writes head (request line and headers,
// then the blank line) and body, and returns the status line of the first
// answer, or "" when none came within wait. The connection stays open until
// the test ends, as a sender trickling the rest of its body keeps it.
func sendHead(t *testing.T, h *harness, head, body string, wait time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte(head + "\r\n" + body)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return ""
	}
	return strings.TrimSpace(line)
}

// A sender without valid credentials in its headers is answered 401 before
// its body is read: it gets no 100 Continue inviting a megabyte, and it
// cannot hold an in-flight slot (locking out real senders with 429) by
// trickling a body until the read timeout.
func TestUnauthenticatedRequestIsRefusedBeforeItsBody(t *testing.T) {
	body := string(extract.Samples()["user.end"])

	t.Run("expect 100-continue", func(t *testing.T) {
		h := newHarness(t, nil)
		got := sendHead(t, h, "POST /webhooks/genesys HTTP/1.1\r\nHost: x\r\nX-Hookline-Secret: wrong\r\n"+
			"Content-Length: 1000000\r\nExpect: 100-continue\r\n", "", 3*time.Second)
		if !strings.HasPrefix(got, "HTTP/1.1 401") {
			t.Fatalf("unauthenticated request with Expect: 100-continue: first answer %q, want 401 (not 100 Continue)", got)
		}
	})

	t.Run("trickled body holds no slot", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.MaxInFlight = 1 })
		// One byte of a 100-byte body, then nothing.
		got := sendHead(t, h, "POST /webhooks/genesys HTTP/1.1\r\nHost: x\r\nX-Hookline-Secret: wrong\r\nContent-Length: 100\r\n", "{", 3*time.Second)
		if !strings.HasPrefix(got, "HTTP/1.1 401") {
			t.Fatalf("unauthenticated trickled body: first answer within 3s %q, want 401", got)
		}
		if resp, b := h.post("genesys", []byte(body), testSecret); resp.StatusCode != http.StatusOK {
			t.Fatalf("authentic webhook next to an unauthenticated slow one: %d %s, want 200", resp.StatusCode, b)
		}
		if n := h.endOffsetSum(h.names.Base); n != 1 {
			t.Fatalf("%d records in %s, want 1", n, h.names.Base)
		}
	})

	t.Run("hmac without a signature header", func(t *testing.T) {
		h := newHarness(t, func(c *Config) {
			v, err := verify.New(verify.Config{Type: verify.TypeHMACSHA256, Prefix: "sha256=", Secret: testSecret})
			if err != nil {
				t.Fatal(err)
			}
			c.Sources[0].Verifier = v
		})
		for _, sig := range []string{"", "X-Hub-Signature-256: sha256=not-a-signature\r\n"} {
			got := sendHead(t, h, "POST /webhooks/genesys HTTP/1.1\r\nHost: x\r\n"+sig+
				"Content-Length: 1000000\r\nExpect: 100-continue\r\n", "", 3*time.Second)
			if !strings.HasPrefix(got, "HTTP/1.1 401") {
				t.Fatalf("hmac source, signature header %q: first answer %q, want 401 before the body", sig, got)
			}
		}
		// A well-formed but wrong signature is refused after the body,
		// and its 401 looks the same: it also closes the connection, so
		// the answer does not tell which check failed.
		for _, sig := range []string{"", "sha256=" + strings.Repeat("ab", 32)} {
			req, _ := http.NewRequest(http.MethodPost, h.url+"/webhooks/genesys", strings.NewReader(body))
			if sig != "" {
				req.Header.Set("X-Hub-Signature-256", sig)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
				t.Errorf("hmac source, signature %q: %d (Connection: close %v), want 401 closing the connection", sig, resp.StatusCode, resp.Close)
			}
		}
	})
}

// An answer given before the body was read comes at once, not after the
// server read (and discarded) a trickled body until the read timeout: a
// sender over the in-flight bound gets its 429, and one announcing a body
// over the limit its 413, within its own timeout.
func TestRefusalsBeforeTheBodyDoNotWaitForIt(t *testing.T) {
	body := extract.Samples()["user.end"]

	t.Run("429 over the in-flight bound", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.MaxInFlight = 1; c.AckTimeout = 5 * time.Second })
		release, first := h.holdTheOnlySlot(body)
		// One byte of a 100-byte body, then nothing.
		got := sendHead(t, h, "POST /webhooks/genesys HTTP/1.1\r\nHost: x\r\nX-Hookline-Secret: "+testSecret+"\r\nContent-Length: 100\r\n", "{", 3*time.Second)
		close(release)
		if !strings.HasPrefix(got, "HTTP/1.1 429") {
			t.Fatalf("trickled body over the in-flight bound: first answer within 3s %q, want 429", got)
		}
		if code := <-first; code != http.StatusOK {
			t.Fatalf("webhook holding the slot: %d, want 200", code)
		}
	})

	t.Run("404 and 405 for a wrong route", func(t *testing.T) {
		h := newHarness(t, nil)
		for _, c := range []struct{ line, want string }{
			{"POST /webhooks/nosuch HTTP/1.1", "HTTP/1.1 404"},   // unknown source
			{"POST /webhooks/genesys/ HTTP/1.1", "HTTP/1.1 404"}, // no such route
			{"PUT /webhooks/genesys HTTP/1.1", "HTTP/1.1 405"},
		} {
			got := sendHead(t, h, c.line+"\r\nHost: x\r\nX-Hookline-Secret: "+testSecret+"\r\nContent-Length: 1000\r\n", "{", 3*time.Second)
			if !strings.HasPrefix(got, c.want) {
				t.Errorf("%s with a trickled body: first answer within 3s %q, want %s", c.line, got, c.want)
			}
		}
		// Without a body (a health check's GET) the connection stays.
		resp, err := http.Get(h.url + "/nope")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Close {
			t.Errorf("GET /nope: %d, Connection: close %v; want 404 keeping the connection", resp.StatusCode, resp.Close)
		}
	})

	t.Run("413 for an announced body over the limit", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.MaxBodyBytes = 1000 })
		got := sendHead(t, h, "POST /webhooks/genesys HTTP/1.1\r\nHost: x\r\nX-Hookline-Secret: "+testSecret+"\r\nContent-Length: 5000\r\n", "{", 3*time.Second)
		if !strings.HasPrefix(got, "HTTP/1.1 413") {
			t.Fatalf("trickled body announced over the limit: first answer within 3s %q, want 413", got)
		}
	})
}

// A compressed body signed before compression fails verification on every
// request; the 401 stays plain, and the log names the Content-Encoding, the
// likelier cause than a wrong secret.
func TestSignatureOverACompressedBodyNamesTheEncoding(t *testing.T) {
	logs := &syncbuf.Buffer{}
	cfg := verify.Config{Type: verify.TypeHMACSHA256, Prefix: "sha256=", Encoding: verify.EncodingBase64, Secret: testSecret}
	h := newHarness(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		v, err := verify.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Sources[0].Verifier = v
	})
	body := extract.Samples()["user.end"]
	name, sig, err := verify.SignHMAC(cfg, body) // over the uncompressed body
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(body)
	zw.Close()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/webhooks/genesys", &gz)
	req.Header.Set(name, sig)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(rb), "gzip") {
		t.Fatalf("gzip body signed uncompressed: %d %s, want a plain 401", resp.StatusCode, rb)
	}
	if !strings.Contains(logs.String(), "Content-Encoding: gzip") {
		t.Fatalf("the 401's log does not name the Content-Encoding:\n%s", logs)
	}
}

// A signature of the body is stored with it, as the sender sent it, so
// that a downstream holding the key can verify the body again; also on a
// malformed body's dead letter.
func TestSignatureIsStoredWithTheBody(t *testing.T) {
	cfg := verify.Config{Type: verify.TypeHMACSHA256, Header: "x-signature", Prefix: "sha256=", Secret: testSecret}
	h := newHarness(t, func(c *Config) {
		v, err := verify.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Sources[0].Verifier = v
	})
	for _, c := range []struct {
		body  []byte
		topic string
	}{
		{extract.Samples()["user.end"], h.names.Base},
		{[]byte(`{"not":"genesys"`), h.names.DLQ},
	} {
		_, sig, err := verify.SignHMAC(cfg, c.body)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, h.url+"/webhooks/genesys", bytes.NewReader(c.body))
		req.Header.Set("X-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("signed body: status %d", resp.StatusCode)
		}
		recs := h.records(c.topic)
		if len(recs) != 1 {
			t.Fatalf("%d records in %s, want 1", len(recs), c.topic)
		}
		r := recs[0]
		if g := headers.Value(r.Headers, headers.SignatureHeader); g != "X-Signature" {
			t.Errorf("%s: signature header name %q, want X-Signature", c.topic, g)
		}
		if g := headers.Value(r.Headers, headers.Signature); g != sig {
			t.Errorf("%s: signature %q, want %q as sent", c.topic, g, sig)
		}
	}
}
