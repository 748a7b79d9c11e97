import { randomUUID } from 'node:crypto';
import type { SandboxSettings } from '../gateways/sandbox';
import type { AttemptStatus } from '../orchestrator/state/payment';
import { paymentAttemptsChanged, type AttemptEvent, type PaymentAttemptsChanged } from '../topics/schemas';
import { collectTopic, type TopicCollection } from './support/collect';
import { deposit, getPayment, postPayment, rule, signedRuleMessage, startTestStack, untilPayment, watchStatuses, type PaymentView } from './support/stack';

/**
 * The attempt-event stream (payment.attempts) against what GET says of the same payment: two EU gateways, `first`
 * and `second`, selection always picking the first eligible one (random source 0), as in failover.int.test.ts.
 */
async function twoGateways(first: Partial<SandboxSettings>, second: Partial<SandboxSettings>) {
  const stack = await startTestStack({
    rules: [rule('first', { timeoutMs: 1_000 }), rule('second', { timeoutMs: 1_000 })],
    sandboxes: { first, second },
    orchestrator: { random: () => 0, env: { TIMEOUT_POLL_MS: '20' } },
  });
  const statuses = await watchStatuses(stack);
  const attempts = await collectTopic(stack.kafka, stack.topics.paymentAttempts, paymentAttemptsChanged, {
    groupPrefix: `${stack.env.TOPIC_PREFIX}attempts-`,
    label: 'payment.attempts message',
  });
  return {
    stack,
    statuses,
    attempts,
    async pay(fields: Record<string, unknown> = {}) {
      const accepted = await postPayment(stack.baseUrl, deposit(fields));
      expect(accepted.status).toBe(202);
      return String(accepted.body.id);
    },
    async stop() {
      await attempts.stop();
      await statuses.stop();
      await stack.stop();
    },
  };
}

/** The payment's messages so far, in arrival order. */
const messagesOf = (attempts: TopicCollection<PaymentAttemptsChanged>, paymentId: string) => attempts.messages.filter((message) => message.paymentId === paymentId);

/** Waits until the payment's stream holds message `sequence`; returns its events, in order, as `kind attempt` lines and whole. */
async function untilSequence(attempts: TopicCollection<PaymentAttemptsChanged>, paymentId: string, sequence: number) {
  await attempts.untilFound(
    () => (messagesOf(attempts, paymentId).some((message) => message.sequence === sequence) ? true : undefined),
    20_000,
    () => `no payment.attempts message ${sequence} for ${paymentId}; seen ${JSON.stringify(messagesOf(attempts, paymentId))}`,
  );
  const messages = messagesOf(attempts, paymentId);
  // Complete and in order: one message per stored change, numbered 1, 2, 3, … as they arrive (one partition per payment).
  expect(messages.map((message) => message.sequence)).toEqual(messages.map((_, index) => index + 1));
  return messages;
}

/** Each message's events as `kind@gateway`, with the detail that tells them apart. */
const kinds = (messages: PaymentAttemptsChanged[]) =>
  messages.map((message) =>
    message.events.map((event) => {
      const detail = event.kind === 'answered' ? `:${event.outcome}${event.late ? ':late' : ''}` : event.kind === 'cancel-asked' ? `:${event.why}` : '';
      return `${event.kind}${detail}@${event.gatewayId}`;
    }),
  );

/** Replays attempt events into each attempt's status, the way the state machine moved it. */
function replayStatuses(events: AttemptEvent[]): Map<string, AttemptStatus> {
  const statuses = new Map<string, AttemptStatus>();
  const set = (event: AttemptEvent, status: AttemptStatus) => statuses.set(event.attemptId, status);
  for (const event of events) {
    switch (event.kind) {
      case 'dispatched':
        set(event, 'in-flight');
        break;
      case 'answered':
        set(event, event.outcome === 'success' ? 'succeeded' : 'failed');
        break;
      case 'timed-out':
        set(event, 'timed-out');
        break;
      case 'cancel-asked':
        set(event, event.why === 'settled-elsewhere' ? 'cancelled' : 'cancelling');
        break;
      case 'cancel-confirmed':
        set(event, 'cancelled');
        break;
      case 'compensation-asked':
        set(event, 'compensating');
        break;
      case 'compensation-confirmed':
        set(event, 'compensated');
        break;
      case 'review-resolved':
        // An operator's decision is applied as the answer it stands for; the gateway's own answer has its own event.
        if (event.resolution !== 'gateway-answered') set(event, { paid: 'succeeded', 'not-paid': 'cancelled', refunded: 'compensated' }[event.resolution] as AttemptStatus);
        break;
      default:
        break;
    }
  }
  return statuses;
}

/** The stream says what GET says: the same attempts (ids, gateways, order, routing), in the same statuses, with the same reasons. */
function expectStreamMatches(messages: PaymentAttemptsChanged[], payment: PaymentView) {
  const events = messages.flatMap((message) => message.events);
  const dispatched = events.flatMap((event) => (event.kind === 'dispatched' ? [event] : []));
  expect(dispatched.map(({ attemptId, gatewayId, number, deadline }) => ({ attemptId, gatewayId, number, deadline }))).toEqual(
    payment.attempts.map(({ id, gatewayId, number }) => ({ attemptId: id, gatewayId, number, deadline: expect.any(String) })),
  );
  expect(dispatched.map((event) => event.routing)).toEqual(payment.attempts.map(({ routing: { candidates, excluded, rulesVersion } }) => ({ candidates, excluded, rulesVersion })));
  expect(Object.fromEntries(replayStatuses(events))).toEqual(Object.fromEntries(payment.attempts.map((attempt) => [attempt.id, attempt.status])));
  const failures = events.flatMap((event) => (event.kind === 'answered' && event.outcome === 'failure' ? [[event.attemptId, event.reasonCode]] : []));
  expect(failures).toEqual(payment.attempts.filter((attempt) => attempt.status === 'failed').map((attempt) => [attempt.id, attempt.reasonCode]));
}

describe('attempt events', () => {
  let run: Awaited<ReturnType<typeof twoGateways>> | undefined;
  afterEach(async () => {
    await run?.stop();
    run = undefined;
  });

  test('When a payment succeeds at once, then its attempt stream is exactly: attempt 1 dispatched, then answered success', async () => {
    run = await twoGateways({}, {});
    const id = await run.pay();
    await run.statuses.untilTerminal([id]);

    const messages = await untilSequence(run.attempts, id, 2);

    expect(kinds(messages)).toEqual([['dispatched@first'], ['answered:success@first']]);
    expectStreamMatches(messages, await getPayment(run.stack.baseUrl, id));
    // The routing explanation says why `first`: both served, `first` drew the choice, under the rules version in force.
    expect(messages[0]?.events[0]).toMatchObject({ kind: 'dispatched', routing: { candidates: [{ gatewayId: 'first' }, { gatewayId: 'second' }], rulesVersion: expect.stringMatching(/^rules@/) } });
  });

  test('When the first gateway answers a retryable error, then answered failure carries its reason, then the second is dispatched and answers', async () => {
    run = await twoGateways({ mode: 'error' }, {});
    const id = await run.pay();
    await run.statuses.untilTerminal([id]);

    const messages = await untilSequence(run.attempts, id, 3);

    expect(kinds(messages)).toEqual([['dispatched@first'], ['answered:failure@first', 'dispatched@second'], ['answered:success@second']]);
    expect(messages[1]?.events[0]).toMatchObject({ reasonCode: 'gateway_error' });
    expectStreamMatches(messages, await getPayment(run.stack.baseUrl, id));
  });

  test('When the first gateway times out and its success comes after the second settled the payment, then the stream has the failover and the compensation, matching GET, and the status topic still has only PENDING and SUCCESS', async () => {
    run = await twoGateways({ mode: 'late', lateMs: 2_000 }, {});
    const id = await run.pay();
    await run.statuses.untilTerminal([id]);
    const payment = await untilPayment(run.stack.baseUrl, id, (view) => view.attempts[0]?.status === 'compensated');

    const messages = await untilSequence(run.attempts, id, 5);

    expect(kinds(messages)).toEqual([
      ['dispatched@first'],
      ['timed-out@first', 'dispatched@second'],
      ['answered:success@second'],
      ['answered:success:late@first', 'compensation-asked@first'],
      ['compensation-confirmed@first'],
    ]);
    expectStreamMatches(messages, payment);
    expect(messages[1]?.events[1]).toMatchObject({ routing: { excluded: [{ gatewayId: 'first', reason: 'already-tried' }] } });
    expect(run.statuses.events.filter((event) => event.paymentId === id).map((event) => event.status)).toEqual(['PENDING', 'SUCCESS']);
  });

  test('When a timed-out attempt succeeds while the payment is pending, then the stream shows the late answer winning and the other attempt asked to cancel', async () => {
    run = await twoGateways({ mode: 'late', lateMs: 1_500 }, { mode: 'slow', latencyMs: 5_000 });
    const id = await run.pay();
    await run.statuses.untilTerminal([id]);

    const messages = await untilSequence(run.attempts, id, 3);

    expect(kinds(messages)).toEqual([['dispatched@first'], ['timed-out@first', 'dispatched@second'], ['answered:success:late@first', 'cancel-asked:settled-elsewhere@second']]);
    expectStreamMatches(messages, await getPayment(run.stack.baseUrl, id));
  });

  test("When a withdrawal's gateway times out and confirms the cancel, then the stream shows the timeout, the cancel asked and confirmed, and the failover", async () => {
    run = await twoGateways({ mode: 'slow', latencyMs: 5_000 }, {});
    const id = await run.pay({ type: 'withdrawal' });
    await run.statuses.untilTerminal([id]);

    const messages = await untilSequence(run.attempts, id, 4);

    expect(kinds(messages)).toEqual([
      ['dispatched@first'],
      ['timed-out@first', 'cancel-asked:timeout@first'],
      ['cancel-confirmed@first', 'dispatched@second'],
      ['answered:success@second'],
    ]);
    expectStreamMatches(messages, await getPayment(run.stack.baseUrl, id));
  });

  test("When a withdrawal's gateway never confirms the cancel, then the stream ends with the review flagged for that attempt", async () => {
    run = await twoGateways({ mode: 'hang' }, {});
    const id = await run.pay({ type: 'withdrawal' });
    const flagged = await untilPayment(run.stack.baseUrl, id, (view) => view.review !== undefined);

    const messages = await untilSequence(run.attempts, id, 3);

    expect(kinds(messages)).toEqual([['dispatched@first'], ['timed-out@first', 'cancel-asked:timeout@first'], ['review-flagged@first']]);
    expect(messages[2]?.events[0]).toMatchObject({ attemptId: flagged.review?.attemptId, reason: 'cancel-unconfirmed' });
    expectStreamMatches(messages, flagged);
  });

  test("When an operator resolves the review of a withdrawal's silent gateway as not paid, then review-resolved says who and why, and the failover follows", async () => {
    run = await twoGateways({ mode: 'hang' }, {});
    const id = await run.pay({ type: 'withdrawal' });
    const flagged = await untilPayment(run.stack.baseUrl, id, (view) => view.review !== undefined);
    const attemptId = flagged.review?.attemptId ?? '';

    const resolution = { eventId: randomUUID(), type: 'review.resolved', occurredAt: new Date().toISOString(), schemaVersion: 1, resolutionId: randomUUID(), paymentId: id, attemptId, decision: 'not-paid', actor: 'ops-1', note: 'PSP has no record of it' };
    const producer = run.stack.kafka.producer();
    await producer.connect();
    await producer.send({ topic: run.stack.topics.reviews, messages: [signedRuleMessage(id, JSON.stringify(resolution))] });
    await producer.disconnect();
    await run.statuses.untilTerminal([id]);

    const messages = await untilSequence(run.attempts, id, 5);

    expect(kinds(messages).slice(3)).toEqual([['review-resolved@first', 'dispatched@second'], ['answered:success@second']]);
    expect(messages[3]?.events[0]).toEqual({ kind: 'review-resolved', attemptId, gatewayId: 'first', reason: 'cancel-unconfirmed', resolution: 'not-paid', actor: 'ops-1', note: 'PSP has no record of it' });
    expectStreamMatches(messages, await getPayment(run.stack.baseUrl, id));
  });
});
