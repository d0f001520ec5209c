// Package config reads hookline's optional YAML file, which describes several
// sources and pipelines. Secrets are referenced as ${ENV} (expanded from the
// environment when the file is loaded) or read from files (secret_file), so
// the file itself can be committed.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hookline/hookline/internal/kafkaconf"
)

// File is the YAML file's schema. Every key is optional.
type File struct {
	// Brokers is a list, or one comma-separated string as --brokers and
	// HOOKLINE_BROKERS take it (brokers: ${KAFKA_BROKERS}); every entry is
	// split at commas.
	Brokers   []string   `yaml:"brokers"`
	Listen    string     `yaml:"listen"`
	Pipelines []Pipeline `yaml:"pipelines"`
	Sources   []Source   `yaml:"sources"`

	// Defaulted names the ${NAME:-default} references whose variable was
	// unset, so their default was used. Not read from YAML.
	Defaulted []string `yaml:"-"`
	// Unset names the ${NAME} references whose variable was unset and that
	// LoadFor expanded to "" in a part the command does not use (Load
	// refuses them).
	Unset []string `yaml:"-"`

	// refs are the values that came from the environment, with the
	// references they were written as (see Scrub).
	refs []quotedRef
}

// Scrub returns msg with every value that the file took from the
// environment replaced by the reference it was written as: an error about
// a misplaced reference (header: "${SECRET}", name: "${TOKEN}") must not
// print the variable's value, which may be a secret. Quoted values are
// replaced whatever their length, bare ones from 8 bytes on: shorter ones
// match inside unrelated words (a value "events" would garble every topic
// name in the message), and a secret is longer.
func (f File) Scrub(msg string) string {
	return scrubRefs(msg, f.refs)
}

// Ref returns the text a value of the file was written as when it came
// from the environment (a ${VAR} reference), so that a message can name
// the reference instead of the value: a header name or a prefix is printed
// as is, and changed (canonical case) on the way, where Scrub cannot find it.
func (f File) Ref(value string) (string, bool) {
	for _, r := range f.refs {
		if r.value == value && r.raw != value {
			return r.raw, true
		}
	}
	return "", false
}

// minBareScrub is the shortest value Scrub replaces where it is not quoted.
const minBareScrub = 8

// scrubRefs replaces in msg every form a message quotes a value of refs in
// by the reference it was written as: YAML's backticks (whole, or its first
// 7 bytes and "..." for a longer value), Go's quotes, and bare from
// minBareScrub bytes on.
func scrubRefs(msg string, refs []quotedRef) string {
	// Longest values first, so that a value inside another is not
	// replaced within it.
	refs = slices.SortedFunc(slices.Values(refs), func(a, b quotedRef) int { return len(b.value) - len(a.value) })
	for _, r := range refs {
		if r.value == r.raw || r.value == "" {
			continue
		}
		shown := "`" + r.value + "`"
		if len(r.value) > 10 {
			shown = "`" + r.value[:7] + "...`"
		}
		msg = strings.ReplaceAll(msg, shown, "`"+r.raw+"`")
		msg = strings.ReplaceAll(msg, strconv.Quote(r.value), strconv.Quote(r.raw))
		if len(r.value) >= minBareScrub {
			msg = strings.ReplaceAll(msg, r.value, r.raw)
		}
	}
	return msg
}

// Pipeline describes one pipeline: its topics and the consumer's handler.
type Pipeline struct {
	Base              string     `yaml:"base"`
	Partitions        int32      `yaml:"partitions"`
	ReplicationFactor int16      `yaml:"replication_factor"`
	RetryDelays       []Duration `yaml:"retry_delays"`
	DedupWindow       Duration   `yaml:"dedup_window"`
	Handler           Handler    `yaml:"handler"`
}

// Handler is the consumer's HTTP forward sink of a pipeline.
type Handler struct {
	URL     string            `yaml:"url"`
	Timeout Duration          `yaml:"timeout"`
	CAFile  string            `yaml:"ca_file"` // PEM bundle trusted for an https url
	Headers map[string]string `yaml:"headers"` // sent with every request, e.g. Authorization
}

// Source is one sender: POST /webhooks/<name>.
type Source struct {
	Name     string   `yaml:"name"`
	Kind     string   `yaml:"kind"`     // genesys | generic
	Pipeline string   `yaml:"pipeline"` // base of the pipeline; default: the only (or first) one
	EventID  []string `yaml:"event_id"` // JSON pointers
	Key      []string `yaml:"key"`      // JSON pointers
	Verify   Verify   `yaml:"verify"`
}

// Verify configures a source's verifier; see internal/verify.
type Verify struct {
	Type               string `yaml:"type"`
	Header             string `yaml:"header"`
	Secret             string `yaml:"secret"`
	SecretFile         string `yaml:"secret_file"`
	PreviousSecret     string `yaml:"previous_secret"`
	PreviousSecretFile string `yaml:"previous_secret_file"`
	Username           string `yaml:"username"`
	Prefix             string `yaml:"prefix"`
	Encoding           string `yaml:"encoding"`
}

// Duration is a time.Duration written as "10s", "1m", "96h".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use e.g. 10s, 1m, 96h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Load reads and validates the file at path. getenv expands ${NAME}
// references; a reference to an unset variable is an error, so a missing
// secret never silently becomes "".
func Load(path string, getenv func(string) string) (File, error) {
	return load(path, getenv, 0)
}

// Unused names the parts of the file a command does not use: a reference
// to an unset variable there expands to "" and is listed in File.Unset
// instead of refusing the file (a source's secret is not deployed where
// only consumers run, say). Those parts of the result must not be used.
type Unused uint8

const (
	UnusedSources        Unused = 1 << iota // sources[*] (receivers use them)
	UnusedListen                            // listen (receivers use it)
	UnusedHandlers                          // pipelines[*].handler (consumers use it)
	UnusedHandlerHeaders                    // pipelines[*].handler.headers (replaced by --handler-header)
)

// LoadFor is Load for a command that does not use the parts in unused.
func LoadFor(path string, getenv func(string) string, unused Unused) (File, error) {
	return load(path, getenv, unused)
}

// ErrRead is wrapped by the errors of Load and LoadFor that come from
// reading the file (a wrong path, a directory, no permission) rather than
// from what it says.
var ErrRead = errors.New("cannot read the config file")

func load(path string, getenv func(string) string, unused Unused) (File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		switch info, serr := os.Stat(path); {
		case serr == nil && info.IsDir():
			return File{}, fmt.Errorf("%w: %s is a directory: give the path of the YAML file", ErrRead, path)
		case errors.Is(err, fs.ErrNotExist):
			return File{}, fmt.Errorf("%w: %w: check the path (a relative one is read from the working directory)", ErrRead, err)
		case errors.Is(err, fs.ErrPermission):
			return File{}, fmt.Errorf("%w: %w: let the user hookline runs as read it", ErrRead, err)
		}
		return File{}, fmt.Errorf("%w: %w", ErrRead, err)
	}
	f, err := parse(raw, getenv, unused)
	if err != nil {
		return File{}, fmt.Errorf("config %s: %w", path, err)
	}
	return f, nil
}

// envRef matches ${NAME} and ${NAME:-default}.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// Parse parses the YAML text; see Load. ${NAME:-default} uses default when
// NAME is unset or empty; File.Defaulted lists those names so the caller can
// warn about them (a default secret is for trying hookline out only).
func Parse(raw []byte, getenv func(string) string) (File, error) {
	return parse(raw, getenv, 0)
}

func parse(raw []byte, getenv func(string) string, unused Unused) (File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return f, nil // empty file: empty config
		}
		if n := tabIndented(raw); n > 0 {
			// yaml's own message ("found character that cannot start any
			// token") does not say it, and may name the line before.
			return File{}, fmt.Errorf("parse YAML: %w (line %d is indented with a tab: YAML indents with spaces only; replace the tab with spaces)", err, n)
		}
		if n := unquotedFlowReference(raw); n > 0 {
			// YAML's rule, easy to trip over: a plain value in { } or [ ]
			// may not contain braces.
			return File{}, fmt.Errorf("parse YAML: %w (line %d: inside { } or [ ] a reference must be quoted: \"${NAME}\")", err, n)
		}
		return File{}, fmt.Errorf("parse YAML: %w", err)
	}
	var more yaml.Node
	switch err := dec.Decode(&more); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return File{}, fmt.Errorf("parse YAML: %w", err)
	case len(more.Content) > 0 && more.Content[0].ShortTag() != "!!null":
		// A second document would be dropped without a word.
		return File{}, errors.New("the file holds more than one YAML document (a second ---): hookline reads one; merge them into one document")
	}
	// References are expanded in the parsed values, not in the text: a
	// secret with a #, a quote or a backslash stays exactly as set.
	x := expander{getenv: getenv, unused: unused}
	x.walk(&doc, "")
	if len(x.missing) > 0 {
		return File{}, fmt.Errorf("environment variable(s) referenced but unset or empty: %s: export them with a value, or remove the reference", strings.Join(x.missing, ", "))
	}
	// A typo in a key is an error, not a silent default.
	if err := knownFields(&doc, reflect.TypeFor[File](), ""); err != nil {
		return File{}, fmt.Errorf("parse YAML: %s", scrubRefs(err.Error(), x.expanded))
	}
	brokersAsList(&doc)
	if err := doc.Decode(&f); err != nil {
		if hint := x.typeHint(err, &doc); hint != "" {
			return File{}, fmt.Errorf("parse YAML: %w: %s", x.scrub(err), hint)
		}
		return File{}, fmt.Errorf("parse YAML: %w", x.scrub(err))
	}
	if err := f.splitBrokers(); err != nil {
		return File{}, err
	}
	if err := f.validate(); err != nil {
		if msg := scrubRefs(err.Error(), x.expanded); msg != err.Error() {
			return File{}, errors.New(msg) // not wrapped: the original text holds the value
		}
		return File{}, err
	}
	f.Defaulted = x.defaulted
	f.Unset = x.unset
	f.refs = x.expanded
	return f, nil
}

// tabIndented returns the number of the first line whose indentation holds
// a tab, or 0.
func tabIndented(raw []byte) int {
	for i, line := range bytes.Split(raw, []byte("\n")) {
		indent := line[:len(line)-len(bytes.TrimLeft(line, " \t"))]
		if bytes.IndexByte(indent, '\t') >= 0 {
			return i + 1
		}
	}
	return 0
}

// unquotedFlowReference returns the number of the first line that holds a
// ${NAME} reference outside quotes together with a { or [ (a flow
// collection, where YAML refuses it unquoted), or 0. Other parse errors in
// a file with references get no such hint.
func unquotedFlowReference(raw []byte) int {
	for i, line := range strings.Split(string(raw), "\n") {
		if j := strings.Index(line, "#"); j >= 0 && (j == 0 || line[j-1] == ' ') {
			line = line[:j] // a comment (a # inside quotes is cut too: fine for a hint)
		}
		var plain strings.Builder // line without its quoted parts
		var quote byte
		for k := 0; k < len(line); k++ {
			switch ch := line[k]; {
			case quote != 0:
				if ch == quote {
					quote = 0
				}
			case ch == '"' || ch == '\'':
				quote = ch
			default:
				plain.WriteByte(ch)
			}
		}
		p := plain.String()
		if strings.Contains(p, "${") && (strings.Contains(strings.ReplaceAll(p, "${", ""), "{") || strings.Contains(p, "[")) {
			return i + 1
		}
	}
	return 0
}

// brokersAsList turns a top-level brokers: value written as one string
// (brokers: ${KAFKA_BROKERS}, or brokers: k1:9092,k2:9092) into a
// one-element list, which splitBrokers then splits at commas.
func brokersAsList(doc *yaml.Node) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		v := m.Content[i+1]
		if m.Content[i].Value != "brokers" || v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
			continue
		}
		item := *v
		item.Tag = "!!str"
		m.Content[i+1] = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: v.Line, Column: v.Column, Content: []*yaml.Node{&item}}
	}
}

// splitBrokers splits every brokers entry at commas, as --brokers does.
func (f *File) splitBrokers() error {
	var out []string
	for _, b := range f.Brokers {
		if strings.ContainsAny(b, "[]{}") {
			return fmt.Errorf("brokers: %q is not a host:port list: write brokers comma-separated (KAFKA_BROKERS=k1:9092,k2:9092 with brokers: ${KAFKA_BROKERS}) or as a YAML list of host:port (brokers: [k1:9092, k2:9092])", b)
		}
		out = append(out, kafkaconf.ParseBrokers(b)...)
	}
	if f.Brokers != nil {
		f.Brokers = out
	}
	return nil
}

// knownFields refuses mapping keys that no field of t is tagged with, as
// yaml.Decoder.KnownFields does (which a decode from a yaml.Node lacks).
func knownFields(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return nil // e.g. Duration, whose own errors say what it wants
	}
	// yaml.v3 decodes 3.5 into an int field as 3, 1e1 as 10, 0x10 as 16 and
	// 010 as 8: a file takes a whole number in decimal digits only. A
	// quoted number is left to the decode, whose error gets its own hint
	// (typeHint).
	if n.Kind == yaml.ScalarNode && isInteger(t) {
		if tag := n.ShortTag(); (tag == "!!int" || tag == "!!float") && !wholeDecimal.MatchString(n.Value) {
			return fmt.Errorf("%s (line %d) wants a whole number in decimal digits (e.g. 12), not %s", path, n.Line, n.Value)
		}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := knownFields(c, t, path); err != nil {
				return err
			}
		}
	case yaml.AliasNode:
		return knownFields(n.Alias, t, path)
	case yaml.MappingNode:
		if t.Kind() != reflect.Struct {
			return nil // the decode reports the type mismatch
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.ShortTag() == "!!merge" {
				// <<: *anchor (or a list of them) merges mappings of the
				// same type.
				v := n.Content[i+1]
				if v.Kind == yaml.AliasNode {
					v = v.Alias
				}
				merged := []*yaml.Node{v}
				if v.Kind == yaml.SequenceNode {
					merged = v.Content
				}
				for _, m := range merged {
					if err := knownFields(m, t, path); err != nil {
						return err
					}
				}
				continue
			}
			f, ok := fieldByTag(t, k.Value)
			p := keyPath(path, k.Value)
			if !ok {
				return fmt.Errorf("line %d: unknown key %q (%s): check its spelling in docs/configuration.md", k.Line, k.Value, p)
			}
			if err := knownFields(n.Content[i+1], f.Type, p); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		if t.Kind() != reflect.Slice {
			return nil
		}
		for i, c := range n.Content {
			if err := knownFields(c, t.Elem(), indexPath(path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// wholeDecimal is a whole number in decimal digits, without the leading
// zero that makes YAML read it as octal.
var wholeDecimal = regexp.MustCompile(`^[-+]?(0|[1-9][0-9]*)$`)

func isInteger(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// keyPath and indexPath name a value in messages: pipelines[0].handler.url.
func keyPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key && name != "-" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// expander replaces ${NAME} and ${NAME:-default} in the scalar values of a
// parsed file (never in keys or comments).
type expander struct {
	getenv func(string) string
	unused Unused
	// missing lists "NAME (at path)" of refused unset references; unset
	// and defaulted list names.
	missing, unset, defaulted []string
	// quoted lists the quoted scalars that held a reference: they stay
	// strings, which a number field refuses (see typeHint).
	quoted []quotedRef
	// expanded lists every scalar that held a reference, quoted or not
	// (see scrub).
	expanded []quotedRef
}

type quotedRef struct {
	line      int
	path, raw string // raw: the value as written, e.g. ${PARTITIONS}
	value     string // expanded
}

// typeLine finds the line number and the (maybe shortened) value in a
// yaml.TypeError entry.
var typeLine = regexp.MustCompile("^line (\\d+): cannot unmarshal !!str `([^`]*)`")

// typeEntry finds the line, the YAML tag and the Go type in a
// yaml.TypeError entry ("line 3: cannot unmarshal !!str `x` into int32").
var typeEntry = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+)(?: `.*`)? into (\\S+)$")

// typeHint explains the entries of a decode error: the key the value is
// at and what it wants there (yaml names only the line and a Go type), and
// for a quoted reference in a number field, that YAML reads it as a
// string whatever the variable holds. It returns "" when err is not a
// yaml.TypeError.
func (x *expander) typeHint(err error, doc *yaml.Node) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return ""
	}
	var vals []typedValue
	typedValues(doc, reflect.TypeFor[File](), "", &vals)
	var hints []string
	for _, e := range te.Errors {
		if m := typeLine.FindStringSubmatch(e); m != nil && isNumber(e) {
			quoted := false
			for _, q := range x.quoted {
				if fmt.Sprint(q.line) != m[1] || !strings.HasPrefix(q.value, strings.TrimSuffix(m[2], "...")) {
					continue
				}
				key := q.path[strings.LastIndex(q.path, ".")+1:]
				hints = append(hints, fmt.Sprintf("%s (line %d) is a quoted reference, which YAML reads as a string: for a number write it unquoted on a line of its own, `%s: %s` (in { } or [ ] a reference must be quoted, so move the key out of the braces into block style)",
					q.path, q.line, key, q.raw))
				quoted = true
			}
			if quoted {
				continue
			}
		}
		m := typeEntry.FindStringSubmatch(e)
		if m == nil {
			continue
		}
		for _, v := range vals {
			if fmt.Sprint(v.line) == m[1] && v.tag == m[2] && v.t.String() == m[3] {
				hints = append(hints, fmt.Sprintf("%s (line %d) wants %s, not %s", v.path, v.line, wants(v.t), tagName(v.tag)))
				break
			}
		}
	}
	return strings.Join(hints, "; ")
}

// isNumber reports whether a yaml.TypeError entry is about a number field.
func isNumber(entry string) bool {
	m := typeEntry.FindStringSubmatch(entry)
	return m != nil && strings.HasPrefix(m[3], "int")
}

// typedValue is a value of the file with the Go type it decodes into.
type typedValue struct {
	line int
	tag  string
	path string
	t    reflect.Type
}

// typedValues lists the values under n, which decodes into t, with their
// paths and Go types (what a yaml.TypeError entry names).
func typedValues(n *yaml.Node, t reflect.Type, path string, out *[]typedValue) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			typedValues(c, t, path, out)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		*out = append(*out, typedValue{line: n.Line, tag: n.ShortTag(), path: path, t: t})
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if f, ok := fieldByTag(t, n.Content[i].Value); ok {
				typedValues(n.Content[i+1], f.Type, keyPath(path, n.Content[i].Value), out)
			}
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			typedValues(n.Content[i+1], t.Elem(), keyPath(path, n.Content[i].Value), out)
		}
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for i, c := range n.Content {
			typedValues(c, t.Elem(), indexPath(path, i), out)
		}
	}
}

// wants says what a value of Go type t is written as in the file.
func wants(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number (e.g. 12)"
	case reflect.String:
		return "a single value (e.g. a name, or a quoted \"${VAR}\")"
	case reflect.Struct:
		return "a mapping of keys to values (key: value, indented below it, or in { })"
	case reflect.Map:
		return "a mapping of names to values (e.g. {Authorization: \"Bearer ${TOKEN}\"})"
	case reflect.Slice:
		switch t.Elem() {
		case reflect.TypeFor[Duration]():
			return "a list of durations (e.g. [10s, 1m, 10m])"
		case reflect.TypeFor[string]():
			return "a list (e.g. [/id], one item too)"
		}
		return "a list of entries, each starting with \"- \""
	}
	return "another kind of value"
}

// tagName says what a YAML tag is in words.
func tagName(tag string) string {
	switch tag {
	case "!!str":
		return "text"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "true or false"
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!null":
		return "nothing"
	}
	return tag
}

// scrub returns err with every value that came from the environment, as an
// error can quote it, replaced by the reference it was written as. YAML
// quotes a value it cannot decode (`value`, or its first 7 bytes and "..."
// when longer than 10) and Duration quotes it whole (%q): a misplaced
// "${SECRET}" (verify: "${OM_SECRET}", dedup_window: ${TOKEN}) would put the
// secret, or its start, in an error that is printed and logged.
func (x *expander) scrub(err error) error {
	msg := scrubRefs(err.Error(), x.expanded)
	if msg == err.Error() {
		return err
	}
	return errors.New(msg) // not wrapped: the original text holds the value
}

// unusedPaths match the values each Unused part covers.
var unusedPaths = map[Unused]*regexp.Regexp{
	UnusedSources:        regexp.MustCompile(`^sources(\[|$)`),
	UnusedListen:         regexp.MustCompile(`^listen$`),
	UnusedHandlers:       regexp.MustCompile(`^pipelines\[\d+\]\.handler(\.|$)`),
	UnusedHandlerHeaders: regexp.MustCompile(`^pipelines\[\d+\]\.handler\.headers(\.|$)`),
}

func (x *expander) isUnused(path string) bool {
	for part, re := range unusedPaths {
		if x.unused&part != 0 && re.MatchString(path) {
			return true
		}
	}
	return false
}

func (x *expander) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			x.walk(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			x.walk(n.Content[i+1], keyPath(path, n.Content[i].Value))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			x.walk(c, indexPath(path, i))
		}
	case yaml.ScalarNode:
		if strings.Contains(n.Value, "${") {
			x.expand(n, path)
		}
	}
	// An alias shares its anchor's node, expanded where it is defined.
}

func (x *expander) expand(n *yaml.Node, path string) {
	raw := n.Value
	defer func() {
		ref := quotedRef{line: n.Line, path: path, raw: raw, value: n.Value}
		x.expanded = append(x.expanded, ref)
		if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
			x.quoted = append(x.quoted, ref)
		}
	}()
	n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
		sub := envRef.FindStringSubmatch(m)
		name := sub[1]
		if v := x.getenv(name); v != "" {
			return v
		}
		if strings.Contains(m, ":-") {
			x.defaulted = append(x.defaulted, name)
			return sub[2]
		}
		if x.isUnused(path) {
			x.unset = append(x.unset, name)
			return ""
		}
		x.missing = append(x.missing, fmt.Sprintf("%s (at %s, line %d)", name, path, n.Line))
		return ""
	})
	if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		// A plain ${PARTITIONS} may stand for a number; a plain value
		// that would read as null stays the string it is.
		n.Tag = ""
		if n.ShortTag() == "!!null" {
			n.Tag = "!!str"
		}
	}
}

// sourceName is what a source may be called: one URL path segment that
// needs no escaping.
var sourceName = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)

func (f File) validate() error {
	bases := map[string]bool{}
	for i, p := range f.Pipelines {
		if p.Base == "" {
			return fmt.Errorf("pipelines[%d]: base is required", i)
		}
		if p.RetryDelays != nil && len(p.RetryDelays) == 0 {
			// A pipeline has at least one retry tier (as --retry-delays
			// requires); an empty list must not quietly mean the default.
			return fmt.Errorf("pipelines[%d] (%s): retry_delays is an empty list: a pipeline needs at least one retry tier; list the delays (e.g. [10s, 1m, 10m]) or leave the key out for --retry-delays", i, p.Base)
		}
		if bases[p.Base] {
			return fmt.Errorf("pipelines[%d]: base %q appears twice", i, p.Base)
		}
		bases[p.Base] = true
	}
	names := map[string]bool{}
	for i, s := range f.Sources {
		if s.Name == "" {
			return fmt.Errorf("sources[%d]: name is required (it is the URL path /webhooks/<name>)", i)
		}
		if !sourceName.MatchString(s.Name) || s.Name == "." || s.Name == ".." {
			return fmt.Errorf("sources[%d]: name %q cannot be a URL path segment (/webhooks/<name>): use letters, digits, '.', '_', '-' and '~'", i, s.Name)
		}
		if s.Name == "unknown" { // producer.UnknownSource
			return fmt.Errorf("sources[%d]: name %q is reserved: the receiver's metrics count requests to paths of no source under it; choose another name", i, s.Name)
		}
		if names[s.Name] {
			return fmt.Errorf("sources[%d]: name %q appears twice", i, s.Name)
		}
		names[s.Name] = true
		if s.Pipeline != "" && len(f.Pipelines) > 0 && !bases[s.Pipeline] {
			return fmt.Errorf("source %q: pipeline %q is not among the pipelines of the file", s.Name, s.Pipeline)
		}
	}
	return nil
}

// ReadSecrets returns v with SecretFile and PreviousSecretFile read into
// Secret and PreviousSecret (trailing newlines trimmed).
func (v Verify) ReadSecrets() (Verify, error) {
	read := func(key, path string) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			if !filepath.IsAbs(path) {
				err = fmt.Errorf("%w (a relative path is read from the working directory, not the config file's)", err)
			}
			return "", fmt.Errorf("%s: %w", key, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	var err error
	if v.SecretFile != "" {
		if v.Secret != "" {
			return v, errors.New("set secret or secret_file, not both")
		}
		if v.Secret, err = read("secret_file", v.SecretFile); err != nil {
			return v, err
		}
	}
	if v.PreviousSecretFile != "" {
		if v.PreviousSecret != "" {
			// As for secret: which one would win is not obvious, and the
			// other would be ignored without a word.
			return v, errors.New("set previous_secret or previous_secret_file, not both")
		}
		if v.PreviousSecret, err = read("previous_secret_file", v.PreviousSecretFile); err != nil {
			return v, err
		}
	}
	return v, nil
}
