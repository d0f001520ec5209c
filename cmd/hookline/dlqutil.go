package main

// Helpers shared by `hookline dlq` and `hookline replay`: the dead-letter
// filter flags, the letter table, and a progress display.

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/hookline/hookline/internal/dlq"
	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/topics"
)

// stringList is a flag of comma-separated values; repeating it adds more.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// filterFlags are the dead-letter filters of dlq ls and replay.
type filterFlags struct {
	since, until  string
	sources       stringList
	classes       stringList
	conversations stringList
	eventIDs      stringList
}

func addFilterFlags(fs *flagSet) *filterFlags {
	f := &filterFlags{}
	fs.StringVar(&f.since, "since", "", "only dead letters from this time on: RFC 3339, a date, or a duration ago (2h, 3d)")
	fs.StringVar(&f.until, "until", "", "only dead letters before this time: RFC 3339, a date, or a duration ago")
	fs.Var(&f.sources, "source", "only these sources (comma-separated or repeated)")
	fs.Var(&f.classes, "error-class", "only these error classes: exhausted, permanent, malformed, retryable")
	fs.Var(&f.conversations, "conversation", "only these conversation ids")
	fs.Var(&f.eventIDs, "event-id", "only these event ids; as in dlq show, 6+ characters may be a prefix (… copied from a table included)")
	return f
}

// filter resolves the flags; relative times count back from now.
func (f *filterFlags) filter(now time.Time) (dlq.Filter, error) {
	out := dlq.Filter{
		Sources:         f.sources,
		ErrorClasses:    f.classes,
		ConversationIDs: f.conversations,
		EventIDs:        f.eventIDs,
	}
	var err error
	if f.since != "" {
		if out.Since, err = dlq.ParseTimeBound(f.since, now); err != nil {
			return out, usagef("--since: %v", err)
		}
	}
	if f.until != "" {
		if out.Until, err = dlq.ParseTimeBound(f.until, now); err != nil {
			return out, usagef("--until: %v", err)
		}
	}
	if err := out.Validate(); err != nil {
		return out, usagef("%v", err)
	}
	return out, nil
}

// addBaseFlag adds --base, the pipeline whose dead letters are read.
func addBaseFlag(fs *flagSet) *string {
	return fs.String("base", topics.DefaultBase, "base topic name of the pipeline (dead letters are in <base>.dlq)")
}

func pipelineNames(base string) (topics.Names, error) {
	if err := topics.ValidateBase(base); err != nil {
		return topics.Names{}, usagef("--base: %v", err)
	}
	return topics.For(base, 0), nil
}

// parseInterspersed parses flags before and after positional arguments
// (`dlq show 3:17 --base x` and `dlq show --base x 3:17`) and returns the
// positionals.
func parseInterspersed(fs *flagSet, args []string) ([]string, error) {
	var pos []string
	fs.positionals = true
	for {
		if err := fs.parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// fromCommandLine reports whether flag name was given on the command line
// (not only through its HOOKLINE_* variable).
func fromCommandLine(fs *flagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// letterTime formats a dead letter's time for the table.
func letterTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// abbrev shortens s to n characters with an ellipsis.
func abbrev(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// field is a value from a record's headers, which senders and downstream
// services fill, as one printable line: nothing in it may drive the
// terminal (headers.Printable), and a newline or tab would fake lines or
// columns.
func field(s string) string {
	return strings.NewReplacer("\n", " ", "\t", " ").Replace(headers.Printable(s))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// letterTable writes dead letters as an aligned table, its header before
// the first row. firstColumn, when not empty, names an extra first column
// (replay --dry-run: what would happen).
type letterTable struct {
	tw          *tabwriter.Writer
	firstColumn string
	rows        int
}

func newLetterTable(w io.Writer, firstColumn string) *letterTable {
	return &letterTable{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0), firstColumn: firstColumn}
}

func (t *letterTable) row(first string, l *dlq.Letter) {
	if t.rows == 0 {
		if t.firstColumn != "" {
			fmt.Fprintf(t.tw, "%s\t", t.firstColumn)
		}
		fmt.Fprintln(t.tw, "TIME\tPOSITION\tEVENT ID\tCONVERSATION\tSOURCE\tCLASS\tATTEMPTS\tERROR")
	}
	t.rows++
	if t.firstColumn != "" {
		fmt.Fprintf(t.tw, "%s\t", first)
	}
	fmt.Fprintf(t.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n",
		letterTime(l.Time()), l.Pos(), field(orDash(abbrev(l.EventID, 24))), field(orDash(abbrev(l.ConversationID, 36))),
		field(orDash(l.Source)), field(orDash(l.ErrorClass)), l.Attempt, field(abbrev(l.ErrorLine(), 80)))
}

func (t *letterTable) flush() { t.tw.Flush() }

// isTerminal reports whether w is a character device (a terminal). It looks
// at the writer the environment gives, so tests can hand in anything.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Stat() (os.FileInfo, error) })
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress shows how far a long replay is: a bar redrawn in place when
// stderr is a terminal, else a plain line every lineEvery.
type progress struct {
	w         io.Writer
	tty       bool
	label     string
	lineEvery time.Duration

	mu      sync.Mutex
	total   int
	done    int
	skipped int
	start   time.Time
	last    time.Time // last draw
	shown   bool      // progress was shown at least once
	drawn   bool      // a bar is on screen
}

func newProgress(env *environment, label string) *progress {
	return &progress{w: env.stderr, tty: isTerminal(env.stderr), label: label, lineEvery: 5 * time.Second, start: time.Now()}
}

// begin sets the total and restarts the clock.
func (p *progress) begin(total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total, p.start = total, time.Now()
}

// update records progress and redraws when due.
func (p *progress) update(done, skipped int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.skipped = done, skipped
	now := time.Now()
	// Short replays show nothing: a bar after a quarter second, a plain
	// line only once the replay has run for lineEvery, then every lineEvery.
	every, after := p.lineEvery, p.lineEvery
	if p.tty {
		every, after = 100*time.Millisecond, 250*time.Millisecond
	}
	if now.Sub(p.start) < after || (now.Sub(p.last) < every && done < p.total) {
		return
	}
	if done >= p.total && !p.shown {
		return // finished before any progress was shown
	}
	p.last = now
	p.shown = true
	p.drawLocked(now)
}

// rate is records per second so far.
func (p *progress) rateLocked(now time.Time) float64 {
	secs := now.Sub(p.start).Seconds()
	if secs <= 0 {
		return 0
	}
	return float64(p.done) / secs
}

func (p *progress) drawLocked(now time.Time) {
	if p.total == 0 {
		return
	}
	rate := p.rateLocked(now)
	eta := ""
	if rate > 0 && p.done < p.total {
		eta = " ETA " + time.Duration(float64(p.total-p.done)/rate*float64(time.Second)).Round(time.Second).String()
	}
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %d/%d done (%d skipped), %.1f/s%s\n", p.label, p.done, p.total, p.skipped, rate, eta)
		return
	}
	const width = 30
	filled := width * p.done / p.total
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	fmt.Fprintf(p.w, "\r\033[K%s [%s] %d/%d %3.0f%% %.1f/s%s", p.label, bar, p.done, p.total, 100*float64(p.done)/float64(p.total), rate, eta)
	p.drawn = true
}

// printf writes a line to w (stdout) without tearing the bar: the bar is
// cleared first and redrawn on the next update.
func (p *progress) printf(w io.Writer, format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
		p.last = time.Time{}
	}
	fmt.Fprintf(w, format, a...)
}

// finish clears the bar from the terminal.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}
