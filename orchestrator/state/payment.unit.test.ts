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
  type PaymentType,
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

type TimeoutPolicy = ReturnType<DecisionContext['timeoutPolicyOf']>;

interface Harness {
  context: DecisionContext;
  /** The tried sets the router was asked with, in order. */
  routeCalls: string[][];
  /** The (gateway, payment type) pairs the timeout policy was asked about, in order. */
  policyCalls: string[][];
}

/** The product default: money leaving us (a withdrawal) waits for the gateway to confirm a cancel; a deposit fails over at once. */
const byPaymentType = (_gatewayId: string, type: PaymentType): TimeoutPolicy => (type === 'withdrawal' ? 'cancel-first' : 'failover');

/** A router that picks the first of `gateways` not tried yet; attempt ids are att-2, att-3, … */
function harness({
  maxAttempts = 3,
  gateways = ['gw-a', 'gw-b', 'gw-c'],
  policy = () => 'failover',
}: { maxAttempts?: number; gateways?: string[]; policy?: DecisionContext['timeoutPolicyOf'] } = {}): Harness {
  const routeCalls: string[][] = [];
  const policyCalls: string[][] = [];
  let next = 1;
  return {
    routeCalls,
    policyCalls,
    context: {
      maxAttempts,
      route: (_payment: RoutablePayment, tried: ReadonlySet<string>) => {
        routeCalls.push([...tried].sort());
        return routing(gateways.find((gatewayId) => !tried.has(gatewayId)) ?? null, tried);
      },
      newAttemptId: () => `att-${++next}`,
      timeoutMsOf: (gatewayId) => TIMEOUT_MS[gatewayId] ?? 5_000,
      timeoutPolicyOf: (gatewayId, type) => {
        policyCalls.push([gatewayId, type]);
        return policy(gatewayId, type);
      },
    },
  };
}

/** The withdrawal harness: the product's policies (withdrawals cancel first), the same scripted router. */
const withdrawalHarness = (options: { maxAttempts?: number; gateways?: string[] } = {}) => harness({ ...options, policy: byPaymentType });

/** A new payment whose first attempt att-1 went to gw-a at T0 (a deposit unless told otherwise). */
function givenNewPayment(type: PaymentType = 'deposit', timeoutMs = TIMEOUT_MS['gw-a'] ?? 0): { payment: Payment; effects: Effect[] } {
  return createPayment(
    { id: 'pay-1', type, accountId: 'acc-1', amount: '9007199254740993', currency: 'EUR', region: 'EU' },
    { ...routing('gw-a'), chosen: 'gw-a' },
    'att-1',
    timeoutMs,
    new Date(T0),
  );
}

const success = (attemptId: string, seconds: number): Outcome => ({ kind: 'success', attemptId, at: at(seconds) });
const failure = (attemptId: string, reasonCode: string | undefined, seconds: number): Outcome => ({ kind: 'failure', attemptId, reasonCode, at: at(seconds) });
const timeout = (attemptId: string, seconds: number): Outcome => ({ kind: 'timeout', attemptId, at: at(seconds) });
const cancelConfirmed = (attemptId: string, seconds: number): Outcome => ({ kind: 'cancel-confirmed', attemptId, at: at(seconds) });
const compensationConfirmed = (attemptId: string, seconds: number): Outcome => ({ kind: 'compensation-confirmed', attemptId, at: at(seconds) });

type Changed = Extract<Decision, { changed: true }>;

function expectChanged(decision: Decision): Changed {
  if (!decision.changed) throw new Error(`expected the outcome to change the payment, but it did not (${decision.why})`);
  return decision;
}

/** Applies outcomes that must each change the payment; the given state of a test. */
function given(context: DecisionContext, ...outcomes: Outcome[]): Payment {
  return givenFrom(givenNewPayment().payment, context, outcomes);
}

/** The same for a withdrawal (att-1 to gw-a at T0, its 30 s deadline at 30 s). */
function givenWithdrawal(context: DecisionContext, ...outcomes: Outcome[]): Payment {
  return givenFrom(givenNewPayment('withdrawal').payment, context, outcomes);
}

function givenFrom(start: Payment, context: DecisionContext, outcomes: readonly Outcome[]): Payment {
  let payment = start;
  for (const outcome of outcomes) payment = expectChanged(decide(payment, outcome, context)).payment;
  return payment;
}

function attempt(payment: Payment, id: string): Attempt {
  const found = payment.attempts.find((candidate) => candidate.id === id);
  if (!found) throw new Error(`no attempt ${id}`);
  return found;
}

const statuses = (payment: Payment) => payment.attempts.map((candidate) => [candidate.id, candidate.gatewayId, candidate.status]);

/** att-1's success settled the payment while att-2 (gw-b) was in flight: SUCCESS published, att-2 cancelled. */
function expectAtt1SettlesAndAtt2Cancelled(decision: Decision): void {
  const { payment: next, effects } = expectChanged(decision);

  expect(next.status).toBe('SUCCESS');
  expect(statuses(next)).toEqual([
    ['att-1', 'gw-a', 'succeeded'],
    ['att-2', 'gw-b', 'cancelled'],
  ]);
  expect(effects).toEqual([{ type: 'publish-status' }, { type: 'cancel', attempt: attempt(next, 'att-2') }]);
}

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

    expectAtt1SettlesAndAtt2Cancelled(decide(payment, success('att-1', 7), context));
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

describe('decide: withdrawals whose gateway timed out (cancel-first)', () => {
  test('When a withdrawal attempt times out under cancel-first, then it is cancelling with a cancel sent and a new deadline of one more gateway timeout, and nothing else is tried yet', () => {
    const { context, routeCalls, policyCalls } = withdrawalHarness();
    const payment = givenWithdrawal(context);

    const { payment: next, effects } = expectChanged(decide(payment, timeout('att-1', 30), context));

    expect(policyCalls).toEqual([['gw-a', 'withdrawal']]);
    expect(attempt(next, 'att-1')).toEqual({ ...attempt(payment, 'att-1'), status: 'cancelling', reasonCode: 'timeout', deadline: at(30 + 30) });
    expect(attempt(next, 'att-1').completedAt).toBeUndefined();
    expect(effects).toEqual([{ type: 'cancel', attempt: attempt(next, 'att-1') }]);
    expect(next.attempts).toHaveLength(1);
    expect(routeCalls).toEqual([]);
    expect([next.status, next.statusSequence, next.updatedAt, next.review]).toEqual(['PENDING', 1, at(30), undefined]);
    expect(openDeadlines(next)).toEqual([{ attemptId: 'att-1', deadline: at(60) }]);
  });

  test("When the cancel deadline is computed, then it is the timeout's time plus that gateway's own timeout", () => {
    const { context } = withdrawalHarness();
    const payment = givenWithdrawal(context, timeout('att-1', 30), cancelConfirmed('att-1', 31));
    expect(attempt(payment, 'att-2')).toMatchObject({ gatewayId: 'gw-b', deadline: at(51) });
    // att-2 went to gw-b (20 s): its timeout, fired late at 53 s, waits for the cancel until 73 s.
    const next = expectChanged(decide(payment, timeout('att-2', 53), context)).payment;
    expect(attempt(next, 'att-2')).toMatchObject({ gatewayId: 'gw-b', status: 'cancelling', deadline: at(73) });
  });

  test('When a deposit times out with the same policies, then it fails over at once (the policy is asked per payment type)', () => {
    const { context, policyCalls } = withdrawalHarness();
    const next = expectChanged(decide(given(context), timeout('att-1', 30), context)).payment;
    expect(policyCalls).toEqual([['gw-a', 'deposit']]);
    expect(statuses(next)).toEqual([
      ['att-1', 'gw-a', 'timed-out'],
      ['att-2', 'gw-b', 'in-flight'],
    ]);
  });

  test('When the gateway says cancel-first for deposits too, then a deposit also waits for the cancel; when it says failover for withdrawals, then a withdrawal fails over at once', () => {
    const cancelFirst = harness({ policy: () => 'cancel-first' });
    const deposit = expectChanged(decide(given(cancelFirst.context), timeout('att-1', 30), cancelFirst.context));
    expect([attempt(deposit.payment, 'att-1').status, deposit.effects.map((effect) => effect.type)]).toEqual(['cancelling', ['cancel']]);

    const failover = harness({ policy: () => 'failover' });
    const withdrawal = expectChanged(decide(givenWithdrawal(failover.context), timeout('att-1', 30), failover.context));
    expect(statuses(withdrawal.payment)).toEqual([
      ['att-1', 'gw-a', 'timed-out'],
      ['att-2', 'gw-b', 'in-flight'],
    ]);
  });

  test('When the gateway confirms the cancel, then the attempt is cancelled and the withdrawal fails over to the next gateway', () => {
    const { context, routeCalls } = withdrawalHarness();
    const payment = givenWithdrawal(context, timeout('att-1', 30));

    const { payment: next, effects } = expectChanged(decide(payment, cancelConfirmed('att-1', 34), context));

    expect(attempt(next, 'att-1')).toMatchObject({ status: 'cancelled', reasonCode: 'timeout', completedAt: at(34) });
    const second = attempt(next, 'att-2');
    expect(second).toMatchObject({ number: 2, gatewayId: 'gw-b', status: 'in-flight', dispatchedAt: at(34), deadline: at(54) });
    expect(effects).toEqual([{ type: 'dispatch', attempt: second }]);
    expect(routeCalls).toEqual([['gw-a']]);
    expect([next.status, next.statusSequence]).toEqual(['PENDING', 1]);
    expect(openDeadlines(next)).toEqual([{ attemptId: 'att-2', deadline: at(54) }]);
  });

  test('When the last allowed attempt of a withdrawal times out, then it still waits for the cancel, and fails only once the cancel is confirmed', () => {
    const { context, routeCalls } = withdrawalHarness({ maxAttempts: 1 });

    const waiting = expectChanged(decide(givenWithdrawal(context), timeout('att-1', 30), context)).payment;
    expect([waiting.status, attempt(waiting, 'att-1').status]).toEqual(['PENDING', 'cancelling']);

    const { payment: failed, effects } = expectChanged(decide(waiting, cancelConfirmed('att-1', 33), context));
    expect([failed.status, failed.reason, failed.statusSequence]).toEqual(['FAILURE', 'max-attempts-exhausted', 2]);
    expect(effects).toEqual([{ type: 'publish-status' }]);
    expect(routeCalls).toEqual([]);
    expect(openDeadlines(failed)).toEqual([]);
  });

  test("When the cancel is confirmed and no untried gateway is left, then the withdrawal is FAILURE 'no-gateway-left'", () => {
    const { context } = withdrawalHarness({ gateways: ['gw-a'] });
    const payment = givenWithdrawal(context, timeout('att-1', 30));
    const next = expectChanged(decide(payment, cancelConfirmed('att-1', 33), context)).payment;
    expect([next.status, next.reason, attempt(next, 'att-1').status]).toEqual(['FAILURE', 'no-gateway-left', 'cancelled']);
  });

  test('When a cancelling attempt succeeds after all (the cancel came too late), then the withdrawal is SUCCESS through it and nothing more is cancelled', () => {
    const { context, routeCalls } = withdrawalHarness();
    const payment = givenWithdrawal(context, timeout('att-1', 30));

    const { payment: next, effects } = expectChanged(decide(payment, success('att-1', 35), context));

    expect([next.status, next.statusSequence]).toEqual(['SUCCESS', 2]);
    expect(attempt(next, 'att-1')).toMatchObject({ status: 'succeeded', completedAt: at(35) });
    expect(attempt(next, 'att-1').reasonCode).toBeUndefined();
    expect(effects).toEqual([{ type: 'publish-status' }]);
    expect(routeCalls).toEqual([]);
    expect(openDeadlines(next)).toEqual([]);
  });

  test('When a cancelling attempt reports a final decline, then the withdrawal is FAILURE with that reason', () => {
    const { context, routeCalls } = withdrawalHarness();
    const payment = givenWithdrawal(context, timeout('att-1', 30));
    const { payment: next, effects } = expectChanged(decide(payment, failure('att-1', 'account_blocked', 35), context));
    expect([next.status, next.reason]).toEqual(['FAILURE', 'account_blocked']);
    expect(attempt(next, 'att-1')).toMatchObject({ status: 'failed', reasonCode: 'account_blocked', completedAt: at(35) });
    expect(effects).toEqual([{ type: 'publish-status' }]);
    expect(routeCalls).toEqual([]);
  });

  test('When a cancelling attempt reports a retryable failure, then the gateway will not pay it and the withdrawal fails over', () => {
    const { context } = withdrawalHarness();
    const payment = givenWithdrawal(context, timeout('att-1', 30));
    const { payment: next, effects } = expectChanged(decide(payment, failure('att-1', 'gateway_error', 35), context));
    expect(statuses(next)).toEqual([
      ['att-1', 'gw-a', 'failed'],
      ['att-2', 'gw-b', 'in-flight'],
    ]);
    expect(effects).toEqual([{ type: 'dispatch', attempt: attempt(next, 'att-2') }]);
  });

  test('When a cancel is confirmed twice, then the second is unchanged (duplicate)', () => {
    const { context } = withdrawalHarness();
    const payment = givenWithdrawal(context, timeout('att-1', 30), cancelConfirmed('att-1', 33));
    expect(decide(payment, cancelConfirmed('att-1', 34), context)).toEqual({ changed: false, why: 'duplicate' });
  });

  test('When a cancel confirmation names an attempt that was never asked to cancel, then nothing changes', () => {
    const { context, routeCalls } = withdrawalHarness();
    expect(decide(givenWithdrawal(context), cancelConfirmed('att-1', 5), context)).toEqual({ changed: false, why: 'after-completion' });
    const succeeded = givenWithdrawal(context, success('att-1', 5));
    expect(decide(succeeded, cancelConfirmed('att-1', 6), context)).toEqual({ changed: false, why: 'after-completion' });
    expect(decide(givenWithdrawal(context), cancelConfirmed('att-9', 5), context)).toEqual({ changed: false, why: 'unknown-attempt' });
    expect(routeCalls).toEqual([]);
  });

  test('When a cancelled attempt (confirmed) later succeeds while the next attempt is in flight, then that success wins and the next attempt is cancelled', () => {
    const { context } = withdrawalHarness();
    const payment = givenWithdrawal(context, timeout('att-1', 30), cancelConfirmed('att-1', 33));

    expectAtt1SettlesAndAtt2Cancelled(decide(payment, success('att-1', 36), context));
  });

  test('When the cancel is confirmed after the payment settled elsewhere, then the attempt is marked cancelled and nothing is sent', () => {
    const { context } = withdrawalHarness();
    // Not reachable through decide alone (only one attempt of a withdrawal is open at a time); a stored state from another writer could hold it.
    const settled = givenWithdrawal(context, failure('att-1', 'gateway_error', 5), success('att-2', 8));
    const stray: Attempt = { ...attempt(givenWithdrawal(context, timeout('att-1', 30)), 'att-1'), id: 'att-3', number: 3, gatewayId: 'gw-c' };
    const payment: Payment = { ...settled, attempts: [...settled.attempts, stray] };

    const { payment: next, effects } = expectChanged(decide(payment, cancelConfirmed('att-3', 40), context));

    expect([next.status, next.statusSequence, effects]).toEqual(['SUCCESS', 2, []]);
    expect(attempt(next, 'att-3')).toMatchObject({ status: 'cancelled', completedAt: at(40) });
  });
});

describe('decide: a cancel never confirmed (review)', () => {
  /** att-1 timed out at 30 s (its deadline) and was asked to cancel; the cancel deadline is 60 s. */
  const cancelling = (context: DecisionContext) => givenWithdrawal(context, timeout('att-1', 30));

  test('When the cancel deadline passes unconfirmed, then the withdrawal is flagged for review, stays PENDING, tries nothing else, and no deadline is watched', () => {
    const { context, routeCalls } = withdrawalHarness();
    const payment = cancelling(context);

    const { payment: next, effects } = expectChanged(decide(payment, timeout('att-1', 60), context));

    expect(next.review).toEqual({ reason: 'cancel-unconfirmed', attemptId: 'att-1', since: at(60) });
    expect(attempt(next, 'att-1')).toEqual({ ...attempt(payment, 'att-1'), cancelUnconfirmedAt: at(60) });
    expect(effects).toEqual([{ type: 'flag-review', attempt: attempt(next, 'att-1') }]);
    expect([next.status, next.statusSequence, next.updatedAt]).toEqual(['PENDING', 1, at(60)]);
    expect(next.attempts).toHaveLength(1);
    expect(routeCalls).toEqual([]);
    expect(openDeadlines(next)).toEqual([]);
  });

  test('When another timeout arrives for a payment already under review, then nothing changes (it is flagged once)', () => {
    const { context } = withdrawalHarness();
    const flagged = givenWithdrawal(context, timeout('att-1', 30), timeout('att-1', 60));
    expect(decide(flagged, timeout('att-1', 90), context)).toEqual({ changed: false, why: 'after-completion' });
  });

  test('When the flagged attempt succeeds after all, then the withdrawal is SUCCESS and the review is cleared', () => {
    const { context } = withdrawalHarness();
    const flagged = givenWithdrawal(context, timeout('att-1', 30), timeout('att-1', 60));

    const { payment: next, effects } = expectChanged(decide(flagged, success('att-1', 70), context));

    expect([next.status, next.statusSequence, next.review]).toEqual(['SUCCESS', 2, undefined]);
    expect(attempt(next, 'att-1').status).toBe('succeeded');
    expect(effects).toEqual([{ type: 'publish-status' }]);
    expect(openDeadlines(next)).toEqual([]);
  });

  test('When the cancel of the flagged attempt is confirmed at last, then the review is cleared and the withdrawal fails over', () => {
    const { context } = withdrawalHarness();
    const flagged = givenWithdrawal(context, timeout('att-1', 30), timeout('att-1', 60));

    const { payment: next, effects } = expectChanged(decide(flagged, cancelConfirmed('att-1', 75), context));

    expect(next.review).toBeUndefined();
    expect(next.status).toBe('PENDING');
    expect(statuses(next)).toEqual([
      ['att-1', 'gw-a', 'cancelled'],
      ['att-2', 'gw-b', 'in-flight'],
    ]);
    expect(effects).toEqual([{ type: 'dispatch', attempt: attempt(next, 'att-2') }]);
    expect(openDeadlines(next)).toEqual([{ attemptId: 'att-2', deadline: at(95) }]);
  });

  test('When the flagged attempt reports a final decline, then the withdrawal is FAILURE and the review is cleared', () => {
    const { context } = withdrawalHarness();
    const flagged = givenWithdrawal(context, timeout('att-1', 30), timeout('att-1', 60));
    const next = expectChanged(decide(flagged, failure('att-1', 'insufficient_funds', 75), context)).payment;
    expect([next.status, next.reason, next.review]).toEqual(['FAILURE', 'insufficient_funds', undefined]);
  });

  test('When the flagged attempt reports a retryable failure, then the review is cleared and the withdrawal fails over', () => {
    const { context } = withdrawalHarness();
    const flagged = givenWithdrawal(context, timeout('att-1', 30), timeout('att-1', 60));
    const next = expectChanged(decide(flagged, failure('att-1', 'gateway_unavailable', 75), context)).payment;
    expect(next.review).toBeUndefined();
    expect(statuses(next)).toEqual([
      ['att-1', 'gw-a', 'failed'],
      ['att-2', 'gw-b', 'in-flight'],
    ]);
  });

  test('When the cancel of the flagged attempt is confirmed but it was the last allowed attempt, then the withdrawal is FAILURE and the review is cleared', () => {
    const { context } = withdrawalHarness({ maxAttempts: 1 });
    const flagged = givenWithdrawal(context, timeout('att-1', 30), timeout('att-1', 60));
    const next = expectChanged(decide(flagged, cancelConfirmed('att-1', 75), context)).payment;
    expect([next.status, next.reason, next.review]).toEqual(['FAILURE', 'max-attempts-exhausted', undefined]);
  });

  // A timeout is delivered at least once (the scheduler's claim is a lease another instance takes over once it runs
  // out), and it carries the time it fired. A second delivery of the *first* timeout, fired before the cancel deadline,
  // must not be taken as the cancel deadline passing: the cancel may still be confirmed in time. The attempt's deadline
  // says which wait the timeout belongs to.
  test('When a timeout fired before the cancel deadline arrives for a cancelling attempt (the first timeout delivered again), then nothing changes', () => {
    const { context, routeCalls } = withdrawalHarness();
    const payment = cancelling(context);
    expect(attempt(payment, 'att-1').deadline).toBe(at(60));

    const decision = decide(payment, timeout('att-1', 31), context);

    expect(decision.changed ? { review: decision.payment.review, effects: decision.effects.map((effect) => effect.type) } : decision).toEqual({
      changed: false,
      why: 'duplicate',
    });
    expect(routeCalls).toEqual([]);
  });

  test('When a timeout fired the last millisecond before the cancel deadline arrives, then it is still a duplicate; fired at the deadline, it flags the review', () => {
    const { context } = withdrawalHarness();
    const payment = cancelling(context);

    expect(decide(payment, { kind: 'timeout', attemptId: 'att-1', at: new Date(T0 + 60_000 - 1).toISOString() }, context)).toEqual({
      changed: false,
      why: 'duplicate',
    });
    expect(expectChanged(decide(payment, timeout('att-1', 60), context)).payment.review).toEqual({ reason: 'cancel-unconfirmed', attemptId: 'att-1', since: at(60) });
  });

  test('When the first timeout is delivered again after the cancel was confirmed and the withdrawal failed over, then nothing changes', () => {
    const { context } = withdrawalHarness();
    const failedOver = givenWithdrawal(context, timeout('att-1', 30), cancelConfirmed('att-1', 33));
    expect(decide(failedOver, timeout('att-1', 30), context)).toEqual({ changed: false, why: 'after-completion' });
  });
});

describe('decide: a review resolved by a person', () => {
  /** att-1 (gw-a) timed out at 30 s, its cancel went unconfirmed at 60 s: the withdrawal waits for a person. */
  const flagged = (context: DecisionContext) => givenWithdrawal(context, timeout('att-1', 30), timeout('att-1', 60));
  const resolved = (decision: 'paid' | 'not-paid' | 'refunded', seconds: number, id = 'res-1', attemptId = 'att-1'): Outcome => ({
    kind: 'review-resolved',
    attemptId,
    at: at(seconds),
    resolutionId: id,
    decision,
    actor: 'ops-olga',
    note: 'PSP confirmed by phone',
  });
  const recorded = (decision: 'paid' | 'not-paid' | 'refunded', seconds: number, reason = 'cancel-unconfirmed') => ({
    id: 'res-1',
    attemptId: 'att-1',
    reason,
    decision,
    actor: 'ops-olga',
    note: 'PSP confirmed by phone',
    at: at(seconds),
  });

  test('When a person resolves it as paid, then that attempt succeeds, the withdrawal is SUCCESS, nothing else is tried, and the resolution is recorded', () => {
    const { context, routeCalls } = withdrawalHarness();

    const { payment: next, effects } = expectChanged(decide(flagged(context), resolved('paid', 100), context));

    expect([next.status, next.statusSequence, next.review]).toEqual(['SUCCESS', 2, undefined]);
    expect(statuses(next)).toEqual([['att-1', 'gw-a', 'succeeded']]);
    expect(attempt(next, 'att-1').completedAt).toBe(at(100));
    expect(effects).toEqual([{ type: 'publish-status' }]);
    expect(next.resolutions).toEqual([recorded('paid', 100)]);
    expect(routeCalls).toEqual([]);
    expect(openDeadlines(next)).toEqual([]);
  });

  test('When a person resolves it as not paid, then the attempt is cancelled and the withdrawal fails over, as for a confirmed cancel', () => {
    const { context } = withdrawalHarness();

    const { payment: next, effects } = expectChanged(decide(flagged(context), resolved('not-paid', 100), context));

    expect([next.status, next.review]).toEqual(['PENDING', undefined]);
    expect(statuses(next)).toEqual([
      ['att-1', 'gw-a', 'cancelled'],
      ['att-2', 'gw-b', 'in-flight'],
    ]);
    expect(effects).toEqual([{ type: 'dispatch', attempt: attempt(next, 'att-2') }]);
    expect(next.resolutions).toEqual([recorded('not-paid', 100)]);
  });

  test('When a person resolves it as not paid and no gateway is left, then the withdrawal is FAILURE with no-gateway-left', () => {
    const { context } = withdrawalHarness({ gateways: ['gw-a'] });
    const { payment: next, effects } = expectChanged(decide(flagged(context), resolved('not-paid', 100), context));
    expect([next.status, next.reason, next.review]).toEqual(['FAILURE', 'no-gateway-left', undefined]);
    expect(effects).toEqual([{ type: 'publish-status' }]);
  });

  test('When the same resolution arrives again, then nothing changes (it applies once)', () => {
    const { context } = withdrawalHarness();
    const once = expectChanged(decide(flagged(context), resolved('not-paid', 100), context)).payment;
    expect(decide(once, resolved('not-paid', 100), context)).toEqual({ changed: false, why: 'duplicate' });
  });

  test('When a resolution arrives for a payment no longer in review, or for another attempt, then it is refused', () => {
    const { context } = withdrawalHarness();
    const settled = expectChanged(decide(flagged(context), success('att-1', 90), context)).payment;
    expect(decide(settled, resolved('not-paid', 100), context)).toEqual({ changed: false, why: 'not-in-review' });
    expect(decide(flagged(context), resolved('paid', 100, 'res-2', 'att-9'), context)).toEqual({ changed: false, why: 'unknown-attempt' });
    const failedOver = expectChanged(decide(flagged(context), resolved('not-paid', 100), context)).payment;
    expect(decide(failedOver, resolved('paid', 110, 'res-2', 'att-2'), context)).toEqual({ changed: false, why: 'not-in-review' });
  });

  test('When the decision does not answer the review (refunded for a cancel, paid for a refund), then it is refused', () => {
    const { context } = withdrawalHarness();
    expect(decide(flagged(context), resolved('refunded', 100), context)).toEqual({ changed: false, why: 'decision-does-not-fit' });
    const compensationReview = given(context, timeout('att-1', 30), success('att-2', 32), success('att-1', 40), timeout('att-1', 70), timeout('att-1', 130), timeout('att-1', 250), timeout('att-1', 490), timeout('att-1', 730));
    expect(compensationReview.review?.reason).toBe('compensation-unconfirmed');
    expect(decide(compensationReview, resolved('paid', 800), context)).toEqual({ changed: false, why: 'decision-does-not-fit' });

    const { payment: next, effects } = expectChanged(decide(compensationReview, resolved('refunded', 800), context));
    expect([next.status, next.review, attempt(next, 'att-1').status]).toEqual(['SUCCESS', undefined, 'compensated']);
    expect(effects).toEqual([]);
    expect(next.resolutions).toEqual([recorded('refunded', 800, 'compensation-unconfirmed')]);
  });
});

describe('decide: compensation confirmed', () => {
  /** att-1 timed out, att-2 settled the deposit, att-1 succeeded late and is being compensated. */
  const compensating = (context: DecisionContext) => given(context, timeout('att-1', 30), success('att-2', 32), success('att-1', 40));

  test('When the gateway confirms the compensation, then the attempt is compensated, nothing is sent and the payment does not change status', () => {
    const { context } = harness();
    const payment = compensating(context);
    expect(attempt(payment, 'att-1').status).toBe('compensating');

    const { payment: next, effects } = expectChanged(decide(payment, compensationConfirmed('att-1', 45), context));

    expect(attempt(next, 'att-1')).toMatchObject({ status: 'compensated', completedAt: at(40) });
    expect(effects).toEqual([]);
    expect([next.status, next.statusSequence, next.updatedAt]).toEqual(['SUCCESS', 2, at(45)]);
  });

  test('When the compensation is confirmed twice, or the attempt succeeds again afterwards, then nothing changes', () => {
    const { context } = harness();
    const compensated = givenFrom(compensating(context), context, [compensationConfirmed('att-1', 45)]);
    expect(decide(compensated, compensationConfirmed('att-1', 46), context)).toEqual({ changed: false, why: 'duplicate' });
    expect(decide(compensated, success('att-1', 47), context)).toEqual({ changed: false, why: 'duplicate' });
  });

  test('When a compensation confirmation names an attempt that was not being compensated, then nothing changes', () => {
    const { context } = harness();
    const payment = compensating(context);
    expect(decide(payment, compensationConfirmed('att-2', 45), context)).toEqual({ changed: false, why: 'after-completion' });
    expect(decide(given(context), compensationConfirmed('att-1', 5), context)).toEqual({ changed: false, why: 'after-completion' });
    expect(decide(payment, compensationConfirmed('att-9', 45), context)).toEqual({ changed: false, why: 'unknown-attempt' });
  });

  test('When a withdrawal that failed after a cancel gets a late success from the cancelled attempt, then it is compensated and stays FAILURE', () => {
    const { context } = withdrawalHarness({ maxAttempts: 1 });
    const failed = givenWithdrawal(context, timeout('att-1', 30), cancelConfirmed('att-1', 33));
    expect(failed.status).toBe('FAILURE');

    const { payment: next, effects } = expectChanged(decide(failed, success('att-1', 50), context));

    expect([next.status, next.reason, next.statusSequence]).toEqual(['FAILURE', 'max-attempts-exhausted', 2]);
    expect(attempt(next, 'att-1').status).toBe('compensating');
    expect(effects).toEqual([{ type: 'compensate', attempt: attempt(next, 'att-1') }]);
  });
});

describe('decide: a compensation never confirmed (deadline, re-send, review)', () => {
  /** att-1 (gw-a, 30 s timeout) timed out, att-2 settled the deposit at 32 s, att-1 succeeded late at 40 s: compensating. */
  const compensating = (context: DecisionContext) => given(context, timeout('att-1', 30), success('att-2', 32), success('att-1', 40));

  test('When a late success is compensated, then the attempt waits for the confirmation until its gateway times out', () => {
    const { context } = harness();
    const payment = compensating(context);
    expect(attempt(payment, 'att-1')).toMatchObject({ status: 'compensating', compensationsSent: 1, deadline: at(70) });
    expect(openDeadlines(payment)).toEqual([{ attemptId: 'att-1', deadline: at(70) }]);
  });

  test('When the deadline passes unconfirmed, then the compensate command is sent again with a wait twice as long, and the status does not change', () => {
    const { context } = harness();

    const { payment: next, effects } = expectChanged(decide(compensating(context), timeout('att-1', 70), context));

    expect(attempt(next, 'att-1')).toMatchObject({ status: 'compensating', compensationsSent: 2, deadline: at(130) });
    expect(effects).toEqual([{ type: 'compensate', attempt: attempt(next, 'att-1') }]);
    expect([next.status, next.statusSequence, next.review]).toEqual(['SUCCESS', 2, undefined]);
    expect(openDeadlines(next)).toEqual([{ attemptId: 'att-1', deadline: at(130) }]);
  });

  test('When the timeout is read late, then the next wait starts when it is decided (`now`), not when it fired', () => {
    const { context } = harness();
    const late: Outcome = { ...timeout('att-1', 70), now: at(75) };
    const { payment: next } = expectChanged(decide(compensating(context), late, context));
    expect(attempt(next, 'att-1').deadline).toBe(at(135));
  });

  test('When every command goes unconfirmed, then the waits double up to 8 times the timeout and the fifth is the last', () => {
    const { context } = harness();
    let payment = compensating(context);
    const deadlines = [attempt(payment, 'att-1').deadline];
    for (let sent = 1; sent < 5; sent++) {
      const { payment: next, effects } = expectChanged(decide(payment, { kind: 'timeout', attemptId: 'att-1', at: attempt(payment, 'att-1').deadline }, context));
      expect(effects.map((effect) => effect.type)).toEqual(['compensate']);
      payment = next;
      deadlines.push(attempt(payment, 'att-1').deadline);
    }
    // 30 s, 60 s, 120 s, 240 s, then capped at 240 s.
    expect(deadlines).toEqual([at(70), at(130), at(250), at(490), at(730)]);
    expect(attempt(payment, 'att-1').compensationsSent).toBe(5);

    const { payment: flagged, effects } = expectChanged(decide(payment, timeout('att-1', 730), context));

    expect(flagged.review).toEqual({ reason: 'compensation-unconfirmed', attemptId: 'att-1', since: at(730) });
    expect(attempt(flagged, 'att-1')).toMatchObject({ status: 'compensating', compensationUnconfirmedAt: at(730) });
    expect(effects).toEqual([{ type: 'flag-review', attempt: attempt(flagged, 'att-1') }]);
    expect([flagged.status, flagged.statusSequence]).toEqual(['SUCCESS', 2]);
    expect(openDeadlines(flagged)).toEqual([]);
  });

  test('When the context allows two commands, then the second unconfirmed one flags the payment', () => {
    const context = { ...harness().context, maxCompensationTries: 2 };
    const resent = givenFrom(compensating(context), context, [timeout('att-1', 70)]);

    const { payment: flagged, effects } = expectChanged(decide(resent, timeout('att-1', 130), context));

    expect(flagged.review?.reason).toBe('compensation-unconfirmed');
    expect(effects.map((effect) => effect.type)).toEqual(['flag-review']);
  });

  test('When the timeout of an earlier command is delivered again, then nothing changes', () => {
    const { context } = harness();
    const resent = givenFrom(compensating(context), context, [timeout('att-1', 70)]);
    expect(decide(resent, timeout('att-1', 70), context)).toEqual({ changed: false, why: 'duplicate' });
  });

  test('When the compensation is confirmed after a re-send, then it is compensated and nobody waits any more', () => {
    const { context } = harness();
    const resent = givenFrom(compensating(context), context, [timeout('att-1', 70)]);

    const { payment: next, effects } = expectChanged(decide(resent, compensationConfirmed('att-1', 80), context));

    expect(attempt(next, 'att-1').status).toBe('compensated');
    expect(effects).toEqual([]);
    expect(openDeadlines(next)).toEqual([]);
  });

  test('When the confirmation comes after the payment was flagged, then the attempt is compensated and the review is cleared', () => {
    const context = { ...harness().context, maxCompensationTries: 1 };
    const flagged = givenFrom(compensating(context), context, [timeout('att-1', 70)]);
    expect(flagged.review?.reason).toBe('compensation-unconfirmed');

    const { payment: next } = expectChanged(decide(flagged, compensationConfirmed('att-1', 90), context));

    expect(attempt(next, 'att-1').status).toBe('compensated');
    expect(next.review).toBeUndefined();
    expect(next.status).toBe('SUCCESS');
  });

  test('When a timeout arrives after the payment was flagged, then nothing changes', () => {
    const context = { ...harness().context, maxCompensationTries: 1 };
    const flagged = givenFrom(compensating(context), context, [timeout('att-1', 70)]);
    expect(decide(flagged, timeout('att-1', 200), context)).toEqual({ changed: false, why: 'after-completion' });
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

  test('When a withdrawal is cancelled, flagged, confirmed, failed over and compensated, then the stored payment given in is never modified', () => {
    const { context } = withdrawalHarness({ maxAttempts: 2 });
    const steps: Outcome[] = [
      timeout('att-1', 30),
      timeout('att-1', 60),
      cancelConfirmed('att-1', 61),
      success('att-2', 65),
      success('att-1', 70),
      compensationConfirmed('att-1', 71),
    ];
    let payment = deepFreeze(givenWithdrawal(context));
    for (const outcome of steps) {
      const snapshot = JSON.stringify(payment);
      const decision = expectChanged(decide(payment, outcome, context));
      expect(JSON.stringify(payment)).toBe(snapshot);
      payment = deepFreeze(decision.payment);
    }
    expect(statuses(payment)).toEqual([
      ['att-1', 'gw-a', 'compensated'],
      ['att-2', 'gw-b', 'succeeded'],
    ]);
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

  test('When attempts are cancelling, then those still waiting for the confirmation are listed with their cancel deadline, those flagged for review are not', () => {
    const base = givenNewPayment('withdrawal').payment;
    const first = base.attempts[0];
    if (!first) throw new Error('no first attempt');
    const payment: Payment = {
      ...base,
      attempts: [
        { ...first, id: 'att-1', status: 'cancelling', deadline: at(60) },
        { ...first, id: 'att-2', status: 'cancelling', deadline: at(61), cancelUnconfirmedAt: at(61) },
        { ...first, id: 'att-3', status: 'compensating', deadline: at(62) },
        { ...first, id: 'att-4', status: 'in-flight', deadline: at(63) },
        { ...first, id: 'att-5', status: 'compensating', deadline: at(64), compensationUnconfirmedAt: at(64) },
      ],
    };
    // A compensating attempt waits for the void/refund confirmation until it is flagged too.
    expect(openDeadlines(payment)).toEqual([
      { attemptId: 'att-1', deadline: at(60) },
      { attemptId: 'att-3', deadline: at(62) },
      { attemptId: 'att-4', deadline: at(63) },
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
  cancelConfirmed: (attemptId: string): Step => ({
    label: `cancel-confirmed(${attemptId})`,
    outcome: (when) => ({ kind: 'cancel-confirmed', attemptId, at: when }),
  }),
  compensationConfirmed: (attemptId: string): Step => ({
    label: `compensation-confirmed(${attemptId})`,
    outcome: (when) => ({ kind: 'compensation-confirmed', attemptId, at: when }),
  }),
};

/**
 * What an order ended in (its status; an attempt compensating or compensated,
 * or cancelled), and what happened on its way (a late success winning, a
 * review flagged or cleared, a failover after a confirmed cancel, a
 * compensation confirmed, a timeout redelivered before its cancel deadline
 * ignored), counted so a test can see the walk reached them.
 */
type Ending =
  | 'SUCCESS'
  | 'FAILURE'
  | 'PENDING'
  | 'compensated'
  | 'cancelled'
  | 'late-win'
  | 'review'
  | 'review-cleared'
  | 'failover-after-cancel'
  | 'compensation-confirmed'
  | 'early-timeout-ignored';

interface Exploration {
  orders: number;
  endings: Record<Ending, number>;
  violations: string[];
}

/** How the orders of one exploration start and decide. */
interface Variant {
  start: Payment;
  timeoutPolicyOf: DecisionContext['timeoutPolicyOf'];
  timeoutMsOf: DecisionContext['timeoutMsOf'];
}

const depositVariant = (): Variant => ({
  start: givenNewPayment().payment,
  timeoutPolicyOf: () => 'failover',
  timeoutMsOf: (gatewayId) => TIMEOUT_MS[gatewayId] ?? 5_000,
});

/**
 * A withdrawal whose gateways all time out after 5 s. Outcomes come 10 s
 * apart, so every timeout in a walk fires after the deadline it ends (the
 * attempt's, or its cancel's): a walk never relies on a timeout earlier than
 * its deadline being acted on.
 */
const withdrawalVariant = (timeoutPolicyOf: DecisionContext['timeoutPolicyOf'] = byPaymentType, timeoutMs = 5_000): Variant => ({
  start: givenNewPayment('withdrawal', timeoutMs).payment,
  timeoutPolicyOf,
  timeoutMsOf: () => timeoutMs,
});

/** A router over gw-a, gw-b, gw-c whose attempt ids follow the payment (att-n for the n-th), so states can be shared between orders. */
function propertyContext(payment: Payment, maxAttempts: number, variant: Variant): DecisionContext {
  return {
    maxAttempts,
    route: (_payment, tried) => routing(['gw-a', 'gw-b', 'gw-c'].find((gatewayId) => !tried.has(gatewayId)) ?? null, tried),
    newAttemptId: () => `att-${payment.attempts.length + 1}`,
    timeoutMsOf: variant.timeoutMsOf,
    timeoutPolicyOf: variant.timeoutPolicyOf,
  };
}

const same = (left: unknown, right: unknown) => JSON.stringify(left) === JSON.stringify(right);
const isOpenStatus = (status: AttemptStatus | undefined) => status === 'in-flight' || status === 'cancelling';
const describeAttempts = (attempts: readonly Attempt[]) => attempts.map((candidate) => `${candidate.id}:${candidate.status}`).join(', ');

/** The invariants one decision must keep; returns what it broke. */
function brokenInvariants(before: Payment, outcome: Outcome, decision: Decision, context: DecisionContext): string[] {
  const broken: string[] = [];
  const priorStatus = new Map(before.attempts.map((candidate) => [candidate.id, candidate.status]));
  const priorAttempt = before.attempts.find((candidate) => candidate.id === outcome.attemptId);
  const prior = priorAttempt?.status;
  const pendingBefore = !isTerminal(before.status);

  if (!decision.changed) {
    if (prior === undefined && decision.why !== 'unknown-attempt') broken.push(`unknown attempt answered ${decision.why}`);
    if (prior !== undefined && outcome.kind === 'success' && decision.why !== 'duplicate') broken.push(`a success was ignored as ${decision.why}`);
    if (prior === 'in-flight' && (outcome.kind === 'success' || outcome.kind === 'failure' || outcome.kind === 'timeout')) {
      broken.push('an outcome for an in-flight attempt changed nothing');
    }
    if (prior === 'cancelling' && (outcome.kind === 'success' || outcome.kind === 'failure' || outcome.kind === 'cancel-confirmed')) {
      broken.push(`${outcome.kind} for a cancelling attempt changed nothing`);
    }
    if (prior === 'cancelling' && outcome.kind === 'timeout' && pendingBefore && priorAttempt !== undefined && priorAttempt.cancelUnconfirmedAt === undefined) {
      const early = Date.parse(outcome.at) < Date.parse(priorAttempt.deadline);
      if (!early) broken.push('the cancel deadline passed and the payment was not flagged for review');
      else if (decision.why !== 'duplicate') broken.push(`a timeout before the cancel deadline was answered ${decision.why}, not duplicate`);
    }
    if (prior === 'compensating' && outcome.kind === 'compensation-confirmed') broken.push('a compensation confirmation was ignored');
    return broken;
  }
  if (prior === undefined) broken.push('an unknown attempt changed the payment');
  const { payment: after, effects } = decision;
  const statusChanged = after.status !== before.status;

  // Terminal states and status events.
  if (isTerminal(before.status) && (statusChanged || after.reason !== before.reason)) {
    broken.push(`terminal ${before.status}/${before.reason} became ${after.status}/${after.reason}`);
  }
  if (after.statusSequence - before.statusSequence !== (statusChanged ? 1 : 0)) {
    broken.push(`statusSequence ${before.statusSequence} → ${after.statusSequence} with status ${before.status} → ${after.status}`);
  }
  const publishes = effects.filter((effect) => effect.type === 'publish-status').length;
  if (publishes !== (statusChanged ? 1 : 0)) broken.push(`${publishes} publish-status effects for status ${before.status} → ${after.status}`);

  // Attempts: kept in order; settled, compensated and closed ones never move back.
  if (!same(after.attempts.slice(0, before.attempts.length).map((candidate) => candidate.id), [...priorStatus.keys()])) {
    broken.push('attempts were removed or reordered');
  }
  for (const candidate of after.attempts) {
    const was = priorStatus.get(candidate.id);
    if (was === undefined || was === candidate.status) continue;
    const confirmedCompensation = was === 'compensating' && candidate.status === 'compensated' && outcome.kind === 'compensation-confirmed' && outcome.attemptId === candidate.id;
    if ((was === 'succeeded' || was === 'compensating' || was === 'compensated') && !confirmedCompensation) broken.push(`${candidate.id} moved from ${was} to ${candidate.status}`);
    if (!isOpenStatus(was) && isOpenStatus(candidate.status)) broken.push(`${candidate.id} was reopened from ${was} to ${candidate.status}`);
    if (candidate.status === 'compensated' && !confirmedCompensation) broken.push(`${candidate.id} became compensated without its confirmation`);
    if (candidate.id !== outcome.attemptId && !(isOpenStatus(was) && candidate.status === 'cancelled')) {
      broken.push(`${candidate.id}, not named by the outcome, moved from ${was} to ${candidate.status}`);
    }
  }
  if (outcome.kind === 'success') {
    const now = after.attempts.find((candidate) => candidate.id === outcome.attemptId)?.status;
    if (now !== 'succeeded' && now !== 'compensating') broken.push(`a success left ${outcome.attemptId} ${now}`);
    if (now === 'succeeded' && (isTerminal(before.status) || after.status !== 'SUCCESS')) broken.push('a success that could not settle was marked succeeded');
  }

  const succeeded = after.attempts.filter((candidate) => candidate.status === 'succeeded').length;
  if (succeeded > 1) broken.push(`${succeeded} attempts succeeded`);
  if ((after.status === 'SUCCESS') !== (succeeded === 1)) broken.push(`status ${after.status} with ${succeeded} succeeded attempts`);

  // At most one attempt may move money at a time: in flight, or timed out and not yet confirmed cancelled.
  const open = after.attempts.filter((candidate) => isOpenStatus(candidate.status));
  if (open.length > (isTerminal(after.status) ? 0 : 1)) broken.push(`${open.length} open attempts (${describeAttempts(open)}) while ${after.status}`);
  const added = after.attempts.slice(before.attempts.length);
  const stillCancelling = after.attempts.filter((candidate) => candidate.status === 'cancelling' && !added.includes(candidate));
  if (added.length > 0 && stillCancelling.length > 0) broken.push(`dispatched ${added.map((candidate) => candidate.id).join(', ')} while ${describeAttempts(stillCancelling)}`);
  const waitedOn = after.attempts.filter(
    (candidate) =>
      (isOpenStatus(candidate.status) && candidate.cancelUnconfirmedAt === undefined) ||
      (candidate.status === 'compensating' && candidate.compensationUnconfirmedAt === undefined),
  );
  if (!same(openDeadlines(after), waitedOn.map((candidate) => ({ attemptId: candidate.id, deadline: candidate.deadline })))) {
    broken.push('openDeadlines does not list exactly the open and compensating attempts not flagged for review');
  }
  if (
    outcome.kind === 'timeout' &&
    prior === 'in-flight' &&
    pendingBefore &&
    priorAttempt &&
    context.timeoutPolicyOf(priorAttempt.gatewayId, before.type) === 'cancel-first' &&
    (added.length > 0 || after.attempts.find((candidate) => candidate.id === outcome.attemptId)?.status !== 'cancelling')
  ) {
    broken.push('a cancel-first timeout did not wait for the cancel');
  }

  // Effects match what changed, and carry the attempts as stored.
  const movedTo = (status: AttemptStatus) => after.attempts.filter((candidate) => candidate.status === status && priorStatus.get(candidate.id) !== status);
  const effectAttempts = (type: 'dispatch' | 'cancel' | 'compensate' | 'flag-review') =>
    effects.flatMap((effect) => (effect.type === type ? [effect.attempt] : []));
  if (!same(effectAttempts('dispatch'), added) || added.some((candidate) => candidate.status !== 'in-flight')) {
    broken.push('dispatch effects do not match the new in-flight attempts');
  }
  // A cancel goes out when an attempt starts cancelling, or is cancelled because another settled; a confirmed cancel sends nothing.
  const cancelsDue = after.attempts.filter(
    (candidate) =>
      movedTo('cancelling').includes(candidate) ||
      (movedTo('cancelled').includes(candidate) && !(outcome.kind === 'cancel-confirmed' && outcome.attemptId === candidate.id)),
  );
  if (!same(effectAttempts('cancel'), cancelsDue)) broken.push('cancel effects do not match the attempts asked to cancel');
  for (const cancelled of effectAttempts('cancel')) {
    const stored = after.attempts.find((candidate) => candidate.id === cancelled.id);
    if (!stored || (stored.status !== 'cancelling' && stored.status !== 'cancelled') || !same(stored, cancelled)) {
      broken.push(`a cancel was sent for ${cancelled.id}, which is ${stored?.status ?? 'unknown'}`);
    }
  }
  // A compensate goes out when an attempt starts compensating, and again when its confirmation deadline passed.
  const resent = after.attempts.filter(
    (candidate) =>
      outcome.kind === 'timeout' &&
      candidate.id === outcome.attemptId &&
      prior === 'compensating' &&
      (candidate.compensationsSent ?? 0) > (priorAttempt?.compensationsSent ?? 0),
  );
  if (!same(effectAttempts('compensate'), [...movedTo('compensating'), ...resent])) broken.push('compensate effects do not match the attempts compensated');

  // Review: a withdrawal (or payment) whose cancel was never confirmed, only while it is pending; or a compensation never confirmed.
  if (after.review?.reason === 'compensation-unconfirmed') {
    const flagged = after.attempts.find((candidate) => candidate.id === after.review?.attemptId);
    if (flagged?.status !== 'compensating' || flagged.compensationUnconfirmedAt !== after.review.since) {
      broken.push(`the compensation review names ${after.review.attemptId}, which is ${flagged?.status} (unconfirmed since ${flagged?.compensationUnconfirmedAt})`);
    }
  } else if (after.review) {
    const flagged = after.attempts.find((candidate) => candidate.id === after.review?.attemptId);
    if (after.status !== 'PENDING') broken.push(`a payment flagged for review is ${after.status}`);
    if (flagged?.status !== 'cancelling' || flagged.cancelUnconfirmedAt !== after.review.since) {
      broken.push(`the review names ${after.review.attemptId}, which is ${flagged?.status} (unconfirmed since ${flagged?.cancelUnconfirmedAt})`);
    }
  }
  const newlyFlagged = after.review !== undefined && before.review === undefined;
  if (newlyFlagged && !(outcome.kind === 'timeout' && (prior === 'cancelling' || prior === 'compensating') && after.review?.attemptId === outcome.attemptId)) {
    broken.push(`a ${outcome.kind} flagged the payment for review`);
  }
  if (newlyFlagged && priorAttempt && Date.parse(outcome.at) < Date.parse(priorAttempt.deadline)) {
    broken.push(`a timeout at ${outcome.at} flagged the payment for review before the cancel deadline ${priorAttempt.deadline}`);
  }
  const flaggedAttempts = after.attempts.filter((candidate) => candidate.id === after.review?.attemptId);
  if (!same(effectAttempts('flag-review'), newlyFlagged ? flaggedAttempts : [])) broken.push('flag-review effects do not match the review flagged');
  if (before.review && after.review && (outcome.kind === 'success' || outcome.kind === 'cancel-confirmed')) broken.push(`a ${outcome.kind} left the review in place`);
  return broken;
}

/**
 * Applies every order of `steps` to a new payment (outcome i at 10·(i+1) s)
 * and checks every decision: a deposit whose timeouts fail over unless a
 * variant says otherwise.
 */
function exploreAllOrders(steps: readonly Step[], maxAttempts: number, variant: Variant = depositVariant()): Exploration {
  const result: Exploration = {
    orders: 0,
    endings: {
      SUCCESS: 0,
      FAILURE: 0,
      PENDING: 0,
      compensated: 0,
      cancelled: 0,
      'late-win': 0,
      review: 0,
      'review-cleared': 0,
      'failover-after-cancel': 0,
      'compensation-confirmed': 0,
      'early-timeout-ignored': 0,
    },
    violations: [],
  };
  const walk = (payment: Payment, remaining: readonly Step[], path: string[], marks: ReadonlySet<Ending>) => {
    if (remaining.length === 0) {
      result.orders++;
      result.endings[payment.status]++;
      if (payment.attempts.some((candidate) => candidate.status === 'compensating' || candidate.status === 'compensated')) result.endings.compensated++;
      if (payment.attempts.some((candidate) => candidate.status === 'cancelled')) result.endings.cancelled++;
      for (const mark of marks) result.endings[mark]++;
      return;
    }
    remaining.forEach((next, index) => {
      const outcome = next.outcome(at(10 * (path.length + 1)));
      const context = propertyContext(payment, maxAttempts, variant);
      const decision = decide(payment, outcome, context);
      const here = [...path, next.label];
      for (const broken of brokenInvariants(payment, outcome, decision, context)) {
        if (result.violations.length < 20) result.violations.push(`${here.join(' → ')}: ${broken}`);
      }
      const rest = [...remaining.slice(0, index), ...remaining.slice(index + 1)];
      if (!decision.changed) {
        const early = outcome.kind === 'timeout' && decision.why === 'duplicate' && payment.attempts.find((candidate) => candidate.id === outcome.attemptId)?.status === 'cancelling';
        walk(payment, rest, here, early ? new Set([...marks, 'early-timeout-ignored']) : marks);
        return;
      }
      const wasLate = outcome.kind === 'success' && !isTerminal(payment.status) && payment.attempts.find((candidate) => candidate.id === outcome.attemptId)?.status !== 'in-flight';
      const newMarks: Ending[] = [];
      if (wasLate) newMarks.push('late-win');
      if (!payment.review && decision.payment.review) newMarks.push('review');
      if (payment.review && !decision.payment.review) newMarks.push('review-cleared');
      if (outcome.kind === 'cancel-confirmed' && decision.effects.some((effect) => effect.type === 'dispatch')) newMarks.push('failover-after-cancel');
      if (outcome.kind === 'compensation-confirmed') newMarks.push('compensation-confirmed');
      // Frozen, because sibling orders share this state: a decide that mutated its input would throw here.
      walk(deepFreeze(decision.payment), rest, here, newMarks.length === 0 ? marks : new Set([...marks, ...newMarks]));
    });
  };
  walk(deepFreeze(variant.start), steps, [], new Set());
  return result;
}

/** Which of the `wanted` endings the walk never reached (none, when it covered them all). */
const reached = (endings: Record<Ending, number>, wanted: readonly Ending[]) => wanted.filter((ending) => endings[ending] === 0);

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

  test("When a withdrawal's timeouts, second timeouts (review), cancel confirmations and late successes of two attempts arrive in any order, then the invariants hold after every step", () => {
    const { orders, endings, violations } = exploreAllOrders(
      [
        step.timeout('att-1'),
        step.timeout('att-1'),
        step.cancelConfirmed('att-1'),
        step.success('att-1'),
        step.timeout('att-2'),
        step.timeout('att-2'),
        step.cancelConfirmed('att-2'),
        step.success('att-2'),
      ],
      2,
      withdrawalVariant(),
    );

    expect(violations).toEqual([]);
    expect(orders).toBe(40_320);
    expect(reached(endings, ['SUCCESS', 'FAILURE', 'compensated', 'cancelled', 'late-win', 'review', 'review-cleared', 'failover-after-cancel'])).toEqual([]);
  });

  test('When cancel confirmations race failures, late successes and compensation confirmations of a withdrawal in any order, then the invariants hold after every step', () => {
    const { orders, endings, violations } = exploreAllOrders(
      [
        step.timeout('att-1'),
        step.cancelConfirmed('att-1'),
        step.failure('att-1', 'gateway_error'),
        step.success('att-1'),
        step.compensationConfirmed('att-1'),
        step.timeout('att-2'),
        step.timeout('att-2'),
        step.failure('att-2', 'insufficient_funds'),
      ],
      3,
      withdrawalVariant(),
    );

    expect(violations).toEqual([]);
    expect(orders).toBe(40_320);
    expect(
      reached(endings, ['SUCCESS', 'FAILURE', 'compensated', 'cancelled', 'late-win', 'review', 'review-cleared', 'failover-after-cancel', 'compensation-confirmed']),
    ).toEqual([]);
  });

  test('When timeouts of a withdrawal are delivered again, some before and some after the cancel deadline, in any order, then the invariants hold after every step', () => {
    // 15 s gateway timeouts with outcomes 10 s apart: a timeout 10 s after the one that started the cancel comes before
    // the cancel deadline (a redelivery, ignored), one 20 s or more after it comes at or past it (the review).
    const { orders, endings, violations } = exploreAllOrders(
      [
        step.timeout('att-1'),
        step.timeout('att-1'),
        step.timeout('att-1'),
        step.cancelConfirmed('att-1'),
        step.success('att-1'),
        step.timeout('att-2'),
        step.timeout('att-2'),
        step.cancelConfirmed('att-2'),
      ],
      2,
      withdrawalVariant(byPaymentType, 15_000),
    );

    expect(violations).toEqual([]);
    expect(orders).toBe(40_320);
    expect(reached(endings, ['SUCCESS', 'FAILURE', 'compensated', 'cancelled', 'late-win', 'review', 'review-cleared', 'failover-after-cancel', 'early-timeout-ignored'])).toEqual([]);
  });

  test('When the gateways of a withdrawal differ in timeout policy (gw-b fails over at once), then the invariants hold after every step of every order', () => {
    const gwBFailsOver: DecisionContext['timeoutPolicyOf'] = (gatewayId, type) => (gatewayId === 'gw-b' ? 'failover' : byPaymentType(gatewayId, type));
    const { orders, endings, violations } = exploreAllOrders(
      [
        step.timeout('att-1'),
        step.timeout('att-1'),
        step.cancelConfirmed('att-1'),
        step.timeout('att-2'),
        step.success('att-2'),
        step.timeout('att-3'),
        step.cancelConfirmed('att-3'),
        step.success('att-1'),
      ],
      3,
      withdrawalVariant(gwBFailsOver),
    );

    expect(violations).toEqual([]);
    expect(orders).toBe(40_320);
    expect(reached(endings, ['SUCCESS', 'FAILURE', 'compensated', 'cancelled', 'late-win', 'review', 'review-cleared', 'failover-after-cancel'])).toEqual([]);
  });
});
