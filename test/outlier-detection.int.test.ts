import { gatewayHealthChanged, type GatewayHealthChanged } from '../topics/schemas';
import { collectTopic } from './support/collect';
import { pollUntil } from './support/poll';
import { deposit, getPayment, postPayment, rule, startTestStack, untilRouting, watchStatuses, type TestStack } from './support/stack';

// Selection walks the rules sorted by gateway id; with `random` pinned to 0 the first eligible one is always
// chosen: every payment goes to the hung gateway while it is in selection — the worst case for outlier detection.
const HUNG = 'a-hung';
const STEADY = 'b-steady';
const TIMEOUT_MS = 1_000;
const CONSECUTIVE = 3;
/** The first ejection's length; the n-th in a row lasts n times this. */
const EJECTION_MS = 3_000;

jest.setTimeout(90_000);

/** A stack of a hung gateway and a healthy one, both in the EU, with 1 s timeouts; and watchers of statuses and health. */
async function hungStack() {
  const stack = await startTestStack({
    rules: [rule(HUNG, { timeoutMs: TIMEOUT_MS }), rule(STEADY, { timeoutMs: TIMEOUT_MS })],
    sandboxes: { [HUNG]: { mode: 'hang', rate: 1 } },
    orchestrator: {
      random: () => 0,
      env: { OUTLIER_CONSECUTIVE_FAILURES: String(CONSECUTIVE), BREAKER_RESET_TIMEOUT_MS: String(EJECTION_MS), OUTLIER_MAX_EJECTION_MS: '20000' },
    },
  });
  const statuses = await watchStatuses(stack);
  const health = await collectTopic(stack.kafka, stack.topics.gatewayHealth, gatewayHealthChanged, { groupPrefix: `${stack.env.TOPIC_PREFIX}health-`, label: 'health event' });
  return {
    stack,
    statuses,
    health,
    stop: async () => {
      await health.stop();
      await statuses.stop();
      await stack.stop();
    },
  };
}

/**
 * What the hung gateway got: every attempt to it, split at the first ejection (the first `open` on the health
 * topic), and the half-open trials it was allowed after that.
 */
async function hungAttempts(stack: TestStack, ids: readonly string[], health: readonly GatewayHealthChanged[]) {
  const payments = await Promise.all(ids.map((id) => getPayment(stack.baseUrl, id)));
  const attempts = payments
    .flatMap((payment) => payment.attempts.filter((attempt) => attempt.gatewayId === HUNG))
    .map((attempt) => Date.parse(attempt.dispatchedAt))
    .sort((a, b) => a - b);
  const hungEvents = health.filter((event) => event.gatewayId === HUNG);
  const ejectedAt = Date.parse(hungEvents.find((event) => event.breaker === 'open')?.occurredAt ?? '');
  return {
    payments,
    ejectedAt,
    before: attempts.filter((at) => at < ejectedAt),
    after: attempts.filter((at) => at >= ejectedAt),
    trials: hungEvents.filter((event) => event.breaker === 'half-open').length,
  };
}

/** Waits for the first ejection of the hung gateway on the health topic. */
const untilEjected = (health: Awaited<ReturnType<typeof hungStack>>['health']) =>
  health.untilFound(() => health.messages.find((event) => event.gatewayId === HUNG && event.breaker === 'open'), 30_000, () => `${HUNG} never ejected`);

async function expectExplainedEjection(baseUrl: string): Promise<void> {
  const view = await untilRouting(baseUrl, (routing) => routing.gateways.some((gateway) => gateway.gatewayId === HUNG && gateway.health.lastChange.ejections >= 1));
  const hung = view.gateways.find((gateway) => gateway.gatewayId === HUNG);
  expect(hung?.health.lastChange.reason).toMatch(/^(consecutive-failures|trial-failed|ejection-over)$/);
  expect(hung?.health.window.successRate).toBeLessThan(1);
  expect(view.gateways.find((gateway) => gateway.gatewayId === STEADY)?.breaker).toBe('closed');
}

describe('outlier detection: a hung gateway is ejected after 3 timeouts in a row, at any traffic rate', () => {
  test('When payments come one at a time, then at most 3 wait for the hung gateway, and afterwards only half-open trials reach it', async () => {
    const run = await hungStack();
    try {
      const ids: string[] = [];
      for (let index = 0; index < 8; index++) {
        const accepted = await postPayment(run.stack.baseUrl, deposit());
        expect(accepted.status).toBe(202);
        ids.push(String(accepted.body.id));
        await run.statuses.untilTerminal([String(accepted.body.id)]);
      }
      await untilEjected(run.health);
      const seen = await hungAttempts(run.stack, ids, run.health.messages);
      expect(seen.payments.every((payment) => payment.status === 'SUCCESS')).toBe(true);
      expect(seen.before.length).toBeLessThanOrEqual(CONSECUTIVE);
      expect(seen.after.length).toBeLessThanOrEqual(seen.trials);
      // 8 payments, at most 3 + trials slowed down: the rest went straight to the healthy gateway.
      expect(seen.payments.filter((payment) => payment.attempts.length === 1).length).toBeGreaterThanOrEqual(8 - CONSECUTIVE - seen.trials);
      expect(run.health.messages.find((event) => event.gatewayId === HUNG && event.breaker === 'open')?.reportedBy).toBeDefined();
      await expectExplainedEjection(run.stack.baseUrl);
    } finally {
      await run.stop();
    }
  });

  test('When a payment comes every 2.5 s (slower than the failure-rate window ever fills), then at most 3 wait for the hung gateway, and afterwards only trials reach it', async () => {
    const run = await hungStack();
    try {
      const ids: string[] = [];
      const started = Date.now();
      for (let index = 0; index < 6; index++) {
        const due = started + index * 2_500;
        await pollUntil(async () => Date.now(), (now) => now >= due, 5_000, () => 'clock stalled', 20);
        const accepted = await postPayment(run.stack.baseUrl, deposit());
        expect(accepted.status).toBe(202);
        ids.push(String(accepted.body.id));
      }
      await run.statuses.untilTerminal(ids);
      await untilEjected(run.health);
      const seen = await hungAttempts(run.stack, ids, run.health.messages);
      expect(seen.payments.every((payment) => payment.status === 'SUCCESS')).toBe(true);
      expect(seen.before.length).toBeLessThanOrEqual(CONSECUTIVE);
      expect(seen.after.length).toBeLessThanOrEqual(seen.trials);
      await expectExplainedEjection(run.stack.baseUrl);
    } finally {
      await run.stop();
    }
  });

  test('When 100 payments a second arrive, then the hung gateway is ejected at its third timeout, and after that only trials reach it', async () => {
    const run = await hungStack();
    try {
      const started = Date.now();
      const answers = await Promise.all(
        Array.from({ length: 100 }, async (_, index) => {
          const due = started + index * 10;
          await pollUntil(async () => Date.now(), (now) => now >= due, 5_000, () => 'clock stalled', 2);
          return postPayment(run.stack.baseUrl, deposit());
        }),
      );
      // Admission may refuse some at the door on a busy machine (503); those were never accepted.
      const ids = answers.filter((answer) => answer.status === 202).map((answer) => String(answer.body.id));
      expect(ids.length).toBeGreaterThanOrEqual(50);
      await run.statuses.untilTerminal(ids, 60_000);
      await untilEjected(run.health);
      const seen = await hungAttempts(run.stack, ids, run.health.messages);
      expect(seen.payments.every((payment) => payment.status === 'SUCCESS')).toBe(true);
      // Every attempt sent before the first timeout was already on its way: no evidence existed yet. The ejection
      // comes with the third timeout (the first three attempts' deadlines plus the read allowance), not a window later.
      const third = seen.before[CONSECUTIVE - 1] ?? 0;
      expect(seen.ejectedAt - third).toBeLessThan(TIMEOUT_MS + 1_500);
      expect(seen.after.length).toBeLessThanOrEqual(seen.trials);
      await expectExplainedEjection(run.stack.baseUrl);
    } finally {
      await run.stop();
    }
  });
});

describe('predictive down-weighting: a healthy but slow gateway', () => {
  test('When a gateway answers every payment, but at 60 % of its timeout, then it is weighted down and never ejected', async () => {
    const SLOW = 'a-slow';
    const FAST = 'b-fast';
    const stack = await startTestStack({
      rules: [rule(SLOW, { timeoutMs: TIMEOUT_MS, weight: 10 }), rule(FAST, { timeoutMs: TIMEOUT_MS, weight: 10 })],
      sandboxes: { [SLOW]: { mode: 'slow', latencyMs: 600 } },
      orchestrator: { random: () => 0 },
    });
    const statuses = await watchStatuses(stack);
    const health = await collectTopic(stack.kafka, stack.topics.gatewayHealth, gatewayHealthChanged, { groupPrefix: `${stack.env.TOPIC_PREFIX}health-`, label: 'health event' });
    try {
      const ids: string[] = [];
      for (let index = 0; index < 5; index++) {
        const accepted = await postPayment(stack.baseUrl, deposit());
        expect(accepted.status).toBe(202);
        ids.push(String(accepted.body.id));
        await statuses.untilTerminal([String(accepted.body.id)]);
      }
      const payments = await Promise.all(ids.map((id) => getPayment(stack.baseUrl, id)));
      expect(payments.every((payment) => payment.status === 'SUCCESS' && payment.attempts.length === 1 && payment.attempts[0]?.gatewayId === SLOW)).toBe(true);

      const view = await untilRouting(stack.baseUrl, (routing) => routing.gateways.some((gateway) => gateway.gatewayId === SLOW && gateway.health.window.outcomes >= 5));
      const slow = view.gateways.find((gateway) => gateway.gatewayId === SLOW);
      // About 0.3 of its weight: 1 − (600 − 250) / 500, from the gateway's own latency (the answer's broker time).
      expect(slow?.health.window.successRate).toBe(1);
      expect(slow?.health.window.meanLatencyMs).toBeGreaterThanOrEqual(600);
      expect(slow?.effectiveWeight).toBeLessThanOrEqual(5);
      expect(slow?.effectiveWeight).toBeGreaterThan(0);
      expect(slow?.breaker).toBe('closed');
      expect(slow?.health.consecutiveFailures).toBe(0);
      expect(view.gateways.find((gateway) => gateway.gatewayId === FAST)?.effectiveWeight).toBe(10);
      expect(health.messages.filter((event) => event.gatewayId === SLOW)).toEqual([]);
    } finally {
      await health.stop();
      await statuses.stop();
      await stack.stop();
    }
  });
});
