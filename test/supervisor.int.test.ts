import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { readRulesFile } from '../orchestrator/routing/rules';
import { localKafkaNodes } from '../scripts/kafka-local';
import { serviceSpecs, stackPorts, STOP_TIMEOUT_MS } from '../scripts/stack';
import { asService, isolatedNamespace, kafkaCredentials } from './support/env';
import { pollUntil } from './support/poll';
import { alive, commandLine, descendants, untilGone } from './support/process-table';
import { namespaceEnv, prepareNamespace, rule } from './support/stack';

// `npm start` as a process manager, a CI runner or `timeout` runs it: a
// signal to npm's own pid, not to the terminal's process group, and the
// supervisor killed outright. Real processes on the test broker and Redis
// (or on a broker npm start starts itself), on ports moved by
// STACK_PORT_OFFSET, in a namespace of their own.
const ROOT = path.resolve(__dirname, '..');
const gatewayIds = readRulesFile(path.join(ROOT, 'config/gateways.json')).map((rule) => rule.gatewayId);
/** Six services on a loaded 2-core machine, each starting node with tsx. */
const READY_TIMEOUT_MS = 120_000;
/** "Within a second or two" to notice, plus the drain (Kafka consumers leave their group). */
const ORPHAN_EXIT_MS = 10_000;
/** The local broker's start-up (scripts/kafka-local.sh waits up to 90 s). */
const BROKER_START_MS = 90_000;
/** After the services are gone, the broker's own shutdown on SIGTERM from the reaper. */
const BROKER_STOP_MS = 15_000;
/** The local broker's port for a stack at this offset: the stack's ports skip 9092 and 9093 (its controller). */
const kafkaPortAt = (offset: number) => 9092 + offset;

/** True when a service could listen on port (the services bind 0.0.0.0). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '0.0.0.0', () => server.close(() => resolve(true)));
  });
}

/** A port offset below the ephemeral range where every port of the stack, and of a broker it would start, is free. */
async function freeOffset(): Promise<number> {
  for (;;) {
    const offset = 10_000 + Math.floor(Math.random() * 10_000);
    const ports = [...serviceSpecs(gatewayIds, stackPorts(offset)).map((spec) => spec.port), kafkaPortAt(offset), kafkaPortAt(offset) + 1];
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return offset;
  }
}

interface NpmStack {
  npm: ChildProcess;
  ports: number[];
  /** The port of the broker npm start started itself (`ownBroker`). */
  kafkaPort?: number;
  /** Resolves with npm's exit code (or signal) once it has exited. */
  exited: Promise<number | NodeJS.Signals>;
  output: () => string;
}

/**
 * Runs `npm start` as a user would, in a namespace of its own; resolves once it prints its banner.
 * On the run's broker, or with `ownBroker` on a local broker it starts itself on a port of its own.
 */
async function startNpmStack(options: { ownBroker?: boolean } = {}): Promise<NpmStack> {
  const ns = isolatedNamespace();
  const offset = await freeOffset();
  const kafkaPort = options.ownBroker ? kafkaPortAt(offset) : undefined;
  const readyTimeoutMs = READY_TIMEOUT_MS + (options.ownBroker ? BROKER_START_MS : 0);
  const { KAFKA_BROKERS: _brokers, KAFKA_SASL_MECHANISM: _mechanism, KAFKA_SASL_USERNAME: _username, KAFKA_SASL_PASSWORD: _password, ...inherited } = process.env;
  const kafkaEnv =
    kafkaPort === undefined
      ? {
          KAFKA_BROKERS: ns.brokers,
          // The test broker's users: the setup as its super user, each service as its own (STACK_KAFKA_USERS=local).
          ...kafkaCredentials('admin'),
          ...(Object.keys(kafkaCredentials('admin')).length > 0 ? { STACK_KAFKA_USERS: 'local' } : {}),
        }
      : // No KAFKA_BROKERS: npm start starts the local broker (SASL, its own users) on this port.
        { STACK_KAFKA_PORT: String(kafkaPort) };
  const npm = spawn('npm', ['start'], {
    cwd: ROOT,
    env: {
      ...inherited,
      ...kafkaEnv,
      REDIS_URL: ns.redisUrl,
      TOPIC_PREFIX: ns.topicPrefix,
      REDIS_KEY_PREFIX: ns.redisKeyPrefix,
      STACK_PORT_OFFSET: String(offset),
      // Prometheus would be the one thing here not on a moved port's own data folder; it is not what is tested.
      STACK_OPS_TOOLS: 'off',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | NodeJS.Signals>((resolve) => npm.once('exit', (code, signal) => resolve(signal ?? code ?? -1)));
  const ready = new Promise<void>((resolve, reject) => {
    const lines = (stream: NodeJS.ReadableStream | null) =>
      stream &&
      readline.createInterface({ input: stream }).on('line', (line) => {
        output = `${output}${line}\n`.slice(-20_000);
        if (line.includes('Stack ready')) resolve();
      });
    lines(npm.stdout);
    lines(npm.stderr);
    void exited.then((how) => reject(new Error(`npm start exited (${how}) before the stack was ready:\n${output}`)));
    setTimeout(() => reject(new Error(`npm start not ready after ${readyTimeoutMs} ms:\n${output}`)), readyTimeoutMs).unref();
  });
  const ports = serviceSpecs(gatewayIds, stackPorts(offset)).map((spec) => spec.port);
  const stack = { npm, ports, kafkaPort, exited, output: () => output };
  started.push(stack);
  await ready;
  return stack;
}

/** Whatever a failed test leaves running is killed, so it cannot hold ports or a consumer group for the next. */
const started: NpmStack[] = [];
let watched: number[] = [];
afterEach(() => {
  for (const pid of alive(watched)) process.kill(pid, 'SIGKILL');
  for (const stack of started.splice(0)) {
    if (stack.npm.exitCode === null && stack.npm.signalCode === null) stack.npm.kill('SIGKILL');
    // A broker of its own keeps its data beside the jar cache (data-<port>): a random port's is of no further use.
    if (stack.kafkaPort !== undefined) for (const node of localKafkaNodes({ port: stack.kafkaPort })) rmSync(node.dataDir, { recursive: true, force: true });
  }
  watched = [];
});

describe('npm start under a process manager', () => {
  test(
    'When npm start gets SIGTERM on its own pid, then every service stops and every port is free within the stop timeout, and npm exits 0',
    async () => {
      const stack = await startNpmStack();
      const pid = stack.npm.pid ?? 0;
      watched = descendants(pid);
      // The supervisor, and one node process per service right below it (each with tsx's esbuild helper).
      expect(watched.filter((child) => / --import tsx \S+main\.ts/.test(commandLine(child))).length).toBe(stack.ports.length);
      const began = Date.now();
      process.kill(pid, 'SIGTERM');
      // npm waits for the supervisor, which waits for its services.
      expect(await stack.exited).toBe(0);
      expect(Date.now() - began).toBeLessThan(STOP_TIMEOUT_MS);
      expect(stack.output()).toContain('SIGTERM: stopping the stack');
      expect(alive(watched).map(commandLine)).toEqual([]);
      const busy = (await Promise.all(stack.ports.map(async (port) => ((await portFree(port)) ? [] : [port])))).flat();
      expect(busy).toEqual([]);
    },
    READY_TIMEOUT_MS + STOP_TIMEOUT_MS + 10_000,
  );

  test(
    'When the supervisor is SIGKILLed, then every service notices, drains and exits by itself within seconds, freeing its port',
    async () => {
      const stack = await startNpmStack();
      const [supervisor, ...others] = descendants(stack.npm.pid ?? 0).filter((pid) => commandLine(pid).includes('scripts/stack.ts'));
      expect(others).toEqual([]);
      if (supervisor === undefined) throw new Error(`no scripts/stack.ts below npm:\n${stack.output()}`);
      const services = descendants(supervisor);
      watched = services;
      expect(services.filter((child) => / --import tsx \S+main\.ts/.test(commandLine(child))).length).toBe(stack.ports.length);
      const began = Date.now();
      process.kill(supervisor, 'SIGKILL');
      await untilGone(services, ORPHAN_EXIT_MS, (left) => `still running ${ORPHAN_EXIT_MS} ms after the supervisor was killed:\n${left.map(commandLine).join('\n')}`);
      const elapsedMs = Date.now() - began;
      const busy = (await Promise.all(stack.ports.map(async (port) => ((await portFree(port)) ? [] : [port])))).flat();
      expect(busy).toEqual([]);
      expect(elapsedMs).toBeLessThan(ORPHAN_EXIT_MS);
    },
    READY_TIMEOUT_MS + ORPHAN_EXIT_MS + 10_000,
  );

  test(
    'When npm start started its own broker and the supervisor is SIGKILLed, then the services drain and exit, and then the reaper stops the broker',
    async () => {
      const stack = await startNpmStack({ ownBroker: true });
      expect(stack.output()).toContain('(started here; stopped on exit)');
      const [supervisor] = descendants(stack.npm.pid ?? 0).filter((pid) => commandLine(pid).includes('scripts/stack.ts'));
      if (supervisor === undefined) throw new Error(`no scripts/stack.ts below npm:\n${stack.output()}`);
      const [broker] = localKafkaNodes({ port: stack.kafkaPort ?? 0 }).flatMap((node) => node.pid() ?? []);
      if (broker === undefined) throw new Error(`no broker pid file for port ${stack.kafkaPort}:\n${stack.output()}`);
      // The broker runs in a session of its own (setsid): not below npm, and nothing but the reaper stops it.
      expect(descendants(stack.npm.pid ?? 0)).not.toContain(broker);
      const services = descendants(supervisor).filter((pid) => / --import tsx \S+main\.ts/.test(commandLine(pid)));
      expect(services).toHaveLength(stack.ports.length);
      watched = [...services, broker];
      process.kill(supervisor, 'SIGKILL');
      await untilGone(services, ORPHAN_EXIT_MS, (left) => `still running ${ORPHAN_EXIT_MS} ms after the supervisor was killed:\n${left.map(commandLine).join('\n')}`);
      await untilGone([broker], BROKER_STOP_MS, () => `the broker (pid ${broker}) still runs ${BROKER_STOP_MS} ms after the services were gone`);
      // The reaper's own account (on npm's stderr): it waited for the services, then stopped the broker.
      const order = new RegExp(`npm start services: owner gone, waiting for pid [\\d, ]+\\n[\\s\\S]*Kafka on 127\\.0\\.0\\.1:${stack.kafkaPort}: owner gone, stopping pid ${broker}\\n`);
      await pollUntil(async () => stack.output(), (output) => order.test(output), 2_000, (output) => `the reaper did not say it stopped the services, then the broker:\n${output}`, 100);
      const busy = (await Promise.all([...stack.ports, stack.kafkaPort ?? 0].map(async (port) => ((await portFree(port)) ? [] : [port])))).flat();
      expect(busy).toEqual([]);
    },
    READY_TIMEOUT_MS + BROKER_START_MS + ORPHAN_EXIT_MS + BROKER_STOP_MS + 10_000,
  );

  test(
    'When the process that started a service through scripts/processes.ts (a test, a benchmark) is SIGKILLed, then the service logs it, drains and exits by itself',
    async () => {
      const ns = isolatedNamespace();
      await prepareNamespace(ns, [rule('alpha')]);
      const dir = mkdtempSync(path.join(tmpdir(), 'pgo-supervisor-'));
      const logFile = path.join(dir, 'gateway.log');
      const env = { ...asService(namespaceEnv(ns), 'gateway'), GATEWAY_ID: 'alpha', LOG_LEVEL: 'info' };
      // A stand-in for a test file or the benchmark: starts the service, prints its pid, then waits to be killed.
      const script = `
        const { startServiceProcess } = require('./scripts/processes');
        startServiceProcess('gateways/main.ts', ${JSON.stringify(env)}, { logFile: ${JSON.stringify(logFile)} })
          .then((service) => { console.log('service ' + service.child.pid); setInterval(() => undefined, 60000); });`;
      const parent = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        const servicePid = await new Promise<number>((resolve, reject) => {
          readline.createInterface({ input: parent.stdout }).on('line', (line) => {
            const match = /^service (\d+)$/.exec(line);
            if (match) resolve(Number(match[1]));
          });
          parent.once('exit', (code) => reject(new Error(`the parent exited (${code}) before its service was ready`)));
        });
        watched = [servicePid];
        parent.kill('SIGKILL');
        await untilGone([servicePid], ORPHAN_EXIT_MS, () => `the service still runs ${ORPHAN_EXIT_MS} ms after its parent was killed:\n${readFileSync(logFile, 'utf8').slice(-4_000)}`);
        // Its log is a file, so the drain's lines are there: a drain, not a crash.
        const messages = readFileSync(logFile, 'utf8')
          .split('\n')
          .flatMap((line) => {
            try {
              return [(JSON.parse(line) as { msg?: string }).msg];
            } catch {
              return [];
            }
          });
        expect(messages).toEqual(expect.arrayContaining(['supervisor gone, shutting down', 'stopped']));
        expect(messages.indexOf('stopped')).toBeGreaterThan(messages.indexOf('supervisor gone, shutting down'));
      } finally {
        if (parent.exitCode === null && parent.signalCode === null) parent.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    },
    60_000,
  );
});
