#!/usr/bin/env bash
# Runs a real Apache Kafka (KRaft) on 127.0.0.1 without Docker: Maven fetches the
# broker jars once into a cache outside the repository, and `java` runs
# kafka.Kafka from them. One node by default; with --brokers N (N >= 2) a
# cluster of N nodes, each a combined broker and controller, so the N nodes are
# also the controller quorum (a majority must be up for the cluster to work).
#
# Clients authenticate with SASL/SCRAM-SHA-512 (the users and their development
# passwords are in scripts/kafka/local-users, stored when the storage is
# formatted) and Kafka's own authorizer (StandardAuthorizer) allows only what
# an ACL allows: `admin` is the super user that creates topics and ACLs
# (topics/acls.ts). Brokers talk to each other as `admin` over the same
# listener; the KRaft controller listener uses SASL/PLAIN with a user of its
# own. KAFKA_SECURITY=plaintext runs the old way: no authentication, no ACLs.
#
# Usage: scripts/kafka-local.sh fetch|start|stop|status [--brokers N]
#        npm run kafka -- start --brokers 3
#
# `start` records the node count in the data dir (broker-count); `stop` and
# `status` without --brokers read it, so they find a cluster started on the
# same port (KAFKA_PORT, KAFKA_DATA_DIR) as well as a single broker.
#
# Environment (all optional):
#   KAFKA_BROKER_COUNT     nodes, as --brokers                     default 1 (stop, status: what start recorded)
#   KAFKA_PORT             first broker port (PLAINTEXT)           default 9092
#   KAFKA_PORTS            every broker port, comma-separated      default KAFKA_PORT, KAFKA_PORT+1, ...
#   KAFKA_CONTROLLER_PORT  first KRaft controller port             default KAFKA_PORT+1 (one node), KAFKA_PORT+10000 (cluster)
#   KAFKA_CONTROLLER_PORTS every controller port, comma-separated  default KAFKA_CONTROLLER_PORT, +1, ...
#   KAFKA_CACHE_DIR        jar cache                               default ~/.cache/pgo-kafka/<version>
#   KAFKA_DATA_DIR         data, configs and pid file(s)           default <cache>/data-<port> (one node), <cache>/cluster-<port> (cluster)
#   KAFKA_LOG_FILE         broker log (one node only)              default <datadir>/broker.log; node-<id>/broker.log in a cluster
#   KAFKA_START_TIMEOUT    seconds to wait for the broker(s)       default 90
#   KAFKA_HEAP_OPTS        JVM heap flags, per node                default -Xms256m -Xmx512m (one node), -Xms192m -Xmx384m (cluster)
#   KAFKA_LOG_LEVEL        root log4j level                        default WARN
#   KAFKA_SECURITY         sasl (SCRAM users, ACLs) or plaintext   default sasl
#   JAVA_HOME              java to use (else `java` on PATH)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"

KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n 1)"
[[ -n "$KAFKA_VERSION" ]] || { echo "kafka-local: no <kafka.version> in $POM" >&2; exit 1; }

COMMAND="${1:-}"
shift || true
BROKER_COUNT="${KAFKA_BROKER_COUNT:-}"
while (($# > 0)); do
  case "$1" in
    --brokers) BROKER_COUNT="${2:-}"; shift; shift || true ;;
    --brokers=*) BROKER_COUNT="${1#--brokers=}"; shift ;;
    *) echo "kafka-local: unknown option $1" >&2; exit 2 ;;
  esac
done

PORT="${KAFKA_PORT:-9092}"
CACHE_DIR="${KAFKA_CACHE_DIR:-${HOME}/.cache/pgo-kafka/${KAFKA_VERSION}}"

# Alive and not a zombie (a broker that died while still our child stays a zombie).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)"
  [[ "$state" != "Z" ]]
}

# The pid file $1 names a live process that is a broker (not a reused pid); prints the pid.
live_broker_in() {
  local pid
  [[ -f "$1" ]] || return 1
  pid="$(cat "$1" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

# The file where `start` records how many nodes it started, in the data dir.
COUNT_FILE_NAME="broker-count"
# For stop and status without a count: what start recorded for this port. Without
# KAFKA_DATA_DIR a cluster's data dir (cluster-<port>) is not a single broker's
# (data-<port>), so the cluster's record is read, unless a single broker of this port runs.
recorded_broker_count() {
  local count
  count="$(cat "${KAFKA_DATA_DIR:-$CACHE_DIR/cluster-$PORT}/$COUNT_FILE_NAME" 2>/dev/null || true)"
  if [[ ! "$count" =~ ^[1-9][0-9]*$ ]] || { [[ -z "${KAFKA_DATA_DIR:-}" ]] && live_broker_in "$CACHE_DIR/data-$PORT/broker.pid" >/dev/null; }; then
    count=1
  fi
  echo "$count"
}
if [[ -z "$BROKER_COUNT" ]]; then
  if [[ "$COMMAND" == stop || "$COMMAND" == status ]]; then BROKER_COUNT="$(recorded_broker_count)"; else BROKER_COUNT=1; fi
fi
[[ "$BROKER_COUNT" =~ ^[1-9][0-9]*$ ]] || { echo "kafka-local: --brokers needs a positive number, got '$BROKER_COUNT'" >&2; exit 2; }

if ((BROKER_COUNT == 1)); then CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"; else CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 10000))}"; fi
LIBS_DIR="$CACHE_DIR/libs"
FETCH_MARKER="$CACHE_DIR/.fetch-complete"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
SECURITY="${KAFKA_SECURITY:-sasl}"
[[ "$SECURITY" == sasl || "$SECURITY" == plaintext ]] || { echo "kafka-local: KAFKA_SECURITY must be sasl or plaintext, got '$SECURITY'" >&2; exit 2; }

# SCRAM users (name password), stored in every node's storage when it is formatted.
USERS_FILE="$SCRIPT_DIR/kafka/local-users"
USER_NAMES=(); USER_PASSWORDS=()
while read -r name password _; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  USER_NAMES+=("$name"); USER_PASSWORDS+=("$password")
done <"$USERS_FILE"
user_password() { local i; for i in "${!USER_NAMES[@]}"; do [[ "${USER_NAMES[i]}" == "$1" ]] && { echo "${USER_PASSWORDS[i]}"; return 0; }; done; return 1; }
ADMIN_PASSWORD="$(user_password admin)" || { echo "kafka-local: no admin user in $USERS_FILE" >&2; exit 1; }
# The KRaft controller listener's own user (SASL/PLAIN: SCRAM credentials live in the metadata log the controllers serve).
CONTROLLER_PASSWORD="controller-dev-password"
# What the storage was formatted with: a node formatted before SASL (or with other users) is formatted again.
USERS_MARK="$(printf '%s\n' "${USER_NAMES[@]}" "${USER_PASSWORDS[@]}" | sha256sum | cut -d' ' -f1)"

# Per node (index 0..N-1, node.id = index + 1): broker port, controller port,
# directory, log and pid file. One node keeps the layout it always had
# (data-<port>/broker.pid), so a broker started by an older script is still found.
IFS=',' read -r -a PORTS <<<"${KAFKA_PORTS:-}"
IFS=',' read -r -a CONTROLLER_PORTS <<<"${KAFKA_CONTROLLER_PORTS:-}"
NODE_DIRS=(); NODE_LOGS=(); NODE_PIDS=(); LAUNCHERS=()
if ((BROKER_COUNT == 1)); then
  DATA_DIR="${KAFKA_DATA_DIR:-$CACHE_DIR/data-$PORT}"
else
  DATA_DIR="${KAFKA_DATA_DIR:-$CACHE_DIR/cluster-$PORT}"
fi
BOOTSTRAP=""
VOTERS=""
for ((i = 0; i < BROKER_COUNT; i++)); do
  [[ -n "${PORTS[i]:-}" ]] || PORTS[i]=$((PORT + i))
  [[ -n "${CONTROLLER_PORTS[i]:-}" ]] || CONTROLLER_PORTS[i]=$((CONTROLLER_PORT + i))
  if ((BROKER_COUNT == 1)); then
    NODE_DIRS[i]="$DATA_DIR"
    NODE_LOGS[i]="${KAFKA_LOG_FILE:-$DATA_DIR/broker.log}"
  else
    NODE_DIRS[i]="$DATA_DIR/node-$((i + 1))"
    NODE_LOGS[i]="${NODE_DIRS[i]}/broker.log"
  fi
  NODE_PIDS[i]="${NODE_DIRS[i]}/broker.pid"
  BOOTSTRAP="$BOOTSTRAP${BOOTSTRAP:+,}127.0.0.1:${PORTS[i]}"
  VOTERS="$VOTERS${VOTERS:+,}$((i + 1))@127.0.0.1:${CONTROLLER_PORTS[i]}"
done
# The most durable settings the nodes allow: the product's three copies with two
# in sync on three or more nodes (docs/cluster.md), fewer on fewer nodes.
REPLICAS=$((BROKER_COUNT < 3 ? BROKER_COUNT : 3))
MIN_ISR=$((BROKER_COUNT < 3 ? 1 : 2))
if ((BROKER_COUNT == 1)); then DEFAULT_HEAP="-Xms256m -Xmx512m"; else DEFAULT_HEAP="-Xms192m -Xmx384m"; fi

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

# The pid file of node index $1 names a live process that is our broker.
broker_pid() { live_broker_in "${NODE_PIDS[$1]}"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A real Kafka round trip: the cluster lists every (unfenced) broker and answers
# a topic listing. Uses kafkajs from the repo's node_modules; without node/kafkajs
# it falls back to each broker's own "started" log line.
PROBE_JS='
const { createRequire } = require("module");
const { Kafka, logLevel } = createRequire(process.env.PROBE_ROOT + "/package.json")("kafkajs");
setTimeout(() => process.exit(1), 5000);
const sasl = process.env.PROBE_PASSWORD ? { mechanism: "scram-sha-512", username: "admin", password: process.env.PROBE_PASSWORD } : undefined;
const admin = new Kafka({ clientId: "kafka-local-probe", brokers: process.env.PROBE_BOOTSTRAP.split(","), sasl,
  logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 1000, requestTimeout: 3000 }).admin();
(async () => {
  await admin.connect();
  const cluster = await admin.describeCluster();
  if (cluster.brokers.length < Number(process.env.PROBE_EXPECT)) throw new Error("not every broker yet");
  await admin.listTopics();
  await admin.disconnect();
})().then(() => process.exit(0), () => process.exit(1));
'
have_node_probe() { command -v node >/dev/null && [[ -d "$REPO_ROOT/node_modules/kafkajs" ]]; }

cluster_ready() {
  local i
  for ((i = 0; i < BROKER_COUNT; i++)); do port_open "${PORTS[i]}" || return 1; done
  if have_node_probe; then
    local password=""
    [[ "$SECURITY" == sasl ]] && password="$ADMIN_PASSWORD"
    PROBE_ROOT="$REPO_ROOT" PROBE_BOOTSTRAP="$BOOTSTRAP" PROBE_EXPECT="$BROKER_COUNT" PROBE_PASSWORD="$password" node -e "$PROBE_JS" >/dev/null 2>&1
  else
    for ((i = 0; i < BROKER_COUNT; i++)); do grep -q 'Kafka Server started' "${NODE_LOGS[i]}" 2>/dev/null || return 1; done
  fi
}

pids_text() {
  local i out=""
  for ((i = 0; i < BROKER_COUNT; i++)); do out="$out${out:+, }pid $(cat "${NODE_PIDS[i]}" 2>/dev/null || echo '?')"; done
  echo "$out"
}

print_facts() {
  local i
  if ((BROKER_COUNT == 1)); then
    log "bootstrap  $BOOTSTRAP  (controller 127.0.0.1:${CONTROLLER_PORTS[0]})"
    log "log file   ${NODE_LOGS[0]}"
  else
    log "cluster of $BROKER_COUNT brokers, each also a KRaft controller; default replication factor $REPLICAS, min.insync.replicas $MIN_ISR"
    for ((i = 0; i < BROKER_COUNT; i++)); do
      log "node $((i + 1))     127.0.0.1:${PORTS[i]}  (controller 127.0.0.1:${CONTROLLER_PORTS[i]})  log ${NODE_LOGS[i]}"
    done
  fi
  log "data dir   $DATA_DIR"
  if [[ "$SECURITY" == sasl ]]; then
    log "SASL/SCRAM-SHA-512 with ACLs; users ${USER_NAMES[*]} (passwords in $USERS_FILE); admin is the super user"
  fi
  # The lines to copy into the services' environment (npm start reads them too).
  echo "KAFKA_BROKERS=$BOOTSTRAP"
  if ((BROKER_COUNT > 1)); then
    echo "KAFKA_REPLICATION_FACTOR=$REPLICAS"
    echo "KAFKA_MIN_INSYNC_REPLICAS=$MIN_ISR"
  fi
  if [[ "$SECURITY" == sasl ]]; then
    # Each service adds its own KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (docs/security.md).
    echo "KAFKA_SASL_MECHANISM=SCRAM-SHA-512"
  fi
}

write_configs() {
  local i=$1
  local dir="${NODE_DIRS[i]}" log_file="${NODE_LOGS[i]}"
  mkdir -p "$dir" "$(dirname "$log_file")"
  cat >"$dir/server.properties" <<EOF
# Generated by scripts/kafka-local.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=$((i + 1))
controller.quorum.voters=$VOTERS
EOF
  if [[ "$SECURITY" == sasl ]]; then
    cat >>"$dir/server.properties" <<EOF
# Clients and the other brokers authenticate with SCRAM-SHA-512 (users from scripts/kafka/local-users,
# stored at format time); the brokers talk to each other as admin. Loopback only: no TLS.
listeners=SASL_PLAINTEXT://127.0.0.1:${PORTS[i]},CONTROLLER://127.0.0.1:${CONTROLLER_PORTS[i]}
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:${PORTS[i]}
inter.broker.listener.name=SASL_PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
# The controller listener: SASL/PLAIN with one user, known only to this file.
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$CONTROLLER_PASSWORD" user_controller="$CONTROLLER_PASSWORD";
# Only what an ACL allows (topics/acls.ts); admin (setup, brokers) and controller are super users.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:controller
allow.everyone.if.no.acl.found=false
EOF
  else
    cat >>"$dir/server.properties" <<EOF
listeners=PLAINTEXT://127.0.0.1:${PORTS[i]},CONTROLLER://127.0.0.1:${CONTROLLER_PORTS[i]}
advertised.listeners=PLAINTEXT://127.0.0.1:${PORTS[i]}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
  fi
  cat >>"$dir/server.properties" <<EOF
log.dirs=$dir/kraft-logs
num.network.threads=2
num.io.threads=$((BROKER_COUNT == 1 ? 4 : 2))
num.partitions=1
default.replication.factor=$REPLICAS
min.insync.replicas=$MIN_ISR
unclean.leader.election.enable=false
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.num.partitions=1
offsets.topic.replication.factor=$REPLICAS
transaction.state.log.num.partitions=1
transaction.state.log.replication.factor=$REPLICAS
transaction.state.log.min.isr=$MIN_ISR
num.recovery.threads.per.data.dir=1
log.retention.hours=24
EOF
  if ((BROKER_COUNT > 1)); then
    # A killed broker is fenced, and its partitions get new leaders, once its
    # session times out: 3 s here instead of Kafka's 9 s, so a local failover
    # takes seconds. docs/cluster.md says what to use on real machines.
    cat >>"$dir/server.properties" <<EOF
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
EOF
  fi
  cat >"$dir/log4j.properties" <<EOF
# Generated by scripts/kafka-local.sh on every start.
log4j.rootLogger=${KAFKA_LOG_LEVEL:-WARN}, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$log_file
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

random_cluster_id() {
  local id=""
  # Same shape as `kafka-storage.sh random-uuid`: 16 random bytes, URL-safe base64, no padding.
  while [[ -z "$id" || "$id" == -* ]]; do id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"; done
  echo "$id"
}

# Every node of a cluster is formatted with the same cluster id, kept beside the nodes.
# The SCRAM users are stored when the storage is formatted (KIP-900): a node
# formatted before them (or with other users) could authenticate nobody, so with
# SASL its storage is moved aside and formatted anew.
format_storage() {
  local i=$1 cluster_id
  local dir="${NODE_DIRS[i]}"
  if [[ -f "$dir/kraft-logs/meta.properties" ]]; then
    [[ "$SECURITY" == plaintext || "$(cat "$dir/users.mark" 2>/dev/null)" == "$USERS_MARK" ]] && return 0
    local aside
    aside="$dir/kraft-logs.before-sasl-$(date +%Y%m%d%H%M%S)"
    log "$dir/kraft-logs was formatted without the users of $USERS_FILE: moved to $aside, formatting anew"
    mv "$dir/kraft-logs" "$aside"
  fi
  local scram=() n
  for n in "${!USER_NAMES[@]}"; do scram+=(--add-scram "SCRAM-SHA-512=[name=${USER_NAMES[n]},password=${USER_PASSWORDS[n]}]"); done
  if ((BROKER_COUNT == 1)); then
    cluster_id="$(random_cluster_id)"
  else
    [[ -f "$DATA_DIR/cluster.id" ]] || random_cluster_id >"$DATA_DIR/cluster.id"
    cluster_id="$(cat "$DATA_DIR/cluster.id")"
  fi
  log "formatting $dir/kraft-logs (cluster id $cluster_id)"
  "$JAVA" -Xmx256m -cp "$LIBS_DIR/*" -Dlog4j.configuration="file:$dir/log4j.properties" \
    kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" "${scram[@]}" </dev/null >/dev/null \
    || die "kafka-storage format failed for node $((i + 1)) (see ${NODE_LOGS[i]})"
  echo "$USERS_MARK" >"$dir/users.mark"
}

launch_node() {
  local i=$1
  local dir="${NODE_DIRS[i]}"
  write_configs "$i"
  : >"${NODE_LOGS[i]}"
  format_storage "$i"
  # setsid: own session, so the broker outlives the calling shell and its terminal.
  # The inner bash writes its own pid, then execs java, so the pid file holds java's pid.
  # shellcheck disable=SC2086
  setsid nohup bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-local "${NODE_PIDS[i]}" \
    "$JAVA" ${KAFKA_HEAP_OPTS:-$DEFAULT_HEAP} \
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$dir/log4j.properties" -Dkafka.logs.dir="$dir" \
    -cp "$LIBS_DIR/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"${NODE_LOGS[i]}" 2>&1 8>&- &
  LAUNCHERS[i]=$!
}

do_start() {
  local i
  # Serialise concurrent starts of the same broker(s) (fd 8 is closed for the JVMs below).
  mkdir -p "$DATA_DIR"
  exec 8>"$DATA_DIR/.start.lock"
  if command -v flock >/dev/null; then flock 8; fi
  # Nodes already running are kept; the others (never started, stopped, killed) start,
  # so `start` after a node was killed brings that node back into the cluster.
  local to_start=()
  for ((i = 0; i < BROKER_COUNT; i++)); do
    if broker_pid "$i" >/dev/null; then continue; fi
    rm -f "${NODE_PIDS[i]}"
    if port_open "${PORTS[i]}"; then die "127.0.0.1:${PORTS[i]} is already in use by another process"; fi
    if port_open "${CONTROLLER_PORTS[i]}"; then die "127.0.0.1:${CONTROLLER_PORTS[i]} (controller) is already in use by another process"; fi
    to_start+=("$i")
  done
  if ((${#to_start[@]} == 0)); then
    # Running as asked? A broker started without SASL (an older script, KAFKA_SECURITY=plaintext) answers no SASL client.
    local running=plaintext
    grep -q '^listeners=SASL_PLAINTEXT' "${NODE_DIRS[0]}/server.properties" 2>/dev/null && running=sasl
    [[ "$running" == "$SECURITY" ]] || die "the broker(s) on $BOOTSTRAP run with KAFKA_SECURITY=$running, not $SECURITY: stop them first (npm run kafka -- stop)"
    local waited=0
    until cluster_ready; do
      ((waited < START_TIMEOUT)) || die "broker(s) alive but $BOOTSTRAP does not answer with $BROKER_COUNT broker(s); see ${NODE_LOGS[*]}"
      sleep 1; waited=$((waited + 1))
    done
    echo "$BROKER_COUNT" >"$DATA_DIR/$COUNT_FILE_NAME"
    log "already running ($(pids_text))"
    print_facts
    return 0
  fi
  command -v "$JAVA" >/dev/null || die "java not found (set JAVA_HOME or put java on PATH)"

  do_fetch
  local started=$SECONDS
  # Recorded before the wait, so a stop without --brokers finds a start that hangs or is interrupted.
  echo "$BROKER_COUNT" >"$DATA_DIR/$COUNT_FILE_NAME"
  # A cluster's nodes start together: each waits for a quorum of controllers.
  for i in "${to_start[@]}"; do launch_node "$i"; done

  if ((BROKER_COUNT == 1)); then
    log "starting Apache Kafka $KAFKA_VERSION (KRaft) on $BOOTSTRAP"
  else
    log "starting Apache Kafka $KAFKA_VERSION (KRaft), ${#to_start[@]} of $BROKER_COUNT nodes, on $BOOTSTRAP"
  fi
  until cluster_ready; do
    for i in "${to_start[@]}"; do
      if ! alive "${LAUNCHERS[i]}" && ! broker_pid "$i" >/dev/null; then
        echo "kafka-local: node $((i + 1)) exited during startup; last log lines:" >&2
        tail -n 40 "${NODE_LOGS[i]}" >&2 || true
        rm -f "${NODE_PIDS[i]}"
        do_stop >/dev/null 2>&1 || true
        exit 1
      fi
    done
    if ((SECONDS - started >= START_TIMEOUT)); then
      echo "kafka-local: $BOOTSTRAP did not answer with $BROKER_COUNT broker(s) within ${START_TIMEOUT}s; last log lines:" >&2
      for i in "${to_start[@]}"; do tail -n 20 "${NODE_LOGS[i]}" >&2 || true; done
      do_stop >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 0.5
  done
  log "ready in $((SECONDS - started))s ($(pids_text))"
  print_facts
}

do_stop() {
  local i pid pids=()
  for ((i = 0; i < BROKER_COUNT; i++)); do
    if pid="$(broker_pid "$i")"; then pids+=("$pid"); else rm -f "${NODE_PIDS[i]}"; fi
  done
  if ((${#pids[@]} == 0)); then
    rm -f "$DATA_DIR/$COUNT_FILE_NAME"
    log "not running on $BOOTSTRAP"
    return 0
  fi
  log "stopping broker pid ${pids[*]} on $BOOTSTRAP"
  # Every node at once: stopped one by one, the last ones wait for a controller quorum that is gone.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  local tries any
  for ((tries = 0; tries < 60; tries++)); do
    any=0
    for pid in "${pids[@]}"; do if alive "$pid"; then any=1; fi; done
    ((any == 1)) || break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do
    if alive "$pid"; then
      log "broker pid $pid did not exit within 30s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while alive "$pid"; do sleep 0.2; done
    fi
  done
  for ((i = 0; i < BROKER_COUNT; i++)); do rm -f "${NODE_PIDS[i]}"; done
  rm -f "$DATA_DIR/$COUNT_FILE_NAME"
  log "stopped"
}

do_status() {
  local i pid up=0
  for ((i = 0; i < BROKER_COUNT; i++)); do
    if pid="$(broker_pid "$i")" && port_open "${PORTS[i]}"; then
      up=$((up + 1))
      ((BROKER_COUNT == 1)) || log "node $((i + 1)) running (pid $pid) on 127.0.0.1:${PORTS[i]}"
    elif ((BROKER_COUNT > 1)); then
      log "node $((i + 1)) not running on 127.0.0.1:${PORTS[i]}"
    fi
  done
  if ((up == BROKER_COUNT)); then
    if ((BROKER_COUNT == 1)); then log "running ($(pids_text)) on $BOOTSTRAP"; fi
    print_facts
    return 0
  fi
  if ((BROKER_COUNT == 1)); then log "not running on $BOOTSTRAP"; fi
  return 1
}

case "$COMMAND" in
  fetch) do_fetch; log "jars in $LIBS_DIR" ;;
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  *) echo "usage: $0 fetch|start|stop|status [--brokers N]" >&2; exit 2 ;;
esac
