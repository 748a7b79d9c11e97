import type { Redis } from 'ioredis';

/**
 * A sliding-window log: the times of the attempts sent to a gateway within
 * the last window, in a sorted set. Atomic as one script, timed by Redis's
 * own clock (TIME), so every instance judges against the same clock and the
 * same log. Returns 0 when a unit was taken, otherwise the ms until the
 * oldest logged attempt leaves the window (when a unit is free again).
 *
 * KEYS[1] the gateway's log; ARGV[1] the limit N; ARGV[2] the window in ms;
 * ARGV[3] a unique id for this attempt (two attempts in the same microsecond
 * must both be logged).
 */
const TAKE = `
local time = redis.call('TIME')
local nowUs = tonumber(time[1]) * 1000000 + tonumber(time[2])
local windowUs = tonumber(ARGV[2]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowUs - windowUs)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], nowUs, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, math.ceil((tonumber(oldest[2]) + windowUs - nowUs) / 1000))
`;

/** The window every `rateLimitPerSecond` is counted over, in ms. */
export const RATE_LIMIT_WINDOW_MS = 1_000;

export type TakeResult = { taken: true } | { taken: false; retryAfterMs: number };

/**
 * Per-gateway rate limit shared by every orchestrator instance: never more
 * than `limit` attempts to a gateway in any rolling window of `windowMs`
 * (fixed one-second windows allowed twice the limit across a boundary).
 * One Redis round trip per attempt to a limited gateway; memory is one
 * sorted-set entry per attempt in the window (about 100 bytes), so a limit
 * of 10,000/s costs about 1 MB.
 */
export function createRateLimiter(redis: Redis, newId: () => string) {
  return {
    async take(gatewayId: string, limit: number, windowMs: number = RATE_LIMIT_WINDOW_MS): Promise<TakeResult> {
      const result = Number(await redis.eval(TAKE, 1, `ratelimit:${gatewayId}`, String(limit), String(windowMs), newId()));
      return result === 0 ? { taken: true } : { taken: false, retryAfterMs: result };
    },
  };
}
export type RateLimiter = ReturnType<typeof createRateLimiter>;
