import { randomUUID } from 'node:crypto';
import { gatewayRequestMessage, type AttemptCommand } from '../topics/schemas';
import { fetchApi } from './support/env';
import { collectTopic } from './support/collect';
import { deposit, getPayment, postPayment, rule, startTestStack, untilMetrics, untilPayment, watchStatuses, type TestStack } from './support/stack';

/** The gateway's timeout: also the first wait for a compensation's confirmation (then 2x, 4x, 8x, 8x). */
const TIMEOUT_MS = 300;

describe('a compensation the gateway never confirms', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({
      // `first` hangs: it never answers the attempt, and ignores the compensate commands about it.
      rules: [rule('first', { timeoutMs: TIMEOUT_MS }), rule('second', { timeoutMs: 5_000 })],
      sandboxes: { first: { mode: 'hang' } },
      orchestrator: { random: () => 0, env: { TIMEOUT_POLL_MS: '20' } },
    });
  });
  afterAll(() => stack?.stop());

  test('When a late success is never confirmed compensated, then the compensate command is re-sent with the same id, then the payment is flagged for review', async () => {
    const statuses = await watchStatuses(stack);
    const commands = await collectTopic(stack.kafka, stack.topics.gatewayRequests('first'), gatewayRequestMessage, {
      groupPrefix: `${stack.env.TOPIC_PREFIX}commands-`,
    });
    try {
      const accepted = await postPayment(stack.baseUrl, deposit());
      expect(accepted.status).toBe(202);
      const paymentId = String(accepted.body.id);
      const attemptId = (await getPayment(stack.baseUrl, paymentId)).attempts[0]?.id ?? '';

      // `first` timed out, `second` settled the deposit.
      const [terminal] = await statuses.untilTerminal([paymentId]);
      expect(terminal).toMatchObject({ status: 'SUCCESS', gatewayId: 'second' });

      // Then `first` says it paid after all (the hung sandbox never will, so the test says it for it).
      const producer = stack.kafka.producer();
      await producer.connect();
      const lateSuccess = { eventId: randomUUID(), type: 'gateway.result', occurredAt: new Date().toISOString(), schemaVersion: 1, paymentId, attemptId, gatewayId: 'first', outcome: 'success' };
      await producer.send({ topic: stack.topics.gatewayResults, messages: [{ key: paymentId, value: JSON.stringify(lateSuccess) }] });
      await producer.disconnect();

      const compensates = () =>
        commands.messages.filter((message): message is AttemptCommand => message.type === 'attempt.command' && message.command === 'compensate' && message.attemptId === attemptId);
      // Five commands in all: waits of 0.3 + 0.6 + 1.2 + 2.4 + 2.4 s, then the review.
      const flagged = await untilPayment(stack.baseUrl, paymentId, (payment) => payment.review !== undefined, 30_000);

      expect(flagged.review).toMatchObject({ reason: 'compensation-unconfirmed', attemptId });
      expect(flagged.status).toBe('SUCCESS');
      expect(flagged.attempts[0]).toMatchObject({ id: attemptId, status: 'compensating', compensationsSent: 5, compensationUnconfirmedAt: flagged.review?.since });
      await commands.untilFound(() => (compensates().length >= 5 ? true : undefined), 10_000, () => `${compensates().length} compensate commands seen`);
      expect(compensates()).toHaveLength(5);
      // The same command every time: a gateway that de-duplicates on the id refunds once.
      expect(new Set(compensates().map((command) => command.eventId))).toEqual(new Set([`${attemptId}:compensate`]));

      const reviews = (await (await fetchApi(`${stack.baseUrl}/v1/reviews`)).json()) as { payments: Array<{ id: string }> };
      expect(reviews.payments.map((payment) => payment.id)).toContain(paymentId);
      await untilMetrics(stack.baseUrl, /payment_compensation_resends_total\{gateway="first"[^}]*\} 4\n/);
      await untilMetrics(stack.baseUrl, /payment_compensations_unconfirmed_total\{gateway="first"[^}]*\} 1\n/);
      // Only the late success counts as a compensation; the re-sends have their own counter.
      await untilMetrics(stack.baseUrl, /payment_compensations_total\{gateway="first"[^}]*\} 1\n/);
    } finally {
      await commands.stop();
      await statuses.stop();
    }
  }, 60_000);
});
