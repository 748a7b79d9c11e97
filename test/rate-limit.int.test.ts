import { loadOrchestratorConfig } from '../orchestrator/config';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/main';
import { randomUUID } from 'node:crypto';
import { createRedis } from '../runtime/redis';
import { createRateLimiter } from '../orchestrator/routing/rate-limit';
import { isolatedNamespace, testLogger } from './support/env';
import { pollUntil } from './support/poll';
import { deposit, getPayment, postPayment, rule, startTestStack, untilRouting, watchStatuses, type TestStack } from './support/stack';

// Selection walks the rules sorted by gateway id; with `random` pinned to 0 the
// first eligible one is always chosen, so 'limited' gets every payment its
// budget allows and 'spare' only the ones it had to skip.
const LIMITED = 'limited';
const SPARE = 'spare';
const PER_SECOND = 5;
const BURST_PER_INSTANCE = 20;
const firstEligible = () => 0;

async function rateLimitedCount(baseUrl: string, gatewayId: string): Promise<number> {
  const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = new RegExp(`^gateway_rate_limited_total\\{gateway="${gatewayId}"[^}]*\\} (\\d+)$`, 'm').exec(metrics);
  return Number(line?.[1] ?? 0);
}

describe('a gateway rate limit shared by two orchestrator instances', () => {
  let stack: TestStack;
  let second: RunningOrchestrator | undefined;
  let secondUrl: string;
  let statuses: Awaited<ReturnType<typeof watchStatuses>>;

  beforeAll(async () => {
    stack = await startTestStack({
      rules: [rule(LIMITED, { rateLimitPerSecond: PER_SECOND }), rule(SPARE)],
      orchestrator: { random: firstEligible },
    });
    second = await startOrchestrator(loadOrchestratorConfig({ ...stack.env, INSTANCE_ID: 'second' }), {
      logger: testLogger('orchestrator-second'),
      random: firstEligible,
    });
    secondUrl = `http://127.0.0.1:${second.port}`;
    statuses = await watchStatuses(stack);
  });
  afterAll(async () => {
    await statuses?.stop();
    await second?.stop();
    await stack?.stop();
  });

  test('When a burst larger than the limit is split across both instances, then at most the limit per second goes to the gateway and the rest fail over to the other without failing', async () => {
    await untilRouting(secondUrl, (view) => view.gateways.some((gateway) => gateway.gatewayId === LIMITED && gateway.rateLimitPerSecond === PER_SECOND));
    const burst = await Promise.all(
      Array.from({ length: BURST_PER_INSTANCE * 2 }, async (_, index) => {
        const baseUrl = index % 2 === 0 ? stack.baseUrl : secondUrl;
        const accepted = await postPayment(baseUrl, deposit());
        expect(accepted.status).toBe(202);
        return { baseUrl, id: String(accepted.body.id) };
      }),
    );
    const terminals = await statuses.untilTerminal(burst.map((payment) => payment.id));
    expect(terminals.every((event) => event.status === 'SUCCESS')).toBe(true);

    const payments = await Promise.all(burst.map(({ baseUrl, id }) => getPayment(baseUrl, id)));
    const first = payments.map((payment) => payment.attempts[0]);
    expect(payments.every((payment) => payment.attempts.length === 1)).toBe(true);

    // Per second of dispatch, across both instances: never more than the limit (a sliding window holds every fixed one).
    const perSecond = new Map<number, number>();
    for (const attempt of first.filter((candidate) => candidate?.gatewayId === LIMITED)) {
      const unixSecond = Math.floor(Date.parse(attempt?.dispatchedAt ?? '') / 1000);
      perSecond.set(unixSecond, (perSecond.get(unixSecond) ?? 0) + 1);
    }
    expect([...perSecond.values()].every((count) => count <= PER_SECOND)).toBe(true);
    // 40 payments in a second or two: the first window's whole budget went at once, not a share of it. (Per fixed
    // second the count can stay under the limit: a rolling window's attempts may straddle a second boundary.)
    const toLimited = first.flatMap((attempt) => (attempt?.gatewayId === LIMITED ? [Date.parse(attempt.dispatchedAt)] : [])).sort((a, b) => a - b);
    expect(toLimited.length).toBeGreaterThanOrEqual(PER_SECOND);
    expect(toLimited[PER_SECOND - 1]! - toLimited[0]!).toBeLessThan(1_000);

    const skipped = first.filter((attempt) => attempt?.gatewayId === SPARE);
    expect(skipped.length).toBe(BURST_PER_INSTANCE * 2 - [...perSecond.values()].reduce((sum, count) => sum + count, 0));
    for (const attempt of skipped) {
      expect(attempt?.routing).toMatchObject({ chosen: SPARE, excluded: [{ gatewayId: LIMITED, reason: 'rate-limited' }] });
    }
    // Both instances skipped it: the budget is shared, not per instance.
    const skippedBy = (baseUrl: string) => burst.filter((payment, index) => payment.baseUrl === baseUrl && first[index]?.gatewayId === SPARE).length;
    expect(skippedBy(stack.baseUrl)).toBeGreaterThan(0);
    expect(skippedBy(secondUrl)).toBeGreaterThan(0);

    // Every skip is counted, on the instance that skipped.
    expect(await rateLimitedCount(stack.baseUrl, LIMITED)).toBe(skippedBy(stack.baseUrl));
    expect(await rateLimitedCount(secondUrl, LIMITED)).toBe(skippedBy(secondUrl));
    expect(await rateLimitedCount(stack.baseUrl, SPARE)).toBe(0);
  });
});

/** Attempts to `gatewayId` in the busiest rolling window of `windowMs` (ms timestamps). */
function busiestWindow(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let busiest = 0;
  for (let start = 0, end = 0; end < sorted.length; end++) {
    while ((sorted[end] ?? 0) - (sorted[start] ?? 0) >= windowMs) start++;
    busiest = Math.max(busiest, end - start + 1);
  }
  return busiest;
}

describe('the shared rate limit at a window boundary', () => {
  test('When the limit is spent just before a second boundary, then nothing more is granted after it until a full window has passed since the first grant (fixed windows granted the limit again)', async () => {
    const ns = isolatedNamespace();
    const redis = createRedis(ns.redisUrl, ns.redisKeyPrefix, testLogger('rate-limit-redis'));
    await redis.connect();
    try {
      const limiter = createRateLimiter(redis, randomUUID);
      // Start 150 ms before a wall-clock second boundary: the case where fixed one-second windows granted 2N.
      await pollUntil(async () => Date.now() % 1000, (ms) => ms >= 850 && ms < 900, 2_000, () => 'never reached 150 ms before a second boundary', 2);
      const grantedAt: number[] = [];
      for (let index = 0; index < PER_SECOND; index++) {
        expect(await limiter.take('edge', PER_SECOND)).toEqual({ taken: true });
        grantedAt.push(Date.now());
      }
      const refused = await limiter.take('edge', PER_SECOND);
      expect(refused.taken).toBe(false);
      // Past the boundary (where a fixed window resets): still refused, with the time until the first grant leaves the window.
      await pollUntil(async () => Date.now(), (now) => Math.floor(now / 1000) > Math.floor((grantedAt[0] ?? 0) / 1000), 1_000, () => 'no second boundary', 5);
      const afterBoundary = await limiter.take('edge', PER_SECOND);
      expect(afterBoundary.taken).toBe(false);
      if (!afterBoundary.taken) expect(afterBoundary.retryAfterMs).toBeLessThanOrEqual(1_000 - (Date.now() - (grantedAt[0] ?? 0)) + 20);
      // A full window after the first grant, exactly one unit is free again (the first grant's).
      const next = await pollUntil(() => limiter.take('edge', PER_SECOND), (result) => result.taken, 2_000, () => 'never granted again', 10);
      expect(next.taken).toBe(true);
      expect(Date.now() - (grantedAt[0] ?? 0)).toBeGreaterThanOrEqual(1_000 - 20);
    } finally {
      await redis.quit();
    }
  });

  test('When two orchestrator instances send a steady stream across several second boundaries, then no rolling second holds more than the limit', async () => {
    const stack = await startTestStack({ rules: [rule(LIMITED, { rateLimitPerSecond: PER_SECOND }), rule(SPARE)], orchestrator: { random: firstEligible } });
    const second = await startOrchestrator(loadOrchestratorConfig({ ...stack.env, INSTANCE_ID: 'second' }), { logger: testLogger('orchestrator-second'), random: firstEligible });
    const secondUrl = `http://127.0.0.1:${second.port}`;
    const statuses = await watchStatuses(stack);
    try {
      await untilRouting(secondUrl, (view) => view.gateways.some((gateway) => gateway.gatewayId === LIMITED && gateway.rateLimitPerSecond === PER_SECOND));
      // 60 payments over about 2.4 s (one every 40 ms, alternating instances): 25 a second ask for a budget of 5.
      const ids: string[] = [];
      const started = Date.now();
      for (let index = 0; index < 60; index++) {
        const accepted = await postPayment(index % 2 === 0 ? stack.baseUrl : secondUrl, deposit());
        expect(accepted.status).toBe(202);
        ids.push(String(accepted.body.id));
        const due = started + (index + 1) * 40;
        await pollUntil(async () => Date.now(), (now) => now >= due, 1_000, () => 'clock stalled', 2);
      }
      await statuses.untilTerminal(ids);
      const payments = await Promise.all(ids.map((id) => getPayment(stack.baseUrl, id)));
      const limited = payments.flatMap((payment) => payment.attempts.filter((attempt) => attempt.gatewayId === LIMITED).map((attempt) => Date.parse(attempt.dispatchedAt)));
      // dispatchedAt is stamped just before the budget is taken, so allow a few ms of skew between the two clocks' reads.
      expect(busiestWindow(limited, 1_000 - 50)).toBeLessThanOrEqual(PER_SECOND);
      expect(limited.length).toBeGreaterThanOrEqual(PER_SECOND * 2);
    } finally {
      await statuses.stop();
      await second.stop();
      await stack.stop();
    }
  });
});
