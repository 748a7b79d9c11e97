import { randomUUID } from 'node:crypto';
import { fetchApi } from './support/env';
import type { SandboxSettings } from '../gateways/sandbox';
import { checkPaymentInvariants } from './support/invariants';
import { deposit, getPayment, postPayment, rule, startTestStack, untilMetrics, untilPayment, watchStatuses, type TestStack } from './support/stack';

/**
 * Two EU gateways, "first" and "second"; selection always picks the first
 * eligible one (random source 0, rules sorted by id), so each test knows
 * where attempt 1 and attempt 2 go.
 */
async function twoGateways(first: Partial<SandboxSettings>, second: Partial<SandboxSettings>, env: Record<string, string> = {}) {
  const stack = await startTestStack({
    // 1 s leaves room for a loaded machine: a healthy answer must never look like a timeout.
    rules: [rule('first', { timeoutMs: 1_000 }), rule('second', { timeoutMs: 1_000 })],
    sandboxes: { first, second },
    orchestrator: { random: () => 0, env: { TIMEOUT_POLL_MS: '20', ...env } },
  });
  const statuses = await watchStatuses(stack);
  return {
    stack,
    statuses,
    async pay(fields: Record<string, unknown> = {}) {
      const accepted = await postPayment(stack.baseUrl, deposit(fields));
      expect(accepted.status).toBe(202);
      return String(accepted.body.id);
    },
    async stop() {
      await statuses.stop();
      await stack.stop();
    },
  };
}

const attemptsOf = async (stack: TestStack, id: string) =>
  (await getPayment(stack.baseUrl, id)).attempts.map((attempt) => [attempt.gatewayId, attempt.status, attempt.reasonCode]);

describe('failover', () => {
  let run: Awaited<ReturnType<typeof twoGateways>> | undefined;
  afterEach(async () => {
    if (run) {
      const { violations } = await checkPaymentInvariants({
        kafka: run.stack.kafka,
        topics: run.stack.topics,
        redisUrl: run.stack.env.REDIS_URL ?? '',
        redisKeyPrefix: run.stack.env.REDIS_KEY_PREFIX ?? '',
        acceptedIds: run.statuses.events.filter((event) => event.status === 'PENDING').map((event) => event.paymentId),
      });
      expect(violations).toEqual([]);
    }
    await run?.stop();
    run = undefined;
  });

  test('When the first gateway answers a retryable error, then the payment succeeds on the second', async () => {
    run = await twoGateways({ mode: 'error' }, {});
    const id = await run.pay();
    const [terminal] = await run.statuses.untilTerminal([id]);
    expect(terminal).toMatchObject({ status: 'SUCCESS', gatewayId: 'second' });
    expect(await attemptsOf(run.stack, id)).toEqual([
      ['first', 'failed', 'gateway_error'],
      ['second', 'succeeded', undefined],
    ]);
  });

  test('When the first gateway hangs, then the attempt times out and the payment succeeds on the second', async () => {
    run = await twoGateways({ mode: 'hang' }, {});
    const id = await run.pay();
    const [terminal] = await run.statuses.untilTerminal([id]);
    expect(terminal).toMatchObject({ status: 'SUCCESS', gatewayId: 'second' });
    expect(await attemptsOf(run.stack, id)).toEqual([
      ['first', 'timed-out', 'timeout'],
      ['second', 'succeeded', undefined],
    ]);
  });

  test('When the first gateway declines for a business reason, then the payment fails without trying the second', async () => {
    run = await twoGateways({ mode: 'decline' }, {});
    const id = await run.pay();
    const [terminal] = await run.statuses.untilTerminal([id]);
    expect(terminal).toMatchObject({ status: 'FAILURE', reason: 'insufficient_funds' });
    expect(await attemptsOf(run.stack, id)).toEqual([['first', 'failed', 'insufficient_funds']]);
  });

  test('When every gateway fails retryably, then the payment fails saying no gateway is left', async () => {
    run = await twoGateways({ mode: 'error' }, { mode: 'error' });
    const id = await run.pay();
    const [terminal] = await run.statuses.untilTerminal([id]);
    expect(terminal).toMatchObject({ status: 'FAILURE', reason: 'no-gateway-left' });
    expect((await attemptsOf(run.stack, id)).map(([gateway]) => gateway)).toEqual(['first', 'second']);
  });

  test('When the attempt budget is one, then a retryable failure ends the payment as exhausted', async () => {
    run = await twoGateways({ mode: 'error' }, {}, { MAX_ATTEMPTS: '1' });
    const id = await run.pay();
    const [terminal] = await run.statuses.untilTerminal([id]);
    expect(terminal).toMatchObject({ status: 'FAILURE', reason: 'max-attempts-exhausted' });
  });

  test('When a gateway answers twice, then the payment settles once and the duplicate changes nothing', async () => {
    run = await twoGateways({ mode: 'duplicate' }, {});
    const id = await run.pay();
    await run.statuses.untilTerminal([id]);
    await untilPayment(run.stack.baseUrl, id, () => true);
    const metrics = await (await fetch(`${run.stack.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/payment_outcomes_ignored_total\{why="duplicate",service="orchestrator"\} 1/);
    expect(run.statuses.events.filter((event) => event.paymentId === id).map((event) => event.status)).toEqual(['PENDING', 'SUCCESS']);
  });
});

describe('late outcomes', () => {
  let run: Awaited<ReturnType<typeof twoGateways>> | undefined;
  afterEach(async () => {
    await run?.stop();
    run = undefined;
  });

  test('When a timed-out attempt succeeds while the payment is still pending, then that success wins and the other attempt is cancelled', async () => {
    run = await twoGateways({ mode: 'late', lateMs: 1_500 }, { mode: 'slow', latencyMs: 5_000 });
    const id = await run.pay();
    const [terminal] = await run.statuses.untilTerminal([id]);
    expect(terminal).toMatchObject({ status: 'SUCCESS', gatewayId: 'first' });
    expect(await attemptsOf(run.stack, id)).toEqual([
      ['first', 'succeeded', undefined],
      ['second', 'cancelled', undefined],
    ]);
    const metrics = await (await fetch(`${run.stack.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/payment_late_successes_total\{gateway="first",result="settled",service="orchestrator"\} 1/);
  });

  test('When a timed-out attempt succeeds after the payment settled elsewhere, then a compensation goes to its gateway and is confirmed', async () => {
    run = await twoGateways({ mode: 'late', lateMs: 2_000 }, {});
    const id = await run.pay();
    const [terminal] = await run.statuses.untilTerminal([id]);
    expect(terminal).toMatchObject({ status: 'SUCCESS', gatewayId: 'second' });
    const payment = await untilPayment(run.stack.baseUrl, id, (view) => view.attempts[0]?.status === 'compensated');
    expect(payment.status).toBe('SUCCESS');
    const metrics = await (await fetch(`${run.stack.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/payment_compensations_total\{gateway="first",service="orchestrator"\} 1/);
    expect(run.statuses.events.filter((event) => event.paymentId === id).map((event) => event.status)).toEqual(['PENDING', 'SUCCESS']);
  });
});

describe('withdrawal timeouts (cancel first)', () => {
  let run: Awaited<ReturnType<typeof twoGateways>> | undefined;
  afterEach(async () => {
    await run?.stop();
    run = undefined;
  });

  test('When the timed-out gateway confirms the cancel, then the withdrawal fails over and succeeds on the second', async () => {
    run = await twoGateways({ mode: 'slow', latencyMs: 5_000 }, {});
    const id = await run.pay({ type: 'withdrawal' });
    const [terminal] = await run.statuses.untilTerminal([id]);
    expect(terminal).toMatchObject({ status: 'SUCCESS', gatewayId: 'second' });
    expect(await attemptsOf(run.stack, id)).toEqual([
      ['first', 'cancelled', 'timeout'],
      ['second', 'succeeded', undefined],
    ]);
  });

  test('When the timed-out gateway stays silent, then the withdrawal stays PENDING, is flagged for review and is never sent elsewhere', async () => {
    run = await twoGateways({ mode: 'hang' }, {});
    const id = await run.pay({ type: 'withdrawal' });
    const flagged = await untilPayment(run.stack.baseUrl, id, (view) => view.review !== undefined);
    expect(flagged).toMatchObject({ status: 'PENDING', review: { reason: 'cancel-unconfirmed' } });
    expect(flagged.attempts.map((attempt) => [attempt.gatewayId, attempt.status])).toEqual([['first', 'cancelling']]);

    const reviews = (await (await fetchApi(`${run.stack.baseUrl}/v1/reviews`)).json()) as { payments: Array<{ id: string }> };
    expect(reviews.payments.map((payment) => payment.id)).toEqual([id]);
    const metrics = await (await fetch(`${run.stack.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/payments_flagged_for_review_total\{gateway="first",service="orchestrator"\} 1/);
    expect(run.statuses.events.filter((event) => event.paymentId === id).map((event) => event.status)).toEqual(['PENDING']);
  });
});

describe('results nobody asked for', () => {
  test('When a result arrives for an unknown payment, then it is dead-lettered for reconciliation', async () => {
    const run = await twoGateways({}, {});
    try {
      const producer = run.stack.kafka.producer();
      await producer.connect();
      await producer.send({
        topic: run.stack.topics.gatewayResults,
        messages: [
          {
            key: 'ghost',
            value: JSON.stringify({
              eventId: randomUUID(),
              type: 'gateway.result',
              occurredAt: new Date().toISOString(),
              schemaVersion: 1,
              paymentId: 'ghost',
              attemptId: 'ghost-1',
              gatewayId: 'first',
              outcome: 'success',
            }),
          },
        ],
      });
      await producer.disconnect();
      // A payment after the ghost result on the same consumer shows the consumer moved past it.
      const id = await run.pay();
      await run.statuses.untilTerminal([id]);
      await untilMetrics(run.stack.baseUrl, /kafka_messages_dead_lettered_total\{topic="[^"]+gateway\.results",reason="unknown-payment",service="orchestrator"\} 1/);
    } finally {
      await run.stop();
    }
  });
});
