import Redis from 'ioredis';
import type { Kafka } from 'kafkajs';
import type { RunningGateway } from '../../gateways/main';
import type { SandboxSettings } from '../../gateways/sandbox';
import type { Payment } from '../../orchestrator/state/payment';
import { startServiceProcess, type ServiceProcess } from '../../scripts/processes';
import type { TopicNames } from '../../topics/names';
import type { GatewayRule } from '../../topics/schemas';
import { asService, isolatedNamespace } from './env';
import { pollUntil } from './poll';
import { checkPaymentInvariants, type InvariantReport } from './invariants';
import { startSteadyLoad, type LoadAnswer, type LoadOptions, type SteadyLoad } from './load';
import { namespaceEnv, prepareNamespace, startSandboxGateway } from './stack';

export interface ChaosStackOptions {
  rules: GatewayRule[];
  /** Initial sandbox behaviour per gateway id; gateways not listed are healthy. */
  sandboxes?: Record<string, Partial<SandboxSettings>>;
  /** One orchestrator process per id (its INSTANCE_ID). */
  instances?: string[];
  /** Orchestrator variables beyond the namespace's. */
  orchestratorEnv?: Record<string, string>;
  /** A broker the test owns, instead of the run's shared one. */
  brokers?: string;
  /** A Redis the test owns, instead of the run's shared one. */
  redisUrl?: string;
  /** Runs the back office too, as a process of its own. */
  backoffice?: boolean;
}

export interface ChaosStack {
  kafka: Kafka;
  topics: TopicNames;
  /** The namespace's variables (Kafka, Redis, prefixes), as every service of the stack gets them. */
  env: Record<string, string>;
  gateways: Map<string, RunningGateway>;
  /** The back office's process, when the stack runs one. */
  backoffice?: ServiceProcess;
  /** Base URLs of the orchestrator instances running now (not killed, not being restarted). */
  baseUrls(): string[];
  instance(id: string): ServiceProcess;
  /** SIGKILLs an instance and waits until it is gone. */
  kill(id: string): Promise<void>;
  /** Starts a killed instance again, under the same id; resolves once it is ready. */
  restart(id: string): Promise<void>;
  /** SIGTERMs an instance (a deploy's stop: it drains) and waits until it has exited. */
  terminate(id: string): Promise<void>;
  /** SIGSTOPs an instance: it holds its partitions and connections but does nothing, as in a long GC pause. */
  pause(id: string): void;
  /** SIGCONTs a paused instance. */
  resume(id: string): void;
  /** Steady load on the instances running at each request; stopped with the stack if the test has not stopped it. */
  startLoad(options: Omit<LoadOptions, 'targets'>): SteadyLoad;
  /** PUT /sandbox on a gateway: its behaviour for attempts arriving from now on. */
  configureSandbox(gatewayId: string, settings: Partial<SandboxSettings>): Promise<void>;
  /** The output of every process (orchestrator or back office) that exited although the test did not kill it: a crash. */
  crashes(): string[];
  stop(): Promise<void>;
}

/**
 * A stack for fault injection: the orchestrators run as processes of their
 * own (so a test can SIGKILL one, and a crash shows as an exit), the sandbox
 * gateways in this process (so a test can change their behaviour), in a
 * namespace of their own, on the shared broker and Redis or on ones the test
 * owns.
 */
export async function startChaosStack(options: ChaosStackOptions): Promise<ChaosStack> {
  const ns = {
    ...isolatedNamespace(),
    ...(options.brokers ? { brokers: options.brokers } : {}),
    ...(options.redisUrl ? { redisUrl: options.redisUrl } : {}),
  };
  const env: Record<string, string> = { ...namespaceEnv(ns), LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn' };
  const { kafka, topics } = await prepareNamespace(ns, options.rules);
  // Each service with its own broker principal (topics/acls.ts).
  const orchestratorEnv = { ...asService(env, 'orchestrator'), ...options.orchestratorEnv };

  const gateways = new Map<string, RunningGateway>();
  const instances = new Map<string, ServiceProcess>();
  const killed = new Set<string>();
  const loads: SteadyLoad[] = [];
  let backoffice: ServiceProcess | undefined;
  const processes = () => [...instances, ...(backoffice ? [['backoffice', backoffice] as const] : [])];
  const running = (service: ServiceProcess) => service.child.exitCode === null && service.child.signalCode === null;
  const stopAll = async () => {
    for (const load of loads) await load.stop();
    for (const [, service] of processes()) {
      if (running(service)) {
        service.child.kill('SIGTERM');
        await service.exited;
      }
    }
    for (const gateway of gateways.values()) await gateway.stop();
  };
  const startInstance = async (id: string) => {
    instances.set(id, await startServiceProcess('orchestrator/main.ts', { ...orchestratorEnv, INSTANCE_ID: id }));
  };

  try {
    for (const { gatewayId } of options.rules) gateways.set(gatewayId, await startSandboxGateway(env, gatewayId, options.sandboxes?.[gatewayId]));
    await Promise.all([
      ...(options.instances ?? ['one']).map(startInstance),
      options.backoffice ? startServiceProcess('backoffice/main.ts', asService(env, 'backoffice')).then((started) => (backoffice = started)) : undefined,
    ]);
  } catch (error) {
    await stopAll();
    throw error;
  }

  const instance = (id: string) => {
    const found = instances.get(id);
    if (!found) throw new Error(`no orchestrator instance ${id}`);
    return found;
  };

  const baseUrls = () => [...instances].filter(([id, service]) => !killed.has(id) && running(service)).map(([, service]) => service.baseUrl);
  return {
    kafka,
    topics,
    env,
    gateways,
    ...(backoffice ? { backoffice } : {}),
    baseUrls,
    instance,
    async kill(id) {
      killed.add(id);
      const victim = instance(id);
      victim.child.kill('SIGKILL');
      await victim.exited;
    },
    async restart(id) {
      await startInstance(id);
      killed.delete(id);
    },
    async terminate(id) {
      killed.add(id);
      const leaving = instance(id);
      leaving.child.kill('SIGTERM');
      await leaving.exited;
    },
    pause(id) {
      instance(id).child.kill('SIGSTOP');
    },
    resume(id) {
      instance(id).child.kill('SIGCONT');
    },
    startLoad(loadOptions) {
      const load = startSteadyLoad({ ...loadOptions, targets: baseUrls });
      loads.push(load);
      return load;
    },
    async configureSandbox(gatewayId, settings) {
      const gateway = gateways.get(gatewayId);
      if (!gateway) throw new Error(`no gateway ${gatewayId}`);
      const response = await fetch(`http://127.0.0.1:${gateway.port}/sandbox`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(settings),
      });
      if (response.status !== 200) throw new Error(`PUT /sandbox on ${gatewayId}: ${response.status} ${await response.text()}`);
    },
    crashes: () => processes().filter(([id, service]) => !killed.has(id) && !running(service)).map(([id, service]) => `${id}:\n${service.output()}`),
    stop: stopAll,
  };
}

/** Polls a service's /readyz until it answers 200: readiness is not announced anywhere a test could listen. */
export async function untilReady(baseUrl: string, timeoutMs: number): Promise<void> {
  await pollUntil(
    async () => (await fetch(`${baseUrl}/readyz`)).status,
    (status) => status === 200,
    timeoutMs,
    () => `${baseUrl} not ready after ${timeoutMs} ms`,
    100,
  );
}

/** What a payment looks like once nothing more is expected to happen to it without a person. */
const isSettled = (payment: Payment) => payment.status !== 'PENDING' || payment.review !== undefined;

/**
 * Waits until every payment is terminal (or flagged for review, which only
 * a person ends) and every outbox has been sent, so the status topic holds
 * everything the invariant check reads. Polls Redis: neither a review flag
 * nor an emptied outbox is announced anywhere a test could listen.
 */
export async function untilSettled(redisUrl: string, redisKeyPrefix: string, paymentIds: readonly string[], timeoutMs: number): Promise<void> {
  const redis = new Redis(redisUrl, { keyPrefix: redisKeyPrefix });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      // Sent back to back without waiting for each reply: a few round trips, not one per payment.
      const docs = await Promise.all(paymentIds.map((id) => redis.hget(`payment:${id}`, 'doc')));
      const unsettled = paymentIds.filter((_id, index) => {
        const doc = docs[index];
        return !doc || !isSettled(JSON.parse(doc) as Payment);
      });
      const unsent = await redis.zcard('outbox-pending');
      if (unsettled.length === 0 && unsent === 0) return;
      if (Date.now() > deadline) {
        throw new Error(`after ${timeoutMs} ms, ${unsettled.length} of ${paymentIds.length} payments are unsettled (e.g. ${unsettled.slice(0, 3).join(', ')}) and ${unsent} outboxes unsent`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    redis.disconnect();
  }
}

/** Ids of every payment stored under a key prefix. */
export async function storedPaymentIds(redisUrl: string, redisKeyPrefix: string): Promise<string[]> {
  const redis = new Redis(redisUrl);
  const ids: string[] = [];
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${redisKeyPrefix}payment:*`, 'COUNT', 1000);
      ids.push(...keys.map((key) => key.slice(`${redisKeyPrefix}payment:`.length)));
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return ids;
}

const sorted = (ids: readonly string[]) => [...ids].sort();

/**
 * The end of every chaos scenario: waits (bounded) until every accepted
 * payment is settled, then checks that exactly the accepted payments were
 * stored (nothing lost, nothing created twice by a retried request), the
 * product's invariants over the status topic and Redis, and that no
 * orchestrator crashed.
 */
export async function expectNothingLost(stack: ChaosStack, accepted: readonly string[], timeoutMs = 60_000): Promise<InvariantReport> {
  const { REDIS_URL: redisUrl = '', REDIS_KEY_PREFIX: redisKeyPrefix = '' } = stack.env;
  await untilSettled(redisUrl, redisKeyPrefix, accepted, timeoutMs);
  expect(sorted(await storedPaymentIds(redisUrl, redisKeyPrefix))).toEqual(sorted(accepted));
  const report = await checkPaymentInvariants({ kafka: stack.kafka, topics: stack.topics, redisUrl, redisKeyPrefix, acceptedIds: accepted });
  expect(report.violations).toEqual([]);
  expect(report.terminal + report.flaggedForReview).toBe(accepted.length);
  expect(stack.crashes()).toEqual([]);
  return report;
}

/** The stored payments of `ids` (those stored), as the orchestrators left them in Redis. */
export async function storedPayments(stack: Pick<ChaosStack, 'env'>, ids: readonly string[]): Promise<Payment[]> {
  const redis = new Redis(stack.env.REDIS_URL ?? '', { keyPrefix: stack.env.REDIS_KEY_PREFIX ?? '' });
  try {
    const docs = await Promise.all(ids.map((id) => redis.hget(`payment:${id}`, 'doc')));
    return docs.flatMap((doc) => (doc ? [JSON.parse(doc) as Payment] : []));
  } finally {
    redis.disconnect();
  }
}

/**
 * What a user must see when every gateway was healthy throughout, whatever
 * happened to the orchestrators: every accepted payment SUCCESS on its first
 * attempt, so no failover, no cancel, no compensation and no failure. Returns
 * the payments that deviate, described, so a failure names them.
 */
export async function paymentsNotSettledFirstTime(stack: Pick<ChaosStack, 'env'>, accepted: readonly string[]): Promise<string[]> {
  const payments = new Map((await storedPayments(stack, accepted)).map((payment) => [payment.id, payment]));
  return accepted.flatMap((id) => {
    const payment = payments.get(id);
    if (!payment) return [`${id}: not stored`];
    const attempts = payment.attempts.map((attempt) => `${attempt.gatewayId}:${attempt.status}${attempt.reasonCode ? `(${attempt.reasonCode})` : ''}`);
    const firstTime = payment.status === 'SUCCESS' && payment.attempts.length === 1 && payment.attempts[0]?.status === 'succeeded';
    return firstTime ? [] : [`${payment.id}: ${payment.status}${payment.reason ? ` (${payment.reason})` : ''} after ${attempts.join(', ')}`];
  });
}

/**
 * Final answers that are neither an acceptance nor admission control's
 * refusal: a client retries a 503 overloaded for a while (as the API asks),
 * and one still refused at the end was refused at the door, with nothing
 * written, which `expectNothingLost` then checks.
 */
export const notAcceptedNorRefused = (answer: LoadAnswer): boolean =>
  answer.status !== 202 && !(answer.status === 503 && (answer.body as { error?: { code?: string } } | undefined)?.error?.code === 'overloaded');
