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
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is the YAML file's schema. Every key is optional.
type File struct {
	Brokers   []string   `yaml:"brokers"`
	Listen    string     `yaml:"listen"`
	Pipelines []Pipeline `yaml:"pipelines"`
	Sources   []Source   `yaml:"sources"`

	// Defaulted names the ${NAME:-default} references whose variable was
	// unset, so their default was used. Not read from YAML.
	Defaulted []string `yaml:"-"`
	// Unset names the ${NAME} references whose variable was unset and that
	// LoadWithoutSecrets expanded to "" (Load refuses them).
	Unset []string `yaml:"-"`
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
	URL     string   `yaml:"url"`
	Timeout Duration `yaml:"timeout"`
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
	return load(path, getenv, false)
}

// LoadWithoutSecrets is Load for commands that use the file's brokers and
// pipelines but none of its sources (consume, topics): a reference to an
// unset variable, typically a source's secret that is not deployed where
// these run, expands to "" and is listed in File.Unset instead of refusing
// the file. The sources of the result must not be used.
func LoadWithoutSecrets(path string, getenv func(string) string) (File, error) {
	return load(path, getenv, true)
}

func load(path string, getenv func(string) string, allowUnset bool) (File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("read config: %w", err)
	}
	f, err := parse(raw, getenv, allowUnset)
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
	return parse(raw, getenv, false)
}

func parse(raw []byte, getenv func(string) string, allowUnset bool) (File, error) {
	var missing, defaulted []string
	expanded := envRef.ReplaceAllFunc(raw, func(m []byte) []byte {
		sub := envRef.FindSubmatch(m)
		name := string(sub[1])
		if v := getenv(name); v != "" {
			return []byte(v)
		}
		if sub[2] != nil || bytes.Contains(m, []byte(":-")) {
			defaulted = append(defaulted, name)
			return sub[2]
		}
		missing = append(missing, name)
		return nil
	})
	if len(missing) > 0 && !allowUnset {
		return File{}, fmt.Errorf("environment variable(s) %s referenced but not set: export them or remove the reference", strings.Join(missing, ", "))
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)                                             // a typo in a key is an error, not a silent default
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) { // empty file: empty config
		return File{}, fmt.Errorf("parse YAML: %w", err)
	}
	if err := f.validate(); err != nil {
		return File{}, err
	}
	f.Defaulted = defaulted
	f.Unset = missing
	return f, nil
}

func (f File) validate() error {
	bases := map[string]bool{}
	for i, p := range f.Pipelines {
		if p.Base == "" {
			return fmt.Errorf("pipelines[%d]: base is required", i)
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
	read := func(path string) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	var err error
	if v.SecretFile != "" {
		if v.Secret != "" {
			return v, errors.New("set secret or secret_file, not both")
		}
		if v.Secret, err = read(v.SecretFile); err != nil {
			return v, err
		}
	}
	if v.PreviousSecretFile != "" {
		if v.PreviousSecret, err = read(v.PreviousSecretFile); err != nil {
			return v, err
		}
	}
	return v, nil
}
