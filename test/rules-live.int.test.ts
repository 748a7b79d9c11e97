import { randomUUID } from 'node:crypto';
import { loadOrchestratorConfig } from '../orchestrator/config';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/main';
import { deadLetter, type GatewayRule } from '../topics/schemas';
import { collectTopic } from './support/collect';
import { testLogger, fetchApi } from './support/env';
import { deposit, getPayment, postPayment, publishRules, rule, signedRuleMessage, startTestStack, untilRouting, watchStatuses, type TestStack } from './support/stack';

const ALPHA = 'alpha';
const BETA = 'beta';

type Statuses = Awaited<ReturnType<typeof watchStatuses>>;

const ruleOf = (view: { gateways: GatewayRule[] }, gatewayId: string) => view.gateways.find((gateway) => gateway.gatewayId === gatewayId);

/** Sends `count` payments in concurrent batches; returns their ids once all are accepted. */
async function sendPayments(baseUrl: string, count: number, batch = 20): Promise<string[]> {
  const ids: string[] = [];
  while (ids.length < count) {
    const responses = await Promise.all(Array.from({ length: Math.min(batch, count - ids.length) }, () => postPayment(baseUrl, deposit())));
    for (const response of responses) {
      expect(response.status).toBe(202);
      ids.push(String(response.body.id));
    }
  }
  return ids;
}

/** Settling gateway per payment, counted (healthy gateways: the first attempt settles). */
async function splitOf(statuses: Statuses, ids: string[]): Promise<Map<string, number>> {
  const terminals = await statuses.untilTerminal(ids);
  expect(terminals.every((event) => event.status === 'SUCCESS')).toBe(true);
  const split = new Map<string, number>();
  for (const event of terminals) split.set(String(event.gatewayId), (split.get(String(event.gatewayId)) ?? 0) + 1);
  return split;
}

/**
 * Payments sent continuously, a few at a time, until stopped: each is noted
 * with the time its request was sent. A test awaits a number of them sent
 * after a given moment (no sleeps).
 */
function startTraffic(baseUrl: string) {
  const sent: Array<{ id: string; postedAt: number }> = [];
  const waiters: Array<() => void> = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const postedAt = Date.now();
      const responses = await Promise.all(Array.from({ length: 4 }, () => postPayment(baseUrl, deposit())));
      for (const response of responses) {
        if (response.status !== 202) throw new Error(`payment refused mid-traffic: ${response.status} ${JSON.stringify(response.body)}`);
        sent.push({ id: String(response.body.id), postedAt });
      }
      for (const wake of waiters.splice(0)) wake();
    }
  })();
  return {
    sent,
    async untilSentAfter(since: number, count: number): Promise<void> {
      while (sent.filter((payment) => payment.postedAt > since).length < count) {
        await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), loop]);
      }
    },
    async stop(): Promise<void> {
      stopped = true;
      await loop;
    },
  };
}

/** Everything on the dead-letter topic; a test awaits the letter it expects. */
const watchDeadLetters = (stack: TestStack) =>
  collectTopic(stack.kafka, stack.topics.deadLetter, deadLetter, { groupPrefix: `${stack.env.TOPIC_PREFIX}dlq-`, label: 'dead letter' });

describe('marking a gateway unavailable while payments flow', () => {
  let stack: TestStack;
  let statuses: Statuses;

  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule(ALPHA), rule(BETA)] });
    statuses = await watchStatuses(stack);
  });
  afterAll(async () => {
    await statuses?.stop();
    await stack?.stop();
  });

  test('When a rule event marks a gateway unavailable mid-traffic, then no new dispatch goes to it once applied, and it gets traffic again when marked available', async () => {
    const traffic = startTraffic(stack.baseUrl);
    let unavailableVersion = '';
    let appliedAt = 0;
    try {
      await traffic.untilSentAfter(0, 24);
      await publishRules(stack.kafka, stack.topics, [rule(ALPHA, { available: false, unavailableReason: 'maintenance' })], 2);
      const published = Date.now();
      // The design promise: selection stops within a second.
      const applied = await untilRouting(stack.baseUrl, (view) => ruleOf(view, ALPHA)?.available === false, 1_000);
      appliedAt = Date.now();
      expect(appliedAt - published).toBeLessThan(1_000);
      unavailableVersion = applied.rulesVersion;
      await traffic.untilSentAfter(appliedAt, 24);
    } finally {
      await traffic.stop();
    }
    const terminals = await statuses.untilTerminal(traffic.sent.map((payment) => payment.id));
    expect(terminals.every((event) => event.status === 'SUCCESS')).toBe(true);

    const payments = await Promise.all(traffic.sent.map(async (sent) => ({ ...sent, payment: await getPayment(stack.baseUrl, sent.id) })));
    // Before the change both gateways had traffic.
    expect(payments.some(({ payment }) => payment.attempts[0]?.gatewayId === ALPHA)).toBe(true);
    // Every payment sent once the change was visible was routed under it, and none of those went to alpha.
    const sentAfter = payments.filter(({ postedAt }) => postedAt > appliedAt);
    expect(sentAfter.length).toBeGreaterThanOrEqual(24);
    expect(sentAfter.every(({ payment }) => payment.attempts[0]?.routing.rulesVersion === unavailableVersion)).toBe(true);
    const routedUnderChange = payments.filter(({ payment }) => payment.attempts[0]?.routing.rulesVersion === unavailableVersion);
    for (const { payment } of routedUnderChange) {
      expect(payment.attempts.map((attempt) => attempt.gatewayId)).toEqual([BETA]);
      expect(payment.attempts[0]?.routing).toMatchObject({ chosen: BETA, excluded: [{ gatewayId: ALPHA, reason: 'unavailable' }] });
    }
    const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^gateway_available\{gateway="alpha"[^}]*\} 0$/m);

    await publishRules(stack.kafka, stack.topics, [rule(ALPHA, { available: true })], 3);
    const restored = await untilRouting(stack.baseUrl, (view) => ruleOf(view, ALPHA)?.available === true, 1_000);
    const again = await sendPayments(stack.baseUrl, 30, 10);
    const split = await splitOf(statuses, again);
    // 1:1 over 30 payments: none at all to alpha would happen about once in a billion runs.
    expect(split.get(ALPHA)).toBeGreaterThan(0);
    for (const id of again) {
      const payment = await getPayment(stack.baseUrl, id);
      expect(payment.attempts[0]?.routing).toMatchObject({ rulesVersion: restored.rulesVersion, excluded: [] });
    }
  });
});

describe('changing weights while payments flow', () => {
  let stack: TestStack;
  let statuses: Statuses;

  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule(ALPHA, { weight: 1 }), rule(BETA, { weight: 1 })] });
    statuses = await watchStatuses(stack);
  });
  afterAll(async () => {
    await statuses?.stop();
    await stack?.stop();
  });

  test('When a weight changes from 1:1 to 1:9 and then to 0:1, then the split of new payments follows', async () => {
    const even = await splitOf(statuses, await sendPayments(stack.baseUrl, 100));
    // Expected 50 each; the binomial standard deviation is 5, so ±22 is over four of them.
    expect(even.get(ALPHA)).toBeGreaterThanOrEqual(28);
    expect(even.get(ALPHA)).toBeLessThanOrEqual(72);

    await publishRules(stack.kafka, stack.topics, [rule(BETA, { weight: 9 })], 2);
    await untilRouting(stack.baseUrl, (view) => ruleOf(view, BETA)?.weight === 9);
    const skewed = await splitOf(statuses, await sendPayments(stack.baseUrl, 200));
    // Expected 20 to alpha and 180 to beta; the standard deviation is about 4.2.
    expect(skewed.get(ALPHA) ?? 0).toBeGreaterThanOrEqual(3);
    expect(skewed.get(ALPHA) ?? 0).toBeLessThanOrEqual(40);
    expect((skewed.get(ALPHA) ?? 0) + (skewed.get(BETA) ?? 0)).toBe(200);

    await publishRules(stack.kafka, stack.topics, [rule(ALPHA, { weight: 0 })], 3);
    const drained = await untilRouting(stack.baseUrl, (view) => ruleOf(view, ALPHA)?.weight === 0);
    const ids = await sendPayments(stack.baseUrl, 20);
    const none = await splitOf(statuses, ids);
    expect(none.get(ALPHA)).toBeUndefined();
    const payment = await getPayment(stack.baseUrl, ids[0] ?? '');
    expect(payment.attempts[0]?.routing).toMatchObject({
      chosen: BETA,
      excluded: [{ gatewayId: ALPHA, reason: 'zero-weight' }],
      rulesVersion: drained.rulesVersion,
    });
  });
});

describe('a malformed rule event', () => {
  let stack: TestStack;
  let statuses: Statuses;
  let letters: Awaited<ReturnType<typeof watchDeadLetters>>;

  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule(ALPHA), rule(BETA)] });
    statuses = await watchStatuses(stack);
    letters = await watchDeadLetters(stack);
  });
  afterAll(async () => {
    await letters?.stop();
    await statuses?.stop();
    await stack?.stop();
  });

  test('When a rule event with a bad schema lands on the rules topic, then it is dead-lettered and later valid rule events are still applied', async () => {
    const before = await untilRouting(stack.baseUrl, (view) => view.gateways.length === 2);
    const producer = stack.kafka.producer();
    await producer.connect();
    try {
      const bad = {
        eventId: randomUUID(),
        type: 'rule.changed',
        occurredAt: new Date().toISOString(),
        schemaVersion: 1,
        rule: { ...rule(ALPHA), weight: 'heavy', available: 'no' },
        version: 2,
        changedBy: 'test',
      };
      await producer.send({ topic: stack.topics.rules, messages: [{ key: ALPHA, value: JSON.stringify(bad) }] });
    } finally {
      await producer.disconnect();
    }
    await publishRules(stack.kafka, stack.topics, [rule(BETA, { weight: 7 })], 3);

    const after = await untilRouting(stack.baseUrl, (view) => ruleOf(view, BETA)?.weight === 7);
    expect(ruleOf(after, ALPHA)).toEqual(ruleOf(before, ALPHA));
    const letter = await letters.until((candidate) => candidate.sourceTopic === stack.topics.rules);
    expect(letter).toMatchObject({ key: ALPHA, reason: 'schema', sourceTopic: stack.topics.rules });
    expect(letter.detail).toMatch(/weight/);
    const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/kafka_messages_dead_lettered_total\{topic="[^"]+backoffice\.rules",reason="schema",service="orchestrator"\} 1/);
    expect((await fetch(`${stack.baseUrl}/readyz`)).status).toBe(200);

    const accepted = await postPayment(stack.baseUrl, deposit());
    const [terminal] = await statuses.untilTerminal([String(accepted.body.id)]);
    expect(terminal?.status).toBe('SUCCESS');
  });
});

describe('an orchestrator instance started after rule changes', () => {
  let stack: TestStack;
  let late: RunningOrchestrator | undefined;

  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule(ALPHA), rule(BETA), rule('gamma')] });
  });
  afterAll(async () => {
    await late?.stop();
    await stack?.stop();
  });

  test('When a new orchestrator instance starts after rule changes, then it rebuilds the same rules and version from the compacted topic', async () => {
    await publishRules(stack.kafka, stack.topics, [rule(ALPHA, { weight: 3, regions: ['EU', 'US'] })], 2);
    await publishRules(stack.kafka, stack.topics, [rule(BETA, { available: false, unavailableReason: 'maintenance', rateLimitPerSecond: 50 })], 3);
    await publishRules(stack.kafka, stack.topics, [rule(ALPHA, { weight: 5, regions: ['EU', 'US'], timeoutMs: 2_000 })], 4);
    // The back office removes a gateway with a signed, versioned removal event (never a bare tombstone).
    const producer = stack.kafka.producer();
    await producer.connect();
    try {
      const removal = { eventId: randomUUID(), type: 'rule.removed', occurredAt: new Date().toISOString(), schemaVersion: 1, gatewayId: 'gamma', version: 2, changedBy: 'test' };
      await producer.send({ topic: stack.topics.rules, messages: [signedRuleMessage('gamma', JSON.stringify(removal))] });
    } finally {
      await producer.disconnect();
    }
    const current = await untilRouting(stack.baseUrl, (view) => view.gateways.length === 2 && ruleOf(view, ALPHA)?.weight === 5);
    expect(ruleOf(current, ALPHA)).toMatchObject({ weight: 5, regions: ['EU', 'US'], timeoutMs: 2_000 });
    expect(ruleOf(current, BETA)).toMatchObject({ available: false, rateLimitPerSecond: 50 });

    late = await startOrchestrator(loadOrchestratorConfig({ ...stack.env, INSTANCE_ID: 'late' }), { logger: testLogger('orchestrator-late') });
    // It serves only once caught up, so its very first view already matches.
    const rebuilt = (await (await fetchApi(`http://127.0.0.1:${late.port}/v1/routing`)).json()) as { instance: string; rulesVersion: string; gateways: unknown };
    expect(rebuilt.instance).toBe('late');
    // Health is each instance's own evidence (ADR 0014), so only the rules are compared.
    const rulesOnly = (gateways: unknown) => (gateways as Array<Record<string, unknown>>).map(({ health: _health, ...rule }) => rule);
    expect({ rulesVersion: rebuilt.rulesVersion, gateways: rulesOnly(rebuilt.gateways) }).toEqual({ rulesVersion: current.rulesVersion, gateways: rulesOnly(current.gateways) });
  });
});
