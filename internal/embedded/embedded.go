// Package embedded runs a single-node Kafka-compatible broker in-process
// (franz-go's kfake) persisted to a data directory. It is for development and
// single-host use: one process, one disk, no replication.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookline/hookline/internal/ratelog"
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
	// Logger receives the broker's own errors and warnings (a storage
	// failure such as "permission denied" under DataDir, which clients
	// only see as UNKNOWN_SERVER_ERROR), each kind at most once per
	// LogInterval with a count of the repeats left out. Its informational
	// and debug messages are dropped, so a healthy broker logs nothing.
	// Default slog.Default().
	Logger *slog.Logger
	// LogInterval is how often one kind of broker message may be logged;
	// default 10s.
	LogInterval time.Duration
}

// Broker is a running embedded broker.
type Broker struct {
	c    *kfake.Cluster
	addr string
	lock *os.File // flock on <DataDir>/.lock while the broker runs
	log  *logger
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
		return nil, fmt.Errorf("embedded broker data dir %s: %w: %s", cfg.DataDir, err, dirAdvice(err, "create it"))
	}
	lock, err := lockDir(cfg.DataDir)
	if err != nil {
		ln.Close()
		return nil, err
	}
	handed := false
	bl := newLogger(cfg.Logger, cfg.LogInterval, cfg.DataDir)
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DataDir(cfg.DataDir),
		kfake.WithLogger(bl),
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
		if advice := stateAdvice(err.Error(), cfg.DataDir); advice != "" {
			return nil, fmt.Errorf("start embedded broker (data dir %s): %w: %s", cfg.DataDir, err, advice)
		}
		if advice := storageAdvice(err.Error(), cfg.DataDir); advice != "" {
			return nil, fmt.Errorf("start embedded broker (data dir %s): %w: %s", cfg.DataDir, err, advice)
		}
		return nil, fmt.Errorf("start embedded broker (data dir %s): %w", cfg.DataDir, err)
	}
	return &Broker{c: c, addr: c.ListenAddrs()[0], lock: lock, log: bl}, nil
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
	b.log.rl.Flush() // its last burst of errors is still summarised
}

// dirAdvice says what to do when the data directory cannot be used; what
// names the failed step ("create it", "open its lock file").
func dirAdvice(err error, what string) string {
	switch {
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Sprintf("the user running hookline may not %s: fix the permissions (e.g. chown -R that user the directory), or choose another --data-dir", what)
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, fs.ErrExist):
		return "a file is in the way of the directory: choose another --data-dir, or move the file"
	case errors.Is(err, syscall.ENOSPC):
		return "the disk is full: free space, or choose another --data-dir on another disk"
	}
	return "choose another --data-dir, or fix what the error names"
}

// stateAdvice is the next step when the broker cannot load a state file
// of the data directory (cut short or edited), or "" when msg is not about
// that. The broker writes each such file whole (temporary file, fsync,
// rename), so a damaged one means a disk fault or a hand edit.
func stateAdvice(msg, dataDir string) string {
	if !strings.Contains(msg, "loading persisted state") {
		return ""
	}
	for _, f := range []string{"seq_windows.json", "acls.json", "quotas.json", "sasl.json", "broker_configs.json"} {
		if strings.Contains(msg, "parsing "+f) {
			return fmt.Sprintf("%s is damaged; hookline does not need what it holds: remove it (rm %s) and start again", f, filepath.Join(dataDir, f))
		}
	}
	if strings.Contains(msg, "parsing meta.json") {
		return fmt.Sprintf(`meta.json is damaged: write it anew (echo '{"version":1,"cluster_id":"kfake"}' > %s) and start again`, filepath.Join(dataDir, "meta.json"))
	}
	return fmt.Sprintf("a state file under the data dir %s is damaged (the error names it): restore the directory from a backup; or move it away and start with an empty --data-dir, losing the events it holds", dataDir)
}

// storageAdvice is the next step for a broker message about the data
// directory, or "" when msg is not about storage.
func storageAdvice(msg, dataDir string) string {
	switch {
	case strings.Contains(msg, "permission denied"), strings.Contains(msg, "read-only file system"):
		return fmt.Sprintf("the embedded broker cannot write its data dir %s: make it writable by the user running hookline (e.g. chown -R that user %s), or choose another --data-dir; until then produce requests fail and senders get 503s", dataDir, dataDir)
	case strings.Contains(msg, "not a directory"):
		return fmt.Sprintf("a file is in the way under the data dir %s: move it away, or choose another --data-dir; until then produce requests fail and senders get 503s", dataDir)
	case strings.Contains(msg, "no space left on device"):
		return fmt.Sprintf("the disk of the data dir %s is full: free space, or choose another --data-dir; until then produce requests fail and senders get 503s", dataDir)
	}
	return ""
}

// logger routes kfake's errors and warnings into slog, rate-limited per
// kind (kfake's format string), and drops its info and debug chatter.
type logger struct {
	rl      *ratelog.Limiter
	dataDir string
}

func newLogger(log *slog.Logger, interval time.Duration, dataDir string) *logger {
	if log == nil {
		log = slog.Default()
	}
	return &logger{rl: ratelog.New(log, interval), dataDir: dataDir}
}

func (l *logger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lvl slog.Level
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	default:
		return
	}
	msg := fmt.Sprintf(format, args...)
	var attrs []any
	if advice := storageAdvice(msg, l.dataDir); advice != "" {
		attrs = append(attrs, "next", advice)
	}
	l.rl.Log(context.Background(), lvl, format, "embedded broker: "+msg, attrs...)
}
