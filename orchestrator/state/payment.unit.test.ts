import type { RoutablePayment, RoutingDecision } from '../routing/select';
import {
  createPayment,
  decide,
  isTerminal,
  openDeadlines,
  type Attempt,
  type AttemptStatus,
  type Decision,
  type DecisionContext,
  type Effect,
  type Outcome,
  type Payment,
} from './payment';
import { KNOWN_REASON_CODES, classifyFailure } from './reasons';

// ---------------------------------------------------------------------------
// A fixed clock, deterministic ids, and a scripted router.
// ---------------------------------------------------------------------------

const T0 = Date.parse('2024-05-01T12:00:00.000Z');
/** The fixed clock: `seconds` after T0, as the ISO string outcomes carry. */
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();

const TIMEOUT_MS: Record<string, number> = { 'gw-a': 30_000, 'gw-b': 20_000, 'gw-c': 10_000 };

function routing(chosen: string | null, tried: ReadonlySet<string> = new Set()): RoutingDecision {
  return {
    chosen,
    candidates: chosen === null ? [] : [{ gatewayId: chosen, weight: 1 }],
    excluded: [...tried].map((gatewayId) => ({ gatewayId, reason: 'already-tried' as const })),
    rulesVersion: 'rules-1',
  };
}

interface Harness {
  context: DecisionContext;
  /** The tried sets the router was asked with, in order. */
  routeCalls: string[][];
}

/** A router that picks the first of `gateways` not tried yet; attempt ids are att-2, att-3, … */
function harness({ maxAttempts = 3, gateways = ['gw-a', 'gw-b', 'gw-c'] }: { maxAttempts?: number; gateways?: string[] } = {}): Harness {
  const routeCalls: string[][] = [];
  let next = 1;
  return {
    routeCalls,
    context: {
      maxAttempts,
      route: (_payment: RoutablePayment, tried: ReadonlySet<string>) => {
        routeCalls.push([...tried].sort());
        return routing(gateways.find((gatewayId) => !tried.has(gatewayId)) ?? null, tried);
      },
      newAttemptId: () => `att-${++next}`,
      timeoutMsOf: (gatewayId) => TIMEOUT_MS[gatewayId] ?? 5_000,
      timeoutPolicyOf: () => 'failover',
    },
  };
}

/** A new payment whose first attempt att-1 went to gw-a at T0. */
function givenNewPayment(): { payment: Payment; effects: Effect[] } {
  return createPayment(
    { id: 'pay-1', type: 'deposit', accountId: 'acc-1', amount: '9007199254740993', currency: 'EUR', region: 'EU' },
    { ...routing('gw-a'), chosen: 'gw-a' },
    'att-1',
    TIMEOUT_MS['gw-a'] ?? 0,
    new Date(T0),
  );
}

const success = (attemptId: string, seconds: number): Outcome => ({ kind: 'success', attemptId, at: at(seconds) });
const failure = (attemptId: string, reasonCode: string | undefined, seconds: number): Outcome => ({ kind: 'failure', attemptId, reasonCode, at: at(seconds) });
const timeout = (attemptId: string, seconds: number): Outcome => ({ kind: 'timeout', attemptId, at: at(seconds) });

type Changed = Extract<Decision, { changed: true }>;

function expectChanged(decision: Decision): Changed {
  if (!decision.changed) throw new Error(`expected the outcome to change the payment, but it did not (${decision.why})`);
  return decision;
}

/** Applies outcomes that must each change the payment; the given state of a test. */
function given(context: DecisionContext, ...outcomes: Outcome[]): Payment {
  let { payment } = givenNewPayment();
  for (const outcome of outcomes) payment = expectChanged(decide(payment, outcome, context)).payment;
  return payment;
}

function attempt(payment: Payment, id: string): Attempt {
  const found = payment.attempts.find((candidate) => candidate.id === id);
  if (!found) throw new Error(`no attempt ${id}`);
  return found;
}

const statuses = (payment: Payment) => payment.attempts.map((candidate) => [candidate.id, candidate.gatewayId, candidate.status]);

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

// ---------------------------------------------------------------------------

describe('createPayment', () => {
  test('When a payment is created, then it is PENDING with one in-flight attempt, and the attempt is dispatched and the status published', () => {
    const { payment, effects } = givenNewPayment();

    expect(payment).toEqual({
      id: 'pay-1',
      type: 'deposit',
      accountId: 'acc-1',
      amount: '9007199254740993',
      currency: 'EUR',
      region: 'EU',
      status: 'PENDING',
      createdAt: at(0),
      updatedAt: at(0),
      statusSequence: 1,
      attempts: [
        {
          id: 'att-1',
          number: 1,
          gatewayId: 'gw-a',
          status: 'in-flight',
          dispatchedAt: at(0),
          deadline: at(30),
          routing: { ...routing('gw-a'), chosen: 'gw-a' },
        },
      ],
    });
    expect(effects).toEqual([{ type: 'dispatch', attempt: payment.attempts[0] }, { type: 'publish-status' }]);
    expect(openDeadlines(payment)).toEqual([{ attemptId: 'att-1', deadline: at(30) }]);
  });
});

describe('decide: settling', () => {
  test('When the in-flight attempt succeeds, then the payment is SUCCESS and its status is published', () => {
    const { context, routeCalls } = harness();
    const payment = given(context);

    const { payment: next, effects } = expectChanged(decide(payment, success('att-1', 5), context));

    expect(next.status).toBe('SUCCESS');
    expect(next.reason).toBeUndefined();
    expect(next.statusSequence).toBe(2);
    expect(next.updatedAt).toBe(at(5));
    expect(attempt(next, 'att-1')).toMatchObject({ status: 'succeeded', completedAt: at(5) });
    expect(effects).toEqual([{ type: 'publish-status' }]);
    expect(routeCalls).toEqual([]);
    expect(openDeadlines(next)).toEqual([]);
  });

  test('When the attempt is declined with insufficient_funds, then the payment is FAILURE with that reason and no other gateway is tried', () => {
    const { context, routeCalls } = harness();
    const payment = given(context);

    const { payment: next, effects } = expectChanged(decide(payment, failure('att-1', 'insufficient_funds', 5), context));

    expect(next.status).toBe('FAILURE');
    expect(next.reason).toBe('insufficient_funds');
    expect(next.statusSequence).toBe(2);
    expect(next.attempts).toHaveLength(1);
    expect(attempt(next, 'att-1')).toMatchObject({ status: 'failed', reasonCode: 'insufficient_funds', completedAt: at(5) });
    expect(effects).toEqual([{ type: 'publish-status' }]);
    expect(routeCalls).toEqual([]);
  });

  test.each(KNOWN_REASON_CODES.final)('When the attempt is declined with the final code %s, then the payment fails with it without failover', (code) => {
    const { context, routeCalls } = harness();
    const next = expectChanged(decide(given(context), failure('att-1', code, 5), context)).payment;
    expect([next.status, next.reason, next.attempts.length, routeCalls.length]).toEqual(['FAILURE', code, 1, 0]);
  });

  test('When a failure carries an unknown code, then it is final (retrying an unexplained failure risks paying twice)', () => {
    const { context, routeCalls } = harness();
    const next = expectChanged(decide(given(context), failure('att-1', 'something_new', 5), context)).payment;
    expect([next.status, next.reason, routeCalls.length]).toEqual(['FAILURE', 'something_new', 0]);
  });

  test("When a failure carries no code, then it is final with reason 'declined'", () => {
    const { context } = harness();
    const next = expectChanged(decide(given(context), failure('att-1', undefined, 5), context)).payment;
    expect([next.status, next.reason]).toEqual(['FAILURE', 'declined']);
    expect(attempt(next, 'att-1').reasonCode).toBeUndefined();
  });
});

describe('reason classification', () => {
  test('When a code is in the retryable list, then it is retryable; when in the final list, unknown or missing, then it is final', () => {
    expect(KNOWN_REASON_CODES.retryable).toEqual(expect.arrayContaining(['gateway_error', 'gateway_unavailable', 'timeout']));
    expect(KNOWN_REASON_CODES.final).toEqual(expect.arrayContaining(['insufficient_funds', 'card_declined']));
    for (const code of KNOWN_REASON_CODES.retryable) expect(classifyFailure(code)).toBe('retryable');
    for (const code of KNOWN_REASON_CODES.final) expect(classifyFailure(code)).toBe('final');
    expect(KNOWN_REASON_CODES.retryable.filter((code) => KNOWN_REASON_CODES.final.includes(code))).toEqual([]);
    expect(classifyFailure('never_heard_of_it')).toBe('final');
    expect(classifyFailure('')).toBe('final');
    expect(classifyFailure(undefined)).toBe('final');
  });
});

describe('decide: failover', () => {
  test('When the attempt fails with a retryable gateway_error, then a new attempt goes to another gateway, the payment stays PENDING and no status is published', () => {
    const { context, routeCalls } = harness();
    const payment = given(context);

    const { payment: next, effects } = expectChanged(decide(payment, failure('att-1', 'gateway_error', 5), context));

    expect(routeCalls).toEqual([['gw-a']]);
    expect(next.status).toBe('PENDING');
    expect(next.statusSequence).toBe(1);
    expect(next.reason).toBeUndefined();
    expect(next.updatedAt).toBe(at(5));
    expect(attempt(next, 'att-1')).toMatchObject({ status: 'failed', reasonCode: 'gateway_error', completedAt: at(5) });
    const second = attempt(next, 'att-2');
    expect(second).toEqual({
      id: 'att-2',
      number: 2,
      gatewayId: 'gw-b',
      status: 'in-flight',
      dispatchedAt: at(5),
      deadline: at(5 + 20),
      routing: routing('gw-b', new Set(['gw-a'])),
    });
    expect(effects).toEqual([{ type: 'dispatch', attempt: second }]);
    expect(openDeadlines(next)).toEqual([{ attemptId: 'att-2', deadline: at(25) }]);
  });

  test.each(KNOWN_REASON_CODES.retryable)('When the attempt fails with the retryable code %s, then it fails over', (code) => {
    const { context } = harness();
    const next = expectChanged(decide(given(context), failure('att-1', code, 5), context)).payment;
    expect(statuses(next)).toEqual([
      ['att-1', 'gw-a', 'failed'],
      ['att-2', 'gw-b', 'in-flight'],
    ]);
    expect(next.status).toBe('PENDING');
  });

  test('When the attempt times out, then it is marked timed-out and the payment fails over the same way', () => {
    const { context, routeCalls } = harness();
    const payment = given(context);

    const { payment: next, effects } = expectChanged(decide(payment, timeout('att-1', 30), context));

    expect(routeCalls).toEqual([['gw-a']]);
    expect(attempt(next, 'att-1')).toMatchObject({ status: 'timed-out', reasonCode: 'timeout', completedAt: at(30) });
    const second = attempt(next, 'att-2');
    expect(second).toMatchObject({ number: 2, gatewayId: 'gw-b', status: 'in-flight', dispatchedAt: at(30), deadline: at(50) });
    expect(effects).toEqual([{ type: 'dispatch', attempt: second }]);
    expect([next.status, next.statusSequence]).toEqual(['PENDING', 1]);
  });

  test('When the second attempt also fails over, then the router is told both tried gateways and the third gateway is used', () => {
    const { context, routeCalls } = harness();
    const payment = given(context, failure('att-1', 'gateway_error', 5));

    const next = expectChanged(decide(payment, timeout('att-2', 25), context)).payment;

    expect(routeCalls).toEqual([['gw-a'], ['gw-a', 'gw-b']]);
    expect(statuses(next)).toEqual([
      ['att-1', 'gw-a', 'failed'],
      ['att-2', 'gw-b', 'timed-out'],
      ['att-3', 'gw-c', 'in-flight'],
    ]);
    expect(attempt(next, 'att-3')).toMatchObject({ number: 3, dispatchedAt: at(25), deadline: at(35) });
    expect(openDeadlines(next)).toEqual([{ attemptId: 'att-3', deadline: at(35) }]);
  });

  test("When the last allowed attempt fails retryably, then the payment is FAILURE 'max-attempts-exhausted' and nothing more is dispatched", () => {
    const { context, routeCalls } = harness({ maxAttempts: 2 });
    const payment = given(context, failure('att-1', 'gateway_error', 5));

    const { payment: next, effects } = expectChanged(decide(payment, failure('att-2', 'gateway_unavailable', 9), context));

    expect(next.status).toBe('FAILURE');
    expect(next.reason).toBe('max-attempts-exhausted');
    expect(next.statusSequence).toBe(2);
    expect(effects).toEqual([{ type: 'publish-status' }]);
    expect(routeCalls).toEqual([['gw-a']]);
    expect(statuses(next)).toEqual([
      ['att-1', 'gw-a', 'failed'],
      ['att-2', 'gw-b', 'failed'],
    ]);
    expect(openDeadlines(next)).toEqual([]);
  });

  test("When only one attempt is allowed and it times out, then the payment is FAILURE 'max-attempts-exhausted' at once", () => {
    const { context, routeCalls } = harness({ maxAttempts: 1 });
    const next = expectChanged(decide(given(context), timeout('att-1', 30), context)).payment;
    expect([next.status, next.reason, routeCalls.length]).toEqual(['FAILURE', 'max-attempts-exhausted', 0]);
    expect(attempt(next, 'att-1').status).toBe('timed-out');
  });

  test("When no untried gateway is left, then the payment is FAILURE 'no-gateway-left'", () => {
    const { context, routeCalls } = harness({ maxAttempts: 5, gateways: ['gw-a', 'gw-b'] });
    const payment = given(context, failure('att-1', 'gateway_error', 5));

    const { payment: next, effects } = expectChanged(decide(payment, timeout('att-2', 25), context));

    expect(routeCalls).toEqual([['gw-a'], ['gw-a', 'gw-b']]);
    expect(next.status).toBe('FAILURE');
    expect(next.reason).toBe('no-gateway-left');
    expect(next.statusSequence).toBe(2);
    expect(next.attempts).toHaveLength(2);
    expect(effects).toEqual([{ type: 'publish-status' }]);
  });
});

describe('decide: outcomes that change nothing', () => {
  test("When a success arrives twice for the same attempt, then the second is unchanged 'duplicate'", () => {
    const { context } = harness();
    const settled = given(context, success('att-1', 5));
    expect(decide(settled, success('att-1', 6), context)).toEqual({ changed: false, why: 'duplicate' });
  });

  test("When an outcome names an attempt the payment does not have, then it is unchanged 'unknown-attempt'", () => {
    const { context, routeCalls } = harness();
    const payment = given(context);
    for (const outcome of [success('att-9', 5), failure('att-9', 'gateway_error', 5), timeout('att-9', 5)]) {
      expect(decide(payment, outcome, context)).toEqual({ changed: false, why: 'unknown-attempt' });
    }
    expect(routeCalls).toEqual([]);
  });

  test("When a failure or timeout arrives for an attempt that already completed, then it is unchanged 'after-completion'", () => {
    const { context } = harness();
    const succeeded = given(context, success('att-1', 5));
    expect(decide(succeeded, failure('att-1', 'gateway_error', 6), context)).toEqual({ changed: false, why: 'after-completion' });
    expect(decide(succeeded, timeout('att-1', 30), context)).toEqual({ changed: false, why: 'after-completion' });

    const declined = given(context, failure('att-1', 'card_declined', 5));
    expect(decide(declined, failure('att-1', 'card_declined', 6), context)).toEqual({ changed: false, why: 'after-completion' });
    expect(decide(declined, timeout('att-1', 30), context)).toEqual({ changed: false, why: 'after-completion' });
  });

  test('When a timed-out attempt later reports a failure, then nothing changes and the attempt in flight keeps going', () => {
    const { context, routeCalls } = harness();
    const payment = given(context, timeout('att-1', 30));
    expect(decide(payment, failure('att-1', 'insufficient_funds', 31), context)).toEqual({ changed: false, why: 'after-completion' });
    expect(routeCalls).toEqual([['gw-a']]);
  });
});

describe('decide: late successes', () => {
  test('When attempt 1 timed out, attempt 2 is in flight and attempt 1 then succeeds, then the payment is SUCCESS and attempt 2 is cancelled', () => {
    const { context } = harness();
    const payment = given(context, timeout('att-1', 30));

    const { payment: next, effects } = expectChanged(decide(payment, success('att-1', 33), context));

    expect(next.status).toBe('SUCCESS');
    expect(next.statusSequence).toBe(2);
    expect(statuses(next)).toEqual([
      ['att-1', 'gw-a', 'succeeded'],
      ['att-2', 'gw-b', 'cancelled'],
    ]);
    expect(attempt(next, 'att-1').completedAt).toBe(at(33));
    expect(attempt(next, 'att-2').completedAt).toBe(at(33));
    expect(effects).toEqual([{ type: 'publish-status' }, { type: 'cancel', attempt: attempt(next, 'att-2') }]);
    expect(openDeadlines(next)).toEqual([]);
  });

  test('When the cancelled attempt then succeeds anyway, then it is compensated and the payment stays SUCCESS', () => {
    const { context } = harness();
    const payment = given(context, timeout('att-1', 30), success('att-1', 33));

    const { payment: next, effects } = expectChanged(decide(payment, success('att-2', 35), context));

    expect([next.status, next.statusSequence]).toEqual(['SUCCESS', 2]);
    expect(attempt(next, 'att-1').status).toBe('succeeded');
    expect(attempt(next, 'att-2')).toMatchObject({ status: 'compensating', completedAt: at(35) });
    expect(effects).toEqual([{ type: 'compensate', attempt: attempt(next, 'att-2') }]);
    expect(decide(next, success('att-2', 36), context)).toEqual({ changed: false, why: 'duplicate' });
  });

  test('When the cancelled attempt then fails, then nothing changes', () => {
    const { context } = harness();
    const payment = given(context, timeout('att-1', 30), success('att-1', 33));
    expect(decide(payment, failure('att-2', 'gateway_error', 35), context)).toEqual({ changed: false, why: 'after-completion' });
  });

  test('When a timed-out attempt succeeds after the payment settled through another attempt, then it is compensated and the status does not change', () => {
    const { context } = harness();
    const payment = given(context, timeout('att-1', 30), success('att-2', 32));
    expect(payment.status).toBe('SUCCESS');

    const { payment: next, effects } = expectChanged(decide(payment, success('att-1', 40), context));

    expect(next.status).toBe('SUCCESS');
    expect(next.statusSequence).toBe(payment.statusSequence);
    expect(statuses(next)).toEqual([
      ['att-1', 'gw-a', 'compensating'],
      ['att-2', 'gw-b', 'succeeded'],
    ]);
    expect(effects).toEqual([{ type: 'compensate', attempt: attempt(next, 'att-1') }]);
    expect(effects.some((effect) => effect.type === 'publish-status')).toBe(false);
    expect(decide(next, success('att-1', 41), context)).toEqual({ changed: false, why: 'duplicate' });
  });

  test('When a timed-out attempt succeeds after the payment failed, then it is compensated and the payment stays FAILURE with its reason', () => {
    const { context } = harness();
    const payment = given(context, timeout('att-1', 30), failure('att-2', 'insufficient_funds', 32));

    const { payment: next, effects } = expectChanged(decide(payment, success('att-1', 40), context));

    expect([next.status, next.reason, next.statusSequence]).toEqual(['FAILURE', 'insufficient_funds', 2]);
    expect(attempt(next, 'att-1').status).toBe('compensating');
    expect(effects).toEqual([{ type: 'compensate', attempt: attempt(next, 'att-1') }]);
  });

  test('When an attempt that reported a retryable failure later succeeds while the payment is pending, then that success settles the payment', () => {
    const { context } = harness();
    const payment = given(context, failure('att-1', 'gateway_error', 5));

    const { payment: next, effects } = expectChanged(decide(payment, success('att-1', 7), context));

    expect(next.status).toBe('SUCCESS');
    expect(statuses(next)).toEqual([
      ['att-1', 'gw-a', 'succeeded'],
      ['att-2', 'gw-b', 'cancelled'],
    ]);
    expect(effects).toEqual([{ type: 'publish-status' }, { type: 'cancel', attempt: attempt(next, 'att-2') }]);
  });

  test('When an attempt still in flight succeeds although the payment is already terminal, then it is compensated', () => {
    const { context } = harness();
    // Not reachable through decide alone (settling cancels every in-flight attempt); a stored state from another writer could hold it.
    const failed = given(context, failure('att-1', 'card_declined', 5));
    const stray: Attempt = { ...attempt(given(context, timeout('att-1', 30)), 'att-2') };
    const payment: Payment = { ...failed, attempts: [...failed.attempts, stray] };

    const { payment: next, effects } = expectChanged(decide(payment, success('att-2', 40), context));

    expect([next.status, next.reason, next.statusSequence]).toEqual(['FAILURE', 'card_declined', 2]);
    expect(attempt(next, 'att-2')).toMatchObject({ status: 'compensating', completedAt: at(40) });
    expect(effects).toEqual([{ type: 'compensate', attempt: attempt(next, 'att-2') }]);
  });

  test('When an attempt still in flight fails or times out although the payment is already terminal, then it is closed quietly', () => {
    const { context, routeCalls } = harness();
    const settled = given(context, success('att-1', 5));
    const stray: Attempt = { ...attempt(given(context, timeout('att-1', 30)), 'att-2') };
    const payment: Payment = { ...settled, attempts: [...settled.attempts, stray] };
    const callsBefore = routeCalls.length;

    const failed = expectChanged(decide(payment, failure('att-2', 'gateway_error', 40), context));
    expect([failed.payment.status, failed.payment.statusSequence, failed.effects]).toEqual(['SUCCESS', 2, []]);
    expect(attempt(failed.payment, 'att-2').status).toBe('failed');

    const timedOut = expectChanged(decide(payment, timeout('att-2', 50), context));
    expect([timedOut.payment.status, timedOut.effects]).toEqual(['SUCCESS', []]);
    expect(attempt(timedOut.payment, 'att-2').status).toBe('timed-out');
    expect(routeCalls.length).toBe(callsBefore);
  });
});

describe('decide: purity', () => {
  test('When deciding, then the stored payment given in is never modified', () => {
    const { context } = harness();
    const steps: Outcome[] = [timeout('att-1', 30), success('att-1', 33), success('att-2', 35)];
    let payment = deepFreeze(given(context));
    for (const outcome of steps) {
      const snapshot = JSON.stringify(payment);
      const decision = expectChanged(decide(payment, outcome, context));
      expect(JSON.stringify(payment)).toBe(snapshot);
      payment = deepFreeze(decision.payment);
    }
  });
});

describe('openDeadlines', () => {
  test('When a payment has attempts in every status, then exactly the in-flight ones are listed with their deadlines', () => {
    const base = givenNewPayment().payment;
    const first = base.attempts[0];
    if (!first) throw new Error('no first attempt');
    const all: AttemptStatus[] = ['in-flight', 'succeeded', 'failed', 'timed-out', 'cancelled', 'compensated', 'in-flight'];
    const payment: Payment = {
      ...base,
      attempts: all.map((status, index) => ({ ...first, id: `att-${index + 1}`, number: index + 1, status, deadline: at(100 + index) })),
    };
    expect(openDeadlines(payment)).toEqual([
      { attemptId: 'att-1', deadline: at(100) },
      { attemptId: 'att-7', deadline: at(106) },
    ]);
  });

  test('When a payment is terminal, then it has no open deadline', () => {
    const { context } = harness();
    expect(openDeadlines(given(context, success('att-1', 5)))).toEqual([]);
    expect(openDeadlines(given(context, failure('att-1', 'insufficient_funds', 5)))).toEqual([]);
    expect(openDeadlines(given(context, timeout('att-1', 30), success('att-1', 31)))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// Property-style: every order of a handful of outcomes keeps the invariants.
// All orders are walked as a tree (orders sharing a prefix share its states),
// and invariants are checked with plain comparisons collected into one list,
// so tens of thousands of orders stay fast.
// ---------------------------------------------------------------------------

interface Step {
  label: string;
  outcome: (at: string) => Outcome;
}

const step = {
  success: (attemptId: string): Step => ({ label: `success(${attemptId})`, outcome: (when) => ({ kind: 'success', attemptId, at: when }) }),
  timeout: (attemptId: string): Step => ({ label: `timeout(${attemptId})`, outcome: (when) => ({ kind: 'timeout', attemptId, at: when }) }),
  failure: (attemptId: string, reasonCode: string): Step => ({
    label: `${reasonCode}(${attemptId})`,
    outcome: (when) => ({ kind: 'failure', attemptId, reasonCode, at: when }),
  }),
};

interface Exploration {
  orders: number;
  endings: Record<'SUCCESS' | 'FAILURE' | 'PENDING' | 'compensated' | 'cancelled' | 'late-win', number>;
  violations: string[];
}

/** A router over gw-a, gw-b, gw-c whose attempt ids follow the payment (att-n for the n-th), so states can be shared between orders. */
function propertyContext(payment: Payment, maxAttempts: number): DecisionContext {
  return {
    maxAttempts,
    route: (_payment, tried) => routing(['gw-a', 'gw-b', 'gw-c'].find((gatewayId) => !tried.has(gatewayId)) ?? null, tried),
    newAttemptId: () => `att-${payment.attempts.length + 1}`,
    timeoutMsOf: (gatewayId) => TIMEOUT_MS[gatewayId] ?? 5_000,
    timeoutPolicyOf: () => 'failover',
  };
}

const same = (left: unknown, right: unknown) => JSON.stringify(left) === JSON.stringify(right);

/** The invariants one decision must keep; returns what it broke. */
function brokenInvariants(before: Payment, outcome: Outcome, decision: Decision): string[] {
  const broken: string[] = [];
  const priorStatus = new Map(before.attempts.map((candidate) => [candidate.id, candidate.status]));
  const prior = priorStatus.get(outcome.attemptId);

  if (!decision.changed) {
    if (prior === undefined && decision.why !== 'unknown-attempt') broken.push(`unknown attempt answered ${decision.why}`);
    if (prior !== undefined && outcome.kind === 'success' && decision.why !== 'duplicate') broken.push(`a success was ignored as ${decision.why}`);
    if (prior === 'in-flight') broken.push('an outcome for an in-flight attempt changed nothing');
    return broken;
  }
  if (prior === undefined) broken.push('an unknown attempt changed the payment');
  const { payment: after, effects } = decision;
  const statusChanged = after.status !== before.status;

  if (isTerminal(before.status) && (statusChanged || after.reason !== before.reason)) {
    broken.push(`terminal ${before.status}/${before.reason} became ${after.status}/${after.reason}`);
  }
  if (after.statusSequence - before.statusSequence !== (statusChanged ? 1 : 0)) {
    broken.push(`statusSequence ${before.statusSequence} → ${after.statusSequence} with status ${before.status} → ${after.status}`);
  }
  const publishes = effects.filter((effect) => effect.type === 'publish-status').length;
  if (publishes !== (statusChanged ? 1 : 0)) broken.push(`${publishes} publish-status effects for status ${before.status} → ${after.status}`);

  if (!same(after.attempts.slice(0, before.attempts.length).map((candidate) => candidate.id), [...priorStatus.keys()])) {
    broken.push('attempts were removed or reordered');
  }
  for (const candidate of after.attempts) {
    const was = priorStatus.get(candidate.id);
    if ((was === 'succeeded' || was === 'compensating') && candidate.status !== was) broken.push(`${candidate.id} moved from ${was} to ${candidate.status}`);
  }
  if (outcome.kind === 'success') {
    const now = after.attempts.find((candidate) => candidate.id === outcome.attemptId)?.status;
    if (now !== 'succeeded' && now !== 'compensating') broken.push(`a success left ${outcome.attemptId} ${now}`);
    if (now === 'succeeded' && (isTerminal(before.status) || after.status !== 'SUCCESS')) broken.push('a success that could not settle was marked succeeded');
  }

  const succeeded = after.attempts.filter((candidate) => candidate.status === 'succeeded').length;
  if (succeeded > 1) broken.push(`${succeeded} attempts succeeded`);
  if ((after.status === 'SUCCESS') !== (succeeded === 1)) broken.push(`status ${after.status} with ${succeeded} succeeded attempts`);

  const inFlight = after.attempts.filter((candidate) => candidate.status === 'in-flight');
  if (inFlight.length > (isTerminal(after.status) ? 0 : 1)) broken.push(`${inFlight.length} in-flight attempts while ${after.status}`);
  if (!same(openDeadlines(after), inFlight.map((candidate) => ({ attemptId: candidate.id, deadline: candidate.deadline })))) {
    broken.push('openDeadlines does not list exactly the in-flight attempts');
  }

  const added = after.attempts.slice(before.attempts.length);
  const movedTo = (status: AttemptStatus) => after.attempts.filter((candidate) => candidate.status === status && priorStatus.get(candidate.id) !== status);
  const effectAttempts = (type: 'dispatch' | 'cancel' | 'compensate') =>
    effects.flatMap((effect) => (effect.type === type ? [effect.attempt] : []));
  if (!same(effectAttempts('dispatch'), added) || added.some((candidate) => candidate.status !== 'in-flight')) {
    broken.push('dispatch effects do not match the new in-flight attempts');
  }
  if (!same(effectAttempts('cancel'), movedTo('cancelled'))) broken.push('cancel effects do not match the attempts cancelled');
  if (!same(effectAttempts('compensate'), movedTo('compensating'))) broken.push('compensate effects do not match the attempts compensated');
  return broken;
}

/** Applies every order of `steps` to a new payment (outcome i at 10·(i+1) s) and checks every decision. */
function exploreAllOrders(steps: readonly Step[], maxAttempts: number): Exploration {
  const result: Exploration = {
    orders: 0,
    endings: { SUCCESS: 0, FAILURE: 0, PENDING: 0, compensated: 0, cancelled: 0, 'late-win': 0 },
    violations: [],
  };
  const walk = (payment: Payment, remaining: readonly Step[], path: string[], lateWin: boolean) => {
    if (remaining.length === 0) {
      result.orders++;
      result.endings[payment.status]++;
      if (payment.attempts.some((candidate) => candidate.status === 'compensating')) result.endings.compensated++;
      if (payment.attempts.some((candidate) => candidate.status === 'cancelled')) result.endings.cancelled++;
      if (lateWin) result.endings['late-win']++;
      return;
    }
    remaining.forEach((next, index) => {
      const outcome = next.outcome(at(10 * (path.length + 1)));
      const decision = decide(payment, outcome, propertyContext(payment, maxAttempts));
      const here = [...path, next.label];
      for (const broken of brokenInvariants(payment, outcome, decision)) {
        if (result.violations.length < 20) result.violations.push(`${here.join(' → ')}: ${broken}`);
      }
      const wasLate = outcome.kind === 'success' && !isTerminal(payment.status) && payment.attempts.find((candidate) => candidate.id === outcome.attemptId)?.status !== 'in-flight';
      const rest = [...remaining.slice(0, index), ...remaining.slice(index + 1)];
      // Frozen, because sibling orders share this state: a decide that mutated its input would throw here.
      walk(decision.changed ? deepFreeze(decision.payment) : payment, rest, here, lateWin || (decision.changed && wasLate));
    });
  };
  walk(deepFreeze(givenNewPayment().payment), steps, [], false);
  return result;
}

describe('decide: invariants over every order of outcomes', () => {
  test('When successes, retryable and final failures and timeouts of three attempts arrive in any order, then the invariants hold after every step', () => {
    const { orders, endings, violations } = exploreAllOrders(
      [
        step.success('att-1'),
        step.timeout('att-1'),
        step.failure('att-1', 'gateway_error'),
        step.success('att-2'),
        step.failure('att-2', 'insufficient_funds'),
        step.timeout('att-2'),
        step.success('att-3'),
        step.failure('att-3', 'gateway_error'),
      ],
      3,
    );

    expect(violations).toEqual([]);
    expect(orders).toBe(40_320);
    // The walk really reached every kind of ending the invariants guard.
    for (const ending of ['SUCCESS', 'FAILURE', 'compensated', 'cancelled', 'late-win'] as const) expect([ending, endings[ending]]).not.toEqual([ending, 0]);
  });

  test('When duplicate and late outcomes arrive in any order with a tight attempt budget, then the invariants hold after every step', () => {
    const { orders, endings, violations } = exploreAllOrders(
      [
        step.success('att-1'),
        step.success('att-1'),
        step.timeout('att-1'),
        step.failure('att-1', 'gateway_unavailable'),
        step.success('att-2'),
        step.timeout('att-2'),
        step.success('att-2'),
        step.failure('att-2', 'card_declined'),
      ],
      2,
    );

    expect(violations).toEqual([]);
    expect(orders).toBe(40_320);
    for (const ending of ['SUCCESS', 'FAILURE', 'compensated', 'late-win'] as const) expect([ending, endings[ending]]).not.toEqual([ending, 0]);
  });
});
