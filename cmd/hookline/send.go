package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hookline/hookline/internal/extract"
)

const sendExamples = `  # post a built-in Genesys sample with the default source's shared secret
  hookline send --url http://127.0.0.1:8080/webhooks/genesys --secret s3cret --sample customer.start

  # the same event re-wrapped in an EventBridge envelope (same event id)
  hookline send --url http://127.0.0.1:8080/webhooks/genesys --secret s3cret --sample customer.start.eventbridge

  # a file, with an extra header; list the samples
  hookline send --url https://hooks.example.com/webhooks/genesys --file event.json -H 'Authorization: Bearer t0ken'
  hookline send --list-samples`

// headerList collects repeated -H 'Name: value' flags.
type headerList []string

func (h *headerList) String() string { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error {
	if !strings.Contains(v, ":") {
		return fmt.Errorf("%q: want 'Name: value'", v)
	}
	*h = append(*h, v)
	return nil
}

func runSend(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "send", "send --url URL (--sample NAME | --file F | --file -) [flags]", sendExamples)
	url := fs.String("url", "http://127.0.0.1:8080/webhooks/genesys", "receiver URL to POST to")
	file := fs.String("file", "", "file whose bytes are posted as is (- for stdin)")
	sample := fs.String("sample", "", "built-in sample to post (see --list-samples)")
	list := fs.Bool("list-samples", false, "list the built-in samples and exit")
	secret := fs.String("secret", "", "shared secret to send (prefer HOOKLINE_SECRET)")
	secretHeader := fs.String("secret-header", DefaultSecretHeader, "header that carries --secret")
	contentType := fs.String("content-type", "application/json", "Content-Type of the request")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	var extra headerList
	fs.Var(&extra, "H", "extra header 'Name: value' (repeatable)")
	if err := fs.parse(args); err != nil {
		return err
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
	for _, h := range extra {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
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
		return exitCode{1, fmt.Sprintf("the receiver answered %s", resp.Status)}
	}
	return nil
}
