// Starts and stops the local Apache Kafka (KRaft, no Docker) through
// scripts/kafka-local.sh: one broker, or a cluster of N brokers that are also
// the controller quorum. Used by the jest globalSetup, `npm start`, the
// benchmarks and the cluster tests.
//
// The broker's identity (ports, controller ports, data dir, log file, node
// count, security) comes only from the options, so a test broker and the default one can
// run side by side; every other KAFKA_* / JAVA_HOME variable of this process is
// passed on to the script.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { reapOnExit } from './reaper';

const SCRIPT = path.join(__dirname, 'kafka-local.sh');

export interface LocalKafkaOptions {
  /** The first broker's port; the others follow it unless `ports` names them. */
  port: number;
  /** Defaults to port + 1 for one broker, port + 10000 for a cluster (then +1 per node). */
  controllerPort?: number;
  /** Nodes of the cluster (each a broker and a KRaft controller); 1 by default. */
  brokers?: number;
  /** Every broker's port, one per node, when they must not be consecutive (free ports in tests). */
  ports?: number[];
  /** Every controller's port, one per node. */
  controllerPorts?: number[];
  dataDir?: string;
  /** One broker only; a cluster's logs are in `<dataDir>/node-<id>/broker.log`. */
  logFile?: string;
  /** Do not echo the script's output to stderr. */
  quiet?: boolean;
  /**
   * `sasl`: clients authenticate with SCRAM-SHA-512 as one of the users of scripts/kafka/local-users, and the
   * broker's authorizer allows only what an ACL allows (`admin` is the super user). `plaintext` (the default
   * here, for the benchmarks): no authentication and no ACLs. `npm run kafka -- start` runs `sasl`.
   */
  security?: 'sasl' | 'plaintext';
  /**
   * Hand the brokers this call starts to this process's reaper (scripts/reaper.ts): if the process exits without
   * stop(), they are stopped too. Brokers that were already running are left alone.
   */
  stopOnExit?: boolean;
}

/** Like the script's own stop: SIGTERM, then SIGKILL after 30 s. */
const BROKER_STOP_GRACE_MS = 30_000;

const USERS_FILE = path.join(__dirname, 'kafka/local-users');

/** The local broker's SCRAM users and their development passwords (scripts/kafka/local-users). */
export function localKafkaUsers(): Map<string, string> {
  const users = new Map<string, string>();
  for (const line of readFileSync(USERS_FILE, 'utf8').split('\n')) {
    const [name, password] = line.trim().split(/\s+/);
    if (name && password && !name.startsWith('#')) users.set(name, password);
  }
  return users;
}

/**
 * The variables that make a service (or the topics CLI) authenticate to the local broker as `user`: for `admin`
 * (the super user: topic creation, ACLs, the test harness), `orchestrator`, `gateway` or `backoffice`.
 */
export function localKafkaCredentials(user: string): Record<string, string> {
  const password = localKafkaUsers().get(user);
  if (password === undefined) throw new Error(`no Kafka user ${user} in ${USERS_FILE}`);
  return { KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512', KAFKA_SASL_USERNAME: user, KAFKA_SASL_PASSWORD: password };
}

/** One node of a local Kafka, as the script lays it out. */
export interface LocalKafkaNode {
  /** The broker's node.id (1..N), as cluster metadata names it. */
  nodeId: number;
  port: number;
  dataDir: string;
  logFile: string;
  /** The broker JVM's pid, read now from its pid file (undefined when not running). */
  pid(): number | undefined;
}

export interface LocalKafka {
  /** The KAFKA_BROKERS value: every node's host:port, comma-separated. */
  brokers: string;
  nodes: LocalKafkaNode[];
  security: 'sasl' | 'plaintext';
  /** A service's KAFKA_SASL_* variables to connect as `user` ({@link localKafkaCredentials}); none on a plaintext broker. */
  credentials: (user: string) => Record<string, string>;
  stop: () => Promise<void>;
}

function scriptEnv(options: LocalKafkaOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, KAFKA_PORT: String(options.port), KAFKA_SECURITY: options.security ?? 'plaintext' };
  for (const name of ['KAFKA_CONTROLLER_PORT', 'KAFKA_PORTS', 'KAFKA_CONTROLLER_PORTS', 'KAFKA_BROKER_COUNT', 'KAFKA_DATA_DIR', 'KAFKA_LOG_FILE']) delete env[name];
  if (options.controllerPort !== undefined) env.KAFKA_CONTROLLER_PORT = String(options.controllerPort);
  if (options.brokers !== undefined) env.KAFKA_BROKER_COUNT = String(options.brokers);
  if (options.ports !== undefined) env.KAFKA_PORTS = options.ports.join(',');
  if (options.controllerPorts !== undefined) env.KAFKA_CONTROLLER_PORTS = options.controllerPorts.join(',');
  if (options.dataDir !== undefined) env.KAFKA_DATA_DIR = options.dataDir;
  if (options.logFile !== undefined) env.KAFKA_LOG_FILE = options.logFile;
  return env;
}

/** Where the script puts each node: the same rules as scripts/kafka-local.sh. */
export function localKafkaNodes(options: LocalKafkaOptions): LocalKafkaNode[] {
  const count = options.brokers ?? 1;
  const version = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(readFileSync(path.join(__dirname, 'kafka/pom.xml'), 'utf8'))?.[1] ?? 'unknown';
  const cache = process.env.KAFKA_CACHE_DIR ?? path.join(os.homedir(), '.cache/pgo-kafka', version);
  const dataDir = options.dataDir ?? path.join(cache, count === 1 ? `data-${options.port}` : `cluster-${options.port}`);
  return Array.from({ length: count }, (_, index) => {
    const nodeDir = count === 1 ? dataDir : path.join(dataDir, `node-${index + 1}`);
    const pidFile = path.join(nodeDir, 'broker.pid');
    return {
      nodeId: index + 1,
      port: options.ports?.[index] ?? options.port + index,
      dataDir: nodeDir,
      logFile: count === 1 && options.logFile ? options.logFile : path.join(nodeDir, 'broker.log'),
      pid: () => {
        try {
          return Number(readFileSync(pidFile, 'utf8').trim()) || undefined;
        } catch {
          return undefined;
        }
      },
    };
  });
}

function runScript(command: 'start' | 'stop', options: LocalKafkaOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'bash',
      [SCRIPT, command, '--brokers', String(options.brokers ?? 1)],
      { env: scriptEnv(options), maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          const status = error.code ?? error.signal ?? 'error';
          reject(new Error(`kafka-local.sh ${command} failed (port ${options.port}, exit ${status}):\n${stdout}${stderr}`));
        } else {
          resolve();
        }
      },
    );
    child.stdin?.end();
    if (!options.quiet) {
      child.stdout?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
      child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    }
  });
}

/**
 * Starts the broker(s) (or reuses those already running for these options;
 * a node that is not running is started) and waits until every broker answers.
 */
export async function startLocalKafka(options: LocalKafkaOptions): Promise<LocalKafka> {
  const nodes = localKafkaNodes(options);
  const pids = () => nodes.flatMap((node) => node.pid() ?? []);
  const before = new Set(pids());
  await runScript('start', options);
  const brokers = nodes.map((node) => `127.0.0.1:${node.port}`).join(',');
  const startedHere = pids().filter((pid) => !before.has(pid));
  const reaping = options.stopOnExit ? await reapOnExit(`Kafka on ${brokers}`, startedHere, { graceMs: BROKER_STOP_GRACE_MS }) : undefined;
  const security = options.security ?? 'plaintext';
  return {
    brokers,
    nodes,
    security,
    credentials: (user) => (security === 'sasl' ? localKafkaCredentials(user) : {}),
    stop: async () => {
      await stopLocalKafka(options);
      await reaping?.release();
    },
  };
}

/** Stops the broker(s) for these options; resolves when every one has exited (or was not running). */
export async function stopLocalKafka(options: LocalKafkaOptions): Promise<void> {
  await runScript('stop', options);
}
