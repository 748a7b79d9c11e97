// `npm start`: the whole stack in the foreground, without Docker.
//
// Starts the local Kafka broker on 127.0.0.1:9092 (STACK_KAFKA_PORT; unless
// KAFKA_BROKERS points elsewhere; SASL/SCRAM with ACLs), checks Redis
// (REDIS_URL), creates the topics and the services' ACLs as the broker's
// super user, then runs the orchestrator, the back office, the alert
// receiver and one sandbox gateway per rule in config/gateways.json as child
// processes, and Prometheus (9090) and Alertmanager (9094) when they are
// installed (`npm run ops-tools`), with the committed grafana/ configuration
// pointed at these ports. Their JSON log lines go to this terminal's stdout,
// each prefixed with the service name. Ctrl-C, SIGTERM or SIGHUP stops everything
// this script started, and so does the loss of its parent (npm): package.json
// runs it with `exec node`, so npm's relayed SIGTERM reaches it. If a service
// dies, the rest are stopped and it exits 1. If this script itself is killed
// outright, the services notice through their IPC channel and drain by
// themselves (runtime/supervisor.ts), and a reaper process (scripts/reaper.ts)
// stops Prometheus and Alertmanager, waits for the services, then stops the
// broker if this run started it. STACK_PORT_OFFSET moves every port but the
// broker's, so a test (or a second stack) runs beside the first;
// STACK_OPS_TOOLS=off skips Prometheus and Alertmanager.
// docker-compose.yml runs the same services on the same ports
// (test/compose.unit.test.ts keeps the two in step).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import Redis from 'ioredis';
import { z } from 'zod';
import {
  ALERTMANAGER_BIN,
  isInstalled,
  localAlertmanagerConfig,
  localPrometheusConfig,
  PROMETHEUS_BIN,
  startAlertmanager,
  startPrometheus,
  type RunningTool,
  type Target,
} from '../grafana/prometheus/local';
import { WEBHOOK_PATH } from '../grafana/alert-receiver/main';
import { readRulesFile } from '../orchestrator/routing/rules';
import { commonEnv, parseConfig } from '../runtime/config';
import { errorMessage } from '../runtime/errors';
import { watchParent } from '../runtime/supervisor';
import { createStackTopics } from '../topics/create-cli';
import { localKafkaCredentials, startLocalKafka, type LocalKafka } from './kafka-local';
import { SERVICE_NODE_FLAGS } from './processes';
import { reapOnExit, type Reaping } from './reaper';

const ROOT = path.resolve(__dirname, '..');
/** tsx's loader, which the services run under (`node --import tsx`). */
const TSX_LOADER = path.join(ROOT, 'node_modules', 'tsx');
export const ORCHESTRATOR_PORT = 8080;
export const BACKOFFICE_PORT = 8081;
export const FIRST_GATEWAY_PORT = 8090;
export const ALERT_RECEIVER_PORT = 9095;
const PROMETHEUS_PORT = 9090;
/** Not compose's 9093: the local Kafka broker's controller listens there. */
const ALERTMANAGER_PORT = 9094;
/** Prometheus' data and both tools' configuration, kept between runs (git-ignored); one folder per port offset. */
const opsDir = (portOffset: number) => path.join(ROOT, '.stack', portOffset === 0 ? 'prometheus' : `prometheus-${portOffset}`);
const READY_TIMEOUT_MS = 90_000;
/** Longer than the services' own SHUTDOWN_GRACE_MS (15 s), then SIGKILL. */
export const STOP_TIMEOUT_MS = 20_000;
/** How often this script checks that its parent (npm) is still there, in milliseconds. */
const PARENT_CHECK_MS = 500;

/** The variables this script reads besides the services' own (which it passes on). */
const stackEnv = z.object({
  ...commonEnv,
  /** Added to every port of the services and tools (not the Kafka broker's), so a second stack or a test runs beside the first. */
  STACK_PORT_OFFSET: z.coerce.number().int().min(0).max(50_000).default(0),
  /** `off` skips Prometheus and Alertmanager even when they are installed. */
  STACK_OPS_TOOLS: z.enum(['on', 'off']).default('on'),
  /** The local broker's port when KAFKA_BROKERS is not set (its controller listens on the next one). */
  STACK_KAFKA_PORT: z.coerce.number().int().min(1).max(65_534).default(9092),
  /**
   * Whose broker credentials the stack uses. `local` (the default with the local broker): the users of
   * scripts/kafka/local-users, `admin` to create topics and ACLs and each service its own. `env` (the default
   * with KAFKA_BROKERS): this environment's KAFKA_SASL_* (or none) for everything, as on a broker you run yourself.
   */
  STACK_KAFKA_USERS: z.enum(['local', 'env']).optional(),
});

/** The broker principal each service connects as, with the local broker's users (topics/acls.ts gives their rights). */
export const KAFKA_USER_OF: Readonly<Record<string, 'orchestrator' | 'gateway' | 'backoffice' | undefined>> = {
  'orchestrator/main.ts': 'orchestrator',
  'gateways/main.ts': 'gateway',
  'backoffice/main.ts': 'backoffice',
};

/** A service's environment with the local user it connects as, or without any broker credentials (the alert receiver). */
function withLocalKafkaUser(env: NodeJS.ProcessEnv, script: string): NodeJS.ProcessEnv {
  const { KAFKA_SASL_MECHANISM: _mechanism, KAFKA_SASL_USERNAME: _username, KAFKA_SASL_PASSWORD: _password, ...rest } = env;
  const user = KAFKA_USER_OF[script];
  return user ? { ...rest, ...localKafkaCredentials(user) } : rest;
}

/** The ports the stack listens on, moved by `offset` (STACK_PORT_OFFSET). */
export function stackPorts(offset = 0) {
  return {
    orchestrator: ORCHESTRATOR_PORT + offset,
    backoffice: BACKOFFICE_PORT + offset,
    firstGateway: FIRST_GATEWAY_PORT + offset,
    alertReceiver: ALERT_RECEIVER_PORT + offset,
    prometheus: PROMETHEUS_PORT + offset,
    alertmanager: ALERTMANAGER_PORT + offset,
  };
}
type StackPorts = ReturnType<typeof stackPorts>;
const LAST_LINES = 40;

/** One service of the stack: the same names, scripts, ports and variables as in docker-compose.yml. */
export interface ServiceSpec {
  name: string;
  script: string;
  port: number;
  env: Record<string, string>;
}

/**
 * Each sandbox gateway behaves like a different PSP (in turn, for more
 * gateways), the same under npm start and compose: some latency makes them
 * look remote, and a few errors and declines keep failovers and the
 * dashboards' failure panels alive without tripping a breaker or an alert.
 */
export const SANDBOX_PROFILES: ReadonlyArray<Record<string, string>> = [
  // Fast and reliable.
  { SANDBOX_LATENCY_MS: '20' },
  // Slower; 2 % technical errors, which fail over.
  { SANDBOX_LATENCY_MS: '80', SANDBOX_MODE: 'error', SANDBOX_RATE: '0.02' },
  // Slowest; 5 % final declines (insufficient funds).
  { SANDBOX_LATENCY_MS: '150', SANDBOX_MODE: 'decline', SANDBOX_RATE: '0.05' },
];

export function serviceSpecs(gatewayIds: readonly string[], ports: StackPorts = stackPorts()): ServiceSpec[] {
  return [
    { name: 'orchestrator', script: 'orchestrator/main.ts', port: ports.orchestrator, env: { PORT: String(ports.orchestrator) } },
    { name: 'backoffice', script: 'backoffice/main.ts', port: ports.backoffice, env: { PORT: String(ports.backoffice) } },
    { name: 'alert-receiver', script: 'grafana/alert-receiver/main.ts', port: ports.alertReceiver, env: { PORT: String(ports.alertReceiver) } },
    ...gatewayIds.map((id, index) => {
      const port = ports.firstGateway + index;
      const profile = SANDBOX_PROFILES[index % SANDBOX_PROFILES.length];
      return { name: `gateway-${id}`, script: 'gateways/main.ts', port, env: { GATEWAY_ID: id, PORT: String(port), ...profile } };
    }),
  ];
}

interface Service extends ServiceSpec {
  child: ChildProcess;
  lastLines: string[];
  /** Resolves when the process has exited and its output is drained. */
  closed: Promise<string>;
}

/** What this run started, so shutdown stops exactly that. */
interface Started {
  services: Service[];
  /** The local broker, when this run started it (not when it reused one, or with KAFKA_BROKERS). */
  broker?: LocalKafka;
  /** The services' pids with the reaper, so that if this script is killed outright the broker stops only after they have drained. */
  servicesReaping?: Reaping;
  /** Prometheus and Alertmanager, when installed. */
  tools: RunningTool[];
}

const say = (message: string) => console.log(`${'stack'.padEnd(14)}| ${message}`);

async function main(): Promise<number> {
  const began = Date.now();
  const abort = new AbortController();
  let stopAskedAt = 0;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      // A terminal's Ctrl-C reaches npm and this script, and npm relays it: one keypress can arrive twice.
      if (abort.signal.aborted) {
        if (Date.now() - stopAskedAt > 1_000) say(`${signal}: already stopping`);
        return;
      }
      stopAskedAt = Date.now();
      say(`${signal}: stopping the stack`);
      abort.abort(signal);
    });
  }
  // If npm is killed outright (SIGKILL, out of memory), nothing relays a signal: notice it here.
  const parent = watchParent((formerParentPid) => {
    if (abort.signal.aborted) return;
    say(`parent process ${formerParentPid} is gone: stopping the stack`);
    abort.abort('parent-gone');
  }, PARENT_CHECK_MS);
  const started: Started = { services: [], tools: [] };
  let exitCode = 0;
  try {
    const { notes, ports } = await start(started, abort.signal);
    printBanner(started.services, ports, notes, Date.now() - began);
    const crashed = await untilStopOrCrash(started.services, abort.signal);
    if (crashed) {
      printLastLines(crashed, await crashed.closed);
      exitCode = 1;
    }
  } catch (error) {
    if (!abort.signal.aborted) {
      console.error(`stack: ${errorMessage(error)}`);
      exitCode = 1;
    }
  }
  await stopAll(started);
  parent?.stop();
  return exitCode;
}

/** Starts everything in order; resolves with notes on Kafka and Redis for the banner, and the ports. */
async function start(started: Started, signal: AbortSignal): Promise<{ notes: string[]; ports: StackPorts }> {
  if (!existsSync(TSX_LOADER)) throw new Error(`${TSX_LOADER} is missing: run npm ci first`);
  const config = parseConfig(stackEnv, process.env);
  const ports = stackPorts(config.STACK_PORT_OFFSET);
  if (config.STACK_PORT_OFFSET !== 0) say(`STACK_PORT_OFFSET=${config.STACK_PORT_OFFSET}: the orchestrator listens on ${ports.orchestrator}`);
  const rulesFile = path.resolve(ROOT, process.env.GATEWAY_RULES_FILE ?? 'config/gateways.json');
  const gatewayIds = readRulesFile(rulesFile).map((rule) => rule.gatewayId);
  const specs = serviceSpecs(gatewayIds, ports);

  for (const { name, port } of specs) {
    if (!(await portFree(port))) throw new Error(`port ${port} (${name}) is in use: is another stack running?`);
  }
  await checkRedis(config.REDIS_URL);
  signal.throwIfAborted();

  const kafkaUsers = config.STACK_KAFKA_USERS ?? (process.env.KAFKA_BROKERS === undefined ? 'local' : 'env');
  let brokers = process.env.KAFKA_BROKERS;
  let kafkaNote = `Kafka ${brokers} (KAFKA_BROKERS; not managed here)`;
  if (brokers === undefined) {
    const port = config.STACK_KAFKA_PORT;
    const reused = await portOpen(port);
    const kafka = await startBroker(port, reused);
    if (!reused) started.broker = kafka;
    brokers = kafka.brokers;
    kafkaNote = reused ? `Kafka ${brokers} (already running; left running on exit)` : `Kafka ${brokers} (started here; stopped on exit)`;
  }
  signal.throwIfAborted();

  const { created, seeded } = await createTopics(brokers, rulesFile, kafkaUsers === 'local' ? localKafkaCredentials('admin') : {});
  say(created.length > 0 ? `created topics: ${created.join(', ')}` : 'topics already exist');
  say(seeded.length > 0 ? `seeded routing rules for: ${seeded.join(', ')}` : 'routing rules already on the rule topic');
  signal.throwIfAborted();

  // The back office reads reviews through this stack's orchestrator API (ADR 0018), wherever STACK_PORT_OFFSET put it.
  const childEnv = { ...process.env, KAFKA_BROKERS: brokers, REDIS_URL: config.REDIS_URL, ORCHESTRATOR_URL: `http://127.0.0.1:${ports.orchestrator}` };
  const width = Math.max(...specs.map((spec) => spec.name.length)) + 1;
  for (const spec of specs) {
    started.services.push(spawnService(spec, kafkaUsers === 'local' ? withLocalKafkaUser(childEnv, spec.script) : childEnv, width));
  }
  // They drain by themselves if this script dies; the reaper waits for them before it stops the broker.
  const servicePids = started.services.flatMap((service) => service.child.pid ?? []);
  started.servicesReaping = await reapOnExit('npm start services', servicePids, { exitByThemselves: true, graceMs: STOP_TIMEOUT_MS });
  // The first failure ends every other wait, so no poller outlives start-up.
  const failed = new AbortController();
  const waiting = AbortSignal.any([signal, failed.signal]);
  await Promise.all(
    started.services.map((service) =>
      waitReady(service, waiting).catch((error: unknown) => {
        failed.abort();
        throw error;
      }),
    ),
  );
  // Monitoring is a convenience here: if it cannot start, the stack runs without it.
  const opsNotes =
    config.STACK_OPS_TOOLS === 'off'
      ? ['Prometheus/Alertmanager not started (STACK_OPS_TOOLS=off)']
      : await startOpsTools(started, gatewayIds, ports, opsDir(config.STACK_PORT_OFFSET)).catch((error: unknown) => [
          `Prometheus/Alertmanager did not start: ${errorMessage(error)}`,
        ]);
  return { notes: [kafkaNote, `Redis ${config.REDIS_URL}`, ...opsNotes], ports };
}

/**
 * Prometheus scraping every service, with the committed alert rules, and
 * Alertmanager sending to the alert receiver: each when its Debian package
 * is installed and its port is free. Resolves with notes for the banner.
 */
async function startOpsTools(started: Started, gatewayIds: readonly string[], ports: StackPorts, dir: string): Promise<string[]> {
  if (!isInstalled(PROMETHEUS_BIN)) return ['Prometheus not installed: `npm run ops-tools` installs it and Alertmanager (Debian packages)'];
  mkdirSync(dir, { recursive: true });
  const notes: string[] = [];
  const alertmanagers: string[] = [];
  if (!isInstalled(ALERTMANAGER_BIN)) notes.push('Alertmanager not installed (`npm run ops-tools`): alerts show in Prometheus only');
  else if (!(await portFree(ports.alertmanager))) notes.push(`port ${ports.alertmanager} is in use: Alertmanager not started`);
  else {
    const webhook = `http://127.0.0.1:${ports.alertReceiver}${WEBHOOK_PATH}`;
    started.tools.push(await startAlertmanager({ config: localAlertmanagerConfig(webhook), dir, port: ports.alertmanager }));
    alertmanagers.push(`127.0.0.1:${ports.alertmanager}`);
    notes.push(`Alertmanager http://localhost:${ports.alertmanager}, sending to the alert receiver`);
  }
  if (!(await portFree(ports.prometheus))) return [...notes, `port ${ports.prometheus} is in use: Prometheus not started`];
  const at = (port: number, labels: Record<string, string>): Target => ({ address: `127.0.0.1:${port}`, labels });
  const targets = {
    orchestrator: [at(ports.orchestrator, { service: 'orchestrator' })],
    backoffice: [at(ports.backoffice, { service: 'backoffice' })],
    gateway: gatewayIds.map((id, index) => at(ports.firstGateway + index, { service: `gateway-${id}`, gateway: id })),
    'alert-receiver': [at(ports.alertReceiver, { service: 'alert-receiver' })],
  };
  started.tools.push(await startPrometheus({ config: localPrometheusConfig({ targets, alertmanagers }), dir, port: ports.prometheus }));
  return [`Prometheus http://localhost:${ports.prometheus} (alerts: /alerts; data in ${path.relative(ROOT, dir)})`, ...notes];
}

/** The local broker on `port`; one this run starts is handed to the reaper (stopped if this script is killed outright). */
async function startBroker(port: number, reused: boolean): Promise<LocalKafka> {
  say(reused ? `reusing the Kafka broker on 127.0.0.1:${port}` : `starting Kafka on 127.0.0.1:${port}`);
  try {
    return await startLocalKafka({ port, security: 'sasl', stopOnExit: true });
  } catch (error) {
    throw new Error(`${errorMessage(error)}\nTo use a broker you run yourself, set KAFKA_BROKERS (e.g. KAFKA_BROKERS=127.0.0.1:${port} npm start).`);
  }
}

/** True when something accepts connections on 127.0.0.1:port. */
function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** True when a service could listen on port (services bind 0.0.0.0). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '0.0.0.0', () => server.close(() => resolve(true)));
  });
}

export async function checkRedis(url: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  let cause: Error | undefined;
  redis.on('error', (error: Error) => (cause ??= error));
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    throw new Error(
      `Redis does not answer at ${url} (${errorMessage(cause ?? error)}).\n` +
        'Start one with `redis-server --daemonize yes` (Debian: apt-get install redis-server), or point REDIS_URL at one.',
    );
  } finally {
    redis.disconnect();
  }
}

async function createTopics(brokers: string, rulesFile: string, credentials: Record<string, string>): Promise<{ created: string[]; seeded: string[] }> {
  try {
    return await createStackTopics({ ...process.env, ...credentials, KAFKA_BROKERS: brokers, GATEWAY_RULES_FILE: rulesFile });
  } catch (error) {
    throw new Error(`could not create the topics on ${brokers}: ${errorMessage(error)}`);
  }
}

function spawnService(spec: ServiceSpec, env: NodeJS.ProcessEnv, width: number): Service {
  // Own process group: a terminal's Ctrl-C reaches only this script, which then
  // stops the services in order. node with tsx's loader, not the tsx wrapper:
  // one process, so the SIGTERM and the IPC channel reach the service itself.
  // The channel is its lifeline: if this script dies without stopping it, the
  // service drains and exits by itself (runtime/supervisor.ts).
  const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, '--import', 'tsx', spec.script], {
    cwd: ROOT,
    env: { ...env, ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    detached: true,
  });
  // Nothing is sent on the channel; it must not hold this script open.
  child.channel?.unref();
  const lastLines: string[] = [];
  const prefix = `${spec.name.padEnd(width)}| `;
  const pipe = (stream: NodeJS.ReadableStream | null, out: NodeJS.WriteStream) =>
    stream &&
    readline.createInterface({ input: stream }).on('line', (line) => {
      lastLines.push(line);
      if (lastLines.length > LAST_LINES) lastLines.shift();
      out.write(`${prefix}${line}\n`);
    });
  pipe(child.stdout, process.stdout);
  pipe(child.stderr, process.stderr);
  const closed = new Promise<string>((resolve) => {
    child.once('error', (error) => resolve(`could not start: ${error.message}`));
    child.once('close', (code, signal) => resolve(signal ? `killed by ${signal}` : `exit code ${code}`));
  });
  return { ...spec, child, lastLines, closed };
}

const isRunning = (service: Service) => service.child.exitCode === null && service.child.signalCode === null;

async function waitReady(service: Service, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const url = `http://127.0.0.1:${service.port}/readyz`;
  for (;;) {
    signal.throwIfAborted();
    if (!isRunning(service)) {
      printLastLines(service, await service.closed);
      throw new Error(`${service.name} exited during start-up (its last lines are above)`);
    }
    const status = await fetch(url, { signal: AbortSignal.timeout(1_000) }).then(
      (response) => response.status,
      () => 0,
    );
    if (status === 200) return;
    if (Date.now() > deadline) throw new Error(`${service.name} not ready on ${url} after ${READY_TIMEOUT_MS / 1000} s`);
    await delay(250, undefined, { signal });
  }
}

/** Resolves with the service that died, or undefined once a stop was asked for. */
function untilStopOrCrash(services: Service[], signal: AbortSignal): Promise<Service | undefined> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(undefined);
    signal.addEventListener('abort', () => resolve(undefined), { once: true });
    for (const service of services) void service.closed.then(() => resolve(service));
  });
}

function printLastLines(service: Service, how: string): void {
  console.error(`stack: ${service.name} stopped unexpectedly (${how}); its last ${service.lastLines.length} lines:`);
  for (const line of service.lastLines) console.error(`  ${line}`);
}

async function stopAll({ services, broker, servicesReaping, tools }: Started): Promise<void> {
  for (const tool of tools) await tool.stop();
  const running = services.filter(isRunning);
  if (running.length > 0) say(`stopping ${running.map((service) => service.name).join(', ')}`);
  for (const service of running) service.child.kill('SIGTERM');
  const allClosed = Promise.all(
    running.map(async (service) => say(`${service.name} stopped (${await service.closed})`)),
  );
  const timer = delay(STOP_TIMEOUT_MS, 'timeout' as const);
  if ((await Promise.race([allClosed, timer])) === 'timeout') {
    for (const service of services.filter(isRunning)) {
      say(`${service.name} did not stop within ${STOP_TIMEOUT_MS / 1000} s: SIGKILL`);
      if (service.child.pid !== undefined) process.kill(-service.child.pid, 'SIGKILL');
    }
    await allClosed;
  }
  await servicesReaping?.release();
  if (broker) {
    say('stopping the Kafka broker');
    await broker.stop();
  }
}

function printBanner(services: Service[], ports: StackPorts, notes: string[], elapsedMs: number): void {
  const gateways = services.filter((service) => service.name.startsWith('gateway-'));
  const api = `localhost:${ports.orchestrator}/v1/payments`;
  const body = '{"type":"deposit","accountId":"acc-42","amount":"10000","currency":"EUR","region":"EU"}';
  const lines = [
    '',
    `Stack ready in ${(elapsedMs / 1000).toFixed(1)} s. Logs: the prefixed JSON lines on this terminal.`,
    `  orchestrator     http://${api}   (and /docs, /readyz, /metrics)`,
    `  backoffice       http://localhost:${ports.backoffice}/v1/gateways   (rules API)`,
    `  alert-receiver   http://localhost:${ports.alertReceiver}${WEBHOOK_PATH}   (Alertmanager's webhook; set FORWARD_WEBHOOK_URL to forward)`,
    ...gateways.map((gateway) => `  ${gateway.name.padEnd(16)} http://localhost:${gateway.port}/sandbox   (chaos controls: GET/PUT)`),
    ...notes.map((note) => `  ${note}`),
    '',
    'Get a token (development key), then send a first payment (answers 202 PENDING with its id):',
    '  TOKEN=$(npm run -s token -- payments:write payments:read)',
    `  curl -s -X POST ${api} -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\`,
    `    -H "Idempotency-Key: $(node -p 'crypto.randomUUID()')" -d '${body}'`,
    'Read it back (SUCCESS once a gateway has answered):',
    `  curl -s -H "Authorization: Bearer $TOKEN" ${api}/<id>`,
    '',
    'Ctrl-C stops everything started here.',
    '',
  ];
  console.log(lines.join('\n'));
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(`stack: ${errorMessage(error)}`);
      process.exit(1);
    },
  );
}
