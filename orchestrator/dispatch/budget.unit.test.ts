import { ruleBuilder } from '../test-fixtures';
import { createRouter, type Router } from '../routing/router';
import { createRuleBook } from '../routing/rules';
import type { TakeResult } from '../routing/rate-limit';
import type { RoutingDecision } from '../routing/select';
import { createPayment, decide, type Attempt, type Decision, type DecisionContext, type Effect, type Payment } from '../state/payment';
import { decideWithinBudget } from './budget';

const T0 = Date.parse('2024-05-01T12:00:00.000Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();

function routing(chosen: string): RoutingDecision & { chosen: string } {
  return { chosen, candidates: [{ gatewayId: chosen, weight: 1 }], excluded: [], rulesVersion: 'v-test' };
}

function attemptTo(gatewayId: string, id = `att-${gatewayId}`): Attempt {
  return { id, number: 1, gatewayId, status: 'in-flight', dispatchedAt: at(0), deadline: at(5), routing: routing(gatewayId) };
}

/** A router stub: only `reserve` matters here; it answers from `refused`. */
function stubRouter(refused: ReadonlySet<string> = new Set()): { router: Router; reserve: jest.Mock<Promise<boolean>, [string]> } {
  const reserve = jest.fn(async (gatewayId: string) => !refused.has(gatewayId));
  return {
    reserve,
    router: {
      reserve,
      route: () => {
        throw new Error('route is the decision’s business, not the budget loop’s');
      },
      timeoutMsOf: () => 5_000,
      timeoutPolicyOf: () => 'failover',
    },
  };
}

/** A decideOnce that returns the scripted results in turn (the last one again if asked more often). */
function scripted<T>(...results: T[]): jest.Mock<T, []> {
  let calls = 0;
  return jest.fn(() => {
    const result = results[Math.min(calls, results.length - 1)];
    calls++;
    if (result === undefined) throw new Error('nothing scripted');
    return result;
  });
}

const effectsOf = (effects: readonly Effect[]) => effects;

// ---------------------------------------------------------------------------

describe('decideWithinBudget: with a scripted decision', () => {
  test('When the decision dispatches nothing, then it is returned at once and no budget is taken', async () => {
    const { router, reserve } = stubRouter();
    const decideOnce = scripted<readonly Effect[]>([{ type: 'publish-status' }, { type: 'cancel', attempt: attemptTo('gw-a') }]);

    const result = await decideWithinBudget(router, decideOnce, effectsOf);

    expect(result).toEqual([{ type: 'publish-status' }, { type: 'cancel', attempt: attemptTo('gw-a') }]);
    expect(decideOnce).toHaveBeenCalledTimes(1);
    expect(reserve).not.toHaveBeenCalled();
  });

  test('When the decision changes nothing (no effects), then it is returned at once', async () => {
    const { router, reserve } = stubRouter();
    const unchanged: Decision = { changed: false, why: 'duplicate' };
    const result = await decideWithinBudget(router, () => unchanged, (decision: Decision) => (decision.changed ? decision.effects : []));
    expect(result).toBe(unchanged);
    expect(reserve).not.toHaveBeenCalled();
  });

  test("When the dispatch's gateway has budget, then the first decision is returned and one unit of that gateway's budget is taken", async () => {
    const { router, reserve } = stubRouter();
    const first: Effect[] = [{ type: 'dispatch', attempt: attemptTo('gw-a') }, { type: 'publish-status' }];
    const decideOnce = scripted<readonly Effect[]>(first);

    await expect(decideWithinBudget(router, decideOnce, effectsOf)).resolves.toBe(first);

    expect(decideOnce).toHaveBeenCalledTimes(1);
    expect(reserve.mock.calls).toEqual([['gw-a']]);
  });

  test("When the dispatch's gateway is refused budget, then the decision is made again and the new one is returned once its gateway has budget", async () => {
    const { router, reserve } = stubRouter(new Set(['gw-a', 'gw-b']));
    const decideOnce = scripted<readonly Effect[]>(
      [{ type: 'dispatch', attempt: attemptTo('gw-a') }],
      [{ type: 'dispatch', attempt: attemptTo('gw-b') }],
      [{ type: 'dispatch', attempt: attemptTo('gw-c') }],
    );

    const result = await decideWithinBudget(router, decideOnce, effectsOf);

    expect(result).toEqual([{ type: 'dispatch', attempt: attemptTo('gw-c') }]);
    expect(decideOnce).toHaveBeenCalledTimes(3);
    expect(reserve.mock.calls).toEqual([['gw-a'], ['gw-b'], ['gw-c']]);
  });

  test('When deciding again no longer dispatches (no gateway left), then that decision is returned without asking for budget', async () => {
    const { router, reserve } = stubRouter(new Set(['gw-a']));
    const decideOnce = scripted<readonly Effect[]>([{ type: 'dispatch', attempt: attemptTo('gw-a') }], [{ type: 'publish-status' }]);

    await expect(decideWithinBudget(router, decideOnce, effectsOf)).resolves.toEqual([{ type: 'publish-status' }]);
    expect(reserve.mock.calls).toEqual([['gw-a']]);
  });

  test('When the shared limiter fails (Redis down), then the error reaches the caller instead of a dispatch without budget', async () => {
    const { router } = stubRouter();
    router.reserve = () => Promise.reject(new Error('Connection is closed.'));
    const decideOnce = scripted<readonly Effect[]>([{ type: 'dispatch', attempt: attemptTo('gw-a') }]);
    await expect(decideWithinBudget(router, decideOnce, effectsOf)).rejects.toThrow('Connection is closed.');
  });
});

// ---------------------------------------------------------------------------
// With the real router and the real state machine: refusals change the route.
// ---------------------------------------------------------------------------

/** A valid rule serving EUR in the EU, rate-limited to 10 a second. */
const rule = ruleBuilder({ rateLimitPerSecond: 10 });

interface Stack {
  router: Router;
  context: DecisionContext;
  take: jest.Mock<Promise<TakeResult>, [string, number]>;
  /** Gateways whose breaker trial was released (given back after a refusal), in order. */
  released: string[];
}

/**
 * gw-a, gw-b, gw-c with rate limits; a limiter that refuses the gateways in
 * `spent`; random 0 picks the first eligible. Breakers admit every gateway,
 * except that the half-open gateways in `trialLost` lose their trial to
 * another payment between selection and reserve: the claim is refused, and
 * from then on the breaker does not admit them (as the real one would not,
 * its trial being held).
 */
function stack(spent: ReadonlySet<string>, maxAttempts = 5, trialLost: ReadonlySet<string> = new Set()): Stack {
  const released: string[] = [];
  const trialHeldElsewhere = new Set<string>();
  const take = jest.fn(async (gatewayId: string, _perSecond: number): Promise<TakeResult> => (spent.has(gatewayId) ? { taken: false, retryAfterMs: 500 } : { taken: true }));
  const router = createRouter({
    ruleBook: createRuleBook([rule('gw-a'), rule('gw-b'), rule('gw-c')]),
    breakers: {
      stateOf: () => 'half-open',
      admits: (gatewayId: string, _nowMs: number) => !trialHeldElsewhere.has(gatewayId),
      tryAcquireTrial: (gatewayId: string, _nowMs: number, _holdMs: number) => {
        if (trialLost.has(gatewayId)) trialHeldElsewhere.add(gatewayId);
        return !trialHeldElsewhere.has(gatewayId);
      },
      releaseTrial: (gatewayId: string) => {
        released.push(gatewayId);
      },
    },
    healthWeights: { effectiveWeight: (_gatewayId, weight) => weight },
    rateLimiter: { take },
    random: () => 0,
    clock: () => new Date(T0 + 30_000),
  });
  let next = 1;
  const context: DecisionContext = {
    maxAttempts,
    route: router.route,
    newAttemptId: () => `att-${++next}`,
    timeoutMsOf: router.timeoutMsOf,
    timeoutPolicyOf: router.timeoutPolicyOf,
  };
  return { router, context, take, released };
}

/** A deposit whose first attempt att-1 went to gw-a at T0. */
function givenPayment(): Payment {
  return createPayment(
    { id: 'pay-1', type: 'deposit', accountId: 'acc-1', amount: '1000', currency: 'EUR', region: 'EU' },
    routing('gw-a'),
    'att-1',
    5_000,
    new Date(T0),
  ).payment;
}

const decisionEffects = (decision: Decision) => (decision.changed ? decision.effects : []);

/** att-1 of a fresh payment times out at 30 s, decided within budget: the (changed) decision and the attempts it dispatches. */
async function afterTimeout(router: Router, context: DecisionContext) {
  const payment = givenPayment();
  const decision = await decideWithinBudget(router, () => decide(payment, { kind: 'timeout', attemptId: 'att-1', at: at(30) }, context), decisionEffects);
  if (!decision.changed) throw new Error(`unchanged: ${decision.why}`);
  const dispatched = decision.effects.flatMap((effect) => (effect.type === 'dispatch' ? [effect.attempt] : []));
  return { decision, dispatched };
}

describe('decideWithinBudget: with the router and the state machine', () => {
  test('When the failover gateway is over its budget, then the attempt goes to the next one and records why the first was skipped', async () => {
    const { router, context, take, released } = stack(new Set(['gw-b']));

    const { decision, dispatched } = await afterTimeout(router, context);

    expect(dispatched.map((attempt) => attempt.gatewayId)).toEqual(['gw-c']);
    expect(dispatched[0]?.routing.excluded).toEqual([
      { gatewayId: 'gw-a', reason: 'already-tried' },
      { gatewayId: 'gw-b', reason: 'rate-limited' },
    ]);
    expect(decision.payment.attempts.map((attempt) => [attempt.gatewayId, attempt.status])).toEqual([
      ['gw-a', 'timed-out'],
      ['gw-c', 'in-flight'],
    ]);
    expect(decision.payment.status).toBe('PENDING');
    expect(take.mock.calls).toEqual([
      ['gw-b', 10],
      ['gw-c', 10],
    ]);
    expect(released).toEqual(['gw-b']);
  });

  test("When every remaining gateway is over its budget, then the loop ends after asking each once and the payment fails 'no-gateway-left'", async () => {
    const { router, context, take } = stack(new Set(['gw-b', 'gw-c']));
    const payment = givenPayment();

    const decision = await decideWithinBudget(router, () => decide(payment, { kind: 'failure', attemptId: 'att-1', reasonCode: 'gateway_error', at: at(3) }, context), decisionEffects);

    if (!decision.changed) throw new Error(`unchanged: ${decision.why}`);
    expect([decision.payment.status, decision.payment.reason]).toEqual(['FAILURE', 'no-gateway-left']);
    expect(decision.effects).toEqual([{ type: 'publish-status' }]);
    expect(take.mock.calls.map(([gatewayId]) => gatewayId)).toEqual(['gw-b', 'gw-c']);
  });

  test("When the failover gateway's half-open trial is taken before it can be claimed, then the attempt goes to the next one, records it as circuit-open, and no budget is taken for it", async () => {
    const { router, context, take, released } = stack(new Set(), 5, new Set(['gw-b']));

    const { dispatched } = await afterTimeout(router, context);

    expect(dispatched.map((attempt) => attempt.gatewayId)).toEqual(['gw-c']);
    expect(dispatched[0]?.routing.excluded).toEqual([
      { gatewayId: 'gw-a', reason: 'already-tried' },
      { gatewayId: 'gw-b', reason: 'circuit-open' },
    ]);
    expect(take.mock.calls).toEqual([['gw-c', 10]]);
    expect(released).toEqual([]);
  });

  test('When the outcome needs no dispatch (the payment settles), then no budget is taken', async () => {
    const { router, context, take } = stack(new Set());
    const decision = await decideWithinBudget(router, () => decide(givenPayment(), { kind: 'success', attemptId: 'att-1', at: at(2) }, context), decisionEffects);
    expect(decision.changed && decision.payment.status).toBe('SUCCESS');
    expect(take).not.toHaveBeenCalled();
  });
});
