import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import type { Outcome } from '../orchestrator/state/payment';
import { createPayment } from '../orchestrator/state/payment';
import { createPaymentStore } from '../orchestrator/state/store';
import { startTimeoutScheduler } from '../orchestrator/timeouts/scheduler';
import { isolatedNamespace, testLogger } from './support/env';
import { pollUntil } from './support/poll';

const TIMEOUT_MS = 2_000;

/**
 * A killed instance (or a broker outage) can leave an attempt's request in
 * the outbox, unsent, past its deadline: the relay sends it later. The
 * gateway cannot answer what it has not seen, so that deadline must not
 * fire; once the request reaches Kafka, the deadline moves later by the
 * delay and the gateway gets its whole timeout (docs/decisions/0015).
 * Real Redis; the results partition is taken as read through (no Kafka here).
 */
describe('a deadline whose request has not reached Kafka yet', () => {
  const { redisUrl, redisKeyPrefix } = isolatedNamespace();
  const redis = new Redis(redisUrl, { keyPrefix: redisKeyPrefix });
  afterAll(() => redis.quit());

  test('When an attempt deadline passes while its request is still in the outbox, then it is held, not timed out; once the request is sent it moves later by the delay and fires only then', async () => {
    let nowMs = Date.parse('2026-11-30T12:00:00.000Z');
    const clock = () => new Date(nowMs);
    const store = createPaymentStore(redis, { idempotencyTtlSeconds: 60, outboxGraceMs: 60_000, clock, resultsPartitionOf: () => 0 });
    const attemptId = randomUUID();
    const { payment } = createPayment(
      { id: randomUUID(), type: 'deposit', accountId: 'acc-1', amount: '1000', currency: 'EUR', region: 'EU' },
      { chosen: 'east', candidates: [{ gatewayId: 'east', weight: 1 }], excluded: [], rulesVersion: 'v1' },
      attemptId,
      TIMEOUT_MS,
      clock(),
    );
    const deadlineMs = nowMs + TIMEOUT_MS;
    const request = { type: 'attempt.requested', paymentId: payment.id, attemptId, deadline: new Date(deadlineMs).toISOString(), occurredAt: clock().toISOString() };
    const created = await store.create(payment, { caller: 'test', key: randomUUID() }, 'hash', [{ topic: 'requests', key: payment.id, value: request }]);
    if (!created.created) throw new Error('not created');

    const timedOut: Outcome[] = [];
    let heldForSend = 0;
    let sweeps = 0;
    const stop = startTimeoutScheduler({
      store,
      applyOutcome: async (_paymentId, outcome) => {
        timedOut.push(outcome);
        return 'applied';
      },
      // Read through to now: every answer the gateway could have sent is applied, so only the outbox holds it.
      progress: { refresh: async () => [nowMs] },
      partitionCount: 1,
      clock,
      logger: testLogger('scheduler'),
      pollMs: 10,
      onSweep: () => (sweeps += 1),
      onHeldForSend: () => (heldForSend += 1),
    });
    const afterSweeps = async (count: number) => {
      const target = sweeps + count;
      await pollUntil(async () => sweeps, (done) => done >= target, 5_000, () => `fewer than ${count} sweeps`, 10);
    };
    try {
      // Past the deadline, the request never sent (its instance died): held, told once, not timed out.
      nowMs = deadlineMs + 1_500;
      await afterSweeps(5);
      expect(timedOut).toEqual([]);
      expect(heldForSend).toBe(1);

      // The relay sends it now, 3.5 s after the decision: the deadline moves 3.5 s later.
      await store.clearOutboxes([created.outbox]);
      await afterSweeps(5);
      expect(timedOut).toEqual([]);

      // Just before the moved deadline nothing fires; just after it, the timeout does.
      nowMs = deadlineMs + 3_500 - 1;
      await afterSweeps(5);
      expect(timedOut).toEqual([]);
      nowMs = deadlineMs + 3_500 + 1;
      await pollUntil(async () => timedOut.length, (count) => count > 0, 5_000, () => 'the moved deadline never fired', 10);
      expect(timedOut).toEqual([{ kind: 'timeout', attemptId, at: new Date(nowMs).toISOString() }]);
      expect(heldForSend).toBe(1);
    } finally {
      await stop();
    }
  });
});
