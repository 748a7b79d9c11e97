import Redis from 'ioredis';
import type { Kafka } from 'kafkajs';
import type { TestStack } from './stack';

/**
 * Keys the orchestrators keep about Kafka itself, whatever the requests: how far the results were read
 * (orchestrator/timeouts/read-progress.ts) and which control-plane messages were already parked.
 */
const isBookkeeping = (key: string) => key === 'results-read' || key.startsWith('parked:');

/** Number of Redis keys under the stack's prefix (matching `pattern`) holding payment data, not bookkeeping: nothing written means zero. */
export async function redisKeyCount(stack: Pick<TestStack, 'env'>, pattern = '*'): Promise<number> {
  const redis = new Redis(stack.env.REDIS_URL ?? '');
  try {
    let cursor = '0';
    let count = 0;
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${stack.env.REDIS_KEY_PREFIX}${pattern}`, 'COUNT', 1000);
      count += keys.filter((key) => !isBookkeeping(key.slice((stack.env.REDIS_KEY_PREFIX ?? '').length))).length;
      cursor = next;
    } while (cursor !== '0');
    return count;
  } finally {
    redis.disconnect();
  }
}

/** Messages ever written to a topic (sum of high watermarks). */
export async function messageCount(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, partition) => sum + Number(partition.high), 0);
  } finally {
    await admin.disconnect();
  }
}
