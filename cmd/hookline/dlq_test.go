package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/internal/syncbuf"
	"github.com/hookline/hookline/topics"
)

// ttyBuffer is a bytes.Buffer that says it is a terminal.
type ttyBuffer struct{ bytes.Buffer }

type ttyInfo struct{ os.FileInfo }

func (ttyInfo) Mode() os.FileMode { return os.ModeDevice | os.ModeCharDevice }

func (*ttyBuffer) Stat() (os.FileInfo, error) { return ttyInfo{}, nil }

func TestProgressBarOnTerminalLinesOtherwise(t *testing.T) {
	var tty ttyBuffer
	var out bytes.Buffer
	env := &environment{stdout: &out, stderr: &tty}
	p := newProgress(env, "replay")
	if !p.tty || isTerminal(&out) {
		t.Fatal("terminal detection")
	}
	p.begin(10)
	p.start = time.Now().Add(-time.Second) // past the quiet start
	p.update(5, 1)
	if s := tty.String(); !strings.HasPrefix(s, "\r\033[K") || !strings.Contains(s, "5/10") || !strings.Contains(s, "50%") {
		t.Fatalf("bar: %q", s)
	}
	p.printf(&out, "skip 0:1\n")
	if !strings.HasSuffix(tty.String(), "\r\033[K") || out.String() != "skip 0:1\n" {
		t.Fatalf("a line must clear the bar first: %q / %q", tty.String(), out.String())
	}
	p.update(10, 1)
	p.finish()
	if !strings.Contains(tty.String(), "10/10") || !strings.HasSuffix(tty.String(), "\r\033[K") {
		t.Fatalf("finish: %q", tty.String())
	}

	var plain bytes.Buffer
	p = newProgress(&environment{stdout: &out, stderr: &plain}, "replay")
	p.begin(500)
	p.update(1, 0)
	if plain.Len() != 0 {
		t.Fatalf("a plain line at once: %q", plain.String())
	}
	p.start = time.Now().Add(-6 * time.Second)
	p.update(300, 2)
	p.update(301, 2) // within lineEvery of the last line: quiet
	p.update(500, 2)
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "300/500 done (2 skipped)") || !strings.Contains(lines[1], "500/500") || strings.Contains(plain.String(), "\r") {
		t.Fatalf("plain lines: %q", plain.String())
	}

	// A short replay shows nothing.
	plain.Reset()
	p = newProgress(&environment{stdout: &out, stderr: &plain}, "replay")
	p.begin(3)
	p.update(3, 0)
	p.finish()
	if plain.Len() != 0 {
		t.Fatalf("short replay: %q", plain.String())
	}
}

func TestReplayRefusesBeforeConnecting(t *testing.T) {
	cases := []struct {
		vars map[string]string
		args []string
		want string
	}{
		{nil, []string{"replay"}, "--all"},
		{nil, []string{"replay", "--limit", "10"}, "--all"},
		{map[string]string{"HOOKLINE_ALL": "true"}, []string{"replay"}, "HOOKLINE_ALL is set in the environment"},
		{map[string]string{"HOOKLINE_FORCE": "1"}, []string{"replay", "--all"}, "HOOKLINE_FORCE"},
		{nil, []string{"replay", "--all", "--to", "dlq"}, "--to \"dlq\""},
		{nil, []string{"replay", "--all", "--resume-from", "3"}, "partition:offset"},
		{nil, []string{"replay", "--all", "--rate", "-1"}, "--rate"},
		{nil, []string{"replay", "--all", "--delivery-timeout", "500ms"}, "--delivery-timeout"},
		{nil, []string{"replay", "--error-class", "exhaused"}, "unknown error class"},
		{nil, []string{"replay", "--since", "yesterday"}, "--since"},
		{nil, []string{"replay", "--all", "--base", "bad name"}, "--base"},
		{nil, []string{"dlq"}, "ls|show"},
		{nil, []string{"dlq", "rm"}, "unknown dlq command"},
		{nil, []string{"dlq", "show"}, "give one event id"},
		{nil, []string{"dlq", "ls", "extra"}, "unexpected argument"},
		// No brokers: where the embedded broker's address is, no Go API.
		{nil, []string{"dlq", "ls"}, "`bootstrap:` line it printed (127.0.0.1:9092"},
		{nil, []string{"dlq", "show", "3:17"}, "`bootstrap:` line"},
		{nil, []string{"replay", "--all"}, "`bootstrap:` line"},
		{nil, []string{"topics", "check"}, "`bootstrap:` line"},
		{map[string]string{"HOOKLINE_SECRET": "x"}, []string{"serve"}, "`hookline run` starts an embedded broker without them"},
		{nil, []string{"consume", "--handler-url", "http://127.0.0.1:1/x"}, "`bootstrap:` line"},
	}
	for _, c := range cases {
		code, _, errOut := call(t, c.vars, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v (env %v): exit %d, stderr %q; want 2 and %q", c.args, c.vars, code, errOut, c.want)
		}
	}
	// HOOKLINE_* still works for the other flags, e.g. a filter.
	code, _, errOut := call(t, map[string]string{"HOOKLINE_ERROR_CLASS": "exhausted", "HOOKLINE_BROKERS": "127.0.0.1:1"}, "replay", "--dry-run")
	if code != 1 || strings.Contains(errOut, "no scope") {
		t.Errorf("HOOKLINE_ERROR_CLASS as the scope: exit %d %s", code, errOut)
	}
}

func TestReplayTarget(t *testing.T) {
	for to, want := range map[string]string{"": "b", "main": "b", "b": "b", "retry-1": "b.retry-1", "retry-12": "b.retry-12", "b.retry-2": "b.retry-2"} {
		got, retry, err := replayTarget("b", to)
		if err != nil || got != want || retry != strings.Contains(want, "retry") {
			t.Errorf("--to %q: %q %v %v, want %q", to, got, retry, err, want)
		}
	}
	for _, bad := range []string{"dlq", "b.dlq", "b.dedup", "retry-0", "retry-x", "other.retry-1"} {
		if _, _, err := replayTarget("b", bad); err == nil {
			t.Errorf("--to %q accepted", bad)
		}
	}
}

func TestFormatPayload(t *testing.T) {
	if got := formatPayload([]byte(`{"a":[1,2]}`)); got != "{\n  \"a\": [\n    1,\n    2\n  ]\n}" {
		t.Errorf("json: %q", got)
	}
	if got := formatPayload([]byte("not json {")); got != "not json {" {
		t.Errorf("text: %q", got)
	}
	if got := formatPayload([]byte{0, 1, 2, 0xff}); !strings.Contains(got, "00 01 02 ff") {
		t.Errorf("binary: %q", got)
	}
	if got := formatPayload(nil); got != "(empty)" {
		t.Errorf("empty: %q", got)
	}
	// What a terminal would act on: escaped inside JSON strings (same
	// meaning), a hex dump for text.
	if got := formatPayload([]byte("{\"a\":\"x\u009b31m\u202ey\U0001F600\"}")); got != "{\n  \"a\": \"x\\u009b31m\\u202ey\U0001F600\"\n}" {
		t.Errorf("json with controls: %q", got)
	}
	// JSON that is not UTF-8 (a Latin-1 sender): encoding/json takes it,
	// but indenting it would print U+FFFD escapes for the real bytes. The
	// receiver dead-lettered it as "invalid UTF-8": show the bytes.
	latin1 := []byte("{\"name\":\"Jos\xe9\"}")
	if got := formatPayload(latin1); strings.Contains(got, "fffd") || !strings.Contains(got, " e9 ") {
		t.Errorf("JSON in Latin-1: %q, want a hex dump with byte e9", got)
	}
	for _, text := range []string{"over\rwrite", "bidi \u202e", "del \x7f", "c1 \u009b"} {
		if got := formatPayload([]byte(text)); got == text || !strings.Contains(got, "|") {
			t.Errorf("text %q printed as is: %q", text, got)
		}
	}
}

// replayCluster is an in-process Kafka with pipeline t.events (one
// partition, three retry tiers): a dead letter of each event id in ids, and
// the ones in processed marked processed in the dedup topic.
func replayCluster(t *testing.T, ids []string, processed ...string) string {
	t.Helper()
	c := fakeKafka(t)
	plan, err := topics.NewPlan(topics.Config{Base: "t.events", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kafkaconf.NewClient(ctx, kafkaconf.Config{Brokers: c.ListenAddrs()}, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := topics.Create(ctx, kadm.NewClient(cl), plan); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var recs []*kgo.Record
	for _, id := range ids {
		hs := []kgo.RecordHeader{
			{Key: headers.EventID, Value: []byte(id)},
			{Key: headers.Source, Value: []byte("genesys")},
			{Key: headers.ErrorClass, Value: []byte(headers.ClassExhausted)},
			{Key: headers.FailedAt, Value: []byte(headers.FormatTime(now))},
			{Key: headers.Error, Value: []byte("handler answered 500")},
		}
		recs = append(recs, &kgo.Record{Topic: plan.Names.DLQ, Key: []byte(id), Value: []byte(`{}`), Headers: hs})
	}
	for _, id := range processed {
		v := fmt.Sprintf(`{"outcome":"processed","at":%q}`, headers.FormatTime(now))
		recs = append(recs, &kgo.Record{Topic: plan.Names.Dedup, Key: []byte(id), Value: []byte(v)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(c.ListenAddrs(), ",")
}

func TestReplayChecksToBeforeReading(t *testing.T) {
	brokers := replayCluster(t, []string{"ev-1"})
	code, out, errOut := call(t, nil, "replay", "--brokers", brokers, "--base", "t.events", "--all", "--to", "retry-9")
	if code != 2 || !strings.Contains(errOut, "--to retry-9") || !strings.Contains(errOut, "retry-1, retry-2, retry-3") {
		t.Fatalf("--to retry-9 with 3 tiers: exit %d %q; want 2 naming the tiers", code, errOut)
	}
	if strings.Contains(out, "matched") {
		t.Fatalf("counts printed before the refusal:\n%s", out)
	}
	// An existing tier is fine (dry run: nothing written).
	if code, out, errOut := call(t, nil, "replay", "--brokers", brokers, "--base", "t.events", "--all", "--to", "retry-3", "--dry-run"); code != 0 || !strings.Contains(out, "would replay 1") {
		t.Fatalf("--to retry-3: exit %d\n%s%s", code, out, errOut)
	}
	// A pipeline that does not exist: its error, without "matched 0".
	code, out, errOut = call(t, nil, "replay", "--brokers", brokers, "--base", "nope.events", "--all")
	if code != 1 || !strings.Contains(errOut, "nope.events.dlq does not exist") || strings.Contains(out, "matched") {
		t.Fatalf("missing pipeline: exit %d\n%s%s", code, out, errOut)
	}
}

func TestReplayDryRunTableIsNarrow(t *testing.T) {
	brokers := replayCluster(t, []string{"ev-new", "ev-done-1234567890", "ev-new"}, "ev-done-1234567890")
	code, out, errOut := call(t, nil, "replay", "--brokers", brokers, "--base", "t.events", "--all", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var actions []string
	for _, line := range strings.Split(out, "\n") {
		for _, a := range []string{"replay ", "skip (processed) ", "skip (duplicate) "} {
			if strings.HasPrefix(line, a) {
				actions = append(actions, strings.TrimSpace(a))
			}
		}
		if strings.HasPrefix(line, "ACTION") && strings.Index(line, "TIME") > len("skip (processed)")+2 {
			t.Errorf("ACTION column wider than its longest value: %q", line)
		}
	}
	// ev-new has two dead letters: the newer (0:2) is replayed.
	if strings.Join(actions, ",") != "skip (duplicate),skip (processed),replay" {
		t.Fatalf("actions %v:\n%s", actions, out)
	}
	// The details the cells leave out follow the table.
	if !strings.Contains(out, "skip (processed): the dedup state says") || !regexp.MustCompile(`0:1  event ev-done-1234567890  processed 20\d\d-`).MatchString(out) ||
		!strings.Contains(out, "skip (duplicate): a newer dead letter") {
		t.Fatalf("notes below the table:\n%s", out)
	}
}

func TestReplayAcceptsEventIDPrefix(t *testing.T) {
	brokers := replayCluster(t, []string{"9c1d0b7e4f2a0011", "77aa00"})
	code, out, errOut := call(t, nil, "replay", "--brokers", brokers, "--base", "t.events", "--event-id", "9c1d0b7e4f…", "--dry-run")
	if code != 0 || !strings.Contains(out, "matched 1, would replay 1") || !strings.Contains(out, "9c1d0b7e4f2a0011") {
		t.Fatalf("prefix with an ellipsis: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = call(t, nil, "replay", "--help")
	if code != 0 || !strings.Contains(out, "may be a prefix") {
		t.Fatalf("replay --help does not say --event-id takes a prefix:\n%s%s", out, errOut)
	}
}

func TestDlqFlagsBeforeSubcommand(t *testing.T) {
	code, _, errOut := call(t, nil, "dlq", "--brokers", "127.0.0.1:1", "ls", "--since", "2h")
	if code != 2 || !strings.Contains(errOut, "the subcommand comes first") || !strings.Contains(errOut, "hookline dlq ls --brokers 127.0.0.1:1 --since 2h") {
		t.Fatalf("exit %d %q", code, errOut)
	}
	if code, _, errOut := call(t, nil, "dlq", "--base", "x"); code != 2 || !strings.Contains(errOut, "hookline dlq ls|show|list [flags]") {
		t.Fatalf("no subcommand: exit %d %q", code, errOut)
	}
	if code, _, errOut := call(t, nil, "topics", "--brokers", "127.0.0.1:1", "check"); code != 2 || !strings.Contains(errOut, "hookline topics check --brokers 127.0.0.1:1") {
		t.Fatalf("topics: exit %d %q", code, errOut)
	}
}

func TestHelpWithoutFlagsHasNoFlagsHeader(t *testing.T) {
	code, out, _ := call(t, nil, "version", "--help")
	if code != 0 || strings.Contains(out, "Flags") || !strings.Contains(out, "Examples:") {
		t.Fatalf("version --help: exit %d\n%s", code, out)
	}
	if _, out, _ := call(t, nil, "send", "--help"); !strings.Contains(out, "Flags (each also read from the environment variable in brackets):") {
		t.Fatalf("send --help lost its flags header:\n%s", out)
	}
}

// putDLQ writes recs to t.events.dlq of the cluster at brokers (see
// replayCluster).
func putDLQ(t *testing.T, brokers string, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kafkaconf.NewClient(ctx, kafkaconf.Config{Brokers: strings.Split(brokers, ",")})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, r := range recs {
		r.Topic = "t.events.dlq"
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// Header values come from senders and downstream services: dlq ls, dlq
// show and replay --dry-run print them without anything a terminal would
// act on.
func TestDLQOutputIsTerminalSafe(t *testing.T) {
	brokers := replayCluster(t, nil)
	evil := "\x1b[2J\x1b[31mFAKE\rlevel=ERROR\u202e\x9b\nfake-header  x"
	hs := []kgo.RecordHeader{
		{Key: headers.EventID, Value: []byte("ev-evil")},
		{Key: headers.Source, Value: []byte("src" + evil)},
		{Key: headers.ErrorClass, Value: []byte(headers.ClassPermanent + evil)},
		{Key: headers.FailedAt, Value: []byte(headers.FormatTime(time.Now()))},
		{Key: headers.Error, Value: []byte("POST http://h/p: status 422: " + evil)},
		{Key: "x-other" + evil, Value: []byte(evil)},
	}
	putDLQ(t, brokers, &kgo.Record{Key: []byte("k"), Value: []byte(`{}`), Headers: hs})
	for _, args := range [][]string{
		{"dlq", "ls", "--base", "t.events"},
		{"dlq", "show", "ev-evil", "--base", "t.events"},
		{"replay", "--base", "t.events", "--all", "--dry-run"},
		{"replay", "--base", "t.events", "--all", "--verbose"},
	} {
		code, out, errOut := call(t, nil, append(args, "--brokers", brokers)...)
		if code != 0 || !strings.Contains(out, "?[2J?[31mFAKE?level=ERROR") {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		if strings.ContainsAny(out, "\x1b\r\u202e\u009b") {
			t.Errorf("%v prints terminal controls: %q", args, out)
		}
		// (dlq show prints the error text below its own heading, a line
		// per line of it.)
		head, _, _ := strings.Cut(out, "\nerror (")
		for _, line := range strings.Split(head, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "fake-header") {
				t.Errorf("%v: a newline in a header value starts a line of its own: %q", args, out)
			}
		}
	}
}

// replay --all leaves malformed dead letters out and says how to select
// them; --error-class malformed selects them.
func TestReplayAllLeavesOutMalformed(t *testing.T) {
	brokers := replayCluster(t, []string{"ev-1"})
	hs := []kgo.RecordHeader{
		{Key: headers.EventID, Value: []byte("mf-1")},
		{Key: headers.Source, Value: []byte("genesys")},
		{Key: headers.ErrorClass, Value: []byte(headers.ClassMalformed)},
		{Key: headers.FailedAt, Value: []byte(headers.FormatTime(time.Now()))},
	}
	putDLQ(t, brokers, &kgo.Record{Key: []byte("mf-1"), Value: []byte("not json"), Headers: hs})
	const note = "1 malformed dead letter(s) left out; select them with --error-class malformed"
	for _, dry := range []bool{true, false} {
		args := []string{"replay", "--brokers", brokers, "--base", "t.events", "--all"}
		if dry {
			args = append(args, "--dry-run")
		}
		code, out, errOut := call(t, nil, args...)
		if code != 0 || !strings.Contains(out, "matched 1,") || !strings.Contains(out, note) || strings.Contains(out, "mf-1") {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	code, out, errOut := call(t, nil, "replay", "--brokers", brokers, "--base", "t.events", "--error-class", "malformed", "--dry-run")
	if code != 0 || !strings.Contains(out, "matched 1, would replay 1") || !strings.Contains(out, "mf-1") || strings.Contains(out, "left out") {
		t.Fatalf("--error-class malformed: exit %d\n%s%s", code, out, errOut)
	}
	if _, out, _ := call(t, nil, "replay", "--help"); !strings.Contains(out, "except malformed ones") {
		t.Fatalf("replay --help does not say --all leaves malformed out:\n%s", out)
	}
	if code, _, errOut := call(t, nil, "replay", "--brokers", brokers, "--base", "t.events"); code != 2 || !strings.Contains(errOut, "but the malformed ones") {
		t.Fatalf("replay without a scope: exit %d, %s; want 2 and that --all leaves malformed out", code, errOut)
	}
	// A prefix too short to be one finds nothing, and says why.
	code, out, errOut = call(t, nil, "replay", "--brokers", brokers, "--base", "t.events", "--event-id", "mf-", "--dry-run")
	if code != 0 || !strings.Contains(out, "matched 0") || !strings.Contains(out, "--event-id mf- is shorter than 6 characters") {
		t.Fatalf("short --event-id: exit %d\n%s%s", code, out, errOut)
	}
	if _, out, _ := call(t, nil, "replay", "--brokers", brokers, "--base", "t.events", "--event-id", "mf-...", "--dry-run"); !strings.Contains(out, "--event-id mf-... is shorter than 6 characters") {
		t.Fatalf("a short --event-id copied with its ...: no note:\n%s", out)
	}
	if _, out, _ := call(t, nil, "replay", "--brokers", brokers, "--base", "t.events", "--event-id", "nothing-like-it", "--dry-run"); strings.Contains(out, "shorter than") {
		t.Fatalf("a long --event-id that matches nothing got the short-prefix note:\n%s", out)
	}
}

// A replay cut by --limit says how many matched dead letters it left for a
// later run, so that the counts add up.
func TestReplayLimitSaysWhatIsLeft(t *testing.T) {
	brokers := replayCluster(t, []string{"ev-1", "ev-2", "ev-3"})
	code, out, errOut := call(t, nil, "replay", "--brokers", brokers, "--base", "t.events", "--all", "--limit", "1", "--dry-run")
	if code != 0 || !strings.Contains(out, "matched 3, would replay 1, would skip 0 (2 beyond --limit 1)") {
		t.Fatalf("--limit 1 of 3, dry run: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = call(t, nil, "replay", "--brokers", brokers, "--base", "t.events", "--all", "--limit", "1")
	if code != 0 || !strings.Contains(out, "matched 3, replayed 1, skipped 0 (2 left for a later run by --limit 1)") {
		t.Fatalf("--limit 1 of 3: exit %d\n%s%s", code, out, errOut)
	}
}

// A replay refused before it selected anything prints its error only: no
// plan header on stdout.
func TestReplayRefusedPrintsNoPlanHeader(t *testing.T) {
	brokers := replayCluster(t, []string{"ev-1"})
	code, out, errOut := call(t, nil, "replay", "--brokers", brokers, "--base", "nope.events", "--all", "--dry-run")
	if code != 1 || out != "" || !strings.Contains(errOut, "nope.events.dlq does not exist") {
		t.Fatalf("missing pipeline: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	code, out, _ = call(t, nil, "replay", "--brokers", brokers, "--base", "t.events", "--all", "--dry-run")
	if code != 0 || !strings.HasPrefix(out, "dry run: t.events.dlq → t.events (all dead letters)\n") {
		t.Fatalf("the header is gone: exit %d\n%s", code, out)
	}
}

// dlq ls --json writes times as the headers do: RFC 3339 with exactly three
// digits of milliseconds, so they line up and sort as text.
func TestDlqJSONTimesHaveMilliseconds(t *testing.T) {
	brokers := replayCluster(t, nil)
	var recs []*kgo.Record
	for i, at := range []string{"2026-03-01T10:00:11.820Z", "2026-03-01T10:00:11.811Z", "2026-03-01T10:00:12.000Z"} {
		hs := []kgo.RecordHeader{
			{Key: headers.EventID, Value: []byte(fmt.Sprint("ev-", i))},
			{Key: headers.ErrorClass, Value: []byte(headers.ClassExhausted)},
			{Key: headers.ReceivedAt, Value: []byte(at)},
			{Key: headers.FailedAt, Value: []byte(at)},
		}
		recs = append(recs, &kgo.Record{Key: []byte("k"), Value: []byte(`{}`), Headers: hs})
	}
	putDLQ(t, brokers, recs...)
	code, out, errOut := call(t, nil, "dlq", "ls", "--brokers", brokers, "--base", "t.events", "--json")
	if code != 0 {
		t.Fatalf("exit %d %s", code, errOut)
	}
	stamp := regexp.MustCompile(`"(time|received_at)":"([^"]*)"`)
	ms := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	n := 0
	for _, m := range stamp.FindAllStringSubmatch(out, -1) {
		n++
		if !ms.MatchString(m[2]) {
			t.Errorf("%s %q is not RFC 3339 with 3-digit milliseconds", m[1], m[2])
		}
	}
	if n != 6 || !strings.Contains(out, `"time":"2026-03-01T10:00:11.820Z"`) {
		t.Fatalf("%d times in\n%s", n, out)
	}
}

// replay --help says what an operator gets wrong otherwise: the write
// order, that a retry tier is not jumped, and that a second copy can run.
func TestReplayHelpSaysOrderAndRetryTierFIFO(t *testing.T) {
	_, out, _ := call(t, nil, "replay", "--help")
	for _, want := range []string{"not the order they", "due at once, handled after the records already waiting", "handler run twice"} {
		if !strings.Contains(out, want) {
			t.Errorf("replay --help does not say %q", want)
		}
	}
	if strings.Contains(out, "handled at once") {
		t.Error("replay --help still says a retry tier handles a replay at once")
	}
}

// The first signal during a replay says what a replay does: no new writes,
// then where to resume; not the consumer's "in-flight events are then
// redelivered".
func TestReplayStopNote(t *testing.T) {
	var ids []string
	for i := range 6 {
		ids = append(ids, fmt.Sprint("ev-", i))
	}
	brokers := replayCluster(t, ids)
	var out, errb syncbuf.Buffer
	env := &environment{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), getenv: func(string) string { return "" }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- dispatch(ctx, env, []string{"replay", "--brokers", brokers, "--base", "t.events", "--all", "--rate", "2"})
	}()
	for !strings.Contains(out.String(), "replay: t.events.dlq") { // planned: writing now
		time.Sleep(10 * time.Millisecond)
	}
	env.noteStop() // what main does on the first signal
	cancel()
	if c := <-code; c != 1 {
		t.Fatalf("exit %d\n%s%s", c, out.String(), errb.String())
	}
	e := errb.String()
	if !strings.Contains(e, "hookline replay: stopping: no new writes") || strings.Contains(e, "redelivered") || !strings.Contains(e, "--resume-from") {
		t.Fatalf("stderr:\n%s", e)
	}
}

// A 1 MiB body (and the 4.5 MB hex dump of a binary one) floods the
// terminal: dlq show prints the start of a large payload and says how to
// get all of it.
func TestDlqShowCutsAHugePayload(t *testing.T) {
	brokers := replayCluster(t, nil)
	big := `{"a":"` + strings.Repeat("x", 300<<10) + `","secret":"tail"}`
	bin := bytes.Repeat([]byte{0xff, 0x00, 0x1b}, 100<<10)
	for id, v := range map[string][]byte{"ev-json": []byte(big), "ev-bin": bin} {
		putDLQ(t, brokers, &kgo.Record{Key: []byte("k"), Value: v, Headers: []kgo.RecordHeader{
			{Key: headers.EventID, Value: []byte(id)},
			{Key: headers.ErrorClass, Value: []byte(headers.ClassPermanent)},
		}})
	}
	for _, id := range []string{"ev-json", "ev-bin"} {
		code, out, errOut := call(t, nil, "dlq", "show", id, "--base", "t.events", "--brokers", brokers)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", id, code, errOut)
		}
		if len(out) > 80<<10 || strings.Contains(out, "tail") {
			t.Errorf("%s: printed %d bytes, the whole payload", id, len(out))
		}
		if id == "ev-json" && !strings.Contains(out, strings.Repeat("x", 32<<10)) {
			t.Errorf("%s: the start of the one long line is not shown", id)
		}
		if !strings.Contains(out, "payload is not shown") || !strings.Contains(out, "hookline dlq show 0:") || !strings.Contains(out, "--raw --base t.events") {
			t.Errorf("%s: does not say how to get the rest:\n%s", id, out[max(0, len(out)-400):])
		}
		code, raw, _ := call(t, nil, "dlq", "show", id, "--base", "t.events", "--brokers", brokers, "--raw")
		if code != 0 || (id == "ev-json" && raw != big) || (id == "ev-bin" && raw != string(bin)) {
			t.Errorf("%s --raw: exit %d, %d bytes", id, code, len(raw))
		}
	}
}

// Replaying again what was replayed and processed skips every dead letter:
// a line each would bury the summary under thousands of them (10,000 in a
// probe). Without --verbose a replay prints the first skips and a count.
func TestReplayPrintsABoundedNumberOfSkips(t *testing.T) {
	var ids []string
	for i := range 50 {
		ids = append(ids, fmt.Sprintf("ev-%02d", i))
	}
	brokers := replayCluster(t, ids, ids...)
	code, out, errOut := call(t, nil, "replay", "--base", "t.events", "--all", "--brokers", brokers)
	if code != 0 || !strings.Contains(out, "matched 50, replayed 0, skipped 50 (50 already processed)") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if n := strings.Count(out, "\nskip "); n > 20 || !strings.Contains(out, "30 more skip(s) not listed; --verbose lists every one") {
		t.Errorf("%d skip lines:\n%s", n, out)
	}
	code, out, _ = call(t, nil, "replay", "--base", "t.events", "--all", "--brokers", brokers, "--verbose")
	if n := strings.Count(out, "\nskip "); code != 0 || n != 50 || strings.Contains(out, "not listed") {
		t.Errorf("--verbose: exit %d, %d skip lines:\n%s", code, n, out)
	}
}
