package producer

import (
	"github.com/hookline/hookline/internal/extract"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/internal/verify"
)

// The names below let a program outside this module fill in a Config and its
// Sources: they are the types of its fields, which live in internal
// packages. They are aliases, so values are interchangeable with what
// hookline's own commands build.

// KafkaConfig holds the connection settings of a Kafka client (the same
// type as consumer.KafkaConfig). Fields:
//
//	Brokers       []string // seed brokers, host:port. Required.
//	ClientID      string   // default "hookline"
//	TLS           bool     // enable TLS (implied by any of the next four)
//	CAFile        string   // PEM bundle to trust instead of the system roots
//	CertFile      string   // client certificate (mutual TLS), with KeyFile
//	KeyFile       string
//	ServerName    string   // name checked in the broker's certificate
//	SASLMechanism string   // "", "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512"
//	SASLUsername  string   // FillFromEnv reads HOOKLINE_SASL_USERNAME
//	SASLPassword  string   // and HOOKLINE_SASL_PASSWORD
//	DialTimeout   time.Duration // one connection attempt; default 10s
//
// Its methods (go doc shows them only on the internal type):
//
//	func (c KafkaConfig) Opts() ([]kgo.Opt, error) // the matching franz-go client options, e.g. for the kadm client topics.Create takes; append your own after them
//	func (c *KafkaConfig) FillFromEnv()            // SASLUsername/SASLPassword from HOOKLINE_SASL_USERNAME/_PASSWORD where empty
type KafkaConfig = kafkaconf.Config

// Verifier authenticates one webhook on its headers and raw body: nil means
// authentic, any error answers 401 and stores nothing. Build one of
// hookline's with NewVerifier, or implement it (compare credentials in
// constant time, and keep secrets and request values out of the error,
// which is logged). Only the built-in hmac-sha256 verifier, as NewVerifier
// returns it, has its signature kept with the record (hookline-signature);
// a Verifier of your own, also one that wraps it, has none kept.
type Verifier = verify.Verifier

// HeaderVerifier is implemented by a Verifier that can refuse a request on
// its headers alone. The receiver asks it before the request takes an
// in-flight slot or its body is read, so a sender without credentials
// cannot hold slots by trickling a body, and is answered 401 instead of
// 100 Continue; Verify still runs on the body afterwards. The built-in
// shared-secret, basic and bearer verifiers decide on the headers alone
// (their Verify is not called again), and hmac-sha256 refuses a missing or
// malformed signature header there.
type HeaderVerifier = verify.HeaderVerifier

// VerifierConfig configures one built-in Verifier. Fields:
//
//	Type           string // VerifierNone, VerifierSharedSecret, VerifierBasic, VerifierBearer or VerifierHMACSHA256. Required.
//	Header         string // shared-secret: default "X-Hookline-Secret"; hmac-sha256: default "X-Hub-Signature-256"
//	Secret         string // shared secret, bearer token, HMAC key or basic password. Required except for none.
//	PreviousSecret string // also accepted (rotation)
//	Username       string // basic only. Required there.
//	Prefix         string // hmac-sha256: stripped before decoding, e.g. "sha256="; default none
//	Encoding       string // hmac-sha256: "hex" (default) or "base64"
//
// Fields that do not apply to the Type are refused by NewVerifier.
type VerifierConfig = verify.Config

// Types of VerifierConfig.Type.
const (
	// VerifierNone accepts every request; it must be chosen explicitly, so
	// a forgotten setting never turns authentication off.
	VerifierNone         = verify.TypeNone
	VerifierSharedSecret = verify.TypeSharedSecret
	VerifierBasic        = verify.TypeBasic
	VerifierBearer       = verify.TypeBearer
	VerifierHMACSHA256   = verify.TypeHMACSHA256
)

// ErrUnauthorized is wrapped by every error of a built-in Verifier.
var ErrUnauthorized = verify.ErrUnauthorized

// NewVerifier returns the built-in Verifier that c describes. Every
// credential comparison is constant-time. A misconfiguration (an empty or
// unknown Type, a missing Secret, a field that does not apply to the Type)
// is an error naming the problem; it never contains a secret.
func NewVerifier(c VerifierConfig) (Verifier, error) { return verify.New(c) }

// Rules says how the receiver finds the event id (the dedup key) and the
// conversation id (the record key) in a source's bodies. Fields:
//
//	Kind    Kind     // KindGenesys or KindGeneric. Required.
//	EventID []string // JSON pointers (RFC 6901) tried in order; none: a SHA-256 of the canonical JSON
//	Key     []string // JSON pointers for the conversation id; none: built-in Genesys rules, else the event id
//
// A body that is not JSON, or has no usable id where one is needed, is
// stored in the DLQ as malformed and answered 202.
type Rules = extract.Rules

// Kind selects the built-in id rules of a source.
type Kind = extract.Kind

// Kinds of Rules.Kind.
const (
	// KindGenesys detects Genesys Cloud notifications, bare or in an
	// EventBridge envelope, and workflow data-action bodies.
	KindGenesys = extract.KindGenesys
	// KindGeneric uses only the configured pointers and the content hash.
	KindGeneric = extract.KindGeneric
)
