import Redis from 'ioredis';
import type { Kafka } from 'kafkajs';
import type { TestStack } from './stack';

/** Number of Redis keys under the stack's prefix: nothing written means zero. */
export async function redisKeyCount(stack: Pick<TestStack, 'env'>): Promise<number> {
  const redis = new Redis(stack.env.REDIS_URL ?? '');
  try {
    let cursor = '0';
    let count = 0;
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${stack.env.REDIS_KEY_PREFIX}*`, 'COUNT', 1000);
      count += keys.length;
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
