package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hookline/hookline/internal/embedded"
	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/topics"
)

// flagSet is a flag.FlagSet whose flags also read HOOKLINE_<NAME> from the
// environment. Flags given on the command line win over the environment,
// which wins over the YAML file (applied later by the command).
type flagSet struct {
	*flag.FlagSet
	env      *environment
	explicit map[string]bool // set on the command line or from the environment
	checks   []func() error  // run by parse once every value is in
	// printUsage writes the --help text to stdout.
	printUsage func()
	// ownPrefix, when set (see ownEnv), is the prefix of the variables of
	// the flags not in shared.
	ownPrefix string
	shared    map[string]bool
	// logsNotes says the command logs the notes of noteMisspelledEnv
	// (envNotes) as warnings through its logger, which may write JSON
	// lines only; else parse prints them on stderr.
	logsNotes bool
	envNotes  []string
	// positionals says the command takes arguments besides flags (dlq
	// show); else parse refuses any, see strayArgument.
	positionals bool
}

// envName is the environment variable that sets flag name of the commands
// that run or operate a pipeline.
func envName(name string) string {
	return "HOOKLINE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// flagSpelling is how help writes flag name: -H for one letter (as curl
// does), --name otherwise. The flag package takes either.
func flagSpelling(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// ownEnv makes the flags of a development tool (sink, send, loadtest) read
// HOOKLINE_<COMMAND>_<FLAG>, except those named in shared, which mean the
// same as for the pipeline's commands (a secret): a deployment's
// HOOKLINE_LISTEN or HOOKLINE_CONCURRENCY must not move or throttle a tool
// run from the same shell.
func (fs *flagSet) ownEnv(shared ...string) {
	fs.ownPrefix = envName(fs.Name()) + "_"
	fs.shared = map[string]bool{}
	for _, n := range shared {
		fs.shared[n] = true
	}
}

// envName is the environment variable that sets flag name of this command.
func (fs *flagSet) envName(name string) string {
	if fs.ownPrefix == "" || fs.shared[name] {
		return envName(name)
	}
	return fs.ownPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// newFlagSet makes the flag set of one subcommand. usage is the one-line
// synopsis and description; examples are printed after the flags.
func newFlagSet(env *environment, name, usage, examples string) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), env: env, explicit: map[string]bool{}}
	// The flag package prints a parse error and the whole usage itself;
	// parse reports the error once instead (dispatch prints it to stderr)
	// and prints the usage only for --help.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.printUsage = func() {
		w := env.stdout
		fmt.Fprintf(w, "Usage: hookline %s\n", usage)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(w, "\nFlags (each also read from the environment variable in brackets):\n")
		}
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
				def = fmt.Sprintf(" (default %s)", defaultText(f))
			}
			fmt.Fprintf(w, "  %s\n        %s%s [%s]\n", flagSpelling(f.Name), f.Usage, def, fs.envName(f.Name))
		})
		fmt.Fprintf(w, "\nExamples:\n%s\n", examples)
	}
	return fs
}

// noteMisspelledEnv says on stderr which HOOKLINE_* variables look like a
// misspelling of one this command reads (HOOKLINE_PARTITION for
// HOOKLINE_PARTITIONS): the command ignores them, and without a word the
// operator would believe the setting applied. Variables of other commands
// and tools (HOOKLINE_KAFKA_STATE of kafka.sh) are far from every name here
// and pass without a note.
func (fs *flagSet) noteMisspelledEnv() {
	if fs.env.environ == nil {
		return
	}
	known := map[string]string{} // variable → flag
	fs.VisitAll(func(f *flag.Flag) { known[fs.envName(f.Name)] = f.Name })
	// A tool with its own prefix (send: HOOKLINE_SEND_URL) ignores the
	// bare name (HOOKLINE_URL), which reads like the one to set. Not the
	// names the pipeline's commands read (HOOKLINE_LISTEN): in a
	// deployment's shell those are set on purpose, and the tool ignores
	// them by design.
	bare := map[string]string{} // HOOKLINE_<FLAG> → the tool's own variable
	if fs.ownPrefix != "" {
		deployed := pipelineEnvNames()
		for k, f := range known {
			if !fs.shared[f] && !deployed[envName(f)] {
				bare[envName(f)] = k
			}
		}
	}
	var names []string
	for _, kv := range fs.env.environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "HOOKLINE_") && known[name] == "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	candidates := slices.Sorted(maps.Keys(known))
	for _, name := range names {
		if k := bare[name]; k != "" {
			if !fs.explicit[known[k]] { // else the setting it holds is not missed
				fs.envNotes = append(fs.envNotes, fmt.Sprintf("hookline %s does not read %s; its %s comes from %s", fs.Name(), name, flagSpelling(known[k]), k))
			}
			continue
		}
		if k := nearest(name, "HOOKLINE_", candidates); k != "" {
			fs.envNotes = append(fs.envNotes, fmt.Sprintf("hookline %s does not read %s; did you mean %s (%s)?", fs.Name(), name, k, flagSpelling(known[k])))
		}
	}
}

// pipelineEnvNames returns the variables run, serve and consume read.
func pipelineEnvNames() map[string]bool {
	fs := newFlagSet(&environment{}, "run", "", "")
	addAppFlags(fs, true, true)
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[fs.envName(f.Name)] = true })
	return names
}

// nearest returns the candidate closest to name within a typo's reach, or
// "": two edits (a letter left out and one swapped), one when name is five
// characters or fewer after prefix, where two would match unrelated words,
// and none below three (-x is not a typo of -H).
func nearest(name, prefix string, candidates []string) string {
	limit := 2
	switch n := len(name) - len(prefix); {
	case n < 3:
		return ""
	case n <= 5:
		limit = 1
	}
	best, bestD := "", limit+1
	for _, k := range candidates {
		if d := editDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// printEnvNotes writes the notes of noteMisspelledEnv on stderr.
func (fs *flagSet) printEnvNotes() {
	for _, n := range fs.envNotes {
		fmt.Fprintln(fs.env.stderr, "note: "+n)
	}
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// defaultText is f's default as help shows it: a duration as one writes it
// (96h, 2m), not as time.Duration prints it (96h0m0s, 2m0s).
func defaultText(f *flag.Flag) string {
	if g, ok := f.Value.(flag.Getter); ok {
		if _, isDur := g.Get().(time.Duration); isDur {
			if d, err := time.ParseDuration(f.DefValue); err == nil {
				return topics.ShortDuration(d)
			}
		}
	}
	return f.DefValue
}

// badValue is the flag package's error for a value it cannot parse (not
// one out of range: that message says enough).
var badValue = regexp.MustCompile(`^invalid (?:boolean )?value ".*" for (?:flag )?-([A-Za-z0-9_-]+): parse error$`)

// valueWanted says what a flag of one of the flag package's own kinds
// takes ("" for hookline's own kinds, whose errors say it themselves).
func valueWanted(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case int, int64, uint, uint64:
		return "a whole number, e.g. " + cmp.Or(nonZero(f.DefValue), "12")
	case bool:
		return "true or false"
	case time.Duration:
		return "a duration with its unit, e.g. " + cmp.Or(nonZero(defaultText(f)), "30s")
	case float64:
		return "a number"
	}
	return ""
}

func nonZero(def string) string {
	if def == "0" || def == "0s" {
		return ""
	}
	return def
}

// flagRef is a flag name as the flag package quotes it in an error.
var flagRef = regexp.MustCompile(`(^|[ :])-([A-Za-z][A-Za-z0-9_-]*)`)

// parse parses args, then fills every flag not given on the command line from
// its environment variable.
func (fs *flagSet) parse(args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.printUsage()
			return err
		}
		msg := strings.Replace(err.Error(), "flag provided but not defined: -", "unknown flag -", 1)
		if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
			var flags []string
			fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f.Name) })
			if k := nearest(name, "", flags); k != "" {
				msg += " (did you mean --" + k + "?)"
			}
		}
		if m := badValue.FindStringSubmatch(msg); m != nil {
			if f := fs.Lookup(m[1]); f != nil {
				if w := valueWanted(f); w != "" {
					msg += " (it wants " + w + ")"
				}
			}
		}
		msg = flagRef.ReplaceAllString(msg, "$1--$2") // the flag package writes -name
		return usagef("%s; run hookline %s --help for the flags", msg, fs.Name())
	}
	if fs.NArg() > 0 && !fs.positionals {
		return fs.strayArgument(args)
	}
	fs.Visit(func(f *flag.Flag) { fs.explicit[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if fs.explicit[f.Name] || err != nil {
			return
		}
		if v := fs.env.getenv(fs.envName(f.Name)); v != "" {
			if e := f.Value.Set(v); e != nil {
				msg := fmt.Sprintf("%v (for %s)", e, flagSpelling(f.Name))
				if w := valueWanted(f); w != "" && e.Error() == "parse error" { // says nothing more
					msg = flagSpelling(f.Name) + " wants " + w
				}
				err = usagef("%s=%q: %s; run hookline %s --help for the flags", fs.envName(f.Name), v, msg, fs.Name())
				return
			}
			fs.explicit[f.Name] = true
		}
	})
	if err != nil {
		return err
	}
	fs.noteMisspelledEnv()
	if !fs.logsNotes {
		fs.printEnvNotes()
	}
	for _, check := range fs.checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// strayArgument is the error for a word that is not a flag, where the
// command takes flags only. The flag package stops at such a word, so every
// flag after it would otherwise be dropped without a word: in `run
// --insecure-no-auth false --secret x`, the secret.
func (fs *flagSet) strayArgument(args []string) error {
	word := fs.Arg(0)
	hint := ""
	if i := len(args) - fs.NArg(); i > 0 && (word == "true" || word == "false") && !tookValue(fs, args[:i-1]) {
		if f := fs.Lookup(strings.TrimLeft(args[i-1], "-")); f != nil && isBoolFlag(f) {
			hint = fmt.Sprintf("; a true/false flag takes its value after =, as in %s=%s", flagSpelling(f.Name), word)
		}
	}
	nflags := 0
	fs.VisitAll(func(*flag.Flag) { nflags++ })
	if nflags == 0 {
		return usagef("unexpected argument %q: %s takes no arguments; run hookline %s", word, fs.Name(), fs.Name())
	}
	return usagef("unexpected argument %q: %s takes flags only, and nothing after it was read%s; run hookline %s --help for the flags",
		word, fs.Name(), hint, fs.Name())
}

// tookValue reports whether the last of before is a flag that takes the
// next word as its value (--secret, not --secret=x or --tls): then that
// word was a value, not a flag.
func tookValue(fs *flagSet, before []string) bool {
	if len(before) == 0 {
		return false
	}
	w := before[len(before)-1]
	if !strings.HasPrefix(w, "-") || strings.Contains(w, "=") {
		return false
	}
	f := fs.Lookup(strings.TrimLeft(w, "-"))
	return f != nil && !isBoolFlag(f)
}

// isBoolFlag reports whether f is set without a value (--flag, not --flag x).
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// positiveDuration defines a duration flag that must be positive, e.g. a
// --timeout: 0 or less would give up before trying, and the error would
// then blame whatever it was talking to.
func (fs *flagSet) positiveDuration(name string, def time.Duration, usage string) *time.Duration {
	d := fs.Duration(name, def, usage)
	fs.check(func() error {
		if *d <= 0 {
			return fs.badValue(name, fmt.Sprintf("must be positive, e.g. %s (the default)", topics.ShortDuration(def)))
		}
		return nil
	})
	return d
}

// check adds a validation parse runs after the command line and the
// environment are applied, so both go through it.
func (fs *flagSet) check(fn func() error) { fs.checks = append(fs.checks, fn) }

// set reports whether the flag was given on the command line or environment.
func (fs *flagSet) set(name string) bool { return fs.explicit[name] }

// origin names where flag name's value came from: "--name" or its
// environment variable.
func (fs *flagSet) origin(name string) string {
	if fs.set(name) && !fromCommandLine(fs, name) {
		return fs.envName(name)
	}
	return "--" + name
}

// badValue is the usage error for flag name holding a value outside its
// valid range: it names the flag, the value, where the value came from when
// it was the environment, and valid (e.g. "must be positive (e.g. 1.5s)").
func (fs *flagSet) badValue(name, valid string) error {
	f := fs.Lookup(name)
	from := ""
	if o := fs.origin(name); o != "--"+name {
		from = " (from " + o + ")"
	}
	return usagef("--%s %s%s: %s", name, f.Value.String(), from, valid)
}

// durations is a comma-separated list of durations, e.g. "10s,1m,10m".
type durations []time.Duration

func (d *durations) String() string {
	parts := make([]string, len(*d))
	for i, v := range *d {
		parts[i] = topics.ShortDuration(v)
	}
	return strings.Join(parts, ",")
}

func (d *durations) Set(s string) error {
	var out durations
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		v, err := time.ParseDuration(p)
		if err != nil {
			return fmt.Errorf("%q is not a duration (use e.g. 10s,1m,10m)", p)
		}
		out = append(out, v)
	}
	*d = out
	return nil
}

// kafkaFlags are the connection flags shared by every command that talks to
// Kafka.
type kafkaFlags struct {
	brokers string
	cfg     kafkaconf.Config
}

func addKafkaFlags(fs *flagSet) *kafkaFlags {
	k := &kafkaFlags{}
	fs.StringVar(&k.brokers, "brokers", "", "comma-separated Kafka seed brokers host:port")
	fs.StringVar(&k.cfg.ClientID, "client-id", kafkaconf.DefaultClientID, "Kafka client id")
	fs.BoolVar(&k.cfg.TLS, "tls", false, "connect to Kafka with TLS (system roots unless --tls-ca)")
	fs.StringVar(&k.cfg.CAFile, "tls-ca", "", "PEM file of CA certificates to trust for Kafka (turns TLS on)")
	fs.StringVar(&k.cfg.CertFile, "tls-cert", "", "PEM client certificate for mutual TLS (turns TLS on)")
	fs.StringVar(&k.cfg.KeyFile, "tls-key", "", "PEM client key for mutual TLS (turns TLS on)")
	fs.StringVar(&k.cfg.ServerName, "tls-server-name", "", "server name to verify in the broker certificate (turns TLS on)")
	fs.StringVar(&k.cfg.SASLMechanism, "sasl-mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (any case); credentials from HOOKLINE_SASL_USERNAME and HOOKLINE_SASL_PASSWORD")
	return k
}

// config returns the Kafka settings, with brokers from fileBrokers when none
// were given by flag or environment.
func (k *kafkaFlags) config(env *environment, fileBrokers []string) kafkaconf.Config {
	c := k.cfg
	c.Brokers = kafkaconf.ParseBrokers(k.brokers)
	if len(c.Brokers) == 0 {
		c.Brokers = fileBrokers
	}
	if c.SASLUsername == "" {
		c.SASLUsername = env.getenv(kafkaconf.EnvSASLUsername)
	}
	if c.SASLPassword == "" {
		c.SASLPassword = env.getenv(kafkaconf.EnvSASLPassword)
	}
	return c
}

// required is config without a file, for the commands that take brokers
// from flags or the environment only (dlq, replay): refused by needBrokers
// when there are none.
func (k *kafkaFlags) required(env *environment) (kafkaconf.Config, error) {
	c := k.config(env, nil)
	return c, needBrokers(c)
}

// needBrokers refuses a command that needs brokers (every one but run,
// which starts an embedded broker without them) when none are set, saying
// where to find the embedded broker's.
func needBrokers(kc kafkaconf.Config) error {
	if len(kc.Brokers) > 0 {
		return nil
	}
	return usagef("no Kafka brokers: set --brokers or HOOKLINE_BROKERS (host:port,host:port); `hookline run` starts an embedded broker without them, and for a `hookline run` on its embedded broker, that is the address on the `bootstrap:` line it printed (%s unless --embedded-addr)", embedded.DefaultAddr)
}

// pipelineFlags describe one pipeline's topics.
type pipelineFlags struct {
	base        string
	partitions  int
	rf          int
	retryDelays durations
	dedupWindow time.Duration
}

func addPipelineFlags(fs *flagSet) *pipelineFlags {
	p := &pipelineFlags{retryDelays: durations(topics.DefaultRetryDelays)}
	fs.StringVar(&p.base, "base", topics.DefaultBase, "base topic name of the pipeline")
	fs.IntVar(&p.partitions, "partitions", topics.DefaultPartitions, "partitions of every pipeline topic")
	fs.IntVar(&p.rf, "replication-factor", -1, "replication factor of new topics (-1: broker default)")
	fs.Var(&p.retryDelays, "retry-delays", "delays of the retry tiers, one per tier")
	fs.DurationVar(&p.dedupWindow, "dedup-window", topics.DefaultDedupWindow, "how long a processed event id is remembered")
	fs.check(func() error { return p.validate(fs) })
	return p
}

// validate refuses values that topics.NewPlan would silently replace by
// its default (0) or refuse without naming the flag.
func (p *pipelineFlags) validate(fs *flagSet) error {
	if p.partitions < 1 || p.partitions > math.MaxInt32 {
		return fs.badValue("partitions", "must be at least 1 (every topic of the pipeline gets this many partitions)")
	}
	if p.rf == 0 || p.rf < -1 || p.rf > math.MaxInt16 {
		return fs.badValue("replication-factor", "must be -1 (the broker's default) or a replica count of 1 or more")
	}
	if len(p.retryDelays) == 0 {
		return fs.badValue("retry-delays", "give at least one delay, e.g. 10s,1m,10m")
	}
	for _, d := range p.retryDelays {
		if d <= 0 {
			return fs.badValue("retry-delays", "every delay must be positive, e.g. 10s,1m,10m")
		}
		if d > topics.MaxRetryDelay {
			return fs.badValue("retry-delays", fmt.Sprintf("every delay must be at most %.0fh (30 days); for a longer wait let the event go to the DLQ and replay it", topics.MaxRetryDelay.Hours()))
		}
	}
	if problem := decreasingDelay(p.retryDelays); problem != "" {
		return fs.badValue("retry-delays", problem+", e.g. 10s,1m,10m")
	}
	if p.dedupWindow <= 0 {
		return fs.badValue("dedup-window", "must be positive, e.g. 96h (the default)")
	}
	return nil
}

// decreasingDelay names the first delay shorter than the one before it and
// says what to do, or returns "" when the delays never decrease. They are
// listed shortest first: a Retry-After longer than the next tier's delay
// moves the event to the first later tier whose delay covers it, else to
// the last tier, which only holds the longest wait when the delays do not
// decrease.
func decreasingDelay(ds []time.Duration) string {
	for i := 1; i < len(ds); i++ {
		if ds[i] < ds[i-1] {
			return fmt.Sprintf("delay %d (%s) is shorter than delay %d (%s): list the delays shortest first, each tier waiting at least as long as the one before (a Retry-After that a tier does not cover moves the event on to a later, longer tier)",
				i+1, topics.ShortDuration(ds[i]), i, topics.ShortDuration(ds[i-1]))
		}
	}
	return ""
}

func (p *pipelineFlags) topicsConfig() topics.Config {
	return topics.Config{
		Base:              p.base,
		Partitions:        int32(p.partitions),
		ReplicationFactor: int16(p.rf),
		RetryDelays:       []time.Duration(p.retryDelays),
		DedupWindow:       p.dedupWindow,
	}
}

// subcommandFirst suggests args with the subcommand first (`dlq --brokers X
// ls` → `hookline dlq ls --brokers X`), or the synopsis when no known
// subcommand is among them.
func subcommandFirst(cmd string, subs, args []string) string {
	for i, a := range args {
		if !slices.Contains(subs, a) {
			continue
		}
		words := []string{"hookline", cmd, a}
		for _, w := range append(args[:i:i], args[i+1:]...) {
			if w == "" || strings.ContainsAny(w, " \t'\"$`\\|&;<>()*?") {
				w = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
			}
			words = append(words, w)
		}
		return strings.Join(words, " ")
	}
	return "hookline " + cmd + " " + strings.Join(subs, "|") + " [flags] (see hookline " + cmd + " --help)"
}

// headerList is a repeatable "Name: value" flag (see flagSet.headerVar).
// One value may hold several such lines, since its environment variable
// can only be set once.
type headerList struct {
	h     http.Header
	check func(name, value string) error // optional
	err   error                          // the first refused line
}

// headerVar defines the headerList flag name. A refused value is reported
// without the value, which often holds a secret (the flag package's own
// error would quote it).
func (fs *flagSet) headerVar(l *headerList, name, usage string) {
	fs.Var(l, name, usage)
	fs.check(func() error {
		if l.err != nil {
			return usagef("%s: %v", fs.origin(name), l.err)
		}
		return nil
	})
}

// String shows the names only: values are often secrets.
func (l *headerList) String() string {
	if l == nil || len(l.h) == 0 {
		return ""
	}
	return strings.Join(slices.Sorted(maps.Keys(l.h)), ", ")
}

func (l *headerList) Set(s string) error {
	if err := l.add(s); err != nil && l.err == nil {
		l.err = err
	}
	return nil
}

func (l *headerList) add(s string) error {
	for _, line := range strings.Split(s, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return errors.New("want 'Name: value', e.g. 'Authorization: Bearer …'")
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if name == "" {
			return errors.New("the header name is empty: want 'Name: value'")
		}
		if l.check != nil {
			if err := l.check(name, value); err != nil {
				return err
			}
		}
		if l.h == nil {
			l.h = http.Header{}
		}
		l.h.Add(name, value)
	}
	return nil
}
