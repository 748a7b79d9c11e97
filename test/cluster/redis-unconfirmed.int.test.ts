import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import { createLogger } from '../../runtime/logger';
import { createRedis, NotReplicatedError, UNCONFIRMED_WAITS_BEFORE_NOT_READY, type Redis, type ReplicaConfirmation } from '../../runtime/redis';
import { pollUntil } from '../support/poll';
import { startOwnedRedis, type OwnedRedis } from '../support/redis-server';

/**
 * A primary whose writes must reach one replica (`waitReplicas=1`) but that
 * has none: what a Sentinel failover leaves until the old primary comes back
 * as a replica. Every write fails as not replicated; after a few in a row the
 * connection says its writes are unconfirmed (the orchestrator's /readyz then
 * answers 503), and a replica in sync makes it confirmed again with no write
 * needed, since an instance out of the load balancer may get none.
 */
describe('cluster: Redis writes that no replica confirms', () => {
  let primary: OwnedRedis | undefined;
  let replica: OwnedRedis | undefined;
  let redis: (Redis & ReplicaConfirmation) | undefined;
  afterAll(async () => {
    redis?.disconnect();
    await replica?.dispose();
    await primary?.dispose();
  });

  test('When writes find no replica, then each fails NotReplicatedError, enough in a row make the writes unconfirmed, and a replica in sync makes them confirmed again', async () => {
    primary = await startOwnedRedis();
    const registry = new Registry();
    // 1 s: a replica in sync acknowledges within it even on a busy machine (50 ms was missed under a full parallel
    // run); a write with no replica waits it out, so the first writes take a second each.
    redis = createRedis(`${primary.url}?waitReplicas=1&waitTimeoutMs=1000`, `test:${randomUUID()}:`, createLogger('test', 'silent'), registry);
    await redis.connect();

    for (let write = 1; write <= UNCONFIRMED_WAITS_BEFORE_NOT_READY; write++) {
      expect(redis.writesConfirmed()).toBe(true);
      await expect(redis.set('key', String(write))).rejects.toBeInstanceOf(NotReplicatedError);
    }
    expect(redis.writesConfirmed()).toBe(false);
    // Reads do not wait for replicas; the write that failed may still be on the primary.
    expect(await redis.get('key')).toBe(String(UNCONFIRMED_WAITS_BEFORE_NOT_READY));
    expect((await registry.getSingleMetric('redis_writes_not_replicated_total')?.get())?.values[0]?.value).toBe(UNCONFIRMED_WAITS_BEFORE_NOT_READY);

    replica = await startOwnedRedis({ replicaOf: Number(new URL(primary.url).port) });
    const connection = redis;
    await pollUntil(
      async () => connection.writesConfirmed(),
      (confirmed) => confirmed,
      20_000,
      () => 'writes still unconfirmed 20 s after a replica started',
      100,
    );
    await expect(redis.set('key', 'after')).resolves.toBe('OK');
    expect(redis.writesConfirmed()).toBe(true);
  }, 60_000);
});
