package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/verify"
)

// An HMAC-signed webhook reaches the service with the sender's signature
// header and the body byte for byte, so that the service can verify it as
// it verified direct deliveries: on its first attempt and, from retry-1, on
// the next. The signature is in the stored record too.
func TestSignedWebhookReachesTheServiceVerifiable(t *testing.T) {
	base := uniqueBase(t)
	createPipeline(t, pipelineConfig(base, 2, []time.Duration{time.Second, time.Second, time.Second}, 0))
	sk := newSink(t, sinkOptions{Status: func(_ string, n int) int {
		if n == 0 {
			return http.StatusServiceUnavailable
		}
		return 0
	}})
	const secret = "open-messaging-key"
	cfgPath := filepath.Join(t.TempDir(), "hookline.yaml")
	yaml := fmt.Sprintf(`pipelines:
  - base: %s
    partitions: 2
    retry_delays: [1s, 1s, 1s]
    handler: {url: "%s/process"}
sources:
  - name: om
    kind: generic
    pipeline: %s
    verify: {type: hmac-sha256, header: X-Hub-Signature-256, prefix: "sha256=", encoding: base64, secret: "${OM_SECRET}"}
`, base, sk.URL, base)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := startCLI(t, []string{"OM_SECRET=" + secret}, "run", "--config", cfgPath, "--listen", addr)
	p.waitOutput(`receiver listening on`, 60*time.Second)

	vcfg := verify.Config{Type: verify.TypeHMACSHA256, Header: "X-Hub-Signature-256", Prefix: "sha256=", Encoding: verify.EncodingBase64, Secret: secret}
	body := []byte("{\"id\": \"msg-1\",  \"text\": \"spacing and key order kept\"}\n")
	name, sig, err := verify.SignHMAC(vcfg, body)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/om", bytes.NewReader(body))
	req.Header.Set(name, sig)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("signed webhook: status %d", resp.StatusCode)
	}
	waitFor(t, 30*time.Second, "the service to get the event twice (503, then from retry-1)", func() (bool, string) {
		return len(sk.snapshot()) >= 2, sk.describe(5)
	})
	v, err := verify.New(vcfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range sk.snapshot()[:2] {
		if c.Signature != sig || !bytes.Equal(c.Body, body) || c.Attempt != i {
			t.Fatalf("call %d: attempt %d, signature %q, body %q; want attempt %d, %q and the body as sent", i, c.Attempt, c.Signature, c.Body, i, sig)
		}
		h := http.Header{}
		h.Set("X-Hub-Signature-256", c.Signature)
		if err := v.Verify(h, c.Body); err != nil {
			t.Errorf("call %d: the service cannot verify what it got: %v", i, err)
		}
	}
	recs := readAll(t, base)
	if len(recs) != 1 || recHeader(recs[0], headers.Signature) != sig || recHeader(recs[0], headers.SignatureHeader) != "X-Hub-Signature-256" {
		t.Errorf("stored record: %s", describeRecords(recs))
	}
}
