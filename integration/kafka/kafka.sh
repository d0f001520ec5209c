#!/usr/bin/env bash
# Real single-node Apache Kafka (KRaft, broker+controller in one JVM) for the
# integration tests, assembled from Maven Central: no Docker, no tarball.
#
#   kafka.sh up       assemble the classpath (cached), format a fresh data dir,
#                     start the broker in the background, wait until the port
#                     answers, print KAFKA_BROKERS=127.0.0.1:<port>
#   kafka.sh start    start again on the data of the last `up` (a restart)
#   kafka.sh down     stop the broker (SIGTERM, SIGKILL after 30 s)
#   kafka.sh status   exit 0 when the broker runs and its port answers
#   kafka.sh logs     tail the broker log (extra args go to tail, e.g. -f)
#
# Environment (all optional):
#   KAFKA_PORT               PLAINTEXT listener port       (default 19092)
#   KAFKA_CONTROLLER_PORT    KRaft CONTROLLER port          (default 19093)
#   HOOKLINE_KAFKA_CACHE     classpath cache dir            (default ~/.cache/hookline/kafka-<version>)
#   HOOKLINE_KAFKA_STATE     config, data, log and pid dir  (default /tmp/hookline-kafka)
#   HOOKLINE_KAFKA_HEAP      JVM heap flags                 (default -Xmx512m)
#   HOOKLINE_KAFKA_JAVA_OPTS extra JVM flags
#   HOOKLINE_KAFKA_LOG_LEVEL root log level in kafka.log    (default WARN)
#   HOOKLINE_KAFKA_START_TIMEOUT seconds to wait for the port (default 60)
#   JAVA_HOME                java to use (else java on PATH; Kafka 4 needs 17+)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM="$SCRIPT_DIR/pom.xml"
LOG4J_CONFIG="$SCRIPT_DIR/log4j2.properties"

KAFKA_VERSION=$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$POM" | head -n 1)
[[ -n "$KAFKA_VERSION" ]] || { echo "kafka.sh: no <kafka.version> in $POM" >&2; exit 1; }

KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
CACHE_DIR=${HOOKLINE_KAFKA_CACHE:-${HOME:-/tmp}/.cache/hookline/kafka-$KAFKA_VERSION}
STATE_DIR=${HOOKLINE_KAFKA_STATE:-/tmp/hookline-kafka}
HEAP_OPTS=${HOOKLINE_KAFKA_HEAP:--Xmx512m}
START_TIMEOUT=${HOOKLINE_KAFKA_START_TIMEOUT:-60}
STOP_TIMEOUT=30

LIB_DIR="$CACHE_DIR/lib"
MARKER="$CACHE_DIR/.complete"
PID_FILE="$STATE_DIR/kafka.pid"
LOG_FILE="$STATE_DIR/kafka.log"
PROPS="$STATE_DIR/server.properties"
DATA_DIR="$STATE_DIR/data"

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA=java
fi

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# alive PID: true when PID is a live (not zombie) Kafka broker JVM. Checks the
# command line so a recycled pid is never mistaken for the broker.
alive() {
  local pid=$1 state
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/stat" ]] || return 1
  state=$(sed -n 's/^[0-9]* (.*) \(.\) .*/\1/p' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ "$state" != Z && "$state" != X ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

read_pid() {
  [[ -f "$PID_FILE" ]] && cat "$PID_FILE" 2>/dev/null || true
}

# ---------------------------------------------------------------------------

assemble() {
  local want have=""
  want=$(sha256sum "$POM" | cut -d' ' -f1)
  [[ -f "$MARKER" ]] && have=$(cat "$MARKER")
  if [[ "$have" == "$want" && -d "$LIB_DIR" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found: needed once to assemble the Kafka classpath"
  log "assembling Kafka $KAFKA_VERSION classpath into $LIB_DIR (once; cached)"
  mkdir -p "$CACHE_DIR"
  rm -f "$MARKER"
  local tmp="$CACHE_DIR/lib.tmp.$$"
  rm -rf "$tmp"
  if ! mvn -B -q -f "$POM" \
      org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
    rm -rf "$tmp"
    die "mvn copy-dependencies failed"
  fi
  ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 \
    || { rm -rf "$tmp"; die "assembled classpath lacks kafka_2.13-$KAFKA_VERSION.jar"; }
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  echo "$want" >"$MARKER"
  log "classpath ready: $(ls "$LIB_DIR" | wc -l) jars"
}

write_props() {
  cat >"$PROPS" <<EOF
# Written by integration/kafka/kafka.sh; rewritten on every 'up'.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA_DIR

# Single node: every internal topic RF 1 / min ISR 1, few partitions.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1

# Tests create their topics explicitly and want fast group joins.
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0

# Log cleaner sized for -Xmx512m, and quick enough for compaction tests.
log.cleaner.dedupe.buffer.size=16777216
log.cleaner.backoff.ms=500
log.segment.delete.delay.ms=1000
EOF
}

stop_broker() {
  local pid
  pid=$(read_pid)
  if [[ -n "$pid" ]] && alive "$pid"; then
    log "stopping broker pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if alive "$pid"; then
      log "broker pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
      alive "$pid" && die "broker pid $pid still running after SIGKILL"
    fi
  fi
  rm -f "$PID_FILE"
}

cmd_up() {
  assemble
  mkdir -p "$STATE_DIR"
  stop_broker

  if port_open "$KAFKA_PORT"; then
    die "port $KAFKA_PORT is already in use by another process (set KAFKA_PORT)"
  fi
  if port_open "$KAFKA_CONTROLLER_PORT"; then
    die "port $KAFKA_CONTROLLER_PORT is already in use by another process (set KAFKA_CONTROLLER_PORT)"
  fi

  local cp="$LIB_DIR/*"
  local -a jvm=($HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$LOG4J_CONFIG" ${HOOKLINE_KAFKA_JAVA_OPTS:-})

  if [[ "${1:-fresh}" == resume ]]; then
    # `start`: keep the data of an earlier `up` (a broker restart, as in a
    # failure test), so topics and records survive.
    [[ -f "$PROPS" && -d "$DATA_DIR" ]] || die "nothing to resume in $STATE_DIR: run 'kafka.sh up' first"
  else
    # A used data dir fails to format: always start from an empty one.
    rm -rf "$DATA_DIR"
    mkdir -p "$DATA_DIR"
    write_props
  fi
  : >"$LOG_FILE"

  if [[ "${1:-fresh}" != resume ]]; then
  local cluster_id
  cluster_id=$("$JAVA" -Xmx128m "-Dlog4j2.configurationFile=$LOG4J_CONFIG" -cp "$cp" \
    kafka.tools.StorageTool random-uuid 2>>"$LOG_FILE" | tail -n 1)
  [[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] \
    || { tail -n 50 "$LOG_FILE" >&2; die "StorageTool random-uuid gave '$cluster_id'"; }

  if ! "$JAVA" -Xmx256m "-Dlog4j2.configurationFile=$LOG4J_CONFIG" -cp "$cp" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" >>"$LOG_FILE" 2>&1; then
    tail -n 50 "$LOG_FILE" >&2
    die "StorageTool format failed"
  fi
  fi

  nohup "$JAVA" "${jvm[@]}" -cp "$cp" kafka.Kafka "$PROPS" \
    >>"$LOG_FILE" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PID_FILE"

  local deadline=$((SECONDS + START_TIMEOUT))
  until port_open "$KAFKA_PORT"; do
    if ! alive "$pid"; then
      log "broker exited during startup; last 50 log lines of $LOG_FILE:"
      tail -n 50 "$LOG_FILE" >&2
      rm -f "$PID_FILE"
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      log "broker did not open port $KAFKA_PORT within ${START_TIMEOUT}s; last 50 log lines of $LOG_FILE:"
      tail -n 50 "$LOG_FILE" >&2
      stop_broker
      exit 1
    fi
    sleep 0.2
  done
  log "broker $KAFKA_VERSION up (pid $pid, log $LOG_FILE)"
  echo "KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
}

cmd_down() {
  local pid
  pid=$(read_pid)
  if [[ -z "$pid" ]] || ! alive "$pid"; then
    rm -f "$PID_FILE"
    if port_open "$KAFKA_PORT"; then
      log "no broker started by this script (state in $STATE_DIR), but something listens on port $KAFKA_PORT: left alone"
    else
      log "broker not running"
    fi
    return 0
  fi
  stop_broker
  local deadline=$((SECONDS + 10))
  while port_open "$KAFKA_PORT" && ((SECONDS < deadline)); do sleep 0.2; done
  log "broker stopped"
}

cmd_status() {
  local pid
  pid=$(read_pid)
  if [[ -n "$pid" ]] && alive "$pid" && port_open "$KAFKA_PORT"; then
    echo "KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  log "broker not running"
  return 1
}

cmd_logs() {
  [[ -f "$LOG_FILE" ]] || die "no log at $LOG_FILE"
  tail -n 200 "$@" "$LOG_FILE"
}

case "${1:-}" in
  up) cmd_up fresh ;;
  start) cmd_up resume ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  *) echo "usage: $0 up|start|down|status|logs [tail args]" >&2; exit 2 ;;
esac
