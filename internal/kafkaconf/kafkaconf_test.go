package kafkaconf

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// writeCA makes a CA and a server certificate for 127.0.0.1; it returns the
// server TLS config and the path of the CA PEM.
func writeCA(t *testing.T) (*tls.Config, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hookline test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kafka.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"kafka.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}}}, path
}

func TestTLSAndSCRAMConnect(t *testing.T) {
	srvTLS, caPath := writeCA(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(srvTLS), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", "hookline", "right-password"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	good := Config{Brokers: c.ListenAddrs(), CAFile: caPath, SASLMechanism: "SCRAM-SHA-256",
		SASLUsername: "hookline", SASLPassword: "right-password"}
	cl, err := NewClient(ctx, good)
	if err != nil {
		t.Fatalf("TLS + SCRAM-SHA-256 with the right password: %v", err)
	}
	cl.Close()

	bad := good
	bad.SASLPassword = "wrong-password"
	_, err = NewClient(ctx, bad)
	if err == nil {
		t.Fatal("wrong password connected")
	}
	for _, want := range []string{"SASL SCRAM-SHA-256", `user "hookline"`, EnvSASLPassword} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Error("error leaks the password")
	}

	noCA := good
	noCA.CAFile = ""
	noCA.TLS = true
	if _, err := NewClient(ctx, noCA); err == nil {
		t.Fatal("connected without trusting the test CA")
	}
}

func TestSCRAM512AndPlain(t *testing.T) {
	for _, mech := range []string{"SCRAM-SHA-512", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "u", "p"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cl, err := NewClient(ctx, Config{Brokers: c.ListenAddrs(), SASLMechanism: mech, SASLUsername: "u", SASLPassword: "p"})
			if err != nil {
				t.Fatalf("%s: %v", mech, err)
			}
			cl.Close()
		})
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]struct {
		c    Config
		want string
	}{
		"no brokers":     {Config{}, "--brokers"},
		"sasl no creds":  {Config{Brokers: []string{"x:1"}, SASLMechanism: "PLAIN"}, EnvSASLUsername},
		"bad mechanism":  {Config{Brokers: []string{"x:1"}, SASLMechanism: "GSSAPI", SASLUsername: "u", SASLPassword: "p"}, "unknown SASL mechanism"},
		"missing CA":     {Config{Brokers: []string{"x:1"}, CAFile: "/nonexistent/ca.pem"}, "--tls-ca"},
		"cert needs key": {Config{Brokers: []string{"x:1"}, CertFile: "c.pem"}, "--tls-key"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := tc.c.Opts()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Opts() error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestParseBrokersAndString(t *testing.T) {
	got := ParseBrokers(" a:1, ,b:2,")
	if len(got) != 2 || got[0] != "a:1" || got[1] != "b:2" {
		t.Fatalf("ParseBrokers = %v", got)
	}
	s := Config{Brokers: got, SASLMechanism: "PLAIN", SASLUsername: "u", SASLPassword: "secret"}.String()
	if strings.Contains(s, "secret") {
		t.Fatalf("String leaks the password: %s", s)
	}
}

// TLS on one side only: each error says which setting to look at instead
// of only "cannot reach Kafka".
func TestTLSMismatchSaysWhatToDo(t *testing.T) {
	srvTLS, caPath := writeCA(t)
	tlsBroker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(srvTLS))
	if err != nil {
		t.Fatal(err)
	}
	defer tlsBroker.Close()
	plainBroker, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer plainBroker.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = NewClient(ctx, Config{Brokers: plainBroker.ListenAddrs(), CAFile: caPath})
	if err == nil || !strings.Contains(err.Error(), "does not speak TLS") || !strings.Contains(err.Error(), "drop --tls") {
		t.Errorf("TLS client, plaintext listener: %v", err)
	}

	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	_, err = NewClient(ctx2, Config{Brokers: tlsBroker.ListenAddrs()})
	if err == nil || !strings.Contains(err.Error(), "speaks TLS: add --tls") {
		t.Errorf("plaintext client, TLS listener: %v", err)
	}

	// TLS on, but without the private CA: name the flag that fixes it.
	_, err = NewClient(ctx2, Config{Brokers: tlsBroker.ListenAddrs(), TLS: true})
	if err == nil || !strings.Contains(err.Error(), "from a CA this process does not trust: give that CA's PEM file with --tls-ca") {
		t.Errorf("TLS client without the CA: %v", err)
	}
	_, err = NewClient(ctx2, Config{Brokers: tlsBroker.ListenAddrs(), CAFile: caPath, ServerName: "other.example"})
	if err == nil || !strings.Contains(err.Error(), "certificate for other names: put one of its names in --brokers, or set --tls-server-name") {
		t.Errorf("TLS client checking another name: %v", err)
	}
}

// Apache Kafka answers a TLS mismatch unlike kfake: its plaintext listener
// reads a TLS hello as a request of absurd size and closes the connection
// (no timeout), and its TLS listener answers a plaintext request with an
// alert record, which franz-go reads as an absurd response size. The
// advice must be the same as with kfake.
func TestTLSMismatchLikeApacheKafka(t *testing.T) {
	serve := func(answer []byte) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer conn.Close()
					buf := make([]byte, 512)
					_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
					if _, err := conn.Read(buf); err == nil && answer != nil {
						_, _ = conn.Write(answer)
					}
				}()
			}
		}()
		return ln.Addr().String()
	}
	closes := serve(nil)                                              // reads, then closes
	alerts := serve([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28}) // a TLS handshake_failure alert

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := NewClient(ctx, Config{Brokers: []string{closes}, TLS: true, SASLMechanism: "SCRAM-SHA-512", SASLUsername: "u", SASLPassword: "p"})
	if err == nil || !strings.Contains(err.Error(), "drop --tls") || strings.Contains(err.Error(), "credentials") {
		t.Errorf("TLS client, a plaintext listener that closes: %v", err)
	}
	_, err = NewClient(ctx, Config{Brokers: []string{alerts}})
	if err == nil || !strings.Contains(err.Error(), "speaks TLS: add --tls") {
		t.Errorf("plaintext client, a TLS listener that alerts: %v", err)
	}
}

// A listener that requires SASL, reached without --sasl-mechanism: say so,
// and say that the credentials alone do not switch it on.
func TestSASLMissingSaysWhatToSet(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("PLAIN", "u", "p"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = NewClient(ctx, Config{Brokers: c.ListenAddrs()})
	if err == nil || !strings.Contains(err.Error(), "likely requires SASL; set --sasl-mechanism") {
		t.Errorf("no SASL at all: %v", err)
	}
	_, err = NewClient(ctx, Config{Brokers: c.ListenAddrs(), SASLUsername: "u", SASLPassword: "p"})
	if err == nil || !strings.Contains(err.Error(), EnvSASLUsername+" is set, but --sasl-mechanism is not") {
		t.Errorf("credentials without a mechanism: %v", err)
	}
}

// Stopped while connecting (a signal during start-up) is not "cannot
// reach Kafka": nothing is known to be wrong with it.
func TestStopWhileConnectingIsNotUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err = NewClient(ctx, Config{Brokers: []string{ln.Addr().String()}})
	if err == nil || strings.Contains(err.Error(), "cannot reach") || !strings.Contains(err.Error(), "connecting to Kafka at") {
		t.Fatalf("stopped while connecting: %v", err)
	}
}

// NewReader's clients use no fetch sessions (see NewReader for the race
// that closing a client with one can cause).
func TestNewReaderDisablesFetchSessions(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := Config{Brokers: c.ListenAddrs()}
	r, err := NewReader(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if v, _ := r.OptValue(kgo.DisableFetchSessions).(bool); !v {
		t.Errorf("NewReader client: DisableFetchSessions = %v, want true", r.OptValue(kgo.DisableFetchSessions))
	}
	cl, err := NewClient(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if v, _ := cl.OptValue(kgo.DisableFetchSessions).(bool); v {
		t.Error("NewClient client: fetch sessions disabled; only readers should")
	}
}
