import Redis from 'ioredis';
import type { Logger } from './logger';

export type { Redis };

/** A Redis connection whose keys all carry the given prefix. */
export function createRedis(url: string, keyPrefix: string, logger: Logger): Redis {
  const redis = new Redis(url, {
    keyPrefix,
    lazyConnect: true,
    // Commands wait for a reconnect instead of failing at once: a Redis restart
    // delays work, it does not drop it.
    maxRetriesPerRequest: null,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
  });
  redis.on('error', (error) => logger.warn({ err: error }, 'redis connection error'));
  return redis;
}
