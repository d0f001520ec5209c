package producer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"
	"github.com/segmentio/ksuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/extract"
	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/verify"
)

// webhook handles POST /webhooks/:source. Order of work: source (404) →
// shutdown (503) → credentials in headers (401, see HeaderVerifier)
// → in-flight bound (429) → body limit (413; 408 when it does not arrive
// within the read timeout) → verify on the body (401) → extract ids
// (malformed: DLQ, 202) → produce within the ack budget (503; 413 when the
// record is larger than the topic accepts) → 200.
func (r *Receiver) webhook(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
	start := r.now()
	name := ps.ByName("source")
	src, ok := r.sources[name]
	if !ok {
		r.metrics.requests.WithLabelValues(UnknownSource, "404").Inc()
		msg := "unknown source " + strconv.Quote(name) + ": configure it under sources, or post to one of the configured /webhooks/<source> paths"
		if near := r.sameFolded(name); near != "" {
			msg += "; did you mean /webhooks/" + near + "? (source names are case-sensitive)"
		}
		closeBodyOnWire(w, req)
		writeError(w, http.StatusNotFound, msg)
		return
	}
	sm := r.srcMetrics[name]
	code := r.handle(w, req, src, sm, start)
	r.metrics.countRequest(sm, src.Name, code)
}

// sameFolded returns the configured source whose name equals name but for
// case ("" if none): a path typed as /webhooks/Genesys gets a pointer to
// the right one, without listing the sources to whoever asks.
func (r *Receiver) sameFolded(name string) string {
	for n := range r.sources {
		if strings.EqualFold(n, name) {
			return n
		}
	}
	return ""
}

func (r *Receiver) handle(w http.ResponseWriter, req *http.Request, src *Source, sm *sourceMetrics, start time.Time) int {
	if !r.gate.enter() {
		return r.unavailable(w, "shutting down: retry against another instance")
	}
	defer r.gate.leave()
	// Credentials carried in headers are checked before the request takes
	// an in-flight slot or its body is read: a sender without them must
	// not hold a slot while it trickles a body, nor be sent 100 Continue
	// and a megabyte of upload invited.
	headerChecked := false
	if hv, ok := src.Verifier.(verify.HeaderVerifier); ok {
		if err := hv.VerifyHeader(req.Header); err != nil {
			return r.unauthorized(w, req, src, err)
		}
		headerChecked = true
	}
	select {
	case r.sem <- struct{}{}:
	default:
		closeUnreadBody(w, req)
		w.Header().Set("Retry-After", retryAfter(r.cfg.RetryAfter))
		writeError(w, http.StatusTooManyRequests, "too many webhooks in flight; retry later")
		return http.StatusTooManyRequests
	}
	r.metrics.inFlight.Inc()
	defer func() {
		<-r.sem
		r.metrics.inFlight.Dec()
	}()

	if req.ContentLength > r.cfg.MaxBodyBytes {
		closeUnreadBody(w, req)
		return r.tooLarge(w)
	}
	// Body buffers are reused only after the broker acknowledged the record:
	// a record that timed out may still sit in the client's buffer, and its
	// bytes must stay untouched until it is sent or failed.
	buf := r.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	acked := false
	defer func() {
		if acked && buf.Cap() <= 64<<10 {
			r.bufs.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, req.Body, r.cfg.MaxBodyBytes)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return r.tooLarge(w)
		}
		if isTimeout(err) {
			// The sender's upload, not Kafka: a client-side failure.
			r.errs.Log(req.Context(), slog.LevelWarn, "slowbody/"+src.Name, "webhook body not received within the read timeout; answered 408",
				"source", src.Name, "remote", req.RemoteAddr)
			writeError(w, http.StatusRequestTimeout, "request body not received within the read timeout; retry")
			return http.StatusRequestTimeout
		}
		// A sender that hung up mid-body, or a broken chunked encoding: the
		// reason is the transport's ("unexpected EOF", "invalid byte in
		// chunk length"), never body bytes.
		r.errs.Log(req.Context(), slog.LevelWarn, "badbody/"+src.Name, "webhook body could not be read; answered 400 (the sender closed the connection mid-body or broke the body's framing, e.g. its chunked encoding: check its HTTP client or proxy)",
			"source", src.Name, "remote", req.RemoteAddr, "reason", err.Error())
		writeError(w, http.StatusBadRequest, "could not read the request body")
		return http.StatusBadRequest
	}
	body := buf.Bytes()

	if !headerChecked || !verify.DecidedByHeaders(src.Verifier) {
		if err := src.Verifier.Verify(req.Header, body); err != nil {
			if ce := req.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
				// A sender that signs the body before compressing it
				// fails here on every request, and the log would only
				// say "wrong signature": name the likelier cause.
				err = fmt.Errorf("%w (the request had Content-Encoding: %s; the signature is checked over the body as received, which hookline does not decode)", err, headers.Printable(headers.Cut(ce, maxContentTypeLen)))
			}
			return r.unauthorized(w, req, src, err)
		}
	}

	receipt := ksuid.New().String()
	now := r.now()
	contentType := storedContentType(req.Header.Get("Content-Type"))
	ids, xerr := extract.Extract(body, src.Rules)
	rec := &kgo.Record{Value: body}
	malformed := xerr != nil
	if malformed {
		xerr = explainMalformed(xerr, req.Header, body)
		ids = extract.IDs{EventID: contentHash(body)}
		rec.Topic = src.Topics.DLQ
	} else {
		rec.Topic = src.Topics.Base
	}
	// The key and the header values share one buffer, and the headers one
	// slice: two allocations per webhook instead of ~12.
	key := ids.Key()
	// A signature of the body is kept for a downstream to check again (the
	// verifier accepted exactly one such header).
	sigName := verify.SignatureHeader(src.Verifier)
	sig := ""
	if sigName != "" {
		sig = req.Header.Get(sigName)
	}
	vals := make([]byte, 0, len(key)+len(ids.EventID)+len(receipt)+len(src.Name)+headers.TimeLen+len(contentType)+len(ids.ConversationID)+len(sigName)+len(sig))
	vals = append(vals, key...)
	rec.Key = vals[:len(key):len(key)]
	nh := 8
	if malformed {
		nh += 5 // the buffer grows for these: rare, and correct either way
	}
	hs := make([]kgo.RecordHeader, 0, nh)
	push := func(k string, from int) {
		hs = append(hs, kgo.RecordHeader{Key: k, Value: vals[from:len(vals):len(vals)]})
	}
	add := func(k, v string) {
		i := len(vals)
		vals = append(vals, v...)
		push(k, i)
	}
	addTime := func(k string) {
		i := len(vals)
		vals = headers.AppendTime(vals, now)
		push(k, i)
	}
	add(headers.EventID, ids.EventID)
	add(headers.ReceiptID, receipt)
	add(headers.Source, src.Name)
	addTime(headers.ReceivedAt)
	add(headers.ContentType, contentType)
	if ids.ConversationID != "" {
		add(headers.ConversationID, ids.ConversationID)
	}
	if sig != "" {
		add(headers.SignatureHeader, sigName)
		add(headers.Signature, sig)
	}
	if malformed {
		add(headers.Attempt, "0")
		addTime(headers.FirstFailedAt)
		addTime(headers.FailedAt)
		add(headers.Error, headers.Cut(xerr.Error(), headers.MaxErrorLen))
		add(headers.ErrorClass, headers.ClassMalformed)
	}
	rec.Headers = hs

	err := r.produce(req.Context(), rec)
	sm.ackLatency.Observe(r.now().Sub(start).Seconds())
	r.noteProduce(err)
	if errors.Is(err, kerr.MessageTooLarge) {
		return r.recordTooLarge(req.Context(), w, src, rec.Topic, len(body), err)
	}
	if err != nil {
		sm.produceErrors.Inc()
		r.errs.Log(req.Context(), slog.LevelError, "produce/"+src.Name, "webhook not acknowledged by Kafka; answered 503 so the sender retries",
			"source", src.Name, "topic", rec.Topic, "err", err.Error())
		return r.unavailable(w, "not acknowledged by Kafka within the ack budget; retry")
	}

	acked = true
	w.Header().Set("X-Hookline-Receipt", receipt)
	status, why := http.StatusOK, ""
	if malformed {
		sm.malformed.Inc()
		why = headers.Value(hs, headers.Error) // cut as stored
		r.errs.Log(req.Context(), slog.LevelWarn, "malformed/"+src.Name, "malformed webhook stored in the dead-letter topic",
			"source", src.Name, "topic", rec.Topic, "event_id", ids.EventID, "reason", why)
		status = http.StatusAccepted
	}
	writeReceipt(w, status, receipt, ids.EventID, why)
	return status
}

// explainMalformed adds to the error of a malformed body what in the
// request's headers likely caused it, said where the operator looks (the
// 202 answer, dlq show): a Content-Encoding, a form instead of JSON, or a
// charset other than UTF-8. The last two only for a body that is not JSON
// in UTF-8: well-formed JSON refused for its shape (a top-level array on a
// genesys source) was not mangled by either.
func explainMalformed(xerr error, h http.Header, body []byte) error {
	if ce := h.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		xerr = fmt.Errorf("%w (the request had Content-Encoding: %s; hookline stores bodies as sent and does not decode them: have the sender send it uncompressed)", xerr, headers.Printable(headers.Cut(ce, maxContentTypeLen)))
	}
	if json.Valid(body) && utf8.Valid(body) {
		return xerr
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return xerr
	}
	if mt == "application/x-www-form-urlencoded" || strings.HasPrefix(mt, "multipart/") {
		// GitHub, for one, posts payload=<JSON> when its webhook's
		// content type is set to a form.
		xerr = fmt.Errorf("%w (the request's Content-Type is %s; hookline reads JSON bodies: have the sender post application/json)", xerr, headers.Cut(mt, maxContentTypeLen))
	}
	cs := strings.TrimSpace(params["charset"])
	switch strings.ToLower(cs) {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
	default:
		xerr = fmt.Errorf("%w (the request declared charset=%s; hookline reads bodies as UTF-8, the only encoding JSON allows: have the sender send UTF-8)", xerr, headers.Printable(headers.Cut(cs, maxCharsetLen)))
	}
	return xerr
}

// maxCharsetLen bounds the charset named in an error; real ones are short.
const maxCharsetLen = 40

// maxContentTypeLen bounds the stored Content-Type. Real ones are a few
// dozen bytes; an unbounded one (Go accepts ~1 MiB of headers) could fill
// the record's header room, so that the record fits the main topic but not
// a retry or DLQ hop, which adds headers: its partition would stop there.
const maxContentTypeLen = 256

// storedContentType is v as hookline-content-type holds it: valid UTF-8 (as
// every hookline header) and at most maxContentTypeLen bytes.
func storedContentType(v string) string {
	return headers.Cut(strings.ToValidUTF8(v, "\uFFFD"), maxContentTypeLen)
}

// writeReceipt writes {"receipt":…,"event_id":…}, or for a body stored as
// malformed (malformed is why, non-empty) {…,"dead_lettered":true,
// "error":malformed}. It is written by hand because it is on every request.
func writeReceipt(w http.ResponseWriter, status int, receipt, eventID, malformed string) {
	b := make([]byte, 0, 64+len(receipt)+len(eventID)+len(malformed))
	b = append(b, `{"receipt":`...)
	b = appendJSONString(b, receipt)
	b = append(b, `,"event_id":`...)
	b = appendJSONString(b, eventID)
	if malformed != "" {
		b = append(b, `,"dead_lettered":true,"error":`...)
		b = appendJSONString(b, malformed)
	}
	b = append(b, "}\n"...)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// unauthorized answers 401 without saying which part was wrong; the log
// (rate-limited) says, without secrets or request values.
func (r *Receiver) unauthorized(w http.ResponseWriter, req *http.Request, src *Source, err error) int {
	// Every 401 closes, so the answer does not tell which check failed.
	closeUnreadBody(w, req)
	r.errs.Log(req.Context(), slog.LevelWarn, "unauthorized/"+src.Name, "webhook rejected: verification failed",
		"source", src.Name, "remote", req.RemoteAddr, "reason", err.Error())
	writeError(w, http.StatusUnauthorized, "verification failed")
	return http.StatusUnauthorized
}

// closeUnreadBody makes an answer given without reading the request body
// close its HTTP/1 connection, which cannot carry another request with the
// body still on the wire. Without it the server would first read and
// discard up to 256 KiB of the body before writing the answer, so a sender
// trickling its body would get its 401, 404, 405, 413 or 429 only at the read
// timeout: longer than EventBridge waits, and exactly when the receiver is
// refusing work. (On HTTP/2 it would end the whole connection, other
// senders' streams included; a stream's body is not in the way.)
func closeUnreadBody(w http.ResponseWriter, req *http.Request) {
	if req.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
}

// closeBodyOnWire is closeUnreadBody for an answer that need not close a
// connection with no body on it: a 404 or 405 to a health check's GET
// keeps the connection. (Every 401 closes, body or not.)
func closeBodyOnWire(w http.ResponseWriter, req *http.Request) {
	if req.ContentLength != 0 {
		closeUnreadBody(w, req)
	}
}

func (r *Receiver) unavailable(w http.ResponseWriter, msg string) int {
	w.Header().Set("Retry-After", retryAfter(r.cfg.RetryAfter))
	writeError(w, http.StatusServiceUnavailable, msg)
	return http.StatusServiceUnavailable
}

func (r *Receiver) tooLarge(w http.ResponseWriter) int {
	writeError(w, http.StatusRequestEntityTooLarge, "body larger than "+strconv.FormatInt(r.cfg.MaxBodyBytes, 10)+" bytes")
	return http.StatusRequestEntityTooLarge
}

// recordTooLarge answers a record the producer or the broker refused as too
// large. Retrying cannot help, so it is 413, not 503: a 503 would make the
// sender retry until it gives up and the event is lost without a trace.
func (r *Receiver) recordTooLarge(ctx context.Context, w http.ResponseWriter, src *Source, topic string, size int, err error) int {
	r.errs.Log(ctx, slog.LevelWarn, "recordtoolarge/"+src.Name, "webhook rejected: record larger than the Kafka topic accepts; answered 413",
		"source", src.Name, "topic", topic, "body_bytes", size, "err", err.Error())
	writeError(w, http.StatusRequestEntityTooLarge, "body and headers exceed what Kafka topic "+strconv.Quote(topic)+
		" accepts: send a smaller body, or raise the topic's max.message.bytes (hookline topics check shows it)")
	return http.StatusRequestEntityTooLarge
}

// isTimeout reports whether err is a read deadline, such as the server's
// read timeout expiring while the body trickles in.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // "/webhooks/<source>" stays readable with curl
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// errAckTimeout is the answer when the broker did not confirm in time.
var errAckTimeout = errors.New("no acknowledgement within the ack budget")

// errBehindAckTimeout: franz-go fails the records buffered behind one whose
// context ended, with that record's error, so a webhook can fail with
// another's deadline while its own budget still runs.
var errBehindAckTimeout = errors.New("failed with an earlier record of its partition that got no acknowledgement within the ack budget")

// ackError says a context deadline in a produce's outcome the way the log
// should: the webhook's own ack budget (budgetOver) or another's.
func ackError(err error, budgetOver bool) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if budgetOver {
		return errAckTimeout
	}
	return errBehindAckTimeout
}

// produce hands rec to the idempotent producer and waits for the broker's
// acknowledgement at most the ack budget, counted from here: a slow upload
// already spent its time under the server's read timeout. ProduceSync
// cannot be used: once a record is in flight, franz-go keeps it until the
// broker answers (so the sequence numbers of the idempotent producer stay
// right), whatever its context says. On timeout the record may still be
// written later; the sender retries because it got a 503, and dedup absorbs
// the copy.
//
// The sender hanging up (ctx cancelled) does not cancel the produce:
// franz-go fails every record buffered behind a cancelled one, so other
// senders' webhooks would fail with it, and the outcome would no longer say
// whether Kafka is healthy.
func (r *Receiver) produce(ctx context.Context, rec *kgo.Record) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.AckTimeout)
	defer cancel()
	done := make(chan error, 1)
	r.client.Produce(ctx, rec, func(_ *kgo.Record, err error) { done <- err })
	select {
	case err := <-done:
		return ackError(err, ctx.Err() != nil)
	case <-ctx.Done():
		return errAckTimeout
	}
}

// appendJSONString appends s as a JSON string. s is valid UTF-8 (a KSUID, a
// hex digest, or an id extract accepted), so only quotes, backslashes and
// control characters need escaping.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
