package main

import (
	"fmt"

	"github.com/hookline/hookline/internal/kafkaconf"
	"github.com/hookline/hookline/topics"
)

// filePlans returns the Kafka settings and the topic plan of every pipeline
// of the YAML file at path, resolved exactly as run, serve and consume
// resolve them: appFlags.resolve, with fs's pipeline flags (and their
// HOOKLINE_* variables) winning over the file or filling its gaps, a
// pipeline flag refused as ambiguous with several pipelines, and the file's
// brokers used when --brokers is not set. fs has the Kafka and pipeline
// flags but none of the receiver's or consumer's, which resolve then sees as
// unset; sources are not resolved. asked[i] says whether the partition
// count of plans[i] was asked for (by the file or --partitions) rather than
// the default, so check compares the existing count with it.
func filePlans(env *environment, fs *flagSet, kf *kafkaFlags, pf *pipelineFlags, path string) (kc kafkaconf.Config, plans []topics.Plan, asked []bool, err error) {
	a := &appFlags{fs: fs, kafka: kf, pipeline: pf, configPath: path}
	s, err := a.resolve(env, 0)
	if err != nil {
		return kafkaconf.Config{}, nil, nil, err
	}
	for _, msg := range s.warnings {
		fmt.Fprintln(env.stderr, "note: "+msg)
	}
	for _, p := range s.pipelines {
		plans = append(plans, p.plan)
		asked = append(asked, p.partitionsAsked)
	}
	return s.kafka, plans, asked, nil
}

// noteConfigNotRead tells on stderr that cmd (dlq ls, dlq show, replay)
// ignores HOOKLINE_CONFIG when it is set and --base is not, so the operator
// does not look at the default pipeline believing it is the file's.
func noteConfigNotRead(env *environment, fs *flagSet, cmd string) {
	if path := env.getenv(envName("config")); path != "" && !fs.set("base") {
		fmt.Fprintf(env.stderr, "note: %s does not read the config file (HOOKLINE_CONFIG=%s): it uses --base, default %s; pass --base for another pipeline\n",
			cmd, path, topics.DefaultBase)
	}
}
