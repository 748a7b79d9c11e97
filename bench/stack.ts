// The stack a benchmark drives: a Kafka broker of its own (or KAFKA_BROKERS),
// and per scenario a fresh namespace (topic and Redis key prefixes) with its
// topics and seed rules, the orchestrator instance(s) and one sandbox gateway
// per rule, each a real process whose CPU and memory can be read from /proc.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import Redis from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { z } from 'zod';
import { readRulesFile } from '../orchestrator/routing/rules';
import { authEnv } from '../runtime/auth';
import { commonEnv, parseConfig } from '../runtime/config';
import { signingEnv } from '../runtime/signing';
import { startLocalKafka } from '../scripts/kafka-local';
import { freePort, startServiceProcess, type ServiceProcess } from '../scripts/processes';
import { createStackTopics } from '../topics/create-cli';
import { topicNames, type TopicNames } from '../topics/names';
import type { GatewayRule } from '../topics/schemas';
import type { WatchedProcess } from './sampler';

const ROOT = path.resolve(__dirname, '..');
/** Longer than a service's own SHUTDOWN_GRACE_MS (15 s); then SIGKILL. */
const STOP_TIMEOUT_MS = 20_000;

const benchEnv = z.object({
  /** An existing broker to use instead of starting one. */
  KAFKA_BROKERS: z.string().min(1).optional(),
  /** Nodes of the local Kafka the benchmark starts (when KAFKA_BROKERS is not set): 3 measures a replicated cluster. */
  KAFKA_BROKER_COUNT: z.coerce.number().int().min(1).max(5).default(1),
  REDIS_URL: commonEnv.REDIS_URL,
  GATEWAY_RULES_FILE: z.string().default('config/gateways.json'),
  ...authEnv,
  ...signingEnv,
});
export type BenchEnv = z.infer<typeof benchEnv>;

/** The benchmarks' only read of the environment; the services they start inherit it too. */
export const loadBenchEnv = (): BenchEnv => parseConfig(benchEnv, process.env);

/** The seed rules file, relative to the repository when not absolute. */
export const rulesFileOf = (env: BenchEnv) => path.resolve(ROOT, env.GATEWAY_RULES_FILE);

export interface BenchBroker {
  brokers: string;
  /** For the report: the broker's version, and whether this run started it. */
  description: string;
  /** The brokers' JVMs, when this run started them, so their CPU can be sampled. */
  pids: number[];
  /** The topic layout for these brokers: three copies, two in sync, on a cluster of three or more. */
  topicEnv: { KAFKA_REPLICATION_FACTOR: string; KAFKA_MIN_INSYNC_REPLICAS: string };
  stop: () => Promise<void>;
}

/** The Apache Kafka version the local broker runs: the one scripts/kafka-local.sh fetches. */
function localKafkaVersion(): string {
  const pom = readFileSync(path.join(ROOT, 'scripts/kafka/pom.xml'), 'utf8');
  return /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom)?.[1] ?? 'unknown';
}

/**
 * KAFKA_BROKERS if set; otherwise a local broker (or a cluster of `count`
 * nodes: a benchmark's --brokers, else KAFKA_BROKER_COUNT) on free ports with
 * a data directory of its own, so it never meets a developer's stack on 9092
 * or a test run's broker, and is deleted with its data when the run ends.
 */
export async function startBenchBroker(env: BenchEnv, count = env.KAFKA_BROKER_COUNT): Promise<BenchBroker> {
  if (env.KAFKA_BROKERS !== undefined) {
    return {
      brokers: env.KAFKA_BROKERS,
      description: `KAFKA_BROKERS=${env.KAFKA_BROKERS} (version not known, not started here)`,
      pids: [],
      topicEnv: { KAFKA_REPLICATION_FACTOR: '1', KAFKA_MIN_INSYNC_REPLICAS: '1' },
      stop: async () => undefined,
    };
  }
  const ports: number[] = [];
  const controllerPorts: number[] = [];
  for (let index = 0; index < count; index++) {
    ports.push(await freePort());
    controllerPorts.push(await freePort());
  }
  const dataDir = mkdtempSync(path.join(tmpdir(), 'pgo-bench-kafka-'));
  // stopOnExit: if the benchmark dies before stop(), the reaper stops the broker(s).
  const options = { port: ports[0]!, ports, controllerPorts, brokers: count, dataDir, quiet: true, stopOnExit: true };
  const removeData = () => rmSync(dataDir, { recursive: true, force: true });
  const replicas = Math.min(3, count);
  const inSync = count >= 3 ? 2 : 1;
  try {
    const kafka = await startLocalKafka(options);
    return {
      brokers: kafka.brokers,
      description:
        count === 1
          ? `Apache Kafka ${localKafkaVersion()} (KRaft, single node, started by the benchmark on ${kafka.brokers})`
          : `Apache Kafka ${localKafkaVersion()} (KRaft, ${count} nodes on this machine, replication factor ${replicas}, min.insync.replicas ${inSync}, started by the benchmark on ${kafka.brokers})`,
      pids: kafka.nodes.flatMap((node) => node.pid() ?? []),
      topicEnv: { KAFKA_REPLICATION_FACTOR: String(replicas), KAFKA_MIN_INSYNC_REPLICAS: String(inSync) },
      stop: async () => {
        await kafka.stop();
        removeData();
      },
    };
  } catch (error) {
    removeData();
    throw error;
  }
}

export interface StackOptions {
  /** Orchestrator instances (the failover benchmark kills one of two). */
  orchestrators: number;
  /** Where the services' logs (and CPU profiles) go. */
  runDir: string;
  logLevel: string;
  /** Node flags for the orchestrator processes, e.g. --cpu-prof. */
  orchestratorNodeArgs?: string[];
  /** Node flags for the gateway worker processes. */
  gatewayNodeArgs?: string[];
}

export interface BenchStack {
  topics: TopicNames;
  kafka: Kafka;
  rules: GatewayRule[];
  orchestrators: ServiceProcess[];
  gateways: Map<string, ServiceProcess>;
  /** Every process of the stack, named for the report. */
  processes: WatchedProcess[];
  /** Stops the services (SIGTERM, then SIGKILL), deletes the namespace's topics and Redis keys. */
  stop: () => Promise<void>;
}

/** SIGTERM, then SIGKILL if it has not exited within the timeout; a process already gone is left alone. */
export async function stopProcess(service: ServiceProcess): Promise<void> {
  if (service.child.exitCode !== null || service.child.signalCode !== null) return;
  service.child.kill('SIGTERM');
  const stopped = await Promise.race([service.exited.then(() => true), delay(STOP_TIMEOUT_MS, false)]);
  if (!stopped) {
    service.child.kill('SIGKILL');
    await service.exited;
  }
}

/** UNLINKs every key under the prefix, a batch at a time (SCAN, not KEYS: the Redis may be shared). */
async function deleteRedisKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** A namespace with its topics and seed rules, its gateways, then its orchestrator(s); each a process. */
export async function startBenchStack(env: BenchEnv, broker: BenchBroker, options: StackOptions): Promise<BenchStack> {
  const id = randomUUID().slice(0, 8);
  const topicPrefix = `bench-${id}.`;
  const redisKeyPrefix = `bench:${id}:`;
  const rulesFile = rulesFileOf(env);
  const rules = readRulesFile(rulesFile);
  const kafka = new Kafka({ clientId: `bench-${id}`, brokers: broker.brokers.split(','), logLevel: logLevel.NOTHING });
  await createStackTopics({ KAFKA_BROKERS: broker.brokers, TOPIC_PREFIX: topicPrefix, GATEWAY_RULES_FILE: rulesFile, RULES_SIGNING_KEY: env.RULES_SIGNING_KEY, ...broker.topicEnv });
  const serviceEnv = { KAFKA_BROKERS: broker.brokers, REDIS_URL: env.REDIS_URL, REDIS_KEY_PREFIX: redisKeyPrefix, TOPIC_PREFIX: topicPrefix, LOG_LEVEL: options.logLevel };
  const logFile = (name: string) => path.join(options.runDir, `${name}.log`);

  const started: ServiceProcess[] = [];
  const stop = async () => {
    await Promise.all(started.map(stopProcess));
    await deleteRedisKeys(env.REDIS_URL, redisKeyPrefix);
    const admin = kafka.admin();
    await admin.connect();
    try {
      const mine = (await admin.listTopics()).filter((topic) => topic.startsWith(topicPrefix));
      await admin.deleteTopics({ topics: mine });
    } finally {
      await admin.disconnect();
    }
  };
  const start = async (name: string, script: string, extraEnv: Record<string, string>, nodeArgs: string[] = []) => {
    const service = await startServiceProcess(script, { ...serviceEnv, ...extraEnv }, { readyTimeoutMs: 90_000, nodeArgs, logFile: logFile(name) });
    started.push(service);
    return service;
  };
  try {
    const gateways = new Map<string, ServiceProcess>();
    for (const { gatewayId } of rules) {
      // Zero added latency: the benchmark measures the orchestrator, not a simulated PSP.
      gateways.set(gatewayId, await start(`gateway-${gatewayId}`, 'gateways/main.ts', { GATEWAY_ID: gatewayId, SANDBOX_LATENCY_MS: '0' }, options.gatewayNodeArgs));
    }
    const orchestrators: ServiceProcess[] = [];
    for (let instance = 1; instance <= options.orchestrators; instance++) {
      orchestrators.push(await start(`orchestrator-${instance}`, 'orchestrator/main.ts', { INSTANCE_ID: `bench-${instance}` }, options.orchestratorNodeArgs));
    }
    const named = (name: string, service: ServiceProcess) => (service.child.pid === undefined ? [] : [{ name, pid: service.child.pid }]);
    const processes = [
      ...orchestrators.flatMap((service, index) => named(options.orchestrators === 1 ? 'orchestrator' : `orchestrator-${index + 1}`, service)),
      ...[...gateways].flatMap(([gatewayId, service]) => named(`gateway-${gatewayId}`, service)),
    ];
    return { topics: topicNames(topicPrefix), kafka, rules, orchestrators, gateways, processes, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
