import Redis from 'ioredis';
import { testGlobals } from './global-setup';

/** Stops the broker this run started and removes the run's Redis keys. */
export default async function globalTeardown(): Promise<void> {
  await testGlobals.stop?.();
  const runId = process.env.TEST_RUN_ID;
  if (!runId) return;
  const redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `test:${runId}:*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
