package producer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/internal/extract"
)

// rawPost writes one webhook on conn (kept alive) and reads the answer.
func rawPost(conn net.Conn, br *bufio.Reader, host string, body []byte) (*http.Response, []byte, error) {
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := fmt.Sprintf("POST /webhooks/genesys HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-Hookline-Secret: %s\r\nContent-Length: %d\r\n\r\n",
		host, testSecret, len(body))
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, nil, err
	}
	if _, err := conn.Write(body); err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b, err
}

// Senders and load balancers keep connections alive between webhooks. A
// SIGTERM used to close those idle connections at once (the start of the
// drain disabled keep-alives, which in net/http also closes every idle
// connection): a probe with 8 keep-alive senders saw 8 broken pipes at the
// signal instead of the 503 with Retry-After the drain delay is there to
// give. The next webhook on such a connection must get that 503 (and
// Connection: close, so the sender reconnects to another instance).
func TestDrainAnswersWebhooksOnKeptAliveConnections(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DrainDelay = 2 * time.Second })
	h.waitReadyz(http.StatusOK, 10*time.Second)
	host := strings.TrimPrefix(h.url, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	body := extract.Samples()["user.end"]
	resp, b, err := rawPost(conn, br, host, body)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("first webhook: %v %v %s (close %v), want 200 on a kept-alive connection", resp, err, b, resp != nil && resp.Close)
	}

	h.stopServe()
	// The connection sits idle while the drain begins, as between two
	// webhooks of a sender.
	time.Sleep(200 * time.Millisecond)
	resp, b, err = rawPost(conn, br, host, bytes.Clone(body))
	if err != nil {
		t.Fatalf("webhook on a kept-alive connection during the drain delay: %v, want 503 with Retry-After", err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("webhook on a kept-alive connection during the drain delay: %d %s (Retry-After %q), want 503 with Retry-After",
			resp.StatusCode, b, resp.Header.Get("Retry-After"))
	}
	if !resp.Close {
		t.Errorf("the 503 of the drain must say Connection: close, so the sender reconnects elsewhere")
	}
}
