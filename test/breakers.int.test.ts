import { loadOrchestratorConfig } from '../orchestrator/config';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/main';
import type { SandboxSettings } from '../gateways/sandbox';
import { gatewayHealthChanged } from '../topics/schemas';
import { collectTopic } from './support/collect';
import { messageCount } from './support/inspect';
import { testLogger, fetchApi } from './support/env';
import { deposit, getPayment, postPayment, rule, startTestStack, untilRouting, watchStatuses, type TestStack } from './support/stack';

// Selection walks the rules sorted by gateway id; with `random` pinned to 0 the
// first eligible one is always chosen, so 'flaky' gets every payment it is
// allowed to get and 'steady' only what the breaker keeps away from it.
const FLAKY = 'flaky';
const STEADY = 'steady';
const VOLUME_THRESHOLD = 5;
const firstEligible = () => 0;

async function putSandbox(stack: TestStack, gatewayId: string, settings: Partial<SandboxSettings>): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${stack.gateways.get(gatewayId)?.port}/sandbox`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(settings),
  });
  expect(response.status).toBe(200);
}

const breakerOf = (gatewayId: string, state: string) => (view: { gateways: Array<{ gatewayId: string; breaker: string }> }) =>
  view.gateways.some((gateway) => gateway.gatewayId === gatewayId && gateway.breaker === state);

/** Everything on the health topic from its beginning; a test awaits the event it expects (no sleeps). */
const watchHealth = (stack: TestStack) =>
  collectTopic(stack.kafka, stack.topics.gatewayHealth, gatewayHealthChanged, { groupPrefix: `${stack.env.TOPIC_PREFIX}health-`, label: 'health event' });

async function startBreakerStack(env: Record<string, string>): Promise<TestStack> {
  return startTestStack({
    rules: [rule(FLAKY), rule(STEADY)],
    sandboxes: { [FLAKY]: { mode: 'error', rate: 1 } },
    orchestrator: {
      random: firstEligible,
      // Consecutive-failure ejection off: these tests are about the failure-rate window (outlier-detection.int.test.ts
      // covers the streak), which would otherwise eject after 3 errors, before the volume threshold.
      env: { BREAKER_VOLUME_THRESHOLD: String(VOLUME_THRESHOLD), BREAKER_ERROR_THRESHOLD_PERCENT: '50', BREAKER_WINDOW_MS: '30000', OUTLIER_CONSECUTIVE_FAILURES: '0', ...env },
    },
  });
}

/**
 * Registers the enclosing describe's hooks: before all its tests a breaker
 * stack with `env` and watchers of its statuses and health topic, stopped
 * after them. The returned holder is filled once beforeAll has run.
 */
function breakerStackWithWatchers(env: Record<string, string>) {
  const run = {} as { stack: TestStack; statuses: Awaited<ReturnType<typeof watchStatuses>>; health: Awaited<ReturnType<typeof watchHealth>> };
  beforeAll(async () => {
    run.stack = await startBreakerStack(env);
    run.statuses = await watchStatuses(run.stack);
    run.health = await watchHealth(run.stack);
  });
  afterAll(async () => {
    await run.health?.stop();
    await run.statuses?.stop();
    await run.stack?.stop();
  });
  return run;
}

/**
 * Sends payments one at a time (each to the erroring gateway first) until the
 * orchestrator at `baseUrl` shows its breaker open; returns their ids.
 */
async function tripBreaker(
  baseUrl: string,
  statuses: Awaited<ReturnType<typeof watchStatuses>>,
  isOpen: () => Promise<boolean>,
  maxPayments = 40,
): Promise<string[]> {
  const ids: string[] = [];
  while (ids.length < maxPayments) {
    const accepted = await postPayment(baseUrl, deposit());
    expect(accepted.status).toBe(202);
    ids.push(String(accepted.body.id));
    await statuses.untilTerminal([ids.at(-1) ?? '']);
    if (await isOpen()) return ids;
  }
  throw new Error(`breaker still not open after ${maxPayments} payments`);
}

const routingOpen = (baseUrl: string) => async () =>
  breakerOf(FLAKY, 'open')((await (await fetchApi(`${baseUrl}/v1/routing`)).json()) as { gateways: Array<{ gatewayId: string; breaker: string }> });

describe('a gateway that keeps failing technically', () => {
  // A long reset timeout: the breaker stays open for the whole test.
  const run = breakerStackWithWatchers({ BREAKER_RESET_TIMEOUT_MS: '60000' });

  test('When a gateway keeps returning retryable errors, then its breaker opens, is published, keeps new payments away, and every payment still succeeds', async () => {
    const { stack, statuses, health } = run;
    const tripping = await tripBreaker(stack.baseUrl, statuses, routingOpen(stack.baseUrl));
    // Every outcome counts and all of them failed: the breaker opens on the volume threshold, not later.
    expect(tripping).toHaveLength(VOLUME_THRESHOLD);
    for (const id of tripping) {
      expect(statuses.terminal(id)).toMatchObject({ status: 'SUCCESS', gatewayId: STEADY });
      const payment = await getPayment(stack.baseUrl, id);
      expect(payment.attempts.map((attempt) => [attempt.gatewayId, attempt.status, attempt.reasonCode])).toEqual([
        [FLAKY, 'failed', 'gateway_error'],
        [STEADY, 'succeeded', undefined],
      ]);
    }

    const view = await untilRouting(stack.baseUrl, breakerOf(FLAKY, 'open'));
    expect(view.gateways.find((gateway) => gateway.gatewayId === STEADY)?.breaker).toBe('closed');
    const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^gateway_breaker_state\{gateway="flaky"[^}]*\} 2$/m);
    expect(metrics).toMatch(/^gateway_breaker_state\{gateway="steady"[^}]*\} 0$/m);

    const instance = ((await (await fetchApi(`${stack.baseUrl}/v1/routing`)).json()) as { instance: string }).instance;
    const opened = await health.until((event) => event.gatewayId === FLAKY && event.breaker === 'open');
    expect(opened).toMatchObject({ type: 'gateway.health', gatewayId: FLAKY, breaker: 'open', reportedBy: instance });

    const later = await Promise.all(Array.from({ length: 5 }, () => postPayment(stack.baseUrl, deposit())));
    const laterIds = later.map((accepted) => {
      expect(accepted.status).toBe(202);
      return String(accepted.body.id);
    });
    const terminals = await statuses.untilTerminal(laterIds);
    expect(terminals.map((event) => [event.status, event.gatewayId])).toEqual(laterIds.map(() => ['SUCCESS', STEADY]));
    for (const id of laterIds) {
      const payment = await getPayment(stack.baseUrl, id);
      expect(payment.attempts).toHaveLength(1);
      expect(payment.attempts[0]?.gatewayId).toBe(STEADY);
      expect(payment.attempts[0]?.routing).toMatchObject({
        chosen: STEADY,
        candidates: [{ gatewayId: STEADY, weight: expect.any(Number) }],
        excluded: [{ gatewayId: FLAKY, reason: 'circuit-open' }],
      });
    }
  });
});

describe('a gateway that heals', () => {
  const run = breakerStackWithWatchers({ BREAKER_RESET_TIMEOUT_MS: '500' });

  test('When the gateway heals and the reset timeout passes, then a half-open trial payment goes to it and its success closes the breaker', async () => {
    const { stack, statuses, health } = run;
    await tripBreaker(stack.baseUrl, statuses, routingOpen(stack.baseUrl));
    await putSandbox(stack, FLAKY, { mode: 'healthy' });

    // No payment arrives meanwhile, so after the reset timeout the breaker waits half-open for a trial.
    await untilRouting(stack.baseUrl, breakerOf(FLAKY, 'half-open'), 5_000);
    const accepted = await postPayment(stack.baseUrl, deposit());
    expect(accepted.status).toBe(202);
    const [terminal] = await statuses.untilTerminal([String(accepted.body.id)]);
    expect(terminal).toMatchObject({ status: 'SUCCESS', gatewayId: FLAKY });
    const payment = await getPayment(stack.baseUrl, String(accepted.body.id));
    expect(payment.attempts.map((attempt) => [attempt.gatewayId, attempt.status])).toEqual([[FLAKY, 'succeeded']]);

    await untilRouting(stack.baseUrl, breakerOf(FLAKY, 'closed'));
    await health.until((event) => event.gatewayId === FLAKY && event.breaker === 'closed');
    expect(health.messages.filter((event) => event.gatewayId === FLAKY).map((event) => event.breaker)).toEqual(['open', 'half-open', 'closed']);
    const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^gateway_breaker_state\{gateway="flaky"[^}]*\} 0$/m);
  });
});

describe('a half-open gateway and a burst of payments', () => {
  let stack: TestStack;
  let statuses: Awaited<ReturnType<typeof watchStatuses>>;

  beforeAll(async () => {
    stack = await startBreakerStack({ BREAKER_RESET_TIMEOUT_MS: '500' });
    statuses = await watchStatuses(stack);
  });
  afterAll(async () => {
    await statuses?.stop();
    await stack?.stop();
  });

  test('When several payments arrive together while the breaker is half-open, then only one trial goes to the gateway', async () => {
    await tripBreaker(stack.baseUrl, statuses, routingOpen(stack.baseUrl));
    // Healed but slow enough that the trial is still in flight while the burst is routed.
    await putSandbox(stack, FLAKY, { mode: 'healthy', latencyMs: 1_000 });
    await untilRouting(stack.baseUrl, breakerOf(FLAKY, 'half-open'), 5_000);

    // A client with a pool of open connections (as a platform has): the burst arrives at once, not one handshake at a time.
    await Promise.all(Array.from({ length: 10 }, async () => (await fetch(`${stack.baseUrl}/healthz`)).json()));
    const burst = await Promise.all(Array.from({ length: 10 }, () => postPayment(stack.baseUrl, deposit())));
    const ids = burst.map((accepted) => {
      expect(accepted.status).toBe(202);
      return String(accepted.body.id);
    });
    const terminals = await statuses.untilTerminal(ids);
    expect(terminals.every((event) => event.status === 'SUCCESS')).toBe(true);
    const firstAttempts = await Promise.all(ids.map(async (id) => (await getPayment(stack.baseUrl, id)).attempts[0]));
    const trials = firstAttempts.filter((attempt) => attempt?.gatewayId === FLAKY);
    expect(trials).toHaveLength(1);
    // The rest were kept away while the trial was out, and say so.
    for (const attempt of firstAttempts.filter((candidate) => candidate?.gatewayId !== FLAKY)) {
      expect(attempt?.routing.excluded).toEqual([{ gatewayId: FLAKY, reason: 'circuit-open' }]);
    }
    await untilRouting(stack.baseUrl, breakerOf(FLAKY, 'closed'));
  });
});

describe('a gateway that declines', () => {
  let stack: TestStack;
  let statuses: Awaited<ReturnType<typeof watchStatuses>>;

  beforeAll(async () => {
    stack = await startTestStack({
      rules: [rule('decliner'), rule(STEADY)],
      sandboxes: { decliner: { mode: 'decline', rate: 1 } },
      orchestrator: {
        random: firstEligible,
        env: { BREAKER_VOLUME_THRESHOLD: String(VOLUME_THRESHOLD), BREAKER_ERROR_THRESHOLD_PERCENT: '50', BREAKER_RESET_TIMEOUT_MS: '60000' },
      },
    });
    statuses = await watchStatuses(stack);
  });
  afterAll(async () => {
    await statuses?.stop();
    await stack?.stop();
  });

  test('When business declines are returned, then the breaker stays closed and the gateway keeps getting payments', async () => {
    const declined = await Promise.all(Array.from({ length: VOLUME_THRESHOLD * 3 }, () => postPayment(stack.baseUrl, deposit())));
    const ids = declined.map((accepted) => String(accepted.body.id));
    const terminals = await statuses.untilTerminal(ids);
    expect(terminals.map((event) => [event.status, event.gatewayId, event.reason])).toEqual(ids.map(() => ['FAILURE', 'decliner', 'insufficient_funds']));

    const view = await untilRouting(stack.baseUrl, () => true);
    expect(view.gateways.map((gateway) => [gateway.gatewayId, gateway.breaker])).toEqual([
      ['decliner', 'closed'],
      [STEADY, 'closed'],
    ]);
    const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^gateway_breaker_state\{gateway="decliner"[^}]*\} 0$/m);

    // Declines after the volume threshold still reach the gateway: it was never excluded.
    const next = await postPayment(stack.baseUrl, deposit());
    const [terminal] = await statuses.untilTerminal([String(next.body.id)]);
    expect(terminal).toMatchObject({ status: 'FAILURE', gatewayId: 'decliner', reason: 'insufficient_funds' });
    const payment = await getPayment(stack.baseUrl, String(next.body.id));
    expect(payment.attempts[0]?.routing.excluded).toEqual([]);
    expect(await messageCount(stack.kafka, stack.topics.gatewayHealth)).toBe(0);
  });
});

describe('two orchestrator instances', () => {
  let stack: TestStack;
  let other: RunningOrchestrator | undefined;
  let otherUrl: string;
  let statuses: Awaited<ReturnType<typeof watchStatuses>>;
  let health: Awaited<ReturnType<typeof watchHealth>>;

  beforeAll(async () => {
    stack = await startBreakerStack({ BREAKER_RESET_TIMEOUT_MS: '60000' });
    // The second instance can never open the breaker from its own count: it only learns of it from the health topic.
    other = await startOrchestrator(
      loadOrchestratorConfig({ ...stack.env, INSTANCE_ID: 'other', BREAKER_VOLUME_THRESHOLD: '100000', BREAKER_RESET_TIMEOUT_MS: '60000', OUTLIER_CONSECUTIVE_FAILURES: '0' }),
      { logger: testLogger('orchestrator-other'), random: firstEligible },
    );
    otherUrl = `http://127.0.0.1:${other.port}`;
    statuses = await watchStatuses(stack);
    health = await watchHealth(stack);
  });
  afterAll(async () => {
    await health?.stop();
    await statuses?.stop();
    await other?.stop();
    await stack?.stop();
  });

  test('When a second instance sees the first instance open a breaker on the health topic, then its own routing shows it open within a second', async () => {
    await untilRouting(otherUrl, breakerOf(FLAKY, 'closed'));
    // The instances share the result partitions, so only some failures reach the first instance's breaker.
    await tripBreaker(stack.baseUrl, statuses, routingOpen(stack.baseUrl));
    const openedAt = Date.now();
    await untilRouting(otherUrl, breakerOf(FLAKY, 'open'), 1_000);
    expect(Date.now() - openedAt).toBeLessThan(1_000);

    const first = ((await (await fetchApi(`${stack.baseUrl}/v1/routing`)).json()) as { instance: string }).instance;
    await health.until((event) => event.gatewayId === FLAKY && event.breaker === 'open');
    expect(health.messages.map((event) => [event.gatewayId, event.breaker, event.reportedBy])).toEqual([[FLAKY, 'open', first]]);

    // And the second instance routes around it too.
    const accepted = await postPayment(otherUrl, deposit());
    const [terminal] = await statuses.untilTerminal([String(accepted.body.id)]);
    expect(terminal).toMatchObject({ status: 'SUCCESS', gatewayId: STEADY });
    const payment = await getPayment(otherUrl, String(accepted.body.id));
    expect(payment.attempts.map((attempt) => attempt.gatewayId)).toEqual([STEADY]);
    expect(payment.attempts[0]?.routing.excluded).toEqual([{ gatewayId: FLAKY, reason: 'circuit-open' }]);
  });
});
