#!/usr/bin/env bash
# Runs a real single-node Apache Kafka broker (KRaft, combined broker+controller)
# on 127.0.0.1 without Docker: Maven fetches the broker jars once into a cache
# outside the repository, and `java` runs kafka.Kafka from them.
#
# Usage: scripts/kafka-local.sh fetch|start|stop|status
#
# Environment (all optional):
#   KAFKA_PORT             broker port (PLAINTEXT)                 default 9092
#   KAFKA_CONTROLLER_PORT  KRaft controller port                   default KAFKA_PORT+1
#   KAFKA_CACHE_DIR        jar cache                               default ~/.cache/pgo-kafka/<version>
#   KAFKA_DATA_DIR         data, configs and pid file              default <cache>/data-<port>
#   KAFKA_LOG_FILE         broker log                              default <datadir>/broker.log
#   KAFKA_START_TIMEOUT    seconds to wait for the broker          default 90
#   KAFKA_HEAP_OPTS        JVM heap flags                          default -Xms256m -Xmx512m
#   KAFKA_LOG_LEVEL        root log4j level                        default WARN
#   JAVA_HOME              java to use (else `java` on PATH)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"

KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n 1)"
[[ -n "$KAFKA_VERSION" ]] || { echo "kafka-local: no <kafka.version> in $POM" >&2; exit 1; }

PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
CACHE_DIR="${KAFKA_CACHE_DIR:-${HOME}/.cache/pgo-kafka/${KAFKA_VERSION}}"
LIBS_DIR="$CACHE_DIR/libs"
FETCH_MARKER="$CACHE_DIR/.fetch-complete"
DATA_DIR="${KAFKA_DATA_DIR:-$CACHE_DIR/data-$PORT}"
LOG_FILE="${KAFKA_LOG_FILE:-$DATA_DIR/broker.log}"
PID_FILE="$DATA_DIR/broker.pid"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
BOOTSTRAP="127.0.0.1:$PORT"

if [[ -n "${JAVA_HOME:-}" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA="java"; fi

log() { echo "kafka-local: $*"; }
die() { echo "kafka-local: $*" >&2; exit 1; }

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

fetch_done() { [[ -f "$FETCH_MARKER" && "$(cat "$FETCH_MARKER")" == "$(pom_hash)" ]]; }

do_fetch() {
  if fetch_done; then return 0; fi
  command -v mvn >/dev/null || die "mvn is not on PATH"
  mkdir -p "$CACHE_DIR"
  # Two starts on different ports may fetch at once: one fetches, the other waits.
  exec 9>"$CACHE_DIR/.fetch.lock"
  if command -v flock >/dev/null; then flock 9; fi
  if fetch_done; then exec 9>&-; return 0; fi
  log "fetching Apache Kafka $KAFKA_VERSION jars with Maven into $LIBS_DIR (first run only)"
  local started=$SECONDS
  rm -rf "$LIBS_DIR.tmp"
  # -B -q and no stdin: works without a TTY (CI). The sed drops the stray colour
  # resets that some Maven builds print even in batch mode.
  mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIBS_DIR.tmp" </dev/null 2>&1 \
    | sed 's/\x1b\[[0-9;]*m//g' >&2 \
    || die "mvn dependency:copy-dependencies failed"
  ls "$LIBS_DIR.tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null || die "kafka_2.13-$KAFKA_VERSION.jar missing after fetch"
  rm -rf "$LIBS_DIR"
  mv "$LIBS_DIR.tmp" "$LIBS_DIR"
  pom_hash >"$FETCH_MARKER"
  exec 9>&-
  log "fetched $(ls "$LIBS_DIR" | wc -l) jars in $((SECONDS - started))s"
}

# Alive and not a zombie (a broker that died while still our child stays a zombie).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)"
  [[ "$state" != "Z" ]]
}

# The pid file's process is alive and is our broker (not a reused pid).
broker_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A real Kafka round trip: the cluster lists an (unfenced) broker and answers a
# topic listing. Uses kafkajs from the repo's node_modules; without node/kafkajs
# it falls back to the broker's own "started" log line.
PROBE_JS='
const { createRequire } = require("module");
const { Kafka, logLevel } = createRequire(process.env.PROBE_ROOT + "/package.json")("kafkajs");
setTimeout(() => process.exit(1), 5000);
const admin = new Kafka({ clientId: "kafka-local-probe", brokers: [process.env.PROBE_BOOTSTRAP],
  logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 1000, requestTimeout: 3000 }).admin();
(async () => {
  await admin.connect();
  const cluster = await admin.describeCluster();
  if (cluster.brokers.length === 0) throw new Error("no broker yet");
  await admin.listTopics();
  await admin.disconnect();
})().then(() => process.exit(0), () => process.exit(1));
'
have_node_probe() { command -v node >/dev/null && [[ -d "$REPO_ROOT/node_modules/kafkajs" ]]; }

broker_ready() {
  port_open "$PORT" || return 1
  if have_node_probe; then
    PROBE_ROOT="$REPO_ROOT" PROBE_BOOTSTRAP="$BOOTSTRAP" node -e "$PROBE_JS" >/dev/null 2>&1
  else
    grep -q 'Kafka Server started' "$LOG_FILE" 2>/dev/null
  fi
}

print_facts() {
  log "bootstrap  $BOOTSTRAP  (controller 127.0.0.1:$CONTROLLER_PORT)"
  log "log file   $LOG_FILE"
  log "data dir   $DATA_DIR"
}

write_configs() {
  mkdir -p "$DATA_DIR" "$(dirname "$LOG_FILE")"
  cat >"$DATA_DIR/server.properties" <<EOF
# Generated by scripts/kafka-local.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR/kraft-logs
num.network.threads=2
num.io.threads=4
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
num.recovery.threads.per.data.dir=1
log.retention.hours=24
EOF
  cat >"$DATA_DIR/log4j.properties" <<EOF
# Generated by scripts/kafka-local.sh on every start.
log4j.rootLogger=${KAFKA_LOG_LEVEL:-WARN}, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$LOG_FILE
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
# Lifecycle lines (startup, shutdown) stay visible at the default WARN level.
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
log4j.logger.kafka.server.ControllerServer=INFO
log4j.logger.kafka.server.SharedServer=INFO
EOF
}

format_storage() {
  [[ -f "$DATA_DIR/kraft-logs/meta.properties" ]] && return 0
  local cluster_id
  # Same shape as `kafka-storage.sh random-uuid`: 16 random bytes, URL-safe base64, no padding.
  cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  while [[ "$cluster_id" == -* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  log "formatting $DATA_DIR/kraft-logs (cluster id $cluster_id)"
  "$JAVA" -Xmx256m -cp "$LIBS_DIR/*" -Dlog4j.configuration="file:$DATA_DIR/log4j.properties" \
    kafka.tools.StorageTool format -t "$cluster_id" -c "$DATA_DIR/server.properties" </dev/null \
    || die "kafka-storage format failed (see $LOG_FILE)"
}

do_start() {
  local pid
  # Serialise concurrent starts of the same broker (fd 8 is closed for the JVM below).
  mkdir -p "$DATA_DIR"
  exec 8>"$DATA_DIR/.start.lock"
  if command -v flock >/dev/null; then flock 8; fi
  if pid="$(broker_pid)"; then
    local waited=0
    until broker_ready; do
      ((waited < START_TIMEOUT)) || die "broker pid $pid is alive but $BOOTSTRAP does not answer; see $LOG_FILE"
      sleep 1; waited=$((waited + 1))
    done
    log "already running (pid $pid)"
    print_facts
    return 0
  fi
  rm -f "$PID_FILE"
  if port_open "$PORT"; then die "127.0.0.1:$PORT is already in use by another process"; fi
  if port_open "$CONTROLLER_PORT"; then die "127.0.0.1:$CONTROLLER_PORT (controller) is already in use by another process"; fi
  command -v "$JAVA" >/dev/null || die "java not found (set JAVA_HOME or put java on PATH)"

  do_fetch
  write_configs
  : >"$LOG_FILE"
  format_storage

  local started=$SECONDS
  # setsid: own session, so the broker outlives the calling shell and its terminal.
  # The inner bash writes its own pid, then execs java, so the pid file holds java's pid.
  # shellcheck disable=SC2086
  setsid nohup bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-local "$PID_FILE" \
    "$JAVA" ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} \
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$DATA_DIR/log4j.properties" -Dkafka.logs.dir="$DATA_DIR" \
    -cp "$LIBS_DIR/*" kafka.Kafka "$DATA_DIR/server.properties" \
    </dev/null >>"$LOG_FILE" 2>&1 8>&- &
  local launcher=$!

  log "starting Apache Kafka $KAFKA_VERSION (KRaft) on $BOOTSTRAP"
  until broker_ready; do
    if ! alive "$launcher" && ! broker_pid >/dev/null; then
      echo "kafka-local: broker exited during startup; last log lines:" >&2
      tail -n 40 "$LOG_FILE" >&2 || true
      rm -f "$PID_FILE"
      exit 1
    fi
    if ((SECONDS - started >= START_TIMEOUT)); then
      echo "kafka-local: broker did not answer on $BOOTSTRAP within ${START_TIMEOUT}s; last log lines:" >&2
      tail -n 40 "$LOG_FILE" >&2 || true
      do_stop >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 0.5
  done
  log "ready in $((SECONDS - started))s (pid $(cat "$PID_FILE"))"
  print_facts
}

do_stop() {
  local pid
  if ! pid="$(broker_pid)"; then
    rm -f "$PID_FILE"
    log "not running on $BOOTSTRAP"
    return 0
  fi
  log "stopping broker pid $pid on $BOOTSTRAP"
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 60; i++)); do
    alive "$pid" || break
    sleep 0.5
  done
  if alive "$pid"; then
    log "broker did not exit within 30s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.2; done
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

do_status() {
  local pid
  if pid="$(broker_pid)" && port_open "$PORT"; then
    log "running (pid $pid) on $BOOTSTRAP"
    print_facts
    return 0
  fi
  log "not running on $BOOTSTRAP"
  return 1
}

case "${1:-}" in
  fetch) do_fetch; log "jars in $LIBS_DIR" ;;
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
