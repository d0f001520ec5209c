package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/hookline/hookline/internal/dlq"
	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/topics"
)

const dlqExamples = `  # every dead letter of the default pipeline, oldest first
  hookline dlq ls --brokers 127.0.0.1:9092

  # the examples below take the brokers from the environment instead
  export HOOKLINE_BROKERS=127.0.0.1:9092

  # what ran out of retries in the last two hours, as JSON lines for jq
  hookline dlq ls --error-class exhausted --since 2h --json | jq -r .event_id

  # one conversation's dead letters in another pipeline
  hookline dlq ls --base genesys.conversations --conversation 3f2c6a1e-0b6d-4c3e-9a57-1d2f0c8b7e55

  # inspect one: by position (from the table) or by event id (a prefix of 6+ characters works)
  hookline dlq show 3:1200
  hookline dlq show 9c1d0b7e4f2a
  hookline dlq show 3:1200 --raw > body.json`

const dlqUsage = `Usage: hookline dlq ls|show [flags]

  ls     list dead letters (<base>.dlq) as a table or JSON lines, with filters
  show   one dead letter: headers, error and payload (the first 64 KiB; --raw: all)

Reading never changes the dead-letter topic and never waits for new records.
See hookline dlq ls --help and hookline dlq show --help for the flags; to
republish dead letters use hookline replay.

Examples:
%s
`

func runDlq(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 {
		return usagef("which one: hookline dlq ls|show (see --help)")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintf(env.stdout, dlqUsage, dlqExamples)
		return nil
	case "ls", "list":
		return runDlqLs(ctx, env, args[1:])
	case "show":
		return runDlqShow(ctx, env, args[1:])
	default:
		if strings.HasPrefix(args[0], "-") {
			return usagef("the subcommand comes first, then its flags: %s", subcommandFirst("dlq", []string{"ls", "show", "list"}, args))
		}
		return usagef("unknown dlq command %q: use ls or show", args[0])
	}
}

// letterJSON is one line of `dlq ls --json`.
type letterJSON struct {
	Time           string `json:"time"`
	Topic          string `json:"topic"`
	Partition      int32  `json:"partition"`
	Offset         int64  `json:"offset"`
	EventID        string `json:"event_id"`
	ConversationID string `json:"conversation_id,omitempty"`
	Source         string `json:"source"`
	ErrorClass     string `json:"error_class"`
	Attempts       int    `json:"attempts"`
	Error          string `json:"error"`
	ReceiptID      string `json:"receipt_id,omitempty"`
	ReceivedAt     string `json:"received_at,omitempty"`
	ReplayCount    int    `json:"replay_count"`
	Key            string `json:"key"`
	Size           int    `json:"size"`
}

func toJSON(l *dlq.Letter) letterJSON {
	j := letterJSON{
		Time: headers.FormatTime(l.Time()), Topic: l.Topic, Partition: l.Partition, Offset: l.Offset,
		EventID: l.EventID, ConversationID: l.ConversationID, Source: l.Source, ErrorClass: l.ErrorClass,
		Attempts: l.Attempt, Error: l.Error, ReceiptID: l.ReceiptID, ReplayCount: l.ReplayCount,
		Key: string(l.Key), Size: l.Size,
	}
	if !l.ReceivedAt.IsZero() {
		j.ReceivedAt = headers.FormatTime(l.ReceivedAt)
	}
	return j
}

func runDlqLs(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "dlq ls", "dlq ls [flags]", dlqExamples)
	kf := addKafkaFlags(fs)
	base := addBaseFlag(fs)
	ff := addFilterFlags(fs)
	limit := fs.Int("limit", 0, "show at most this many (the oldest that match); 0: all")
	asJSON := fs.Bool("json", false, "print one JSON object per line instead of a table")
	timeout := fs.positiveDuration("timeout", 2*time.Minute, "give up after this long")
	if err := fs.parse(args); err != nil {
		return err
	}
	noteConfigNotRead(env, fs, "dlq ls")
	if *limit < 0 {
		return usagef("--limit %d: must be 0 (all) or positive", *limit)
	}
	names, err := pipelineNames(*base)
	if err != nil {
		return err
	}
	f, err := ff.filter(time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	kc, err := kf.required(env)
	if err != nil {
		return err
	}
	cl, err := dlq.Dial(ctx, kc)
	if err != nil {
		return err
	}
	defer cl.Close()
	letters, matched, err := cl.List(ctx, names.DLQ, f, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		for i := range letters {
			if err := enc.Encode(toJSON(&letters[i])); err != nil {
				return err
			}
		}
	} else if len(letters) > 0 {
		t := newLetterTable(env.stdout, "")
		for i := range letters {
			t.row("", &letters[i])
		}
		t.flush()
	}
	switch {
	case matched == 0:
		fmt.Fprintf(env.stderr, "no dead letters in %s match (%s)\n", names.DLQ, f)
	case len(letters) < matched:
		fmt.Fprintf(env.stderr, "%d of %d matching dead letters in %s shown (--limit %d; narrow with --since/--until)\n", len(letters), matched, names.DLQ, *limit)
	default:
		fmt.Fprintf(env.stderr, "%d dead letter(s) in %s\n", matched, names.DLQ)
	}
	return nil
}

func runDlqShow(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "dlq show", "dlq show <event-id | partition:offset> [flags]", dlqExamples)
	kf := addKafkaFlags(fs)
	base := addBaseFlag(fs)
	raw := fs.Bool("raw", false, "write only the payload, byte for byte (the newest dead letter when an event id has several)")
	timeout := fs.positiveDuration("timeout", 2*time.Minute, "give up after this long")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("give one event id or partition:offset (e.g. hookline dlq show 3:1200); see --help")
	}
	noteConfigNotRead(env, fs, "dlq show")
	names, err := pipelineNames(*base)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	kc, err := kf.required(env)
	if err != nil {
		return err
	}
	cl, err := dlq.Dial(ctx, kc)
	if err != nil {
		return err
	}
	defer cl.Close()
	letters, err := cl.Find(ctx, names.DLQ, pos[0])
	if err != nil {
		return exitCode{1, err.Error()}
	}
	if *raw {
		l := letters[len(letters)-1]
		if len(letters) > 1 {
			fmt.Fprintf(env.stderr, "%d dead letters have this event id; writing the newest (%s)\n", len(letters), l.Pos())
		}
		_, err := env.stdout.Write(l.Value)
		return err
	}
	for i := range letters {
		if i > 0 {
			fmt.Fprintln(env.stdout, "\n"+strings.Repeat("─", 72))
		}
		showLetter(env, &letters[i], i+1, len(letters))
	}
	return nil
}

// showLetter prints one dead letter in full.
func showLetter(env *environment, l *dlq.Letter, n, of int) {
	w := env.stdout
	title := fmt.Sprintf("dead letter %s %s", l.Topic, l.Pos())
	if of > 1 {
		title += fmt.Sprintf("   (%d of %d with event id %s)", n, of, l.EventID)
	}
	fmt.Fprintln(w, field(title))
	fmt.Fprintf(w, "  timestamp  %s\n", headers.FormatTime(l.Timestamp))
	fmt.Fprintf(w, "  key        %q\n", l.Key)

	fmt.Fprintln(w, "\nheaders:")
	width := 0
	for _, h := range l.Headers {
		width = max(width, len(h.Key))
	}
	for _, h := range l.Headers {
		v := string(h.Value)
		if h.Key == "hookline-error" {
			v = abbrev(strings.ReplaceAll(v, "\n", " "), 100) // in full below
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, field(h.Key), field(v))
	}

	fmt.Fprintf(w, "\nerror (%s after %d attempt(s)):\n", field(orDash(l.ErrorClass)), l.Attempt)
	if l.Error == "" {
		fmt.Fprintln(w, "  (none recorded)")
	}
	for _, line := range strings.Split(l.Error, "\n") {
		if line != "" {
			fmt.Fprintf(w, "  %s\n", field(line))
		}
	}

	fmt.Fprintf(w, "\npayload (%s, %d bytes):\n", field(orDash(l.ContentType)), len(l.Value))
	shown, cut := clipLines(formatPayload(l.Value), payloadShown)
	fmt.Fprintln(w, shown)
	if cut {
		base := ""
		if b := strings.TrimSuffix(l.Topic, ".dlq"); b != topics.DefaultBase {
			base = " --base " + b
		}
		fmt.Fprintf(w, "… the rest of the %d-byte payload is not shown; all of it, byte for byte: hookline dlq show %s --raw%s\n", len(l.Value), l.Pos(), base)
	}
}

// payloadShown bounds the payload text dlq show prints: a 1 MiB body, or
// the 4.5 MB hex dump of a binary one, would flood the terminal (--raw
// writes the whole payload).
const payloadShown = 64 << 10

// clipLines cuts s to at most n bytes, at the end of a line in the second
// half of them, else (one long line) at a rune boundary, and reports
// whether it cut.
func clipLines(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	cut := strings.LastIndexByte(s[:n], '\n')
	if cut < n/2 {
		for cut = n; cut > 0 && !utf8.RuneStart(s[cut]); cut-- {
		}
	}
	return s[:cut], true
}

// formatPayload indents JSON, shows other text as is, and binary as a hex
// dump. JSON that is not UTF-8 counts as binary: encoding/json accepts it,
// but its indented form would show U+FFFD instead of the bytes received.
func formatPayload(v []byte) string {
	if len(v) == 0 {
		return "(empty)"
	}
	if utf8.Valid(v) && json.Valid(v) {
		var b bytes.Buffer
		if json.Indent(&b, v, "", "  ") == nil {
			// Valid JSON holds such characters only inside strings, where
			// the escape means the same.
			return escapeUnprintable(b.String())
		}
	}
	// Text as is only when a terminal shows it as it is.
	if s := string(v); utf8.Valid(v) && headers.Printable(s) == s {
		return s
	}
	return strings.TrimRight(hex.Dump(v), "\n")
}

// escapeUnprintable writes what headers.Printable would replace as a JSON
// \uXXXX escape (pairs beyond the BMP).
func escapeUnprintable(s string) string {
	if headers.Printable(s) == s {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if headers.PrintableRune(r) {
			b.WriteRune(r)
			continue
		}
		if r > 0xFFFF {
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, "\\u%04x\\u%04x", r1, r2)
			continue
		}
		fmt.Fprintf(&b, "\\u%04x", r)
	}
	return b.String()
}
