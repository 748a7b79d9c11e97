// What one benchmark run sets up once and its scenarios share: the broker,
// the sampler, a directory for the services' logs, the bearer token, and
// the facts for the report. Each scenario then starts a fresh stack from it.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { readRulesFile } from '../orchestrator/routing/rules';
import { mintToken } from '../runtime/auth';
import type { GatewayRule } from '../topics/schemas';
import { checkRedis } from '../scripts/stack';
import type { Cleanup } from './cleanup';
import { collectRunInfo, type RunInfo } from './report';
import { startSampler, type Sampler, type WatchedProcess } from './sampler';
import { loadBenchEnv, rulesFileOf, startBenchBroker, startBenchStack, type BenchBroker, type BenchEnv, type BenchStack, type StackOptions } from './stack';

export interface SessionOptions {
  cleanup: Cleanup;
  command: string;
  label: string | undefined;
  /** Keep the services' logs even after a successful run. */
  keepLogs: boolean;
  /** Nodes of the local Kafka to start (a benchmark's --brokers); KAFKA_BROKER_COUNT when absent. */
  brokers?: number;
}

export interface BenchSession {
  env: BenchEnv;
  /** The seed rules every stack of the run starts with. */
  rules: GatewayRule[];
  sampler: Sampler;
  runDir: string;
  token: string;
  info: RunInfo;
  broker: BenchBroker;
  cleanup: Cleanup;
  /** A fresh stack whose processes are sampled; `release` stops it (also done on any way out). */
  startStack(options: Omit<StackOptions, 'runDir'>): Promise<BenchStack & { release: () => Promise<void> }>;
  /** A directory inside the run directory, e.g. for CPU profiles. */
  subDir(name: string): string;
  /** Marks the run as successful, so its logs are deleted at the end (unless kept). */
  succeeded(): void;
}

/** Redis' own process, when it runs on this machine, so its CPU can be sampled too. */
async function localRedisProcess(url: string): Promise<WatchedProcess[]> {
  const { hostname } = new URL(url);
  if (!['127.0.0.1', 'localhost', '::1'].includes(hostname)) return [];
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const pid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]);
    // Other clients may use the same Redis: its CPU is not all the benchmark's.
    return pid > 0 ? [{ name: 'redis (shared)', pid }] : [];
  } finally {
    redis.disconnect();
  }
}

export async function openSession(options: SessionOptions): Promise<BenchSession> {
  const { cleanup } = options;
  const env = loadBenchEnv();
  await checkRedis(env.REDIS_URL);
  const runDir = mkdtempSync(path.join(tmpdir(), 'pgo-bench-'));
  let success = false;
  cleanup.defer('run directory', () => {
    if (success && !options.keepLogs) rmSync(runDir, { recursive: true, force: true });
    else console.error(`the services' logs are in ${runDir}`);
  });
  console.error(`starting Kafka${env.KAFKA_BROKERS ? ' (KAFKA_BROKERS)' : ' on free ports (a broker of its own)'} …`);
  const brokerCount = options.brokers ?? env.KAFKA_BROKER_COUNT;
  const broker = await startBenchBroker(env, brokerCount);
  cleanup.defer('Kafka broker', broker.stop);
  const sampler = startSampler([
    { name: 'bench harness', pid: process.pid },
    ...broker.pids.map((pid, index) => ({ name: broker.pids.length === 1 ? 'kafka broker' : `kafka broker ${index + 1}`, pid })),
    ...(await localRedisProcess(env.REDIS_URL)),
  ]);
  cleanup.defer('sampler', sampler.stop);
  // The command as run: a node count from the environment is part of it.
  const command = options.brokers === undefined && env.KAFKA_BROKER_COUNT !== 1 ? `KAFKA_BROKER_COUNT=${env.KAFKA_BROKER_COUNT} ${options.command}` : options.command;
  const info = await collectRunInfo({ command, label: options.label, kafka: broker.description, redisUrl: env.REDIS_URL });
  const token = await mintToken({ secret: env.AUTH_JWT_SECRET, issuer: env.AUTH_JWT_ISSUER }, 'bench', ['payments:write', 'payments:read']);

  return {
    env,
    rules: readRulesFile(rulesFileOf(env)),
    sampler,
    runDir,
    token,
    info,
    broker,
    cleanup,
    async startStack(stackOptions) {
      const stack = await startBenchStack(env, broker, { ...stackOptions, runDir });
      const release = cleanup.defer('stack', stack.stop);
      stack.processes.forEach(sampler.watch);
      return { ...stack, release };
    },
    subDir(name) {
      const dir = path.join(runDir, name);
      mkdirSync(dir, { recursive: true });
      return dir;
    },
    succeeded: () => {
      success = true;
    },
  };
}
