// Package verify authenticates a webhook request on its raw bytes.
//
// Each source chooses one verifier explicitly; "none" must be written out so
// that a missing setting never turns authentication off. Every comparison of
// a credential is constant-time, and credentials are compared as fixed-length
// SHA-256 digests (or HMAC sums) so that neither their contents nor their
// lengths leak through timing. Errors wrap ErrUnauthorized and never contain
// a secret or a value from the request.
//
// Rotation: a Config may carry PreviousSecret, which is accepted as well as
// Secret. Deploy the new secret with the old one as previous, switch the
// sender, then drop the previous secret.
package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hookline/hookline/internal/headers"
)

// Verifier types accepted in Config.Type.
const (
	TypeNone         = "none"
	TypeSharedSecret = "shared-secret"
	TypeBasic        = "basic"
	TypeBearer       = "bearer"
	TypeHMACSHA256   = "hmac-sha256"
)

// Default header names.
const (
	DefaultSecretHeader = "X-Hookline-Secret"
	DefaultHMACHeader   = "X-Hub-Signature-256"
)

// HMAC signature encodings accepted in Config.Encoding.
const (
	EncodingHex    = "hex"
	EncodingBase64 = "base64"
)

// ErrUnauthorized is wrapped by every error a Verifier returns: the receiver
// answers 401 and stores nothing.
var ErrUnauthorized = errors.New("unauthorized")

// Config configures one Verifier. Only the fields of the chosen Type may be
// set; New rejects the others so that a typo does not silently weaken
// authentication.
type Config struct {
	// Type is "none", "shared-secret", "basic", "bearer" or "hmac-sha256".
	// Required: an empty Type is an error, "none" must be written out.
	Type string
	// Header is the request header carrying the credential.
	// shared-secret: default "X-Hookline-Secret"; hmac-sha256: default
	// "X-Hub-Signature-256". basic and bearer always read Authorization.
	Header string
	// Secret is the shared secret, the bearer token, the HMAC key or the
	// basic password. Required except for "none". Shared secrets and bearer
	// tokens cannot start or end with whitespace or contain control
	// characters, because an HTTP header value cannot carry them: New
	// refuses such a secret (often a trailing newline from a secret file)
	// rather than letting every request fail.
	Secret string
	// PreviousSecret, when set, is accepted as well as Secret (rotation).
	PreviousSecret string
	// Username is the basic user name. Required for "basic".
	Username string
	// Prefix is stripped, ASCII case-insensitively, from the hmac-sha256
	// header value before decoding, e.g. "sha256=". When set, a value without
	// it is rejected. Printable ASCII only. Default none.
	Prefix string
	// Encoding of the hmac-sha256 signature: "hex" (default, either case) or
	// "base64". "base64" accepts the standard and the URL-safe alphabet,
	// padded or not, because senders differ; the decoded 32 bytes must still
	// match exactly, so the leniency accepts no extra signatures.
	Encoding string
}

// Verifier authenticates one request.
type Verifier interface {
	// Verify returns nil when the request is authentic. Errors wrap ErrUnauthorized; they never contain secrets.
	Verify(h http.Header, body []byte) error
}

// HeaderVerifier is implemented by Verifiers that can refuse a request on
// its headers alone, before its body was read. The receiver asks it first,
// so that a sender without valid credentials neither takes an in-flight
// slot nor makes the receiver read (or, with Expect: 100-continue, invite)
// its body; Verify is still called on the body afterwards, except for
// the built-in verifiers that DecidedByHeaders names.
//
// VerifyHeader returns an error (wrapping ErrUnauthorized, without secrets)
// when the headers show the request cannot be authentic. The built-in
// shared-secret, basic and bearer verifiers decide completely on the
// headers; hmac-sha256 refuses a missing, repeated or malformed signature
// header here and checks the signature against the body in Verify.
type HeaderVerifier interface {
	VerifyHeader(h http.Header) error
}

// DecidedByHeaders reports whether v's VerifyHeader is its whole check
// (the built-in none, shared-secret, basic and bearer verifiers): once it
// passed, Verify would only repeat it, so the receiver skips Verify.
func DecidedByHeaders(v Verifier) bool {
	_, ok := v.(headerOnly)
	return ok
}

// SignatureHeader returns the canonical name of the header that carries
// v's signature of the body when v checks one (hmac-sha256), else "". A
// signature, unlike the credential the other verifiers read, is no secret:
// the receiver stores it with the body, so that a downstream holding the
// key can verify the body again.
func SignatureHeader(v Verifier) string {
	if s, ok := v.(signed); ok {
		return s.signatureHeader()
	}
	return ""
}

// signed marks the verifiers that check a signature of the body.
type signed interface{ signatureHeader() string }

func (v *hmacSHA256) signatureHeader() string { return http.CanonicalHeaderKey(v.header) }

// headerOnly marks the verifiers whose Verify is their VerifyHeader.
type headerOnly interface{ headerOnly() }

// New returns the Verifier for c. Misconfiguration (an empty or unknown
// type, a missing secret or user name, an unknown encoding, an invalid header
// name, a field that does not apply to the type) is an error naming the
// problem; it never contains a secret.
func New(c Config) (Verifier, error) {
	if err := c.check(); err != nil {
		switch c.Type {
		case TypeNone, TypeSharedSecret, TypeBasic, TypeBearer, TypeHMACSHA256:
		default: // the error is about the type itself
			return nil, fmt.Errorf("verify: %w", err)
		}
		return nil, fmt.Errorf("verify: %s: %w", c.Type, err)
	}
	desc := c.String()
	switch c.Type {
	case TypeNone:
		return none{}, nil
	case TypeSharedSecret:
		return &sharedSecret{header: headerOr(c.Header, DefaultSecretHeader), keys: digests(c), desc: desc}, nil
	case TypeBearer:
		return &bearer{keys: digests(c), desc: desc}, nil
	case TypeBasic:
		return &basic{user: sha256.Sum256([]byte(c.Username)), keys: digests(c), desc: desc}, nil
	default: // TypeHMACSHA256, see check
		v := &hmacSHA256{
			header: headerOr(c.Header, DefaultHMACHeader),
			prefix: c.Prefix,
			base64: c.Encoding == EncodingBase64,
			keys:   [][]byte{[]byte(c.Secret)},
			desc:   desc,
		}
		if c.PreviousSecret != "" {
			v.keys = append(v.keys, []byte(c.PreviousSecret))
		}
		return v, nil
	}
}

// check validates c; errors omit the "verify: type" prefix New adds.
func (c Config) check() error {
	type field struct {
		name string
		set  bool
	}
	var allowed map[string]bool
	switch c.Type {
	case "":
		return errors.New(`type is empty; set one of "shared-secret", "basic", "bearer", "hmac-sha256", or "none" to accept every request`)
	case TypeNone:
		allowed = map[string]bool{}
	case TypeSharedSecret:
		allowed = map[string]bool{"header": true, "secret": true, "previous secret": true}
	case TypeBearer:
		allowed = map[string]bool{"secret": true, "previous secret": true}
	case TypeBasic:
		allowed = map[string]bool{"username": true, "secret": true, "previous secret": true}
	case TypeHMACSHA256:
		allowed = map[string]bool{"header": true, "secret": true, "previous secret": true, "prefix": true, "encoding": true}
	default:
		return fmt.Errorf(`unknown type %q (want "none", "shared-secret", "basic", "bearer" or "hmac-sha256")`, c.Type)
	}
	for _, f := range []field{
		{"header", c.Header != ""},
		{"secret", c.Secret != ""},
		{"previous secret", c.PreviousSecret != ""},
		{"username", c.Username != ""},
		{"prefix", c.Prefix != ""},
		{"encoding", c.Encoding != ""},
	} {
		if f.set && !allowed[f.name] {
			return fmt.Errorf("%s does not apply to this type", f.name)
		}
	}
	if c.Type == TypeNone {
		return nil
	}
	if c.Secret == "" {
		return errors.New("secret is empty")
	}
	if c.Header != "" && !headers.ValidHTTPName(c.Header) {
		return fmt.Errorf("header %q is not a valid header name", c.Header)
	}
	switch c.Type {
	case TypeSharedSecret, TypeBearer:
		for _, s := range []struct{ name, v string }{{"secret", c.Secret}, {"previous secret", c.PreviousSecret}} {
			if err := headerSafe(s.v); err != nil {
				return fmt.Errorf("%s %w", s.name, err)
			}
		}
	case TypeBasic:
		if c.Username == "" {
			return errors.New("username is empty")
		}
		if strings.ContainsRune(c.Username, ':') {
			return errors.New("username contains ':', which basic authentication cannot carry")
		}
	case TypeHMACSHA256:
		switch c.Encoding {
		case "", EncodingHex, EncodingBase64:
		default:
			return fmt.Errorf("unknown encoding %q (want %q or %q)", c.Encoding, EncodingHex, EncodingBase64)
		}
		for i := 0; i < len(c.Prefix); i++ {
			if c.Prefix[i] <= ' ' || c.Prefix[i] >= 0x7f {
				return errors.New("prefix must be printable ASCII without spaces")
			}
		}
	}
	return nil
}

// headerSafe reports why s could never arrive in an HTTP header value.
func headerSafe(s string) error {
	if s == "" {
		return nil
	}
	if strings.TrimSpace(s) != s {
		return errors.New("starts or ends with whitespace (a trailing newline from a file?); header values cannot carry it")
	}
	if headers.HasHTTPControl(s) {
		return errors.New("contains a control character, which header values cannot carry")
	}
	return nil
}

func headerOr(h, def string) string {
	if h == "" {
		return def
	}
	return http.CanonicalHeaderKey(h)
}

// String describes c without secrets, for logs and `--help` output, e.g.
// "hmac-sha256 header=X-Hub-Signature-256 encoding=base64 prefix=sha256= (+previous)".
// Defaults are spelled out.
func (c Config) String() string {
	var b strings.Builder
	switch c.Type {
	case "":
		return "(no verifier type)"
	case TypeSharedSecret:
		b.WriteString(c.Type + " header=" + headerOr(c.Header, DefaultSecretHeader))
	case TypeBasic:
		// The user name is an identifier, not a credential.
		fmt.Fprintf(&b, "%s username=%q", c.Type, c.Username)
	case TypeHMACSHA256:
		enc := c.Encoding
		if enc == "" {
			enc = EncodingHex
		}
		b.WriteString(c.Type + " header=" + headerOr(c.Header, DefaultHMACHeader) + " encoding=" + enc)
		if c.Prefix != "" {
			b.WriteString(" prefix=" + c.Prefix)
		}
	default: // none, bearer, and unknown types, which New refuses
		fmt.Fprintf(&b, "%s", c.Type)
	}
	if c.Type != TypeNone && c.Secret == "" {
		b.WriteString(" (no secret)")
	}
	if c.PreviousSecret != "" {
		b.WriteString(" (+previous)")
	}
	return b.String()
}

// GoString is String, so that %#v cannot print secrets either.
func (c Config) GoString() string { return "verify.Config{" + c.String() + "}" }

func unauthorized(format string, args ...any) error {
	return fmt.Errorf("verify: %w: %s", ErrUnauthorized, fmt.Sprintf(format, args...))
}

// digests returns the SHA-256 of the current and, if set, previous secret.
// Comparing digests keeps comparisons fixed-length, and the verifiers never
// hold a plain secret they do not need.
func digests(c Config) [][sha256.Size]byte {
	d := [][sha256.Size]byte{sha256.Sum256([]byte(c.Secret))}
	if c.PreviousSecret != "" {
		d = append(d, sha256.Sum256([]byte(c.PreviousSecret)))
	}
	return d
}

// matchAny reports in constant time (for a given number of keys) whether got
// matches one of keys.
func matchAny(got string, keys [][sha256.Size]byte) bool {
	g := sha256.Sum256([]byte(got))
	ok := 0
	for i := range keys {
		ok |= subtle.ConstantTimeCompare(g[:], keys[i][:])
	}
	return ok == 1
}

// single returns the only value of header name. Several values are refused:
// which one counts would differ between proxies and servers.
func single(h http.Header, name string) (string, error) {
	vs := h.Values(name)
	switch len(vs) {
	case 0:
		return "", unauthorized("missing %s header", name)
	case 1:
		if vs[0] == "" {
			return "", unauthorized("empty %s header", name)
		}
		return vs[0], nil
	default:
		return "", unauthorized("%d %s headers, want one", len(vs), name)
	}
}

type none struct{}

func (none) Verify(http.Header, []byte) error { return nil }
func (none) VerifyHeader(http.Header) error   { return nil }
func (none) headerOnly()                      {}
func (none) String() string                   { return TypeNone }

type sharedSecret struct {
	header string
	keys   [][sha256.Size]byte
	desc   string
}

func (v *sharedSecret) String() string { return v.desc }

func (v *sharedSecret) Verify(h http.Header, _ []byte) error { return v.VerifyHeader(h) }
func (*sharedSecret) headerOnly()                            {}

// VerifyHeader decides completely: the credential is in the header.
func (v *sharedSecret) VerifyHeader(h http.Header) error {
	got, err := single(h, v.header)
	if err != nil {
		return err
	}
	if !matchAny(got, v.keys) {
		return unauthorized("wrong secret in %s header", v.header)
	}
	return nil
}

type bearer struct {
	keys [][sha256.Size]byte
	desc string
}

func (v *bearer) String() string { return v.desc }

func (v *bearer) Verify(h http.Header, _ []byte) error { return v.VerifyHeader(h) }
func (*bearer) headerOnly()                            {}

// VerifyHeader decides completely: the credential is in the header.
func (v *bearer) VerifyHeader(h http.Header) error {
	auth, err := single(h, "Authorization")
	if err != nil {
		return err
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return unauthorized("Authorization header is not a Bearer credential")
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return unauthorized("empty Bearer token")
	}
	if !matchAny(token, v.keys) {
		return unauthorized("wrong Bearer token")
	}
	return nil
}

type basic struct {
	user [sha256.Size]byte
	keys [][sha256.Size]byte
	desc string
}

func (v *basic) String() string { return v.desc }

func (v *basic) Verify(h http.Header, _ []byte) error { return v.VerifyHeader(h) }
func (*basic) headerOnly()                            {}

// VerifyHeader decides completely: the credential is in the header.
func (v *basic) VerifyHeader(h http.Header) error {
	auth, err := single(h, "Authorization")
	if err != nil {
		return err
	}
	scheme, enc, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return unauthorized("Authorization header is not a Basic credential")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return unauthorized("Basic credential is not valid base64")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return unauthorized("Basic credential has no ':'")
	}
	// Check both parts before deciding, so timing does not tell a wrong
	// user from a wrong password.
	u := sha256.Sum256([]byte(user))
	userOK := subtle.ConstantTimeCompare(u[:], v.user[:])
	passOK := 0
	if matchAny(pass, v.keys) {
		passOK = 1
	}
	if userOK&passOK != 1 {
		return unauthorized("wrong Basic user name or password")
	}
	return nil
}

type hmacSHA256 struct {
	header string
	prefix string
	base64 bool
	keys   [][]byte // current, then previous
	desc   string
}

func (v *hmacSHA256) String() string { return v.desc }

func (v *hmacSHA256) Verify(h http.Header, body []byte) error {
	got, err := v.signature(h)
	if err != nil {
		return err
	}
	for _, key := range v.keys {
		m := hmac.New(sha256.New, key)
		m.Write(body)
		if hmac.Equal(m.Sum(nil), got) {
			return nil
		}
	}
	return unauthorized("wrong signature in %s header", v.header)
}

// VerifyHeader refuses a request whose signature header is missing,
// repeated or not a signature in the configured form; the signature itself
// needs the body (Verify).
func (v *hmacSHA256) VerifyHeader(h http.Header) error {
	_, err := v.signature(h)
	return err
}

// signature returns the decoded signature of the request's header.
func (v *hmacSHA256) signature(h http.Header) ([]byte, error) {
	sig, err := single(h, v.header)
	if err != nil {
		return nil, err
	}
	if v.prefix != "" {
		if !hasPrefixFold(sig, v.prefix) {
			return nil, unauthorized("%s header lacks the prefix %q", v.header, v.prefix)
		}
		sig = sig[len(v.prefix):]
	}
	got, ok := v.decode(sig)
	if !ok {
		enc := "hex"
		if v.base64 {
			enc = "base64"
		}
		return nil, unauthorized("%s header is not a %s SHA-256 signature (prefix %q)", v.header, enc, v.prefix)
	}
	return got, nil
}

// SignHMAC returns the header, and its value, that the hmac-sha256 verifier
// configured by c accepts for body: c.Prefix, then the HMAC-SHA256 of body
// under c.Secret in c.Encoding (base64: standard alphabet, padded). It is
// for clients that play the sender, such as hookline send. c is validated
// as New validates it.
func SignHMAC(c Config, body []byte) (header, value string, err error) {
	if c.Type != TypeHMACSHA256 {
		return "", "", fmt.Errorf("verify: sign: type %q is not %s", c.Type, TypeHMACSHA256)
	}
	if err := c.check(); err != nil {
		return "", "", fmt.Errorf("verify: %s: %w", c.Type, err)
	}
	m := hmac.New(sha256.New, []byte(c.Secret))
	m.Write(body)
	sum := m.Sum(nil)
	sig := hex.EncodeToString(sum)
	if c.Encoding == EncodingBase64 {
		sig = base64.StdEncoding.EncodeToString(sum)
	}
	return headerOr(c.Header, DefaultHMACHeader), c.Prefix + sig, nil
}

// hasPrefixFold reports whether s starts with the ASCII prefix, ignoring
// ASCII case ("SHA256=" matches "sha256=").
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		a, b := s[i], prefix[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// decode returns the 32-byte signature in s. The length of a SHA-256
// signature is public, so refusing other lengths early leaks nothing.
func (v *hmacSHA256) decode(s string) ([]byte, bool) {
	if !v.base64 {
		if len(s) != hex.EncodedLen(sha256.Size) {
			return nil, false
		}
		b, err := hex.DecodeString(s)
		return b, err == nil
	}
	s = strings.TrimRight(s, "=")
	if len(s) != base64.RawStdEncoding.EncodedLen(sha256.Size) {
		return nil, false
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(s)
	return b, err == nil
}
