import pino from 'pino';
import { Registry } from 'prom-client';
import type { Logger } from '../../runtime/logger';
import { topicNames } from '../../topics/names';
import { attemptCommand, attemptEvent, attemptRequested, paymentAttemptsChanged, paymentStatusChanged, type AttemptEvent } from '../../topics/schemas';
import { createOrchestratorMetrics, type OrchestratorMetrics } from '../metrics';
import type { RoutingDecision } from '../routing/select';
import { createPayment, decide, type Attempt, type AttemptStatus, type DecisionContext, type Effect, type Outcome, type Payment } from '../state/payment';
import type { PaymentStore, StoredPayment } from '../state/store';
import { attemptChanges, createEffects, withAttemptEvents, type Effects } from './effects';

const T0 = Date.parse('2024-05-01T12:00:00.000Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();
/** The clock of the instance building the messages: later than anything in the payment. */
const NOW = new Date(T0 + 90_000);
const topics = topicNames('t.');

type Excluded = RoutingDecision['excluded'];

function routing(chosen: string, excluded: Excluded = []): RoutingDecision {
  return { chosen, candidates: [{ gatewayId: chosen, weight: 1 }], excluded, rulesVersion: 'rules@7' };
}

/** Attempt n (att-n) to `gatewayId`, dispatched 10·(n−1) s in, with a 5 s deadline. */
function attemptTo(number: number, gatewayId: string, status: AttemptStatus = 'in-flight', excluded: Excluded = []): Attempt {
  return {
    id: `att-${number}`,
    number,
    gatewayId,
    status,
    dispatchedAt: at(10 * (number - 1)),
    deadline: at(10 * (number - 1) + 5),
    routing: routing(gatewayId, excluded),
  };
}

/** A pending deposit of an amount no float holds exactly, whose first attempt att-1 went to gw-a at T0. */
function givenPayment(overrides: Partial<Payment> = {}): Payment {
  return {
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
    attempts: [attemptTo(1, 'gw-a')],
    ...overrides,
  };
}

interface Harness {
  effects: Effects;
  metrics: OrchestratorMetrics;
  /** Every log line, parsed. */
  logs: Array<Record<string, unknown>>;
}

/** Effects over a fresh registry, so every count starts at zero; logs are collected at info and above. */
function harness(): Harness {
  const logs: Array<Record<string, unknown>> = [];
  // The same custom levels as runtime/logger, writing JSON lines into `logs`.
  const logger: Logger = pino({ level: 'info', customLevels: { critical: 55 } }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) });
  const metrics = createOrchestratorMetrics(new Registry());
  return { effects: createEffects({ topics, logger, metrics, clock: () => NOW }), metrics, logs };
}

/** A counter's (or histogram's) values as flat rows: labels plus value (and series name for a histogram). */
async function rows(metric: { get(): Promise<{ values: Array<{ labels: object; value: number; metricName?: string }> }> }) {
  return (await metric.get()).values.map(({ labels, value, metricName }) => ({ ...labels, value, ...(metricName === undefined ? {} : { metricName }) }));
}

/** Every counter and histogram of the orchestrator that effects may touch, each as its rows. */
async function everyCount(metrics: OrchestratorMetrics) {
  return {
    attemptsDispatched: await rows(metrics.attemptsDispatched),
    rateLimited: await rows(metrics.rateLimited),
    paymentsCompleted: await rows(metrics.paymentsCompleted),
    paymentDuration: (await rows(metrics.paymentDuration)).filter((row) => row.metricName === 'payment_duration_seconds_count'),
    compensations: await rows(metrics.compensations),
  };
}

const NOTHING_COUNTED = { attemptsDispatched: [], rateLimited: [], paymentsCompleted: [], paymentDuration: [], compensations: [] };

const levelOf = (name: 'info' | 'warn' | 'critical') => ({ info: 30, warn: 40, critical: 55 })[name];

// ---------------------------------------------------------------------------

describe('effects.messagesFor', () => {
  test("When an attempt is dispatched, then one attempt.requested goes to that gateway's requests topic, keyed by payment id, with the payment's details and the attempt's deadline", () => {
    const { effects } = harness();
    const payment = givenPayment();
    const attempt = attemptTo(1, 'gw-a');

    const messages = effects.messagesFor(payment, [{ type: 'dispatch', attempt }]);

    expect(messages).toEqual([
      {
        topic: 't.gateway.gw-a.requests',
        key: 'pay-1',
        value: {
          eventId: expect.any(String),
          type: 'attempt.requested',
          occurredAt: NOW.toISOString(),
          schemaVersion: 1,
          paymentId: 'pay-1',
          attemptId: 'att-1',
          gatewayId: 'gw-a',
          paymentType: 'deposit',
          accountId: 'acc-1',
          amount: '9007199254740993',
          currency: 'EUR',
          region: 'EU',
          deadline: at(5),
        },
      },
    ]);
    // The contract's own schema accepts it, with nothing stripped.
    expect(attemptRequested.strict().parse(messages[0]?.value)).toEqual(messages[0]?.value);
  });

  test('When a failover attempt is dispatched, then the request goes to the new gateway, naming that attempt', () => {
    const { effects } = harness();
    const failover = attemptTo(2, 'gw-b');
    const payment = givenPayment({ attempts: [attemptTo(1, 'gw-a', 'timed-out'), failover] });

    const [message] = effects.messagesFor(payment, [{ type: 'dispatch', attempt: failover }]);

    expect(message).toMatchObject({ topic: 't.gateway.gw-b.requests', key: 'pay-1', value: { attemptId: 'att-2', gatewayId: 'gw-b', deadline: at(15) } });
  });

  test('When a pending status is published, then one payment.status goes to the status topic, keyed by payment id, naming the latest attempt and no reason', () => {
    const { effects } = harness();
    const payment = givenPayment({ attempts: [attemptTo(1, 'gw-a', 'timed-out'), attemptTo(2, 'gw-b')] });

    const messages = effects.messagesFor(payment, [{ type: 'publish-status' }]);

    expect(messages).toEqual([
      {
        topic: 't.payment.status',
        key: 'pay-1',
        value: {
          eventId: expect.any(String),
          type: 'payment.status',
          occurredAt: NOW.toISOString(),
          schemaVersion: 1,
          paymentId: 'pay-1',
          status: 'PENDING',
          sequence: 1,
          paymentType: 'deposit',
          accountId: 'acc-1',
          amount: '9007199254740993',
          currency: 'EUR',
          region: 'EU',
          attemptId: 'att-2',
          gatewayId: 'gw-b',
        },
      },
    ]);
    expect(messages[0]?.value).not.toHaveProperty('reason');
    expect(paymentStatusChanged.strict().parse(messages[0]?.value)).toEqual(messages[0]?.value);
  });

  test('When a success is published, then it names the attempt that settled the payment, even when a later attempt exists', () => {
    const { effects } = harness();
    // att-1 timed out, att-2 went out, then att-1 succeeded late and att-2 was cancelled.
    const payment = givenPayment({ status: 'SUCCESS', statusSequence: 2, attempts: [attemptTo(1, 'gw-a', 'succeeded'), attemptTo(2, 'gw-b', 'cancelled')] });

    const [message] = effects.messagesFor(payment, [{ type: 'publish-status' }]);

    expect(message?.value).toMatchObject({ status: 'SUCCESS', sequence: 2, attemptId: 'att-1', gatewayId: 'gw-a' });
    expect(message?.value).not.toHaveProperty('reason');
  });

  test('When a failure is published, then it carries the reason and names the latest attempt', () => {
    const { effects } = harness();
    const payment = givenPayment({
      status: 'FAILURE',
      reason: 'insufficient_funds',
      statusSequence: 2,
      attempts: [attemptTo(1, 'gw-a', 'timed-out'), attemptTo(2, 'gw-b', 'failed')],
    });

    const [message] = effects.messagesFor(payment, [{ type: 'publish-status' }]);

    expect(message).toMatchObject({ topic: 't.payment.status', key: 'pay-1' });
    expect(message?.value).toMatchObject({ status: 'FAILURE', sequence: 2, reason: 'insufficient_funds', attemptId: 'att-2', gatewayId: 'gw-b' });
    expect(paymentStatusChanged.strict().parse(message?.value)).toEqual(message?.value);
  });

  test('When a payment with no attempt is published, then the event names no attempt and no gateway', () => {
    const { effects } = harness();
    const [message] = effects.messagesFor(givenPayment({ attempts: [] }), [{ type: 'publish-status' }]);
    expect(message?.value).not.toHaveProperty('attemptId');
    expect(message?.value).not.toHaveProperty('gatewayId');
    expect(paymentStatusChanged.strict().parse(message?.value)).toEqual(message?.value);
  });

  test.each<['cancel' | 'compensate', AttemptStatus]>([
    ['cancel', 'cancelling'],
    ['compensate', 'compensating'],
  ])("When a %s is sent, then one attempt.command goes to that attempt's gateway, keyed by payment id, with a reason", (command, status) => {
    const { effects } = harness();
    const target = attemptTo(1, 'gw-a', status);
    const payment = givenPayment({ attempts: [target, attemptTo(2, 'gw-b')] });

    const messages = effects.messagesFor(payment, [{ type: command, attempt: target }]);

    expect(messages).toEqual([
      {
        topic: 't.gateway.gw-a.requests',
        key: 'pay-1',
        value: {
          eventId: expect.any(String),
          type: 'attempt.command',
          occurredAt: NOW.toISOString(),
          schemaVersion: 1,
          command,
          paymentId: 'pay-1',
          attemptId: 'att-1',
          gatewayId: 'gw-a',
          reason: expect.stringMatching(/\S/),
        },
      },
    ]);
    expect(attemptCommand.strict().parse(messages[0]?.value)).toEqual(messages[0]?.value);
  });

  test('When a withdrawal is flagged for review, then no message is sent (a person looks at it; nothing goes to the gateway)', () => {
    const { effects } = harness();
    const flagged = { ...attemptTo(1, 'gw-a', 'cancelling'), cancelUnconfirmedAt: at(10) };
    const payment = givenPayment({ type: 'withdrawal', attempts: [flagged], review: { reason: 'cancel-unconfirmed', attemptId: 'att-1', since: at(10) } });
    expect(effects.messagesFor(payment, [{ type: 'flag-review', attempt: flagged }])).toEqual([]);
  });

  test('When several effects are decided together, then their messages come in the same order, each with its own event id; no effect, no message', () => {
    const { effects } = harness();
    const cancelled = attemptTo(2, 'gw-b', 'cancelled');
    const payment = givenPayment({ status: 'SUCCESS', statusSequence: 2, attempts: [attemptTo(1, 'gw-a', 'succeeded'), cancelled] });
    const decided: Effect[] = [{ type: 'publish-status' }, { type: 'flag-review', attempt: cancelled }, { type: 'cancel', attempt: cancelled }];

    const messages = effects.messagesFor(payment, decided);

    expect(messages).toEqual([
      { topic: 't.payment.status', key: 'pay-1', value: expect.objectContaining({ type: 'payment.status', status: 'SUCCESS' }) },
      { topic: 't.gateway.gw-b.requests', key: 'pay-1', value: expect.objectContaining({ type: 'attempt.command', command: 'cancel', attemptId: 'att-2' }) },
    ]);
    const [status, cancel] = messages;
    const eventIds = [paymentStatusChanged.parse(status?.value).eventId, attemptCommand.parse(cancel?.value).eventId];
    expect(new Set(eventIds).size).toBe(2);
    expect(effects.messagesFor(payment, [])).toEqual([]);
  });

  test('When messages are built, then nothing is counted or logged yet (the change may still lose its compare-and-set)', async () => {
    const { effects, metrics, logs } = harness();
    const excluded: Excluded = [{ gatewayId: 'gw-b', reason: 'rate-limited' }];
    const dispatched = attemptTo(2, 'gw-c', 'in-flight', excluded);
    const payment = givenPayment({ status: 'FAILURE', reason: 'declined', statusSequence: 2, attempts: [attemptTo(1, 'gw-a', 'compensating'), dispatched] });

    effects.messagesFor(payment, [
      { type: 'dispatch', attempt: dispatched },
      { type: 'publish-status' },
      { type: 'cancel', attempt: dispatched },
      { type: 'compensate', attempt: attemptTo(1, 'gw-a', 'compensating') },
      { type: 'flag-review', attempt: dispatched },
    ]);

    expect(await everyCount(metrics)).toEqual(NOTHING_COUNTED);
    expect(logs).toEqual([]);
  });
});

describe('effects.observe', () => {
  test("When a first attempt is dispatched, then it is counted for its gateway as a first attempt, nothing is counted as rate-limited, and it gets no line of its own (the 'payment accepted' line names it)", async () => {
    const { effects, metrics, logs } = harness();
    const attempt = attemptTo(1, 'gw-a');

    effects.observe(givenPayment(), [{ type: 'dispatch', attempt }]);

    expect(await everyCount(metrics)).toEqual({ ...NOTHING_COUNTED, attemptsDispatched: [{ gateway: 'gw-a', attempt: 'first', value: 1 }] });
    expect(logs).toEqual([]);
  });

  test('When a failover attempt is dispatched, then it is logged with its own attempt id, gateway and number', () => {
    const { effects, logs } = harness();
    const next = attemptTo(2, 'gw-b');

    effects.observe(givenPayment({ attempts: [attemptTo(1, 'gw-a', 'timed-out'), next] }), [{ type: 'dispatch', attempt: next }]);

    expect(logs).toEqual([expect.objectContaining({ level: levelOf('info'), msg: 'attempt dispatched', paymentId: 'pay-1', attemptId: next.id, gatewayId: 'gw-b', attempt: 2 })]);
  });

  test('When an attempt is dispatched past rate-limited gateways, then gateway_rate_limited_total counts each of them once, and no gateway left out for another reason', async () => {
    const { effects, metrics } = harness();
    const attempt = attemptTo(2, 'gw-c', 'in-flight', [
      { gatewayId: 'gw-a', reason: 'already-tried' },
      { gatewayId: 'gw-b', reason: 'rate-limited' },
      { gatewayId: 'gw-d', reason: 'circuit-open' },
      { gatewayId: 'gw-e', reason: 'rate-limited' },
      { gatewayId: 'gw-f', reason: 'zero-weight' },
    ]);
    const payment = givenPayment({ attempts: [attemptTo(1, 'gw-a', 'timed-out'), attempt] });

    effects.observe(payment, [{ type: 'dispatch', attempt }]);

    const counts = await everyCount(metrics);
    expect(counts.rateLimited).toEqual([
      { gateway: 'gw-b', value: 1 },
      { gateway: 'gw-e', value: 1 },
    ]);
    expect(counts.attemptsDispatched).toEqual([{ gateway: 'gw-c', attempt: 'failover', value: 1 }]);
  });

  test('When several stored dispatches skipped the same rate-limited gateway, then its count adds up, per gateway', async () => {
    const { effects, metrics } = harness();
    const skippingB = attemptTo(1, 'gw-a', 'in-flight', [{ gatewayId: 'gw-b', reason: 'rate-limited' }]);
    const skippingBAndC = attemptTo(1, 'gw-a', 'in-flight', [
      { gatewayId: 'gw-b', reason: 'rate-limited' },
      { gatewayId: 'gw-c', reason: 'rate-limited' },
    ]);

    effects.observe(givenPayment({ id: 'pay-1', attempts: [skippingB] }), [{ type: 'dispatch', attempt: skippingB }]);
    effects.observe(givenPayment({ id: 'pay-2', attempts: [skippingBAndC] }), [{ type: 'dispatch', attempt: skippingBAndC }]);

    expect(await rows(metrics.rateLimited)).toEqual([
      { gateway: 'gw-b', value: 2 },
      { gateway: 'gw-c', value: 1 },
    ]);
    expect(await rows(metrics.attemptsDispatched)).toEqual([{ gateway: 'gw-a', attempt: 'first', value: 2 }]);
  });

  test("When a pending status is published, then it is not counted as completed, and gets no line of its own (the change's line carries the status)", async () => {
    const { effects, metrics, logs } = harness();

    effects.observe(givenPayment(), [{ type: 'publish-status' }]);

    expect(await everyCount(metrics)).toEqual(NOTHING_COUNTED);
    expect(logs).toEqual([]);
  });

  test('When a success is published, then it is counted as completed by type, region, currency and status, and its duration is observed against the settling gateway', async () => {
    const { effects, metrics } = harness();
    const payment = givenPayment({
      status: 'SUCCESS',
      statusSequence: 2,
      updatedAt: at(12.5),
      attempts: [attemptTo(1, 'gw-a', 'succeeded'), attemptTo(2, 'gw-b', 'cancelled')],
    });

    effects.observe(payment, [{ type: 'publish-status' }]);

    expect(await rows(metrics.paymentsCompleted)).toEqual([{ type: 'deposit', region: 'EU', currency: 'EUR', status: 'SUCCESS', value: 1 }]);
    const duration = (await rows(metrics.paymentDuration)).filter((row) => !row.metricName?.endsWith('_bucket'));
    expect(duration).toEqual([
      { type: 'deposit', gateway: 'gw-a', status: 'SUCCESS', value: 12.5, metricName: 'payment_duration_seconds_sum' },
      { type: 'deposit', gateway: 'gw-a', status: 'SUCCESS', value: 1, metricName: 'payment_duration_seconds_count' },
    ]);
  });

  test('When a failure is published, then it is counted with status FAILURE and its duration observed against the latest attempt', async () => {
    const { effects, metrics } = harness();
    const payment = givenPayment({
      type: 'withdrawal',
      status: 'FAILURE',
      reason: 'no-gateway-left',
      statusSequence: 2,
      updatedAt: at(40),
      attempts: [attemptTo(1, 'gw-a', 'timed-out'), attemptTo(2, 'gw-b', 'failed')],
    });

    effects.observe(payment, [{ type: 'publish-status' }]);

    expect(await rows(metrics.paymentsCompleted)).toEqual([{ type: 'withdrawal', region: 'EU', currency: 'EUR', status: 'FAILURE', value: 1 }]);
    expect((await rows(metrics.paymentDuration)).filter((row) => row.metricName === 'payment_duration_seconds_sum')).toEqual([
      { type: 'withdrawal', gateway: 'gw-b', status: 'FAILURE', value: 40, metricName: 'payment_duration_seconds_sum' },
    ]);
  });

  test("When a payment with no attempt reaches a terminal status, then its duration is observed against gateway 'none'", async () => {
    const { effects, metrics } = harness();
    effects.observe(givenPayment({ status: 'FAILURE', reason: 'no-gateway-left', statusSequence: 2, updatedAt: at(1), attempts: [] }), [{ type: 'publish-status' }]);
    expect((await rows(metrics.paymentDuration)).filter((row) => row.metricName === 'payment_duration_seconds_count')).toEqual([
      { type: 'deposit', gateway: 'none', status: 'FAILURE', value: 1, metricName: 'payment_duration_seconds_count' },
    ]);
  });

  test('When a compensation is sent, then it is counted for its gateway and logged at critical', async () => {
    const { effects, metrics, logs } = harness();
    const late = attemptTo(1, 'gw-a', 'compensating');
    const payment = givenPayment({ status: 'SUCCESS', statusSequence: 2, attempts: [late, attemptTo(2, 'gw-b', 'succeeded')] });

    effects.observe(payment, [{ type: 'compensate', attempt: late }]);

    expect(await everyCount(metrics)).toEqual({ ...NOTHING_COUNTED, compensations: [{ gateway: 'gw-a', value: 1 }] });
    expect(logs).toEqual([expect.objectContaining({ level: levelOf('critical'), paymentId: 'pay-1', attemptId: 'att-1', gatewayId: 'gw-a' })]);
  });

  test('When a cancel is sent, then nothing is counted and it is logged as a warning naming the attempt', async () => {
    const { effects, metrics, logs } = harness();
    const cancelling = attemptTo(1, 'gw-a', 'cancelling');

    effects.observe(givenPayment({ type: 'withdrawal', attempts: [cancelling] }), [{ type: 'cancel', attempt: cancelling }]);

    expect(await everyCount(metrics)).toEqual(NOTHING_COUNTED);
    expect(logs).toEqual([expect.objectContaining({ level: levelOf('warn'), paymentId: 'pay-1', attemptId: 'att-1', gatewayId: 'gw-a' })]);
  });

  test('When a withdrawal is flagged for review, then nothing is counted here and it is logged at critical naming the attempt', async () => {
    const { effects, metrics, logs } = harness();
    const flagged = { ...attemptTo(1, 'gw-a', 'cancelling'), cancelUnconfirmedAt: at(10) };
    const payment = givenPayment({ type: 'withdrawal', attempts: [flagged], review: { reason: 'cancel-unconfirmed', attemptId: 'att-1', since: at(10) } });

    effects.observe(payment, [{ type: 'flag-review', attempt: flagged }]);

    expect(await everyCount(metrics)).toEqual(NOTHING_COUNTED);
    expect(logs).toEqual([expect.objectContaining({ level: levelOf('critical'), paymentId: 'pay-1', attemptId: 'att-1', gatewayId: 'gw-a' })]);
  });

  test('When several effects are observed together, then each is counted once, and the failover attempt logged once', async () => {
    const { effects, metrics, logs } = harness();
    const timedOut = attemptTo(1, 'gw-a', 'timed-out');
    const next = attemptTo(2, 'gw-b', 'in-flight', [{ gatewayId: 'gw-c', reason: 'rate-limited' }]);
    const payment = givenPayment({ attempts: [timedOut, next] });

    effects.observe(payment, [{ type: 'dispatch', attempt: next }, { type: 'publish-status' }]);

    expect(await everyCount(metrics)).toEqual({
      ...NOTHING_COUNTED,
      attemptsDispatched: [{ gateway: 'gw-b', attempt: 'failover', value: 1 }],
      rateLimited: [{ gateway: 'gw-c', value: 1 }],
    });
    expect(logs.map((line) => line.msg)).toEqual(['attempt dispatched']);
  });
});

// ---------------------------------------------------------------------------
// Attempt events: each stored change of a payment, driven through the real state machine, and what it publishes.
// ---------------------------------------------------------------------------

/** Every gateway times out after 5 s; the router picks the first of gw-a, gw-b, gw-c not tried; attempt ids att-2, att-3, … */
function storyContext(policy: 'failover' | 'cancel-first' = 'failover', maxCompensationTries = 2): DecisionContext {
  let next = 1;
  return {
    maxAttempts: 3,
    maxCompensationTries,
    route: (_payment, tried) => {
      const chosen = ['gw-a', 'gw-b', 'gw-c'].find((gatewayId) => !tried.has(gatewayId)) ?? null;
      return {
        chosen,
        candidates: chosen === null ? [] : [{ gatewayId: chosen, weight: 2.5 }],
        excluded: [...tried].map((gatewayId) => ({ gatewayId, reason: 'already-tried' as const })),
        rulesVersion: 'rules@9',
      };
    },
    newAttemptId: () => `att-${++next}`,
    timeoutMsOf: () => 5_000,
    timeoutPolicyOf: () => policy,
  };
}

/**
 * A payment's life, one stored change at a time: accepted at T0 on gw-a (att-1), then each outcome applied with
 * the state machine. `apply` returns the attempt events of that change, each checked against the contract.
 */
function story(type: Payment['type'] = 'deposit', context = storyContext()) {
  const created = createPayment(
    { id: 'pay-1', type, accountId: 'acc-1', amount: '10000', currency: 'EUR', region: 'EU' },
    { chosen: 'gw-a', candidates: [{ gatewayId: 'gw-a', weight: 3 }], excluded: [{ gatewayId: 'gw-z', reason: 'region' }], rulesVersion: 'rules@7' },
    'att-1',
    5_000,
    new Date(T0),
  ).payment;
  let payment = created;
  const checked = (events: AttemptEvent[]) => events.map((event) => attemptEvent.parse(event));
  return {
    accepted: checked(attemptChanges(undefined, created)),
    get payment() {
      return payment;
    },
    apply(outcome: Outcome): AttemptEvent[] {
      const decision = decide(payment, outcome, context);
      if (!decision.changed) throw new Error(`${outcome.kind} on ${outcome.attemptId} changed nothing (${decision.why})`);
      const previous = payment;
      payment = decision.payment;
      return checked(attemptChanges(previous, payment));
    },
  };
}

const onA1 = { attemptId: 'att-1', gatewayId: 'gw-a' };
const onA2 = { attemptId: 'att-2', gatewayId: 'gw-b' };
const dispatchedA2 = {
  kind: 'dispatched',
  ...onA2,
  number: 2,
  deadline: at(15),
  routing: { candidates: [{ gatewayId: 'gw-b', weight: 2.5 }], excluded: [{ gatewayId: 'gw-a', reason: 'already-tried' }], rulesVersion: 'rules@9' },
};

describe('effects.attemptEvents', () => {
  test('When a payment is accepted, then its one event is the dispatch of attempt 1 with the routing explanation and rules version (the chosen gateway is the attempt\'s)', () => {
    expect(story().accepted).toEqual([
      {
        kind: 'dispatched',
        ...onA1,
        number: 1,
        deadline: at(5),
        routing: { candidates: [{ gatewayId: 'gw-a', weight: 3 }], excluded: [{ gatewayId: 'gw-z', reason: 'region' }], rulesVersion: 'rules@7' },
      },
    ]);
  });

  test('When the gateway approves, then the change has one event: answered success, with when the answer reached Kafka, not late', () => {
    const life = story();
    expect(life.apply({ kind: 'success', attemptId: 'att-1', at: at(1), now: at(2) })).toEqual([{ kind: 'answered', ...onA1, outcome: 'success', at: at(1) }]);
  });

  test('When the gateway declines for good, then answered failure carries the gateway\'s reason', () => {
    const life = story();
    expect(life.apply({ kind: 'failure', attemptId: 'att-1', reasonCode: 'insufficient_funds', at: at(1) })).toEqual([
      { kind: 'answered', ...onA1, outcome: 'failure', reasonCode: 'insufficient_funds', at: at(1) },
    ]);
    expect(life.payment.status).toBe('FAILURE');
  });

  test('When a retryable failure fails over, then the answer comes first, then the dispatch of attempt 2 with its own routing', () => {
    const life = story();
    expect(life.apply({ kind: 'failure', attemptId: 'att-1', reasonCode: 'gateway_error', at: at(1), now: at(10) })).toEqual([
      { kind: 'answered', ...onA1, outcome: 'failure', reasonCode: 'gateway_error', at: at(1) },
      dispatchedA2,
    ]);
  });

  test('When a deposit times out, then timed-out, then the failover dispatch; a later success of it is a late answer that wins and asks attempt 2 to cancel', () => {
    const life = story();
    expect(life.apply({ kind: 'timeout', attemptId: 'att-1', at: at(5), now: at(10) })).toEqual([{ kind: 'timed-out', ...onA1 }, dispatchedA2]);
    expect(life.apply({ kind: 'success', attemptId: 'att-1', at: at(11) })).toEqual([
      { kind: 'answered', ...onA1, outcome: 'success', late: true, at: at(11) },
      { kind: 'cancel-asked', ...onA2, why: 'settled-elsewhere' },
    ]);
  });

  test('When a timed-out attempt succeeds after the payment settled elsewhere, then a late answer and compensation-asked (try 1, with its deadline); a re-send is try 2; the confirmation is compensation-confirmed', () => {
    const life = story('deposit', storyContext('failover', 3));
    life.apply({ kind: 'timeout', attemptId: 'att-1', at: at(5), now: at(10) });
    expect(life.apply({ kind: 'success', attemptId: 'att-2', at: at(12) })).toEqual([{ kind: 'answered', ...onA2, outcome: 'success', at: at(12) }]);
    expect(life.apply({ kind: 'success', attemptId: 'att-1', at: at(13) })).toEqual([
      { kind: 'answered', ...onA1, outcome: 'success', late: true, at: at(13) },
      { kind: 'compensation-asked', ...onA1, try: 1, deadline: at(18) },
    ]);
    expect(life.apply({ kind: 'timeout', attemptId: 'att-1', at: at(18) })).toEqual([{ kind: 'compensation-asked', ...onA1, try: 2, deadline: at(28) }]);
    // No message is sent for a confirmation: the attempt event is the only record of it on Kafka.
    expect(life.apply({ kind: 'compensation-confirmed', attemptId: 'att-1', at: at(20) })).toEqual([{ kind: 'compensation-confirmed', ...onA1 }]);
  });

  test('When a compensation is never confirmed, then the last try is followed by review-flagged, and a confirmation after that resolves the review as the gateway\'s answer', () => {
    const life = story(); // two compensate commands at most
    life.apply({ kind: 'timeout', attemptId: 'att-1', at: at(5), now: at(10) });
    life.apply({ kind: 'success', attemptId: 'att-2', at: at(12) });
    life.apply({ kind: 'success', attemptId: 'att-1', at: at(13) });
    expect(life.apply({ kind: 'timeout', attemptId: 'att-1', at: at(18) })).toEqual([{ kind: 'compensation-asked', ...onA1, try: 2, deadline: at(28) }]);
    expect(life.apply({ kind: 'timeout', attemptId: 'att-1', at: at(28) })).toEqual([{ kind: 'review-flagged', ...onA1, reason: 'compensation-unconfirmed' }]);
    expect(life.apply({ kind: 'compensation-confirmed', attemptId: 'att-1', at: at(40) })).toEqual([
      { kind: 'compensation-confirmed', ...onA1 },
      { kind: 'review-resolved', ...onA1, reason: 'compensation-unconfirmed', resolution: 'gateway-answered' },
    ]);
  });

  test('When a withdrawal times out, then timed-out and cancel-asked (timeout); a confirmed cancel fails over', () => {
    const life = story('withdrawal', storyContext('cancel-first'));
    expect(life.apply({ kind: 'timeout', attemptId: 'att-1', at: at(5), now: at(10) })).toEqual([
      { kind: 'timed-out', ...onA1 },
      { kind: 'cancel-asked', ...onA1, why: 'timeout' },
    ]);
    expect(life.apply({ kind: 'cancel-confirmed', attemptId: 'att-1', at: at(11), now: at(10) })).toEqual([{ kind: 'cancel-confirmed', ...onA1 }, dispatchedA2]);
  });

  test('When a withdrawal\'s cancel is never confirmed, then review-flagged (cancel-unconfirmed); the attempt\'s success later is a late answer that resolves it', () => {
    const life = story('withdrawal', storyContext('cancel-first'));
    life.apply({ kind: 'timeout', attemptId: 'att-1', at: at(5) });
    expect(life.apply({ kind: 'timeout', attemptId: 'att-1', at: at(10) })).toEqual([{ kind: 'review-flagged', ...onA1, reason: 'cancel-unconfirmed' }]);
    expect(life.apply({ kind: 'success', attemptId: 'att-1', at: at(30) })).toEqual([
      { kind: 'answered', ...onA1, outcome: 'success', late: true, at: at(30) },
      { kind: 'review-resolved', ...onA1, reason: 'cancel-unconfirmed', resolution: 'gateway-answered' },
    ]);
  });

  test.each([
    ['paid', 'the attempt\'s success settles the payment', [{ kind: 'review-resolved', ...onA1, reason: 'cancel-unconfirmed', resolution: 'paid', actor: 'ops-1', note: 'PSP says paid' }]],
    [
      'not-paid',
      'its confirmed cancel fails over',
      [{ kind: 'review-resolved', ...onA1, reason: 'cancel-unconfirmed', resolution: 'not-paid', actor: 'ops-1', note: 'PSP says paid' }, dispatchedA2],
    ],
  ] as const)('When an operator resolves a withdrawal\'s review as %s, then review-resolved says who and why, in place of a gateway answer; %s', (decision, _what, expected) => {
    const life = story('withdrawal', storyContext('cancel-first'));
    life.apply({ kind: 'timeout', attemptId: 'att-1', at: at(5) });
    life.apply({ kind: 'timeout', attemptId: 'att-1', at: at(10) });
    const resolution = { resolutionId: 'res-1', decision, actor: 'ops-1', note: 'PSP says paid' };
    expect(life.apply({ kind: 'review-resolved', attemptId: 'att-1', at: at(9), now: at(10), ...resolution })).toEqual(expected);
  });

  test('When an operator resolves an unconfirmed compensation as refunded, then review-resolved (refunded) with who and why, and no compensation-confirmed (the gateway never said so)', () => {
    const life = story();
    life.apply({ kind: 'timeout', attemptId: 'att-1', at: at(5), now: at(10) });
    life.apply({ kind: 'success', attemptId: 'att-2', at: at(12) });
    life.apply({ kind: 'success', attemptId: 'att-1', at: at(13) });
    life.apply({ kind: 'timeout', attemptId: 'att-1', at: at(18) });
    life.apply({ kind: 'timeout', attemptId: 'att-1', at: at(28) });
    expect(life.apply({ kind: 'review-resolved', attemptId: 'att-1', at: at(40), resolutionId: 'res-2', decision: 'refunded', actor: 'ops-2', note: 'refund seen in PSP portal' })).toEqual([
      { kind: 'review-resolved', ...onA1, reason: 'compensation-unconfirmed', resolution: 'refunded', actor: 'ops-2', note: 'refund seen in PSP portal' },
    ]);
  });

  test('When a result for an in-flight attempt cannot be read, then result-unreadable with where it was parked, and cancel-asked (unreadable-result)', () => {
    const life = story();
    expect(life.apply({ kind: 'unreadable', attemptId: 'att-1', at: at(1), deadLetter: 'deadletter:0:7', detail: 'outcome: invalid' })).toEqual([
      { kind: 'result-unreadable', ...onA1, deadLetter: 'deadletter:0:7' },
      { kind: 'cancel-asked', ...onA1, why: 'unreadable-result' },
    ]);
    // After completion, an unreadable result changes the attempt and sends no message: the event still says so.
    life.apply({ kind: 'cancel-confirmed', attemptId: 'att-1', at: at(2) });
    life.apply({ kind: 'success', attemptId: 'att-2', at: at(3) });
    expect(life.apply({ kind: 'unreadable', attemptId: 'att-1', at: at(4), deadLetter: 'deadletter:0:9', detail: 'x' })).toEqual([
      { kind: 'result-unreadable', ...onA1, deadLetter: 'deadletter:0:9' },
    ]);
  });

  test('When nothing about the attempts changed between two versions, then there is no event', () => {
    const life = story();
    expect(attemptChanges(life.payment, life.payment)).toEqual([]);
  });

  test('When the message is built, then it goes to the attempts topic keyed by payment id, with the revision as its sequence, and the contract accepts it whole', () => {
    const { effects } = harness();
    const life = story();
    const previous = life.payment;
    life.apply({ kind: 'failure', attemptId: 'att-1', reasonCode: 'gateway_error', at: at(1), now: at(10) });

    const message = effects.attemptEvents(previous, life.payment, 2);

    expect(message).toEqual({
      topic: 't.payment.attempts',
      key: 'pay-1',
      value: {
        eventId: expect.any(String),
        type: 'payment.attempts',
        occurredAt: NOW.toISOString(),
        schemaVersion: 1,
        paymentId: 'pay-1',
        sequence: 2,
        events: [expect.objectContaining({ kind: 'answered' }), expect.objectContaining({ kind: 'dispatched', attemptId: 'att-2' })],
      },
    });
    expect(paymentAttemptsChanged.strict().parse(message.value)).toEqual(message.value);
  });
});

describe('withAttemptEvents', () => {
  /** A store that records what it was asked to write. */
  function recordingStore() {
    const written: Array<{ op: string; messages: unknown[] }> = [];
    const store = {
      create: async (_payment: Payment, _key: unknown, _hash: string, messages: unknown[]) => {
        written.push({ op: 'create', messages });
        return { created: true, outbox: { paymentId: 'pay-1', fields: [], messages: [] } };
      },
      update: async (_previous: StoredPayment, _next: Payment, messages: unknown[]) => {
        written.push({ op: 'update', messages });
        return { paymentId: 'pay-1', fields: [], messages: [] };
      },
      get: async () => undefined,
    } as unknown as PaymentStore;
    return { store, written };
  }

  test('When a payment is created or updated through it, then the change\'s own messages come first and its attempt events last, numbered 1 at creation and by the revision each update writes', async () => {
    const { effects } = harness();
    const { store, written } = recordingStore();
    const wrapped = withAttemptEvents(store, effects);
    const life = story();
    const accepted = life.payment;
    const status = { topic: 't.payment.status', key: 'pay-1', value: { type: 'payment.status' } };

    await wrapped.create(accepted, { caller: 'c', key: 'k' }, 'hash', [status]);
    life.apply({ kind: 'success', attemptId: 'att-1', at: at(1) });
    await wrapped.update({ payment: accepted, revision: '1' }, life.payment, [status]);

    expect(written).toEqual([
      { op: 'create', messages: [status, expect.objectContaining({ topic: 't.payment.attempts', value: expect.objectContaining({ sequence: 1, events: [expect.objectContaining({ kind: 'dispatched' })] }) })] },
      { op: 'update', messages: [status, expect.objectContaining({ topic: 't.payment.attempts', value: expect.objectContaining({ sequence: 2, events: [expect.objectContaining({ kind: 'answered' })] }) })] },
    ]);
    expect(wrapped.get).toBe(store.get);
  });
});
