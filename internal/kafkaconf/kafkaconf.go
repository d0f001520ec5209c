// Package kafkaconf is the one place that turns hookline's Kafka settings
// (seeds, client id, TLS, SASL) into franz-go client options.
package kafkaconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Environment variables read for credentials, so they never appear in a
// process list or shell history.
const (
	EnvSASLUsername = "HOOKLINE_SASL_USERNAME"
	EnvSASLPassword = "HOOKLINE_SASL_PASSWORD"
)

// DefaultClientID is the client id sent to the brokers.
const DefaultClientID = "hookline"

// Config holds the connection settings of every Kafka client hookline makes.
type Config struct {
	Brokers  []string // seed brokers, host:port
	ClientID string   // default DefaultClientID

	TLS        bool   // enable TLS (implied by any TLS file or server name)
	CAFile     string // PEM bundle to trust instead of the system roots
	CertFile   string // client certificate (mTLS), with KeyFile
	KeyFile    string
	ServerName string // override the name checked in the broker's certificate

	// SASLMechanism is "", "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	// Credentials come from SASLUsername/SASLPassword, which the CLI fills
	// from HOOKLINE_SASL_USERNAME / HOOKLINE_SASL_PASSWORD.
	SASLMechanism string
	SASLUsername  string
	SASLPassword  string

	// DialTimeout bounds one connection attempt; default 10s.
	DialTimeout time.Duration
}

// ParseBrokers splits a comma-separated seed list, dropping blanks.
func ParseBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// FillFromEnv sets the SASL credentials from the environment where they are
// empty.
func (c *Config) FillFromEnv() {
	if c.SASLUsername == "" {
		c.SASLUsername = os.Getenv(EnvSASLUsername)
	}
	if c.SASLPassword == "" {
		c.SASLPassword = os.Getenv(EnvSASLPassword)
	}
}

// Opts returns the client options for c. Callers append their own options
// (producer or consumer settings) after these.
func (c Config) Opts() ([]kgo.Opt, error) {
	if len(c.Brokers) == 0 {
		return nil, errors.New("no Kafka brokers configured: set --brokers or HOOKLINE_BROKERS (host:port,host:port); from Go, Config.Kafka.Brokers")
	}
	id := c.ClientID
	if id == "" {
		id = DefaultClientID
	}
	dial := c.DialTimeout
	if dial == 0 {
		dial = 10 * time.Second
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(id),
		kgo.DialTimeout(dial),
	}
	if c.tlsOn() {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASLMechanism != "" {
		m, err := c.saslMechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pool, err := CertPool(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA file (--tls-ca): %w", err)
		}
		tc.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("TLS client certificate needs both --tls-cert and --tls-key")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load TLS client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (c Config) saslMechanism() (sasl.Mechanism, error) {
	if c.SASLUsername == "" || c.SASLPassword == "" {
		return nil, fmt.Errorf("SASL %s needs a username and password: set %s and %s", c.SASLMechanism, EnvSASLUsername, EnvSASLPassword)
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "PLAIN":
		return plain.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsSha512Mechanism(), nil
	default:
		return nil, fmt.Errorf("unknown SASL mechanism %q: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
	}
}

// String describes c without secrets, for logs.
func (c Config) String() string {
	s := "brokers=" + strings.Join(c.Brokers, ",")
	if c.tlsOn() {
		s += " tls=on"
	}
	if c.SASLMechanism != "" {
		s += " sasl=" + c.SASLMechanism + " user=" + c.SASLUsername
	}
	return s
}

// NewClient builds a client from c plus extra options and checks that a
// broker answers within ctx, so a wrong address or password fails at startup
// with a message that says what to fix.
func NewClient(ctx context.Context, c Config, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := c.Opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, c.explain(err)
	}
	return cl, nil
}

// NewReader is NewClient for a short-lived reader of given partitions (a
// dedup restore, a DLQ scan), which closes its client as soon as it has
// read enough, while franz-go may be building its next fetch: without
// fetch sessions. franz-go v1.22.3 ends a fetch session on Close by writing
// the session state that a fetch loop still running reads (a data race the
// race detector reported in CI, in a DLQ replay that stopped early); a
// reader that ends soon gains nothing from a session anyway.
func NewReader(ctx context.Context, c Config, extra ...kgo.Opt) (*kgo.Client, error) {
	return NewClient(ctx, c, append(extra, kgo.DisableFetchSessions())...)
}

// explain wraps a connection error with the likely fix.
func (c Config) explain(err error) error {
	brokers := strings.Join(c.Brokers, ",")
	var unknownCA x509.UnknownAuthorityError
	var badName x509.HostnameError
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return fmt.Errorf("kafka at %s refused the SASL %s credentials of user %q: check %s and %s: %w",
			brokers, c.SASLMechanism, c.SASLUsername, EnvSASLUsername, EnvSASLPassword, err)
	case errors.Is(err, kerr.UnsupportedSaslMechanism), errors.Is(err, kerr.IllegalSaslState):
		return fmt.Errorf("kafka at %s does not accept SASL %s: check --sasl-mechanism: %w", brokers, c.SASLMechanism, err)
	case errors.Is(err, context.Canceled):
		// Stopped while connecting: nothing is known to be wrong.
		return fmt.Errorf("connecting to Kafka at %s: %w", brokers, err)
	case errors.As(err, &unknownCA):
		return fmt.Errorf("kafka at %s presents a TLS certificate from a CA this process does not trust: give that CA's PEM file with --tls-ca: %w", brokers, err)
	case errors.As(err, &badName):
		return fmt.Errorf("kafka at %s presents a TLS certificate for other names: put one of its names in --brokers, or set --tls-server-name: %w", brokers, err)
	}
	// TLS on one side only shows as a timeout, a closed connection or a
	// garbled answer, depending on the broker (kfake and Apache Kafka
	// differ): ask the listener itself. Not for a refused connection or
	// an unknown host, which a probe cannot explain better.
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.As(err, new(*net.DNSError)) {
		if c.tlsOn() {
			if b := c.seedThat(plaintextListener); b != "" {
				return fmt.Errorf("kafka at %s accepts connections but does not speak TLS: it is a plaintext listener; drop --tls (and the other TLS settings) or give the broker's TLS port: %w", b, err)
			}
		} else if b := c.seedThat(tlsListener); b != "" {
			return fmt.Errorf("kafka at %s speaks TLS: add --tls (and --tls-ca with the PEM file of its CA when that is a private one): %w", b, err)
		}
	}
	switch {
	case c.SASLMechanism != "" && errors.Is(err, io.EOF):
		// Some brokers (and kfake) close the connection on a failed login
		// instead of answering SaslAuthenticationFailed.
		return fmt.Errorf("kafka at %s closed the connection during SASL %s login of user %q: the credentials were probably refused (check %s and %s): %w",
			brokers, c.SASLMechanism, c.SASLUsername, EnvSASLUsername, EnvSASLPassword, err)
	case c.SASLMechanism == "" && errors.Is(err, io.EOF):
		// A listener that requires SASL drops a request without it.
		next := fmt.Sprintf("set --sasl-mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512), with the credentials in %s and %s", EnvSASLUsername, EnvSASLPassword)
		if c.SASLUsername != "" {
			next = fmt.Sprintf("%s is set, but --sasl-mechanism is not: set it to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", EnvSASLUsername)
		}
		return fmt.Errorf("kafka at %s closed the connection at the first request: the listener likely requires SASL; %s: %w", brokers, next, err)
	default:
		return fmt.Errorf("cannot reach Kafka at %s (is it running? are --brokers, TLS and SASL settings right?): %w", brokers, err)
	}
}

// Secured reports whether c uses TLS or SASL: a command printed for an
// operator to run then needs the same settings.
func (c Config) Secured() bool { return c.tlsOn() || c.SASLMechanism != "" }

func (c Config) tlsOn() bool {
	return c.TLS || c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.ServerName != ""
}

// listenerKind is what a probe of a broker address found.
type listenerKind int

const (
	unknownListener   listenerKind = iota
	tlsListener                    // answered a TLS hello (a handshake or an alert)
	plaintextListener              // accepted TCP, then timed out, closed or sent no TLS record
)

// seedThat returns a seed broker whose listener is of kind k, or "". Seeds
// are probed at once; this runs only on a failure path and returns within
// about 2.5 seconds.
func (c Config) seedThat(k listenerKind) string {
	found := make(chan string, len(c.Brokers))
	for _, b := range c.Brokers {
		go func() { // ends within its own 2 s of deadlines
			if probeListener(b) == k {
				found <- b
				return
			}
			found <- ""
		}()
	}
	timeout := time.After(2500 * time.Millisecond)
	for range c.Brokers {
		select {
		case b := <-found:
			if b != "" {
				return b
			}
		case <-timeout:
			return ""
		}
	}
	return ""
}

// probeListener says whether addr speaks TLS. A TLS listener answers a TLS
// hello, if only with an alert. A plaintext Kafka listener waits for a
// request (kfake) or closes the connection when it reads the hello as a
// request of absurd size (Apache Kafka).
func probeListener(addr string) listenerKind {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return unknownListener
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	// Only to see whether anything answers in TLS: no data is sent, so
	// the peer's certificate does not matter here.
	err = tls.Client(conn, &tls.Config{InsecureSkipVerify: true}).Handshake() //nolint:gosec // a probe, see above
	var ne net.Error
	var remote *net.OpError // crypto/tls reports a received alert as a "remote error"
	var notTLS tls.RecordHeaderError
	switch {
	case err == nil, errors.As(err, &remote) && remote.Op == "remote error":
		return tlsListener
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.As(err, &notTLS):
		return plaintextListener
	}
	return unknownListener
}

// CertPool reads a PEM bundle of CA certificates (for Kafka, or for an HTTPS
// downstream).
func CertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}
