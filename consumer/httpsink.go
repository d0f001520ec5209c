package consumer

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/kafkaconf"
)

// HTTPSinkConfig configures the HTTP forward sink, the default [Handler].
type HTTPSinkConfig struct {
	// URL receives a POST per event. Required; http or https.
	URL string

	// Timeout bounds one request. Default 0: the handler's context (the
	// consumer's HandlerTimeout, default 30s) bounds it.
	Timeout time.Duration

	// CAFile is a PEM bundle trusted for an https URL instead of the system
	// roots. Optional.
	CAFile string

	// MaxConns is how many connections to the downstream are kept open for
	// reuse. Default 512 (DefaultMaxInFlight): one per concurrent event;
	// give the consumer's MaxInFlight when it is set.
	MaxConns int

	// Header holds extra headers sent on every request (for example
	// Authorization). Optional. Names hookline sets itself are refused
	// (see [CheckHandlerHeader]).
	Header http.Header

	// SignatureHeaders maps a source name (an event's Source) to the header
	// its senders sign bodies in (an hmac-sha256 source, e.g.
	// "X-Hub-Signature-256"). For such an event the sink forwards the
	// signature the receiver kept with it (hookline-signature) under that
	// header, so that the service can verify the body as it verified direct
	// deliveries; only when the record names that same header, and only a
	// value that looks like a signature (printable ASCII, at most 256
	// bytes): a record's headers are data and must not choose what the
	// request carries. A name in Header wins. Default none: no signature
	// is forwarded. The CLI fills it from a pipeline's hmac-sha256 sources.
	SignatureHeaders map[string]string

	// Client replaces the built-in client (then CAFile and MaxConns are
	// ignored). Optional; mostly for tests.
	Client *http.Client
}

// Forwarded request headers.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderEventID        = "X-Hookline-Event-Id"
	HeaderReceipt        = "X-Hookline-Receipt"
	HeaderAttempt        = "X-Hookline-Attempt"
	HeaderSource         = "X-Hookline-Source"
	HeaderConversationID = "X-Hookline-Conversation-Id"
)

// DefaultContentType is sent when a record has no hookline-content-type.
const DefaultContentType = "application/json"

// maxSnippet bounds the part of a response body quoted in an error.
const maxSnippet = 256

// maxDrain bounds how much of a response body is read so the connection can
// be reused; larger bodies close the connection instead.
const maxDrain = 64 << 10

// bodyWait bounds the time spent reading a response body once its status
// is known.
const bodyWait = time.Second

// responseError is a non-2xx answer. Its text quotes the start of the
// response body, which the retry or DLQ record keeps for the operator;
// logs leave that out (see [LogText]): a downstream may echo the payload.
type responseError struct {
	text    string // method, redacted URL, status, redirect
	snippet string
}

func (e *responseError) Error() string {
	if e.snippet == "" {
		return e.text
	}
	return e.text + ": " + e.snippet
}

// LogText is err's text as hookline logs it: without a downstream's
// response body (the retry or DLQ record has it in hookline-error) and cut
// to 1 KiB.
func LogText(err error) string {
	s := err.Error()
	var re *responseError
	if errors.As(err, &re) && re.snippet != "" {
		s = strings.Replace(s, re.Error(), re.text+" (response body left out of logs; the retry or dead-letter record has it)", 1)
	}
	return headers.Cut(s, headers.MaxErrorLen)
}

type httpSink struct {
	url    string // as configured, for requests
	where  string // redacted, without query, for errors
	client *http.Client
	header http.Header       // canonical names
	sigs   map[string]string // source → canonical signature header
	// timeout bounds one request; 0 means the context decides.
	timeout time.Duration
}

// NewHTTPSink returns a Handler that POSTs each event's original body to
// cfg.URL with Content-Type (hookline-content-type, default
// application/json), Idempotency-Key and X-Hookline-Event-Id (the event id),
// X-Hookline-Receipt, X-Hookline-Attempt (failed attempts so far: 0 on the
// first try, as the record's hookline-attempt), X-Hookline-Source,
// X-Hookline-Conversation-Id, and the sender's signature of the body for
// the sources in cfg.SignatureHeaders.
//
// A 2xx answer means done. 408, 425, 429, 5xx, 3xx, timeouts and
// connection errors are retryable (a Retry-After header on such an answer
// is honoured, see [RetryAfter]); any other status is permanent. Errors
// carry the status and a short snippet of the response body. Redirects are
// not followed (a POST must not silently go elsewhere); a 3xx names its
// Location and is retried, because it is a configuration problem that a
// corrected URL (--handler-url) fixes within the retry tiers. A request
// whose connection closes before the answer is resent at most once per
// attempt (for a keep-alive connection the service closed while idle).
//
// The Handler also has a CloseIdleConnections method, which [Consumer.Run]
// calls when it returns; a sink used on its own can call it when done.
func NewHTTPSink(cfg HTTPSinkConfig) (Handler, error) {
	if err := CheckHandlerURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("handler timeout must not be negative, got %s", cfg.Timeout)
	}
	for name, vs := range cfg.Header {
		for _, v := range vs {
			if err := CheckHandlerHeader(name, v); err != nil {
				return nil, err
			}
		}
	}
	s := &httpSink{url: cfg.URL, where: redactURL(cfg.URL), header: http.Header{}, timeout: cfg.Timeout}
	for name, vs := range cfg.Header {
		for _, v := range vs {
			s.header.Add(name, v) // canonical, so that a signature of that name cannot be added beside it
		}
	}
	for src, name := range cfg.SignatureHeaders {
		if err := CheckSignatureHeader(name); err != nil {
			return nil, fmt.Errorf("signature header of source %q: %w", src, err)
		}
		if s.sigs == nil {
			s.sigs = map[string]string{}
		}
		s.sigs[src] = http.CanonicalHeaderKey(name)
	}
	if cfg.Client != nil {
		s.client = cfg.Client
		return s, nil
	}
	conns := cfg.MaxConns
	if conns <= 0 {
		conns = DefaultMaxInFlight
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	tr.IdleConnTimeout = 90 * time.Second
	tr.ResponseHeaderTimeout = 0 // the request context bounds it
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if cfg.CAFile != "" {
		pool, err := kafkaconf.CertPool(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("handler CA file: %w", err)
		}
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	s.client = &http.Client{
		Transport: tr,
		// A redirect of a POST is a configuration problem, not something
		// to follow silently.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s, nil
}

// CloseIdleConnections closes the sink's idle keep-alive connections.
func (s *httpSink) CloseIdleConnections() { s.client.CloseIdleConnections() }

func (s *httpSink) Handle(ctx context.Context, ev Event) error {
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	// Canceled once the body took bodyWait: see below.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(ev.Value))
	if err != nil {
		return Permanent(fmt.Errorf("build request to %s: %w", s.where, err))
	}
	// With an Idempotency-Key and a rewindable body, net/http resends a
	// request whose reused connection closed before the answer, on the
	// next pooled connection, as long as there is one: a service that
	// reads the event and drops the connection (a panicking handler)
	// would get it once per idle connection (up to MaxConns) in a tight
	// loop. One resend covers a keep-alive connection the service closed
	// while idle; after that the attempt fails and the retry tiers wait.
	var resent atomic.Bool
	req.GetBody = func() (io.ReadCloser, error) {
		if resent.Swap(true) {
			return nil, errClosedTwice
		}
		return io.NopCloser(bytes.NewReader(ev.Value)), nil
	}
	for k, vs := range s.header {
		req.Header[k] = vs
	}
	sigName := ""
	if name, sig, ok := signatureToForward(ev, s.sigs); ok && req.Header.Get(name) == "" {
		req.Header.Set(name, sig)
		sigName = name
	}
	ct := ev.ContentType
	if ct == "" {
		ct = DefaultContentType
	}
	req.Header.Set("Content-Type", ct)
	if ev.EventID != "" {
		req.Header.Set(HeaderIdempotencyKey, ev.EventID)
		req.Header.Set(HeaderEventID, ev.EventID)
	}
	if ev.ReceiptID != "" {
		req.Header.Set(HeaderReceipt, ev.ReceiptID)
	}
	req.Header.Set(HeaderAttempt, strconv.Itoa(ev.Attempt))
	if ev.Source != "" {
		req.Header.Set(HeaderSource, ev.Source)
	}
	if ev.ConversationID != "" {
		req.Header.Set(HeaderConversationID, ev.ConversationID)
	}

	resp, err := s.client.Do(req)
	if err != nil {
		// Timeouts, refused connections, resets, DNS: all retryable.
		err = scrubURLError(err)
		if closedWithoutAnswer(err) {
			return fmt.Errorf("POST %s: the service closed the connection without answering (%w): did it fail on this event? Its log should say why", s.where, err)
		}
		var unknownCA x509.UnknownAuthorityError
		switch {
		case errors.As(err, &unknownCA):
			return fmt.Errorf("POST %s: %w (signed by a private CA? give its certificate with --handler-ca or handler.ca_file)", s.where, err)
		case errors.Is(err, syscall.ECONNREFUSED):
			return fmt.Errorf("POST %s: %w (nothing listens there: start the service, or correct the port in the handler URL)", s.where, err)
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("POST %s: %w (no answer in time: make the service answer within --handler-timeout, raise it, or lower --concurrency if the service is overloaded)", s.where, err)
		}
		return fmt.Errorf("POST %s: %w", s.where, err)
	}
	// The status decides the outcome. A body that trickles in must not
	// hold the attempt's slot until its deadline, nor turn a permanent
	// answer into a retried timeout: after bodyWait the request is
	// canceled (the connection is dropped) and the snippet is what came.
	t := time.AfterFunc(bodyWait, cancel)
	snippet := readSnippet(resp.Body)
	t.Stop()
	resp.Body.Close()

	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	text := fmt.Sprintf("POST %s: status %d", s.where, code)
	if loc := resp.Header.Get("Location"); code >= 300 && code < 400 && loc != "" {
		text += fmt.Sprintf(": redirect to %s, not followed: point the handler URL there", redactURL(loc))
	}
	// These dead-letter every event at once when the configuration is
	// wrong (an expired token, a mistyped path): say so.
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusProxyAuthRequired:
		if sigName != "" {
			// A retry or a replay carries the signature made when the
			// sender sent the event, perhaps with a key since rotated.
			text += fmt.Sprintf(" (credentials refused: check --handler-header; if the service checks the forwarded %s, it must accept the key the sender signed with at the time; then replay)", sigName)
		} else {
			text += " (credentials refused: check --handler-header, then replay)"
		}
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		text += " (wrong path in the handler URL? Fix it, then replay)"
	}
	var herr error = &responseError{text: text, snippet: snippet}
	if RetryableStatus(code) {
		if d := retryAfterHeader(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
			return RetryAfter(fmt.Errorf("%w (Retry-After %s)", herr, d), d)
		}
		return herr
	}
	return Permanent(herr)
}

// CheckHandlerURL reports whether raw can be an HTTP sink's URL: absolute,
// http or https. The error shows the URL without user info or query.
func CheckHandlerURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("handler URL %s is not an absolute http(s) URL (e.g. http://127.0.0.1:3000/process)", shownURL(raw))
	}
	return nil
}

// CheckHandlerHeader reports whether a header may be added to every
// forwarded request: a valid name that hookline does not set itself
// (Content-Type, Idempotency-Key, X-Hookline-*, or what the HTTP client
// manages), and a value without control characters. The error never shows
// the value, which is often a secret.
func CheckHandlerHeader(name, value string) error {
	if !headers.ValidHTTPName(name) {
		// Not quoted: with the colon left out, the "name" holds the value.
		return errors.New("handler header: the part before ':' is not a header name (letters, digits and !#$%&'*+-.^_`|~, no spaces): write 'Name: value'")
	}
	switch c := http.CanonicalHeaderKey(name); {
	case c == "Content-Type", c == "Content-Length", c == "Host", c == "Connection", c == "Transfer-Encoding",
		c == "Upgrade", c == "Keep-Alive", c == "Proxy-Connection", c == "Te", c == "Trailer",
		c == HeaderIdempotencyKey, strings.HasPrefix(c, "X-Hookline-"):
		return fmt.Errorf("handler header %s: hookline or its HTTP client sets it; choose another name", c)
	}
	if headers.HasHTTPControl(value) {
		return fmt.Errorf("handler header %s: the value holds a control character (a line break?)", http.CanonicalHeaderKey(name))
	}
	return nil
}

// signatureToForward returns the sender's signature of ev's body that the
// receiver kept (headers.Signature), and the header to send it in: the one
// sigs gives ev's source, when the record names that header too
// (headers.SignatureHeader) and the value looks like a signature.
func signatureToForward(ev Event, sigs map[string]string) (name, value string, ok bool) {
	name, ok = sigs[ev.Source]
	if !ok || !strings.EqualFold(headers.Value(ev.Headers, headers.SignatureHeader), name) {
		return "", "", false
	}
	value = headers.Value(ev.Headers, headers.Signature)
	if value == "" || len(value) > maxSignatureLen {
		return "", "", false
	}
	for i := 0; i < len(value); i++ {
		if value[i] < ' ' || value[i] > '~' {
			return "", "", false
		}
	}
	return name, value, true
}

// maxSignatureLen bounds a forwarded signature: an HMAC-SHA256 is 64 hex
// or 44 base64 characters, plus a prefix such as "sha256=".
const maxSignatureLen = 256

// CheckSignatureHeader refuses, as a signature header (a value of
// HTTPSinkConfig.SignatureHeaders), a name the request may not carry from
// anywhere but hookline (see [CheckHandlerHeader]) and the names of
// credentials.
func CheckSignatureHeader(name string) error {
	if err := CheckHandlerHeader(name, ""); err != nil {
		return err
	}
	switch c := http.CanonicalHeaderKey(name); c {
	case "Authorization", "Proxy-Authorization", "Cookie", "Expect", "Content-Encoding":
		return fmt.Errorf("%s is not a signature header", c)
	}
	return nil
}

// errClosedTwice ends an attempt whose request was sent twice, each time
// on a connection the service closed before answering.
var errClosedTwice = errors.New("closed again after one resend")

// closedWithoutAnswer reports whether err says the connection closed
// before a response: EOF, a reset, or net/http's "server closed idle
// connection" (not exported).
func closedWithoutAnswer(err error) bool {
	return errors.Is(err, errClosedTwice) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "server closed idle connection")
}

// shownURL is raw as an error may show it, quoted: without user info or
// query, which may hold secrets, even when it does not parse.
func shownURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return strconv.Quote(redactURL(raw))
	}
	raw, _, _ = strings.Cut(raw, "?")
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		raw = "…@" + raw[i+1:]
	}
	return strconv.Quote(raw)
}

// retryAfterHeader parses a Retry-After value: seconds, or an HTTP date.
// 0 when absent, unparseable or past.
func retryAfterHeader(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	// Clamped a year out: beyond any tier, and no overflow. A number too
	// large for int64 is still a (very long) delay, not an unparsable one.
	const maxSecs = 365 * 24 * 3600
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(min(max(secs, 0), maxSecs)) * time.Second
	} else if errors.Is(err, strconv.ErrRange) && v[0] != '-' {
		return maxSecs * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		// Up to a whole second: rounded to the nearest, an attempt could
		// come up to half a second before the date the service gave.
		return (t.Sub(now) + time.Second - 1).Truncate(time.Second)
	}
	return 0
}

// RetryableStatus reports whether the HTTP sink retries an answer with this
// non-2xx status (408, 425, 429, 5xx and the 3xx it does not follow) rather
// than dead-lettering the event as permanent (other 4xx).
func RetryableStatus(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests:
		return true
	case code >= 500:
		return true
	case code >= 300 && code < 400:
		// Not followed. Permanent would dead-letter every event at once
		// behind a redirecting ingress; retried, they wait through the
		// tiers for the handler URL to be corrected.
		return true
	}
	return false
}

// readSnippet reads a bounded part of body (so the connection can be
// reused) and returns the start of it as one printable line.
func readSnippet(body io.Reader) string {
	buf := make([]byte, maxSnippet)
	n, _ := io.ReadFull(body, buf)
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	b := buf[:n]
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1]
	}
	s := headers.Printable(strings.Join(strings.Fields(string(b)), " "))
	if n == maxSnippet {
		s += "…"
	}
	return s
}

// redactURL hides user info (a user name alone may be an API token) and
// drops the query, which may carry secrets.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid URL>"
	}
	u.RawQuery, u.Fragment = "", ""
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	return u.String()
}

// scrubURLError drops the *url.Error wrapper, whose text repeats the full
// URL (query included).
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
