package embedded

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/syncbuf"
)

func bufLogger() (*slog.Logger, *syncbuf.Buffer) {
	var buf syncbuf.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// A storage failure inside the broker reaches the process's log with the
// next step, instead of surfacing only as the clients' UNKNOWN_SERVER_ERROR.
func TestStorageFailureIsLogged(t *testing.T) {
	log, buf := bufLogger()
	dir := t.TempDir()
	b, err := Start(Config{Addr: "127.0.0.1:0", DataDir: dir, NoSync: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RecordRetries(1), kgo.RecordDeliveryTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	// A file where the partition's directory goes: every write fails
	// (a read-only directory would not stop root, which runs the tests).
	pdir := filepath.Join(dir, "partitions", "t-0")
	if err := os.RemoveAll(pdir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(pdir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pdir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_ = cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr()
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(buf.String(), "not a directory") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	out := buf.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "embedded broker: persist batch") ||
		!strings.Contains(out, "not a directory") || !strings.Contains(out, "--data-dir") {
		t.Fatalf("the broker's storage failure is not in the log:\n%s", out)
	}
	if n := strings.Count(out, "embedded broker: persist batch mkdir"); n != 1 {
		t.Fatalf("%d lines of one repeated failure within the interval, want 1:\n%s", n, out)
	}
}

// A healthy broker logs nothing: produce, a consumer group, commits.
func TestHealthyBrokerIsQuiet(t *testing.T) {
	log, buf := bufLogger()
	b, err := Start(Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), NoSync: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte{byte(i)}, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for n := 0; n < 20; {
		f := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatal(err)
		}
		n += f.NumRecords()
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	b.Close()
	if buf.String() != "" {
		t.Fatalf("a healthy broker logged:\n%s", buf.String())
	}
}

// The logger keeps errors and warnings, drops info and debug, and lets one
// message of a kind through per interval.
func TestLoggerLevelsAndRate(t *testing.T) {
	log, buf := bufLogger()
	l := newLogger(log, time.Hour, "/data")
	l.Logf(kfake.LogLevelInfo, "client %s request unable to be handled: %v", "c", "x")
	l.Logf(kfake.LogLevelDebug, "RECONCILE SEND")
	for range 5 {
		l.Logf(kfake.LogLevelError, "persist to disk: %v", "open /data/x: permission denied")
	}
	l.Logf(kfake.LogLevelWarn, "load session state: %v", "boom")
	out := buf.String()
	if strings.Contains(out, "unable to be handled") || strings.Contains(out, "RECONCILE") {
		t.Fatalf("info or debug logged:\n%s", out)
	}
	if strings.Count(out, "persist to disk") != 1 || !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "chown") ||
		!strings.Contains(out, "level=WARN") || !strings.Contains(out, "load session state: boom") {
		t.Fatalf("log:\n%s", out)
	}
}

// A data dir that cannot be created says what to do next.
func TestDataDirThatCannotBeCreated(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Start(Config{Addr: "127.0.0.1:0", DataDir: filepath.Join(file, "data"), NoSync: true})
	if err == nil || !strings.Contains(err.Error(), "not a directory") || !strings.Contains(err.Error(), "choose another --data-dir") {
		t.Fatalf("data dir under a file: %v", err)
	}
	if os.Geteuid() == 0 {
		t.Skip("root writes read-only directories: the permission cases need another user")
	}
	ro := t.TempDir()
	if err := os.Chmod(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(ro, 0o755)
	_, err = Start(Config{Addr: "127.0.0.1:0", DataDir: filepath.Join(ro, "data"), NoSync: true})
	if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "fix the permissions") {
		t.Fatalf("mkdir in a read-only dir: %v", err)
	}
	_, err = Start(Config{Addr: "127.0.0.1:0", DataDir: ro, NoSync: true})
	if err == nil || !strings.Contains(err.Error(), ".lock: permission denied") || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("lock file in a read-only dir: %v", err)
	}
}

// The broker's last burst of errors before it closes is still summarised.
func TestCloseSummarisesTheLastBurst(t *testing.T) {
	log, buf := bufLogger()
	b, err := Start(Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), NoSync: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		b.log.Logf(kfake.LogLevelError, "persist to disk: %v", "open /data/x: permission denied")
	}
	b.Close()
	if out := buf.String(); strings.Count(out, "persist to disk") != 2 || !strings.Contains(out, "suppressed=2") {
		t.Fatalf("want the first line and, on close, the last repeat with suppressed=2:\n%s", out)
	}
}
