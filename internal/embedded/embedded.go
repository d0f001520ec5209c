// Package embedded runs a single-node Kafka-compatible broker in-process
// (franz-go's kfake) persisted to a data directory. It is for development and
// single-host use: one process, one disk, no replication.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Defaults of Config.
const (
	DefaultAddr    = "127.0.0.1:9092"
	DefaultDataDir = "./hookline-data"
)

// Config says where the broker listens and keeps its data.
type Config struct {
	Addr    string // host:port; default DefaultAddr
	DataDir string // default DefaultDataDir; created if needed
	// Partitions is the default partition count of auto-created topics;
	// hookline creates its topics explicitly, so this rarely matters.
	Partitions int32
	// NoSync skips the fsync after every produced batch. Default false:
	// an acknowledged record is on disk, which is what the receiver's
	// 200 promises.
	NoSync bool
}

// Broker is a running embedded broker.
type Broker struct {
	c    *kfake.Cluster
	addr string
	lock *os.File // flock on <DataDir>/.lock while the broker runs
}

// Start starts the broker. A taken port is an error that says what to do.
func Start(cfg Config) (*Broker, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("embedded broker address %q: want host:port: %w", cfg.Addr, err)
	}
	// Probe the address first so a taken port is a clear error rather than
	// a failure deep inside the fake cluster.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("embedded broker cannot listen on %s: the port is taken (another Kafka or hookline?): stop it, choose --embedded-addr 127.0.0.1:<free port>, or use that broker with --brokers %s", cfg.Addr, cfg.Addr)
		}
		return nil, fmt.Errorf("embedded broker cannot listen on %s: %w", cfg.Addr, err)
	}
	// Keep the probe listener and hand it to kfake, so no other process can
	// take the port in between.
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		ln.Close()
		return nil, fmt.Errorf("embedded broker data dir %s: %w", cfg.DataDir, err)
	}
	lock, err := lockDir(cfg.DataDir)
	if err != nil {
		ln.Close()
		return nil, err
	}
	handed := false
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DataDir(cfg.DataDir),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			if !handed {
				handed = true
				return ln, nil
			}
			return net.Listen(network, net.JoinHostPort(host, "0"))
		}),
	}
	if cfg.Partitions > 0 {
		opts = append(opts, kfake.DefaultNumPartitions(int(cfg.Partitions)))
	}
	if !cfg.NoSync {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		if !handed {
			ln.Close()
		}
		lock.Close()
		return nil, fmt.Errorf("start embedded broker (data dir %s): %w", cfg.DataDir, err)
	}
	return &Broker{c: c, addr: c.ListenAddrs()[0], lock: lock}, nil
}

// Addr is the bootstrap address, usable by any Kafka client (kcat -b).
func (b *Broker) Addr() string { return b.addr }

// Cluster exposes the fake cluster, for tests that inject faults.
func (b *Broker) Cluster() *kfake.Cluster { return b.c }

// Close stops the broker, flushes its state to the data directory and
// releases the directory.
func (b *Broker) Close() {
	b.c.Close()
	b.lock.Close()
}
