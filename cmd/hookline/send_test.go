package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookline/hookline/internal/verify"
)

// verifyingReceiver answers like the receiver's verification step: 401 when
// v refuses the request, else 200 with a receipt.
func verifyingReceiver(t *testing.T, v verify.Verifier) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := v.Verify(r.Header, body); err != nil {
			if !errors.Is(err, verify.ErrUnauthorized) {
				t.Errorf("verifier: %v", err)
			}
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"receipt":"r-1","event_id":"e-1"}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSendSignsHMAC(t *testing.T) {
	// The Open Messaging source of docs/genesys.md, resolved as run/serve do.
	cfg := filepath.Join(t.TempDir(), "om.yaml")
	os.WriteFile(cfg, []byte(`
sources:
  - name: genesys-messaging
    kind: generic
    event_id: [/id]
    key: [/channel/to/id]
    verify: {type: hmac-sha256, header: X-Hub-Signature-256, prefix: "sha256=", encoding: base64, secret: "${OM_SECRET}"}
`), 0o600)
	s, err := resolveFor(t, map[string]string{"OM_SECRET": "om-s3cret"}, "--config", cfg)
	if err != nil || len(s.sources) != 1 {
		t.Fatalf("resolve: %v", err)
	}
	srv := verifyingReceiver(t, s.sources[0].Verifier)
	url := srv.URL + "/webhooks/genesys-messaging"

	code, out, errOut := call(t, nil, "send", "--url", url, "--sample", "open-messaging", "--hmac-secret", "om-s3cret")
	if code != 0 || !strings.Contains(out, "200 OK") {
		t.Fatalf("right secret: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = call(t, map[string]string{"HOOKLINE_HMAC_SECRET": "om-s3cret"}, "send", "--url", url, "--sample", "open-messaging")
	if code != 0 {
		t.Fatalf("HOOKLINE_HMAC_SECRET: exit %d %s", code, errOut)
	}
	code, out, errOut = call(t, nil, "send", "--url", url, "--sample", "open-messaging", "--hmac-secret", "wrong")
	if code != 1 || !strings.Contains(out, "401") || !strings.Contains(errOut, "401") || !strings.Contains(errOut, "(hookline send only) --hmac-secret") {
		t.Fatalf("wrong secret: exit %d, want 1 and what to check\n%s%s", code, out, errOut)
	}
	if code, _, _ := call(t, nil, "send", "--url", url, "--sample", "open-messaging"); code != 1 {
		t.Fatalf("unsigned: exit %d, want 1", code)
	}

	// Hex, another header and no prefix (GitHub without the prefix, say).
	hexV, err := verify.New(verify.Config{Type: verify.TypeHMACSHA256, Header: "X-Signature", Encoding: verify.EncodingHex, Secret: "k"})
	if err != nil {
		t.Fatal(err)
	}
	hexSrv := verifyingReceiver(t, hexV)
	if code, out, errOut := call(t, nil, "send", "--url", hexSrv.URL, "--sample", "user.end", "--hmac-secret", "k",
		"--hmac-header", "X-Signature", "--hmac-prefix", "", "--hmac-encoding", "hex"); code != 0 {
		t.Fatalf("hex: exit %d\n%s%s", code, out, errOut)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--hmac-secret", "k", "--hmac-encoding", "base32"}, "--hmac-encoding \"base32\""},
		{[]string{"--hmac-secret", "k", "--hmac-header", "Bad Header"}, "--hmac-header"},
		{[]string{"--hmac-encoding", "hex"}, "without --hmac-secret"},
	} {
		args := append([]string{"send", "--url", url, "--sample", "open-messaging"}, c.args...)
		if code, _, errOut := call(t, nil, args...); code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d %q, want 2 and %q", c.args, code, errOut, c.want)
		}
	}
}

func TestSendRefusesNonPositiveTimeout(t *testing.T) {
	for _, v := range []string{"-1s", "0s"} {
		code, _, errOut := call(t, nil, "send", "--url", "http://127.0.0.1:1/webhooks/x", "--sample", "user.end", "--timeout", v)
		if code != 2 || !strings.Contains(errOut, "--timeout "+v+": must be positive") {
			t.Errorf("--timeout %s: exit %d %q; want 2 naming the flag", v, code, errOut)
		}
	}
}

func TestSendNotesDeadLettered(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"receipt":"r-2","event_id":"9c1d0b7e4f2a","dead_lettered":true,"error":"not JSON: invalid character 'o'\u001b[2J"}` + "\n"))
	}))
	defer srv.Close()
	code, out, errOut := call(t, nil, "send", "--url", srv.URL, "--file", "-")
	if code != 0 || !strings.Contains(out, "202") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "dead-letter topic as malformed (not JSON: invalid character 'o'?[2J)") ||
		!strings.Contains(errOut, "hookline dlq show 9c1d0b7e4f2a --brokers") {
		t.Fatalf("no note about the dead letter on stderr: %q", errOut)
	}
	// A plain acknowledgement says nothing more.
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"receipt":"r-3","event_id":"e"}`))
	}))
	defer ok.Close()
	if code, _, errOut := call(t, nil, "send", "--url", ok.URL, "--sample", "user.end"); code != 0 || errOut != "" {
		t.Fatalf("plain 200: exit %d %q", code, errOut)
	}
}
