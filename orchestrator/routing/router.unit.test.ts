import type { GatewayRule, RuleChanged } from '../../topics/schemas';
import { validRule as rule } from '../test-fixtures';
import type { PaymentType } from '../state/payment';
import type { RateLimiter, TakeResult } from './rate-limit';
import { createRouter, type Router } from './router';
import { DEFAULT_TIMEOUT_MS, createRuleBook, type MutableRuleBook } from './rules';
import type { RoutablePayment } from './select';

const euDeposit: RoutablePayment = { type: 'deposit', amount: '10000', currency: 'EUR', region: 'EU' };
const NONE: ReadonlySet<string> = new Set();

/** 12:00:00.000, and a clock tests move by hand. */
const T0 = Date.parse('2024-05-01T12:00:00.000Z');
/** When the limiter says a refused gateway's oldest logged attempt leaves its window. */
const RETRY_AFTER_MS = 750;

interface Harness {
  router: Router;
  ruleBook: MutableRuleBook;
  /** Gateways whose breaker does not admit. */
  notAdmitted: Set<string>;
  /** Gateways whose breaker refuses the trial claim (open, or half-open with the trial taken). */
  trialRefused: Set<string>;
  /** Health factor per gateway (1 when absent); effective weight = rule weight × factor. */
  health: Map<string, number>;
  /** What the shared limiter answers per gateway (true when absent); a refusal frees a unit after RETRY_AFTER_MS. */
  budget: Map<string, boolean>;
  take: jest.Mock<Promise<TakeResult>, [string, number]>;
  admits: jest.Mock<boolean, [string, number]>;
  tryAcquireTrial: jest.Mock<boolean, [string, number, number]>;
  releaseTrial: jest.Mock<void, [string]>;
  states: Map<string, 'closed' | 'open' | 'half-open'>;
  effectiveWeight: jest.Mock<number, [string, number, number]>;
  /** Breaker and limiter calls in the order they were made, as "call:gateway". */
  calls: string[];
  setTime: (ms: number) => void;
  random: { value: number };
}

function harness(rules: GatewayRule[]): Harness {
  const ruleBook = createRuleBook(rules);
  const notAdmitted = new Set<string>();
  const trialRefused = new Set<string>();
  const health = new Map<string, number>();
  const budget = new Map<string, boolean>();
  const calls: string[] = [];
  const take = jest.fn(async (gatewayId: string, _perSecond: number): Promise<TakeResult> => {
    calls.push(`take:${gatewayId}`);
    return (budget.get(gatewayId) ?? true) ? { taken: true } : { taken: false, retryAfterMs: RETRY_AFTER_MS };
  });
  const admits = jest.fn((gatewayId: string, _nowMs: number) => !notAdmitted.has(gatewayId));
  const tryAcquireTrial = jest.fn((gatewayId: string, _nowMs: number, _holdMs: number) => {
    calls.push(`tryAcquireTrial:${gatewayId}`);
    return !trialRefused.has(gatewayId);
  });
  /** Breaker state per gateway as the router sees it; half-open unless a test says otherwise, so claims are real. */
  const states = new Map<string, 'closed' | 'open' | 'half-open'>();
  const stateOf = jest.fn((gatewayId: string) => states.get(gatewayId) ?? 'half-open');
  const releaseTrial = jest.fn((gatewayId: string) => {
    calls.push(`releaseTrial:${gatewayId}`);
  });
  const effectiveWeight = jest.fn((gatewayId: string, weight: number, _timeoutMs: number) => weight * (health.get(gatewayId) ?? 1));
  let now = T0;
  const random = { value: 0 };
  const rateLimiter: RateLimiter = { take };
  const router = createRouter({
    ruleBook,
    breakers: { admits, stateOf, tryAcquireTrial, releaseTrial },
    healthWeights: { effectiveWeight },
    rateLimiter,
    random: () => random.value,
    clock: () => new Date(now),
  });
  return {
    router,
    ruleBook,
    notAdmitted,
    trialRefused,
    states,
    health,
    budget,
    take,
    admits,
    tryAcquireTrial,
    releaseTrial,
    effectiveWeight,
    calls,
    setTime: (ms) => (now = ms),
    random,
  };
}

function ruleEvent(changed: GatewayRule): RuleChanged {
  return { eventId: 'e-1', type: 'rule.changed', occurredAt: new Date(T0).toISOString(), schemaVersion: 1, rule: changed, version: 2, changedBy: 'ops@example.com' };
}

// ---------------------------------------------------------------------------

describe('router.route: live exclusions', () => {
  test('When every gateway is healthy and has budget, then the choice is by weight among all of them', () => {
    const { router, random } = harness([rule('gw-a', { weight: 3 }), rule('gw-b', { weight: 1 })]);

    const decision = router.route(euDeposit, NONE);
    expect(decision).toEqual({
      chosen: 'gw-a',
      candidates: [
        { gatewayId: 'gw-a', weight: 3 },
        { gatewayId: 'gw-b', weight: 1 },
      ],
      excluded: [],
      rulesVersion: 'static',
    });

    random.value = 0.75;
    expect(router.route(euDeposit, NONE).chosen).toBe('gw-b');
  });

  test('When the route is asked, then it answers synchronously (the state machine calls it inside a pure decision)', () => {
    const { router } = harness([rule('gw-a')]);
    const decision: unknown = router.route(euDeposit, NONE);
    expect(decision).not.toBeInstanceOf(Promise);
    expect(decision).toMatchObject({ chosen: 'gw-a' });
  });

  test("When a gateway's breaker does not admit (open, or half-open with its trial claimed), then it is excluded as 'circuit-open' and another is chosen", () => {
    const { router, notAdmitted } = harness([rule('gw-a', { weight: 5 }), rule('gw-b')]);
    notAdmitted.add('gw-a');

    const decision = router.route(euDeposit, NONE);

    expect(decision.chosen).toBe('gw-b');
    expect(decision.candidates).toEqual([{ gatewayId: 'gw-b', weight: 1 }]);
    expect(decision.excluded).toEqual([{ gatewayId: 'gw-a', reason: 'circuit-open' }]);
  });

  test('When the breaker admits the gateway again, then it is chosen again on the next route', () => {
    const { router, notAdmitted } = harness([rule('gw-a')]);
    notAdmitted.add('gw-a');
    expect(router.route(euDeposit, NONE).chosen).toBeNull();
    notAdmitted.delete('gw-a');
    expect(router.route(euDeposit, NONE).chosen).toBe('gw-a');
  });

  test("When every gateway's breaker is open, then no gateway is chosen", () => {
    const { router, notAdmitted } = harness([rule('gw-a'), rule('gw-b')]);
    notAdmitted.add('gw-a').add('gw-b');
    const decision = router.route(euDeposit, NONE);
    expect(decision.chosen).toBeNull();
    expect(decision.excluded.map((entry) => entry.reason)).toEqual(['circuit-open', 'circuit-open']);
  });

  test('When a gateway is excluded by its rule or was already tried, then its breaker is not asked', () => {
    const { router, admits } = harness([rule('gw-a'), rule('us', { regions: ['US'] }), rule('gw-b')]);
    router.route(euDeposit, new Set(['gw-a']));
    expect(admits.mock.calls).toEqual([['gw-b', T0]]);
  });

  test("When the breakers are asked, then they are asked at the clock's current time (a half-open trial claim expires by it)", () => {
    const { router, admits, setTime } = harness([rule('gw-a'), rule('gw-b')]);
    setTime(T0 + 1_234);
    router.route(euDeposit, NONE);
    expect(admits.mock.calls).toEqual([
      ['gw-a', T0 + 1_234],
      ['gw-b', T0 + 1_234],
    ]);
  });

  test('When routes are computed, then no trial is claimed or released and no budget is taken (only reserve does that)', () => {
    const { router, tryAcquireTrial, releaseTrial, take } = harness([rule('gw-a', { rateLimitPerSecond: 5 }), rule('gw-b')]);
    router.route(euDeposit, NONE);
    expect([tryAcquireTrial.mock.calls, releaseTrial.mock.calls, take.mock.calls]).toEqual([[], [], []]);
  });

  test('When gateways were already tried, then they are excluded as already-tried, not as circuit-open', () => {
    const { router, notAdmitted } = harness([rule('gw-a'), rule('gw-b')]);
    notAdmitted.add('gw-a');
    expect(router.route(euDeposit, new Set(['gw-a'])).excluded).toEqual([{ gatewayId: 'gw-a', reason: 'already-tried' }]);
  });
});

describe('router.route: health-aware weights', () => {
  test("When health weights are asked, then they get each eligible gateway's rule weight and timeout, and the choice uses their answer", () => {
    const { router, health, effectiveWeight, random } = harness([rule('gw-a', { weight: 3, timeoutMs: 8_000 }), rule('gw-b', { weight: 1 })]);
    // gw-a degraded to a sixth of its weight: 0.5 against gw-b's 1.
    health.set('gw-a', 1 / 6);
    random.value = 0.4;

    const decision = router.route(euDeposit, NONE);

    expect(effectiveWeight.mock.calls).toEqual([
      ['gw-a', 3, 8_000],
      ['gw-b', 1, 5_000],
    ]);
    expect(decision.candidates).toEqual([
      { gatewayId: 'gw-a', weight: 0.5 },
      { gatewayId: 'gw-b', weight: 1 },
    ]);
    // 0.4 of a total of 1.5 is 0.6: past gw-a's 0.5, so gw-b — with rule weights it would have been gw-a.
    expect(decision.chosen).toBe('gw-b');
  });

  test('When a 3:1 split is degraded to 1:1 by health, then 400 evenly spread random values split 200/200', () => {
    const { router, health, random } = harness([rule('gw-a', { weight: 3 }), rule('gw-b', { weight: 1 })]);
    health.set('gw-a', 1 / 3);
    const counts = new Map<string, number>();
    for (let index = 0; index < 400; index++) {
      random.value = (index + 0.5) / 400;
      const chosen = router.route(euDeposit, NONE).chosen ?? 'none';
      counts.set(chosen, (counts.get(chosen) ?? 0) + 1);
    }
    expect(Object.fromEntries(counts)).toEqual({ 'gw-a': 200, 'gw-b': 200 });
  });

  test('When health weighs a gateway to zero, then it is excluded as zero-weight', () => {
    const { router, health } = harness([rule('gw-a'), rule('gw-b')]);
    health.set('gw-a', 0);
    const decision = router.route(euDeposit, NONE);
    expect(decision.chosen).toBe('gw-b');
    expect(decision.excluded).toEqual([{ gatewayId: 'gw-a', reason: 'zero-weight' }]);
  });
});

describe('router.reserve: half-open trial', () => {
  test("When a gateway is reserved, then its breaker trial is claimed at the clock's time, held for the gateway's timeout plus a second", async () => {
    const { router, tryAcquireTrial, setTime } = harness([rule('gw-a', { timeoutMs: 12_000 })]);
    setTime(T0 + 250);
    await expect(router.reserve('gw-a')).resolves.toBe(true);
    expect(tryAcquireTrial.mock.calls).toEqual([['gw-a', T0 + 250, 13_000]]);
  });

  test('When the gateway has no rule any more, then the trial is held for the default timeout plus a second', async () => {
    const { router, tryAcquireTrial } = harness([]);
    await router.reserve('gone');
    expect(tryAcquireTrial.mock.calls).toEqual([['gone', T0, DEFAULT_TIMEOUT_MS + 1_000]]);
  });

  test("When the breaker refuses the trial (open, or trial taken), then reserve is false, the limiter is not asked, nothing is released, and the gateway is not marked 'rate-limited'", async () => {
    const { router, trialRefused, notAdmitted, take, releaseTrial, calls } = harness([rule('gw-a', { weight: 9, rateLimitPerSecond: 10 }), rule('gw-b')]);
    trialRefused.add('gw-a');

    await expect(router.reserve('gw-a')).resolves.toBe(false);

    expect(take).not.toHaveBeenCalled();
    expect(releaseTrial).not.toHaveBeenCalled();
    expect(calls).toEqual(['tryAcquireTrial:gw-a']);
    // Routing again leaves it out on the breaker's word (which no longer admits it), not as spent budget.
    notAdmitted.add('gw-a');
    expect(router.route(euDeposit, NONE)).toMatchObject({ chosen: 'gw-b', excluded: [{ gatewayId: 'gw-a', reason: 'circuit-open' }] });
    trialRefused.delete('gw-a');
    notAdmitted.delete('gw-a');
    expect(router.route(euDeposit, NONE)).toMatchObject({ chosen: 'gw-a', excluded: [] });
  });

  test('When the trial is claimed and budget is granted, then the trial is kept for the attempt (not released)', async () => {
    const { router, releaseTrial, calls } = harness([rule('gw-a', { rateLimitPerSecond: 10 })]);
    await expect(router.reserve('gw-a')).resolves.toBe(true);
    expect(calls).toEqual(['tryAcquireTrial:gw-a', 'take:gw-a']);
    expect(releaseTrial).not.toHaveBeenCalled();
  });

  test('When the breaker was closed as the budget was refused, then no trial is released (it may be another payment\'s)', async () => {
    const { router, releaseTrial, budget, states } = harness([rule('gw-a', { rateLimitPerSecond: 10 }), rule('gw-b')]);
    states.set('gw-a', 'closed');
    budget.set('gw-a', false);
    await expect(router.reserve('gw-a')).resolves.toBe(false);
    expect(releaseTrial).not.toHaveBeenCalled();
  });
});

describe('router.reserve: shared burst budget', () => {
  test('When the gateway has no rate limit, then budget is granted without asking the shared limiter', async () => {
    const { router, take, releaseTrial } = harness([rule('gw-a')]);
    await expect(router.reserve('gw-a')).resolves.toBe(true);
    expect(take).not.toHaveBeenCalled();
    expect(releaseTrial).not.toHaveBeenCalled();
  });

  test("When the gateway has a limit and budget is left, then the limiter is asked with the gateway's limit and the gateway stays eligible", async () => {
    const { router, take, releaseTrial } = harness([rule('gw-a', { rateLimitPerSecond: 50 })]);

    await expect(router.reserve('gw-a')).resolves.toBe(true);

    expect(take.mock.calls).toEqual([['gw-a', 50]]);
    expect(releaseTrial).not.toHaveBeenCalled();
    expect(router.route(euDeposit, NONE).chosen).toBe('gw-a');
  });

  test("When the limiter refuses, then reserve is false, the trial claimed first is released, and route excludes the gateway as 'rate-limited'", async () => {
    const { router, budget, releaseTrial, calls } = harness([rule('gw-a', { weight: 9, rateLimitPerSecond: 10 }), rule('gw-b')]);
    budget.set('gw-a', false);

    await expect(router.reserve('gw-a')).resolves.toBe(false);

    expect(calls).toEqual(['tryAcquireTrial:gw-a', 'take:gw-a', 'releaseTrial:gw-a']);
    expect(releaseTrial.mock.calls).toEqual([['gw-a']]);
    const decision = router.route(euDeposit, NONE);
    expect(decision.chosen).toBe('gw-b');
    expect(decision.excluded).toEqual([{ gatewayId: 'gw-a', reason: 'rate-limited' }]);
  });

  test('When a gateway was refused budget, then it stays excluded until the limiter said a unit frees, and is eligible again from then', async () => {
    const { router, budget, setTime } = harness([rule('gw-a', { rateLimitPerSecond: 10 })]);
    setTime(T0 + 250);
    budget.set('gw-a', false);
    await router.reserve('gw-a');

    setTime(T0 + 250 + RETRY_AFTER_MS - 1);
    expect(router.route(euDeposit, NONE)).toMatchObject({ chosen: null, excluded: [{ gatewayId: 'gw-a', reason: 'rate-limited' }] });

    setTime(T0 + 250 + RETRY_AFTER_MS);
    expect(router.route(euDeposit, NONE)).toMatchObject({ chosen: 'gw-a', excluded: [] });
  });

  test('When one gateway is refused budget, then other gateways are not affected', async () => {
    const { router, budget, releaseTrial } = harness([rule('gw-a', { rateLimitPerSecond: 1 }), rule('gw-b', { rateLimitPerSecond: 1 })]);
    budget.set('gw-a', false);
    await router.reserve('gw-a');
    await expect(router.reserve('gw-b')).resolves.toBe(true);
    expect(releaseTrial.mock.calls).toEqual([['gw-a']]);
    expect(router.route(euDeposit, NONE).candidates).toEqual([{ gatewayId: 'gw-b', weight: 1 }]);
  });

  test('When a spent gateway is also circuit-open, then it is reported once, as rate-limited', async () => {
    const { router, budget, notAdmitted } = harness([rule('gw-a', { rateLimitPerSecond: 1 })]);
    budget.set('gw-a', false);
    notAdmitted.add('gw-a');
    await router.reserve('gw-a');
    expect(router.route(euDeposit, NONE).excluded).toEqual([{ gatewayId: 'gw-a', reason: 'rate-limited' }]);
  });

  test('When the gateway has no rule any more, then budget is granted (nothing to limit) without asking the limiter', async () => {
    const { router, take, releaseTrial } = harness([]);
    await expect(router.reserve('gone')).resolves.toBe(true);
    expect(take).not.toHaveBeenCalled();
    expect(releaseTrial).not.toHaveBeenCalled();
  });
});

describe('router: timeouts and timeout policy', () => {
  test("When a gateway has a rule, then its timeout is the rule's; when its rule vanished, then the default", () => {
    const { router } = harness([rule('gw-a', { timeoutMs: 12_000 })]);
    expect(router.timeoutMsOf('gw-a')).toBe(12_000);
    expect(router.timeoutMsOf('gone')).toBe(DEFAULT_TIMEOUT_MS);
  });

  test('When a rule sets no timeout policy, then deposits fail over and withdrawals cancel first', () => {
    const { router } = harness([rule('gw-a')]);
    expect(router.timeoutPolicyOf('gw-a', 'deposit')).toBe('failover');
    expect(router.timeoutPolicyOf('gw-a', 'withdrawal')).toBe('cancel-first');
  });

  test.each<[PaymentType, 'failover' | 'cancel-first']>([
    ['deposit', 'cancel-first'],
    ['withdrawal', 'failover'],
  ])("When a rule sets the %s policy to %s, then that is the gateway's policy for that type", (type, policy) => {
    const { router } = harness([rule('gw-a', { timeoutPolicy: { deposit: 'failover', withdrawal: 'cancel-first', [type]: policy } })]);
    expect(router.timeoutPolicyOf('gw-a', type)).toBe(policy);
  });

  test('When the rule vanished, then withdrawals still cancel first and deposits fail over (the safe defaults)', () => {
    const { router } = harness([]);
    expect(router.timeoutPolicyOf('gone', 'withdrawal')).toBe('cancel-first');
    expect(router.timeoutPolicyOf('gone', 'deposit')).toBe('failover');
  });
});

describe('router: rule changes', () => {
  test('When a rule event changes a gateway, then the next route uses the new rule and records the new rules version', () => {
    const { router, ruleBook } = harness([rule('gw-a'), rule('gw-b')]);
    expect(router.route(euDeposit, NONE)).toMatchObject({ chosen: 'gw-a', rulesVersion: 'static' });

    ruleBook.apply('gw-a', ruleEvent(rule('gw-a', { available: false, unavailableReason: 'maintenance' })), '42');

    const decision = router.route(euDeposit, NONE);
    expect(decision).toMatchObject({ chosen: 'gw-b', rulesVersion: 'rules@42' });
    expect(decision.excluded).toEqual([{ gatewayId: 'gw-a', reason: 'unavailable' }]);
  });

  test('When a rule event changes the timeout or the rate limit, then timeoutMsOf and reserve (its trial hold and its limit) follow it', async () => {
    const { router, ruleBook, take, tryAcquireTrial } = harness([rule('gw-a')]);
    ruleBook.apply('gw-a', ruleEvent(rule('gw-a', { timeoutMs: 900, rateLimitPerSecond: 3 })), '7');
    expect(router.timeoutMsOf('gw-a')).toBe(900);
    await router.reserve('gw-a');
    expect(tryAcquireTrial.mock.calls).toEqual([['gw-a', T0, 1_900]]);
    expect(take.mock.calls).toEqual([['gw-a', 3]]);
  });
});
