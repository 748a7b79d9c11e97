import { randomUUID } from 'node:crypto';
import { deadLetter } from '../topics/schemas';
import { collectTopic } from './support/collect';
import { readTopicToEnd } from './support/invariants';
import { deposit, getPayment, postPayment, rule, startTestStack, untilMetrics, untilPayment, watchStatuses, type TestStack } from './support/stack';

/**
 * A deposit whose first gateway ("first", chosen by the random source 0)
 * hangs, and a message on the results topic for its attempt that is not
 * quite what the contract says. A result that names a known payment and
 * attempt is never noise: a harmless difference settles the payment; an
 * outcome that cannot be read is unknown, and an unknown outcome must never
 * lead to the second gateway being paid.
 */
describe('results that differ from the contract', () => {
  let stack: TestStack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  const start = () =>
    startTestStack({
      rules: [rule('first', { timeoutMs: 1_500 }), rule('second', { timeoutMs: 1_500 })],
      sandboxes: { first: { mode: 'hang' } },
      orchestrator: { random: () => 0, env: { TIMEOUT_POLL_MS: '20' } },
    });

  const inject = async (running: TestStack, paymentId: string, value: Record<string, unknown>) => {
    const producer = running.kafka.producer();
    await producer.connect();
    await producer.send({ topic: running.topics.gatewayResults, messages: [{ key: paymentId, value: JSON.stringify(value) }] });
    await producer.disconnect();
  };

  const acceptDeposit = async (running: TestStack) => {
    const accepted = await postPayment(running.baseUrl, deposit());
    expect(accepted.status).toBe(202);
    const payment = await getPayment(running.baseUrl, String(accepted.body.id));
    const [attempt] = payment.attempts;
    expect(attempt).toMatchObject({ gatewayId: 'first', status: 'in-flight' });
    return { paymentId: payment.id, attemptId: attempt?.id ?? '' };
  };

  test('When a success carries occurredAt without a zone offset and fields the contract does not know, then it settles the payment on that attempt', async () => {
    stack = await start();
    const statuses = await watchStatuses(stack);
    const { paymentId, attemptId } = await acceptDeposit(stack);
    await inject(stack, paymentId, {
      eventId: randomUUID(),
      type: 'gateway.result',
      occurredAt: new Date().toISOString().slice(0, -1), // "2026-11-30T11:00:00.000": no offset
      schemaVersion: 1,
      paymentId,
      attemptId,
      gatewayId: 'first',
      outcome: 'success',
      pspTrace: { acquirer: 'x' },
    });
    const [terminal] = await statuses.untilTerminal([paymentId]);
    await statuses.stop();
    expect(terminal).toMatchObject({ status: 'SUCCESS', attemptId, gatewayId: 'first' });
    const payment = await getPayment(stack.baseUrl, paymentId);
    expect(payment.attempts.map((attempt) => [attempt.gatewayId, attempt.status])).toEqual([['first', 'succeeded']]);
  });

  test('When a result for the in-flight deposit cannot be read, then the gateway is asked to cancel, the dead letter is linked to the attempt and counted, and the second gateway is never paid', async () => {
    stack = await start();
    const running = stack;
    const letters = await collectTopic(running.kafka, running.topics.deadLetter, deadLetter, { groupPrefix: `${running.env.TOPIC_PREFIX}dlq-` });
    const { paymentId, attemptId } = await acceptDeposit(running);
    await inject(running, paymentId, {
      eventId: randomUUID(),
      type: 'gateway.result',
      occurredAt: new Date().toISOString(),
      schemaVersion: 1,
      paymentId,
      attemptId,
      gatewayId: 'first',
      outcome: 'probably-fine',
    });

    const cancelling = await untilPayment(running.baseUrl, paymentId, (payment) => payment.attempts[0]?.unreadableResult !== undefined);
    expect(cancelling.attempts).toHaveLength(1);
    expect(cancelling.attempts[0]).toMatchObject({ status: 'cancelling', reasonCode: 'unreadable-result' });
    const link = cancelling.attempts[0]?.unreadableResult?.deadLetter;
    const parked = await letters.untilFound(
      () => letters.messages.find((letter) => `${letter.sourceTopic}:${letter.partition}:${letter.offset}` === link),
      10_000,
      () => `no dead letter from ${link}`,
    );
    await letters.stop();
    expect(parked).toMatchObject({ reason: 'unreadable-result', sourceTopic: running.topics.gatewayResults });
    expect(parked.detail).toContain('outcome');
    await untilMetrics(running.baseUrl, /gateway_results_unreadable_total\{gateway="first"[^}]*\} 1\n/);

    // The hung gateway never confirms the cancel: the deposit waits for a person instead of failing over.
    const flagged = await untilPayment(running.baseUrl, paymentId, (payment) => payment.review !== undefined);
    expect(flagged).toMatchObject({ status: 'PENDING', review: { reason: 'cancel-unconfirmed', attemptId } });
    expect(flagged.attempts).toHaveLength(1);
    expect(await readTopicToEnd(running.kafka, running.topics.gatewayRequests('second'))).toEqual([]);
  });
});
