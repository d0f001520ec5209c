package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/hookline/hookline/internal/extract"
	"github.com/hookline/hookline/internal/loadtest"
	"github.com/hookline/hookline/internal/verify"
)

const sendExamples = `  # post a built-in Genesys sample with the default source's shared secret
  hookline send --url http://127.0.0.1:8080/webhooks/genesys --secret s3cret --sample customer.start

  # the same event re-wrapped in an EventBridge envelope (same event id)
  hookline send --url http://127.0.0.1:8080/webhooks/genesys --secret s3cret --sample customer.start.eventbridge

  # an Open Messaging body signed like Genesys signs it:
  # X-Hub-Signature-256: sha256=<base64 HMAC-SHA256 of the body> (secret from HOOKLINE_HMAC_SECRET)
  HOOKLINE_HMAC_SECRET="$OM_SECRET" hookline send --url http://127.0.0.1:8080/webhooks/genesys-messaging --sample open-messaging

  # a GitHub-style signature: hex, same header and prefix
  hookline send --url http://127.0.0.1:8080/webhooks/github --file push.json --hmac-secret "$GH_SECRET" --hmac-encoding hex

  # a file, with an extra header (a bearer verifier); list the samples
  hookline send --url https://hooks.example.com/webhooks/genesys --file event.json -H 'Authorization: Bearer t0ken'
  hookline send --list-samples

  # a basic verifier (user genesys, password in $PASS)
  hookline send --url http://127.0.0.1:8080/webhooks/genesys-workflow --sample customer.start \
    -H "Authorization: Basic $(printf 'genesys:%s' "$PASS" | base64 | tr -d '\n')"

Exit status: 0 when the receiver acknowledged the request (2xx; a 202 with
"dead_lettered":true means it was stored in the dead-letter topic as
malformed, which send notes on stderr with the receiver's reason), 1 on any other answer or no answer,
2 for a mistake in the command line.`

func runSend(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "send", "send [--url URL] (--sample NAME | --file F | --file -) [flags]", sendExamples)
	fs.ownEnv("secret", "secret-header", "hmac-secret", "hmac-header", "hmac-prefix", "hmac-encoding")
	url := fs.String("url", "http://127.0.0.1:8080/webhooks/genesys", "receiver URL to POST to")
	file := fs.String("file", "", "file whose bytes are posted as is (- for stdin)")
	sample := fs.String("sample", "", "built-in sample to post (see --list-samples)")
	list := fs.Bool("list-samples", false, "list the built-in samples and exit")
	secret := fs.String("secret", "", "shared secret to send (prefer HOOKLINE_SECRET)")
	secretHeader := fs.String("secret-header", DefaultSecretHeader, "header that carries --secret")
	contentType := fs.String("content-type", "application/json", "Content-Type of the request")
	hmacSecret := fs.String("hmac-secret", "", "sign the body with HMAC-SHA256 under this key (prefer HOOKLINE_HMAC_SECRET)")
	hmacHeader := fs.String("hmac-header", verify.DefaultHMACHeader, "header that carries the --hmac-secret signature")
	hmacPrefix := fs.String("hmac-prefix", "sha256=", "written before the signature in --hmac-header (empty: none)")
	hmacEncoding := fs.String("hmac-encoding", verify.EncodingBase64, "encoding of the signature: base64 (Genesys Open Messaging) or hex (GitHub)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	var extra headerList
	fs.headerVar(&extra, "H", "extra header 'Name: value' (repeatable)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *timeout <= 0 {
		return fs.badValue("timeout", "must be positive, e.g. 10s (the default)")
	}
	var signer *verify.Config
	if *hmacSecret != "" {
		c, err := hmacConfig(*hmacSecret, *hmacHeader, *hmacPrefix, *hmacEncoding)
		if err != nil {
			return err
		}
		signer = &c
	} else {
		for _, name := range []string{"hmac-header", "hmac-prefix", "hmac-encoding"} {
			if fs.set(name) {
				return usagef("--%s without --hmac-secret: give the key with --hmac-secret or HOOKLINE_HMAC_SECRET", name)
			}
		}
	}
	samples := extract.Samples()
	if *list {
		names := make([]string, 0, len(samples))
		for n := range samples {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintln(env.stdout, n)
		}
		return nil
	}
	var body []byte
	switch {
	case *file != "" && *sample != "":
		return usagef("use --file or --sample, not both")
	case *file == "-":
		b, err := io.ReadAll(env.stdin)
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		body = b
	case *file != "":
		b, err := os.ReadFile(*file)
		if err != nil {
			return fmt.Errorf("read --file: %w", err)
		}
		body = b
	case *sample != "":
		b, ok := samples[*sample]
		if !ok {
			return usagef("no sample %q: see hookline send --list-samples", *sample)
		}
		body = b
	default:
		return usagef("nothing to send: give --sample NAME or --file F (see --list-samples)")
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, *url, bytes.NewReader(body))
	if err != nil {
		return usagef("--url %q: %v", *url, err)
	}
	req.Header.Set("Content-Type", *contentType)
	if *secret != "" {
		req.Header.Set(*secretHeader, *secret)
	}
	for k, vs := range extra.h {
		req.Header[k] = append(req.Header[k], vs...)
	}
	if signer != nil {
		name, value, err := verify.SignHMAC(*signer, body)
		if err != nil {
			return err
		}
		req.Header.Set(name, value)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w (is the receiver running?)", *url, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(env.stdout, "%s in %s\n", resp.Status, time.Since(start).Round(time.Millisecond))
	if r := resp.Header.Get("X-Hookline-Receipt"); r != "" {
		fmt.Fprintf(env.stdout, "receipt: %s\n", r)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		fmt.Fprintf(env.stdout, "retry-after: %s\n", ra)
	}
	fmt.Fprintf(env.stdout, "%s\n", bytes.TrimSpace(rb))
	if resp.StatusCode/100 != 2 {
		msg := "the receiver answered " + resp.Status
		if advice := loadtest.StatusAdvice(resp.StatusCode); advice != "" {
			msg += ": " + advice
		}
		return exitCode{1, msg}
	}
	var receipt struct {
		EventID      string `json:"event_id"`
		DeadLettered bool   `json:"dead_lettered"`
		Error        string `json:"error"`
	}
	if json.Unmarshal(rb, &receipt) == nil && receipt.DeadLettered {
		fmt.Fprintf(env.stderr, "note: the receiver acknowledged the request but stored it in the dead-letter topic as malformed "+
			"(%s); the consumer will not handle it. Inspect it with: hookline dlq show %s --brokers <brokers> --base <pipeline>\n",
			field(cmp.Or(receipt.Error, "the body is not JSON the source's rules can read")), field(cmp.Or(receipt.EventID, "<event id>")))
	}
	return nil
}

// hmacConfig is the hmac-sha256 source the signing flags describe, checked
// as the receiver checks a source, so send refuses what a source would
// refuse (an unknown encoding, a header name or prefix that cannot be sent).
func hmacConfig(key, header, prefix, encoding string) (verify.Config, error) {
	switch encoding {
	case verify.EncodingBase64, verify.EncodingHex:
	default:
		return verify.Config{}, usagef("--hmac-encoding %q: use base64 or hex", encoding)
	}
	c := verify.Config{Type: verify.TypeHMACSHA256, Header: header, Prefix: prefix, Encoding: encoding, Secret: key}
	if _, err := verify.New(c); err != nil {
		return verify.Config{}, usagef("--hmac-header/--hmac-prefix/--hmac-encoding: %v", err)
	}
	return c, nil
}
