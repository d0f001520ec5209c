package main

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hookline/hookline/internal/dlq"
	"github.com/hookline/hookline/internal/headers"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/topics"
)

const replayExamples = `  # see what would be replayed, write nothing (the brokers: --brokers, or
  # HOOKLINE_BROKERS as in the examples after this one)
  hookline replay --brokers 127.0.0.1:9092 --error-class exhausted --since 6h --dry-run
  export HOOKLINE_BROKERS=127.0.0.1:9092

  # the handler is fixed: replay what ran out of retries, 20 events per second
  hookline replay --error-class exhausted --rate 20

  # one conversation, through the retry tiers instead of the main topic
  hookline replay --conversation 3f2c6a1e-0b6d-4c3e-9a57-1d2f0c8b7e55 --to retry-1

  # in batches: the oldest 1000 not yet processed; run it again for the next 1000
  hookline replay --all --limit 1000

  # malformed dead letters (bodies the receiver could not parse) only when named
  hookline replay --error-class malformed --dry-run

  # a replay that stopped part way prints where; finish it with the same flags plus
  hookline replay --error-class exhausted --resume-from 3:1200

  # replay writes in dead-letter order: the order events failed, not the order they
  # arrived. One conversation in arrival order: one event at a time, oldest first
  hookline dlq ls --conversation 3f2c6a1e-0b6d-4c3e-9a57-1d2f0c8b7e55 --json |
    jq -rs 'sort_by(.received_at) | .[].event_id' | awk '!seen[$0]++' |
    while read -r id; do hookline replay --event-id "$id" || break; done

  # dedup skips an event only once it was processed: running the same replay again
  # before the consumer handled the first copies can make the handler run twice
  # (when a first copy fails again); after a stop, use --resume-from, not a rerun`

// skipLines is how many skipped dead letters a replay lists without
// --verbose: a replay run again after its events were processed skips
// every one, and a line each would bury the summary.
const skipLines = 20

var retryTarget = regexp.MustCompile(`^retry-([1-9][0-9]?)$`)

// replayTarget resolves --to: main (default), retry-K, or a full topic name
// of the pipeline.
func replayTarget(base, to string) (topic string, retry bool, err error) {
	switch {
	case to == "" || to == "main" || to == base:
		return base, false, nil
	case retryTarget.MatchString(to):
		return base + "." + to, true, nil
	case strings.HasPrefix(to, base+".") && retryTarget.MatchString(strings.TrimPrefix(to, base+".")):
		return to, true, nil
	}
	return "", false, usagef("--to %q: use main (the default), retry-K (e.g. retry-1) or the full name of one of those topics of pipeline %s", to, base)
}

func runReplay(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "replay", "replay (--all | filters) [flags]", replayExamples)
	kf := addKafkaFlags(fs)
	base := addBaseFlag(fs)
	ff := addFilterFlags(fs)
	fs.Lookup("event-id").Usage = "only these event ids; as in dlq show, 6+ characters may be a prefix (… copied from a table included) that names one event"
	fs.Lookup("error-class").Usage = "only these error classes: exhausted, permanent, malformed, retryable; malformed dead letters (bodies the receiver could not parse) are replayed only when named here"
	all := fs.Bool("all", false, "replay every dead letter except malformed ones (required when no filter is given; command line only)")
	to := fs.String("to", "main", "where to write: main (<base>) or retry-K (<base>.retry-K: due at once, handled after the records already waiting in that partition of the tier)")
	limit := fs.Int("limit", 0, "write at most this many, oldest first; skipped ones do not count (0: no limit)")
	dryRun := fs.Bool("dry-run", false, "list what would be replayed or skipped; write nothing")
	rate := fs.Float64("rate", 0, "records per second at most (0: unlimited)")
	force := fs.Bool("force", false, "also replay events the dedup state marks processed; they carry hookline-replay-force so the consumer handles them again (command line only)")
	resume := fs.String("resume-from", "", "partition:offset printed by a replay that stopped: skip what comes before it")
	verbose := fs.Bool("verbose", false, fmt.Sprintf("print a line for every dead letter replayed or skipped (without it: the first %d skips)", skipLines))
	deliveryTimeout := fs.Duration("delivery-timeout", dlq.DefaultDeliveryTimeout, "stop when the broker has not acknowledged a record within this long")
	if err := fs.parse(args); err != nil {
		return err
	}
	// A leftover HOOKLINE_ALL or HOOKLINE_FORCE must not widen a replay.
	for _, name := range []string{"all", "force"} {
		if fs.set(name) && !fromCommandLine(fs, name) {
			return usagef("%s is set in the environment, but --%s is taken from the command line only: unset it, or pass --%s", fs.envName(name), name, name)
		}
	}
	noteConfigNotRead(env, fs, "replay")
	names, err := pipelineNames(*base)
	if err != nil {
		return err
	}
	f, err := ff.filter(time.Now())
	if err != nil {
		return err
	}
	if f.IsZero() && !*all {
		return usagef("no scope: give a filter (--error-class, --source, --conversation, --event-id, --since, --until) or --all to replay every dead letter in %s but the malformed ones (--error-class malformed selects those); try --dry-run first", names.DLQ)
	}
	if *limit < 0 {
		return usagef("--limit %d: must be 0 (no limit) or positive", *limit)
	}
	if *rate < 0 {
		return usagef("--rate %v: must be 0 (unlimited) or positive", *rate)
	}
	if *deliveryTimeout < time.Second { // franz-go refuses a shorter record timeout
		return fs.badValue("delivery-timeout", "must be at least 1s")
	}
	target, toRetry, err := replayTarget(names.Base, *to)
	if err != nil {
		return err
	}
	var resumeFrom *dlq.Position
	if *resume != "" {
		p, err := dlq.ParsePosition(*resume)
		if err != nil {
			return usagef("--resume-from: %v", err)
		}
		resumeFrom = &p
	}

	kc, err := kf.required(env)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if toRetry {
		if err := checkTarget(dctx, kc, names, *to, target); err != nil {
			cancel()
			return err
		}
	}
	cl, err := dlq.Dial(dctx, kc)
	cancel()
	if err != nil {
		return err
	}
	defer cl.Close()

	verb := "replay"
	if *dryRun {
		verb = "dry run"
	}
	scope := f.String()
	if *limit > 0 {
		scope += fmt.Sprintf(", the oldest %d", *limit)
	}
	if resumeFrom != nil {
		scope += ", resuming at " + resumeFrom.String()
	}
	prog := newProgress(env, "replay")
	// On the first signal: what a replay does (it has no in-flight events
	// to redeliver), through prog so a progress bar is not torn.
	note := func() {
		prog.printf(env.stderr, "hookline replay: stopping: no new writes; waiting for the writes in flight, then printing where to resume (a second signal stops at once, without saying where)\n")
	}
	env.stopNote.Store(&note)
	planned := false // the selection is made: from here on a summary means something
	var table *letterTable
	if *dryRun {
		table = newLetterTable(env.stdout, "ACTION")
	}
	cfg := dlq.ReplayConfig{
		DLQ:             names.DLQ,
		Dedup:           names.Dedup,
		To:              target,
		DueAt:           toRetry,
		Filter:          f,
		Limit:           *limit,
		ResumeFrom:      resumeFrom,
		Force:           *force,
		DryRun:          *dryRun,
		Rate:            *rate,
		DeliveryTimeout: *deliveryTimeout,
		OnPlan: func(p dlq.Plan) {
			planned = true
			// Only now: a replay refused before selecting (no such
			// pipeline, say) prints its error and nothing else.
			fmt.Fprintf(env.stdout, "%s: %s → %s (%s)\n", verb, names.DLQ, target, scope)
			if !*dryRun {
				prog.begin(p.Selected)
			}
		},
	}
	skipped, unlisted := 0, 0
	var notes dryRunNotes
	cfg.OnStep = func(s dlq.Step) {
		switch s.Action {
		case dlq.SkippedProcessed, dlq.SkippedDuplicate, dlq.SkippedGone:
			skipped++
			if !*dryRun && !*verbose && skipped > skipLines {
				unlisted++
				prog.update(s.Done, skipped)
				return
			}
		}
		if *dryRun {
			l := s.Letter
			if l == nil { // deleted by retention: only the position is known
				l = &dlq.Letter{Partition: s.Pos.Partition, Offset: s.Pos.Offset}
			}
			table.row(dryRunAction(s), l)
			notes.add(s)
			return
		}
		switch s.Action {
		case dlq.SkippedProcessed:
			prog.printf(env.stdout, "skip %s event %s: already processed at %s (--force replays it anyway)\n",
				s.Pos, field(s.Letter.EventID), headers.FormatTime(s.ProcessedAt))
		case dlq.SkippedDuplicate:
			prog.printf(env.stdout, "skip %s event %s: a newer dead letter of this event is replayed instead\n", s.Pos, field(s.Letter.EventID))
		case dlq.SkippedGone:
			prog.printf(env.stdout, "skip %s: deleted by retention before it could be replayed\n", s.Pos)
		case dlq.Replayed:
			if *verbose {
				prog.printf(env.stdout, "replayed %s event %s (%s) → %s partition %d\n", s.Pos, field(s.Letter.EventID), field(s.Letter.ErrorClass), target, s.Pos.Partition)
			}
		}
		prog.update(s.Done, skipped)
	}

	res, err := cl.Replay(ctx, cfg)
	prog.finish()
	if table != nil {
		table.flush()
		notes.print(env.stdout)
	}
	if err != nil && !planned {
		return err // refused before selecting: no counts to report
	}
	leftOut := ""
	if n := res.LeftOutMalformed; n > 0 {
		leftOut = fmt.Sprintf("%d malformed dead letter(s) left out; select them with --error-class malformed", n)
	}
	if res.Plan.Matched == 0 && err == nil {
		fmt.Fprintf(env.stdout, "matched 0: no dead letters in %s match (%s)\n", names.DLQ, f)
		for _, id := range f.EventIDs {
			if len(dlq.EventIDRef(id)) < dlq.MinPrefix {
				fmt.Fprintf(env.stdout, "--event-id %s is shorter than %d characters, so it must be a whole event id; a prefix needs at least %d (dlq ls shows them)\n", id, dlq.MinPrefix, dlq.MinPrefix)
			}
		}
		if leftOut != "" {
			fmt.Fprintln(env.stdout, leftOut)
		}
		return nil
	}
	summary := fmt.Sprintf("matched %d, replayed %d, skipped %d", res.Matched, res.Replayed, res.Skipped())
	if *dryRun {
		summary = fmt.Sprintf("matched %d, would replay %d, would skip %d", res.Matched, res.Replayed, res.Skipped())
	}
	var details []string
	if rest := res.Matched - res.Selected; rest > 0 {
		switch {
		case resumeFrom == nil && *dryRun:
			details = append(details, fmt.Sprintf("%d beyond --limit %d", rest, *limit))
		case resumeFrom == nil:
			details = append(details, fmt.Sprintf("%d left for a later run by --limit %d", rest, *limit))
		case *limit == 0:
			details = append(details, fmt.Sprintf("%d before --resume-from %s, not looked at", rest, resumeFrom))
		default:
			details = append(details, fmt.Sprintf("%d before --resume-from or beyond --limit, not looked at", rest))
		}
	}
	if res.SkippedProcessed > 0 {
		details = append(details, fmt.Sprintf("%d already processed", res.SkippedProcessed))
	}
	if res.SkippedDuplicate > 0 {
		details = append(details, fmt.Sprintf("%d older dead letter(s) of the same event id", res.SkippedDuplicate))
	}
	if res.SkippedGone > 0 {
		details = append(details, fmt.Sprintf("%d deleted by retention", res.SkippedGone))
	}
	if len(details) > 0 {
		summary += " (" + strings.Join(details, ", ") + ")"
	}
	fmt.Fprintln(env.stdout, summary)
	if unlisted > 0 {
		fmt.Fprintf(env.stdout, "%d more skip(s) not listed; --verbose lists every one\n", unlisted)
	}
	if leftOut != "" {
		fmt.Fprintln(env.stdout, leftOut)
	}
	if *dryRun && err == nil {
		fmt.Fprintln(env.stdout, "dry run: nothing was written")
	}
	if err == nil {
		return nil
	}
	if res.Stopped == nil {
		return err
	}
	again := "--resume-from " + res.Stopped.String()
	if *limit > 0 {
		again += fmt.Sprintf(" --limit %d", max(*limit-(res.Replayed-res.ReplayedAfterStop), 1))
	}
	msg := fmt.Sprintf("stopped at %s after replaying %d of %d: %v\nto finish, run the same command with %s",
		res.Stopped, res.Replayed, res.Selected, err, again)
	if res.ReplayedAfterStop > 0 {
		msg += fmt.Sprintf("\n(%d record(s) after %s were written before the stop and will be written again; the consumer's dedup drops the second copy once the first is processed)",
			res.ReplayedAfterStop, res.Stopped)
	}
	return exitCode{1, msg}
}

// dryRunAction is the ACTION cell of a dry run: short, so the table stays
// narrow; dryRunNotes explains the skips below it.
func dryRunAction(s dlq.Step) string {
	switch s.Action {
	case dlq.WouldReplay:
		return "replay"
	case dlq.SkippedProcessed:
		return "skip (processed)"
	case dlq.SkippedDuplicate:
		return "skip (duplicate)"
	case dlq.SkippedGone:
		return "skip (gone)"
	}
	return s.Action.String()
}

// dryRunNotes collects what the short ACTION cells leave out.
type dryRunNotes struct {
	processed       []string
	duplicate, gone bool
}

func (n *dryRunNotes) add(s dlq.Step) {
	switch s.Action {
	case dlq.SkippedProcessed:
		id := "-"
		if s.Letter != nil {
			id = field(abbrev(s.Letter.EventID, 24))
		}
		n.processed = append(n.processed, fmt.Sprintf("  %s  event %s  processed %s", s.Pos, id, s.ProcessedAt.UTC().Format(time.RFC3339)))
	case dlq.SkippedDuplicate:
		n.duplicate = true
	case dlq.SkippedGone:
		n.gone = true
	}
}

func (n *dryRunNotes) print(w io.Writer) {
	if len(n.processed) > 0 || n.duplicate || n.gone {
		fmt.Fprintln(w)
	}
	if len(n.processed) > 0 {
		fmt.Fprintln(w, "skip (processed): the dedup state says the consumer handled these; --force replays them anyway")
		for _, line := range n.processed {
			fmt.Fprintln(w, line)
		}
	}
	if n.duplicate {
		fmt.Fprintln(w, "skip (duplicate): a newer dead letter of the same event id is replayed instead (it has the latest error and replay count)")
	}
	if n.gone {
		fmt.Fprintln(w, "skip (gone): deleted by retention before it could be read again")
	}
}

// checkTarget refuses a --to retry tier the pipeline does not have, before
// any dead letter is read, naming the tiers it has.
func checkTarget(ctx context.Context, kc kafkaconf.Config, names topics.Names, to, target string) error {
	cl, err := kafkaconf.NewClient(ctx, kc)
	if err != nil {
		return err
	}
	defer cl.Close()
	details, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list topics to check --to %s: %w", to, err)
	}
	if d, ok := details[target]; ok && d.Err == nil {
		return nil
	}
	var tiers []int
	for name, d := range details {
		k, ok := strings.CutPrefix(name, names.Base+".")
		if m := retryTarget.FindStringSubmatch(k); ok && m != nil && d.Err == nil {
			n, _ := strconv.Atoi(m[1])
			tiers = append(tiers, n)
		}
	}
	slices.Sort(tiers)
	has := "no retry tiers"
	if len(tiers) > 0 {
		list := make([]string, len(tiers))
		for i, n := range tiers {
			list[i] = fmt.Sprintf("retry-%d", n)
		}
		has = "the retry tiers " + strings.Join(list, ", ")
	}
	return usagef("--to %s: there is no topic %s; pipeline %s has %s: use one of those or main (is --base right?)", to, target, names.Base, has)
}
