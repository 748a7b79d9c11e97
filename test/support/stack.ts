import { DEVELOPMENT_RULES_KEY, SIGNATURE_HEADER, signMessage } from '../../runtime/signing';
import type { Kafka } from 'kafkajs';
import { applyAcls, aclTable } from '../../topics/acls';
import { ensureTopics } from '../../topics/create';
import { topicNames, topicSpecs, type TopicNames } from '../../topics/names';
import type { GatewayRule, PaymentStatusChanged, RuleChanged } from '../../topics/schemas';
import { paymentStatusChanged } from '../../topics/schemas';
import { startGateway, type RunningGateway } from '../../gateways/main';
import type { SandboxSettings } from '../../gateways/sandbox';
import { startOrchestrator, type OrchestratorOverrides, type RunningOrchestrator } from '../../orchestrator/main';
import { loadOrchestratorConfig } from '../../orchestrator/config';
import { anyAmountBounds } from '../../orchestrator/test-fixtures';
import { loadGatewayConfig } from '../../gateways/config';
import type { Payment } from '../../orchestrator/state/payment';
import type { HealthExplanation } from '../../orchestrator/health/gateway-health';
import { collectTopic } from './collect';
import { asService, harnessKafka, isolatedNamespace, kafkaCredentials, kafkaSecurity, testLogger, fetchApi } from './env';
import { pollUntil } from './poll';

/**
 * A valid rule serving EUR and USD in the EU. Every currency it serves gets a bound letting any amount through
 * (the back office refuses a rule without one), unless the test gives `amountBounds` itself.
 */
export const rule = (gatewayId: string, fields: Partial<GatewayRule> = {}): GatewayRule => {
  const currencies = fields.currencies ?? ['EUR', 'USD'];
  return {
    gatewayId,
    enabled: true,
    regions: ['EU'],
    paymentTypes: ['deposit', 'withdrawal'],
    currencies,
    amountBounds: anyAmountBounds(currencies),
    weight: 1,
    timeoutMs: 5000,
    timeoutPolicy: { deposit: 'failover', withdrawal: 'cancel-first' },
    available: true,
    ...fields,
  };
};

export interface StackOptions {
  rules: GatewayRule[];
  /** Sandbox behaviour per gateway id; gateways not listed are healthy. */
  sandboxes?: Record<string, Partial<SandboxSettings>>;
  orchestrator?: OrchestratorOverrides & { env?: Record<string, string> };
}

export interface TestStack {
  baseUrl: string;
  topics: TopicNames;
  kafka: Kafka;
  orchestrator: RunningOrchestrator;
  gateways: Map<string, RunningGateway>;
  /** The orchestrator's environment: the namespace and its broker principal (`asService(env, …)` for another service). */
  env: Record<string, string>;
  stop: () => Promise<void>;
}

/**
 * A whole stack in this process on real Kafka and Redis, in a namespace of
 * its own (topic and key prefixes), so test files run in parallel without
 * seeing each other's messages.
 */
export async function startTestStack(options: StackOptions): Promise<TestStack> {
  const ns = isolatedNamespace();
  // The orchestrator here shares its process with the test runner and the sandbox gateways, so neither its event
  // loop's delay nor how late it reads results says much about it: admission control is left to the chaos tests,
  // whose orchestrators run as processes of their own.
  const env = {
    ...namespaceEnv(ns),
    ...kafkaCredentials('orchestrator'),
    PORT: '0',
    LOG_LEVEL: 'silent',
    ADMISSION_MAX_EVENT_LOOP_DELAY_MS: '600000',
    ADMISSION_MAX_RESULTS_BACKLOG_MS: '600000',
  };
  const { kafka, topics } = await prepareNamespace(ns, options.rules);

  const gateways = new Map<string, RunningGateway>();
  const stoppers: Array<() => Promise<void>> = [];
  try {
    await Promise.all(
      options.rules.map(async ({ gatewayId }) => {
        const gateway = await startSandboxGateway(env, gatewayId, options.sandboxes?.[gatewayId]);
        gateways.set(gatewayId, gateway);
        stoppers.push(gateway.stop);
      }),
    );
    const { env: extraEnv, ...overrides } = options.orchestrator ?? {};
    const orchestrator = await startOrchestrator(loadOrchestratorConfig({ ...env, ...extraEnv }), {
      logger: testLogger('orchestrator'),
      ...overrides,
    });
    stoppers.unshift(orchestrator.stop);
    return {
      baseUrl: `http://127.0.0.1:${orchestrator.port}`,
      topics,
      kafka,
      orchestrator,
      gateways,
      env,
      stop: async () => {
        for (const stop of stoppers) await stop();
      },
    };
  } catch (error) {
    for (const stop of stoppers) await stop();
    throw error;
  }
}

/** A sandbox gateway in this process, on a free port, in the namespace that `env` points at. */
export function startSandboxGateway(env: Record<string, string>, gatewayId: string, sandbox: Partial<SandboxSettings> = {}): Promise<RunningGateway> {
  return startGateway(
    loadGatewayConfig({
      ...asService(env, 'gateway'),
      PORT: '0',
      GATEWAY_ID: gatewayId,
      SANDBOX_MODE: sandbox.mode,
      SANDBOX_LATENCY_MS: sandbox.latencyMs?.toString(),
      SANDBOX_RATE: sandbox.rate?.toString(),
      SANDBOX_PERIOD_MS: sandbox.periodMs?.toString(),
      SANDBOX_LATE_MS: sandbox.lateMs?.toString(),
    }),
    { logger: testLogger(`gateway-${gatewayId}`) },
  );
}

type Namespace = ReturnType<typeof isolatedNamespace>;

/** The service variables that point a service at a namespace's Kafka, Redis and prefixes. */
export const namespaceEnv = (ns: Namespace) => ({
  KAFKA_BROKERS: ns.brokers,
  REDIS_URL: ns.redisUrl,
  REDIS_KEY_PREFIX: ns.redisKeyPrefix,
  TOPIC_PREFIX: ns.topicPrefix,
});

/**
 * A Kafka client for a namespace (the harness's, a super user), with its topics created, each service's rights on
 * them (topics/acls.ts) when the brokers authorize, and `rules` published.
 */
export async function prepareNamespace(ns: Namespace, rules: GatewayRule[], security = kafkaSecurity()): Promise<{ kafka: Kafka; topics: TopicNames }> {
  const kafka = harnessKafka(ns.brokers, 'test', security);
  const admin = kafka.admin();
  await admin.connect();
  try {
    const gatewayIds = rules.map((r) => r.gatewayId);
    await ensureTopics(admin, topicSpecs(ns.topicPrefix, gatewayIds));
    if (security === 'sasl') await applyAcls(admin, aclTable(ns.topicPrefix, gatewayIds));
  } finally {
    await admin.disconnect();
  }
  const topics = topicNames(ns.topicPrefix);
  await publishRules(kafka, topics, rules);
  return { kafka, topics };
}

/** A rule-topic message signed with the development key, as the back office signs it. */
export function signedRuleMessage(key: string, value: string | null) {
  return { key, value, headers: { [SIGNATURE_HEADER]: signMessage(DEVELOPMENT_RULES_KEY, key, value) } };
}

/** Publishes rule events, as the back office does (the rule topic is compacted by gateway id). */
/** A `rule.changed` event as the back office writes it, as JSON (unsigned: sign it with `signedRuleMessage`). */
export const ruleChangedJson = (rule: GatewayRule, version: number, changedBy = 'test'): string =>
  JSON.stringify({
    eventId: crypto.randomUUID(),
    type: 'rule.changed',
    occurredAt: new Date().toISOString(),
    schemaVersion: 1,
    rule,
    version,
    changedBy,
  } satisfies RuleChanged);

export async function publishRules(kafka: Kafka, topics: TopicNames, rules: GatewayRule[], version = 1): Promise<void> {
  const producer = kafka.producer();
  await producer.connect();
  try {
    await producer.send({
      topic: topics.rules,
      messages: rules.map((rule) => signedRuleMessage(rule.gatewayId, ruleChangedJson(rule, version))),
    });
  } finally {
    await producer.disconnect();
  }
}

interface RoutingView {
  rulesVersion: string;
  gateways: Array<GatewayRule & { breaker: string; effectiveWeight: number; health: HealthExplanation }>;
}

/** Waits until an orchestrator's routing view satisfies `ready` (e.g. a rule change has been applied). */
export function untilRouting(baseUrl: string, ready: (view: RoutingView) => boolean, timeoutMs = 10_000): Promise<RoutingView> {
  return pollUntil(
    async () => (await (await fetchApi(`${baseUrl}/v1/routing`)).json()) as RoutingView,
    ready,
    timeoutMs,
    (view) => `routing view not as expected after ${timeoutMs} ms: ${JSON.stringify(view)}`,
    20,
  );
}

/** GET of a payment through the API, whatever it answers: its HTTP status and parsed body. */
export async function fetchPayment(baseUrl: string, id: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetchApi(`${baseUrl}/v1/payments/${id}`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Reads a payment through the API. */
export async function getPayment(baseUrl: string, id: string): Promise<PaymentView> {
  const response = await fetchApi(`${baseUrl}/v1/payments/${id}`);
  if (response.status !== 200) throw new Error(`GET payment ${id}: ${response.status}`);
  return (await response.json()) as PaymentView;
}

export type PaymentView = Omit<Payment, 'statusSequence'>;

/** Polls a payment until `ready` holds: for states no status event announces (compensation, review). */
export function untilPayment(baseUrl: string, id: string, ready: (payment: PaymentView) => boolean, timeoutMs = 15_000): Promise<PaymentView> {
  return pollUntil(() => getPayment(baseUrl, id), ready, timeoutMs, (payment) => `payment ${id} not as expected after ${timeoutMs} ms: ${JSON.stringify(payment)}`);
}

/** Polls a service's /metrics until the text matches: for counters that move after an event the test cannot see. */
export function untilMetrics(baseUrl: string, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  return pollUntil(
    async () => (await fetch(`${baseUrl}/metrics`)).text(),
    (metrics) => pattern.test(metrics),
    timeoutMs,
    () => `metrics never matched ${pattern} within ${timeoutMs} ms`,
  );
}

/** Sends a payment; returns the HTTP status and parsed body. */
export async function postPayment(
  baseUrl: string,
  body: unknown,
  headers: Record<string, string> = { 'Idempotency-Key': crypto.randomUUID() },
  /** Aborts a request that gets no answer in time, so a client never waits forever. */
  signal?: AbortSignal,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetchApi(`${baseUrl}/v1/payments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

export const deposit = (fields: Record<string, unknown> = {}) => ({
  type: 'deposit',
  accountId: 'acc-42',
  amount: '10000',
  currency: 'EUR',
  region: 'EU',
  ...fields,
});

/**
 * Collects payment status events from the start of the topic, and lets a
 * test await the terminal event of given payments (no sleeps).
 */
export async function watchStatuses(stack: TestStack) {
  const watch = await collectTopic(stack.kafka, stack.topics.paymentStatus, paymentStatusChanged, { groupPrefix: `${stack.env.TOPIC_PREFIX}watch-` });
  const events = watch.messages;
  const terminal = (paymentId: string) => events.find((event) => event.paymentId === paymentId && event.status !== 'PENDING');
  return {
    events,
    terminal,
    /** Resolves with each payment's terminal event once all have one. */
    untilTerminal(paymentIds: string[], timeoutMs = 30_000): Promise<PaymentStatusChanged[]> {
      const all = () => paymentIds.map(terminal);
      return watch.untilFound(
        () => {
          const found = all();
          return found.every((event) => event !== undefined) ? (found as PaymentStatusChanged[]) : undefined;
        },
        timeoutMs,
        () => `${all().filter((event) => event === undefined).length} of ${paymentIds.length} payments not terminal after ${timeoutMs} ms`,
      );
    },
    stop: watch.stop,
  };
}
