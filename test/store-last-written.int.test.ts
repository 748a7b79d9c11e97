import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { createPayment, decide, type DecisionContext, type Payment } from '../orchestrator/state/payment';
import { createPaymentStore } from '../orchestrator/state/store';
import { isolatedNamespace } from './support/env';

/**
 * store.latest hands the outcome path the copy of a payment this instance wrote last, instead of reading it back
 * from Redis: one round trip and a JSON parse saved per outcome. Two instances share one Redis here, as in
 * production; the compare-and-set on the revision must keep a stale copy from ever being written over a newer one.
 */
describe('payment store: the last written copy', () => {
  const { redisUrl, redisKeyPrefix } = isolatedNamespace();
  const redis = new Redis(redisUrl, { keyPrefix: redisKeyPrefix });
  const otherConnection = new Redis(redisUrl, { keyPrefix: redisKeyPrefix });
  afterAll(async () => {
    await redis.quit();
    await otherConnection.quit();
  });

  const clock = () => new Date();
  const settings = { idempotencyTtlSeconds: 60, outboxGraceMs: 60_000, clock, resultsPartitionOf: () => 0 };
  const context: DecisionContext = {
    maxAttempts: 3,
    route: () => ({ chosen: null, candidates: [], excluded: [], rulesVersion: 'v1' }),
    newAttemptId: randomUUID,
    timeoutMsOf: () => 5_000,
    timeoutPolicyOf: () => 'failover',
  };

  async function accepted(store: ReturnType<typeof createPaymentStore>): Promise<Payment> {
    const { payment } = createPayment(
      { id: randomUUID(), type: 'deposit', accountId: 'acc-1', amount: '1000', currency: 'EUR', region: 'EU' },
      { chosen: 'east', candidates: [{ gatewayId: 'east', weight: 1 }], excluded: [], rulesVersion: 'v1' },
      randomUUID(),
      5_000,
      clock(),
    );
    const created = await store.create(payment, { caller: 'test', key: randomUUID() }, 'hash', []);
    if (!created.created) throw new Error('not created');
    return payment;
  }
  const success = (payment: Payment) => ({ kind: 'success' as const, attemptId: payment.attempts[0]!.id, at: clock().toISOString() });

  test('When this instance accepted a payment, then its outcome is decided on the copy it wrote, without reading Redis, and stored', async () => {
    const store = createPaymentStore(redis, settings);
    const payment = await accepted(store);
    const reads = jest.spyOn(redis, 'hmget');

    const latest = await store.latest(payment.id);
    expect(reads).not.toHaveBeenCalled();
    expect(latest).toEqual({ payment, revision: '1', copy: true });

    const decision = decide(latest!.payment, success(payment), context);
    if (!decision.changed) throw new Error('unchanged');
    expect(await store.update(latest!, decision.payment, [])).toBeDefined();
    reads.mockRestore();
    expect(await store.get(payment.id)).toEqual({ payment: decision.payment, revision: '2' });
  });

  test('When another instance changed the payment since, then the stale copy is refused, and the next read is what is stored', async () => {
    const here = createPaymentStore(redis, settings);
    const elsewhere = createPaymentStore(otherConnection, settings);
    const payment = await accepted(here);

    // The other instance gets the gateway's answer and settles the payment.
    const stored = await elsewhere.latest(payment.id);
    const settled = decide(stored!.payment, success(payment), context);
    if (!settled.changed) throw new Error('unchanged');
    expect(await elsewhere.update(stored!, settled.payment, [])).toBeDefined();

    // This instance still holds revision 1, marked as a copy (so a decision to change nothing is checked against
    // Redis by the outcome path), and decides a timeout on it: the write must lose.
    const stale = await here.latest(payment.id);
    expect(stale).toMatchObject({ revision: '1', copy: true });
    const timedOut = decide(stale!.payment, { kind: 'timeout', attemptId: payment.attempts[0]!.id, at: clock().toISOString() }, context);
    if (!timedOut.changed) throw new Error('unchanged');
    expect(await here.update(stale!, timedOut.payment, [])).toBeUndefined();

    expect(await here.latest(payment.id)).toEqual({ payment: settled.payment, revision: '2' });
    expect((await here.get(payment.id))?.payment.status).toBe('SUCCESS');
  });

  test('When a payment is settled and nothing waits on it, then no copy is kept: a late duplicate reads it afresh', async () => {
    const store = createPaymentStore(redis, settings);
    const payment = await accepted(store);
    const latest = await store.latest(payment.id);
    const decision = decide(latest!.payment, success(payment), context);
    if (!decision.changed) throw new Error('unchanged');
    await store.update(latest!, decision.payment, []);

    const reads = jest.spyOn(redis, 'hmget');
    expect((await store.latest(payment.id))?.revision).toBe('2');
    expect(reads).toHaveBeenCalledTimes(1);
    reads.mockRestore();
  });
});
