import type { Redis } from 'ioredis';

// One fixed one-second window per gateway: INCR, and EXPIRE on the first hit.
const TAKE = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], 2000) end
if count > tonumber(ARGV[1]) then return 0 end
return 1
`;

/**
 * Per-gateway burst budget shared by every orchestrator instance: one atomic
 * Redis call takes a unit from the gateway's budget for the current second.
 * Only the gateway selection picked is asked, so a payment costs one round
 * trip when its gateway has a limit and none when it has not.
 */
export function createRateLimiter(redis: Redis, clock: () => Date) {
  return {
    async take(gatewayId: string, perSecond: number): Promise<boolean> {
      const second = Math.floor(clock().getTime() / 1000);
      return (await redis.eval(TAKE, 1, `ratelimit:${gatewayId}:${second}`, String(perSecond))) === 1;
    },
  };
}
export type RateLimiter = ReturnType<typeof createRateLimiter>;
